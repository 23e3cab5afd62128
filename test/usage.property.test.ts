// Random sequences of consumes, checks, refunds and plan changes, compared answer by answer with
// a small model of PRODUCT.md section 3 written independently of the SQL.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { clearPlan, counter, nextUtcMidnight, setCounter, setPlan, totals } from './helpers/usage.ts';
import { createUsage, type UsageAnswer } from '../src/usage/usage.ts';
import { PluginAuthError } from '../src/core/errors.ts';

type Slug = 'free' | 'basic' | 'pro' | 'enterprise';
const PLANS: Record<Slug, { limit: number; batch: number; daily: boolean }> = {
  free: { limit: 2, batch: 1, daily: false },
  basic: { limit: 4, batch: 5, daily: true },
  pro: { limit: 6, batch: 20, daily: true },
  enterprise: { limit: -1, batch: -1, daily: true },
};
const ACTIONS = ['resize', 'resize', 'resize', 'export'];
const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4'];

type Command =
  | { kind: 'consume'; action: string; items: number; key: string | null }
  | { kind: 'check'; action: string; items: number }
  | { kind: 'refund'; key: string }
  | { kind: 'plan'; plan: Slug | 'canceled-pro' };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('consume' as const), action: fc.constantFrom(...ACTIONS), items: fc.integer({ min: 1, max: 24 }), key: fc.option(fc.constantFrom(...KEYS), { nil: null }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('check' as const), action: fc.constantFrom(...ACTIONS), items: fc.integer({ min: 1, max: 24 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('refund' as const), key: fc.constantFrom(...KEYS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('plan' as const), plan: fc.constantFrom<Slug | 'canceled-pro'>('free', 'basic', 'pro', 'enterprise', 'canceled-pro') }) },
);
// Resize counts on earlier days (days ago, count): they matter to the lifetime free plan only.
const history = fc.array(fc.tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 2 })), { maxLength: 3 });

class Model {
  plan: Slug = 'free';
  past = 0;
  today = new Map<string, number>();
  keys = new Map<string, { action: string; items: number; answer: UsageAnswer; refunded: boolean }>();
  logged = 0;
  constructor(readonly midnight: Date) {}

  answer(action: string, items: number): UsageAnswer {
    const { limit, batch, daily } = action === 'resize' ? PLANS[this.plan] : { limit: -1, batch: -1, daily: true };
    const used = (this.today.get(action) ?? 0) + (daily ? 0 : this.past);
    const reason = limit !== -1 && used + 1 > limit ? 'limit_reached' : batch !== -1 && items > batch ? 'batch_too_large' : 'ok';
    const after = reason === 'ok' ? used + 1 : used;
    return {
      allowed: reason === 'ok', reason, planSlug: this.plan, used: after,
      usageLimit: limit === -1 ? null : limit, remaining: limit === -1 ? null : Math.max(limit - after, 0),
      batchLimit: batch === -1 ? null : batch, resetsAt: daily ? this.midnight : null, replayed: false,
    };
  }

  /** The expected answer, or the expected error code. */
  consume(action: string, items: number, key: string | null): UsageAnswer | string {
    const first = key === null ? undefined : this.keys.get(key);
    // A retry of the same operation is answered as the first call was, unless that operation was
    // given back (a new attempt needs a new key, docs/usage.md); another operation under the key is refused.
    if (first) return first.action === action && first.items === items && !first.refunded ? { ...first.answer, replayed: true } : 'idempotency_key_reused';
    const answer = this.answer(action, items);
    if (answer.allowed) this.today.set(action, (this.today.get(action) ?? 0) + 1);
    if (key !== null) this.keys.set(key, { action, items, answer, refunded: false });
    this.logged += 1;
    return answer;
  }

  refund(key: string): boolean | string {
    const first = this.keys.get(key);
    if (!first) return 'unknown_idempotency_key';
    if (!first.answer.allowed || first.refunded) return false;
    first.refunded = true;
    this.today.set(first.action, Math.max((this.today.get(first.action) ?? 0) - 1, 0));
    return true;
  }
}

async function outcome<T>(promise: Promise<T>): Promise<T | string> {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof PluginAuthError) return error.code;
    throw error;
  }
}

for (const dialect of DIALECTS) {
  describe(`usage metering model [${dialect}]`, () => {
    test('random consumes, checks, refunds and plan changes answer as the model says', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = createUsage(db);
        const midnight = await nextUtcMidnight(db);
        await fc.assert(
          fc.asyncProperty(history, fc.array(command, { minLength: 1, maxLength: 30 }), async (past, commands) => {
            const user = await createUser(db);
            const model = new Model(midnight);
            for (const [daysAgo, count] of past) await setCounter(db, user, 'resize', daysAgo, count);
            model.past = [...new Map(past).values()].reduce((a, b) => a + b, 0);
            for (const [i, c] of commands.entries()) {
              const where = `step ${i}: ${JSON.stringify(c)}`;
              if (c.kind === 'consume') {
                const items = c.items;
                const got = await outcome(usage.consume(user, c.action, { items, idempotencyKey: c.key }));
                assert.deepEqual(got, model.consume(c.action, items, c.key), where);
              } else if (c.kind === 'check') {
                assert.deepEqual(await usage.check(user, c.action, { items: c.items }), model.answer(c.action, c.items), where);
              } else if (c.kind === 'refund') {
                const got = await outcome(usage.refund(user, c.key).then((r) => r.refunded));
                assert.equal(got, model.refund(c.key), where);
              } else if (c.plan === 'free') {
                await clearPlan(db, user);
                model.plan = 'free';
              } else if (c.plan === 'canceled-pro') {
                await setPlan(db, user, 'pro', 'canceled');
                model.plan = 'free';
              } else {
                await setPlan(db, user, c.plan);
                model.plan = c.plan;
              }
            }
            for (const action of ['resize', 'export']) {
              assert.equal(await counter(db, user, action), model.today.get(action) ?? 0, `today's ${action} counter`);
            }
            assert.equal((await totals(db, user)).usageRows, model.logged, 'one log row per counted or denied call');
          }),
          { numRuns: dialect === 'pglite' ? 40 : 25, seed: process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined },
        );
      }));
  });
}
