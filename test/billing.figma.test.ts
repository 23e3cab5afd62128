// Figma's Payments API as a plan source: verify and remember (cache, grace, single flight), sign-in
// by verified Figma identity, and the one entitlement rule over every source. Figma is a local
// stand-in on 127.0.0.1 (test/helpers/figma-standin.ts); nothing leaves the machine.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { HOSTILE_STRINGS, WRONG_TYPES } from './helpers/hostile.ts';
import { STANDIN_PLUGIN_ID, startFigmaStandIn, type FigmaStandIn, type StandInUser } from './helpers/figma-standin.ts';
import { createPluginAuth, type PluginAuth } from '../src/auth.ts';
import type { Database } from '../src/core/db.ts';
import { PluginAuthError, ServiceError } from '../src/core/errors.ts';
import { sqlStatusSource } from '../src/schema/status.ts';
import { readCatalog } from '../src/schema/catalog.ts';
import { figmaWarnings } from '../src/schema/figma-health.ts';
import type { FigmaOptions } from '../src/billing/figma.ts';
import { TOKEN_SECRET as SECRET } from './helpers/secrets.ts';

const PAT = `figd_${randomBytes(24).toString('base64url')}`;
const newToken = () => `pt_${randomBytes(24).toString('base64url')}`;
const newFigmaId = () => String(1e15 + Math.floor(Math.random() * 1e15));

async function withFigma(
  dialect: (typeof DIALECTS)[number],
  fn: (ctx: { db: Database; url?: string; auth: PluginAuth; figma: FigmaStandIn; make: (o?: Partial<FigmaOptions>) => PluginAuth }) => Promise<void>,
  options: Partial<FigmaOptions> = {},
  max?: number,
) {
  const figma = await startFigmaStandIn(PAT);
  try {
    await withDatabase(dialect, async ({ db, url }) => {
      const make = (o: Partial<FigmaOptions> = {}) =>
        createPluginAuth(db, { tokenSecret: SECRET, figma: { personalAccessToken: PAT, pluginId: STANDIN_PLUGIN_ID, apiBaseUrl: figma.url, ...options, ...o } });
      await fn({ db, url, auth: make(), figma, make });
    }, max ? { max } : {});
  } finally {
    await figma.close();
  }
}

/** A payment token the stand-in knows, for a (new) Figma user. */
function buy(figma: FigmaStandIn, user: Partial<StandInUser> = {}): { token: string; figmaUserId: string } {
  const token = newToken();
  const figmaUserId = user.figmaUserId ?? newFigmaId();
  figma.tokens.set(token, { status: 'PAID', ...user, figmaUserId });
  return { token, figmaUserId };
}

const code = (e: unknown) => (e as PluginAuthError).code;
/** A deadlock guard, not a speed check: fails the test instead of hanging it when `what` never happens. */
async function notStuck<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`stuck: ${what}`)), 60_000)));
  try {
    return await Promise.race([promise, stuck]);
  } finally {
    clearTimeout(timer);
  }
}
/** Makes stored answers look `seconds` older: time passing, without waiting. */
const age = (db: Database, seconds: number, what: 'checks' | 'answers' | 'first_seen') =>
  db.query(
    what === 'checks'
      ? 'UPDATE public.figma_payment_checks SET checked_at = checked_at - make_interval(secs => $1::integer)'
      : what === 'answers'
        ? 'UPDATE public.figma_users SET checked_at = checked_at - make_interval(secs => $1::integer), grant_until = grant_until - make_interval(secs => $1::integer)'
        : 'UPDATE public.figma_users SET first_seen_at = first_seen_at - make_interval(secs => $1::integer)',
    [seconds],
  );

for (const dialect of DIALECTS) {
  describe(`figma payments [${dialect}]`, () => {
    test('verify stores what Figma said (both spellings of payment_status); a second check within cacheSeconds makes no call', () =>
      withFigma(dialect, async ({ auth, figma, db, make }) => {
        const a = buy(figma, { status: 'PAID', dateOfPurchase: '2026-11-02T10:00:00Z' });
        const b = buy(figma, { status: 'TRIAL', spelling: 'status' });
        const first = await auth.figma.verifyPaymentToken(a.token);
        assert.deepEqual(
          [first.figmaUserId, first.status, first.figmaStatus, first.dateOfPurchase?.toISOString(), first.answeredBy, first.userId],
          [a.figmaUserId, 'PAID', null, '2026-11-02T10:00:00.000Z', 'figma', null],
        );
        assert.equal(first.grantUntil.getTime() - first.checkedAt.getTime(), 24 * 3600 * 1000, 'default grace: 24 h');
        assert.equal(figma.calls.length, 1);
        assert.deepEqual(figma.calls[0], { paymentToken: a.token, pat: PAT });
        const again = await auth.figma.verifyPaymentToken(a.token);
        assert.equal(again.answeredBy, 'cache');
        assert.equal(again.status, 'PAID');
        assert.equal(figma.calls.length, 1, 'no second HTTP call within cacheSeconds');
        assert.equal((await auth.figma.verifyPaymentToken(b.token)).status, 'TRIAL');
        const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.figma_users');
        assert.equal(rows[0]!.n, 2);
        // cacheSeconds 0: every check calls Figma.
        const calls = figma.calls.length;
        const noCache = make({ cacheSeconds: 0 });
        assert.equal((await noCache.figma.verifyPaymentToken(a.token)).answeredBy, 'figma');
        assert.equal(figma.calls.length, calls + 1);
      }));

    test('a refund (PAID -> UNPAID) takes effect at the next check after the cache, for verify and for consume', () =>
      withFigma(dialect, async ({ auth, figma, db }) => {
        await auth.plans.linkFigma('pro', 'PAID');
        const user = await createUser(db);
        const { token } = buy(figma, { status: 'PAID' });
        await auth.figma.link(user, token);
        assert.equal((await auth.usage.consume(user, 'resize')).planSlug, 'pro');
        figma.tokens.get(token)!.status = 'UNPAID'; // refunded at Figma
        assert.equal((await auth.figma.verifyPaymentToken(token)).status, 'PAID', 'still cached');
        assert.equal((await auth.usage.check(user, 'resize')).planSlug, 'pro');
        await age(db, 301, 'checks');
        const after = await auth.figma.verifyPaymentToken(token);
        assert.deepEqual([after.status, after.answeredBy], ['UNPAID', 'figma']);
        assert.equal((await auth.usage.consume(user, 'resize')).planSlug, 'free');
        const plan = await auth.subscriptions.effectivePlan(user);
        assert.deepEqual([plan.planSlug, plan.source, plan.until, plan.grants], ['free', 'free', null, []]);
      }));

    test('429 and 500 fall back to the stored answer within graceSeconds, else figma_unavailable; timeouts and garbage too', () =>
      withFigma(dialect, async ({ auth, figma, db, make }) => {
        const { token } = buy(figma, { status: 'PAID' });
        await auth.figma.verifyPaymentToken(token);
        await age(db, 301, 'checks');
        for (const status of [429, 500, 503] as const) {
          figma.failure = { kind: 'http', status };
          const answer = await auth.figma.verifyPaymentToken(token);
          assert.deepEqual([answer.answeredBy, answer.status], ['grace', 'PAID'], `HTTP ${status}`);
        }
        figma.failure = { kind: 'garbage' };
        assert.equal((await auth.figma.verifyPaymentToken(token)).answeredBy, 'grace');
        const fresh = buy(figma).token; // never checked: nothing to fall back to
        figma.failure = { kind: 'http', status: 429 };
        await assert.rejects(auth.figma.verifyPaymentToken(fresh), (e) => e instanceof ServiceError && code(e) === 'figma_unavailable');
        await age(db, 24 * 3600, 'answers'); // the stored answer is now past its grace
        await assert.rejects(auth.figma.verifyPaymentToken(token), (e) => code(e) === 'figma_unavailable');
        figma.failure = { kind: 'slow', ms: 1500 };
        const impatient = make({ timeoutMs: 100 });
        await assert.rejects(impatient.figma.verifyPaymentToken(buy(figma).token), (e) => code(e) === 'figma_unavailable' && /within 100 ms/.test((e as Error).message));
        figma.failure = null;
        const unreachable = make({ apiBaseUrl: 'http://127.0.0.1:1' });
        await assert.rejects(unreachable.figma.verifyPaymentToken(buy(figma).token), (e) => code(e) === 'figma_unavailable');
      }));

    test('401/403: figma_token_invalid, recorded for status/verify until the next success; 400: payment_token_rejected, nothing written', () =>
      withFigma(dialect, async ({ auth, figma, db, make }) => {
        const status = sqlStatusSource(db, () => readCatalog(db));
        assert.deepEqual(await figmaWarnings(status), []);
        const wrong = make({ personalAccessToken: 'figd_wrong-token-123' });
        const { token } = buy(figma);
        await assert.rejects(wrong.figma.verifyPaymentToken(token), (e) => e instanceof ServiceError && code(e) === 'figma_token_invalid');
        figma.failure = { kind: 'http', status: 403 };
        await assert.rejects(auth.figma.verifyPaymentToken(token), (e) => code(e) === 'figma_token_invalid' && /HTTP 403/.test((e as Error).message));
        const warnings = await figmaWarnings(status);
        assert.equal(warnings.length, 1);
        assert.match(warnings[0]!, /^figma_token_invalid: Figma refused the personal access token/);
        assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.figma_users'))[0]!.n, 0);
        figma.failure = { kind: 'http', status: 400 };
        await assert.rejects(make({ refusalCacheSeconds: 0 }).figma.verifyPaymentToken(token), (e) => code(e) === 'payment_token_rejected');
        figma.failure = null;
        await assert.rejects(auth.figma.verifyPaymentToken(newToken()), (e) => code(e) === 'payment_token_rejected'); // unknown to Figma: 400
        assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.figma_users'))[0]!.n, 0);
        await auth.figma.verifyPaymentToken(token);
        assert.deepEqual(await figmaWarnings(status), [], 'a successful check clears the warning');
      }));

    test('pluginId is required; an answer about another plugin, or about none, is refused (payment_token_wrong_plugin) and nothing is stored', () =>
      withFigma(dialect, async ({ auth, figma, db }) => {
        await auth.plans.linkFigma('pro', 'PAID');
        for (const pluginId of [undefined, '', null]) {
          assert.throws(
            () => createPluginAuth(db, { figma: { personalAccessToken: PAT, apiBaseUrl: figma.url, pluginId } as unknown as FigmaOptions }),
            (e) => e instanceof PluginAuthError && code(e) === 'figma_plugin_id_missing' && /manifest/.test(e.message),
          );
        }
        assert.throws(() => createPluginAuth(db, { figma: { personalAccessToken: PAT, pluginId: 'a b' } }), (e) => code(e) === 'figma_config_invalid');
        const before = await dumpDatabase(db);
        // A PAID token minted for another plugin: Figma answers 200 about that plugin.
        const other = buy(figma, { status: 'PAID', resourceId: '999' });
        await assert.rejects(auth.figma.signIn(other.token), (e) => code(e) === 'payment_token_wrong_plugin' && /another plugin/.test((e as Error).message));
        const none = buy(figma, { status: 'PAID', resourceId: null });
        await assert.rejects(auth.figma.verifyPaymentToken(none.token), (e) => code(e) === 'payment_token_wrong_plugin' && /no plugin/.test((e as Error).message));
        const user = await createUser(db);
        await assert.rejects(auth.figma.link(user, other.token), (e) => code(e) === 'payment_token_wrong_plugin');
        assert.equal((await auth.usage.check(user, 'resize')).planSlug, 'free', 'no plan from another plugin\'s payment');
        await db.query('DELETE FROM public.users WHERE id = $1::uuid', [user]);
        assert.deepEqual(await dumpDatabase(db), before, 'nothing stored');
        // This plugin's token of the same Figma user grants.
        const own = buy(figma, { status: 'PAID', figmaUserId: other.figmaUserId });
        assert.equal((await auth.figma.signIn(own.token)).planSlug, 'pro');
      }));

    test('60 identical bogus sign-ins (at once, then one by one) make one Payments API call; refusals are remembered by digest, for a bounded time and number', () =>
      withFigma(dialect, async ({ auth, figma, make }) => {
        const bogus = newToken();
        const all = await Promise.allSettled(Array.from({ length: 60 }, () => auth.figma.signIn(bogus, { deviceName: 'Figma' })));
        assert.ok(all.every((r) => r.status === 'rejected' && code(r.reason) === 'payment_token_rejected'));
        assert.equal(figma.calls.length, 1, 'concurrent identical checks share one call');
        for (let i = 0; i < 60; i += 1) {
          await assert.rejects(auth.figma.signIn(bogus), (e) => code(e) === 'payment_token_rejected');
        }
        assert.equal(figma.calls.length, 1, 'a refused token is refused from memory');
        // Another plugin's token too, with its own code.
        const foreign = buy(figma, { resourceId: '999' }).token;
        for (let i = 0; i < 5; i += 1) await assert.rejects(auth.figma.verifyPaymentToken(foreign), (e) => code(e) === 'payment_token_wrong_plugin');
        assert.equal(figma.calls.length, 2);
        // Bounded in number: with room for 2, the oldest of 3 refusals is forgotten (asked again), the newest is not.
        const small = make({ refusalCacheSize: 2 });
        const [t1, t2, t3] = [newToken(), newToken(), newToken()];
        for (const t of [t1, t2, t3]) await assert.rejects(small.figma.verifyPaymentToken(t));
        const calls = figma.calls.length;
        await assert.rejects(small.figma.verifyPaymentToken(t3));
        assert.equal(figma.calls.length, calls, 't3 remembered');
        await assert.rejects(small.figma.verifyPaymentToken(t1));
        assert.equal(figma.calls.length, calls + 1, 't1 forgotten: asked again');
        // Bounded in time: refusalCacheSeconds 1, then a second later the token is asked about again.
        const brief = make({ refusalCacheSeconds: 1 });
        const t4 = newToken();
        await assert.rejects(brief.figma.verifyPaymentToken(t4));
        await assert.rejects(brief.figma.verifyPaymentToken(t4));
        const asked = figma.calls.filter((c) => c.paymentToken === t4).length;
        assert.equal(asked, 1);
        await new Promise((r) => setTimeout(r, 1100));
        // Figma now knows the token (e.g. it was a race with a purchase): the next check succeeds.
        figma.tokens.set(t4, { figmaUserId: newFigmaId(), status: 'PAID' });
        assert.equal((await brief.figma.verifyPaymentToken(t4)).status, 'PAID');
        // 429 and 5xx are not refusals of the token: never remembered.
        const t5 = buy(figma).token;
        figma.failure = { kind: 'http', status: 429 };
        await assert.rejects(auth.figma.verifyPaymentToken(t5), (e) => code(e) === 'figma_unavailable');
        figma.failure = null;
        assert.equal((await auth.figma.verifyPaymentToken(t5)).status, 'PAID');
      }));

    test('NOT_SUPPORTED or any unknown status grants nothing; UNPAID grants nothing; TRIAL grants its linked plan', () =>
      withFigma(dialect, async ({ auth, figma, db }) => {
        await auth.plans.linkFigma('pro', 'PAID');
        await auth.plans.linkFigma('basic', 'TRIAL');
        for (const [status, plan, stored] of [['NOT_SUPPORTED', 'free', 'UNKNOWN'], ['paid', 'free', 'UNKNOWN'], ['UNPAID', 'free', 'UNPAID'], ['TRIAL', 'basic', 'TRIAL'], ['PAID', 'pro', 'PAID']] as const) {
          const user = await createUser(db);
          const answer = await auth.figma.link(user, buy(figma, { status }).token);
          assert.equal(answer.status, stored, status);
          assert.equal(answer.figmaStatus, stored === 'UNKNOWN' ? status : null);
          assert.equal((await auth.usage.check(user, 'resize')).planSlug, plan, status);
          assert.equal((await auth.subscriptions.effectivePlan(user)).source, plan === 'free' ? 'free' : 'figma');
        }
      }));

    test('a server-side trial (FIRST_USE, 7 days) counts from the first verification and survives a reinstall', () =>
      withFigma(dialect, async ({ auth, figma, db }) => {
        await auth.plans.linkFigma('basic', 'FIRST_USE', { trialDays: 7 });
        const session = await auth.figma.signIn(buy(figma, { status: 'UNPAID', figmaUserId: 'fig-42' }).token, { deviceName: 'Figma' });
        assert.equal(session.planSlug, 'basic');
        const plan = await auth.subscriptions.effectivePlan(session.userId);
        assert.equal(plan.source, 'figma');
        assert.equal(plan.grants[0]!.detail, 'FIRST_USE');
        const firstSeen = (await db.query<{ first_seen_at: Date }>('SELECT first_seen_at FROM public.figma_users'))[0]!.first_seen_at;
        assert.equal(plan.until!.getTime(), firstSeen.getTime() + 7 * 86400_000);
        await age(db, 8 * 86400, 'first_seen');
        // "Reinstall": a new payment token of the same Figma user. first_seen_at is kept.
        const again = await auth.figma.signIn(buy(figma, { status: 'UNPAID', figmaUserId: 'fig-42' }).token);
        assert.equal(again.userId, session.userId);
        assert.equal(again.planSlug, 'free');
        await assert.rejects(auth.plans.linkFigma('basic', 'FIRST_USE'), (e) => code(e) === 'invalid_trial_days');
        await assert.rejects(auth.plans.linkFigma('basic', 'PAID', { trialDays: 3 }), (e) => code(e) === 'invalid_trial_days');
        await assert.rejects(auth.plans.linkFigma('basic', 'PAYED' as 'PAID'), (e) => code(e) === 'invalid_figma_link');
        await assert.rejects(auth.plans.linkFigma('platinum', 'PAID'), (e) => code(e) === 'unknown_plan');
        assert.equal(await auth.plans.linkFigma(null, 'FIRST_USE'), null);
        assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.figma_plan_links'))[0]!.n, 0);
      }));

    test('the effective plan across every source combination: best plan, then source precedence (table)', () =>
      withFigma(dialect, async ({ auth, figma, db }) => {
        await auth.plans.linkFigma('pro', 'PAID');
        await auth.plans.linkFigma('basic', 'TRIAL');
        const day = 86400_000;
        const future = new Date(Date.now() + 10 * day);
        const past = new Date(Date.now() - day);
        type Sub = [status: string, plan: string, periodEnd: Date | null];
        const cases: { name: string; sub?: Sub; figma?: 'PAID' | 'TRIAL' | 'PAID, past grace'; plan: string; source: string }[] = [
          { name: 'none', plan: 'free', source: 'free' },
          { name: 'stripe active', sub: ['active', 'basic', future], plan: 'basic', source: 'stripe' },
          { name: 'stripe trialing', sub: ['trialing', 'pro', future], plan: 'pro', source: 'stripe' },
          { name: 'stripe past_due in period', sub: ['past_due', 'pro', future], plan: 'pro', source: 'stripe' },
          { name: 'stripe past_due after period', sub: ['past_due', 'pro', past], plan: 'free', source: 'free' },
          { name: 'stripe canceled', sub: ['canceled', 'pro', future], plan: 'free', source: 'free' },
          { name: 'manual with until', sub: ['manual', 'enterprise', future], plan: 'enterprise', source: 'manual' },
          { name: 'manual ended', sub: ['manual', 'enterprise', past], plan: 'free', source: 'free' },
          { name: 'figma PAID', figma: 'PAID', plan: 'pro', source: 'figma' },
          { name: 'figma TRIAL', figma: 'TRIAL', plan: 'basic', source: 'figma' },
          { name: 'figma PAID past its grace', figma: 'PAID, past grace', plan: 'free', source: 'free' },
          { name: 'stripe basic + figma PAID pro: the better plan', sub: ['active', 'basic', future], figma: 'PAID', plan: 'pro', source: 'figma' },
          { name: 'stripe pro + figma PAID pro: stripe first', sub: ['active', 'pro', future], figma: 'PAID', plan: 'pro', source: 'stripe' },
          { name: 'manual pro + figma PAID pro: figma before manual', sub: ['manual', 'pro', null], figma: 'PAID', plan: 'pro', source: 'figma' },
          { name: 'manual enterprise + figma PAID pro', sub: ['manual', 'enterprise', null], figma: 'PAID', plan: 'enterprise', source: 'manual' },
          { name: 'stripe canceled pro + figma TRIAL basic', sub: ['canceled', 'pro', future], figma: 'TRIAL', plan: 'basic', source: 'figma' },
          { name: 'stripe past_due pro in period + figma TRIAL basic', sub: ['past_due', 'pro', future], figma: 'TRIAL', plan: 'pro', source: 'stripe' },
        ];
        for (const c of cases) {
          const user = await createUser(db);
          if (c.sub) {
            await db.query(
              `INSERT INTO public.user_subscriptions (user_id, plan_id, status, current_period_end)
               SELECT $1::uuid, id, $2::varchar, $3::timestamptz FROM public.subscription_plans WHERE plan_slug = $4::varchar`,
              [user, c.sub[0], c.sub[2], c.sub[1]],
            );
          }
          if (c.figma) {
            const { token, figmaUserId } = buy(figma, { status: c.figma.startsWith('PAID') ? 'PAID' : 'TRIAL' });
            await auth.figma.link(user, token);
            if (c.figma.endsWith('past grace')) {
              await db.query(
                "UPDATE public.figma_users SET checked_at = checked_at - interval '2 days', grant_until = grant_until - interval '2 days' WHERE figma_user_id = $1::varchar",
                [figmaUserId],
              );
            }
          }
          const effective = await auth.subscriptions.effectivePlan(user);
          assert.deepEqual([effective.planSlug, effective.source], [c.plan, c.source], c.name);
          assert.equal(effective.grants[0]?.source ?? 'free', c.source, c.name);
          if (c.source === 'stripe' || c.source === 'manual') assert.equal(effective.until?.getTime() ?? null, c.sub![2]?.getTime() ?? null, c.name);
          if (c.source === 'figma') assert.ok(effective.until && effective.until > new Date(), c.name);
          const sql = await db.query<{ plan_slug: string }>('SELECT plan_slug FROM public.effective_plan($1::uuid)', [user]);
          assert.equal(sql[0]!.plan_slug, c.plan, `effective_plan: ${c.name}`);
          assert.equal((await auth.usage.check(user, 'resize')).planSlug, c.plan, `check_usage: ${c.name}`);
          assert.equal((await auth.usage.consume(user, 'resize')).planSlug, c.plan, `consume_usage: ${c.name}`);
        }
      }));

    test('signIn finds or creates exactly one user per verified Figma id; link joins a website user; createUser for host tables', () =>
      withFigma(dialect, async ({ auth, figma, db, make }) => {
        await auth.plans.linkFigma('pro', 'PAID');
        const a = buy(figma, { status: 'PAID' });
        const session = await auth.figma.signIn(a.token, { deviceName: 'Figma desktop' });
        assert.deepEqual([session.figmaUserId, session.planSlug], [a.figmaUserId, 'pro']);
        assert.ok(session.expiresAt > new Date());
        const verified = await auth.tokens.verify(session.token);
        assert.deepEqual([verified.userId, verified.tokenId, verified.deviceName], [session.userId, session.tokenId, 'Figma desktop']);
        const stored = await db.query<{ figma_user_id: string; email: string }>('SELECT figma_user_id, email FROM public.users WHERE id = $1::uuid', [session.userId]);
        assert.deepEqual(stored, [{ figma_user_id: a.figmaUserId, email: `figma-${a.figmaUserId}@users.figma.invalid` }]);
        const second = await auth.figma.signIn(buy(figma, { figmaUserId: a.figmaUserId }).token);
        assert.equal(second.userId, session.userId, 'a new payment token of the same Figma user: the same user');

        // A host user already carrying users.figma_user_id is found, not duplicated.
        const host = await createUser(db);
        const hostFigma = newFigmaId();
        await db.query('UPDATE public.users SET figma_user_id = $1::varchar WHERE id = $2::uuid', [hostFigma, host]);
        assert.equal((await auth.figma.signIn(buy(figma, { figmaUserId: hostFigma }).token)).userId, host);

        // The website login hand-over: the signed-in user gets the plugin's Figma identity.
        const web = await createUser(db);
        const b = buy(figma, { status: 'PAID' });
        assert.equal((await auth.figma.link(web, b.token)).userId, web);
        assert.equal((await auth.figma.link(web, b.token)).userId, web, 'idempotent');
        assert.equal((await auth.figma.signIn(buy(figma, { figmaUserId: b.figmaUserId }).token)).userId, web);
        await assert.rejects(auth.figma.link(await createUser(db), b.token), (e) => code(e) === 'figma_user_linked');
        await assert.rejects(auth.figma.link(web, a.token), (e) => code(e) === 'figma_user_linked');
        await assert.rejects(auth.figma.link('not-a-uuid', a.token), (e) => code(e) === 'invalid_user_id');

        // A host users table with another required column: the default insert cannot work.
        await db.exec("ALTER TABLE public.users ADD COLUMN tenant TEXT NOT NULL DEFAULT 'acme'; ALTER TABLE public.users ALTER COLUMN tenant DROP DEFAULT");
        const users = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.users'))[0]!.n;
        const before = await users();
        await assert.rejects(auth.figma.signIn(buy(figma).token), (e) => code(e) === 'figma_create_user_failed');
        assert.equal(await users(), before, 'nothing created');
        const seen: string[] = [];
        const hooked = make({
          createUser: async (tx, { figmaUserId }) => {
            seen.push(figmaUserId);
            const rows = await tx.query<{ id: string }>(
              "INSERT INTO public.users (email, tenant) VALUES ($1::varchar, 'acme') RETURNING id",
              [`${figmaUserId}@example.com`],
            );
            return rows[0]!.id;
          },
        });
        const c = buy(figma);
        const viaHook = await hooked.figma.signIn(c.token);
        assert.deepEqual(seen, [c.figmaUserId]);
        assert.equal(await users(), before + 1);
        assert.equal((await hooked.figma.signIn(c.token)).userId, viaHook.userId);
        assert.deepEqual(seen, [c.figmaUserId], 'the hook runs for the first sign-in only');
      }));

    test('hostile payment tokens and device names: a typed error before any call or write', () =>
      withFigma(dialect, async ({ auth, figma, db }) => {
        const before = await dumpDatabase(db);
        const inputs: unknown[] = [...Object.values(WRONG_TYPES), undefined, ...Object.values(HOSTILE_STRINGS), 'x'.repeat(4097)];
        for (const input of inputs) {
          for (const call of [() => auth.figma.verifyPaymentToken(input as string), () => auth.figma.signIn(input as string)]) {
            const error = await call().then(() => undefined, (e: unknown) => e);
            assert.ok(error instanceof PluginAuthError, `${String(input).slice(0, 20)}: ${String(error)}`);
            // Shaped like a token (e.g. "$1"): Figma is asked and refuses it; anything else is refused here.
            assert.ok(['invalid_payment_token', 'payment_token_rejected'].includes(error.code), error.code);
          }
        }
        const shaped = inputs.filter((i) => typeof i === 'string' && /^[\x21-\x7e]{1,4096}$/.test(i)).length;
        // verify, then signIn: the second is refused from memory (refusals are remembered by digest).
        assert.equal(figma.calls.length, shaped, 'only token-shaped strings reached Figma, each once');
        const { token } = buy(figma);
        const calls = figma.calls.length;
        await assert.rejects(auth.figma.signIn(token, { deviceName: 'a\nb' }), (e) => code(e) === 'invalid_device_name');
        assert.equal(figma.calls.length, calls, 'a bad device name is refused before Figma is called');
        assert.deepEqual(await dumpDatabase(db), before);
        const unconfigured = createPluginAuth(db);
        await assert.rejects(unconfigured.figma.verifyPaymentToken(token), (e) => code(e) === 'figma_not_configured');
        assert.throws(() => createPluginAuth(db, { figma: { personalAccessToken: '', pluginId: STANDIN_PLUGIN_ID } }), (e) => code(e) === 'figma_token_missing');
        for (const bad of [{ cacheSeconds: -1 }, { refusalCacheSeconds: 1.5 }, { refusalCacheSize: -1 }]) {
          assert.throws(() => createPluginAuth(db, { figma: { personalAccessToken: PAT, pluginId: STANDIN_PLUGIN_ID, ...bad } }), (e) => code(e) === 'figma_config_invalid');
        }
      }));
  });
}

if (DIALECTS.includes('postgres')) {
  describe('figma payments, concurrency [postgres, real parallel connections]', () => {
    test('16 concurrent checks of one payment token make one HTTP call; two servers make one each [postgres]', () =>
      withFigma('postgres', async ({ auth, figma, make }) => {
        const { token, figmaUserId } = buy(figma, { status: 'PAID' });
        figma.hold(); // the first call is still in flight while the others arrive
        const answers = Promise.all(Array.from({ length: 16 }, () => auth.figma.verifyPaymentToken(token)));
        await figma.untilWaiting(1);
        figma.release();
        const got = await answers;
        assert.equal(figma.calls.length, 1);
        assert.ok(got.every((a) => a.figmaUserId === figmaUserId && a.status === 'PAID' && a.answeredBy === 'figma'));
        // A second server (another createPluginAuth) finds the stored answer fresh: no call.
        assert.equal((await make().figma.verifyPaymentToken(token)).answeredBy, 'cache');
        assert.equal(figma.calls.length, 1);
      }, {}, 20));

    test('a paying user is not blocked by 10 bogus sign-ins waiting on a slow Figma, on a pool of 2: no connection or lock is held meanwhile [postgres]', () =>
      withFigma('postgres', async ({ auth, figma, db, url }) => {
        await auth.plans.linkFigma('pro', 'PAID');
        const payer = await auth.figma.signIn(buy(figma, { status: 'PAID' }).token);
        figma.hold(); // Figma answers nothing until released
        const bogus = Array.from({ length: 10 }, () => auth.figma.signIn(newToken(), { deviceName: 'Figma' }));
        const settled = Promise.allSettled(bogus);
        let signInsDone = false;
        void settled.then(() => (signInsDone = true));
        await notStuck(figma.untilWaiting(10), 'all 10 sign-ins reach Figma (a sign-in holding one of the 2 connections would stop the rest)');
        // All 10 are waiting on Figma now. The payer's consume goes through the same pool of 2.
        const consumed = await notStuck(auth.usage.consume(payer.userId, 'resize'), 'the consume gets a connection');
        assert.deepEqual([consumed.allowed, consumed.planSlug], [true, 'pro']);
        assert.equal(figma.waiting, 10, 'the consume finished while every sign-in was still waiting on Figma');
        assert.equal(signInsDone, false);
        // Seen from a connection outside the pool: none of the pool's connections is in a statement
        // or a transaction, and no advisory lock is held.
        const { default: pg } = await import('pg');
        const outside = new pg.Client({ connectionString: url });
        await outside.connect();
        try {
          const busy = await outside.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_catalog.pg_stat_activity
              WHERE datname = pg_catalog.current_database() AND pid <> pg_catalog.pg_backend_pid() AND state <> 'idle'`);
          assert.equal(busy.rows[0]!.n, 0, 'no pooled connection is checked out while Figma is asked');
          const pooled = await outside.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_catalog.pg_stat_activity
              WHERE datname = pg_catalog.current_database() AND pid <> pg_catalog.pg_backend_pid()`);
          assert.ok(pooled.rows[0]!.n <= 2, `the pool has at most 2 connections (${pooled.rows[0]!.n})`);
          // This database's only: other databases of the server (other test processes) hold their own.
          const locks = await outside.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_catalog.pg_locks
              WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())`);
          assert.equal(locks.rows[0]!.n, 0, 'no advisory lock is held while Figma is asked');
        } finally {
          await outside.end();
        }
        figma.release();
        const results = await settled;
        assert.ok(results.every((r) => r.status === 'rejected' && code(r.reason) === 'payment_token_rejected'));
        assert.equal(figma.calls.length, 11);
      }, {}, 2));

    test('16 concurrent first sign-ins of one Figma user create exactly one user [postgres]', () =>
      withFigma('postgres', async ({ auth, figma, db }) => {
        const figmaUserId = newFigmaId();
        const tokens = Array.from({ length: 16 }, () => buy(figma, { figmaUserId }).token);
        figma.delayMs = 50;
        const sessions = await Promise.all(tokens.map((t) => auth.figma.signIn(t, { deviceName: 'Figma' })));
        assert.equal(new Set(sessions.map((s) => s.userId)).size, 1);
        const users = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.users WHERE figma_user_id = $1::varchar', [figmaUserId]);
        assert.equal(users[0]!.n, 1);
        const tokensIssued = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_tokens WHERE user_id = $1::uuid', [sessions[0]!.userId]);
        assert.equal(tokensIssued[0]!.n, 16);
      }, {}, 20));
  });
}
