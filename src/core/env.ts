import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';

export type Env = Record<string, string | undefined>;

/**
 * Development configuration: `.env.local`, then `.env`, under the real environment. A variable
 * already set in the environment always wins, and `.env.local` wins over `.env`. Returns a new
 * object; process.env is not modified.
 */
export function loadDevelopmentEnv(cwd: string = process.cwd(), env: Env = process.env): Env {
  const merged: Env = { ...env };
  for (const file of ['.env.local', '.env']) {
    const path = join(cwd, file);
    if (!existsSync(path)) continue;
    const values = parseEnv(readFileSync(path, 'utf8')) as Record<string, string>;
    for (const [name, value] of Object.entries(values)) {
      if (merged[name] === undefined || merged[name] === '') merged[name] = value;
    }
  }
  return merged;
}

/** Where embedded PGlite keeps its files when nothing says otherwise. */
export const DEFAULT_PGLITE_DIR = './.data/pglite';

/**
 * The one rule for where the embedded database lives, used by openDatabase(), setup and the CLI:
 * PGLITE_DATA_DIR when set, else ./.data/pglite (relative to the working directory).
 */
export function pgliteDataDir(env: Env = process.env): string {
  return env.PGLITE_DATA_DIR?.trim() || DEFAULT_PGLITE_DIR;
}
