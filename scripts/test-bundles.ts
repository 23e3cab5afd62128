// The test files as JavaScript compiled ahead of time, for `npm test`: each test file and what it
// imports from this repository is bundled once (esbuild, the compiler the TypeScript loader runs
// on every import) into node_modules/.cache, keyed by the contents of every source file, so a test
// process loads compiled modules instead of resolving and loading a hundred-odd files through the
// loader, one round trip to its thread each (about half a second of CPU per test file).
// The bundles are built together with shared chunks (esbuild's code splitting): what several test
// files import from the repository (the helpers, src/) is one module in a process that runs them
// (scripts/test.ts runs test files in groups, one process a group: groupEntry below), so those files
// share its state: PGlite's compiled WebAssembly and warmed-up instances, the reused databases.
// Packages stay imports. `import.meta.url` is replaced in each file by that file's own URL, so
// paths found from it (../../sql/, fixtures, the package bin) are the real ones; a linked source
// map points a failure's stack at the TypeScript line.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
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
  mkdirSync(dir, { recursive: true });
  utimesSync(dir, new Date(), new Date()); // in use: not pruned by another run for the next hour
  prune(dir);
  if (absolute.some((_, i) => !existsSync(out[i]!))) {
    // All the files asked for are built together, so that the ones a process runs share their
    // chunks. Built aside and moved in file by file: a run that started earlier may be reading the
    // folder. A chunk's name is a digest of its contents, so one that is there already is the same.
    const tmp = join(CACHE, `building-${process.pid}-${Date.now()}`);
    rmSync(tmp, { recursive: true, force: true });
    await build({
      entryPoints: Object.fromEntries(absolute.map((f) => [bundleName(f), f])),
      outdir: tmp, outExtension: { '.js': '.mjs' }, bundle: true, splitting: true, packages: 'external', platform: 'node',
      format: 'esm', target: `node${process.versions.node}`, sourcemap: 'linked', logLevel: 'warning', plugins: [ownUrl],
    });
    // The maps first, then the chunks, then the test files: nothing is there before what it loads.
    const order = (name: string) => (name.endsWith('.map') ? 0 : name.startsWith('chunk-') ? 1 : 2);
    for (const name of readdirSync(tmp).sort((a, b) => order(a) - order(b))) {
      renameSync(join(tmp, name), join(dir, name));
    }
    rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

/**
 * A test file that runs these bundles (paths) in one process, one after the other: written beside
 * them, named by a digest of the list. A file that fails to load fails a test named after it, and
 * the others still run.
 */
export function groupEntry(bundles: string[]): string {
  const names = bundles.map((b) => basename(b));
  const dir = dirname(bundles[0]!);
  const path = join(dir, `group-${createHash('sha256').update(names.join('\n')).digest('hex').slice(0, 12)}.test.mjs`);
  if (!existsSync(path)) {
    const text = [
      `// ${names.join(', ')}`,
      "import { test } from 'node:test';",
      `for (const name of ${JSON.stringify(names)}) {`,
      '  try {',
      '    await import(`./${name}`);',
      '  } catch (error) {',
      '    test(`${name} loads`, () => { throw error; });',
      '  }',
      '}',
      '',
    ].join('\n');
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  }
  return path;
}
