// The tree shows the architecture (docs/architecture.md, "Where things are in the source"): a handful of files at the top of
// src/, a folder per concern opening with what it holds, no import cycle, and the runtime never
// reaching into the schema tooling or the command line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { posix } from 'node:path';

const ROOT = new URL('../', import.meta.url);
const files = (readdirSync(new URL('src/', ROOT), { recursive: true }) as string[])
  .map((f) => `src/${f.split('\\').join('/')}`)
  .filter((f) => f.endsWith('.ts'));

/** Every relative import (static, type-only, re-export or dynamic) of each file, as repository paths. */
const graph = new Map<string, string[]>(
  files.map((f) => {
    const text = readFileSync(new URL(f, ROOT), 'utf8');
    const specs = [...text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => posix.normalize(posix.join(posix.dirname(f), m[1]!)));
    return [f, specs];
  }),
);
const folderOf = (f: string) => f.split('/')[1]!;

test('src/ holds a handful of files at its top level and a folder per concern', () => {
  const top = readdirSync(new URL('src/', ROOT)).filter((n) => statSync(new URL(`src/${n}`, ROOT)).isFile());
  assert.deepEqual(top.sort(), ['auth.ts', 'index.ts']);
  const folders = readdirSync(new URL('src/', ROOT)).filter((n) => statSync(new URL(`src/${n}`, ROOT)).isDirectory()).sort();
  assert.deepEqual(folders, ['billing', 'cli', 'core', 'dashboard', 'edge', 'entitlements', 'http', 'plugin', 'schema', 'server', 'tokens', 'usage']);
  for (const folder of folders) {
    const main = folder === 'cli' ? 'cli.ts' : 'index.ts';
    const text = readFileSync(new URL(`src/${folder}/${main}`, ROOT), 'utf8');
    assert.match(text, /^\/\/ \S/, `src/${folder}/${main} opens with a comment saying what the folder holds`);
  }
});

test('every relative import resolves to a file of the tree', () => {
  for (const [f, deps] of graph) for (const d of deps) if (d.startsWith('src/')) assert.ok(graph.has(d), `${f} imports ${d}, which is not there`);
});

test('no import cycle, type-only imports included', () => {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (n: string) => {
    state.set(n, 1);
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (state.get(d) === 1) cycles.push([...stack.slice(stack.indexOf(d)), d].join(' → '));
      else if (!state.has(d) && graph.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const f of files) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});

test('the runtime never imports the schema tooling or the command line; core/ and plugin/ stand alone', () => {
  for (const [f, deps] of graph) {
    const from = folderOf(f);
    for (const d of deps.filter((x) => x.startsWith('src/'))) {
      const to = folderOf(d);
      if (from !== 'schema' && from !== 'cli') assert.ok(to !== 'schema' && to !== 'cli', `runtime file ${f} imports ${d}`);
      if (from === 'schema') assert.notEqual(to, 'cli', `${f}: the schema tooling does not import the command line`);
      if (from === 'core') assert.equal(to, 'core', `${f}: core/ imports only core/`);
      // ...and the one error → HTTP status table it shares with the server (a file with no imports).
      if (from === 'plugin') assert.ok(to === 'plugin' || d === 'src/core/http-status.ts', `${f}: the browser-side client imports only plugin/ (and core/http-status.ts)`);
    }
  }
});

test('the package exports the runtime at the root and the tooling at ./schema', () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8'));
  assert.deepEqual(Object.keys(pkg.exports).sort(), ['.', './edge', './plugin', './plugin/main', './schema', './server']);
  const root = readFileSync(new URL('src/index.ts', ROOT), 'utf8');
  assert.doesNotMatch(root, /from '\.\/(schema|cli)\//);
  // sql/ ships once: at the package root, where src/schema/migrations.ts finds it.
  assert.deepEqual(pkg.files, ['dist', 'sql', 'schema/expected-schema.json', 'schema/current.sql', 'bin']);
});
