import { readFileSync } from 'node:fs';
import type { Queryable } from '../core/db.ts';

/** The live schema as public.plugin_auth_catalog() describes it (sql/005_catalog.sql). */
export interface Catalog {
  serverVersion: string;
  serverVersionNum: number;
  database: string;
  tables: CatalogTable[];
  functions: CatalogFunction[];
  plans: CatalogPlan[];
  migrations: { version: number; name: string; checksum: string; appliedAt: string }[];
  /** sql/012 on: facts for the trust check (src/schema/trust.ts). Absent on a database set up before. */
  security?: CatalogSecurity;
}
export interface CatalogSecurity {
  /** Does Supabase's service_role exist here? */
  serviceRole: boolean;
  /** Roles besides the trusted ones (src/schema/trust.ts) that may CREATE in public; 'PUBLIC' = everyone. */
  schemaCreate: string[];
  /** Operators outside pg_catalog that shadow a pg_catalog operator, as regoperator text. */
  operators: string[];
}
export interface CatalogTable {
  name: string;
  comment: string | null;
  rls: boolean;
  acl: string[];
  /** sql/012 on: the owning role, and whether it is trusted (src/schema/trust.ts). */
  owner?: string;
  ownerTrusted?: boolean;
  columns: { name: string; type: string; notNull: boolean; default: string | null; identity: string }[];
  constraints: CatalogConstraint[];
  indexes: CatalogIndex[];
}
/**
 * A primary key ('p'), unique ('u'), foreign key ('f'), check ('c') or exclusion ('x') constraint.
 * The key fields are sql/022 on: absent on a database set up before (setup adds them); read them,
 * never parse `definition`.
 */
export interface CatalogConstraint {
  name: string;
  type: string;
  definition: string;
  /** The constrained columns in key order (a check constraint: the columns it uses); null for an expression. */
  columns?: (string | null)[];
  /** A foreign key's referenced table (its name, without schema) and columns, in the order of `columns`; null otherwise. */
  references?: { table: string; columns: string[] } | null;
}
/** An index. The key fields are sql/022 on, as for constraints. */
export interface CatalogIndex {
  name: string;
  definition: string;
  /** The key columns in order (INCLUDE columns are not key columns); null for an expression. */
  columns?: (string | null)[];
  unique?: boolean;
  /** A partial index's WHERE condition as pg_get_expr prints it pretty ("x IS NOT NULL"), or null. */
  predicate?: string | null;
}
export interface CatalogFunction {
  name: string;
  arguments: string;
  result: string;
  language: string;
  securityDefiner: boolean;
  volatility: string;
  config: string[];
  acl: string[];
  sourceMd5: string;
  /** sql/012 on: the owning role, and whether it is trusted (src/schema/trust.ts). */
  owner?: string;
  ownerTrusted?: boolean;
}
export interface CatalogPlan {
  slug: string;
  name: string;
  priceMonthly: number;
  limits: { resizesPerDay: number; batchSize: number; isDaily: boolean };
  features: string[] | null;
  isActive: boolean;
  stripeProductId: string | null;
  stripePriceId: string | null;
}

/**
 * The catalog from what public.plugin_auth_catalog() returned: a JSONB value arrives parsed from a
 * direct connection, as text from some drivers and from the REST API (rpc).
 */
export function parseCatalog(value: unknown): Catalog {
  return (typeof value === 'string' ? JSON.parse(value) : value) as Catalog;
}

/** Reads the catalog through the function setup installed. */
export async function readCatalog(db: Pick<Queryable, 'query'>): Promise<Catalog> {
  const rows = await db.query<{ catalog: unknown }>('SELECT public.plugin_auth_catalog() AS catalog');
  return parseCatalog(rows[0]?.catalog);
}

/** Tables that belong to the host application: used as they are, never compared column by column. */
export const HOST_TABLES = ['users', 'api_keys'] as const;

/** The part of a catalog that must be the same on every database after setup. */
export interface ExpectedSchema {
  tables: Omit<CatalogTable, 'owner' | 'ownerTrusted'>[];
  functions: Omit<CatalogFunction, 'acl' | 'owner' | 'ownerTrusted'>[];
  plans: string[];
  migrations: { version: number; name: string; checksum: string }[];
}

export const EXPECTED_SCHEMA_PATH = new URL('../../schema/expected-schema.json', import.meta.url);

/** The schema snapshot generated from sql/ by `npm run generate` (test: repo.generated.test.ts). */
export function loadExpectedSchema(): ExpectedSchema {
  const raw = JSON.parse(readFileSync(EXPECTED_SCHEMA_PATH, 'utf8')) as ExpectedSchema & { '//'?: string };
  delete raw['//'];
  return raw;
}

/** What must hold anywhere, taken from a catalog freshly built from sql/. */
export function expectedFromCatalog(catalog: Catalog): ExpectedSchema {
  return {
    // Owners and grants depend on who set the database up, not on sql/.
    tables: catalog.tables.map(({ owner: _owner, ownerTrusted: _trusted, ...t }) => ({ ...t, acl: [], rls: t.rls })),
    functions: catalog.functions.map(({ acl: _acl, owner: _owner, ownerTrusted: _trusted, ...f }) => f),
    plans: catalog.plans.map((p) => p.slug),
    migrations: catalog.migrations.map(({ version, name, checksum }) => ({ version, name, checksum })),
  };
}

export interface Difference {
  /** e.g. "table plugin_tokens", "column plugin_tokens.token_hash", "function consume_usage(...)". */
  object: string;
  problem: 'missing' | 'different' | 'unexpected';
  expected?: string;
  actual?: string;
}

const norm = (s: string | null | undefined): string => (s ?? '').replace(/\s+/g, ' ').trim();

/**
 * Compares a live catalog with the expected schema. Our tables must match exactly (columns with
 * types, defaults and nullability; constraints; indexes): extra columns, constraints or indexes on
 * them are reported too. Host tables must only offer what our foreign keys need.
 */
export function diffSchema(expected: ExpectedSchema, live: Catalog): Difference[] {
  const out: Difference[] = [];
  const liveTables = new Map(live.tables.map((t) => [t.name, t]));
  for (const table of expected.tables) {
    const actual = liveTables.get(table.name);
    if (!actual) {
      out.push({ object: `table ${table.name}`, problem: 'missing' });
      continue;
    }
    if ((HOST_TABLES as readonly string[]).includes(table.name)) {
      if (table.name === 'users') {
        const id = actual.columns.find((c) => c.name === 'id');
        if (id?.type !== 'uuid') {
          out.push({ object: 'column users.id', problem: id ? 'different' : 'missing', expected: 'uuid', actual: id?.type });
        }
        const pk = actual.constraints.find((c) => c.type === 'p');
        if (norm(pk?.definition) !== 'PRIMARY KEY (id)') {
          out.push({ object: 'primary key of users', problem: pk ? 'different' : 'missing', expected: 'PRIMARY KEY (id)', actual: pk?.definition });
        }
      }
      continue;
    }
    diffList(out, `column ${table.name}.`, table.columns, actual.columns, (c) =>
      `${c.type}${c.notNull ? ' NOT NULL' : ''}${c.default ? ` DEFAULT ${c.default}` : ''}${c.identity ? ` IDENTITY(${c.identity})` : ''}`,
    );
    diffList(out, `constraint ${table.name}.`, table.constraints, actual.constraints, (c) => norm(c.definition));
    diffList(out, `index ${table.name}.`, table.indexes, actual.indexes, (i) => norm(i.definition));
  }
  const key = (f: { name: string; arguments: string }) => `${f.name}(${f.arguments})`;
  const liveFunctions = new Map(live.functions.map((f) => [key(f), f]));
  for (const fn of expected.functions) {
    const actual = liveFunctions.get(key(fn));
    if (!actual) {
      out.push({ object: `function ${key(fn)}`, problem: 'missing' });
      continue;
    }
    const describe = (f: Omit<CatalogFunction, 'acl' | 'owner' | 'ownerTrusted'>) =>
      `returns ${f.result} language ${f.language} ${f.securityDefiner ? 'SECURITY DEFINER' : 'SECURITY INVOKER'} volatility ${f.volatility} config [${f.config.join(', ')}] source md5 ${f.sourceMd5}`;
    if (describe(fn) !== describe(actual)) {
      out.push({ object: `function ${key(fn)}`, problem: 'different', expected: describe(fn), actual: describe(actual) });
    }
  }
  const liveSlugs = new Set(live.plans.map((p) => p.slug));
  for (const slug of expected.plans) {
    if (!liveSlugs.has(slug)) out.push({ object: `plan ${slug}`, problem: 'missing' });
  }
  const liveMigrations = new Map(live.migrations.map((m) => [m.version, m]));
  for (const m of expected.migrations) {
    const actual = liveMigrations.get(m.version);
    if (!actual) out.push({ object: `migration ${m.name}`, problem: 'missing' });
    else if (actual.checksum !== m.checksum) {
      out.push({ object: `migration ${m.name}`, problem: 'different', expected: m.checksum, actual: actual.checksum });
    }
  }
  const knownVersions = new Set(expected.migrations.map((m) => m.version));
  for (const m of live.migrations) {
    if (!knownVersions.has(m.version)) {
      out.push({ object: `migration ${m.name}`, problem: 'unexpected', actual: `version ${m.version}, newer than this package: upgrade figma-plugin-auth-db` });
    }
  }
  return out;
}

function diffList<T extends { name: string }>(
  out: Difference[],
  prefix: string,
  expected: T[],
  actual: T[],
  describe: (item: T) => string,
): void {
  const actualByName = new Map(actual.map((item) => [item.name, item]));
  const expectedNames = new Set(expected.map((item) => item.name));
  for (const item of expected) {
    const found = actualByName.get(item.name);
    if (!found) out.push({ object: prefix + item.name, problem: 'missing', expected: describe(item) });
    else if (describe(found) !== describe(item)) {
      out.push({ object: prefix + item.name, problem: 'different', expected: describe(item), actual: describe(found) });
    }
  }
  for (const item of actual) {
    if (!expectedNames.has(item.name)) out.push({ object: prefix + item.name, problem: 'unexpected', actual: describe(item) });
  }
}

/** One line per difference, for people. */
export function formatDifferences(differences: Difference[]): string[] {
  return differences.map((d) => {
    if (d.problem === 'missing') return `missing: ${d.object}${d.expected ? ` (${d.expected})` : ''}`;
    if (d.problem === 'unexpected') return `unexpected: ${d.object} (${d.actual})`;
    return `different: ${d.object}\n    expected: ${d.expected}\n    actual:   ${d.actual}`;
  });
}
