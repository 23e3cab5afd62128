// Build-time generation of SQL (never at setup): sql/templates/hot-paths.sql rendered into
// sql/functions/generated/hot-paths.sql, with the access rule of subscription_grants_access taken
// from sql/functions/grants.sql. `npm run generate` writes it; test/repo.generated.test.ts fails when
// the committed file is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { functionDefinitions } from '../src/schema/functions.ts';

export const HOT_PATHS_TEMPLATE = new URL('../sql/templates/hot-paths.sql', import.meta.url);
export const HOT_PATHS_OUTPUT = new URL('../sql/functions/generated/hot-paths.sql', import.meta.url);
const GRANTS_FILE = new URL('../sql/functions/grants.sql', import.meta.url);

/** The functions the template defines, in the order they are written out. */
const FUNCTIONS = ['plugin_auth_grants', 'plugin_auth_usage_limits', 'consume_usage', 'check_usage'];

/** `-- @@ <name>` sections: each one's text is exactly the lines up to the next header. */
export function parseSections(text: string): Map<string, string> {
  const sections = new Map<string, string>();
  const parts = text.split(/^-- @@ ([a-z_]+)\n/m);
  for (let i = 1; i < parts.length; i += 2) sections.set(parts[i]!, parts[i + 1]!.replace(/\n$/, ''));
  return sections;
}

/** The access rule: `BEGIN RETURN <expression>; END;` and its parameters, from its CREATE statement. */
function accessRule(grantsSql: string): { params: string[]; body: string } {
  const start = grantsSql.search(/CREATE OR REPLACE FUNCTION public\.subscription_grants_access\(/);
  if (start < 0) throw new Error('sql/functions/grants.sql defines no subscription_grants_access');
  const def = functionDefinitions(grantsSql.slice(start))[0]!;
  const header = grantsSql.slice(start, grantsSql.indexOf(')\n', start));
  const params = splitTopLevel(header.slice(header.indexOf('(') + 1)).map((p) => p.trim().split(/\s+/)[0]!);
  const body = /^\s*BEGIN\s+RETURN\s+([\s\S]*);\s*END;?\s*$/.exec(def.body)?.[1];
  if (body === undefined) throw new Error('subscription_grants_access is no longer one RETURN: update scripts/sql-generate.ts');
  return { params, body };
}

function splitTopLevel(list: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of list) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(current);
      current = '';
    } else current += ch;
  }
  if (current.trim()) out.push(current);
  return out;
}

const btrim = (s: string) => s.replace(/^ +| +$/g, '');

/** plugin_auth_grants with every call of the access rule replaced by the rule, its parameters by the call's arguments. */
function inlineRule(statement: string, rule: { params: string[]; body: string }): string {
  let out = statement;
  for (const call of [...statement.matchAll(/public\.subscription_grants_access\(([^()]*)\)/g)]) {
    const args = btrim(call[1]!).split(/\s*,\s*/);
    if (args.length !== rule.params.length) throw new Error(`plugin_auth_grants calls subscription_grants_access with ${args.length} arguments`);
    let expr = rule.body;
    rule.params.forEach((param, i) => {
      expr = expr.replace(new RegExp(`\\b${param}\\b`, 'g'), () => args[i]!);
    });
    out = out.split(call[0]).join(`(${btrim(expr.replace(/\s+/g, ' '))})`);
  }
  return out;
}

/** sql/functions/generated/hot-paths.sql from the template and the access rule. */
export function renderHotPaths(
  template: string = readFileSync(HOT_PATHS_TEMPLATE, 'utf8'),
  grantsSql: string = readFileSync(GRANTS_FILE, 'utf8'),
): string {
  const sections = parseSections(template);
  const grantsStatement = inlineRule(sections.get('plugin_auth_grants') ?? '', accessRule(grantsSql));
  const grantsBody = functionDefinitions(grantsStatement)[0]?.body ?? '';
  const query = /^\s*BEGIN\s+RETURN\s+QUERY\s+([\s\S]*);\s*END;?\s*$/.exec(grantsBody)?.[1];
  const table = /RETURNS TABLE \(([\s\S]*?)\)\s*LANGUAGE/.exec(grantsStatement)?.[1];
  if (query === undefined || table === undefined) throw new Error('plugin_auth_grants is no longer one RETURN QUERY with a RETURNS TABLE: update scripts/sql-generate.ts');
  const computed = new Map([
    ['plugin_auth_grants', grantsStatement],
    ['grants', query],
    ['columns', splitTopLevel(table).map((c) => c.trim().split(/\s+/)[0]!).join(', ')],
  ]);
  const render = (name: string, seen: string[] = []): string => {
    const known = computed.get(name);
    if (known !== undefined) return known;
    const text = sections.get(name);
    if (text === undefined) throw new Error(`sql/templates/hot-paths.sql: no section ${name}${seen.length ? ` (used by ${seen.at(-1)})` : ''}`);
    if (seen.includes(name)) throw new Error(`sql/templates/hot-paths.sql: section ${name} includes itself`);
    const value = text.replace(/@([a-z_]+)@/g, (_, marker: string) => render(marker, [...seen, name]));
    computed.set(name, value);
    return value;
  };
  return [
    '-- GENERATED by `npm run generate` from sql/templates/hot-paths.sql and the access rule in',
    '-- sql/functions/grants.sql (scripts/sql-generate.ts). Do not edit: edit the template, run',
    '-- `npm run generate`; test/repo.generated.test.ts fails when this file is stale.',
    '',
    FUNCTIONS.map((name) => `${render(name)};\n`).join('\n'),
  ].join('\n');
}

export function writeHotPaths(): void {
  writeFileSync(HOT_PATHS_OUTPUT, renderHotPaths());
}
