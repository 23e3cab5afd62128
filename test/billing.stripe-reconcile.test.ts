// subscriptions.reconcileStripe against a 127.0.0.1 Stripe stand-in, on both databases: the
// subscriptions the database missed, one stuck in an old status, one deleted, a plan change, a
// row Stripe no longer has, paging, dry run against apply, webhooks racing the reconcile (one
// inside a page's read, and many on parallel connections), 429 with Retry-After, a bad key, and
// hostile input that sends nothing and writes nothing.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { DAY, PRICES, T0, linkPrices, subscription } from './helpers/stripe.ts';
import { STANDIN_SECRET_KEY, startStripeStandin, type StripeStandin } from './helpers/stripe-standin.ts';
import { rejectsWith } from './helpers/assert.ts';
import { HOSTILE_NUMBERS, HOSTILE_STRINGS, HOSTILE_UUIDS, WRONG_TYPES, fingerprint, userIdCodes } from './helpers/hostile.ts';
import { createPluginAuth } from '../src/auth.ts';
import { openDatabase, type Database, type Queryable } from '../src/core/db.ts';
import { NotFoundError, PluginAuthError, ServiceError, SetupError, ValidationError } from '../src/core/errors.ts';
import { snapshotTime, type ReconcileDifference } from '../src/billing/stripe-billing.ts';
import { encodeForm } from '../src/billing/stripe-api.ts';

const NOW = () => Math.floor(Date.now() / 1000);

/** Every subscription row, as synced state, in a stable order. */
async function rows(db: Queryable) {
  return db.query<Record<string, unknown>>(
    `SELECT s.user_id, p.plan_slug, s.status, s.stripe_customer_id, s.stripe_subscription_id, s.stripe_price_id,
            s.current_period_start, s.current_period_end, s.cancel_at_period_end, s.canceled_at, s.quantity, s.stripe_event_created
       FROM public.user_subscriptions s JOIN public.subscription_plans p ON p.id = s.plan_id ORDER BY s.user_id`,
  );
}

async function row(db: Queryable, userId: string) {
  return (await rows(db)).find((r) => r.user_id === userId) ?? null;
}

/** A Stripe subscription in the stand-in, with its created time. */
function put(standin: StripeStandin, fields: Parameters<typeof subscription>[0], created: number) {
  const s = subscription(fields);
  s.created = created;
  standin.subscriptions.set(s.id, s);
  standin.customers.add(s.customer);
  return s;
}

const byId = (differences: ReconcileDifference[]) => Object.fromEntries(differences.map((d) => [d.subscriptionId, d]));

/**
 * The scene: six users and seven Stripe subscriptions.
 * - missing: Stripe has an active pro subscription (metadata.user_id) the database never saw;
 * - stuck: the row says incomplete, Stripe says active (the later events were missed);
 * - deleted: the row says active, Stripe says canceled (the deletion was missed);
 * - upgraded: the row says basic, Stripe says pro with 3 seats (the update was missed);
 * - same: the row matches Stripe;
 * - orphan: a subscription of a customer nobody links to a user;
 * - gone: a row whose subscription Stripe answers 404 for.
 */
async function scene(db: Database, standin: StripeStandin) {
  await linkPrices(db);
  const auth = createPluginAuth(db);
  const users = {
    missing: await createUser(db),
    stuck: await createUser(db),
    deleted: await createUser(db),
    upgraded: await createUser(db),
    same: await createUser(db),
    gone: await createUser(db),
  };
  const period = { periodStart: T0, periodEnd: T0 + 30 * DAY };
  // What the webhooks delivered, at T0 + 10 s.
  const delivered = async (fields: Parameters<typeof subscription>[0]) =>
    auth.subscriptions.syncFromStripe(subscription({ ...period, ...fields }) as never, { eventCreated: T0 + 10 });
  await delivered({ id: 'sub_stuck', customer: 'cus_stuck', userId: users.stuck, status: 'incomplete' });
  await delivered({ id: 'sub_deleted', customer: 'cus_deleted', userId: users.deleted, status: 'active' });
  await delivered({ id: 'sub_upgraded', customer: 'cus_upgraded', userId: users.upgraded, status: 'active' });
  await delivered({ id: 'sub_same', customer: 'cus_same', userId: users.same, status: 'active' });
  await delivered({ id: 'sub_gone', customer: 'cus_gone', userId: users.gone, status: 'active' });
  // What Stripe holds now.
  put(standin, { ...period, id: 'sub_missing', customer: 'cus_missing', userId: users.missing, priceId: PRICES.pro }, T0 + 1);
  put(standin, { ...period, id: 'sub_stuck', customer: 'cus_stuck', userId: users.stuck }, T0 + 2);
  put(standin, { ...period, id: 'sub_deleted', customer: 'cus_deleted', userId: users.deleted, status: 'canceled', canceledAt: T0 + 100 }, T0 + 3);
  const upgraded = put(standin, { ...period, id: 'sub_upgraded', customer: 'cus_upgraded', userId: users.upgraded, priceId: PRICES.pro }, T0 + 4);
  upgraded.items.data[0].quantity = 3;
  put(standin, { ...period, id: 'sub_same', customer: 'cus_same', userId: users.same }, T0 + 5);
  put(standin, { ...period, id: 'sub_orphan', customer: 'cus_orphan' }, T0 + 6);
  standin.customers.add('cus_gone');
  return users;
}

const withStandin = async (fn: (standin: StripeStandin) => Promise<void>) => {
  const standin = await startStripeStandin();
  try {
    await fn(standin);
  } finally {
    await standin.close();
  }
};

const stripeOptions = (standin: StripeStandin, extra: Record<string, unknown> = {}) => ({
  stripe: { secretKey: STANDIN_SECRET_KEY, apiBaseUrl: standin.url, retryBaseMs: 1, ...extra },
});

for (const dialect of DIALECTS) {
  describe(`stripe reconcile [${dialect}]`, () => {
    test('a dry run reports every difference and writes nothing; the run applies them through the webhook\'s write; a second run finds nothing left', () =>
      withStandin((standin) =>
        withDatabase(dialect, async ({ db }) => {
          const users = await scene(db, standin);
          const auth = createPluginAuth(db, stripeOptions(standin));
          const before = await rows(db);

          const dry = await auth.subscriptions.reconcileStripe({ dryRun: true, pageSize: 2 });
          assert.deepEqual(await rows(db), before, 'a dry run writes nothing');
          assert.equal(dry.dryRun, true);
          assert.equal(dry.checked, 6); // every status, the canceled one too (sub_gone, asked for by id, is a 404)
          assert.equal(dry.pages, 3);
          assert.equal(dry.unchanged, 1);
          assert.equal(dry.applied, 4);
          const d = byId(dry.differences);
          assert.deepEqual(Object.keys(d).sort(), ['sub_deleted', 'sub_gone', 'sub_missing', 'sub_orphan', 'sub_stuck', 'sub_upgraded']);
          assert.equal(d.sub_missing!.kind, 'missing');
          assert.equal(d.sub_missing!.outcome, 'applied');
          assert.equal(d.sub_missing!.userId, users.missing);
          assert.deepEqual(d.sub_stuck!.fields, [{ field: 'status', database: 'incomplete', stripe: 'active' }]);
          assert.equal(d.sub_stuck!.kind, 'changed');
          assert.deepEqual(d.sub_deleted!.fields.map((f) => f.field), ['status', 'canceledAt']);
          assert.deepEqual(d.sub_upgraded!.fields, [
            { field: 'plan', database: 'basic', stripe: 'pro' },
            { field: 'priceId', database: PRICES.basic, stripe: PRICES.pro },
            { field: 'quantity', database: 1, stripe: 3 },
          ]);
          assert.equal(d.sub_orphan!.outcome, 'unknown_customer');
          assert.equal(d.sub_orphan!.userId, null);
          assert.deepEqual(d.sub_gone, { kind: 'not_in_stripe', subscriptionId: 'sub_gone', customerId: 'cus_gone', userId: users.gone, fields: [], outcome: 'reported' });

          // Stripe was asked for every status, page by page.
          const lists = standin.requests.filter((r) => r.path.startsWith('/v1/subscriptions?'));
          assert.equal(lists.length, 3);
          for (const r of lists) {
            const q = new URL(r.path, 'http://x').searchParams;
            assert.equal(q.get('status'), 'all');
            assert.equal(q.get('limit'), '2');
          }
          assert.equal(new URL(lists[0]!.path, 'http://x').searchParams.get('starting_after'), null);
          assert.equal(new URL(lists[1]!.path, 'http://x').searchParams.get('starting_after'), 'sub_same'); // newest first
          assert.ok(standin.requests.some((r) => r.path === '/v1/subscriptions/sub_gone' && r.status === 404));

          const applied = await auth.subscriptions.reconcileStripe({ pageSize: 2 });
          assert.equal(applied.dryRun, false);
          assert.deepEqual(
            applied.differences.map((x) => [x.subscriptionId, x.outcome]).sort(),
            dry.differences.map((x) => [x.subscriptionId, x.outcome]).sort(),
            'the dry run predicted exactly what the run did',
          );
          const after = Object.fromEntries((await rows(db)).map((r) => [r.user_id, r]));
          assert.equal(after[users.missing]!.status, 'active');
          assert.equal(after[users.missing]!.plan_slug, 'pro');
          assert.equal(after[users.stuck]!.status, 'active');
          assert.equal(after[users.deleted]!.status, 'canceled');
          assert.equal(after[users.upgraded]!.plan_slug, 'pro');
          assert.equal(after[users.upgraded]!.quantity, 3);
          assert.equal(after[users.gone]!.status, 'active', 'a row Stripe does not have is reported, not changed');
          assert.deepEqual(after[users.same], before.find((r) => r.user_id === users.same), 'an unchanged row is not written');
          // The plans in force follow.
          assert.equal((await auth.subscriptions.effectivePlan(users.missing)).planSlug, 'pro');
          assert.equal((await auth.subscriptions.effectivePlan(users.deleted)).planSlug, 'free');
          // The event time written is the page's snapshot time: older than now, newer than the webhooks'.
          const written = (after[users.stuck]!.stripe_event_created as Date).getTime() / 1000;
          assert.ok(written > T0 + 10 && written < NOW(), String(written));

          const again = await auth.subscriptions.reconcileStripe({});
          assert.deepEqual(again.differences.map((x) => [x.subscriptionId, x.outcome]).sort(), [['sub_gone', 'reported'], ['sub_orphan', 'unknown_customer']]);
          assert.equal(again.unchanged, 5);
          assert.equal(again.applied, 0);
        })));

    test('scoped to a user or a customer: only their subscriptions are listed and repaired', () =>
      withStandin((standin) =>
        withDatabase(dialect, async ({ db }) => {
          const users = await scene(db, standin);
          const auth = createPluginAuth(db, stripeOptions(standin));
          const before = await rows(db);

          const byUser = await auth.subscriptions.reconcileStripe({ userId: users.stuck });
          assert.deepEqual(byUser.scope, { userId: users.stuck });
          assert.deepEqual(byUser.differences.map((x) => [x.subscriptionId, x.outcome]), [['sub_stuck', 'applied']]);
          assert.equal(new URL(standin.requests.at(-1)!.path, 'http://x').searchParams.get('customer'), 'cus_stuck');
          assert.equal((await row(db, users.stuck))!.status, 'active');
          for (const r of before.filter((r) => r.user_id !== users.stuck)) assert.deepEqual(await row(db, r.user_id as string), r);

          // A user without a row: every subscription is read, theirs found by metadata.user_id.
          const byMetadata = await auth.subscriptions.reconcileStripe({ userId: users.missing });
          assert.deepEqual(byMetadata.differences.map((x) => [x.subscriptionId, x.kind, x.outcome]), [['sub_missing', 'missing', 'applied']]);
          assert.equal(byMetadata.checked, 1);

          const byCustomer = await auth.subscriptions.reconcileStripe({ customerId: 'cus_deleted', dryRun: true });
          assert.deepEqual(byCustomer.differences.map((x) => x.subscriptionId), ['sub_deleted']);
          assert.equal((await row(db, users.deleted))!.status, 'active', 'dry run');
        })));

    test('an old canceled subscription of a user who moved to a new one is superseded; an unlinked price is unknown_price; neither is written', () =>
      withStandin((standin) =>
        withDatabase(dialect, async ({ db }) => {
          await linkPrices(db);
          const auth = createPluginAuth(db, stripeOptions(standin));
          const mover = await createUser(db);
          const other = await createUser(db);
          const period = { periodStart: T0, periodEnd: T0 + 30 * DAY };
          await auth.subscriptions.syncFromStripe(subscription({ ...period, id: 'sub_new', customer: 'cus_mover', userId: mover, priceId: PRICES.pro }) as never, { eventCreated: T0 + 20 });
          put(standin, { ...period, id: 'sub_new', customer: 'cus_mover', userId: mover, priceId: PRICES.pro }, T0 + 2);
          put(standin, { ...period, id: 'sub_old', customer: 'cus_mover', userId: mover, status: 'canceled', canceledAt: T0 + 1 }, T0 + 1);
          put(standin, { ...period, id: 'sub_unlinked', customer: 'cus_other', userId: other, priceId: 'price_nobody_linked' }, T0 + 3);
          const before = await rows(db);
          const report = await auth.subscriptions.reconcileStripe({});
          const d = byId(report.differences);
          assert.deepEqual(Object.keys(d).sort(), ['sub_old', 'sub_unlinked']);
          assert.equal(d.sub_old!.kind, 'missing');
          assert.equal(d.sub_old!.outcome, 'superseded');
          assert.equal(d.sub_old!.userId, mover);
          assert.equal(d.sub_unlinked!.outcome, 'unknown_price');
          assert.deepEqual(d.sub_unlinked!.fields.find((f) => f.field === 'priceId'), { field: 'priceId', database: null, stripe: 'price_nobody_linked' });
          assert.equal(d.sub_unlinked!.fields.find((f) => f.field === 'plan'), undefined, 'no plan on either side: not a difference');
          assert.equal(report.applied, 0);
          assert.equal(report.unchanged, 1);
          assert.deepEqual(await rows(db), before);
          assert.equal((await auth.subscriptions.effectivePlan(mover)).planSlug, 'pro');
        })));

    test('a webhook delivered while Stripe\'s page is being read wins over the older state of that page', () =>
      withStandin((standin) =>
        withDatabase(dialect, async ({ db }) => {
          const users = await scene(db, standin);
          const auth = createPluginAuth(db, stripeOptions(standin));
          let delivered: unknown;
          standin.onList = async () => {
            if (delivered) return;
            // The page already holds sub_stuck as active; Stripe now moves it on and delivers the event.
            const s = subscription({ id: 'sub_stuck', customer: 'cus_stuck', userId: users.stuck, status: 'past_due', periodStart: T0, periodEnd: T0 + 30 * DAY });
            delivered = await auth.subscriptions.syncFromStripe(s as never, { eventCreated: NOW() });
          };
          const report = await auth.subscriptions.reconcileStripe({});
          assert.deepEqual(delivered, { applied: true, userId: users.stuck, planSlug: 'basic', status: 'past_due' });
          const stuck = report.differences.find((x) => x.subscriptionId === 'sub_stuck')!;
          assert.equal(stuck.outcome, 'stale', 'the reconcile\'s older state was refused');
          assert.deepEqual(stuck.fields, [{ field: 'status', database: 'past_due', stripe: 'active' }]);
          assert.equal((await row(db, users.stuck))!.status, 'past_due');
          // The others were repaired all the same.
          assert.equal((await row(db, users.deleted))!.status, 'canceled');
        })));

    test('webhooks racing a reconcile on parallel connections: every row ends in the newest state', () =>
      withStandin((standin) =>
        withDatabase(dialect, async (t) => {
      const N = 16;
      // The webhooks' own pool (a second connection pool on the real server; PGlite has one connection).
      const hooks: Database = t.url ? await openDatabase(t.url, { max: 8 }) : t.db;
      try {
        await linkPrices(t.db);
        const reconciler = createPluginAuth(t.db, stripeOptions(standin));
        const webhook = createPluginAuth(hooks);
        const ids: string[] = [];
        for (let i = 0; i < N; i++) {
          const userId = await createUser(t.db);
          ids.push(userId);
          const fields = { id: `sub_race${i}`, customer: `cus_race${i}`, userId, periodStart: T0, periodEnd: T0 + 30 * DAY };
          await webhook.subscriptions.syncFromStripe(subscription({ ...fields, status: 'incomplete' }) as never, { eventCreated: T0 });
          put(standin, { ...fields, status: 'active' }, T0 + i); // what a missed webhook left behind
        }
        // When the first page is read, Stripe changes every subscription (upgrade to pro) and
        // delivers each change, all at once on the webhook pool, while the reconcile goes on.
        let deliveries: Promise<unknown>[] = [];
        standin.onList = (query) => {
          if (query.get('starting_after') !== null || deliveries.length) return;
          deliveries = ids.map(async (userId, i) => {
            const fields = { id: `sub_race${i}`, customer: `cus_race${i}`, userId, periodStart: T0, periodEnd: T0 + 30 * DAY, priceId: PRICES.pro };
            put(standin, { ...fields, status: 'active' }, T0 + i);
            return webhook.subscriptions.syncFromStripe(subscription({ ...fields, status: 'active' }) as never, { eventCreated: NOW() });
          });
        };
        const report = await reconciler.subscriptions.reconcileStripe({ pageSize: 3 });
        await Promise.all(deliveries);
        assert.equal(deliveries.length, N);
        for (const userId of ids) {
          const r = (await row(t.db, userId))!;
          assert.equal(r.status, 'active');
          assert.equal(r.plan_slug, 'pro', `user ${userId}: the webhook's newer plan stays`);
        }
        // Every difference was either applied (the page already had the new state, or the write
        // came before the webhook) or refused as stale; never an older state over a newer one.
        for (const x of report.differences) assert.ok(['applied', 'stale', 'duplicate'].includes(x.outcome), x.outcome);
        // And one more run has nothing left to do.
        const again = await reconciler.subscriptions.reconcileStripe({});
        assert.deepEqual(again.differences, []);
        assert.equal(again.unchanged, N);
      } finally {
        if (hooks !== t.db) await hooks.close();
      }
        })));

    test('429 is retried after Retry-After, 5xx with backoff; past the retries it is stripe_unavailable and nothing is written', () =>
      withStandin((standin) =>
        withDatabase(dialect, async ({ db }) => {
          const users = await scene(db, standin);
          const before = await rows(db);
          const auth = createPluginAuth(db, stripeOptions(standin, { maxRetries: 2 }));
          standin.rateLimit(2, 1);
          const started = Date.now();
          const report = await auth.subscriptions.reconcileStripe({ userId: users.stuck });
          assert.ok(Date.now() - started >= 1900, 'waited Retry-After (1 s) twice');
          assert.deepEqual(standin.requests.map((r) => r.status), [429, 429, 200]);
          assert.equal(report.applied, 1);

          standin.requests.length = 0;
          standin.fail(2);
          assert.equal((await auth.subscriptions.reconcileStripe({ userId: users.deleted, dryRun: true })).differences.length, 1);
          assert.deepEqual(standin.requests.map((r) => r.status), [500, 500, 200]);

          const after = await rows(db);
          standin.rateLimit(3, 0);
          await rejectsWith(auth.subscriptions.reconcileStripe({}), ServiceError, 'stripe_unavailable', (e) => {
            assert.equal(e.retryable, true);
            assert.match(e.message, /HTTP 429 after 3 attempts/);
          });
          assert.deepEqual(await rows(db), after);
          assert.notDeepEqual(after, before);
        })));

    test('a wrong key is stripe_auth_failed, without the key in the error, and is not retried', () =>
      withStandin((standin) =>
        withDatabase(dialect, async ({ db }) => {
          await scene(db, standin);
          const before = await rows(db);
          const wrong = 'sk_test_wrongwrongwrongwrong1234';
          const auth = createPluginAuth(db, { stripe: { secretKey: wrong, apiBaseUrl: standin.url } });
          await rejectsWith(auth.subscriptions.reconcileStripe({}), ServiceError, 'stripe_auth_failed', (e) => {
            assert.ok(!e.message.includes(wrong) && !e.message.includes('1234') && !JSON.stringify(e).includes(wrong), e.message);
            assert.equal((e as PluginAuthError & { stripe: { status: number } }).stripe.status, 401);
          });
          assert.deepEqual(await rows(db), before);
          assert.equal(standin.requests.length, 1, 'a 401 is not retried');
        })));

    test('hostile input is refused before Stripe is asked or the database written; without the options: stripe_not_configured', () =>
      withStandin((standin) =>
        withDatabase(dialect, async ({ db }) => {
          await scene(db, standin);
          const before = await rows(db);
          const auth = createPluginAuth(db, stripeOptions(standin));
          const s = auth.subscriptions;
          for (const customerId of ["cus_x' OR 1=1 --", 'cus_', 'sub_123', 'cus_a\u0000b', 'x'.repeat(300), 42 as never]) {
            await rejectsWith(s.reconcileStripe({ customerId }), ValidationError, 'invalid_stripe_id');
          }
          for (const userId of ['not-a-uuid', "'; DROP TABLE users; --", 7 as never]) {
            await rejectsWith(s.reconcileStripe({ userId }), ValidationError, 'invalid_user_id');
          }
          await rejectsWith(s.reconcileStripe({ userId: '00000000-0000-4000-8000-000000000000' }), NotFoundError, 'unknown_user');
          for (const pageSize of [0, 101, 1.5, Number.NaN, Infinity, '10' as never]) {
            await rejectsWith(s.reconcileStripe({ pageSize }), ValidationError, 'invalid_page_size');
          }
          await rejectsWith(s.reconcileStripe({ dryRun: 'yes' as never }), ValidationError, 'invalid_dry_run');
          assert.equal(standin.requests.length, 0, 'nothing was sent to Stripe');
          assert.deepEqual(await rows(db), before);

          await rejectsWith(createPluginAuth(db).subscriptions.reconcileStripe({}), SetupError, 'stripe_not_configured');
          for (const stripe of [{ secretKey: 'pk_test_publishable00000' }, { secretKey: STANDIN_SECRET_KEY, apiBaseUrl: 'ftp://x' }, { secretKey: STANDIN_SECRET_KEY, maxRetries: -1 }]) {
            assert.throws(() => createPluginAuth(db, { stripe: stripe as never }), (e: unknown) => e instanceof SetupError && e.code === 'stripe_config_invalid');
          }
        })));

    test('every hostile value, in every argument of reconcile, checkout and the portal: a typed code, nothing sent, nothing written', () =>
      withStandin((standin) =>
        withDatabase(dialect, async ({ db }) => {
          await scene(db, standin);
          const user = await createUser(db);
          const auth = createPluginAuth(db, stripeOptions(standin));
          const s = auth.subscriptions;
          const before = await fingerprint(db);
          const ok = 'https://app.example.com/ok';
          const cases: Array<[string, () => Promise<unknown>, string[]]> = [];
          for (const [k, v] of Object.entries({ ...HOSTILE_STRINGS, ...WRONG_TYPES })) {
            cases.push([`customerId ${k}`, () => s.reconcileStripe({ customerId: v as string }), ['invalid_stripe_id']]);
            cases.push([`plan ${k}`, () => s.createCheckoutSession(user, { plan: v as string, successUrl: ok }), ['unknown_plan']]);
            cases.push([`successUrl ${k}`, () => s.createCheckoutSession(user, { plan: 'pro', successUrl: v as string }), ['invalid_return_url']]);
            cases.push([`cancelUrl ${k}`, () => s.createCheckoutSession(user, { plan: 'pro', successUrl: ok, cancelUrl: v as string }), ['invalid_return_url']]);
            cases.push([`returnUrl ${k}`, () => s.createPortalSession(user, { returnUrl: v as string }), ['invalid_return_url']]);
          }
          for (const [k, v] of Object.entries(HOSTILE_UUIDS)) {
            cases.push([`reconcile userId ${k}`, () => s.reconcileStripe({ userId: v as string }), userIdCodes(v)]);
            cases.push([`checkout userId ${k}`, () => s.createCheckoutSession(v as string, { plan: 'pro', successUrl: ok }), userIdCodes(v)]);
            cases.push([`portal userId ${k}`, () => s.createPortalSession(v as string, { returnUrl: ok }), userIdCodes(v)]);
          }
          for (const [k, v] of Object.entries(HOSTILE_NUMBERS)) {
            cases.push([`pageSize ${k}`, () => s.reconcileStripe({ pageSize: v as number }), ['invalid_page_size']]);
            cases.push([`quantity ${k}`, () => s.createCheckoutSession(user, { plan: 'pro', successUrl: ok, quantity: v as number }), ['invalid_quantity']]);
          }
          // The user has no Stripe customer: the portal is refused before Stripe is asked.
          cases.push(['portal without a customer', () => s.createPortalSession(user, { returnUrl: ok }), ['no_stripe_customer']]);
          for (const [name, run, codes] of cases) {
            await assert.rejects(run(), (e: unknown) => {
              assert.ok(e instanceof PluginAuthError, `${name}: ${String(e)}`);
              assert.ok(codes.includes(e.code), `${name}: ${e.code}, expected ${codes.join(' or ')}`);
              return true;
            });
          }
          assert.equal(standin.requests.length, 0, 'nothing was sent to Stripe');
          assert.deepEqual(await fingerprint(db), before, 'nothing was written');
        })));
  });
}

describe('stripe reconcile: the event time and the form encoding', () => {
  test('the snapshot time is strictly before the read: Stripe\'s Date less the round trip, less a second', () => {
    const date = new Date(Date.UTC(2026, 11, 1, 12, 0, 10));
    assert.equal(snapshotTime({ date, elapsedMs: 0, sentAt: 0 }).getTime(), date.getTime() - 1000);
    assert.equal(snapshotTime({ date, elapsedMs: 1, sentAt: 0 }).getTime(), date.getTime() - 2000);
    assert.equal(snapshotTime({ date, elapsedMs: 2500, sentAt: 0 }).getTime(), date.getTime() - 4000);
    // Without a Date header: our send time less the 5-minute skew allowance.
    const sentAt = Date.UTC(2026, 11, 1, 12, 0, 0, 700);
    assert.equal(snapshotTime({ date: null, elapsedMs: 5, sentAt }).getTime(), Date.UTC(2026, 11, 1, 11, 54, 59));
    // Never ahead of our clock.
    assert.ok(snapshotTime({ date: new Date(Date.now() + 3_600_000), elapsedMs: 0, sentAt: 0 }).getTime() <= Date.now());
  });

  test('form encoding uses Stripe\'s bracket keys', () => {
    assert.equal(
      decodeURIComponent(encodeForm({ mode: 'subscription', line_items: [{ price: 'price_1', quantity: 2 }], metadata: { user_id: 'u' }, expand: ['data.customer'], skip: undefined, no: null })),
      'mode=subscription&line_items[0][price]=price_1&line_items[0][quantity]=2&metadata[user_id]=u&expand[]=data.customer',
    );
    assert.equal(encodeForm({ q: "a&b=c d'" }), 'q=a%26b%3Dc+d%27');
  });
});
