// The cold-start lines of `npm run bench`: the time from spawning a server process to its first
// answer, for `figma-plugin-auth-db serve` (the package's build in dist/, as an installed package
// runs it: `npm run build` first) against bench/cold-bare.mjs, a bare Node server that opens the
// same database and answers one query. Both are polled with GET /health every 2 ms from the spawn
// on; runs alternate (serve, bare, bare, serve, …); the figures are medians.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../src/core/db.ts';
import { applySchema } from '../src/schema/setup.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface ColdLine {
  name: string;
  runs: number;
  /** Median spawn → first answer, ms. */
  serveMs: number;
  bareMs: number;
  /** serveMs ÷ bareMs (goal: at most 1.5). */
  ratio: number;
  serveRunsMs: number[];
  bareRunsMs: number[];
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });

const get = (port: number) =>
  new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/health', agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end();
  });

/** Spawns the command and returns the ms from spawn to its first 200 on /health; then stops it. */
async function firstAnswer(args: string[], env: Record<string, string>): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`bench: cold start: ${args.at(-1)} exited (${code}): ${stderr.slice(0, 500)}`))));
  exited.catch(() => {});
  try {
    for (;;) {
      const status = await Promise.race([get(port).catch(() => 0), exited]);
      if (status === 200) return performance.now() - t0;
      if (status !== 0) throw new Error(`bench: cold start: /health answered ${status}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    if (child.exitCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

// serve as the package's bin runs it from dist/ (bin/figma-plugin-auth-db.js in an installed package).
const SERVE = ['--input-type=module', '-e', `const { main } = await import(${JSON.stringify(join(ROOT, 'dist', 'cli', 'cli.js'))}); process.exitCode = await main(['serve', '--production']);`];
const BARE = [join(ROOT, 'bench', 'cold-bare.mjs')];

async function coldLine(name: string, databaseUrl: string, secret: string, runs: number): Promise<ColdLine> {
  const env = { DATABASE_URL: databaseUrl, PLUGIN_TOKEN_SECRET: secret, METER: '/plugin/resize=resize', HOST: '127.0.0.1' };
  // One of each first: the OS's file cache holds both import graphs.
  await firstAnswer(SERVE, env);
  await firstAnswer(BARE, env);
  const serveRunsMs: number[] = [];
  const bareRunsMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) {
      serveRunsMs.push(await firstAnswer(SERVE, env));
      bareRunsMs.push(await firstAnswer(BARE, env));
    } else {
      bareRunsMs.push(await firstAnswer(BARE, env));
      serveRunsMs.push(await firstAnswer(SERVE, env));
    }
  }
  const serveMs = median(serveRunsMs);
  const bareMs = median(bareRunsMs);
  return { name, runs, serveMs, bareMs, ratio: serveMs / bareMs, serveRunsMs, bareRunsMs };
}

export async function coldStarts(postgresUrl: string, secret: string, runs: number, log: (line: string) => void): Promise<ColdLine[]> {
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
  const lines: ColdLine[] = [];
  const pgLine = await coldLine('cold start: serve, PostgreSQL', postgresUrl, secret, runs);
  log(formatColdLine(pgLine));
  lines.push(pgLine);
  // An embedded data directory, set up once, opened by each start.
  const dir = mkdtempSync(join(tmpdir(), 'fpa-bench-cold-'));
  try {
    const db = await openDatabase(`pglite:${dir}`);
    await applySchema(db);
    await db.close();
    const liteLine = await coldLine('cold start: serve, PGlite directory', `pglite:${dir}`, secret, runs);
    log(formatColdLine(liteLine));
    lines.push(liteLine);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return lines;
}

export function formatColdLine(line: ColdLine): string {
  return `${line.name.padEnd(46)} serve ${line.serveMs.toFixed(0).padStart(6)} ms  bare ${line.bareMs.toFixed(0).padStart(6)} ms  ratio ${line.ratio.toFixed(2)} (median of ${line.runs})`;
}
