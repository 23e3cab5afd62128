// A postgres.js instance recognised by its shape, without importing postgres.js: core/db.ts loads
// the driver (core/postgresjs.ts) only when it is given one or asked for it.
import type { Sql } from 'postgres';

/** Is this a postgres.js instance (the function `postgres(url)` returns)? */
export function isPostgresJs(value: unknown): value is Sql {
  const candidate = value as Partial<Sql> | null;
  return (
    typeof value === 'function' &&
    typeof candidate?.unsafe === 'function' &&
    typeof candidate.begin === 'function' &&
    typeof candidate.end === 'function' &&
    typeof candidate.options === 'object'
  );
}
