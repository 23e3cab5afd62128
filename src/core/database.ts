// The one interface every module reads and writes through, whatever the engine behind it
// (src/core/db.ts opens PostgreSQL pools, src/core/pglite.ts embedded PGlite).

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
  /** Whether a statement sent with `prepare` is prepared once and kept (false behind a transaction-mode pooler). */
  readonly prepares?: boolean;
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
  /**
   * Embedded PGlite in a directory: serve it to other processes on a unix socket in that
   * directory while this process owns it (default true). Without it, another process opening the
   * same directory gets `database_locked` (docs/embedded.md).
   */
  share?: boolean;
  /**
   * The driver for a postgres:// URL: 'pg' (default) or 'postgres' (postgres.js, which also runs
   * on Deno, Bun and Cloudflare Workers; see docs/deploy.md). A postgres.js instance passed as
   * the target always uses postgres.js.
   */
  driver?: 'pg' | 'postgres';
}
