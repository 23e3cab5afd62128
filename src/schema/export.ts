import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSetupScript } from './migrations.ts';

export interface SupabaseExport {
  /** The migration file, relative to the current directory when dir was relative. */
  path: string;
  /** false when an identical export already existed: nothing was written. */
  written: boolean;
}

const SUFFIX = '_figma_plugin_auth.sql';

/** Supabase CLI migration versions are UTC timestamps, YYYYMMDDHHMMSS. */
export function migrationTimestamp(now: Date = new Date()): string {
  return now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/**
 * Writes the setup script as `<dir>/supabase/migrations/<timestamp>_figma_plugin_auth.sql`, so a
 * Supabase CLI project adopts the schema with `supabase db push`. The file is exactly
 * buildSetupScript(): idempotent, so pushing it to a database `setup` already ran on changes
 * nothing. When the newest export there already has this content, no new file is added.
 */
export function exportSupabaseMigration(dir = '.', now: Date = new Date()): SupabaseExport {
  const folder = join(dir, 'supabase', 'migrations');
  const script = buildSetupScript();
  const previous = existsSync(folder)
    ? readdirSync(folder).filter((f) => /^\d{14}_figma_plugin_auth\.sql$/.test(f)).sort().at(-1)
    : undefined;
  if (previous && readFileSync(join(folder, previous), 'utf8') === script) {
    return { path: join(folder, previous), written: false };
  }
  mkdirSync(folder, { recursive: true });
  const path = join(folder, `${migrationTimestamp(now)}${SUFFIX}`);
  // 'wx': never overwrite a file (two exports in the same second with different content).
  writeFileSync(path, script, { flag: 'wx' });
  return { path, written: true };
}
