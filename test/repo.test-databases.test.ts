// The suite's own PGlite databases (test/helpers/pglite.ts, leaseSetUpPglite): a test's instance is
// handed to the next test of its process only after a reset, and only when the reset can vouch for
// it. A reused instance must be indistinguishable from one freshly loaded from the set-up
// snapshot, and a test that changed the catalog, or failed, must never hand its instance on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PGlite } from '@electric-sql/pglite';
import { openDatabase } from '../src/core/db.ts';
import { createPluginAuth } from '../src/auth.ts';
import { createUser } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { leaseSetUpPglite, pgliteOptions, snapshotFs } from './helpers/pglite.ts';

/** What a test could observe of an instance besides its rows: sequences, statistics, sizes, the session. */
async function observe(instance: PGlite) {
  const db = await openDatabase(instance);
  const dump = await dumpDatabase(db);
  const one = async (sql: string) => (await instance.query<Record<string, unknown>>(sql)).rows;
  return {
    dump,
    // Each sequence's next value (taken here: the instance is not used again).
    sequences: await one(`SELECT s.sequencename::text AS name, pg_catalog.nextval(('public.' || s.sequencename)::regclass)::text AS next
                            FROM pg_catalog.pg_sequences s WHERE s.schemaname = 'public' ORDER BY 1`),
    relations: await one(`SELECT c.relname::text AS name, c.relkind::text AS kind, pg_catalog.pg_relation_size(c.oid)::text AS size
                            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'i', 'S') AND NOT EXISTS (
                                 SELECT 1 FROM pg_catalog.pg_class t WHERE t.relname = ANY (ARRAY['plugin_auth_function_files', 'plugin_auth_migrations', 'subscription_plans', 'usage_rollup_state', 'usage_user_rollup_state'])
                                   AND (t.oid = c.oid OR EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = t.oid AND i.indexrelid = c.oid)))
                           ORDER BY 1`),
    statistics: await one(`SELECT pg_catalog.count(*)::integer AS n FROM pg_catalog.pg_statistic s JOIN pg_catalog.pg_class c ON c.oid = s.starelid
                             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`),
    counters: await one(`SELECT COALESCE(pg_catalog.sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::text AS n FROM pg_catalog.pg_stat_user_tables`),
    session: await one(`SELECT pg_catalog.current_setting('statement_timeout') AS timeout, pg_catalog.current_setting('search_path') AS path,
                               pg_catalog.current_setting('session_replication_role') AS replication,
                               (SELECT pg_catalog.count(*)::integer FROM pg_catalog.pg_prepared_statements) AS prepared,
                               (SELECT pg_catalog.count(*)::integer FROM pg_catalog.pg_locks WHERE locktype = 'advisory') AS advisory,
                               pg_catalog.pg_current_xact_id_if_assigned() IS NULL AS no_transaction`),
  };
}

test('a reused PGlite instance is what a freshly loaded one is: rows, sequences, sizes, statistics, session', async () => {
  const fresh = await PGlite.create({ ...(await pgliteOptions()), fs: await snapshotFs('setup') });
  const reference = await observe(fresh);
  await fresh.close();

  const lease = await leaseSetUpPglite();
  const db = await openDatabase(lease.instance);
  // Everything a test does without touching the catalog: the library's writes (users, plans,
  // metering, tokens), a seeded row changed, every sequence advanced, statistics gathered, session
  // settings, a prepared statement, an advisory lock, and a transaction left open.
  const auth = createPluginAuth(db, { tokenSecret: 'test-only-secret-0123456789abcdef0123456789' });
  const ada = await createUser(db, 'ada@example.com');
  await auth.usage.consume(ada, 'resize', { idempotencyKey: 'k1' });
  await auth.tokens.issue(ada, { deviceName: 'laptop' });
  await db.query(`UPDATE public.subscription_plans SET limits = limits || '{"resizesPerDay": 99}'::jsonb WHERE plan_slug = 'free'`);
  await db.query(`SELECT pg_catalog.nextval(('public.' || s.sequencename)::regclass) FROM pg_catalog.pg_sequences s WHERE s.schemaname = 'public'`);
  // The counters of what was written, flushed to where pg_stat_user_tables reads them.
  await db.query('SELECT pg_catalog.pg_stat_force_next_flush()');
  await db.query('SELECT 1');
  assert.notEqual((await db.query<{ n: string }>('SELECT pg_catalog.sum(n_tup_ins)::text AS n FROM pg_catalog.pg_stat_user_tables'))[0]!.n, '0');
  await db.exec(`ANALYZE; SET statement_timeout = '5s'; SET search_path = pg_catalog; PREPARE p AS SELECT 1;
                 SELECT pg_catalog.pg_advisory_lock(42); SET session_replication_role = replica;`);
  await db.exec(`BEGIN; INSERT INTO public.users (email, name) VALUES ('left@example.com', 'Left Open')`);
  const instance = lease.instance;
  await lease.release(true);

  const again = await leaseSetUpPglite();
  assert.equal(again.instance, instance, 'the instance was reused');
  const seen = await observe(again.instance);
  await again.release(false);
  assert.ok(instance.closed, 'released without reuse: closed');
  assert.deepEqual(seen.dump, reference.dump);
  assert.deepEqual(seen.sequences, reference.sequences);
  assert.deepEqual(seen.relations, reference.relations);
  assert.deepEqual(seen.statistics, reference.statistics);
  assert.deepEqual(seen.counters, reference.counters);
  assert.deepEqual(seen.session, reference.session);
});

test('an instance whose catalog a test changed, or whose test failed, is closed, never handed on', async () => {
  const changes = [
    'CREATE FUNCTION public.extra() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$',
    'CREATE OR REPLACE FUNCTION public.plugin_auth_require_user(p_user_id uuid) RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$',
    'CREATE TEMPORARY TABLE scratch (x integer)',
    'GRANT SELECT ON public.users TO PUBLIC',
    'CREATE ROLE extra_role NOLOGIN',
    "COMMENT ON TABLE public.users IS 'changed'",
    'ALTER TABLE public.users ALTER COLUMN name SET DEFAULT \'x\'',
    'DROP INDEX public.idx_plugin_tokens_user_id',
    'TRUNCATE public.usage_daily_totals',
  ];
  for (const change of changes) {
    const lease = await leaseSetUpPglite();
    await lease.instance.exec(change);
    await lease.release(true);
    assert.ok(lease.instance.closed, `closed after: ${change}`);
    const next = await leaseSetUpPglite();
    assert.notEqual(next.instance, lease.instance);
    await next.release(true);
  }
  const failed = await leaseSetUpPglite();
  await failed.release(false);
  assert.ok(failed.instance.closed, 'a failed test’s instance is closed');
  const next = await leaseSetUpPglite();
  assert.notEqual(next.instance, failed.instance);
  await next.release(false);
});
