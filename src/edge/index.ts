// edge/: the library for a plugin backend on any runtime: Deno and Supabase Edge Functions, Bun,
// Cloudflare Workers, Next.js, Node. createPluginAuth, the postgres.js database, the plugin server
// (the server entry's exports), CORS, the typed errors. Everything here and everything it imports uses
// the Web platform only (Web Crypto, Uint8Array, TextEncoder, fetch): no node:* module, no Buffer,
// no PGlite, no pg (test/edge.test.ts walks the import graph). The database is PostgreSQL through
// postgres.js; the embedded PGlite default stays with the root entry, the CLI and `npm run setup`.
export { createPluginAuth, type PluginAuth, type PluginAuthOptions } from '../auth.ts';
export { openPostgresJs, POSTGRESJS_TYPES, isPostgresJs, type PostgresJsOptions } from '../core/postgresjs.ts';
export { withTypedErrors, type Database, type Queryable, type QueryOptions } from '../core/queryable.ts';
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
} from '../core/errors.ts';
export { withPluginCors, defaultPluginRoute, PLUGIN_ALLOW_HEADERS, WEBSITE_ONLY_ROUTES, type Handler, type PluginCorsOptions } from '../http/cors.ts';
export { withRequestDatabase, type WaitUntil } from './request-database.ts';
// The plugin server too, so that a backend imports one entry.
export * from '../server/index.ts';
export { toNextRoute, type NextRouteHandlers } from './next.ts';
