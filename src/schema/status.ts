import type { Catalog, CatalogPlan } from './catalog.ts';
import type { Queryable } from '../core/db.ts';
import { loadExpectedSchema } from './catalog.ts';
import { schemaVersion } from './migrations.ts';
import { figmaWarnings } from './figma-health.ts';

/** What `status` needs from a database; implemented over SQL here and over Supabase's REST API in src/cli/target.ts. */
export interface StatusSource {
  readCatalog(): Promise<Catalog>;
  countRows(table: string): Promise<number>;
  /** The latest value of a timestamp column, ISO 8601, or null when the table is empty. */
  latest(table: string, column: string): Promise<string | null>;
}

export interface Status {
  target: string;
  serverVersion: string;
  database: string;
  schema: {
    /** Highest migration applied to this database (0: never set up). */
    installed: number;
    /** Highest migration this package ships. */
    package: number;
    upToDate: boolean;
  };
  migrations: { version: number; name: string; appliedAt: string }[];
  plans: CatalogPlan[];
  /** Row count of every table the schema owns (host tables included), by name. */
  rowCounts: Record<string, number>;
  lastActivity: Record<keyof typeof ACTIVITY, string | null>;
  /** Problems that are not schema differences, code first (e.g. "figma_token_invalid: …"). */
  warnings: string[];
}

/** "Last activity": which timestamp answers which question. Missing tables/columns report null. */
const ACTIVITY = {
  usageEvent: ['plugin_usage', 'created_at'],
  tokenIssued: ['plugin_tokens', 'created_at'],
  tokenUsed: ['plugin_tokens', 'last_used_at'],
  subscriptionChanged: ['user_subscriptions', 'updated_at'],
} as const;

export async function readStatus(source: StatusSource, target: string): Promise<Status> {
  const catalog = await source.readCatalog();
  const live = new Map(catalog.tables.map((t) => [t.name, t]));
  const rowCounts: Record<string, number> = {};
  for (const { name } of loadExpectedSchema().tables) {
    if (live.has(name)) rowCounts[name] = await source.countRows(name);
  }
  const lastActivity = {} as Status['lastActivity'];
  for (const [key, [table, column]] of Object.entries(ACTIVITY) as [keyof typeof ACTIVITY, readonly [string, string]][]) {
    const exists = live.get(table)?.columns.some((c) => c.name === column);
    lastActivity[key] = exists ? await source.latest(table, column) : null;
  }
  const installed = catalog.migrations.at(-1)?.version ?? 0;
  return {
    target,
    serverVersion: catalog.serverVersion,
    database: catalog.database,
    schema: { installed, package: schemaVersion(), upToDate: installed === schemaVersion() },
    migrations: catalog.migrations.map(({ version, name, appliedAt }) => ({ version, name, appliedAt: new Date(appliedAt).toISOString() })),
    plans: catalog.plans,
    rowCounts,
    lastActivity,
    warnings: live.has('figma_api_state') ? await figmaWarnings(source) : [],
  };
}

/** Table and column names come from pg_catalog, never from input; they are still quoted. */
export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** StatusSource over a direct connection (PostgreSQL or PGlite). */
export function sqlStatusSource(db: Pick<Queryable, 'query'>, read: () => Promise<Catalog>): StatusSource {
  return {
    readCatalog: read,
    async countRows(table) {
      const rows = await db.query<{ n: number }>(`SELECT count(*) AS n FROM public.${quoteIdent(table)}`);
      return Number(rows[0]?.n ?? 0);
    },
    async latest(table, column) {
      const rows = await db.query<{ at: Date | string | null }>(`SELECT max(${quoteIdent(column)}) AS at FROM public.${quoteIdent(table)}`);
      const at = rows[0]?.at;
      return at ? new Date(at).toISOString() : null;
    },
  };
}
