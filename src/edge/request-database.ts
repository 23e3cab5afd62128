// A database per request, for runtimes that do not let a connection outlive the request that
// opened it. On Cloudflare Workers a pool kept at module level hangs from the second request (a
// socket belongs to the request that created it); opening the database in the request and closing
// it in waitUntil, after the response is sent, works. With Hyperdrive the connection is pooled by
// Cloudflare, so opening one per request costs little.
import type { Database } from '../core/queryable.ts';

/** The part of a Worker's ExecutionContext (or Vercel's / Next.js's `after`) this needs. */
export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

/**
 * Wraps a handler so that each request gets its own database: `open(env)` before it runs,
 * `db.close()` handed to `ctx.waitUntil` once it answered (or failed). The handler must not keep
 * `db` past its response.
 */
export function withRequestDatabase<Env = unknown>(
  open: (env: Env) => Promise<Database>,
  handler: (request: Request, db: Database, env: Env) => Response | Promise<Response>,
): (request: Request, env: Env, ctx: WaitUntil) => Promise<Response> {
  return async (request, env, ctx) => {
    const db = await open(env);
    try {
      return await handler(request, db, env);
    } finally {
      ctx.waitUntil(db.close().catch(() => {}));
    }
  };
}
