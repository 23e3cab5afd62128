// createPluginServer (src/server/) through real HTTP on 127.0.0.1, on both databases: every route,
// the login's CSRF rules and confirmation code, byte caps enforced while the body streams,
// invalid_json without the body in logs, request ids, basePath, features off until configured,
// and the edge-safe import graph (a neutral-platform bundle: no node:*, Buffer or PGlite).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { build } from 'esbuild';
import Stripe from 'stripe';
import { DIALECTS, createUser, device, withDatabase } from './helpers/databases.ts';
import { ROOT } from './helpers/run.ts';
import { PRICES, event, linkPrices, subscription } from './helpers/stripe.ts';
import { startFigmaStandIn } from './helpers/figma-standin.ts';
import { startGumroadStandIn, startLemonSqueezyStandIn } from './helpers/license-standins.ts';
import { createPluginAuth } from '../src/auth.ts';
import { generateEntitlementKey } from '../src/entitlements/index.ts';
import { serve } from '../src/http/node.ts';
import { clientOutcome, httpStatusOf, STATUS_BY_CODE } from '../src/core/http-status.ts';
import { ERRORS } from '../src/core/errors.ts';
import { confirmationCode, createPluginServer, loginPageHtml, type LogEntry, type PluginServerOptions } from '../src/server/index.ts';
import type { Database } from '../src/core/db.ts';
import { LEMON_WEBHOOK_SECRET as LEMON_SECRET, STRIPE_WEBHOOK_SECRET as STRIPE_SECRET, TOKEN_SECRET } from './helpers/secrets.ts';
import { createPluginClient } from '../src/plugin/client.ts';
import { installPluginBridge } from '../src/plugin/main.ts';
import { BRIDGE_TAG, type BridgeOp } from '../src/plugin/protocol.ts';

const WEBSITE = 'https://app.example.com';
const PAT = 'figd_server-test-personal-access-token';
const stripe = new Stripe('sk_test_example_only');
const JSON_HEADERS = { 'content-type': 'application/json' };

type Started = { url: string; logs: LogEntry[]; close(): Promise<void> };

/** The server over HTTP on 127.0.0.1, with every feature configured unless `bare`. */
async function start(db: Database, options: Partial<PluginServerOptions> & { bare?: boolean; figmaUrl?: string; lemonUrl?: string; gumroadUrl?: string; signedIn?: () => string | null } = {}): Promise<Started> {
  const { bare, figmaUrl, lemonUrl, gumroadUrl, signedIn, ...rest } = options;
  const auth = createPluginAuth(db, bare ? { tokenSecret: TOKEN_SECRET } : {
    tokenSecret: TOKEN_SECRET,
    entitlementSigningKey: await generateEntitlementKey(),
    ...(figmaUrl ? { figma: { personalAccessToken: PAT, apiBaseUrl: figmaUrl, pluginId: '1234567890123456789' } } : {}),
    ...(lemonUrl ? { lemonSqueezy: { apiBaseUrl: lemonUrl, webhookSecret: LEMON_SECRET } } : {}),
    ...(gumroadUrl ? { gumroad: { apiBaseUrl: gumroadUrl } } : {}),
  });
  const logs: LogEntry[] = [];
  const handle = createPluginServer(auth, {
    log: (e) => logs.push(e),
    ...(bare ? {} : {
      website: { origin: WEBSITE, userId: () => signedIn?.() ?? null },
      meter: { '/plugin/resize': { action: 'resize', items: (body) => body.layers }, '/plugin/ping': { action: 'ping' } },
      stripe: { webhookSecret: STRIPE_SECRET },
    }),
    ...rest,
  });
  const served = await serve(handle);
  return { url: served.url, logs, close: () => served.close() };
}

const post = (url: string, body: string, headers: Record<string, string> = JSON_HEADERS) => fetch(url, { method: 'POST', headers, body });
const json = async <T = Record<string, unknown>>(response: Response) => (await response.json()) as T;

test('one status table: every error code of the library has a status, the client reads statuses the same way', () => {
  for (const e of ERRORS) {
    const status = httpStatusOf({ name: e.class, code: e.code });
    assert.ok(status >= 400 && status < 600, `${e.code}: ${status}`);
  }
  assert.equal(httpStatusOf({ name: 'ValidationError', code: 'invalid_json' }), 400);
  assert.equal(httpStatusOf({ name: 'ValidationError', code: 'body_too_large' }), 413);
  assert.equal(httpStatusOf({ name: 'AuthError', code: 'token_expired' }), 401);
  assert.equal(httpStatusOf({ name: 'AuthError', code: 'device_limit_reached' }), 403, 'not a session problem: the plugin keeps its token');
  assert.equal(httpStatusOf({ name: 'TypeError' }), 500);
  for (const [code, status] of Object.entries(STATUS_BY_CODE)) assert.ok(status >= 400, code);
  assert.deepEqual([200, 401, 402, 403, 410, 413, 429, 503].map(clientOutcome), ['ok', 'sign_in_again', 'upgrade', 'refused', 'start_over', 'refused', 'retry', 'retry']);
  // The browser-side client takes the table from the one file, which imports nothing.
  assert.match(readFileSync(new URL('../src/plugin/client.ts', import.meta.url), 'utf8'), /from '\.\.\/core\/http-status\.ts'/);
  assert.doesNotMatch(readFileSync(new URL('../src/core/http-status.ts', import.meta.url), 'utf8'), /^import /m);
});

test('edge-safe: src/server and what it imports bundle for a neutral platform, without node:*, Buffer or PGlite', async () => {
  for (const file of readdirSync(new URL('../src/server/', import.meta.url))) {
    const text = readFileSync(new URL(`../src/server/${file}`, import.meta.url), 'utf8');
    assert.doesNotMatch(text, /from 'node:|\bBuffer\.|@electric-sql\/pglite/, file);
  }
  const result = await build({
    entryPoints: [`${ROOT}src/server/index.ts`], bundle: true, write: false, platform: 'neutral', format: 'esm', metafile: true, logLevel: 'silent',
  });
  const inputs = Object.keys(result.metafile.inputs);
  assert.deepEqual(inputs.filter((f) => /core\/db\.ts|pglite/.test(f)), [], 'no database layer in the import graph');
  // Dependencies: only the two Web Crypto libraries (OAuth for Sign in with Figma, JWT for Supabase sessions), in their web builds.
  assert.deepEqual(inputs.filter((f) => /node_modules/.test(f) && !/^node_modules\/(oauth4webapi\/build|jose\/dist\/webapi)\//.test(f)), [], 'no other dependency in the import graph');
  const code = result.outputFiles[0]!.text;
  assert.doesNotMatch(code, /\bBuffer\b|from "node:|require\(/);
});

for (const dialect of DIALECTS) {
  describe(`createPluginServer over HTTP [${dialect}]`, () => {
    test('login hand-over with the confirmation code, poll, metered calls, entitlements and JWKS, sign-out; request ids; CORS', () =>
      withDatabase(dialect, async ({ db }) => {
        const userId = await createUser(db);
        let signedIn: string | null = null;
        const s = await start(db, { signedIn: () => signedIn });
        try {
          // Preflights: plugin routes open to the "null" origin, the website route and webhooks closed.
          const preflight = (path: string) => fetch(`${s.url}${path}`, { method: 'OPTIONS', headers: { origin: 'null', 'access-control-request-method': 'POST' } });
          for (const path of ['/plugin/login', '/plugin/login/poll', '/plugin/resize', '/plugin/sign-out', '/plugin/entitlements']) {
            const r = await preflight(path);
            assert.deepEqual([r.status, r.headers.get('access-control-allow-origin')], [204, '*'], path);
            assert.equal(r.headers.get('access-control-allow-credentials'), null);
          }
          for (const path of ['/plugin/login/complete', '/webhooks/stripe']) {
            const r = await preflight(path);
            assert.equal(r.headers.get('access-control-allow-origin'), null, path);
            assert.equal(r.status, 405, path);
          }

          const begun = await post(`${s.url}/plugin/login`, '{}');
          assert.equal(begun.status, 200);
          assert.equal(begun.headers.get('access-control-allow-origin'), '*');
          const id1 = begun.headers.get('x-request-id');
          const b = await json<{ readKey: string; loginUrl: string; code: string; expiresAt: string }>(begun);
          assert.ok(b.loginUrl.startsWith(`${WEBSITE}/plugin-login#`));
          const writeKey = new URL(b.loginUrl).hash.slice(1);
          assert.match(b.code, /^[2-9A-HJ-NP-Z]{3}-[2-9A-HJ-NP-Z]{3}$/);
          assert.equal(b.code, await confirmationCode(writeKey));
          assert.notEqual(b.code, await confirmationCode(`${writeKey.slice(0, -1)}${writeKey.endsWith('A') ? 'B' : 'A'}`));
          assert.match(loginPageHtml({ completeUrl: '/plugin/login/complete' }), /crypto\.subtle\.digest\('SHA-256'/);

          const poll = () => post(`${s.url}/plugin/login/poll`, JSON.stringify({ readKey: b.readKey }));
          const pending = await poll();
          assert.deepEqual(await json(pending), { status: 'pending' });
          assert.match(id1 ?? '', /^[0-9a-f-]{36}$/);
          assert.notEqual(pending.headers.get('x-request-id'), id1, 'a new id per request');

          const complete = (headers: Record<string, string>) => post(`${s.url}/plugin/login/complete`, JSON.stringify({ writeKey }), headers);
          const notSignedIn = await complete({ ...JSON_HEADERS, origin: WEBSITE });
          assert.deepEqual([notSignedIn.status, await json(notSignedIn)], [401, { error: 'not_signed_in' }]);
          signedIn = userId;
          // No Origin, but the browser says same-origin (some browsers omit Origin on same-origin requests).
          const ok = await complete({ ...JSON_HEADERS, 'sec-fetch-site': 'same-origin' });
          assert.deepEqual([ok.status, await json(ok)], [200, { ok: true }]);
          assert.equal(ok.headers.get('access-control-allow-origin'), null, 'never opened to CORS');
          const done = await json<{ status: string; token: string; tokenId: string }>(await poll());
          assert.equal(done.status, 'done');
          const again = await poll();
          assert.deepEqual([again.status, await json(again)], [410, { error: 'login_not_found' }]);

          // Metered: the declared route counts `layers`; one Idempotency-Key counts once; 402 past the plan.
          const bearer = { ...JSON_HEADERS, authorization: `Bearer ${done.token}` };
          const resize = (layers: unknown, key?: string) => post(`${s.url}/plugin/resize`, JSON.stringify({ layers }), key ? { ...bearer, 'idempotency-key': key } : bearer);
          let r = await resize(1, 'k-1');
          assert.deepEqual([r.status, (await json<{ used: number }>(r)).used], [200, 1]);
          r = await resize(1, 'k-1');
          assert.equal((await json<{ replayed: boolean }>(r)).replayed, true);
          r = await resize('many');
          assert.deepEqual([r.status, await json(r)], [400, { error: 'invalid_items' }]);
          r = await post(`${s.url}/plugin/ping`, '{}', bearer); // another action; items default to 1
          assert.deepEqual([r.status, (await json<{ used: number }>(r)).used], [200, 1]);
          r = await resize(1);
          assert.deepEqual([r.status, (await json<{ used: number }>(r)).used], [200, 2]);
          r = await resize(1);
          assert.deepEqual([r.status, (await json<{ reason: string }>(r)).reason], [402, 'limit_reached']);
          assert.equal(r.headers.get('access-control-allow-origin'), '*', 'the plugin reads the 402');
          r = await post(`${s.url}/plugin/resize`, JSON.stringify({ layers: 1 }), { ...JSON_HEADERS, authorization: 'Bearer nope' });
          assert.deepEqual([r.status, await json(r)], [401, { error: 'token_invalid' }]);
          r = await post(`${s.url}/plugin/resize`, JSON.stringify({ layers: 1 }), JSON_HEADERS);
          assert.deepEqual([r.status, await json(r)], [401, { error: 'token_invalid' }], 'no bearer token');

          const snapshot = await fetch(`${s.url}/plugin/entitlements`, { headers: { authorization: `Bearer ${done.token}` } });
          assert.equal(snapshot.status, 200);
          assert.ok((await json<{ jwt: string }>(snapshot)).jwt.split('.').length === 3);
          const jwks = await json<{ keys: unknown[] }>(await fetch(`${s.url}/plugin/jwks`));
          assert.equal(jwks.keys.length, 1);

          // Unknown routes, wrong methods.
          r = await fetch(`${s.url}/plugin/nothing-here`);
          assert.deepEqual([r.status, await json(r), r.headers.get('access-control-allow-origin')], [404, { error: 'not_found' }, '*']);
          r = await fetch(`${s.url}/plugin/resize`);
          assert.deepEqual([r.status, r.headers.get('allow'), await json(r)], [405, 'POST', { error: 'method_not_allowed' }]);

          // Sign-out revokes the calling token only.
          const other = await createPluginAuth(db, { tokenSecret: TOKEN_SECRET }).tokens.issue(userId, { deviceName: 'other' });
          r = await post(`${s.url}/plugin/sign-out`, '', { authorization: `Bearer ${done.token}` });
          assert.deepEqual([r.status, await json(r)], [200, { revoked: true }]);
          r = await fetch(`${s.url}/plugin/entitlements`, { headers: { authorization: `Bearer ${done.token}` } });
          assert.deepEqual([r.status, await json(r)], [401, { error: 'token_revoked' }]);
          r = await fetch(`${s.url}/plugin/entitlements`, { headers: { authorization: `Bearer ${other.token}` } });
          assert.equal(r.status, 200, 'the other session stays');
          assert.ok(s.logs.every((l) => /^[0-9a-f-]{36}$/.test(l.requestId)));
        } finally {
          await s.close();
        }
      }));

    test('a device across logins: the login route takes { deviceId }; two logins from one install (raw HTTP, then the plugin client) keep one device; another user\'s device id is not kept', () =>
      withDatabase(dialect, async ({ db }) => {
        const alice = await createUser(db);
        const bob = await createUser(db);
        let signedIn: string | null = null;
        const s = await start(db, { signedIn: () => signedIn });
        const devicesOf = async (userId: string) =>
          (await db.query<{ device_id: string }>('SELECT DISTINCT device_id::text AS device_id FROM public.plugin_tokens WHERE user_id = $1::uuid', [userId])).map((r) => r.device_id);
        // One login over HTTP as `userId`, with the body given to the login route.
        const login = async (userId: string, body: string | undefined, headers: Record<string, string> = JSON_HEADERS) => {
          const begun = await fetch(`${s.url}/plugin/login`, { method: 'POST', headers, ...(body === undefined ? {} : { body }) });
          assert.equal(begun.status, 200, await begun.clone().text());
          const b = await json<{ readKey: string; loginUrl: string }>(begun);
          signedIn = userId;
          const ok = await post(`${s.url}/plugin/login/complete`, JSON.stringify({ writeKey: new URL(b.loginUrl).hash.slice(1) }), { ...JSON_HEADERS, origin: WEBSITE });
          assert.equal(ok.status, 200);
          return json<{ status: string; token: string; deviceId: string }>(await post(`${s.url}/plugin/login/poll`, JSON.stringify({ readKey: b.readKey })));
        };
        try {
          // Raw HTTP: no body (as before) mints a device; sending it back keeps it.
          const first = await login(alice, undefined, {});
          assert.equal(first.status, 'done');
          assert.match(first.deviceId, /^[0-9a-f-]{36}$/);
          const second = await login(alice, JSON.stringify({ deviceId: first.deviceId }));
          assert.equal(second.deviceId, first.deviceId, 'the same install stays one device');
          assert.notEqual(second.token, first.token);
          assert.deepEqual(await devicesOf(alice), [first.deviceId]);
          // Alice's device id sent by Bob's login: Bob gets a device of his own.
          const stolen = await login(bob, JSON.stringify({ deviceId: first.deviceId }));
          assert.notEqual(stolen.deviceId, first.deviceId);
          assert.deepEqual(await devicesOf(bob), [stolen.deviceId]);
          assert.deepEqual(await devicesOf(alice), [first.deviceId], 'nothing of Alice changed');
          // Bad bodies: typed refusals, no login request written.
          const before = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_login_requests'))[0]!.n;
          for (const [body, headers, status, error] of [
            [JSON.stringify({ deviceId: 'Figma' }), JSON_HEADERS, 400, 'invalid_device_id'],
            [JSON.stringify({ deviceId: 42 }), JSON_HEADERS, 400, 'invalid_device_id'],
            ['[1]', JSON_HEADERS, 400, 'invalid_json'],
            [JSON.stringify({ deviceId: first.deviceId }), { 'content-type': 'text/plain' }, 415, 'unsupported_media_type'],
          ] as const) {
            const r = await post(`${s.url}/plugin/login`, body, headers);
            assert.deepEqual([r.status, await json(r)], [status, { error }], body);
          }
          assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_login_requests'))[0]!.n, before);

          // The plugin client, with the main thread's bridge on a stand-in of figma (clientStorage in a Map).
          const storage = new Map<string, unknown>();
          const listeners: Array<(message: unknown, props: unknown) => void> = [];
          const pending = new Map<string, (reply: { ok: boolean; value?: unknown; error?: string }) => void>();
          installPluginBridge({
            clientStorage: {
              getAsync: async (key) => structuredClone(storage.get(key)),
              setAsync: async (key, value) => void storage.set(key, structuredClone(value)),
              deleteAsync: async (key) => void storage.delete(key),
            },
            ui: {
              postMessage: (reply: { id: string; ok: boolean; value?: unknown; error?: string }) => pending.get(reply.id)?.(reply),
              on: (_type, callback) => void listeners.push(callback),
              off: () => {},
            },
            openExternal: () => {},
          });
          let requestId = 0;
          const bridge = {
            request: (op: BridgeOp) => new Promise<unknown>((resolve, reject) => {
              const id = `r${++requestId}`;
              pending.set(id, (reply) => (reply.ok ? resolve(reply.value) : reject(new Error(reply.error))));
              for (const listener of listeners) listener({ ...op, tag: BRIDGE_TAG, kind: 'request', id }, {});
            }),
          };
          let signInAs = alice;
          const sent: unknown[] = [];
          const newClient = () => createPluginClient({
            apiBaseUrl: s.url,
            bridge,
            poll: { initialDelayMs: 20, maxDelayMs: 50 },
            retry: { attempts: 1 },
            fetch: async (input, init) => {
              if (String(input).endsWith('/plugin/login')) sent.push(JSON.parse(String(init?.body)));
              return fetch(input, init);
            },
            // The browser: the signed-in user confirms on the website page.
            openUrl: (url) => {
              signedIn = signInAs;
              void post(`${s.url}/plugin/login/complete`, JSON.stringify({ writeKey: new URL(url).hash.slice(1) }), { ...JSON_HEADERS, origin: WEBSITE });
              return true;
            },
          });
          const carol = await createUser(db);
          signInAs = carol;
          const client = newClient();
          assert.equal((await client.signIn()).kind, 'ok');
          const [carolDevice] = await devicesOf(carol);
          assert.equal(storage.get('figma-plugin-auth-db.session.device'), carolDevice, 'the main thread keeps the device id');
          await client.signOut();
          assert.equal(storage.get('figma-plugin-auth-db.session'), undefined, 'the session is gone');
          assert.equal((await client.signIn()).kind, 'ok');
          // A new UI (the plugin closed and opened again): the id comes from the main thread's storage.
          assert.equal((await newClient().signIn()).kind, 'ok');
          assert.deepEqual(sent, [{}, { deviceId: carolDevice }, { deviceId: carolDevice }]);
          assert.deepEqual(await devicesOf(carol), [carolDevice], 'three logins from one install: one device');
          const tokens = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_tokens WHERE user_id = $1::uuid', [carol]);
          assert.equal(tokens[0]!.n, 3);
          // The same install, then signed in as another user: the id is Carol's, so Dave gets his own.
          const dave = await createUser(db);
          signInAs = dave;
          assert.equal((await newClient().signIn()).kind, 'ok');
          assert.deepEqual(sent.at(-1), { deviceId: carolDevice });
          const daveDevices = await devicesOf(dave);
          assert.equal(daveDevices.length, 1);
          assert.notEqual(daveDevices[0], carolDevice);
          assert.equal(storage.get('figma-plugin-auth-db.session.device'), daveDevices[0], 'the install now holds the device the server gave');
        } finally {
          await s.close();
        }
      }));

    test('the website route refuses cross-site requests (text/plain, form, foreign or null Origin, Sec-Fetch-Site cross-site/same-site/none, neither header) and completes nothing', () =>
      withDatabase(dialect, async ({ db }) => {
        const userId = await createUser(db);
        const s = await start(db, { signedIn: () => userId });
        try {
          const b = await json<{ readKey: string; loginUrl: string }>(await post(`${s.url}/plugin/login`, '{}'));
          const writeKey = new URL(b.loginUrl).hash.slice(1);
          const body = JSON.stringify({ writeKey });
          const attempts: Array<[Record<string, string>, number, string]> = [
            [{ 'content-type': 'text/plain', origin: WEBSITE }, 415, 'unsupported_media_type'],
            [{ 'content-type': 'application/x-www-form-urlencoded', origin: WEBSITE }, 415, 'unsupported_media_type'],
            [{ 'content-type': 'multipart/form-data; boundary=x', 'sec-fetch-site': 'same-origin' }, 415, 'unsupported_media_type'],
            [{ ...JSON_HEADERS, origin: 'https://evil.example' }, 403, 'cross_site_request'],
            [{ ...JSON_HEADERS, origin: 'https://sub.app.example.com' }, 403, 'cross_site_request'],
            [{ ...JSON_HEADERS, origin: 'null' }, 403, 'cross_site_request'],
            [{ ...JSON_HEADERS, origin: WEBSITE, 'sec-fetch-site': 'cross-site' }, 403, 'cross_site_request'],
            [{ ...JSON_HEADERS, 'sec-fetch-site': 'cross-site' }, 403, 'cross_site_request'],
            [{ ...JSON_HEADERS, 'sec-fetch-site': 'same-site' }, 403, 'cross_site_request'],
            [{ ...JSON_HEADERS, 'sec-fetch-site': 'none' }, 403, 'cross_site_request'],
            [{ ...JSON_HEADERS }, 403, 'cross_site_request'],
          ];
          for (const [headers, status, code] of attempts) {
            const r = await post(`${s.url}/plugin/login/complete`, body, headers);
            assert.deepEqual([r.status, await json(r)], [status, { error: code }], JSON.stringify(headers));
          }
          const pending = await post(`${s.url}/plugin/login/poll`, JSON.stringify({ readKey: b.readKey }));
          assert.deepEqual(await json(pending), { status: 'pending' }, 'no refused attempt completed the login');
          const honest = await post(`${s.url}/plugin/login/complete`, body, { ...JSON_HEADERS, origin: WEBSITE, 'sec-fetch-site': 'same-origin' });
          assert.equal(honest.status, 200);
          assert.equal((await json(await post(`${s.url}/plugin/login/poll`, JSON.stringify({ readKey: b.readKey })))).status, 'done');
        } finally {
          await s.close();
        }
      }));

    test('bad JSON is a 400 invalid_json, never a 500, and the log line carries the request id, route and code, never the body', () =>
      withDatabase(dialect, async ({ db }) => {
        const userId = await createUser(db);
        const s = await start(db, { signedIn: () => userId });
        try {
          const secret = 'SECRETFRAG9Qx7';
          const bodies = [`{"readKey":"${secret}`, `{"readKey": ${secret}}`, `${secret}`, '[1,2]', '"a string"', 'null', '\u00ff\u00fe', ''];
          for (const body of bodies) {
            const r = await post(`${s.url}/plugin/login/poll`, body);
            assert.deepEqual([r.status, await json(r)], [400, { error: 'invalid_json' }], JSON.stringify(body));
          }
          const { token } = await createPluginAuth(db, { tokenSecret: TOKEN_SECRET }).tokens.issue(userId);
          const r = await post(`${s.url}/plugin/resize`, `{"layers": 1, "paymentToken": "${secret}`, { ...JSON_HEADERS, authorization: `Bearer ${token}` });
          assert.equal(r.status, 400);
          const id = r.headers.get('x-request-id');
          const line = s.logs.find((l) => l.requestId === id);
          assert.deepEqual(line, { requestId: id, method: 'POST', route: '/plugin/resize', status: 400, error: 'ValidationError', code: 'invalid_json' });
          const logged = JSON.stringify(s.logs);
          for (const fragment of [secret, token.slice(-20), 'SyntaxError', 'Unexpected']) assert.ok(!logged.includes(fragment), `the log holds ${fragment}`);
          assert.equal(s.logs.length, bodies.length + 1);
        } finally {
          await s.close();
        }
      }));

    test('an unexpected throw is a 500 internal_error with the request id; the default log is one line with no message', () =>
      withDatabase(dialect, async ({ db }) => {
        const s = await start(db, { website: { origin: WEBSITE, userId: () => { throw new TypeError('session store exploded: sid=SECRET123'); } } });
        const lines: string[] = [];
        const original = console.error;
        try {
          const b = await json<{ loginUrl: string }>(await post(`${s.url}/plugin/login`, '{}'));
          const r = await post(`${s.url}/plugin/login/complete`, JSON.stringify({ writeKey: new URL(b.loginUrl).hash.slice(1) }), { ...JSON_HEADERS, origin: WEBSITE });
          const id = r.headers.get('x-request-id');
          assert.deepEqual([r.status, await json(r)], [500, { error: 'internal_error', requestId: id }]);
          assert.deepEqual(s.logs.at(-1), { requestId: id, method: 'POST', route: '/plugin/login/complete', status: 500, error: 'TypeError', code: 'internal_error' });
          // The default log: console.error, one line.
          console.error = (...args: unknown[]) => lines.push(args.join(' '));
          const handle = createPluginServer(createPluginAuth(db, { tokenSecret: TOKEN_SECRET }), {});
          const res = await handle(new Request('http://x/plugin/sign-out', { method: 'POST', headers: { authorization: 'Bearer SECRET-TOKEN-XYZ' } }));
          assert.equal(res.status, 401);
          assert.deepEqual(lines, [`figma-plugin-auth-db server: ${res.headers.get('x-request-id')} POST /plugin/sign-out 401 AuthError token_invalid`]);
        } finally {
          console.error = original;
          await s.close();
        }
      }));

    test('413 body_too_large while streaming: a 200 MB body to the login poll and to a webhook is cut off early, not buffered', () =>
      withDatabase(dialect, async ({ db }) => {
        const gumroad = await startGumroadStandIn();
        const s = await start(db, { gumroadUrl: gumroad.url });
        try {
          global.gc?.();
          const heapBefore = process.memoryUsage().heapUsed;
          for (const [path, headers] of [['/plugin/login/poll', JSON_HEADERS], ['/webhooks/gumroad', { 'content-type': 'application/x-www-form-urlencoded' }]] as const) {
            const result = await streamBody(`${s.url}${path}`, headers, 200 * 1024 * 1024);
            assert.equal(result.status, 413, path);
            assert.deepEqual(JSON.parse(result.body), { error: 'body_too_large' });
            assert.ok(result.sent < 40 * 1024 * 1024, `${path}: the server stopped reading after ${result.sent} bytes of 200 MB`);
          }
          const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
          assert.ok(heapGrowth < 60 * 1024 * 1024, `heap grew by ${heapGrowth} bytes`);
          // A declared length over the cap is refused before reading; a body at the cap is read.
          const declared = await streamBody(`${s.url}/plugin/login/poll`, { ...JSON_HEADERS, 'content-length': String(200 * 1024 * 1024) }, 200 * 1024 * 1024);
          assert.equal(declared.status, 413);
          assert.ok(declared.sent < 40 * 1024 * 1024);
          const atCap = await post(`${s.url}/plugin/login/poll`, JSON.stringify({ readKey: 'k'.repeat(16 * 1024 - 14) }));
          assert.deepEqual([atCap.status, await json(atCap)], [410, { error: 'login_not_found' }], '16 KiB exactly is read');
          const over = await post(`${s.url}/plugin/login/poll`, JSON.stringify({ readKey: 'k'.repeat(16 * 1024 - 13) }));
          assert.deepEqual([over.status, await json(over)], [413, { error: 'body_too_large' }], 'one byte more is not');
          const [rows] = await db.query<{ n: number }>('SELECT count(*)::integer AS n FROM public.license_webhook_events');
          assert.equal(rows!.n, 0, 'nothing stored for a refused webhook');
        } finally {
          await s.close();
          await gumroad.close();
        }
      }));

    test('caps are configurable per kind of route', () =>
      withDatabase(dialect, async ({ db }) => {
        const s = await start(db, { limits: { json: 64 } });
        try {
          const r = await post(`${s.url}/plugin/login/poll`, JSON.stringify({ readKey: 'k'.repeat(60) }));
          assert.deepEqual([r.status, await json(r)], [413, { error: 'body_too_large' }]);
        } finally {
          await s.close();
        }
      }));

    test('served by the Node adapter as it is or wrapped: the same answers; a wrapper still gets full requests and responses; a body in pieces or cut off', () =>
      withDatabase(dialect, async ({ db }) => {
        const userId = await createUser(db);
        const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
        const { token } = await auth.tokens.issue(userId);
        const handle = createPluginServer(auth, { log: () => {}, meter: { '/plugin/resize': { action: 'resize', items: (body) => body.layers } } });
        // Wrapped: the wrapper reads the request's body stream and the answer's body itself.
        const seen: { body: string; answer: unknown }[] = [];
        const direct = await serve(handle);
        const wrapped = await serve(async (request) => {
          const body = await request.clone().text();
          const response = await handle(request);
          seen.push({ body, answer: await response.clone().json() });
          return response;
        });
        const bearer = { ...JSON_HEADERS, authorization: `Bearer ${token}` };
        try {
          const answers = [];
          for (const s of [direct, wrapped]) {
            const r = await post(`${s.url}/plugin/resize`, JSON.stringify({ layers: 1 }), bearer);
            const text = await r.text();
            assert.equal(r.status, 200);
            assert.equal(r.headers.get('content-length'), String(Buffer.byteLength(text)), 'the declared length is the body\'s');
            assert.equal(r.headers.get('content-type'), 'application/json');
            assert.equal(r.headers.get('access-control-allow-origin'), '*');
            assert.match(r.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
            answers.push(JSON.parse(text) as { used: number });
          }
          assert.deepEqual(answers.map((a) => a.used), [1, 2], 'both count, each its own call (the free plan: 2 a day)');
          assert.deepEqual(seen, [{ body: '{"layers":1}', answer: answers[1] }], 'the wrapper read the request body and the answer as sent');
          // Errors through both: a 400 with its JSON body, a 404.
          for (const s of [direct, wrapped]) {
            const bad = await post(`${s.url}/plugin/resize`, '{"layers":', bearer);
            assert.deepEqual([bad.status, await json(bad)], [400, { error: 'invalid_json' }]);
            const missing = await post(`${s.url}/plugin/nothing`, '{}', bearer);
            assert.deepEqual([missing.status, await json(missing)], [404, { error: 'not_found' }]);
          }
          // A body sent in pieces, with a pause between them, is read whole: the plan's refusal, not invalid_json.
          const pieces = await new Promise<{ status: number; body: string }>((resolve, reject) => {
            const req = httpRequest(`${direct.url}/plugin/resize`, { method: 'POST', headers: bearer }, (res) => {
              let body = '';
              res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode!, body }));
            });
            req.on('error', reject);
            req.write('{"lay');
            setTimeout(() => req.end('ers": 1}'), 50);
          });
          assert.deepEqual([pieces.status, (JSON.parse(pieces.body) as { reason: string }).reason], [402, 'limit_reached']);
          // A client that goes away mid-body: the server answers the next call.
          await new Promise<void>((resolve) => {
            const req = httpRequest(`${direct.url}/plugin/resize`, { method: 'POST', headers: { ...bearer, 'content-length': '100' } });
            req.on('error', () => {});
            req.write('{"layers": 1, ');
            setTimeout(() => {
              req.destroy();
              resolve();
            }, 50);
          });
          const after = await post(`${direct.url}/plugin/resize`, JSON.stringify({ layers: 1 }), bearer);
          const refused = await json<{ reason: string; used: number }>(after);
          assert.deepEqual([after.status, refused.reason, refused.used], [402, 'limit_reached', 2]);
        } finally {
          await direct.close();
          await wrapped.close();
        }
      }));

    test('Figma sign-in, license activate and deactivate, the Lemon Squeezy, Gumroad and Stripe webhooks (Web Crypto signature check)', async () => {
      const figma = await startFigmaStandIn(PAT);
      const lemon = await startLemonSqueezyStandIn();
      const gumroad = await startGumroadStandIn();
      try {
        await withDatabase(dialect, async ({ db }) => {
          await linkPrices(db);
          const s = await start(db, { figmaUrl: figma.url, lemonUrl: lemon.url, gumroadUrl: gumroad.url });
          const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET, gumroad: { apiBaseUrl: gumroad.url } });
          try {
            await auth.plans.linkFigma('pro', 'PAID');
            figma.tokens.set('payment-token-1', { figmaUserId: '777', status: 'PAID', dateOfPurchase: new Date().toISOString() });
            let r = await post(`${s.url}/plugin/figma/sign-in`, JSON.stringify({ paymentToken: 'payment-token-1' }));
            const signedIn = await json<{ token: string; planSlug: string; figmaUserId: string; deviceId: string }>(r);
            assert.deepEqual([r.status, signedIn.planSlug, signedIn.figmaUserId], [200, 'pro', '777']);
            // Signing in again from the same install, with the device id it was given: the same device.
            r = await post(`${s.url}/plugin/figma/sign-in`, JSON.stringify({ paymentToken: 'payment-token-1', deviceId: signedIn.deviceId }));
            assert.equal((await json<{ deviceId: string }>(r)).deviceId, signedIn.deviceId);
            r = await post(`${s.url}/plugin/figma/sign-in`, JSON.stringify({ paymentToken: 42 }));
            assert.deepEqual([r.status, await json(r)], [400, { error: 'invalid_payment_token' }]);

            await auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: '111' });
            const user = await createUser(db);
            const { token } = await auth.tokens.issue(user, { deviceName: 'Figma desktop' });
            const bearer = { ...JSON_HEADERS, authorization: `Bearer ${token}` };
            const { key, license } = lemon.sell();
            r = await post(`${s.url}/plugin/license/activate`, JSON.stringify({ provider: 'lemonsqueezy', licenseKey: key }), bearer);
            assert.deepEqual([r.status, (await json<{ planSlug: string }>(r)).planSlug], [200, 'pro']);
            assert.deepEqual([...license.instances.values()], ['Figma desktop'], 'the device is the token\'s');
            r = await post(`${s.url}/plugin/license/deactivate`, JSON.stringify({ provider: 'lemonsqueezy', licenseKey: key }), bearer);
            assert.deepEqual([r.status, await json(r)], [200, { activationsUsed: 0 }]);
            r = await post(`${s.url}/plugin/license/activate`, JSON.stringify({ provider: 'lemonsqueezy', licenseKey: key }), bearer);
            assert.equal(r.status, 200);

            const refund = JSON.stringify({ meta: { event_name: 'order_refunded' }, data: { type: 'orders', id: license.orderId, attributes: { refunded: true, updated_at: new Date().toISOString() } } });
            r = await post(`${s.url}/webhooks/lemonsqueezy`, refund, { 'x-signature': 'f'.repeat(64) });
            assert.deepEqual([r.status, await json(r)], [401, { error: 'invalid_signature' }]);
            r = await post(`${s.url}/webhooks/lemonsqueezy`, refund, { 'x-signature': createHmac('sha256', LEMON_SECRET).update(refund).digest('hex') });
            assert.equal((await json<{ reason: string }>(r)).reason, 'applied');

            await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: 'plug-pro_Wsw==' });
            const g = gumroad.sell();
            await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: g.key, ...await device(db, user, 'laptop') });
            g.purchase.refunded = true;
            const ping = new URLSearchParams({ resource_name: 'refund', license_key: g.key, product_id: 'plug-pro_Wsw==' }).toString();
            r = await post(`${s.url}/webhooks/gumroad`, ping, { 'content-type': 'application/x-www-form-urlencoded' });
            assert.equal((await json<{ reason: string }>(r)).reason, 'applied');

            // Stripe: signed by Stripe's own library, checked here with Web Crypto.
            const stripeUser = await createUser(db);
            const now = Math.floor(Date.now() / 1000);
            const payload = JSON.stringify(event('customer.subscription.created',
              subscription({ userId: stripeUser, status: 'active', priceId: PRICES.pro, periodStart: now - 60, periodEnd: now + 30 * 86_400 }), now));
            const sign = (p: string, o: { secret?: string; timestamp?: number } = {}) => stripe.webhooks.generateTestHeaderString({ payload: p, secret: o.secret ?? STRIPE_SECRET, ...(o.timestamp ? { timestamp: o.timestamp } : {}) });
            for (const [header, why] of [
              [undefined, 'no header'],
              [sign(payload, { secret: 'whsec_another0123456789' }), 'another secret'],
              [sign(payload, { timestamp: now - 600 }), 'outside the tolerance'],
              [sign(payload).replace(/v1=[0-9a-f]+/, `v1=${'0'.repeat(64)}`), 'a forged v1'],
              [sign(`${payload} `), 'another body'],
            ] as const) {
              r = await post(`${s.url}/webhooks/stripe`, payload, header ? { 'stripe-signature': header } : {});
              assert.deepEqual([r.status, await json(r)], [401, { error: 'invalid_signature' }], why);
            }
            assert.equal((await auth.subscriptions.effectivePlan(stripeUser)).planSlug, 'free', 'nothing applied');
            r = await post(`${s.url}/webhooks/stripe`, payload, { 'stripe-signature': sign(payload) });
            assert.equal(r.status, 200);
            assert.equal((await json<{ received: boolean }>(r)).received, true);
            assert.equal((await auth.subscriptions.effectivePlan(stripeUser)).planSlug, 'pro');
            const other = JSON.stringify(event('invoice.paid', { id: 'in_1' }, now));
            r = await post(`${s.url}/webhooks/stripe`, other, { 'stripe-signature': sign(other) });
            assert.deepEqual(await json(r), { received: true, ignored: 'invoice.paid' });
            const broken = '{"type": "customer.subscription.created", ';
            r = await post(`${s.url}/webhooks/stripe`, broken, { 'stripe-signature': sign(broken) });
            assert.deepEqual([r.status, await json(r)], [400, { error: 'invalid_json' }]);
            for (const path of ['/webhooks/stripe', '/webhooks/lemonsqueezy', '/webhooks/gumroad']) {
              const pre = await fetch(`${s.url}${path}`, { method: 'OPTIONS', headers: { origin: 'null' } });
              assert.equal(pre.headers.get('access-control-allow-origin'), null, path);
            }
          } finally {
            await s.close();
          }
        });
      } finally {
        await figma.close();
        await lemon.close();
        await gumroad.close();
      }
    });

    test('routes exist only when their feature is configured; basePath prefixes every route', () =>
      withDatabase(dialect, async ({ db }) => {
        const bare = await start(db, { bare: true });
        try {
          for (const [method, path] of [['POST', '/plugin/login'], ['POST', '/plugin/login/complete'], ['GET', '/plugin/entitlements'], ['GET', '/plugin/jwks'],
            ['POST', '/plugin/figma/sign-in'], ['POST', '/plugin/license/activate'], ['POST', '/webhooks/stripe'], ['POST', '/webhooks/lemonsqueezy'], ['POST', '/webhooks/gumroad'], ['POST', '/plugin/resize']] as const) {
            const r = await fetch(`${bare.url}${path}`, { method, ...(method === 'POST' ? { body: '{}', headers: JSON_HEADERS } : {}) });
            assert.equal(r.status, 404, `${method} ${path}`);
          }
          assert.equal((await post(`${bare.url}/plugin/sign-out`, '')).status, 401, 'sign-out is always there');
        } finally {
          await bare.close();
        }
        const based = await start(db, { basePath: '/api/' });
        try {
          const r = await post(`${based.url}/api/plugin/login`, '{}');
          assert.equal(r.status, 200);
          assert.equal((await fetch(`${based.url}/api/plugin/login`, { method: 'OPTIONS', headers: { origin: 'null' } })).status, 204);
          assert.equal((await post(`${based.url}/plugin/login`, '{}')).status, 404, 'outside the base path');
          assert.equal((await post(`${based.url}/apiplugin/login`, '{}')).status, 404);
        } finally {
          await based.close();
        }
        assert.throws(() => createPluginServer(createPluginAuth(db), {}), { code: 'token_secret_missing' });
        const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
        assert.throws(() => createPluginServer(auth, { basePath: 'api' }), { code: 'server_config_invalid' });
        assert.throws(() => createPluginServer(auth, { website: { origin: 'https://app.example.com/login', userId: () => null } }), { code: 'server_config_invalid' });
        assert.throws(() => createPluginServer(auth, { stripe: { webhookSecret: 'sk_live_x' } }), { code: 'server_config_invalid' });
        assert.throws(() => createPluginServer(auth, { meter: { 'resize': { action: 'resize' } } }), { code: 'server_config_invalid' });
        assert.throws(() => createPluginServer(auth, { figmaOAuth: { clientId: 'x' } as never }), { code: 'figma_oauth_not_configured' });
      }));
  });
}

/** Streams `total` bytes in 64 KiB chunks (honouring back-pressure) until the server answers or closes. */
function streamBody(url: string, headers: Record<string, string>, total: number): Promise<{ status: number; body: string; sent: number }> {
  return new Promise((resolve, reject) => {
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    let sent = 0;
    let answered: { status: number; body: string } | null = null;
    let stopped = false;
    const req = httpRequest(url, { method: 'POST', headers });
    const finish = () => {
      if (stopped) return;
      stopped = true;
      if (answered) resolve({ ...answered, sent });
      else reject(new Error(`no answer after ${sent} bytes`));
    };
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        answered = { status: res.statusCode!, body };
        req.destroy();
        finish();
      });
    });
    req.on('error', () => setTimeout(finish, 200));
    req.on('close', () => setTimeout(finish, 200));
    const write = () => {
      while (!answered && !req.destroyed && sent < total) {
        sent += chunk.byteLength;
        if (!req.write(chunk)) return void req.once('drain', write);
      }
      if (sent >= total && !req.destroyed) req.end();
    };
    write();
  });
}
