// The plugin backend every runtime test serves: createPluginServer (figma-plugin-auth-db/server)
// over createPluginAuth and the postgres.js database, from the edge entry only (no node:*), so the
// same file runs on Deno, Bun, Node (Hono), Workers and Next.js. Routes under /api: the login
// hand-over (the plugin begins and polls, the website's page completes) and one metered route,
// POST /api/plugin/resize, answering 402 when the plan says no.
import { createPluginAuth, createPluginServer, type Database } from '../../src/edge/index.ts';

export const METER = { '/plugin/resize': { action: 'resize', items: (body: Record<string, unknown>) => body.layers ?? 1 } };
/** The website of the test: its pages complete the login; its session is a header standing for its cookie. */
export const WEBSITE_ORIGIN = 'https://app.example.test';
export const SESSION_HEADER = 'x-test-session-user';

export function makeHandler(db: Database, tokenSecret: string): (request: Request) => Promise<Response> {
  const auth = createPluginAuth(db, { tokenSecret });
  return createPluginServer(auth, {
    basePath: '/api',
    meter: METER,
    website: { origin: WEBSITE_ORIGIN, userId: (request) => request.headers.get(SESSION_HEADER) },
  });
}
