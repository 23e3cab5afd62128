// PGlite start-up for the tests, paid once instead of per test or per process:
// - the WASM module is compiled once per process and the file-system bundle read once, and both are
//   handed to every PGlite.create (otherwise each instance compiles 9 MB of WASM again);
// - the data directory of a freshly initialised cluster (initdb: seconds of CPU) and of a set-up one
//   are kept on disk in node_modules/.cache, keyed by the PGlite version and the schema's checksum,
//   built by the first process that needs them (the others wait on a lock) and shared by all.
// Every test still gets an instance of its own, loaded from one of these snapshots.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { PGlite, type PGliteOptions } from '@electric-sql/pglite';
import { PGLITE_PARSERS } from '../../src/core/db.ts';
import { buildSetupScript, loadMigrations } from '../../src/schema/migrations.ts';

const DIST = dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite')));
const VERSION = JSON.parse(readFileSync(join(DIST, '..', 'package.json'), 'utf8')).version as string;
const CACHE = fileURLToPath(new URL('../../node_modules/.cache/figma-plugin-auth-db-test/', import.meta.url));

let shared: Promise<Pick<PGliteOptions, 'pgliteWasmModule' | 'fsBundle' | 'parsers'>> | undefined;
/** Options for PGlite.create: this process's compiled WASM module, file-system bundle and the parsers. */
export function pgliteOptions(): Promise<Pick<PGliteOptions, 'pgliteWasmModule' | 'fsBundle' | 'parsers'>> {
  shared ??= (async () => ({
    pgliteWasmModule: await WebAssembly.compile(readFileSync(join(DIST, 'pglite.wasm'))),
    fsBundle: new Blob([readFileSync(join(DIST, 'pglite.data'))]),
    parsers: PGLITE_PARSERS,
  }))();
  return shared;
}

/** Builds path with build(tmp) once across processes: a lock directory, a temporary name, a rename. */
async function once(path: string, build: (tmp: string) => Promise<void>): Promise<string> {
  if (existsSync(path)) return path;
  mkdirSync(CACHE, { recursive: true });
  const lock = `${path}.lock`;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (existsSync(path)) return path;
    // A builder that was killed leaves its lock behind: take it over after three minutes.
    try {
      if (Date.now() - statSync(lock).mtimeMs > 180_000) rmSync(lock, { recursive: true, force: true });
    } catch {}
    await sleep(100);
  }
  try {
    if (existsSync(path)) return path;
    const tmp = `${path}.${process.pid}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    await build(tmp);
    renameSync(tmp, path);
    return path;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

const SCHEMA = createHash('sha256').update(buildSetupScript()).digest('hex').slice(0, 12);
const EMPTY = `pglite-${VERSION}-empty`;
const SET_UP = `pglite-${VERSION}-${SCHEMA}-setup`;

/** Removes snapshots of other PGlite or schema versions (each is tens of MB). */
function prune() {
  for (const name of readdirSync(CACHE)) {
    if (!name.startsWith(EMPTY) && !name.startsWith(SET_UP)) rmSync(join(CACHE, name), { recursive: true, force: true });
  }
}

async function dumpOf(db: PGlite): Promise<Uint8Array> {
  return new Uint8Array(await (await db.dumpDataDir('none')).arrayBuffer());
}

/** The tarball of a freshly initialised cluster: what PGlite.create() makes with initdb. */
async function emptyTarball(): Promise<string> {
  return once(join(CACHE, `${EMPTY}.tar`), async (tmp) => {
    const db = await PGlite.create(await pgliteOptions());
    writeFileSync(tmp, await dumpOf(db));
    await db.close();
  });
}

/** The tarball of a cluster with the schema set up, from the empty one plus the setup script. */
async function setUpTarball(): Promise<string> {
  const empty = await emptyTarball();
  return once(join(CACHE, `${SET_UP}.tar`), async (tmp) => {
    prune();
    const db = await PGlite.create({ ...(await pgliteOptions()), loadDataDir: new Blob([readFileSync(empty)]) });
    await db.exec(`BEGIN;\n${buildSetupScript()}\nCOMMIT;`);
    writeFileSync(tmp, await dumpOf(db));
    await db.close();
  });
}

const blobs = new Map<string, Promise<Blob>>();
/** A snapshot for loadDataDir: a freshly initialised cluster, or one with the schema set up. */
export function pgliteSnapshot(kind: 'empty' | 'setup'): Promise<Blob> {
  if (!blobs.has(kind)) {
    blobs.set(kind, (kind === 'setup' ? setUpTarball() : emptyTarball()).then((path) => new Blob([readFileSync(path)])));
  }
  return blobs.get(kind)!;
}

/** Builds both snapshots now (npm test does, before the test processes start). */
export async function warmPgliteSnapshots(): Promise<void> {
  await setUpTarball();
}

/** Copies a data directory to dir (for code that opens `pglite:<dir>` itself): initialised, or set up. */
export async function copyDataDir(kind: 'empty' | 'setup', dir: string): Promise<void> {
  const source = await once(join(CACHE, `${kind === 'setup' ? SET_UP : EMPTY}.dir`), async (tmp) => {
    const db = await PGlite.create({ ...(await pgliteOptions()), dataDir: tmp, loadDataDir: await pgliteSnapshot(kind) });
    await db.close();
  });
  cpSync(source, dir, { recursive: true });
}
