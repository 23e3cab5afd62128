// The server-side lines of `npm run bench`: pgbench (-M prepared) running each library call beside
// a hand-written statement doing the same work (bench/pgbench/*.sql), with no Node.js in between.
// Alternating rounds (A-B, then B-A), the ratio is the median of the rounds' ratios.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Database } from '../src/core/db.ts';

const run = promisify(execFile);
const SCRIPTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pgbench');

export interface ServerLine {
  name: string;
  /** Library transactions per second, mean over its rounds. */
  tps: number;
  /** The hand-written statement's, likewise. */
  baselineTps: number;
  /** Median over the rounds of library tps ÷ same-work tps (each pair run back to back). */
  ratio: number;
  roundRatios: number[];
  /** pgbench's mean latency of the library side, ms. */
  latencyMs: number;
}

/** The server's pgbench (BINDIR from pg_config), or null with the reason. */
export async function findPgbench(db: Database): Promise<{ bin: string } | { missing: string }> {
  const fromEnv = process.env.PGBENCH;
  if (fromEnv) return existsSync(fromEnv) ? { bin: fromEnv } : { missing: `PGBENCH=${fromEnv} does not exist` };
  const rows = await db.query<{ setting: string }>(
    `SELECT setting FROM pg_catalog.pg_config WHERE name = 'BINDIR'`, []).catch(() => []);
  const dir = rows[0]?.setting;
  if (!dir) return { missing: 'the server does not tell its BINDIR (pg_config needs a superuser)' };
  const bin = path.join(dir, 'pgbench');
  return existsSync(bin) ? { bin } : { missing: `no pgbench in the server's bin directory ${dir}` };
}

const uid = (prefix: number, n: string) => `('${prefix}0000000-0000-4000-8000-' || pg_catalog.lpad(${n}, 12, '0'))::uuid`;

/** Users and tokens with computed ids, for the scripts (see bench/pgbench/README.md). */
export async function seedServerSide(db: Database): Promise<void> {
  const sets: Array<[number, number, string, number]> = [
    [1, 100000, 'pro', 0], [2, 100000, 'pro', 0],
    [3, 10000, 'basic', 4], [4, 10000, 'basic', 4],
    [5, 1, 'enterprise', 0], [6, 1, 'enterprise', 0],
  ];
  for (const [prefix, count, plan, used] of sets) {
    await db.query(
      `INSERT INTO public.users (id, email)
       SELECT ${uid(prefix, 'g::text')}, 'pgbench-${prefix}-' || g || '@bench.example' FROM pg_catalog.generate_series(1, $1::integer) g`,
      [count]);
    await db.query(
      `INSERT INTO public.user_subscriptions (user_id, plan_id, status)
       SELECT ${uid(prefix, 'g::text')}, (SELECT id FROM public.subscription_plans WHERE plan_slug = $2::varchar), 'active'
         FROM pg_catalog.generate_series(1, $1::integer) g`,
      [count, plan]);
    if (used > 0) {
      await db.query(
        `INSERT INTO public.daily_usage_summary (user_id, action, usage_date, count)
         SELECT ${uid(prefix, 'g::text')}, 'resize', (pg_catalog.now() AT TIME ZONE 'UTC')::date, $2::integer
           FROM pg_catalog.generate_series(1, $1::integer) g`,
        [count, used]);
    }
  }
  // 10,000 tokens per side (7… the library's, 8… the hand-written statement's), in the steady
  // state (used a moment ago). Each side rewrites its own tokens' last_used_at once a minute.
  // The digest of token g is md5('a' || g) || md5('a' || g) (library) or with 'b' (hand-written).
  for (const [prefix, owner, tag] of [[7, 1, 'a'], [8, 2, 'b']] as const) {
    await db.query(
      `INSERT INTO public.plugin_tokens (id, user_id, token_hash, device_name, expires_at, last_used_at)
       SELECT ${uid(prefix, 'g::text')}, ${uid(owner, 'g::text')}, pg_catalog.md5('${tag}' || g) || pg_catalog.md5('${tag}' || g), 'bench',
              pg_catalog.now() + interval '30 days', pg_catalog.now()
         FROM pg_catalog.generate_series(1, 10000) g`, []);
  }
  await db.query('ANALYZE', []);
}

async function pgbench(bin: string, url: string, [script, vars]: Script, clients: number, seconds: number) {
  const { stdout } = await run(bin, [
    '-n', '-M', 'prepared', '-c', String(clients), '-j', String(Math.min(clients, os.cpus().length)),
    '-T', String(seconds), ...Object.entries(vars).flatMap(([k, v]) => ['-D', `${k}=${v}`]), '-f', path.join(SCRIPTS, script), url,
  ], { maxBuffer: 1 << 20 });
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
  const latency = /latency average = ([\d.]+) ms/.exec(stdout);
  const failed = /number of failed transactions: (\d+)/.exec(stdout);
  if (!tps || !latency) throw new Error(`pgbench ${script}: unexpected output\n${stdout}`);
  if (failed && Number(failed[1]) > 0) throw new Error(`pgbench ${script}: ${failed[1]} failed transactions`);
  return { tps: Number(tps[1]), latencyMs: Number(latency[1]) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** A script and the pgbench variables (-D) it runs with: `side`, the users' id prefix, and `users`. */
type Script = [file: string, vars: Record<string, string>];
const consume = (side: number, users: number): Script => [side % 2 ? 'consume-library.sql' : 'consume-same-work.sql', { side: String(side), users: String(users) }];

export const SERVER_LINES: Array<{ name: string; library: Script; baseline: Script; refresh?: string }> = [
  { name: 'consume allowed', library: consume(1, 100000), baseline: consume(2, 100000) },
  // The single-source product (issue 26): the user's plan from users ⋈ user_subscriptions ⋈
  // subscription_plans only, the same writes. What a plugin with one payment source would write.
  { name: 'consume allowed vs single source', library: consume(1, 100000), baseline: ['consume-single-source.sql', { side: '2', users: '100000' }] },
  { name: 'consume denied', library: consume(3, 10000), baseline: consume(4, 10000) },
  { name: 'consume, one hot user', library: consume(5, 1), baseline: consume(6, 1) },
  {
    name: 'verify token', library: ['verify-library.sql', {}], baseline: ['verify-same-work.sql', {}],
    // Steady state: every token used a moment ago (verify writes last_used_at at most once a minute).
    refresh: `UPDATE public.plugin_tokens SET last_used_at = pg_catalog.now() WHERE device_name = 'bench'`,
  },
];

export async function serverSide(
  db: Database, bin: string, url: string, opts: { clients: number; seconds: number; rounds: number; only: string },
  log: (line: string) => void,
): Promise<ServerLine[]> {
  const out: ServerLine[] = [];
  for (const l of SERVER_LINES) {
    const name = `pgbench: ${l.name}`;
    if (!name.includes(opts.only)) continue;
    if (l.refresh) await db.query(l.refresh, []);
    await pgbench(bin, url, l.library, opts.clients, 1); // warm-up: plans prepared, pages cached
    await pgbench(bin, url, l.baseline, opts.clients, 1);
    const a: number[] = [];
    const b: number[] = [];
    const ratios: number[] = [];
    const lat: number[] = [];
    for (let round = 0; round < opts.rounds; round++) {
      const first = round % 2 === 0 ? 'library' : 'baseline';
      const x = first === 'library' ? await pgbench(bin, url, l.library, opts.clients, opts.seconds) : undefined;
      const y = await pgbench(bin, url, l.baseline, opts.clients, opts.seconds);
      const z = x ?? (await pgbench(bin, url, l.library, opts.clients, opts.seconds));
      a.push(z.tps);
      b.push(y.tps);
      lat.push(z.latencyMs);
      ratios.push(z.tps / y.tps);
    }
    const line: ServerLine = {
      name,
      tps: a.reduce((s, x) => s + x, 0) / a.length,
      baselineTps: b.reduce((s, x) => s + x, 0) / b.length,
      ratio: median(ratios),
      roundRatios: ratios.map((r) => Number(r.toFixed(3))),
      latencyMs: lat.reduce((s, x) => s + x, 0) / lat.length,
    };
    log(`${name.padEnd(46)} ${line.tps.toFixed(0).padStart(9)} tps  latency ${line.latencyMs.toFixed(2).padStart(7)} ms  same-work ${line.baselineTps.toFixed(0).padStart(9)} tps  median ratio ${line.ratio.toFixed(2)}  (rounds ${line.roundRatios.map((r) => r.toFixed(2)).join(' ')})`);
    out.push(line);
  }
  return out;
}
