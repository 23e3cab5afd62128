// One owner per embedded data directory. PGlite is PostgreSQL in single-user mode inside this
// process: two processes opening the same directory are two servers writing the same files, which
// corrupts it. So the first opener takes the lock file in the directory and owns it; while it runs
// it serves the database on a unix socket (./pglite-server.ts), and every other opener (setup, the
// CLI, the dashboard) is a client of that socket. docs/embedded.md describes the whole scheme.
import { randomUUID } from 'node:crypto';
import { linkSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { SetupError } from './errors.ts';

/** What the lock file says about its holder. */
export interface Holder {
  pid: number;
  /** The process's start time as the OS reports it: a pid reused by a later process has another. */
  started: string;
  /** When it took the lock (ISO 8601). */
  since: string;
  /** Unique per lock taken: what a takeover checks it is removing. */
  token: string;
  /** The directory of the unix socket `.s.PGSQL.5432` it serves on; null when it does not serve. */
  socketDir: string | null;
}

export const LOCK_FILE = 'owner.lock';
/** The socket is `<socketDir>/.s.PGSQL.5432`, the name libpq and pg look for with host=<dir>. */
export const SOCKET_PORT = 5432;
export const SOCKET_NAME = `.s.PGSQL.${SOCKET_PORT}`;
// sockaddr_un holds about 104 bytes on macOS, 108 on Linux.
const MAX_SOCKET_PATH = 100;

/** The start time of a process, or undefined when the OS does not say (then it is never declared dead by it). */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: the fields after the last ')' are fixed
    // (state is the first, starttime the 20th of them).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? 'zombie' : fields[19];
  } catch {
    if (process.platform === 'linux' || process.platform === 'win32') return undefined;
  }
  try {
    return execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Whether the process that wrote this lock still runs: its pid exists and started when it did. */
export function holderAlive(holder: Holder): boolean {
  // kill(0) would signal our own process group.
  if (!(holder.pid > 0)) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const started = processStart(holder.pid);
  if (started === 'zombie') return false;
  return started === undefined || !holder.started || started === holder.started;
}

export function lockedError(dir: string, holder: Holder, why: string): SetupError {
  return new SetupError(
    'database_locked',
    `database_locked: the embedded database in ${dir} is owned by process ${holder.pid} (since ${holder.since}), which ${why}. ` +
      'Stop that process, or open this database in it; see docs/embedded.md.',
  );
}

function newHolder(socketDir: string | null): Holder {
  return { pid: process.pid, started: processStart(process.pid) ?? '', since: new Date().toISOString(), token: randomUUID(), socketDir };
}

/**
 * Creates path holding holder's JSON, only if path does not exist. The content is written to a
 * file of our own first and then hard-linked to path: link() fails with EEXIST like O_EXCL, and
 * a reader never sees a half-written lock.
 */
function createExclusive(path: string, holder: Holder): boolean {
  const tmp = `${path}.${holder.token}.tmp`;
  writeFileSync(tmp, JSON.stringify(holder), { mode: 0o600 });
  try {
    linkSync(tmp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    unlinkSync(tmp);
  }
}

function readHolder(path: string): Holder | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Holder;
    if (Number.isInteger(parsed.pid) && typeof parsed.token === 'string') return parsed;
  } catch {}
  // Not a lock this code wrote (a lock is linked complete): nobody can be holding it.
  return { pid: 0, started: '', since: 'unknown', token: 'unreadable', socketDir: null };
}

/**
 * Removes a lock whose holder is dead. Two processes may find the same stale lock at once, and
 * by the time the slower one deletes "the stale lock" the faster may have put a live one in its
 * place. So removing the lock of token T needs a guard only one process can create,
 * `owner.lock.takeover.T`, and the guard's holder deletes the lock only if it still holds T:
 * T never comes back, and nobody else can remove the T lock meanwhile. A guard left by a taker
 * that died is itself removed the same way.
 */
function removeStale(path: string, stale: Holder, depth = 0): void {
  const guard = `${path.replace(/\.takeover\..*$/, '')}.takeover.${stale.token}`;
  if (!createExclusive(guard, newHolder(null))) {
    const taker = readHolder(guard);
    if (taker && !holderAlive(taker) && depth < 4) removeStale(guard, taker, depth + 1);
    return;
  }
  try {
    if (readHolder(path)?.token === stale.token) unlinkSync(path);
  } finally {
    rmSync(guard, { force: true });
  }
}

/** Who holds dir's lock now, if its process still runs. */
export function currentHolder(dir: string): Holder | undefined {
  const holder = readHolder(join(dir, LOCK_FILE));
  return holder && holderAlive(holder) ? holder : undefined;
}

export type Claim = { owned: OwnerLock } | { holder: Holder };

export interface OwnerLock {
  holder: Holder;
  release(): void;
}

/**
 * Takes the directory's lock, or says who holds it. A lock whose process is gone (killed, or its
 * pid now another process's) is taken over.
 */
export async function claimDirectory(dir: string, socketDir: string | null): Promise<Claim> {
  const path = join(dir, LOCK_FILE);
  const me = newHolder(socketDir);
  for (let attempt = 0; attempt < 500; attempt++) {
    if (createExclusive(path, me)) {
      return {
        owned: {
          holder: me,
          release() {
            if (readHolder(path)?.token === me.token) rmSync(path, { force: true });
          },
        },
      };
    }
    const current = readHolder(path);
    if (!current) continue;
    if (holderAlive(current)) return { holder: current };
    removeStale(path, current);
    await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20));
  }
  throw new SetupError('database_locked', `database_locked: could not take or read the lock of the embedded database in ${dir}`);
}

/** Where the owner's socket goes: in the data directory, or a private temporary one if that path is too long. */
export function socketDirFor(dir: string): { dir: string; temporary: boolean } {
  if (join(dir, SOCKET_NAME).length <= MAX_SOCKET_PATH) return { dir, temporary: false };
  return { dir: mkdtempSync(join(tmpdir(), 'pglite-')), temporary: true };
}
