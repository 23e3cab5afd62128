// The README's quick start, as a newcomer follows it: its snippet is examples/quick-start.mjs line
// for line; in a fresh empty directory, `setup` then the snippet twice, on embedded PGlite (the
// default, no DATABASE_URL) and on a real PostgreSQL server. Both runs succeed and print the answer:
// the second finds the user the first created and counts the free plan's second resize.
// Here 'figma-plugin-auth-db' is this repository's source; test/package.test.ts does the same with
// the packed tarball installed from npm's side.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { ROOT, runScript, spawnCollect } from './helpers/run.ts';
import { pickAnswer, printedAnswer, QUICK_START_RUNS, readmeQuickStart } from './helpers/readme.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const example = readFileSync(new URL('../examples/quick-start.mjs', import.meta.url), 'utf8');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

const quick = readmeQuickStart(readme);
const scratch = mkdtempSync(join(tmpdir(), 'fpa-readme-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('the quick start: install, setup, then the script run twice; the script is examples/quick-start.mjs', () => {
  assert.deepEqual(quick.commands, [
    'mkdir my-plugin-backend && cd my-plugin-backend && npm init -y',
    'npm install figma-plugin-auth-db',
    'npx figma-plugin-auth-db setup',
  ]);
  assert.equal(quick.script, example);
  assert.deepEqual(quick.runs, ['node quick-start.mjs', 'node quick-start.mjs']);
  assert.match(readme, /^npm test\b/m, 'the README shows npm test');
});

/**
 * A fresh directory holding the script and a `figma-plugin-auth-db` that is this repository's
 * source (run through tsx), as `npm install` would leave it in node_modules.
 */
function freshProject(): string {
  const dir = mkdtempSync(join(scratch, 'project-'));
  const pkg = join(dir, 'node_modules', 'figma-plugin-auth-db');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'figma-plugin-auth-db', type: 'module', exports: { '.': './index.js' } }));
  writeFileSync(join(pkg, 'index.js'), `export * from ${JSON.stringify(pathToFileURL(join(ROOT, 'src', 'index.ts')).href)};\n`);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'my-plugin-backend', private: true }));
  writeFileSync(join(dir, 'quick-start.mjs'), quick.script);
  return dir;
}

async function runTwice(dir: string, env: Record<string, string | undefined>) {
  const results = [];
  for (let i = 0; i < 2; i++) {
    const result = await spawnCollect(process.execPath, ['--import', TSX, 'quick-start.mjs'], { cwd: dir, env });
    assert.equal(result.code, 0, result.all);
    results.push(printedAnswer(result.stdout));
  }
  assert.deepEqual(results.map(pickAnswer), QUICK_START_RUNS);
}

const cleanEnv = (extra: Record<string, string> = {}) => {
  const env: Record<string, string | undefined> = { ...process.env, ...extra };
  for (const name of ['DATABASE_URL', 'SUPABASE_URL', 'SUPABASE_SERVICE_ROLE_KEY', 'PGLITE_DATA_DIR', 'PLUGIN_TOKEN_SECRET']) if (!(name in extra)) delete env[name];
  return env;
};

describe('README quick start, run as written twice in a fresh directory', () => {
  if (DIALECTS.includes('pglite')) {
    test('[pglite] setup makes ./.data/pglite there; both runs succeed and print the answer', async () => {
      const dir = freshProject();
      const setup = await runScript('src/cli/main.ts', ['setup'], { cwd: dir });
      assert.equal(setup.code, 0, setup.all);
      assert.match(setup.stdout, /embedded PGlite in \.\/\.data\/pglite/);
      await runTwice(dir, cleanEnv());
    });
  }
  if (DIALECTS.includes('postgres')) {
    test('[postgres] with DATABASE_URL: both runs succeed and print the answer', () =>
      withDatabase('postgres', async ({ url }) => {
        const dir = freshProject();
        const setup = await runScript('src/cli/main.ts', ['setup', '--database-url', url!], { cwd: dir });
        assert.equal(setup.code, 0, setup.all);
        await runTwice(dir, cleanEnv({ DATABASE_URL: url! }));
      }, { setup: false }));
  }
});
