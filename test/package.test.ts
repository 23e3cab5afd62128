// The built package, as a user gets it: build, `npm pack`, install the tarball into an empty
// project, set up with its bin, and run the README quick start against it (PGlite, the embedded
// default, and a real PostgreSQL server). The dependencies come from npm's cache when it has them.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { transform } from 'esbuild';
import { DIALECTS, withDatabase } from './helpers/databases.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let work: string;
let app: string;
let files: string[];

/** The README's quick start, as the JavaScript a user's build would run. */
async function quickStart(): Promise<string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('Then, from your backend')))![1]!;
  const { code } = await transform(`${block}\nconsole.log(JSON.stringify(answer));\n`, { loader: 'ts', format: 'esm' });
  return code;
}

const env = (extra: Record<string, string> = {}) => {
  const e: Record<string, string | undefined> = { ...process.env, ...extra };
  for (const name of ['DATABASE_URL', 'SUPABASE_URL', 'SUPABASE_SERVICE_ROLE_KEY', 'PGLITE_DATA_DIR', 'PLUGIN_TOKEN_SECRET']) if (!(name in extra)) delete e[name];
  return e;
};

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'fpa-package-'));
  const build = join(work, 'build');
  for (const name of ['package.json', 'package-lock.json', 'README.md', 'tsconfig.json', 'tsconfig.build.json', 'bin', 'sql', 'schema', 'src']) {
    cpSync(join(ROOT, name), join(build, name), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(build, 'node_modules'), 'dir');
  await run(NPM, ['run', 'build'], { cwd: build });
  const { stdout } = await run(NPM, ['pack', '--json', '--pack-destination', work], { cwd: build });
  const packed = JSON.parse(stdout)[0] as { filename: string; files: { path: string }[] };
  files = packed.files.map((f) => f.path);
  app = join(work, 'app');
  cpSync(join(ROOT, 'test', 'fixtures', 'empty-project'), app, { recursive: true });
  await run(NPM, ['install', join(work, packed.filename), '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app });
  writeFileSync(join(app, 'quick-start.js'), await quickStart());
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the tarball holds the build, sql/ once, the expected schema, the baseline and the bin; no sources or tests', () => {
  assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'));
  assert.ok(files.includes('dist/schema/index.js') && files.includes('dist/plugin/index.js') && files.includes('dist/cli/cli.js'));
  assert.ok(files.includes('bin/figma-plugin-auth-db.js') && files.includes('schema/expected-schema.json') && files.includes('schema/current.sql') && files.includes('sql/functions/generated/hot-paths.sql'));
  const sql = files.filter((f) => f.endsWith('.sql'));
  assert.ok(sql.length >= 10 && sql.every((f) => f.startsWith('sql/') || f === 'schema/current.sql'), `sql files once, at sql/: ${sql.join(', ')}`);
  assert.deepEqual(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('dist/test')), []);
});

test('the installed package: root, ./schema and ./plugin subpaths import; the root has no schema tooling', async () => {
  const script = `
    const root = await import('figma-plugin-auth-db');
    const schema = await import('figma-plugin-auth-db/schema');
    const plugin = await import('figma-plugin-auth-db/plugin');
    console.log(JSON.stringify({
      root: ['openDatabase', 'createPluginAuth', 'ERRORS'].every((n) => n in root), rootSetup: 'setup' in root,
      schema: ['setup', 'buildSetupScript', 'readCatalog'].every((n) => n in schema),
      plugin: typeof plugin.createPluginClient }));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env: env() });
  assert.deepEqual(JSON.parse(stdout), { root: true, rootSetup: false, schema: true, plugin: 'function' });
});

test('without the optional peers, the Supabase REST path is missing_dependency naming the package; nothing else needs them', async () => {
  const bin = join(app, 'node_modules', '.bin', 'figma-plugin-auth-db');
  const key = 'sb_secret_' + 'k'.repeat(40);
  const result = await run(bin, ['setup', '--production'], {
    cwd: app, env: env({ SUPABASE_URL: 'https://abcdefghijklmnopqrst.supabase.co', SUPABASE_SERVICE_ROLE_KEY: key }),
  }).then(() => ({ code: 0, out: '' }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }));
  assert.notEqual(result.code, 0);
  assert.match(result.out, /missing_dependency: .*@supabase\/supabase-js.*npm install @supabase\/supabase-js/);
  assert.doesNotMatch(result.out, new RegExp(key));
});

const EXPECTED = { allowed: true, reason: 'ok', planSlug: 'free', used: 1, usageLimit: 2, remaining: 1, batchLimit: 1, resetsAt: null, replayed: false };

describe('README quick start against the installed package', () => {
  if (DIALECTS.includes('pglite')) {
    test('[pglite] its bin sets up embedded PGlite, then the quick start consumes one free resize', async () => {
      const setup = await run(join(app, 'node_modules', '.bin', 'figma-plugin-auth-db'), ['setup'], { cwd: app, env: env() });
      assert.match(setup.stdout, /Database Schema Implementation Complete/);
      const { stdout } = await run(process.execPath, ['quick-start.js'], { cwd: app, env: env() });
      assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1)!), EXPECTED);
    });
  }
  if (DIALECTS.includes('postgres')) {
    test('[postgres] its bin sets up the server, then the quick start consumes one free resize', () =>
      withDatabase('postgres', async ({ url }) => {
        await run(join(app, 'node_modules', '.bin', 'figma-plugin-auth-db'), ['setup', '--database-url', url!], { cwd: app, env: env() });
        const { stdout } = await run(process.execPath, ['quick-start.js'], { cwd: app, env: env({ DATABASE_URL: url! }) });
        assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1)!), EXPECTED);
      }, { setup: false }));
  }
});
