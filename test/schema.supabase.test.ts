import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { dropDatabase, freshDatabase } from './helpers/databases.ts';
import { dumpDatabase, type Dump } from './helpers/dump.ts';
import { EXEC_SQL_DDL, startSupabaseStandIn } from './helpers/supabase-standin.ts';
import { applySchema, setup } from '../src/schema/setup.ts';
import { loadMigrations } from '../src/schema/migrations.ts';
import { verifyCatalog } from '../src/cli/verify-catalog.ts';

const KEY = 'test-service-role-key-0123456789abcdef';

/** The dump without exec_sql, which only the Supabase database has. */
function withoutExecSql(dump: Dump): Dump {
  const catalog = dump.catalog as { functions: { name: string }[] };
  return { ...dump, catalog: { ...catalog, functions: catalog.functions.filter((f) => f.name !== 'exec_sql') } };
}

async function supabaseDatabase(execSql = true) {
  const t = await freshDatabase('postgres', { setup: false });
  if (execSql) await t.db.exec(EXEC_SQL_DDL);
  const standIn = await startSupabaseStandIn(t.url!, KEY);
  const env = { SUPABASE_URL: standIn.url, SUPABASE_SERVICE_ROLE_KEY: KEY };
  return {
    ...t,
    standIn,
    env,
    async done() {
      await standIn.close();
      await t.db.close();
      await dropDatabase(t.name!);
    },
  };
}

describe('setup through supabase-js and exec_sql [postgres only]', () => {
  test('applies the same schema as a direct connection, then re-runs as a no-op', async () => {
    const s = await supabaseDatabase();
    const direct = await freshDatabase('postgres', { setup: false });
    try {
      const first = await setup({ mode: 'production', env: s.env });
      assert.equal(first.targetKind, 'supabase');
      assert.deepEqual(first.applied, loadMigrations().map((m) => m.name));
      assert.deepEqual(s.standIn.calls.filter((c) => c === 'exec_sql').length, 1, 'one rpc call: one transaction');
      await applySchema(direct.db);
      assert.deepEqual(
        withoutExecSql(await dumpDatabase(s.db, { normalize: true })),
        await dumpDatabase(direct.db, { normalize: true }),
      );
      const before = await dumpDatabase(s.db);
      const second = await setup({ mode: 'production', env: s.env });
      assert.deepEqual(second.applied, []);
      assert.deepEqual(await dumpDatabase(s.db), before);
    } finally {
      await direct.db.close();
      await dropDatabase(direct.name!);
      await s.done();
    }
  });

  test('a missing exec_sql is named, with how to create it, and nothing is created', async () => {
    const s = await supabaseDatabase(false);
    try {
      await assert.rejects(setup({ mode: 'production', env: s.env }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'exec_sql_missing');
        assert.match(e.message, /exec_sql/);
        assert.match(e.message, /README/);
        return true;
      });
      const tables = await s.db.query("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = 'public'");
      assert.equal(tables.length, 0);
    } finally {
      await s.done();
    }
  });

  test('a failure inside exec_sql rolls the whole run back', async () => {
    const s = await supabaseDatabase();
    try {
      await s.db.exec('CREATE FUNCTION public.plugin_auth_catalog() RETURNS text LANGUAGE sql AS $$ SELECT 1::text $$');
      await assert.rejects(setup({ mode: 'production', env: s.env }), /return type/);
      const tables = await s.db.query("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = 'public'");
      assert.equal(tables.length, 0);
    } finally {
      await s.done();
    }
  });

  test('restores a dropped index and a deleted seed plan through exec_sql, in one call; verify then passes', async () => {
    const s = await supabaseDatabase();
    try {
      await setup({ mode: 'production', env: s.env });
      const before = await dumpDatabase(s.db, { normalize: true });
      await s.db.exec("DROP INDEX public.idx_plugin_usage_created_at; DELETE FROM public.subscription_plans WHERE plan_slug = 'pro'");
      const calls = s.standIn.calls.length;
      const result = await setup({ mode: 'production', env: s.env });
      assert.deepEqual(result.applied, []);
      assert.deepEqual(result.restored.sort(), ['index plugin_usage.idx_plugin_usage_created_at', 'plan pro']);
      assert.equal(s.standIn.calls.slice(calls).filter((c) => c === 'exec_sql').length, 1);
      assert.deepEqual(await dumpDatabase(s.db, { normalize: true }), before, 'back to what setup built');
      assert.deepEqual(verifyCatalog(result.catalog).differences, []);
    } finally {
      await s.done();
    }
  });

  test('an overload of one of our functions is refused through exec_sql (untrusted_object), and nothing changes', async () => {
    const s = await supabaseDatabase();
    try {
      await setup({ mode: 'production', env: s.env });
      await s.db.exec("CREATE FUNCTION public.verify_plugin_token(text, text) RETURNS text LANGUAGE sql AS $$ SELECT 'ok' $$");
      await s.db.exec('DROP INDEX public.idx_plugin_usage_created_at');
      const before = await dumpDatabase(s.db);
      await assert.rejects(setup({ mode: 'production', env: s.env }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'untrusted_object');
        assert.match(e.message, /function public\.verify_plugin_token\(text, text\)/);
        return true;
      });
      assert.deepEqual(await dumpDatabase(s.db), before, 'the index was not restored either: one transaction');
    } finally {
      await s.done();
    }
  });

  test('a wrong service-role key is refused, and the key is not in the error', async () => {
    const s = await supabaseDatabase();
    try {
      const wrong = 'wrong-key-that-must-not-leak-123456';
      await assert.rejects(
        setup({ mode: 'production', env: { ...s.env, SUPABASE_SERVICE_ROLE_KEY: wrong } }),
        (e: Error & { code?: string }) => {
          assert.match(e.message, /Invalid API key/);
          assert.ok(!e.message.includes(wrong));
          return true;
        },
      );
    } finally {
      await s.done();
    }
  });
});
