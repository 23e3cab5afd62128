// Overload hijack (issue 11, item 1, the TypeScript side). A role that may CREATE in `public` can
// plant `public.consume_usage(text, text, text, text, jsonb)`: for a call with untyped parameters
// PostgreSQL prefers it (unknown-typed arguments resolve to the string category), and it runs as the
// backend's role. Every call from TypeScript therefore casts every parameter to the exact type of
// our function, which an exact match can never lose to. Checked two ways: statically over src/, and
// by planting an all-text overload of every function of ours and running every API against it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { PRICES, T0, linkPrices, subscription } from './helpers/stripe.ts';
import { createPluginAuth } from '../src/auth.ts';
import { createUsageReport, usageReport } from '../src/usage/report.ts';
import { purgeUsage } from '../src/usage/retention.ts';
import { findUser } from '../src/core/users.ts';
import type { Database } from '../src/core/db.ts';
import { TOKEN_SECRET as SECRET } from './helpers/secrets.ts';

/** Every .ts file under src/, recursively. */
function sources(dir = 'src'): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

test('every SQL statement in src/ casts each of its parameters ($n::type)', () => {
  const offenders: string[] = [];
  for (const file of sources()) {
    // Template literals and quoted strings that look like SQL; a placeholder not followed by :: is untyped.
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(`[^`]*`|'(?:[^'\\\n]|\\.)*')/g)) {
      const literal = match[1]!;
      if (!/\b(SELECT|INSERT|UPDATE|DELETE|CALL)\b/.test(literal)) continue;
      for (const p of literal.matchAll(/\$(\d+)(?!\d)(?!::)/g)) {
        const line = text.slice(0, match.index! + p.index!).split('\n').length;
        offenders.push(`${file}:${line}: $${p[1]} has no cast`);
      }
    }
  }
  assert.deepEqual(offenders, []);
});

/**
 * Plants, for every function of ours in public, an overload with every argument `text` (jsonb
 * arguments kept: they are sent cast) that raises `hijacked`. Where that signature is ours already
 * (all-text functions) there is nothing to plant. Then consume_usage, verify_plugin_token and verify_plugin_session get
 * overloads that answer wrongly: "allowed" for anyone, "ok" for any token.
 */
async function plantOverloads(db: Pick<Database, 'query' | 'exec'>, victim: string): Promise<string[]> {
  await db.exec(`
    CREATE TABLE public.hijack_planted (signature TEXT PRIMARY KEY);
    DO $plant$
    DECLARE
      r RECORD;
      v_args TEXT;
    BEGIN
      FOR r IN
        SELECT p.oid, p.proname, pg_catalog.pg_get_function_result(p.oid) AS result, p.proargtypes
          FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f' AND p.pronargs > 0
      LOOP
        SELECT string_agg(CASE WHEN a.t = 'jsonb'::regtype THEN 'jsonb' ELSE 'text' END, ', ' ORDER BY a.i)
          INTO v_args
          FROM unnest(r.proargtypes::oid[]) WITH ORDINALITY AS a(t, i);
        CONTINUE WHEN pg_catalog.to_regprocedure(format('public.%I(%s)', r.proname, v_args)) IS NOT NULL;
        EXECUTE format(
          'CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS $b$ BEGIN RAISE EXCEPTION ''hijacked: %s(%s) was called''; END $b$',
          r.proname, v_args, r.result, r.proname, v_args);
        INSERT INTO public.hijack_planted VALUES (format('%s(%s)', r.proname, v_args));
      END LOOP;
    END
    $plant$;
    CREATE OR REPLACE FUNCTION public.consume_usage(text, text, text, text, jsonb)
    RETURNS TABLE (allowed BOOLEAN, reason TEXT, plan_slug TEXT, used INTEGER, usage_limit INTEGER, remaining INTEGER,
                   batch_limit INTEGER, resets_at TIMESTAMPTZ, replayed BOOLEAN)
    LANGUAGE sql AS $b$ SELECT true, 'ok', 'enterprise', 0, NULL::int, NULL::int, NULL::int, NULL::timestamptz, false $b$;
    CREATE OR REPLACE FUNCTION public.verify_plugin_token(text, text)
    RETURNS TABLE (status TEXT, user_id UUID, expires_at TIMESTAMPTZ, device_name VARCHAR)
    LANGUAGE sql AS $b$ SELECT 'ok', '${victim}'::uuid, now() + interval '1 year', 'planted'::varchar $b$;
    CREATE OR REPLACE FUNCTION public.verify_plugin_session(text, text)
    RETURNS TABLE (status TEXT, user_id UUID, expires_at TIMESTAMPTZ, device_name VARCHAR, device_id UUID)
    LANGUAGE sql AS $b$ SELECT 'ok', '${victim}'::uuid, now() + interval '1 year', 'planted'::varchar, gen_random_uuid() $b$;
  `);
  return (await db.query<{ signature: string }>('SELECT signature FROM public.hijack_planted ORDER BY 1')).map((r) => r.signature);
}

for (const dialect of DIALECTS) {
  describe(`overloads planted in public are never called [${dialect}]`, () => {
    test('every API answers with our functions while all-text overloads of them exist', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db, `victim-${randomBytes(4).toString('hex')}@example.com`);
        const other = await createUser(db);
        await linkPrices(db);
        const planted = await plantOverloads(db, other);
        // The issue's two examples are among them, and so is every function the library calls with parameters.
        for (const signature of [
          'consume_usage(text, text, text, text, jsonb)', 'verify_plugin_token(text, text)', 'check_usage(text, text, text)',
          'refund_usage(text, text)', 'usage_summary(text, text, text)', 'issue_plugin_token(text, text, text, text, text, text, text)', 'verify_plugin_session(text, text)',
          'revoke_plugin_token(text, text)', 'revoke_all_plugin_tokens(text, text)', 'list_plugin_tokens(text)',
          'begin_plugin_login(text, text, text, text, text)', 'complete_plugin_login(text, text)',
          'claim_plugin_login(text, text, text, text, text, text)', 'sync_stripe_subscription(jsonb, text)',
          'assign_plan(text, text, text)', 'link_stripe_plan(text, text, text)', 'usage_report(text)',
          'purge_usage_batch(text, text, text)', 'effective_plan(text, text)', 'subscription_grants_access(text, text, text)',
        ]) assert.ok(planted.includes(signature), `planted ${signature}`);

        // Usage: the free plan allows 2 resizes (lifetime); the planted overload would allow a third.
        assert.equal((await auth.usage.consume(user, 'resize', { idempotencyKey: 'k1' })).reason, 'ok');
        assert.equal((await auth.usage.consume(user, 'resize', { metadata: { from: 'test' } })).reason, 'ok');
        const third = await auth.usage.consume(user, 'resize', { items: 1, idempotencyKey: 'k3' });
        assert.deepEqual([third.allowed, third.reason, third.planSlug], [false, 'limit_reached', 'free']);
        assert.equal((await auth.usage.check(user, 'resize')).reason, 'limit_reached');
        assert.deepEqual(await auth.usage.refund(user, 'k1'), { refunded: true });
        assert.equal((await auth.usage.summary(user, { from: '2000-01-01' })).length, 1);

        // Tokens: a revoked token stays revoked (the planted verify answers ok for anyone).
        const issued = await auth.tokens.issue(user, { deviceName: 'laptop', ttlSeconds: 3600 });
        assert.equal((await auth.tokens.verify(issued.token)).deviceName, 'laptop');
        assert.equal(await auth.tokens.revoke(issued.tokenId, 'lost'), true);
        await assert.rejects(auth.tokens.verify(issued.token), (e: { code?: string }) => e.code === 'token_revoked');
        assert.equal(await auth.tokens.revokeAll(user, 'all'), 0);
        assert.deepEqual((await auth.tokens.list(user)).map((t) => t.status), ['revoked']);
        assert.deepEqual(await auth.tokens.purgeExpired(), { tokens: 0, loginRequests: 0 });

        // Login hand-over.
        const login = await auth.tokens.beginLogin({ deviceName: 'Figma desktop' });
        assert.equal(await auth.tokens.pollLogin(login.readKey), null);
        await auth.tokens.completeLogin(login.writeKey, user);
        const polled = await auth.tokens.pollLogin(login.readKey);
        assert.equal((await auth.tokens.verify(polled!.token)).userId, user);

        // Subscriptions and plans.
        const synced = await auth.subscriptions.syncFromStripe(
          subscription({ userId: user, priceId: PRICES.pro, periodEnd: Math.floor(Date.now() / 1000) + 86_400 }) as never,
          { eventCreated: T0 },
        );
        assert.deepEqual([synced.applied, synced.planSlug], [true, 'pro']);
        assert.equal((await auth.subscriptions.effectivePlan(user)).planSlug, 'pro');
        assert.equal((await auth.subscriptions.assignPlan(other, 'basic')).planSlug, 'basic');
        assert.equal((await auth.plans.linkStripe('enterprise', { productId: 'prod_e', priceId: 'price_e' })).stripePriceId, 'price_e');
        assert.ok((await auth.plans.list({ includeInactive: true })).length >= 4);

        // Reports, retention, lookups.
        const report = createUsageReport(db);
        assert.equal((await report.recentDenials(user)).length, 1);
        assert.equal((await report.lifetime(user)).length, 1);
        assert.ok(Array.isArray(await usageReport(db, { days: 7 })));
        assert.equal((await purgeUsage(db, { olderThan: '30d', batchSize: 10 })).deleted, 0);
        assert.equal((await findUser(db, user)).id, user);
      }));
  });
}

if (DIALECTS.includes('postgres')) {
  describe('an intruder role with CREATE on public [postgres]', () => {
    test('its overloads of consume_usage and verify_plugin_token are never preferred to ours', () =>
      withDatabase('postgres', async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        await db.exec(`DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fpa_test_intruder') THEN CREATE ROLE fpa_test_intruder NOLOGIN; END IF;
          EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
          GRANT CREATE, USAGE ON SCHEMA public TO fpa_test_intruder;`);
        // Planted by the intruder, not by us: the functions belong to it and run its code.
        await db.transaction(async (tx) => {
          await tx.query('SET LOCAL ROLE fpa_test_intruder');
          await tx.exec(`
            CREATE FUNCTION public.consume_usage(text, text, text, text, jsonb)
            RETURNS TABLE (allowed BOOLEAN, reason TEXT, plan_slug TEXT, used INTEGER, usage_limit INTEGER, remaining INTEGER,
                           batch_limit INTEGER, resets_at TIMESTAMPTZ, replayed BOOLEAN)
            LANGUAGE sql AS $b$ SELECT true, 'ok', 'enterprise', 0, NULL::int, NULL::int, NULL::int, NULL::timestamptz, false $b$;
            CREATE FUNCTION public.verify_plugin_token(text, text)
            RETURNS TABLE (status TEXT, user_id UUID, expires_at TIMESTAMPTZ, device_name VARCHAR)
            LANGUAGE sql AS $b$ SELECT 'ok', '${user}'::uuid, now() + interval '1 year', 'planted'::varchar $b$;
            CREATE FUNCTION public.verify_plugin_session(text, text)
            RETURNS TABLE (status TEXT, user_id UUID, expires_at TIMESTAMPTZ, device_name VARCHAR, device_id UUID)
            LANGUAGE sql AS $b$ SELECT 'ok', '${user}'::uuid, now() + interval '1 year', 'planted'::varchar, gen_random_uuid() $b$;
            GRANT EXECUTE ON FUNCTION public.consume_usage(text, text, text, text, jsonb), public.verify_plugin_token(text, text),
              public.verify_plugin_session(text, text) TO PUBLIC;`);
        });
        const owners = await db.query<{ owner: string }>(
          `SELECT DISTINCT pg_get_userbyid(proowner) AS owner FROM pg_proc
            WHERE oid IN ('public.consume_usage(text, text, text, text, jsonb)'::regprocedure, 'public.verify_plugin_token(text, text)'::regprocedure,
                          'public.verify_plugin_session(text, text)'::regprocedure)`,
        );
        assert.deepEqual(owners.map((o) => o.owner), ['fpa_test_intruder']);
        for (let i = 0; i < 2; i++) assert.equal((await auth.usage.consume(user, 'resize')).reason, 'ok');
        assert.deepEqual((await auth.usage.consume(user, 'resize')).reason, 'limit_reached');
        const issued = await auth.tokens.issue(user);
        await auth.tokens.revoke(issued.tokenId);
        await assert.rejects(auth.tokens.verify(issued.token), (e: { code?: string }) => e.code === 'token_revoked');
      }));
  });
}
