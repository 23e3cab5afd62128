import pg from 'pg';
import { PGlite, parse as parsePglite, protocol as pgliteProtocol } from '@electric-sql/pglite';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { redactUrl } from './redact.ts';
import { fromDatabaseError } from './errors.ts';

/** Something that runs one parameterized statement and returns its rows. */
export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<R[]>;
  /** Runs a script of several statements, without parameters (DDL). */
  exec(script: string): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Where it points, safe to print: passwords are redacted. */
  readonly description: string;
  /** Runs fn in one transaction on one connection: COMMIT when it resolves, ROLLBACK when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** How one statement is sent. */
export interface QueryOptions {
  /**
   * Prepare it once per connection under this name (always the same text), so that the server
   * parses and plans it once instead of on every call: on PostgreSQL a named statement per pooled
   * connection (not when the database was opened with `preparedStatements: false`), on PGlite one
   * per instance (outside a transaction; inside one the statement goes unnamed).
   */
  prepare?: string;
}

export interface OpenOptions {
  /** pg pool size (default 10). */
  max?: number;
  /**
   * Prepare the hot statements (consume, check, verify) once per connection. Default: true, except
   * for a URL on port 6543 or with `pgbouncer=true` (a pooler in transaction mode, such as
   * Supabase's, keeps no named prepared statement between transactions).
   */
  preparedStatements?: boolean;
  /** Sent to the server as application_name. */
  applicationName?: string;
}

/** Where embedded PGlite keeps its files when no URL is given. */
export const DEFAULT_PGLITE_DIR = './.data/pglite';

// Both drivers return the same JavaScript values: DATE as 'YYYY-MM-DD' (a Date would shift by the
// process time zone) and BIGINT as number (ours are identities and counts, far below 2^53).
const DATE_OID = 1082;
const INT8_OID = 20;
const parseDate = (value: string): string => value;
const parseInt8 = (value: string | number | bigint): number => Number(value);

/**
 * Opens the database: a postgres:// URL (any PostgreSQL, Supabase direct or session pooler),
 * `memory://` (in-memory PGlite), `pglite:<dir>`, an existing pg.Pool or PGlite instance, or,
 * when nothing is given, embedded PGlite in ./.data/pglite.
 */
export async function openDatabase(
  target?: string | pg.Pool | PGliteInstance,
  options: OpenOptions = {},
): Promise<Database> {
  if (target instanceof PGlite) return wrapPglite(target, 'PGlite (instance)', false);
  if (target instanceof pg.Pool) {
    const { connectionString, port } = target.options;
    return wrapPool(target, 'PostgreSQL (pool)', false, options.preparedStatements ?? !transactionPooler(connectionString, port));
  }
  if (typeof target === 'object') throw openDatabaseTypeError(); // e.g. a PGlite of another copy of the package
  if (target === undefined || target === '') return openPglite(DEFAULT_PGLITE_DIR);
  if (target === 'memory://') return openPglite(undefined);
  if (target.startsWith('pglite:')) return openPglite(target.slice('pglite:'.length) || DEFAULT_PGLITE_DIR);
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
  throw openDatabaseTypeError();
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

/** Type parsers for PGlite instances created outside openDatabase (e.g. from a data-dir dump). */
export const PGLITE_PARSERS = { [DATE_OID]: parseDate, [INT8_OID]: parseInt8 };

async function openPglite(dataDir: string | undefined): Promise<Database> {
  if (dataDir) mkdirSync(resolve(dataDir), { recursive: true });
  const parsers = PGLITE_PARSERS;
  const db = dataDir
    ? await PGlite.create(resolve(dataDir), { parsers })
    : await PGlite.create({ parsers });
  return wrapPglite(db, dataDir ? `embedded PGlite in ${dataDir}` : 'in-memory PGlite', true);
}

function wrapPglite(db: PGlite, description: string, owned: boolean): Database {
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
