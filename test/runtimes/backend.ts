// The plugin backend every runtime test serves: built from the edge entry only (no node:*), so the
// same file runs on Deno, Bun, Workers and Node. Routes under /api: the login hand-over (begin and
// poll from the plugin, complete from the website), and one metered route, POST /api/plugin/resize,
// answering 402 when the plan says no. When createPluginServer is on main, makeHandler's body
// becomes one line: `return createPluginServer(auth, { basePath: '/api', meter: METER })`.
import { AuthError, NotFoundError, PluginAuthError, createPluginAuth, withPluginCors, type Database } from '../../src/edge/index.ts';

export const METER = { '/plugin/resize': { action: 'resize', items: (body: { layers?: number }) => body.layers ?? 1 } };

const json = (status: number, body: unknown) => Response.json(body, { status });

/** The HTTP status of a typed error, as the plugin client reads it. */
function failure(error: unknown): Response {
  if (error instanceof AuthError) return json(401, { error: error.code });
  if (error instanceof PluginAuthError) return json(error instanceof NotFoundError ? 404 : 400, { error: error.code });
  throw error;
}

export function makeHandler(db: Database, tokenSecret: string): (request: Request) => Promise<Response> {
  const auth = createPluginAuth(db, { tokenSecret });
  const routes: Record<string, (request: Request) => Promise<Response>> = {
    async '/api/plugin/login/begin'() {
      return json(200, await auth.tokens.beginLogin());
    },
    // The website's confirmation: in a real backend the user id comes from the website's session.
    async '/api/login/complete'(request) {
      const { writeKey, userId } = (await request.json()) as { writeKey: string; userId: string };
      await auth.tokens.completeLogin(writeKey, userId);
      return json(200, { ok: true });
    },
    async '/api/plugin/login/poll'(request) {
      const { readKey } = (await request.json()) as { readKey: string };
      const issued = await auth.tokens.pollLogin(readKey);
      return issued ? json(200, issued) : json(202, { pending: true });
    },
    async '/api/plugin/resize'(request) {
      const bearer = /^Bearer (.+)$/.exec(request.headers.get('authorization') ?? '')?.[1];
      const { userId } = await auth.tokens.verify(bearer ?? '');
      const body = (await request.json()) as { layers?: number };
      const { action, items } = METER['/plugin/resize'];
      const answer = await auth.usage.consume(userId, action, {
        items: items(body),
        idempotencyKey: request.headers.get('idempotency-key') ?? undefined,
      });
      return json(answer.allowed ? 200 : 402, answer);
    },
  };
  const handle = async (request: Request) => {
    const route = routes[new URL(request.url).pathname];
    if (!route || request.method !== 'POST') return json(404, { error: 'not_found' });
    return route(request).catch(failure);
  };
  return withPluginCors(handle, { routes: (pathname) => pathname.startsWith('/api/plugin/') });
}
