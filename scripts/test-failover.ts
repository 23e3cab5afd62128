// npm run test:failover: failover with nothing lost, on pg_auto_failover.
//
// Starts a monitor, a primary and a synchronous standby (three local PostgreSQL 15 instances on
// 127.0.0.1, their own ports, under a temporary directory), sets the schema up through the
// primary, and runs a steady load through the library opened on a multi-host URL
// (target_session_attrs=read-write): keyed consumes (retried with the same key on a retryable
// error), token verifications and Stripe subscription syncs. Under that load it performs
// (a) a planned failover (`pg_autoctl perform failover`) and then, once the old primary is back
// as a synchronous standby, (b) a crash: the primary's pg_autoctl and postgres killed with
// SIGKILL. It asserts that every call answered "allowed" is in plugin_usage on the new primary,
// every key is counted once, no user is over their limit, counters equal the logged calls, every
// error seen was the typed retryable connection_lost, and each user's subscription is the last
// event's. It prints the outage as the plugin saw it (the longest time without a successful call).
// Every instance it started is stopped, on failure too; the whole run is bounded (6 minutes).
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createPluginAuth, openDatabase, PluginAuthError, type Database } from '../src/index.ts';
import { applySchema } from '../src/schema/setup.ts';
import { PRICES, linkPrices, subscription } from '../test/helpers/stripe.ts';
import { freePort } from './throwaway-postgres.ts';
import {
  check, ensurePackages, killGroup, PG_BIN, postmasterPid, run, runScript, sleep, startService, tempDir, trackDataDir, trackTempDir,
} from './scale/instances.ts';

const LIMIT = 30; // the test plan's resizes per day: users reach it during the run
const USERS = 1000;
const CONSUMERS = 8;
const VERIFIERS = 2;
const WEBHOOK_USERS = 4;

interface Node {
  name: string;
  port: number;
  pgdata: string;
  service?: ReturnType<typeof startService>;
}

runScript('test:failover', 6 * 60_000, async () => {
  ensurePackages(['postgresql-15-auto-failover'], '/usr/bin/pg_autoctl', '/usr/lib/postgresql/15/lib/pgautofailover.so', `${PG_BIN}/pg_ctl`);
  const root = tempDir('fpa-failover-');
  trackTempDir(root);
  const env = {
    HOME: root,
    XDG_CONFIG_HOME: join(root, 'config'),
    XDG_DATA_HOME: join(root, 'share'),
    XDG_RUNTIME_DIR: join(root, 'run'),
    PGHOST: '127.0.0.1',
  };
  const monitor: Node = { name: 'monitor', port: await freePort(), pgdata: join(root, 'monitor') };
  const nodes: Node[] = [
    { name: 'node_a', port: await freePort(), pgdata: join(root, 'node_a') },
    { name: 'node_b', port: await freePort(), pgdata: join(root, 'node_b') },
  ];
  for (const n of [monitor, ...nodes]) trackDataDir(n.pgdata);
  const monitorUri = `postgres://autoctl_node@127.0.0.1:${monitor.port}/pg_auto_failover?sslmode=disable`;
  const autoctl = (args: string[], timeoutMs?: number) => run('pg_autoctl', args, env, timeoutMs);
  // Small instances (the machine is shared), written while the instance is stopped (pg_autoctl
  // create stops it when done); the standby's copy (pg_basebackup) carries the primary's.
  const smallSettings = async (pgdata: string) => {
    await run('sh', ['-c', `printf "shared_buffers = '32MB'\\nmax_connections = 50\\n" >> ${pgdata}/postgresql.auto.conf`], env);
  };

  const t0 = Date.now();
  await autoctl(['create', 'monitor', '--pgdata', monitor.pgdata, '--pgport', String(monitor.port), '--hostname', '127.0.0.1', '--auth', 'trust', '--no-ssl']);
  await autoctl(['config', 'set', '--pgdata', monitor.pgdata, 'postgresql.listen_addresses', '127.0.0.1']);
  await smallSettings(monitor.pgdata);
  monitor.service = startService('pg_autoctl', ['run', '--pgdata', monitor.pgdata], env);
  await waitFor('the monitor', 60_000, async () => {
    await run('pg_isready', ['-h', '127.0.0.1', '-p', String(monitor.port)], env, 5_000);
    return true;
  });

  const createNode = async (n: Node) => {
    await autoctl([
      'create', 'postgres', '--pgdata', n.pgdata, '--pgport', String(n.port), '--hostname', '127.0.0.1', '--listen', '127.0.0.1',
      '--name', n.name, '--auth', 'trust', '--no-ssl', '--monitor', monitorUri, '--dbname', 'app', '--username', 'postgres',
    ], 180_000);
    await smallSettings(n.pgdata);
    n.service = startService('pg_autoctl', ['run', '--pgdata', n.pgdata], env);
  };
  await createNode(nodes[0]!);
  await waitForStates(monitorUri, { node_a: ['single', 'wait_primary', 'primary'] }, 90_000);
  await createNode(nodes[1]!);
  await waitForStates(monitorUri, { node_a: ['primary'], node_b: ['secondary'] }, 150_000);
  console.log(`pg_auto_failover formation up in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${await formation(monitorUri)}`);
  const timings = await monitorQuery<{ name: string; setting: string; unit: string | null }>(
    monitorUri,
    `SELECT name, setting, unit FROM pg_settings WHERE name IN ('pgautofailover.health_check_period', 'pgautofailover.node_considered_unhealthy_timeout',
       'pgautofailover.primary_demote_timeout', 'pgautofailover.health_check_max_retries', 'pgautofailover.health_check_retry_delay') ORDER BY name`,
  );
  console.log(`monitor settings (defaults): ${timings.map((t) => `${t.name.replace('pgautofailover.', '')}=${t.setting}${t.unit ?? ''}`).join(', ')}`);

  const url = `postgres://postgres@${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}/app?target_session_attrs=read-write`;
  const setupDb = await openDatabase(url, { max: 1 });
  await applySchema(setupDb);
  await linkPrices(setupDb);
  await setupDb.query(
    `INSERT INTO public.subscription_plans (plan_slug, name, description, price_monthly, limits, features)
     VALUES ('failover_test', 'Failover test', 'a daily limit the load reaches', 0,
             jsonb_build_object('resizesPerDay', $1::int, 'batchSize', 5, 'isDaily', true), ARRAY[]::text[])`,
    [LIMIT],
  );
  const users = (
    await setupDb.query<{ id: string }>(
      `INSERT INTO public.users (email, name) SELECT 'fo' || g || '@example.com', 'fo' || g FROM generate_series(1, $1::int) g RETURNING id`,
      [USERS + WEBHOOK_USERS],
    )
  ).map((r) => r.id);
  const consumeUsers = users.slice(0, USERS);
  const webhookUsers = users.slice(USERS);
  await setupDb.query(
    `INSERT INTO public.user_subscriptions (user_id, plan_id, status)
     SELECT u, p.id, 'active' FROM unnest($1::uuid[]) u, public.subscription_plans p WHERE p.plan_slug = 'failover_test'`,
    [consumeUsers],
  );
  await setupDb.close();

  const db = await openDatabase(url, { max: 12 });
  const auth = createPluginAuth(db, { tokenSecret: randomUUID() + randomUUID() });
  const tokens = await Promise.all(consumeUsers.slice(0, 8).map((u) => auth.tokens.issue(u)));

  // ---- the load ----
  const successes: number[] = [];
  const errors = new Map<string, number>();
  const answered = new Map<string, { userId: string; allowed: boolean; at: number }>();
  const webhookLast = new Map<string, { slug: string; subscriptionId: string }>();
  let stopped = false;
  let nextUser = 0;
  let replayed = 0;

  /** One call until answered: retried (same arguments, same key) on a retryable error only. */
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    const deadline = Date.now() + 150_000;
    for (;;) {
      try {
        const result = await fn();
        successes.push(Date.now());
        return result;
      } catch (error) {
        const code = error instanceof PluginAuthError ? error.code : `untyped: ${String((error as Error)?.message ?? error)}`;
        errors.set(code, (errors.get(code) ?? 0) + 1);
        if (!(error instanceof PluginAuthError && error.retryable) || Date.now() > deadline) throw error;
        await sleep(25);
      }
    }
  };
  const consumer = async () => {
    let user = consumeUsers[nextUser++ % USERS]!;
    while (!stopped) {
      const key = randomUUID();
      const answer = await call(() => auth.usage.consume(user, 'resize', { idempotencyKey: key }));
      answered.set(key, { userId: user, allowed: answer.allowed, at: Date.now() });
      // A retry whose first attempt had committed before its connection was lost: the stored answer.
      if (answer.replayed) replayed++;
      if (!answer.allowed) user = consumeUsers[nextUser++ % USERS]!;
    }
  };
  const verifier = async (i: number) => {
    while (!stopped) {
      const token = tokens[i % tokens.length]!;
      const verified = await call(() => auth.tokens.verify(token.token));
      check(verified.tokenId === token.tokenId, 'verify answers the token it was given');
      await sleep(5);
    }
  };
  const webhooks = async () => {
    let n = 0;
    while (!stopped) {
      for (const userId of webhookUsers) {
        n++;
        const slug = n % 2 ? 'pro' : 'basic';
        const sub = subscription({ id: `sub_fo_${userId.slice(0, 8)}_${n}`, customer: `cus_fo_${userId.slice(0, 8)}`, userId, priceId: PRICES[slug] });
        // Event times increase: each user's last answered event is the one in force.
        await call(() => auth.subscriptions.syncFromStripe(sub as Parameters<typeof auth.subscriptions.syncFromStripe>[0], { eventCreated: 1_790_000_000 + n }));
        webhookLast.set(userId, { slug, subscriptionId: sub.id });
      }
      await sleep(20);
    }
  };
  const workers = [
    ...Array.from({ length: CONSUMERS }, consumer),
    ...Array.from({ length: VERIFIERS }, (_, i) => verifier(i)),
    webhooks(),
  ];
  const load = Promise.all(workers);
  load.catch(() => {
    stopped = true;
  });

  const phase = async (name: string, act: () => Promise<void>, settle: Record<string, string[]>) => {
    await sleep(3_000);
    const before = successes.length;
    const start = Date.now();
    const allowedBefore = [...answered].filter(([, a]) => a.allowed).map(([k]) => k);
    await Promise.race([act(), load]);
    await Promise.race([waitForStates(monitorUri, settle, 150_000), load]);
    await sleep(3_000);
    const window = successes.slice(Math.max(0, before - 1)).filter((t) => t >= start - 1_000);
    let gap = 0;
    for (let i = 1; i < window.length; i++) gap = Math.max(gap, window[i]! - window[i - 1]!);
    console.log(
      `${name}: outage seen by the plugin (longest time without a successful call) ${(gap / 1000).toFixed(2)} s; ` +
        `${successes.length - before} successful calls in the phase; monitor: ${await formation(monitorUri)}`,
    );
    await assertNothingLost(db, allowedBefore, `${name}: before`);
    return gap;
  };

  const primaryNode = async () => {
    // Only before a crash: a killed node keeps its last reported state.
    const rows = await monitorQuery<{ nodename: string }>(monitorUri, `SELECT nodename FROM pgautofailover.node WHERE reportedstate = 'primary' AND goalstate = 'primary'`);
    const n = nodes.find((x) => x.name === rows[0]?.nodename);
    check(n, 'the monitor names a primary');
    return n;
  };
  /** The port of the server the library's calls now run on. */
  const servingPort = async () => (await db.query<{ port: number }>('SELECT inet_server_port() AS port'))[0]!.port;
  const syncNames = async () => (await db.query<{ s: string }>('SELECT current_setting($1::text) AS s', ['synchronous_standby_names']))[0]!.s;

  // (a) planned failover
  const a = await primaryNode();
  const syncA = await syncNames();
  check(syncA !== '', 'replication is synchronous before the planned failover');
  console.log(`synchronous_standby_names on the primary: ${syncA}`);
  const b = nodes.find((n) => n !== a)!;
  const planned = await phase('planned failover (pg_autoctl perform failover)', async () => {
    await autoctl(['perform', 'failover', '--pgdata', a.pgdata, '--wait', '90'], 120_000).catch((error) => {
      // perform failover waits for the new primary; its exit code is not the test's verdict, the states are.
      console.log(`pg_autoctl perform failover: ${String(error.message).split('\n')[0]}`);
    });
  }, { [b.name]: ['primary'], [a.name]: ['secondary'] });
  check((await servingPort()) === b.port, 'the library reaches the new primary (the former standby)');

  // (b) crash of the new primary
  const syncB = await syncNames();
  check(syncB !== '', 'replication is synchronous before the crash');
  const crashed = b;
  const crash = await phase('crash (SIGKILL of the primary\'s pg_autoctl and postgres)', async () => {
    const pid = postmasterPid(crashed.pgdata);
    killGroup(crashed.service!.child);
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }, { [a.name]: ['wait_primary', 'primary'] });
  check((await servingPort()) === a.port, 'the library reaches the new primary (the surviving standby)');
  // With its standby gone the new primary runs alone (wait_primary): synchronous replication is off
  // until a standby is back, pg_auto_failover's availability fallback.
  console.log(`after the crash: synchronous_standby_names on the new primary: '${await syncNames()}'`);

  stopped = true;
  await load;

  // ---- what the new primary holds ----
  await assertNothingLost(db, [...answered].filter(([, x]) => x.allowed).map(([k]) => k), 'whole run');
  const rows = await db.query<{ key: string; n: number; allowed: boolean }>(
    'SELECT idempotency_key AS key, count(*)::int AS n, bool_and(allowed) AS allowed FROM public.plugin_usage WHERE user_id = ANY($1::uuid[]) GROUP BY 1',
    [consumeUsers],
  );
  for (const row of rows) check(row.n === 1, `key ${row.key} counted once (${row.n})`);
  const byKey = new Map(rows.map((r) => [r.key, r]));
  for (const [key, a] of answered) {
    const row = byKey.get(key);
    check(row && row.allowed === a.allowed, `key ${key}: the log holds the answer the plugin got (${a.allowed})`);
  }
  const counters = await db.query<{ user_id: string; counted: number; logged: number }>(
    `SELECT u AS user_id,
            COALESCE((SELECT sum(count) FROM public.daily_usage_summary d WHERE d.user_id = u), 0)::int AS counted,
            (SELECT count(*) FROM public.plugin_usage p WHERE p.user_id = u AND p.allowed AND p.refunded_at IS NULL)::int AS logged
       FROM unnest($1::uuid[]) u`,
    [consumeUsers],
  );
  for (const c of counters) {
    check(c.counted <= LIMIT, `user ${c.user_id} at most ${LIMIT} (${c.counted})`);
    check(c.counted === c.logged, `user ${c.user_id}: counter ${c.counted} = logged allowed calls ${c.logged}`);
  }
  for (const [userId, last] of webhookLast) {
    const plan = await auth.subscriptions.effectivePlan(userId);
    check(plan.planSlug === last.slug && plan.subscription?.stripeSubscriptionId === last.subscriptionId, `user ${userId}: the last webhook's plan is in force`);
  }
  const unexpected = [...errors.keys()].filter((code) => code !== 'connection_lost');
  check(unexpected.length === 0, `only connection_lost errors were seen (also: ${unexpected.join(', ')})`);
  const allowed = [...answered.values()].filter((x) => x.allowed).length;
  console.log(
    `answers: ${answered.size} keyed consumes (${allowed} allowed; ${replayed} answered by a replay: the lost attempt had committed), ${successes.length} successful calls in all; ` +
      `errors: ${JSON.stringify(Object.fromEntries(errors))}; users at their limit: ${counters.filter((c) => c.counted === LIMIT).length}`,
  );
  console.log(`OUTAGE planned=${(planned / 1000).toFixed(2)}s crash=${(crash / 1000).toFixed(2)}s`);
  await db.close();
});

async function assertNothingLost(db: Database, allowedKeys: string[], label: string): Promise<void> {
  const rows = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM public.plugin_usage WHERE idempotency_key = ANY($1::text[]) AND allowed',
    [allowedKeys],
  );
  check(rows[0]!.n === allowedKeys.length, `${label}: every call answered allowed is in plugin_usage (${rows[0]!.n} of ${allowedKeys.length})`);
}

async function monitorQuery<R>(uri: string, sql: string): Promise<R[]> {
  const db = await openDatabase(uri, { max: 1, preparedStatements: false });
  try {
    return await db.query<R>(sql);
  } finally {
    await db.close();
  }
}

async function formation(uri: string): Promise<string> {
  const rows = await monitorQuery<{ nodename: string; reportedstate: string }>(uri, 'SELECT nodename, reportedstate FROM pgautofailover.node ORDER BY nodeid');
  return rows.map((r) => `${r.nodename}=${r.reportedstate}`).join(' ');
}

async function waitForStates(uri: string, want: Record<string, string[]>, timeoutMs: number): Promise<void> {
  await waitFor(`states ${JSON.stringify(want)}`, timeoutMs, async () => {
    const rows = await monitorQuery<{ nodename: string; reportedstate: string; goalstate: string }>(
      uri,
      'SELECT nodename, reportedstate, goalstate FROM pgautofailover.node',
    );
    return Object.entries(want).every(([name, states]) =>
      rows.some((r) => r.nodename === name && states.includes(r.reportedstate) && r.reportedstate === r.goalstate),
    );
  });
}

async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      if (await probe()) return;
    } catch (error) {
      last = error;
    }
    await sleep(500);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String((last as Error).message ?? last)}` : ''}`);
}
