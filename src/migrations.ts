import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HOST_TABLES, loadExpectedSchema, type ExpectedSchema } from './catalog.ts';

/** One numbered file of sql/: the only place DDL is written. */
export interface Migration {
  version: number;
  /** File name without .sql, e.g. "002_plugin_auth_tables". */
  name: string;
  sql: string;
  /** SHA-256 of the file: a file changed after it was applied is detected, not silently skipped. */
  checksum: string;
}

export const SQL_DIR = fileURLToPath(new URL('../sql/', import.meta.url));

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
const LOCK_KEY = 'figma-plugin-auth-db:setup';

/**
 * The whole setup as one SQL script, identical for every target: run inside BEGIN/COMMIT over a
 * direct connection, or as the single argument of Supabase's exec_sql (one rpc call is one
 * transaction). `--dry-run` prints exactly this text.
 *
 * 1. Timeouts: never wait forever behind another session's lock, never run away.
 * 2. A transaction-scoped advisory lock: concurrent setups queue here; it is released at
 *    COMMIT/ROLLBACK, so it is safe on pooled connections.
 * 3. The migrations table records each file with its checksum. Files already applied are skipped;
 *    a file that changed since it was applied, or a database newer than this package, stops setup.
 * 4. Each pending file runs, and is recorded, in the same transaction: all or nothing.
 */
export function buildSetupScript(
  migrations: Migration[] = loadMigrations(),
  expected: ExpectedSchema | null = loadExpectedSchemaIfPresent(),
): string {
  const known = migrations.map((m) => `(${m.version}, '${m.checksum}')`).join(', ');
  const parts: string[] = [
    `-- figma-plugin-auth-db schema setup: version ${schemaVersion(migrations)}, generated from sql/*.sql.`,
    '-- Runs as one transaction. Safe to run again: applied files are skipped.',
    "SET LOCAL lock_timeout = '60s';",
    "SET LOCAL statement_timeout = '300s';",
    `SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('${LOCK_KEY}'));`,
    "SET LOCAL lock_timeout = '15s';",
    `CREATE TABLE IF NOT EXISTS public.plugin_auth_migrations (
  version INTEGER PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  checksum CHAR(64) NOT NULL,
  applied_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);`,
    `COMMENT ON TABLE public.plugin_auth_migrations IS 'schema version: one row per applied sql/ file';`,
    `DO $plugin_auth_check$
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
$plugin_auth_check$;`,
  ];
  if (expected) parts.push(buildPreflight(expected));
  for (const m of migrations) {
    const tag = `$plugin_auth_${String(m.version).padStart(3, '0')}$`;
    if (m.sql.includes(BODY_TAG) || m.sql.includes(tag)) {
      throw new Error(`sql/${m.name}.sql must not contain ${BODY_TAG} or ${tag}`);
    }
    parts.push(`-- ${m.name}.sql
DO ${tag}
BEGIN
  IF NOT EXISTS (SELECT 1 FROM public.plugin_auth_migrations WHERE version = ${m.version}) THEN
    EXECUTE ${BODY_TAG}
${m.sql.trimEnd()}
${BODY_TAG};
    INSERT INTO public.plugin_auth_migrations (version, name, checksum)
    VALUES (${m.version}, '${m.name}', '${m.checksum}');
  END IF;
END
${tag};`);
  }
  if (expected) parts.push(buildSecurityCall(expected));
  // Supabase's REST API (PostgREST) caches the schema; this makes new functions callable via rpc at
  // once. Anywhere else nobody listens, and a NOTIFY is delivered only if the transaction commits.
  parts.push("NOTIFY pgrst, 'reload schema';");
  return `${parts.join('\n\n')}\n`;
}

function loadExpectedSchemaIfPresent(): ExpectedSchema | null {
  try {
    return loadExpectedSchema();
  } catch {
    return null; // only while generating it for the first time
  }
}

const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;

/**
 * Before anything is created: every one of our tables that already exists must have the expected
 * columns and types (CREATE TABLE IF NOT EXISTS would silently keep a table of another shape), and
 * users.id must be the uuid our foreign keys reference. Reports every difference at once.
 */
function buildPreflight(expected: ExpectedSchema): string {
  const rows: string[] = [];
  for (const table of expected.tables) {
    const host = (HOST_TABLES as readonly string[]).includes(table.name);
    for (const column of table.columns) {
      if (host && !(table.name === 'users' && column.name === 'id')) continue;
      rows.push(`(${literal(table.name)}, ${literal(column.name)}, ${literal(column.type)})`);
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
    ) AS e(table_name, column_name, column_type)
    JOIN pg_catalog.pg_class c
      ON c.relname = e.table_name AND c.relkind IN ('r', 'p')
     AND c.relnamespace = 'public'::regnamespace
    LEFT JOIN LATERAL (
      SELECT pg_catalog.format_type(att.atttypid, att.atttypmod) AS column_type
        FROM pg_catalog.pg_attribute att
       WHERE att.attrelid = c.oid AND att.attname = e.column_name AND att.attnum > 0 AND NOT att.attisdropped
    ) a ON true
   WHERE a.column_type IS DISTINCT FROM e.column_type;
  IF v_problems IS NOT NULL THEN
    RAISE EXCEPTION 'schema_drift: tables that existed before setup have another shape: %', v_problems
      USING ERRCODE = 'PA012',
            HINT = 'Migrate or rename those tables, then run setup again. Nothing was changed.';
  END IF;
END
$plugin_auth_preflight$;`;
}

/**
 * Every run ends by locking down this package's tables and functions (sql/009_security.sql):
 * RLS on, nothing for PUBLIC / anon / authenticated, everything for service_role where it exists.
 * The lists come from the generated schema snapshot, so objects added by later files are covered.
 */
function buildSecurityCall(expected: ExpectedSchema): string {
  const tables = expected.tables.map((t) => t.name).filter((name) => !(HOST_TABLES as readonly string[]).includes(name));
  const functions = [...new Set(expected.functions.map((f) => f.name))];
  if (!functions.includes('plugin_auth_secure')) return '-- (no security step: sql/009 not in the snapshot yet)';
  const array = (items: string[]) => `ARRAY[${items.map(literal).join(', ')}]::TEXT[]`;
  return `SELECT public.plugin_auth_secure(\n  ${array(tables)},\n  ${array(functions)}\n);`;
}
