// The command line against real databases: a PGlite data directory and a PostgreSQL database of
// its own per test. Commands run through the CLI's entry, main(argv, io), in this process, with a
// clean environment and an empty working directory of their own; where the process itself is the
// point (the package bin, exit codes, nothing printed outside the CLI's own output) they run as a
// subprocess of the package bin.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { scriptArgs, spawnCollect } from './helpers/run.ts';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DIALECTS, createUser, dropDatabase, freshDatabase, type Dialect } from './helpers/databases.ts';
import { copyDataDir } from './helpers/pglite.ts';
import { TOKEN_SECRET } from './helpers/secrets.ts';
import { main } from '../src/cli/cli.ts';
import { openDatabase, type Database } from '../src/core/db.ts';
import { readCatalog } from '../src/schema/catalog.ts';
import { foreignKeys } from '../src/schema/diagram.ts';
import { buildSetupScript, loadMigrations, schemaVersion } from '../src/schema/migrations.ts';
import { buildExportScript } from '../src/schema/export.ts';
import { createPluginAuth } from '../src/auth.ts';
import { sha256Hex } from '../src/tokens/signer.ts';

const BIN = fileURLToPath(new URL('../bin/figma-plugin-auth-db.js', import.meta.url));

const scratch = mkdtempSync(join(tmpdir(), 'fpa-cli-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
/** An empty directory (no .env files): the subprocesses' working directory and PGlite homes. */
const tempDir = () => mkdtempSync(join(scratch, `${dirs++}-`));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Run as a subprocess: the package bin, or these node arguments (a script). */
  subprocess?: boolean;
  script?: string[];
}

/** Runs a command with a clean environment: only PATH/HOME and what the test gives. */
function run(args: string[], options: RunOptions = {}): Promise<Run> {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env };
  const cwd = options.cwd ?? tempDir();
  if (!options.subprocess && !options.script) {
    let stdout = '';
    let stderr = '';
    const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), env, cwd };
    return main(args, io).then((code) => ({ code, stdout, stderr }));
  }
  return spawnCollect(process.execPath, [...(options.script ?? [BIN]), ...args], { cwd, env });
}

interface Target {
  /** --database-url value. */
  url: string;
  /** The same target for setup through the environment. */
  env: Record<string, string>;
  /** PGlite only: the data directory. */
  dataDir?: string;
  /** Opens it in this process (close before the CLI uses a PGlite directory). */
  open(): Promise<Database>;
  /** Is there anything at all (PGlite: a data directory; PostgreSQL: a table in public)? */
  isEmpty(): Promise<boolean>;
  drop(): Promise<void>;
}

/** A database of its own: set up (a copy of one set up from the SQL files) unless setup is false. */
async function target(dialect: Dialect, setup = true): Promise<Target> {
  if (dialect === 'pglite') {
    const dir = join(tempDir(), 'pglite');
    if (setup) await copyDataDir('setup', dir);
    return {
      url: `pglite:${dir}`,
      dataDir: dir,
      env: { PGLITE_DATA_DIR: dir },
      open: () => openDatabase(`pglite:${dir}`),
      isEmpty: async () => !existsSync(dir),
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const t = await freshDatabase('postgres', { setup, max: 1 });
  await t.db.close();
  return {
    url: t.url!,
    env: { DATABASE_URL: t.url! },
    open: () => openDatabase(t.url!, { max: 1 }),
    async isEmpty() {
      const db = await openDatabase(t.url!, { max: 1 });
      try {
        const rows = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_catalog.pg_tables WHERE schemaname = 'public'");
        return rows[0]!.n === 0;
      } finally {
        await db.close();
      }
    },
    drop: () => dropDatabase(t.name!),
  };
}

/** Runs fn on a fresh target and removes it afterwards. */
async function withTarget(dialect: Dialect, fn: (t: Target) => Promise<void>, setup = true): Promise<void> {
  const t = await target(dialect, setup);
  await fn(t);
  await t.drop();
}

async function inDb<T>(t: Target, fn: (db: Database) => Promise<T>): Promise<T> {
  const db = await t.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** The package bin as a subprocess. */
const bin = (args: string[], options: RunOptions = {}) => run(args, { ...options, subprocess: true });

const json = <T = any>(r: Run): T => {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
};

for (const dialect of DIALECTS) {
  describe(`cli [${dialect}]`, () => {
    test('setup then verify both exit 0; setup again changes nothing', () =>
      withTarget(dialect, async (t) => {
        const first = await run(['setup', '--database-url', t.url]);
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stdout, /^✅ Database Schema Implementation Complete/);
        assert.match(first.stdout, /applied now: 001_host_tables/);
        const verify = await run(['verify', '--database-url', t.url]);
        assert.equal(verify.code, 0, verify.stdout + verify.stderr);
        assert.match(verify.stdout, /matches the expected schema/);
        const again = await run(['setup', '--database-url', t.url]);
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stdout, /already up to date: nothing changed/);
      }, false));

    test('setup prints exactly what `npm run setup` prints, configured the same way', () =>
      withTarget(dialect, async (t) => {
        const cli = await run(['setup'], { env: t.env });
        // `npm run setup` is `tsx setup-database.ts`: the same script, compiled once for the suite.
        const npm = await run([], { env: t.env, script: await scriptArgs('setup-database.ts') });
        assert.equal(cli.code, 0, cli.stderr);
        assert.equal(npm.code, 0, npm.stderr);
        assert.equal(cli.stdout, npm.stdout);
      }));

    test('verify exits 1 naming a column whose type drifted and, from the security lint, a grant to PUBLIC', () =>
      withTarget(dialect, async (t) => {
        await inDb(t, (db) => db.exec(`
          ALTER TABLE public.plugin_tokens ALTER COLUMN device_name TYPE text;
          GRANT SELECT ON public.plugin_usage TO PUBLIC;`));
        const verify = await run(['verify', '--database-url', t.url]);
        assert.equal(verify.code, 1);
        // The column's CHECK (sql/010) deparses differently on text too: a third, dependent difference.
        assert.match(verify.stdout, /in 3 places:\n/);
        assert.match(verify.stdout, /different: constraint plugin_tokens\.plugin_tokens_device_name_check\n/);
        assert.match(verify.stdout, /different: column plugin_tokens\.device_name\n\s+expected: character varying\(255\)\n\s+actual:\s+text/);
        assert.match(verify.stdout, /different: table plugin_usage \(security: table_granted_to_public_role\)\n\s+expected: no privilege for PUBLIC, anon or authenticated\n\s+actual:\s+granted to PUBLIC\n/);
        const asJson = JSON.parse((await run(['verify', '--json', '--database-url', t.url])).stdout);
        assert.equal(asJson.ok, false);
        assert.deepEqual(asJson.differences.map((d: { object: string }) => d.object), [
          'column plugin_tokens.device_name',
          'constraint plugin_tokens.plugin_tokens_device_name_check',
          'table plugin_usage (security: table_granted_to_public_role)',
        ]);
      }));

    test('verify exits 1 on a database newer than the package, naming the migration', () =>
      withTarget(dialect, async (t) => {
        await inDb(t, (db) => db.query("INSERT INTO public.plugin_auth_migrations (version, name, checksum) VALUES (999, '999_from_the_future', repeat('0', 64))"));
        const verify = await run(['verify', '--database-url', t.url]);
        assert.equal(verify.code, 1);
        assert.match(verify.stdout, /unexpected: migration 999_from_the_future \(version 999, newer than this package/);
      }));

    test('verify exits 1 on a database never set up, saying to run setup', () =>
      withTarget(dialect, async (t) => {
        if (dialect === 'pglite') await copyDataDir('empty', t.dataDir!); // an empty, existing data directory
        const verify = await run(['verify', '--database-url', t.url]);
        assert.equal(verify.code, 1);
        assert.match(verify.stderr, /\[not_set_up\].*figma-plugin-auth-db setup/);
      }, false));

    test('setup --dry-run prints the exact setup script and creates nothing', () =>
      withTarget(dialect, async (t) => {
        const dry = await run(['setup', '--dry-run', '--database-url', t.url]);
        assert.equal(dry.code, 0, dry.stderr);
        assert.equal(dry.stdout, buildSetupScript());
        assert.equal(await t.isEmpty(), true);
      }, false));

    test('status --json: schema version, migrations, plans, row counts, last activity', () =>
      withTarget(dialect, async (t) => {
        const before = json(await run(['status', '--json', '--database-url', t.url]));
        assert.deepEqual(Object.keys(before).sort(), ['database', 'lastActivity', 'migrations', 'plans', 'rowCounts', 'schema', 'serverVersion', 'target', 'warnings']);
        assert.deepEqual(before.schema, { installed: schemaVersion(), package: schemaVersion(), upToDate: true });
        assert.equal(before.migrations.length, loadMigrations().length); // every shipped file applied (numbers need not be contiguous)
        assert.deepEqual(before.plans.map((p: { slug: string }) => p.slug), ['free', 'basic', 'pro', 'enterprise']);
        assert.equal(before.rowCounts.subscription_plans, 4);
        assert.equal(before.rowCounts.plugin_usage, 0);
        assert.equal(before.lastActivity.usageEvent, null);

        const at = await inDb(t, async (db) => {
          const user = await createUser(db);
          const rows = await db.query<{ created_at: Date }>(
            "INSERT INTO public.plugin_usage (user_id, action, allowed, reason) VALUES ($1, 'resize', true, 'ok') RETURNING created_at",
            [user],
          );
          return rows[0]!.created_at.toISOString();
        });
        const after = json(await run(['status', '--json', '--database-url', t.url]));
        assert.equal(after.rowCounts.plugin_usage, 1);
        assert.equal(after.rowCounts.users, 1);
        assert.equal(after.lastActivity.usageEvent, at);
        assert.equal(after.lastActivity.tokenIssued, null);

        const text = await run(['status', '--database-url', t.url]);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, new RegExp(`Schema version:\\s+${schemaVersion()} \\(up to date\\)`));
        assert.match(text.stdout, /plugin_usage\s+1\n/);
      }));

    test('plans --json lists the seeded plans with limits; plans prints a table', () =>
      withTarget(dialect, async (t) => {
        const plans = json<{ slug: string; priceMonthly: number; limits: object; stripePriceId: null }[]>(
          await run(['plans', '--json', '--database-url', t.url]),
        );
        assert.deepEqual(plans.map((p) => [p.slug, p.priceMonthly]), [['free', 0], ['basic', 499], ['pro', 1299], ['enterprise', 4999]]);
        assert.deepEqual(plans[3]!.limits, { resizesPerDay: -1, batchSize: -1, isDaily: true });
        const text = await run(['plans', '--database-url', t.url]);
        assert.match(text.stdout, /^SLUG\s+NAME/);
        assert.match(text.stdout, /\npro\s+Pro\s+\$12\.99\s+6 per day\s+20 layers\s+yes/);
      }));

    test('plans link sets the Stripe ids through plans.linkStripe, keeping an omitted one; bad input changes nothing', () =>
      withTarget(dialect, async (t) => {
        const linked = json(await run(['plans', 'link', 'pro', '--product', 'prod_Pro123', '--price', 'price_Pro123', '--json', '--database-url', t.url]));
        assert.equal(linked.slug, 'pro');
        assert.equal(linked.stripeProductId, 'prod_Pro123');
        assert.equal(linked.stripePriceId, 'price_Pro123');
        const priceOnly = await run(['plans', 'link', 'pro', '--price', 'price_Pro456', '--database-url', t.url]);
        assert.equal(priceOnly.code, 0, priceOnly.stderr);
        assert.match(priceOnly.stdout, /Linked plan pro to Stripe product prod_Pro123, price price_Pro456/);

        const taken = await run(['plans', 'link', 'basic', '--price', 'price_Pro456', '--database-url', t.url]);
        assert.equal(taken.code, 1);
        assert.match(taken.stderr, /\[price_already_linked\]/);
        const unknown = await run(['plans', 'link', 'platinum', '--price', 'price_X1', '--database-url', t.url]);
        assert.equal(unknown.code, 1);
        assert.match(unknown.stderr, /\[unknown_plan\]/);
        const malformed = await run(['plans', 'link', 'basic', '--product', 'prod with spaces', '--database-url', t.url]);
        assert.equal(malformed.code, 1);
        assert.match(malformed.stderr, /\[invalid_stripe_id\]/);
        const nothing = await run(['plans', 'link', 'basic', '--database-url', t.url]);
        assert.equal(nothing.code, 2);

        const rows = await inDb(t, (db) =>
          db.query<{ plan_slug: string; stripe_product_id: string | null; stripe_price_id: string | null }>(
            "SELECT plan_slug, stripe_product_id, stripe_price_id FROM public.subscription_plans WHERE stripe_product_id IS NOT NULL OR stripe_price_id IS NOT NULL",
          ),
        );
        assert.deepEqual(rows, [{ plan_slug: 'pro', stripe_product_id: 'prod_Pro123', stripe_price_id: 'price_Pro456' }]);
      }));

    test('plans link --figma PAID|TRIAL|FIRST_USE links a Figma status; status and verify warn after Figma refused the access token', () =>
      withTarget(dialect, async (t) => {
        const paid = json(await run(['plans', 'link', 'pro', '--figma', 'PAID', '--json', '--database-url', t.url]));
        assert.deepEqual([paid.plan.slug, paid.figma, paid.trialDays], ['pro', 'PAID', null]);
        const trial = await run(['plans', 'link', 'basic', '--figma', 'FIRST_USE', '--trial-days', '7', '--database-url', t.url]);
        assert.equal(trial.code, 0, trial.stderr);
        assert.match(trial.stdout, /Linked plan basic to Figma FIRST_USE \(7 days from a Figma user's first sign-in\)/);
        assert.equal((await run(['plans', 'link', 'pro', '--figma', 'BOUGHT', '--database-url', t.url])).code, 2);
        assert.equal((await run(['plans', 'link', 'pro', '--figma', 'FIRST_USE', '--database-url', t.url])).code, 2);
        assert.equal((await run(['plans', 'link', 'pro', '--figma', 'PAID', '--price', 'price_X', '--database-url', t.url])).code, 2);
        const unknown = await run(['plans', 'link', 'platinum', '--figma', 'TRIAL', '--database-url', t.url]);
        assert.equal(unknown.code, 1);
        assert.match(unknown.stderr, /\[unknown_plan\]/);
        const links = await inDb(t, (db) =>
          db.query<{ link: string; plan_slug: string; trial_seconds: number | null }>(
            'SELECT l.link, p.plan_slug, l.trial_seconds FROM public.figma_plan_links l JOIN public.subscription_plans p ON p.id = l.plan_id ORDER BY l.link',
          ),
        );
        assert.deepEqual(links, [{ link: 'FIRST_USE', plan_slug: 'basic', trial_seconds: 7 * 86400 }, { link: 'PAID', plan_slug: 'pro', trial_seconds: null }]);

        assert.deepEqual(json(await run(['status', '--json', '--database-url', t.url])).warnings, []);
        await inDb(t, (db) => db.query('SELECT public.figma_record_api_result(401)'));
        const status = await run(['status', '--database-url', t.url]);
        assert.equal(status.code, 0, status.stderr);
        assert.match(status.stdout, /Warnings:\n  ⚠ figma_token_invalid: Figma refused the personal access token/);
        const verify = await run(['verify', '--database-url', t.url]);
        assert.equal(verify.code, 0, verify.stdout + verify.stderr);
        assert.match(verify.stdout, /⚠ figma_token_invalid: /);
        assert.equal(json(await run(['verify', '--json', '--database-url', t.url])).warnings.length, 1);
        await inDb(t, (db) => db.query('SELECT public.figma_record_api_result(200)'));
        assert.deepEqual(json(await run(['status', '--json', '--database-url', t.url])).warnings, []);
      }));

    test('plans link --license lemonsqueezy|gumroad --product ID [--variant ID] [--devices N] [--seats N] links a store product', () =>
      withTarget(dialect, async (t) => {
        const ls = json(await run(['plans', 'link', 'pro', '--license', 'lemonsqueezy', '--product', '12345', '--variant', '678', '--devices', '3', '--json', '--database-url', t.url]));
        assert.deepEqual([ls.plan.slug, ls.license.provider, ls.license.productId, ls.license.variantId, ls.license.deviceLimit], ['pro', 'lemonsqueezy', '12345', '678', 3]);
        const gr = await run(['plans', 'link', 'enterprise', '--license', 'gumroad', '--product', 'plug-pro_Wsw==', '--seats', '10', '--database-url', t.url]);
        assert.equal(gr.code, 0, gr.stderr);
        assert.match(gr.stdout, /Linked plan enterprise to gumroad product plug-pro_Wsw==, 10 seats per license\./);
        assert.equal((await run(['plans', 'link', 'pro', '--license', 'paddle', '--product', '1', '--database-url', t.url])).code, 2);
        assert.equal((await run(['plans', 'link', 'pro', '--license', 'gumroad', '--database-url', t.url])).code, 2);
        assert.equal((await run(['plans', 'link', 'pro', '--license', 'gumroad', '--product', '1', '--devices', 'many', '--database-url', t.url])).code, 2);
        assert.equal((await run(['plans', 'link', 'pro', '--product', 'prod_1', '--seats', '3', '--database-url', t.url])).code, 2);
        const bad = await run(['plans', 'link', 'pro', '--license', 'gumroad', '--product', '1', '--devices', '0', '--database-url', t.url]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /\[invalid_license_link\]/);
        const unknown = await run(['plans', 'link', 'platinum', '--license', 'gumroad', '--product', '1', '--database-url', t.url]);
        assert.match(unknown.stderr, /\[unknown_plan\]/);
        const rows = await inDb(t, (db) =>
          db.query<{ provider: string; product_id: string; variant_id: string; plan_slug: string; device_limit: number | null; seats: number | null }>(
            'SELECT m.provider, m.product_id, m.variant_id, p.plan_slug, m.device_limit, m.seats FROM public.license_products m JOIN public.subscription_plans p ON p.id = m.plan_id ORDER BY m.provider',
          ),
        );
        assert.deepEqual(rows, [
          { provider: 'gumroad', product_id: 'plug-pro_Wsw==', variant_id: '', plan_slug: 'enterprise', device_limit: null, seats: 10 },
          { provider: 'lemonsqueezy', product_id: '12345', variant_id: '678', plan_slug: 'pro', device_limit: 3, seats: null },
        ]);
        // A Lemon Squeezy subscription variant's renewal interval (the console's MRR; docs/licenses.md#money).
        const biweekly = await run(['plans', 'link', 'pro', '--license', 'lemonsqueezy', '--product', '12345', '--variant', '679', '--interval', 'week', '--interval-count', '2', '--database-url', t.url]);
        assert.equal(biweekly.code, 0, biweekly.stderr);
        assert.match(biweekly.stdout, /Linked plan pro to lemonsqueezy product 12345 variant 679, renewing every 2 weeks\./);
        assert.equal((await run(['plans', 'link', 'pro', '--license', 'lemonsqueezy', '--product', '1', '--interval', 'fortnight', '--database-url', t.url])).code, 2);
        assert.equal((await run(['plans', 'link', 'pro', '--license', 'lemonsqueezy', '--product', '1', '--interval-count', '2', '--database-url', t.url])).code, 2);
        const gumroadInterval = await run(['plans', 'link', 'pro', '--license', 'gumroad', '--product', '1', '--interval', 'month', '--database-url', t.url]);
        assert.equal(gumroadInterval.code, 1);
        assert.match(gumroadInterval.stderr, /\[invalid_license_link\]/);
        const intervals = await inDb(t, (db) => db.query<{ price_interval: string; price_interval_count: number }>(
          "SELECT price_interval, price_interval_count FROM public.license_products WHERE variant_id = '679'"));
        assert.deepEqual(intervals.map((r) => [r.price_interval, r.price_interval_count]), [['week', 2]]);
      }));

    test('plans link <slug> --devices N|none sets the plan\'s own device cap per license', () =>
      withTarget(dialect, async (t) => {
        const set = await run(['plans', 'link', 'pro', '--devices', '2', '--database-url', t.url]);
        assert.equal(set.code, 0, set.stderr);
        assert.match(set.stdout, /Plan pro: at most 2 devices per license\./);
        assert.equal(json(await run(['plans', 'link', 'basic', '--devices', '5', '--json', '--database-url', t.url])).deviceLimit, 5);
        const cleared = await run(['plans', 'link', 'basic', '--devices', 'none', '--database-url', t.url]);
        assert.match(cleared.stdout, /Plan basic: no device cap of its own\./);
        assert.equal((await run(['plans', 'link', 'pro', '--devices', 'two', '--database-url', t.url])).code, 2);
        assert.equal((await run(['plans', 'link', 'pro', '--devices', '2', '--seats', '3', '--database-url', t.url])).code, 2);
        const bad = await run(['plans', 'link', 'pro', '--devices', '1001', '--database-url', t.url]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /\[invalid_license_link\]/);
        assert.match((await run(['plans', 'link', 'platinum', '--devices', '2', '--database-url', t.url])).stderr, /\[unknown_plan\]/);
        const rows = await inDb(t, (db) => db.query('SELECT plan_slug, device_limit FROM public.subscription_plans WHERE device_limit IS NOT NULL'));
        assert.deepEqual(rows, [{ plan_slug: 'pro', device_limit: 2 }]);
      }));

    test('usage <email|id>: plan, today as check_usage answers it, lifetime, last denials, 30 days; unknown user exits 1', () =>
      withTarget(dialect, async (t) => {
        const userId = await inDb(t, async (db) => {
          const user = await createUser(db, 'Ada@Example.com');
          const auth = createPluginAuth(db);
          await auth.subscriptions.assignPlan(user, 'basic'); // 4 resizes a day, 5 layers a batch
          assert.equal((await auth.usage.consume(user, 'resize', { items: 3, idempotencyKey: 'k1' })).allowed, true);
          assert.equal((await auth.usage.consume(user, 'resize', { items: 8 })).reason, 'batch_too_large');
          for (let i = 0; i < 3; i++) assert.equal((await auth.usage.consume(user, 'resize')).allowed, true);
          assert.equal((await auth.usage.consume(user, 'resize')).reason, 'limit_reached');
          assert.equal((await auth.usage.refund(user, 'k1')).refunded, true);
          await auth.usage.consume(user, 'export');
          return user;
        });
        const today = new Date().toISOString().slice(0, 10);
        const report = json(await run(['usage', 'ada@EXAMPLE.com', '--json', '--database-url', t.url]));
        assert.deepEqual(report.user.id, userId);
        assert.deepEqual(report.plan, { slug: 'basic', source: 'manual', status: 'manual', limits: { resizesPerDay: 4, batchSize: 5, isDaily: true } });
        assert.deepEqual(report.today.map(({ resetsAt, ...rest }: { resetsAt: string }) => ({ ...rest, resets: resetsAt !== null })), [
          { action: 'resize', used: 3, usageLimit: 4, remaining: 1, nextAllowed: true, reason: 'ok', resets: true },
          { action: 'export', used: 1, usageLimit: null, remaining: null, nextAllowed: true, reason: 'ok', resets: true },
        ]);
        assert.deepEqual(report.lifetime, [
          { action: 'export', used: 1, allowed: 1, denied: 0, refunded: 0 },
          { action: 'resize', used: 3, allowed: 4, denied: 2, refunded: 1 },
        ]);
        assert.deepEqual(report.recentDenials.map((d: { reason: string; items: number; planSlug: string; used: number }) => [d.reason, d.items, d.planSlug, d.used]), [
          ['limit_reached', 1, 'basic', 4],
          ['batch_too_large', 8, 'basic', 1],
        ]);
        assert.deepEqual(report.last30Days, [
          { date: today, action: 'export', used: 1, allowed: 1, denied: 0, refunded: 0 },
          { date: today, action: 'resize', used: 3, allowed: 4, denied: 2, refunded: 1 },
        ]);

        const text = await run(['usage', userId, '--denials', '1', '--database-url', t.url]);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, /^User:  Ada@Example\.com \(/);
        assert.match(text.stdout, /\nPlan:  basic \(manual, subscription manual\): 4 resizes per day, batch size 5\n/);
        assert.match(text.stdout, /\nresize\s+3\s+4\s+1\s+20\d\d-\S+\s+allowed\n/);
        assert.match(text.stdout, /limit_reached/);
        assert.doesNotMatch(text.stdout, /batch_too_large/, '--denials 1 shows only the newest');

        const unknown = await run(['usage', 'nobody@example.com', '--database-url', t.url]);
        assert.equal(unknown.code, 1);
        assert.match(unknown.stderr, /^figma-plugin-auth-db usage: error \[unknown_user\]: .*nobody@example\.com/);
      }));

    test('tokens list / revoke / revoke-all by id or email, never printing a token or its digest', () =>
      withTarget(dialect, async (t) => {
        const { userId, issued } = await inDb(t, async (db) => {
          const user = await createUser(db, 'grace@example.com');
          const tokens = createPluginAuth(db, { tokenSecret: TOKEN_SECRET }).tokens;
          const laptop = await tokens.issue(user, { deviceName: 'laptop' });
          const phone = await tokens.issue(user, { deviceName: 'phone' });
          return { userId: user, issued: [laptop, phone] };
        });
        const secrets = (await Promise.all(issued.map(async (i) => [i.token, await sha256Hex(i.token), ...i.token.split('.').filter((part) => part.length > 20)]))).flat();
        const noSecrets = (r: Run) => {
          for (const s of secrets) assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), `token material printed:\n${r.stdout}${r.stderr}`);
        };

        const listed = await run(['tokens', 'list', 'grace@example.com', '--json', '--database-url', t.url]);
        noSecrets(listed);
        const list = json(listed);
        assert.equal(list.user.id, userId);
        assert.deepEqual(list.tokens.map((k: { tokenId: string; deviceName: string; status: string }) => [k.tokenId, k.deviceName, k.status]).sort(),
          issued.map((i, n) => [i.tokenId, n === 0 ? 'laptop' : 'phone', 'active']).sort());
        assert.deepEqual(Object.keys(list.tokens[0]).sort(), ['createdAt', 'deviceName', 'expiresAt', 'lastUsedAt', 'revokedAt', 'revokedReason', 'status', 'tokenId']);

        const revoked = await run(['tokens', 'revoke', issued[0]!.tokenId, '--reason', 'lost laptop', '--json', '--database-url', t.url]);
        noSecrets(revoked);
        assert.deepEqual(json(revoked), { tokenId: issued[0]!.tokenId, revoked: true });
        const all = await run(['tokens', 'revoke-all', userId, '--database-url', t.url]);
        noSecrets(all);
        assert.equal(all.code, 0, all.stderr);
        assert.match(all.stdout, /^Revoked 1 active token of grace@example\.com /);

        const after = await run(['tokens', 'list', 'grace@example.com', '--database-url', t.url]);
        noSecrets(after);
        assert.equal(after.code, 0, after.stderr);
        assert.match(after.stdout, new RegExp(`\\n${issued[0]!.tokenId}\\s+laptop\\s+revoked\\s.*lost laptop\\n`));
        assert.match(after.stdout, new RegExp(`\\n${issued[1]!.tokenId}\\s+phone\\s+revoked\\s.*revoked_by_operator`));
        const rows = await inDb(t, (db) =>
          db.query<{ id: string; revoked_reason: string }>('SELECT id, revoked_reason FROM public.plugin_tokens WHERE revoked_at IS NOT NULL ORDER BY created_at'),
        );
        assert.deepEqual(rows.map((r) => r.revoked_reason).sort(), ['lost laptop', 'revoked_by_operator']);
      }));

    test('diagram: a Mermaid erDiagram with every live table, column type, key and foreign key', () =>
      withTarget(dialect, async (t) => {
        const diagram = await run(['diagram', '--database-url', t.url]);
        assert.equal(diagram.code, 0, diagram.stderr);
        assert.match(diagram.stdout, /^erDiagram\n/);
        const catalog = await inDb(t, (db) => readCatalog(db));
        let relationships = 0;
        for (const table of catalog.tables) {
          assert.match(diagram.stdout, new RegExp(`\\n  ${table.name} \\{\\n`), `table ${table.name}`);
          for (const fk of foreignKeys(table)) {
            relationships++;
            assert.match(diagram.stdout, new RegExp(`\\n  ${fk.references} \\|[|o]--[o|][|{] ${table.name} : "${fk.columns.join(', ')}"`));
          }
        }
        assert.ok(relationships >= 6, `${relationships} relationships`);
        assert.match(diagram.stdout, /\n    uuid user_id FK, UK\n/, 'user_subscriptions.user_id is a unique foreign key');
        assert.match(diagram.stdout, /\n  users \|\|--o\| user_subscriptions : "user_id"/);
        assert.match(diagram.stdout, /\n    timestamptz expires_at\n/);
      }));

    test('no password from DATABASE_URL or --database-url ever appears, success or failure', () =>
      withTarget(dialect, async (t) => {
        // As subprocesses of the package bin: nothing the process prints may hold it, not only main's output.
        // The real server may use trust auth (any password is accepted) or a real password.
        const real = dialect === 'postgres' ? new URL(t.url) : undefined;
        if (real && !real.password) real.password = 'Sup3r-Secret-Pa55';
        const secret = real?.password ?? 'Sup3r-Secret-Pa55';
        const good = real?.toString();
        const refused = `postgres://postgres:${secret}@127.0.0.1:1/nowhere`;
        const runs: Run[] = [
          await bin(['status'], { env: { DATABASE_URL: refused } }),
          await bin(['verify', '--database-url', refused]),
          await bin(['setup'], { env: { DATABASE_URL: refused } }),
          await bin(['setup', '--production', '--database-url', refused]),
          await bin(['status', '--database-url', `mysql://root:${secret}@host/db`]),
          await bin(['plans', 'link', 'pro', '--price', 'price_x', `--database-url=postgres://u:${secret}@127.0.0.1:1/x`]),
        ];
        for (const r of runs) assert.equal(r.code, 1, r.stderr);
        assert.match(runs[0]!.stderr, /\[connection_failed\].*postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/nowhere/);
        if (good) {
          runs.push(await bin(['status'], { env: { DATABASE_URL: good } }), await bin(['setup', '--database-url', good]));
          assert.equal(runs.at(-1)!.code, 0, runs.at(-1)!.stderr);
          assert.match(runs.at(-2)!.stdout, /Target:\s+PostgreSQL at postgres:\/\/postgres:\*\*\*@/);
        }
        for (const r of runs) {
          assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), `secret printed:\n${r.stdout}\n${r.stderr}`);
        }
      }));
  });
}

describe('cli (no database)', () => {
  test('the package bin, as a subprocess: exit codes 0, 1 and 2, each on its stream', async () => {
    const help = await bin(['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: figma-plugin-auth-db /m);
    assert.equal(help.stderr, '');
    const failed = await bin(['status', '--database-url', 'postgres://u:Sup3r-Secret@127.0.0.1:1/db']);
    assert.equal(failed.code, 1, failed.stderr);
    assert.equal(failed.stdout, '');
    assert.match(failed.stderr, /^figma-plugin-auth-db status: error \[connection_failed\]: .*postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/db/);
    const usage = await bin(['frobnicate']);
    assert.equal(usage.code, 2);
    assert.equal(usage.stdout, '');
    assert.match(usage.stderr, /unknown command "frobnicate"/);
  });

  test('export supabase writes supabase/migrations/<UTC timestamp>_figma_plugin_auth.sql: the setup script without the numbered files', async () => {
    const dir = tempDir();
    const first = await run(['export', 'supabase', dir, '--json']);
    const result = json<{ path: string; written: boolean }>(first);
    assert.equal(result.written, true);
    const files = readdirSync(join(dir, 'supabase', 'migrations'));
    assert.equal(files.length, 1);
    assert.match(files[0]!, /^20\d{12}_figma_plugin_auth\.sql$/);
    assert.equal(result.path, join(dir, 'supabase', 'migrations', files[0]!));
    assert.equal(readFileSync(result.path, 'utf8'), buildExportScript());
    // Same schema again: nothing new to push.
    const again = await run(['export', 'supabase'], { cwd: dir });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already holds schema version/);
    assert.equal(readdirSync(join(dir, 'supabase', 'migrations')).length, 1);
  });

  test('unknown commands, unknown flags and missing arguments: usage on stderr, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [[], /no command given/],
      [['status', '--verbose'], /Unknown option '--verbose'/],
      [['setup', '--json'], /Unknown option '--json'/],
      [['plans', 'link'], /missing <slug>/],
      [['plans', 'extra'], /unexpected argument "extra"/],
      [['export'], /"export" needs a subcommand: export supabase/],
      [['tokens'], /"tokens" needs a subcommand: tokens list, tokens revoke, tokens revoke-all/],
      [['usage'], /missing <user>/],
      [['status', '--database-url'], /argument missing/],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, message, args.join(' '));
      assert.match(r.stderr, /Usage: figma-plugin-auth-db /);
    }
  });

  test('--help everywhere: the command list, and each command with options and examples', async () => {
    const main = await run(['--help']);
    assert.equal(main.code, 0);
    for (const name of ['setup', 'verify', 'status', 'plans', 'plans link <slug>', 'usage <user>', 'tokens list <user>', 'tokens revoke <token-id>', 'tokens revoke-all <user>', 'diagram', 'export supabase [dir]']) {
      assert.match(main.stdout, new RegExp(`\\n  ${name.replace(/[[\]]/g, '\\$&')} `), name);
    }
    assert.match(main.stdout, /Exit codes: 0 ok, 1 failed.*2 usage error/);
    for (const args of [['setup', '--help'], ['verify', '-h'], ['help', 'status'], ['plans', 'link', '--help'], ['export', 'supabase', '--help'], ['diagram', '--help']]) {
      const r = await run(args);
      assert.equal(r.code, 0, args.join(' '));
      assert.match(r.stdout, /\nUsage: figma-plugin-auth-db /, args.join(' '));
      assert.match(r.stdout, /\nExamples:\n  figma-plugin-auth-db /, args.join(' '));
    }
    const setupHelp = await run(['setup', '--help']);
    assert.match(setupHelp.stdout, /--dry-run/);
    assert.match(setupHelp.stdout, /--production/);
  });

  test('a command group answers help like a command: `tokens --help` and `help tokens` list its commands, exit 0', async () => {
    for (const args of [['tokens', '--help'], ['help', 'tokens'], ['tokens', '-h']]) {
      const r = await run(args);
      assert.deepEqual([r.code, r.stderr], [0, ''], args.join(' '));
      for (const name of ['tokens list <user>', 'tokens revoke <token-id>', 'tokens revoke-all <user>']) assert.match(r.stdout, new RegExp(`\n  ${name} `), `${args.join(' ')}: ${name}`);
    }
    // Without --help a group still needs its subcommand (a usage error), and an unknown word stays unknown.
    assert.equal((await run(['tokens'])).code, 2);
    const unknown = await run(['help', 'nonsense']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "nonsense"/);
  });

  test('--version prints the package name and version, exit 0', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await run(['--version']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, `figma-plugin-auth-db ${pkg.version}\n`, '']);
  });

  test('keygen: a private JWK on stdout that createPluginAuth takes, the public JWKS on stderr; a bad --alg is a usage error', async () => {
    for (const alg of ['ES256', 'EdDSA']) {
      const r = await run(['keygen', '--alg', alg]);
      assert.equal(r.code, 0, r.stderr);
      const jwk = JSON.parse(r.stdout) as { alg: string; d?: string; kid: string };
      assert.equal(jwk.alg, alg);
      assert.equal(typeof jwk.d, 'string');
      const jwks = await createPluginAuth({} as Database, { entitlementSigningKey: r.stdout.trim() }).entitlements.jwks();
      assert.equal(jwks.keys[0]!.kid, jwk.kid);
      assert.match(r.stderr, /public JWKS/);
      assert.ok(!r.stderr.includes(jwk.d!), 'the private part only on stdout');
    }
    const bad = await run(['keygen', '--alg', 'RS256']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--alg must be ES256 or EdDSA/);
  });
});
