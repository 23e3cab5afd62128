// The test files as JavaScript compiled ahead of time, for `npm test`: each test file and what it
// imports from this repository is bundled once (esbuild, the compiler the TypeScript loader runs
// on every import) into node_modules/.cache, keyed by the contents of every source file, so a test
// process loads one module of its own instead of resolving and loading a hundred-odd files through
// the loader, one round trip to its thread each (about half a second of CPU per test file).
// Packages stay imports. `import.meta.url` is replaced in each file by that file's own URL, so
// paths found from it (../../sql/, fixtures, the package bin) are the real ones; a linked source
// map points a failure's stack at the TypeScript line.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CACHE = join(ROOT, 'node_modules', '.cache', 'figma-plugin-auth-db-test');
/** The folders whose files a test may import (and so a bundle may contain). */
const SOURCES = ['src', 'test', 'examples', 'scripts', 'bench', 'bin'];

/** The source files under dir, never looking into node_modules or dot-folders (the runtimes' tests install packages there). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && !entry.name.startsWith('.')) found.push(...filesUnder(path));
    } else if (entry.isFile() && /\.(ts|mts|js|mjs|json)$/.test(entry.name)) {
      found.push(path);
    }
  }
  return found.sort();
}

/** Each file's own URL in place of import.meta.url (the bundle's would point into the cache). */
const ownUrl: Plugin = {
  name: 'own-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.(ts|mts)$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      return { contents: source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
    });
  },
};

/**
 * A name for the bundle of a test file: its path in the repository (whose contents the folder's
 * name covers), or, outside it, a digest of its path and contents.
 */
function bundleName(file: string): string {
  const rel = relative(ROOT, file);
  if (!rel.startsWith('..') && !rel.startsWith(sep)) return rel.split(sep).join('__').replace(/\.ts$/, '');
  const digest = createHash('sha256').update(file).update('\0').update(readFileSync(file)).digest('hex').slice(0, 12);
  return `outside-${digest}-${basename(file, '.ts')}`;
}

/** Bundle folders of other source versions, unused for an hour (a run in progress keeps its own). */
function prune(keep: string) {
  for (const name of readdirSync(CACHE)) {
    const path = join(CACHE, name);
    if (!name.startsWith('tests-') || path === keep) continue;
    try {
      if (Date.now() - statSync(path).mtimeMs > 3_600_000) rmSync(path, { recursive: true, force: true });
    } catch {}
  }
}

/**
 * The bundles of these test files (paths), built unless the cache holds them for the current
 * sources; returns each file's bundle path in the same order.
 */
export async function testBundles(files: string[]): Promise<string[]> {
  const absolute = files.map((f) => resolve(f));
  const hash = createHash('sha256');
  for (const path of [...SOURCES.flatMap((d) => filesUnder(join(ROOT, d))), join(ROOT, 'package-lock.json')]) {
    hash.update(path).update('\0').update(readFileSync(path)).update('\0');
  }
  const dir = join(CACHE, `tests-${hash.digest('hex').slice(0, 12)}`);
  const out = absolute.map((f) => join(dir, `${bundleName(f)}.mjs`));
  const missing = absolute.filter((_, i) => !existsSync(out[i]!));
  mkdirSync(dir, { recursive: true });
  utimesSync(dir, new Date(), new Date()); // in use: not pruned by another run for the next hour
  prune(dir);
  if (missing.length > 0) {
    // Built aside and moved in file by file: a run that started earlier may be reading the folder.
    const tmp = join(CACHE, `building-${process.pid}-${Date.now()}`);
    rmSync(tmp, { recursive: true, force: true });
    await build({
      entryPoints: Object.fromEntries(missing.map((f) => [bundleName(f), f])),
      outdir: tmp, outExtension: { '.js': '.mjs' }, bundle: true, packages: 'external', platform: 'node', format: 'esm',
      target: `node${process.versions.node}`, sourcemap: 'linked', logLevel: 'warning', plugins: [ownUrl],
    });
    // The maps first, so a bundle is never there without its map.
    for (const name of readdirSync(tmp).sort((a, b) => Number(b.endsWith('.map')) - Number(a.endsWith('.map')))) {
      renameSync(join(tmp, name), join(dir, name));
    }
    rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}
