// The function files: sql/functions/**/*.sql hold the current text of every function setup
// installs, one file per concern (sql/functions/generated/ is rendered by `npm run generate`).
// Setup re-applies a file, inside its one transaction, when its checksum differs from the one
// recorded in public.plugin_auth_function_files (src/schema/migrations.ts).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface FunctionFile {
  /** Path under sql/functions/ without .sql, e.g. "usage" or "generated/hot-paths". */
  name: string;
  sql: string;
  checksum: string;
}

export const FUNCTIONS_DIR = fileURLToPath(new URL('../../sql/functions/', import.meta.url));

let cached: FunctionFile[] | undefined;

/**
 * Every function file, in a fixed order: sql/functions/*.sql by name, then generated/*.sql.
 * CREATE OR REPLACE FUNCTION of PL/pgSQL does not look at what a body names, so the order only
 * matters for LANGUAGE sql bodies, which are checked when created (their tables exist by then).
 */
export function loadFunctionFiles(dir: string = FUNCTIONS_DIR): FunctionFile[] {
  if (dir === FUNCTIONS_DIR && cached) return cached;
  const base = dir.endsWith('/') ? dir : `${dir}/`;
  const list = (sub: string) =>
    readdirSync(base + sub, { withFileTypes: true })
      .filter((e) => e.isFile() && /^[a-z0-9][a-z0-9_-]*\.sql$/.test(e.name))
      .map((e) => sub + e.name)
      .sort();
  const files = [...list(''), ...list('generated/')].map((path) => {
    const sql = readFileSync(base + path, 'utf8');
    return { name: path.slice(0, -'.sql'.length), sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
  if (dir === FUNCTIONS_DIR) cached = files;
  return files;
}

/** One CREATE FUNCTION statement of a file: the function's name and the text between its dollar quotes. */
export interface FunctionDefinition {
  name: string;
  body: string;
}

/** The functions a file defines, in order (every function file spells `CREATE OR REPLACE FUNCTION public.<name>(`). */
export function functionDefinitions(sql: string): FunctionDefinition[] {
  const out: FunctionDefinition[] = [];
  const head = /CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+public\.(\w+)\s*\(/gi;
  for (let m = head.exec(sql); m; m = head.exec(sql)) {
    const quote = /\bAS\s+(\$\w*\$)/g;
    quote.lastIndex = m.index;
    const open = quote.exec(sql);
    if (!open) throw new Error(`function ${m[1]}: no dollar-quoted body`);
    const start = open.index + open[0].length;
    const end = sql.indexOf(open[1]!, start);
    if (end < 0) throw new Error(`function ${m[1]}: unterminated body`);
    out.push({ name: m[1]!, body: sql.slice(start, end) });
    head.lastIndex = end + open[1]!.length;
  }
  return out;
}
