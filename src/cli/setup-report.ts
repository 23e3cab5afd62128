import { HOST_TABLES } from '../schema/catalog.ts';
import type { SetupMode, SetupResult, SetupTarget } from '../schema/setup.ts';
import { PluginAuthError } from '../core/errors.ts';
import { formatLimits, money } from './format.ts';

/** The seed's five tables, in the seed's order. */
export const PLUGIN_TABLES = [
  'subscription_plans',
  'plugin_tokens',
  'plugin_usage',
  'daily_usage_summary',
  'user_subscriptions',
] as const;

// The command a consumer of the installed package has (it works in this repository too, where
// `npm run setup` is the same thing).
const retryCommand = (mode: SetupMode) => (mode === 'production' ? 'npx figma-plugin-auth-db setup --production' : 'npx figma-plugin-auth-db setup');

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The seed's success report. Every name and number comes from the live catalog in `result`. */
export function formatSetupReport(result: SetupResult, mode: SetupMode): string {
  const { catalog } = result;
  const tables = new Map(catalog.tables.map((t) => [t.name, t]));
  const ours = catalog.tables.filter((t) => (PLUGIN_TABLES as readonly string[]).includes(t.name));
  ours.sort((a, b) => PLUGIN_TABLES.indexOf(a.name as never) - PLUGIN_TABLES.indexOf(b.name as never));
  const pluginFunctions = catalog.functions.filter((f) => f.name !== 'exec_sql');
  const indexes = ours.flatMap((t) => t.indexes.filter((i) => i.name.startsWith('idx_')).map((i) => ({ table: t.name, name: i.name })));
  const lines: string[] = [];
  lines.push('✅ Database Schema Implementation Complete', '');
  lines.push(`Target: ${result.target} (PostgreSQL ${catalog.serverVersion}, database ${catalog.database})`);
  lines.push(
    `Schema version: ${result.schemaVersion} (${result.applied.length ? `applied now: ${result.applied.join(', ')}` : 'already up to date: nothing changed'})`,
  );
  if (result.restored.length) {
    lines.push('', `Restored (missing or loosened since setup, put back in this run):`);
    for (const item of result.restored) lines.push(`- ${item}`);
  }
  lines.push('', 'Tables Created:');
  ours.forEach((t, i) => {
    const fks = t.constraints.filter((c) => c.type === 'f').length;
    lines.push(
      `${i + 1}. ${t.name} (${t.comment ?? 'no comment'}): ${plural(t.columns.length, 'column')}, ${plural(t.indexes.length, 'index', 'indexes')}, ${plural(fks, 'foreign key')}`,
    );
  });
  const host: string[] = HOST_TABLES.filter((name) => tables.has(name));
  if (host.length) lines.push(`   on top of the host tables: ${host.join(', ')}`);
  const others = catalog.tables.filter(
    (t) => !host.includes(t.name) && !(PLUGIN_TABLES as readonly string[]).includes(t.name),
  );
  if (others.length) lines.push(`   and: ${others.map((t) => `${t.name} (${t.comment ?? 'no comment'})`).join(', ')}`);
  lines.push('', `Function${pluginFunctions.length === 1 ? '' : 's'} Created:`);
  // Scalar results in capitals as the seed writes them (→ INTEGER); composite ones as they are.
  for (const f of pluginFunctions) lines.push(`- ${f.name}(${f.arguments}) → ${/^[a-z ]+$/.test(f.result) ? f.result.toUpperCase() : f.result}`);
  lines.push('', `Indexes Added (${indexes.length} named on the plugin tables):`);
  for (const name of PLUGIN_TABLES) {
    const list = indexes.filter((i) => i.table === name).map((i) => i.name);
    if (list.length) lines.push(`- ${list.join(', ')}`);
  }
  lines.push('', 'Seed Data:');
  lines.push(
    `- ${catalog.plans.length} subscription plans (${catalog.plans.map((p) => p.slug).join(', ')}) with pricing and limits`,
  );
  for (const p of catalog.plans) {
    lines.push(`  ${p.slug.padEnd(11)} ${`${money(p.priceMonthly)}/month`.padEnd(15)} ${formatLimits(p.limits)}${p.isActive ? '' : ' (inactive)'}`);
  }
  lines.push('', 'Next Steps:');
  if (mode === 'development') {
    lines.push(`Run: ${retryCommand(mode)} (to apply schema locally; safe to run again)`);
    lines.push('Run: npx figma-plugin-auth-db verify (to check the live schema against this package)');
  } else {
    lines.push(`Run: ${retryCommand(mode)} again after upgrading this package (it applies only what is new)`);
  }
  return lines.join('\n');
}

/** The seed's error block: real message, troubleshooting that fits the target, the retry command. */
export function formatSetupError(error: unknown, mode: SetupMode, target?: SetupTarget): string {
  const reason = error instanceof Error ? error.message : String(error);
  const code = error instanceof PluginAuthError ? error.code : 'setup_failed';
  const items: string[] = [];
  if (code === 'no_database_configured' || code === 'incomplete_supabase_config') {
    items.push('Set DATABASE_URL (any PostgreSQL, or Supabase\'s direct / session-pooler connection string)');
    items.push('Or set both SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY to use exec_sql over the REST API');
    if (mode === 'production') items.push('Production reads only the real environment: .env files are ignored');
    else items.push('Put them in .env.local (see .env.example)');
  } else if (code === 'invalid_database_url') {
    items.push('DATABASE_URL must look like postgresql://user:password@host:5432/database');
  } else if (code === 'invalid_supabase_url') {
    items.push('SUPABASE_URL must look like https://<project-ref>.supabase.co');
  } else if (code === 'schema_modified') {
    items.push('Applied sql/ files are immutable: restore the file and put the change in a new numbered file');
    if (mode === 'development') items.push('In development you may reset the embedded database: delete ./.data/ and run setup again');
  } else if (code === 'schema_newer') {
    items.push('Upgrade figma-plugin-auth-db to the version that set this database up');
  } else if (code === 'schema_drift') {
    items.push('A table listed above existed before setup with another shape: migrate or rename it, then retry');
    items.push('Run: figma-plugin-auth-db verify (lists every difference)');
  } else if (target?.kind === 'supabase') {
    if (code === 'exec_sql_missing') items.push('Create the exec_sql function once in the Supabase SQL editor (README: "Supabase: the exec_sql function")');
    items.push(`Verify SUPABASE_SERVICE_ROLE_KEY is set in ${mode === 'production' ? 'the environment' : '.env.local'}`);
    items.push('Check Supabase project is active');
    items.push('Ensure users table exists (required for foreign keys)');
    items.push('Review PostgreSQL error logs in Supabase Dashboard');
  } else if (target?.kind === 'postgres') {
    items.push('Verify DATABASE_URL: host, port, database name, user and password');
    items.push('Check the server is running and reachable (pg_isready -h <host> -p <port>)');
    items.push('Ensure users table exists with id uuid primary key, or let setup create it (required for foreign keys)');
    items.push('Review the PostgreSQL server log for the statement that failed');
  } else {
    items.push('Check ./.data/ is writable and no other process has the embedded database open');
    items.push('Development data only: delete ./.data/ to start over, then run setup again');
  }
  return [
    'Status: ERROR',
    '',
    `Reason: ${reason}`,
    '',
    'Troubleshooting:',
    ...items.map((item) => `* ${item}`),
    '',
    'Command to retry:',
    retryCommand(mode),
  ].join('\n');
}
