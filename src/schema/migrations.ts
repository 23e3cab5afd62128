import { SETUP_LOCK_KEY } from '../core/locks.ts';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HOST_TABLES, loadExpectedSchema, type CatalogFunction, type ExpectedSchema } from './catalog.ts';
import { loadFunctionFiles, type FunctionFile } from './functions.ts';

/** One numbered file of sql/: the only place DDL is written. */
export interface Migration {
  version: number;
  /** File name without .sql, e.g. "002_plugin_auth_tables". */
  name: string;
  sql: string;
  /** SHA-256 of the file: a file changed after it was applied is detected, not silently skipped. */
  checksum: string;
}

export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));

let cached: Migration[] | undefined;

/** The schema, in order. Read once per process. */
export function loadMigrations(dir: string = SQL_DIR): Migration[] {
  if (dir === SQL_DIR && cached) return cached;
  const migrations = readdirSync(dir)
    .filter((file) => /^\d{3}_[a-z0-9_]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const sql = readFileSync(new URL(file, `file://${dir.endsWith('/') ? dir : `${dir}/`}`), 'utf8');
      return {
        version: Number(file.slice(0, 3)),
        name: file.slice(0, -'.sql'.length),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
  migrations.forEach((m, i) => {
    const previous = migrations[i - 1];
    if (previous && previous.version >= m.version) throw new Error(`sql/: two files numbered ${m.version}`);
  });
  if (dir === SQL_DIR) cached = migrations;
  return migrations;
}

/** The schema version this package installs: the highest migration number. */
export function schemaVersion(migrations: Migration[] = loadMigrations()): number {
  return migrations.at(-1)?.version ?? 0;
}

const BODY_TAG = '$plugin_auth_sql$';

/** Tables setup itself creates before anything else (its bookkeeping), not part of the baseline. */
export const SETUP_TABLES = ['plugin_auth_migrations', 'plugin_auth_function_files'] as const;

/** The line of schema/current.sql after which its statements run, once the functions exist. */
export const AFTER_FUNCTIONS_MARK = '-- @@ after the functions';

export const BASELINE_PATH = fileURLToPath(new URL('../../schema/current.sql', import.meta.url));

/** schema/current.sql (scripts/schema-dump.ts): the state at the latest numbered file, in two parts. */
export interface Baseline {
  /** Tables, constraints, indexes, seed rows: run before the function files. */
  state: string;
  /** Triggers: run after them. */
  afterFunctions: string;
}

let cachedBaseline: Baseline | null | undefined;

export function loadBaseline(path: string = BASELINE_PATH): Baseline | null {
  if (path === BASELINE_PATH && cachedBaseline !== undefined) return cachedBaseline;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null; // only while generating it for the first time
  }
  const baseline = parseBaseline(text);
  if (path === BASELINE_PATH) cachedBaseline = baseline;
  return baseline;
}

export function parseBaseline(text: string): Baseline {
  const at = text.indexOf(`\n${AFTER_FUNCTIONS_MARK}\n`);
  if (at < 0) throw new Error(`schema/current.sql has no line ${AFTER_FUNCTIONS_MARK}`);
  return { state: text.slice(0, at + 1), afterFunctions: text.slice(at + 1) };
}

export interface SetupScriptOptions {
  /**
   * The function files (sql/functions/). Default: all of them when `migrations` is the whole of
   * sql/, none otherwise (a database at an earlier version, built the way it was then).
   */
  functions?: FunctionFile[];
  /**
   * What a fresh database gets instead of every numbered file (schema/current.sql). Default as for
   * `functions`; null: a fresh database applies every numbered file in order (how the baseline
   * itself is generated).
   */
  baseline?: Baseline | null;
  /**
   * Leave out the text of the numbered files up to this version (an export for a database at that
   * version or a fresh one). A database that still lacks one of them is refused.
   */
  omitThrough?: number;
}


/**
 * Corrected files. An applied file is immutable (its checksum is recorded), with one documented
 * exception: a file whose text had a defect that the same migration, written correctly, fixes.
 * A database that applied one of the earlier texts listed here is accepted as having applied this
 * migration, and its recorded checksum is updated to the current one; any other difference is still
 * `schema_modified`. A correction must create exactly the same objects as the text it replaces.
 */
export const CORRECTED_FILES: Record<number, { checksums: string[]; why: string }> = {
  1: {
    checksums: ['8bde70e106dd0587cffcbea2f1fcb08c9b40c9b6430d7c88a386ea5a5a7c9b1b'],
    why: 'told a host users table from one created in the same run by age(xmin) = 0, which api_keys\' foreign key defeats: it locked down the host\'s users table',
  },
};

/** The security helpers (sql/012): nobody but their owner may execute them. */
export const OWNER_ONLY_FUNCTIONS = ['plugin_auth_secure', 'plugin_auth_revoke_public', 'plugin_auth_revoke_public_function'] as const;

/**
 * The whole setup as one SQL script, identical for every target: run inside BEGIN/COMMIT over a
 * direct connection, or as the single argument of Supabase's exec_sql (one rpc call is one
 * transaction). `--dry-run` prints exactly this text. The SQL is laid out by kind (docs/schema.md):
 * numbered files in sql/ change state and are applied history; sql/functions/ holds the current
 * text of every function; schema/current.sql is the state at the latest numbered file.
 *
 * 1. Timeouts: never wait forever behind another session's lock, never run away.
 * 2. A transaction-scoped advisory lock: concurrent setups queue here; it is released at
 *    COMMIT/ROLLBACK, so it is safe on pooled connections.
 * 3. search_path = pg_catalog, pg_temp for the script's own statements: an object planted in
 *    public (a function, an operator) is never picked up by our DDL, and pg_temp never wins.
 * 4. The migrations table records each numbered file with its checksum; plugin_auth_function_files
 *    each function file with its checksum. A numbered file that changed since it was applied
 *    (unless listed in CORRECTED_FILES), or a database newer than this package, stops setup.
 * 5. Preflight: tables of ours that already exist must have the expected columns.
 * 6. Restore check: when nothing is pending but an object of the snapshot is missing (a table,
 *    index, constraint, function or seed plan), the baseline (schema/current.sql: every statement
 *    re-runnable) and every function file run again, and constraints that only a CREATE TABLE
 *    declares are added from the snapshot. A function that exists with another definition is
 *    refused first (schema_drift): restoring would overwrite it. An upgrade (a file pending) does
 *    the same after the pending files. A normal re-run runs no DDL at all.
 * 7. A fresh database (no numbered file recorded) gets the baseline and records every numbered file
 *    as applied, without running them; a database at an earlier version gets each pending numbered
 *    file, in order, each recorded in the same transaction: all or nothing.
 * 8. Each function file whose checksum differs from the recorded one (or all of them, when fresh or
 *    restoring) runs and is recorded; then the baseline's triggers.
 * 9. Trust check: no function with one of our names that is not ours, no object of ours owned by
 *    an untrusted role, no operator shadowing pg_catalog's (untrusted_object), nobody else may
 *    CREATE in public (schema_create_open). The rules: src/schema/trust.ts.
 * 10. Security: RLS and grants on exactly our tables and functions (plugin_auth_secure).
 *
 * Rules for new files that follow: a numbered file holds state only (tables, columns, indexes,
 * constraints, backfills, dropping a function that is gone) and is re-runnable; a function's text
 * lives in exactly one function file. Never change a function's result type under the same
 * signature (CREATE OR REPLACE cannot): drop it in a numbered file, then define it anew.
 */
export function buildSetupScript(
  migrations: Migration[] = loadMigrations(),
  expected: ExpectedSchema | null = loadExpectedSchemaIfPresent(),
  options: SetupScriptOptions = {},
): string {
  const current = migrations.length > 0 && schemaVersion(migrations) === schemaVersion();
  const functions = options.functions ?? (current ? loadFunctionFiles() : []);
  const baseline = options.baseline !== undefined ? options.baseline : current ? loadBaseline() : null;
  const omitThrough = options.omitThrough ?? 0;
  const known = migrations.map((m) => `(${m.version}, '${m.checksum}')`).join(', ');
  const parts: string[] = [
    `-- figma-plugin-auth-db schema setup: version ${schemaVersion(migrations)}, generated from sql/ and schema/current.sql.`,
    '-- Runs as one transaction. Safe to run again: applied files are skipped.',
    "SET LOCAL lock_timeout = '60s';",
    "SET LOCAL statement_timeout = '300s';",
    `SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('${SETUP_LOCK_KEY}'));`,
    "SET LOCAL lock_timeout = '15s';",
    'SET LOCAL search_path = pg_catalog, pg_temp;',
    `CREATE TABLE IF NOT EXISTS public.plugin_auth_migrations (
  version INTEGER PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  checksum CHAR(64) NOT NULL,
  applied_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);`,
    // Guarded: COMMENT takes a ShareUpdateExclusiveLock, and a normal re-run takes no lock beyond reads.
    `DO $plugin_auth_comment$
BEGIN
  IF pg_catalog.obj_description('public.plugin_auth_migrations'::regclass, 'pg_class')
     IS DISTINCT FROM 'schema version: one row per applied sql/ file' THEN
    COMMENT ON TABLE public.plugin_auth_migrations IS 'schema version: one row per applied sql/ file';
  END IF;
END
$plugin_auth_comment$;`,
  ];
  if (functions.length) {
    parts.push(`CREATE TABLE IF NOT EXISTS public.plugin_auth_function_files (
  file VARCHAR(255) PRIMARY KEY,
  checksum CHAR(64) NOT NULL,
  applied_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);`, `DO $plugin_auth_comment$
BEGIN
  IF pg_catalog.obj_description('public.plugin_auth_function_files'::regclass, 'pg_class')
     IS DISTINCT FROM 'function files: one row per sql/functions/ file, with the checksum last applied' THEN
    COMMENT ON TABLE public.plugin_auth_function_files IS 'function files: one row per sql/functions/ file, with the checksum last applied';
  END IF;
END
$plugin_auth_comment$;`);
  }
  const corrected = migrations.flatMap((m) => (CORRECTED_FILES[m.version]?.checksums ?? []).map((old) => `(${m.version}, '${old}', '${m.checksum}')`));
  if (corrected.length) {
    parts.push(`-- Corrected files (src/schema/migrations.ts, CORRECTED_FILES): an earlier text of the same migration.
DO $plugin_auth_corrected$
BEGIN
  IF EXISTS (SELECT 1 FROM public.plugin_auth_migrations m
              JOIN (VALUES ${corrected.join(', ')}) AS c(version, earlier, current)
                ON c.version = m.version AND c.earlier = m.checksum) THEN
    UPDATE public.plugin_auth_migrations m SET checksum = c.current
      FROM (VALUES ${corrected.join(', ')}) AS c(version, earlier, current)
     WHERE c.version = m.version AND c.earlier = m.checksum;
  END IF;
END
$plugin_auth_corrected$;`);
  }
  parts.push(`DO $plugin_auth_check$
DECLARE
  v_row RECORD;
BEGIN
  FOR v_row IN
    SELECT m.version, m.name, k.checksum AS expected, m.checksum AS actual
    FROM public.plugin_auth_migrations m
    LEFT JOIN (VALUES ${known}) AS k(version, checksum) ON k.version = m.version
    WHERE k.checksum IS DISTINCT FROM m.checksum
    ORDER BY m.version
  LOOP
    IF v_row.expected IS NULL THEN
      RAISE EXCEPTION 'schema_newer: the database has schema migration % (%), newer than this package knows (version ${schemaVersion(migrations)}). Upgrade figma-plugin-auth-db.', v_row.version, v_row.name
        USING ERRCODE = 'PA011';
    END IF;
    RAISE EXCEPTION 'schema_modified: sql/%.sql changed after it was applied to this database. Applied files are immutable: put the change in a new numbered file (or, in development, reset the database).', v_row.name
      USING ERRCODE = 'PA010';
  END LOOP;
END
$plugin_auth_check$;`);
  if (baseline) {
    // Decided before anything is applied: the file blocks below read it.
    parts.push(`-- A fresh database (no numbered file recorded) is built from schema/current.sql, not file by file.
SELECT pg_catalog.set_config('plugin_auth.fresh',
  CASE WHEN EXISTS (SELECT 1 FROM public.plugin_auth_migrations) THEN 'off' ELSE 'on' END, true);`);
  }
  const omitted = migrations.filter((m) => m.version <= omitThrough);
  if (omitted.length) {
    parts.push(`-- This script leaves out the text of sql/001-${String(omitThrough).padStart(3, '0')}: it installs on a fresh database or upgrades one at version ${omitThrough} or later.
DO $plugin_auth_omitted$
BEGIN
  IF EXISTS (SELECT 1 FROM public.plugin_auth_migrations)
     AND EXISTS (SELECT 1 FROM pg_catalog.unnest(ARRAY[${omitted.map((m) => m.version).join(', ')}]::INTEGER[]) AS v(version)
                  WHERE NOT EXISTS (SELECT 1 FROM public.plugin_auth_migrations m WHERE m.version = v.version)) THEN
    RAISE EXCEPTION 'this script upgrades databases at schema version ${omitThrough} or later, and this one is older: run figma-plugin-auth-db setup against it once (it carries every numbered file)';
  END IF;
END
$plugin_auth_omitted$;`);
  }
  if (expected) parts.push(buildPreflight(expected, migrations), buildRestoreCheck(expected, migrations));
  const notFresh = baseline ? "pg_catalog.current_setting('plugin_auth.fresh', true) IS DISTINCT FROM 'on' AND " : '';
  // A numbered file's part after the line AFTER_FUNCTIONS_MARK (triggers naming functions of the
  // function files) runs after the function files, when the file itself ran in this script.
  const afterParts: { version: number; name: string; sql: string }[] = [];
  for (const m of migrations) {
    if (m.version <= omitThrough) continue;
    const tag = `$plugin_auth_${String(m.version).padStart(3, '0')}$`;
    if (m.sql.includes(BODY_TAG) || m.sql.includes(tag)) {
      throw new Error(`sql/${m.name}.sql must not contain ${BODY_TAG} or ${tag}`);
    }
    const { state, afterFunctions } = splitNumberedFile(m.sql);
    const ran = afterFunctions ? `
    PERFORM pg_catalog.set_config('plugin_auth.after_${m.version}', 'on', true);` : '';
    if (afterFunctions) afterParts.push({ version: m.version, name: m.name, sql: afterFunctions });
    // Without a baseline (generation, or a database built as an earlier version was), restoring
    // runs every applied file again, as versions before the baseline did.
    const rerun = baseline ? '' : `
  ELSIF pg_catalog.current_setting('plugin_auth.restore', true) = 'on' THEN
    EXECUTE ${BODY_TAG}
${state.trimEnd()}
${BODY_TAG};${ran}`;
    parts.push(`-- ${m.name}.sql
DO ${tag}
BEGIN
  IF ${notFresh}NOT EXISTS (SELECT 1 FROM public.plugin_auth_migrations WHERE version = ${m.version}) THEN
    EXECUTE ${BODY_TAG}
${state.trimEnd()}
${BODY_TAG};
    INSERT INTO public.plugin_auth_migrations (version, name, checksum)
    VALUES (${m.version}, '${m.name}', '${m.checksum}');${ran}${rerun}
  END IF;
END
${tag};`);
  }
  const freshOrRestore = "(pg_catalog.current_setting('plugin_auth.fresh', true) = 'on' OR pg_catalog.current_setting('plugin_auth.restore', true) = 'on')";
  if (baseline) {
    const records = migrations.map((m) => `(${m.version}, '${m.name}', '${m.checksum}')`).join(',\n           ');
    parts.push(`-- schema/current.sql, before the functions: on a fresh database, and when restoring or upgrading.
DO $plugin_auth_baseline$
BEGIN
  IF ${freshOrRestore} THEN
    EXECUTE ${BODY_TAG}
${noTag(baseline.state, 'schema/current.sql').trimEnd()}
${BODY_TAG};
  END IF;
  IF pg_catalog.current_setting('plugin_auth.fresh', true) = 'on' THEN
    INSERT INTO public.plugin_auth_migrations (version, name, checksum)
    VALUES ${records};
    PERFORM pg_catalog.set_config('plugin_auth.restore', 'on', true);
  END IF;
END
$plugin_auth_baseline$;`);
  }
  functions.forEach((f, i) => {
    const tag = `$plugin_auth_functions_${i}$`;
    parts.push(`-- sql/functions/${f.name}.sql
DO ${tag}
BEGIN
  IF pg_catalog.current_setting('plugin_auth.restore', true) = 'on'
     OR NOT EXISTS (SELECT 1 FROM public.plugin_auth_function_files
                     WHERE file = '${f.name}' AND checksum = '${f.checksum}') THEN
    EXECUTE ${BODY_TAG}
${noTag(noTag(f.sql, `sql/functions/${f.name}.sql`), `sql/functions/${f.name}.sql`, tag).trimEnd()}
${BODY_TAG};
    INSERT INTO public.plugin_auth_function_files AS f (file, checksum) VALUES ('${f.name}', '${f.checksum}')
    ON CONFLICT (file) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = pg_catalog.now()
     WHERE f.checksum IS DISTINCT FROM EXCLUDED.checksum;
  END IF;
END
${tag};`);
  });
  for (const a of afterParts) {
    const tag = `$plugin_auth_after_${String(a.version).padStart(3, '0')}$`;
    parts.push(`-- ${a.name}.sql, after the functions
DO ${tag}
BEGIN
  IF pg_catalog.current_setting('plugin_auth.after_${a.version}', true) = 'on' THEN
    EXECUTE ${BODY_TAG}
${noTag(a.sql, `sql/${a.name}.sql`, tag).trimEnd()}
${BODY_TAG};
  END IF;
END
${tag};`);
  }
  if (baseline) {
    parts.push(`-- schema/current.sql, after the functions.
DO $plugin_auth_baseline_after$
BEGIN
  IF ${freshOrRestore} THEN
    EXECUTE ${BODY_TAG}
${noTag(baseline.afterFunctions, 'schema/current.sql').trimEnd()}
${BODY_TAG};
  END IF;
END
$plugin_auth_baseline_after$;`);
  }
  if (expected) parts.push(buildConstraintRestore(expected), buildTrustCheck(expected), buildSecurityCall(expected));
  // Supabase's REST API (PostgREST) caches the schema; this makes new functions callable via rpc at
  // once. Anywhere else nobody listens, and a NOTIFY is delivered only if the transaction commits.
  parts.push("NOTIFY pgrst, 'reload schema';");
  return `${parts.join('\n\n')}\n`;
}

/**
 * A numbered file in two parts: its state, and what follows the line AFTER_FUNCTIONS_MARK (if any),
 * which runs once the function files are applied (a trigger needs its function to exist).
 */
export function splitNumberedFile(sql: string): { state: string; afterFunctions: string | null } {
  const at = sql.indexOf(`\n${AFTER_FUNCTIONS_MARK}\n`);
  if (at < 0) return { state: sql, afterFunctions: null };
  return { state: sql.slice(0, at + 1), afterFunctions: sql.slice(at + 1) };
}

/** A text embedded in the script must not close the dollar quote around it. */
function noTag(text: string, where: string, tag: string = BODY_TAG): string {
  if (text.includes(tag)) throw new Error(`${where} must not contain ${tag}`);
  return text;
}

function loadExpectedSchemaIfPresent(): ExpectedSchema | null {
  try {
    return loadExpectedSchema();
  } catch {
    return null; // only while generating it for the first time
  }
}

const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;
const isHost = (table: string) => (HOST_TABLES as readonly string[]).includes(table);
const values = (rows: string[][]) => rows.map((r) => `(${r.map(literal).join(', ')})`).join(',\n      ');

/**
 * Columns a later file adds to an existing table of ours, by the version of that file: each is
 * `ALTER TABLE public.<table> ADD COLUMN IF NOT EXISTS <column>` (one column per statement).
 */
export function addedColumns(migrations: Migration[]): Map<string, number> {
  const added = new Map<string, number>();
  for (const m of migrations) {
    for (const [, table, column] of m.sql.matchAll(/ALTER\s+TABLE\s+public\.(\w+)\s+ADD\s+COLUMN\s+IF\s+NOT\s+EXISTS\s+(\w+)/gi)) {
      if (!added.has(`${table}.${column}`)) added.set(`${table}.${column}`, m.version);
    }
  }
  return added;
}

/**
 * Before anything is created: every one of our tables that already exists must have the expected
 * columns and types (CREATE TABLE IF NOT EXISTS would silently keep a table of another shape), and
 * users.id must be the uuid our foreign keys reference. A column that a pending file adds
 * (addedColumns) may be missing. Reports every difference at once.
 */
function buildPreflight(expected: ExpectedSchema, migrations: Migration[]): string {
  const added = addedColumns(migrations);
  const rows: string[] = [];
  for (const table of expected.tables) {
    const host = isHost(table.name);
    for (const column of table.columns) {
      if (host && !(table.name === 'users' && column.name === 'id')) continue;
      const version = added.get(`${table.name}.${column.name}`);
      rows.push(`(${literal(table.name)}, ${literal(column.name)}, ${literal(column.type)}, ${version ?? 'NULL'}::INTEGER)`);
    }
  }
  return `DO $plugin_auth_preflight$
DECLARE
  v_problems TEXT;
BEGIN
  SELECT pg_catalog.string_agg(
           pg_catalog.format('%s.%s is %s, expected %s', e.table_name, e.column_name,
                             COALESCE(a.column_type, 'missing'), e.column_type),
           '; ' ORDER BY e.table_name, e.column_name)
    INTO v_problems
    FROM (VALUES
      ${rows.join(',\n      ')}
    ) AS e(table_name, column_name, column_type, added_in)
    JOIN pg_catalog.pg_class c
      ON c.relname = e.table_name AND c.relkind IN ('r', 'p')
     AND c.relnamespace = 'public'::regnamespace
    LEFT JOIN LATERAL (
      SELECT pg_catalog.format_type(att.atttypid, att.atttypmod) AS column_type
        FROM pg_catalog.pg_attribute att
       WHERE att.attrelid = c.oid AND att.attname = e.column_name AND att.attnum > 0 AND NOT att.attisdropped
    ) a ON true
   WHERE a.column_type IS DISTINCT FROM e.column_type
     AND NOT (a.column_type IS NULL AND e.added_in IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM public.plugin_auth_migrations m WHERE m.version = e.added_in));
  IF v_problems IS NOT NULL THEN
    RAISE EXCEPTION 'schema_drift: tables that existed before setup have another shape: %', v_problems
      USING ERRCODE = 'PA012',
            HINT = 'Migrate or rename those tables, then run setup again. Nothing was changed.';
  END IF;
END
$plugin_auth_preflight$;`;
}

/** How a function is compared with the snapshot (the same fields as catalog.ts's diffSchema). */
const describeFunction = (f: Omit<CatalogFunction, 'acl' | 'owner' | 'ownerTrusted'>) =>
  `${f.result}|${f.language}|${f.securityDefiner}|${f.volatility}|${f.config.join(',')}|${f.sourceMd5}`;

/**
 * Decides whether this run restores (sets plugin_auth.restore to 'on' for the file blocks), and
 * records what is missing in plugin_auth.restored for setup's report. See buildSetupScript, 6.
 */
function buildRestoreCheck(expected: ExpectedSchema, migrations: Migration[]): string {
  const objects: string[][] = [];
  for (const t of expected.tables) {
    objects.push(['table', t.name, '', `table ${t.name}`]);
    if (isHost(t.name)) continue;
    for (const k of t.constraints) objects.push(['constraint', t.name, k.name, `constraint ${t.name}.${k.name}`]);
    for (const i of t.indexes) objects.push(['index', t.name, i.name, `index ${t.name}.${i.name}`]);
  }
  for (const f of expected.functions) objects.push(['function', f.name, f.arguments, `function ${f.name}(${f.arguments})`]);
  const functions = expected.functions.map((f) => [f.name, f.arguments, describeFunction(f)]);
  return `-- Restore check (src/schema/migrations.ts, buildSetupScript step 6).
DO $plugin_auth_restore_check$
DECLARE
  v_pending BOOLEAN;
  v_missing TEXT;
  v_plans TEXT;
  v_different TEXT;
BEGIN
  v_pending := EXISTS (SELECT 1 FROM pg_catalog.unnest(ARRAY[${migrations.map((m) => m.version).join(', ')}]::INTEGER[]) AS v(version)
                        WHERE NOT EXISTS (SELECT 1 FROM public.plugin_auth_migrations m WHERE m.version = v.version));
  SELECT pg_catalog.string_agg(e.label, '; ' ORDER BY e.kind, e.label) INTO v_missing
    FROM (VALUES
      ${values(objects)}
    ) AS e(kind, a, b, label)
   WHERE CASE e.kind
     WHEN 'table' THEN pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(e.a)) IS NULL
     WHEN 'constraint' THEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                                         WHERE k.conrelid = pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(e.a))
                                           AND k.conname = e.b)
     WHEN 'index' THEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
                                    WHERE x.indrelid = pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(e.a))
                                      AND i.relname = e.b)
     WHEN 'function' THEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                       WHERE p.pronamespace = 'public'::regnamespace AND p.proname = e.a
                                         AND pg_catalog.pg_get_function_identity_arguments(p.oid) = e.b)
   END;
  -- Seed plans (004): read dynamically, the table may not exist yet.
  IF pg_catalog.to_regclass('public.subscription_plans') IS NOT NULL THEN
    EXECUTE 'SELECT pg_catalog.string_agg(''plan '' || s.slug, ''; '' ORDER BY s.slug)
               FROM pg_catalog.unnest($1::TEXT[]) AS s(slug)
              WHERE NOT EXISTS (SELECT 1 FROM public.subscription_plans sp WHERE sp.plan_slug = s.slug)'
      INTO v_plans USING ${`ARRAY[${expected.plans.map(literal).join(', ')}]::TEXT[]`};
    v_missing := NULLIF(pg_catalog.concat_ws('; ', v_missing, v_plans), '');
  END IF;
  IF v_missing IS NOT NULL AND NOT v_pending THEN
    -- Restoring runs every file again, and CREATE OR REPLACE would overwrite a function changed
    -- by hand: refuse those first.
    SELECT pg_catalog.string_agg(pg_catalog.format('function %s(%s)', e.name, e.args), '; ' ORDER BY e.name, e.args)
      INTO v_different
      FROM (VALUES
        ${values(functions)}
      ) AS e(name, args, description)
      JOIN pg_catalog.pg_proc p
        ON p.pronamespace = 'public'::regnamespace AND p.proname = e.name
       AND pg_catalog.pg_get_function_identity_arguments(p.oid) = e.args
      JOIN pg_catalog.pg_language l ON l.oid = p.prolang
     WHERE pg_catalog.concat_ws('|', pg_catalog.pg_get_function_result(p.oid), l.lanname,
             CASE WHEN p.prosecdef THEN 'true' ELSE 'false' END, p.provolatile,
             pg_catalog.array_to_string(COALESCE(p.proconfig, ARRAY[]::TEXT[]), ','), pg_catalog.md5(p.prosrc))
           IS DISTINCT FROM e.description;
    IF v_different IS NOT NULL THEN
      RAISE EXCEPTION 'schema_drift: objects are missing (%), but restoring them would overwrite functions that were changed since setup: %', v_missing, v_different
        USING ERRCODE = 'PA012',
              HINT = 'Put those functions back as sql/ defines them (or drop them), then run setup again. Nothing was changed.';
    END IF;
  END IF;
  PERFORM pg_catalog.set_config('plugin_auth.restore', CASE WHEN v_pending OR v_missing IS NOT NULL THEN 'on' ELSE 'off' END, true);
  PERFORM pg_catalog.set_config('plugin_auth.restored', CASE WHEN v_pending THEN '' ELSE COALESCE(v_missing, '') END, true);
END
$plugin_auth_restore_check$;`;
}

/**
 * Constraints that only a CREATE TABLE declares (002, 007, 011) do not come back when the file
 * runs again on an existing table: when restoring, each missing one is added from the snapshot's
 * definition (pg_get_constraintdef's text, which is valid DDL), keys first, foreign keys last.
 */
function buildConstraintRestore(expected: ExpectedSchema): string {
  const order = { p: 0, u: 1, x: 2, c: 3, f: 4 } as Record<string, number>;
  const rows = expected.tables
    .filter((t) => !isHost(t.name))
    .flatMap((t) => t.constraints.map((k) => ({ table: t.name, ...k })))
    .sort((a, b) => (order[a.type] ?? 9) - (order[b.type] ?? 9) || a.table.localeCompare(b.table) || a.name.localeCompare(b.name))
    .map((k, i) => [String(i + 1).padStart(4, '0'), k.table, k.name, k.definition]);
  return `DO $plugin_auth_restore_constraints$
DECLARE
  v_row RECORD;
BEGIN
  IF pg_catalog.current_setting('plugin_auth.restore', true) IS DISTINCT FROM 'on' THEN
    RETURN;
  END IF;
  FOR v_row IN
    SELECT e.table_name, e.constraint_name, e.definition
      FROM (VALUES
        ${values(rows)}
      ) AS e(ord, table_name, constraint_name, definition)
     ORDER BY e.ord
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                    WHERE k.conrelid = pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(v_row.table_name))
                      AND k.conname = v_row.constraint_name) THEN
      EXECUTE pg_catalog.format('ALTER TABLE public.%I ADD CONSTRAINT %I %s',
                                v_row.table_name, v_row.constraint_name, v_row.definition);
    END IF;
  END LOOP;
END
$plugin_auth_restore_constraints$;`;
}

/**
 * After every file has run (so plugin_auth_catalog() is this version's): refuses a database where
 * code that is not ours could run as the backend. The same rules as src/schema/trust.ts (verify).
 */
function buildTrustCheck(expected: ExpectedSchema): string {
  const names = [...new Set(expected.functions.map((f) => f.name))];
  const signatures = expected.functions.map((f) => [f.name, f.arguments]);
  const tables = expected.tables.map((t) => t.name);
  const array = (items: string[]) => `ARRAY[${items.map(literal).join(', ')}]::TEXT[]`;
  return `-- Trust check (src/schema/trust.ts has the same rules for verify).
DO $plugin_auth_trust$
DECLARE
  v_catalog JSONB := public.plugin_auth_catalog();
  v_untrusted TEXT;
  v_open TEXT;
BEGIN
  SELECT pg_catalog.string_agg(p.problem, '; ' ORDER BY p.problem) INTO v_untrusted FROM (
    SELECT pg_catalog.format('function public.%s(%s) (owner %s): %s', f ->> 'name', f ->> 'arguments', f ->> 'owner',
             CASE WHEN e.name IS NULL THEN 'has the name of one of ours but is not one of ours'
                  ELSE 'owned by a role that is not trusted' END)
      FROM pg_catalog.jsonb_array_elements(v_catalog -> 'functions') AS f
      LEFT JOIN (VALUES
        ${values(signatures)}
      ) AS e(name, args) ON e.name = f ->> 'name' AND e.args = f ->> 'arguments'
     WHERE f ->> 'name' = ANY (${array(names)})
       AND (e.name IS NULL OR NOT (f ->> 'ownerTrusted')::BOOLEAN)
    UNION ALL
    SELECT pg_catalog.format('table public.%s (owner %s): owned by a role that is not trusted', t ->> 'name', t ->> 'owner')
      FROM pg_catalog.jsonb_array_elements(v_catalog -> 'tables') AS t
     WHERE t ->> 'name' = ANY (${array(tables)}) AND NOT (t ->> 'ownerTrusted')::BOOLEAN
    UNION ALL
    SELECT pg_catalog.format('operator %s: shadows a pg_catalog operator', o)
      FROM pg_catalog.jsonb_array_elements_text(v_catalog -> 'security' -> 'operators') AS o
  ) AS p(problem);
  IF v_untrusted IS NOT NULL THEN
    RAISE EXCEPTION 'untrusted_object: code that is not ours could run as the backend: %', v_untrusted
      USING ERRCODE = 'PA013',
            HINT = 'Drop those objects (or give them to a trusted role), then run setup again. Nothing was changed.';
  END IF;
  SELECT pg_catalog.string_agg(r, ', ' ORDER BY r) INTO v_open
    FROM pg_catalog.jsonb_array_elements_text(v_catalog -> 'security' -> 'schemaCreate') AS r;
  IF v_open IS NOT NULL THEN
    RAISE EXCEPTION 'schema_create_open: roles other than the owner may CREATE in schema public: %', v_open
      USING ERRCODE = 'PA014',
            HINT = 'REVOKE CREATE ON SCHEMA public FROM those roles, then run setup again. Nothing was changed.';
  END IF;
END
$plugin_auth_trust$;`;
}

/**
 * Every run ends by locking down this package's tables and functions (sql/012, plugin_auth_secure):
 * RLS on, nothing for PUBLIC / anon / authenticated, exactly what service_role needs where it
 * exists, the security helpers for their owner only. Functions are passed by exact signature (from
 * the generated snapshot), so an overload someone else created is never granted anything. On a run
 * that applied no file, what it changed is added to plugin_auth.restored for setup's report.
 */
function buildSecurityCall(expected: ExpectedSchema): string {
  const tables = expected.tables.map((t) => t.name).filter((name) => !isHost(name));
  if (!expected.functions.some((f) => f.name === 'plugin_auth_secure')) return '-- (no security step: sql/012 not in the snapshot yet)';
  const ownerOnly = (name: string) => (OWNER_ONLY_FUNCTIONS as readonly string[]).includes(name);
  const signatures = expected.functions.map((f) => [f.name, f.arguments, ownerOnly(f.name) ? 'owner' : 'service']);
  const select = (kind: string) => `(SELECT pg_catalog.array_agg(p.oid::REGPROCEDURE ORDER BY p.oid)
       FROM pg_catalog.pg_proc p
       JOIN (VALUES
        ${values(signatures)}
       ) AS e(name, args, kind)
         ON p.proname = e.name AND pg_catalog.pg_get_function_identity_arguments(p.oid) = e.args
      WHERE p.pronamespace = 'public'::regnamespace AND e.kind = '${kind}')`;
  return `DO $plugin_auth_security$
DECLARE
  v_changes TEXT;
BEGIN
  SELECT pg_catalog.string_agg(c, '; ') INTO v_changes FROM public.plugin_auth_secure(
    ARRAY[${tables.map((t) => literal(`public.${t}`)).join(', ')}]::REGCLASS[],
    ${select('service')},
    ${select('owner')}
  ) AS c;
  IF v_changes IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM public.plugin_auth_migrations m WHERE m.applied_at = pg_catalog.now()) THEN
    PERFORM pg_catalog.set_config('plugin_auth.restored',
      pg_catalog.concat_ws('; ', NULLIF(pg_catalog.current_setting('plugin_auth.restored', true), ''), v_changes), true);
  END IF;
END
$plugin_auth_security$;`;
}
