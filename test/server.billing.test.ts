// The billing routes of createPluginServer over real HTTP on 127.0.0.1, on both databases, against
// the Stripe stand-in: a checkout session bound to the signed-in user (the webhook that follows
// finds them at once), the customer portal, Stripe's refusals and rate limits answered with the
// status table, and hostile input refused with nothing sent to Stripe and nothing written.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { DAY, PRICES, T0, linkPrices, subscription } from './helpers/stripe.ts';
import { STANDIN_SECRET_KEY, startStripeStandin, type StripeStandin } from './helpers/stripe-standin.ts';
import { TOKEN_SECRET } from './helpers/secrets.ts';
import { rejectsWith } from './helpers/assert.ts';
import { createPluginAuth } from '../src/auth.ts';
import { serve } from '../src/http/node.ts';
import { createPluginServer, type LogEntry, type PluginServerOptions } from '../src/server/index.ts';
import { ServiceError, SetupError, ValidationError } from '../src/core/errors.ts';
import type { Database } from '../src/core/db.ts';

const SUCCESS = 'https://app.example.com/thanks?session={CHECKOUT_SESSION_ID}';
const CANCEL = 'https://app.example.com/pricing';
const RETURN = 'https://app.example.com/account';

async function start(db: Database, standin: StripeStandin, billing: Partial<PluginServerOptions['billing']> = {}) {
  const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET, stripe: { secretKey: STANDIN_SECRET_KEY, apiBaseUrl: standin.url, retryBaseMs: 1, maxRetries: 2 } });
  const logs: LogEntry[] = [];
  const served = await serve(createPluginServer(auth, { log: (e) => logs.push(e), billing: { successUrl: SUCCESS, cancelUrl: CANCEL, returnUrl: RETURN, ...billing } }));
  return { auth, url: served.url, logs, close: () => served.close() };
}

const scenario = (fn: (s: { db: Database; standin: StripeStandin; server: Awaited<ReturnType<typeof start>>; userId: string; token: string; email: string }) => Promise<void>) =>
  (dialect: (typeof DIALECTS)[number]) =>
    withDatabase(dialect, async ({ db }) => {
      const standin = await startStripeStandin();
      const server = await start(db, standin);
      try {
        await linkPrices(db);
        for (const price of Object.values(PRICES)) standin.prices.add(price);
        const email = `buyer-${Date.now()}@example.com`;
        const userId = await createUser(db, email);
        const { token } = await server.auth.tokens.issue(userId);
        await fn({ db, standin, server, userId, token, email });
      } finally {
        await server.close();
        await standin.close();
      }
    });

const call = (url: string, token: string | null, body?: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  fetch(url, { method: 'POST', headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? headers : {}) }, ...(body !== undefined ? { body } : {}) });

const subscriptionRows = (db: Database) => db.query('SELECT * FROM public.user_subscriptions ORDER BY user_id');

for (const dialect of DIALECTS) {
  describe(`server billing routes [${dialect}]`, () => {
    test('checkout binds the session to the signed-in user, the webhook that follows finds them, and the portal opens for their customer', () =>
      scenario(async ({ db, standin, server, userId, token, email }) => {
        const response = await call(`${server.url}/plugin/billing/checkout`, token, JSON.stringify({ plan: 'pro' }));
        assert.equal(response.status, 200);
        assert.equal(response.headers.get('access-control-allow-origin'), '*', 'opened to the plugin UI');
        const body = await response.json() as { id: string; url: string; expiresAt: string };
        assert.match(body.id, /^cs_test_/);
        assert.equal(body.url, `https://checkout.stripe.com/c/pay/${body.id}`);
        assert.ok(new Date(body.expiresAt).getTime() > Date.now());

        const [session] = standin.checkoutSessions;
        assert.deepEqual(session!.params, {
          mode: 'subscription',
          'line_items[0][price]': PRICES.pro,
          'line_items[0][quantity]': '1',
          client_reference_id: userId,
          'metadata[user_id]': userId,
          'subscription_data[metadata][user_id]': userId,
          success_url: SUCCESS,
          cancel_url: CANCEL,
          customer_email: email,
        });
        const sent = standin.requests.find((r) => r.path === '/v1/checkout/sessions')!;
        assert.match(sent.idempotencyKey ?? '', /^[0-9a-f-]{36}$/);

        // Stripe creates the subscription with subscription_data.metadata, and its first event
        // arrives: the sync finds the user by it, with no row and no customer known before.
        const created = subscription({ id: 'sub_bought', customer: 'cus_bought', status: 'active', priceId: PRICES.pro, periodStart: T0, periodEnd: T0 + 30 * DAY });
        created.metadata = { user_id: session!.params['subscription_data[metadata][user_id]'] };
        standin.customers.add('cus_bought');
        const synced = await server.auth.subscriptions.syncFromStripe(created as never, { eventCreated: Math.floor(Date.now() / 1000) });
        assert.deepEqual(synced, { applied: true, userId, planSlug: 'pro', status: 'active' });

        const portal = await call(`${server.url}/plugin/billing/portal`, token);
        assert.equal(portal.status, 200);
        const link = await portal.json() as { id: string; url: string };
        assert.match(link.id, /^bps_/);
        assert.match(link.url, /^https:\/\/billing\.stripe\.com\/p\/session\/test_/);
        assert.deepEqual(standin.portalSessions[0]!.params, { customer: 'cus_bought', return_url: RETURN });

        // A second checkout (3 seats) names the customer the user now has, not an email.
        const again = await call(`${server.url}/plugin/billing/checkout`, token, JSON.stringify({ plan: 'basic', quantity: 3 }));
        assert.equal(again.status, 200);
        assert.equal(standin.checkoutSessions[1]!.params.customer, 'cus_bought');
        assert.equal(standin.checkoutSessions[1]!.params.customer_email, undefined);
        assert.equal(standin.checkoutSessions[1]!.params['line_items[0][quantity]'], '3');
        assert.equal(standin.checkoutSessions[1]!.params['line_items[0][price]'], PRICES.basic);
        // A user created by Sign in with Figma has no real email: Checkout asks the buyer for one.
        const figmaUser = await createUser(db, 'figma-1234567@users.figma.invalid');
        await server.auth.subscriptions.createCheckoutSession(figmaUser, { plan: 'pro', successUrl: SUCCESS });
        assert.equal(standin.checkoutSessions[2]!.params.customer_email, undefined);
        assert.equal(standin.checkoutSessions[2]!.params.client_reference_id, figmaUser);
        // The API is the same without the server.
        const direct = await server.auth.subscriptions.createPortalSession(userId, { returnUrl: 'http://localhost:3000/account' });
        assert.match(direct.url, /^https:\/\/billing\.stripe\.com\//);
      })(dialect));

    test('hostile input: 401 without a valid session, typed 4xx for bad bodies; nothing reaches Stripe, nothing is written', () =>
      scenario(async ({ db, standin, server, token }) => {
        const before = await subscriptionRows(db);
        const checkout = `${server.url}/plugin/billing/checkout`;
        const expect = async (response: Response, status: number, code: string) => {
          assert.equal(response.status, status, `${code}: ${response.status}`);
          assert.deepEqual(await response.json(), { error: code });
        };
        await expect(await call(checkout, null, JSON.stringify({ plan: 'pro' })), 401, 'token_invalid');
        await expect(await call(checkout, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', JSON.stringify({ plan: 'pro' })), 401, 'token_invalid');
        await expect(await call(`${server.url}/plugin/billing/portal`, `${token}x`), 401, 'token_invalid');
        await expect(await call(checkout, token, JSON.stringify({ plan: 'nope' })), 400, 'unknown_plan');
        await expect(await call(checkout, token, JSON.stringify({ plan: "pro' OR '1'='1" })), 400, 'unknown_plan');
        await expect(await call(checkout, token, JSON.stringify({ plan: { $ne: null } })), 400, 'unknown_plan');
        await expect(await call(checkout, token, JSON.stringify({})), 400, 'unknown_plan');
        await expect(await call(checkout, token, JSON.stringify({ plan: 'free' })), 400, 'plan_not_for_sale');
        for (const quantity of [0, -1, 1.5, '3', 1e9, null]) {
          await expect(await call(checkout, token, JSON.stringify({ plan: 'pro', quantity })), 400, 'invalid_quantity');
        }
        await expect(await call(checkout, token, '{"plan":'), 400, 'invalid_json');
        await expect(await call(checkout, token, '["pro"]'), 400, 'invalid_json');
        await expect(await call(checkout, token, 'plan=pro', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
        await expect(await call(checkout, token, JSON.stringify({ plan: 'x'.repeat(20_000) })), 413, 'body_too_large');
        // No Stripe customer yet: the portal says so (409) instead of asking Stripe.
        await expect(await call(`${server.url}/plugin/billing/portal`, token), 409, 'no_stripe_customer');
        const get = await fetch(checkout);
        assert.equal(get.status, 405);
        assert.equal(standin.requests.length, 0, 'nothing was sent to Stripe');
        assert.deepEqual(await subscriptionRows(db), before);
        for (const entry of server.logs) assert.ok(!JSON.stringify(entry).includes(token), 'no token in the log');
      })(dialect));

    test('Stripe\'s refusals: a price Stripe does not have is 502 stripe_request_failed naming param; a rate limit past the retries is 503 with one idempotency key', () =>
      scenario(async ({ standin, server, token, userId }) => {
        standin.prices.delete(PRICES.enterprise);
        const refused = await call(`${server.url}/plugin/billing/checkout`, token, JSON.stringify({ plan: 'enterprise' }));
        assert.equal(refused.status, 502);
        const refusal = await refused.json() as { error: string; requestId: string };
        assert.equal(refusal.error, 'stripe_request_failed');
        assert.equal(refusal.requestId, refused.headers.get('x-request-id'), 'a 5xx names its request id for the logs');
        await rejectsWith(server.auth.subscriptions.createCheckoutSession(userId, { plan: 'enterprise', successUrl: SUCCESS }), ServiceError, 'stripe_request_failed', (e) => {
          assert.match(e.message, /invalid_request_error, resource_missing, param line_items\[0\]\[price\]/);
        });

        standin.requests.length = 0;
        standin.rateLimit(3, 0);
        const limited = await call(`${server.url}/plugin/billing/checkout`, token, JSON.stringify({ plan: 'pro' }));
        assert.equal(limited.status, 503);
        const body = await limited.json() as { error: string };
        assert.equal(body.error, 'stripe_unavailable');
        assert.deepEqual(standin.requests.map((r) => r.status), [429, 429, 429]);
        assert.equal(new Set(standin.requests.map((r) => r.idempotencyKey)).size, 1, 'each retry carries the same idempotency key');
        assert.equal(standin.checkoutSessions.length, 0);

        // Stripe made the session but its answer was lost (a 500 after the work): the retry, with
        // the same idempotency key, gets the first answer replayed, and no second session exists.
        standin.requests.length = 0;
        standin.loseAnswers(1);
        const ok = await call(`${server.url}/plugin/billing/checkout`, token, JSON.stringify({ plan: 'pro' }));
        assert.equal(ok.status, 200);
        assert.deepEqual(standin.requests.map((r) => r.status), [500, 200]);
        assert.equal(standin.requests[0]!.idempotencyKey, standin.requests[1]!.idempotencyKey);
        assert.equal(standin.checkoutSessions.length, 1);
        assert.equal(((await ok.json()) as { id: string }).id, standin.checkoutSessions[0]!.id);
      })(dialect));

    test('return URLs: the library refuses non-https (but localhost) and javascript: URLs; the server refuses bad billing options', () =>
      scenario(async ({ db, standin, server, userId }) => {
        for (const successUrl of ['http://app.example.com/thanks', 'javascript:alert(1)', 'https://user:pw@app.example.com/', `https://app.example.com/${'a'.repeat(2100)}`, 'not a url', 42 as never]) {
          await rejectsWith(server.auth.subscriptions.createCheckoutSession(userId, { plan: 'pro', successUrl }), ValidationError, 'invalid_return_url');
        }
        await rejectsWith(server.auth.subscriptions.createPortalSession(userId, { returnUrl: 'ftp://x' }), ValidationError, 'invalid_return_url');
        assert.equal(standin.requests.length, 0);
        const noStripe = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
        assert.throws(() => createPluginServer(noStripe, { billing: { successUrl: SUCCESS, returnUrl: RETURN } }), (e: unknown) => e instanceof SetupError && e.code === 'server_config_invalid');
        assert.throws(() => createPluginServer(server.auth, { billing: { successUrl: 'nope', returnUrl: RETURN } }), (e: unknown) => e instanceof SetupError && e.code === 'server_config_invalid');
        await rejectsWith(noStripe.subscriptions.createPortalSession(userId, { returnUrl: RETURN }), SetupError, 'stripe_not_configured');
        // Without billing options there are no billing routes.
        const bare = await serve(createPluginServer(noStripe, { log: () => {} }));
        try {
          assert.equal((await fetch(`${bare.url}/plugin/billing/checkout`, { method: 'POST' })).status, 404);
        } finally {
          await bare.close();
        }
      })(dialect));
  });
}
