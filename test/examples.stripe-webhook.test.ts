// The documented webhook handler (examples/stripe-webhook.ts), run end to end: a signed delivery is
// verified and synced, a forged or unsigned one is refused before touching the database.
import { describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import Stripe from 'stripe';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { PRICES, T0, event, linkPrices, subscription } from './helpers/stripe.ts';
import { createStripeWebhookHandler } from '../examples/stripe-webhook.ts';
import { createPluginAuth } from '../src/auth.ts';
import { STRIPE_WEBHOOK_SECRET as webhookSecret } from './helpers/secrets.ts';

// A test-mode-looking key; no request ever leaves the process (only signature checks run).
const stripe = new Stripe('sk_test_webhook_example_only');

function delivery(payload: string, secret = webhookSecret): Request {
  const signature = stripe.webhooks.generateTestHeaderString({ payload, secret });
  return new Request('http://localhost/api/stripe/webhook', {
    method: 'POST',
    headers: { 'stripe-signature': signature, 'content-type': 'application/json' },
    body: payload,
  });
}

for (const dialect of DIALECTS) {
  describe(`stripe webhook example [${dialect}]`, () => {
    test('verifies the signature, syncs subscription events, reports stale ones, ignores others', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const auth = createPluginAuth(db);
        const handle = createStripeWebhookHandler(auth, { stripe, webhookSecret });
        const userId = await createUser(db);
        const now = Math.floor(Date.now() / 1000);
        const fields = { userId, periodStart: now - 86_400, periodEnd: now + 29 * 86_400 };

        const created = JSON.stringify(event('customer.subscription.created', subscription({ ...fields, status: 'active', priceId: PRICES.pro }), T0 + 10), null, 2);
        let response = await handle(delivery(created));
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), { received: true, applied: true, userId, planSlug: 'pro', status: 'active' });
        assert.equal((await auth.subscriptions.effectivePlan(userId)).planSlug, 'pro');

        const older = JSON.stringify(event('customer.subscription.updated', subscription({ ...fields, status: 'past_due' }), T0 + 5));
        response = await handle(delivery(older));
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), { received: true, applied: false, reason: 'stale', userId, planSlug: 'pro', status: 'active' });

        const other = JSON.stringify({ ...event('customer.subscription.updated', {}, T0 + 20), type: 'invoice.paid' });
        response = await handle(delivery(other));
        assert.deepEqual(await response.json(), { received: true, ignored: 'invoice.paid' });

        // Forged (wrong secret), tampered (body changed after signing) and unsigned deliveries: 400, nothing written.
        const deleted = JSON.stringify(event('customer.subscription.deleted', subscription({ ...fields, status: 'canceled', canceledAt: T0 + 30 }), T0 + 30));
        assert.equal((await handle(delivery(deleted, 'whsec_someone_else'))).status, 400);
        const tampered = delivery(created);
        assert.equal((await handle(new Request(tampered.url, { method: 'POST', headers: tampered.headers, body: deleted }))).status, 400);
        assert.equal((await handle(new Request('http://localhost/x', { method: 'POST', body: deleted }))).status, 400);
        assert.equal((await auth.subscriptions.effectivePlan(userId)).subscription!.status, 'active');

        // A price no plan is linked to: 422 with the code, so Stripe retries once it is linked.
        const unknownPrice = JSON.stringify(event('customer.subscription.updated', subscription({ ...fields, priceId: 'price_unlinked' }), T0 + 40));
        const originalError = console.error;
        console.error = () => {};
        try {
          response = await handle(delivery(unknownPrice));
        } finally {
          console.error = originalError;
        }
        assert.equal(response.status, 422);
        assert.deepEqual(await response.json(), { error: 'unknown_price' });
      }));
  });
}

test('docs/subscriptions.md shows examples/stripe-webhook.ts exactly (imports from the package)', () => {
  const example = readFileSync(new URL('../examples/stripe-webhook.ts', import.meta.url), 'utf8');
  const code = example.slice(example.indexOf('import Stripe')).replace("'../src/index.ts'", "'figma-plugin-auth-db'");
  const docs = readFileSync(new URL('../docs/subscriptions.md', import.meta.url), 'utf8');
  assert.ok(docs.includes(code.trim()), 'the handler in docs/subscriptions.md differs from examples/stripe-webhook.ts');
});
