// The cold-start lines of `npm run bench`: the time from spawning a server process to its first
// answer, for `figma-plugin-auth-db serve` (the package's build in dist/, as an installed package
// runs it: `npm run build` first) against bench/cold-bare.mjs, a bare Node server that opens the
// same database and answers one query. Both are polled with GET /health every 2 ms from the spawn
// on; runs alternate (serve, bare, bare, serve, …); the figures are medians.
// The Deno line: bench/cold-deno.ts (the Deno recipe of docs/deploy.md, createPluginServer on
// postgres.js, with a /health) against bench/cold-deno-bare.ts (postgres.js alone), both run by the
// deno binary `npm run test:runtimes` installs (test/runtimes/node_modules/.bin/deno) with one
// DENO_DIR of the run's own; a first untimed start of each side fills it (Deno's transpiled-module
// cache), so the timed starts are warm ones, as a redeployed function's are. Without that binary the
// line is not run and the reason is logged and returned (the JSON's coldStartNote).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../src/core/db.ts';
import { applySchema } from '../src/schema/setup.ts';
import { DENO_BIN, denoRunArgs } from './deno.ts';

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

/** A server to start: the executable and its arguments. */
interface Start {
  command: string;
  args: string[];
}

/** Spawns the command and returns the ms from spawn to its first 200 on /health; then stops it. */
async function firstAnswer({ command, args }: Start, env: Record<string, string>): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`bench: cold start: ${args.at(-1)} exited (${code}): ${stderr.slice(0, 500)}`))));
  exited.catch(() => {});
  try {
    for (;;) {
      if (performance.now() - t0 > 60_000) throw new Error(`bench: cold start: ${args.at(-1)} did not answer within 60 s: ${stderr.slice(0, 500)}`);
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
const SERVE: Start = { command: process.execPath, args: ['--input-type=module', '-e', `const { main } = await import(${JSON.stringify(join(ROOT, 'dist', 'cli', 'cli.js'))}); process.exitCode = await main(['serve', '--production']);`] };
const BARE: Start = { command: process.execPath, args: [join(ROOT, 'bench', 'cold-bare.mjs')] };

const denoRun = (file: string): Start => ({ command: DENO_BIN, args: denoRunArgs(file) });
const DENO_SERVE = denoRun('cold-deno.ts');
const DENO_BARE = denoRun('cold-deno-bare.ts');

async function coldLine(name: string, databaseUrl: string, secret: string, runs: number, serve = SERVE, bare = BARE, extraEnv: Record<string, string> = {}): Promise<ColdLine> {
  const env = { DATABASE_URL: databaseUrl, PLUGIN_TOKEN_SECRET: secret, METER: '/plugin/resize=resize', HOST: '127.0.0.1', ...extraEnv };
  // One of each first: the OS's file cache holds both import graphs (and, on Deno, DENO_DIR both
  // sides' transpiled modules).
  await firstAnswer(serve, env);
  await firstAnswer(bare, env);
  const serveRunsMs: number[] = [];
  const bareRunsMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) {
      serveRunsMs.push(await firstAnswer(serve, env));
      bareRunsMs.push(await firstAnswer(bare, env));
    } else {
      bareRunsMs.push(await firstAnswer(bare, env));
      serveRunsMs.push(await firstAnswer(serve, env));
    }
  }
  const serveMs = median(serveRunsMs);
  const bareMs = median(bareRunsMs);
  return { name, runs, serveMs, bareMs, ratio: serveMs / bareMs, serveRunsMs, bareRunsMs };
}

/** The Deno line, or why it was not run (no deno binary, or a side that would not start). */
async function denoLine(postgresUrl: string, secret: string, runs: number): Promise<ColdLine | string> {
  if (!existsSync(DENO_BIN)) return `cold start: deno, postgres not run: no deno at ${DENO_BIN} (npm run test:runtimes installs it)`;
  const denoDir = mkdtempSync(join(tmpdir(), 'fpa-bench-deno-'));
  try {
    return await coldLine('cold start: deno, postgres', postgresUrl, secret, runs, DENO_SERVE, DENO_BARE, { DENO_DIR: denoDir, NO_COLOR: '1' });
  } catch (error) {
    return `cold start: deno, postgres not run: ${(error as Error).message}`;
  } finally {
    rmSync(denoDir, { recursive: true, force: true });
  }
}

export interface ColdStarts {
  lines: ColdLine[];
  /** Lines not run and why (e.g. no deno binary); null when every line ran. */
  note: string | null;
}

export async function coldStarts(postgresUrl: string, secret: string, runs: number, log: (line: string) => void): Promise<ColdStarts> {
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
  const lines: ColdLine[] = [];
  let note: string | null = null;
  const pgLine = await coldLine('cold start: serve, PostgreSQL', postgresUrl, secret, runs);
  log(formatColdLine(pgLine));
  lines.push(pgLine);
  const deno = await denoLine(postgresUrl, secret, runs);
  if (typeof deno === 'string') {
    note = deno;
    log(deno);
  } else {
    log(formatColdLine(deno));
    lines.push(deno);
  }
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
  return { lines, note };
}

export function formatColdLine(line: ColdLine): string {
  return `${line.name.padEnd(46)} serve ${line.serveMs.toFixed(0).padStart(6)} ms  bare ${line.bareMs.toFixed(0).padStart(6)} ms  ratio ${line.ratio.toFixed(2)} (median of ${line.runs})`;
}
