// figma-plugin-auth-db/schema: the schema tooling. Setup (one idempotent run of every sql/ file,
// under an advisory lock, with the trust and restore checks), the migration list and its checksums,
// and the catalog (what is in the database, compared with schema/expected-schema.json). The runtime
// library never imports this folder; the command line (src/cli/) and host build steps do.
export {
  setup,
  applySchema,
  applySchemaViaSupabase,
  resolveTarget,
  describeTarget,
  type SetupResult,
  type SetupMode,
  type SetupTarget,
} from './setup.ts';
export { buildSetupScript, loadMigrations, schemaVersion, type Migration } from './migrations.ts';
export { readCatalog, diffSchema, loadExpectedSchema, formatDifferences, type Catalog, type Difference } from './catalog.ts';
export { lintCatalog, type Finding } from './lint.ts';
export { buildMermaidDiagram } from './diagram.ts';
export { readStatus } from './status.ts';
export { installSupabaseUserSync, supabaseUserSyncSql } from './supabase-users.ts';
