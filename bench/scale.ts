// npm run bench:scale [-- --json] [-- --seconds N --rounds N --slices N --connections N --users N --shared-buffers 3GB --huge-pages try|on|off --keep-database]:
// growth. Two databases on the same server, seeded alike: an empty reference, and one into which
// 10 million plugin_usage and 1 million daily_usage_summary rows are loaded (generated in SQL, all
// indexes in place). The hot queries are then measured on both in alternating rounds: loaded/empty
// p50 and p99 must stay within 20% and every plan must use indexes. See docs/scale.md.
import { parseArgs } from 'node:util';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { openDatabase, type Database } from '../src/core/db.ts';
import { createPluginAuth } from '../src/auth.ts';
import { applySchema } from '../src/schema/setup.ts';
import { usageReport } from '../src/usage/report.ts';
import * as dashboard from '../src/dashboard/queries.ts';
import * as consoleQueries from '../src/dashboard/console.ts';
import { readSeries } from '../src/dashboard/series.ts';
import { startThrowawayPostgres } from '../scripts/throwaway-postgres.ts';
import { adminQuery, databaseUrl } from './server.ts';
import { measure, percentile, type Op } from './harness.ts';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '1.5' },
    // Paired rounds: each round measures every query on both databases (an even count puts each
    // database first equally often).
    rounds: { type: 'string', default: '12' },
    // Each database's seconds of a round are taken in this many slices, alternating between them.
    slices: { type: 'string', default: '6' },
    connections: { type: 'string', default: '2' },
    users: { type: 'string', default: '100000' },
    'keep-database': { type: 'boolean', default: false },
    // The throwaway server's shared_buffers (ignored with BENCH_DATABASE_URL): e.g. 3GB, to see
    // which tails come from a working set larger than the buffer cache.
    'shared-buffers': { type: 'string', default: '512MB' },
    // The throwaway server's huge_pages (ignored with BENCH_DATABASE_URL). PostgreSQL's default,
    // try, uses them when the machine has reserved enough (vm.nr_hugepages, docs/scale.md): with GB
    // of shared_buffers, they decide the loaded side's tails on some machines.
    'huge-pages': { type: 'string', default: 'try' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const SLICES = Math.max(1, Number(values.slices));
const CONNECTIONS = Number(values.connections);
if (!['try', 'on', 'off'].includes(values['huge-pages']!)) {
  process.stderr.write(`--huge-pages must be try, on or off (got ${JSON.stringify(values['huge-pages'])})\n`);
  process.exit(2);
}
const USERS = Number(values.users); // loaded users: 10 days x 10 calls each
const DAYS_PER_USER = 10;
const CALLS_PER_DAY = 10;
const TOLERANCE = 1.2;
const SECRET = 'bench-only-secret-0123456789abcdef0123456789';
// Tables whose Seq Scan in a hot query would grow with the data (subscription_plans has 4 rows).
// usage_daily_totals is small by design (one row per day and action): a Seq Scan there is fine.
const BIG_TABLES = ['plugin_usage', 'daily_usage_summary', 'plugin_tokens', 'users', 'user_subscriptions'];
const log = (line: string) => (values.json ? process.stderr : process.stdout).write(`${line}\n`);
/** The median (the mean of the two middle values of an even count). */
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? 0 : sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

interface Query {
  name: string;
  op: Op;
}
interface PhaseResult {
  p50Ms: number;
  p99Ms: number;
  opsPerSec: number;
}



async function timed<T>(what: string, fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t0) / 1000;
  log(`  ${what}: ${seconds.toFixed(1)} s`);
  return { value, seconds };
}

/** The users each query works on: pro (allowed), basic used up today (denied), with tokens. */
interface Sets {
  pro: string[];
  full: string[];
  tokens: string[];
  /** Users with the load's per-user history (10 days x 10 calls in the last 90 days). */
  history: string[];
}

/** Calls of the "allowed" query that were denied (a pro user past the plan's 6 a day): should stay 0. */
interface Tally {
  notAllowed: number;
}

function queries(db: Database, sets: Sets, tally: Tally = { notAllowed: 0 }): Query[] {
  const auth = createPluginAuth(db, { tokenSecret: SECRET });
  return [
    {
      name: 'usage.consume allowed',
      op: async (_, i) => {
        const answer = await auth.usage.consume(sets.pro[i % sets.pro.length]!, 'resize');
        if (!answer.allowed) tally.notAllowed++;
        return answer;
      },
    },
    { name: 'usage.consume denied', op: (_, i) => auth.usage.consume(sets.full[i % sets.full.length]!, 'resize') },
    { name: 'tokens.verify', op: (_, i) => auth.tokens.verify(sets.tokens[i % sets.tokens.length]!) },
    { name: 'usage.summary (one user, 30 days)', op: (_, i) => auth.usage.summary(sets.history[i % sets.history.length]!) },
    { name: 'usageReport (all users, 30 days)', op: () => usageReport(db, { days: 30 }) },
  ];
}

/**
 * The dashboard's 30-day page: database time of each of its queries (src/dashboard/queries.ts),
 * median and max of `runs` renders, and the total. Reported, not held to the 20% rule: it reads
 * the rollups of sql/019 and today's activity, so its cost grows with the number of users, the
 * plan history and today's calls (it never scans plugin_usage).
 */
async function measureDashboard(label: string, db: Database, runs = 7): Promise<{ parts: Record<string, { medianMs: number; maxMs: number }>; totalMedianMs: number; totalMaxMs: number }> {
  // The console's reads, on one user of the database (made in the empty phase): search by an
  // exact email, by a Stripe customer id, by text contained in emails and names; the user's page;
  // what failed; money; churn and conversion over time (the default 90 days by week, and the
  // most periods the page offers: 365 days by day). Reported with the page's parts (the total is the overview's only).
  await db.query(`INSERT INTO public.users (email) VALUES ('console-bench@example.com') ON CONFLICT (email) DO NOTHING`);
  const [someone] = await db.query<{ id: string }>(`SELECT id FROM public.users WHERE email = 'console-bench@example.com'`);
  const consoleSteps: [string, () => Promise<unknown>][] = [
    ['console: search, exact email', () => consoleQueries.searchUsers(db, 'console-bench@example.com')],
    ['console: search, Stripe customer', () => consoleQueries.searchUsers(db, 'cus_nobody')],
    ['console: search, contained text', () => consoleQueries.searchUsers(db, 'bench@exam')],
    ['console: user page', () => consoleQueries.readUserConsole(db, someone!.id)],
    ['console: what failed (7 days)', () => consoleQueries.readFailures(db, 7)],
    ['console: money', () => consoleQueries.readMoney(db)],
    ['console: churn and conversion (90 d by week)', () => readSeries(db, { days: 90, unit: 'week' })],
    ['console: churn and conversion (365 d by day)', () => readSeries(db, { days: 365, unit: 'day' })],
  ];
  const consoleTimes: number[][] = consoleSteps.map(() => []);
  for (let run = 0; run < runs; run++) {
    for (const [k, [, step]] of consoleSteps.entries()) {
      const s0 = performance.now();
      await step();
      consoleTimes[k]!.push(performance.now() - s0);
    }
  }
  const steps: [string, (range: dashboard.Range, plans: dashboard.PlanInfo[], users: dashboard.UsersDay[]) => Promise<unknown>][] = [
    ['calls per day (usage_report)', (r) => dashboard.readCalls(db, r)],
    ['users per day', (r) => dashboard.readUsersPerDay(db, r)],
    ['funnel', (r) => dashboard.readFunnel(db, r, 7)],
    ['plans', () => dashboard.readPlans(db)],
    ['plan mix and MRR', (r, p, u) => dashboard.readPlanMix(db, r, p, u)],
    ['devices and sharing', () => dashboard.readDevices(db, 3)],
    ['top users', (r) => dashboard.readTopUsers(db, r, 10)],
  ];
  const times: number[][] = steps.map(() => []);
  const totals: number[] = [];
  for (let run = 0; run < runs; run++) {
    const t0 = performance.now();
    const range = await dashboard.readRange(db, 30);
    let plans: dashboard.PlanInfo[] = [];
    let users: dashboard.UsersDay[] = [];
    for (const [k, [name, step]] of steps.entries()) {
      const s0 = performance.now();
      const value = await step(range, plans, users);
      if (name === 'plans') plans = value as dashboard.PlanInfo[];
      if (name === 'users per day') users = value as dashboard.UsersDay[];
      times[k]!.push(performance.now() - s0);
    }
    totals.push(performance.now() - t0);
  }
  const parts: Record<string, { medianMs: number; maxMs: number }> = Object.fromEntries([
    ...steps.map(([name], k) => [name, { medianMs: median(times[k]!), maxMs: Math.max(...times[k]!) }]),
    ...consoleSteps.map(([name], k) => [name, { medianMs: median(consoleTimes[k]!), maxMs: Math.max(...consoleTimes[k]!) }]),
  ]);
  for (const [name, t] of Object.entries(parts)) log(`  ${label.padEnd(6)} dashboard: ${name.padEnd(30)} median ${t.medianMs.toFixed(1).padStart(7)} ms  max ${t.maxMs.toFixed(1).padStart(7)} ms`);
  const result = { parts, totalMedianMs: median(totals), totalMaxMs: Math.max(...totals) };
  log(`  ${label.padEnd(6)} dashboard 30-day page, database time: median ${result.totalMedianMs.toFixed(0)} ms, max ${result.totalMaxMs.toFixed(0)} ms (${runs} renders)`);
  return result;
}

/**
 * Where the 30-day report's own time goes: the calls not rolled up yet (the last 5 minutes, read
 * from plugin_usage by idx_plugin_usage_created_at) and how many heap pages they sit on. New rows
 * go wherever the free-space map finds room, so after a VACUUM has recorded the small holes left
 * at the end of full pages, each new row can land on a page of its own.
 */
async function recentLayout(label: string, db: Database): Promise<{ rows: number; heapPages: number; buffers: number }> {
  const [layout] = await db.query<{ rows: number; pages: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT (pg_catalog.split_part(pg_catalog.ltrim(u.ctid::text, '('), ',', 1))::bigint)::int AS pages
       FROM public.plugin_usage AS u
      WHERE u.created_at >= (SELECT s.rolled_up_to FROM public.usage_rollup_state AS s WHERE s.id)`);
  const plan = await db.query<{ 'QUERY PLAN': [{ Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }] }>(
    `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
     SELECT (u.created_at AT TIME ZONE 'UTC')::date, u.action, count(*) FILTER (WHERE u.allowed), count(*) FILTER (WHERE NOT u.allowed)
       FROM public.plugin_usage AS u
      WHERE u.created_at >= (SELECT s.rolled_up_to FROM public.usage_rollup_state AS s WHERE s.id)
      GROUP BY 1, 2`);
  const top = plan[0]!['QUERY PLAN'][0].Plan;
  const result = { rows: layout!.rows, heapPages: layout!.pages, buffers: top['Shared Hit Blocks'] + top['Shared Read Blocks'] };
  log(`  ${label.padEnd(6)} 30-day report, calls not rolled up yet: ${result.rows} rows on ${result.heapPages} heap pages (${result.buffers} buffer accesses)`);
  return result;
}

/**
 * Before the paired rounds: VACUUM ANALYZE of both databases (the rollups' tables were just
 * filled, the load too), then one CHECKPOINT (server-wide: it covers both), so that neither side
 * measures the write-back of what was loaded a moment before (3 GB of WAL for the 10M rows: the
 * checkpointer would be writing it out during the rounds). Both sides are settled at the same
 * moment, so both start from the same checkpoint: every first change of a page after it logs the
 * whole page, on both.
 */
async function settle(dbs: Database[]): Promise<void> {
  for (const db of dbs) {
    // Autovacuum off on both sides' tables for the rounds: this VACUUM ANALYZE stands for it.
    // Left on, it reacts to the rounds' own writes by table size (the reference's 50k-row tables
    // cross its thresholds within seconds, 10M-row ones never), and its runs (CPU on a 2-core
    // machine, re-planned statements after an autoanalyze) land on whichever side is measured.
    await db.exec(`DO $$
      DECLARE t regclass;
      BEGIN
        FOR t IN SELECT c.oid::regclass FROM pg_catalog.pg_class AS c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' LOOP
          EXECUTE pg_catalog.format('ALTER TABLE %s SET (autovacuum_enabled = off)', t);
        END LOOP;
      END $$`);
    await db.exec('VACUUM ANALYZE');
  }
  await dbs[0]!.exec('CHECKPOINT').catch((error: Error) => log(`  (no CHECKPOINT: ${error.message})`));
}

interface Round extends PhaseResult {
  /** Bytes of WAL the server wrote per call while this side was measured (both databases share the WAL). */
  walBytesPerOp: number;
}
interface Paired {
  empty: PhaseResult;
  loaded: PhaseResult;
  /** Median over rounds of the round's loaded/empty ratio: what the check holds to TOLERANCE. */
  p50Ratio: number;
  p99Ratio: number;
  /** For comparison: the ratio of the two sides' medians over the same rounds. */
  p50RatioOfMedians: number;
  p99RatioOfMedians: number;
  rounds: { first: 'empty' | 'loaded'; empty: Round; loaded: Round; p50Ratio: number; p99Ratio: number }[];
}

const walPosition = async (db: Database) =>
  (await db.query<{ b: number }>(`SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_insert_lsn(), '0/0')::float8 AS b`))[0]!.b;

/** One side's part of a round: its slices' calls pooled, p50 and p99 of all of them. */
function roundOf(samples: { ops: number; seconds: number; latenciesMs: number[]; walBytes: number }[]): Round {
  const sorted = samples.flatMap((x) => x.latenciesMs).sort((a, b) => a - b);
  const ops = samples.reduce((a, x) => a + x.ops, 0);
  const seconds = samples.reduce((a, x) => a + x.seconds, 0);
  const wal = samples.reduce((a, x) => a + x.walBytes, 0);
  return { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), opsPerSec: ops / seconds, walBytesPerOp: wal / Math.max(1, ops) };
}

async function measureSlice(db: Database, q: Query, counter: { i: number }, seconds: number) {
  const wal0 = await walPosition(db);
  const sample = await measure(q.op, CONNECTIONS, seconds, counter);
  return { ...sample, walBytes: (await walPosition(db)) - wal0 };
}

/**
 * The paired rounds. Both databases are on the same server, so each round measures every query on
 * the empty reference and on the loaded database one right after the other, the loaded one first
 * on every other round, as bench/harness.ts `compare` does. Each side's SECONDS of a round are
 * taken in SLICES short slices, alternating A B B A A B… (B A A B… on the other rounds), and
 * pooled: a stretch of a few hundred milliseconds where the machine is busy elsewhere (another
 * job, the checkpointer) falls on both sides of the round, not on one of them.
 *
 * The check holds the median over rounds of the per-round ratio, rather than the ratio of each
 * side's medians: a round's ratio compares calls made within the same 2 x SECONDS, while the two
 * sides' medians may come from different rounds (a slow stretch that hits the empty side's median
 * round and not the loaded side's moves their ratio, not the per-round ones); and the median over
 * rounds drops the rounds where a burst hit one side only. The ratio of the medians is reported
 * beside it.
 */
async function measurePaired(emptyDb: Database, emptyQs: Query[], loadedDb: Database, loadedQs: Query[]): Promise<Paired[]> {
  const counters = emptyQs.map(() => ({ empty: { i: 0 }, loaded: { i: 0 } }));
  for (const [k, q] of emptyQs.entries()) {
    for (let i = 0; i < 30; i++) {
      await q.op(0, counters[k]!.empty.i++);
      await loadedQs[k]!.op(0, counters[k]!.loaded.i++);
    }
  }
  const rounds: Paired['rounds'][] = emptyQs.map(() => []);
  const slice = SECONDS / SLICES;
  for (let r = 0; r < ROUNDS; r++) {
    const first = r % 2 === 0 ? 'empty' : 'loaded';
    for (const [k, q] of emptyQs.entries()) {
      const samples: Record<'empty' | 'loaded', Awaited<ReturnType<typeof measureSlice>>[]> = { empty: [], loaded: [] };
      const run = async (which: 'empty' | 'loaded') =>
        samples[which].push(which === 'empty'
          ? await measureSlice(emptyDb, q, counters[k]!.empty, slice)
          : await measureSlice(loadedDb, loadedQs[k]!, counters[k]!.loaded, slice));
      const second = first === 'empty' ? 'loaded' : 'empty';
      for (let j = 0; j < SLICES; j++) {
        // A B, B A, A B, ...: each side first in half of the round's pairs of slices.
        if (j % 2 === 0) {
          await run(first);
          await run(second);
        } else {
          await run(second);
          await run(first);
        }
      }
      const e = roundOf(samples.empty);
      const l = roundOf(samples.loaded);
      rounds[k]!.push({ first, empty: e, loaded: l, p50Ratio: l.p50Ms / e.p50Ms, p99Ratio: l.p99Ms / e.p99Ms });
    }
  }
  const side = (rs: Round[]): PhaseResult => ({
    p50Ms: median(rs.map((x) => x.p50Ms)),
    p99Ms: median(rs.map((x) => x.p99Ms)),
    opsPerSec: median(rs.map((x) => x.opsPerSec)),
  });
  return emptyQs.map((q, k) => {
    const rs = rounds[k]!;
    const empty = side(rs.map((x) => x.empty));
    const loaded = side(rs.map((x) => x.loaded));
    const result: Paired = {
      empty,
      loaded,
      p50Ratio: median(rs.map((x) => x.p50Ratio)),
      p99Ratio: median(rs.map((x) => x.p99Ratio)),
      p50RatioOfMedians: loaded.p50Ms / empty.p50Ms,
      p99RatioOfMedians: loaded.p99Ms / empty.p99Ms,
      rounds: rs,
    };
    for (const [label, r, pick] of [['empty', empty, (x: Paired['rounds'][number]) => x.empty], ['loaded', loaded, (x: Paired['rounds'][number]) => x.loaded]] as const) {
      const wal = median(rs.map((x) => pick(x).walBytesPerOp));
      log(`  ${label.padEnd(6)} ${q.name.padEnd(36)} ${r.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${r.p50Ms.toFixed(2).padStart(7)} ms  p99 ${r.p99Ms.toFixed(2).padStart(7)} ms  WAL ${wal.toFixed(0).padStart(6)} B/op  (p99 by round: ${rs.map((x) => pick(x).p99Ms.toFixed(2)).join(' ')})`);
    }
    log(`  ${'ratio'.padEnd(6)} ${q.name.padEnd(36)} p50 by round: ${rs.map((x) => x.p50Ratio.toFixed(2)).join(' ')}; p99 by round: ${rs.map((x) => x.p99Ratio.toFixed(2)).join(' ')}`);
    return result;
  });
}

/** Per database: buffer hits and reads, autovacuum and autoanalyze runs (counters, for differences). */
async function databaseStats(db: Database): Promise<{ blksHit: number; blksRead: number; autovacuums: number; autoanalyzes: number }> {
  const [d] = await db.query<{ hit: number; read: number }>(
    `SELECT blks_hit::float8 AS hit, blks_read::float8 AS read FROM pg_catalog.pg_stat_database WHERE datname = pg_catalog.current_database()`);
  const [t] = await db.query<{ v: number; a: number }>(
    `SELECT coalesce(sum(autovacuum_count), 0)::float8 AS v, coalesce(sum(autoanalyze_count), 0)::float8 AS a FROM pg_catalog.pg_stat_user_tables`);
  return { blksHit: d!.hit, blksRead: d!.read, autovacuums: t!.v, autoanalyzes: t!.a };
}

/** Server-wide: WAL records, full-page images, bytes; checkpoints (PostgreSQL 17 moved them to pg_stat_checkpointer). */
async function serverStats(db: Database): Promise<{ walRecords: number; walFpi: number; walBytes: number; checkpoints: number } | null> {
  try {
    const [w] = await db.query<{ r: number; f: number; b: number }>(`SELECT wal_records::float8 AS r, wal_fpi::float8 AS f, wal_bytes::float8 AS b FROM pg_catalog.pg_stat_wal`);
    const [c] = await db
      .query<{ n: number }>(`SELECT (num_timed + num_requested)::float8 AS n FROM pg_catalog.pg_stat_checkpointer`)
      .catch(() => db.query<{ n: number }>(`SELECT (checkpoints_timed + checkpoints_req)::float8 AS n FROM pg_catalog.pg_stat_bgwriter`));
    return { walRecords: w!.r, walFpi: w!.f, walBytes: w!.b, checkpoints: c!.n };
  } catch {
    return null;
  }
}

/** Depth (levels above the leaves) and size of the big tables' btree indexes, if pageinspect is there. */
async function indexDepths(db: Database): Promise<Record<string, { level: number; size: string }> | null> {
  try {
    await db.exec('CREATE SCHEMA IF NOT EXISTS bench_inspect; CREATE EXTENSION IF NOT EXISTS pageinspect SCHEMA bench_inspect');
    const rows = await db.query<{ index: string; level: number; size: string }>(
      `SELECT i.indexrelid::regclass::text AS index, (bench_inspect.bt_metap(i.indexrelid::regclass::text)).level::int AS level,
              pg_catalog.pg_size_pretty(pg_catalog.pg_relation_size(i.indexrelid)) AS size
         FROM pg_catalog.pg_index AS i
         JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
         JOIN pg_catalog.pg_class AS x ON x.oid = i.indexrelid
         JOIN pg_catalog.pg_am AS am ON am.oid = x.relam
        WHERE t.relnamespace = 'public'::regnamespace AND t.relname = ANY($1::text[]) AND am.amname = 'btree'
        ORDER BY 1`,
      [BIG_TABLES],
    );
    return Object.fromEntries(rows.map((r) => [r.index, { level: r.level, size: r.size }]));
  } catch (error) {
    log(`  (no index depths: ${(error as Error).message})`);
    return null;
  }
}

async function seedUsers(db: Database, tag: string, count: number, plan: string, usedToday = 0): Promise<string[]> {
  const ids = (await db.query<{ id: string }>(
    `INSERT INTO public.users (email) SELECT $1::text || g || '@scale.example' FROM generate_series(1, $2::integer) g RETURNING id`,
    [tag, count],
  )).map((r) => r.id);
  await db.query(
    `INSERT INTO public.user_subscriptions (user_id, plan_id, status)
     SELECT u, (SELECT id FROM public.subscription_plans WHERE plan_slug = $2::text), 'active' FROM unnest($1::uuid[]) u`,
    [ids, plan],
  );
  if (usedToday > 0) await setToday(db, ids, usedToday);
  return ids;
}

async function setToday(db: Database, ids: string[], count: number) {
  await db.query(
    `INSERT INTO public.daily_usage_summary (user_id, action, usage_date, count)
     SELECT u, 'resize', (now() AT TIME ZONE 'UTC')::date, $2::integer FROM unnest($1::uuid[]) u
     ON CONFLICT (user_id, action, usage_date) DO UPDATE SET count = EXCLUDED.count`,
    [ids, count],
  );
}

async function issueTokens(db: Database, users: string[]): Promise<string[]> {
  const auth = createPluginAuth(db, { tokenSecret: SECRET });
  const out: string[] = [];
  for (const id of users) out.push((await auth.tokens.issue(id, { deviceName: 'scale' })).token);
  return out;
}

// The load. Users g = 1..N; user g used the plugin on 10 distinct days among the last 90 (never
// today: today's traffic is the benchmark's own), 10 calls a day (8 allowed, 2 denied), every
// other call with an idempotency key. 30% pro, 10% basic, the rest free. Two tokens per user.
// plugin_usage is inserted one day at a time, oldest first, as it would have arrived: the id and
// created_at indexes grow at their right edge, the user_id index everywhere.
const LOAD_USER_IDS = `CREATE TABLE scale_users AS SELECT g, gen_random_uuid() AS id FROM generate_series(1, $1::integer) g`;
const LOAD_USERS = `
  INSERT INTO public.users (id, email, created_at)
    SELECT id, 'load' || g || '@scale.example', now() - interval '120 days' FROM scale_users;
  INSERT INTO public.user_subscriptions (user_id, plan_id, status)
    SELECT s.id, p.id, 'active' FROM scale_users s
      JOIN public.subscription_plans p ON p.plan_slug = CASE WHEN s.g % 10 < 3 THEN 'pro' ELSE 'basic' END
     WHERE s.g % 10 < 4;
  INSERT INTO public.plugin_tokens (user_id, token_hash, device_name, created_at, expires_at)
    SELECT s.id, encode(sha256(convert_to(s.g || ':' || t, 'UTF8')), 'hex'), 'load',
           now() - make_interval(days => (s.g + t) % 60), now() + make_interval(days => 30 - (s.g + t) % 60)
      FROM scale_users s, generate_series(1, 2) t;`;
const LOAD_COUNTERS = `
  INSERT INTO public.daily_usage_summary (user_id, action, usage_date, count, created_at, updated_at)
    SELECT s.id, CASE WHEN k = 10 THEN 'export' ELSE 'resize' END,
           (now() AT TIME ZONE 'UTC')::date - (1 + (s.g * 7 + k * 9) % 90), ${CALLS_PER_DAY - 2},
           now() - make_interval(days => 1 + (s.g * 7 + k * 9) % 90), now() - make_interval(days => 1 + (s.g * 7 + k * 9) % 90)
      FROM scale_users s, generate_series(1, ${DAYS_PER_USER}) k;`;
const LOAD_DAY = `
  INSERT INTO public.plugin_usage (user_id, action, items, allowed, reason, plan_slug, idempotency_key,
                                   used, usage_limit, batch_limit, resets_at, created_at)
    SELECT d.user_id, d.action, 1 + j % 3, j <= ${CALLS_PER_DAY - 2}, CASE WHEN j <= ${CALLS_PER_DAY - 2} THEN 'ok' ELSE 'limit_reached' END,
           'pro', CASE WHEN j % 2 = 0 THEN 'req-' || d.id || '-' || j END,
           LEAST(j, ${CALLS_PER_DAY - 2}), 6, 20, (d.usage_date + 1)::timestamp AT TIME ZONE 'UTC',
           d.usage_date::timestamp AT TIME ZONE 'UTC' + make_interval(secs => (d.id * 37 + j * 5000) % 86400)
      FROM public.daily_usage_summary d, generate_series(1, ${CALLS_PER_DAY}) j
     WHERE d.usage_date = (now() AT TIME ZONE 'UTC')::date - $1::int
       AND d.user_id IN (SELECT s.id FROM scale_users s);`;

/** Runs each hot query once on one connection with auto_explain reporting every nested plan. */
async function explainHotPaths(url: string, sets: Sets, extra: (db: Database) => Query[] = () => []): Promise<{ lines: string[]; seqScans: string[] }> {
  // One connection, idle forever, with auto_explain sending each plan to the client as a NOTICE.
  const pool = new pg.Pool({ connectionString: url, max: 1, idleTimeoutMillis: 0 });
  const notices: string[] = [];
  pool.on('connect', (client) => client.on('notice', (n) => notices.push(n.message ?? '')));
  await pool.query(`LOAD 'auto_explain'`);
  for (const setting of ['log_min_duration = 0', 'log_analyze = on', 'log_buffers = on', 'log_nested_statements = on', 'log_level = notice']) {
    await pool.query(`SET auto_explain.${setting}`);
  }
  const db = await openDatabase(pool);
  try {
    const lines: string[] = [];
    const seqScans: string[] = [];
    for (const q of [...queries(db, sets), ...extra(db)]) {
      for (let i = 0; i < 6; i++) await q.op(0, i * 13); // past plpgsql's custom-plan phase: the cached plan is what serves
      notices.length = 0;
      await q.op(0, 99);
      const plans = notices.filter((n) => /Query Text/.test(n));
      const key = plans.flatMap((plan) =>
        plan.split('\n').filter((l) => /Scan|Insert on|Update on|Delete on|Conflict|Buffers: shared/.test(l) && !/Function Scan|Result/.test(l)),
      );
      lines.push(`  ${q.name}:`, ...key.slice(0, 40).map((l) => `    ${l.trim()}`));
      for (const l of key) {
        const m = /Seq Scan on (\w+)/.exec(l);
        if (m && BIG_TABLES.includes(m[1]!)) seqScans.push(`${q.name}: ${l.trim()}`);
      }
    }
    return { lines, seqScans };
  } finally {
    await db.close();
    await pool.end().catch(() => {});
  }
}

/**
 * What both databases start with, as the empty phase always had: 10k pro users and 5k basic users
 * who used up today's 4 (no history), tokens for 1,000 of them, and 500 pro users with the load's
 * per-user history (10 days x 10 calls in the last 90 days, 50k calls), so that usage.summary does
 * the same per-user work on both sides.
 */
async function seedEmpty(db: Database): Promise<Sets> {
  const sets: Sets = { pro: await seedUsers(db, 'empty-pro-', 10_000, 'pro'), full: await seedUsers(db, 'empty-full-', 5_000, 'basic', 4), tokens: [], history: [] };
  sets.tokens = await issueTokens(db, sets.pro.slice(0, 1000));
  sets.history = await seedUsers(db, 'empty-history-', 500, 'pro');
  await db.query(`CREATE TABLE scale_users AS SELECT ord::int AS g, u AS id FROM unnest($1::uuid[]) WITH ORDINALITY AS x(u, ord)`, [sets.history]);
  await db.exec(LOAD_COUNTERS);
  for (let day = 90; day >= 1; day--) await db.query(LOAD_DAY, [day]);
  await db.exec('DROP TABLE scale_users');
  return sets;
}

let server: Awaited<ReturnType<typeof startThrowawayPostgres>> | undefined;
let serverUrl = process.env.BENCH_DATABASE_URL;
if (!serverUrl) {
  server = await startThrowawayPostgres({
    flags: ['-c', `shared_buffers=${values['shared-buffers']}`, '-c', 'max_wal_size=4GB', '-c', 'checkpoint_timeout=15min', '-c', 'maintenance_work_mem=256MB', '-c', `huge_pages=${values['huge-pages']}`],
  });
  serverUrl = server.url;
}
// The loaded database, and beside it on the same server the empty reference.
const name = `fpa_scale_${Date.now().toString(36)}`;
const emptyName = `${name}_empty`;
let failed = false;
const output: Record<string, unknown> = {};
try {
  const started = performance.now();
  const loadAverageAtStart = os.loadavg();
  await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
  await adminQuery(serverUrl, `CREATE DATABASE ${emptyName}`);
  const url = databaseUrl(serverUrl, name);
  const emptyUrl = databaseUrl(serverUrl, emptyName);
  const db = await openDatabase(url, { max: CONNECTIONS + 1 });
  const emptyDb = await openDatabase(emptyUrl, { max: CONNECTIONS + 1 });
  const version = (await db.query<{ v: string }>(`SELECT current_setting('server_version') AS v`))[0]!.v;
  const buffers = (await db.query<{ v: string }>(`SELECT current_setting('shared_buffers') AS v`))[0]!.v;
  // Whether the buffer cache is on huge pages (PostgreSQL 17 says so in huge_pages_status; before
  // it, only huge_pages' setting is known: 'try' may or may not have got them).
  const hugePages = (await db.query<{ v: string }>(
    `SELECT coalesce(current_setting('huge_pages_status', true), current_setting('huge_pages') || ' (setting)') AS v`,
  ))[0]!.v;
  log(`# figma-plugin-auth-db bench:scale: PostgreSQL ${version}${server ? ' (throwaway)' : ''}, shared_buffers ${buffers}, huge pages ${hugePages}, ${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), ${CONNECTIONS} connections, ${ROUNDS} paired rounds x ${SECONDS}s per query and database in ${SLICES} alternating slices; load average ${loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')}`);
  if (!hugePages.startsWith('on')) log(`  (huge pages are not in use: with GB of shared_buffers the loaded side's p99s depend on them on some machines; docs/scale.md, "Huge pages")`);
  await applySchema(db);
  await applySchema(emptyDb);

  // Both databases seeded alike; the empty one stays so, the reference of the paired rounds.
  await seedEmpty(db);
  const empty = await seedEmpty(emptyDb);

  log(`loading ${USERS} users, ${USERS * DAYS_PER_USER} daily_usage_summary rows, ${USERS * DAYS_PER_USER * CALLS_PER_DAY} plugin_usage rows (all indexes in place):`);
  const load: Record<string, number> = {};
  load.usersSeconds = (await timed('users, subscriptions, 2 tokens each', async () => {
    await db.query(LOAD_USER_IDS, [USERS]);
    await db.exec(LOAD_USERS);
  })).seconds;
  load.countersSeconds = (await timed('daily_usage_summary', () => db.exec(LOAD_COUNTERS))).seconds;
  load.callsSeconds = (await timed('plugin_usage, one day at a time over 90 days', async () => {
    for (let day = 90; day >= 1; day--) await db.query(LOAD_DAY, [day]);
  })).seconds;
  load.analyzeSeconds = (await timed('VACUUM ANALYZE (what autovacuum would have done over 90 days)', () => db.exec('VACUUM ANALYZE'))).seconds;
  // The history was back-dated behind the rollup's watermark (the seed's history was rolled up by
  // nothing yet, but re-rolling is what an import does): an import of old calls re-rolls from the
  // start, as docs/scale.md says.
  await db.exec(`TRUNCATE public.usage_daily_totals; UPDATE public.usage_rollup_state SET rolled_up_to = '-infinity';`);
  const rollup = await timed('first report: rollup catch-up of the whole history', () => db.query<{ n: number }>('SELECT public.usage_rollup() AS n'));
  load.rollupSeconds = rollup.seconds;
  await emptyDb.query('SELECT public.usage_rollup()'); // the reference's seeded history, likewise rolled up
  const sizes = await db.query<{ table: string; rows: number; size: string }>(`
    SELECT c.relname AS table, c.reltuples::bigint AS rows, pg_size_pretty(pg_total_relation_size(c.oid)) AS size
      FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.reltuples > 1000
     ORDER BY c.reltuples DESC`);
  for (const s of sizes) log(`  ${s.table}: ${s.rows} rows, ${s.size} with indexes`);

  // Loaded: users from the load (with history), pro and basic.
  const pick = (mod: string, n: number) =>
    db.query<{ id: string }>(`SELECT id FROM scale_users WHERE ${mod} ORDER BY g LIMIT $1::integer`, [n]).then((r) => r.map((x) => x.id));
  const loaded: Sets = { pro: await pick('g % 10 < 3', 10_000), full: await pick('g % 10 = 3', 5_000), tokens: [], history: [] };
  const pros = await pick('g % 10 < 3', 20_000);
  loaded.history = pros.length >= 10_500 ? pros.slice(10_000, 10_500) : pros.slice(-500); // smaller --users runs
  await setToday(db, loaded.full, 4);
  loaded.tokens = await issueTokens(db, loaded.pro.slice(0, 1000));
  // Neither database has calls from before the rounds but its back-dated history (rolled up): the
  // reports of both sides roll up only their own calls of the rounds, once older than 5 minutes
  // (a run of the default 12 rounds takes about 3), so no waiting for the rollup's 5 minutes.
  await settle([emptyDb, db]);
  const depths = { empty: await indexDepths(emptyDb), loaded: await indexDepths(db) };
  if (depths.loaded) {
    for (const [index, d] of Object.entries(depths.loaded)) {
      log(`  btree ${index.padEnd(40)} loaded: level ${d.level}, ${d.size}; empty: level ${depths.empty?.[index]?.level ?? '?'}, ${depths.empty?.[index]?.size ?? '?'}`);
    }
  }

  log(`paired rounds (empty reference and loaded database, alternating; ${ROUNDS} rounds):`);
  const tallies = { empty: { notAllowed: 0 }, loaded: { notAllowed: 0 } };
  const statsBefore = { empty: await databaseStats(emptyDb), loaded: await databaseStats(db), server: await serverStats(db) };
  const pairedStarted = performance.now();
  const paired = await measurePaired(emptyDb, queries(emptyDb, empty, tallies.empty), db, queries(db, loaded, tallies.loaded));
  const pairedSeconds = (performance.now() - pairedStarted) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 1_100)); // backends flush their statistics at most once a second
  const statsAfter = { empty: await databaseStats(emptyDb), loaded: await databaseStats(db), server: await serverStats(db) };
  const diff = <T extends Record<string, number>>(a: T, b: T) => Object.fromEntries(Object.keys(a).map((k) => [k, b[k]! - a[k]!])) as T;
  const roundStats = {
    seconds: pairedSeconds,
    empty: diff(statsBefore.empty, statsAfter.empty),
    loaded: diff(statsBefore.loaded, statsAfter.loaded),
    server: statsBefore.server && statsAfter.server ? diff(statsBefore.server, statsAfter.server) : null,
    notAllowed: { empty: tallies.empty.notAllowed, loaded: tallies.loaded.notAllowed },
  };
  for (const side of ['empty', 'loaded'] as const) {
    const s = roundStats[side];
    log(`  ${side.padEnd(6)} during the rounds: ${s.blksHit} buffer hits, ${s.blksRead} reads from outside shared buffers, ${s.autovacuums} autovacuums, ${s.autoanalyzes} autoanalyzes; denied calls in "allowed": ${roundStats.notAllowed[side]}`);
  }
  if (roundStats.server) log(`  server during the rounds (${pairedSeconds.toFixed(0)} s): ${roundStats.server.walRecords} WAL records, ${roundStats.server.walFpi} full-page images, ${(roundStats.server.walBytes / 1e6).toFixed(1)} MB WAL, ${roundStats.server.checkpoints} checkpoints`);

  const recentEmpty = await recentLayout('empty', emptyDb);
  const recentLoaded = await recentLayout('loaded', db);
  const dashboardEmpty = await measureDashboard('empty', emptyDb);
  const dashboardLoaded = await measureDashboard('loaded', db);
  const emptyPlans = await explainHotPaths(emptyUrl, empty);
  const loadedPlans = await explainHotPaths(url, loaded, (d) => [
    { name: 'dashboard 30-day page', op: () => dashboard.readOverview(d, { days: 30 }) },
    { name: 'dashboard console search', op: () => consoleQueries.searchUsers(d, 'console-bench@example.com') },
    { name: 'dashboard console failures', op: () => consoleQueries.readFailures(d, 7) },
    { name: 'dashboard console money', op: () => consoleQueries.readMoney(d) },
    { name: 'dashboard console churn and conversion', op: () => readSeries(d, { days: 90, unit: 'week' }) },
  ]);

  log(`\nloaded / empty (must be <= ${TOLERANCE.toFixed(2)}): the median over ${ROUNDS} paired rounds of each round's ratio; p50 and p99 shown are each side's medians over the same rounds (their ratio in brackets):`);
  const results = queries(db, loaded).map((q, k) => {
    const p = paired[k]!;
    const e = p.empty;
    const l = p.loaded;
    const ok = p.p50Ratio <= TOLERANCE && p.p99Ratio <= TOLERANCE;
    if (!ok) failed = true;
    log(`  ${q.name.padEnd(36)} p50 ${e.p50Ms.toFixed(2).padStart(6)} -> ${l.p50Ms.toFixed(2).padStart(6)} ms x${p.p50Ratio.toFixed(2)} (x${p.p50RatioOfMedians.toFixed(2)})  p99 ${e.p99Ms.toFixed(2).padStart(6)} -> ${l.p99Ms.toFixed(2).padStart(6)} ms x${p.p99Ratio.toFixed(2)} (x${p.p99RatioOfMedians.toFixed(2)})  ${ok ? 'ok' : 'OVER 20%'}`);
    return {
      name: q.name,
      empty: e,
      loaded: l,
      p50Ratio: p.p50Ratio,
      p99Ratio: p.p99Ratio,
      ok,
      paired: { p50RatioOfMedians: p.p50RatioOfMedians, p99RatioOfMedians: p.p99RatioOfMedians, rounds: p.rounds },
    };
  });
  log('\nplans on the loaded database (auto_explain of every statement inside the functions, key lines):');
  for (const line of loadedPlans.lines) log(line);
  // The dashboard is reported, not held to the hot-path rule: where it reads a third of a table
  // (the counters of 30 of 90 days) the planner may rightly prefer a Seq Scan to the index.
  const dashboardSeqScans = loadedPlans.seqScans.filter((s) => s.startsWith('dashboard'));
  loadedPlans.seqScans = loadedPlans.seqScans.filter((s) => !s.startsWith('dashboard'));
  if (dashboardSeqScans.length > 0) log(`\ndashboard (reported only): ${dashboardSeqScans.length} Seq Scan(s):\n${dashboardSeqScans.map((s) => `  ${s}`).join('\n')}`);
  const seqScans = [...emptyPlans.seqScans.map((s) => `empty: ${s}`), ...loadedPlans.seqScans.map((s) => `loaded: ${s}`)];
  if (loadedPlans.seqScans.length > 0) {
    failed = true;
    log(`\nFAIL: Seq Scan on a big table in a hot query:\n${loadedPlans.seqScans.map((s) => `  ${s}`).join('\n')}`);
  } else {
    log('\nno hot query does a Seq Scan on a big table (loaded database).');
  }
  if (emptyPlans.seqScans.length > 0) log(`(on the empty database the planner chose Seq Scans where tables were tiny: ${emptyPlans.seqScans.length})`);
  const totalSeconds = (performance.now() - started) / 1000;
  const loadAverageAtEnd = os.loadavg();
  log(`total ${totalSeconds.toFixed(0)} s; load average at start ${loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')}, at end ${loadAverageAtEnd.map((x) => x.toFixed(2)).join(' ')}; ${failed ? 'FAILED' : 'passed'}`);
  Object.assign(output, {
    machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model.trim(), postgres: version, sharedBuffers: buffers, hugePages, connections: CONNECTIONS, loadAverageAtStart, loadAverageAtEnd },
    load: { ...load, rolledUpCalls: rollup.value[0]!.n, tables: sizes },
    results,
    pairedRounds: { rounds: ROUNDS, secondsPerRound: SECONDS, slicesPerRound: SLICES, ratio: 'median over rounds of the per-round loaded/empty ratio', ...roundStats },
    indexDepths: depths,
    dashboard: { empty: dashboardEmpty, loaded: dashboardLoaded },
    reportRecent: { empty: recentEmpty, loaded: recentLoaded },
    seqScans,
    // auto_explain's key lines of each hot query on both sides (buffers per call: what grew).
    plans: { empty: emptyPlans.lines, loaded: loadedPlans.lines },
    totalSeconds,
    ok: !failed,
  });
  await db.close();
  await emptyDb.close();
} finally {
  if (!values['keep-database']) {
    await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${emptyName} WITH (FORCE)`).catch(() => {});
  }
  await server?.stop();
}
if (values.json) process.stdout.write(`${JSON.stringify(output)}\n`);
if (failed) process.exitCode = 1;
