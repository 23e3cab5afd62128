// PGlite start-up for the tests, paid once instead of per test or per process:
// - the WASM module is compiled once per process and the file-system bundle read once, and both are
//   handed to every PGlite.create (otherwise each instance compiles 9 MB of WASM again);
// - the data directory of a freshly initialised cluster (initdb: seconds of CPU) and of a set-up one
//   are kept on disk in node_modules/.cache, keyed by the PGlite version and the schema's checksum,
//   built by the first process that needs them (the others wait on a lock) and shared by all.
// Every test still gets an instance of its own, loaded from one of these snapshots and started with
// the library's start parameters (its 16 MB buffer pool; see pgliteOptions). A snapshot is read
// and parsed once per process, and each instance's in-memory file system is filled from the parsed
// files (snapshotFs): PGlite's own loadDataDir reads, parses and unpacks the whole tarball again
// for every instance, checking every folder of every path on the way.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryFS, PGlite, type PGliteOptions } from '@electric-sql/pglite';
import { PGLITE_PARSERS, PGLITE_START_PARAMS } from '../../src/core/pglite.ts';
import { buildSetupScript, loadMigrations } from '../../src/schema/migrations.ts';
import { catalogMark, IdleShelf, readPristine, resetData, type Pristine } from './reuse.ts';

const DIST = dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite')));
const VERSION = JSON.parse(readFileSync(join(DIST, '..', 'package.json'), 'utf8')).version as string;
const CACHE = fileURLToPath(new URL('../../node_modules/.cache/figma-plugin-auth-db-test/', import.meta.url));

let shared: Promise<Pick<PGliteOptions, 'pgliteWasmModule' | 'fsBundle' | 'parsers' | 'startParams'>> | undefined;
/**
 * Options for PGlite.create: this process's compiled WASM module, file-system bundle, the parsers,
 * and the library's start parameters (its 16 MB buffer pool: every start zeroes the whole pool, and
 * initdb's 128 MB was more than half of an instance's CPU).
 */
export function pgliteOptions(): Promise<Pick<PGliteOptions, 'pgliteWasmModule' | 'fsBundle' | 'parsers' | 'startParams'>> {
  shared ??= (async () => ({
    pgliteWasmModule: await WebAssembly.compile(readFileSync(join(DIST, 'pglite.wasm'))),
    fsBundle: new Blob([readFileSync(join(DIST, 'pglite.data'))]),
    parsers: PGLITE_PARSERS,
    startParams: PGLITE_START_PARAMS,
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
// The snapshots' own format (dumpOf's trimming): a change here makes new ones.
const FORMAT = 't4';
const EMPTY = `pglite-${VERSION}-${FORMAT}-empty`;
const SET_UP = `pglite-${VERSION}-${FORMAT}-${SCHEMA}-setup`;

/** Removes snapshots of other PGlite or schema versions (each is tens of MB). */
function prune() {
  for (const name of readdirSync(CACHE)) {
    if (name.startsWith('pglite-') && !name.startsWith(EMPTY) && !name.startsWith(SET_UP)) rmSync(join(CACHE, name), { recursive: true, force: true });
  }
}

/**
 * The cluster's data directory as a tarball for loadDataDir, made small: every test loads one, and
 * untarring into memory is most of a PGlite start (42 MB took ~0.45 s of CPU, the trimmed ~10 MB
 * about a third less per instance). Trimmed, in SQL first: the template databases are dropped
 * (PGlite serves one database, `postgres`; nothing creates another), and the WAL is switched to a
 * fresh segment and checkpointed, so only that segment is needed to start. In the tarball the other
 * segments are left out and that one is cut after its last written page (PostgreSQL writes on past
 * the end, as into a new segment).
 */
async function dumpOf(db: PGlite): Promise<Uint8Array> {
  await db.exec("UPDATE pg_catalog.pg_database SET datistemplate = false WHERE datname IN ('template0', 'template1')");
  for (const template of ['template0', 'template1']) await db.exec(`DROP DATABASE IF EXISTS ${template}`);
  await db.query('SELECT pg_catalog.pg_switch_wal()');
  await db.exec('CHECKPOINT');
  const [{ segment }] = (await db.query<{ segment: string }>('SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()) AS segment')).rows as [{ segment: string }];
  return trimTar(new Uint8Array(await (await db.dumpDataDir('none')).arrayBuffer()), segment);
}

/** A ustar tarball without the WAL segments other than `segment`, and that one cut after its last non-zero page. */
function trimTar(tar: Uint8Array, segment: string): Uint8Array {
  const out: Uint8Array[] = [];
  const text = (at: number, length: number) => new TextDecoder().decode(tar.subarray(at, at + length)).replace(/\0.*$/s, '');
  let at = 0;
  while (at + 512 <= tar.length && tar[at] !== 0) {
    const header = tar.slice(at, at + 512);
    const prefix = text(at + 345, 155);
    const name = (prefix ? `${prefix}/` : '') + text(at, 100);
    const size = Number.parseInt(text(at + 124, 12).trim() || '0', 8);
    const data = tar.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    const wal = /(^|\/)pg_wal\/([0-9A-F]{24})$/.exec(name);
    if (wal && wal[2] !== segment) continue;
    let body = data;
    if (wal) {
      let end = body.length;
      while (end > 0 && body[end - 1] === 0) end--;
      body = body.subarray(0, Math.ceil(end / 8192) * 8192);
      header.set(new TextEncoder().encode(`${body.length.toString(8).padStart(11, '0')}\0`), 124);
      header.fill(0x20, 148, 156); // the checksum is computed with its own field as spaces
      const sum = header.reduce((a, b) => a + b, 0);
      header.set(new TextEncoder().encode(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
    }
    out.push(header, body, new Uint8Array((512 - (body.length % 512)) % 512));
  }
  out.push(new Uint8Array(1024));
  return Buffer.concat(out);
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
function pgliteSnapshot(kind: 'empty' | 'setup'): Promise<Blob> {
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

/** One file or folder of a snapshot: its path below the data directory. */
interface SnapshotEntry {
  path: string;
  folder: boolean;
  data: Uint8Array;
}

/** The entries of a ustar tarball as PGlite's dumpDataDir writes it (folders before their contents). */
function untar(tar: Uint8Array): SnapshotEntry[] {
  const entries: SnapshotEntry[] = [];
  const text = (at: number, length: number) => new TextDecoder().decode(tar.subarray(at, at + length)).replace(/\0.*$/s, '');
  let at = 0;
  while (at + 512 <= tar.length && tar[at] !== 0) {
    const prefix = text(at + 345, 155);
    const name = ((prefix ? `${prefix}/` : '') + text(at, 100)).replace(/^\/+|\/+$/g, '');
    const size = Number.parseInt(text(at + 124, 12).trim() || '0', 8);
    const type = String.fromCharCode(tar[at + 156]!);
    if (name && (type === '5' || type === '0' || type === '\0')) {
      entries.push({ path: name, folder: type === '5', data: tar.subarray(at + 512, at + 512 + size) });
    }
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return entries;
}

const parsed = new Map<string, Promise<SnapshotEntry[]>>();
/** A snapshot's entries, parsed once per process. */
function snapshotEntries(kind: 'empty' | 'setup'): Promise<SnapshotEntry[]> {
  if (!parsed.has(kind)) {
    parsed.set(kind, (kind === 'setup' ? setUpTarball() : emptyTarball()).then((path) => untar(new Uint8Array(readFileSync(path)))));
  }
  return parsed.get(kind)!;
}

/**
 * PGlite's in-memory file system, filled with a snapshot's files before PGlite looks for a data
 * directory (initialSyncFs, the step where a persistent file system loads its files): PGlite then
 * finds the cluster and starts it, as it does a data directory it resumes. Each file is copied in
 * (the instance writes to its files; the parsed snapshot stays as it was).
 */
class SnapshotFs extends MemoryFS {
  constructor(private readonly entries: SnapshotEntry[]) {
    super();
  }

  override async initialSyncFs(): Promise<void> {
    await super.initialSyncFs();
    const fs = this.pg!.Module.FS;
    const root = PGlite.paths.PGDATA;
    fs.mkdirTree(root, 0o700);
    const folders = new Set([root]);
    for (const entry of this.entries) {
      const path = `${root}/${entry.path}`;
      const parent = path.slice(0, path.lastIndexOf('/'));
      if (!folders.has(parent)) {
        fs.mkdirTree(parent, 0o700);
        folders.add(parent);
      }
      if (entry.folder) {
        if (!folders.has(path)) fs.mkdir(path, 0o700);
        folders.add(path);
      } else {
        fs.writeFile(path, entry.data);
      }
    }
  }
}

/** A file system for PGlite.create holding a snapshot: a freshly initialised cluster, or one set up. */
export async function snapshotFs(kind: 'empty' | 'setup'): Promise<MemoryFS> {
  return new SnapshotFs(await snapshotEntries(kind));
}

/**
 * A set-up PGlite instance for one test, reused by the next test of the process instead of
 * started again: a start is ~0.2 s of CPU (the buffer pool, the WebAssembly instance, the file
 * system), a reset ~65 ms. On release (`reuse`: the test passed) the instance is reset to its state
 * after setup, or closed when that cannot be vouched for (helpers/reuse.ts: the catalog unchanged,
 * the data put back); the session is rolled back and discarded (DISCARD ALL: settings, prepared
 * statements, temporary tables, advisory locks, LISTEN). An idle instance waits on an IdleShelf.
 */
export interface PgliteLease {
  instance: PGlite;
  /** Hands the instance back: reset for the next test when `reuse` and the reset can vouch for it, else closed. */
  release(reuse: boolean): Promise<void>;
}

interface Reusable {
  instance: PGlite;
  /** The catalogs' mark after the last reset (or the load). */
  mark: string;
  uses: number;
}

const idle = new IdleShelf<Reusable>((r) => r.instance.close());
let pristine: Promise<Pristine> | undefined;

/** Resets a used instance to its state after setup; false when that cannot be vouched for (then it is closed). */
async function reset(r: Reusable): Promise<boolean> {
  const db = r.instance;
  // Whatever the test left open goes (a WARNING when nothing is: not an error).
  await db.exec('ROLLBACK');
  if ((await catalogMark(db, false)) !== r.mark) return false;
  r.mark = await resetData(db, await pristine!, r.mark);
  await db.exec('DISCARD ALL');
  if (++r.uses % 8 === 0) await db.exec('CHECKPOINT'); // the WAL of the tests so far, out of memory
  return true;
}

/** An instance with the schema set up, reused across the process's tests (see PgliteLease). */
export async function leaseSetUpPglite(): Promise<PgliteLease> {
  let r = idle.take();
  if (!r) {
    const instance = await PGlite.create({ ...(await pgliteOptions()), fs: await snapshotFs('setup') });
    pristine ??= readPristine(instance);
    await pristine;
    r = { instance, mark: await catalogMark(instance, false), uses: 0 };
  }
  const taken = r;
  let released = false;
  return {
    instance: taken.instance,
    async release(reuse) {
      if (released) return;
      released = true;
      const db = taken.instance;
      const kept = reuse && !db.closed && (await reset(taken).catch(() => false));
      if (!kept) {
        if (!db.closed) await db.close();
        return;
      }
      idle.put(taken);
    },
  };
}
