// The serve side of the Deno cold-start line of `npm run bench`: the Deno recipe of docs/deploy.md
// (a Supabase Edge Function: Deno.serve, createPluginServer over createPluginAuth, postgres.js from
// the edge entry) with the route a health check asks: GET /health answers {"status":"ok"} after one
// query on the recipe's database, as `serve`'s /health does on Node; every other path goes to the
// plugin server. Listens on 127.0.0.1:PORT; the database is DATABASE_URL.
import { createPluginAuth, createPluginServer, openPostgresJs } from '../src/edge/index.ts';

declare const Deno: {
  env: { get(name: string): string | undefined };
  serve(options: { port: number; hostname: string; onListen(addr: { port: number }): void }, handler: (request: Request) => Promise<Response>): unknown;
  addSignalListener(signal: 'SIGTERM', handler: () => void): void;
  exit(code: number): never;
};

const db = await openPostgresJs(Deno.env.get('DATABASE_URL'), { max: 4 });
const auth = createPluginAuth(db, { tokenSecret: Deno.env.get('PLUGIN_TOKEN_SECRET')! });
const handler = createPluginServer(auth, { basePath: '/api', meter: { '/plugin/resize': { action: 'resize' } } });
Deno.serve({ port: Number(Deno.env.get('PORT')), hostname: '127.0.0.1', onListen: () => {} }, async (request) => {
  if (request.method === 'GET' && new URL(request.url).pathname === '/health') {
    await db.query('SELECT 1');
    return Response.json({ status: 'ok' });
  }
  return handler(request);
});
Deno.addSignalListener('SIGTERM', () => Deno.exit(0));
