import type { Catalog, ExpectedSchema } from './catalog.ts';
import { HOST_TABLES } from './catalog.ts';

/**
 * Could code that is not ours run as the backend? The rules setup enforces (the trust check in
 * src/schema/migrations.ts refuses the run) and `verify` reports, on the facts plugin_auth_catalog()
 * gathers (sql/012):
 *
 * - A trusted role is a superuser, the owner of schema public or a member of it, or the role
 *   running setup / verify with every role it is a member of: each of them could run any code as
 *   us already.
 * - untrusted_object: a function in public that has the name of one of ours but not one of our
 *   signatures (an overload PostgreSQL may prefer for a call with untyped parameters); one of our
 *   functions or tables (host tables included: their triggers run on our writes) owned by a role
 *   that is not trusted; an operator outside pg_catalog that shadows a pg_catalog one (same name
 *   and kind, argument types of pg_catalog that equal or implicitly cast to the built-in
 *   operator's: e.g. public.~(varchar, varchar)). Operators of extensions on their own types
 *   (citext, hstore, vector, pg_trgm's on text, which no pg_catalog operator of the same name
 *   takes) are not flagged: our columns are all of built-in types.
 * - schema_create_open: a role that is not trusted (or PUBLIC) may CREATE in public.
 */
export interface TrustProblem {
  code: 'untrusted_object' | 'schema_create_open';
  /** e.g. "function public.consume_usage(text, text, text, text, jsonb)", "schema public". */
  object: string;
  detail: string;
}

export function trustProblems(catalog: Catalog, expected: Pick<ExpectedSchema, 'tables' | 'functions'>): TrustProblem[] {
  const out: TrustProblem[] = [];
  const names = new Set(expected.functions.map((f) => f.name));
  const signatures = new Set(expected.functions.map((f) => `${f.name}(${f.arguments})`));
  for (const f of catalog.functions) {
    if (!names.has(f.name)) continue;
    const ours = signatures.has(`${f.name}(${f.arguments})`);
    if (ours && f.ownerTrusted !== false) continue;
    out.push({
      code: 'untrusted_object',
      object: `function public.${f.name}(${f.arguments})`,
      detail: `${ours ? 'owned by a role that is not trusted' : 'has the name of one of ours but is not one of ours'} (owner ${f.owner ?? 'unknown'})`,
    });
  }
  const tables = new Set([...expected.tables.map((t) => t.name), ...HOST_TABLES]);
  for (const t of catalog.tables) {
    if (tables.has(t.name) && t.ownerTrusted === false) {
      out.push({ code: 'untrusted_object', object: `table public.${t.name}`, detail: `owned by a role that is not trusted (owner ${t.owner})` });
    }
  }
  for (const operator of catalog.security?.operators ?? []) {
    out.push({ code: 'untrusted_object', object: `operator ${operator}`, detail: 'shadows a pg_catalog operator' });
  }
  const open = catalog.security?.schemaCreate ?? [];
  if (open.length) {
    out.push({ code: 'schema_create_open', object: 'schema public', detail: `roles other than the owner may CREATE in it: ${open.join(', ')}` });
  }
  return out;
}
