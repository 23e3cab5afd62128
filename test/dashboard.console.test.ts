// The console's SQL and recording, on both databases (the browser side is
// test/dashboard.console.browser.test.ts): refunding today's usage racing real parallel consumes
// keeps the counters equal to the calls not refunded; recording drops what does not fit its
// columns and never fails; an action that fails writes no audit row.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, SERVER_DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { createPluginAuth } from '../src/auth.ts';
import { runAction, searchUsers } from '../src/dashboard/console.ts';
import { ValidationError } from '../src/core/errors.ts';

const TODAY = `(now() AT TIME ZONE 'UTC')::date`;

for (const dialect of SERVER_DIALECTS) {
  describe(`console [${dialect}, real server only]`, () => {
    test("refund_today racing parallel consumes: today's counter always equals the allowed calls not refunded", () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db);
        const user = await createUser(db);
        await auth.subscriptions.assignPlan(user, 'enterprise'); // unlimited: every consume counts
        let refunded = 0;
        for (let round = 0; round < 4; round++) {
          const calls = Array.from({ length: 24 }, (_, i) => auth.usage.consume(user, i % 2 ? 'resize' : 'export', { idempotencyKey: `r${round}-${i}` }));
          const refunds = [3, 11].map((delay) =>
            new Promise((r) => setTimeout(r, delay)).then(() => runAction(db, user, 'refund_today', {}, { actor: 'test' })));
          const answers = await Promise.all(calls);
          assert.ok(answers.every((a) => a.allowed));
          for (const r of await Promise.all(refunds)) refunded += (r.after as { refundedCalls: number }).refundedCalls;
          const [c] = await db.query<{ counted: number; live: number; gone: number }>(
            `SELECT (SELECT COALESCE(sum(count), 0) FROM public.daily_usage_summary WHERE user_id = $1::uuid AND usage_date = ${TODAY})::int AS counted,
                    (SELECT count(*) FROM public.plugin_usage WHERE user_id = $1::uuid AND allowed AND refunded_at IS NULL)::int AS live,
                    (SELECT count(*) FROM public.plugin_usage WHERE user_id = $1::uuid AND refunded_at IS NOT NULL)::int AS gone`,
            [user],
          );
          assert.equal(c!.counted, c!.live, `round ${round}: counters ${c!.counted}, calls not refunded ${c!.live}`);
          assert.equal(c!.gone, refunded, `round ${round}: each refunded call is reported once`);
        }
        const audits = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.console_audit_log WHERE action = 'refund_today' AND user_id = $1::uuid`, [user]);
        assert.equal(audits[0]!.n, 8);
      }, { max: 16 }));
  });
}

for (const dialect of DIALECTS) {
  describe(`console recording and actions [${dialect}]`, () => {
    test('events: what fits its columns is written, anything else dropped; nothing throws', () =>
      withDatabase(dialect, async ({ db }) => {
        const { events } = createPluginAuth(db);
        const user = await createUser(db);
        await events.webhookDelivery('stripe', 'refused', 'invalid_signature', 'evt_1');
        await events.webhookDelivery('stripe', 'accepted', 'applied', `evt_<script>`); // an id that is not one: stored as none
        await events.webhookDelivery('stripe', 'refused', 'Some Message: with the body {"a":1}'); // not a code: 'other'
        await events.webhookDelivery('paypal' as never, 'accepted', 'applied');
        await events.webhookDelivery('stripe', 'exploded' as never, 'applied');
        await events.signInRefused('/plugin/figma/sign-in', 'figma_payment_invalid', user);
        await events.signInRefused('/plugin/sign-out', 'token_invalid', 'not-a-uuid');
        await events.signInRefused('/x y\u0000', 'token_invalid');
        const hooks = await db.query<{ provider: string; outcome: string; reason_code: string; event_id: string | null }>(
          'SELECT provider, outcome, reason_code, event_id FROM public.webhook_deliveries ORDER BY id');
        assert.deepEqual(hooks.map((h) => [h.provider, h.outcome, h.reason_code, h.event_id]), [
          ['stripe', 'refused', 'invalid_signature', 'evt_1'],
          ['stripe', 'accepted', 'applied', null],
          ['stripe', 'refused', 'other', null],
        ]);
        const refusals = await db.query<{ route: string; reason_code: string; user_id: string | null }>('SELECT route, reason_code, user_id FROM public.sign_in_refusals ORDER BY id');
        assert.deepEqual(refusals.map((r) => [r.route, r.reason_code, r.user_id]), [
          ['/plugin/figma/sign-in', 'figma_payment_invalid', user],
          ['/plugin/sign-out', 'token_invalid', null],
        ]);
      }));

    test('a failing action writes no audit row and changes nothing; a bad actor is refused', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        await assert.rejects(runAction(db, user, 'grant_plan', { plan: 'no-such-plan' }, { actor: 'ops@example.com' }), { code: 'unknown_plan' });
        await assert.rejects(runAction(db, user, 'revoke_token', { subject: crypto.randomUUID() }, { actor: 'ops@example.com' }), { code: 'token_not_found' });
        await assert.rejects(runAction(db, user, 'refund_today', {}, { actor: 'a\nb' }), (e: unknown) => e instanceof ValidationError && e.code === 'invalid_actor');
        await assert.rejects(runAction(db, crypto.randomUUID(), 'refund_today', {}, { actor: 'ops' }), { code: 'unknown_user' });
        const [n] = await db.query<{ n: number; subs: number }>('SELECT (SELECT count(*) FROM public.console_audit_log)::int AS n, (SELECT count(*) FROM public.user_subscriptions)::int AS subs');
        assert.deepEqual({ ...n }, { n: 0, subs: 0 });
        // The one that works: audited with the actor given.
        await runAction(db, user, 'grant_plan', { plan: 'basic' }, { actor: 'ops@example.com' });
        const [a] = await db.query<{ actor: string; action: string; subject: string }>('SELECT actor, action, subject FROM public.console_audit_log');
        assert.deepEqual({ ...a }, { actor: 'ops@example.com', action: 'grant_plan', subject: 'basic' });
      }));

    test('search: hostile text is searched as text, never as a pattern or SQL', () =>
      withDatabase(dialect, async ({ db }) => {
        const odd = await createUser(db, `o'brien_100%@example.com`);
        await createUser(db, 'obrien1000@example.com');
        assert.deepEqual((await searchUsers(db, `_100%`)).map((u) => u.userId), [odd]);
        assert.deepEqual((await searchUsers(db, `'; DROP TABLE users; --`)), []);
        assert.deepEqual((await searchUsers(db, `o'brien`)).map((u) => u.userId), [odd]);
        await assert.rejects(searchUsers(db, 'x'.repeat(256)), { code: 'invalid_search' });
        await assert.rejects(searchUsers(db, 'a\u0007b'), { code: 'invalid_search' });
        assert.deepEqual(await searchUsers(db, '   '), []);
      }));
  });
}
