// Embedded PGlite behind the Database interface: in memory, a caller's instance, or a data
// directory owned by one process (./pglite-lock.ts) and served to the others (./pglite-server.ts). Loaded by
// openDatabase (./db.ts) only when a PGlite target is asked for, so that nothing else that imports
// the library loads PGlite.
import { PGlite, parse as parsePglite, protocol as pgliteProtocol } from '@electric-sql/pglite';
import { mkdirSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Database, OpenOptions, Queryable } from './database.ts';
import { claimDirectory, currentHolder, lockedError, socketDirFor, SOCKET_PORT, type Holder } from './pglite-lock.ts';
import { serveDatabase } from './pglite-server.ts';

// The same JavaScript values as the pg pool returns: DATE as 'YYYY-MM-DD' (a Date would shift by
// the process time zone) and BIGINT as number (ours are identities and counts, far below 2^53).
const DATE_OID = 1082;
const INT8_OID = 20;

/** Type parsers for PGlite instances created outside openDatabase (e.g. from a data-dir dump). */
export const PGLITE_PARSERS = { [DATE_OID]: (value: string): string => value, [INT8_OID]: (value: string | number | bigint): number => Number(value) };

/**
 * The start parameters of the PGlite instances openDatabase opens (docs/embedded.md, "Memory"):
 * PGlite's own with a 16 MB buffer pool instead of PostgreSQL's 128 MB. Every start
 * allocates and zeroes the whole pool inside the WebAssembly memory: at 128 MB that was about 0.3 s
 * of an open and 112 MB of the process's memory more. Pages outside the pool are read from
 * PGlite's own files (memory, or the data directory through the OS's cache), and a plugin
 * backend's hot rows (its active users' counters and tokens) fit in 16 MB many times over.
 * Passed on the command line, it wins over the data directory's postgresql.conf.
 */
export const PGLITE_START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];

/** In-memory PGlite: one process, nothing to share. */
export async function openMemoryPglite(): Promise<Database> {
  return wrapPglite(await PGlite.create({ parsers: PGLITE_PARSERS, startParams: PGLITE_START_PARAMS }), 'in-memory PGlite', true);
}

/** How a client of the owner's socket is opened: a pg pool on the URL (db.ts's openDatabase). */
export type OpenUrl = (url: string, options: OpenOptions) => Promise<Database>;

// How long a second opener waits for an owner that holds the lock but does not answer yet (the
// first open of a directory runs initdb: seconds, more on a busy machine).
const OWNER_WAIT_MS = 180_000;

/**
 * PGlite in a data directory. The first process to open it owns it (a lock file in the
 * directory), opens PGlite and, unless `share: false`, serves it on a unix socket; any other
 * opener is a pg client of that socket. An owner that does not serve, or never answers, gives
 * `database_locked` naming it. Never two PGlite instances on one directory.
 */
export async function openPgliteDirectory(dataDir: string, options: OpenOptions, openUrl: OpenUrl): Promise<Database> {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  const deadline = Date.now() + OWNER_WAIT_MS;
  for (;;) {
    // Windows has no unix sockets in the file system: an owner there does not serve.
    const socket = options.share === false || process.platform === 'win32' ? undefined : socketDirFor(dir);
    const claim = await claimDirectory(dir, socket?.dir ?? null);
    if ('owned' in claim) return await ownDirectory(dataDir, claim.owned, socket);
    if (socket?.temporary) rmSync(socket.dir, { recursive: true, force: true });
    const reached = await reachOwner(dir, dataDir, claim.holder, options, openUrl, deadline);
    if (reached) return reached;
    // The owner went away while we waited: try to take the directory again.
  }
}

async function ownDirectory(
  dataDir: string,
  lock: { holder: Holder; release(): void },
  socket: { dir: string; temporary: boolean } | undefined,
): Promise<Database> {
  let pglite: PGlite | undefined;
  let served: { close(): Promise<void> } | undefined;
  try {
    pglite = await PGlite.create(resolve(dataDir), { parsers: PGLITE_PARSERS, startParams: PGLITE_START_PARAMS });
    if (socket) served = await serveDatabase(pglite as unknown as Parameters<typeof serveDatabase>[0], socket.dir);
  } catch (error) {
    await pglite?.close().catch(() => {});
    lock.release();
    if (socket?.temporary) rmSync(socket.dir, { recursive: true, force: true });
    throw error;
  }
  const inner = wrapPglite(pglite, `embedded PGlite in ${dataDir}`, true);
  let closing: Promise<void> | undefined;
  return {
    ...inner,
    close: () =>
      (closing ??= (async () => {
        try {
          await served?.close();
          await inner.close();
        } finally {
          lock.release();
          if (socket?.temporary) rmSync(socket.dir, { recursive: true, force: true });
        }
      })()),
  };
}

/**
 * A pg pool on the owner's socket, once it answers; undefined if the owner let the directory go
 * meanwhile (it exited, was killed, or closed its database: then the caller claims it again).
 */
async function reachOwner(dir: string, dataDir: string, holder: Holder, options: OpenOptions, openUrl: OpenUrl, deadline: number): Promise<Database | undefined> {
  if (!holder.socketDir) throw lockedError(dataDir, holder, 'does not share it (opened with share: false)');
  const url = `postgres://postgres@localhost/postgres?host=${encodeURIComponent(holder.socketDir)}&port=${SOCKET_PORT}`;
  for (;;) {
    // Named statements would outlive this client in PGlite's one session, which every client
    // shares: statements go unnamed through the socket.
    const db = await openUrl(url, { ...options, preparedStatements: false });
    try {
      await db.query('SELECT 1');
      return {
        ...db,
        kind: 'pglite',
        description: `embedded PGlite in ${dataDir} (through process ${holder.pid}, its owner)`,
      };
    } catch (error) {
      await db.close().catch(() => {});
      // Not answering yet (opening), or closing: ask the lock again.
      // The pool reports a broken connection as connection_lost; the socket's own error is its cause.
      const lost = (error as { code?: unknown }).code === 'connection_lost';
      const raw = (lost ? (error as { cause?: unknown }).cause : error) as NodeJS.ErrnoException | undefined;
      const code = raw?.code;
      const ended = lost || /Connection terminated/.test(String(raw?.message));
      if (code !== 'ECONNREFUSED' && code !== 'ENOENT' && code !== 'ECONNRESET' && code !== 'EPIPE' && !ended) throw error;
    }
    if (currentHolder(dir)?.token !== holder.token) return undefined;
    if (Date.now() > deadline) throw lockedError(dataDir, holder, 'does not answer on its socket');
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function wrapPglite(db: PGlite, description: string, owned: boolean): Database {
  const asQueryable = (q: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    async query<R>(text: string, params: readonly unknown[] = []) {
      return (await q.query<R>(text, params as unknown[])).rows;
    },
    async exec(script: string) {
      await q.exec(script);
    },
  });
  const base = asQueryable(db);
  const named = preparedPglite(db);
  return {
    kind: 'pglite',
    description,
    prepares: named !== undefined,
    // A statement sent with `prepare` is parsed and planned once per instance, as on PostgreSQL.
    query: (text, params, options) => (options?.prepare && named ? named(options.prepare, text, params ?? []) : base.query(text, params)),
    exec: base.exec,
    transaction: (fn) => db.transaction((tx) => fn(asQueryable(tx))),
    async close() {
      if (owned && !db.closed) await db.close();
    },
  };
}

type BackendMessage = Awaited<ReturnType<PGlite['execProtocol']>>['messages'][number];

interface PglitePrepared {
  text: string;
  /** The parameters' type OIDs and the result's row description, from Describe at Parse time. */
  paramTypes: number[];
  rowDescription: BackendMessage | undefined;
}

/**
 * Named statements on PGlite. PGlite's query() sends every statement unnamed: Parse, Describe,
 * Bind, Describe, Execute and Sync, six calls into the WebAssembly server, and the statement is
 * parsed and planned each time. A hot call (consume, check, verify) is instead parsed once per
 * instance under its name, and each call is one Bind, Execute, Sync (measured: BENCHMARKS.md).
 * It runs under both of PGlite's locks, so never inside a transaction someone else has open.
 * Undefined when this PGlite has no such locks (then the statement goes the usual way).
 */
function preparedPglite(db: PGlite): ((name: string, text: string, params: readonly unknown[]) => Promise<any[]>) | undefined {
  const internal = db as unknown as {
    _runExclusiveTransaction?: <T>(fn: () => Promise<T>) => Promise<T>;
    serializers?: Record<number, (value: unknown) => string>;
    parsers?: typeof PGLITE_PARSERS;
  };
  if (typeof internal._runExclusiveTransaction !== 'function' || typeof db.runExclusive !== 'function') return undefined;
  const statements = new Map<string, PglitePrepared>();
  const { serialize } = pgliteProtocol;
  const exclusive = <T>(fn: () => Promise<T>) => internal._runExclusiveTransaction!(() => db.runExclusive(fn));
  return async (name, text, params) => {
    // A name is one text (as pg requires); another text under a taken name goes the usual way.
    const known = statements.get(name);
    if (known && known.text !== text) return (await db.query(text, params as unknown[])).rows;
    return exclusive(async () => {
      let statement = statements.get(name);
      if (!statement) {
        const described = await db.execProtocol(Buffer.concat([serialize.parse({ name, text }), serialize.describe({ type: 'S', name }), serialize.sync()]));
        const description = described.messages.find((m) => m.name === 'parameterDescription') as { dataTypeIDs?: number[] } | undefined;
        statement = {
          text,
          paramTypes: description?.dataTypeIDs ?? [],
          rowDescription: described.messages.find((m) => m.name === 'rowDescription'),
        };
        statements.set(name, statement);
      }
      const values = params.map((value, i) => {
        if (value === null || value === undefined) return null;
        const toText = internal.serializers?.[statement!.paramTypes[i]!];
        return toText ? toText(value) : String(value);
      });
      const result = await db.execProtocol(Buffer.concat([serialize.bind({ statement: name, values }), serialize.execute({}), serialize.sync()]));
      const messages = statement.rowDescription ? [statement.rowDescription, ...result.messages] : result.messages;
      return parsePglite.parseResults(messages, internal.parsers ?? PGLITE_PARSERS)[0]?.rows ?? [];
    });
  };
}
