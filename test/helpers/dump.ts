// A comparable picture of a whole database: the catalog (minus when things were applied) and every
// row of every table in public, in a stable order.
import type { Database } from '../../src/core/db.ts';
import { readCatalog } from '../../src/schema/catalog.ts';

export interface Dump {
  catalog: unknown;
  rows: Record<string, unknown[]>;
}

export interface DumpOptions {
  /** Replace generated ids and timestamps, so two databases set up separately compare equal. */
  normalize?: boolean;
}

export async function dumpDatabase(db: Pick<Database, 'query'>, options: DumpOptions = {}): Promise<Dump> {
  const catalog = await readCatalog(db);
  const tables = catalog.tables.map((t) => t.name).sort();
  // Every table's rows in one statement (one round trip, not one per table), each table's in the
  // order of their JSON text.
  const data = await db.query<{ k: number; r: unknown }>(
    tables.map((table, k) => `SELECT ${k}::integer AS k, COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t) ORDER BY pg_catalog.to_jsonb(t)::text) FROM public.${table} t), '[]'::jsonb) AS r`).join('\nUNION ALL\n'),
  );
  const rows: Record<string, unknown[]> = {};
  for (const { k, r } of data) {
    const table = tables[k]!;
    rows[table] = ((typeof r === 'string' ? JSON.parse(r) : r) as Record<string, unknown>[]).map((row) => {
      if (!options.normalize) return row;
      for (const key of Object.keys(row)) {
        if (key === 'id' || key.endsWith('_at') || key === 'plan_id') row[key] = `<${key}>`;
      }
      return row;
    });
    if (options.normalize) rows[table]!.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  }
  const { migrations, serverVersion, serverVersionNum, database, ...rest } = catalog;
  return {
    catalog: { ...rest, migrations: migrations.map(({ appliedAt, ...m }) => (options.normalize ? m : { ...m, appliedAt })) },
    rows,
  };
}
