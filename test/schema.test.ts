import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { readCatalog, type CatalogTable } from '../src/schema/catalog.ts';
import { buildMermaidDiagram } from '../src/schema/diagram.ts';

const TS = 'timestamp with time zone';

// The seed's DDL for subscription_plans, column by column: name, type, default, not null.
const SUBSCRIPTION_PLANS: [string, string, string | null, boolean][] = [
  ['id', 'uuid', 'gen_random_uuid()', true],
  ['plan_slug', 'character varying(50)', null, true],
  ['stripe_product_id', 'character varying(255)', null, false],
  ['stripe_price_id', 'character varying(255)', null, false],
  ['name', 'character varying(255)', null, true],
  ['description', 'text', null, false],
  ['price_monthly', 'integer', '0', false],
  ['limits', 'jsonb', `'{"isDaily": false, "batchSize": 1, "resizesPerDay": 2}'::jsonb`, true],
  ['features', 'text[]', null, false],
  ['is_active', 'boolean', 'true', false],
  ['created_at', TS, 'now()', false],
  ['updated_at', TS, 'now()', false],
];
// The one column added since (sql/018): nullable, at the end, so every seed column keeps its place.
// sql/018's device cap, then sql/027's lease policy (docs/licenses.md#device-leases): all nullable, no default.
const ADDED_TO_SUBSCRIPTION_PLANS: [string, string, string | null, boolean][] = [
  ['device_limit', 'integer', null, false],
  ['heartbeat_window', 'integer', null, false],
  ['overage_allowance', 'numeric(4,2)', null, false],
  ['floating', 'boolean', null, false],
];

const SEED_INDEXES = [
  ['plugin_tokens', 'idx_plugin_tokens_user_id'],
  ['plugin_tokens', 'idx_plugin_tokens_token'],
  ['plugin_usage', 'idx_plugin_usage_user_id'],
  ['plugin_usage', 'idx_plugin_usage_created_at'],
  ['daily_usage_summary', 'idx_daily_usage_user_action_date'],
  ['user_subscriptions', 'idx_user_subscriptions_user_id'],
  ['user_subscriptions', 'idx_user_subscriptions_stripe_customer'],
  ['user_subscriptions', 'idx_user_subscriptions_stripe_subscription'],
];

function table(tables: CatalogTable[], name: string): CatalogTable {
  const found = tables.find((t) => t.name === name);
  assert.ok(found, `table ${name} exists`);
  return found;
}

for (const dialect of DIALECTS) {
  describe(`schema [${dialect}]`, () => {
    test('subscription_plans has exactly the seed columns, types and defaults, then only sql/018\'s nullable device_limit and sql/027\'s nullable lease policy', () =>
      withDatabase(dialect, async ({ db }) => {
        const { tables } = await readCatalog(db);
        const columns = table(tables, 'subscription_plans').columns.map((c) => [c.name, c.type, c.default, c.notNull]);
        assert.deepEqual(columns, [...SUBSCRIPTION_PLANS, ...ADDED_TO_SUBSCRIPTION_PLANS]);
      }));

    test('all seven tables exist, and every seed index by name on its table', () =>
      withDatabase(dialect, async ({ db }) => {
        const { tables } = await readCatalog(db);
        for (const name of ['users', 'api_keys', 'subscription_plans', 'plugin_tokens', 'plugin_usage', 'daily_usage_summary', 'user_subscriptions']) {
          table(tables, name);
        }
        for (const [tableName, index] of SEED_INDEXES) {
          assert.ok(table(tables, tableName!).indexes.some((i) => i.name === index), `${index} on ${tableName}`);
        }
        const tokenIndex = table(tables, 'plugin_tokens').indexes.find((i) => i.name === 'idx_plugin_tokens_token');
        assert.match(tokenIndex!.definition, /\(token_hash\)/);
        const daily = table(tables, 'daily_usage_summary');
        assert.ok(daily.constraints.some((c) => c.type === 'u' && /UNIQUE \(user_id, action, usage_date\)/.test(c.definition)));
      }));

    test('every foreign key cascades on delete and has an index leading with its column', () =>
      withDatabase(dialect, async ({ db }) => {
        const { tables } = await readCatalog(db);
        let foreignKeys = 0;
        for (const t of tables) {
          for (const fk of t.constraints.filter((c) => c.type === 'f')) {
            foreignKeys++;
            assert.match(fk.definition, /ON DELETE CASCADE/, `${t.name}.${fk.name}`);
            const column = /^FOREIGN KEY \((\w+)\)/.exec(fk.definition)![1]!;
            const indexed = t.indexes.some((i) => new RegExp(`USING btree \\(${column}[,)]`).test(i.definition));
            assert.ok(indexed, `foreign key column ${t.name}.${column} has an index`);
          }
        }
        assert.ok(foreignKeys >= 6, `found ${foreignKeys} foreign keys`);
      }));

    test('the catalog gives key columns as data: a foreign key, a primary key, a partial unique index', () =>
      withDatabase(dialect, async ({ db }) => {
        const constraint = (tables: CatalogTable[], t: string, name: string) => {
          const found = table(tables, t).constraints.find((c) => c.name === name);
          assert.ok(found, `constraint ${t}.${name}`);
          return found;
        };
        const index = (tables: CatalogTable[], t: string, name: string) => {
          const found = table(tables, t).indexes.find((i) => i.name === name);
          assert.ok(found, `index ${t}.${name}`);
          return found;
        };
        const { tables } = await readCatalog(db);
        const fk = constraint(tables, 'user_subscriptions', 'user_subscriptions_plan_id_fkey');
        assert.deepEqual([fk.type, fk.columns, fk.references], ['f', ['plan_id'], { table: 'subscription_plans', columns: ['id'] }]);
        // Key order is the constraint's, not the table's column order.
        const pk = constraint(tables, 'license_products', 'license_products_pkey');
        assert.deepEqual([pk.type, pk.columns, pk.references], ['p', ['provider', 'product_id', 'variant_id'], null]);
        const partial = index(tables, 'plugin_usage', 'idx_plugin_usage_idempotency');
        assert.deepEqual([partial.columns, partial.unique, partial.predicate], [['user_id', 'idempotency_key'], true, 'idempotency_key IS NOT NULL']);
        // INCLUDE columns are not key columns; a plain index has no predicate.
        const covering = index(tables, 'plugin_tokens', 'idx_plugin_tokens_live');
        assert.deepEqual([covering.columns, covering.unique, covering.predicate], [['expires_at'], false, 'revoked_at IS NULL']);
        assert.deepEqual(index(tables, 'plugin_tokens', 'idx_plugin_tokens_token').predicate, null);

        // An expression is null among the key columns; a foreign key's columns keep their pairs' order.
        await db.exec(`CREATE INDEX catalog_probe_expr ON public.users (created_at, lower(email));
          CREATE TABLE public.catalog_probe (a INT, b INT, PRIMARY KEY (b, a));
          CREATE TABLE public.catalog_probe_child (x INT, y INT, FOREIGN KEY (y, x) REFERENCES public.catalog_probe (a, b));`);
        const after = (await readCatalog(db)).tables;
        assert.deepEqual(index(after, 'users', 'catalog_probe_expr').columns, ['created_at', null]);
        assert.deepEqual(constraint(after, 'catalog_probe', 'catalog_probe_pkey').columns, ['b', 'a']);
        const pair = table(after, 'catalog_probe_child').constraints.find((c) => c.type === 'f');
        assert.deepEqual([pair?.columns, pair?.references], [['y', 'x'], { table: 'catalog_probe', columns: ['a', 'b'] }]);

        // A catalog from before sql/022 has no key columns: the diagram asks for setup instead of guessing.
        const before = tables.map((t) => ({
          ...t,
          constraints: t.constraints.map(({ columns: _c, references: _r, ...c }) => c),
          indexes: t.indexes.map(({ columns: _c, unique: _u, predicate: _p, ...i }) => i),
        }));
        assert.throws(() => buildMermaidDiagram({ tables: before }), { code: 'not_set_up' });
      }));

    test('every timestamp column is timestamptz; created_at and updated_at default to now()', () =>
      withDatabase(dialect, async ({ db }) => {
        const { tables } = await readCatalog(db);
        for (const t of tables) {
          for (const c of t.columns) {
            if (/_at$|_end$|_start$|^stripe_event_created$/.test(c.name) && c.name !== 'cancel_at_period_end') {
              assert.equal(c.type, TS, `${t.name}.${c.name}`);
            }
            if (c.name === 'created_at' || c.name === 'updated_at') assert.equal(c.default, 'now()', `${t.name}.${c.name}`);
          }
        }
      }));

    test('the four plans are seeded with the seed limits', () =>
      withDatabase(dialect, async ({ db }) => {
        const plans = await db.query<{ plan_slug: string; limits: unknown; price_monthly: number }>(
          'SELECT plan_slug, limits, price_monthly FROM public.subscription_plans ORDER BY price_monthly',
        );
        assert.deepEqual(
          plans.map((p) => [p.plan_slug, p.limits]),
          [
            ['free', { resizesPerDay: 2, batchSize: 1, isDaily: false }],
            ['basic', { resizesPerDay: 4, batchSize: 5, isDaily: true }],
            ['pro', { resizesPerDay: 6, batchSize: 20, isDaily: true }],
            ['enterprise', { resizesPerDay: -1, batchSize: -1, isDaily: true }],
          ],
        );
        assert.equal(plans[0]!.price_monthly, 0);
        assert.ok(plans.slice(1).every((p, i) => p.price_monthly > plans[i]!.price_monthly), 'prices rise with the plan');
      }));

    test('malformed limits are refused by the CHECK constraint', () =>
      withDatabase(dialect, async ({ db }) => {
        const bad = [
          '{"resizesPerDay": "2", "batchSize": 1, "isDaily": false}',
          '{"resizesPerDay": 2.5, "batchSize": 1, "isDaily": false}',
          '{"resizesPerDay": -2, "batchSize": 1, "isDaily": false}',
          '{"resizesPerDay": 2, "batchSize": 0, "isDaily": false}',
          '{"resizesPerDay": 2, "batchSize": 1, "isDaily": "yes"}',
          '{"resizesPerDay": 2, "batchSize": 1}',
          '[1, 2, 3]',
        ];
        for (const limits of bad) {
          await assert.rejects(
            db.query(`INSERT INTO public.subscription_plans (plan_slug, name, limits) VALUES ('bad', 'Bad', $1::jsonb)`, [limits]),
            (e: { code?: string }) => e.code === '23514',
            limits,
          );
        }
        const count = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.subscription_plans');
        assert.equal(count[0]!.n, 4);
      }));
  });
}
