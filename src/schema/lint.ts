import type { Catalog } from './catalog.ts';

/**
 * The checks Supabase's database advisor runs, on this package's objects in a live catalog.
 * Used by tests, by `verify`, and worth running after any manual change.
 */
export interface Finding {
  rule:
    | 'rls_disabled'
    | 'table_granted_to_public_role'
    | 'function_search_path_mutable'
    | 'function_executable_by_public_role'
    | 'unindexed_foreign_key'
    | 'duplicate_index'
    | 'service_role_privileges'
    | 'helper_not_owner_only';
  object: string;
  detail?: string;
  /**
   * 'info' on a host table (users, api_keys): setup uses the application's tables as they are and
   * never changes their RLS or grants, so a finding there is for the application to judge, not a
   * difference from our schema.
   */
  severity?: 'info';
}

export interface LintScope {
  /** This package's tables (linted strictly). */
  tables: string[];
  /** This package's function names. */
  functions: string[];
  /** Host tables: linted, reported as information only. */
  host?: string[];
  /** Functions only their owner may execute (the security helpers). */
  ownerOnly?: string[];
}

/** The privilege letters an ACL gives one grantee ("service_role=arwd/postgres" -> "adrw"), or null. */
function privilegesOf(acl: string[], grantee: string): string | null {
  const item = acl.find((a) => a.slice(0, a.indexOf('=')).replace(/^"|"$/g, '') === grantee);
  if (!item) return null;
  return [...item.slice(item.indexOf('=') + 1, item.lastIndexOf('/'))].sort().join('');
}

/** Roles that reach the database through Supabase's public API, and PUBLIC (grantee ""). */
const PUBLIC_GRANTEES = new Set(['', 'anon', 'authenticated']);

/** Grantees of an ACL in text form ("grantee=privileges/grantor"). */
function grantees(acl: string[]): string[] {
  return acl.map((item) => item.slice(0, item.indexOf('=')).replace(/^"|"$/g, ''));
}

export function lintCatalog(catalog: Catalog, ours: LintScope): Finding[] {
  const findings: Finding[] = [];
  const host = ours.host ?? [];
  const tables = catalog.tables.filter((t) => ours.tables.includes(t.name) || host.includes(t.name));
  const serviceRole = catalog.security?.serviceRole === true;
  for (const t of tables) {
    const start = findings.length;
    if (!t.rls) findings.push({ rule: 'rls_disabled', object: `table ${t.name}` });
    const open = grantees(t.acl).filter((g) => PUBLIC_GRANTEES.has(g));
    if (open.length) {
      findings.push({ rule: 'table_granted_to_public_role', object: `table ${t.name}`, detail: open.map((g) => g || 'PUBLIC').join(', ') });
    }
    // Key columns as the catalog gives them (sql/022). A catalog from before has none: verify
    // reports that database's schema as outdated already, and this check waits for setup.
    for (const fk of t.constraints.filter((c) => c.type === 'f' && c.columns)) {
      const columns = fk.columns!;
      const covered = t.indexes.some((idx) => columns.every((c, i) => idx.columns?.[i] === c));
      if (!covered) findings.push({ rule: 'unindexed_foreign_key', object: `${t.name}.${fk.name}`, detail: columns.join(', ') });
    }
    const seen = new Map<string, string>();
    for (const index of t.indexes) {
      const shape = index.definition.replace(/INDEX \S+ ON/, 'INDEX ON');
      const twin = seen.get(shape);
      if (twin) findings.push({ rule: 'duplicate_index', object: `${t.name}.${index.name}`, detail: `same as ${twin}` });
      else seen.set(shape, index.name);
    }
    if (serviceRole && !host.includes(t.name)) {
      const privileges = privilegesOf(t.acl, 'service_role');
      if (privileges !== 'adrw') {
        findings.push({ rule: 'service_role_privileges', object: `table ${t.name}`, detail: privileges ? `has ${privileges}` : 'has none' });
      }
    }
    if (host.includes(t.name) && !ours.tables.includes(t.name)) {
      for (const f of findings.slice(start)) f.severity = 'info';
    }
  }
  for (const f of catalog.functions.filter((fn) => ours.functions.includes(fn.name))) {
    const name = `function ${f.name}(${f.arguments})`;
    if (!f.config.some((c) => c.startsWith('search_path='))) findings.push({ rule: 'function_search_path_mutable', object: name });
    // An empty ACL is the default one, which lets PUBLIC execute.
    const open = f.acl.length === 0 ? [''] : grantees(f.acl).filter((g) => PUBLIC_GRANTEES.has(g));
    if (open.length) {
      findings.push({ rule: 'function_executable_by_public_role', object: name, detail: open.map((g) => g || 'PUBLIC').join(', ') });
    }
    const ownerOnly = ours.ownerOnly?.includes(f.name) ?? false;
    if (ownerOnly && f.owner) {
      const others = grantees(f.acl).filter((g) => g !== f.owner && !PUBLIC_GRANTEES.has(g));
      if (others.length) findings.push({ rule: 'helper_not_owner_only', object: name, detail: others.join(', ') });
    } else if (!ownerOnly && serviceRole && !privilegesOf(f.acl, 'service_role')) {
      findings.push({ rule: 'service_role_privileges', object: name, detail: 'cannot execute it' });
    }
  }
  return findings;
}
