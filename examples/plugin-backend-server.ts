// `npm run example:backend`: examples/plugin-backend.ts on http://localhost:8787 through Node's
// http server, on the embedded database (PGLITE_DATA_DIR or ./.data/pglite; DATABASE_URL to use another), so the
// example plugin (examples/figma-plugin/) can be loaded in Figma desktop and used.
// Development only: there is no website here, so the login page at /plugin-login (the library's
// loginPageHtml) signs every login in as dev@example.com. PORT, HOST, PLUGIN_TOKEN_SECRET and
// ENTITLEMENT_SIGNING_KEY are read from the environment; missing secrets are generated for this
// run (tokens then end with it). In production, `figma-plugin-auth-db serve` (docs/deploy.md).
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPluginAuth, openDatabase } from '../src/index.ts';
// Repository internals the installed package does not export from its root: a real deployment
// runs `npx figma-plugin-auth-db serve` and makes its key with `npx figma-plugin-auth-db keygen`.
import { loadDevelopmentEnv, pgliteDataDir } from '../src/core/env.ts';
import { generateEntitlementKey } from '../src/entitlements/keys.ts';
import { toNodeListener } from '../src/http/node.ts';
import { loginPageHtml } from '../src/server/index.ts';
import { applySchema } from '../src/schema/index.ts';
import { createPluginBackend } from './plugin-backend.ts';

const env = loadDevelopmentEnv();
const port = Number(env.PORT ?? 8787);
const host = env.HOST ?? '127.0.0.1';
// The same directory as `npm run setup` and the CLI, .env files included; while this runs it owns
// it, and they reach it through this process (docs/embedded.md).
const db = await openDatabase(env.DATABASE_URL || `pglite:${pgliteDataDir(env)}`);
await applySchema(db);
const [dev] = await db.query<{ id: string }>(
  `INSERT INTO public.users (email) VALUES ($1::varchar)
   ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id`,
  ['dev@example.com'],
);
const auth = createPluginAuth(db, {
  tokenSecret: env.PLUGIN_TOKEN_SECRET || randomBytes(48).toString('base64'),
  entitlementSigningKey: env.ENTITLEMENT_SIGNING_KEY || (await generateEntitlementKey()),
});

// The website and the API share this origin, as they do behind one domain in production.
const server = createServer();
await new Promise<void>((resolve) => server.listen(port, host, resolve));
const { port: bound } = server.address() as AddressInfo;
const origin = `http://localhost:${bound}`; // the manifest's devAllowedDomains say localhost
const backend = createPluginBackend(auth, {
  webUserId: async () => dev!.id, // a real backend reads its website's session here
  websiteOrigin: origin,
});
const page = loginPageHtml({ completeUrl: '/plugin/login/complete', account: 'dev@example.com' });
server.on('request', toNodeListener(async (request) => {
  if (request.method === 'GET' && new URL(request.url).pathname === '/plugin-login') {
    return new Response(page, { headers: { 'content-type': 'text/html; charset=utf-8' } });
  }
  return backend(request);
}));
console.log(`example backend: ${origin}  (database: ${db.description})`);

const stop = async () => {
  server.close();
  server.closeAllConnections();
  await db.close();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
