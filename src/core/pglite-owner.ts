// One owner per embedded data directory. PGlite is PostgreSQL in single-user mode inside this
// process: two processes opening the same directory are two servers writing the same files, which
// corrupts it. So the first opener takes a lock file in the directory and owns it; while it runs
// it serves the database on a unix socket beside the lock, and every other opener (setup, the CLI,
// the dashboard) is a client of that socket. docs/embedded.md describes the whole scheme.
import { randomUUID } from 'node:crypto';
import { chmodSync, linkSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { PGlite } from '@electric-sql/pglite';
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
const SOCKET_NAME = `.s.PGSQL.${SOCKET_PORT}`;
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

/** PGlite's internals the server relies on (public methods, and the two locks PGlite's own query() takes). */
type Served = Pick<PGlite, 'runExclusive' | 'execProtocolRawStream' | 'execProtocolRaw'> & {
  _runExclusiveTransaction<T>(fn: () => Promise<T>): Promise<T>;
};

/** How long a closing owner lets its connected clients finish (a pg pool drops an idle connection after 10 s). */
const CLOSE_GRACE_MS = 30_000;

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

const simpleQuery = (text: string): Uint8Array => {
  const body = Buffer.from(`${text}\0`, 'utf8');
  const head = Buffer.alloc(5);
  head.write('Q', 0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
};
const SYNC = Uint8Array.from([0x53, 0, 0, 0, 4]);

/** Follows the backend's messages across chunks: is the last one ReadyForQuery with status idle? */
class BackendTail {
  private header: number[] = [];
  private left = 0;
  private type = 0;
  private lastType = 0;
  private lastByte = 0;
  feed(data: Uint8Array): void {
    let i = 0;
    while (i < data.length) {
      if (this.left === 0 && this.header.length < 5) {
        this.header.push(data[i++]!);
        if (this.header.length === 5) {
          const [t, a, b, c, d] = this.header as [number, number, number, number, number];
          this.type = t;
          this.left = ((a << 24) | (b << 16) | (c << 8) | d) - 4;
          if (this.left <= 0) this.finish(0);
        }
        continue;
      }
      const take = Math.min(this.left, data.length - i);
      i += take;
      this.left -= take;
      if (this.left === 0) this.finish(data[i - 1]!);
    }
  }
  private finish(lastByte: number): void {
    this.lastType = this.type;
    this.lastByte = lastByte;
    this.header = [];
    this.left = 0;
  }
  /** ReadyForQuery ('Z') with status 'I': no transaction and no extended-protocol batch open. */
  get idle(): boolean {
    return this.header.length === 0 && this.left === 0 && this.lastType === 0x5a && this.lastByte === 0x49;
  }
}

/**
 * Serves an open PGlite on a unix socket in socketDir. PGlite has one session, so the socket's
 * clients and the owner's own calls take turns by unit: a client's unit runs from its first
 * message until PGlite answers ReadyForQuery idle (the end of a statement outside a transaction,
 * or of the transaction), and holds PGlite's transaction lock all that time, the lock PGlite's own
 * query(), exec() and transaction() take. Nothing of another client or of the owner runs inside a
 * client's transaction or extended-protocol batch, nor a client's statement inside the owner's
 * transaction. A client that disconnects mid-unit is rolled back.
 */
export async function serveDatabase(db: Served, socketDir: string): Promise<{ close(graceMs?: number): Promise<void> }> {
  const socketPath = join(socketDir, SOCKET_NAME);
  // We own the directory: a socket file left there is a dead owner's.
  rmSync(socketPath, { force: true });
  const connections = new Set<{ socket: Socket; done: () => Promise<void> }>();
  const lease = () =>
    new Promise<() => void>((acquired) => {
      void db._runExclusiveTransaction(() => new Promise<void>((release) => acquired(release)));
    });

  const server: Server = createServer((socket) => {
    let buffer = Buffer.alloc(0);
    let started = false;
    let release: (() => void) | undefined;
    let chain: Promise<void> = Promise.resolve();
    const tail = new BackendTail();
    const forward = async (message: Uint8Array) => {
      if (socket.destroyed) return;
      release ??= await lease();
      await db.runExclusive(() =>
        db.execProtocolRawStream(message, {
          onRawData: (data) => {
            tail.feed(data);
            if (!socket.destroyed) socket.write(Buffer.from(data));
          },
        }),
      );
      if (tail.idle) {
        release();
        release = undefined;
      }
    };
    const rollback = async () => {
      if (!release) return;
      try {
        // ROLLBACK ends a transaction block or an unsynced extended batch; a batch that failed
        // ignores everything up to Sync, so Sync, and ROLLBACK once more for a block.
        await db.runExclusive(async () => {
          for (const message of [simpleQuery('ROLLBACK'), SYNC, simpleQuery('ROLLBACK')]) await db.execProtocolRaw(message);
        });
      } finally {
        release();
        release = undefined;
      }
    };
    const enqueue = (message: Uint8Array) => {
      chain = chain.then(() => forward(message)).catch(() => {
        socket.destroy();
      });
    };
    const entry = {
      socket,
      done: () => (chain = chain.then(rollback).catch(() => {})),
    };
    connections.add(entry);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      connections.delete(entry);
      void entry.done();
    });
    socket.on('data', (data) => {
      buffer = buffer.length ? Buffer.concat([buffer, data]) : data;
      const batch: Buffer[] = [];
      while (!socket.destroyed) {
        if (!started) {
          if (buffer.length < 8) break;
          const length = buffer.readInt32BE(0);
          const code = buffer.readInt32BE(4);
          if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
            socket.write('N');
            buffer = buffer.subarray(8);
            continue;
          }
          if (code === CANCEL_REQUEST) {
            // PGlite has no other backend to signal.
            socket.destroy();
            break;
          }
          if (buffer.length < length) break;
          enqueue(Buffer.from(buffer.subarray(0, length)));
          buffer = buffer.subarray(length);
          started = true;
          continue;
        }
        if (buffer.length < 5) break;
        const length = 1 + buffer.readInt32BE(1);
        if (buffer.length < length) break;
        if (buffer[0] === 0x58) {
          // Terminate: the client is done; what it left open is rolled back on close.
          socket.end();
          break;
        }
        batch.push(buffer.subarray(0, length));
        buffer = buffer.subarray(length);
      }
      // Every complete message that arrived together goes to PGlite in one call (pg sends Parse,
      // Bind, Describe, Execute and Sync in one write).
      if (batch.length) enqueue(Buffer.concat(batch));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Connecting takes write permission on the socket: the owner's user only.
  chmodSync(socketPath, 0o600);
  return {
    /**
     * Stops taking connections; the clients connected now (a CLI command beside a closing setup)
     * finish and disconnect first, for up to graceMs; then the rest are cut (and rolled back).
     */
    async close(graceMs = CLOSE_GRACE_MS) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      const pending = [...connections].map((c) => {
        c.socket.destroy();
        return c.done();
      });
      await Promise.all(pending);
      await closed;
      rmSync(socketPath, { force: true });
    },
  };
}
