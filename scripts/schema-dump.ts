// schema/current.sql: the state of the schema at the latest numbered migration (tables, columns,
// constraints, indexes, seed rows, triggers), rendered from the catalog of a database built from
// sql/. It is both the committed dump reviewers read in diffs and the baseline setup runs on a
// fresh database (src/schema/migrations.ts): a fresh install builds this state directly and
// records every numbered migration as applied. Every statement is re-runnable (IF NOT EXISTS,
// guarded blocks, ON CONFLICT DO NOTHING): setup also runs it to restore a dropped object.
import type { Queryable } from '../src/core/db.ts';
import { HOST_TABLES, readCatalog, type Catalog, type CatalogTable } from '../src/schema/catalog.ts';
import { loadFunctionFiles, functionDefinitions } from '../src/schema/functions.ts';
import { AFTER_FUNCTIONS_MARK, SETUP_TABLES } from '../src/schema/migrations.ts';

const isHost = (name: string) => (HOST_TABLES as readonly string[]).includes(name);
const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;

function column(c: CatalogTable['columns'][number]): string {
  if (c.identity) return `  ${c.name} ${c.type} GENERATED ${c.identity === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY`;
  return `  ${c.name} ${c.type}${c.default !== null ? ` DEFAULT ${c.default}` : ''}${c.notNull ? ' NOT NULL' : ''}`;
}

// Text with at most two levels of parentheses inside (enough for the expressions of sql/).
const P = String.raw`(?:[^()]|\((?:[^()]|\([^()]*\))*\))+?`;

/**
 * A CHECK as written in sql/ and as pg_get_constraintdef prints it are not always read back into
 * the same expression: `x IN ('a', 'b')` prints as `= ANY ((ARRAY[...])::text[])`, which parses
 * into another tree (and prints otherwise); `x BETWEEN a AND b` prints as two comparisons, which
 * an enclosing AND then flattens. Both are turned back into the form that reads back the same, so
 * a fresh database and an upgraded one print every constraint alike (test/schema.sql-layout.test.ts).
 */
export function readableAsWritten(definition: string): string {
  return definition
    .replace(/\(\((\w+)\)::text = ANY \(\(ARRAY\[([^\]]*)\]\)::text\[\]\)\)/g, '(($1) IN ($2))')
    .replace(new RegExp(String.raw`\(\((${P}) >= (${P})\) AND \(\1 <= (${P})\)\)`, 'g'), '($1 BETWEEN $2 AND $3)');
}

/** CREATE TABLE with every column and constraint (foreign keys name tables created before). */
function createTable(t: CatalogTable, ifNotExists: boolean): string {
  const order = { p: 0, u: 1, x: 2, c: 3, f: 4 } as Record<string, number>;
  const constraints = [...t.constraints]
    .sort((a, b) => (order[a.type] ?? 9) - (order[b.type] ?? 9) || a.name.localeCompare(b.name))
    .map((k) => `  CONSTRAINT ${k.name} ${readableAsWritten(k.definition.replace(/\n/g, ' '))}`);
  return `CREATE TABLE ${ifNotExists ? 'IF NOT EXISTS ' : ''}public.${t.name} (\n${[...t.columns.map(column), ...constraints].join(',\n')}\n);`;
}

/** Indexes that are not a constraint's own. */
function createIndexes(t: CatalogTable): string[] {
  const owned = new Set(t.constraints.filter((k) => 'pux'.includes(k.type)).map((k) => k.name));
  return t.indexes.filter((i) => !owned.has(i.name)).map((i) => `${i.definition.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX IF NOT EXISTS ')};`);
}

/** Tables in an order where every foreign key names a table created earlier. */
function byDependency(tables: CatalogTable[], created: readonly string[] = []): CatalogTable[] {
  const done = new Set<string>(created);
  const out: CatalogTable[] = [];
  const pending = [...tables].sort((a, b) => a.name.localeCompare(b.name));
  while (pending.length) {
    const i = pending.findIndex((t) => t.constraints.every((k) => k.type !== 'f' || !k.references || k.references.table === t.name || done.has(k.references.table)));
    if (i < 0) throw new Error(`foreign keys form a cycle among ${pending.map((t) => t.name).join(', ')}`);
    const [t] = pending.splice(i, 1);
    done.add(t!.name);
    out.push(t!);
  }
  return out;
}

async function seedRows(db: Pick<Queryable, 'query'>, t: CatalogTable): Promise<string[]> {
  // Columns filled by the database (identity, now(), gen_random_uuid()) are left to it.
  const columns = t.columns.filter((c) => !c.identity && !/\b(now|gen_random_uuid|nextval)\(/.test(c.default ?? ''));
  if (!columns.length) return [];
  const rows = await db.query<{ v: string[] }>(
    `SELECT ARRAY[${columns.map((c) => `pg_catalog.quote_nullable(t.${c.name}::text) || '::${c.type}'`).join(', ')}] AS v FROM public.${t.name} AS t ORDER BY 1`,
  );
  if (!rows.length) return [];
  const values = rows.map((r) => `  (${r.v.map((v) => (v.startsWith('NULL::') ? 'NULL' : v)).join(', ')})`);
  return [`INSERT INTO public.${t.name} (${columns.map((c) => c.name).join(', ')})\nVALUES\n${values.join(',\n')}\nON CONFLICT DO NOTHING;`];
}

/** The host tables (sql/001): created, and locked down, only where the application has none. */
function hostTables(tables: CatalogTable[]): string {
  const blocks = tables.map((t) => [
    `  IF pg_catalog.to_regclass('public.${t.name}') IS NULL THEN`,
    ...createTable(t, false).split('\n').map((l) => `    ${l}`),
    ...createIndexes(t).map((l) => `    ${l.replace(' IF NOT EXISTS', '')}`),
    `    v_created := v_created || 'public.${t.name}'::regclass;`,
    '  END IF;',
  ].join('\n'));
  return `-- Host tables (sql/001): created here only where the application has none; a host's own table is
-- used as it is. Tables created here are locked down like ours (on Supabase a users table without
-- RLS would be readable with the anon key).
DO $plugin_auth_host_tables$
DECLARE
  v_created REGCLASS[] := ARRAY[]::REGCLASS[];
  v_table REGCLASS;
  v_role TEXT;
BEGIN
${blocks.join('\n')}
  FOREACH v_table IN ARRAY v_created LOOP
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_table);
    EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC', v_table);
    FOR v_role IN SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.rolname IN ('anon', 'authenticated') LOOP
      EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM %I', v_table, v_role);
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'service_role') THEN
      EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM service_role', v_table);
      EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO service_role', v_table);
    END IF;
  END LOOP;
END
$plugin_auth_host_tables$;`;
}

/** Which file under sql/functions/ defines each function. */
function functionHomes(): Map<string, string> {
  const homes = new Map<string, string>();
  for (const file of loadFunctionFiles()) for (const d of functionDefinitions(file.sql)) homes.set(d.name, `sql/functions/${file.name}.sql`);
  return homes;
}

export async function renderCurrentSchema(db: Pick<Queryable, 'query'>, catalog?: Catalog): Promise<string> {
  catalog ??= await readCatalog(db);
  const version = catalog.migrations.at(-1)?.version ?? 0;
  const ours = byDependency(catalog.tables.filter((t) => !isHost(t.name) && !(SETUP_TABLES as readonly string[]).includes(t.name)), HOST_TABLES);
  const out: string[] = [
    '-- GENERATED by `npm run generate` (scripts/schema-dump.ts) from a database built from sql/: do not',
    '-- edit (test/repo.generated.test.ts fails when it is stale). Change the schema with a new numbered file',
    '-- in sql/ (state) or the function files in sql/functions/ (functions), then `npm run generate`.',
    `-- The state of schema version ${version}. Setup runs it on a fresh database (and records sql/001-${String(version).padStart(3, '0')} as`,
    '-- applied) and to restore dropped objects; every statement is re-runnable. Grants and RLS: setup\'s',
    '-- security step (plugin_auth_secure, sql/functions/security.sql).',
    '',
    hostTables(byDependency(catalog.tables.filter((t) => isHost(t.name)))),
  ];
  for (const t of ours) {
    out.push('', createTable(t, true));
    if (t.comment) out.push(`COMMENT ON TABLE public.${t.name} IS ${literal(t.comment)};`);
    out.push(...createIndexes(t));
  }
  const secured = ours.filter((t) => t.rls).map((t) => literal(`public.${t.name}`));
  if (secured.length) {
    out.push('', `-- Row level security on (setup's security step keeps it so, with the grants).
DO $plugin_auth_rls$
DECLARE
  v_table REGCLASS;
BEGIN
  FOREACH v_table IN ARRAY ARRAY[${secured.join(', ')}]::REGCLASS[] LOOP
    IF NOT (SELECT c.relrowsecurity FROM pg_catalog.pg_class c WHERE c.oid = v_table) THEN
      EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_table);
    END IF;
  END LOOP;
END
$plugin_auth_rls$;`);
  }
  out.push('', '-- Seed rows.');
  for (const t of ours) out.push(...(await seedRows(db, t)));
  out.push('', AFTER_FUNCTIONS_MARK, '-- Triggers (their functions exist by now).');
  const triggers = await db.query<{ table: string; name: string; def: string }>(
    `SELECT c.relname AS table, g.tgname AS name, pg_catalog.pg_get_triggerdef(g.oid) AS def
       FROM pg_catalog.pg_trigger AS g JOIN pg_catalog.pg_class AS c ON c.oid = g.tgrelid
      WHERE c.relnamespace = 'public'::regnamespace AND NOT g.tgisinternal
      ORDER BY c.relname, g.tgname`,
  );
  for (const g of triggers) {
    out.push(`DO $plugin_auth_trigger$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                  WHERE g.tgrelid = 'public.${g.table}'::regclass AND g.tgname = ${literal(g.name)}) THEN
    ${g.def.replace(/EXECUTE FUNCTION (?!public\.)/, 'EXECUTE FUNCTION public.')};
  END IF;
END
$plugin_auth_trigger$;`);
  }
  const homes = functionHomes();
  out.push('', `-- Functions (${catalog.functions.length}), each defined in one file under sql/functions/:`);
  for (const f of catalog.functions) {
    out.push(`--   public.${f.name}(${f.arguments}) RETURNS ${f.result}  [${homes.get(f.name) ?? 'NOT IN ANY FILE'}]`);
  }
  return `${out.join('\n')}\n`;
}

/**
 * A comparable picture of a database's schema: the catalog (tables with columns, constraints,
 * indexes, RLS and grants; functions with their source's md5, settings and grants; plans;
 * migrations without when), and what the catalog does not list: triggers and sequences.
 */
export async function describeSchema(db: Pick<Queryable, 'query'>): Promise<unknown> {
  const { serverVersion: _v, serverVersionNum: _n, database: _d, migrations, tables, ...rest } = await readCatalog(db);
  const triggers = await db.query(
    `SELECT c.relname AS table, g.tgname AS name, pg_catalog.pg_get_triggerdef(g.oid) AS definition, g.tgenabled AS enabled
       FROM pg_catalog.pg_trigger AS g JOIN pg_catalog.pg_class AS c ON c.oid = g.tgrelid
      WHERE c.relnamespace = 'public'::regnamespace AND NOT g.tgisinternal ORDER BY 1, 2`,
  );
  const sequences = await db.query(
    `SELECT c.relname AS name, pg_catalog.format_type(s.seqtypid, NULL) AS type, s.seqstart::text AS start,
            s.seqincrement::text AS increment, s.seqmin::text AS min, s.seqmax::text AS max, s.seqcache::text AS cache, s.seqcycle AS cycle,
            COALESCE(c.relacl::text[], ARRAY[]::text[]) AS acl
       FROM pg_catalog.pg_sequence AS s JOIN pg_catalog.pg_class AS c ON c.oid = s.seqrelid
      WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1`,
  );
  return {
    ...rest,
    // Setup's bookkeeping table of function files holds when each was applied: its rows are not schema.
    tables,
    migrations: migrations.map(({ appliedAt: _at, ...m }) => m),
    triggers,
    sequences,
  };
}
