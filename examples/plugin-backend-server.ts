// `npm run example:backend`: examples/plugin-backend.ts on http://localhost:8787 through Node's
// http server, on the embedded database (./.data/pglite; DATABASE_URL to use another), so the
// example plugin (examples/figma-plugin/) can be loaded in Figma desktop and used.
// Development only: there is no website here, so the login page at /plugin-login signs every
// login in as dev@example.com. PORT, HOST, PLUGIN_TOKEN_SECRET and ENTITLEMENT_SIGNING_KEY are
// read from the environment; missing secrets are generated for this run (tokens then end with it).
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { createPluginAuth, generateEntitlementKey, loadDevelopmentEnv, openDatabase, serve } from '../src/index.ts';
import { applySchema } from '../src/schema/index.ts';
import { createPluginBackend } from './plugin-backend.ts';

const env = loadDevelopmentEnv();
const port = Number(env.PORT ?? 8787);
const host = env.HOST ?? '127.0.0.1';
const db = await openDatabase(env.DATABASE_URL);
await applySchema(db);
const [dev] = await db.query<{ id: string }>(
  `INSERT INTO public.users (email) VALUES ($1::varchar)
   ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id`,
  ['dev@example.com'],
);
const auth = createPluginAuth(db, {
  tokenSecret: env.PLUGIN_TOKEN_SECRET || randomBytes(48).toString('base64'),
  entitlementSigningKey: env.ENTITLEMENT_SIGNING_KEY || generateEntitlementKey(),
});

let baseUrl = '';
const backend = createPluginBackend(auth, {
  webUserId: async () => dev!.id, // a real backend reads its website's session here
  stripe: new Stripe(env.STRIPE_SECRET_KEY || 'sk_test_example_only'),
  stripeWebhookSecret: env.STRIPE_WEBHOOK_SECRET || 'whsec_example_only',
  get loginPageUrl() {
    return `${baseUrl}/plugin-login`;
  },
});

// The website's login page, reduced to one button: it confirms with the write key from the fragment.
const loginPage = `<!doctype html><meta charset="utf-8"><title>Sign in to the example plugin</title>
<p>Signed in to the website as <b>dev@example.com</b>.</p><button id="ok">Sign in to the Figma plugin</button><p id="out"></p>
<script>
document.getElementById('ok').onclick = async () => {
  const res = await fetch('/plugin/login/complete', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ writeKey: location.hash.slice(1) }) });
  document.getElementById('out').textContent = res.ok ? 'Done: go back to Figma.' : 'Failed: ' + res.status;
};
</script>`;

const served = await serve(async (request) => {
  if (request.method === 'GET' && new URL(request.url).pathname === '/plugin-login') {
    return new Response(loginPage, { headers: { 'content-type': 'text/html; charset=utf-8' } });
  }
  return backend(request);
}, { port, host });
baseUrl = served.url.replace('127.0.0.1', 'localhost'); // the manifest's devAllowedDomains say localhost
console.log(`example backend: ${baseUrl}  (database: ${db.description})`);

const stop = async () => {
  await served.close();
  await db.close();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
