// Generated artifacts are committed; these tests fail when sql/ or src/core/errors.ts changed and
// `npm run generate` was not run, and when a generated page states a limit the code does not keep.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EXPECTED_SCHEMA_PATH } from '../src/schema/catalog.ts';
import { BASELINE_PATH } from '../src/schema/migrations.ts';
import { HOT_PATHS_OUTPUT, renderHotPaths } from '../scripts/sql-generate.ts';
import {
  buildExpectedSchema,
  buildFreshCatalog,
  buildFromHistory,
  ERRORS_REFERENCE_PATH,
  renderErrorsReference,
  renderSchemaDiagram,
  renderSchemaReference,
  SCHEMA_DIAGRAM_PATH,
  SCHEMA_REFERENCE_PATH,
  serializeExpectedSchema,
} from '../scripts/generated.ts';
import { ERRORS } from '../src/core/errors.ts';
import * as validate from '../src/core/validation.ts';
import { MAX_ITEMS, MAX_TEXT_LENGTH } from '../src/core/limits.ts';
import { createTokens } from '../src/tokens/tokens.ts';
import type { Database } from '../src/core/db.ts';
import { TOKEN_SECRET } from './helpers/secrets.ts';
import { freshDatabase } from './helpers/databases.ts';

// Also checks that schema/current.sql, as rendered, builds exactly the schema it was rendered from.
// On PGlite clusters loaded from the suite's snapshot of a freshly initialised one, as `npm run
// generate` builds on a fresh in-memory PGlite (the same cluster, without initdb's seconds each).
const built = buildFromHistory(async () => (await freshDatabase('pglite', { setup: false })).db);
const fresh = built.then((b) => b.catalog);
const stale = (file: string) => `${file} is stale: run \`npm run generate\` and commit the result`;
const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

test('schema/expected-schema.json is what sql/ builds', async () => {
  const expected = serializeExpectedSchema(await buildExpectedSchema(await fresh));
  assert.equal(readFileSync(EXPECTED_SCHEMA_PATH, 'utf8'), expected, stale('schema/expected-schema.json'));
});

test('docs/schema-diagram.md is the diagram of what sql/ builds, marked generated', async () => {
  const committed = readFileSync(SCHEMA_DIAGRAM_PATH, 'utf8');
  assert.match(committed.split('\n')[0]!, /generated .* do not edit/);
  assert.equal(committed, renderSchemaDiagram(await fresh), stale('docs/schema-diagram.md'));
});

test('docs/reference/schema.md is every table sql/ builds, marked generated; the README links it and holds no schema dump', async () => {
  const committed = readFileSync(SCHEMA_REFERENCE_PATH, 'utf8');
  assert.match(committed.split('\n')[0]!, /generated .* do not edit/);
  assert.equal(committed, renderSchemaReference(await fresh), stale('docs/reference/schema.md'));
  for (const table of (await fresh).tables) assert.match(committed, new RegExp(`^## \`${table.name}\`$`, 'm'));
  assert.match(README, /\]\(docs\/reference\/schema\.md\)/);
  assert.doesNotMatch(README, /\| column \| type \| null \| default \|/);
});

test('docs/reference/errors.md lists every code of src/core/errors.ts, marked generated; the README links it', () => {
  const committed = readFileSync(ERRORS_REFERENCE_PATH, 'utf8');
  assert.match(committed.split('\n')[0]!, /generated .* do not edit/);
  assert.equal(committed, renderErrorsReference(), stale('docs/reference/errors.md'));
  for (const e of ERRORS) assert.match(committed, new RegExp(`\\| \`${e.code}\` \\|`));
  assert.match(README, /\]\(docs\/reference\/errors\.md\)/);
});

test('the error page states the limits the checks keep (device names, reasons, items, token caps)', () => {
  const row = (code: string) => ERRORS.find((e) => e.code === code)!.meaning;
  const ok = (f: () => unknown) => { try { f(); return true; } catch { return false; } };
  // Device names and reasons: MAX_TEXT_LENGTH accepted, one more refused, and that is the number stated.
  for (const [code, check] of [['invalid_device_name', validate.deviceName], ['invalid_reason', validate.reason]] as const) {
    assert.match(row(code), new RegExp(`longer than ${MAX_TEXT_LENGTH} characters`));
    assert.equal(ok(() => check('d'.repeat(101))), true);
    assert.equal(ok(() => check('d'.repeat(MAX_TEXT_LENGTH))), true);
    assert.equal(ok(() => check('d'.repeat(MAX_TEXT_LENGTH + 1))), false);
  }
  assert.match(row('invalid_items'), new RegExp(`from 1 to ${MAX_ITEMS}\\b`));
  assert.equal(ok(() => validate.items(MAX_ITEMS)), true);
  assert.equal(ok(() => validate.items(MAX_ITEMS + 1)), false);
  // The live-token cap has no upper bound: 5000 is taken, 0 is not.
  assert.match(row('invalid_max_tokens'), /at least 1\b/);
  assert.doesNotMatch(row('invalid_max_tokens'), /1000/);
  const noDb = {} as Database;
  assert.equal(ok(() => createTokens(noDb, { tokenSecret: TOKEN_SECRET, maxTokensPerUser: 5000 })), true);
  assert.equal(ok(() => createTokens(noDb, { tokenSecret: TOKEN_SECRET, maxTokensPerUser: 0 })), false);
});

test('sql/functions/generated/hot-paths.sql is rendered from sql/templates/hot-paths.sql and the access rule, marked generated', () => {
  const committed = readFileSync(HOT_PATHS_OUTPUT, 'utf8');
  assert.match(committed.split('\n')[0]!, /^-- GENERATED by `npm run generate`/);
  assert.equal(committed, renderHotPaths(), stale('sql/functions/generated/hot-paths.sql'));
});

test('schema/current.sql is the state sql/ builds, marked generated', async () => {
  const committed = readFileSync(BASELINE_PATH, 'utf8');
  assert.match(committed.split('\n')[0]!, /^-- GENERATED by `npm run generate`/);
  assert.equal(committed, (await built).current, stale('schema/current.sql'));
});
