// The schema commands: setup, verify (what it concludes from a catalog: ../verify-catalog.ts),
// status, diagram and export supabase. Each loads the schema modules it needs when it runs.
import { formatStatus } from '../format.ts';
import { BIN, type Command, type Context } from '../context.ts';

export const setupCommand: Command = {
  name: 'setup',
  summary: 'apply the schema (one transaction, safe to re-run) and print the report',
  options: ['production', 'dry-run', 'database-url', 'supabase-auth-users'],
  examples: [`${BIN} setup`, `${BIN} setup --production`, `${BIN} setup --production --supabase-auth-users`, `${BIN} setup --dry-run > schema.sql`, `${BIN} setup --database-url pglite:./.data/pglite`],
  run: setup,
};

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'compare the live schema with the expected one; exit 1 listing every difference',
  options: ['json'],
  connects: true,
  examples: [`${BIN} verify`, `DATABASE_URL=postgres://… ${BIN} verify --production`, `${BIN} verify --json`],
  run: verify,
};

export const statusCommand: Command = {
  name: 'status',
  summary: 'schema version, target, plans, row counts and last activity',
  options: ['json'],
  connects: true,
  examples: [`${BIN} status`, `${BIN} status --json | jq .rowCounts`],
  run: status,
};

export const diagramCommand: Command = {
  name: 'diagram',
  summary: 'a Mermaid erDiagram of the live schema (tables, columns, keys, foreign keys)',
  connects: true,
  examples: [`${BIN} diagram > schema.mmd`, `${BIN} diagram --database-url postgres://user@host/db`],
  run: diagram,
};

export const exportSupabaseCommand: Command = {
  name: 'export supabase',
  args: ['[dir]'],
  summary: 'write the schema as supabase/migrations/<timestamp>_figma_plugin_auth.sql under dir (default .)',
  options: ['json'],
  examples: [`${BIN} export supabase`, `${BIN} export supabase ../my-supabase-project && supabase db push`],
  run: exportSupabase,
};

async function setup(ctx: Context): Promise<number> {
  if (ctx.values['dry-run']) {
    const { buildSetupScript } = await import('../../schema/migrations.ts');
    ctx.io.stdout(buildSetupScript());
    return 0;
  }
  const mode = ctx.values.production ? 'production' : 'development';
  const url = ctx.values['database-url'];
  // An explicit --database-url is the whole configuration: no .env file may override it.
  const { envForTarget, resolveCliTarget } = await import('../target.ts');
  const explicit = url === undefined ? undefined : envForTarget(resolveCliTarget(url, {}, mode));
  const { runSetupCommand } = await import('../setup-command.ts');
  const code = await runSetupCommand({
    mode,
    cwd: ctx.io.cwd,
    env: explicit ?? ctx.io.env,
    envFiles: explicit === undefined,
    out: (text) => ctx.out(text),
    err: (text) => ctx.io.stderr(`${text}\n`),
  });
  if (code !== 0 || !ctx.values['supabase-auth-users']) return code;
  // Opt-in, after a successful setup: never part of the schema setup applies by itself.
  const connection = await ctx.connect();
  const { installSupabaseUserSync } = await import('../../schema/supabase-users.ts');
  await installSupabaseUserSync(connection.database());
  ctx.out('✅ Supabase user sync installed: a users row for each auth.users row (trigger plugin_auth_on_supabase_user; existing rows copied).');
  return 0;
}

async function verify(ctx: Context): Promise<number> {
  const connection = await ctx.connect();
  const catalog = await connection.readCatalog();
  const warnings = catalog.tables.some((t) => t.name === 'figma_api_state') ? await (await import('../../schema/figma-health.ts')).figmaWarnings(connection) : [];
  const [{ schemaVersion }, { formatDifferences }, { formatNotes, verifyCatalog }] = await Promise.all([
    import('../../schema/migrations.ts'), import('../../schema/catalog.ts'), import('../verify-catalog.ts'),
  ]);
  const result = { target: connection.description, schemaVersion: schemaVersion(), ...verifyCatalog(catalog), warnings };
  const notes = formatNotes(result.notes);
  const warned = (text: string) => [text, ...warnings.map((w) => `⚠ ${w}`)].join('\n');
  ctx.print(result, (r) => warned(
    r.ok
      ? [`✅ ${r.target} matches the expected schema (version ${r.schemaVersion}) and passes the security lint.`, ...notes].join('\n')
      : [
          `❌ ${r.target} differs from the expected schema (version ${r.schemaVersion}) in ${r.differences.length} place${r.differences.length === 1 ? '' : 's'}:`,
          ...formatDifferences(r.differences).map((line) => `  ${line}`),
          ...notes,
          '',
          `Missing objects, or an insecure grant or setting: run \`${BIN} setup\` (it restores them). A different or unexpected one existed before setup or was changed since: migrate it by hand. An untrusted object: drop it (setup refuses to run while it exists).`,
        ].join('\n')),
  );
  return result.ok ? 0 : 1;
}

async function status(ctx: Context): Promise<number> {
  const connection = await ctx.connect();
  const { readStatus } = await import('../../schema/status.ts');
  ctx.print(await readStatus(connection, connection.description), formatStatus);
  return 0;
}

async function diagram(ctx: Context): Promise<number> {
  const connection = await ctx.connect();
  const { buildMermaidDiagram } = await import('../../schema/diagram.ts');
  ctx.io.stdout(buildMermaidDiagram(await connection.readCatalog()));
  return 0;
}

async function exportSupabase(ctx: Context): Promise<number> {
  const [{ exportSupabaseMigration }, { schemaVersion }] = await Promise.all([import('../../schema/export.ts'), import('../../schema/migrations.ts')]);
  const result = { ...exportSupabaseMigration(ctx.args[0] ?? ctx.io.cwd), schemaVersion: schemaVersion() };
  ctx.print(result, (r) =>
    r.written
      ? `Wrote ${r.path} (schema version ${r.schemaVersion}).\nNext: supabase db push`
      : `${r.path} already holds schema version ${r.schemaVersion}: nothing written.`,
  );
  return 0;
}
