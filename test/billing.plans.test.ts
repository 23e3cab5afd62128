import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { createPlans } from '../src/billing/plans.ts';
import { NotFoundError, ValidationError, type PluginAuthError } from '../src/core/errors.ts';
import { rejectsWith } from './helpers/assert.ts';

for (const dialect of DIALECTS) {
  describe(`plans [${dialect}]`, () => {
    test('list() returns the seeded plans cheapest first, camelCase, with limits', () =>
      withDatabase(dialect, async ({ db }) => {
        const plans = await createPlans(db).list();
        assert.deepEqual(plans.map((p) => [p.slug, p.priceMonthly]), [['free', 0], ['basic', 499], ['pro', 1299], ['enterprise', 4999]]);
        const pro = plans.find((p) => p.slug === 'pro')!;
        assert.deepEqual(pro.limits, { resizesPerDay: 6, batchSize: 20, isDaily: true });
        assert.equal(pro.isActive, true);
        assert.equal(pro.stripePriceId, null);
        assert.ok(pro.features.length > 0);
        // A plan no longer sold is hidden unless asked for.
        await db.query("UPDATE public.subscription_plans SET is_active = false WHERE plan_slug = 'basic'");
        assert.deepEqual((await createPlans(db).list()).map((p) => p.slug), ['free', 'pro', 'enterprise']);
        assert.equal((await createPlans(db).list({ includeInactive: true })).length, 4);
      }));

    test('linkStripe links, relinks and unlinks; one price belongs to one plan; errors are typed and write nothing', () =>
      withDatabase(dialect, async ({ db }) => {
        const plans = createPlans(db);
        const linked = await plans.linkStripe('pro', { productId: 'prod_pro', priceId: 'price_pro_monthly' });
        assert.deepEqual([linked.slug, linked.stripeProductId, linked.stripePriceId], ['pro', 'prod_pro', 'price_pro_monthly']);
        const snapshot = () => db.query('SELECT plan_slug, stripe_product_id, stripe_price_id, updated_at FROM public.subscription_plans ORDER BY plan_slug');
        const before = await snapshot();
        await rejectsWith(plans.linkStripe('basic', { productId: 'prod_basic', priceId: 'price_pro_monthly' }), ValidationError, 'price_already_linked');
        await rejectsWith(plans.linkStripe('platinum', { productId: 'prod_x', priceId: 'price_x' }), NotFoundError, 'unknown_plan');
        await rejectsWith(plans.linkStripe('basic', { productId: 'prod basic', priceId: 'price_x' }), ValidationError, 'invalid_stripe_id');
        await rejectsWith(plans.linkStripe('basic', { productId: 'prod_x', priceId: '' }), ValidationError, 'invalid_stripe_id');
        assert.deepEqual(await snapshot(), before);
        // Relinking the same plan to the same price is fine; a new price replaces the old one.
        await plans.linkStripe('pro', { productId: 'prod_pro', priceId: 'price_pro_monthly' });
        const moved = await plans.linkStripe('pro', { productId: 'prod_pro', priceId: 'price_pro_2027' });
        assert.equal(moved.stripePriceId, 'price_pro_2027');
        // The old price is free again; unlinking with nulls.
        await plans.linkStripe('basic', { productId: 'prod_basic', priceId: 'price_pro_monthly' });
        const unlinked = await plans.linkStripe('basic', { productId: null, priceId: null });
        assert.deepEqual([unlinked.stripeProductId, unlinked.stripePriceId], [null, null]);
      }));
  });
}
