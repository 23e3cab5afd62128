// The README's end-to-end example (examples/plugin-backend.ts), driven the way a plugin, a login
// page and Stripe drive it: sign in through the hand-over, resize until the plan says no, upgrade
// through a signed webhook, resize again.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Stripe from 'stripe';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { PRICES, event, linkPrices, subscription } from './helpers/stripe.ts';
import { createPluginBackend } from '../examples/plugin-backend.ts';
import { createPluginAuth } from '../src/auth.ts';
import { startFigmaStandIn } from './helpers/figma-standin.ts';

const stripe = new Stripe('sk_test_example_only');
const stripeWebhookSecret = 'whsec_example_only';

for (const dialect of DIALECTS) {
  describe(`example plugin backend [${dialect}]`, () => {
    test('login hand-over, verify, metered resizes, Stripe upgrade', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const auth = createPluginAuth(db, { tokenSecret: 'example-secret-that-is-long-enough-0123456789' });
        const userId = await createUser(db);
        let signedIn: string | null = null;
        const handle = createPluginBackend(auth, {
          webUserId: async () => signedIn,
          stripe,
          stripeWebhookSecret,
          loginPageUrl: 'https://app.example.com/plugin-login',
        });
        const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
          handle(new Request(`http://api.example.com${path}`, {
            method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
          }));

        // The plugin begins; the browser gets the write key in the fragment.
        const begun = (await (await post('/plugin/login', {})).json()) as { readKey: string; loginUrl: string };
        const writeKey = new URL(begun.loginUrl).hash.slice(1);
        assert.ok(writeKey.length >= 32 && writeKey !== begun.readKey);
        assert.deepEqual(await (await post('/plugin/login/poll', { readKey: begun.readKey })).json(), { status: 'pending' });
        assert.equal((await post('/plugin/login/complete', { writeKey })).status, 401, 'nobody signed in on the web');
        signedIn = userId;
        assert.equal((await post('/plugin/login/complete', { writeKey })).status, 200);
        const done = (await (await post('/plugin/login/poll', { readKey: begun.readKey })).json()) as { status: string; token: string };
        assert.equal(done.status, 'done');
        const again = await post('/plugin/login/poll', { readKey: begun.readKey });
        assert.equal(again.status, 410, 'the token is handed out once');

        // Free plan: 2 resizes ever, 1 layer each.
        const bearer = { authorization: `Bearer ${done.token}` };
        const resize = (layers: number, key?: string) =>
          post('/plugin/resize', { layers }, key ? { ...bearer, 'idempotency-key': key } : bearer);
        let r = await resize(1, 'req-1');
        assert.equal(r.status, 200);
        assert.equal(((await r.json()) as { used: number }).used, 1);
        r = await resize(1, 'req-1');
        assert.equal(((await r.json()) as { replayed: boolean }).replayed, true, 'a retried request counts once');
        assert.equal((await resize(3)).status, 402, 'batch too large on free');
        assert.equal((await resize(1)).status, 200);
        r = await resize(1);
        assert.equal(r.status, 402);
        assert.equal(r.headers.get('access-control-allow-origin'), '*', 'the plugin can read the 402');
        assert.equal(((await r.json()) as { reason: string }).reason, 'limit_reached');
        const preflight = (path: string) => handle(new Request(`http://api.example.com${path}`, { method: 'OPTIONS', headers: { origin: 'null' } }));
        assert.equal((await preflight('/plugin/resize')).status, 204);
        assert.equal((await preflight('/plugin/login/complete')).headers.get('access-control-allow-origin'), null, 'website-only');
        assert.equal((await preflight('/stripe/webhook')).headers.get('access-control-allow-origin'), null, 'webhook closed');
        assert.equal((await handle(new Request('http://api.example.com/plugin/entitlements', { headers: bearer }))).status, 500,
          'no entitlementSigningKey configured: a server error, readable by the plugin');
        assert.equal((await post('/plugin/resize', { layers: 1 }, { authorization: 'Bearer nope' })).status, 401);

        // Stripe: the user subscribes to pro; the next resize is allowed at once.
        const now = Math.floor(Date.now() / 1000);
        const payload = JSON.stringify(event('customer.subscription.created',
          subscription({ userId, status: 'active', priceId: PRICES.pro, periodStart: now - 60, periodEnd: now + 30 * 86_400 }), now));
        const webhook = await handle(new Request('http://api.example.com/stripe/webhook', {
          method: 'POST',
          headers: { 'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload, secret: stripeWebhookSecret }) },
          body: payload,
        }));
        assert.equal(webhook.status, 200);
        r = await resize(20);
        assert.equal(r.status, 200);
        const answer = (await r.json()) as { planSlug: string; usageLimit: number; batchLimit: number };
        assert.deepEqual([answer.planSlug, answer.usageLimit, answer.batchLimit], ['pro', 6, 20]);
      }));

    test('Figma checkout: sign in with a payment token, 402 on free, checkout, sign in again, resize on pro', async () => {
      const pat = 'figd_example-personal-access-token';
      const figma = await startFigmaStandIn(pat);
      try {
        await withDatabase(dialect, async ({ db }) => {
          const auth = createPluginAuth(db, {
            tokenSecret: 'example-secret-that-is-long-enough-0123456789',
            figma: { personalAccessToken: pat, apiBaseUrl: figma.url },
          });
          await auth.plans.linkFigma('pro', 'PAID');
          const handle = createPluginBackend(auth, { webUserId: async () => null, stripe, stripeWebhookSecret, loginPageUrl: 'https://app.example.com/plugin-login' });
          const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
            handle(new Request(`http://api.example.com${path}`, {
              method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
            }));
          figma.tokens.set('payment-token-1', { figmaUserId: '777', status: 'UNPAID' });
          const first = (await (await post('/plugin/figma/sign-in', { paymentToken: 'payment-token-1' })).json()) as { token: string; userId: string; figmaUserId: string; planSlug: string };
          assert.deepEqual([first.figmaUserId, first.planSlug], ['777', 'free']);
          const resize = (token: string, layers: number) => post('/plugin/resize', { layers }, { authorization: `Bearer ${token}` });
          assert.equal((await resize(first.token, 1)).status, 200);
          assert.equal((await resize(first.token, 1)).status, 200);
          assert.equal((await resize(first.token, 1)).status, 402, 'free used up: the plugin opens Figma checkout');
          // figma.payments.initiateCheckoutAsync() succeeded; the plugin sends a fresh payment token.
          figma.tokens.set('payment-token-2', { figmaUserId: '777', status: 'PAID', dateOfPurchase: new Date().toISOString() });
          const second = (await (await post('/plugin/figma/sign-in', { paymentToken: 'payment-token-2' })).json()) as { token: string; userId: string; planSlug: string };
          assert.deepEqual([second.userId, second.planSlug], [first.userId, 'pro']);
          const r = await resize(second.token, 20);
          assert.equal(r.status, 200);
          assert.equal(((await r.json()) as { planSlug: string }).planSlug, 'pro');
          assert.equal((await post('/plugin/figma/sign-in', { paymentToken: 'unknown-token' })).status, 401, 'payment_token_rejected');
          figma.failure = { kind: 'http', status: 503 };
          assert.equal((await post('/plugin/figma/sign-in', { paymentToken: 'payment-token-3' })).status, 503, 'figma_unavailable');
        });
      } finally {
        await figma.close();
      }
    });
  });
}
