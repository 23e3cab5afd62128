import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { clearPlan, counter, nextUtcMidnight, setCounter, setPlan, totals } from './helpers/usage.ts';
import { createUsage, type UsageAnswer } from '../src/usage/usage.ts';
import { createPluginAuth } from '../src/auth.ts';
import { NotFoundError, PluginAuthError, ValidationError } from '../src/core/errors.ts';
import { sqlState } from '../src/core/errors.ts';
import type { Database } from '../src/core/db.ts';
import { rejectsWith } from './helpers/assert.ts';

const PLAN_LIMITS = { free: 2, basic: 4, pro: 6, enterprise: 256 } as const;

/** n consumes of one user fired at once; on the real server they spread over the pool's connections. */
async function fire(db: Database, userId: string, n: number, items = 1): Promise<UsageAnswer[]> {
  const usage = createUsage(db);
  return Promise.all(Array.from({ length: n }, () => usage.consume(userId, 'resize', { items })));
}

for (const dialect of DIALECTS) {
  describe(`usage metering [${dialect}]`, () => {
    test('free plan: two resizes ever, then limit_reached with the full answer', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createPluginAuth(db).usage;
        const user = await createUser(db);
        const first = await usage.consume(user, 'resize');
        assert.deepEqual(first, {
          allowed: true, reason: 'ok', planSlug: 'free', used: 1, usageLimit: 2, remaining: 1,
          batchLimit: 1, resetsAt: null, replayed: false,
        });
        assert.equal((await usage.consume(user, 'resize')).remaining, 0);
        const third = await usage.consume(user, 'resize');
        assert.deepEqual(third, { ...first, allowed: false, reason: 'limit_reached', used: 2, remaining: 0 });
        assert.deepEqual(await totals(db, user), { usageRows: 3, allowedRows: 2, deniedRows: 1, summaryRows: 1, counted: 2 });
      }));

    test('daily plans answer with the next UTC midnight; enterprise is unlimited', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const midnight = await nextUtcMidnight(db);
        for (const [slug, limit, batch] of [['basic', 4, 5], ['pro', 6, 20]] as const) {
          const user = await createUser(db);
          await setPlan(db, user, slug);
          assert.deepEqual(await usage.consume(user, 'resize', { items: 2 }), {
            allowed: true, reason: 'ok', planSlug: slug, used: 1, usageLimit: limit, remaining: limit - 1,
            batchLimit: batch, resetsAt: midnight, replayed: false,
          });
        }
        const user = await createUser(db);
        await setPlan(db, user, 'enterprise');
        assert.deepEqual(await usage.consume(user, 'resize', { items: 10_000 }), {
          allowed: true, reason: 'ok', planSlug: 'enterprise', used: 1, usageLimit: null, remaining: null,
          batchLimit: null, resetsAt: midnight, replayed: false,
        });
      }));

    for (const [slug, limit] of Object.entries(PLAN_LIMITS)) {
      test(`${slug}: 256 consumes at once over 32 connections allow exactly ${limit}`, () =>
        withDatabase(dialect, async ({ db }) => {
          const user = await createUser(db);
          if (slug !== 'free') await setPlan(db, user, slug);
          const answers = await fire(db, user, 256);
          const allowed = answers.filter((a) => a.allowed);
          assert.equal(allowed.length, limit);
          // Each allowed call saw a distinct count: 1..limit, none skipped, none twice.
          assert.deepEqual(allowed.map((a) => a.used).sort((a, b) => a - b), Array.from({ length: limit }, (_, i) => i + 1));
          for (const a of answers.filter((x) => !x.allowed)) {
            assert.equal(a.reason, 'limit_reached');
            assert.equal(a.used, limit);
            assert.equal(a.remaining, 0);
          }
          assert.deepEqual(await totals(db, user), {
            usageRows: 256, allowedRows: limit, deniedRows: 256 - limit, summaryRows: 1, counted: limit,
          });
        }, { max: 32 }));
    }

    test('free is lifetime: usage spread over earlier days counts, 256 at once allow only what is left', () =>
      withDatabase(dialect, async ({ db }) => {
        const spent = await createUser(db);
        await setCounter(db, spent, 'resize', 3, 1);
        await setCounter(db, spent, 'resize', 1, 1);
        const answer = await createUsage(db).consume(spent, 'resize');
        assert.deepEqual([answer.allowed, answer.reason, answer.used], [false, 'limit_reached', 2]);

        const half = await createUser(db);
        await setCounter(db, half, 'resize', 5, 1);
        await setCounter(db, half, 'resize', 2, 0);
        const answers = await fire(db, half, 256);
        assert.equal(answers.filter((a) => a.allowed).length, 1);
        assert.equal((await totals(db, half)).counted, 2);
        assert.equal(await counter(db, half), 1);
      }, { max: 32 }));

    test('a new UTC day resets daily plans, not the free plan', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const basic = await createUser(db);
        await setPlan(db, basic, 'basic');
        await setCounter(db, basic, 'resize', 1, 4);
        const answers = await fire(db, basic, 6);
        assert.equal(answers.filter((a) => a.allowed).length, 4);
        assert.equal(await counter(db, basic, 'resize', 1), 4, 'yesterday untouched');

        const free = await createUser(db);
        await setCounter(db, free, 'resize', 1, 2);
        assert.equal((await usage.consume(free, 'resize')).reason, 'limit_reached');
      }));

    test('batch above the cap is denied batch_too_large, logged, not counted; limit_reached wins', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        for (const [slug, batch] of [['free', 1], ['basic', 5], ['pro', 20]] as const) {
          const user = await createUser(db);
          if (slug !== 'free') await setPlan(db, user, slug);
          const denied = await usage.consume(user, 'resize', { items: batch + 1 });
          assert.deepEqual([denied.allowed, denied.reason, denied.used, denied.batchLimit], [false, 'batch_too_large', 0, batch]);
          assert.equal((await usage.consume(user, 'resize', { items: batch })).allowed, true);
          assert.deepEqual(await totals(db, user), { usageRows: 2, allowedRows: 1, deniedRows: 1, summaryRows: 1, counted: 1 });
        }
        const user = await createUser(db);
        await fire(db, user, 2);
        assert.equal((await usage.consume(user, 'resize', { items: 9 })).reason, 'limit_reached');
        const rows = await db.query<{ reason: string; items: number }>(
          'SELECT reason, items FROM public.plugin_usage WHERE user_id = $1 AND NOT allowed', [user]);
        assert.deepEqual(rows, [{ reason: 'limit_reached', items: 9 }]);
      }));

    test('upgrade at 3 of 4 allows 3 more of pro; downgrade from pro at 5 allows none of basic', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        await setPlan(db, user, 'basic');
        await fire(db, user, 3);
        await setPlan(db, user, 'pro');
        const after = await fire(db, user, 5);
        assert.equal(after.filter((a) => a.allowed).length, 3);
        assert.equal(await counter(db, user), 6);

        const other = await createUser(db);
        await setPlan(db, other, 'pro');
        await fire(db, other, 5);
        await setPlan(db, other, 'basic');
        const denied = await usage.consume(other, 'resize');
        assert.deepEqual([denied.allowed, denied.reason, denied.planSlug, denied.used, denied.usageLimit, denied.remaining],
          [false, 'limit_reached', 'basic', 5, 4, 0]);
        // A subscription that no longer grants access falls back to free (lifetime: 5 used > 2).
        await setPlan(db, other, 'pro', 'canceled');
        assert.deepEqual(await usage.check(other, 'resize').then((a) => [a.planSlug, a.reason]), ['free', 'limit_reached']);
        await clearPlan(db, other);
        assert.equal((await usage.check(other, 'resize')).planSlug, 'free');
      }));

    test('the plan metered is effective_plan for every subscription status and period end', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        const statuses = ['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused', 'manual'];
        const seen = new Set<string>();
        for (const status of statuses) {
          for (const periodEnd of [null, '-1 day', '+1 day']) {
            await setPlan(db, user, 'pro', status);
            await db.query(
              'UPDATE public.user_subscriptions SET current_period_end = now() + $2::interval WHERE user_id = $1',
              [user, periodEnd ?? '0 seconds']);
            if (periodEnd === null) await db.query('UPDATE public.user_subscriptions SET current_period_end = NULL WHERE user_id = $1', [user]);
            const slug = (await db.query<{ slug: string }>('SELECT plan_slug AS slug FROM public.effective_plan($1)', [user]))[0]!.slug;
            assert.equal((await usage.check(user, 'resize')).planSlug, slug, `${status} ${periodEnd}`);
            assert.equal((await usage.consume(user, 'export')).planSlug, slug, `${status} ${periodEnd}`);
            seen.add(slug);
          }
        }
        assert.deepEqual([...seen].sort(), ['free', 'pro']);
      }));

    test('the worked example of docs/usage.md, step by step', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const u = await createUser(db);
        await setPlan(db, u, 'basic');
        const brief = (a: UsageAnswer) => [a.allowed, a.reason, a.used, a.remaining, a.replayed];
        assert.deepEqual(brief(await usage.consume(u, 'resize', { items: 3 })), [true, 'ok', 1, 3, false]);
        assert.deepEqual(brief(await usage.consume(u, 'resize', { items: 8 })), [false, 'batch_too_large', 1, 3, false]);
        assert.deepEqual(brief(await usage.consume(u, 'resize', { items: 5, idempotencyKey: 'r3' })), [true, 'ok', 2, 2, false]);
        assert.deepEqual(brief(await usage.consume(u, 'resize', { items: 5, idempotencyKey: 'r3' })), [true, 'ok', 2, 2, true]);
        assert.deepEqual(brief(await usage.consume(u, 'resize')), [true, 'ok', 3, 1, false]);
        await setPlan(db, u, 'pro');
        const step6 = [];
        for (let i = 0; i < 4; i++) step6.push(brief(await usage.consume(u, 'resize')));
        assert.deepEqual(step6, [[true, 'ok', 4, 2, false], [true, 'ok', 5, 1, false], [true, 'ok', 6, 0, false], [false, 'limit_reached', 6, 0, false]]);
        assert.deepEqual(await usage.refund(u, 'r3'), { refunded: true });
        assert.equal(await counter(db, u), 5);
        assert.deepEqual(await usage.refund(u, 'r3'), { refunded: false });
        await setPlan(db, u, 'basic');
        const step9 = await usage.consume(u, 'resize');
        assert.deepEqual([...brief(step9), step9.usageLimit], [false, 'limit_reached', 5, 0, false, 4]);
        // "Next UTC day": today's counter becomes yesterday's.
        await db.query('UPDATE public.daily_usage_summary SET usage_date = usage_date - 1 WHERE user_id = $1', [u]);
        assert.deepEqual(brief(await usage.consume(u, 'resize')), [true, 'ok', 1, 3, false]);
      }));

    test('other actions are counted per day and logged, never limited', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        await fire(db, user, 3);
        const answers = [];
        for (let i = 0; i < 4; i++) answers.push(await usage.consume(user, 'export.png', { items: 500, metadata: { n: i } }));
        assert.deepEqual(answers.map((a) => [a.allowed, a.used, a.usageLimit, a.batchLimit]),
          [[true, 1, null, null], [true, 2, null, null], [true, 3, null, null], [true, 4, null, null]]);
        assert.equal(await counter(db, user, 'export.png'), 4);
        const logged = await db.query<{ metadata: unknown }>(
          "SELECT metadata FROM public.plugin_usage WHERE user_id = $1 AND action = 'export.png' ORDER BY id", [user]);
        assert.deepEqual(logged.map((r) => r.metadata), [{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }]);
      }));

    test('check answers exactly what consume then answers, and writes nothing', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        await setPlan(db, user, 'basic');
        for (const items of [1, 6, 2, 1, 1, 1, 9]) {
          const before = await totals(db, user);
          const checked = await usage.check(user, 'resize', { items });
          assert.deepEqual(await totals(db, user), before);
          assert.deepEqual(await usage.consume(user, 'resize', { items }), checked);
        }
      }));

    test('the same idempotency key replays the first answer and writes nothing', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        const first = await usage.consume(user, 'resize', { idempotencyKey: 'op-1', metadata: { layer: 'a' } });
        const before = await totals(db, user);
        const again = await usage.consume(user, 'resize', { idempotencyKey: 'op-1' });
        assert.deepEqual(again, { ...first, replayed: true });
        assert.deepEqual(await totals(db, user), before);
        // A denied answer is replayed as denied, even after an upgrade.
        await usage.consume(user, 'resize');
        const denied = await usage.consume(user, 'resize', { idempotencyKey: 'op-2' });
        await setPlan(db, user, 'pro');
        assert.deepEqual(await usage.consume(user, 'resize', { idempotencyKey: 'op-2' }), { ...denied, replayed: true });
        // Keys belong to one user; another user may use the same key.
        const other = await createUser(db);
        assert.equal((await usage.consume(other, 'resize', { idempotencyKey: 'op-1' })).replayed, false);
        // A key names one request: reusing it for another action or batch size is an error.
        await rejectsWith(usage.consume(user, 'export', { idempotencyKey: 'op-1' }), ValidationError, 'idempotency_key_reused');
        await rejectsWith(usage.consume(user, 'resize', { idempotencyKey: 'op-1', items: 2 }), ValidationError, 'idempotency_key_reused');
      }));

    test('a key replays only a retry: never after a refund, after the 10-minute window, or for another operation (issue 22)', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        await setPlan(db, user, 'basic'); // 4 a day
        // (a) consume, refund (the work failed), retry with the same key: refused, never allowed uncounted.
        assert.equal((await usage.consume(user, 'resize', { idempotencyKey: 'job-1' })).allowed, true);
        assert.equal((await usage.refund(user, 'job-1')).refunded, true);
        const before = await totals(db, user);
        for (let i = 0; i < 10; i++) {
          await rejectsWith(usage.consume(user, 'resize', { idempotencyKey: 'job-1' }), ValidationError, 'idempotency_key_reused');
        }
        assert.deepEqual(await totals(db, user), before, 'refused: nothing written');
        // Ten operations, each with a key and a refund-then-retry: the plan's 4 a day still hold.
        let allowed = 0;
        for (let i = 0; i < 10; i++) {
          if ((await usage.consume(user, 'resize', { idempotencyKey: `op-${i}` })).allowed) allowed++;
        }
        assert.equal(allowed, 4);
        assert.equal((await counter(db, user, 'resize')), 4);
        // (b) one key sent 50 times within the window: counted once, 50 times the same answer.
        const other = await createUser(db);
        const answers = [];
        for (let i = 0; i < 50; i++) answers.push(await usage.consume(other, 'export', { idempotencyKey: 'same' }));
        assert.deepEqual(answers.map((a) => [a.allowed, a.used, a.replayed]), [[true, 1, false], ...Array.from({ length: 49 }, () => [true, 1, true])]);
        assert.equal(await counter(db, other, 'export'), 1);
        // After the retry window (10 minutes from the first use): refused, not replayed.
        await db.query("UPDATE public.plugin_usage SET created_at = now() - interval '9 minutes' WHERE user_id = $1::uuid", [other]);
        assert.equal((await usage.consume(other, 'export', { idempotencyKey: 'same' })).replayed, true, 'still within the window');
        await db.query("UPDATE public.plugin_usage SET created_at = now() - interval '10 minutes 1 second' WHERE user_id = $1::uuid", [other]);
        await rejectsWith(usage.consume(other, 'export', { idempotencyKey: 'same' }), ValidationError, 'idempotency_key_reused');
        assert.equal(await counter(db, other, 'export'), 1);
        // With other items (or another action): refused, within the window too.
        await usage.consume(other, 'resize', { idempotencyKey: 'batch', items: 1 });
        await rejectsWith(usage.consume(other, 'resize', { idempotencyKey: 'batch', items: 2 }), ValidationError, 'idempotency_key_reused');
        await rejectsWith(usage.consume(other, 'export', { idempotencyKey: 'batch' }), ValidationError, 'idempotency_key_reused');
        // A denied first answer replays denied within the window, and is refused after it.
        await usage.consume(other, 'resize');
        const denied = await usage.consume(other, 'resize', { idempotencyKey: 'late' });
        assert.equal(denied.reason, 'limit_reached');
        assert.deepEqual(await usage.consume(other, 'resize', { idempotencyKey: 'late' }), { ...denied, replayed: true });
        await db.query("UPDATE public.plugin_usage SET created_at = now() - interval '11 minutes' WHERE user_id = $1::uuid AND idempotency_key = 'late'", [other]);
        await rejectsWith(usage.consume(other, 'resize', { idempotencyKey: 'late' }), ValidationError, 'idempotency_key_reused');
        // The SQL function (the rpc path) answers the same, with its SQLSTATE.
        await assert.rejects(db.query("SELECT * FROM public.consume_usage($1::uuid, 'resize', 1, 'job-1', NULL)", [user]), (e) => sqlState(e) === 'PA009');
      }));

    test('refund gives back once, never below zero; denied calls and unknown keys give nothing back', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        await usage.consume(user, 'resize', { idempotencyKey: 'a' });
        await usage.consume(user, 'resize', { idempotencyKey: 'b' });
        assert.equal((await usage.consume(user, 'resize', { idempotencyKey: 'c' })).allowed, false);
        assert.deepEqual(await usage.refund(user, 'a'), { refunded: true });
        assert.deepEqual(await usage.refund(user, 'a'), { refunded: false });
        assert.deepEqual(await usage.refund(user, 'c'), { refunded: false });
        assert.equal(await counter(db, user), 1);
        assert.equal((await usage.consume(user, 'resize', { idempotencyKey: 'd' })).used, 2);
        await rejectsWith(usage.refund(user, 'nope'), NotFoundError, 'unknown_idempotency_key');
        await rejectsWith(usage.refund(await createUser(db), 'b'), NotFoundError, 'unknown_idempotency_key');
        await db.query('UPDATE public.daily_usage_summary SET count = 0 WHERE user_id = $1', [user]);
        assert.deepEqual(await usage.refund(user, 'b'), { refunded: true });
        assert.equal(await counter(db, user), 0);
        const refunded = await db.query<{ idempotency_key: string }>(
          'SELECT idempotency_key FROM public.plugin_usage WHERE user_id = $1 AND refunded_at IS NOT NULL ORDER BY 1', [user]);
        assert.deepEqual(refunded.map((r) => r.idempotency_key), ['a', 'b']);
      }));

    test('refund gives back on the day the call was counted', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        await setPlan(db, user, 'basic');
        await usage.consume(user, 'resize', { idempotencyKey: 'old' });
        // Move that call and its count to yesterday, as if it had happened then.
        await db.query("UPDATE public.plugin_usage SET created_at = created_at - interval '1 day' WHERE user_id = $1", [user]);
        await db.query("UPDATE public.daily_usage_summary SET usage_date = usage_date - 1 WHERE user_id = $1", [user]);
        await usage.consume(user, 'resize');
        assert.deepEqual(await usage.refund(user, 'old'), { refunded: true });
        assert.deepEqual([await counter(db, user, 'resize', 1), await counter(db, user)], [0, 1]);
      }));

    test('summary: per UTC day and action, counter and allowed/denied/refunded calls', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        await setPlan(db, user, 'basic');
        await setCounter(db, user, 'resize', 40, 1);
        await setCounter(db, user, 'resize', 3, 1);
        await usage.consume(user, 'resize', { idempotencyKey: 'k' });
        await usage.consume(user, 'resize');
        await usage.consume(user, 'resize', { items: 9 });
        await usage.consume(user, 'export');
        await usage.refund(user, 'k');
        const { today, threeAgo, fortyAgo } = (await db.query<{ today: string; threeAgo: string; fortyAgo: string }>(
          `SELECT d AS today, d - 3 AS "threeAgo", d - 40 AS "fortyAgo" FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) x`))[0]!;
        assert.deepEqual(await usage.summary(user), [
          { date: threeAgo, action: 'resize', used: 1, allowed: 0, denied: 0, refunded: 0 },
          { date: today, action: 'export', used: 1, allowed: 1, denied: 0, refunded: 0 },
          { date: today, action: 'resize', used: 1, allowed: 2, denied: 1, refunded: 1 },
        ]);
        const old = await usage.summary(user, { from: fortyAgo, to: new Date(`${threeAgo}T12:00:00Z`) });
        assert.deepEqual(old.map((d) => d.date), [fortyAgo, threeAgo]);
        await rejectsWith(usage.summary(user, { from: today, to: threeAgo }), ValidationError, 'invalid_date');
        await rejectsWith(usage.summary(user, { from: '2026-02-30' }), ValidationError, 'invalid_date');
        await rejectsWith(usage.summary(user, { to: new Date(Number.NaN) }), ValidationError, 'invalid_date');
      }));

    test('bad input through TypeScript: typed error, stable code, nothing written', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        await usage.consume(user, 'resize', { idempotencyKey: 'seen' });
        const before = await totals(db);
        const cycle: Record<string, unknown> = {};
        cycle.self = cycle;
        type Case = [() => Promise<unknown>, typeof PluginAuthError, string];
        const cases: Case[] = [
          ...[0, -1, 1.5, Number.NaN, Infinity, 2 ** 53, 10_001, '3' as unknown as number, null as unknown as number].map(
            (items) => [() => usage.consume(user, 'resize', { items }), ValidationError, 'invalid_items'] as Case),
          [() => usage.check(user, 'resize', { items: 0 }), ValidationError, 'invalid_items'],
          ...['', 'x'.repeat(65), 'x'.repeat(10_240), 're size', 'résize', null as unknown as string].map(
            (action) => [() => usage.consume(user, action), ValidationError, 'invalid_action'] as Case),
          [() => usage.consume('00000000-0000-4000-8000-000000000000', 'resize'), NotFoundError, 'unknown_user'],
          [() => usage.consume('not-a-uuid', 'resize'), ValidationError, 'invalid_user_id'],
          [() => usage.check('00000000-0000-4000-8000-000000000000', 'resize'), NotFoundError, 'unknown_user'],
          [() => usage.refund('00000000-0000-4000-8000-000000000000', 'seen'), NotFoundError, 'unknown_user'],
          [() => usage.summary('00000000-0000-4000-8000-000000000000'), NotFoundError, 'unknown_user'],
          ...['', 'k'.repeat(256), 'a\nb', 'tab\tkey', 7 as unknown as string].map(
            (idempotencyKey) => [() => usage.consume(user, 'resize', { idempotencyKey }), ValidationError, 'invalid_idempotency_key'] as Case),
          [() => usage.refund(user, ''), ValidationError, 'invalid_idempotency_key'],
          ...[[1], 'text', 42, { big: 'x'.repeat(16_400) }, cycle, { n: 1n }, { s: 'nul\u0000' }].map(
            (metadata) => [() => usage.consume(user, 'resize', { metadata: metadata as Record<string, unknown> }), ValidationError, 'invalid_metadata'] as Case),
        ];
        for (const [call, Class, code] of cases) await rejectsWith(call(), Class, code);
        assert.deepEqual(await totals(db), before);
      }));

    test('bad input through SQL (the rpc path): stable SQLSTATE, nothing written', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        const before = await totals(db);
        const cases: [string, unknown[], string][] = [
          ['SELECT * FROM public.consume_usage($1, $2, $3)', [user, 'resize', 0], 'PA002'],
          ['SELECT * FROM public.consume_usage($1, $2, $3)', [user, 'resize', null], 'PA002'],
          ['SELECT * FROM public.consume_usage($1, $2, $3)', [user, 'resize', 10_001], 'PA002'],
          ['SELECT * FROM public.check_usage($1, $2, $3)', [user, 'resize', -5], 'PA002'],
          ['SELECT * FROM public.consume_usage($1, $2)', [user, null], 'PA003'],
          ['SELECT * FROM public.consume_usage($1, $2)', [user, 'x'.repeat(10_240)], 'PA003'],
          ['SELECT * FROM public.consume_usage($1, $2)', ['00000000-0000-4000-8000-000000000000', 'resize'], 'PA001'],
          ['SELECT * FROM public.consume_usage($1, $2)', [null, 'resize'], 'PA001'],
          ['SELECT * FROM public.consume_usage($1, $2, 1, $3)', [user, 'resize', 'a\u0001b'], 'PA004'],
          ['SELECT * FROM public.consume_usage($1, $2, 1, $3)', [user, 'resize', ''], 'PA004'],
          ['SELECT * FROM public.consume_usage($1, $2, 1, NULL, $3::jsonb)', [user, 'resize', '[1]'], 'PA005'],
          ['SELECT * FROM public.consume_usage($1, $2, 1, NULL, $3::jsonb)', [user, 'resize', 'null'], 'PA005'],
          ['SELECT * FROM public.consume_usage($1, $2, 1, NULL, $3::jsonb)', [user, 'resize', JSON.stringify({ a: 'x'.repeat(16_380) })], 'PA005'],
          ['SELECT public.refund_usage($1, $2)', [user, null], 'PA004'],
          ['SELECT public.refund_usage($1, $2)', [user, 'never'], 'PA008'],
          ['SELECT * FROM public.usage_summary($1, $2, $3)', [user, '2026-02-01', '2026-01-01'], 'PA006'],
        ];
        for (const [text, params, state] of cases) {
          await assert.rejects(db.query(text, params), (e: unknown) => {
            assert.equal(sqlState(e), state, text);
            assert.match(String((e as Error).message), /^[a-z_]+: /);
            return true;
          });
        }
        assert.deepEqual(await totals(db), before);
      }));

    test('no plan at all (the free plan removed) is no_plan', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        await db.query("DELETE FROM public.subscription_plans WHERE plan_slug = 'free'");
        await rejectsWith(createUsage(db).consume(user, 'resize'), NotFoundError, 'no_plan');
        assert.equal((await totals(db)).usageRows, 0);
      }));
  });

  if (dialect !== 'pglite') {
    describe(`usage metering concurrency [${dialect}, real server only]`, () => {
      test('the same idempotency key fired from 16 connections counts once, every answer the same', () =>
        withDatabase(dialect, async ({ db }) => {
          const usage = createUsage(db);
          const user = await createUser(db);
          await setPlan(db, user, 'basic');
          const answers = await Promise.all(Array.from({ length: 16 }, () =>
            usage.consume(user, 'resize', { idempotencyKey: 'same-op', items: 3 })));
          assert.equal(answers.filter((a) => !a.replayed).length, 1);
          const { replayed: _r, ...first } = answers.find((a) => !a.replayed)!;
          for (const a of answers) assert.deepEqual({ ...a, replayed: false }, { ...first, replayed: false });
          assert.deepEqual(await totals(db, user), { usageRows: 1, allowedRows: 1, deniedRows: 0, summaryRows: 1, counted: 1 });
        }, { max: 16 }));

      test('the same new key from 16 connections after a refund of another: one counts, the rest replay; a refunded key from 16 connections: all refused', () =>
        withDatabase('postgres', async ({ db }) => {
          const usage = createUsage(db);
          const user = await createUser(db);
          await setPlan(db, user, 'basic');
          await usage.consume(user, 'resize', { idempotencyKey: 'refunded' });
          await usage.refund(user, 'refunded');
          const settled = await Promise.allSettled(Array.from({ length: 32 }, (_, i) =>
            usage.consume(user, 'resize', { idempotencyKey: i % 2 ? 'refunded' : 'fresh' })));
          const fresh = settled.filter((_, i) => i % 2 === 0);
          const refunded = settled.filter((_, i) => i % 2 === 1);
          assert.ok(fresh.every((r) => r.status === 'fulfilled' && r.value.allowed));
          assert.equal(fresh.filter((r) => r.status === 'fulfilled' && !r.value.replayed).length, 1);
          assert.ok(refunded.every((r) => r.status === 'rejected' && (r.reason as PluginAuthError).code === 'idempotency_key_reused'));
          assert.equal(await counter(db, user, 'resize'), 1, 'the refunded operation is given back; the fresh key counts once');
          const backends = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()');
          assert.ok(backends[0]!.n >= 8, `parallel connections were used (${backends[0]!.n})`);
        }, { max: 16 }));

      test('16 keys, 4 requests each, at once on basic: 4 operations allowed, each key answered consistently', () =>
        withDatabase(dialect, async ({ db }) => {
          const usage = createUsage(db);
          const user = await createUser(db);
          await setPlan(db, user, 'basic');
          const keys = Array.from({ length: 16 }, (_, i) => `k${i}`);
          const answers = await Promise.all(keys.flatMap((key) =>
            Array.from({ length: 4 }, () => usage.consume(user, 'resize', { idempotencyKey: key }).then((a) => ({ key, a })))));
          const byKey = new Map<string, boolean[]>();
          for (const { key, a } of answers) byKey.set(key, [...(byKey.get(key) ?? []), a.allowed]);
          for (const verdicts of byKey.values()) assert.equal(new Set(verdicts).size, 1);
          assert.equal([...byKey.values()].filter((v) => v[0]).length, 4);
          assert.deepEqual(await totals(db, user), { usageRows: 16, allowedRows: 4, deniedRows: 12, summaryRows: 1, counted: 4 });
        }, { max: 32 }));

      test('plan switching between daily and lifetime while 128 consumes are in flight: every answer within its limit', () =>
        withDatabase(dialect, async ({ db }) => {
          const usage = createUsage(db);
          const user = await createUser(db);
          const flips = (async () => {
            for (let i = 0; i < 12; i++) {
              if (i % 2) await clearPlan(db, user);
              else await setPlan(db, user, 'basic');
            }
          })();
          const [answers] = await Promise.all([
            Promise.all(Array.from({ length: 128 }, () => usage.consume(user, 'resize'))),
            flips,
          ]);
          const allowed = answers.filter((a) => a.allowed);
          for (const a of allowed) assert.ok(a.used <= a.usageLimit!, `${a.planSlug}: used ${a.used} of ${a.usageLimit}`);
          // Both kinds serialize on today's row: no two allowed calls saw the same count.
          assert.equal(new Set(allowed.map((a) => a.used)).size, allowed.length);
          assert.ok(allowed.length <= 4);
          assert.equal((await totals(db, user)).counted, allowed.length);
        }, { max: 32 }));

      test('16 concurrent refunds of one key give back once', () =>
        withDatabase(dialect, async ({ db }) => {
          const usage = createUsage(db);
          const user = await createUser(db);
          await setPlan(db, user, 'pro');
          await usage.consume(user, 'resize', { idempotencyKey: 'r' });
          await usage.consume(user, 'resize');
          const results = await Promise.all(Array.from({ length: 16 }, () => usage.refund(user, 'r')));
          assert.equal(results.filter((r) => r.refunded).length, 1);
          assert.equal(await counter(db, user), 1);
        }, { max: 16 }));

      test('consumes and refunds interleaved on the free plan never allow more than limit + refunds', () =>
        withDatabase(dialect, async ({ db }) => {
          const usage = createUsage(db);
          const user = await createUser(db);
          const first = await Promise.all(Array.from({ length: 8 }, (_, i) => usage.consume(user, 'resize', { idempotencyKey: `a${i}` })));
          const given = first.map((a, i) => (a.allowed ? `a${i}` : null)).filter((k): k is string => k !== null);
          assert.equal(given.length, 2);
          const mixed = await Promise.all([
            ...given.map((key) => usage.refund(user, key)),
            ...Array.from({ length: 64 }, () => usage.consume(user, 'resize')),
          ]);
          const allowedAfter = mixed.filter((r) => 'allowed' in r && r.allowed).length;
          assert.ok(allowedAfter <= 2, `at most the 2 refunded operations are used again (got ${allowedAfter})`);
          const t = await totals(db, user);
          assert.equal(t.counted, allowedAfter);
          assert.ok(t.counted <= 2);
        }, { max: 32 }));
    });
  }
}
