import { openDatabase, withTypedErrors, type Database } from '../core/db.ts';
import { diffSchema, formatDifferences, HOST_TABLES, loadExpectedSchema, parseCatalog, readCatalog, type Catalog } from './catalog.ts';
import { lintCatalog } from './lint.ts';
import { SetupError, fromDatabaseError } from '../core/errors.ts';
import { buildSetupScript, OWNER_ONLY_FUNCTIONS, schemaVersion } from './migrations.ts';
import { redactUrl } from '../core/redact.ts';
import { createSupabaseClient } from './supabase.ts';
import { pgliteDataDir, type Env } from '../core/env.ts';

export type SetupMode = 'development' | 'production';

export type SetupTarget =
  | { kind: 'postgres'; url: string }
  | { kind: 'supabase'; url: string; serviceRoleKey: string }
  | { kind: 'pglite'; dataDir: string };

export interface SetupResult {
  /** Where the schema was applied, safe to print. */
  target: string;
  targetKind: SetupTarget['kind'];
  schemaVersion: number;
  /** Migrations applied by this run; empty when the database was already up to date. */
  applied: string[];
  /**
   * On a database that was up to date: what this run put back because it was missing or had been
   * loosened (an index, a constraint, a function, a seed plan, RLS, a grant), one line each. Empty
   * on a normal re-run and on a run that applied files.
   */
  restored: string[];
  /** The live catalog, read back after applying. */
  catalog: Catalog;
}

/**
 * Where setup goes: DATABASE_URL; else SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY (exec_sql over
 * the REST API); else, in development only, embedded PGlite (PGLITE_DATA_DIR or ./.data/pglite).
 */
export function resolveTarget(env: Env, mode: SetupMode): SetupTarget {
  const url = env.DATABASE_URL?.trim();
  if (url) {
    if (!/^postgres(ql)?:\/\/.+/.test(url)) {
      throw new SetupError('invalid_database_url', 'DATABASE_URL must be a postgres:// or postgresql:// connection URL.');
    }
    return { kind: 'postgres', url };
  }
  const supabaseUrl = env.SUPABASE_URL?.trim();
  const serviceRoleKey = env.SUPABASE_SERVICE_ROLE_KEY?.trim();
  if (supabaseUrl || serviceRoleKey) {
    if (!supabaseUrl || !serviceRoleKey) {
      throw new SetupError(
        'incomplete_supabase_config',
        `SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY must both be set (${supabaseUrl ? 'SUPABASE_SERVICE_ROLE_KEY' : 'SUPABASE_URL'} is missing).`,
      );
    }
    if (!/^https?:\/\/[^\s]+$/.test(supabaseUrl)) {
      throw new SetupError('invalid_supabase_url', 'SUPABASE_URL must be an http(s):// URL, e.g. https://<project>.supabase.co');
    }
    return { kind: 'supabase', url: supabaseUrl, serviceRoleKey };
  }
  if (mode === 'production') {
    throw new SetupError(
      'no_database_configured',
      'Production setup needs DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY, in the environment; it never falls back to the embedded database.',
    );
  }
  return { kind: 'pglite', dataDir: pgliteDataDir(env) };
}

export function describeTarget(target: SetupTarget): string {
  if (target.kind === 'postgres') return `PostgreSQL at ${redactUrl(target.url)}`;
  if (target.kind === 'supabase') return `Supabase at ${redactUrl(target.url)} (exec_sql over the REST API)`;
  return `embedded PGlite in ${target.dataDir}`;
}

/**
 * Applies the schema on an open database, in one transaction: the setup script (lock, version
 * check, pending files), then the catalog read back and compared with the expected schema. Any
 * error, drift included, rolls the whole transaction back.
 */
export async function applySchema(db: Database): Promise<SetupResult> {
  db = withTypedErrors(db);
  const expected = loadExpectedSchema();
  const script = buildSetupScript();
  return await db.transaction(async (tx) => {
    await tx.exec(script);
    const applied = await tx.query<{ name: string }>(
      'SELECT name FROM public.plugin_auth_migrations WHERE applied_at = pg_catalog.now() ORDER BY version',
    );
    // Set by the script's restore check and security step (src/schema/migrations.ts).
    const [restored] = await tx.query<{ restored: string | null }>(
      "SELECT pg_catalog.current_setting('plugin_auth.restored', true) AS restored",
    );
    const catalog = await readCatalog(tx);
    assertNoDrift(diffSchema(expected, catalog));
    return {
      target: db.description,
      targetKind: db.kind,
      schemaVersion: schemaVersion(),
      applied: applied.map((row) => row.name),
      restored: applied.length ? [] : (restored?.restored ?? '').split('; ').filter(Boolean),
      catalog,
    };
  });
}

function assertNoDrift(differences: ReturnType<typeof diffSchema>): void {
  if (differences.length === 0) return;
  throw new SetupError(
    'schema_drift',
    `the database has objects that differ from the expected schema and setup cannot repair them:\n  ${formatDifferences(differences).join('\n  ')}`,
  );
}

/**
 * The seed's Supabase pattern: the same script through supabase.rpc('exec_sql', { sql }). One rpc
 * call is one transaction, so a failure part way still leaves nothing behind. The catalog is then
 * read back through rpc('plugin_auth_catalog').
 */
export async function applySchemaViaSupabase(client: SupabaseRpcClient, description = 'Supabase'): Promise<SetupResult> {
  const before = await fetchCatalog(client, 0).catch(() => undefined);
  const { error } = await client.rpc('exec_sql', { sql: buildSetupScript() });
  if (error) throw supabaseError(error);
  // PostgREST reloads its schema cache after the NOTIFY at the end of the script; give it a moment.
  const catalog = await fetchCatalog(client, 20);
  assertNoDrift(diffSchema(loadExpectedSchema(), catalog));
  const had = new Set(before?.migrations.map((m) => m.version));
  const applied = catalog.migrations.filter((m) => !had.has(m.version)).map((m) => m.name);
  return {
    target: description,
    targetKind: 'supabase',
    schemaVersion: schemaVersion(),
    applied,
    // The script's own record of it ends with its transaction: compare the catalogs instead.
    restored: before && !applied.length ? restoredBetween(before, catalog) : [],
    catalog,
  };
}

/** Objects missing, and lint findings on our objects, before a run that are gone after it. */
function restoredBetween(before: Catalog, after: Catalog): string[] {
  const expected = loadExpectedSchema();
  const missing = (c: Catalog) => new Set(diffSchema(expected, c).filter((d) => d.problem === 'missing').map((d) => d.object));
  const findings = (c: Catalog) => new Set(lintLines(c));
  const nowMissing = missing(after);
  const nowFound = findings(after);
  return [
    ...[...missing(before)].filter((o) => !nowMissing.has(o)),
    ...[...findings(before)].filter((f) => !nowFound.has(f)),
  ];
}

function lintLines(c: Catalog): string[] {
  const host = HOST_TABLES as readonly string[];
  const expected = loadExpectedSchema();
  return lintCatalog(c, {
    tables: expected.tables.map((t) => t.name).filter((name) => !host.includes(name)),
    functions: [...new Set(expected.functions.map((f) => f.name))],
    ownerOnly: [...OWNER_ONLY_FUNCTIONS],
  }).map((f) => `${f.rule}: ${f.object}`);
}

interface PostgrestErrorLike {
  message: string;
  code?: string;
  details?: string | null;
  hint?: string | null;
}

/**
 * What setup needs of a supabase-js client: rpc(). Structural, so this package's declarations do
 * not name @supabase/supabase-js (an optional peer): a consumer without it still type-checks them.
 */
export interface SupabaseRpcClient {
  rpc(fn: string, args?: Record<string, unknown>): PromiseLike<{ data: unknown; error: PostgrestErrorLike | null }>;
}

function supabaseError(error: PostgrestErrorLike, fn = 'exec_sql'): SetupError {
  // PGRST202: PostgREST found no such function (or it is not exposed / not executable).
  const missing = error.code === 'PGRST202' || (error.message.includes(fn) && /not find|does not exist/.test(error.message));
  if (missing && fn === 'exec_sql') {
    return new SetupError(
      'exec_sql_missing',
      'the exec_sql function does not exist (or service_role may not execute it). Create it once in the Supabase SQL editor: see README, "Supabase: the exec_sql function".',
    );
  }
  if (missing) {
    return new SetupError(
      'setup_failed',
      `the REST API does not see ${fn}() yet (PostgREST's schema cache: ${error.message}); run setup again in a few seconds`,
    );
  }
  const known = error.code ? fromDatabaseError({ code: error.code, message: error.message }) : undefined;
  if (known && known.code !== 'database_error') return new SetupError(known.code, error.message);
  const detail = [error.details, error.hint].filter(Boolean).join(' ');
  return new SetupError('setup_failed', `${error.message}${detail ? ` (${detail})` : ''}`);
}

async function fetchCatalog(client: SupabaseRpcClient, retries: number): Promise<Catalog> {
  for (let attempt = 0; ; attempt++) {
    const { data, error } = await client.rpc('plugin_auth_catalog');
    if (!error) return parseCatalog(data);
    if (attempt >= retries || error.code !== 'PGRST202') throw supabaseError(error, 'plugin_auth_catalog');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export interface SetupOptions {
  mode: SetupMode;
  /** The configuration to read (already merged with .env files for development). */
  env: Env;
}

/** Resolves the target from the environment, applies the schema, and closes what it opened. */
export async function setup(options: SetupOptions): Promise<SetupResult> {
  const target = resolveTarget(options.env, options.mode);
  if (target.kind === 'supabase') {
    const client = await createSupabaseClient(target.url, target.serviceRoleKey);
    try {
      return await applySchemaViaSupabase(client, describeTarget(target));
    } catch (error) {
      if (error instanceof SetupError) throw error;
      throw new SetupError('connection_failed', `cannot reach Supabase: ${causeMessage(error)}`, { cause: error });
    }
  }
  let db: Database;
  try {
    db = await openDatabase(target.kind === 'postgres' ? target.url : `pglite:${target.dataDir}`, { max: 1 });
  } catch (error) {
    if (error instanceof SetupError) throw error;
    throw new SetupError('connection_failed', causeMessage(error), { cause: error });
  }
  try {
    return await applySchema(db);
  } catch (error) {
    const typed = fromDatabaseError(error);
    if (typed instanceof SetupError) throw typed;
    const code = isConnectionError(error) ? 'connection_failed' : 'setup_failed';
    throw new SetupError(code, causeMessage(error), { cause: error });
  } finally {
    await db.close().catch(() => {});
  }
}

/** The real message, including the cause chain that Node's fetch and pg hide behind generic text. */
export function causeMessage(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current && depth < 4; depth++) {
    const err = current as { message?: unknown; code?: unknown; errors?: unknown[]; cause?: unknown };
    let message = typeof err.message === 'string' && err.message ? err.message : '';
    // AggregateError (e.g. ECONNREFUSED on ::1 and 127.0.0.1) has an empty message of its own.
    if (!message && Array.isArray(err.errors) && err.errors.length) {
      message = err.errors.map((e) => (e as Error)?.message).filter(Boolean).join('; ');
    }
    if (!message) message = typeof err.code === 'string' ? err.code : String(current);
    if (!parts.includes(message)) parts.push(message);
    current = err.cause;
  }
  return parts.join(': ');
}

const CONNECTION_STATES = new Set(['28P01', '28000', '3D000', '08001', '08006', '57P03']);
function isConnectionError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (CONNECTION_STATES.has(code) || /^E[A-Z]+$/.test(code))) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
