// The wrapper that turns driver errors into typed ones, on the query interface of database.ts that
// every module reads and writes through. No driver is imported here: pg and PGlite (db.ts,
// pglite.ts) and postgres.js (postgresjs.ts) each implement Database, and the edge entry imports
// only this.
import { fromDatabaseError } from './errors.ts';

import type { Database, Queryable, QueryOptions } from './database.ts';

export type { Database, Queryable, QueryOptions } from './database.ts';

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
