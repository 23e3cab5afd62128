// The edge-safe entries: what a backend on Deno (Supabase Edge Functions), Bun, Cloudflare Workers or
// a Next.js edge route imports. Their import graph (type-only imports erased, as every runtime does)
// holds no node:* module, no Node built-in by its bare name, no PGlite and no pg; none of our files
// in it uses Buffer; the only packages are jose, postgres and oauth4webapi. The bundle stays under Supabase's
// 20 MB limit. The root entry is walked the same way, and must show what the edge entry avoids:
// proof that the walk sees it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { build, type Metafile } from 'esbuild';

/** The entries that must stay edge-safe; the server entry joins when it exists. */
const ENTRIES = ['src/edge/index.ts', ...(existsSync('src/server/index.ts') ? ['src/server/index.ts'] : [])];
const ALLOWED_PACKAGES = new Set(['jose', 'postgres', 'oauth4webapi']); // oauth4webapi: Sign in with Figma (Web Crypto, fetch)
const NODE_BUILTINS = new Set(builtinModules);
/** Supabase Edge Functions' limit for a function after bundling. */
const SUPABASE_LIMIT_BYTES = 20 * 1024 * 1024;

async function graph(entry: string): Promise<Metafile> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'neutral',
    packages: 'external',
    metafile: true,
    logLevel: 'silent',
  });
  return result.metafile;
}

/** Every package or built-in imported from our files, with the files importing it. */
function externals(meta: Metafile): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [file, input] of Object.entries(meta.inputs)) {
    for (const imported of input.imports) {
      if (!imported.external) continue;
      out.set(imported.path, [...(out.get(imported.path) ?? []), file]);
    }
  }
  return out;
}

const packageOf = (specifier: string) => (specifier.startsWith('@') ? specifier.split('/').slice(0, 2) : specifier.split('/').slice(0, 1)).join('/');
const isNodeBuiltin = (specifier: string) => specifier.startsWith('node:') || NODE_BUILTINS.has(packageOf(specifier));
/** Code without its comments (a comment may name Buffer to say why it is not used). */
const code = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');

for (const entry of ENTRIES) {
  test(`${entry}: no node:* module, no PGlite, no pg, no Buffer; only jose and postgres`, async () => {
    const meta = await graph(entry);
    const found = externals(meta);
    const builtins = [...found].filter(([s]) => isNodeBuiltin(s)).map(([s, files]) => `${s} (from ${files.join(', ')})`);
    assert.deepEqual(builtins, [], 'Node built-ins in the edge graph');
    const packages = [...found.keys()].filter((s) => !isNodeBuiltin(s)).map(packageOf);
    assert.deepEqual([...new Set(packages)].filter((p) => !ALLOWED_PACKAGES.has(p)), [], 'packages other than jose, postgres and oauth4webapi');
    const files = Object.keys(meta.inputs).filter((f) => f.startsWith('src/'));
    if (entry === 'src/edge/index.ts') {
      assert.ok(['src/auth.ts', 'src/core/postgresjs.ts', 'src/server/server.ts'].every((f) => files.includes(f)), 'the walk reached createPluginAuth, the driver and the server');
    }
    assert.ok(!files.includes('src/core/db.ts'), 'core/db.ts (pg and PGlite) is not in the graph');
    const bufferUsers = files.filter((f) => /\bBuffer\b/.test(code(readFileSync(f, 'utf8'))));
    assert.deepEqual(bufferUsers, [], 'Buffer used in the edge graph');
  });

  test(`${entry}: bundled with its packages, under Supabase's 20 MB`, async () => {
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'node', // postgres.js's Node build: what Deno and Bun load from npm
      external: ['node:*', ...NODE_BUILTINS],
      metafile: true,
      logLevel: 'silent',
    });
    const bytes = result.outputFiles.reduce((n, f) => n + f.contents.byteLength, 0);
    const inputs = Object.keys(result.metafile.inputs);
    if (entry === 'src/edge/index.ts') {
      assert.ok(inputs.some((f) => f.includes('node_modules/postgres/')) && inputs.some((f) => f.includes('node_modules/jose/')), 'the packages are in the bundle');
    }
    assert.ok(!inputs.some((f) => f.includes('@electric-sql/pglite') || /node_modules\/pg\//.test(f)));
    assert.ok(bytes < SUPABASE_LIMIT_BYTES, `${bytes} bytes`);
    process.stdout.write(`# ${entry}: bundle ${(bytes / 1024).toFixed(0)} kB (limit ${SUPABASE_LIMIT_BYTES / 1024 / 1024} MB)\n`);
  });
}

test('the walk sees what the edge entry avoids: the root entry reaches PGlite, pg and node:*', async () => {
  const found = externals(await graph('src/index.ts'));
  const packages = new Set([...found.keys()].map(packageOf));
  assert.ok(packages.has('@electric-sql/pglite'), 'PGlite');
  assert.ok(packages.has('pg'), 'pg');
  assert.ok([...found.keys()].some((s) => s.startsWith('node:')), 'node:*');
});
