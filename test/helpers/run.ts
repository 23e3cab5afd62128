// Runs a repository script as a subprocess, the way a developer would, and captures everything.
// The script runs as JavaScript compiled ahead of time: each script is bundled once (esbuild, the
// compiler tsx runs on every start) into node_modules/.cache, keyed by the contents of the script,
// src/ and package-lock.json, so a subprocess costs a Node start instead of a TypeScript loader's.
// The bundle sits in a mirror of the repository (src/bundle/<name>.mjs, every other top-level entry
// linked back), as deep as the folders under src/ whose code finds files from import.meta.url
// (src/schema/: ../../sql/, ../../schema/), so those paths are the real ones.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const CACHE = join(ROOT, 'node_modules', '.cache', 'figma-plugin-auth-db-test');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for "no secret anywhere" checks. */
  all: string;
}

/** Variables the suite may have that a subprocess must not inherit unless a test sets them. */
const CONFIG = ['DATABASE_URL', 'SUPABASE_URL', 'SUPABASE_SERVICE_ROLE_KEY', 'PGLITE_DATA_DIR', 'PLUGIN_TOKEN_SECRET'];

let mirror: string | undefined;
/** The mirror directory for the current sources (made once per source version). */
function mirrorDir(): string {
  if (mirror) return mirror;
  const hash = createHash('sha256');
  // Every file under src/, its folders included (a bundle inlines them all).
  const files = (readdirSync(join(ROOT, 'src'), { recursive: true }) as string[]).filter((name) => statSync(join(ROOT, 'src', name)).isFile());
  for (const name of files.sort()) hash.update(name).update(readFileSync(join(ROOT, 'src', name)));
  hash.update(readFileSync(join(ROOT, 'package-lock.json')));
  const dir = join(CACHE, `scripts-${hash.digest('hex').slice(0, 12)}`);
  if (!existsSync(dir)) {
    mkdirSync(CACHE, { recursive: true });
    for (const name of readdirSync(CACHE)) if (name.startsWith('scripts-')) rmSync(join(CACHE, name), { recursive: true, force: true });
    const tmp = `${dir}.${process.pid}.tmp`;
    mkdirSync(join(tmp, 'src', 'bundle'), { recursive: true });
    for (const name of readdirSync(ROOT)) {
      if (name !== 'src' && name !== 'node_modules' && name !== '.git') symlinkSync(join(ROOT, name), join(tmp, name));
    }
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another process made it first
    }
  }
  mirror = dir;
  return dir;
}

const built = new Map<string, Promise<string>>();
/** The compiled script, or the TypeScript source itself when it cannot be compiled this way. */
function compiled(script: string): Promise<string | undefined> {
  const source = fileURLToPath(new URL(script, pathToFileURL(ROOT)));
  // Code outside src/ that finds files from its own location would look in the wrong place.
  if (!script.startsWith('src/') && readFileSync(source, 'utf8').includes('import.meta')) return Promise.resolve(undefined);
  const key = `${script}:${createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12)}`;
  if (!built.has(key)) {
    built.set(key, (async () => {
      const out = join(mirrorDir(), 'src', 'bundle', `${basename(script, '.ts')}-${key.split(':')[1]}.mjs`);
      if (existsSync(out)) return out;
      const esbuild = createRequire(fileURLToPath(TSX))('esbuild') as typeof import('esbuild');
      const tmp = `${out}.${process.pid}.tmp`;
      await esbuild.build({
        entryPoints: [source], outfile: tmp, bundle: true, packages: 'external', platform: 'node', format: 'esm',
        target: `node${process.versions.node}`, logLevel: 'silent', sourcemap: false,
      });
      renameSync(tmp, out);
      return out;
    })());
  }
  return built.get(key)!;
}

/** The node arguments that run a repository script: its compiled bundle, or tsx and the source. */
export async function scriptArgs(script: string): Promise<string[]> {
  const js = await compiled(script);
  return js ? [js] : ['--import', TSX, fileURLToPath(new URL(script, pathToFileURL(ROOT)))];
}

export async function runScript(
  script: string,
  args: string[] = [],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of CONFIG) delete env[name];
  Object.assign(env, options.env);
  return spawnCollect(process.execPath, [...(await scriptArgs(script)), ...args], { cwd: options.cwd ?? ROOT, env });
}

/** Runs a command and collects its output: the one subprocess runner of the suite. */
export function spawnCollect(
  command: string,
  args: string[],
  options: { cwd: string; env: Record<string, string | undefined> },
): Promise<RunResult> {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr, all: stdout + stderr }));
  });
}
