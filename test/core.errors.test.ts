// The one table of error codes (src/core/errors.ts, ERRORS) against the code that raises them: the
// SQL functions installed by setup and every TypeScript file under src/.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIALECTS, functionSources, withDatabase } from './helpers/databases.ts';
import { buildSetupScript, loadMigrations } from '../src/schema/migrations.ts';
import { withTypedErrors } from '../src/core/db.ts';
import { createUsage } from '../src/usage/usage.ts';
import { AuthError, ERRORS, fromDatabaseError, NotFoundError, PluginAuthError, ValidationError } from '../src/core/errors.ts';

const SRC = new URL('../src/', import.meta.url);
const sources = (readdirSync(SRC, { recursive: true }) as string[])
  .filter((f) => f.endsWith('.ts') && f !== join('core', 'errors.ts'))
  .map((f) => ({ file: f, text: readFileSync(new URL(f, SRC), 'utf8') }));

test('codes and SQLSTATEs are unique, and each SQLSTATE is of class PA', () => {
  const codes = ERRORS.map((e) => e.code);
  assert.deepEqual(codes.filter((c, i) => codes.indexOf(c) !== i), [], 'a code listed twice');
  const states = ERRORS.flatMap((e) => (e.sqlstate ? [e.sqlstate] : []));
  assert.deepEqual(states.filter((s, i) => states.indexOf(s) !== i), [], 'a SQLSTATE listed twice');
  for (const s of states) assert.match(s, /^PA\d{3}$/);
  for (const e of ERRORS) assert.ok(e.meaning.length > 10 && e.area.length > 1, `${e.code}: meaning and area`);
});

test('every code thrown in src/ is in the table, and every TypeScript-only code is thrown somewhere', () => {
  const known = new Set<string>(ERRORS.map((e) => e.code));
  const thrown = new Set<string>();
  for (const { file, text } of sources) {
    for (const m of text.matchAll(/new (?:ValidationError|NotFoundError|AuthError|SetupError|DatabaseError|ServiceError|PluginAuthError)\(\s*'([a-z_]+)'/g)) {
      assert.ok(known.has(m[1]!), `${file}: ${m[1]} is not in ERRORS`);
      thrown.add(m[1]!);
    }
  }
  // errors.ts itself raises the database codes (fromDatabaseError), after its table.
  const errorsTs = readFileSync(new URL('core/errors.ts', SRC), 'utf8');
  const everything = [...sources.map((s) => s.text), errorsTs.slice(errorsTs.indexOf('] as const satisfies'))].join('\n');
  for (const e of ERRORS) {
    if (e.sqlstate) continue;
    assert.ok(thrown.has(e.code) || everything.includes(`'${e.code}'`), `${e.code} is in ERRORS but nothing in src/ raises it`);
  }
});

test('database errors are translated in one place: the runtime calls fromDatabaseError only in core/', () => {
  for (const { file, text } of sources) {
    const folder = file.split(/[\\/]/)[0];
    // schema/setup.ts and cli/target.ts also read Supabase's REST answers, which carry a SQLSTATE too.
    if (folder === 'core' || file === join('schema', 'setup.ts') || file === join('cli', 'target.ts')) continue;
    assert.doesNotMatch(text, /fromDatabaseError\(/, `${file} translates database errors itself; query through withTypedErrors (core/db.ts)`);
  }
});

test('a database error is translated by its SQLSTATE, not its message', () => {
  const fake = (code: string, message: string) => Object.assign(new Error(message), { code });
  const e = fromDatabaseError(fake('PA001', 'something else entirely'));
  assert.ok(e instanceof NotFoundError);
  assert.equal(e.code, 'unknown_user');
  assert.ok(fromDatabaseError(fake('PA084', 'x')) instanceof AuthError);
  const cutoff = fromDatabaseError(fake('PA024', 'invalid_cutoff: y'));
  assert.ok(cutoff instanceof ValidationError);
  assert.equal(cutoff.code, 'invalid_cutoff');
  assert.equal(fromDatabaseError(fake('PA999', 'made_up: z')).code, 'database_error');
  assert.equal(fromDatabaseError(fake('22P02', 'bad uuid')).code, 'invalid_input');
});

for (const dialect of DIALECTS) {
  describe(`installed SQL functions [${dialect}]`, () => {
    test('every SQLSTATE raised (installed functions, setup checks) is in the table with the message code it is raised with, and every SQL row is raised', async () => {
      await withDatabase(dialect, async ({ db }) => {
        const rows = await functionSources(db, 'ERRCODE');
        assert.ok(rows.length > 10, 'the installed functions raise our errors');
        const byState = new Map(ERRORS.filter((e) => e.sqlstate).map((e) => [e.sqlstate as string, e.code as string]));
        const raised = new Set<string>();
        // Setup's own checks (the restore and trust checks, DO blocks) raise the setup codes.
        // (The sql/ files themselves are left out: what they define is checked as installed above.)
        const migrations = loadMigrations();
        let own = buildSetupScript(migrations);
        for (const m of migrations) own = own.split(m.sql).join('');
        const script = { name: 'the setup script', src: own.replace(/--[^\n]*/g, '') };
        // The PL/Proxy layout's SQL (sql/plproxy/, installed on a proxy database, not by setup).
        const plproxy = readdirSync(new URL('../sql/plproxy/', import.meta.url))
          .filter((f) => f.endsWith('.sql'))
          .map((f) => ({ name: `sql/plproxy/${f}`, src: readFileSync(new URL(`../sql/plproxy/${f}`, import.meta.url), 'utf8').replace(/--[^\n]*/g, '') }));
        assert.ok(plproxy.length >= 2, 'sql/plproxy/ is read');
        for (const { name, src } of [...rows, script, ...plproxy]) {
          for (const m of src.matchAll(/RAISE\s+EXCEPTION\s+'([a-z_]+):(?:[^']|'')*'[^;]*?ERRCODE\s*=\s*'([A-Z0-9]{5})'/gs)) {
            const [, code, state] = m as unknown as [string, string, string];
            if (!state.startsWith('PA')) continue;
            assert.equal(byState.get(state), code, `${name}() raises ${code} as ${state}; ERRORS says ${state} is ${byState.get(state)}`);
            raised.add(state);
          }
          for (const m of src.matchAll(/ERRCODE\s*=\s*'(PA\d{3})'/g)) assert.ok(byState.has(m[1]!), `${name}() raises ${m[1]}, not in ERRORS`);
        }
        for (const [state, code] of byState) assert.ok(raised.has(state), `${code} (${state}) is in ERRORS but no installed function raises it`);
      });
    });

    test('unknown_user is raised by the one helper (sql/017, 024), not by copies of it', async () => {
      await withDatabase(dialect, async ({ db }) => {
        const rows = await db.query<{ name: string }>(
          `SELECT p.proname::text AS name FROM pg_catalog.pg_proc AS p
             JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public'::name AND p.prosrc LIKE '%PA001%' ORDER BY 1`,
        );
        // seat_assign_member checks two users (owner and member) in one condition, with its own message.
        assert.deepEqual(rows.map((r) => r.name), ['plugin_auth_require_user', 'seat_assign_member']);
        const callers = await db.query<{ n: number }>(
          `SELECT pg_catalog.count(*)::integer AS n FROM pg_catalog.pg_proc AS p
             JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public'::name AND p.prosrc LIKE '%plugin_auth_require_user(p_user_id)%'`,
        );
        assert.ok(callers[0]!.n >= 10, `${callers[0]!.n} functions call the helper`);
        await assert.rejects(db.query(`SELECT * FROM public.refund_usage('00000000-0000-4000-8000-000000000000'::uuid, 'k'::text)`),
          (e: { code?: string; message?: string }) => e.code === 'PA001' && /^unknown_user: no user with id 00000000-0000-4000-8000-000000000000$/.test(e.message ?? ''));
      });
    });

    test('withTypedErrors: a factory used on its own translates, the caller\'s database stays as it was', async () => {
      await withDatabase(dialect, async ({ db }) => {
        const missing = '00000000-0000-4000-8000-000000000000';
        await assert.rejects(createUsage(db).consume(missing, 'resize'), (e: unknown) => e instanceof NotFoundError && e.code === 'unknown_user');
        await assert.rejects(db.query('SELECT * FROM public.consume_usage($1::uuid, $2::varchar, 1, null, null)', [missing, 'resize']),
          (e: unknown) => !(e instanceof PluginAuthError) && (e as { code?: string }).code === 'PA001');
        const typed = withTypedErrors(db);
        assert.equal(withTypedErrors(typed), typed, 'wrapping twice is wrapping once');
        assert.equal(typed.kind, db.kind);
        await assert.rejects(typed.transaction((tx) => tx.query('SELECT * FROM public.purge_usage_batch(pg_catalog.now(), 10)')),
          (e: unknown) => e instanceof ValidationError && e.code === 'invalid_cutoff');
        // The caller's own errors inside a transaction pass through untouched.
        const mine = new Error('mine');
        await assert.rejects(typed.transaction(async () => { throw mine; }), (e: unknown) => e === mine);
      });
    });

    test('a SQL error reaches TypeScript as the typed error of its row', async () => {
      await withDatabase(dialect, async ({ db }) => {
        const error = await db
          .query(`SELECT * FROM public.purge_usage_batch(pg_catalog.now(), 10)`)
          .then(() => undefined, (e: unknown) => fromDatabaseError(e));
        assert.ok(error instanceof PluginAuthError && error instanceof ValidationError);
        assert.equal(error.code, 'invalid_cutoff');
      });
    });
  });
}
