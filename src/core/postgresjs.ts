// postgres.js (the `postgres` package) behind the library's Database interface: the driver for
// runtimes where pg does not load or does not fit (Deno and Supabase Edge Functions, Bun,
// Cloudflare Workers, Next.js), and a choice on Node. Returns the same values as the pg path
// (DATE as 'YYYY-MM-DD', BIGINT as number) and errors with the same SQLSTATE `code`, so
// withTypedErrors turns them into the same typed errors. Imports nothing from Node.
import postgres, { type Sql } from 'postgres';
import type { Database, Queryable, QueryOptions } from './queryable.ts';
import { redactUrl } from './redact.ts';
import { SetupError } from './errors.ts';
import { isPostgresJs } from './postgresjs-shape.ts';

export interface PostgresJsOptions {
  /** Pool size (default 10; on a per-request database in a Worker, 1 is enough). */
  max?: number;
  /**
   * Prepare the hot statements (consume, check, verify) once per connection. Default: true, except
   * for a URL on port 6543 or with `pgbouncer=true` (a pooler in transaction mode).
   */
  preparedStatements?: boolean;
  /** Sent to the server as application_name (default 'figma-plugin-auth-db'). */
  applicationName?: string;
  /** Seconds before an idle connection closes (default: kept open). */
  idleTimeout?: number;
  /** Seconds to connect before failing (default 30). */
  connectTimeout?: number;
}

const DATE_OID = 1082;
const INT8_OID = 20;

// As on the pg path: DATE stays the server's 'YYYY-MM-DD' text (a Date would shift by the time
// zone), BIGINT becomes a number (ours are identities and counts, far below 2^53). Only parsers:
// parameters are sent as the type the server asks for (postgres.js v4 does not infer), and every
// statement of ours casts each parameter to its exact type.
// JSON parameters as pg sends them: a string is already JSON text (the library passes
// JSON.stringify'd objects to `$n::jsonb`) and goes as it is; anything else is stringified.
const JSON_OID = 114;
const JSONB_OID = 3802;
const TYPES = {
  dateText: { from: [DATE_OID], parse: (value: string) => value },
  int8Number: { from: [INT8_OID], parse: (value: string) => Number(value) },
  jsonText: {
    to: JSONB_OID,
    from: [JSON_OID, JSONB_OID],
    serialize: (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value)),
    parse: (text: string) => JSON.parse(text) as unknown,
  },
};

export { isPostgresJs } from './postgresjs-shape.ts';

/**
 * Opens the database through postgres.js: a postgres:// URL (the pool is this Database's and
 * closes with it), or a postgres.js instance of yours (close() leaves it open). An instance you
 * create yourself should use the same parsers for equal values: pass `types: POSTGRESJS_TYPES`.
 */
export async function openPostgresJs(target: string | Sql | undefined, options: PostgresJsOptions = {}): Promise<Database> {
  if (isPostgresJs(target)) {
    const { host, port } = target.options as { host?: string[]; port?: number[] };
    const prepare = options.preparedStatements ?? !(port ?? []).includes(6543);
    return wrapSql(target, `PostgreSQL at ${(host ?? []).join(',') || 'localhost'} (postgres.js instance)`, false, prepare);
  }
  // On an edge runtime a missing URL must say so: there is no embedded default to fall back to.
  if (target === undefined || target === null || target === '') {
    throw new SetupError(
      'no_database_configured',
      'no_database_configured: no database URL: set DATABASE_URL (on Supabase Edge Functions: SUPABASE_DB_URL) to a postgres:// URL',
    );
  }
  if (typeof target !== 'string' || !/^postgres(ql)?:\/\//.test(target)) {
    throw new SetupError('invalid_database_url', 'invalid_database_url: expected a postgres:// or postgresql:// URL or a postgres.js instance');
  }
  const sql = postgres(target, {
    max: options.max ?? 10,
    types: TYPES,
    // Notices (e.g. "relation already exists, skipping") are not the caller's business; pg drops them too.
    onnotice: false,
    idle_timeout: options.idleTimeout ?? null,
    connect_timeout: options.connectTimeout ?? 30,
    connection: { application_name: options.applicationName ?? 'figma-plugin-auth-db' },
  });
  return wrapSql(sql, `PostgreSQL at ${redactUrl(target)} (postgres.js)`, true, options.preparedStatements ?? !transactionPooler(target));
}

/** The parsers openPostgresJs gives its own pools, for a postgres.js instance you create. */
export const POSTGRESJS_TYPES = TYPES;

function transactionPooler(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.port === '6543' || parsed.searchParams.get('pgbouncer') === 'true';
  } catch {
    return false;
  }
}

/**
 * postgres.js keeps the statement's parameters on its errors (not enumerable, but there): they can
 * be a token digest or a license key's, so they are removed before the error goes anywhere.
 */
function scrub(error: unknown): never {
  if (error && typeof error === 'object') {
    for (const key of ['parameters', 'args', 'query', 'types']) {
      if (Object.prototype.hasOwnProperty.call(error, key)) {
        try {
          delete (error as Record<string, unknown>)[key];
        } catch {
          // not configurable: leave it
        }
      }
    }
  }
  throw error;
}

type Runner = Pick<Sql, 'unsafe'>;

function asQueryable(sql: Runner, prepare: boolean): Queryable {
  return {
    async query<R>(text: string, params: readonly unknown[] = [], options: QueryOptions = {}) {
      // postgres.js names a prepared statement after its text; `prepare` asks for that per call, so
      // only the hot statements take a slot in each connection's statement cache. Never the simple
      // protocol here: one statement, parameters bound.
      const rows = await sql
        .unsafe(text, params as never[], { prepare: prepare && options.prepare !== undefined, simple: false })
        .catch(scrub);
      // A plain array of plain rows, as the pg path returns (not postgres.js's Result).
      return Array.from(rows as unknown as R[]);
    },
    async exec(script: string) {
      // No parameters: the simple protocol, which allows several statements (DDL scripts).
      await sql.unsafe(script, [], { simple: true }).catch(scrub);
    },
  };
}

function wrapSql(sql: Sql, description: string, owned: boolean, prepare: boolean): Database {
  const base = asQueryable(sql, prepare);
  return {
    kind: 'postgres',
    description,
    prepares: prepare,
    // A lost or FATAL connection is closed and replaced by postgres.js itself; an error the server
    // sent in answer to a statement leaves the connection in the pool, as on the pg path.
    query: base.query,
    exec: base.exec,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      // BEGIN, then COMMIT when fn resolves or ROLLBACK when it throws, on one connection; a
      // connection whose ROLLBACK fails is closed by postgres.js, never reused.
      return (await sql.begin((tx) => fn(asQueryable(tx, prepare))).catch(scrub)) as T;
    },
    async close() {
      if (owned) await sql.end({ timeout: 5 });
    },
  };
}
