// Runs a repository script as a subprocess, the way a developer would, and captures everything.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for "no secret anywhere" checks. */
  all: string;
}

/** Variables the suite may have that a subprocess must not inherit unless a test sets them. */
const CONFIG = ['DATABASE_URL', 'SUPABASE_URL', 'SUPABASE_SERVICE_ROLE_KEY', 'PGLITE_DATA_DIR', 'PLUGIN_TOKEN_SECRET'];

export function runScript(
  script: string,
  args: string[] = [],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of CONFIG) delete env[name];
  Object.assign(env, options.env);
  const child = spawn(process.execPath, ['--import', TSX, fileURLToPath(new URL(script, pathToFileURL(ROOT))), ...args], {
    cwd: options.cwd ?? ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) =>
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr, all: stdout + stderr })),
  );
}
