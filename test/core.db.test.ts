// src/core/db.ts, the pg pool: a connection the server ends (pg_terminate_backend: what a failover,
// a restart or maintenance does) never crashes the process. Every connection the pool holds has an
// error listener for its whole life, a broken one is discarded, the call in flight fails with the
// typed, retryable `connection_lost`, and the pool goes on serving. Real server only: it needs
// connections to kill.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { runScript } from './helpers/run.ts';
import { setPlan } from './helpers/usage.ts';
import { openDatabase, type Database } from '../src/core/db.ts';
import { DatabaseError, ERRORS, PluginAuthError } from '../src/core/errors.ts';
import { createPluginAuth } from '../src/auth.ts';

interface LoadReport {
  calls: number;
  answered: number;
  kills: number;
  retried: number;
  replayedRetries: number;
  failures: Record<string, number>;
  other: { name: string; code?: string; message: string }[];
  givenUp: number;
  afterAllowed: boolean;
  callsMs: number;
  killedThroughout: boolean;
}

/** The backend pids of the pool's connections to this database (the admin's own excluded). */
async function poolPids(admin: Database): Promise<number[]> {
  const rows = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_catalog.pg_stat_activity
      WHERE datname = pg_catalog.current_database() AND pid <> pg_catalog.pg_backend_pid() AND application_name = $1::text
      ORDER BY pid`,
    ['fpa-connection-test'],
  );
  return rows.map((r) => r.pid);
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const lost = (error: unknown): boolean => {
  assert.ok(error instanceof DatabaseError, `a DatabaseError, got ${String(error)}`);
  assert.equal(error.code, 'connection_lost', error.message);
  assert.equal(error.retryable, true);
  return true;
};

describe('db: a terminated connection [postgres only]', () => {
  if (!DIALECTS.includes('postgres')) return;

  test('connection_lost is a retryable DatabaseError in the error table; the other codes are not retryable', () => {
    const row = ERRORS.find((e) => e.code === 'connection_lost');
    assert.ok(row);
    assert.equal(row.class, 'DatabaseError');
    assert.equal(new DatabaseError('connection_lost', 'x').retryable, true);
    assert.equal(new DatabaseError('database_error', 'x').retryable, false);
    assert.equal(new PluginAuthError('unknown_user', 'x').retryable, false);
  });

  test('idle pooled connections terminated by the server: no crash, the next calls run on new connections', () =>
    withDatabase('postgres', async ({ url, db: admin }) => {
      const db = await openDatabase(url!, { max: 4, applicationName: 'fpa-connection-test' });
      try {
        // Four connections open and idle in the pool.
        await Promise.all(Array.from({ length: 4 }, () => db.query('SELECT pg_catalog.pg_sleep(0.05)', [])));
        const before = await poolPids(admin);
        assert.equal(before.length, 4);
        await admin.query('SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.unnest($1::integer[]) AS pid', [before]);
        await waitFor(async () => (await poolPids(admin)).length === 0, 'the backends to end');
        // The idle clients saw their sockets close (an 'error' event each): the process is still here.
        const auth = createPluginAuth(db);
        const user = await createUser(admin);
        const answers = await Promise.all(Array.from({ length: 4 }, (_, i) => auth.usage.consume(user, 'resize', { idempotencyKey: `k${i}` }).then(
          (a) => a.allowed,
          (error: unknown) => lost(error) && 'lost',
        )));
        // A call may have drawn a client whose socket closed before the pool noticed: it is refused as
        // connection_lost; nothing else.
        for (const a of answers) assert.ok(a === true || a === false || a === 'lost');
        const after = await poolPids(admin);
        assert.ok(after.length > 0);
        for (const pid of after) assert.ok(!before.includes(pid), 'a new connection');
        assert.deepEqual(await db.query('SELECT 1 AS one', []), [{ one: 1 }]);
      } finally {
        await db.close();
      }
    }));

  test('a connection terminated mid-statement and mid-transaction: connection_lost, discarded, the pool serves on', () =>
    withDatabase('postgres', async ({ url, db: admin }) => {
      const db = await openDatabase(url!, { max: 1, applicationName: 'fpa-connection-test' });
      try {
        const pid = async () => (await db.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid', []))[0]!.pid;
        const killWhenActive = async (target: number) => {
          await waitFor(async () => (await admin.query("SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = $1::integer AND state = 'active'", [target])).length > 0, 'the statement to run');
          await admin.query('SELECT pg_catalog.pg_terminate_backend($1::integer)', [target]);
        };
        // One statement.
        const first = await pid();
        // The rejection is caught at once: it may come before the terminate call returns.
        const sleeping = db.query('SELECT pg_catalog.pg_sleep(30)', []).then(() => undefined, (error: unknown) => error);
        await killWhenActive(first);
        assert.ok(lost(await sleeping));
        const second = await pid();
        assert.notEqual(second, first);
        // A transaction: its statement fails as connection_lost, nothing of it is kept.
        await db.exec('CREATE TABLE public.fpa_conn_probe (n integer)');
        const inTx = db.transaction(async (tx) => {
          await tx.query('INSERT INTO public.fpa_conn_probe (n) VALUES ($1::integer)', [1]);
          await tx.query('SELECT pg_catalog.pg_sleep(30)', []);
        }).then(() => undefined, (error: unknown) => error);
        await killWhenActive(second);
        assert.ok(lost(await inTx));
        assert.notEqual(await pid(), second);
        assert.deepEqual(await db.query('SELECT count(*)::integer AS n FROM public.fpa_conn_probe', []), [{ n: 0 }]);
        // A transaction whose connection was killed while idle in the transaction: COMMIT (or the
        // next statement) is what finds out.
        const third = await pid();
        const idleTx = db.transaction(async (tx) => {
          await tx.query('INSERT INTO public.fpa_conn_probe (n) VALUES ($1::integer)', [2]);
          await waitFor(async () => (await admin.query("SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = $1::integer AND state = 'idle in transaction'", [third])).length > 0, 'idle in transaction');
          await admin.query('SELECT pg_catalog.pg_terminate_backend($1::integer)', [third]);
          await waitFor(async () => (await admin.query('SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = $1::integer', [third])).length === 0, 'the backend to end');
        }).then(() => undefined, (error: unknown) => error);
        assert.ok(lost(await idleTx));
        assert.deepEqual(await db.query('SELECT count(*)::integer AS n FROM public.fpa_conn_probe', []), [{ n: 0 }]);
        // A caller's own pg.Pool gets the same care.
        const pool = new pg.Pool({ connectionString: url!, max: 2, application_name: 'fpa-connection-test' });
        const theirs = await openDatabase(pool);
        try {
          await Promise.all([theirs.query('SELECT pg_catalog.pg_sleep(0.05)', []), theirs.query('SELECT pg_catalog.pg_sleep(0.05)', [])]);
          const pids = (await poolPids(admin)).filter((p) => p !== (third as number));
          await admin.query('SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.unnest($1::integer[]) AS pid', [pids]);
          await waitFor(async () => (await poolPids(admin)).every((p) => !pids.includes(p)), 'the backends to end');
          // The first call may draw a client whose socket closed before the pool noticed: connection_lost.
          const first = await theirs.query<{ one: number }>('SELECT 1 AS one', []).catch((error: unknown) => (lost(error), undefined));
          if (first) assert.deepEqual(first, [{ one: 1 }]);
          assert.deepEqual(await theirs.query<{ one: number }>('SELECT 1 AS one', []), [{ one: 1 }]);
        } finally {
          await pool.end();
        }
      } finally {
        await db.close();
      }
    }));

  test('16 workers consume through one pool while a backend is terminated every 15 ms: the process stays up, every failure is connection_lost, each call counted once', { timeout: 300_000 }, () =>
    withDatabase('postgres', async ({ url, db: admin }) => {
      const user = await createUser(admin);
      await setPlan(admin, user, 'enterprise');
      const workers = 16;
      const perWorker = 150;
      // Kills for at most 20 s: on a slow machine the calls left then finish undisturbed.
      const run = await runScript('test/fixtures/connection-loss-load.ts', [url!, user, String(workers), String(perWorker), '15', '20000']);
      assert.equal(run.code, 0, `the load process died:\n${run.all.slice(-3000)}`);
      const report = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as LoadReport;
      const said = JSON.stringify(report);
      assert.equal(report.calls, workers * perWorker);
      assert.deepEqual(report.other, [], `every failure is typed and retryable: ${said}`);
      assert.equal(report.givenUp, 0, said);
      assert.equal(report.answered, report.calls, `every call answered in the end: ${said}`);
      assert.ok(report.kills > 0, `the kill loop terminated backends: ${said}`);
      assert.ok(report.retried > 0, `kills hit calls in flight: ${said}`);
      assert.deepEqual(Object.keys(report.failures), ['connection_lost'], said);
      assert.equal(report.afterAllowed, true, 'the pool serves after the kills');
      // Each key counted once, retries or not: the counter equals the logged calls, one row per key.
      const [logged] = await admin.query<{ rows: number; keys: number; items: number }>(
        `SELECT count(*)::integer AS rows, count(DISTINCT idempotency_key)::integer AS keys, COALESCE(sum(items), 0)::integer AS items
           FROM public.plugin_usage WHERE user_id = $1::uuid AND action = $2::text`,
        [user, 'resize'],
      );
      const [counted] = await admin.query<{ n: number }>(
        'SELECT COALESCE(sum(count), 0)::integer AS n FROM public.daily_usage_summary WHERE user_id = $1::uuid AND action = $2::text',
        [user, 'resize'],
      );
      assert.equal(logged!.rows, report.calls + 1, 'one plugin_usage row per key (and the one after the kills)');
      assert.equal(logged!.keys, report.calls + 1);
      assert.equal(counted!.n, logged!.items, 'the counter equals the logged calls');
      process.stdout.write(`# ${report.calls} calls in ${report.callsMs} ms (${report.killedThroughout ? 'kills throughout' : 'kills for the first 20 s'}), ${report.kills} backends terminated, ${report.retried} calls retried, ${report.replayedRetries} retries answered as replays\n`);
    }));
});
