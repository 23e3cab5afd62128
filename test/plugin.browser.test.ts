// The plugin client in a real browser, loaded the way Figma loads a plugin UI: inside
// <iframe sandbox="allow-scripts" srcdoc="..."> (origin "null", so Chromium enforces CORS) on a
// page served from 127.0.0.1, whose own script stands in for the main thread (clientStorage,
// openExternal) behind the real installPluginBridge. The backend is the example backend
// (withPluginCors) on another 127.0.0.1 port, on both databases. No browser, no test: it fails.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Frame, Page } from 'playwright-core';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { launchChromium, pluginHostPage } from './helpers/plugin-host.ts';
import { createPluginBackend } from '../examples/plugin-backend.ts';
import { createPluginAuth } from '../src/auth.ts';
import { generateEntitlementKey } from '../src/entitlements/index.ts';
import { serve, withPluginCors, type Served } from '../src/http/index.ts';
import type { CallResult, SignInResult, EntitlementCheck, PluginClient } from '../src/plugin/index.ts';
import { TOKEN_SECRET } from './helpers/secrets.ts';

declare global {
  interface Window {
    client: PluginClient;
    verify: typeof import('../src/plugin/index.ts').verifyEntitlementSnapshot;
    signInResult: SignInResult | null;
  }
}

/** The host page (helpers/plugin-host.ts) with this file's plugin UI. */
function hostPage(apiBaseUrl: string): Promise<string> {
  return pluginHostPage(`
    import { createPluginClient, verifyEntitlementSnapshot } from './src/plugin/index.ts';
    window.client = createPluginClient({ apiBaseUrl: API, retry: { baseDelayMs: 20, maxDelayMs: 60 }, poll: { initialDelayMs: 50, maxDelayMs: 200 } });
    window.verify = verifyEntitlementSnapshot;`, { API: JSON.stringify(apiBaseUrl) });
}

let browser: Browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

for (const dialect of DIALECTS) {
  describe(`plugin client in Chromium [${dialect}]`, () => {
    test('sign in, metered calls to the 402, a retried call counted once, snapshots, sign-out', () =>
      withDatabase(dialect, async ({ db }) => {
        const key = await generateEntitlementKey();
        const tokenSecret = TOKEN_SECRET;
        const auth = createPluginAuth(db, { tokenSecret, entitlementSigningKey: key });
        const shortLived = createPluginAuth(db, { tokenSecret, entitlementSigningKey: key, entitlementTtlSeconds: 1 });
        const userId = await createUser(db);
        let signedIn: string | null = null;
        const backend = createPluginBackend(auth, {
          webUserId: async () => signedIn,
          websiteOrigin: 'https://app.example.com',
        });
        // Fault injection: the next N resizes are processed (and counted), then answered 503, as
        // when a response is lost after the database committed.
        let failAfterProcessing = 0;
        const log: Array<{ method: string; path: string; key: string | null; origin: string | null }> = [];
        const api: Served = await serve(withPluginCors(async (request) => {
          const path = new URL(request.url).pathname;
          log.push({ method: request.method, path, key: request.headers.get('idempotency-key'), origin: request.headers.get('origin') });
          const response = await backend(request);
          if (path === '/plugin/resize' && request.method === 'POST' && failAfterProcessing > 0) {
            failAfterProcessing--;
            return Response.json({ error: 'unavailable' }, { status: 503 });
          }
          return response;
        }));
        const html = await hostPage(api.url);
        const site: Served = await serve(() => new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8' } }));
        let page: Page | undefined;
        try {
          page = await browser.newPage();
          await page.goto(site.url);
          const frame: Frame = page.frames().find((f) => f !== page!.mainFrame())!;
          await frame.waitForFunction(() => typeof window.client === 'object');
          assert.equal(await frame.evaluate(() => self.origin), 'null', 'the UI runs at the opaque origin, as in Figma');

          // Without withPluginCors a route is unreachable from the plugin: Chromium refuses it.
          const blocked = await frame.evaluate((u) =>
            fetch(`${u}/plugin/login/complete`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
              .then(() => 'reached', (e: Error) => e.name), api.url);
          assert.equal(blocked, 'TypeError');
          assert.ok(!log.some((r) => r.method === 'POST' && r.path === '/plugin/login/complete'), 'only the preflight was sent');

          // Sign in: window.open cannot open a popup from this sandbox, so the bridge's openExternal does.
          await frame.evaluate(() => {
            window.signInResult = null;
            void window.client.signIn().then((r) => (window.signInResult = r));
          });
          await page.waitForFunction(() => window.stand.opened.length === 1);
          const loginUrl = await page.evaluate(() => window.stand.opened[0]!);
          assert.ok(loginUrl.startsWith('https://app.example.com/plugin-login#'));
          await new Promise((r) => setTimeout(r, 150)); // a few pending polls first
          signedIn = userId; // the website: the user is signed in there and confirms
          const confirmed = await backend(new Request('http://api.test/plugin/login/complete', {
            method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://app.example.com' }, body: JSON.stringify({ writeKey: new URL(loginUrl).hash.slice(1) }),
          }));
          assert.equal(confirmed.status, 200);
          await frame.waitForFunction(() => window.signInResult !== null);
          const signIn = (await frame.evaluate(() => window.signInResult))!;
          assert.equal(signIn.kind, 'ok');
          assert.ok(log.filter((r) => r.path === '/plugin/login/poll' && r.method === 'POST').length >= 2, 'it polled');
          assert.ok(log.filter((r) => r.method === 'POST').every((r) => r.origin === 'null'));
          const stored = await page.evaluate(() => [...window.stand.storage.values()][0] as { token: string; expiresAt: string });
          assert.equal((await auth.tokens.verify(stored.token)).userId, userId, 'the main thread holds the token');
          assert.equal(await frame.evaluate(() => window.client.signedIn), true);

          // Metered calls, until the free plan (2 in total) says no.
          type Resize = CallResult<{ used: number; replayed: boolean }>;
          const resize = (layers = 1) => frame.evaluate((n) => window.client.call('/plugin/resize', { layers: n }), layers) as Promise<Resize>;
          let r = await resize();
          assert.deepEqual(r.kind === 'ok' && [r.data.used, r.data.replayed], [1, false]);

          failAfterProcessing = 1;
          const before = log.length;
          r = await resize();
          assert.deepEqual(r.kind === 'ok' && [r.data.used, r.data.replayed], [2, true], 'the retry got the first answer back');
          const attempts = log.slice(before).filter((x) => x.method === 'POST' && x.path === '/plugin/resize');
          assert.equal(attempts.length, 2);
          assert.ok(attempts[0]!.key && attempts[0]!.key === attempts[1]!.key, 'one Idempotency-Key across the retry');
          const [counted] = await db.query<{ total: number; rows: number }>(
            `SELECT (SELECT COALESCE(sum(count), 0)::integer FROM public.daily_usage_summary WHERE user_id = $1::uuid) AS total,
                    (SELECT count(*)::integer FROM public.plugin_usage WHERE user_id = $1::uuid AND idempotency_key = $2::text) AS rows`,
            [userId, attempts[0]!.key]);
          assert.deepEqual(counted, { total: 2, rows: 1 }, 'counted once');

          r = await resize();
          assert.equal(r.kind, 'upgrade');
          if (r.kind === 'upgrade') {
            assert.deepEqual([r.usage.allowed, r.usage.reason, r.usage.planSlug, r.usage.remaining, r.usage.usageLimit], [false, 'limit_reached', 'free', 0, 2]);
          }

          // 5xx on every attempt: unavailable, after 4 attempts with one key; 4xx: never retried.
          failAfterProcessing = 10;
          let mark = log.length;
          r = await resize();
          assert.deepEqual(r, { kind: 'unavailable', status: 503, attempts: 4 });
          failAfterProcessing = 0;
          assert.equal(new Set(log.slice(mark).filter((x) => x.method === 'POST').map((x) => x.key)).size, 1);
          mark = log.length;
          r = await resize(0);
          assert.deepEqual(r, { kind: 'refused', status: 400, code: 'invalid_items' });
          assert.equal(log.slice(mark).filter((x) => x.method === 'POST').length, 1, 'a 4xx is not retried');
          const poll = await frame.evaluate(() => window.client.call('/plugin/login/poll', { readKey: 'k'.repeat(43) }));
          assert.deepEqual(poll, { kind: 'start_over', code: 'login_not_found' });
          assert.equal(await frame.evaluate(() => window.client.checkout()), 'unavailable', 'payments are off in this bridge');

          // The snapshot, verified in the browser against the JWKS, for the signed-in user (client.userId());
          // another user's snapshot is wrong_user; no user given is a TypeError; an expired one refused.
          const jwks = await auth.entitlements.jwks();
          const me = await frame.evaluate(() => window.client.userId());
          assert.equal(me, userId);
          const snap = await frame.evaluate(() => window.client.call('/plugin/entitlements')) as CallResult<{ jwt: string }>;
          assert.equal(snap.kind, 'ok');
          const mine = snap.kind === 'ok' ? snap.data.jwt : '';
          const checked = await frame.evaluate(([jwt, keys, u]) => window.verify(jwt, keys as never, { userId: u }), [mine, jwks, me!] as const) as EntitlementCheck;
          assert.equal(checked.kind, 'ok');
          if (checked.kind === 'ok') assert.deepEqual([checked.entitlement.plan, checked.entitlement.remaining, checked.entitlement.usageLimit], ['free', 0, 2]);
          const otherUser = await createUser(db);
          const theirs = (await auth.entitlements.snapshot(otherUser)).jwt;
          assert.deepEqual(await frame.evaluate(([jwt, keys, u]) => window.verify(jwt, keys as never, { userId: u }), [theirs, jwks, me!] as const), { kind: 'wrong_user' });
          assert.match(await frame.evaluate(([jwt, keys]) => window.verify(jwt, keys as never, undefined as never).then(() => 'resolved', (e: Error) => `${e.name}: ${e.message}`), [mine, jwks] as const), /^TypeError: .*userId/);
          // A retired key in the JWKS carries its end (exp): a snapshot that would outlive it, i.e. one
          // signed with it after the rotation, is refused in the browser; one that ends in time verifies.
          const retire = async (ms: number) => createPluginAuth(db, { tokenSecret, entitlementSigningKey: await generateEntitlementKey(), entitlementPreviousKeys: [{ jwk: key, until: new Date(Date.now() + ms) }] }).entitlements.jwks();
          const verifyKind = (keys: unknown) => frame.evaluate(([jwt, k, u]) => window.verify(jwt, k as never, { userId: u }).then((c) => (c.kind === 'invalid' ? c.reason : c.kind)), [mine, keys, me!] as const);
          assert.equal(await verifyKind(await retire(960_000)), 'ok', 'rotated just now: the key ends after this snapshot does');
          assert.equal(await verifyKind(await retire(300_000)), 'key_retired', 'rotated 10 minutes ago: a snapshot signed now with the old key is refused');
          const soon = await shortLived.entitlements.snapshot(userId);
          await new Promise((resolve) => setTimeout(resolve, soon.expiresAt.getTime() - Date.now() + 1100));
          const expired = await frame.evaluate(([jwt, keys, u]) => window.verify(jwt, keys as never, { userId: u, clockToleranceSeconds: 0 }), [soon.jwt, jwks, userId] as const);
          assert.deepEqual(expired, { kind: 'expired' });
          const foreign = await frame.evaluate(([jwt, keys, u]) => window.verify(jwt, keys as never, { userId: u }), [soon.jwt, { keys: [] }, userId] as const);
          assert.equal(foreign.kind, 'invalid');

          // Sign-out: gone from the main thread's storage; the next call asks for a sign-in without a request.
          await frame.evaluate(() => window.client.signOut());
          await assert.rejects(auth.tokens.verify(stored.token), { code: 'token_revoked' }, 'the server\'s /plugin/sign-out revoked it');
          // The session is gone; the install's device id stays (the next sign-in sends it back).
          assert.deepEqual(await page.evaluate(() => [...window.stand.storage.keys()]), ['figma-plugin-auth-db.session.device']);
          mark = log.length;
          assert.deepEqual(await frame.evaluate(() => window.client.call('/plugin/resize', { layers: 1 })), { kind: 'sign_in_again', code: 'not_signed_in' });
          assert.equal(log.length, mark);

          // A stored token the server refuses: 401 -> sign in again, and the stored session is cleared.
          await page.evaluate(() => window.stand.storage.set('figma-plugin-auth-db.session', { token: 'x.y.z', expiresAt: new Date(Date.now() + 3_600_000).toISOString() }));
          assert.deepEqual(await frame.evaluate(() => window.client.call('/plugin/resize', { layers: 1 })), { kind: 'sign_in_again', code: 'token_invalid' });
          assert.deepEqual(await page.evaluate(() => [...window.stand.storage.keys()]), ['figma-plugin-auth-db.session.device']);
        } finally {
          await page?.close();
          await site.close();
          await api.close();
        }
      }));
  });
}
