// Input hardening (issue 11, items 3-7), on both databases: a NULL token digest, far-future and
// infinite Stripe event times, a Stripe object without cancel_at_period_end, one rule for user ids,
// C1 control characters, lone surrogates and one measure for the metadata limit.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { DIALECTS, createUser, freshDatabase, dropDatabase, withDatabase } from './helpers/databases.ts';
import { DAY, PRICES, T0, linkPrices, subscription } from './helpers/stripe.ts';
import { SECRET, counting } from './helpers/tokens.ts';
import { createPluginAuth } from '../src/auth.ts';
import { createUsageReport } from '../src/usage/report.ts';
import { findUser } from '../src/core/users.ts';
import { NotFoundError, PluginAuthError, ValidationError, sqlState } from '../src/core/errors.ts';
import { buildSetupScript, loadMigrations } from '../src/schema/migrations.ts';
import { MAX_EVENT_SKEW_MS } from '../src/core/validation.ts';
import type { Database, Queryable } from '../src/core/db.ts';
import { rejectsWith } from './helpers/assert.ts';

const NOW_S = () => Math.floor(Date.now() / 1000);

async function sqlRejects(db: Queryable, text: string, params: unknown[], state: string) {
  await assert.rejects(db.query(text, params), (e: unknown) => {
    assert.equal(sqlState(e), state, `${text}: ${(e as Error).message}`);
    return true;
  });
}

async function subscriptionRow(db: Queryable, userId: string) {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT s.status, s.plan_id, s.stripe_subscription_id, s.current_period_end, s.cancel_at_period_end,
            s.stripe_event_created, s.updated_at
       FROM public.user_subscriptions s WHERE s.user_id = $1::uuid`,
    [userId],
  );
  return rows[0] ?? null;
}

test('one validation module: no uuid or control-character regex outside src/core/validation.ts', () => {
  const found: string[] = [];
  for (const file of readdirSync('src').filter((f) => f.endsWith('.ts') && f !== 'validation.ts')) {
    const text = readFileSync(`src/${file}`, 'utf8');
    if (/\{8\}-\[0-9a-f\]\{4\}/i.test(text)) found.push(`${file}: a uuid regex`);
    if (/\\u0000-\\u001f|\\x00-\\x1f/i.test(text)) found.push(`${file}: a control-character regex`);
  }
  assert.deepEqual(found, []);
});

for (const dialect of DIALECTS) {
  describe(`input hardening [${dialect}]`, () => {
    test('verify_plugin_token(id, NULL) is refused with invalid_digest, never answered ok', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        const issued = await auth.tokens.issue(user);
        const [row] = await db.query<{ token_hash: string }>('SELECT token_hash FROM public.plugin_tokens WHERE id = $1::uuid', [issued.tokenId]);
        const verify = 'SELECT status, user_id FROM public.verify_plugin_token($1::uuid, $2::text)';
        await sqlRejects(db, verify, [issued.tokenId, null], 'PA029');
        await sqlRejects(db, 'SELECT * FROM public.verify_plugin_token($1::uuid, NULL)', [issued.tokenId], 'PA029');
        await sqlRejects(db, verify, [issued.tokenId, 'not a digest'], 'PA029');
        await sqlRejects(db, verify, [issued.tokenId, row!.token_hash.toUpperCase()], 'PA029');
        // A well-formed digest of something else: 'invalid'; the right one: 'ok'.
        assert.deepEqual(await db.query(verify, [issued.tokenId, 'a'.repeat(64)]), [{ status: 'invalid', user_id: null }]);
        assert.deepEqual(await db.query(verify, [issued.tokenId, row!.token_hash]), [{ status: 'ok', user_id: user }]);
        // The TypeScript path sends the digest of the token it was given: a tampered token is refused,
        // the real one still verifies.
        await rejectsWith(auth.tokens.verify(`${issued.token.slice(0, -2)}AA`), PluginAuthError, 'token_invalid');
        assert.equal((await auth.tokens.verify(issued.token)).userId, user);
      }));

    test('Stripe event times: infinite or more than 5 minutes ahead are refused (SQL), the row unchanged, later events still apply', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        await linkPrices(db);
        const sync = 'SELECT applied, reason, plan_slug FROM public.sync_stripe_subscription($1::jsonb, $2::timestamptz)';
        const sub = (f: Parameters<typeof subscription>[0] = {}) =>
          JSON.stringify(subscription({ userId: user, priceId: PRICES.basic, periodEnd: NOW_S() + 30 * DAY, ...f }));
        assert.deepEqual(await db.query(sync, [sub(), new Date(T0 * 1000)]), [{ applied: true, reason: 'applied', plan_slug: 'basic' }]);
        const before = await subscriptionRow(db, user);
        const ahead = new Date(Date.now() + MAX_EVENT_SKEW_MS + 60_000);
        for (const time of ['infinity', '-infinity', ahead, '58886-01-01 00:00:00+00']) {
          await sqlRejects(db, sync, [sub({ priceId: PRICES.pro }), time], 'PA031');
        }
        await assert.rejects(db.query(sync, [sub(), 'infinity']), (e: Error) => /^invalid_event_created: /.test(e.message));
        assert.deepEqual(await subscriptionRow(db, user), before, 'refused events leave the row as it was');
        // A time a little ahead (clock skew) is fine, and later events still apply after it.
        const soon = new Date(Date.now() + 60_000);
        assert.deepEqual(await db.query(sync, [sub({ priceId: PRICES.pro }), soon]), [{ applied: true, reason: 'applied', plan_slug: 'pro' }]);
        assert.deepEqual(await db.query(sync, [sub({ priceId: PRICES.enterprise }), new Date(soon.getTime() + 1000)]), [{ applied: true, reason: 'applied', plan_slug: 'enterprise' }]);
      }));

    test('syncFromStripe({ eventCreated: Date.now() }) (milliseconds) is refused with a hint; the row is unchanged and later events apply', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db);
        const user = await createUser(db);
        await linkPrices(db);
        const sub = (priceId: string) => subscription({ userId: user, priceId, periodEnd: NOW_S() + 30 * DAY }) as never;
        assert.equal((await auth.subscriptions.syncFromStripe(sub(PRICES.basic), { eventCreated: NOW_S() - 60 })).applied, true);
        const before = await subscriptionRow(db, user);
        await rejectsWith(auth.subscriptions.syncFromStripe(sub(PRICES.pro), { eventCreated: Date.now() }), ValidationError, 'invalid_event_created', (e) => {
          assert.match(e.message, /milliseconds/);
          assert.match(e.message, /seconds/);
        });
        for (const eventCreated of [new Date(Date.now() + MAX_EVENT_SKEW_MS + 60_000), NOW_S() + 3600, Infinity, new Date(8.64e15)]) {
          await rejectsWith(auth.subscriptions.syncFromStripe(sub(PRICES.pro), { eventCreated }), ValidationError, 'invalid_event_created');
        }
        assert.deepEqual(await subscriptionRow(db, user), before);
        const later = await auth.subscriptions.syncFromStripe(sub(PRICES.pro), { eventCreated: NOW_S() });
        assert.deepEqual([later.applied, later.planSlug], [true, 'pro']);
        assert.equal((await auth.subscriptions.effectivePlan(user)).planSlug, 'pro');
      }));

    test('a Stripe object without cancel_at_period_end is applied as false (TypeScript and SQL)', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db);
        const [a, b] = [await createUser(db), await createUser(db)];
        await linkPrices(db);
        const without = (userId: string, id: string) => {
          const s = subscription({ userId, id, customer: `cus_${id}`, priceId: PRICES.pro, periodEnd: NOW_S() + 30 * DAY });
          delete s.cancel_at_period_end;
          return s;
        };
        const synced = await auth.subscriptions.syncFromStripe(without(a, 'sub_a') as never, { eventCreated: T0 });
        assert.deepEqual([synced.applied, synced.planSlug], [true, 'pro']);
        assert.equal((await auth.subscriptions.effectivePlan(a)).subscription!.cancelAtPeriodEnd, false);
        const rows = await db.query('SELECT applied FROM public.sync_stripe_subscription($1::jsonb, $2::timestamptz)', [
          JSON.stringify(without(b, 'sub_b')), new Date(T0 * 1000),
        ]);
        assert.deepEqual(rows, [{ applied: true }]);
        assert.equal((await subscriptionRow(db, b))!.cancel_at_period_end, false);
      }));

    test('user ids: malformed is invalid_user_id before the database and never echoed; well-formed but absent is unknown_user', () =>
      withDatabase(dialect, async ({ db: real }) => {
        const { db, count } = counting(real as Database);
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const report = createUsageReport(db);
        const user = await createUser(real);
        await real.query("INSERT INTO public.plugin_usage (user_id, action, items, allowed, reason) VALUES ($1::uuid, 'resize', 1, false, 'limit_reached')", [user]);
        const login = await auth.tokens.beginLogin();
        const apis: Record<string, (id: string) => Promise<unknown>> = {
          'usage.consume': (id) => auth.usage.consume(id, 'resize'),
          'usage.check': (id) => auth.usage.check(id, 'resize'),
          'usage.refund': (id) => auth.usage.refund(id, 'key'),
          'usage.summary': (id) => auth.usage.summary(id),
          'tokens.issue': (id) => auth.tokens.issue(id),
          'tokens.revokeAll': (id) => auth.tokens.revokeAll(id),
          'tokens.list': (id) => auth.tokens.list(id),
          'tokens.completeLogin': (id) => auth.tokens.completeLogin(login.writeKey, id),
          'subscriptions.assignPlan': (id) => auth.subscriptions.assignPlan(id, 'pro'),
          'subscriptions.effectivePlan': (id) => auth.subscriptions.effectivePlan(id),
          'report.recentDenials': (id) => report.recentDenials(id),
          'report.lifetime': (id) => report.lifetime(id),
          findUser: (id) => findUser(db, id),
        };
        const malformed: unknown[] = [
          'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ', 'not-a-uuid', '{00000000-0000-4000-8000-000000000000}',
          '00000000000040008000000000000000', `${randomUUID()} OR 1=1`, '', 42, null, undefined, { toString: () => randomUUID() },
        ];
        for (const [name, call] of Object.entries(apis)) {
          for (const id of malformed) {
            const before = count();
            await rejectsWith(call(id as string), ValidationError, 'invalid_user_id', (e) => {
              if (typeof id === 'string' && id.length > 2) assert.ok(!e.message.includes(id), `${name} echoes ${id}`);
            });
            assert.equal(count(), before, `${name}(${String(id)}) reached the database`);
          }
          await rejectsWith(call(randomUUID()), NotFoundError, 'unknown_user');
          await rejectsWith(call(randomUUID().toUpperCase()), NotFoundError, 'unknown_user');
        }
        // The same answers for a real user are not errors.
        assert.equal((await report.recentDenials(user)).length, 1);
        assert.equal((await findUser(db, user.toUpperCase())).id, user);
        await rejectsWith(findUser(db, 'nobody@example.com'), NotFoundError, 'unknown_user');
      }));

    test('C1 control characters (U+0080-U+009F) in device names and reasons: invalid_device_name / invalid_reason, in TypeScript and SQL', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        const issued = await auth.tokens.issue(user);
        for (const c of ['\u0080', '\u0085', '\u009b', '\u009f']) {
          const text = `Figma${c}desktop`;
          await rejectsWith(auth.tokens.issue(user, { deviceName: text }), ValidationError, 'invalid_device_name');
          await rejectsWith(auth.tokens.beginLogin({ deviceName: text }), ValidationError, 'invalid_device_name');
          await rejectsWith(auth.tokens.revoke(issued.tokenId, text), ValidationError, 'invalid_reason');
          await rejectsWith(auth.tokens.revokeAll(user, text), ValidationError, 'invalid_reason');
          // The rpc path gives the functions' own codes too, not sql/010's check_violation.
          const digest = () => randomUUID().replace(/-/g, '').repeat(2);
          await sqlRejects(db, 'SELECT public.issue_plugin_token($1::uuid, $2::uuid, $3::text, $4::varchar, $5::timestamptz)',
            [randomUUID(), user, digest(), text, new Date(Date.now() + 3_600_000)], 'PA020');
          await sqlRejects(db, 'SELECT public.begin_plugin_login($1::text, $2::text, 600, $3::varchar)', [digest(), digest(), text], 'PA020');
          await sqlRejects(db, 'SELECT public.revoke_plugin_token($1::uuid, $2::varchar)', [issued.tokenId, text], 'PA023');
          await sqlRejects(db, 'SELECT public.revoke_all_plugin_tokens($1::uuid, $2::varchar)', [user, text], 'PA023');
        }
        // Printable non-ASCII just above and below the C1 block is fine.
        const ok = await auth.tokens.issue(user, { deviceName: 'Ärger ~ \u00a0\u00ff' });
        assert.equal((await auth.tokens.list(user)).find((t) => t.tokenId === ok.tokenId)!.deviceName, 'Ärger ~ \u00a0\u00ff');
        assert.deepEqual((await auth.tokens.list(user)).map((t) => t.status), ['active', 'active']);
      }));

    test('metadata: lone surrogates are invalid_metadata; the 16 kB limit is one measure (jsonb text) with one code', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db);
        const user = await createUser(db);
        const consume = (metadata: Record<string, unknown>) => auth.usage.consume(user, 'export', { metadata });
        for (const metadata of [{ v: 'a\ud800b' }, { v: '\udc00' }, { 'k\ud83d': 1 }, { deep: { list: ['ok', 'x\udfff'] } }]) {
          await rejectsWith(consume(metadata), ValidationError, 'invalid_metadata');
        }
        // Text that merely spells an escape is data, stored as given (it was refused as a NUL before).
        const spelled = { path: 'C:\\u0000dir', pair: '😀' };
        await auth.usage.consume(user, 'export', { idempotencyKey: 'spelled', metadata: spelled });
        const [stored] = await db.query<{ metadata: unknown }>("SELECT metadata FROM public.plugin_usage WHERE idempotency_key = 'spelled'");
        assert.deepEqual(stored!.metadata, spelled);

        // The measure: octet length of the jsonb text. {"blob": "z…"} is n + 12 bytes as jsonb text and
        // n + 11 as compact JSON: at n = 16373 compact JSON is exactly 16384 bytes, and jsonb text 16385.
        const size = async (o: unknown) => (await db.query<{ n: number }>('SELECT octet_length($1::jsonb::text) AS n', [JSON.stringify(o)]))[0]!.n;
        const fits = { blob: 'z'.repeat(16_372) };
        const over = { blob: 'z'.repeat(16_373) };
        assert.equal(await size(fits), 16_384);
        assert.equal(await size(over), 16_385);
        assert.equal(Buffer.byteLength(JSON.stringify(over)), 16_384);
        assert.equal((await consume(fits)).allowed, true);
        await rejectsWith(consume(over), ValidationError, 'invalid_metadata');
        await sqlRejects(db, 'SELECT * FROM public.consume_usage($1::uuid, $2::varchar, 1, NULL, $3::jsonb)', [user, 'export', JSON.stringify(over)], 'PA005');
        // Separators count as stored: 1,700 keys under 16 kB as compact JSON are over it as jsonb text.
        const many = Object.fromEntries(Array.from({ length: 1700 }, (_, i) => [`k${i}`, 1]));
        assert.ok(Buffer.byteLength(JSON.stringify(many)) <= 16_384 && (await size(many)) > 16_384);
        await rejectsWith(consume(many), ValidationError, 'invalid_metadata');
        const [logged] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_usage');
        assert.equal(logged!.n, 2, 'only the two accepted calls were logged');
      }));
  });
}

describe('upgrade: a subscription frozen by a far-future event time is thawed by sql/013 [postgres and pglite]', () => {
  for (const dialect of DIALECTS) {
    test(dialect, async () => {
      const t = await freshDatabase(dialect, { setup: false });
      try {
        const before = loadMigrations().filter((m) => m.version < 13);
        await t.db.exec(`BEGIN;\n${buildSetupScript(before, null)}\nCOMMIT;`);
        const user = await createUser(t.db);
        await linkPrices(t.db);
        const sub = (priceId: string) => JSON.stringify(subscription({ userId: user, priceId, periodEnd: NOW_S() + 30 * DAY }));
        const sync = 'SELECT applied, reason FROM public.sync_stripe_subscription($1::jsonb, $2::timestamptz)';
        // What an earlier version accepted: milliseconds read as seconds (year 58886).
        assert.deepEqual(await t.db.query(sync, [sub(PRICES.basic), '58886-01-01 00:00:00+00']), [{ applied: true, reason: 'applied' }]);
        assert.deepEqual(await t.db.query(sync, [sub(PRICES.pro), new Date()]), [{ applied: false, reason: 'stale' }]);
        await t.db.exec(`BEGIN;\n${buildSetupScript()}\nCOMMIT;`);
        const [row] = await t.db.query<{ ok: boolean }>(
          "SELECT stripe_event_created <= now() + interval '5 minutes' AS ok FROM public.user_subscriptions WHERE user_id = $1::uuid", [user]);
        assert.equal(row!.ok, true);
        assert.deepEqual(await t.db.query(sync, [sub(PRICES.pro), new Date(Date.now() + 1000)]), [{ applied: true, reason: 'applied' }]);
      } finally {
        await t.db.close();
        if (t.name) await dropDatabase(t.name);
      }
    });
  }
});
