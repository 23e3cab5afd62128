import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSetupScript, loadMigrations, schemaVersion } from './migrations.ts';

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

/** The schema version an earlier export installs, from its first line; 0 when there is none. */
export function exportedVersion(script: string | undefined): number {
  return Number(/^-- figma-plugin-auth-db schema setup: version (\d+)/.exec(script ?? '')?.[1] ?? 0);
}

/**
 * The script an export holds: the setup script without the text of the numbered files an earlier
 * export (at `previousVersion`) already carried. With no earlier export that is all of them: the
 * script builds a fresh database from schema/current.sql and the function files, so it defines
 * each function once; a database at an older version than it can upgrade is refused, naming
 * `setup`, which carries every numbered file.
 */
export function buildExportScript(previousVersion = 0): string {
  const current = schemaVersion();
  return buildSetupScript(loadMigrations(), undefined, { omitThrough: previousVersion > 0 ? Math.min(previousVersion, current) : current });
}

/**
 * Writes the setup script as `<dir>/supabase/migrations/<timestamp>_figma_plugin_auth.sql`, so a
 * Supabase CLI project adopts the schema with `supabase db push` (buildExportScript). It is
 * idempotent, so pushing it to a database `setup` already ran on changes nothing. When the newest
 * export there already has this content, no new file is added.
 */
export function exportSupabaseMigration(dir = '.', now: Date = new Date()): SupabaseExport {
  const folder = join(dir, 'supabase', 'migrations');
  const previous = existsSync(folder)
    ? readdirSync(folder).filter((f) => /^\d{14}_figma_plugin_auth\.sql$/.test(f)).sort().at(-1)
    : undefined;
  const previousText = previous ? readFileSync(join(folder, previous), 'utf8') : undefined;
  const script = buildExportScript(exportedVersion(previousText));
  if (previous && previousText === script) {
    return { path: join(folder, previous), written: false };
  }
  mkdirSync(folder, { recursive: true });
  const path = join(folder, `${migrationTimestamp(now)}${SUFFIX}`);
  // 'wx': never overwrite a file (two exports in the same second with different content).
  writeFileSync(path, script, { flag: 'wx' });
  return { path, written: true };
}
