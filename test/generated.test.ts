// Generated artifacts are committed; these tests fail when sql/ changed and `npm run generate` was not run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EXPECTED_SCHEMA_PATH } from '../src/schema/catalog.ts';
import {
  buildExpectedSchema,
  buildFreshCatalog,
  embedErrorsInReadme,
  embedInReadme,
  README_PATH,
  renderReadmeSchema,
  renderSchemaDiagram,
  SCHEMA_DIAGRAM_PATH,
  serializeExpectedSchema,
} from '../scripts/generated.ts';

const fresh = buildFreshCatalog();
const stale = (file: string) => `${file} is stale: run \`npm run generate\` and commit the result`;

test('schema/expected-schema.json is what sql/ builds', async () => {
  const expected = serializeExpectedSchema(await buildExpectedSchema(await fresh));
  assert.equal(readFileSync(EXPECTED_SCHEMA_PATH, 'utf8'), expected, stale('schema/expected-schema.json'));
});

test('docs/schema-diagram.md is the diagram of what sql/ builds, marked generated', async () => {
  const committed = readFileSync(SCHEMA_DIAGRAM_PATH, 'utf8');
  assert.match(committed.split('\n')[0]!, /generated .* do not edit/);
  assert.equal(committed, renderSchemaDiagram(await fresh), stale('docs/schema-diagram.md'));
});

test('the README embeds the current schema section (diagram and tables)', async () => {
  const readme = readFileSync(README_PATH, 'utf8');
  assert.equal(readme, embedInReadme(readme, renderReadmeSchema(await fresh)), stale('README.md (schema section)'));
});

test('the README embeds the error table generated from src/core/errors.ts', () => {
  const readme = readFileSync(README_PATH, 'utf8');
  assert.equal(readme, embedErrorsInReadme(readme), stale('README.md (error table)'));
});
