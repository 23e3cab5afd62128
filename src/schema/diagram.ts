import { SetupError } from '../core/errors.ts';
import type { Catalog, CatalogConstraint, CatalogIndex, CatalogTable } from './catalog.ts';
import { quoteIdent } from './status.ts';

/**
 * A Mermaid `erDiagram` of a catalog: every table with its columns and types, PK/FK/UK markers,
 * and one relationship per foreign key. Built from the live catalog (never from constants), so
 * `figma-plugin-auth-db diagram` shows the database as it is, and docs/schema-diagram.md shows
 * what sql/ builds.
 */
export function buildMermaidDiagram(catalog: Pick<Catalog, 'tables'>): string {
  const lines = ['erDiagram'];
  const relationships: string[] = [];
  for (const table of catalog.tables) {
    const keys = columnKeys(table);
    lines.push(`  ${table.name} {`);
    for (const column of table.columns) {
      const markers = keys.get(column.name);
      lines.push(`    ${mermaidType(column.type)} ${column.name}${markers?.size ? ` ${[...markers].join(', ')}` : ''}`);
    }
    lines.push('  }');
    for (const fk of foreignKeys(table)) {
      const column = table.columns.find((c) => c.name === fk.columns[0]);
      // Parent side: exactly one when the column is NOT NULL, zero or one otherwise. Child side:
      // at most one when the referencing column is unique (user_subscriptions.user_id).
      const parent = fk.columns.every((name) => table.columns.find((c) => c.name === name)?.notNull) ? '||' : '|o';
      const child = fk.columns.length === 1 && column && keys.get(column.name)?.has('UK') ? 'o|' : 'o{';
      relationships.push(`  ${fk.references} ${parent}--${child} ${table.name} : "${fk.columns.join(', ')}"`);
    }
  }
  return `${[...lines, ...relationships].join('\n')}\n`;
}

export interface ForeignKey {
  columns: string[];
  references: string;
  referencedColumns: string[];
}

/**
 * A constraint's or index's key columns as the catalog gives them (sql/022). A database set up
 * before has none, and a diagram without its keys would be wrong: setup adds them.
 */
function keyColumns(table: CatalogTable, item: CatalogConstraint | CatalogIndex): (string | null)[] {
  if (!item.columns) {
    throw new SetupError('not_set_up', `the catalog of this database has no key columns (${table.name}.${item.name}): its schema predates version 22; run \`figma-plugin-auth-db setup\``);
  }
  return item.columns;
}

/** The table's foreign keys, from the catalog's key columns. */
export function foreignKeys(table: CatalogTable): ForeignKey[] {
  return table.constraints.flatMap((c) => {
    if (c.type !== 'f') return [];
    const columns = keyColumns(table, c).filter((name) => name !== null);
    return c.references ? [{ columns, references: c.references.table, referencedColumns: c.references.columns }] : [];
  });
}

function columnKeys(table: CatalogTable): Map<string, Set<'PK' | 'FK' | 'UK'>> {
  const keys = new Map<string, Set<'PK' | 'FK' | 'UK'>>();
  const mark = (column: string | null, key: 'PK' | 'FK' | 'UK') => {
    if (column === null) return;
    const set = keys.get(column) ?? new Set();
    set.add(key);
    keys.set(column, set);
  };
  for (const c of table.constraints) {
    if (c.type === 'p') keyColumns(table, c).forEach((name) => mark(name, 'PK'));
    // A multi-column UNIQUE makes no single column unique: only one-column ones are UK.
    const columns = c.type === 'u' ? keyColumns(table, c) : [];
    if (columns.length === 1) mark(columns[0]!, 'UK');
  }
  for (const index of table.indexes) {
    // A one-column unique index is a UK too, also when partial on "column IS NOT NULL"
    // (NULLs never collide anyway); any other predicate makes it unique only in part.
    const columns = keyColumns(table, index);
    const column = columns[0];
    if (!index.unique || columns.length !== 1 || column == null) continue;
    const notNull = [`${column} IS NOT NULL`, `${quoteIdent(column)} IS NOT NULL`];
    if (index.predicate == null || notNull.includes(index.predicate)) mark(column, 'UK');
  }
  for (const fk of foreignKeys(table)) fk.columns.forEach((name) => mark(name, 'FK'));
  // The primary key's own index is unique too: a PK column is not also marked UK. Mermaid's order: PK, FK, UK.
  for (const [name, set] of keys) {
    if (set.has('PK')) set.delete('UK');
    keys.set(name, new Set((['PK', 'FK', 'UK'] as const).filter((k) => set.has(k))));
  }
  return keys;
}

const SHORT_TYPES: [RegExp, string][] = [
  [/^character varying/, 'varchar'],
  [/^character\b/, 'char'],
  [/^timestamp(\(\d+\))? with time zone/, 'timestamptz$1'],
  [/^timestamp(\(\d+\))? without time zone/, 'timestamp$1'],
  [/^time(\(\d+\))? with time zone/, 'timetz$1'],
  [/^double precision/, 'float8'],
  [/^bit varying/, 'varbit'],
];

/** Mermaid attribute types are one word: `varchar(255)`, `timestamptz`, `text[]`. */
export function mermaidType(type: string): string {
  let out = type;
  for (const [pattern, short] of SHORT_TYPES) out = out.replace(pattern, short);
  return out.replace(/\s+/g, '_').replace(/[^A-Za-z0-9_\-[\]()]/g, '_');
}
