import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { DIALECTS, freshDatabase, dropDatabase, withDatabase, urlFor } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { openDatabase } from '../src/core/db.ts';
import { applySchema } from '../src/schema/setup.ts';
import { loadMigrations } from '../src/schema/migrations.ts';

const ALL = loadMigrations().map((m) => m.name);

for (const dialect of DIALECTS) {
  describe(`setup [${dialect}]`, () => {
    test('first run applies every file; a second run applies nothing and changes nothing', () =>
      withDatabase(dialect, async ({ db }) => {
        const first = await applySchema(db);
        assert.deepEqual(first.applied, ALL);
        assert.equal(first.schemaVersion, loadMigrations().at(-1)!.version);
        const before = await dumpDatabase(db);
        const second = await applySchema(db);
        assert.deepEqual(second.applied, []);
        assert.deepEqual(await dumpDatabase(db), before);
        assert.deepEqual(second.catalog.migrations, first.catalog.migrations);
      }, { setup: false }));

    test('a failure part way (a conflicting function) rolls everything back', () =>
      withDatabase(dialect, async ({ db }) => {
        // plugin_auth_catalog() is created by the last file; a same-named function with another
        // return type makes CREATE OR REPLACE fail after every table has been created.
        await db.exec('CREATE FUNCTION public.plugin_auth_catalog() RETURNS text LANGUAGE sql AS $$ SELECT 1::text $$');
        const tables = () => db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_catalog.pg_tables WHERE schemaname = 'public'",
        );
        assert.equal((await tables())[0]!.n, 0);
        await assert.rejects(applySchema(db), (e: Error & { code?: string }) => {
          assert.match(e.message, /return type/);
          return true;
        });
        assert.equal((await tables())[0]!.n, 0, 'no table left behind');
        const fn = await db.query<{ r: string }>('SELECT public.plugin_auth_catalog() AS r');
        assert.equal(fn[0]!.r, '1', 'the pre-existing function is untouched');
      }, { setup: false }));

    test('a table that exists with another shape is reported by name, and nothing is applied', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(`
          CREATE TABLE public.users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text);
          CREATE TABLE public.plugin_tokens (id uuid PRIMARY KEY, user_id uuid, token text);`);
        await assert.rejects(applySchema(db), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'schema_drift');
          assert.match(e.message, /plugin_tokens\.token_hash is missing, expected character\(64\)/);
          assert.match(e.message, /plugin_tokens\.expires_at is missing/);
          return true;
        });
        const rows = await db.query<{ name: string }>(
          "SELECT tablename AS name FROM pg_catalog.pg_tables WHERE schemaname = 'public' ORDER BY 1",
        );
        assert.deepEqual(rows.map((r) => r.name), ['plugin_tokens', 'users']);
      }, { setup: false }));

    test('existing host tables with extra columns are used as they are, never altered', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(`
          CREATE TABLE public.users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text NOT NULL,
            avatar_url text, plan_tier smallint);
          INSERT INTO public.users (email, avatar_url) VALUES ('host@example.com', 'https://example.com/a.png');`);
        const before = await db.query('SELECT * FROM public.users');
        const result = await applySchema(db);
        assert.ok(result.applied.length > 0);
        const users = result.catalog.tables.find((t) => t.name === 'users')!;
        assert.deepEqual(users.columns.map((c) => c.name), ['id', 'email', 'avatar_url', 'plan_tier']);
        assert.deepEqual(await db.query('SELECT * FROM public.users'), before);
      }, { setup: false }));

    test('a users table without a uuid primary key is refused, naming it', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec('CREATE TABLE public.users (id bigint PRIMARY KEY, email text)');
        await assert.rejects(applySchema(db), (e: Error & { code?: string }) => {
          // The foreign keys cannot even be created against a bigint id.
          assert.match(e.message, /users\.id is bigint, expected uuid/);
          return true;
        });
        const rows = await db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_catalog.pg_tables WHERE schemaname = 'public'",
        );
        assert.equal(rows[0]!.n, 1);
      }, { setup: false }));

    test('deleting a user cascades through every table that references it', () =>
      withDatabase(dialect, async ({ db }) => {
        const [{ id }] = await db.query<{ id: string }>(
          "INSERT INTO public.users (email) VALUES ('gone@example.com') RETURNING id",
        ) as [{ id: string }];
        await db.exec('SELECT 1');
        await db.query(
          `INSERT INTO public.api_keys (user_id, name, key_hash, key_prefix) VALUES ($1, 'k', repeat('a', 64), 'fpa_');`,
          [id],
        );
        await db.query(
          `INSERT INTO public.plugin_tokens (user_id, token_hash, expires_at) VALUES ($1, repeat('b', 64), now() + interval '1 day')`,
          [id],
        );
        await db.query(
          `INSERT INTO public.plugin_usage (user_id, action, allowed, reason) VALUES ($1, 'resize', true, 'ok')`,
          [id],
        );
        await db.query('SELECT public.increment_daily_usage($1, $2)', [id, 'resize']);
        await db.query(
          `INSERT INTO public.user_subscriptions (user_id, plan_id, status)
           SELECT $1, id, 'active' FROM public.subscription_plans WHERE plan_slug = 'pro'`,
          [id],
        );
        const tables = ['api_keys', 'plugin_tokens', 'plugin_usage', 'daily_usage_summary', 'user_subscriptions'];
        const counts = async () => {
          const out: Record<string, number> = {};
          for (const t of tables) {
            out[t] = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.${t} WHERE user_id = $1`, [id]))[0]!.n;
          }
          return out;
        };
        assert.deepEqual(Object.values(await counts()), [1, 1, 1, 1, 1]);
        await db.query('DELETE FROM public.users WHERE id = $1', [id]);
        assert.deepEqual(Object.values(await counts()), [0, 0, 0, 0, 0]);
        const plans = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.subscription_plans');
        assert.equal(plans[0]!.n, 4, 'plans are not owned by users');
      }));

    test('increment_daily_usage counts per user, action and day, and refuses bad input', () =>
      withDatabase(dialect, async ({ db }) => {
        const [{ id }] = (await db.query<{ id: string }>(
          "INSERT INTO public.users (email) VALUES ('count@example.com') RETURNING id",
        )) as [{ id: string }];
        const inc = async (...args: unknown[]) =>
          (await db.query<{ n: number }>(
            `SELECT public.increment_daily_usage(${args.map((_, i) => `$${i + 1}`).join(', ')}) AS n`,
            args,
          ))[0]!.n;
        assert.equal(await inc(id, 'resize'), 1);
        assert.equal(await inc(id, 'resize'), 2);
        assert.equal(await inc(id, 'export'), 1);
        assert.equal(await inc(id, 'resize', '2026-01-01'), 1);
        const today = await db.query<{ d: string; count: number }>(
          `SELECT usage_date AS d, count FROM public.daily_usage_summary WHERE user_id = $1 AND action = 'resize' ORDER BY usage_date`,
          [id],
        );
        assert.equal(today.length, 2);
        assert.equal(today[0]!.d, '2026-01-01');
        const utcToday = new Date().toISOString().slice(0, 10);
        assert.equal(today[1]!.d, utcToday, 'the default day is the UTC date');
        assert.equal(today[1]!.count, 2);
        const rejects = (args: unknown[], state: string) =>
          assert.rejects(inc(...args), (e: { code?: string }) => e.code === state, `${state} for ${JSON.stringify(args).slice(0, 60)}`);
        await rejects(['00000000-0000-0000-0000-000000000000', 'resize'], 'PA001');
        await rejects([id, ''], 'PA003');
        await rejects([id, 'x'.repeat(10_000)], 'PA003');
        await rejects([id, null], 'PA003');
        await rejects([id, "resize'; DROP TABLE public.users; --"], 'PA003');
        const total = await db.query<{ n: number }>('SELECT sum(count)::int AS n FROM public.daily_usage_summary');
        assert.equal(total[0]!.n, 4, 'refused calls wrote nothing');
      }));
  });
}

describe('setup [postgres only]', () => {
  test('ten setups at once on one empty database all succeed, and exactly one applies the files', async () => {
    const { db, name } = await freshDatabase('postgres', { setup: false });
    const dbs = await Promise.all(Array.from({ length: 10 }, () => openDatabase(urlFor(name!), { max: 1 })));
    try {
      const results = await Promise.allSettled(dbs.map((d) => applySchema(d)));
      const failures = results.filter((r) => r.status === 'rejected');
      assert.deepEqual(failures, [], 'every run succeeded');
      const applied = results.map((r) => (r as PromiseFulfilledResult<{ applied: string[] }>).value.applied);
      assert.equal(applied.filter((a) => a.length === ALL.length).length, 1);
      assert.equal(applied.filter((a) => a.length === 0).length, 9);
      const reference = await freshDatabase('postgres', { setup: false });
      await applySchema(reference.db);
      assert.deepEqual(await dumpDatabase(db, { normalize: true }), await dumpDatabase(reference.db, { normalize: true }));
      await reference.db.close();
      await dropDatabase(reference.name!);
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
      await db.close();
    }
    await dropDatabase(name!);
  });

  test('a setup killed half way (its connection terminated mid-transaction) leaves nothing behind', async () => {
    const { db, name, url } = await freshDatabase('postgres', { setup: false });
    await db.exec("CREATE TABLE public.users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text)");
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    // Holding users exclusively makes setup stop at the first foreign key, after it has already
    // taken its lock and started creating objects in its transaction.
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE');
    const victim = await openDatabase(url!, { max: 1, applicationName: 'fpa-victim' });
    const running = applySchema(victim).then(() => 'finished', (e: Error) => e.message);
    let pid: number | undefined;
    for (let i = 0; i < 100 && !pid; i++) {
      const rows = await db.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'fpa-victim' AND wait_event_type = 'Lock'",
      );
      pid = rows[0]?.pid;
      if (!pid) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(pid, 'setup is waiting inside its transaction');
    await db.query('SELECT pg_terminate_backend($1)', [pid]);
    const outcome = await running;
    assert.notEqual(outcome, 'finished');
    await blocker.query('ROLLBACK');
    await blocker.end();
    await victim.close();
    const tables = await db.query<{ name: string }>(
      "SELECT tablename AS name FROM pg_catalog.pg_tables WHERE schemaname = 'public' ORDER BY 1",
    );
    assert.deepEqual(tables.map((t) => t.name), ['users']);
    const again = await applySchema(db);
    assert.deepEqual(again.applied, ALL, 'a later run applies everything');
    await db.close();
    await dropDatabase(name!);
  });

  test('increment_daily_usage: 16 connections x 250 calls on one user and day leave exactly 4000', () =>
    withDatabase('postgres', async ({ db }) => {
      const [{ id }] = (await db.query<{ id: string }>(
        "INSERT INTO public.users (email) VALUES ('hot@example.com') RETURNING id",
      )) as [{ id: string }];
      const returned: number[] = [];
      await Promise.all(Array.from({ length: 16 }, async () => {
        for (let i = 0; i < 250; i++) {
          const rows = await db.query<{ n: number }>('SELECT public.increment_daily_usage($1, $2, $3) AS n', [id, 'resize', '2026-11-25']);
          returned.push(rows[0]!.n);
        }
      }));
      const rows = await db.query<{ count: number }>('SELECT count FROM public.daily_usage_summary WHERE user_id = $1', [id]);
      assert.deepEqual(rows.map((r) => r.count), [4000]);
      // Every call saw a distinct count: no two increments were lost or merged.
      assert.equal(new Set(returned).size, 4000);
      assert.equal(Math.max(...returned), 4000);
    }, { max: 16 }));
});
