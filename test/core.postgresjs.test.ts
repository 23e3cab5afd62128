// The second driver, postgres.js (src/core/postgresjs.ts), against the real server: the same values
// and the same typed errors as the pg path, transactions, prepared hot statements, a killed
// connection replaced, and a postgres.js instance of the caller's. The suites of usage, tokens,
// login, hot paths, licenses and subscriptions also run on it: `npm run test:postgresjs`.
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import postgres from 'postgres';
import { createUser, withDatabase } from './helpers/databases.ts';
import { SECRET } from './helpers/tokens.ts';
import { rejectsWith } from './helpers/assert.ts';
import { createPluginAuth } from '../src/auth.ts';
import { NotFoundError, ValidationError, PluginAuthError, SetupError } from '../src/core/errors.ts';
import { openDatabase } from '../src/core/db.ts';
import { withTypedErrors, type Database } from '../src/core/queryable.ts';
import { POSTGRESJS_TYPES, isPostgresJs, openPostgresJs } from '../src/core/postgresjs.ts';

const VALUES_SQL = `SELECT '2026-03-01'::date AS day, 9007199254740991::bigint AS big, '2026-03-01T10:00:00Z'::timestamptz AS at,
  '{"a": [1, 2]}'::jsonb AS doc, 1.50::numeric AS price, true AS yes, NULL::text AS nothing, $1::uuid AS id, $2::integer AS n,
  ARRAY['x', 'y']::text[] AS tags`;

async function both<T>(url: string, fn: (db: Database) => Promise<T>): Promise<[T, T]> {
  const viaPg = await openDatabase(url, { max: 2 });
  const viaPostgresJs = await openDatabase(url, { max: 2, driver: 'postgres' });
  try {
    return [await fn(withTypedErrors(viaPg)), await fn(withTypedErrors(viaPostgresJs))];
  } finally {
    await viaPg.close();
    await viaPostgresJs.close();
  }
}

describe('postgres.js driver [postgres]', () => {
  test('returns the same values as pg: DATE as text, BIGINT as number, plain arrays of plain rows', () =>
    withDatabase('postgres', async ({ url }) => {
      const id = randomUUID();
      const [viaPg, viaPostgresJs] = await both(url!, (db) => db.query(VALUES_SQL, [id, 7]));
      assert.deepEqual(viaPostgresJs, viaPg);
      assert.equal(viaPostgresJs[0]!.day, '2026-03-01');
      assert.equal(viaPostgresJs[0]!.big, 9007199254740991);
      assert.ok(viaPostgresJs[0]!.at instanceof Date);
      assert.equal(Object.getPrototypeOf(viaPostgresJs), Array.prototype);
      // Prepared or not, the same answer.
      const db = await openPostgresJs(url!, { max: 1 });
      try {
        assert.deepEqual(await db.query(VALUES_SQL, [id, 7], { prepare: 'test_values' }), viaPg);
      } finally {
        await db.close();
      }
    }));

  test('errors: the same typed error and code as pg for our SQLSTATEs, constraints and bad input; no parameter kept on the error', () =>
    withDatabase('postgres', async ({ url }) => {
      const secretish = `lk_${randomUUID()}`;
      const cases: [string, unknown[], string][] = [
        ["SELECT * FROM public.consume_usage($1::uuid, 'resize'::varchar)", [randomUUID()], 'unknown_user'],
        ['SELECT $1::uuid', [secretish], 'invalid_input'],
        ['INSERT INTO public.users (email, name) VALUES ($1::text, $1::text), ($1::text, $1::text)', [`${secretish}@example.com`], 'unique_violation'],
        ['SELECT * FROM public.no_such_table WHERE x = $1::text', [secretish], 'database_error'],
      ];
      for (const [text, params, code] of cases) {
        const [viaPg, viaPostgresJs] = await both(url!, (db) => db.query(text, params).then(() => undefined, (e: unknown) => e as PluginAuthError));
        assert.ok(viaPostgresJs instanceof PluginAuthError, text);
        assert.equal(viaPostgresJs.constructor, viaPg!.constructor, text);
        assert.equal(viaPostgresJs.code, code, text);
        assert.equal(viaPostgresJs.code, viaPg!.code, text);
        const cause = viaPostgresJs.cause as Record<string, unknown>;
        for (const key of ['parameters', 'args']) assert.ok(!Object.prototype.hasOwnProperty.call(cause, key), `${key} removed from the driver's error`);
        // The server's own text may quote a bad value (as it does on pg); nothing else on the error carries it.
        const carriers = Object.getOwnPropertyNames(cause).filter((key) => String(cause[key]).includes(secretish));
        assert.deepEqual(carriers.filter((key) => !['message', 'detail', 'stack'].includes(key)), [], text);
      }
    }));

  test('exec runs several statements; transaction commits, rolls back on a throw, and passes the caller\'s error as it is', () =>
    withDatabase('postgres', async ({ url }) => {
      const db = withTypedErrors(await openPostgresJs(url!, { max: 2 }));
      try {
        await db.exec('CREATE TABLE public.test_pjs (n integer PRIMARY KEY); INSERT INTO public.test_pjs VALUES (1); INSERT INTO public.test_pjs VALUES (2);');
        const mine = new Error('mine');
        await assert.rejects(
          db.transaction(async (tx) => {
            await tx.query('INSERT INTO public.test_pjs VALUES ($1::integer)', [3]);
            throw mine;
          }),
          (e) => e === mine,
        );
        await rejectsWith(
          db.transaction(async (tx) => {
            await tx.query('INSERT INTO public.test_pjs VALUES ($1::integer)', [4]);
            await tx.query('INSERT INTO public.test_pjs VALUES ($1::integer)', [1]);
          }),
          ValidationError,
          'unique_violation',
        );
        assert.equal(await db.transaction(async (tx) => (await tx.query('INSERT INTO public.test_pjs VALUES ($1::integer) RETURNING n', [5]))[0]!.n), 5);
        const rows = await db.query<{ n: number }>('SELECT n FROM public.test_pjs ORDER BY n');
        assert.deepEqual(rows.map((r) => r.n), [1, 2, 5]);
      } finally {
        await db.close();
      }
    }));

  test('the hot statements are prepared once per connection; preparedStatements: false sends them unnamed', () =>
    withDatabase('postgres', async ({ url }) => {
      for (const prepared of [true, false]) {
        const db = await openPostgresJs(url!, { max: 1, preparedStatements: prepared });
        try {
          const auth = createPluginAuth(db, { tokenSecret: SECRET });
          const user = await createUser(db);
          await auth.usage.consume(user, 'export');
          await auth.usage.consume(user, 'export');
          const issued = await auth.tokens.issue(user);
          await auth.tokens.verify(issued.token);
          const statements = await db.query<{ statement: string }>('SELECT statement FROM pg_catalog.pg_prepared_statements', []);
          const hot = statements.filter((s) => /consume_usage|verify_plugin_session/.test(s.statement));
          assert.equal(hot.length, prepared ? 2 : 0, JSON.stringify(statements));
          assert.equal((await auth.usage.check(user, 'export')).used, 3);
        } finally {
          await db.close();
        }
      }
    }));

  test('a refused call keeps the connection; a connection killed mid-statement is replaced', () =>
    withDatabase('postgres', async ({ url, db: admin }) => {
      const db = withTypedErrors(await openPostgresJs(url!, { max: 1 }));
      try {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        await auth.usage.consume(user, 'export');
        const pid = async () => (await db.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid', []))[0]!.pid;
        const first = await pid();
        await rejectsWith(auth.usage.consume(randomUUID(), 'export'), NotFoundError, 'unknown_user');
        await rejectsWith(db.query('SELECT 1 / 0', []), ValidationError, 'invalid_input');
        assert.equal(await pid(), first, 'the connection survived the refusals');
        // Caught at once: the rejection may come before the terminate call returns.
        const sleeping = db.query('SELECT pg_catalog.pg_sleep(30)', []).then(() => undefined, (error: PluginAuthError) => error);
        for (;;) {
          const active = await admin.query("SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = $1::integer AND state = 'active'", [first]);
          if (active.length > 0) break;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await admin.query('SELECT pg_catalog.pg_terminate_backend($1::integer)', [first]);
        const failure = await sleeping;
        assert.ok(failure instanceof PluginAuthError, 'the killed statement rejects');
        const second = await pid();
        assert.notEqual(second, first);
        assert.equal((await auth.usage.check(user, 'export')).used, 2);
      } finally {
        await db.close();
      }
    }));

  test('a postgres.js instance of the caller\'s: openDatabase recognises it and close() leaves it open', () =>
    withDatabase('postgres', async ({ url }) => {
      const sql = postgres(url!, { max: 2, types: POSTGRESJS_TYPES, onnotice: false });
      try {
        assert.ok(isPostgresJs(sql));
        assert.ok(!isPostgresJs(url) && !isPostgresJs(() => {}));
        const db = await openDatabase(sql);
        assert.equal(db.kind, 'postgres');
        assert.doesNotMatch(db.description, /password|@/);
        const auth = createPluginAuth(db);
        const user = await createUser(db);
        assert.equal((await auth.usage.consume(user, 'resize')).allowed, true);
        await db.close();
        const [row] = await sql`SELECT count(*)::int AS n FROM public.plugin_usage WHERE user_id = ${user}::uuid`;
        assert.equal(row!.n, 1, 'the instance still answers after close()');
      } finally {
        await sql.end();
      }
    }));

  test('no URL is no_database_configured (naming SUPABASE_DB_URL), another scheme invalid_database_url: never a silent default', async () => {
    await rejectsWith(openPostgresJs(undefined), SetupError, 'no_database_configured', (e) => assert.match(e.message, /SUPABASE_DB_URL/));
    await rejectsWith(openPostgresJs(''), SetupError, 'no_database_configured');
    await rejectsWith(openPostgresJs('mysql://user:hunter2@x/db'), SetupError, 'invalid_database_url', (e) => assert.doesNotMatch(e.message, /hunter2/));
    await assert.rejects(openDatabase('http://x', { driver: 'postgres' }), TypeError);
  });
});
