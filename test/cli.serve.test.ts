// `figma-plugin-auth-db serve` as a subprocess: each missing or malformed setting is a startup
// error (exit 2, the variable named, its value never printed); on both databases: /health, the
// login hand-over through the website's session URL, a metered call under BASE_PATH, and SIGTERM
// with a request in flight (it finishes, new connections are refused, the process exits 0).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { ROOT, runScript, scriptArgs } from './helpers/run.ts';
import { copyDataDir } from './helpers/pglite.ts';
import { openDatabase } from '../src/core/db.ts';
import { serve } from '../src/http/node.ts';
import { generateEntitlementKey } from '../src/entitlements/index.ts';
import { TOKEN_SECRET as SECRET } from './helpers/secrets.ts';
import { startFigmaOAuthStandIn } from './helpers/figma-oauth-standin.ts';
import { STANDIN_SECRET_KEY, startStripeStandin } from './helpers/stripe-standin.ts';
import { PRICES, linkPrices } from './helpers/stripe.ts';
import { createPluginAuth } from '../src/auth.ts';

/** `serve --production` running as a subprocess, with what it printed so far. */
interface Serving {
  child: ChildProcess;
  /** The URL it says it listens on (BASE_PATH included). */
  base: string;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout matches; rejects if the process exits first. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  /** Its exit code. */
  exited: Promise<number | null>;
  /** Kills it unless it has exited. */
  kill(): void;
}

/** Starts `serve --production` with exactly these variables (and PATH) and waits for "listening on". */
async function startServe(env: Record<string, string>): Promise<Serving> {
  const child = spawn(process.execPath, [...(await scriptArgs('src/cli/main.ts')), 'serve', '--production'], {
    cwd: ROOT, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiting = new Set<() => void>();
  child.stdout.on('data', (d) => {
    stdout += d;
    for (const check of waiting) check();
  });
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitFor = (pattern: RegExp) => new Promise<RegExpExecArray>((resolve, reject) => {
    const check = () => {
      const m = pattern.exec(stdout);
      if (!m) return;
      waiting.delete(check);
      resolve(m);
    };
    waiting.add(check);
    check();
    void exited.then((code) => reject(new Error(`exited ${code}: ${stdout}${stderr}`)));
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    const [, base] = await waitFor(/listening on (http:\/\/\S+)/);
    return { child, base: base!, stdout: () => stdout, stderr: () => stderr, waitFor, exited, kill };
  } catch (error) {
    kill();
    throw error;
  }
}

const BASE = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', PLUGIN_TOKEN_SECRET: SECRET };

describe('serve: startup errors', () => {
  const cases: Array<[string, Record<string, string>, RegExp, string?]> = [
    ['DATABASE_URL missing', { PLUGIN_TOKEN_SECRET: SECRET }, /DATABASE_URL is missing/],
    ['DATABASE_URL malformed', { ...BASE, DATABASE_URL: 'mysql://root:hunter2secret@x/db' }, /DATABASE_URL is not a postgres:\/\/ URL/, 'hunter2secret'],
    ['PLUGIN_TOKEN_SECRET missing', { DATABASE_URL: BASE.DATABASE_URL }, /PLUGIN_TOKEN_SECRET is missing/],
    ['PLUGIN_TOKEN_SECRET too short', { ...BASE, PLUGIN_TOKEN_SECRET: 'tiny-secret-Zq' }, /PLUGIN_TOKEN_SECRET is too \S+: at least 32 bytes/, 'tiny-secret-Zq'],
    ['ENTITLEMENT_SIGNING_KEY malformed', { ...BASE, ENTITLEMENT_SIGNING_KEY: 'not-json-key-material-Kq' }, /ENTITLEMENT_SIGNING_KEY is not a JSON private key/, 'not-json-key-material-Kq'],
    ['STRIPE_WEBHOOK_SECRET malformed', { ...BASE, STRIPE_WEBHOOK_SECRET: 'sk_live_leakedvalue123' }, /STRIPE_WEBHOOK_SECRET is not an endpoint signing secret/, 'sk_live_leakedvalue123'],
    ['STRIPE_SECRET_KEY missing for billing', { ...BASE, BILLING_SUCCESS_URL: 'https://app.example.com/thanks', BILLING_RETURN_URL: 'https://app.example.com/account' }, /STRIPE_SECRET_KEY is missing/],
    ['STRIPE_SECRET_KEY malformed', { ...BASE, STRIPE_SECRET_KEY: 'pk_live_publishablevalue42', BILLING_SUCCESS_URL: 'https://app.example.com/thanks', BILLING_RETURN_URL: 'https://app.example.com/account' }, /STRIPE_SECRET_KEY is not a secret key/, 'pk_live_publishablevalue42'],
    ['BILLING_RETURN_URL missing', { ...BASE, STRIPE_SECRET_KEY: 'sk_test_secretvalue424242', BILLING_SUCCESS_URL: 'https://app.example.com/thanks' }, /BILLING_RETURN_URL is missing/, 'sk_test_secretvalue424242'],
    ['BILLING_SUCCESS_URL malformed', { ...BASE, STRIPE_SECRET_KEY: 'sk_test_secretvalue424242', BILLING_SUCCESS_URL: 'javascript:alert(1)', BILLING_RETURN_URL: 'https://app.example.com/account' }, /BILLING_SUCCESS_URL is not an http\(s\) URL/, 'sk_test_secretvalue424242'],
    ['FIGMA_PLUGIN_ID missing', { ...BASE, FIGMA_PERSONAL_ACCESS_TOKEN: 'figd_secretpatvalue77' }, /FIGMA_PLUGIN_ID is missing/, 'figd_secretpatvalue77'],
    ['FIGMA_PLUGIN_ID malformed', { ...BASE, FIGMA_PERSONAL_ACCESS_TOKEN: 'figd_secretpatvalue77', FIGMA_PLUGIN_ID: 'abc' }, /FIGMA_PLUGIN_ID is not a plugin id/, 'figd_secretpatvalue77'],
    ['FIGMA_PERSONAL_ACCESS_TOKEN missing', { ...BASE, FIGMA_PLUGIN_ID: '123' }, /FIGMA_PERSONAL_ACCESS_TOKEN is missing/],
    ['LEMONSQUEEZY_WEBHOOK_SECRET malformed', { ...BASE, LEMONSQUEEZY_WEBHOOK_SECRET: 'abc' }, /LEMONSQUEEZY_WEBHOOK_SECRET must be 6 to 255 characters/],
    ['GUMROAD_API_BASE_URL malformed', { ...BASE, GUMROAD_ACCESS_TOKEN: 'gumroad-token-secret-55', GUMROAD_API_BASE_URL: 'ftp://x' }, /GUMROAD_API_BASE_URL is not an http\(s\) URL/, 'gumroad-token-secret-55'],
    ['WEBSITE_SESSION_URL missing', { ...BASE, WEBSITE_ORIGIN: 'https://app.example.com' }, /WEBSITE_SESSION_URL is missing/],
    ['WEBSITE_ORIGIN malformed', { ...BASE, WEBSITE_ORIGIN: 'https://app.example.com/path', WEBSITE_SESSION_URL: 'https://app.example.com/session' }, /WEBSITE_ORIGIN is not an origin/],
    ['PORT malformed', { ...BASE, PORT: '99999' }, /PORT is not a whole number from 0 to 65535/],
    ['HOST malformed', { ...BASE, HOST: 'a b' }, /HOST is not a host name/],
    ['BASE_PATH malformed', { ...BASE, BASE_PATH: 'api' }, /BASE_PATH must start with \//],
    ['METER malformed', { ...BASE, METER: '/plugin/resize=resize:layers,resize' }, /METER: "resize" is not \/path=action/],
    ['FIGMA_CLIENT_ID missing', { ...BASE, FIGMA_CLIENT_SECRET: 'figma-client-secret-value-91' }, /FIGMA_CLIENT_ID is missing/, 'figma-client-secret-value-91'],
    ['FIGMA_CLIENT_SECRET missing', { ...BASE, FIGMA_CLIENT_ID: 'client-id-1' }, /FIGMA_CLIENT_SECRET is missing/],
    ['FIGMA_OAUTH_BASE_URL malformed', { ...BASE, FIGMA_CLIENT_ID: 'client-id-1', FIGMA_CLIENT_SECRET: 'figma-client-secret-value-91', FIGMA_OAUTH_BASE_URL: 'www.figma.com' }, /FIGMA_OAUTH_BASE_URL is not an http\(s\) URL/, 'figma-client-secret-value-91'],
    ['PUBLIC_URL malformed', { ...BASE, FIGMA_CLIENT_ID: 'client-id-1', FIGMA_CLIENT_SECRET: 'figma-client-secret-value-91', PUBLIC_URL: 'api.example.com' }, /PUBLIC_URL is not an http\(s\) URL/, 'figma-client-secret-value-91'],
    ['METER twice', { ...BASE, METER: '/plugin/a=x,/plugin/a=y' }, /METER: \/plugin\/a is listed twice/],
  ];
  for (const [name, env, expected, secret] of cases) {
    test(name, async () => {
      const run = await runScript('src/cli/main.ts', ['serve', '--production'], { env });
      assert.equal(run.code, 2, run.all);
      assert.match(run.stderr, /serve: error \[server_env_invalid\]/);
      assert.match(run.stderr, expected);
      if (secret) assert.ok(!run.all.includes(secret), 'the value is never printed');
      assert.equal(run.stdout, '', 'nothing started');
    });
  }
  test('several problems are reported at once', async () => {
    const run = await runScript('src/cli/main.ts', ['serve', '--production'], { env: { PORT: 'x' } });
    assert.equal(run.code, 2);
    for (const name of ['DATABASE_URL', 'PLUGIN_TOKEN_SECRET', 'PORT']) assert.match(run.stderr, new RegExp(`${name} is`));
  });
  test('a database without the schema: not_set_up, exit 1', async () => {
    const run = await runScript('src/cli/main.ts', ['serve', '--production'], { env: { DATABASE_URL: 'memory://', PLUGIN_TOKEN_SECRET: SECRET } });
    assert.equal(run.code, 1, run.all);
    assert.match(run.stderr, /\[not_set_up\].*setup/);
  });
});

for (const dialect of DIALECTS) {
  describe(`serve [${dialect}]`, () => {
    test('health, login through the website session, a metered call under BASE_PATH, SIGTERM with a request in flight', () =>
      withDatabase(dialect, async ({ db, url }) => {
        // PGlite: a data directory set up here and closed (one process owns it at a time).
        let dir: string | undefined;
        let databaseUrl = url;
        let userId: string;
        if (!databaseUrl) {
          // The set-up snapshot (setup's script, run once per schema): an initdb and a setup here cost ~10 s of CPU.
          dir = mkdtempSync(join(tmpdir(), 'fpa-serve-'));
          databaseUrl = `pglite:${dir}`;
          await copyDataDir('setup', dir);
          const own = await openDatabase(databaseUrl);
          userId = await createUser(own);
          await own.close();
        } else {
          userId = await createUser(db);
        }
        // The website: answers who is signed in for a session cookie.
        const website = await serve((request) =>
          Response.json((request.headers.get('cookie') ?? '').includes('sid=good') ? { userId } : {}, { status: (request.headers.get('cookie') ?? '').includes('sid=good') ? 200 : 401 }));
        const origin = 'https://app.example.com';
        let serving: Serving | undefined;
        try {
          serving = await startServe({
            DATABASE_URL: databaseUrl, PLUGIN_TOKEN_SECRET: SECRET, ENTITLEMENT_SIGNING_KEY: JSON.stringify(await generateEntitlementKey()),
            PORT: '0', BASE_PATH: '/api', METER: '/plugin/resize=resize:layers, /plugin/ping=ping', WEBSITE_ORIGIN: origin, WEBSITE_SESSION_URL: `${website.url}/session`,
          });
          const { child, base, waitFor, exited, stdout, stderr } = serving;
          assert.match(stdout(), /features: tokens, entitlements, login, meter \(\/plugin\/resize, \/plugin\/ping\)/);
          const host = base.replace(/\/api$/, '');
          const health = await fetch(`${host}/health`);
          assert.deepEqual([health.status, await health.json()], [200, { status: 'ok' }]);

          const json = { 'content-type': 'application/json' };
          const begun = (await (await fetch(`${base}/plugin/login`, { method: 'POST', headers: json, body: '{}' })).json()) as { readKey: string; loginUrl: string; code: string };
          assert.ok(begun.loginUrl.startsWith(`${origin}/plugin-login#`));
          const writeKey = new URL(begun.loginUrl).hash.slice(1);
          const complete = (cookie: string) => fetch(`${base}/plugin/login/complete`, { method: 'POST', headers: { ...json, origin, cookie }, body: JSON.stringify({ writeKey }) });
          assert.equal((await complete('sid=bad')).status, 401, 'the website says nobody is signed in');
          assert.equal((await complete('sid=good')).status, 200);
          const done = (await (await fetch(`${base}/plugin/login/poll`, { method: 'POST', headers: json, body: JSON.stringify({ readKey: begun.readKey }) })).json()) as { token: string };
          const bearer = { ...json, authorization: `Bearer ${done.token}` };
          const metered = await fetch(`${base}/plugin/resize`, { method: 'POST', headers: { ...bearer, 'idempotency-key': 'serve-1' }, body: JSON.stringify({ layers: 1 }) });
          assert.equal(metered.status, 200);
          assert.deepEqual(((await metered.json()) as { used: number; planSlug: string }).used, 1);
          assert.equal((await fetch(`${base}/plugin/entitlements`, { headers: bearer })).status, 200);
          const bad = await fetch(`${base}/plugin/resize`, { method: 'POST', headers: bearer, body: '{"layers": 1, "x": "LEAKME' });
          assert.equal(bad.status, 400);
          assert.match(stderr(), new RegExp(`${bad.headers.get('x-request-id')} POST /plugin/resize 400 ValidationError invalid_json`));
          assert.ok(!stderr().includes('LEAKME') && !stderr().includes(done.token));

          // SIGTERM with a request in flight: half its body sent, the rest after the signal.
          const body = JSON.stringify({ layers: 1 });
          const inFlight = new Promise<{ status: number; body: string }>((resolve, reject) => {
            const req = httpRequest(`${base}/plugin/ping`, { method: 'POST', headers: { ...bearer, 'content-length': String(body.length) } }, (res) => {
              let text = '';
              res.on('data', (d) => (text += d));
              res.on('end', () => resolve({ status: res.statusCode!, body: text }));
            });
            req.on('error', reject);
            req.write(body.slice(0, 5));
            // The handler runs once the headers are in (the adapter streams the body).
            setTimeout(() => {
              child.kill('SIGTERM');
              void waitFor(/SIGTERM: stopping/).then(async () => {
                await assert.rejects(fetch(`${host}/health`), 'no new connections while stopping');
                req.end(body.slice(5));
              }, reject);
            }, 500);
          });
          const answer = await inFlight;
          assert.equal(answer.status, 200, answer.body);
          assert.equal((JSON.parse(answer.body) as { used: number }).used, 1);
          assert.equal(await exited, 0, stdout() + stderr());
          assert.match(stdout(), /serve: stopped/);
        } finally {
          serving?.kill();
          await website.close();
          if (dir) rmSync(dir, { recursive: true, force: true });
        }
      }));
  });
}

for (const dialect of DIALECTS) {
  describe(`serve with Sign in with Figma [${dialect}]`, () => {
    test('FIGMA_CLIENT_ID, FIGMA_CLIENT_SECRET, FIGMA_OAUTH_BASE_URL and FIGMA_API_BASE_URL: the plugin signs in through the stand-in', () =>
      withDatabase(dialect, async ({ url }) => {
        let dir: string | undefined;
        let databaseUrl = url;
        if (!databaseUrl) {
          dir = mkdtempSync(join(tmpdir(), 'fpa-serve-figma-'));
          databaseUrl = `pglite:${dir}`;
          await copyDataDir('setup', dir);
        }
        const figma = await startFigmaOAuthStandIn({ account: { id: '2718281828', handle: 'Serve', email: 'serve@example.com' } });
        let serving: Serving | undefined;
        try {
          serving = await startServe({
            DATABASE_URL: databaseUrl, PLUGIN_TOKEN_SECRET: SECRET, PORT: '0', BASE_PATH: '/api', METER: '/plugin/resize=resize',
            FIGMA_CLIENT_ID: figma.clientId, FIGMA_CLIENT_SECRET: figma.clientSecret, FIGMA_OAUTH_BASE_URL: figma.url, FIGMA_API_BASE_URL: figma.url,
          });
          const { base, stdout, stderr } = serving;
          assert.match(stdout(), /features: tokens, figma-sign-in, meter/);
          figma.redirectUris.add(`${base}/plugin/login/figma/callback`);
          const json = { 'content-type': 'application/json' };
          const begun = (await (await fetch(`${base}/plugin/login`, { method: 'POST', headers: json, body: '{}' })).json()) as { readKey: string; loginUrl: string };
          assert.ok(begun.loginUrl.startsWith(`${base}/plugin/login/figma#`), begun.loginUrl);
          const started = await fetch(`${base}/plugin/login/figma/start`, {
            method: 'POST', redirect: 'manual',
            headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(base).origin, 'sec-fetch-site': 'same-origin' },
            body: new URLSearchParams({ login: begun.loginUrl.split('#')[1]! }).toString(),
          });
          assert.equal(started.status, 303);
          const back = await figma.consent(started.headers.get('location')!);
          const done = await fetch(back, { headers: { cookie: started.headers.getSetCookie()[0]!.split(';')[0]! } });
          assert.equal(done.status, 200);
          const polled = (await (await fetch(`${base}/plugin/login/poll`, { method: 'POST', headers: json, body: JSON.stringify({ readKey: begun.readKey }) })).json()) as { token: string };
          const metered = await fetch(`${base}/plugin/resize`, { method: 'POST', headers: { ...json, authorization: `Bearer ${polled.token}` }, body: '{}' });
          assert.equal(metered.status, 200);
          assert.ok(!stdout().includes(figma.clientSecret) && !stderr().includes(figma.clientSecret) && !stderr().includes(figma.issued[0]!));
        } finally {
          serving?.kill();
          await figma.close();
          if (dir) rmSync(dir, { recursive: true, force: true });
        }
      }));
  });
}

for (const dialect of DIALECTS) {
  describe(`serve with billing [${dialect}]`, () => {
    test('STRIPE_SECRET_KEY, STRIPE_API_BASE_URL and the BILLING_ URLs: checkout and the portal through the stand-in', () =>
      withDatabase(dialect, async ({ db, url }) => {
        let dir: string | undefined;
        let databaseUrl = url;
        let own = db;
        if (!databaseUrl) {
          dir = mkdtempSync(join(tmpdir(), 'fpa-serve-billing-'));
          databaseUrl = `pglite:${dir}`;
          await copyDataDir('setup', dir);
          own = await openDatabase(databaseUrl);
        }
        await linkPrices(own);
        const userId = await createUser(own);
        const { token } = await createPluginAuth(own, { tokenSecret: SECRET }).tokens.issue(userId);
        if (dir) await own.close();
        const stripe = await startStripeStandin();
        stripe.prices.add(PRICES.pro);
        let serving: Serving | undefined;
        try {
          serving = await startServe({
            DATABASE_URL: databaseUrl, PLUGIN_TOKEN_SECRET: SECRET, PORT: '0',
            STRIPE_SECRET_KEY: STANDIN_SECRET_KEY, STRIPE_API_BASE_URL: stripe.url,
            BILLING_SUCCESS_URL: 'https://app.example.com/thanks', BILLING_RETURN_URL: 'https://app.example.com/account',
          });
          const { base, stdout, stderr } = serving;
          assert.match(stdout(), /features: tokens, billing/);
          const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
          const checkout = await fetch(`${base}/plugin/billing/checkout`, { method: 'POST', headers, body: JSON.stringify({ plan: 'pro' }) });
          assert.equal(checkout.status, 200, await checkout.clone().text());
          assert.match(((await checkout.json()) as { url: string }).url, /^https:\/\/checkout\.stripe\.com\//);
          assert.equal(stripe.checkoutSessions[0]!.params.client_reference_id, userId);
          assert.equal(stripe.checkoutSessions[0]!.params.cancel_url, 'https://app.example.com');
          const portal = await fetch(`${base}/plugin/billing/portal`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
          assert.equal(portal.status, 409, 'no customer before a checkout completes');
          assert.ok(!stdout().includes(STANDIN_SECRET_KEY) && !stderr().includes(STANDIN_SECRET_KEY));
        } finally {
          serving?.kill();
          await stripe.close();
          if (dir) rmSync(dir, { recursive: true, force: true });
        }
      }));
  });
}
