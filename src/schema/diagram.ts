import type { Catalog, CatalogTable } from './catalog.ts';

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

const FOREIGN_KEY = /^FOREIGN KEY \(([^)]+)\) REFERENCES (?:"?[\w$]+"?\.)?"?([\w$]+)"?\(([^)]+)\)/;
const list = (text: string) => text.split(',').map((s) => s.trim().replace(/^"|"$/g, ''));

/** The table's foreign keys, parsed from pg_get_constraintdef(). */
export function foreignKeys(table: CatalogTable): ForeignKey[] {
  return table.constraints.flatMap((c) => {
    const match = c.type === 'f' ? FOREIGN_KEY.exec(c.definition) : null;
    return match ? [{ columns: list(match[1]!), references: match[2]!, referencedColumns: list(match[3]!) }] : [];
  });
}

function columnKeys(table: CatalogTable): Map<string, Set<'PK' | 'FK' | 'UK'>> {
  const keys = new Map<string, Set<'PK' | 'FK' | 'UK'>>();
  const mark = (column: string, key: 'PK' | 'FK' | 'UK') => {
    const set = keys.get(column) ?? new Set();
    set.add(key);
    keys.set(column, set);
  };
  for (const c of table.constraints) {
    const columns = /^(?:PRIMARY KEY|UNIQUE) \(([^)]+)\)/.exec(c.definition)?.[1];
    if (c.type === 'p' && columns) list(columns).forEach((name) => mark(name, 'PK'));
    // A multi-column UNIQUE makes no single column unique: only one-column ones are UK.
    if (c.type === 'u' && columns && list(columns).length === 1) mark(list(columns)[0]!, 'UK');
  }
  for (const index of table.indexes) {
    // A one-column unique index is a UK too, also when partial on "column IS NOT NULL"
    // (NULLs never collide anyway); any other predicate makes it unique only in part.
    const match = /^CREATE UNIQUE INDEX \S+ ON \S+ USING \w+ \(([^),]+)\)(?: WHERE \((.+)\))?$/.exec(index.definition);
    if (!match) continue;
    const column = match[1]!.trim().replace(/^"|"$/g, '');
    if (!match[2] || match[2] === `${column} IS NOT NULL`) mark(column, 'UK');
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
