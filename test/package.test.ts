// The built package, as a user gets it: `npm pack` with no build beforehand (prepack builds),
// install the tarball into an empty project, set up with its bin, run the README quick start there
// twice (PGlite, the embedded default, and a real PostgreSQL server), type-check a file importing
// the root, ./plugin and ./schema with skipLibCheck off, and call the CLI's help and version.
// The dependencies come from npm's cache when it has them.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { pickAnswer, printedAnswer, QUICK_START_RUNS, readmeQuickStart } from './helpers/readme.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
let work: string;
let app: string;
let bin: string;
let files: string[];

const quick = readmeQuickStart(readFileSync(join(ROOT, 'README.md'), 'utf8'));

const env = (extra: Record<string, string> = {}) => {
  const e: Record<string, string | undefined> = { ...process.env, ...extra };
  for (const name of ['DATABASE_URL', 'SUPABASE_URL', 'SUPABASE_SERVICE_ROLE_KEY', 'PGLITE_DATA_DIR', 'PLUGIN_TOKEN_SECRET']) if (!(name in extra)) delete e[name];
  return e;
};

/** Runs a command; resolves with its exit code and output whether it failed or not. */
const attempt = (file: string, args: string[], options: { cwd: string; env: Record<string, string | undefined> }) =>
  run(file, args, options).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'fpa-package-'));
  const build = join(work, 'build');
  // A checkout without dist/: `npm pack` alone must build it (prepack).
  for (const name of ['package.json', 'package-lock.json', 'README.md', 'tsconfig.json', 'tsconfig.build.json', 'bin', 'sql', 'schema', 'src']) {
    cpSync(join(ROOT, name), join(build, name), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(build, 'node_modules'), 'dir');
  assert.equal(existsSync(join(build, 'dist')), false);
  const { stdout } = await run(NPM, ['pack', '--json', '--pack-destination', work], { cwd: build });
  const packed = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  files = packed[0]!.files.map((f) => f.path);
  app = join(work, 'app');
  cpSync(join(ROOT, 'test', 'fixtures', 'empty-project'), app, { recursive: true });
  await run(NPM, ['install', join(work, packed[0]!.filename), '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app });
  writeFileSync(join(app, 'quick-start.mjs'), quick.script);
  bin = join(app, 'node_modules', '.bin', 'figma-plugin-auth-db');
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('npm pack without a build ships the build (prepack), sql/ once, the expected schema, the baseline and the bin; no sources or tests', () => {
  assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'));
  assert.ok(files.includes('dist/schema/index.js') && files.includes('dist/plugin/index.js') && files.includes('dist/cli/cli.js'));
  assert.ok(files.includes('bin/figma-plugin-auth-db.js') && files.includes('schema/expected-schema.json') && files.includes('schema/current.sql') && files.includes('sql/functions/generated/hot-paths.sql'));
  const sql = files.filter((f) => f.endsWith('.sql'));
  assert.ok(sql.length >= 10 && sql.every((f) => f.startsWith('sql/') || f === 'schema/current.sql'), `sql files once, at sql/: ${sql.join(', ')}`);
  assert.deepEqual(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('dist/test')), []);
});

test('the installed root is narrow: the entry, the errors and three operator helpers; no part factory, no HTTP helper', async () => {
  const script = `
    const root = await import('figma-plugin-auth-db');
    const schema = await import('figma-plugin-auth-db/schema');
    const plugin = await import('figma-plugin-auth-db/plugin');
    const edge = await import('figma-plugin-auth-db/edge');
    console.log(JSON.stringify({
      edge: ['createPluginAuth', 'createPluginServer', 'openPostgresJs', 'withRequestDatabase', 'toNextRoute'].every((n) => n in edge) && !('openDatabase' in edge),
      root: Object.keys(root).sort(),
      schema: ['setup', 'buildSetupScript', 'readCatalog'].every((n) => n in schema),
      plugin: typeof plugin.createPluginClient }));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env: env() });
  assert.deepEqual(JSON.parse(stdout), {
    edge: true,
    root: [
      'AuthError', 'DatabaseError', 'ERRORS', 'NotFoundError', 'PluginAuthError', 'ServiceError', 'SetupError', 'ValidationError',
      'createDashboardHandler', 'createPluginAuth', 'openDatabase', 'purgeUsage', 'usageReport',
    ],
    schema: true,
    plugin: 'function',
  });
});

test('the declarations type-check with skipLibCheck off, in a project without this package\'s devDependencies', async () => {
  writeFileSync(join(app, 'check.ts'), `
import { createPluginAuth, openDatabase, PluginAuthError, type PluginAuth, type UsageAnswer } from 'figma-plugin-auth-db';
import { createPluginClient, type PluginClient } from 'figma-plugin-auth-db/plugin';
import { buildSetupScript, readCatalog } from 'figma-plugin-auth-db/schema';

const db = await openDatabase('memory://');
const auth: PluginAuth = createPluginAuth(db, { tokenSecret: 'x'.repeat(32) });
const answer: UsageAnswer = await auth.usage.check('00000000-0000-0000-0000-000000000000', 'resize');
const client: PluginClient = createPluginClient({ apiBaseUrl: 'https://api.example.com' });
export const used: [number, boolean, string, unknown, unknown] = [answer.used, PluginAuthError.prototype instanceof Error, buildSetupScript(), readCatalog, client];
`);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: false, lib: ['es2022', 'dom'], types: ['node'] },
    files: ['check.ts'],
  }));
  // Not in the project: what only this repository develops with.
  for (const dev of ['@supabase/supabase-js', '@figma/plugin-typings', '@types/ws', 'typescript']) assert.equal(existsSync(join(app, 'node_modules', dev)), false, dev);
  const result = await attempt(process.execPath, [TSC, '-p', app], { cwd: app, env: env() });
  assert.equal(result.code, 0, result.stdout + result.stderr);
});

test('the installed CLI: --version, --help, help <cmd>, <group> --help, <cmd> --help exit 0; keygen makes a key', async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const version = await attempt(bin, ['--version'], { cwd: app, env: env() });
  assert.deepEqual([version.code, version.stdout.trim()], [0, `figma-plugin-auth-db ${pkg.version}`]);
  for (const args of [['--help'], ['help', 'tokens'], ['tokens', '--help'], ['setup', '--help'], ['help', 'keygen']]) {
    const result = await attempt(bin, args, { cwd: app, env: env() });
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stdout, /figma-plugin-auth-db/);
    assert.equal(result.stderr, '');
  }
  const keygen = await attempt(bin, ['keygen'], { cwd: app, env: env() });
  assert.equal(keygen.code, 0, keygen.stderr);
  assert.equal(JSON.parse(keygen.stdout).alg, 'ES256');
});

test('without the optional peers, the Supabase REST path is missing_dependency naming the package; nothing else needs them', async () => {
  const key = 'sb_secret_' + 'k'.repeat(40);
  const result = await attempt(bin, ['setup', '--production'], {
    cwd: app, env: env({ SUPABASE_URL: 'https://abcdefghijklmnopqrst.supabase.co', SUPABASE_SERVICE_ROLE_KEY: key }),
  });
  assert.notEqual(result.code, 0);
  const out = result.stdout + result.stderr;
  assert.match(out, /missing_dependency: .*@supabase\/supabase-js.*npm install @supabase\/supabase-js/);
  assert.match(out, /^npx figma-plugin-auth-db setup --production$/m, 'the retry command is one the consumer has');
  assert.doesNotMatch(out, new RegExp(key));
});

async function quickStartTwice(extra: Record<string, string> = {}) {
  const answers = [];
  for (const command of quick.runs) {
    const [file, ...args] = command.split(' ');
    assert.equal(file, 'node');
    const { stdout } = await run(process.execPath, args, { cwd: app, env: env(extra) });
    answers.push(pickAnswer(printedAnswer(stdout)));
  }
  assert.deepEqual(answers, QUICK_START_RUNS);
}

describe('README quick start against the installed package, run twice', () => {
  if (DIALECTS.includes('pglite')) {
    test('[pglite] its bin sets up embedded PGlite, then the quick start consumes the free plan\'s two resizes', async () => {
      const setup = await run(bin, ['setup'], { cwd: app, env: env() });
      assert.match(setup.stdout, /Database Schema Implementation Complete/);
      assert.match(setup.stdout, /^Run: npx figma-plugin-auth-db setup /m);
      await quickStartTwice();
    });
  }
  if (DIALECTS.includes('postgres')) {
    test('[postgres] its bin sets up the server, then the quick start consumes the free plan\'s two resizes', () =>
      withDatabase('postgres', async ({ url }) => {
        await run(bin, ['setup', '--database-url', url!], { cwd: app, env: env() });
        await quickStartTwice({ DATABASE_URL: url! });
      }, { setup: false }));
  }
});
