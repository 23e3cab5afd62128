// Hostile inputs, and a runner that holds every case to the rule: a typed PluginAuthError with an
// expected stable code, or a correct answer; and where it errs, the database is exactly as before.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Database } from '../../src/core/db.ts';
import { PluginAuthError, fromDatabaseError } from '../../src/core/errors.ts';

const KB = 1024;

/** Strings for text arguments: injection, quoting, format strings, control characters, unicode, size. */
export const HOSTILE_STRINGS: Record<string, string> = {
  'sql injection': "'; DROP TABLE users; --",
  'injection, or-true': "' OR '1'='1",
  'dollar quote': '$$; DROP TABLE public.users; $$',
  'tagged dollar quote': '$x$',
  backslash: '\\',
  'backslash quote': "\\'",
  'single quote': "'",
  'double quote': '"',
  'format %s': '%s%s%s%n',
  'placeholder $1': '$1',
  'semicolon comment': 'a; -- b',
  'NUL alone': '\u0000',
  'NUL inside': 'a\u0000b',
  newline: 'a\nb',
  'carriage return, tab': 'a\r\tb',
  'ANSI escape': '\u001b[2J\u001b[31mred',
  DEL: 'a\u007fb',
  'C1 NEXT LINE (U+0085)': 'Figma\u0085desktop',
  'C1 CSI (U+009B)': '\u009b2Jred',
  'right-to-left override': 'abc\u202edef',
  'zero-width joiner': 'a\u200db',
  'BOM': '\ufeffa',
  emoji: '😀👩‍💻',
  'combining mark': 'e\u0301',
  fullwidth: 'ＡＢＣ',
  'lone surrogate': 'a\ud800b',
  'U+FFFF': '\uffff',
  empty: '',
  space: ' ',
  'the word null': 'null',
  '10 kB': 'x'.repeat(10 * KB),
  '1 MB': 'y'.repeat(KB * KB),
};

/** Values of the wrong JavaScript type, for callers without TypeScript. */
export const WRONG_TYPES: Record<string, unknown> = {
  null: null,
  number: 42,
  object: { toString: () => "'; DROP TABLE users; --" },
  array: ['a'],
  boolean: true,
};

/** Numbers for counts, sizes and lifetimes. */
export const HOSTILE_NUMBERS: Record<string, unknown> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
  '-0': -0,
  '0': 0,
  '-1': -1,
  '1.5': 1.5,
  '2^31': 2 ** 31,
  '2^53': 2 ** 53,
  '2^53 + 2': 2 ** 53 + 2,
  '1e300': 1e300,
  'Number.MIN_VALUE': Number.MIN_VALUE,
  'string "1"': '1',
  'string "1; DROP"': '1; DROP TABLE users',
  'bigint 1n': 1n,
  null: null,
};

/** Ids that must never name a row. */
export const HOSTILE_UUIDS: Record<string, unknown> = {
  'not a uuid': 'not-a-uuid',
  'sql injection': "00000000-0000-0000-0000-000000000000'; DROP TABLE users; --",
  'braced': '{00000000-0000-0000-0000-000000000000}',
  'no dashes': '00000000000000000000000000000000',
  'trailing space': '00000000-0000-0000-0000-000000000000 ',
  'one short': '00000000-0000-0000-0000-00000000000',
  'non-hex': 'g0000000-0000-0000-0000-000000000000',
  'NUL inside': '00000000-0000-0000\u0000-0000-000000000000',
  empty: '',
  '10 kB': 'a'.repeat(10 * KB),
  'nil uuid (valid, nobody)': '00000000-0000-0000-0000-000000000000',
  'random unknown': 'f47ac10b-58cc-4372-a567-0e02b2c3d479',
  'uppercase (valid, nobody)': 'F47AC10B-58CC-4372-A567-0E02B2C3D479',
  'a JWT in the wrong place': 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ',
  'uuid OR 1=1': "f47ac10b-58cc-4372-a567-0e02b2c3d479' OR '1'='1",
  ...WRONG_TYPES,
};

/** The one rule for user ids: a canonical uuid is looked up (unknown_user when absent); anything else is invalid_user_id. */
export const userIdCodes = (value: unknown): string[] =>
  typeof value === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value) ? ['unknown_user'] : ['invalid_user_id'];

export const isWellFormed = (s: string) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

/**
 * Row counts and a checksum of every table in public, in one round trip: cheap enough per case.
 * The statement reads every table (its text built by the server, format() quoting each name) and,
 * in the same snapshot, the list of tables: when a table was added or dropped since the text was
 * built, it is built again for the new list, so a changed set of tables changes the fingerprint too.
 * The statement is prepared once per connection (PostgreSQL: a named statement; PGlite, one
 * session: PREPARE), so a case pays for executing it, not for parsing and planning two dozen
 * subqueries (about 3x cheaper on PostgreSQL, 10x on PGlite, than a query_to_xml per table).
 */
export async function fingerprint(db: Pick<Database, 'query' | 'exec' | 'kind'>): Promise<Record<string, string>> {
  for (let attempt = 0; ; attempt++) {
    const statement = statements.get(db) ?? (await buildFingerprint(db));
    statements.set(db, statement);
    let rows: { tables: string; f: Record<string, string> | string | null }[];
    try {
      rows = db.kind === 'pglite'
        ? await db.query(`EXECUTE ${statement.name}`)
        : await db.query(statement.text, [], { prepare: statement.name });
    } catch (error) {
      // A table of the statement was dropped (undefined_table), or PGlite's session lost it.
      const code = (error as { code?: string }).code;
      if (attempt < 3 && (code === '42P01' || code === '26000')) {
        statements.delete(db);
        continue;
      }
      throw error;
    }
    if (rows[0]!.tables !== statement.tables && attempt < 3) {
      statements.delete(db);
      continue;
    }
    const f = rows[0]!.f ?? {};
    return typeof f === 'string' ? JSON.parse(f) : f;
  }
}

interface FingerprintStatement {
  /** The tables it reads, as the statement itself reports them (comma-separated, sorted). */
  tables: string;
  text: string;
  name: string;
}
const statements = new WeakMap<object, FingerprintStatement>();
const TABLE_LIST = `SELECT COALESCE(pg_catalog.string_agg(c.relname::text, ',' ORDER BY c.relname), '')
  FROM pg_catalog.pg_class AS c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'`;

async function buildFingerprint(db: Pick<Database, 'query' | 'exec' | 'kind'>): Promise<FingerprintStatement> {
  const [built] = await db.query<{ tables: string; parts: string | null }>(
    `SELECT (${TABLE_LIST}) AS tables,
            pg_catalog.string_agg(pg_catalog.format(
              $q$SELECT %L::text AS k, (SELECT count(*)::text || ':' || COALESCE(md5(string_agg(to_jsonb(t)::text, ',' ORDER BY to_jsonb(t)::text)), '') FROM public.%I AS t) AS v$q$,
              c.relname, c.relname), ' UNION ALL ' ORDER BY c.relname) AS parts
       FROM pg_catalog.pg_class AS c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'`,
  );
  const text = `SELECT (${TABLE_LIST}) AS tables, ${built!.parts ? `(SELECT jsonb_object_agg(x.k, x.v) FROM (${built!.parts}) AS x)` : 'NULL::jsonb'} AS f`;
  const name = `fpa_fingerprint_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
  if (db.kind === 'pglite') {
    const prepared = await db.query('SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE name = $1::text', [name]);
    if (prepared.length === 0) await db.exec(`PREPARE ${name} AS ${text}`);
  }
  return { tables: built!.tables, text, name };
}

export interface Case {
  name: string;
  /** The call. Driver errors (direct SQL) are turned into typed errors with fromDatabaseError. */
  run: () => Promise<unknown>;
  /** Stable codes this input may be refused with. */
  codes: readonly string[];
  /** Whether a successful answer is acceptable, and if so a check that it is correct. */
  ok?: (result: unknown) => void | Promise<void>;
}

export interface Outcome {
  name: string;
  result: 'ok' | string;
}

const short = (value: string) => (value.length > 80 ? `${value.slice(0, 80)}…` : value);

/**
 * Runs every case, collecting all problems before failing (one run shows every broken case).
 * Returns the outcomes, so a test can assert more about them.
 */
export async function runCases(db: Pick<Database, 'query' | 'exec' | 'kind'>, cases: Case[]): Promise<Outcome[]> {
  const problems: string[] = [];
  const outcomes: Outcome[] = [];
  // The state after one case is the state before the next: a refused case's "after" fingerprint
  // (equal to its "before", or reported) serves as the next case's "before".
  let current: Record<string, string> | undefined;
  for (const c of cases) {
    const before = current ?? (await fingerprint(db));
    current = undefined;
    let error: unknown;
    let result: unknown;
    let threw = false;
    try {
      result = await c.run();
    } catch (e) {
      threw = true;
      error = e;
    }
    if (!threw) {
      outcomes.push({ name: c.name, result: 'ok' });
      if (!c.ok) {
        problems.push(`${c.name}: answered ${short(JSON.stringify(result) ?? String(result))}, expected one of ${c.codes.join(', ')}`);
        continue;
      }
      try {
        await c.ok(result);
      } catch (e) {
        problems.push(`${c.name}: wrong answer: ${short((e as Error).message)}`);
      }
      continue;
    }
    const typed = error instanceof PluginAuthError ? error : isDriverError(error) ? fromDatabaseError(error) : undefined;
    outcomes.push({ name: c.name, result: typed?.code ?? 'untyped' });
    if (!typed) {
      problems.push(`${c.name}: untyped ${(error as Error)?.name}: ${short(String((error as Error)?.message ?? error))}`);
      continue;
    }
    if (!c.codes.includes(typed.code)) {
      problems.push(`${c.name}: code ${typed.code} (${short(typed.message)}), expected ${c.codes.join(' | ') || 'an answer'}`);
    }
    const after = await fingerprint(db);
    current = after;
    try {
      assert.deepEqual(after, before);
    } catch {
      problems.push(`${c.name}: refused with ${typed.code} but the database changed`);
    }
  }
  assert.deepEqual(problems, [], `${problems.length} of ${cases.length} hostile cases misbehaved:\n${problems.join('\n')}`);
  return outcomes;
}

/** A driver error (pg or PGlite) carries a five-character SQLSTATE. */
function isDriverError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

export const digestOf = (value: string) => createHash('sha256').update(value).digest('hex');

/** Store webhook bodies and headers that must be refused or ignored without a change. */
export const HOSTILE_WEBHOOK_BODIES: Record<string, unknown> = {
  'empty string': '',
  'not JSON': '<html>',
  'JSON array': '[]',
  'JSON null': 'null',
  'NUL inside': '{"meta":{"event_name":"order_refunded"}}\u0000',
  '1 MB + 1': 'z'.repeat(KB * KB + 1),
  number: 42,
  object: { meta: { event_name: 'order_refunded' } },
  null: null,
};
