// Issue 11, items 1, 2, 8, 9, 10: shadowing objects and CREATE rights, the security helpers and
// service_role's privileges, host tables left alone, setup restoring what it owns, and verify
// agreeing with setup. Tests that need roles besides the superuser run on the real server only and
// say so in their name.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { DIALECTS, createUser, withDatabase, type TestDatabase } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { loadExpectedSchema, readCatalog } from '../src/schema/catalog.ts';
import { verifyCatalog } from '../src/cli/verify-catalog.ts';
import type { Database } from '../src/core/db.ts';
import { buildSetupScript, CORRECTED_FILES, loadMigrations, OWNER_ONLY_FUNCTIONS } from '../src/schema/migrations.ts';
import { applySchema } from '../src/schema/setup.ts';

const SUPABASE_ROLES = `DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN BYPASSRLS; END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$`;

/** Setup must refuse with `code`, naming every pattern, and leave the database exactly as it was. */
async function refuses(db: Database, code: string, patterns: RegExp[]): Promise<void> {
  const before = await dumpDatabase(db);
  await assert.rejects(applySchema(db), (e: Error & { code?: string }) => {
    assert.equal(e.code, code, e.message);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
  assert.deepEqual(await dumpDatabase(db), before, 'nothing changed');
}

/** What verify reports as differences, one line each. */
async function verifyLines(db: Database): Promise<string[]> {
  return verifyCatalog(await readCatalog(db)).differences.map((d) => `${d.problem}: ${d.object}${d.actual ? ` (${d.actual})` : ''}`);
}

const tableCount = async (db: Database) =>
  (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_catalog.pg_tables WHERE schemaname = 'public'"))[0]!.n;

/**
 * One table's definition as the catalog holds it, in the server's own words (format_type,
 * pg_get_expr, pg_get_constraintdef, pg_get_indexdef, pg_get_triggerdef): what `pg_dump -s -t`
 * prints, read by any client, whatever the versions of client and server.
 */
async function tableDefinition(db: Pick<Database, 'query'>, table: string): Promise<Record<string, unknown>> {
  const [row] = await db.query<Record<string, unknown>>(
    `SELECT c.relkind::text AS kind, c.relpersistence::text AS persistence, c.relowner::regrole::text AS owner,
            c.relacl::text[] AS acl, c.relrowsecurity AS rls, c.relforcerowsecurity AS force_rls,
            c.relreplident::text AS replica_identity, c.reloptions AS options,
            pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
            (SELECT pg_catalog.array_agg(pg_catalog.format('%s %s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s comment=%s',
                      a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                      a.attidentity, a.attgenerated, a.attcollation::regcollation, a.attacl, pg_catalog.col_description(c.oid, a.attnum)) ORDER BY a.attnum)
               FROM pg_catalog.pg_attribute AS a
               LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            (SELECT pg_catalog.array_agg(k.conname::text || ' ' || pg_catalog.pg_get_constraintdef(k.oid) ORDER BY k.conname)
               FROM pg_catalog.pg_constraint AS k WHERE k.conrelid = c.oid) AS constraints,
            (SELECT pg_catalog.array_agg(pg_catalog.pg_get_indexdef(i.indexrelid) ORDER BY i.indexrelid::regclass::text)
               FROM pg_catalog.pg_index AS i WHERE i.indrelid = c.oid) AS indexes,
            (SELECT pg_catalog.array_agg(pg_catalog.pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text ORDER BY t.tgname)
               FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) AS triggers,
            (SELECT pg_catalog.array_agg(pg_catalog.format('%s cmd=%s permissive=%s roles=%s using=%s check=%s', p.polname, p.polcmd, p.polpermissive,
                      p.polroles::regrole[], pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)) ORDER BY p.polname)
               FROM pg_catalog.pg_policy AS p WHERE p.polrelid = c.oid) AS policies
       FROM pg_catalog.pg_class AS c WHERE c.oid = $1::text::regclass`,
    [table],
  );
  return row!;
}

/** The keys of two definitions whose values differ. */
const changedKeys = (a: Record<string, unknown>, b: Record<string, unknown>) =>
  Object.keys(a).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));

for (const dialect of DIALECTS) {
  describe(`hardening [${dialect}]`, () => {
    test('the setup script pins search_path to pg_catalog, pg_temp before its first statement of DDL', () => {
      const script = buildSetupScript();
      const pin = script.indexOf('SET LOCAL search_path = pg_catalog, pg_temp;');
      assert.ok(pin > 0, 'search_path is pinned');
      assert.ok(pin < script.indexOf('CREATE TABLE'), 'before any CREATE');
    });

    test('overloads of our functions (consume_usage(text, …), verify_plugin_token(text, text)): setup refuses naming them, verify reports them', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(`
          CREATE FUNCTION public.consume_usage(text, text, text, text, jsonb) RETURNS TABLE (allowed boolean)
            LANGUAGE sql AS 'SELECT true';
          CREATE FUNCTION public.verify_plugin_token(text, text) RETURNS text LANGUAGE sql AS $$ SELECT 'ok' $$;`);
        await refuses(db, 'untrusted_object', [
          /function public\.consume_usage\(text, text, text, text, jsonb\)/,
          /function public\.verify_plugin_token\(text, text\)/,
          /not one of ours/,
        ]);
        const lines = await verifyLines(db);
        assert.ok(lines.includes('unexpected: function public.consume_usage(text, text, text, text, jsonb) (untrusted_object: has the name of one of ours but is not one of ours (owner postgres))'), lines.join('\n'));
        assert.ok(lines.some((l) => l.startsWith('unexpected: function public.verify_plugin_token(text, text)')), lines.join('\n'));
        await db.exec('DROP FUNCTION public.consume_usage(text, text, text, text, jsonb); DROP FUNCTION public.verify_plugin_token(text, text)');
        await applySchema(db);
        assert.deepEqual(await verifyLines(db), []);
      }));

    test('an operator public.~(varchar, varchar) planted before setup is refused before it can be bound into a CHECK', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(`
          CREATE FUNCTION public.always(varchar, varchar) RETURNS boolean LANGUAGE sql AS 'SELECT true';
          CREATE OPERATOR public.~ (FUNCTION = public.always, LEFTARG = varchar, RIGHTARG = varchar);`);
        await assert.rejects(applySchema(db), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'untrusted_object');
          assert.match(e.message, /operator public\.~\(character varying,character varying\): shadows a pg_catalog operator/);
          return true;
        });
        assert.equal(await tableCount(db), 0, 'nothing created');
      }, { setup: false }));

    test('an operator on a set-up database is reported by verify; an operator on other types is not', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(`
          CREATE FUNCTION public.always(varchar, varchar) RETURNS boolean LANGUAGE sql AS 'SELECT true';
          CREATE OPERATOR public.~ (FUNCTION = public.always, LEFTARG = varchar, RIGHTARG = varchar);
          CREATE TYPE public.colour AS ENUM ('red', 'blue');
          CREATE FUNCTION public.same_colour(public.colour, public.colour) RETURNS boolean LANGUAGE sql AS 'SELECT $1 = $2';
          CREATE OPERATOR public.~ (FUNCTION = public.same_colour, LEFTARG = public.colour, RIGHTARG = public.colour);
          CREATE FUNCTION public.int_text(integer, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
          CREATE OPERATOR public.=== (FUNCTION = public.int_text, LEFTARG = integer, RIGHTARG = text);`);
        const lines = await verifyLines(db);
        assert.deepEqual(lines.filter((l) => l.includes('operator')), [
          'unexpected: operator public.~(character varying,character varying) (untrusted_object: shadows a pg_catalog operator)',
        ]);
        await refuses(db, 'untrusted_object', [/operator public\.~\(character varying,character varying\)/]);
      }));

    test('CREATE on schema public for PUBLIC: setup refuses (schema_create_open), verify names it', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec('GRANT CREATE ON SCHEMA public TO PUBLIC');
        await refuses(db, 'schema_create_open', [/may CREATE in schema public: PUBLIC/]);
        assert.ok((await verifyLines(db)).includes('unexpected: schema public (schema_create_open: roles other than the owner may CREATE in it: PUBLIC)'));
        await db.exec('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
        await applySchema(db);
      }));

    test('plugin_auth_revoke_public takes a regclass: the injection string from the issue is refused and runs nothing', () =>
      withDatabase(dialect, async ({ db }) => {
        const injection = 'public.plugin_tokens FROM PUBLIC; CREATE TABLE public.pwned (x int); --';
        // The old text form no longer exists.
        await assert.rejects(
          db.query('SELECT public.plugin_auth_revoke_public($1::text, $2::text, NULL::aclitem[], NULL::text[])', ['TABLE', injection]),
          (e: { code?: string }) => e.code === '42883',
        );
        // The new ones: the string is not an object's name (a syntax or name error, class 42 or 22).
        await assert.rejects(
          db.query('SELECT public.plugin_auth_revoke_public($1::text::regclass, NULL::text[])', [injection]),
          (e: { code?: string }) => /^(42|22)/.test(e.code ?? ''),
        );
        await assert.rejects(
          db.query('SELECT public.plugin_auth_revoke_public_function($1::text::regprocedure, NULL::text[])', [`public.usage_rollup(); CREATE TABLE public.pwned (x int); --`]),
          (e: { code?: string }) => /^(42|22)/.test(e.code ?? ''),
        );
        const pwned = await db.query("SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'pwned'");
        assert.equal(pwned.length, 0, 'the injected statement never ran');
        // A sequence or a table only.
        await assert.rejects(
          db.query("SELECT public.plugin_auth_revoke_public('public.idx_plugin_usage_created_at'::regclass, NULL::text[])"),
          (e: { code?: string; message?: string }) => e.code === 'PA015' && /^invalid_object: /.test(e.message ?? ''),
        );
      }));

    test('the security helpers are executable by their owner only', () =>
      withDatabase(dialect, async ({ db }) => {
        const catalog = await readCatalog(db);
        const helpers = catalog.functions.filter((f) => (OWNER_ONLY_FUNCTIONS as readonly string[]).includes(f.name));
        assert.equal(helpers.length, 3);
        for (const f of helpers) assert.deepEqual(f.acl.map((a) => a.split('=')[0]), [f.owner], `${f.name}: ${f.acl.join(' ')}`);
        const catalogFn = catalog.functions.find((f) => f.name === 'plugin_auth_catalog')!;
        assert.ok(catalogFn, 'plugin_auth_catalog is not a security helper');
      }));

    test('item 8: a host users table (id, full_name, org; two rows) is not altered: no RLS, same grants, same rows', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(`
          CREATE TABLE public.users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), full_name text NOT NULL, org text);
          INSERT INTO public.users (full_name, org) VALUES ('Ada Lovelace', 'Engines'), ('Grace Hopper', 'Navy');`);
        const state = () => db.query(`
          SELECT c.relrowsecurity, c.relforcerowsecurity, c.relacl::text AS acl, c.relowner::regrole::text AS owner,
                 (SELECT pg_catalog.array_agg(pg_catalog.pg_get_constraintdef(k.oid) ORDER BY k.conname)
                    FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid)::text AS constraints,
                 (SELECT pg_catalog.array_agg(i.indexrelid::regclass::text ORDER BY 1) FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid)::text AS indexes
            FROM pg_catalog.pg_class c WHERE c.oid = 'public.users'::regclass`);
        const before = await state();
        const rows = await db.query('SELECT * FROM public.users ORDER BY full_name');
        const result = await applySchema(db);
        assert.ok(result.applied.length > 0);
        assert.deepEqual(await state(), before);
        assert.equal((before[0] as { relrowsecurity: boolean }).relrowsecurity, false);
        assert.deepEqual(await db.query('SELECT * FROM public.users ORDER BY full_name'), rows);
        // api_keys, created by this run, is locked down.
        const apiKeys = result.catalog.tables.find((t) => t.name === 'api_keys')!;
        assert.equal(apiKeys.rls, true);
        // verify: the host table's missing RLS is a note, not a difference (item 10).
        const verdict = verifyCatalog(result.catalog);
        assert.deepEqual(verdict.differences, []);
        assert.ok(verdict.ok);
        assert.deepEqual(verdict.notes.map((n) => n.object), ['table users (security: rls_disabled)']);
      }, { setup: false }));

    test('item 8: the host users table read from the catalog (columns, types, defaults, constraints, indexes, triggers, RLS, policies, ACL, owner) is identical after setup, and the comparison sees each kind of change', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(`
          CREATE TABLE public.users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), full_name text NOT NULL, org text);
          CREATE INDEX users_full_name_idx ON public.users (full_name);
          CREATE FUNCTION public.host_touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
          CREATE TRIGGER users_touch BEFORE UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.host_touch();
          COMMENT ON TABLE public.users IS 'the host application''s users';
          INSERT INTO public.users (full_name, org) VALUES ('Ada Lovelace', 'Engines'), ('Grace Hopper', 'Navy');`);
        const before = await tableDefinition(db, 'public.users');
        assert.equal(before.rls, false);
        assert.equal((before.columns as string[]).length, 3);
        assert.equal((before.triggers as string[]).length, 1);
        await applySchema(db);
        assert.deepEqual(await tableDefinition(db, 'public.users'), before);
        // The comparison can fail: each change below, made after setup and rolled back, is seen, in its part.
        const role = `fpa_host_owner_${randomBytes(4).toString('hex')}`;
        const changes: [string, string][] = [
          ['ALTER TABLE public.users ALTER COLUMN org TYPE varchar(40)', 'columns'],
          ["ALTER TABLE public.users ALTER COLUMN org SET DEFAULT 'none'", 'columns'],
          ['ALTER TABLE public.users ALTER COLUMN org SET NOT NULL', 'columns'],
          ["ALTER TABLE public.users ADD CONSTRAINT users_org_check CHECK (org <> '')", 'constraints'],
          ['DROP INDEX public.users_full_name_idx; CREATE INDEX users_full_name_idx ON public.users (lower(full_name))', 'indexes'],
          ['ALTER TABLE public.users DISABLE TRIGGER users_touch', 'triggers'],
          ['ALTER TABLE public.users ENABLE ROW LEVEL SECURITY', 'rls'],
          ['CREATE POLICY users_all ON public.users USING (true)', 'policies'],
          ['GRANT SELECT ON public.users TO PUBLIC', 'acl'],
          [`CREATE ROLE ${role} NOLOGIN; ALTER TABLE public.users OWNER TO ${role}`, 'owner'],
        ];
        for (const [change, part] of changes) {
          const seen = await db.transaction(async (tx) => {
            await tx.exec(change);
            const after = await tableDefinition(tx, 'public.users');
            throw Object.assign(new Error('roll back'), { seen: changedKeys(before, after) });
          }).catch((error: { seen?: string[] }) => error.seen);
          assert.ok(seen?.includes(part), `${change}: ${part} changed (${seen})`);
        }
        assert.deepEqual(await tableDefinition(db, 'public.users'), before, 'every change was rolled back');
      }, { setup: false }));

    test('item 10: verify reports a host table without RLS as a note, and a table of ours as a difference', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec('ALTER TABLE public.users DISABLE ROW LEVEL SECURITY; ALTER TABLE public.plugin_tokens DISABLE ROW LEVEL SECURITY');
        const verdict = verifyCatalog(await readCatalog(db));
        assert.deepEqual(verdict.notes.map((n) => n.object), ['table users (security: rls_disabled)']);
        assert.deepEqual(verdict.differences.map((d) => d.object), ['table plugin_tokens (security: rls_disabled)']);
        // Setup agrees: it restores our table and leaves the host's alone.
        const result = await applySchema(db);
        assert.deepEqual(result.restored, ['row level security on table public.plugin_tokens']);
        const after = verifyCatalog(result.catalog);
        assert.ok(after.ok);
        assert.deepEqual(after.notes.map((n) => n.object), ['table users (security: rls_disabled)']);
      }));

    test('corrected file: a database that applied the earlier text of 001 is accepted and its checksum updated; any other text is schema_modified', () =>
      withDatabase(dialect, async ({ db }) => {
        const current = loadMigrations()[0]!.checksum;
        const earlier = CORRECTED_FILES[1]!.checksums[0]!;
        assert.notEqual(earlier, current);
        await db.query('UPDATE public.plugin_auth_migrations SET checksum = $1::char(64) WHERE version = 1', [earlier]);
        const result = await applySchema(db);
        assert.deepEqual(result.applied, []);
        const rows = await db.query<{ checksum: string }>('SELECT checksum FROM public.plugin_auth_migrations WHERE version = 1');
        assert.equal(rows[0]!.checksum, current);
        await db.query('UPDATE public.plugin_auth_migrations SET checksum = $1::char(64) WHERE version = 1', ['f'.repeat(64)]);
        await refuses(db, 'schema_modified', [/sql\/001_host_tables\.sql changed after it was applied/]);
        await db.query('UPDATE public.plugin_auth_migrations SET checksum = $1::char(64) WHERE version = 2', [earlier]);
        await db.query('UPDATE public.plugin_auth_migrations SET checksum = $1::char(64) WHERE version = 1', [current]);
        await refuses(db, 'schema_modified', [/sql\/002_plugin_auth_tables\.sql changed/]);
      }));

    test('item 9: a normal re-run restores nothing and runs no file again', () =>
      withDatabase(dialect, async ({ db }) => {
        const result = await applySchema(db);
        assert.deepEqual(result.applied, []);
        assert.deepEqual(result.restored, []);
      }));

    test('item 9: a normal re-run takes no lock stronger than a read on any table (no file runs again)', () =>
      withDatabase(dialect, async ({ db }) => {
        const locks = await db.transaction(async (tx) => {
          await tx.exec(buildSetupScript());
          return tx.query<{ relation: string; mode: string }>(`
            SELECT l.relation::regclass::text AS relation, l.mode FROM pg_catalog.pg_locks l
              JOIN pg_catalog.pg_class c ON c.oid = l.relation
             WHERE l.locktype = 'relation' AND l.pid = pg_catalog.pg_backend_pid()
               AND c.relnamespace = 'public'::regnamespace AND l.mode NOT IN ('AccessShareLock')
             ORDER BY 1, 2`);
        });
        assert.deepEqual(locks, []);
      }));

    const drops: [string, string, string[]][] = [
      ['an index', 'DROP INDEX public.idx_plugin_usage_created_at', ['index plugin_usage.idx_plugin_usage_created_at']],
      ['a CHECK declared in CREATE TABLE (002)', 'ALTER TABLE public.subscription_plans DROP CONSTRAINT subscription_plans_slug_check',
        ['constraint subscription_plans.subscription_plans_slug_check']],
      ['a CHECK added by 010', 'ALTER TABLE public.plugin_usage DROP CONSTRAINT plugin_usage_metadata_check', ['constraint plugin_usage.plugin_usage_metadata_check']],
      ['a foreign key', 'ALTER TABLE public.plugin_tokens DROP CONSTRAINT plugin_tokens_user_id_fkey', ['constraint plugin_tokens.plugin_tokens_user_id_fkey']],
      ['a unique constraint', 'ALTER TABLE public.daily_usage_summary DROP CONSTRAINT idx_daily_usage_user_action_date',
        ['constraint daily_usage_summary.idx_daily_usage_user_action_date', 'index daily_usage_summary.idx_daily_usage_user_action_date']],
      ['a function', 'DROP FUNCTION public.check_usage(uuid, varchar, integer)',
        ['function check_usage(p_user_id uuid, p_action character varying, p_items integer)',
          'no EXECUTE for PUBLIC, anon or authenticated on function public.check_usage(uuid,character varying,integer)']],
      ['RLS on a table', 'ALTER TABLE public.plugin_usage DISABLE ROW LEVEL SECURITY', ['row level security on table public.plugin_usage']],
      ['a seed plan', "DELETE FROM public.subscription_plans WHERE plan_slug = 'basic'", ['plan basic']],
    ];
    for (const [what, sql, listed] of drops) {
      // Where service_role exists (the real server plays Supabase), a new function also gets its grant.
      const restored = dialect === 'postgres' && what === 'a function'
        ? [...listed, 'EXECUTE for service_role on function public.check_usage(uuid,character varying,integer)']
        : listed;
      test(`item 9: setup restores ${what}, and verify then passes`, () =>
        withDatabase(dialect, async ({ db }) => {
          const before = await dumpDatabase(db, { normalize: true });
          await db.exec(sql);
          assert.ok((await verifyLines(db)).length > 0, 'verify sees it');
          const result = await applySchema(db);
          assert.deepEqual(result.applied, []);
          assert.deepEqual(result.restored, restored);
          assert.deepEqual(await verifyLines(db), []);
          assert.deepEqual(await dumpDatabase(db, { normalize: true }), before);
        }));
    }

    test('item 9: an edited seed plan is left alone while a deleted one comes back', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(`
          UPDATE public.subscription_plans SET price_monthly = 1999, name = 'Pro (2027)' WHERE plan_slug = 'pro';
          DELETE FROM public.subscription_plans WHERE plan_slug = 'enterprise';`);
        const result = await applySchema(db);
        assert.deepEqual(result.restored, ['plan enterprise']);
        const plans = await db.query<{ plan_slug: string; name: string; price_monthly: number }>(
          'SELECT plan_slug, name, price_monthly FROM public.subscription_plans ORDER BY plan_slug');
        assert.deepEqual(plans.map((p) => [p.plan_slug, p.name, p.price_monthly]), [
          ['basic', 'Basic', 499], ['enterprise', 'Enterprise', 4999], ['free', 'Free', 0], ['pro', 'Pro (2027)', 1999],
        ]);
        assert.deepEqual(await verifyLines(db), []);
      }));

    test("item 9: service_role's grants are restored exactly (Supabase's roles created in this database)", () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(SUPABASE_ROLES);
        await applySchema(db);
        assert.deepEqual(await verifyLines(db), []);
        await db.exec(`
          REVOKE SELECT ON public.plugin_tokens FROM service_role;
          GRANT TRUNCATE ON public.plugin_usage TO service_role;
          REVOKE EXECUTE ON FUNCTION public.consume_usage(uuid, varchar, integer, text, jsonb) FROM service_role;`);
        assert.deepEqual((await verifyLines(db)).sort(), [
          'different: function consume_usage(p_user_id uuid, p_action character varying, p_items integer, p_idempotency_key text, p_metadata jsonb) (security: service_role_privileges) (service_role cannot execute it)',
          'different: table plugin_tokens (security: service_role_privileges) (service_role has adw)',
          'different: table plugin_usage (security: service_role_privileges) (service_role has Dadrw)',
        ]);
        const result = await applySchema(db);
        assert.deepEqual(result.restored.sort(), [
          'EXECUTE for service_role on function public.consume_usage(uuid,character varying,integer,text,jsonb)',
          'exactly SELECT, INSERT, UPDATE, DELETE for service_role on table public.plugin_tokens',
          'exactly SELECT, INSERT, UPDATE, DELETE for service_role on table public.plugin_usage',
        ]);
        assert.deepEqual(await verifyLines(db), []);
      }));

    test('item 9: restoring would overwrite a function changed by hand: schema_drift naming it, nothing changed', () =>
      withDatabase(dialect, async ({ db }) => {
        await db.exec(`
          CREATE OR REPLACE FUNCTION public.subscription_grants_access(p_status varchar, p_current_period_end timestamptz, p_at timestamptz DEFAULT now())
            RETURNS boolean LANGUAGE plpgsql IMMUTABLE SET search_path = '' AS $$ BEGIN RETURN true; END; $$;
          DROP INDEX public.idx_plugin_usage_created_at;`);
        await refuses(db, 'schema_drift', [/index plugin_usage\.idx_plugin_usage_created_at/, /function subscription_grants_access\(p_status character varying/]);
      }));
  });
}

// ---- Real server only: roles besides the superuser, Supabase's roles, extensions. ----

/** A role of its own for one test (roles are cluster-wide): dropped with what it owns afterwards. */
async function withIntruder<T>(t: TestDatabase, fn: (role: string) => Promise<T>): Promise<T> {
  const role = `fpa_intruder_${randomBytes(4).toString('hex')}`;
  await t.db.exec(`CREATE ROLE ${role} NOLOGIN`);
  try {
    return await fn(role);
  } finally {
    await t.db.exec(`DROP OWNED BY ${role} CASCADE; DROP ROLE ${role}`);
  }
}

if (DIALECTS.includes('postgres')) {
  describe('hardening [postgres only]', () => {
    test("item 2: service_role has exactly SELECT, INSERT, UPDATE, DELETE on every table and no helper [postgres, Supabase's roles]", () =>
      withDatabase('postgres', async ({ db }) => {
        // Supabase's default privileges give the API roles everything on new objects.
        await db.exec(`
          ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
          ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
          ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
          GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;`);
        await applySchema(db);
        const tables = await db.query<{ name: string; privileges: string[] }>(`
          SELECT c.relname AS name,
                 (SELECT pg_catalog.array_agg(a.privilege_type ORDER BY a.privilege_type)
                    FROM pg_catalog.aclexplode(c.relacl) a WHERE a.grantee = 'service_role'::regrole) AS privileges
            FROM pg_catalog.pg_class c
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1`);
        const expectedTables = loadExpectedSchema().tables.map((t) => t.name).sort();
        assert.deepEqual(tables.map((t) => t.name), expectedTables);
        for (const t of tables) assert.deepEqual(t.privileges, ['DELETE', 'INSERT', 'SELECT', 'UPDATE'], t.name);
        const sequences = await db.query<{ acl: string | null }>(`
          SELECT c.relacl::text AS acl FROM pg_catalog.pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S'`);
        assert.ok(sequences.length >= 2);
        for (const s of sequences) assert.doesNotMatch(s.acl ?? '', /service_role|anon|authenticated|(^|[{,])=/);
        // The helpers: permission denied for service_role; plugin_auth_catalog and the API are not.
        const [{ id }] = (await db.query<{ id: string }>("INSERT INTO public.users (email) VALUES ('svc@example.com') RETURNING id")) as [{ id: string }];
        const as = async (sql: string) => {
          const done = new Error('done');
          try {
            await db.transaction(async (tx) => {
              await tx.exec('SET LOCAL ROLE service_role');
              await tx.query(sql);
              throw done;
            });
          } catch (error) {
            return error === done ? 'ok' : (error as { code?: string }).code;
          }
          return 'not reached';
        };
        assert.equal(await as("SELECT public.plugin_auth_revoke_public('public.plugin_tokens'::regclass, ARRAY['anon'])"), '42501');
        assert.equal(await as("SELECT public.plugin_auth_revoke_public_function('public.usage_rollup()'::regprocedure, ARRAY['anon'])"), '42501');
        assert.equal(await as('SELECT * FROM public.plugin_auth_secure(ARRAY[]::regclass[], ARRAY[]::regprocedure[], ARRAY[]::regprocedure[])'), '42501');
        assert.equal(await as('TRUNCATE public.plugin_usage'), '42501');
        assert.equal(await as('SELECT public.plugin_auth_catalog()'), 'ok');
        // Identity columns need no sequence privilege: consume_usage inserts into plugin_usage.
        assert.equal(await as(`SELECT * FROM public.consume_usage('${id}'::uuid, 'resize'::varchar, 1, NULL::text, NULL::jsonb)`), 'ok');
        assert.deepEqual(await verifyLines(db), []);
      }, { setup: false }));

    test('a function of ours owned by another role: untrusted_object naming it [postgres, other roles]', () =>
      withDatabase('postgres', async (t) =>
        withIntruder(t, async (role) => {
          await t.db.exec(`ALTER FUNCTION public.usage_rollup() OWNER TO ${role}`);
          await refuses(t.db, 'untrusted_object', [new RegExp(`function public\\.usage_rollup\\(\\) \\(owner ${role}\\): owned by a role that is not trusted`)]);
          assert.ok((await verifyLines(t.db)).some((l) => l.startsWith('unexpected: function public.usage_rollup()')));
          await t.db.exec('ALTER FUNCTION public.usage_rollup() OWNER TO postgres');
        })));

    test('a host users table owned by another role, with a trigger: untrusted_object naming it [postgres, other roles]', () =>
      withDatabase('postgres', async (t) =>
        withIntruder(t, async (role) => {
          await t.db.exec(`
            CREATE TABLE public.users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text);
            CREATE FUNCTION public.spy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
            CREATE TRIGGER spy BEFORE INSERT ON public.users FOR EACH ROW EXECUTE FUNCTION public.spy();
            ALTER TABLE public.users OWNER TO ${role};
            ALTER FUNCTION public.spy() OWNER TO ${role};`);
          await assert.rejects(applySchema(t.db), (e: Error & { code?: string }) => {
            assert.equal(e.code, 'untrusted_object');
            assert.match(e.message, new RegExp(`table public\\.users \\(owner ${role}\\): owned by a role that is not trusted`));
            return true;
          });
          assert.equal(await tableCount(t.db), 1, 'nothing created');
        }), { setup: false }));

    test('CREATE on public granted to another role: schema_create_open naming it [postgres, other roles]', () =>
      withDatabase('postgres', async (t) =>
        withIntruder(t, async (role) => {
          await t.db.exec(`GRANT CREATE ON SCHEMA public TO ${role}`);
          await refuses(t.db, 'schema_create_open', [new RegExp(`may CREATE in schema public: ${role}`)]);
          assert.ok((await verifyLines(t.db)).includes(`unexpected: schema public (schema_create_open: roles other than the owner may CREATE in it: ${role})`));
        })));

    test("an intruder's overload is never granted to service_role by a re-run [postgres, other roles, Supabase's roles]", () =>
      withDatabase('postgres', async (t) =>
        withIntruder(t, async (role) => {
          await applySchema(t.db);
          await t.db.exec(`
            CREATE FUNCTION public.consume_usage(text, text, text, text, jsonb) RETURNS TABLE (allowed boolean)
              LANGUAGE sql AS 'SELECT true';
            REVOKE ALL ON FUNCTION public.consume_usage(text, text, text, text, jsonb) FROM PUBLIC;
            ALTER FUNCTION public.consume_usage(text, text, text, text, jsonb) OWNER TO ${role};`);
          await refuses(t.db, 'untrusted_object', [new RegExp(`consume_usage\\(text, text, text, text, jsonb\\) \\(owner ${role}\\)`)]);
          const granted = await t.db.query<{ ok: boolean }>(
            "SELECT has_function_privilege('service_role', 'public.consume_usage(text, text, text, text, jsonb)', 'EXECUTE') AS ok");
          assert.equal(granted[0]!.ok, false);
        })));

    test('extension operators on their own types (citext, hstore, pg_trgm) are not flagged [postgres, extensions]', () =>
      withDatabase('postgres', async ({ db }) => {
        await db.exec('CREATE EXTENSION citext; CREATE EXTENSION hstore; CREATE EXTENSION pg_trgm;');
        const catalog = await readCatalog(db);
        assert.deepEqual(catalog.security?.operators, []);
        const result = await applySchema(db);
        assert.deepEqual(result.restored, []);
        assert.deepEqual(await verifyLines(db), []);
        const user = await createUser(db);
        assert.match(user, /^[0-9a-f-]{36}$/);
      }));
  });
}
