import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, SERVER_DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { DAY, PRICES, T0, event, linkPrices, random, shuffle, subscription, type SubscriptionFields } from './helpers/stripe.ts';
import { createSubscriptions, type StripeSubscriptionLike } from '../src/billing/subscriptions.ts';
import { NotFoundError, ValidationError, type PluginAuthError } from '../src/core/errors.ts';
import type { Queryable } from '../src/core/db.ts';
import { rejectsWith } from './helpers/assert.ts';

const asSub = (o: Record<string, any>) => o as StripeSubscriptionLike;
const NOW = () => Math.floor(Date.now() / 1000);

/** The row as synced state: everything but its own id, owner and bookkeeping timestamps. */
async function state(db: Queryable, userId: string) {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT p.plan_slug, s.status, s.stripe_price_id, s.current_period_start, s.current_period_end,
            s.cancel_at_period_end, s.canceled_at, s.trial_end, s.stripe_event_created
       FROM public.user_subscriptions s JOIN public.subscription_plans p ON p.id = s.plan_id
      WHERE s.user_id = $1`,
    [userId],
  );
  return rows[0] ?? null;
}

async function rowCount(db: Queryable): Promise<number> {
  return (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.user_subscriptions'))[0]!.n;
}

// One subscription's life: created (incomplete) -> trialing -> active -> upgraded to pro ->
// past_due -> deleted (canceled). Each entry: [event type, fields, seconds after T0].
function lifecycle(id: string, customer: string, userId: string): { type: string; object: Record<string, any>; created: number }[] {
  const base: SubscriptionFields = { id, customer, userId, periodStart: T0, periodEnd: T0 + 30 * DAY };
  const steps: [string, SubscriptionFields, number][] = [
    ['customer.subscription.created', { status: 'incomplete' }, 10],
    ['customer.subscription.updated', { status: 'trialing', trialEnd: T0 + 14 * DAY }, 20],
    ['customer.subscription.updated', { status: 'active', trialEnd: T0 + 14 * DAY }, 30],
    ['customer.subscription.updated', { status: 'active', priceId: PRICES.pro, trialEnd: T0 + 14 * DAY }, 40],
    ['customer.subscription.updated', { status: 'past_due', priceId: PRICES.pro, trialEnd: T0 + 14 * DAY, cancelAtPeriodEnd: true }, 50],
    ['customer.subscription.deleted', { status: 'canceled', priceId: PRICES.pro, trialEnd: T0 + 14 * DAY, canceledAt: T0 + 60 }, 60],
  ];
  return steps.map(([type, fields, offset]) => ({ type, object: subscription({ ...base, ...fields }), created: T0 + offset }));
}

for (const dialect of DIALECTS) {
  describe(`subscriptions [${dialect}]`, () => {
    test('a first event links the user from metadata.user_id and stores the item period, trial and cancellation fields', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const userId = await createUser(db);
        const object = subscription({ userId, status: 'trialing', trialEnd: T0 + 7 * DAY, cancelAtPeriodEnd: true });
        const result = await subs.syncFromStripe(asSub(object), { eventCreated: T0 + 5 });
        assert.deepEqual(result, { applied: true, userId, planSlug: 'basic', status: 'trialing' });
        const row = (await db.query<Record<string, any>>('SELECT * FROM public.user_subscriptions WHERE user_id = $1', [userId]))[0]!;
        assert.equal(row.stripe_customer_id, 'cus_test_1');
        assert.equal(row.stripe_subscription_id, 'sub_test_1');
        assert.equal(row.stripe_price_id, PRICES.basic);
        assert.deepEqual(row.current_period_start, new Date(T0 * 1000));
        assert.deepEqual(row.current_period_end, new Date((T0 + 30 * DAY) * 1000));
        assert.deepEqual(row.trial_end, new Date((T0 + 7 * DAY) * 1000));
        assert.equal(row.cancel_at_period_end, true);
        assert.equal(row.canceled_at, null);
        assert.deepEqual(row.stripe_event_created, new Date((T0 + 5) * 1000));
      }));

    test('older API versions: the period is read from the subscription when the item has none', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const userId = await createUser(db);
        const object = subscription({ userId, legacyPeriod: true, periodStart: T0 + DAY, periodEnd: T0 + 31 * DAY });
        assert.equal(object.items.data[0].current_period_end, undefined);
        await createSubscriptions(db).syncFromStripe(asSub(object), { eventCreated: new Date((T0 + 1) * 1000) });
        const row = await state(db, userId);
        assert.deepEqual(row!.current_period_start, new Date((T0 + DAY) * 1000));
        assert.deepEqual(row!.current_period_end, new Date((T0 + 31 * DAY) * 1000));
      }));

    test('a later subscription of a linked customer finds the user without metadata; a full expanded object works', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const userId = await createUser(db);
        await subs.syncFromStripe(asSub(subscription({ userId, status: 'canceled', canceledAt: T0 })), { eventCreated: T0 });
        // New subscription, same customer (expanded as an object), no metadata.
        const second = subscription({ id: 'sub_test_2', status: 'active', priceId: PRICES.pro });
        second.customer = { id: 'cus_test_1', object: 'customer' };
        const result = await subs.syncFromStripe(asSub(second), { eventCreated: T0 + 100 });
        assert.deepEqual(result, { applied: true, userId, planSlug: 'pro', status: 'active' });
        assert.equal(await rowCount(db), 1);
      }));

    test('the scripted lifecycle, delivered shuffled and with duplicates, ends as delivered in order (every prefix, 5 seeds)', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const inOrderUser = await createUser(db);
        const inOrder = lifecycle('sub_in_order', 'cus_in_order', inOrderUser);
        const expected: unknown[] = [];
        for (const e of inOrder) {
          const result = await subs.syncFromStripe(asSub(e.object), { eventCreated: e.created });
          assert.equal(result.applied, true);
          expected.push(await state(db, inOrderUser));
        }
        const final = expected.at(-1) as Record<string, unknown>;
        assert.equal(final.status, 'canceled');
        assert.equal(final.plan_slug, 'pro');
        assert.deepEqual(final.canceled_at, new Date((T0 + 60) * 1000));

        for (let seed = 1; seed <= 5; seed++) {
          for (let k = 1; k <= inOrder.length; k++) {
            const userId = await createUser(db);
            const events = lifecycle(`sub_${seed}_${k}`, `cus_${seed}_${k}`, userId).slice(0, k);
            const rand = random(seed * 100 + k);
            // Every event at least once, some two or three times (Stripe delivers at least once).
            const deliveries = shuffle(events.flatMap((e) => (rand() < 0.5 ? [e, e] : rand() < 0.5 ? [e, e, e] : [e])), rand);
            const reasons = new Set<string>();
            for (const e of deliveries) {
              const result = await subs.syncFromStripe(asSub(e.object), { eventCreated: e.created });
              if (!result.applied) reasons.add(result.reason);
            }
            assert.deepEqual(await state(db, userId), expected[k - 1], `seed ${seed}, first ${k} events`);
            for (const reason of reasons) assert.ok(reason === 'stale' || reason === 'duplicate', reason);
          }
        }
      }));

    test('an older event is stale and the same event twice is a duplicate: neither changes the row', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const userId = await createUser(db);
        const active = subscription({ userId, status: 'active', priceId: PRICES.pro });
        assert.equal((await subs.syncFromStripe(asSub(active), { eventCreated: T0 + 50 })).applied, true);
        const before = await db.query('SELECT * FROM public.user_subscriptions');

        const duplicate = await subs.syncFromStripe(asSub(active), { eventCreated: T0 + 50 });
        assert.deepEqual(duplicate, { applied: false, reason: 'duplicate', userId, planSlug: 'pro', status: 'active' });
        const older = subscription({ userId, status: 'trialing', priceId: PRICES.basic });
        const stale = await subs.syncFromStripe(asSub(older), { eventCreated: T0 + 49 });
        assert.deepEqual(stale, { applied: false, reason: 'stale', userId, planSlug: 'pro', status: 'active' });
        assert.deepEqual(await db.query('SELECT * FROM public.user_subscriptions'), before);
      }));

    test('events of the same second: the later delivery applies, but never revives a canceled subscription', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const a = await createUser(db);
        const b = await createUser(db);
        const canceled = (userId: string, n: string) => subscription({ id: `sub_${n}`, customer: `cus_${n}`, userId, status: 'canceled', canceledAt: T0 });
        const active = (userId: string, n: string) => subscription({ id: `sub_${n}`, customer: `cus_${n}`, userId, status: 'active' });
        // Order 1: active then canceled. Order 2: canceled then active. Both end canceled.
        await subs.syncFromStripe(asSub(active(a, 'a')), { eventCreated: T0 });
        assert.equal((await subs.syncFromStripe(asSub(canceled(a, 'a')), { eventCreated: T0 })).applied, true);
        await subs.syncFromStripe(asSub(canceled(b, 'b')), { eventCreated: T0 });
        const revived = await subs.syncFromStripe(asSub(active(b, 'b')), { eventCreated: T0 });
        assert.deepEqual(revived, { applied: false, reason: 'stale', userId: b, planSlug: 'basic', status: 'canceled' });
        assert.equal((await state(db, a))!.status, 'canceled');
        // Same second, different data, no terminal status: the later delivery wins (trialing -> active).
        const c = await createUser(db);
        await subs.syncFromStripe(asSub(subscription({ id: 'sub_c', customer: 'cus_c', userId: c, status: 'trialing' })), { eventCreated: T0 });
        const r = await subs.syncFromStripe(asSub(subscription({ id: 'sub_c', customer: 'cus_c', userId: c, status: 'active' })), { eventCreated: T0 });
        assert.equal(r.applied, true);
      }));

    test('deletion keeps the row as canceled (free), and a late update from before it stays stale', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const userId = await createUser(db);
        const periodEnd = NOW() + 20 * DAY;
        const fields = { userId, periodStart: NOW() - 10 * DAY, periodEnd };
        await subs.syncFromStripe(asSub(subscription({ ...fields, status: 'active', priceId: PRICES.pro })), { eventCreated: T0 + 1 });
        assert.equal((await subs.effectivePlan(userId)).planSlug, 'pro');
        const deleted = event('customer.subscription.deleted', subscription({ ...fields, status: 'canceled', priceId: PRICES.pro, canceledAt: T0 + 3 }), T0 + 3);
        await subs.syncFromStripe(asSub(deleted.data.object), { eventCreated: deleted.created });
        const plan = await subs.effectivePlan(userId);
        assert.equal(plan.planSlug, 'free');
        assert.equal(plan.source, 'free');
        assert.equal(plan.status, 'canceled');
        assert.equal(plan.subscription!.status, 'canceled');
        assert.equal(plan.subscription!.planSlug, 'pro');
        const late = await subs.syncFromStripe(asSub(subscription({ ...fields, status: 'active', priceId: PRICES.pro })), { eventCreated: T0 + 2 });
        assert.deepEqual(late, { applied: false, reason: 'stale', userId, planSlug: 'pro', status: 'canceled' });
        assert.equal((await subs.effectivePlan(userId)).planSlug, 'free');
      }));

    test('a second subscription: it takes over when it grants access; the old one\'s cancellation is then superseded', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const userId = await createUser(db);
        const period = { periodStart: NOW() - DAY, periodEnd: NOW() + 29 * DAY };
        await subs.syncFromStripe(asSub(subscription({ ...period, id: 'sub_old', userId, status: 'active' })), { eventCreated: T0 + 1 });
        // A new subscription still waiting for payment does not take access away.
        const pending = await subs.syncFromStripe(asSub(subscription({ ...period, id: 'sub_new', userId, status: 'incomplete', priceId: PRICES.pro })), { eventCreated: T0 + 2 });
        assert.deepEqual(pending, { applied: false, reason: 'superseded', userId, planSlug: 'basic', status: 'active' });
        const paid = await subs.syncFromStripe(asSub(subscription({ ...period, id: 'sub_new', userId, status: 'active', priceId: PRICES.pro })), { eventCreated: T0 + 3 });
        assert.deepEqual(paid, { applied: true, userId, planSlug: 'pro', status: 'active' });
        const oldCanceled = await subs.syncFromStripe(asSub(subscription({ ...period, id: 'sub_old', userId, status: 'canceled', canceledAt: T0 + 4 })), { eventCreated: T0 + 4 });
        assert.deepEqual(oldCanceled, { applied: false, reason: 'superseded', userId, planSlug: 'pro', status: 'active' });
        assert.equal((await subs.effectivePlan(userId)).subscription!.stripeSubscriptionId, 'sub_new');
      }));

    test('unknown price, unknown customer and malformed input: typed errors, nothing written', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const userId = await createUser(db);
        await rejectsWith(subs.syncFromStripe(asSub(subscription({ userId, priceId: 'price_nobody' })), { eventCreated: T0 }), NotFoundError, 'unknown_price');
        await rejectsWith(subs.syncFromStripe(asSub(subscription({ customer: 'cus_stranger' })), { eventCreated: T0 }), NotFoundError, 'unknown_customer');
        await rejectsWith(subs.syncFromStripe(asSub(subscription({ customer: 'cus_x', userId: '00000000-0000-4000-8000-000000000000' })), { eventCreated: T0 }), NotFoundError, 'unknown_customer');
        await rejectsWith(subs.syncFromStripe(asSub(subscription({ customer: 'cus_y', userId: 'not-a-uuid' })), { eventCreated: T0 }), NotFoundError, 'unknown_customer');
        assert.equal(await rowCount(db), 0);

        await subs.syncFromStripe(asSub(subscription({ userId, status: 'active' })), { eventCreated: T0 });
        const before = await db.query('SELECT * FROM public.user_subscriptions');
        // An existing user's update to a price no plan is linked to: refused, the row is untouched.
        await rejectsWith(subs.syncFromStripe(asSub(subscription({ userId, priceId: 'price_nobody' })), { eventCreated: T0 + 9 }), NotFoundError, 'unknown_price');
        // The whole event instead of event.data.object; a status Stripe does not have; no items; bad event time.
        const wholeEvent = event('customer.subscription.updated', subscription({ userId }), T0 + 9);
        await rejectsWith(subs.syncFromStripe(asSub(wholeEvent), { eventCreated: T0 + 9 }), ValidationError, 'invalid_subscription');
        await rejectsWith(subs.syncFromStripe(asSub(subscription({ userId, status: 'manual' })), { eventCreated: T0 + 9 }), ValidationError, 'invalid_subscription');
        const noItems = subscription({ userId });
        noItems.items.data = [];
        await rejectsWith(subs.syncFromStripe(asSub(noItems), { eventCreated: T0 + 9 }), ValidationError, 'invalid_subscription');
        await rejectsWith(subs.syncFromStripe(asSub(subscription({ userId })), { eventCreated: Number.NaN }), ValidationError, 'invalid_event_created');
        await rejectsWith(subs.syncFromStripe(asSub(subscription({ userId })), {} as never), ValidationError, 'invalid_event_created');
        await rejectsWith(subs.syncFromStripe(null as never, { eventCreated: T0 }), ValidationError, 'invalid_subscription');
        assert.deepEqual(await db.query('SELECT * FROM public.user_subscriptions'), before);
        // The SQL function refuses a null event time itself (supabase.rpc callers bypass TypeScript).
        await assert.rejects(db.query('SELECT * FROM public.sync_stripe_subscription($1::jsonb, NULL)', [JSON.stringify(subscription({ userId }))]), /invalid_event_created/);
      }));

    test('upgrade basic -> pro mid-day: the database allows pro limits at once, today\'s count carries over', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const userId = await createUser(db);
        const fields = { userId, periodStart: NOW() - 3 * DAY, periodEnd: NOW() + 27 * DAY };
        await subs.syncFromStripe(asSub(subscription({ ...fields, status: 'active', priceId: PRICES.basic })), { eventCreated: NOW() - 3 * DAY });
        for (let i = 0; i < 3; i++) await db.query("SELECT public.increment_daily_usage($1, 'resize')", [userId]);
        // What the database would allow now: the effective plan's daily limit minus today's count.
        const allowance = async () =>
          (
            await db.query<{ plan_slug: string; remaining: number }>(
              `SELECT e.plan_slug, (e.limits ->> 'resizesPerDay')::int - COALESCE(d.count, 0) AS remaining
                 FROM public.effective_plan($1) e
                 LEFT JOIN public.daily_usage_summary d
                   ON d.user_id = $1 AND d.action = 'resize' AND d.usage_date = (NOW() AT TIME ZONE 'UTC')::date`,
              [userId],
            )
          )[0]!;
        assert.deepEqual(await allowance(), { plan_slug: 'basic', remaining: 1 });
        const upgraded = await subs.syncFromStripe(asSub(subscription({ ...fields, status: 'active', priceId: PRICES.pro })), { eventCreated: NOW() });
        assert.deepEqual(upgraded, { applied: true, userId, planSlug: 'pro', status: 'active' });
        assert.deepEqual(await allowance(), { plan_slug: 'pro', remaining: 3 });
        const plan = await subs.effectivePlan(userId);
        assert.deepEqual(plan.limits, { resizesPerDay: 6, batchSize: 20, isDaily: true });
      }));

    test('every status maps to the effective plan the SQL rule gives, past_due before and after period end', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const now = NOW();
        const statuses = ['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'];
        const grants: Record<string, boolean> = { trialing: true, active: true };
        for (const status of statuses) {
          for (const periodEnd of [now - DAY, now + DAY]) {
            const userId = await createUser(db);
            await subs.syncFromStripe(
              asSub(subscription({ id: `sub_${status}_${periodEnd}`, customer: `cus_${status}_${periodEnd}`, userId, status, priceId: PRICES.pro, periodStart: periodEnd - 30 * DAY, periodEnd })),
              { eventCreated: now },
            );
            const expected = grants[status] || (status === 'past_due' && periodEnd > now) ? 'pro' : 'free';
            const plan = await subs.effectivePlan(userId);
            assert.equal(plan.planSlug, expected, `${status}, period end ${periodEnd > now ? 'ahead' : 'passed'}`);
            assert.equal(plan.source, expected === 'pro' ? 'stripe' : 'free');
            const sql = await db.query<{ plan_slug: string; grants: boolean }>(
              `SELECT (SELECT plan_slug FROM public.effective_plan($1)) AS plan_slug,
                      public.subscription_grants_access($2, to_timestamp($3)) AS grants`,
              [userId, status, periodEnd],
            );
            assert.deepEqual(sql[0], { plan_slug: expected, grants: expected === 'pro' });
          }
        }
        // past_due around its period end, through `at`: the same instant on both sides of the rule.
        const userId = await createUser(db);
        const end = now + 3600;
        await subs.syncFromStripe(asSub(subscription({ id: 'sub_pd', customer: 'cus_pd', userId, status: 'past_due', periodEnd: end })), { eventCreated: now });
        for (const [at, expected] of [[end - 1, 'basic'], [end, 'free'], [end + 1, 'free']] as const) {
          const atDate = new Date(at * 1000);
          assert.equal((await subs.effectivePlan(userId, { at: atDate })).planSlug, expected, `at end${at - end >= 0 ? '+' : ''}${at - end}s`);
          const sql = await db.query<{ plan_slug: string }>('SELECT plan_slug FROM public.effective_plan($1, $2)', [userId, atDate]);
          assert.equal(sql[0]!.plan_slug, expected);
        }
        // No row: free.
        const plain = await subs.effectivePlan(await createUser(db));
        assert.deepEqual([plain.planSlug, plain.source, plain.status, plain.subscription], ['free', 'free', null, null]);
        assert.deepEqual(plain.limits, { resizesPerDay: 2, batchSize: 1, isDaily: false });
        await rejectsWith(subs.effectivePlan('00000000-0000-4000-8000-000000000000'), NotFoundError, 'unknown_user');
      }));

    test('assignPlan: manual with and without until, Stripe linkage cleared, customer kept, errors typed', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const subs = createSubscriptions(db);
        const userId = await createUser(db);
        const period = { periodStart: NOW() - DAY, periodEnd: NOW() + 29 * DAY };
        await subs.syncFromStripe(asSub(subscription({ ...period, userId, status: 'active' })), { eventCreated: NOW() - 60 });

        const until = new Date(Date.now() + 10 * DAY * 1000);
        const assigned = await subs.assignPlan(userId, 'enterprise', { until });
        assert.deepEqual(assigned, { userId, planSlug: 'enterprise', status: 'manual', until });
        let plan = await subs.effectivePlan(userId);
        assert.deepEqual([plan.planSlug, plan.source, plan.limits.resizesPerDay], ['enterprise', 'manual', -1]);
        assert.equal(plan.subscription!.stripeSubscriptionId, null);
        assert.equal(plan.subscription!.stripePriceId, null);
        assert.equal(plan.subscription!.stripeCustomerId, 'cus_test_1');
        // Ends with `until`, by the same rule in TypeScript and SQL.
        const after = new Date(until.getTime() + 1000);
        assert.equal((await subs.effectivePlan(userId, { at: after })).planSlug, 'free');
        assert.equal((await db.query<{ plan_slug: string }>('SELECT plan_slug FROM public.effective_plan($1, $2)', [userId, after]))[0]!.plan_slug, 'free');
        assert.equal((await db.query<{ g: boolean }>("SELECT public.subscription_grants_access('manual', $1, $2) AS g", [until, after]))[0]!.g, false);

        // A Stripe event created before the assignment is stale; the old subscription's cancellation
        // does not take the manual plan away.
        const late = await subs.syncFromStripe(asSub(subscription({ ...period, userId, status: 'active' })), { eventCreated: NOW() - 30 });
        assert.deepEqual([late.applied, !late.applied && late.reason], [false, 'stale']);
        const oldCanceled = await subs.syncFromStripe(asSub(subscription({ ...period, userId, status: 'canceled', canceledAt: NOW() })), { eventCreated: NOW() + 5 });
        assert.deepEqual([oldCanceled.applied, !oldCanceled.applied && oldCanceled.reason], [false, 'superseded']);
        assert.equal((await subs.effectivePlan(userId)).planSlug, 'enterprise');

        // No until: no end.
        const forever = await subs.assignPlan(userId, 'pro');
        assert.equal(forever.until, null);
        plan = await subs.effectivePlan(userId, { at: new Date(Date.now() + 3650 * DAY * 1000) });
        assert.deepEqual([plan.planSlug, plan.source], ['pro', 'manual']);

        // A new paid Stripe subscription takes the row back from a manual plan.
        const back = await subs.syncFromStripe(asSub(subscription({ ...period, id: 'sub_again', status: 'active', priceId: PRICES.basic })), { eventCreated: NOW() + 10 });
        assert.deepEqual(back, { applied: true, userId, planSlug: 'basic', status: 'active' });

        const before = await db.query('SELECT * FROM public.user_subscriptions');
        await rejectsWith(subs.assignPlan(userId, 'platinum'), NotFoundError, 'unknown_plan');
        await rejectsWith(subs.assignPlan('00000000-0000-4000-8000-000000000000', 'pro'), NotFoundError, 'unknown_user');
        await rejectsWith(subs.assignPlan(userId, 'pro', { until: new Date(Date.now() - 1000) }), ValidationError, 'invalid_until');
        await rejectsWith(subs.assignPlan(userId, 'pro', { until: new Date('nope') }), ValidationError, 'invalid_until');
        assert.deepEqual(await db.query('SELECT * FROM public.user_subscriptions'), before);

        // A first-time manual user: a row is created.
        const other = await createUser(db);
        await subs.assignPlan(other, 'basic');
        assert.equal((await subs.effectivePlan(other)).planSlug, 'basic');
      }));
  });
}

for (const dialect of SERVER_DIALECTS) {
  describe(`subscriptions [${dialect}, real server only]`, () => {
    test('concurrent deliveries of different events for one subscription end in the newest event\'s state', () =>
      withDatabase(
        dialect,
        async ({ db }) => {
          await linkPrices(db);
          const subs = createSubscriptions(db);
          const statuses = ['trialing', 'active', 'past_due', 'unpaid', 'canceled', 'paused'];
          const prices = [PRICES.basic, PRICES.pro, PRICES.enterprise];
          let deliveries = 0;
          let applied = 0;
          const started = performance.now();
          for (let round = 1; round <= 6; round++) {
            const rand = random(round);
            const userId = await createUser(db);
            // 32 distinct events (created T0+1 ... T0+32), each delivered twice, all at once on 16 connections,
            // starting with no row at all (the first inserts race too).
            const events = Array.from({ length: 32 }, (_, i) => ({
              created: T0 + i + 1,
              object: subscription({
                id: `sub_race_${round}`,
                customer: `cus_race_${round}`,
                userId,
                status: statuses[Math.floor(rand() * statuses.length)]!,
                priceId: prices[Math.floor(rand() * prices.length)]!,
                periodStart: T0 + i,
                periodEnd: T0 + i + 30 * DAY,
              }),
            }));
            const batch = shuffle([...events, ...events], rand);
            const results = await Promise.all(batch.map((e) => subs.syncFromStripe(asSub(e.object), { eventCreated: e.created })));
            deliveries += results.length;
            applied += results.filter((r) => r.applied).length;

            const newest = events.at(-1)!;
            const row = await state(db, userId);
            assert.equal(row!.status, newest.object.status, `round ${round}`);
            assert.equal(row!.stripe_price_id, newest.object.items.data[0].price.id);
            assert.deepEqual(row!.stripe_event_created, new Date(newest.created * 1000));
            assert.deepEqual(row!.current_period_start, new Date((newest.created - 1) * 1000));
            // The newest event applies exactly once; its redelivery is a duplicate.
            const newestResults = results.filter((_, i) => batch[i] === newest);
            assert.deepEqual(newestResults.map((r) => (r.applied ? 'applied' : r.reason)).sort(), ['applied', 'duplicate']);
            assert.equal(await rowCount(db), round);
          }
          const ms = performance.now() - started;
          process.stdout.write(`# concurrent sync: ${deliveries} deliveries on 16 connections, ${applied} applied, ${Math.round(ms)} ms\n`);
        },
        { max: 16 },
      ));

    test('simultaneous first deliveries for users without a row never fail (60 users x 16 deliveries)', () =>
      withDatabase(
        dialect,
        async ({ db }) => {
          await linkPrices(db);
          const subs = createSubscriptions(db);
          const failures: string[] = [];
          for (let round = 0; round < 60; round++) {
            const userId = await createUser(db);
            const object = subscription({ id: `sub_first_${round}`, customer: `cus_first_${round}`, userId, status: 'active' });
            const results = await Promise.allSettled(
              Array.from({ length: 16 }, (_, i) => subs.syncFromStripe(asSub(object), { eventCreated: T0 + i })),
            );
            for (const r of results) if (r.status === 'rejected') failures.push(String((r.reason as Error).message));
            assert.deepEqual((await state(db, userId))!.stripe_event_created, new Date((T0 + 15) * 1000));
          }
          assert.deepEqual(failures, []);
        },
        { max: 16 },
      ));
  });
}
