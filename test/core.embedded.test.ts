// The embedded database has one owner process per data directory (docs/embedded.md): every other
// process reaches it through the owner's socket, or is refused with database_locked naming the
// owner; never two PGlite servers on the same files. PGlite only (it is the embedded engine), with
// real processes: setups, CLI commands and a holder that keeps consuming, killed with SIGKILL.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ROOT, runScript, scriptArgs, type RunResult } from './helpers/run.ts';
import { copyDataDir } from './helpers/pglite.ts';
import { openDatabase } from '../src/core/db.ts';
import { LOCK_FILE, processStart } from '../src/core/pglite-lock.ts';
import { PluginAuthError } from '../src/core/errors.ts';

const scratch = mkdtempSync(join(tmpdir(), 'fpa-embedded-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
const tempDir = () => mkdtempSync(join(scratch, `${dirs++}-`));

/** The CLI as a subprocess, in an empty working directory, on the data directory dir. */
const cli = (dir: string, args: string[]): Promise<RunResult> =>
  runScript('src/cli/main.ts', args, { env: { PGLITE_DATA_DIR: dir }, cwd: tempDir() });
/** `npm run setup`'s script as a subprocess on dir. */
const setup = (dir: string): Promise<RunResult> => runScript('setup-database.ts', [], { env: { PGLITE_DATA_DIR: dir }, cwd: tempDir() });

interface Holder {
  child: ChildProcessWithoutNullStreams;
  pid: number;
  userId: string;
  exited: Promise<number | null>;
  /** Asks it to stop; resolves with how many consumes it was answered allowed for. */
  stop(): Promise<number>;
}

/** Starts test/fixtures/embedded/holder.ts on dir and waits until it owns it and has written. */
async function startHolder(dir: string, env: Record<string, string> = {}): Promise<Holder> {
  const child = spawn(process.execPath, [...(await scriptArgs('test/fixtures/embedded/holder.ts')), dir], {
    cwd: ROOT,
    env: { ...process.env, PGLITE_DATA_DIR: '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const ready = await new Promise<RegExpMatchArray>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/ready (\d+) (\S+)\n/);
      if (m) resolve(m);
    });
    void exited.then((code) => reject(new Error(`holder exited (${code}) before it was ready: ${stderr}`)));
  });
  return {
    child,
    pid: Number(ready[1]),
    userId: ready[2]!,
    exited,
    async stop() {
      child.stdin.end('stop\n');
      const code = await exited;
      assert.equal(code, 0, stderr);
      const done = stdout.match(/done (\d+)\n/);
      assert.ok(done, stdout);
      return Number(done[1]);
    },
  };
}

const allowedFor = async (dir: string, userId: string): Promise<number> => {
  const db = await openDatabase(`pglite:${dir}`);
  try {
    const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_usage WHERE user_id = $1::uuid AND allowed', [userId]);
    return row!.n;
  } finally {
    await db.close();
  }
};

test('pglite only: two `npm run setup` at once on a fresh directory both succeed, and verify passes', async () => {
  const dir = join(tempDir(), 'pglite');
  const [a, b] = await Promise.all([setup(dir), setup(dir)]);
  assert.equal(a.code, 0, a.all);
  assert.equal(b.code, 0, b.all);
  const verify = await cli(dir, ['verify']);
  assert.equal(verify.code, 0, verify.all);
  // Both closed: the lock went with them.
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
  // initdb wrote PostgreSQL's 128 MB buffer pool into the directory's configuration; the library
  // opens it with its own 16 MB (docs/embedded.md, "Memory"), as every opener of the directory does.
  assert.match(readFileSync(join(dir, 'postgresql.conf'), 'utf8'), /^shared_buffers = 128MB/m);
  const db = await openDatabase(`pglite:${dir}`);
  try {
    const [row] = await db.query<{ pool: string }>("SELECT pg_catalog.current_setting('shared_buffers') AS pool");
    assert.equal(row!.pool, '16MB');
  } finally {
    await db.close();
  }
});

test('pglite only: setup and the CLI work beside a process that owns the directory and keeps writing; its writes are all kept', async () => {
  const dir = join(tempDir(), 'pglite');
  await copyDataDir('setup', dir);
  const holder = await startHolder(dir);
  const lock = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'));
  assert.equal(lock.pid, holder.pid);
  const [set, status, plans, usage] = await Promise.all([
    setup(dir),
    cli(dir, ['status']),
    cli(dir, ['plans']),
    cli(dir, ['usage', holder.userId]),
  ]);
  for (const r of [set, status, plans, usage]) assert.equal(r.code, 0, r.all);
  assert.match(set.stdout, new RegExp(`through process ${holder.pid}`));
  assert.match(plans.stdout, /enterprise/);
  const counted = await holder.stop();
  assert.ok(counted > 0);
  // Every consume the holder was answered for is in the directory, and nothing else of it.
  assert.equal(await allowedFor(dir, holder.userId), counted);
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
});

test('pglite only: the lock of a holder killed with SIGKILL is taken over, by one of two processes racing for it', async () => {
  const dir = join(tempDir(), 'pglite');
  await copyDataDir('setup', dir);
  const holder = await startHolder(dir);
  holder.child.kill('SIGKILL');
  await holder.exited;
  assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, holder.pid, 'the dead holder left its lock');
  const [a, b] = await Promise.all([cli(dir, ['status']), cli(dir, ['verify'])]);
  assert.equal(a.code, 0, a.all);
  assert.equal(b.code, 0, b.all);
  // What the holder had written before it was killed is there (each consume is its own commit).
  assert.ok((await allowedFor(dir, holder.userId)) >= 1);
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
});

test('pglite only: a lock whose pid now belongs to another process start is stale and taken over', async () => {
  const dir = join(tempDir(), 'pglite');
  await copyDataDir('empty', dir);
  // This process's pid, but a start time that is not this process's: a reused pid.
  const stale = { pid: process.pid, started: 'another-start', since: '2026-01-01T00:00:00.000Z', token: 'stale-token', socketDir: dir };
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify(stale));
  const db = await openDatabase(`pglite:${dir}`);
  try {
    const lock = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'));
    assert.equal(lock.pid, process.pid);
    assert.equal(lock.started, processStart(process.pid));
    assert.notEqual(lock.token, 'stale-token');
    assert.match(db.description, /^embedded PGlite in /);
    assert.doesNotMatch(db.description, /through process/);
  } finally {
    await db.close();
  }
});

test('pglite only: a holder that does not serve its directory: database_locked naming its pid, and nothing opened beside it', async () => {
  const dir = join(tempDir(), 'pglite');
  await copyDataDir('setup', dir);
  const holder = await startHolder(dir, { HOLDER_SHARE: '0' });
  const status = await cli(dir, ['status']);
  assert.notEqual(status.code, 0);
  assert.match(status.all, /database_locked/);
  assert.match(status.all, new RegExp(`process ${holder.pid} \\(since `));
  await assert.rejects(openDatabase(`pglite:${dir}`), (error: unknown) => {
    assert.ok(error instanceof PluginAuthError);
    assert.equal(error.code, 'database_locked');
    assert.match(error.message, new RegExp(`process ${holder.pid}`));
    return true;
  });
  const counted = await holder.stop();
  assert.equal(await allowedFor(dir, holder.userId), counted);
});

test('pglite only: openDatabase() with no argument opens PGLITE_DATA_DIR, the directory setup and the CLI use', async () => {
  const dir = join(tempDir(), 'pglite');
  await copyDataDir('empty', dir);
  const saved = process.env.PGLITE_DATA_DIR;
  process.env.PGLITE_DATA_DIR = dir;
  try {
    const db = await openDatabase();
    assert.equal(db.description, `embedded PGlite in ${dir}`);
    await db.exec('CREATE TABLE public.marker (id int)');
    await db.close();
  } finally {
    if (saved === undefined) delete process.env.PGLITE_DATA_DIR;
    else process.env.PGLITE_DATA_DIR = saved;
  }
  const db = await openDatabase(`pglite:${dir}`);
  try {
    assert.deepEqual(await db.query("SELECT to_regclass('public.marker')::text AS t"), [{ t: 'marker' }]);
  } finally {
    await db.close();
  }
});

/** Event-loop turns (no timer): long enough for a statement that was free to run to have run. */
const turns = async (n = 50) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

test("pglite only: the owner's transactions and the socket's clients never run inside each other", async () => {
  const dir = join(tempDir(), 'pglite');
  await copyDataDir('empty', dir);
  const owner = await openDatabase(`pglite:${dir}`);
  const client = new pg.Client({ host: dir, port: 5432, user: 'postgres', database: 'postgres' });
  try {
    await owner.exec('CREATE TABLE public.t (who text)');
    client.on('error', () => {});
    await client.connect();
    // A client's statement sent while the owner's transaction is open runs after it.
    let clientInsert: Promise<unknown> | undefined;
    await assert.rejects(
      owner.transaction(async (tx) => {
        await tx.query("INSERT INTO public.t VALUES ('owner')");
        clientInsert = client.query("INSERT INTO public.t VALUES ('client')");
        await turns();
        assert.deepEqual(await tx.query('SELECT who FROM public.t ORDER BY who'), [{ who: 'owner' }]);
        throw new Error('roll back');
      }),
      /roll back/,
    );
    await clientInsert;
    assert.deepEqual(await owner.query('SELECT who FROM public.t ORDER BY who'), [{ who: 'client' }]);

    // The owner's statement sent while a client's transaction is open runs after it.
    await client.query('BEGIN');
    await client.query("INSERT INTO public.t VALUES ('uncommitted')");
    const ownerRead = owner.query<{ n: number }>('SELECT count(*)::int AS n FROM public.t');
    await turns();
    await client.query('ROLLBACK');
    assert.deepEqual(await ownerRead, [{ n: 1 }]);

    // A client that goes away inside its transaction is rolled back, and the owner goes on.
    await client.query('BEGIN');
    await client.query("INSERT INTO public.t VALUES ('lost')");
    const ownerAfter = owner.query<{ n: number }>('SELECT count(*)::int AS n FROM public.t');
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    assert.deepEqual(await ownerAfter, [{ n: 1 }]);
  } finally {
    await client.end().catch(() => {});
    await owner.close();
  }
});

test('db.ts does not load PGlite: nothing it imports statically imports the package, and it reaches src/core/pglite.ts by a dynamic import only', () => {
  const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');
  // Static value imports (not `import type`), transitively from src/core/db.ts.
  const staticImports = (text: string) => [...text.matchAll(/^import (?!type\b)[^;]*? from '([^']+)'/gm)].map((m) => m[1]!);
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of staticImports(read(file))) {
      assert.notEqual(spec, '@electric-sql/pglite', `${file} imports PGlite statically`);
      if (spec.startsWith('.')) visit(join(file, '..', spec));
    }
  };
  visit('src/core/db.ts');
  assert.ok(!seen.has('src/core/pglite.ts') && !seen.has('src/core/pglite-lock.ts') && !seen.has('src/core/pglite-server.ts'), [...seen].join(', '));
  assert.match(read('src/core/db.ts'), /await import\('\.\/pglite\.ts'\)/);
});
