// npm run bench [-- --json] [-- --seconds N]: each hot path against a hand-written statement doing
// the same work, through the same driver and pool, in one run. See BENCHMARKS.md for the method.
import { parseArgs } from 'node:util';

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { jwtVerify } from 'jose';
import { openDatabase, type Database } from '../src/core/db.ts';
import { createPluginAuth } from '../src/auth.ts';
import { applySchema } from '../src/schema/setup.ts';
import { sha256Hex } from '../src/tokens/signer.ts';
import { startThrowawayPostgres } from '../scripts/throwaway-postgres.ts';
import { adminQuery, databaseUrl } from './server.ts';
import { compare, formatLine, timeRuns, type Line } from './harness.ts';
import { findPgbench, seedServerSide, serverSide, type ServerLine } from './pgbench.ts';
import { formatHttpLine, httpLine, startHttpServers, type HttpLine } from './http.ts';
import { coldStarts, formatColdLine, type ColdLine } from './cold-start.ts';
import { DENO_BIN } from './deno.ts';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '2.5' },
    rounds: { type: 'string', default: '4' },
    connections: { type: 'string', default: '8' },
    users: { type: 'string', default: '100000' },
    only: { type: 'string', default: '' },
    'pgbench-seconds': { type: 'string', default: '3' },
    'http-seconds': { type: 'string', default: '3' },
    'http-connections': { type: 'string', default: '8,32' },
    'cold-runs': { type: 'string', default: '10' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CONNECTIONS = Number(values.connections);
const USERS = Number(values.users);
const SECRET = 'bench-only-secret-0123456789abcdef0123456789';
const log = (line: string) => (values.json ? process.stderr : process.stdout).write(`${line}\n`);



/** Users in sets: `count` users on `plan`, with `used` resizes already counted today. */
async function seedUsers(db: Database, tag: string, count: number, plan: string, used = 0): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `INSERT INTO public.users (email) SELECT $1::text || g || '@bench.example' FROM generate_series(1, $2::integer) g RETURNING id`,
    [tag, count],
  );
  const ids = rows.map((r) => r.id);
  await db.query(
    `INSERT INTO public.user_subscriptions (user_id, plan_id, status)
     SELECT u, (SELECT id FROM public.subscription_plans WHERE plan_slug = $2::varchar), 'active' FROM unnest($1::uuid[]) u`,
    [ids, plan],
  );
  if (used > 0) {
    await db.query(
      `INSERT INTO public.daily_usage_summary (user_id, action, usage_date, count)
       SELECT u, 'resize', (now() AT TIME ZONE 'UTC')::date, $2::integer FROM unnest($1::uuid[]) u`,
      [ids, used],
    );
  }
  return ids;
}

// The baseline of the consume lines: the hand-written same-work statement of the server-side lines
// (bench/pgbench/consume-same-work.sql: the same reads of the user's effective plan and
// the same writes, in one statement), for the user given as $1. One text for both levels. Both
// sides are prepared once per connection (the library's hot calls are; so is every baseline).
/** A pgbench script of bench/pgbench/ as one statement for the user given as $1. */
function statementFor(file: string): string {
  const text = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'pgbench', file), 'utf8')
    .replace(/^\\set .*\n/, '')
    .replace(/\(:side::text \|\| '0000000-[^)]*\)\)::uuid/, () => '$1::uuid');
  if (!text.includes('$1::uuid') || text.includes(':n')) throw new Error(`bench: ${file} has no user parameter`);
  return text;
}
const SAME_WORK_CONSUME = statementFor('consume-same-work.sql');
// The single-source product of issue 26 (bench/pgbench/consume-single-source.sql): the user's plan
// from users ⋈ user_subscriptions ⋈ subscription_plans only, the counter, the log row.
const SINGLE_SOURCE_CONSUME = statementFor('consume-single-source.sql');

/**
 * After seeding, before a line's rounds: statistics and visibility for what was just written
 * (VACUUM ANALYZE), then its write-back (CHECKPOINT), so that no round (the first is the
 * library's) measures the I/O of the seeding, as bench:scale settles its databases. A role that
 * may not CHECKPOINT skips it.
 */
async function settle(db: Database): Promise<void> {
  await db.exec('VACUUM ANALYZE');
  await db.exec('CHECKPOINT').catch(() => {});
}

async function hotPaths(db: Database, label: string, concurrency: number, users: number): Promise<Line[]> {
  const auth = createPluginAuth(db, { tokenSecret: SECRET });
  const lines: Line[] = [];
  const run = async (c: Parameters<typeof compare>[0]) => {
    if (!c.name.includes(values.only!)) return;
    const line = await compare(c);
    log(formatLine(line));
    lines.push(line);
  };
  // Allowed: pro users (6 a day) visited round-robin, far fewer calls than their allowance.
  const proA = await seedUsers(db, `${label}-pro-a-`, users, 'pro');
  const proB = await seedUsers(db, `${label}-pro-b-`, users, 'pro');
  // Statistics for what was just seeded (PGlite has no autovacuum to gather them): a statement
  // prepared on tables the planner believes empty keeps a plan for empty tables. VACUUM too: on
  // PostgreSQL, autovacuum of the rows just seeded would otherwise run inside the first rounds,
  // against whichever side runs then (the library's, in round 1: BENCHMARKS.md, Method).
  await settle(db);
  await run({
    name: `${label}: consume allowed (${users} users)`,
    concurrency, rounds: ROUNDS, secondsPerRound: SECONDS,
    library: (_, i) => auth.usage.consume(proA[i % proA.length]!, 'resize'),
    baseline: (_, i) => db.query(SAME_WORK_CONSUME, [proB[i % proB.length]!], { prepare: 'bench_same_work_consume' }),
  });
  // Allowed, beside what a product with one source of plans would run (fresh users on both sides).
  const proC = await seedUsers(db, `${label}-pro-c-`, users, 'pro');
  const proD = await seedUsers(db, `${label}-pro-d-`, users, 'pro');
  await settle(db);
  await run({
    name: `${label}: consume allowed vs single source`,
    concurrency, rounds: ROUNDS, secondsPerRound: SECONDS,
    library: (_, i) => auth.usage.consume(proC[i % proC.length]!, 'resize'),
    baseline: (_, i) => db.query(SINGLE_SOURCE_CONSUME, [proD[i % proD.length]!], { prepare: 'bench_single_source_consume' }),
  });
  // Denied: basic users (4 a day) who have used all 4.
  const fullA = await seedUsers(db, `${label}-full-a-`, Math.min(users, 10000), 'basic', 4);
  const fullB = await seedUsers(db, `${label}-full-b-`, Math.min(users, 10000), 'basic', 4);
  await settle(db);
  await run({
    name: `${label}: consume denied (limit reached)`,
    concurrency, rounds: ROUNDS, secondsPerRound: SECONDS,
    library: (_, i) => auth.usage.consume(fullA[i % fullA.length]!, 'resize'),
    baseline: (_, i) => db.query(SAME_WORK_CONSUME, [fullB[i % fullB.length]!], { prepare: 'bench_same_work_consume' }),
  });
  // One hot user: every request on one row (enterprise: unlimited).
  const [hotA] = await seedUsers(db, `${label}-hot-a-`, 1, 'enterprise');
  const [hotB] = await seedUsers(db, `${label}-hot-b-`, 1, 'enterprise');
  await run({
    name: `${label}: consume, one hot user`,
    concurrency, rounds: ROUNDS, secondsPerRound: SECONDS,
    library: () => auth.usage.consume(hotA!, 'resize'),
    baseline: () => db.query(SAME_WORK_CONSUME, [hotB!], { prepare: 'bench_same_work_consume' }),
  });
  // verify: jose + the one indexed lookup, versus the library's verify.
  const tokens = await Promise.all(proA.slice(0, 1000).map((id) => auth.tokens.issue(id, { deviceName: 'bench' })));
  // Steady state: each token has been used once (its first verify sets last_used_at, and later
  // ones write again at most once a minute), as in a plugin that verifies on every request.
  for (const t of tokens) await auth.tokens.verify(t.token);
  const key = new TextEncoder().encode(SECRET);
  await run({
    name: `${label}: verify token`,
    concurrency, rounds: ROUNDS, secondsPerRound: SECONDS,
    library: (_, i) => auth.tokens.verify(tokens[i % tokens.length]!.token),
    baseline: async (_, i) => {
      const token = tokens[i % tokens.length]!.token;
      const { payload } = await jwtVerify(token, key, {
        algorithms: ['HS256'], issuer: 'figma-plugin-auth-db', audience: 'figma-plugin',
      });
      const rows = await db.query<{ token_hash: string }>(
        'SELECT user_id, token_hash, expires_at, revoked_at, device_name, device_id FROM public.plugin_tokens WHERE id = $1::uuid',
        [payload.jti],
        { prepare: 'bench_verify_lookup' },
      );
      if (rows[0]?.token_hash !== (await sha256Hex(token))) throw new Error('bench: digest mismatch');
    },
  });
  return lines;
}

/** Allowed calls beyond a limit, over everything the run did: must be 0. */
async function overGrants(db: Database): Promise<number> {
  const rows = await db.query<{ over: number }>(`
    SELECT COALESCE(sum(GREATEST(x.allowed - x.lim, 0)), 0)::int AS over FROM (
      SELECT u.user_id, count(*) FILTER (WHERE u.allowed AND u.refunded_at IS NULL) AS allowed,
             max(u.usage_limit) AS lim
        FROM public.plugin_usage u
       WHERE u.action = 'resize' AND u.usage_limit IS NOT NULL AND u.usage_limit < 2147483647
       GROUP BY u.user_id, (u.created_at AT TIME ZONE 'UTC')::date) x`);
  // Library users start at 0 (pro) or 4 (basic, counted before the run): compare with the counters.
  const counters = await db.query<{ over: number }>(`
    SELECT COALESCE(sum(GREATEST(d.count - (p.limits->>'resizesPerDay')::int, 0)), 0)::int AS over
      FROM public.daily_usage_summary d
      JOIN public.user_subscriptions s ON s.user_id = d.user_id
      JOIN public.subscription_plans p ON p.id = s.plan_id
     WHERE (p.limits->>'resizesPerDay')::int >= 0`);
  return rows[0]!.over + counters[0]!.over;
}

/**
 * The HTTP lines: a metered request through createPluginServer on Node against a bare node:http
 * handler making the same calls on the same pool (bench/http.ts), at each --http-connections.
 * Enterprise users (no limit), one token each, a set per side, each token used once before timing.
 */
async function httpLines(db: Database, url: string): Promise<HttpLine[]> {
  const auth = createPluginAuth(db, { tokenSecret: SECRET });
  const tokensFor = async (tag: string) => {
    const ids = await seedUsers(db, tag, 2000, 'enterprise');
    const tokens = await Promise.all(ids.map((id) => auth.tokens.issue(id, { deviceName: 'bench' })));
    for (const t of tokens) await auth.tokens.verify(t.token);
    return tokens.map((t) => t.token);
  };
  const libraryTokens = await tokensFor('http-a-');
  const bareTokens = await tokensFor('http-b-');
  await settle(db);
  const servers = await startHttpServers(url, SECRET, CONNECTIONS);
  const lines: HttpLine[] = [];
  try {
    for (const connections of values['http-connections']!.split(',').map(Number)) {
      const line = await httpLine({
        name: `http: metered request, ${connections} connections`, servers, libraryTokens, bareTokens,
        connections, rounds: ROUNDS, seconds: Number(values['http-seconds']),
      });
      log(formatHttpLine(line));
      lines.push(line);
    }
  } finally {
    await servers.stop();
  }
  // The same on Deno (the Deno recipe against a bare Deno.serve handler), when the runtimes are installed.
  if (!existsSync(DENO_BIN)) {
    httpNote = `http: deno lines not run: no deno at ${DENO_BIN} (npm run test:runtimes installs it)`;
    log(httpNote);
    return lines;
  }
  const denoDir = mkdtempSync(join(os.tmpdir(), 'fpa-bench-deno-http-'));
  try {
    const deno = await startHttpServers(url, SECRET, CONNECTIONS, { deno: denoDir });
    try {
      for (const connections of values['http-connections']!.split(',').map(Number)) {
        const line = await httpLine({
          name: `http: deno, metered request, ${connections} connections`, servers: deno, libraryTokens, bareTokens,
          connections, rounds: ROUNDS, seconds: Number(values['http-seconds']),
        });
        log(formatHttpLine(line));
        lines.push(line);
      }
    } finally {
      await deno.stop();
    }
  } catch (error) {
    httpNote = `http: deno lines not run: ${(error as Error).message}`;
    log(httpNote);
  } finally {
    rmSync(denoDir, { recursive: true, force: true });
  }
  return lines;
}

const results: Line[] = [];
const httpResults: HttpLine[] = [];
const coldResults: ColdLine[] = [];
/** Cold-start lines not run and why (the Deno line without the deno binary). */
let coldNote: string | null = null;
/** HTTP lines not run and why (the Deno lines without the deno binary). */
let httpNote: string | null = null;
const serverLines: ServerLine[] = [];
let serverNote: string | null = null;
// --only pgbench…: the server-side lines alone; --only <driver line>: no server-side lines.
const only = values.only!;
const wants = (line: string) => line.includes(only);
const onlyServer = only.startsWith('pgbench');
// --only http, --only cold: those lines alone.
const onlyHttp = only.startsWith('http');
const onlyCold = only.startsWith('cold');
const driverLines = !onlyServer && !onlyHttp && !onlyCold;
let server: Awaited<ReturnType<typeof startThrowawayPostgres>> | undefined;
let serverUrl = process.env.BENCH_DATABASE_URL;
if (!serverUrl) {
  server = await startThrowawayPostgres({ flags: ['-c', 'max_connections=100', '-c', 'shared_buffers=256MB'] });
  serverUrl = server.url;
}
const name = `fpa_bench_${Date.now().toString(36)}`;
const createdDbs: string[] = [];
let over = 0;
try {
  const version = await (async () => {
    const c = new pg.Client({ connectionString: serverUrl });
    await c.connect();
    const v = (await c.query('SHOW server_version')).rows[0].server_version as string;
    await c.end();
    return v;
  })();
  log(`# figma-plugin-auth-db bench: PostgreSQL ${version}${server ? ' (throwaway)' : ''}, ${os.cpus().length} cores, ${CONNECTIONS} connections, ${ROUNDS} A/B rounds x ${SECONDS}s`);

  // Setup: on empty databases, then re-runs on an up-to-date one.
  const empties = Array.from({ length: 5 }, (_, i) => `${name}_setup${i}`);
  for (const db of empties) {
    await adminQuery(serverUrl, `CREATE DATABASE ${db}`);
    createdDbs.push(db);
  }
  if (wants('postgres: setup')) {
  const setupLine = await timeRuns('postgres: setup, empty database', empties.length, async (i) => {
    const db = await openDatabase(databaseUrl(serverUrl!, empties[i]!), { max: 1 });
    await applySchema(db);
    await db.close();
  });
  log(formatLine(setupLine));
  results.push(setupLine);
  const again = await openDatabase(databaseUrl(serverUrl, empties[0]!), { max: 1 });
  const noop = await timeRuns('postgres: setup, up to date (no-op re-run)', 20, () => applySchema(again));
  await again.close();
  log(formatLine(noop));
  results.push(noop);
  }

  await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
  createdDbs.push(name);
  const db = await openDatabase(databaseUrl(serverUrl, name), { max: CONNECTIONS });
  await applySchema(db);
  if (driverLines) results.push(...(await hotPaths(db, 'postgres', CONNECTIONS, USERS)));
  if (only === '' || onlyHttp) httpResults.push(...(await httpLines(db, databaseUrl(serverUrl, name))));
  if (only === '' || onlyServer) {
    const found = await findPgbench(db);
    if ('bin' in found) {
      await seedServerSide(db);
      serverLines.push(...(await serverSide(db, found.bin, databaseUrl(serverUrl, name), {
        clients: CONNECTIONS, seconds: Number(values['pgbench-seconds']), rounds: ROUNDS, only,
      }, log)));
    } else {
      serverNote = `pgbench lines skipped: ${found.missing}`;
      log(serverNote);
    }
  }
  over += await overGrants(db);
  await db.close();

  if (only === '' || onlyCold) {
    const cold = await coldStarts(databaseUrl(serverUrl, name), SECRET, Number(values['cold-runs']), log);
    coldResults.push(...cold.lines);
    coldNote = cold.note;
  }
  if (driverLines) {
    const lite = await openDatabase('memory://');
    await applySchema(lite);
    results.push(...(await hotPaths(lite, 'pglite', 1, Math.min(USERS, 10000))));
    over += await overGrants(lite);
    await lite.close();
  }
  log(`overGrants: ${over}`);
} finally {
  for (const db of createdDbs.reverse()) await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
  await server?.stop();
}
if (values.json) {
  process.stdout.write(`${JSON.stringify({ results, http: httpResults, httpNote, coldStart: coldResults, coldStartNote: coldNote, serverSide: serverLines, serverSideNote: serverNote, overGrants: over })}\n`);
}
