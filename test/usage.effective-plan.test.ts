// The effective plan row (public.user_effective_plans, sql/026, sql/functions/effective_plan.sql):
// it follows every source in the transaction of the change, lapses by time at the earliest instant
// the answer can change, is rebuilt by consume, and the hot paths fall back to the full rule when it
// is missing or lapsed. Concurrency with real parallel connections on the server.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { DIALECTS, SERVER_DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { clearPlan, setPlan } from './helpers/usage.ts';
import type { Queryable } from '../src/core/db.ts';

interface Row { slug: string; validUntil: Date | null; sources: number }

/** The stored row, whatever its validity (null: none). */
async function stored(db: Pick<Queryable, 'query'>, userId: string): Promise<Row | null> {
  const rows = await db.query<{ slug: string; valid_until: Date | null; sources: number }>(
    `SELECT p.plan_slug AS slug, e.valid_until, e.sources FROM public.user_effective_plans AS e
       JOIN public.subscription_plans AS p ON p.id = e.plan_id WHERE e.user_id = $1::uuid`, [userId]);
  return rows[0] ? { slug: rows[0].slug, validUntil: rows[0].valid_until, sources: rows[0].sources } : null;
}

/** The full rule's answer now (plugin_auth_grants, rank 1, or free), independent of the row. */
async function rule(db: Pick<Queryable, 'query'>, userId: string): Promise<string> {
  const rows = await db.query<{ slug: string }>('SELECT plan_slug AS slug FROM public.effective_plan($1::uuid)', [userId]);
  return rows[0]!.slug;
}

/** What consume answers (action export: unlimited on every plan, so each call is allowed). */
async function consumed(db: Pick<Queryable, 'query'>, userId: string): Promise<string> {
  const rows = await db.query<{ plan_slug: string; allowed: boolean }>(
    "SELECT plan_slug, allowed FROM public.consume_usage($1::uuid, 'export'::varchar)", [userId]);
  assert.equal(rows[0]!.allowed, true);
  return rows[0]!.plan_slug;
}

async function checked(db: Pick<Queryable, 'query'>, userId: string): Promise<string> {
  const rows = await db.query<{ plan_slug: string }>("SELECT plan_slug FROM public.check_usage($1::uuid, 'export'::varchar)", [userId]);
  return rows[0]!.plan_slug;
}

/** The row is there, valid, and says what the rule says (and what it is expected to say). */
async function follows(db: Pick<Queryable, 'query'>, userId: string, slug: string, message?: string): Promise<Row> {
  const row = await stored(db, userId);
  assert.ok(row, `${message ?? ''}: a row`);
  assert.equal(await rule(db, userId), slug, `${message ?? ''}: the rule`);
  assert.equal(row.slug, slug, `${message ?? ''}: the row`);
  assert.ok(row.validUntil === null || row.validUntil.getTime() > Date.now() - 1000, `${message ?? ''}: valid`);
  return row;
}

async function license(db: Pick<Queryable, 'query'>, userId: string, product: string, expiresAt: string | null = null, quantity = 1): Promise<string> {
  const rows = await db.query<{ id: string }>(
    `INSERT INTO public.licenses (provider, key_hash, key_prefix, user_id, product_id, status, quantity, expires_at, checked_at, state_at)
     VALUES ('gumroad', encode(sha256(gen_random_uuid()::text::bytea), 'hex'), 'ABCD', $1::uuid, $2::varchar, 'active', $3::integer,
             $4::timestamptz, now(), '-infinity') RETURNING id`, [userId, product, quantity, expiresAt]);
  return rows[0]!.id;
}

for (const dialect of DIALECTS) {
  describe(`effective plan row [${dialect}]`, () => {
    test('written by consume for a user without one; every source writes it in the transaction of the change', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        assert.equal(await stored(db, user), null, 'a new user has no row');
        assert.equal(await checked(db, user), 'free');
        assert.equal(await stored(db, user), null, 'check_usage writes nothing');
        assert.equal(await consumed(db, user), 'free');
        assert.deepEqual(await stored(db, user), { slug: 'free', validUntil: null, sources: 0 }, 'consume wrote it');

        // Manual assignment (assign_plan): the row changes inside the transaction, before commit.
        await db.transaction(async (tx) => {
          await tx.query("SELECT * FROM public.assign_plan($1::uuid, 'pro'::varchar)", [user]);
          assert.deepEqual(await stored(tx, user), { slug: 'pro', validUntil: null, sources: 1 });
          assert.equal(await consumed(tx, user), 'pro');
        });
        await follows(db, user, 'pro', 'manual');
        // A rolled-back change leaves the row as it was.
        await assert.rejects(db.transaction(async (tx) => {
          await tx.query("SELECT * FROM public.assign_plan($1::uuid, 'enterprise'::varchar)", [user]);
          assert.equal((await stored(tx, user))!.slug, 'enterprise');
          throw new Error('roll back');
        }), /roll back/);
        await follows(db, user, 'pro', 'after a rollback');

        // A subscription row (as the Stripe sync writes it): statuses and the grace of past_due.
        const sub = await createUser(db);
        await setPlan(db, sub, 'basic');
        assert.deepEqual(await follows(db, sub, 'basic', 'active'), { slug: 'basic', validUntil: null, sources: 1 });
        await db.query("UPDATE public.user_subscriptions SET status = 'past_due', current_period_end = now() + interval '3 days' WHERE user_id = $1::uuid", [sub]);
        const pastDue = await follows(db, sub, 'basic', 'past_due');
        const [{ end }] = await db.query<{ end: Date }>('SELECT current_period_end AS end FROM public.user_subscriptions WHERE user_id = $1::uuid', [sub]) as [{ end: Date }];
        assert.equal(pastDue.validUntil?.getTime(), end.getTime(), 'valid until the grace ends');
        await db.query("UPDATE public.user_subscriptions SET status = 'canceled' WHERE user_id = $1::uuid", [sub]);
        assert.deepEqual(await follows(db, sub, 'free', 'canceled'), { slug: 'free', validUntil: null, sources: 0 });
        await setPlan(db, sub, 'enterprise', 'trialing');
        await follows(db, sub, 'enterprise', 'trialing');
        await clearPlan(db, sub);
        await follows(db, sub, 'free', 'subscription deleted');

        // Figma: a paid link, its grant, a refund.
        await db.query("SELECT * FROM public.link_figma_plan('pro', 'PAID', NULL)");
        const figma = await createUser(db);
        await db.query(
          `INSERT INTO public.figma_users (figma_user_id, user_id, payment_status, checked_at, grant_until)
           VALUES ('f-1', $1::uuid, 'PAID', now(), now() + interval '1 hour')`, [figma]);
        const paid = await follows(db, figma, 'pro', 'figma PAID');
        assert.ok(paid.validUntil && paid.validUntil.getTime() > Date.now() + 3500_000, 'valid until the grant ends');
        await db.query("UPDATE public.figma_users SET payment_status = 'UNPAID' WHERE figma_user_id = 'f-1'");
        await follows(db, figma, 'free', 'figma UNPAID');
        await db.query("UPDATE public.figma_users SET payment_status = 'PAID', user_id = NULL WHERE figma_user_id = 'f-1'");
        await follows(db, figma, 'free', 'figma unlinked');
        await db.query("UPDATE public.figma_users SET user_id = $1::uuid WHERE figma_user_id = 'f-1'", [figma]);
        await follows(db, figma, 'pro', 'figma linked again');

        // A license, its expiry, a refund; two sources at once rank as the rule ranks them.
        await db.query("SELECT * FROM public.link_license_plan('basic', 'gumroad', 'solo')");
        const buyer = await createUser(db);
        const key = await license(db, buyer, 'solo', new Date(Date.now() + 86_400_000).toISOString());
        const licensed = await follows(db, buyer, 'basic', 'license');
        assert.ok(licensed.validUntil && licensed.validUntil.getTime() > Date.now() + 86_000_000);
        await db.query("SELECT * FROM public.assign_plan($1::uuid, 'pro'::varchar)", [buyer]);
        assert.equal((await follows(db, buyer, 'pro', 'license and manual')).sources, 2);
        await clearPlan(db, buyer);
        await follows(db, buyer, 'basic', 'manual removed, license left');
        await db.query("UPDATE public.licenses SET status = 'refunded' WHERE id = $1::uuid", [key]);
        await follows(db, buyer, 'free', 'license refunded');
        await db.query("UPDATE public.licenses SET status = 'active' WHERE id = $1::uuid", [key]);
        await follows(db, buyer, 'basic', 'license active again');
        await db.query('DELETE FROM public.licenses WHERE id = $1::uuid', [key]);
        await follows(db, buyer, 'free', 'license deleted');

        // License seats: a member beyond the seats gets one when a seat is given up.
        await db.query("SELECT * FROM public.link_license_plan('enterprise', 'gumroad', 'team', NULL, NULL, 2)");
        const owner = await createUser(db);
        const team = await license(db, owner, 'team');
        const [m1, m2, m3] = [await createUser(db), await createUser(db), await createUser(db)];
        await db.query('SELECT * FROM public.seat_assign_member($1::uuid, $2::uuid)', [owner, m1]);
        await db.query('SELECT * FROM public.seat_assign_member($1::uuid, $2::uuid)', [owner, m2]);
        await db.query('INSERT INTO public.seat_assignments (license_id, owner_user_id, member_user_id) VALUES ($1::uuid, $2::uuid, $3::uuid)', [team, owner, m3]);
        await follows(db, m1, 'enterprise', 'seat 1');
        await follows(db, m2, 'enterprise', 'seat 2');
        await follows(db, m3, 'free', 'beyond the seats');
        await follows(db, owner, 'free', 'the owner of a team license has no seat');
        await db.query('DELETE FROM public.seat_assignments WHERE member_user_id = $1::uuid', [m1]);
        await follows(db, m1, 'free', 'seat given up');
        await follows(db, m3, 'enterprise', 'the next member is seated');
        await db.query('UPDATE public.licenses SET quantity = 1 WHERE id = $1::uuid', [team]);
        await follows(db, m2, 'enterprise', 'the product fixes the seats, not the quantity');
        await db.query("UPDATE public.licenses SET status = 'disabled' WHERE id = $1::uuid", [team]);
        await follows(db, m2, 'free', 'team license disabled');
        await follows(db, m3, 'free', 'team license disabled');

        // Stripe seats: a team subscription of quantity 2.
        const lead = await createUser(db);
        await setPlan(db, lead, 'pro');
        await db.query('UPDATE public.user_subscriptions SET quantity = 2 WHERE user_id = $1::uuid', [lead]);
        await follows(db, lead, 'free', 'a team subscription seats others, not its payer');
        const seated = await createUser(db);
        await db.query('SELECT * FROM public.seat_assign_member($1::uuid, $2::uuid)', [lead, seated]);
        await follows(db, seated, 'pro', 'stripe seat');
        await db.query("UPDATE public.user_subscriptions SET status = 'past_due', current_period_end = now() + interval '1 day' WHERE user_id = $1::uuid", [lead]);
        const grace = await follows(db, seated, 'pro', 'stripe seat in its grace');
        assert.ok(grace.validUntil && grace.validUntil.getTime() < Date.now() + 86_500_000, 'the seat lapses with the grace');
        await db.query("UPDATE public.user_subscriptions SET status = 'unpaid' WHERE user_id = $1::uuid", [lead]);
        await follows(db, seated, 'free', 'stripe seat unpaid');
        await db.query('DELETE FROM public.user_subscriptions WHERE user_id = $1::uuid', [lead]);
        await follows(db, seated, 'free', 'team subscription deleted');

        // Deleting a user takes its row.
        await db.query('DELETE FROM public.users WHERE id = $1::uuid', [user]);
        assert.equal(await stored(db, user), null);
      }));

    test('a row lapses by time at the earliest end of a grant in force, and the hot paths then follow the rule', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        await db.query("SELECT * FROM public.link_license_plan('basic', 'gumroad', 'solo')");
        await license(db, user, 'solo', new Date(Date.now() + 86_400_000).toISOString());
        const [{ until }] = await db.query<{ until: Date }>(
          "SELECT current_period_end AS until FROM public.assign_plan($1::uuid, 'pro'::varchar, now() + interval '2 seconds')", [user]) as [{ until: Date }];
        const row = await follows(db, user, 'pro', 'manual grant with an end');
        assert.equal(row.validUntil?.getTime(), until.getTime(), 'valid until the manual grant ends, the earlier of the two');
        assert.equal(row.sources, 2);
        assert.equal(await consumed(db, user), 'pro');
        await sleep(Math.max(0, until.getTime() - Date.now()) + 300);
        // Lapsed: check_usage follows the rule and writes nothing; consume follows it and rebuilds the row.
        assert.equal(await checked(db, user), 'basic');
        assert.equal((await stored(db, user))!.slug, 'pro', 'the lapsed row stays until a consume');
        assert.equal(await consumed(db, user), 'basic');
        const rebuilt = await follows(db, user, 'basic', 'rebuilt after the lapse');
        assert.equal(rebuilt.sources, 1);
        assert.ok(rebuilt.validUntil && rebuilt.validUntil.getTime() > Date.now() + 86_000_000, 'now valid until the license expires');
      }));

    test('a missing or lapsed row, whatever it says, falls back to the rule; a consume rebuilds it', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        await setPlan(db, user, 'basic');
        await follows(db, user, 'basic');
        // A lapsed row naming another plan is never believed.
        await db.query(
          `UPDATE public.user_effective_plans SET valid_until = now() - interval '1 second',
                  plan_id = (SELECT id FROM public.subscription_plans WHERE plan_slug = 'enterprise') WHERE user_id = $1::uuid`, [user]);
        assert.equal(await checked(db, user), 'basic');
        const limits = await db.query<{ plan_slug: string }>("SELECT plan_slug FROM public.plugin_auth_usage_limits($1::uuid, 'resize'::varchar)", [user]);
        assert.equal(limits[0]!.plan_slug, 'basic');
        assert.equal(await consumed(db, user), 'basic');
        await follows(db, user, 'basic', 'rebuilt');
        // A missing row: the same.
        await db.query('DELETE FROM public.user_effective_plans WHERE user_id = $1::uuid', [user]);
        assert.equal(await checked(db, user), 'basic');
        assert.equal(await consumed(db, user), 'basic');
        await follows(db, user, 'basic', 'rebuilt from nothing');
        // An unknown user still gets unknown_user, and no row.
        const ghost = '00000000-0000-4000-8000-000000000001';
        await assert.rejects(consumed(db, ghost), /unknown_user/);
        assert.equal(await stored(db, ghost), null);
        // Under repeatable read a consume does not rebuild (its snapshot may be older than a change).
        await db.query('DELETE FROM public.user_effective_plans WHERE user_id = $1::uuid', [user]);
        await db.transaction(async (tx) => {
          await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
          assert.equal(await consumed(tx, user), 'basic');
        });
        assert.equal(await stored(db, user), null);
      }));

    test('a change of terms (plan price or limits, slug, plan links, license products) drops every row; consume rebuilds them', () =>
      withDatabase(dialect, async ({ db }) => {
        const [a, b] = [await createUser(db), await createUser(db)];
        await setPlan(db, a, 'basic');
        await consumed(db, b);
        await follows(db, a, 'basic');
        await follows(db, b, 'free');
        const count = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.user_effective_plans'))[0]!.n;
        // What does not change the answer keeps the rows.
        await db.query("UPDATE public.subscription_plans SET name = 'Basic plan', updated_at = now() WHERE plan_slug = 'basic'");
        assert.equal(await count(), 2);
        for (const change of [
          "UPDATE public.subscription_plans SET price_monthly = price_monthly + 100 WHERE plan_slug = 'basic'",
          `UPDATE public.subscription_plans SET limits = jsonb_set(limits, '{resizesPerDay}', '7') WHERE plan_slug = 'pro'`,
          "SELECT * FROM public.link_figma_plan('pro', 'PAID', NULL)",
          "SELECT * FROM public.link_license_plan('basic', 'lemonsqueezy', 'p1')",
          "DELETE FROM public.license_products",
        ]) {
          await db.query(change);
          assert.equal(await count(), 0, change);
          assert.equal(await consumed(db, a), 'basic');
          assert.equal(await consumed(db, b), 'free');
          assert.equal(await count(), 2, `rebuilt after: ${change}`);
        }
        // Ranking follows the new prices: a user with two sources switches when they swap.
        await db.query("SELECT * FROM public.link_license_plan('pro', 'gumroad', 'solo')");
        await license(db, a, 'solo');
        await follows(db, a, 'pro', 'pro outranks basic');
        await db.query("UPDATE public.subscription_plans SET price_monthly = 100000 WHERE plan_slug = 'basic'");
        assert.equal(await consumed(db, a), 'basic', 'basic now costs more');
        await follows(db, a, 'basic');
        // Renaming the free plan: a user without a grant has no plan any more (the rule's no_plan),
        // not the row's old answer; and no row is written.
        await db.query("UPDATE public.subscription_plans SET plan_slug = 'starter' WHERE plan_slug = 'free'");
        await assert.rejects(consumed(db, b), /no_plan/);
        assert.equal(await stored(db, b), null);
        await db.query("UPDATE public.subscription_plans SET plan_slug = 'free' WHERE plan_slug = 'starter'");
        assert.equal(await consumed(db, b), 'free');
        await follows(db, b, 'free');
        // Deleting a plan deletes the rows naming it.
        await db.query("DELETE FROM public.subscription_plans WHERE plan_slug = 'basic'");
        assert.equal(await consumed(db, a), 'pro');
        await follows(db, a, 'pro', 'after basic is deleted');
      }));
  });
}

/** A client of its own (a real parallel connection). */
async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

for (const dialect of SERVER_DIALECTS) {
  describe(`effective plan row, concurrency [${dialect}]`, () => {
    test('two sources of one user changing at once: the second to commit recomputes after the first', () =>
      withDatabase(dialect, async ({ db, url }) => {
        await db.query("SELECT * FROM public.link_figma_plan('enterprise', 'PAID', NULL)");
        const user = await createUser(db);
        await db.query(
          `INSERT INTO public.figma_users (figma_user_id, user_id, payment_status, checked_at, grant_until)
           VALUES ('f-2', $1::uuid, 'UNPAID', now(), now())`, [user]);
        const [a, b] = [await client(url!), await client(url!)];
        const pids = new Map<pg.Client, number>();
        for (const c of [a, b]) pids.set(c, (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
        try {
          for (const [first, second] of [[a, b], [b, a]] as const) {
            await clearPlan(db, user);
            await db.query("UPDATE public.figma_users SET payment_status = 'UNPAID' WHERE figma_user_id = 'f-2'");
            await follows(db, user, 'free');
            await first.query('BEGIN');
            await second.query('BEGIN');
            // One transaction gives a manual plan, the other a Figma grant; neither sees the other's.
            await (first === a
              ? first.query("SELECT * FROM public.assign_plan($1::uuid, 'basic'::varchar)", [user])
              : first.query("UPDATE public.figma_users SET payment_status = 'PAID', grant_until = now() + interval '1 hour' WHERE figma_user_id = 'f-2'"));
            const secondDone = second === a
              ? second.query("SELECT * FROM public.assign_plan($1::uuid, 'basic'::varchar)", [user])
              : second.query("UPDATE public.figma_users SET payment_status = 'PAID', grant_until = now() + interval '1 hour' WHERE figma_user_id = 'f-2'");
            // The second waits for the row's lock while the first is open.
            await sleep(300);
            const [{ waiting }] = (await db.query<{ waiting: number }>(
              'SELECT count(*)::int AS waiting FROM pg_catalog.pg_locks WHERE pid = $1::integer AND NOT granted', [pids.get(second)])) as [{ waiting: number }];
            assert.equal(waiting, 1, 'the second writer waits for the first');
            await first.query('COMMIT');
            await secondDone;
            await second.query('COMMIT');
            const row = await follows(db, user, 'enterprise', 'both sources');
            assert.equal(row.sources, 2);
          }
        } finally {
          await Promise.all([a.end(), b.end()]);
        }
      }));

    test('consumes racing changes on parallel connections see the old or the new plan, never a stale one after the change committed', () =>
      withDatabase(dialect, async ({ db, url }) => {
        const user = await createUser(db);
        const writer = await client(url!);
        const racers = await Promise.all(Array.from({ length: 4 }, () => client(url!)));
        const seen: string[] = [];
        let stop = false;
        // Background consumes on four connections all along (they also rebuild rows the terms drop).
        const background = racers.map(async (c) => {
          while (!stop) {
            const { rows } = await c.query("SELECT plan_slug FROM public.consume_usage($1::uuid, 'export'::varchar)", [user]);
            seen.push(rows[0].plan_slug);
          }
        });
        try {
          const plans = ['free', 'enterprise', 'basic', 'pro'];
          for (let round = 0; round < 24; round++) {
            const plan = plans[round % plans.length]!;
            await writer.query('BEGIN');
            if (plan === 'free') await writer.query('DELETE FROM public.user_subscriptions WHERE user_id = $1::uuid', [user]);
            else await writer.query('SELECT * FROM public.assign_plan($1::uuid, $2::varchar)', [user, plan]);
            // Every third round the terms change too (all rows dropped): racers rebuild them.
            if (round % 3 === 2) await writer.query("UPDATE public.subscription_plans SET price_monthly = price_monthly + 1 WHERE plan_slug = 'enterprise'");
            await writer.query('COMMIT');
            // Any consume that starts after the commit, on any connection, answers the new plan.
            const after = await Promise.all(racers.slice(0, 2).map(async () => consumed(db, user)));
            assert.deepEqual(after, [plan, plan], `round ${round}`);
            const row = await stored(db, user);
            if (row) assert.equal(row.slug, plan, `round ${round}: the stored row`);
          }
        } finally {
          stop = true;
          await Promise.allSettled(background);
          await Promise.all([writer.end(), ...racers.map((c) => c.end())]);
        }
        assert.ok(seen.length > 24, 'the racers ran');
        assert.ok(seen.every((s) => ['free', 'enterprise', 'basic', 'pro'].includes(s)));
        await consumed(db, user);
        await follows(db, user, 'pro', 'the last plan');
      }));

    test('a bulk write of many users in one statement holds no shared lock entry per user', () =>
      withDatabase(dialect, async ({ db }) => {
        // max_locks_per_transaction x max_connections bounds the shared lock table (6,400 by default):
        // 20,000 users in one INSERT would exhaust it if each took an advisory lock.
        await db.query(
          `INSERT INTO public.users (id, email)
           SELECT ('90000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'bulk-' || g || '@example.com'
             FROM generate_series(1, 20000) AS g`);
        await db.query(
          `INSERT INTO public.user_subscriptions (user_id, plan_id, status)
           SELECT ('90000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
                  (SELECT id FROM public.subscription_plans WHERE plan_slug = 'pro'), 'active'
             FROM generate_series(1, 20000) AS g`);
        const [{ n }] = (await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM public.user_effective_plans AS e JOIN public.subscription_plans AS p ON p.id = e.plan_id
            WHERE p.plan_slug = 'pro' AND e.user_id::text LIKE '90000000-%'`)) as [{ n: number }];
        assert.equal(n, 20000);
      }));

    test('many writers of many sources for a few users in parallel: every row ends as the rule says, no deadlock', () =>
      withDatabase(dialect, async ({ db, url }) => {
        await db.query("SELECT * FROM public.link_figma_plan('pro', 'PAID', NULL)");
        await db.query("SELECT * FROM public.link_license_plan('enterprise', 'gumroad', 'team', NULL, NULL, 2)");
        const owner = await createUser(db);
        const team = await license(db, owner, 'team');
        const users = [await createUser(db), await createUser(db), await createUser(db)];
        for (const [i, u] of users.entries()) {
          await db.query(
            `INSERT INTO public.figma_users (figma_user_id, user_id, payment_status, checked_at, grant_until)
             VALUES ($1::varchar, $2::uuid, 'UNPAID', now(), now())`, [`f-${i}`, u]);
        }
        const clients = await Promise.all(Array.from({ length: 6 }, () => client(url!)));
        let seed = 7;
        const random = (n: number) => {
          seed = (seed * 1103515245 + 12345) % 2147483648;
          return seed % n;
        };
        try {
          await Promise.all(clients.map(async (c, k) => {
            for (let i = 0; i < 25; i++) {
              const u = users[random(users.length)]!;
              const f = `f-${users.indexOf(u)}`;
              const op = (k + random(5)) % 5;
              await c.query('BEGIN');
              if (op === 0) await c.query("SELECT * FROM public.assign_plan($1::uuid, 'basic'::varchar)", [u]);
              else if (op === 1) await c.query('DELETE FROM public.user_subscriptions WHERE user_id = $1::uuid', [u]);
              else if (op === 2) await c.query("UPDATE public.figma_users SET payment_status = CASE WHEN payment_status = 'PAID' THEN 'UNPAID' ELSE 'PAID' END, grant_until = now() + interval '1 hour', checked_at = now() WHERE figma_user_id = $1::varchar", [f]);
              else if (op === 3) {
                // As the seat writers do: the team's license row first (one seat change per team at a time).
                await c.query('SELECT 1 FROM public.licenses WHERE id = $1::uuid FOR UPDATE', [team]);
                await c.query('DELETE FROM public.seat_assignments WHERE member_user_id = $1::uuid', [u]);
                await c.query('INSERT INTO public.seat_assignments (license_id, owner_user_id, member_user_id) VALUES ($1::uuid, $2::uuid, $3::uuid)', [team, owner, u]);
              } else await c.query("SELECT plan_slug FROM public.consume_usage($1::uuid, 'export'::varchar)", [u]);
              await c.query('COMMIT');
            }
          }));
        } finally {
          await Promise.all(clients.map((c) => c.end()));
        }
        for (const u of users) {
          const row = await stored(db, u);
          assert.ok(row, 'a row');
          assert.equal(row.slug, await rule(db, u));
          assert.equal(await consumed(db, u), row.slug);
        }
      }));
  });
}
