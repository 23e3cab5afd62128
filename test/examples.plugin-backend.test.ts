// The end-to-end example (examples/plugin-backend.ts, a few lines over createPluginServer), driven the way a plugin, a login
// page and Stripe drive it: sign in through the hand-over, resize until the plan says no, upgrade
// through a signed webhook, resize again.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Stripe from 'stripe';
import { DIALECTS, createUser, device, withDatabase } from './helpers/databases.ts';
import { PRICES, event, linkPrices, subscription } from './helpers/stripe.ts';
import { createPluginBackend } from '../examples/plugin-backend.ts';
import { createPluginAuth } from '../src/auth.ts';
import { confirmationCode } from '../src/server/index.ts';
import { STANDIN_PLUGIN_ID, startFigmaStandIn } from './helpers/figma-standin.ts';
import { createHmac } from 'node:crypto';
import { startGumroadStandIn, startLemonSqueezyStandIn } from './helpers/license-standins.ts';
import { LEMON_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET as stripeWebhookSecret, TOKEN_SECRET } from './helpers/secrets.ts';

const stripe = new Stripe('sk_test_example_only');

for (const dialect of DIALECTS) {
  describe(`example plugin backend [${dialect}]`, () => {
    test('login hand-over, verify, metered resizes, Stripe upgrade', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
        const userId = await createUser(db);
        let signedIn: string | null = null;
        const handle = createPluginBackend(auth, {
          webUserId: async () => signedIn,
          stripeWebhookSecret,
          websiteOrigin: 'https://app.example.com',
        });
        const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
          handle(new Request(`http://api.example.com${path}`, {
            method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
          }));

        // The plugin begins; the browser gets the write key in the fragment.
        const begun = (await (await post('/plugin/login', {})).json()) as { readKey: string; loginUrl: string; code: string };
        const writeKey = new URL(begun.loginUrl).hash.slice(1);
        assert.ok(begun.loginUrl.startsWith('https://app.example.com/plugin-login#'));
        assert.equal(begun.code, await confirmationCode(writeKey), 'the plugin shows the code the page computes');
        assert.ok(writeKey.length >= 32 && writeKey !== begun.readKey);
        assert.deepEqual(await (await post('/plugin/login/poll', { readKey: begun.readKey })).json(), { status: 'pending' });
        const website = { origin: 'https://app.example.com' };
        assert.equal((await post('/plugin/login/complete', { writeKey }, website)).status, 401, 'nobody signed in on the web');
        signedIn = userId;
        assert.equal((await post('/plugin/login/complete', { writeKey })).status, 403, 'no Origin, no Sec-Fetch-Site: refused');
        assert.equal((await post('/plugin/login/complete', { writeKey }, website)).status, 200);
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
        assert.equal((await preflight('/webhooks/stripe')).headers.get('access-control-allow-origin'), null, 'webhook closed');
        const entitlements = await handle(new Request('http://api.example.com/plugin/entitlements', { headers: bearer }));
        assert.deepEqual([entitlements.status, entitlements.headers.get('access-control-allow-origin')], [404, '*'],
          'no entitlementSigningKey configured: no such route, readable by the plugin');
        assert.equal((await post('/plugin/resize', { layers: 1 }, { authorization: 'Bearer nope' })).status, 401);

        // Stripe: the user subscribes to pro; the next resize is allowed at once.
        const now = Math.floor(Date.now() / 1000);
        const payload = JSON.stringify(event('customer.subscription.created',
          subscription({ userId, status: 'active', priceId: PRICES.pro, periodStart: now - 60, periodEnd: now + 30 * 86_400 }), now));
        const webhook = await handle(new Request('http://api.example.com/webhooks/stripe', {
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
            tokenSecret: TOKEN_SECRET,
            figma: { personalAccessToken: pat, pluginId: STANDIN_PLUGIN_ID, apiBaseUrl: figma.url },
          });
          await auth.plans.linkFigma('pro', 'PAID');
          const handle = createPluginBackend(auth, { webUserId: async () => null, stripeWebhookSecret, websiteOrigin: 'https://app.example.com' });
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

    test('license keys: activate from the plugin, 402 gone; a signed Lemon Squeezy refund and a Gumroad ping through the webhook routes; the webhooks stay closed to CORS', async () => {
      const lemon = await startLemonSqueezyStandIn();
      const gumroad = await startGumroadStandIn();
      const webhookSecret = LEMON_WEBHOOK_SECRET;
      try {
        await withDatabase(dialect, async ({ db }) => {
          const auth = createPluginAuth(db, {
            tokenSecret: TOKEN_SECRET,
            lemonSqueezy: { apiBaseUrl: lemon.url, webhookSecret },
            gumroad: { apiBaseUrl: gumroad.url },
          });
          await auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: '111' });
          await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: 'plug-pro_Wsw==' });
          const handle = createPluginBackend(auth, { webUserId: async () => null, stripeWebhookSecret, websiteOrigin: 'https://app.example.com' });
          const post = (path: string, body: string, headers: Record<string, string> = {}) =>
            handle(new Request(`http://api.example.com${path}`, { method: 'POST', headers, body }));
          const user = await createUser(db);
          const { token } = await auth.tokens.issue(user, { deviceName: 'Figma desktop' });
          const resize = () => post('/plugin/resize', JSON.stringify({ layers: 20 }), { authorization: `Bearer ${token}`, 'content-type': 'application/json' });
          assert.equal((await resize()).status, 402, 'free: a batch of 20 is too large');
          const { key, license } = lemon.sell();
          const activated = await post('/plugin/license/activate', JSON.stringify({ provider: 'lemonsqueezy', licenseKey: key }), { authorization: `Bearer ${token}`, 'content-type': 'application/json' });
          assert.equal(activated.status, 200);
          assert.equal(activated.headers.get('access-control-allow-origin'), '*', 'the plugin UI can read it');
          const body = (await activated.json()) as { planSlug: string; activationsUsed: number };
          assert.deepEqual([body.planSlug, body.activationsUsed], ['pro', 1]);
          assert.deepEqual([...license.instances.values()], ['Figma desktop'], 'the device is the plugin token\'s');
          assert.equal((await resize()).status, 200);
          const other = await createUser(db);
          const { token: otherToken } = await auth.tokens.issue(other, { deviceName: 'laptop' });
          const stolen = await post('/plugin/license/activate', JSON.stringify({ provider: 'lemonsqueezy', licenseKey: key }), { authorization: `Bearer ${otherToken}` });
          assert.deepEqual([stolen.status, await stolen.json()], [415, { error: 'unsupported_media_type' }], 'JSON routes need application/json');
          const stolenJson = await post('/plugin/license/activate', JSON.stringify({ provider: 'lemonsqueezy', licenseKey: key }), { authorization: `Bearer ${otherToken}`, 'content-type': 'application/json' });
          assert.deepEqual([stolenJson.status, await stolenJson.json()], [403, { error: 'license_in_use' }], '403: the plugin keeps its session');
          const refund = JSON.stringify({ meta: { event_name: 'order_refunded' }, data: { type: 'orders', id: license.orderId, attributes: { refunded: true, updated_at: new Date().toISOString() } } });
          assert.equal((await post('/webhooks/lemonsqueezy', refund, { 'x-signature': 'f'.repeat(64) })).status, 401, 'invalid_signature');
          const signed = await post('/webhooks/lemonsqueezy', refund, { 'x-signature': createHmac('sha256', webhookSecret).update(refund).digest('hex') });
          assert.deepEqual(await signed.json(), { applied: true, reason: 'applied', licenses: 1, event: 'order_refunded', recorded: false });
          assert.equal((await resize()).status, 402, 'revoked at once');
          // Gumroad: the ping is re-verified; while Gumroad is down the route answers 503 so it retries.
          const g = gumroad.sell();
          await auth.licenses.activate(other, { provider: 'gumroad', licenseKey: g.key, ...await device(db, other, 'laptop') });
          g.purchase.refunded = true;
          const ping = new URLSearchParams({ resource_name: 'refund', license_key: g.key, product_id: 'plug-pro_Wsw==' }).toString();
          gumroad.failure = { kind: 'http', status: 503 };
          assert.equal((await post('/webhooks/gumroad', ping, { 'content-type': 'application/x-www-form-urlencoded' })).status, 503);
          gumroad.failure = null;
          const pinged = await post('/webhooks/gumroad', ping, { 'content-type': 'application/x-www-form-urlencoded' });
          assert.equal(((await pinged.json()) as { reason: string }).reason, 'applied');
          assert.equal((await auth.subscriptions.effectivePlan(other)).source, 'free');
          const preflight = (path: string) => handle(new Request(`http://api.example.com${path}`, { method: 'OPTIONS', headers: { origin: 'null' } }));
          assert.equal((await preflight('/plugin/license/activate')).headers.get('access-control-allow-origin'), '*');
          assert.equal((await preflight('/webhooks/lemonsqueezy')).headers.get('access-control-allow-origin'), null, 'webhook closed');
          assert.equal((await preflight('/webhooks/gumroad')).headers.get('access-control-allow-origin'), null, 'webhook closed');
        });
      } finally {
        await lemon.close();
        await gumroad.close();
      }
    });
  });
}
