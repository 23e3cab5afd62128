// The HTTP line of `npm run bench`: a metered request (POST /plugin/resize with a bearer token)
// through createPluginServer on Node against a minimal node:http handler doing the same work on the
// same pool (bench/http-servers.ts, a process of its own), driven by autocannon from this process,
// in alternating rounds. The ratio is the median of the rounds' ratios of requests per second; p50
// and p99 are the medians of the rounds' percentiles (autocannon's, in ms).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DENO_BIN, denoRunArgs } from './deno.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/** What autocannon's result holds, as far as it is read here. */
interface CannonResult {
  requests: { total: number };
  latency: { p50: number; p99: number };
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}
type Cannon = (opts: Record<string, unknown>) => Promise<CannonResult>;
const autocannon = require('autocannon') as Cannon;

export interface HttpLine {
  name: string;
  connections: number;
  /** Library requests per second (all rounds). */
  rps: number;
  baselineRps: number;
  /** Median of the rounds' ratios. */
  ratio: number;
  rounds: number[];
  p50Ms: number;
  p99Ms: number;
  baselineP50Ms: number;
  baselineP99Ms: number;
  /**
   * CPU time of the servers' process per request (user + system, from /proc; null elsewhere), each
   * side over its own rounds: steadier than requests per second on a busy machine.
   */
  cpuUsPerRequest: number | null;
  baselineCpuUsPerRequest: number | null;
}

export interface HttpServers {
  library: string;
  bare: string;
  /** CPU time used so far by the servers' process, in ms (Linux /proc), or null. */
  cpuMs(): number | null;
  stop(): Promise<void>;
}

/**
 * Starts the two servers on the database at url, with a pool of `pool` connections: on Node
 * bench/http-servers.ts, on Deno bench/http-servers-deno.ts (DENO_BIN, bare imports resolved from
 * the package's node_modules as in test/runtimes/deno.ts; the Deno module cache in denoDir).
 */
export async function startHttpServers(url: string, secret: string, pool: number, runtime: 'node' | { deno: string } = 'node'): Promise<HttpServers> {
  const [command, args] = runtime === 'node'
    ? [process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'http-servers.ts')]]
    : [DENO_BIN, denoRunArgs('http-servers-deno.ts')];
  const child: ChildProcess = spawn(command, args, {
    cwd: ROOT,
    env: {
      ...process.env, BENCH_HTTP_DATABASE_URL: url, BENCH_HTTP_SECRET: secret, BENCH_HTTP_POOL: String(pool),
      ...(runtime === 'node' ? {} : { DENO_DIR: runtime.deno, NO_COLOR: '1' }),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ports = await new Promise<[string, string]>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /READY (\d+) (\d+)/.exec(out);
      if (m) resolve([m[1]!, m[2]!]);
    });
    child.once('exit', (code) => reject(new Error(`bench: the HTTP servers exited (${code}) before listening`)));
  });
  return {
    library: `http://127.0.0.1:${ports[0]}`,
    bare: `http://127.0.0.1:${ports[1]}`,
    cpuMs: () => {
      try {
        // utime and stime, the 14th and 15th fields, in clock ticks (100 a second on Linux).
        const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return (Number(fields[11]) + Number(fields[12])) * 10;
      } catch {
        return null;
      }
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** One autocannon run of `seconds` against base, each request with the next token of the list. */
async function cannon(base: string, tokens: string[], connections: number, seconds: number): Promise<CannonResult> {
  let i = 0;
  const result = await autocannon({
    url: `${base}/plugin/resize`,
    connections,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
    requests: [{
      setupRequest: (request: { headers: Record<string, string> }) => ({
        ...request,
        headers: { ...request.headers, authorization: `Bearer ${tokens[i++ % tokens.length]}` },
      }),
    }],
  });
  if (result.errors || result.timeouts || result.non2xx) {
    throw new Error(`bench: ${base}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx answers of ${result.requests.total}`);
  }
  return result;
}

export async function httpLine(opts: {
  name: string;
  servers: HttpServers;
  libraryTokens: string[];
  bareTokens: string[];
  connections: number;
  rounds: number;
  seconds: number;
}): Promise<HttpLine> {
  const { servers, connections, seconds } = opts;
  // Warm-up: every connection of the pool, the prepared statements, the JIT of both paths.
  await cannon(servers.library, opts.libraryTokens, connections, 1);
  await cannon(servers.bare, opts.bareTokens, connections, 1);
  const a: CannonResult[] = [];
  const b: CannonResult[] = [];
  const cpu = { a: 0, b: 0 };
  const timed = async (side: 'a' | 'b', run: () => Promise<CannonResult>) => {
    const before = servers.cpuMs();
    const result = await run();
    const after = servers.cpuMs();
    cpu[side] = before === null || after === null || Number.isNaN(cpu[side]) ? NaN : cpu[side] + after - before;
    return result;
  };
  for (let round = 0; round < opts.rounds; round++) {
    const runA = async () => a.push(await timed('a', () => cannon(servers.library, opts.libraryTokens, connections, seconds)));
    const runB = async () => b.push(await timed('b', () => cannon(servers.bare, opts.bareTokens, connections, seconds)));
    if (round % 2 === 0) {
      await runA();
      await runB();
    } else {
      await runB();
      await runA();
    }
  }
  const rps = (rs: CannonResult[]) => rs.reduce((s, r) => s + r.requests.total, 0) / rs.reduce((s, r) => s + r.duration, 0);
  const perRequest = (ms: number, rs: CannonResult[]) => (Number.isNaN(ms) ? null : (ms * 1000) / rs.reduce((n, r) => n + r.requests.total, 0));
  const rounds = a.map((r, k) => r.requests.total / r.duration / (b[k]!.requests.total / b[k]!.duration));
  return {
    name: opts.name,
    connections,
    rps: rps(a),
    baselineRps: rps(b),
    ratio: median(rounds),
    rounds,
    p50Ms: median(a.map((r) => r.latency.p50)),
    p99Ms: median(a.map((r) => r.latency.p99)),
    baselineP50Ms: median(b.map((r) => r.latency.p50)),
    baselineP99Ms: median(b.map((r) => r.latency.p99)),
    cpuUsPerRequest: perRequest(cpu.a, a),
    baselineCpuUsPerRequest: perRequest(cpu.b, b),
  };
}

export function formatHttpLine(line: HttpLine): string {
  const f = (n: number, d = 0) => n.toFixed(d).padStart(8);
  return `${line.name.padEnd(46)} ${f(line.rps)} req/s  p50 ${f(line.p50Ms, 2)} ms  p99 ${f(line.p99Ms, 2)} ms  bare ${f(line.baselineRps)} req/s  p50 ${f(line.baselineP50Ms, 2)}  p99 ${f(line.baselineP99Ms, 2)}  ratio ${line.ratio.toFixed(2)} (${line.rounds.map((r) => r.toFixed(2)).join(' ')})${
    line.cpuUsPerRequest === null || line.baselineCpuUsPerRequest === null ? '' : `  server CPU/request ${line.cpuUsPerRequest.toFixed(0)} µs, bare ${line.baselineCpuUsPerRequest.toFixed(0)} µs`
  }`;
}
