// `figma-plugin-auth-db stripe reconcile` through the CLI's entry, on both databases, against the
// Stripe stand-in: the dry run reports and writes nothing, the run repairs, --user and --customer
// scope it, --json prints the report; the key only from STRIPE_SECRET_KEY and never printed.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIALECTS, createUser, dropDatabase, freshDatabase, type Dialect } from './helpers/databases.ts';
import { copyDataDir } from './helpers/pglite.ts';
import { DAY, PRICES, T0, linkPrices, subscription } from './helpers/stripe.ts';
import { STANDIN_SECRET_KEY, startStripeStandin, type StripeStandin } from './helpers/stripe-standin.ts';
import { main } from '../src/cli/cli.ts';
import { openDatabase, type Database } from '../src/core/db.ts';
import { createPluginAuth } from '../src/auth.ts';

const scratch = mkdtempSync(join(tmpdir(), 'fpa-cli-stripe-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

async function run(args: string[], env: Record<string, string>) {
  let stdout = '';
  let stderr = '';
  const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t), env: { PATH: process.env.PATH ?? '', ...env }, cwd: scratch };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

/** A set-up database the CLI opens by URL; `open` for the test's own reads (closed before the CLI runs on PGlite). */
async function target(dialect: Dialect): Promise<{ url: string; open: () => Promise<Database>; drop: () => Promise<void> }> {
  if (dialect === 'pglite') {
    const dir = mkdtempSync(join(scratch, 'pglite-'));
    await copyDataDir('setup', dir);
    return { url: `pglite:${dir}`, open: () => openDatabase(`pglite:${dir}`, { share: false }), drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const t = await freshDatabase('postgres', { max: 1 });
  await t.db.close();
  return { url: t.url!, open: () => openDatabase(t.url!, { max: 2 }), drop: () => dropDatabase(t.name!) };
}

async function withDb<T>(url: { open: () => Promise<Database> }, fn: (db: Database) => Promise<T>): Promise<T> {
  const db = await url.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

const statuses = (db: Database) =>
  db.query<{ email: string; status: string; plan_slug: string }>(
    `SELECT u.email, s.status, p.plan_slug FROM public.user_subscriptions s JOIN public.users u ON u.id = s.user_id
       JOIN public.subscription_plans p ON p.id = s.plan_id ORDER BY u.email`,
  );

for (const dialect of DIALECTS) {
  describe(`cli stripe reconcile [${dialect}]`, () => {
    test('dry run, run, scoped runs and --json; the key from the environment only, never printed', async () => {
      const t = await target(dialect);
      const standin: StripeStandin = await startStripeStandin();
      try {
        const period = { periodStart: T0, periodEnd: T0 + 30 * DAY };
        const ids = await withDb(t, async (db) => {
          await linkPrices(db);
          const ada = await createUser(db, 'ada@example.com');
          const bob = await createUser(db, 'bob@example.com');
          const auth = createPluginAuth(db);
          // Webhooks delivered: both incomplete. Stripe now: ada active on pro, bob canceled.
          for (const [id, userId] of [['sub_ada', ada], ['sub_bob', bob]] as const) {
            await auth.subscriptions.syncFromStripe(subscription({ ...period, id, customer: `cus_${id.slice(4)}`, userId, status: 'incomplete' }) as never, { eventCreated: T0 });
          }
          return { ada, bob };
        });
        const put = (s: Record<string, any>, created: number) => {
          s.created = created;
          standin.subscriptions.set(s.id, s);
        };
        put(subscription({ ...period, id: 'sub_ada', customer: 'cus_ada', userId: ids.ada, priceId: PRICES.pro }), T0 + 2);
        put(subscription({ ...period, id: 'sub_bob', customer: 'cus_bob', userId: ids.bob, status: 'canceled', canceledAt: T0 + 50 }), T0 + 1);
        const env = { STRIPE_SECRET_KEY: STANDIN_SECRET_KEY, STRIPE_API_BASE_URL: standin.url };

        const dry = await run(['stripe', 'reconcile', '--dry-run', '--database-url', t.url], env);
        assert.equal(dry.code, 0, dry.stderr);
        assert.match(dry.stdout, /^Dry run: nothing written\. Read 2 Stripe subscriptions in 1 page: 0 in sync, 2 different, 2 would repair\./);
        assert.match(dry.stdout, /sub_ada {2}changed {2}applied \(would apply\) {2}customer cus_ada {2}user [0-9a-f-]{36}\n {2}plan: basic -> pro\n {2}status: incomplete -> active\n {2}priceId: price_basic_monthly -> price_pro_monthly/);
        assert.deepEqual((await withDb(t, statuses)).map((r) => r.status), ['incomplete', 'incomplete'], 'dry run: nothing written');

        const scoped = await run(['stripe', 'reconcile', '--user', 'bob@example.com', '--json', '--database-url', t.url], env);
        assert.equal(scoped.code, 0, scoped.stderr);
        const report = JSON.parse(scoped.stdout);
        assert.deepEqual(report.scope, { userId: ids.bob });
        assert.deepEqual(report.differences.map((d: { subscriptionId: string; outcome: string }) => [d.subscriptionId, d.outcome]), [['sub_bob', 'applied']]);
        assert.deepEqual(await withDb(t, statuses), [
          { email: 'ada@example.com', status: 'incomplete', plan_slug: 'basic' },
          { email: 'bob@example.com', status: 'canceled', plan_slug: 'basic' },
        ]);

        const byCustomer = await run(['stripe', 'reconcile', '--customer', 'cus_ada', '--database-url', t.url], env);
        assert.equal(byCustomer.code, 0, byCustomer.stderr);
        assert.match(byCustomer.stdout, /Read 1 Stripe subscription in 1 page: 0 in sync, 1 different, 1 repaired\./);
        assert.deepEqual((await withDb(t, statuses))[0], { email: 'ada@example.com', status: 'active', plan_slug: 'pro' });

        const clean = await run(['stripe', 'reconcile', '--database-url', t.url], env);
        assert.match(clean.stdout, /Read 2 Stripe subscriptions in 1 page: 2 in sync, 0 different, 0 repaired\./);

        // No key: a usage error. A wrong key: stripe_auth_failed, and the key is never printed.
        const noKey = await run(['stripe', 'reconcile', '--database-url', t.url], { STRIPE_API_BASE_URL: standin.url });
        assert.equal(noKey.code, 2);
        assert.match(noKey.stderr, /STRIPE_SECRET_KEY/);
        const wrong = 'sk_test_notthekey000000000000';
        const refused = await run(['stripe', 'reconcile', '--database-url', t.url], { STRIPE_SECRET_KEY: wrong, STRIPE_API_BASE_URL: standin.url });
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, /stripe_auth_failed/);
        for (const out of [dry, scoped, byCustomer, clean, noKey, refused]) {
          assert.ok(!`${out.stdout}${out.stderr}`.includes(STANDIN_SECRET_KEY) && !`${out.stdout}${out.stderr}`.includes(wrong));
        }
        const bad = await run(['stripe', 'reconcile', '--customer', "cus_x' OR 1=1", '--database-url', t.url], env);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /invalid_stripe_id/);
        const help = await run(['stripe', 'reconcile', '--help'], {});
        assert.match(help.stdout, /--dry-run/);
        assert.match(help.stdout, /--customer/);
      } finally {
        await standin.close();
        await t.drop();
      }
    });
  });
}
