import { writeFileSync } from 'node:fs';
import { openDatabase } from './db.ts';
import { EXPECTED_SCHEMA_PATH, expectedFromCatalog, readCatalog, type ExpectedSchema } from './catalog.ts';
import { buildSetupScript } from './migrations.ts';

export const GENERATED_NOTE = 'Generated from sql/*.sql by `npm run generate`. Do not edit: tests fail when it is stale.';

/** Builds the expected schema by applying sql/ to a fresh in-memory PGlite and reading it back. */
export async function buildExpectedSchema(): Promise<ExpectedSchema> {
  const db = await openDatabase('memory://');
  try {
    // No preflight: the database is empty, and the snapshot must not depend on its previous self.
    await db.exec(`BEGIN;\n${buildSetupScript(undefined, null)}\nCOMMIT;`);
    return expectedFromCatalog(await readCatalog(db));
  } finally {
    await db.close();
  }
}

export function serializeExpectedSchema(schema: ExpectedSchema): string {
  return `${JSON.stringify({ '//': GENERATED_NOTE, ...schema }, null, 2)}\n`;
}

export async function writeExpectedSchema(): Promise<void> {
  writeFileSync(EXPECTED_SCHEMA_PATH, serializeExpectedSchema(await buildExpectedSchema()));
}
