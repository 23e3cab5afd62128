// Shared by scripts/test-failover.ts and scripts/test-sharded.ts: Debian packages installed when
// missing, commands run as the `postgres` user when this process is root (PostgreSQL refuses to
// run as root), long-running processes started in a process group of their own and every one of
// them stopped at the end, on failure and on Ctrl-C too.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PG_BIN = '/usr/lib/postgresql/15/bin';
const isRoot = process.getuid?.() === 0;

/** Installs the Debian packages unless the probes (files they install) exist; a missing file afterwards is a failure. */
export function ensurePackages(packages: string[], ...probes: string[]): void {
  const missing = () => probes.filter((probe) => !existsSync(probe));
  if (missing().length === 0) return;
  if (!isRoot) throw new Error(`${missing().join(', ')} missing and this process is not root: apt-get install -y ${packages.join(' ')}`);
  console.log(`installing ${packages.join(' ')} (apt-get)`);
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...packages]]) {
    const result = spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (result.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${result.status})`);
  }
  if (missing().length) throw new Error(`${missing().join(', ')} still missing after installing ${packages.join(' ')}`);
}

/** A temporary directory the `postgres` user owns when we are root. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (isRoot) chownSync(dir, ...ids('postgres'));
  return dir;
}

function ids(user: string): [number, number] {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no user ${user} on this machine`);
  const [, , uid, gid] = line.split(':');
  return [Number(uid), Number(gid)];
}

/** The command line that runs `command` with `env` (as postgres when we are root). */
function asPostgres(command: string, args: string[], env: Record<string, string>): [string, string[]] {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const path = `PATH=${PG_BIN}:/usr/bin:/bin`;
  return isRoot ? ['runuser', ['-u', 'postgres', '--', 'env', path, ...envArgs, command, ...args]] : ['env', [path, ...envArgs, command, ...args]];
}

/** Runs a command to its end (bounded by timeoutMs); throws with its output when it fails. */
export async function run(command: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<string> {
  const [cmd, argv] = asPostgres(command, args, env);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {}
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${out.slice(-4000)}`));
    });
  });
}

const started = new Set<ChildProcess>();
const dataDirs = new Set<string>();
const tempDirs = new Set<string>();

/** Starts a long-running command in its own process group, its output appended to logFile's buffer. */
export function startService(command: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess; log: () => string } {
  const [cmd, argv] = asPostgres(command, args, env);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  const keep = (d: Buffer) => {
    log = (log + d.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  started.add(child);
  child.on('exit', () => started.delete(child));
  return { child, log: () => log };
}

/** SIGKILL to a process group we started (a node's pg_autoctl and the postgres it runs). */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {}
}

/** The postmaster's pid of a data directory (its postmaster.pid), or undefined. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    return Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
}

/** Data directories whose postmaster is stopped at cleanup (immediate shutdown), whoever started it. */
export function trackDataDir(dir: string): void {
  dataDirs.add(dir);
}

export function trackTempDir(dir: string): void {
  tempDirs.add(dir);
}

/** Stops everything started here: process groups (TERM, then KILL), postmasters, temp dirs. */
export async function cleanup(): Promise<void> {
  for (const child of started) killGroup(child, 'SIGTERM');
  for (const dir of dataDirs) {
    const pid = postmasterPid(dir);
    if (pid) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {}
    }
  }
  const until = Date.now() + 5_000;
  while (started.size && Date.now() < until) await sleep(100);
  for (const child of started) killGroup(child, 'SIGKILL');
  for (const dir of dataDirs) {
    const pid = postmasterPid(dir);
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }
  await sleep(300);
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs main with a hard deadline; cleans up on every path and on SIGINT/SIGTERM; sets the exit code. */
export function runScript(name: string, deadlineMs: number, main: () => Promise<void>): void {
  const started = Date.now();
  const stop = async (code: number, message?: string) => {
    if (message) console.error(message);
    await cleanup().catch((error) => console.error('cleanup failed:', error));
    console.log(`${name}: ${code === 0 ? 'passed' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    process.exit(code);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void stop(130, `${name}: ${signal}`));
  const timer = setTimeout(() => void stop(1, `${name}: over its time bound of ${deadlineMs / 1000} s`), deadlineMs);
  main().then(
    () => {
      clearTimeout(timer);
      return stop(0);
    },
    (error) => {
      clearTimeout(timer);
      return stop(1, `${name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    },
  );
}

export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
