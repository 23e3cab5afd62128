// Cloudflare Workers (workerd, nodejs_compat): a database per request, opened when the request
// comes and closed in waitUntil once it is answered. A pool kept at module level hangs from the
// second request on Workers; with Hyperdrive the URL is env.HYPERDRIVE.connectionString instead.
import { openPostgresJs, withRequestDatabase } from '../../src/edge/index.ts';
import { makeHandler } from './backend.ts';

interface Env {
  DATABASE_URL: string;
  PLUGIN_TOKEN_SECRET: string;
}

export default {
  fetch: withRequestDatabase<Env>(
    (env) => openPostgresJs(env.DATABASE_URL, { max: 1 }),
    (request, db, env) => makeHandler(db, env.PLUGIN_TOKEN_SECRET)(request),
  ),
};
