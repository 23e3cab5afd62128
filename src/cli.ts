// figma-plugin-auth-db: the command line. Thin by design: parse, call the library, print, return
// an exit code (0 ok, 1 failed or differences found, 2 usage error). Only the entry points
// (bin/figma-plugin-auth-db.js, src/cli-main.ts) touch process.exitCode.
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { diffSchema, formatDifferences, HOST_TABLES, loadExpectedSchema, type Catalog, type Difference } from './catalog.ts';
import { trustProblems } from './trust.ts';
import { createPluginAuth } from './auth.ts';
import { lintCatalog, type Finding } from './lint.ts';
import { createUsageReport } from './usage-report.ts';
import { findUser } from './users.ts';
import { connect, envForTarget, resolveCliTarget, type Connection } from './cli-target.ts';
import { formatPlans, formatStatus, formatTokens, formatUsage, type UserUsage } from './cli-format.ts';
import { buildMermaidDiagram } from './diagram.ts';
import { loadDevelopmentEnv, type Env } from './env.ts';
import { PluginAuthError } from './errors.ts';
import { buildSetupScript, OWNER_ONLY_FUNCTIONS, schemaVersion } from './migrations.ts';
import { redact, secretsOf } from './redact.ts';
import { runSetupCommand } from './setup-command.ts';
import { readStatus } from './status.ts';
import { figmaWarnings } from './billing/figma-health.ts';
import { purgeUsage } from './retention.ts';
import { exportSupabaseMigration } from './supabase-export.ts';
import { startDashboardServer } from './dashboard/server.ts';

export const BIN = 'figma-plugin-auth-db';

/** Where the CLI reads and writes; tests and embedders pass their own. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Env;
  cwd: string;
}

/** Every option any command accepts, declared once so that one name always means one thing. */
const OPTIONS = {
  help: { type: 'boolean', short: 'h', text: 'show this help' },
  json: { type: 'boolean', text: 'print the result as JSON' },
  'database-url': { type: 'string', text: 'postgres://… or pglite:<dir> (default: the environment, as setup)' },
  production: { type: 'boolean', text: 'read only the environment (no .env files) and never the embedded database' },
  'dry-run': { type: 'boolean', text: 'setup: print the exact SQL it would run, connect to nothing; retention: count, delete nothing' },
  product: { type: 'string', text: 'Stripe product id, prod_… (with --license: the store\'s product id)' },
  license: { type: 'string', text: 'plans link: the store whose license keys grant the plan, lemonsqueezy or gumroad (with --product)' },
  variant: { type: 'string', text: 'plans link --license: only this variant of the product (Lemon Squeezy variant id)' },
  devices: { type: 'string', text: 'plans link: at most this many devices per license (1 to 1000); with --license for that product, alone for the plan (none: no cap)' },
  seats: { type: 'string', text: 'plans link --license: each license is a team license of this many seats (1 to 100000)' },
  price: { type: 'string', text: 'Stripe price id, price_…' },
  figma: { type: 'string', text: 'plans link: the Figma payment status the plan is granted for, PAID, TRIAL or FIRST_USE (a server-side trial)' },
  'trial-days': { type: 'string', text: 'plans link --figma FIRST_USE: how many days from a Figma user\'s first sign-in (1 to 3650)' },
  'older-than': { type: 'string', text: 'an age: 90d (days) or 36h (hours); at least 1 day' },
  'batch-size': { type: 'string', text: 'rows per batch, each its own short transaction (default 1000)' },
  denials: { type: 'string', text: 'how many recent denials to show, 1 to 1000 (default 10)' },
  reason: { type: 'string', text: 'why, kept with the revoked token (default: revoked_by_operator)' },
  port: { type: 'string', text: 'dashboard: the port to listen on (default 7300; 0 = any free port)' },
  host: { type: 'string', text: 'dashboard: the address to listen on (default 127.0.0.1: this machine only)' },
  open: { type: 'boolean', text: 'dashboard: open the URL in the default browser' },
} as const;
type OptionName = keyof typeof OPTIONS;
type Values = { [K in OptionName]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

/** What a command's function gets: its parsed input and the ways to reach the target and print. */
export interface Context {
  values: Values;
  /** Positional arguments after the command words. */
  args: string[];
  io: CliIo;
  /** Opens the target once (closed by the CLI after the command); `.database()` for SQL access. */
  connect(): Promise<Connection>;
  /** Prints data: as JSON with --json, else as the text `format` makes of it. */
  print<T>(data: T, format: (data: T) => string): void;
  out(text: string): void;
}

export interface Command {
  /** One or two words: "status", "plans link", "tokens revoke". */
  name: string;
  /** Positional arguments, e.g. ["<slug>"] or ["[dir]"]: <required>, [optional]. */
  args?: string[];
  summary: string;
  /** Options beyond --help; target options are added by `connects`. */
  options?: OptionName[];
  /** Reads or writes the database: accepts --database-url and --production. */
  connects?: boolean;
  examples: string[];
  run(ctx: Context): Promise<number>;
}

const TARGET_OPTIONS: OptionName[] = ['database-url', 'production'];

// One small function per command. Adding one (e.g. `usage <user>`, `tokens revoke <user>`) is one
// entry here: declare it, call the library through ctx.connect(), print with ctx.print.
export const COMMANDS: Command[] = [
  {
    name: 'setup',
    summary: 'apply the schema (one transaction, safe to re-run) and print the report',
    options: ['production', 'dry-run', 'database-url'],
    examples: [`${BIN} setup`, `${BIN} setup --production`, `${BIN} setup --dry-run > schema.sql`, `${BIN} setup --database-url pglite:./.data/pglite`],
    run: setupCommand,
  },
  {
    name: 'verify',
    summary: 'compare the live schema with the expected one; exit 1 listing every difference',
    options: ['json'],
    connects: true,
    examples: [`${BIN} verify`, `DATABASE_URL=postgres://… ${BIN} verify --production`, `${BIN} verify --json`],
    run: verifyCommand,
  },
  {
    name: 'status',
    summary: 'schema version, target, plans, row counts and last activity',
    options: ['json'],
    connects: true,
    examples: [`${BIN} status`, `${BIN} status --json | jq .rowCounts`],
    run: statusCommand,
  },
  {
    name: 'plans',
    summary: 'list the plans with their limits and Stripe ids',
    options: ['json'],
    connects: true,
    examples: [`${BIN} plans`, `${BIN} plans --json`],
    run: plansCommand,
  },
  {
    name: 'plans link',
    args: ['<slug>'],
    summary: 'link a plan to its Stripe product and/or price (what the webhook sync matches), or to a Figma payment status',
    options: ['product', 'price', 'figma', 'trial-days', 'license', 'variant', 'devices', 'seats', 'json'],
    connects: true,
    examples: [
      `${BIN} plans link pro --product prod_Pro123 --price price_Pro123`,
      `${BIN} plans link basic --price price_NewBasic`,
      `${BIN} plans link pro --figma PAID`,
      `${BIN} plans link pro --figma FIRST_USE --trial-days 7`,
      `${BIN} plans link pro --license lemonsqueezy --product 12345 --devices 3`,
      `${BIN} plans link team --license gumroad --product plug-pro_Wsw== --seats 10`,
      `${BIN} plans link pro --devices 2`,
    ],
    run: plansLinkCommand,
  },
  {
    name: 'usage',
    args: ['<user>'],
    summary: "a user's usage (by id or email): plan, today per action, lifetime, last denials, last 30 days",
    options: ['denials', 'json'],
    connects: true,
    examples: [`${BIN} usage ada@example.com`, `${BIN} usage 0b6c…-uuid --json | jq .today`, `${BIN} usage ada@example.com --denials 50`],
    run: usageCommand,
  },
  {
    name: 'tokens list',
    args: ['<user>'],
    summary: "a user's plugin tokens (by id or email): device, status, dates; never the token or its digest",
    options: ['json'],
    connects: true,
    examples: [`${BIN} tokens list ada@example.com`, `${BIN} tokens list ada@example.com --json | jq '.tokens[] | select(.status == "active")'`],
    run: tokensListCommand,
  },
  {
    name: 'tokens revoke',
    args: ['<token-id>'],
    summary: 'revoke one plugin token by its id (from `tokens list`); the plugin must sign in again',
    options: ['reason', 'json'],
    connects: true,
    examples: [`${BIN} tokens revoke 6f1c…-uuid --reason "lost laptop"`],
    run: tokensRevokeCommand,
  },
  {
    name: 'tokens revoke-all',
    args: ['<user>'],
    summary: "revoke every active token of a user (by id or email): signed out everywhere",
    options: ['reason', 'json'],
    connects: true,
    examples: [`${BIN} tokens revoke-all ada@example.com`, `${BIN} tokens revoke-all ada@example.com --reason compromised --json`],
    run: tokensRevokeAllCommand,
  },
  {
    name: 'diagram',
    summary: 'a Mermaid erDiagram of the live schema (tables, columns, keys, foreign keys)',
    connects: true,
    examples: [`${BIN} diagram > schema.mmd`, `${BIN} diagram --database-url postgres://user@host/db`],
    run: diagramCommand,
  },
  {
    name: 'export supabase',
    args: ['[dir]'],
    summary: 'write the schema as supabase/migrations/<timestamp>_figma_plugin_auth.sql under dir (default .)',
    options: ['json'],
    examples: [`${BIN} export supabase`, `${BIN} export supabase ../my-supabase-project && supabase db push`],
    run: exportSupabaseCommand,
  },
  {
    name: 'retention',
    summary: 'delete plugin_usage rows older than an age, in small batches (counters are kept)',
    options: ['older-than', 'batch-size', 'dry-run', 'json'],
    connects: true,
    examples: [`${BIN} retention --older-than 90d --dry-run`, `${BIN} retention --older-than 90d --batch-size 5000`],
    run: async (ctx) => {
      const { 'older-than': olderThan, 'batch-size': batch } = ctx.values;
      if (olderThan === undefined) throw new UsageError('retention needs --older-than, e.g. --older-than 90d');
      if (batch !== undefined && !/^\d{1,6}$/.test(batch)) throw new UsageError('retention: --batch-size must be a whole number');
      const db = (await ctx.connect()).database();
      const result = await purgeUsage(db, { olderThan, batchSize: batch === undefined ? undefined : Number(batch), dryRun: ctx.values['dry-run'] });
      ctx.print(result, (r) =>
        r.dryRun
          ? `Would delete ${r.deleted} plugin_usage rows created before ${r.cutoff.toISOString()} (dry run: nothing deleted).`
          : `Deleted ${r.deleted} plugin_usage rows created before ${r.cutoff.toISOString()} in ${r.batches} batches. daily_usage_summary (the counters) is untouched.`,
      );
      return 0;
    },
  },
  {
    name: 'dashboard',
    summary: 'a local web dashboard (usage, limits hit, conversions, plans, devices); prints its URL with an access key',
    options: ['port', 'host', 'open'],
    connects: true,
    examples: [`${BIN} dashboard`, `${BIN} dashboard --port 8080 --open`, `DATABASE_URL=postgres://… ${BIN} dashboard --port 0`],
    run: dashboardCommand,
  },
];

async function dashboardCommand(ctx: Context): Promise<number> {
  const port = ctx.values.port === undefined ? 7300 : Number(ctx.values.port);
  if (!/^\d{1,5}$/.test(ctx.values.port ?? '7300') || port > 65535) throw new UsageError('dashboard: --port must be a whole number from 0 to 65535');
  const host = ctx.values.host ?? '127.0.0.1';
  if (!/^[A-Za-z0-9.:[\]-]{1,255}$/.test(host)) throw new UsageError('dashboard: --host must be a host name or an IP address');
  const connection = await ctx.connect();
  const server = await startDashboardServer(connection.database(), { port, host, label: connection.description });
  ctx.out(`Dashboard on ${connection.description}:\n\n  ${server.url}\n\nThe key in the URL is the access key (a new one each start). Press Ctrl+C to stop.`);
  if (ctx.values.open) openInBrowser(server.url);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return 0;
}

/** Best effort: the URL is printed either way. */
function openInBrowser(url: string): void {
  const [command, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  try {
    spawn(command, args as string[], { stdio: 'ignore', detached: true }).on('error', () => {}).unref();
  } catch {
    // no opener on this machine
  }
}

async function setupCommand(ctx: Context): Promise<number> {
  if (ctx.values['dry-run']) {
    ctx.io.stdout(buildSetupScript());
    return 0;
  }
  const mode = ctx.values.production ? 'production' : 'development';
  const url = ctx.values['database-url'];
  // An explicit --database-url is the whole configuration: no .env file may override it.
  const explicit = url === undefined ? undefined : envForTarget(resolveCliTarget(url, {}, mode));
  return runSetupCommand({
    mode,
    cwd: ctx.io.cwd,
    env: explicit ?? ctx.io.env,
    envFiles: explicit === undefined,
    out: (text) => ctx.out(text),
    err: (text) => ctx.io.stderr(`${text}\n`),
  });
}

async function verifyCommand(ctx: Context): Promise<number> {
  const connection = await ctx.connect();
  const catalog = await connection.readCatalog();
  const warnings = catalog.tables.some((t) => t.name === 'figma_api_state') ? await figmaWarnings(connection) : [];
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

/**
 * What `verify` concludes from a live catalog: differences from the expected schema, security lint
 * findings on our objects, and objects setup refuses to run beside (src/trust.ts). Host tables are
 * linted too, as information (notes): setup leaves their RLS and grants as the application set them.
 */
export function verifyCatalog(catalog: Catalog): { ok: boolean; differences: Difference[]; notes: Difference[] } {
  const expected = loadExpectedSchema();
  const host = HOST_TABLES as readonly string[];
  const scope = {
    tables: expected.tables.map((t) => t.name).filter((name) => !host.includes(name)),
    host: [...host],
    functions: [...new Set(expected.functions.map((f) => f.name))],
    ownerOnly: [...OWNER_ONLY_FUNCTIONS],
  };
  // Functions by our exact signatures: another overload of one of our names is a trust problem.
  const signatures = new Set(expected.functions.map((f) => `${f.name}(${f.arguments})`));
  const findings = lintCatalog({ ...catalog, functions: catalog.functions.filter((f) => signatures.has(`${f.name}(${f.arguments})`)) }, scope);
  const differences = [
    ...diffSchema(expected, catalog),
    ...findings.filter((f) => f.severity !== 'info').map(findingAsDifference),
    ...trustProblems(catalog, expected).map((p): Difference => ({ object: p.object, problem: 'unexpected', actual: `${p.code}: ${p.detail}` })),
  ];
  const notes = findings.filter((f) => f.severity === 'info').map(findingAsDifference);
  return { ok: differences.length === 0, differences, notes };
}

function formatNotes(notes: Difference[]): string[] {
  if (!notes.length) return [];
  return [
    'Notes on host tables (your application\'s; setup leaves their RLS and grants as they are):',
    ...notes.map((n) => `  note: ${n.object}: ${n.actual} (the lint expects ${n.expected})`),
  ];
}

const LINT_EXPECTED: Record<Finding['rule'], string> = {
  rls_disabled: 'row level security enabled',
  table_granted_to_public_role: 'no privilege for PUBLIC, anon or authenticated',
  function_search_path_mutable: "SET search_path = ''",
  function_executable_by_public_role: 'EXECUTE not granted to PUBLIC, anon or authenticated',
  unindexed_foreign_key: 'an index leading with the foreign key columns',
  duplicate_index: 'no two indexes alike',
  service_role_privileges: 'service_role: exactly SELECT, INSERT, UPDATE, DELETE on a table; EXECUTE on a function',
  helper_not_owner_only: 'executable by its owner only',
};
const LINT_ACTUAL: Record<Finding['rule'], (f: Finding) => string> = {
  rls_disabled: () => 'row level security disabled',
  table_granted_to_public_role: (f) => `granted to ${f.detail}`,
  function_search_path_mutable: () => 'search_path not set (mutable)',
  function_executable_by_public_role: (f) => `executable by ${f.detail}`,
  unindexed_foreign_key: (f) => `no index on (${f.detail})`,
  duplicate_index: (f) => f.detail ?? 'duplicate',
  service_role_privileges: (f) => `service_role ${f.detail}`,
  helper_not_owner_only: (f) => `executable by ${f.detail}`,
};

/** A lint finding in verify's shape: `different: <object> (security: <rule>)`, expected vs actual. */
function findingAsDifference(f: Finding): Difference {
  return { object: `${f.object} (security: ${f.rule})`, problem: 'different', expected: LINT_EXPECTED[f.rule], actual: LINT_ACTUAL[f.rule](f) };
}

async function statusCommand(ctx: Context): Promise<number> {
  const connection = await ctx.connect();
  ctx.print(await readStatus(connection, connection.description), formatStatus);
  return 0;
}

async function plansCommand(ctx: Context): Promise<number> {
  const connection = await ctx.connect();
  ctx.print((await connection.readCatalog()).plans, formatPlans);
  return 0;
}

async function plansLinkCommand(ctx: Context): Promise<number> {
  const { product, price, figma, 'trial-days': trialDays } = ctx.values;
  if (figma !== undefined) return plansLinkFigmaCommand(ctx, figma, trialDays);
  if (ctx.values.license !== undefined) return plansLinkLicenseCommand(ctx, ctx.values.license);
  if (ctx.values.devices !== undefined && product === undefined && price === undefined) return plansDeviceLimitCommand(ctx, ctx.values.devices);
  for (const o of ['variant', 'devices', 'seats'] as const) {
    if (ctx.values[o] !== undefined) throw new UsageError(`plans link: --${o} goes with --license lemonsqueezy|gumroad`);
  }
  if (trialDays !== undefined) throw new UsageError('plans link: --trial-days goes with --figma FIRST_USE');
  if (product === undefined && price === undefined) throw new UsageError('plans link needs --product, --price, or both (or --figma PAID|TRIAL|FIRST_USE, or --license lemonsqueezy|gumroad --product ID)');
  const slug = ctx.args[0]!;
  const plans = (await ctx.connect()).plans();
  // plans.linkStripe sets both ids (null unlinks): an option left out keeps the plan's current id.
  // An unknown slug finds no current plan, and linkStripe names it (unknown_plan).
  const current = (await plans.list({ includeInactive: true })).find((p) => p.slug === slug);
  const plan = await plans.linkStripe(slug, {
    productId: product ?? current?.stripeProductId ?? null,
    priceId: price ?? current?.stripePriceId ?? null,
  });
  ctx.print(plan, (p) => `Linked plan ${p.slug} to Stripe product ${p.stripeProductId ?? '-'}, price ${p.stripePriceId ?? '-'}.\n\n${formatPlans([p])}`);
  return 0;
}

async function plansLinkLicenseCommand(ctx: Context, license: string): Promise<number> {
  const { product, price, variant, devices, seats } = ctx.values;
  if (license !== 'lemonsqueezy' && license !== 'gumroad') throw new UsageError('plans link: --license is lemonsqueezy or gumroad');
  if (price !== undefined || ctx.values['trial-days'] !== undefined) throw new UsageError('plans link: --license takes --product [--variant] [--devices] [--seats] only');
  if (product === undefined) throw new UsageError('plans link --license needs --product ID');
  const count = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    if (!/^\d{1,6}$/.test(v)) throw new UsageError(`plans link: --${name} must be a whole number`);
    return Number(v);
  };
  const link = { provider: license, productId: product, variantId: variant ?? null, deviceLimit: count(devices, 'devices'), seats: count(seats, 'seats') } as const;
  const plan = await (await ctx.connect()).plans().linkLicense(ctx.args[0]!, link);
  ctx.print({ plan, license: link }, (r) =>
    `Linked plan ${r.plan!.slug} to ${license} product ${product}${variant ? ` variant ${variant}` : ''}` +
    `${link.deviceLimit ? `, at most ${link.deviceLimit} devices per license` : ''}${link.seats ? `, ${link.seats} seats per license` : ''}.\n\n${formatPlans([r.plan!])}`);
  return 0;
}

/** `plans link <slug> --devices N|none`: the plan's own cap on devices per license. */
async function plansDeviceLimitCommand(ctx: Context, devices: string): Promise<number> {
  for (const o of ['variant', 'seats', 'trial-days'] as const) {
    if (ctx.values[o] !== undefined) throw new UsageError(`plans link: --${o} goes with --license lemonsqueezy|gumroad; --devices alone sets the plan's cap`);
  }
  if (devices !== 'none' && !/^\d{1,6}$/.test(devices)) throw new UsageError('plans link: --devices must be a whole number (or none)');
  const plan = await (await ctx.connect()).plans().setDeviceLimit(ctx.args[0]!, devices === 'none' ? null : Number(devices));
  ctx.print(plan, (p) =>
    `Plan ${p.slug}: ${p.deviceLimit === null ? 'no device cap of its own' : `at most ${p.deviceLimit} devices per license`}.\n\n${formatPlans([p])}`);
  return 0;
}

async function plansLinkFigmaCommand(ctx: Context, figma: string, trialDays: string | undefined): Promise<number> {
  if (ctx.values.product !== undefined || ctx.values.price !== undefined) {
    throw new UsageError('plans link: --figma links a Figma status; link Stripe ids in a separate call');
  }
  const status = figma.toUpperCase();
  if (status !== 'PAID' && status !== 'TRIAL' && status !== 'FIRST_USE') throw new UsageError('plans link: --figma is PAID, TRIAL or FIRST_USE');
  if ((status === 'FIRST_USE') !== (trialDays !== undefined)) throw new UsageError('plans link: --figma FIRST_USE needs --trial-days N (and only it)');
  if (trialDays !== undefined && !/^\d{1,4}$/.test(trialDays)) throw new UsageError('plans link: --trial-days must be a whole number');
  const slug = ctx.args[0]!;
  const plan = await (await ctx.connect()).plans().linkFigma(slug, status, { trialDays: trialDays === undefined ? undefined : Number(trialDays) });
  ctx.print({ plan, figma: status, trialDays: trialDays === undefined ? null : Number(trialDays) }, (r) =>
    `Linked plan ${r.plan!.slug} to Figma ${r.figma}${r.trialDays ? ` (${r.trialDays} days from a Figma user's first sign-in)` : ''}.\n\n${formatPlans([r.plan!])}`);
  return 0;
}

async function usageCommand(ctx: Context): Promise<number> {
  const denials = ctx.values.denials === undefined ? 10 : Number(ctx.values.denials);
  if (!Number.isInteger(denials) || denials < 1 || denials > 1000) throw new UsageError('usage: --denials is a whole number from 1 to 1000');
  const db = (await ctx.connect()).database();
  const auth = createPluginAuth(db);
  const report = createUsageReport(db);
  const user = await findUser(db, ctx.args[0]!);
  const effective = await auth.subscriptions.effectivePlan(user.id);
  const last30Days = await auth.usage.summary(user.id);
  // Today's answer for resize (the limited action) and for every other action used today.
  const today = new Date().toISOString().slice(0, 10);
  const actions = [...new Set(['resize', ...last30Days.filter((d) => d.date === today).map((d) => d.action)])];
  const answers: UserUsage['today'] = [];
  for (const action of actions) {
    // check answers as consume would, i.e. counting the call it previews when allowed: the
    // operator wants the count now, so take that call back out.
    const a = await auth.usage.check(user.id, action);
    const counted = a.allowed ? 1 : 0;
    answers.push({
      action,
      used: a.used - counted,
      usageLimit: a.usageLimit,
      remaining: a.remaining === null ? null : a.remaining + counted,
      resetsAt: a.resetsAt,
      nextAllowed: a.allowed,
      reason: a.reason,
    });
  }
  const result: UserUsage = {
    user,
    plan: { slug: effective.planSlug, source: effective.source, status: effective.status, limits: effective.limits },
    today: answers,
    lifetime: await report.lifetime(user.id),
    recentDenials: await report.recentDenials(user.id, { limit: denials }),
    last30Days,
  };
  ctx.print(result, formatUsage);
  return 0;
}

async function tokensListCommand(ctx: Context): Promise<number> {
  const db = (await ctx.connect()).database();
  const user = await findUser(db, ctx.args[0]!);
  ctx.print({ user, tokens: await createPluginAuth(db).tokens.list(user.id) }, formatTokens);
  return 0;
}

async function tokensRevokeCommand(ctx: Context): Promise<number> {
  const db = (await ctx.connect()).database();
  const tokenId = ctx.args[0]!;
  const revoked = await createPluginAuth(db).tokens.revoke(tokenId, ctx.values.reason ?? 'revoked_by_operator');
  ctx.print({ tokenId, revoked }, (r) => (r.revoked ? `Revoked token ${r.tokenId}.` : `Token ${r.tokenId} was already revoked: nothing changed.`));
  return 0;
}

async function tokensRevokeAllCommand(ctx: Context): Promise<number> {
  const db = (await ctx.connect()).database();
  const user = await findUser(db, ctx.args[0]!);
  const revoked = await createPluginAuth(db).tokens.revokeAll(user.id, ctx.values.reason ?? 'revoked_by_operator');
  ctx.print({ user, revoked }, (r) => `Revoked ${r.revoked} active token${r.revoked === 1 ? '' : 's'} of ${r.user.email} (${r.user.id}).`);
  return 0;
}

async function diagramCommand(ctx: Context): Promise<number> {
  const connection = await ctx.connect();
  ctx.io.stdout(buildMermaidDiagram(await connection.readCatalog()));
  return 0;
}

async function exportSupabaseCommand(ctx: Context): Promise<number> {
  const result = { ...exportSupabaseMigration(ctx.args[0] ?? ctx.io.cwd), schemaVersion: schemaVersion() };
  ctx.print(result, (r) =>
    r.written
      ? `Wrote ${r.path} (schema version ${r.schemaVersion}).\nNext: supabase db push`
      : `${r.path} already holds schema version ${r.schemaVersion}: nothing written.`,
  );
  return 0;
}

/** A mistake in how the CLI was called: usage on stderr, exit 2. */
class UsageError extends Error {
  constructor(message: string, readonly command?: Command) {
    super(message);
  }
}

/** Runs the CLI and returns the exit code. Never exits the process itself. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  // Whatever is printed, success or failure, passes through redact() with every secret configured.
  const secrets = [...secretsOf(io.env), ...secretsOf(loadDevelopmentEnv(io.cwd, {})), ...urlSecrets(argv)];
  const safe: CliIo = { ...io, stdout: (t) => io.stdout(redact(t, secrets)), stderr: (t) => io.stderr(redact(t, secrets)) };
  let command: Command | undefined;
  let connection: Connection | undefined;
  try {
    const parsed = parse(argv);
    command = parsed.command;
    if (!command) {
      safe.stdout(`${mainHelp()}\n`);
      return 0;
    }
    if (parsed.values.help) {
      safe.stdout(`${commandHelp(command)}\n`);
      return 0;
    }
    const values = parsed.values;
    const ctx: Context = {
      values,
      args: parsed.args,
      io: safe,
      out: (text) => safe.stdout(`${text}\n`),
      print: (data, format) => safe.stdout(`${values.json ? JSON.stringify(data, null, 2) : format(data)}\n`),
      connect: async () => {
        if (connection) return connection;
        const mode = values.production ? 'production' : 'development';
        const env = values.production ? io.env : loadDevelopmentEnv(io.cwd, io.env);
        connection = await connect(resolveCliTarget(values['database-url'], env, mode));
        return connection;
      },
    };
    return await command.run(ctx);
  } catch (error) {
    if (error instanceof UsageError) {
      command ??= error.command;
      safe.stderr(`${BIN}: ${error.message}\n\n${command ? usageLine(command) : mainUsage()}\nRun \`${BIN} ${command ? `${command.name} ` : ''}--help\` for more.\n`);
      return 2;
    }
    const code = error instanceof PluginAuthError ? ` [${error.code}]` : '';
    safe.stderr(`${BIN}${command ? ` ${command.name}` : ''}: error${code}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    await connection?.close().catch(() => {});
  }
}

function processIo(): CliIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
  };
}

/** A password given on the command line is a secret too, even in a URL we failed to parse. */
function urlSecrets(argv: string[]): string[] {
  return argv.flatMap((arg) => {
    const match = /^(?:--database-url=)?[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:([^\s@/]+)@/i.exec(arg);
    return match ? [match[1]!, decodeURIComponentSafe(match[1]!)] : [];
  });
}
const decodeURIComponentSafe = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

const optionsOf = (command: Command): OptionName[] => ['help', ...(command.options ?? []), ...(command.connects ? TARGET_OPTIONS : [])];

function parse(argv: string[]): { command?: Command; values: Values; args: string[] } {
  // First pass, lenient and with every option known: where are the command words?
  const loose = parseArgs({ args: argv, options: spec(Object.keys(OPTIONS) as OptionName[]), strict: false, allowPositionals: true });
  const words = loose.positionals;
  if (words[0] === 'help') return help(words.slice(1));
  const command = COMMANDS.find((c) => c.name === words.slice(0, 2).join(' ')) ?? COMMANDS.find((c) => c.name === words[0]);
  if (!command) {
    if (loose.values.help && words.length === 0) return { values: {}, args: [] };
    if (words.length === 0) throw new UsageError('no command given');
    const group = COMMANDS.filter((c) => c.name.startsWith(`${words[0]} `)).map((c) => c.name);
    throw new UsageError(group.length ? `"${words[0]}" needs a subcommand: ${group.join(', ')}` : `unknown command "${words[0]}"`);
  }
  let strict;
  try {
    strict = parseArgs({ args: argv, options: spec(optionsOf(command)), strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(`${command.name}: ${(error as Error).message.replace(/\. To specify a positional.*$/s, '')}`, command);
  }
  const args = strict.positionals.slice(command.name.split(' ').length);
  const declared = command.args ?? [];
  const required = declared.filter((a) => a.startsWith('<')).length;
  if (!strict.values.help && args.length < required) throw new UsageError(`${command.name}: missing ${declared[args.length]}`, command);
  if (args.length > declared.length) throw new UsageError(`${command.name}: unexpected argument "${args[declared.length]}"`, command);
  return { command, values: strict.values as Values, args };
}

/** `help`, `help status`, `help plans link`. */
function help(words: string[]): { command?: Command; values: Values; args: string[] } {
  if (words.length === 0) return { values: {}, args: [] };
  const command = COMMANDS.find((c) => c.name === words.join(' ')) ?? COMMANDS.find((c) => c.name === words[0]);
  if (!command) throw new UsageError(`unknown command "${words.join(' ')}"`);
  return { command, values: { help: true }, args: [] };
}

function spec(names: OptionName[]) {
  return Object.fromEntries(
    names.map((name) => {
      const o = OPTIONS[name];
      return [name, 'short' in o ? { type: o.type, short: o.short } : { type: o.type }];
    }),
  ) as Record<string, { type: 'string' | 'boolean'; short?: string }>;
}

const usageLine = (c: Command) =>
  `Usage: ${BIN} ${c.name}${c.args?.length ? ` ${c.args.join(' ')}` : ''}${optionsOf(c).length > 1 ? ' [options]' : ''}`;

function mainUsage(): string {
  return `Usage: ${BIN} <command> [options]\nCommands: ${COMMANDS.map((c) => c.name).join(', ')}`;
}

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => `${c.name} ${c.args?.join(' ') ?? ''}`.length));
  return [
    `${BIN}: set up, check and operate the database of a paid Figma plugin.`,
    '',
    `Usage: ${BIN} <command> [options]`,
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${`${c.name} ${c.args?.join(' ') ?? ''}`.padEnd(width)}  ${c.summary}`),
    '',
    'Target (commands that connect): --database-url, else DATABASE_URL, else SUPABASE_URL +',
    'SUPABASE_SERVICE_ROLE_KEY, else embedded PGlite in ./.data/pglite (PGLITE_DATA_DIR). Without',
    '--production, .env.local and .env are read first (real environment variables win).',
    '',
    'Exit codes: 0 ok, 1 failed (or verify found differences), 2 usage error.',
    '',
    'Examples:',
    `  ${BIN} setup && ${BIN} verify`,
    `  ${BIN} status --json`,
    `  ${BIN} plans link pro --product prod_Pro123 --price price_Pro123`,
    `  ${BIN} usage ada@example.com`,
    `  ${BIN} tokens revoke-all ada@example.com`,
    `  ${BIN} dashboard --open`,
    '',
    `Run \`${BIN} <command> --help\` for a command's options and examples.`,
  ].join('\n');
}

function commandHelp(command: Command): string {
  const options = optionsOf(command);
  const flag = (name: OptionName) => `${'short' in OPTIONS[name] ? `-${(OPTIONS[name] as { short: string }).short}, ` : ''}--${name}${OPTIONS[name].type === 'string' ? ' <value>' : ''}`;
  const width = Math.max(...options.map((name) => flag(name).length));
  return [
    `${BIN} ${command.name}: ${command.summary}`,
    '',
    usageLine(command),
    '',
    'Options:',
    ...options.map((name) => `  ${flag(name).padEnd(width)}  ${OPTIONS[name].text}`),
    '',
    'Examples:',
    ...command.examples.map((e) => `  ${e}`),
    '',
    'Exit codes: 0 ok, 1 failed' + (command.name === 'verify' ? ' or differences found' : '') + ', 2 usage error.',
  ].join('\n');
}
