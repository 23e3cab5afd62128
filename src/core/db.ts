import pg from 'pg';
import type { PGlite } from '@electric-sql/pglite';
import { redactUrl } from './redact.ts';
import { fromDatabaseError } from './errors.ts';
import { pgliteDataDir } from './env.ts';
import type { Database, OpenOptions, Queryable, QueryOptions } from './database.ts';

export type { Database, OpenOptions, Queryable, QueryOptions } from './database.ts';

export { DEFAULT_PGLITE_DIR } from './env.ts';

// Both drivers return the same JavaScript values: DATE as 'YYYY-MM-DD' (a Date would shift by the
// process time zone) and BIGINT as number (ours are identities and counts, far below 2^53).
const DATE_OID = 1082;
const INT8_OID = 20;
const parseDate = (value: string): string => value;
const parseInt8 = (value: string | number | bigint): number => Number(value);

/**
 * Opens the database: a postgres:// URL (any PostgreSQL, Supabase direct or session pooler),
 * `memory://` (in-memory PGlite), `pglite:<dir>`, an existing pg.Pool or PGlite instance, or,
 * when nothing is given, embedded PGlite in PGLITE_DATA_DIR (default ./.data/pglite). A data
 * directory has one owner process; other processes reach it through the owner (docs/embedded.md).
 */
export async function openDatabase(
  target?: string | pg.Pool | PGlite,
  options: OpenOptions = {},
): Promise<Database> {
  // PGlite is loaded only when asked for (./pglite.ts), so a PGlite instance is recognised by shape.
  if (looksLikePglite(target)) return (await import('./pglite.ts')).wrapPglite(target, 'PGlite (instance)', false);
  if (target instanceof pg.Pool) {
    const { connectionString, port } = target.options;
    return wrapPool(target, 'PostgreSQL (pool)', false, options.preparedStatements ?? !transactionPooler(connectionString, port));
  }
  if (target === undefined || target === '') return openPgliteDirectory(pgliteDataDir(), options);
  if (target === 'memory://') return (await import('./pglite.ts')).openMemoryPglite();
  if (target.startsWith('pglite:')) return openPgliteDirectory(target.slice('pglite:'.length) || pgliteDataDir(), options);
  if (/^postgres(ql)?:\/\//.test(target)) {
    const pool = new pg.Pool({
      connectionString: target,
      max: options.max ?? 10,
      application_name: options.applicationName ?? 'figma-plugin-auth-db',
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
          if (oid === DATE_OID) return parseDate;
          if (oid === INT8_OID) return parseInt8;
          return pg.types.getTypeParser(oid, format as 'text');
        }) as typeof pg.types.getTypeParser,
      },
    });
    // An idle client that errors (server restart) must not crash the process; the next query reports it.
    pool.on('error', () => {});
    return wrapPool(pool, `PostgreSQL at ${redactUrl(target)}`, true, options.preparedStatements ?? !transactionPooler(target));
  }
  throw new TypeError(
    'openDatabase: expected a postgres:// or postgresql:// URL, "memory://", "pglite:<dir>", a pg.Pool or a PGlite instance',
  );
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

function wrapPool(pool: pg.Pool, description: string, owned: boolean, prepare: boolean): Database {
  const asQueryable = (q: pg.PoolClient): Queryable => ({
    async query<R>(text: string, params: readonly unknown[] = [], options: QueryOptions = {}) {
      // Named: pg parses it once per connection, and the server keeps its plan (measured: BENCHMARKS.md).
      if (prepare && options.prepare) return (await q.query({ name: options.prepare, text, values: params as unknown[] })).rows as R[];
      return (await q.query(text, params as unknown[])).rows as R[];
    },
    async exec(script: string) {
      // No parameters: pg sends it with the simple protocol, which allows several statements.
      await q.query(script);
    },
  });
  // One statement on a pooled connection. pg.Pool#query drops the connection on any error, so
  // every refused call (a typed error raised by our SQL, a constraint) would cost a new server
  // session and the statements prepared on it; here the connection goes back to the pool unless
  // the error broke it (connectionBroken).
  const onPooled = async <T>(fn: (q: Queryable) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    // A connection lost mid-statement rejects the statement; without a listener the client's
    // 'error' event would also crash the process.
    const onError = () => {};
    client.on('error', onError);
    let failure: unknown;
    try {
      return await fn(asQueryable(client));
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      client.off('error', onError);
      client.release(connectionBroken(failure) ? (failure as Error) : undefined);
    }
  };
  return {
    kind: 'postgres',
    description,
    query: (text, params, options) => onPooled((q) => q.query(text, params, options)),
    exec: (script) => onPooled((q) => q.exec(script)),
    async transaction(fn) {
      const client = await pool.connect();
      // A connection lost mid-transaction surfaces as the failed query's rejection; without a
      // listener the client's 'error' event would also crash the process.
      const onError = () => {};
      client.on('error', onError);
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await fn(asQueryable(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        throw error;
      } finally {
        client.off('error', onError);
        // A client whose ROLLBACK failed is not returned to the pool: it is destroyed.
        client.release(broken);
      }
    },
    async close() {
      if (owned) await pool.end();
    },
  };
}

const TYPED = Symbol('figma-plugin-auth-db: typed errors');
const typedError = (error: unknown): never => {
  throw fromDatabaseError(error);
};

/**
 * The library's query path: the same database, with every driver error turned into the typed
 * error of its SQLSTATE (fromDatabaseError: our SQL functions' codes, then the SQLSTATE classes).
 * Every module of the library reads and writes through it, so translation happens here and only
 * here; wrapping twice is wrapping once. Errors the caller's own function throws inside
 * `transaction` pass through as they are.
 */
export function withTypedErrors<Q extends Pick<Queryable, 'query'>>(db: Q): Q {
  if ((db as { [TYPED]?: true })[TYPED]) return db;
  const typed = Object.create(db) as Q & { [TYPED]: true } & Partial<Database>;
  typed[TYPED] = true;
  typed.query = ((text: string, params?: readonly unknown[], options?: QueryOptions) =>
    (db as unknown as Queryable).query(text, params, options).catch(typedError)) as Q['query'];
  const full = db as unknown as Partial<Database>;
  if (typeof full.exec === 'function') typed.exec = (script: string) => full.exec!(script).catch(typedError);
  if (typeof full.transaction === 'function') {
    typed.transaction = async <T>(fn: (tx: Queryable) => Promise<T>) => {
      // What fn throws is the caller's (its queries are already typed); what BEGIN, COMMIT or the
      // pool throws is the driver's.
      let thrown: { error: unknown } | undefined;
      try {
        return await full.transaction!(async (tx) => {
          try {
            return await fn(withTypedErrors(tx));
          } catch (error) {
            thrown = { error };
            throw error;
          }
        });
      } catch (error) {
        if (thrown && thrown.error === error) throw error;
        return typedError(error);
      }
    };
  }
  return typed;
}
