import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { SECRET } from './helpers/tokens.ts';
import { rejectsWith } from './helpers/assert.ts';
import { createPluginAuth } from '../src/auth.ts';
import { PluginAuthError, sqlState } from '../src/core/errors.ts';
import { openDatabase, type Queryable } from '../src/core/db.ts';

// sql/020 rewrites plugin_auth_grants with the access rule of subscription_grants_access inlined
// (generated from its source), and gives verify_plugin_token a common path of one RETURN QUERY.
for (const dialect of DIALECTS) {
  describe(`hot paths, sql/020 [${dialect}]`, () => {
    test('plugin_auth_grants carries the current rule of subscription_grants_access, not a call of it', () =>
      withDatabase(dialect, async ({ db }) => {
        const rows = await db.query<{ name: string; src: string }>(
          `SELECT p.proname AS name, p.prosrc AS src FROM pg_catalog.pg_proc p
            JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' AND p.proname IN ('plugin_auth_grants', 'subscription_grants_access')`, []);
        const src = new Map(rows.map((r) => [r.name, r.src]));
        const rule = /^\s*BEGIN\s+RETURN\s+([\s\S]*);\s*END;?\s*$/.exec(src.get('subscription_grants_access') ?? '');
        assert.ok(rule, 'subscription_grants_access is one RETURN (the shape sql/020 generates from)');
        const inlined = rule[1]!.replace(/\bp_status\b/g, 's.status').replace(/\bp_current_period_end\b/g, 's.current_period_end')
          .replace(/\s+/g, ' ').trim();
        const grants = src.get('plugin_auth_grants') ?? '';
        assert.ok(grants.includes(`(${inlined})`), 'plugin_auth_grants embeds the current access rule');
        assert.ok(!grants.includes('public.subscription_grants_access('), 'no nested call per subscription row');
      }));

    test('verify answers the same on its common path, its first use in a minute and every refusal', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        const issued = await auth.tokens.issue(user, { deviceName: 'desk' });
        const [{ token_hash: digest }] = await db.query<{ token_hash: string }>(
          'SELECT token_hash FROM public.plugin_tokens WHERE id = $1::uuid', [issued.tokenId]) as [{ token_hash: string }];
        const verify = (hash: string | null) => db.query<{ status: string; user_id: string | null; device_name: string | null }>(
          'SELECT status, user_id, device_name FROM public.verify_plugin_token($1::uuid, $2::text)', [issued.tokenId, hash]);
        const lastUsed = async () => (await db.query<{ t: Date | null }>(
          'SELECT last_used_at AS t FROM public.plugin_tokens WHERE id = $1::uuid', [issued.tokenId]))[0]!.t;
        const rejects = async (q: Queryable, hash: string | null) => {
          await assert.rejects(q.query('SELECT * FROM public.verify_plugin_token($1::uuid, $2::text)', [issued.tokenId, hash]),
            (e: unknown) => sqlState(e) === 'PA029');
        };

        // Never used: the full path answers ok and writes last_used_at.
        assert.equal(await lastUsed(), null);
        assert.deepEqual(await verify(digest), [{ status: 'ok', user_id: user, device_name: 'desk' }]);
        const first = await lastUsed();
        assert.ok(first instanceof Date);
        // Used a moment ago: the common path, the same answer, nothing written.
        assert.deepEqual(await verify(digest), [{ status: 'ok', user_id: user, device_name: 'desk' }]);
        assert.equal((await lastUsed())!.getTime(), first.getTime());
        // Last used over a minute ago: written again.
        await db.query(`UPDATE public.plugin_tokens SET last_used_at = now() - interval '2 minutes' WHERE id = $1::uuid`, [issued.tokenId]);
        assert.deepEqual(await verify(digest), [{ status: 'ok', user_id: user, device_name: 'desk' }]);
        assert.ok((await lastUsed())!.getTime() > Date.now() - 60_000);

        // Malformed digests are refused whatever the token's state, also close to the stored one.
        for (const bad of [null, `${digest} `, digest.toUpperCase(), digest.slice(0, 63), `${digest}0`, 'é'.repeat(32)]) {
          await rejects(db, bad);
        }
        assert.deepEqual(await verify('0'.repeat(64)), [{ status: 'invalid', user_id: null, device_name: null }]);
        await db.query(`UPDATE public.plugin_tokens SET expires_at = now() - interval '1 second', created_at = now() - interval '1 day'
                         WHERE id = $1::uuid`, [issued.tokenId]);
        assert.deepEqual(await verify(digest), [{ status: 'expired', user_id: null, device_name: null }]);
        await auth.tokens.revoke(issued.tokenId);
        assert.deepEqual(await verify(digest), [{ status: 'revoked', user_id: null, device_name: null }]);
        await rejects(db, digest.toUpperCase());
        const unknown = await db.query('SELECT status, user_id FROM public.verify_plugin_token(gen_random_uuid(), $1::text)', [digest]);
        assert.deepEqual(unknown, [{ status: 'invalid', user_id: null }]);
      }));
  });
}

// The hot calls are prepared once per connection on PostgreSQL (not behind a transaction pooler).
describe('hot paths, prepared statements [postgres]', () => {
  if (!DIALECTS.includes('postgres')) return;
  test('consume, check and verify are prepared per connection; preparedStatements: false sends them unnamed', () =>
    withDatabase('postgres', async ({ url }) => {
      for (const prepared of [true, false]) {
        const db = await openDatabase(url!, { max: 1, preparedStatements: prepared });
        try {
          const auth = createPluginAuth(db, { tokenSecret: SECRET });
          const user = await createUser(db);
          await auth.usage.consume(user, 'export');
          await auth.usage.consume(user, 'export');
          await auth.usage.check(user, 'export');
          const issued = await auth.tokens.issue(user);
          await auth.tokens.verify(issued.token);
          const names = (await db.query<{ name: string }>('SELECT name FROM pg_catalog.pg_prepared_statements ORDER BY name', []))
            .map((r) => r.name);
          // consume: its common statement, then the function (a new user has no effective plan row yet).
          assert.deepEqual(names, prepared ? ['fpa_check_usage', 'fpa_consume_common', 'fpa_consume_usage', 'fpa_verify_plugin_token'] : []);
          assert.equal((await auth.usage.check(user, 'export')).used, 3);
        } finally {
          await db.close();
        }
      }
    }));

  test('a refused call keeps its pooled connection and the statements prepared on it; a broken connection is replaced', () =>
    withDatabase('postgres', async ({ url, db: admin }) => {
      const db = await openDatabase(url!, { max: 1 });
      try {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        await auth.usage.consume(user, 'export');
        const pid = async () => (await db.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid', []))[0]!.pid;
        const first = await pid();
        // Refused by the server (typed errors raised in SQL, a constraint, a bad value), each on the pool's one connection.
        await rejectsWith(auth.usage.consume(randomUUID(), 'export'), PluginAuthError, 'unknown_user');
        await rejectsWith(auth.usage.refund(user, 'no-such-key'), PluginAuthError, 'unknown_idempotency_key');
        await assert.rejects(db.query('SELECT 1 / 0', []), (e: { code?: string }) => e.code === '22012');
        await assert.rejects(db.query('INSERT INTO public.users (id, email) VALUES ($1::uuid, $2::text)', [user, 'again@example.com']), (e: { code?: string }) => e.code === '23505');
        assert.equal(await pid(), first, 'the connection survived the refusals');
        const names = (await db.query<{ name: string }>('SELECT name FROM pg_catalog.pg_prepared_statements ORDER BY name', [])).map((r) => r.name);
        assert.deepEqual(names, ['fpa_consume_common', 'fpa_consume_usage']);
        // The server ends the session in the middle of a statement: it fails, and the next one runs on a new connection.
        // Its rejection is caught at once: it may come before the terminate call returns.
        const sleeping = db.query('SELECT pg_catalog.pg_sleep(30)', []).then(() => undefined, (error: { code?: string; cause?: { code?: string } }) => error);
        for (;;) {
          const active = await admin.query("SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = $1::integer AND state = 'active'", [first]);
          if (active.length > 0) break;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await admin.query('SELECT pg_catalog.pg_terminate_backend($1::integer)', [first]);
        // The typed, retryable connection_lost (test/core.db.test.ts), the server's 57P01 as its cause.
        const ended = await sleeping;
        assert.equal(ended?.code, 'connection_lost');
        assert.equal(ended?.cause?.code, '57P01');
        const second = await pid();
        assert.notEqual(second, first);
        assert.equal((await auth.usage.check(user, 'export')).used, 2, 'one consume counted, the check counts the call it asks about');
      } finally {
        await db.close();
      }
    }));
});

// On PGlite the hot calls are named statements too (one Bind, Execute, Sync per call), run under
// PGlite's locks: never inside a transaction another caller has open on the same instance.
describe('hot paths, prepared statements [pglite]', () => {
  if (!DIALECTS.includes('pglite')) return;
  test('consume, check and verify are prepared once per instance, answer as before, and wait for an open transaction', () =>
    withDatabase('pglite', async ({ db }) => {
      const auth = createPluginAuth(db, { tokenSecret: SECRET });
      const user = await createUser(db);
      const first = await auth.usage.consume(user, 'export');
      assert.deepEqual([first.allowed, first.reason, first.used, first.replayed], [true, 'ok', 1, false]);
      assert.equal((await auth.usage.check(user, 'export')).used, 2);
      const issued = await auth.tokens.issue(user);
      assert.equal((await auth.tokens.verify(issued.token)).userId, user);
      const names = (await db.query<{ name: string }>('SELECT name FROM pg_catalog.pg_prepared_statements ORDER BY name', [])).map((r) => r.name);
      assert.deepEqual(names, ['fpa_check_usage', 'fpa_consume_common', 'fpa_consume_usage', 'fpa_verify_plugin_token']);
      // Another text under a taken name is sent unnamed, as it is, and the named statement stays.
      assert.deepEqual(await db.query('SELECT $1::integer + 1 AS x', [41], { prepare: 'fpa_consume_usage' }), [{ x: 42 }]);
      // Refused by the server on the named path: the same typed error as through query().
      await rejectsWith(auth.usage.consume(randomUUID(), 'export'), PluginAuthError, 'unknown_user');
      // A transaction held open while a consume is asked for: the consume runs after it, so its rollback keeps the call.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const rolledBack = db.transaction(async (tx) => {
        await tx.query("UPDATE public.users SET name = 'inside' WHERE id = $1::uuid", [user]);
        await held;
        throw new Error('roll back');
      }).catch((error: Error) => error.message);
      const second = auth.usage.consume(user, 'export');
      await new Promise((resolve) => setTimeout(resolve, 50));
      release();
      assert.equal(await rolledBack, 'roll back');
      assert.equal((await second).used, 2);
      assert.equal((await auth.usage.consume(user, 'export')).used, 3);
      assert.deepEqual(await db.query('SELECT name FROM public.users WHERE id = $1::uuid', [user]), [{ name: 'Test User' }]);
    }));
});
