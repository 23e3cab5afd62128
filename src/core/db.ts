import pg from 'pg';
import { EventEmitter } from 'node:events';
import type { PGlite } from '@electric-sql/pglite';
import { redactUrl } from './redact.ts';
import { DatabaseError, PluginAuthError } from './errors.ts';
import { pgliteDataDir } from './env.ts';
import type { Database, OpenOptions, Queryable, QueryOptions } from './database.ts';
import { isPostgresJs } from './postgresjs-shape.ts';
import type { Sql } from 'postgres';

export type { Database, OpenOptions, Queryable, QueryOptions } from './database.ts';
// The typed-error wrapper lives in queryable.ts, which imports no driver (the edge entry uses it
// without pg or PGlite).
export { withTypedErrors } from './queryable.ts';

export { DEFAULT_PGLITE_DIR } from './env.ts';

// Both drivers return the same JavaScript values: DATE as 'YYYY-MM-DD' (a Date would shift by the
// process time zone) and BIGINT as number (ours are identities and counts, far below 2^53).
const DATE_OID = 1082;
const INT8_OID = 20;
const parseDate = (value: string): string => value;
const parseInt8 = (value: string | number | bigint): number => Number(value);

/**
 * Opens the database: a postgres:// URL (any PostgreSQL, Supabase direct or session pooler),
 * `memory://` (in-memory PGlite), `pglite:<dir>`, an existing pg.Pool, postgres.js or PGlite instance, or,
 * when nothing is given, embedded PGlite in PGLITE_DATA_DIR (default ./.data/pglite). A data
 * directory has one owner process; other processes reach it through the owner (docs/embedded.md).
 */
export async function openDatabase(
  target?: string | pg.Pool | PGliteInstance | Sql,
  options: OpenOptions = {},
): Promise<Database> {
  // postgres.js is loaded only when given or asked for (./postgresjs.ts); pg is the default driver.
  if (isPostgresJs(target)) return (await import('./postgresjs.ts')).openPostgresJs(target, options);
  // PGlite is loaded only when asked for (./pglite.ts), so a PGlite instance is recognised by shape.
  if (looksLikePglite(target)) return (await import('./pglite.ts')).wrapPglite(target, 'PGlite (instance)', false);
  if (target instanceof pg.Pool) {
    const { connectionString, port } = target.options;
    return wrapPool(target, 'PostgreSQL (pool)', false, options.preparedStatements ?? !transactionPooler(connectionString, port));
  }
  if (typeof target === 'object') throw openDatabaseTypeError(); // e.g. a PGlite of another copy of the package
  if (target === undefined || target === '') return openPgliteDirectory(pgliteDataDir(), options);
  if (target === 'memory://') return (await import('./pglite.ts')).openMemoryPglite();
  if (target.startsWith('pglite:')) return openPgliteDirectory(target.slice('pglite:'.length) || pgliteDataDir(), options);
  if (/^postgres(ql)?:\/\//.test(target) && options.driver === 'postgres') return (await import('./postgresjs.ts')).openPostgresJs(target, options);
  if (/^postgres(ql)?:\/\//.test(target)) {
    const multi = parseMultiHostUrl(target);
    const newPool = (connectionString: string) => new pg.Pool(poolConfig(connectionString, options));
    if (multi) {
      const pool = new FailoverPool(multi.urls.map(newPool), multi.hosts, multi.targetSessionAttrs);
      const description = `PostgreSQL at ${multi.hosts.join(',')} (${multi.targetSessionAttrs}; ${redactUrl(multi.urls[0]!)})`;
      return wrapPool(pool, description, true, options.preparedStatements ?? !multi.urls.some((url) => transactionPooler(url)));
    }
    return wrapPool(newPool(target), `PostgreSQL at ${redactUrl(target)}`, true, options.preparedStatements ?? !transactionPooler(target));
  }
  throw openDatabaseTypeError();
}

/**
 * The configuration of the pool openDatabase makes for a URL: its size, its application name, and
 * the parsers that make pg return what PGlite and postgres.js return. Internal (not exported from
 * the package root); the tests build their reusable pools from it.
 */
export function poolConfig(connectionString: string, options: Pick<OpenOptions, 'max' | 'applicationName'> = {}): pg.PoolConfig {
  return {
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'figma-plugin-auth-db',
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
        if (oid === DATE_OID) return parseDate;
        if (oid === INT8_OID) return parseInt8;
        return pg.types.getTypeParser(oid, format as 'text');
      }) as typeof pg.types.getTypeParser,
    },
  };
}

const openDatabaseTypeError = () =>
  new TypeError('openDatabase: expected a postgres:// or postgresql:// URL, "memory://", "pglite:<dir>", a pg.Pool or a PGlite instance');

/**
 * A PGlite instance (`new PGlite()` or `PGlite.create()` of @electric-sql/pglite), as openDatabase
 * takes it. Declared by shape so that this package's declarations never load PGlite's own, which
 * need Emscripten's global types: a consumer type-checking with skipLibCheck off has none.
 */
export interface PGliteInstance {
  readonly waitReady: Promise<void>;
  query(...args: never[]): Promise<unknown>;
  exec(...args: never[]): Promise<unknown>;
  close(): Promise<void>;
}

async function openPgliteDirectory(dir: string, options: OpenOptions): Promise<Database> {
  const { openPgliteDirectory: open } = await import('./pglite.ts');
  return open(dir, options, (url, o) => openDatabase(url, o));
}

function looksLikePglite(target: unknown): target is PGlite {
  if (typeof target !== 'object' || target === null || target instanceof pg.Pool) return false;
  const candidate = target as Partial<PGlite>;
  return typeof candidate.execProtocol === 'function' && typeof candidate.transaction === 'function' && typeof candidate.query === 'function';
}

/** A pooler in transaction mode, by its usual port or PgBouncer's flag. */
function transactionPooler(url: string | undefined, port?: number): boolean {
  if (port === 6543) return true;
  if (!url) return false;
  try {
    const parsed = new URL(url);
    return parsed.port === '6543' || parsed.searchParams.get('pgbouncer') === 'true';
  } catch {
    return false;
  }
}

/**
 * Whether a connection must be dropped after this error. An error the server sent in answer to a
 * statement (a constraint, a typed error of our SQL functions, a bad value) leaves the session
 * idle and fit for the next statement; a lost connection, a FATAL one or the server shutting the
 * session down does not.
 */
export function connectionBroken(error: unknown): boolean {
  if (error === undefined) return false;
  if (!(error instanceof pg.DatabaseError)) return true;
  if (error.severity === 'FATAL' || error.severity === 'PANIC') return true;
  return /^(08|57P|53)/.test(error.code ?? '');
}

/** Socket errors of a connection that was open (not a refused or misaddressed one: those persist). */
const NETWORK_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/**
 * Whether this error says the connection itself was lost, in a call or while one was being opened:
 * the server ended the session (57P01 admin shutdown, 57P02 crash shutdown, 57P03 starting up, class
 * 08), the socket failed, or pg refused to use a client whose connection had failed. Such a call
 * may succeed when made again; other errors (a refused password, a missing database, a statement
 * refused) would fail the same way.
 */
export function connectionLost(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) return /^(08|57P0[123])/.test(error.code ?? '');
  const e = error as { code?: unknown; message?: unknown } | null;
  if (typeof e?.code === 'string' && NETWORK_ERRORS.has(e.code)) return true;
  return typeof e?.message === 'string' && /^(Connection terminated|Client has encountered a connection error)/.test(e.message);
}

/** The typed, retryable error of a call whose connection was lost; it keeps the driver's error as cause. */
function lostError(error: unknown): DatabaseError {
  const reason = String((error as { message?: unknown } | null)?.message ?? error);
  return new DatabaseError(
    'connection_lost',
    `connection_lost: the connection to the database was lost during the call (${reason}); it was discarded. Retry the call (a consume with the same idempotency key is counted once).`,
    { cause: error },
  );
}

/** What wrapPool needs of a pool: a pg.Pool, or a FailoverPool over one pg.Pool per host. */
interface PoolLike {
  connect(): Promise<pg.PoolClient>;
  on(event: 'connect', listener: (client: pg.PoolClient) => void): unknown;
  on(event: 'error', listener: (error: Error, client: pg.PoolClient) => void): unknown;
  end(): Promise<void>;
}

/** Which server a multi-host URL asks for (libpq's `target_session_attrs`, the values we support). */
export type TargetSessionAttrs = 'any' | 'read-write' | 'primary';

export interface MultiHostUrl {
  /** `host:port` of each host, in the URL's order. */
  hosts: string[];
  /** One single-host URL per host (the same user, database and parameters, without target_session_attrs). */
  urls: string[];
  targetSessionAttrs: TargetSessionAttrs;
}

/**
 * A libpq-style multi-host URL, `postgres://user@h1:5432,h2:5433/db?target_session_attrs=read-write`
 * (node-postgres reads only one host): its hosts and one URL per host. Undefined for a URL with one
 * host. A bracketed IPv6 host is allowed (`[::1]:5432`); a host without a port gets 5432.
 * target_session_attrs other than any, read-write and primary is a TypeError.
 */
export function parseMultiHostUrl(url: string): MultiHostUrl | undefined {
  const match = /^(postgres(?:ql)?:\/\/)([^@/?#]*@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(url);
  if (!match || !match[3]!.includes(',')) return undefined;
  const [, scheme, userinfo = '', hostList, path = '/', query = ''] = match;
  const hosts = hostList!.split(',').map((host) => {
    if (!/^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(:\d{1,5})?$/.test(host)) {
      throw new TypeError(`openDatabase: a multi-host URL needs host:port entries separated by commas (got an empty or malformed host)`);
    }
    return /:\d{1,5}$/.test(host) && !/^\[[^\]]*\]$/.test(host) ? host : `${host}:5432`;
  });
  const params = new URLSearchParams(query.slice(1));
  const attrs = params.get('target_session_attrs') ?? 'any';
  if (attrs !== 'any' && attrs !== 'read-write' && attrs !== 'primary') {
    throw new TypeError(`openDatabase: target_session_attrs must be any, read-write or primary (got ${JSON.stringify(attrs.slice(0, 20))})`);
  }
  params.delete('target_session_attrs');
  const rest = params.toString();
  return {
    hosts,
    urls: hosts.map((host) => `${scheme}${userinfo}${host}${path}${rest ? `?${rest}` : ''}`),
    targetSessionAttrs: attrs,
  };
}

/**
 * One pg.Pool per host of a multi-host URL, used one host at a time, as libpq does with
 * target_session_attrs: a new connection is opened on the host that served last, else on the
 * next ones in turn; with `read-write` it is kept only if `transaction_read_only` is off (libpq's
 * test), with `primary` only if the server is not in recovery. After a failover the old primary's
 * connections break (connection_lost for the calls on them) and the next call finds the new primary.
 * When no host qualifies the error is the retryable connection_lost (a failover is under way: the
 * old primary down or demoted, the standby not yet promoted), unless every host failed in a way
 * that does not pass (a refused password or role, a missing database, an unknown host name): then
 * the last host's error is thrown as it is.
 */
function persistentConnectError(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) return /^(28|3D)/.test(error.code ?? '');
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOTFOUND';
}

class FailoverPool extends EventEmitter implements PoolLike {
  private current = 0;
  private readonly checked = new WeakSet<pg.PoolClient>();

  constructor(
    private readonly pools: pg.Pool[],
    private readonly hosts: string[],
    private readonly attrs: TargetSessionAttrs,
  ) {
    super();
    for (const pool of pools) {
      pool.on('connect', (client) => this.emit('connect', client));
      pool.on('error', (error, client) => this.emit('error', error, client));
    }
  }

  async connect(): Promise<pg.PoolClient> {
    const failures: string[] = [];
    let retryable = false;
    let last: unknown;
    for (let k = 0; k < this.pools.length; k++) {
      const i = (this.current + k) % this.pools.length;
      let client: pg.PoolClient;
      try {
        client = await this.pools[i]!.connect();
      } catch (error) {
        last = error;
        retryable ||= !persistentConnectError(error);
        failures.push(`${this.hosts[i]}: ${String((error as { message?: unknown } | null)?.message ?? error)}`);
        continue;
      }
      if (this.attrs !== 'any' && !this.checked.has(client)) {
        let fit: boolean;
        try {
          const sql = this.attrs === 'primary'
            ? 'SELECT NOT pg_is_in_recovery() AS fit'
            : "SELECT current_setting('transaction_read_only') = 'off' AS fit";
          fit = (await client.query<{ fit: boolean }>(sql)).rows[0]?.fit === true;
        } catch (error) {
          client.release(error instanceof Error ? error : true);
          last = error;
          retryable = true;
          failures.push(`${this.hosts[i]}: ${String((error as { message?: unknown } | null)?.message ?? error)}`);
          continue;
        }
        if (!fit) {
          client.release(true);
          retryable = true;
          failures.push(`${this.hosts[i]}: ${this.attrs === 'primary' ? 'in recovery' : 'read-only'}`);
          continue;
        }
        this.checked.add(client);
      }
      this.current = i;
      return client;
    }
    if (!retryable) throw last;
    throw new DatabaseError(
      'connection_lost',
      `connection_lost: no host of the URL accepts a ${this.attrs} session now (${failures.join('; ')}); a failover may be under way. Retry the call.`,
      { cause: last },
    );
  }

  async end(): Promise<void> {
    await Promise.all(this.pools.map((pool) => pool.end()));
  }
}

function wrapPool(pool: PoolLike, description: string, owned: boolean, prepare: boolean): Database {
  // Every connection the pool holds has an error listener for its whole life, attached once, when
  // the pool makes it (before it is handed to anyone) or, for a caller's pool, when we first take
  // it. pg emits 'error' on a client whose socket fails or whose session the server ends while no
  // statement of it is running (idle in the pool, checked out between two statements, or in the
  // same network read as its startup); with no listener that event would end the process. pg then
  // marks the client unusable, and the pool discards it when it is released.
  const broken = new WeakSet<pg.ClientBase>();
  const watched = new WeakSet<pg.ClientBase>();
  const watch = (client: pg.ClientBase) => {
    if (watched.has(client)) return;
    watched.add(client);
    client.on('error', () => broken.add(client));
  };
  pool.on('connect', (client) => watch(client));
  // pg-pool re-emits an idle client's error on the pool after it has discarded the client.
  pool.on('error', () => {});

  /**
   * A call's error: connection_lost when its connection was lost, else the driver's error as it is
   * (an answer the server gave before it ended the session stays that answer).
   */
  const asLost = (error: unknown, client?: pg.ClientBase): unknown =>
    connectionLost(error) || (client && broken.has(client) && !(error instanceof pg.DatabaseError)) ? lostError(error) : error;
  const acquire = async (): Promise<pg.PoolClient> => {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw asLost(error);
    }
    watch(client);
    return client;
  };
  const isLost = (error: unknown) => (error instanceof DatabaseError && error.code === 'connection_lost') || connectionLost(error);
  /** Whether to discard the client after one statement: its connection broke, or the error says so. */
  const discard = (client: pg.PoolClient, failure: unknown): Error | undefined => {
    if (broken.has(client)) return failure instanceof Error ? failure : new Error('connection lost');
    if (isLost(failure)) return failure as Error;
    return connectionBroken(failure) ? (failure as Error) : undefined;
  };

  const asQueryable = (q: pg.PoolClient): Queryable => ({
    async query<R>(text: string, params: readonly unknown[] = [], options: QueryOptions = {}) {
      try {
        // Named: pg parses it once per connection, and the server keeps its plan (measured: BENCHMARKS.md).
        if (prepare && options.prepare) return (await q.query({ name: options.prepare, text, values: params as unknown[] })).rows as R[];
        return (await q.query(text, params as unknown[])).rows as R[];
      } catch (error) {
        throw asLost(error, q);
      }
    },
    async exec(script: string) {
      try {
        // No parameters: pg sends it with the simple protocol, which allows several statements.
        await q.query(script);
      } catch (error) {
        throw asLost(error, q);
      }
    },
  });
  // One statement on a pooled connection. pg.Pool#query drops the connection on any error, so
  // every refused call (a typed error raised by our SQL, a constraint) would cost a new server
  // session and the statements prepared on it; here the connection goes back to the pool unless
  // the error broke it (connectionBroken) or its connection was lost.
  const onPooled = async <T>(fn: (q: Queryable) => Promise<T>): Promise<T> => {
    const client = await acquire();
    let failure: unknown;
    try {
      return await fn(asQueryable(client));
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      client.release(discard(client, failure));
    }
  };
  return {
    kind: 'postgres',
    description,
    prepares: prepare,
    query: (text, params, options) => onPooled((q) => q.query(text, params, options)),
    exec: (script) => onPooled((q) => q.exec(script)),
    async transaction(fn) {
      const client = await acquire();
      const tx = asQueryable(client);
      let drop: Error | undefined;
      try {
        await tx.exec('BEGIN');
        const result = await fn(tx);
        await tx.exec('COMMIT');
        return result;
      } catch (error) {
        if (broken.has(client) || isLost(error)) {
          // The server ended the session and the transaction with it: nothing to roll back.
          drop = error instanceof Error ? error : new Error('connection lost');
          // What the caller's own code threw stays as it was; a driver's error is typed here.
          throw error instanceof PluginAuthError || !connectionLost(error) ? error : lostError(error);
        }
        await tx.exec('ROLLBACK').catch((rollbackError: unknown) => {
          // A client whose ROLLBACK failed is not returned to the pool: it is destroyed.
          drop = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        });
        throw error;
      } finally {
        client.release(drop);
      }
    },
    async close() {
      if (owned) await pool.end();
    },
  };
}
