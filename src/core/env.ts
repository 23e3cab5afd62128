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
