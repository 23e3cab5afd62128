// core/: what every other folder stands on. db (openDatabase: PostgreSQL, Supabase or embedded
// PGlite behind one Queryable; pglite, pglite-lock and pglite-server hold the embedded engine,
// loaded only when asked for), postgresjs (the second PostgreSQL driver), database and queryable
// (the query interface they all implement, the typed-error wrapper), errors (the one table of error
// codes), validation (the one module of input checks), locks (the one advisory-lock scheme), env
// (.env loading, where the embedded database lives), bytes (Web Crypto digests and encodings),
// redact (secrets out of anything printed), users (finding a user by id or email). Imports nothing
// outside core/.
export { openDatabase, DEFAULT_PGLITE_DIR, type Database, type Queryable, type OpenOptions } from './db.ts';
export { openPostgresJs, POSTGRESJS_TYPES, type PostgresJsOptions } from './postgresjs.ts';
export {
  PluginAuthError,
  ValidationError,
  NotFoundError,
  AuthError,
  SetupError,
  DatabaseError,
  ServiceError,
  ERRORS,
  type ErrorCode,
  type ErrorInfo,
  type ErrorClassName,
} from './errors.ts';
export { loadDevelopmentEnv, pgliteDataDir } from './env.ts';
export { findUser, type UserRef } from './users.ts';
export { type LicenseProvider } from './validation.ts';
