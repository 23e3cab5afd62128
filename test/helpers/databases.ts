// Each test gets a database of its own, on PGlite and on a real PostgreSQL server.
// - PGlite: a fresh in-memory instance, loaded from a snapshot of a set-up (or a freshly initialised)
//   cluster, kept on disk for all test processes (helpers/pglite.ts).
// - PostgreSQL: CREATE DATABASE ... TEMPLATE a set-up template, shared by all test processes and
//   named after the schema's checksum (so a changed sql/ file gets a new template).
// A database whose test failed is left in place and its name printed, for inspection.
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { openDatabase, poolConfig, type Database } from '../../src/core/db.ts';
import { buildSetupScript, loadMigrations } from '../../src/schema/migrations.ts';
import { redactUrl } from '../../src/core/redact.ts';
import { leaseSetUpPglite, pgliteOptions, snapshotFs } from './pglite.ts';
import { catalogMark, IdleShelf, readPristine, resetData, type Pristine, type Raw } from './reuse.ts';

/**
 * pglite: embedded PGlite. postgres: the real server through pg. postgresjs: the same real server
 * through postgres.js (the second driver), opened with openDatabase(url, { driver: 'postgres' }).
 */
export type Dialect = 'pglite' | 'postgres' | 'postgresjs';

/**
 * Which databases the suite runs on: TEST_DIALECTS (default pglite,postgres). postgresjs is not in
 * the default set: `npm run test:postgresjs` runs the files that exercise the driver on it.
 */
export const DIALECTS: Dialect[] = (process.env.TEST_DIALECTS ?? 'pglite,postgres')
  .split(',')
  .map((d) => d.trim())
  .filter((d): d is Dialect => d === 'pglite' || d === 'postgres' || d === 'postgresjs');

/** The dialects that are a real server (parallel connections, pg_terminate_backend, roles). */
export const SERVER_DIALECTS: Dialect[] = DIALECTS.filter((d) => d !== 'pglite');

/** The real server's admin URL. Real-server tests never skip: no URL is a failure, not a skip. */
export function serverUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: run the suite with `npm test`, which provides a server');
  return url;
}

export function urlFor(database: string): string {
  const url = new URL(serverUrl());
  url.pathname = `/${database}`;
  return url.toString();
}

// One admin connection per test process, for CREATE and DROP DATABASE and the roles: a new server
// session is a fork and a backend start, tens of ms of the server's CPU on a small machine, and every
// real-server test made two (BENCHMARKS.md, the suite's CPU). pg runs a client's queries one at a
// time, in order, so the tests of a process share it as they would share a pool of one. Its socket
// holds the process open only while a statement is on it; a connection that failed is replaced on
// the next call.
let adminClient: Promise<pg.Client> | undefined;
let adminBusy = 0;
const adminSocket = (client: pg.Client) => (client as unknown as { connection: { stream: { ref(): void; unref(): void } } }).connection.stream;

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const current = (adminClient ??= (async () => {
    const client = new pg.Client({ connectionString: serverUrl(), application_name: 'fpa-test-admin' });
    const forget = () => {
      if (adminClient === current) adminClient = undefined;
    };
    client.on('error', forget);
    client.on('end', forget);
    await client.connect().catch((error: unknown) => {
      forget();
      throw error;
    });
    return client;
  })());
  const client = await current;
  adminBusy++;
  adminSocket(client).ref();
  try {
    return await fn(client);
  } finally {
    if (--adminBusy === 0) adminSocket(client).unref();
  }
}

// Named after the whole setup script (the sql/ files and the schema snapshot its grant step reads),
// so a regenerated snapshot gets a new template too.
const schemaHash = createHash('sha256').update(buildSetupScript()).digest('hex').slice(0, 12);
const TEMPLATE = `fpa_template_${schemaHash}`;

/**
 * The real server plays Supabase: its roles exist (cluster-wide, NOLOGIN), so every real-server
 * test runs against the grants setup gives them. PGlite runs without them, as plain PostgreSQL.
 */
export async function createSupabaseRoles(client: Pick<pg.Client, 'query'>): Promise<void> {
  await client.query(`DO $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN BYPASSRLS; END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; -- another test process won the race
    END $$`);
}

let rolesReady: Promise<void> | undefined;
let templateReady: Promise<void> | undefined;
/** Builds the real server's set-up template unless it exists (npm test does, before the test processes start). */
export function ensureTemplate(): Promise<void> {
  templateReady ??= admin(async (client) => {
    // A session lock on the admin connection: one process builds the template, the others wait.
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [TEMPLATE]);
    try {
      await createSupabaseRoles(client);
      const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [TEMPLATE]);
      if (exists.rowCount) return;
      const building = `${TEMPLATE}_building`;
      await client.query(`DROP DATABASE IF EXISTS ${building}`);
      await client.query(`CREATE DATABASE ${building}`);
      const db = new pg.Client({ connectionString: urlFor(building) });
      await db.connect();
      try {
        await db.query(`BEGIN;\n${buildSetupScript()}\nCOMMIT;`);
      } finally {
        await db.end();
      }
      await client.query(`ALTER DATABASE ${building} RENAME TO ${TEMPLATE}`);
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtext($1))', [TEMPLATE]);
    }
  });
  return templateReady;
}

export interface TestDatabase {
  dialect: Dialect;
  db: Database;
  /** Real server only: this database's URL (for subprocesses and extra pools). */
  url?: string;
  /** Real server only: its name. */
  name?: string;
  /** Closes the database for good, never handing it to another test (withDatabase, when a test failed). */
  discard?: () => Promise<void>;
}

export interface FreshOptions {
  /** Apply the schema first (default true). */
  setup?: boolean;
  /** Pool size on the real server (default 10). */
  max?: number;
  /**
   * A database an earlier test of the process used, reset to what setup left (helpers/reuse.ts),
   * when one is idle: its close resets it for the next test. withDatabase asks for it (its test
   * ends with the database); a caller of freshDatabase that keeps the database past its close
   * (a URL for subprocesses, dropped later by name) gets a new one, as by default.
   */
  reuse?: boolean;
}

/** A database for one test: brand-new, or (options.reuse) reset to what setup left. */
export async function freshDatabase(dialect: Dialect, options: FreshOptions = {}): Promise<TestDatabase> {
  const setup = options.setup ?? true;
  if (dialect === 'pglite' && setup && options.reuse && process.env.TEST_PGLITE_REUSE !== '0') {
    // An instance the process's earlier tests used, reset to its state after setup (helpers/pglite.ts);
    // TEST_PGLITE_REUSE=0 starts a new one for every test instead.
    const lease = await leaseSetUpPglite();
    return { dialect, ...guarded(await openDatabase(lease.instance), (reuse) => lease.release(reuse)) };
  }
  if (dialect === 'pglite') {
    const instance = await PGlite.create({ ...(await pgliteOptions()), fs: await snapshotFs(setup ? 'setup' : 'empty') });
    const db = await openDatabase(instance);
    return { dialect, db: { ...db, close: () => instance.close() } };
  }
  rolesReady ??= admin(createSupabaseRoles);
  await rolesReady;
  if (setup) await ensureTemplate();
  if (dialect === 'postgres' && setup && options.reuse && process.env.TEST_SERVER_REUSE !== '0') return leaseServerDatabase(options.max ?? 10);
  const name = await createDatabase(setup);
  const url = urlFor(name);
  const db = await openDatabase(url, { max: options.max ?? 10, driver: dialect === 'postgresjs' ? 'postgres' : 'pg' });
  return { dialect, db, url, name };
}

async function createDatabase(setup: boolean): Promise<string> {
  const name = `fpa_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  await admin((client) => client.query(`CREATE DATABASE ${name}${setup ? ` TEMPLATE ${TEMPLATE}` : ''}`));
  return name;
}

/** A handle that answers nothing once closed: a call a test left running cannot reach the next test. */
function guarded(db: Database, end: (reuse: boolean) => Promise<void>): { db: Database; discard: () => Promise<void> } {
  let closed = false;
  const open = () => {
    if (closed) throw new Error('this test database is closed');
  };
  const finish = (reuse: boolean) => {
    closed = true;
    return end(reuse);
  };
  return {
    db: {
      ...db,
      query: async (text, params, options) => (open(), db.query(text, params, options)),
      exec: async (script) => (open(), db.exec(script)),
      transaction: async (fn) => (open(), db.transaction(fn)),
      close: () => finish(true),
    },
    discard: () => finish(false),
  };
}

// Real-server databases reused across the tests of a process, with their connections: a new database
// and its sessions cost ~0.1 s of the server's CPU per test (CREATE and DROP DATABASE, a fork and a
// backend start per connection, each function compiled again in each new session); a reset ~30 ms
// (helpers/reuse.ts). Only a database whose test never asked for its URL or name is reused: a test
// that did may have handed it to a subprocess or another pool, which DROP DATABASE ... WITH (FORCE)
// ends. Its connections are tagged, so that a connection of anyone else to it at release time is
// seen, and the database then dropped as before. TEST_SERVER_REUSE=0 makes a new one for every test.
const REUSE_APP = `fpa-test-reuse-${process.pid}`;

interface ServerReusable {
  name: string;
  pool: pg.Pool;
  db: Database;
  max: number;
  mark: string;
}
const idleServer = new IdleShelf<ServerReusable>((r) => dropServerDatabase(r));
let serverPristine: Promise<Pristine> | undefined;

const rawClient = (client: pg.PoolClient): Raw => ({
  query: async <T,>(text: string, params?: unknown[]) => (await client.query(text, params)) as unknown as { rows: T[] },
  exec: (script) => client.query(script),
});

/** The pool openDatabase(url) makes (poolConfig: its size, its parsers), tagged as ours. */
async function reusablePool(url: string, max: number): Promise<{ pool: pg.Pool; db: Database }> {
  // Idle, its connections keep no process alive (IdleShelf closes it at 'beforeExit').
  const pool = new pg.Pool({ ...poolConfig(url, { max, applicationName: REUSE_APP }), allowExitOnIdle: true });
  const db = await openDatabase(pool);
  return { pool, db: { ...db, description: `PostgreSQL at ${redactUrl(url)}` } };
}

/** Resets a used database and its connections to their state after setup; false when that cannot be vouched for. */
async function resetServerDatabase(r: ServerReusable): Promise<boolean> {
  const { pool } = r;
  // Every connection is back in the pool, and none was broken.
  if (pool.waitingCount > 0 || pool.idleCount !== pool.totalCount) return false;
  const clients = await Promise.all(Array.from({ length: pool.idleCount }, () => pool.connect()));
  let failure: unknown;
  try {
    const first = clients[0];
    if (!first) return true; // no connection left: nothing of the test remains in a session
    const raw = rawClient(first);
    // Nobody else is connected to it (a test's other pool, a subprocess): those end only with DROP.
    const others = await raw.query<{ n: number }>(
      'SELECT pg_catalog.count(*)::integer AS n FROM pg_catalog.pg_stat_activity WHERE datname = pg_catalog.current_database() AND application_name IS DISTINCT FROM $1::text',
      [REUSE_APP],
    );
    if (others.rows[0]!.n !== 0) return false;
    // Each session as it was, its prepared statements kept (pg knows them by name per connection).
    await Promise.all(clients.map((client) => client.query(`ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *;
      SELECT pg_catalog.pg_advisory_unlock_all(); DISCARD SEQUENCES; DISCARD TEMP; DISCARD PLANS;
      SELECT pg_catalog.pg_stat_force_next_flush();`))); // its pending counters out now, before resetData clears them
    if ((await catalogMark(raw, true)) !== r.mark) return false;
    r.mark = await resetData(raw, await serverPristine!, r.mark);
    return true;
  } catch (error) {
    failure = error;
    return false;
  } finally {
    for (const client of clients) client.release(failure instanceof Error ? failure : undefined);
  }
}

async function dropServerDatabase(r: ServerReusable): Promise<void> {
  await r.pool.end().catch(() => {});
  await dropDatabase(r.name);
}

async function leaseServerDatabase(max: number): Promise<TestDatabase> {
  let r = idleServer.take((x) => x.max === max);
  if (!r) {
    const name = await createDatabase(true);
    const { pool, db } = await reusablePool(urlFor(name), max);
    const client = await pool.connect();
    try {
      serverPristine ??= readPristine(rawClient(client));
      await serverPristine;
      r = { name, pool, db, max, mark: await catalogMark(rawClient(client), true) };
    } finally {
      client.release();
    }
  }
  const taken = r;
  let shared = false;
  let released = false;
  const end = async (reuse: boolean) => {
    if (released) return;
    released = true;
    if (!reuse) {
      // The test failed: its database stays for inspection, as every failed test's does.
      await taken.pool.end().catch(() => {});
      process.stderr.write(`# kept database ${taken.name} for inspection\n`);
      return;
    }
    if (shared || !(await resetServerDatabase(taken))) return dropServerDatabase(taken);
    idleServer.put(taken);
  };
  const { db, discard } = guarded(taken.db, end);
  const t: TestDatabase = { dialect: 'postgres', db, discard };
  // Asking for the URL or the name takes the database out of reuse (see above).
  Object.defineProperty(t, 'url', { enumerable: true, get: () => ((shared = true), urlFor(taken.name)) });
  Object.defineProperty(t, 'name', { enumerable: true, get: () => ((shared = true), taken.name) });
  return t;
}

export async function dropDatabase(name: string): Promise<void> {
  await admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

/**
 * Runs fn on a fresh database and removes it afterwards, unless fn failed: then the real-server
 * database is kept and named on stderr.
 */
export async function withDatabase<T>(
  dialect: Dialect,
  fn: (t: TestDatabase) => Promise<T>,
  options: FreshOptions = {},
): Promise<T> {
  const t = await freshDatabase(dialect, { ...options, reuse: options.reuse ?? true });
  try {
    const result = await fn(t);
    await t.db.close();
    // A reused database is reset or dropped by its close; any other is dropped here.
    if (!t.discard && t.name) await dropDatabase(t.name);
    return result;
  } catch (error) {
    if (t.discard) {
      await t.discard().catch(() => {});
    } else {
      await t.db.close().catch(() => {});
      if (t.name) process.stderr.write(`# kept database ${t.name} for inspection\n`);
    }
    throw error;
  }
}

/** Creates a user and returns its id. */
export async function createUser(db: Pick<Database, 'query'>, email?: string): Promise<string> {
  const rows = await db.query<{ id: string }>(
    'INSERT INTO public.users (email, name) VALUES ($1, $2) RETURNING id',
    [email ?? `user-${randomBytes(6).toString('hex')}@example.com`, 'Test User'],
  );
  return rows[0]!.id;
}

const devices = new Map<string, string>();
/**
 * A device of the user, as a plugin session mints it (issue_plugin_token with a fresh digest): the
 * same (user, name) gives the same device within a process, as one install signing in again would.
 * For license activations, which take the device id auth.tokens.verify returns.
 */
export async function device(db: Pick<Database, 'query'>, userId: string, deviceName: string): Promise<{ deviceId: string; deviceName: string }> {
  const key = `${userId}:${deviceName}`;
  let deviceId = devices.get(key);
  if (!deviceId) {
    const rows = await db.query<{ id: string }>(
      `SELECT public.issue_plugin_token(pg_catalog.gen_random_uuid(), $1::uuid, $2::text, $3::varchar,
         pg_catalog.now() + interval '1 day') AS id`,
      [userId, randomBytes(32).toString('hex'), deviceName],
    );
    deviceId = rows[0]!.id;
    devices.set(key, deviceId);
  }
  return { deviceId, deviceName };
}

/** The installed functions of schema public whose source contains `text`: name and source. */
export function functionSources(db: Pick<Database, 'query'>, text: string): Promise<{ name: string; src: string }[]> {
  return db.query<{ name: string; src: string }>(
    `SELECT p.proname::text AS name, p.prosrc AS src FROM pg_catalog.pg_proc AS p
       JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
      WHERE n.nspname = 'public'::name AND pg_catalog.strpos(p.prosrc, $1::text) > 0
      ORDER BY 1`,
    [text],
  );
}
