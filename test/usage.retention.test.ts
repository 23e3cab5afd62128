import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { setCounter, setPlan } from './helpers/usage.ts';
import { createUsage } from '../src/usage/usage.ts';
import { purgeUsage, parseAge } from '../src/usage/retention.ts';
import { usageReport } from '../src/usage/report.ts';
import { PluginAuthError, ValidationError, sqlState } from '../src/core/errors.ts';
import type { Queryable } from '../src/core/db.ts';
import { rejectsWith } from './helpers/assert.ts';

/** Writes n log rows of one user created `daysAgo` days ago (we cannot move the clock). */
async function oldCalls(db: Queryable, userId: string, n: number, daysAgo: number, allowed = true, key?: string): Promise<void> {
  await db.query(
    `INSERT INTO public.plugin_usage (user_id, action, items, allowed, reason, idempotency_key, created_at)
     SELECT $1, 'resize', 1, $4, CASE WHEN $4 THEN 'ok' ELSE 'limit_reached' END,
            CASE WHEN $5::text IS NULL THEN NULL ELSE $5 || g END,
            now() - make_interval(days => $3) - make_interval(secs => g)
       FROM generate_series(1, $2) g`,
    [userId, n, daysAgo, allowed, key ?? null],
  );
}

const count = async (db: Queryable, sql: string, params: unknown[] = []) =>
  (await db.query<{ n: number }>(sql, params))[0]!.n;
const logRows = (db: Queryable, userId?: string) =>
  count(db, 'SELECT count(*)::int AS n FROM public.plugin_usage WHERE $1::uuid IS NULL OR user_id = $1', [userId ?? null]);
const counterRows = (db: Queryable) =>
  count(db, 'SELECT count(*)::int AS n FROM public.daily_usage_summary');

for (const dialect of DIALECTS) {
  describe(`retention [${dialect}]`, () => {
    test('deletes exactly the rows older than the cutoff, in batches, oldest first', () =>
      withDatabase(dialect, async ({ db }) => {
        const a = await createUser(db);
        const b = await createUser(db);
        await oldCalls(db, a, 12, 120);
        await oldCalls(db, b, 13, 95, false);
        await oldCalls(db, a, 4, 89);
        await oldCalls(db, b, 3, 0);
        const keep = await db.query<{ id: number }>(
          `SELECT id FROM public.plugin_usage WHERE created_at >= now() - interval '90 days' ORDER BY id`);
        const seen: number[] = [];
        const result = await purgeUsage(db, { olderThan: '90d', batchSize: 10, onBatch: (b) => seen.push(b.deleted) });
        assert.equal(result.deleted, 25);
        assert.equal(result.batches, 3);
        assert.equal(result.done, true);
        assert.deepEqual(seen, [10, 10, 5]);
        const left = await db.query<{ id: number }>('SELECT id FROM public.plugin_usage ORDER BY id');
        assert.deepEqual(left, keep);
        // A second run finds nothing.
        assert.equal((await purgeUsage(db, { olderThan: '90d' })).deleted, 0);
      }));

    test('never touches the counters: a lifetime plan stays used up after its log is purged', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db); // free: 2 resizes ever
        await setCounter(db, user, 'resize', 200, 2);
        await oldCalls(db, user, 2, 200);
        const before = await db.query('SELECT * FROM public.daily_usage_summary ORDER BY id');
        assert.equal((await purgeUsage(db, { olderThan: '90d' })).deleted, 2);
        assert.deepEqual(await db.query('SELECT * FROM public.daily_usage_summary ORDER BY id'), before);
        const answer = await usage.consume(user, 'resize');
        assert.equal(answer.allowed, false);
        assert.equal(answer.reason, 'limit_reached');
        assert.equal(answer.used, 2);
      }));

    test('purging a call forgets its idempotency key: refused as reused before (past the retry window), a new call after (the documented trade-off)', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        await setPlan(db, user, 'pro');
        await oldCalls(db, user, 1, 100, true, 'retry-');
        // 100 days after its first use the key is far past the 10-minute retry window: never replayed as allowed.
        await assert.rejects(usage.consume(user, 'resize', { idempotencyKey: 'retry-1' }), { code: 'idempotency_key_reused' });
        await purgeUsage(db, { olderThan: '90d' });
        const after = await usage.consume(user, 'resize', { idempotencyKey: 'retry-1' });
        assert.equal(after.replayed, false);
        assert.equal(after.allowed, true);
        assert.equal(after.used, 1);
      }));

    test('dry run counts and deletes nothing; maxBatches stops early and the next run finishes', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        await oldCalls(db, user, 7, 100);
        await oldCalls(db, user, 2, 1);
        const dry = await purgeUsage(db, { olderThan: '90d', dryRun: true });
        assert.deepEqual({ deleted: dry.deleted, batches: dry.batches, dryRun: dry.dryRun }, { deleted: 7, batches: 0, dryRun: true });
        assert.equal(await logRows(db), 9);
        const partial = await purgeUsage(db, { olderThan: '90d', batchSize: 2, maxBatches: 2 });
        assert.deepEqual({ deleted: partial.deleted, done: partial.done }, { deleted: 4, done: false });
        assert.equal(await logRows(db), 5);
        const rest = await purgeUsage(db, { olderThan: '90d', batchSize: 2 });
        assert.deepEqual({ deleted: rest.deleted, done: rest.done }, { deleted: 3, done: true });
        assert.equal(await logRows(db), 2);
      }));

    test('bad input: typed errors, nothing deleted, in TypeScript and in SQL', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        await oldCalls(db, user, 3, 100);
        await rejectsWith(purgeUsage(db, { olderThan: '12h' }), PluginAuthError, 'invalid_cutoff');
        await rejectsWith(purgeUsage(db, { olderThan: 'ninety days' }), PluginAuthError, 'invalid_cutoff');
        await rejectsWith(purgeUsage(db, { olderThan: new Date() }), PluginAuthError, 'invalid_cutoff');
        await rejectsWith(purgeUsage(db, { olderThan: '90d', batchSize: 0 }), PluginAuthError, 'invalid_batch_size');
        await rejectsWith(purgeUsage(db, { olderThan: '90d', batchSize: 2.5 }), PluginAuthError, 'invalid_batch_size');
        await assert.rejects(db.query('SELECT * FROM public.purge_usage_batch(now(), 10)'), (e) => sqlState(e) === 'PA024');
        await assert.rejects(db.query(`SELECT * FROM public.purge_usage_batch(now() - interval '90 days', 0)`), (e) => sqlState(e) === 'PA072');
        assert.equal(await logRows(db), 3);
        assert.ok(parseAge('90d', new Date('2026-11-25T00:00:00Z')).toISOString() === '2026-08-27T00:00:00.000Z');
      }));

    test('calls not yet rolled up into the report totals are never deleted', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        await oldCalls(db, user, 4, 100);
        await db.query(`UPDATE public.usage_rollup_state SET rolled_up_to = now() - interval '300 days'`);
        const batch = await db.query<{ deleted: number }>(`SELECT deleted FROM public.purge_usage_batch(now() - interval '90 days', 10)`);
        assert.equal(batch[0]!.deleted, 0);
        assert.equal(await logRows(db), 4);
      }));

    test('report: calls per day and action, allowed and denied; old days survive the purge', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const user = await createUser(db);
        await setPlan(db, user, 'basic'); // 4 a day
        for (let i = 0; i < 6; i++) await usage.consume(user, 'resize');
        await usage.consume(user, 'export');
        await oldCalls(db, user, 5, 100);
        await oldCalls(db, user, 2, 100, false);
        await oldCalls(db, user, 3, 10);
        const today = (await db.query<{ d: string }>(`SELECT (now() AT TIME ZONE 'UTC')::date AS d`))[0]!.d;
        const report = await usageReport(db);
        const todays = report.filter((r) => r.date === today);
        assert.deepEqual(todays.map((r) => [r.action, r.allowed, r.denied]), [['export', 1, 0], ['resize', 4, 2]]);
        assert.equal(report.filter((r) => r.date !== today).reduce((n, r) => n + r.allowed, 0), 3);
        // Called again: the same answer (nothing counted twice by the rollup).
        assert.deepEqual(await usageReport(db), report);
        const long = await usageReport(db, { days: 120 });
        await purgeUsage(db, { olderThan: '90d' });
        assert.equal(await logRows(db), 10);
        assert.deepEqual(await usageReport(db, { days: 120 }), long);
        assert.equal(long.reduce((n, r) => n + r.denied, 0), 4);
        await rejectsWith(usageReport(db, { days: 0 }), PluginAuthError, 'invalid_days');
        await assert.rejects(usageReport(db, { days: 1.5 }), ValidationError);
        await assert.rejects(db.query('SELECT * FROM public.usage_report(400)'), (e) => sqlState(e) === 'PA070');
      }));
  });
}

describe('retention while serving [postgres only]', () => {
  if (!DIALECTS.includes('postgres')) return;
  test('consumes keep working and stay exact while a purge deletes in many batches on other connections', () =>
    withDatabase('postgres', async ({ db }) => {
      const usage = createUsage(db);
      const users = await Promise.all(Array.from({ length: 20 }, () => createUser(db)));
      for (const user of users) await setPlan(db, user, 'pro'); // 6 a day
      await db.query(
        `INSERT INTO public.plugin_usage (user_id, action, items, allowed, reason, created_at)
         SELECT u, 'resize', 1, true, 'ok', now() - interval '100 days' - make_interval(secs => g)
           FROM unnest($1::uuid[]) u, generate_series(1, 1000) g`,
        [users],
      );
      const before = await counterRows(db);
      const batches: number[] = [];
      // 10 calls per user (6 allowed), all in flight at once alongside the purge.
      const [purged, answers] = await Promise.all([
        purgeUsage(db, { olderThan: '90d', batchSize: 250, onBatch: (b) => batches.push(b.deleted) }),
        Promise.all(users.flatMap((u) => Array.from({ length: 10 }, () => usage.consume(u, 'resize')))),
      ]);
      assert.equal(purged.deleted, 20_000);
      assert.ok(batches.length >= 80, `${batches.length} batches`);
      assert.equal(answers.filter((a) => a.allowed).length, 20 * 6);
      assert.equal(answers.filter((a) => a.reason === 'limit_reached').length, 20 * 4);
      for (const user of users) {
        const rows = await db.query<{ n: number }>(
          `SELECT count::int AS n FROM public.daily_usage_summary WHERE user_id = $1 AND usage_date = (now() AT TIME ZONE 'UTC')::date`, [user]);
        assert.equal(rows[0]!.n, 6);
        assert.equal(await logRows(db, user), 10);
      }
      assert.equal(await counterRows(db), before + 20);
    }, { max: 10 }));
});
