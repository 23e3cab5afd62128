import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { loadExpectedSchema, readCatalog } from '../src/schema/catalog.ts';
import { lintCatalog } from '../src/schema/lint.ts';
import { applySchema } from '../src/schema/setup.ts';
import { OWNER_ONLY_FUNCTIONS } from '../src/schema/migrations.ts';

const expected = loadExpectedSchema();
// Ours: every table and function the schema creates (on a fresh database setup creates the host
// tables too, and locks them down like its own).
const OURS = {
  tables: expected.tables.map((t) => t.name),
  functions: [...new Set(expected.functions.map((f) => f.name))],
  ownerOnly: [...OWNER_ONLY_FUNCTIONS],
};

const SUPABASE_ROLES = `DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN BYPASSRLS; END IF;
END $$`;

for (const dialect of DIALECTS) {
  describe(`security lint [${dialect}]`, () => {
    test('after setup the advisor finds nothing: RLS everywhere, fixed search_path, no public execute, FKs indexed, no duplicate index', () =>
      withDatabase(dialect, async ({ db }) => {
        const catalog = await readCatalog(db);
        assert.deepEqual(lintCatalog(catalog, OURS), []);
        assert.ok(OURS.tables.length >= 7 && OURS.functions.length >= 5);
      }));

    test('the lint itself catches each problem, naming the object', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(`
          ALTER TABLE public.plugin_usage DISABLE ROW LEVEL SECURITY;
          GRANT SELECT ON public.plugin_tokens TO PUBLIC;
          ALTER FUNCTION public.subscription_grants_access(varchar, timestamptz, timestamptz) RESET search_path;
          GRANT EXECUTE ON FUNCTION public.increment_daily_usage(uuid, varchar, date) TO PUBLIC;
          DROP INDEX public.idx_plugin_tokens_user_id;
          DROP INDEX public.idx_plugin_tokens_user_device; -- (user_id, device_id) covers the foreign key too (sql/025)
          CREATE INDEX idx_twin ON public.plugin_usage (created_at);`);
        const findings = lintCatalog(await readCatalog(db), OURS).map((f) => `${f.rule} ${f.object}`);
        assert.deepEqual(findings.sort(), [
          'duplicate_index plugin_usage.idx_twin',
          'function_executable_by_public_role function increment_daily_usage(p_user_id uuid, p_action character varying, p_date date)',
          'function_search_path_mutable function subscription_grants_access(p_status character varying, p_current_period_end timestamp with time zone, p_at timestamp with time zone)',
          'rls_disabled table plugin_usage',
          'table_granted_to_public_role table plugin_tokens',
          'unindexed_foreign_key plugin_tokens.plugin_tokens_user_id_fkey',
        ].sort());
      }));

    test('a re-run takes back grants added by hand and re-enables RLS, and otherwise changes nothing', () =>
      withDatabase(dialect, async ({ db }) => {
        const before = await dumpDatabase(db);
        await db.exec(`
          ALTER TABLE public.plugin_usage DISABLE ROW LEVEL SECURITY;
          GRANT ALL ON public.daily_usage_summary TO PUBLIC;
          GRANT EXECUTE ON FUNCTION public.increment_daily_usage(uuid, varchar, date) TO PUBLIC;`);
        assert.notDeepEqual(await dumpDatabase(db), before);
        await applySchema(db);
        assert.deepEqual(await dumpDatabase(db), before);
        await applySchema(db);
        assert.deepEqual(await dumpDatabase(db), before);
      }));

    test('with Supabase roles: anon and authenticated get nothing, service_role everything it needs', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(SUPABASE_ROLES);
        // Supabase grants new objects in public to its API roles by default: model that, then set up.
        await db.exec(`
          ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
          ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
          ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
          GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;`);
        await applySchema(db);
        assert.deepEqual(lintCatalog(await readCatalog(db), OURS), []);
        // Each probe runs in a transaction that is always rolled back (a failed statement aborts it).
        const can = async (role: string, sql: string): Promise<string | undefined> => {
          const done = new Error('probe done');
          try {
            await db.transaction(async (tx) => {
              await tx.exec(`SET LOCAL ROLE ${role}`);
              await tx.query(sql);
              throw done;
            });
          } catch (error) {
            return error === done ? 'ok' : (error as { code?: string }).code;
          }
          return 'not reached';
        };
        for (const role of ['anon', 'authenticated']) {
          for (const table of ['users', 'plugin_tokens', 'plugin_usage', 'daily_usage_summary', 'user_subscriptions', 'subscription_plans']) {
            assert.equal(await can(role, `SELECT 1 FROM public.${table}`), '42501', `${role} reads ${table}`);
          }
          assert.equal(
            await can(role, "SELECT public.increment_daily_usage(gen_random_uuid(), 'resize')"),
            '42501',
            `${role} executes increment_daily_usage`,
          );
          assert.equal(await can(role, "SELECT public.plugin_auth_catalog()"), '42501');
        }
        const [{ id }] = (await db.query<{ id: string }>(
          "INSERT INTO public.users (email) VALUES ('svc@example.com') RETURNING id",
        )) as [{ id: string }];
        assert.equal(await can('service_role', `SELECT public.increment_daily_usage('${id}', 'resize')`), 'ok');
        assert.equal(await can('service_role', 'SELECT count(*) FROM public.daily_usage_summary'), 'ok');
        assert.equal(await can('service_role', 'SELECT public.plugin_auth_catalog()'), 'ok');
      }, { setup: false }));
  });
}
