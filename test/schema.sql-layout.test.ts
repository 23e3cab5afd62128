// The SQL by kind (docs/schema.md): numbered files in sql/ are applied history (state), every
// function's current text is in exactly one file of sql/functions/, and a fresh database is built
// from schema/current.sql and those files, never by running the numbered files.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { readCatalog, loadExpectedSchema } from '../src/schema/catalog.ts';
import type { Database } from '../src/core/db.ts';
import { functionDefinitions, loadFunctionFiles } from '../src/schema/functions.ts';
import { buildSetupScript, loadMigrations, type Migration } from '../src/schema/migrations.ts';
import { buildExportScript, exportSupabaseMigration } from '../src/schema/export.ts';
import { applySchema } from '../src/schema/setup.ts';
import { describeSchema } from '../scripts/schema-dump.ts';

const norm = (s: string) => s.replace(/\s+/g, ' ').trim();
const definitions = loadFunctionFiles().flatMap((f) => functionDefinitions(f.sql).map((d) => ({ file: f.name, ...d })));
/** The last version whose files defined functions, before the function files existed. */
const LAST_OLD_LAYOUT = 24;

/** sql/001..version applied as releases up to that version did: file by file, no function files. */
async function setUpAsOldRelease(db: Database, version: number): Promise<void> {
  const old = loadMigrations().filter((m) => m.version <= version);
  await db.exec(`BEGIN;\n${buildSetupScript(old, null, { functions: [], baseline: null })}\nCOMMIT;`);
}

async function installed(db: Database): Promise<{ name: string; src: string }[]> {
  return db.query<{ name: string; src: string }>(
    `SELECT p.proname::text AS name, p.prosrc AS src FROM pg_catalog.pg_proc AS p
      WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1`,
  );
}

test('no function is defined twice among the files of sql/functions/, and none of them rebuilds functions from the catalog', () => {
  const byName = new Map<string, string[]>();
  for (const d of definitions) byName.set(d.name, [...(byName.get(d.name) ?? []), d.file]);
  const twice = [...byName].filter(([, files]) => files.length > 1).map(([name, files]) => `${name} (${files.join(', ')})`);
  assert.deepEqual(twice, []);
  assert.ok(byName.size > 50, 'the function files define every function');
  for (const f of loadFunctionFiles()) {
    assert.doesNotMatch(f.sql, /pg_get_functiondef|regexp_replace\s*\(\s*v_def/i, `sql/functions/${f.name}.sql`);
    // Each file holds only function definitions (state belongs to numbered files).
    const other = f.sql.replace(/CREATE OR REPLACE FUNCTION[\s\S]*?AS (\$\w*\$)[\s\S]*?\1;?/g, '').replace(/--[^\n]*/g, '').trim();
    assert.equal(other, '', `sql/functions/${f.name}.sql has statements other than CREATE OR REPLACE FUNCTION`);
  }
  // Numbered files after the last one of the old layout change state only: no function is
  // created, replaced or altered there (nor rebuilt from the catalog). Dropping one is state (a
  // retired signature, so the function file can create the new one); that it is retired is
  // checked on a database below.
  for (const m of newLayoutMigrations()) {
    const code = m.sql.replace(/--[^\n]*/g, '');
    assert.doesNotMatch(code, /CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE)|ALTER\s+(FUNCTION|PROCEDURE)|prosrc|pg_get_functiondef/i, `sql/${m.name}.sql: functions belong in sql/functions/`);
  }
  assert.ok(retiredSignatures().length > 0, 'sql/025 drops the signatures it retires');
});

function newLayoutMigrations(): Migration[] {
  return loadMigrations().filter((m) => m.version > LAST_OLD_LAYOUT);
}

/** `DROP FUNCTION [IF EXISTS] public.name(types)` of the numbered files after the old layout. */
function retiredSignatures(): { file: string; signature: string }[] {
  return newLayoutMigrations().flatMap((m) =>
    [...m.sql.replace(/--[^\n]*/g, '').matchAll(/DROP\s+FUNCTION\s+(?:IF\s+EXISTS\s+)?(public\.\w+\s*\([^()]*\))/gi)]
      .map((d) => ({ file: m.name, signature: d[1]!.replace(/\s+/g, ' ') })));
}

test('export supabase defines each function once, and carries no numbered file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fpa-export-'));
  try {
    const script = readFileSync(exportSupabaseMigration(dir).path, 'utf8');
    const names = [...script.matchAll(/CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+public\.(\w+)\s*\(/gi)].map((m) => m[1]!);
    const expected = [...new Set(loadExpectedSchema().functions.map((f) => f.name))].sort();
    assert.deepEqual([...names].sort(), expected, 'each function defined exactly once');
    for (const m of loadMigrations()) assert.ok(!script.includes(m.sql.trim()), `the export carries sql/${m.name}.sql`);
    assert.doesNotMatch(script, /pg_get_functiondef|regexp_replace/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const dialect of DIALECTS) {
  describe(`SQL layout [${dialect}]`, () => {
    test('every installed function\'s text (whitespace aside) is in exactly one file of sql/functions/, which defines nothing else', () =>
      withDatabase(dialect, async ({ db }) => {
        const functions = await installed(db);
        assert.equal(functions.length, definitions.length, 'as many functions installed as defined');
        for (const fn of functions) {
          const files = new Set(definitions.filter((d) => norm(d.body) === norm(fn.src)).map((d) => d.file));
          assert.equal(files.size, 1, `${fn.name}: its installed text is in ${files.size} files (${[...files].join(', ')})`);
          assert.ok(definitions.some((d) => d.name === fn.name && norm(d.body) === norm(fn.src)), `${fn.name}: defined under another name`);
        }
      }));

    test(`a database at schema ${LAST_OLD_LAYOUT} (set up file by file) upgrades with no drift to exactly what a fresh install builds`, () =>
      withDatabase(dialect, async ({ db }) => {
        await setUpAsOldRelease(db, LAST_OLD_LAYOUT);
        const upgrade = await applySchema(db); // refuses (schema_drift) if anything differs from the snapshot
        assert.deepEqual(upgrade.applied, loadMigrations().filter((m) => m.version > LAST_OLD_LAYOUT).map((m) => m.name));
        const files = await db.query<{ file: string; checksum: string }>('SELECT file, checksum FROM public.plugin_auth_function_files ORDER BY file');
        assert.deepEqual(files, loadFunctionFiles().map((f) => ({ file: f.name, checksum: f.checksum })).sort((a, b) => a.file.localeCompare(b.file)));
        const consumeAfter = (await installed(db)).find((f) => f.name === 'consume_usage')!.src;
        assert.ok(definitions.some((d) => d.name === 'consume_usage' && d.body === consumeAfter));
        const again = await applySchema(db);
        assert.deepEqual([again.applied, again.restored], [[], []], 'a second run applies and restores nothing');
        const upgraded = await describeSchema(db);
        await withDatabase(dialect, async ({ db: fresh }) => {
          const first = await applySchema(fresh);
          assert.deepEqual(first.applied, loadMigrations().map((m) => m.name), 'a fresh install records every numbered file');
          assert.deepEqual(await describeSchema(fresh), upgraded, 'fresh and upgraded: the same tables, columns, constraints, indexes, functions, triggers, sequences, grants');
          // A numbered file drops only signatures that no function file defines any more.
          for (const { file, signature } of retiredSignatures()) {
            const [row] = await fresh.query<{ oid: string | null }>('SELECT pg_catalog.to_regprocedure($1::text)::text AS oid', [signature]);
            assert.equal(row!.oid, null, `sql/${file}.sql drops ${signature}, which the function files define`);
          }
        }, { setup: false });
      }, { setup: false }));

    test('a fresh install runs no numbered file: their texts may be anything, with the same checksums', () =>
      withDatabase(dialect, async ({ db }) => {
        const poisoned: Migration[] = loadMigrations().map((m) => ({
          ...m,
          // The text kept as comments: the preflight reads which columns a file adds.
          sql: `DO $poison$ BEGIN RAISE EXCEPTION 'sql/${m.name}.sql ran on a fresh database'; END $poison$;\n${m.sql.replace(/^/gm, '-- ')}`,
        }));
        await db.exec(`BEGIN;\n${buildSetupScript(poisoned)}\nCOMMIT;`);
        const catalog = await readCatalog(db);
        assert.deepEqual(catalog.migrations.map((m) => m.checksum), loadMigrations().map((m) => m.checksum));
        assert.equal(catalog.functions.length, definitions.length);
        // The same script on a database with a file pending does run it.
        await withDatabase(dialect, async ({ db: old }) => {
          await setUpAsOldRelease(old, 12);
          await assert.rejects(old.exec(`BEGIN;\n${buildSetupScript(poisoned)}\nCOMMIT;`), /sql\/013_input_hardening\.sql ran on a fresh database/);
          await old.exec('ROLLBACK').catch(() => {});
        }, { setup: false });
      }, { setup: false }));

    test('a function file whose checksum changed is applied again; a function changed by hand (same file) is schema_drift', () =>
      withDatabase(dialect, async ({ db }) => {
        const usage = loadFunctionFiles().find((f) => f.name === 'usage')!;
        const summary = functionDefinitions(usage.sql).find((d) => d.name === 'usage_summary')!;
        const changed = usage.sql.replace(summary.body, `${summary.body}-- changed by hand\n`);
        await db.exec(changed);
        await assert.rejects(applySchema(db), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'schema_drift');
          assert.match(e.message, /function usage_summary\(/);
          return true;
        });
        const recorded = () => db.query<{ file: string; checksum: string; at: string }>(
          'SELECT file, checksum, applied_at::text AS at FROM public.plugin_auth_function_files ORDER BY file',
        );
        const before = await recorded();
        // What a new release of sql/functions/usage.sql looks like to this database.
        await db.query("UPDATE public.plugin_auth_function_files SET checksum = pg_catalog.repeat('0', 64) WHERE file = 'usage'");
        const result = await applySchema(db);
        assert.deepEqual([result.applied, result.restored], [[], []]);
        const src = (await installed(db)).find((f) => f.name === 'usage_summary')!.src;
        assert.equal(src, summary.body, 'the file\'s text is back');
        const after = await recorded();
        assert.deepEqual(after.map((r) => [r.file, r.checksum]), before.map((r) => [r.file, r.checksum]));
        assert.deepEqual(after.filter((r) => r.file !== 'usage'), before.filter((r) => r.file !== 'usage'), 'no other file applied again');
      }));

    test('the export installs a fresh database, changes nothing on a second run, and refuses a database older than it upgrades', () =>
      withDatabase(dialect, async ({ db }) => {
        const script = buildExportScript();
        await db.exec(`BEGIN;\n${script}\nCOMMIT;`);
        const once = await describeSchema(db);
        await db.exec(`BEGIN;\n${script}\nCOMMIT;`);
        assert.deepEqual(await describeSchema(db), once);
        await withDatabase(dialect, async ({ db: old }) => {
          await setUpAsOldRelease(old, 12);
          await assert.rejects(old.exec(`BEGIN;\n${script}\nCOMMIT;`), /run figma-plugin-auth-db setup against it once/);
          await old.exec('ROLLBACK').catch(() => {});
        }, { setup: false });
      }, { setup: false }));
  });
}
