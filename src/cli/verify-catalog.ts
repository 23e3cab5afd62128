// What `verify` concludes from a live catalog (commands/schema.ts loads it when verify runs).
import { diffSchema, HOST_TABLES, loadExpectedSchema, type Catalog, type Difference } from '../schema/catalog.ts';
import { trustProblems } from '../schema/trust.ts';
import { lintCatalog, type Finding } from '../schema/lint.ts';
import { OWNER_ONLY_FUNCTIONS } from '../schema/migrations.ts';

/**
 * What `verify` concludes from a live catalog: differences from the expected schema, security lint
 * findings on our objects, and objects setup refuses to run beside (src/schema/trust.ts). Host tables are
 * linted too, as information (notes): setup leaves their RLS and grants as the application set them.
 */
export function verifyCatalog(catalog: Catalog): { ok: boolean; differences: Difference[]; notes: Difference[] } {
  const expected = loadExpectedSchema();
  const host = HOST_TABLES as readonly string[];
  const scope = {
    tables: expected.tables.map((t) => t.name).filter((name) => !host.includes(name)),
    host: [...host],
    functions: [...new Set(expected.functions.map((f) => f.name))],
    ownerOnly: [...OWNER_ONLY_FUNCTIONS],
  };
  // Functions by our exact signatures: another overload of one of our names is a trust problem.
  const signatures = new Set(expected.functions.map((f) => `${f.name}(${f.arguments})`));
  const findings = lintCatalog({ ...catalog, functions: catalog.functions.filter((f) => signatures.has(`${f.name}(${f.arguments})`)) }, scope);
  const differences = [
    ...diffSchema(expected, catalog),
    ...findings.filter((f) => f.severity !== 'info').map(findingAsDifference),
    ...trustProblems(catalog, expected).map((p): Difference => ({ object: p.object, problem: 'unexpected', actual: `${p.code}: ${p.detail}` })),
  ];
  const notes = findings.filter((f) => f.severity === 'info').map(findingAsDifference);
  return { ok: differences.length === 0, differences, notes };
}

/** The host tables' notes as verify prints them. */
export function formatNotes(notes: Difference[]): string[] {
  if (!notes.length) return [];
  return [
    'Notes on host tables (your application\'s; setup leaves their RLS and grants as they are):',
    ...notes.map((n) => `  note: ${n.object}: ${n.actual} (the lint expects ${n.expected})`),
  ];
}

const LINT_EXPECTED: Record<Finding['rule'], string> = {
  rls_disabled: 'row level security enabled',
  table_granted_to_public_role: 'no privilege for PUBLIC, anon or authenticated',
  function_search_path_mutable: "SET search_path = ''",
  function_executable_by_public_role: 'EXECUTE not granted to PUBLIC, anon or authenticated',
  unindexed_foreign_key: 'an index leading with the foreign key columns',
  duplicate_index: 'no two indexes alike',
  service_role_privileges: 'service_role: exactly SELECT, INSERT, UPDATE, DELETE on a table; EXECUTE on a function',
  helper_not_owner_only: 'executable by its owner only',
};
const LINT_ACTUAL: Record<Finding['rule'], (f: Finding) => string> = {
  rls_disabled: () => 'row level security disabled',
  table_granted_to_public_role: (f) => `granted to ${f.detail}`,
  function_search_path_mutable: () => 'search_path not set (mutable)',
  function_executable_by_public_role: (f) => `executable by ${f.detail}`,
  unindexed_foreign_key: (f) => `no index on (${f.detail})`,
  duplicate_index: (f) => f.detail ?? 'duplicate',
  service_role_privileges: (f) => `service_role ${f.detail}`,
  helper_not_owner_only: (f) => `executable by ${f.detail}`,
};

/** A lint finding in verify's shape: `different: <object> (security: <rule>)`, expected vs actual. */
function findingAsDifference(f: Finding): Difference {
  return { object: `${f.object} (security: ${f.rule})`, problem: 'different', expected: LINT_EXPECTED[f.rule], actual: LINT_ACTUAL[f.rule](f) };
}
