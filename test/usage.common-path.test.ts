// consume's common case as one statement (src/usage/common-consume.ts): on twin users it answers
// and writes what consume_usage does, call by call; it runs only where it may (with the function
// renamed away, exactly the calls it declines fail); a denial under contention reports the latest
// count, as the function's fresh read does. Real parallel connections on the server.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, SERVER_DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { setPlan } from './helpers/usage.ts';
import { openDatabase, type Queryable } from '../src/core/db.ts';
import { createUsage, usageCalls, type UsageAnswer } from '../src/usage/usage.ts';

const FUNCTION = 'public.consume_usage(uuid, varchar, integer, text, jsonb)';

/** The function's answer, called as an rpc caller calls it, in the library's shape. */
async function viaFunction(db: Queryable, userId: string, action: string, items = 1, metadata: object | null = null): Promise<UsageAnswer> {
  const [r] = await db.query<{
    allowed: boolean; reason: UsageAnswer['reason']; plan_slug: string; used: number; usage_limit: number | null;
    remaining: number | null; batch_limit: number | null; resets_at: Date | null; replayed: boolean;
  }>(
    'SELECT * FROM public.consume_usage($1::uuid, $2::varchar, $3::integer, NULL::text, $4::jsonb)',
    [userId, action, items, metadata === null ? null : JSON.stringify(metadata)],
  );
  return {
    allowed: r!.allowed, reason: r!.reason, planSlug: r!.plan_slug, used: r!.used, usageLimit: r!.usage_limit,
    remaining: r!.remaining, batchLimit: r!.batch_limit, resetsAt: r!.resets_at, replayed: r!.replayed,
  };
}

/** What a user's calls left behind: the counters and the log rows, in order, without ids and times. */
async function written(db: Queryable, userId: string): Promise<unknown> {
  const counters = await db.query(
    'SELECT action, usage_date, count FROM public.daily_usage_summary WHERE user_id = $1::uuid ORDER BY action, usage_date', [userId]);
  const calls = await db.query(
    `SELECT action, items, allowed, reason, plan_slug, idempotency_key, metadata, used, usage_limit, batch_limit,
            resets_at, refunded_at FROM public.plugin_usage WHERE user_id = $1::uuid ORDER BY created_at, id`, [userId]);
  return { counters, calls };
}

for (const dialect of DIALECTS) {
  describe(`consume's common statement [${dialect}]`, () => {
    test('answers and writes what consume_usage does, call by call, on every seeded plan', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        // Each call in order: resize within and past the limit, a batch over the plan's, an action
        // without a limit, metadata; free is lifetime (the function's), enterprise unlimited.
        const calls: [string, number, object | null][] = [
          ...Array.from({ length: 7 }, (): [string, number, null] => ['resize', 1, null]),
          ['resize', 21, null], ['export', 3, null], ['export', 1, { layers: 3, note: 'é' }], ['resize', 1, { a: [1, 2] }],
        ];
        for (const plan of ['free', 'basic', 'pro', 'enterprise']) {
          const library = await createUser(db);
          const rpc = await createUser(db);
          if (plan !== 'free') {
            await setPlan(db, library, plan);
            await setPlan(db, rpc, plan);
          }
          for (const [i, [action, items, metadata]] of calls.entries()) {
            const a = await usage.consume(library, action, { items, metadata: metadata as Record<string, unknown> | null });
            const b = await viaFunction(db, rpc, action, items, metadata);
            assert.deepEqual(a, b, `${plan}, call ${i + 1} (${action} × ${items})`);
          }
          assert.deepEqual(await written(db, library), await written(db, rpc), `${plan}: the same rows`);
        }
      }));

    test('runs only for the calls it answers: with the function renamed away, exactly the others fail', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const pro = await createUser(db);
        const free = await createUser(db);
        const lapsed = await createUser(db);
        await setPlan(db, pro, 'pro');
        await setPlan(db, lapsed, 'pro');
        await usage.consume(free, 'resize'); // writes free's effective plan row
        await db.exec(`ALTER FUNCTION ${FUNCTION} RENAME TO consume_usage_away`);
        try {
          const answer = await usage.consume(pro, 'resize', { items: 20, metadata: { a: 1 } });
          assert.deepEqual([answer.allowed, answer.used, answer.planSlug], [true, 1, 'pro'], 'the statement answered');
          assert.equal((await usage.consume(pro, 'export')).usageLimit, null, 'an action without a limit');
          const declined: [string, () => Promise<unknown>][] = [
            ['an idempotency key', () => usage.consume(pro, 'resize', { idempotencyKey: 'k-1' })],
            ['a batch over the plan', () => usage.consume(pro, 'resize', { items: 21 })],
            ['a lifetime plan (free)', () => usage.consume(free, 'resize')],
            ['no effective plan row', async () => {
              await db.query('DELETE FROM public.user_effective_plans WHERE user_id = $1::uuid', [lapsed]);
              return usage.consume(lapsed, 'resize');
            }],
            ['metadata over 16 kB', () => usage.consume(pro, 'resize', { metadata: { a: 'x'.repeat(16400) } })],
            // Past the TypeScript checks (the internal calls): what the function refuses, it declines.
            ['items 0', () => usageCalls(db).consume(pro, 'resize', 0, null, null)],
            ['items 10001', () => usageCalls(db).consume(pro, 'export', 10001, null, null)],
            ['an action of 65 bytes', () => usageCalls(db).consume(pro, 'a'.repeat(65), 1, null, null)],
            ['metadata that is not an object', () => usageCalls(db).consume(pro, 'export', 1, null, '[1]')],
          ];
          for (const [what, call] of declined) {
            await assert.rejects(call(), (e: Error & { code?: string }) => e.code === 'database_error' && /consume_usage/.test(e.message), what);
          }
          // A declined call wrote nothing: pro's two calls and free's first are all there is.
          const logged = await db.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM public.plugin_usage WHERE user_id = ANY($1::uuid[])', [[pro, free, lapsed]]);
          assert.equal(logged[0]!.n, 3, 'log rows');
          const counted = await db.query<{ n: number }>(
            'SELECT COALESCE(sum(count), 0)::int AS n FROM public.daily_usage_summary WHERE user_id = ANY($1::uuid[])', [[pro, free, lapsed]]);
          assert.equal(counted[0]!.n, 3, 'counters');
        } finally {
          await db.exec(`ALTER FUNCTION public.consume_usage_away(uuid, varchar, integer, text, jsonb) RENAME TO consume_usage`);
        }
        // Back: a declined call gets the function's answer or typed error.
        assert.equal((await usage.consume(pro, 'resize', { items: 21 })).reason, 'batch_too_large');
        await assert.rejects(usageCalls(db).consume(pro, 'resize', 0, null, null), { code: 'invalid_items' });
        await assert.rejects(usageCalls(db).consume(pro, 'a'.repeat(65), 1, null, null), { code: 'invalid_action' });
        await assert.rejects(usageCalls(db).consume(pro, 'export', 1, null, '[1]'), { code: 'invalid_metadata' });
      }));
  });
}

for (const dialect of SERVER_DIALECTS) {
  describe(`consume's common statement under contention [${dialect}]`, () => {
    test('not where statements are not kept (a transaction-mode pooler): the function answers', () =>
      withDatabase(dialect, async ({ db, url }) => {
        const user = await createUser(db);
        await setPlan(db, user, 'pro');
        const unprepared = await openDatabase(url!, { preparedStatements: false, max: 1 });
        try {
          await db.exec(`ALTER FUNCTION ${FUNCTION} RENAME TO consume_usage_away`);
          await assert.rejects(createUsage(unprepared).consume(user, 'resize'), /consume_usage/);
        } finally {
          await db.exec(`ALTER FUNCTION public.consume_usage_away(uuid, varchar, integer, text, jsonb) RENAME TO consume_usage`);
          await unprepared.close();
        }
      }));

    test('32 at once on basic (4 a day): 4 allowed, every denial reports the latest count (first calls of the day, then three bursts on an existing row)', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        for (const warm of [false, true, true, true]) {
          const user = await createUser(db);
          await setPlan(db, user, 'basic');
          // warm: today's counter row exists before the burst (the denial reads it under its lock);
          // cold: every call races to insert it (a denial finds no row in its snapshot: the function's).
          if (warm) assert.equal((await usage.consume(user, 'resize')).used, 1);
          const answers = await Promise.all(Array.from({ length: 32 }, () => usage.consume(user, 'resize')));
          const allowed = answers.filter((a) => a.allowed);
          assert.equal(allowed.length, warm ? 3 : 4, `${warm ? 'warm' : 'cold'}: allowed`);
          assert.deepEqual(allowed.map((a) => a.used).sort(), warm ? [2, 3, 4] : [1, 2, 3, 4]);
          for (const a of answers.filter((x) => !x.allowed)) {
            assert.deepEqual([a.reason, a.used, a.remaining], ['limit_reached', 4, 0], `${warm ? 'warm' : 'cold'}: a denial`);
          }
          const rows = await db.query<{ allowed: boolean; used: number }>(
            'SELECT allowed, used FROM public.plugin_usage WHERE user_id = $1::uuid', [user]);
          assert.equal(rows.length, warm ? 33 : 32, 'one log row per call');
          assert.ok(rows.every((r) => r.allowed || r.used === 4), 'every denied row logs 4');
        }
      }));
  });
}
