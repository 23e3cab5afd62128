// The suite's own databases (test/helpers/reuse.ts): a test's PGlite instance (helpers/pglite.ts)
// or real-server database and its connections (helpers/databases.ts) is handed to the next test of
// its process only after a reset, and only when the reset can vouch for it. A reused one must be
// indistinguishable from a fresh one, and one whose test changed the catalog, asked for its URL,
// or failed must never be handed on.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PGlite } from '@electric-sql/pglite';
import { openDatabase } from '../src/core/db.ts';
import { createPluginAuth } from '../src/auth.ts';
import pg from 'pg';
import { createUser, dropDatabase, freshDatabase, serverUrl, SERVER_DIALECTS, type TestDatabase } from './helpers/databases.ts';
import { runScript } from './helpers/run.ts';
import type { Database } from '../src/core/db.ts';
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
    relations: await one(`SELECT c.relname::text AS name, c.relkind::text AS kind, pg_catalog.pg_relation_size(c.oid)::text AS size, c.relpages AS pages, c.reltuples AS tuples
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

/** The library's writes (users, metering, tokens), a seeded row changed, every sequence advanced. */
async function writeData(db: Database): Promise<void> {
  const auth = createPluginAuth(db, { tokenSecret: 'test-only-secret-0123456789abcdef0123456789' });
  const ada = await createUser(db, 'ada@example.com');
  await auth.usage.consume(ada, 'resize', { idempotencyKey: 'k1' });
  await auth.tokens.issue(ada, { deviceName: 'laptop' });
  await db.query(`UPDATE public.subscription_plans SET limits = limits || '{"resizesPerDay": 99}'::jsonb WHERE plan_slug = 'free'`);
  await db.query(`SELECT pg_catalog.nextval(('public.' || s.sequencename)::regclass) FROM pg_catalog.pg_sequences s WHERE s.schemaname = 'public'`);
}

test('a reused PGlite instance is what a freshly loaded one is: rows, sequences, sizes, statistics, session', async () => {
  const fresh = await PGlite.create({ ...(await pgliteOptions()), fs: await snapshotFs('setup') });
  const reference = await observe(fresh);
  await fresh.close();

  const lease = await leaseSetUpPglite();
  const db = await openDatabase(lease.instance);
  // Everything a test does without touching the catalog: data (writeData), statistics gathered,
  // session settings, a prepared statement, an advisory lock, and a transaction left open.
  await writeData(db);
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

/** What a test could observe of a real-server database: its rows, sequences, sizes, statistics, and each connection's session. */
async function observeServer(db: Database, connections: number) {
  const one = async (sql: string) => db.query<Record<string, unknown>>(sql);
  const dump = await dumpDatabase(db);
  return {
    dump,
    database: (await one('SELECT pg_catalog.current_database() AS name'))[0]!.name as string,
    sequences: await one(`SELECT s.sequencename::text AS name, pg_catalog.nextval(('public.' || s.sequencename)::regclass)::text AS next
                            FROM pg_catalog.pg_sequences s WHERE s.schemaname = 'public' ORDER BY 1`),
    relations: await one(`SELECT c.relname::text AS name, c.relpages AS pages, c.reltuples AS tuples, pg_catalog.pg_relation_size(c.oid)::text AS size
                            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'i') AND c.relname <> ALL (ARRAY['plugin_auth_function_files', 'plugin_auth_migrations',
                                 'subscription_plans', 'usage_rollup_state', 'usage_user_rollup_state', 'plugin_auth_function_files_pkey', 'plugin_auth_migrations_pkey',
                                 'subscription_plans_pkey', 'subscription_plans_plan_slug_key', 'usage_rollup_state_pkey', 'usage_user_rollup_state_pkey'])
                           ORDER BY 1`),
    statistics: await one(`SELECT pg_catalog.count(*)::integer AS n FROM pg_catalog.pg_statistic s JOIN pg_catalog.pg_class c ON c.oid = s.starelid
                             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`),
    // Every connection of the pool at once (each holds the others off with a short sleep).
    sessions: (await Promise.all(Array.from({ length: connections }, () => one(
      `SELECT pg_catalog.current_setting('statement_timeout') AS timeout, pg_catalog.current_setting('search_path') AS path,
              current_user::text AS role,
              (SELECT pg_catalog.count(*)::integer FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()) AS advisory,
              pg_catalog.pg_sleep(0.1) IS NULL AS slept`,
    )))).map((rows) => rows[0]),
  };
}

describe('real-server databases reused across tests', { skip: SERVER_DIALECTS.includes('postgres') ? false : 'runs with the postgres dialect' }, () => {
  test('a reused database and its connections are what a fresh one is: rows, sequences, sizes, statistics, sessions', async () => {
    const first = await freshDatabase('postgres', { max: 3, reuse: true });
    const db = first.db;
    await writeData(db);
    await db.exec('ANALYZE');
    // Each of the three connections left with session state.
    await Promise.all([1, 2, 3].map((k) => db.exec(`SET statement_timeout = '5s'; SET search_path = pg_catalog; SET ROLE anon;
                                                   SELECT pg_catalog.pg_advisory_lock(${k}); SELECT pg_catalog.pg_sleep(0.1);`)));
    const used = (await db.query<{ name: string }>('SELECT pg_catalog.current_database() AS name'))[0]!.name;
    await db.close();
    await assert.rejects(db.query('SELECT 1'), /closed/, 'a closed handle answers nothing');

    const again = await freshDatabase('postgres', { max: 3, reuse: true });
    const seen = await observeServer(again.db, 3);
    assert.equal(seen.database, used, 'the database was reused');
    await again.db.close();

    const fresh = await withFresh();
    const reference = await observeServer(fresh.db, 3);
    await fresh.db.close();
    assert.notEqual(reference.database, used);
    assert.deepEqual(seen.dump, reference.dump);
    assert.deepEqual(seen.sequences, reference.sequences);
    assert.deepEqual(seen.relations, reference.relations);
    assert.deepEqual(seen.statistics, reference.statistics);
    assert.deepEqual(seen.sessions, reference.sessions);
    assert.equal(seen.sessions.length, 3);
  });

  test('a database whose catalog changed, or whose URL or name a test read, is not reused', async () => {
    const uses: ((t: TestDatabase) => Promise<unknown>)[] = [
      (t) => t.db.exec('CREATE FUNCTION public.extra() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$'),
      (t) => t.db.exec("COMMENT ON TABLE public.users IS 'changed'"),
      (t) => t.db.exec('GRANT SELECT ON public.users TO anon'),
      async (t) => t.url,
      async (t) => t.name,
    ];
    for (const use of uses) {
      const t = await freshDatabase('postgres', { max: 2, reuse: true });
      const name = (await t.db.query<{ name: string }>('SELECT pg_catalog.current_database() AS name'))[0]!.name;
      await use(t);
      await t.db.close();
      const next = await freshDatabase('postgres', { max: 2, reuse: true });
      const nextName = (await next.db.query<{ name: string }>('SELECT pg_catalog.current_database() AS name'))[0]!.name;
      assert.notEqual(nextName, name, String(use));
      await next.db.close();
    }
  });
  test('a database waiting for reuse when its process has nothing left to do is dropped, and the process exits', { timeout: 120_000 }, async () => {
    const run = await runScript('test/fixtures/shelf-exit.ts', [], { env: { TEST_DATABASE_URL: serverUrl() } });
    assert.equal(run.code, 0, run.all);
    const name = run.stdout.trim();
    assert.match(name, /^fpa_test_/, run.all);
    const client = new pg.Client({ connectionString: serverUrl() });
    await client.connect();
    try {
      const left = await client.query('SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1::text', [name]);
      assert.equal(left.rowCount, 0, `${name} was left on the server`);
    } finally {
      await client.end();
    }
  });
});

/** A database made for this test alone (freshDatabase without reuse): the reference. */
async function withFresh(): Promise<TestDatabase> {
  const t = await freshDatabase('postgres', { max: 3 });
  return { ...t, db: { ...t.db, close: async () => { await t.db.close(); await dropDatabase(t.name!); } } };
}
