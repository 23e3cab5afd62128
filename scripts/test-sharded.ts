// npm run test:sharded: sharding by user with PL/Proxy, tested and measured.
//
// One throwaway PostgreSQL 15 instance (127.0.0.1, its own port, a temporary directory) holds
// four partition databases (part0..part3) and a fifth (single), each set up by the library, and
// two proxy databases (sql/plproxy/proxy.sql): proxy4 routes to the four partitions, proxy1 to
// `single`. The library is opened on proxy4 exactly as on one database and:
// - users are created through the directory and each user's rows live on exactly one partition,
//   the one hashtext(user_id::text) & 3 names (checked on every partition, for every table);
// - the usage concurrency scenarios of test/usage.test.ts run through the proxy with the same
//   assertions, reading the totals from the owning partition with the same helper;
// - tokens verify and revoke through the directory; Stripe webhooks find their user through it;
//   the 30-day report sums every partition's; typed errors cross the proxy with their codes;
//   seats across partitions and login requests are refused with not_partitioned;
// - consume throughput through proxy1 and proxy4 (and directly on one database) is measured on
//   this machine and printed, with the ratio.
// Bounded (6 minutes); the instance is stopped on every path.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPluginAuth, openDatabase, PluginAuthError, type Database } from '../src/index.ts';
import { withTypedErrors } from '../src/core/db.ts';
import { applySchema } from '../src/schema/setup.ts';
import { totals, counter } from '../test/helpers/usage.ts';
import { PRICES, linkPrices, subscription } from '../test/helpers/stripe.ts';
import { freePort } from './throwaway-postgres.ts';
import { ensurePackages, run, runScript, sleep, startService, tempDir, trackDataDir, trackTempDir } from './scale/instances.ts';

const PARTITIONS = ['part0', 'part1', 'part2', 'part3'];
const SQL = (name: string) => readFileSync(new URL(`../sql/plproxy/${name}`, import.meta.url), 'utf8');
const BENCH_SECONDS = Number(process.env.SHARDED_BENCH_SECONDS ?? 6);
const BENCH_WORKERS = 6;

runScript('test:sharded', 6 * 60_000, async () => {
  ensurePackages(['postgresql-15-plproxy'], '/usr/lib/postgresql/15/lib/plproxy.so', '/usr/share/postgresql/15/extension/plproxy.control', '/usr/lib/postgresql/15/bin/initdb');
  const root = tempDir('fpa-sharded-');
  trackTempDir(root);
  const data = join(root, 'data');
  const port = await freePort();
  await run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], {}, 120_000);
  trackDataDir(data);
  const server = startService('postgres', [
    '-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${root}`,
    // 100 connections, not 50: each proxy backend keeps one connection to every partition it has
    // called (PL/Proxy's cache), so 16 proxy connections can hold 64 to the partitions.
    '-c', 'shared_buffers=32MB', '-c', 'max_connections=100', '-c', 'fsync=off',
  ]);
  const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  const admin = await waitForServer(url('postgres'), server.log);
  const t0 = Date.now();
  for (const db of [...PARTITIONS, 'single', 'proxy4', 'proxy1']) await admin.query(`CREATE DATABASE ${db}`);
  await admin.close();

  const parts: Database[] = [];
  for (const name of [...PARTITIONS, 'single']) {
    const db = await openDatabase(url(name), { max: 2 });
    await applySchema(db);
    await db.exec(SQL('partition.sql'));
    await linkPrices(db);
    parts.push(db);
  }
  const single = parts.pop()!;
  const connstr = (db: string) => `host=127.0.0.1 port=${port} dbname=${db} user=postgres`;
  for (const [proxy, targets] of [['proxy4', PARTITIONS], ['proxy1', ['single']]] as const) {
    const db = await openDatabase(url(proxy), { max: 1 });
    await db.exec(SQL('proxy.sql'));
    const rows = await db.query<{ n: number }>('SELECT directory.configure_partitions($1::text, $2::text[]) AS n', ['fpa_partitions', targets.map(connstr)]);
    assert.equal(rows[0]!.n, targets.length);
    await db.close();
  }
  console.log(`instance, 5 set-up databases and 2 proxies in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const proxyDb = await openDatabase(url('proxy4'), { max: 16 });
  const typed = withTypedErrors(proxyDb);
  const tokenSecret = randomUUID() + randomUUID();
  const auth = createPluginAuth(proxyDb, { tokenSecret });
  const createUser = async (db: Pick<Database, 'query'>, email = `${randomUUID()}@example.com`) =>
    (await db.query<{ id: string }>('SELECT directory.create_user($1::varchar, $2::varchar) AS id', [email, 'Sharded']))[0]!.id;
  const expected = async (userId: string) =>
    (await proxyDb.query<{ p: number }>('SELECT directory.user_hash($1::uuid) & 3 AS p', [userId]))[0]!.p;
  const partitionOf = async (userId: string) => parts[await expected(userId)]!;
  const code = (c: string) => (error: unknown) => error instanceof PluginAuthError && error.code === c;
  let passed = 0;
  const step = async (name: string, fn: () => Promise<void>) => {
    const start = Date.now();
    await fn();
    passed++;
    console.log(`ok - ${name} (${Date.now() - start} ms)`);
  };

  await step('every function the proxy defines in public has the exact signature (arguments, defaults, result) of the partition\'s', async () => {
    const sql = `SELECT p.proname AS name, pg_catalog.pg_get_function_arguments(p.oid) AS args, pg_catalog.pg_get_function_result(p.oid) AS result
                   FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY($1::text[]) ORDER BY 1, 2`;
    const names = (await proxyDb.query<{ name: string }>(
      "SELECT p.proname AS name FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.proname NOT LIKE 'plproxy%'",
    )).map((r) => r.name);
    assert.ok(names.length >= 15, `the proxy defines the routed and refused functions (${names.length})`);
    assert.deepEqual(await proxyDb.query(sql, [names]), await parts[0]!.query(sql, [names]));
  });

  // ---- routing ----
  const users: string[] = [];
  await step('64 users created through the directory, each on the partition its hash names, and only there', async () => {
    for (let i = 0; i < 64; i++) users.push(await createUser(proxyDb));
    const perPartition = [0, 0, 0, 0];
    for (const id of users) {
      const where = await Promise.all(parts.map(async (p) => (await p.query<{ n: number }>('SELECT count(*)::int AS n FROM public.users WHERE id = $1::uuid', [id]))[0]!.n));
      const e = await expected(id);
      assert.deepEqual(where, PARTITIONS.map((_, i) => (i === e ? 1 : 0)), `user ${id}: on partition ${e} only`);
      perPartition[e]!++;
    }
    assert.ok(perPartition.every((n) => n > 0), `every partition holds users (${perPartition.join(', ')})`);
    await assert.rejects(createUser(typed, (await proxyDb.query<{ email: string }>('SELECT email FROM directory.users LIMIT 1'))[0]!.email.toUpperCase()),
      code('unique_violation'), 'an email is unique across partitions (the directory)');
  });

  // ---- the usage concurrency scenarios of test/usage.test.ts, through the proxy ----
  await step('the same idempotency key fired from 16 connections counts once, every answer the same', async () => {
    const user = await createUser(proxyDb);
    await auth.subscriptions.assignPlan(user, 'basic');
    const answers = await Promise.all(Array.from({ length: 16 }, () => auth.usage.consume(user, 'resize', { idempotencyKey: 'same-op', items: 3 })));
    assert.equal(answers.filter((a) => !a.replayed).length, 1);
    const { replayed: _r, ...first } = answers.find((a) => !a.replayed)!;
    for (const a of answers) assert.deepEqual({ ...a, replayed: false }, { ...first, replayed: false });
    assert.deepEqual(await totals(await partitionOf(user), user), { usageRows: 1, allowedRows: 1, deniedRows: 0, summaryRows: 1, counted: 1 });
  });
  await step('16 keys, 4 requests each, at once on basic: 4 operations allowed, each key answered consistently', async () => {
    const user = await createUser(proxyDb);
    await auth.subscriptions.assignPlan(user, 'basic');
    const keys = Array.from({ length: 16 }, (_, i) => `k${i}`);
    const answers = await Promise.all(keys.flatMap((key) =>
      Array.from({ length: 4 }, () => auth.usage.consume(user, 'resize', { idempotencyKey: key }).then((a) => ({ key, a })))));
    const byKey = new Map<string, boolean[]>();
    for (const { key, a } of answers) byKey.set(key, [...(byKey.get(key) ?? []), a.allowed]);
    for (const verdicts of byKey.values()) assert.equal(new Set(verdicts).size, 1);
    assert.equal([...byKey.values()].filter((v) => v[0]).length, 4);
    assert.deepEqual(await totals(await partitionOf(user), user), { usageRows: 16, allowedRows: 4, deniedRows: 12, summaryRows: 1, counted: 4 });
  });
  await step('16 concurrent refunds of one key give back once', async () => {
    const user = await createUser(proxyDb);
    await auth.subscriptions.assignPlan(user, 'pro');
    await auth.usage.consume(user, 'resize', { idempotencyKey: 'r' });
    await auth.usage.consume(user, 'resize');
    const results = await Promise.all(Array.from({ length: 16 }, () => auth.usage.refund(user, 'r')));
    assert.equal(results.filter((r) => r.refunded).length, 1);
    assert.equal(await counter(await partitionOf(user), user), 1);
  });
  await step('consumes and refunds interleaved on the free plan never allow more than limit + refunds', async () => {
    const user = await createUser(proxyDb);
    const first = await Promise.all(Array.from({ length: 8 }, (_, i) => auth.usage.consume(user, 'resize', { idempotencyKey: `a${i}` })));
    const given = first.map((a, i) => (a.allowed ? `a${i}` : null)).filter((k): k is string => k !== null);
    assert.equal(given.length, 2);
    const mixed = await Promise.all([
      ...given.map((key) => auth.usage.refund(user, key)),
      ...Array.from({ length: 64 }, () => auth.usage.consume(user, 'resize')),
    ]);
    const allowedAfter = mixed.filter((r) => 'allowed' in r && r.allowed).length;
    assert.ok(allowedAfter <= 2, `at most the 2 refunded operations are used again (got ${allowedAfter})`);
    const t = await totals(await partitionOf(user), user);
    assert.equal(t.counted, allowedAfter);
  });
  await step('32 users x 10 keyed calls at once across the 4 partitions: each user exactly at its limit, counters = logged calls', async () => {
    const some = users.slice(0, 32);
    for (const u of some) await auth.subscriptions.assignPlan(u, 'pro');
    const answers = await Promise.all(some.flatMap((u) => Array.from({ length: 10 }, (_, i) => auth.usage.consume(u, 'resize', { idempotencyKey: `m${i}` }).then((a) => ({ u, a })))));
    for (const u of some) {
      assert.equal(answers.filter((x) => x.u === u && x.a.allowed).length, 6, `user ${u}: pro allows 6`);
      const t = await totals(await partitionOf(u), u);
      assert.deepEqual({ counted: t.counted, allowed: t.allowedRows, rows: t.usageRows }, { counted: 6, allowed: 6, rows: 10 });
    }
    const check = await auth.usage.check(some[0]!, 'resize');
    assert.equal(check.allowed, false);
    assert.equal(check.used, 6);
  });

  // ---- tokens, webhooks, report, typed errors, refusals ----
  await step('tokens: issued, verified and revoked by token id through the directory; unknown and revoked tokens refused', async () => {
    const issued = await Promise.all(users.slice(0, 8).map((u) => auth.tokens.issue(u, { deviceName: 'sharded' })));
    for (const [i, t] of issued.entries()) {
      const v = await auth.tokens.verify(t.token);
      assert.equal(v.userId, users[i]);
      const where = await Promise.all(parts.map(async (p) => (await p.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_tokens WHERE id = $1::uuid', [t.tokenId]))[0]!.n));
      assert.equal(where.reduce((a, b) => a + b, 0), 1, 'the token is on one partition');
      assert.equal(where.indexOf(1), await expected(users[i]!), 'the token is on its user\'s partition');
    }
    // A token on a partition with no directory row (its transaction failed after the partition's):
    // routed to partition 0, where it is unknown, so token_invalid.
    let stray: string | undefined;
    for (const u of users.slice(8)) {
      if ((await expected(u)) !== 0) {
        stray = u;
        break;
      }
    }
    const direct = createPluginAuth(await partitionOf(stray!), { tokenSecret });
    const orphan = await direct.tokens.issue(stray!);
    assert.equal((await direct.tokens.verify(orphan.token)).userId, stray, 'valid on its partition');
    await assert.rejects(auth.tokens.verify(orphan.token), code('token_invalid'));
    assert.equal(await auth.tokens.revoke(issued[0]!.tokenId, 'test'), true);
    await assert.rejects(auth.tokens.verify(issued[0]!.token), code('token_revoked'));
    const list = await auth.tokens.list(users[1]!);
    assert.equal(list.length, 1);
  });
  await step('Stripe webhooks: the user from metadata, then by customer through the directory; an unknown customer is unknown_customer', async () => {
    const user = users[40]!;
    const created = 1_790_000_000;
    const sub = (priceId: string, meta: boolean) => subscription({ id: 'sub_sharded_1', customer: 'cus_sharded_1', userId: meta ? user : undefined, priceId });
    const asArg = (s: Record<string, unknown>) => s as unknown as Parameters<typeof auth.subscriptions.syncFromStripe>[0];
    const first = await auth.subscriptions.syncFromStripe(asArg(sub(PRICES.basic, true)), { eventCreated: created });
    assert.deepEqual(first, { applied: true, userId: user, planSlug: 'basic', status: 'active' });
    const second = await auth.subscriptions.syncFromStripe(asArg(sub(PRICES.pro, false)), { eventCreated: created + 10 });
    assert.deepEqual(second, { applied: true, userId: user, planSlug: 'pro', status: 'active' });
    const stale = await auth.subscriptions.syncFromStripe(asArg(sub(PRICES.basic, false)), { eventCreated: created + 5 });
    assert.equal(stale.applied, false);
    const owner = await partitionOf(user);
    const rows = await owner.query<{ slug: string }>('SELECT p.plan_slug AS slug FROM public.user_subscriptions s JOIN public.subscription_plans p ON p.id = s.plan_id WHERE s.user_id = $1::uuid', [user]);
    assert.deepEqual(rows, [{ slug: 'pro' }]);
    await assert.rejects(
      auth.subscriptions.syncFromStripe(asArg(subscription({ id: 'sub_nobody', customer: 'cus_nobody' })), { eventCreated: created }),
      code('unknown_customer'),
    );
    await assert.rejects(auth.subscriptions.syncFromStripe(asArg({ ...sub(PRICES.pro, true), customer: 42 }), { eventCreated: created }), code('invalid_subscription'));
  });
  await step('typed errors cross the proxy with their codes', async () => {
    await assert.rejects(auth.usage.consume('00000000-0000-4000-8000-000000000000', 'resize'), code('unknown_user'));
    await assert.rejects(typed.query('SELECT * FROM public.consume_usage($1::uuid, $2::varchar, $3::integer, $4::text, $5::jsonb)', [users[2], '', 1, null, null]), code('invalid_action'));
    await assert.rejects(typed.query('SELECT * FROM public.check_usage($1::uuid, $2::varchar, $3::integer)', [users[2], 'resize', 0]), code('invalid_items'));
  });
  await step('the 30-day report through the proxy is the sum of the partitions\' reports', async () => {
    const report = await typed.query<{ usage_date: string; action: string; allowed: number; denied: number }>('SELECT * FROM public.usage_report($1::integer)', [30]);
    const sums = new Map<string, [number, number]>();
    for (const p of parts) {
      for (const r of await p.query<{ usage_date: string; action: string; allowed: number; denied: number }>('SELECT * FROM public.usage_report($1::integer)', [30])) {
        const k = `${r.usage_date}/${r.action}`;
        const [a, d] = sums.get(k) ?? [0, 0];
        sums.set(k, [a + Number(r.allowed), d + Number(r.denied)]);
      }
    }
    assert.ok(report.length > 0);
    assert.deepEqual(new Map(report.map((r) => [`${r.usage_date}/${r.action}`, [Number(r.allowed), Number(r.denied)]])), sums);
  });
  await step('seats across partitions and login requests are refused with not_partitioned; seats on one partition are routed', async () => {
    const byPartition = new Map<number, string[]>();
    for (const u of users) byPartition.set(await expected(u), [...(byPartition.get(await expected(u)) ?? []), u]);
    const [a, b] = [byPartition.get(0)![0]!, byPartition.get(1)![0]!];
    await assert.rejects(typed.query('SELECT * FROM public.seat_assign($1::uuid, $2::uuid)', [a, b]), code('not_partitioned'));
    const [owner, member] = byPartition.get(2)!.length >= 2 ? byPartition.get(2)! : byPartition.get(3)!;
    // Same partition: routed; the owner has no seat license, so the partition's own answer comes back.
    await assert.rejects(typed.query('SELECT * FROM public.seat_assign($1::uuid, $2::uuid)', [owner, member]), (e: unknown) => e instanceof PluginAuthError && e.code !== 'not_partitioned' && e.code !== 'database_error');
    await assert.rejects(auth.tokens.beginLogin(), code('not_partitioned'));
    await assert.rejects(typed.query('SELECT public.usage_rollup()'), code('not_partitioned'));
  });
  await step('after everything: every user\'s rows, in every table, live on its partition only', async () => {
    const tables = ['users', 'plugin_usage', 'daily_usage_summary', 'user_subscriptions', 'plugin_tokens', 'user_effective_plans'];
    for (const [i, p] of parts.entries()) {
      for (const table of tables) {
        const column = table === 'users' ? 'id' : 'user_id';
        const wrong = await p.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM public.${table} WHERE (pg_catalog.hashtext(${column}::text) & 3) <> $1::int`,
          [i],
        );
        assert.equal(wrong[0]!.n, 0, `${PARTITIONS[i]}.${table}: no row of another partition's user`);
      }
    }
    // The effective plan rows are written on the user's partition (by its triggers and consumes).
    let rows = 0;
    for (const p of parts) rows += (await p.query<{ n: number }>('SELECT count(*)::int AS n FROM public.user_effective_plans'))[0]!.n;
    assert.ok(rows > 0, 'the partitions hold effective plan rows');
  });
  await proxyDb.close();

  // ---- throughput: consume on 1 vs 4 partitions ----
  const rates: Record<string, number[]> = { direct: [], proxy1: [], proxy4: [] };
  const benchUsers: Record<string, string[]> = {};
  for (const target of ['proxy1', 'proxy4', 'direct'] as const) {
    const db = await openDatabase(url(target === 'direct' ? 'single' : target), { max: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 32; i++) {
      if (target === 'direct') {
        ids.push((await db.query<{ id: string }>('INSERT INTO public.users (email) VALUES ($1::varchar) RETURNING id', [`${randomUUID()}@example.com`]))[0]!.id);
      } else ids.push(await createUser(db));
      await createPluginAuth(db).subscriptions.assignPlan(ids.at(-1)!, 'enterprise');
    }
    benchUsers[target] = ids;
    await db.close();
  }
  for (let round = 0; round < 2; round++) {
    for (const target of ['direct', 'proxy1', 'proxy4'] as const) {
      const db = await openDatabase(url(target === 'direct' ? 'single' : target), { max: BENCH_WORKERS });
      const bench = createPluginAuth(db);
      const ids = benchUsers[target]!;
      await Promise.all(ids.slice(0, BENCH_WORKERS).map((u) => bench.usage.consume(u, 'resize'))); // connections open
      let calls = 0;
      const until = Date.now() + BENCH_SECONDS * 1000;
      const start = Date.now();
      await Promise.all(Array.from({ length: BENCH_WORKERS }, async (_, w) => {
        let i = w;
        while (Date.now() < until) {
          const a = await bench.usage.consume(ids[i++ % ids.length]!, 'resize');
          assert.equal(a.allowed, true);
          calls++;
        }
      }));
      rates[target]!.push(calls / ((Date.now() - start) / 1000));
      await db.close();
      await sleep(500);
    }
  }
  const best = (k: string) => Math.max(...rates[k]!);
  console.log(`ok - ${passed} checks`);
  console.log(
    `THROUGHPUT consume/s (${BENCH_WORKERS} connections, ${BENCH_SECONDS} s x 2 rounds, best round): ` +
      `one database direct ${best('direct').toFixed(0)}, proxy to 1 partition ${best('proxy1').toFixed(0)}, proxy to 4 partitions ${best('proxy4').toFixed(0)}; ` +
      `ratio 4/1 = ${(best('proxy4') / best('proxy1')).toFixed(2)}, proxy1/direct = ${(best('proxy1') / best('direct')).toFixed(2)} ` +
      `(rounds: ${JSON.stringify(Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, v.map((x) => Math.round(x))])))})`,
  );
  for (const p of [...parts, single]) await p.close();
});

async function waitForServer(adminUrl: string, log: () => string): Promise<Database> {
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      const db = await openDatabase(adminUrl, { max: 1 });
      await db.query('SELECT 1');
      return db;
    } catch (error) {
      if (Date.now() > until) throw new Error(`the instance did not start: ${String(error)}\n${log()}`);
      await sleep(300);
    }
  }
}
