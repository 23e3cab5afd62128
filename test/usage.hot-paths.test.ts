import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, withDatabase } from './helpers/databases.ts';

// sql/017 generates consume_usage, check_usage and plugin_auth_usage_limits with the query of
// plugin_auth_grants (the one entitlement rule) embedded. A file that redefines plugin_auth_grants
// without re-running that generator leaves them applying the old rule: this test then fails.
for (const dialect of DIALECTS) {
  describe(`hot paths [${dialect}]`, () => {
    test('consume_usage, check_usage and plugin_auth_usage_limits embed the current plugin_auth_grants query', () =>
      withDatabase(dialect, async ({ db }) => {
        const rows = await db.query<{ name: string; src: string }>(
          `SELECT p.proname AS name, p.prosrc AS src FROM pg_catalog.pg_proc p
            JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public'
             AND p.proname IN ('plugin_auth_grants', 'consume_usage', 'check_usage', 'plugin_auth_usage_limits')`, []);
        const src = new Map(rows.map((r) => [r.name, r.src]));
        const grants = /^\s*BEGIN\s+RETURN\s+QUERY\s+([\s\S]*);\s*END;?\s*$/.exec(src.get('plugin_auth_grants') ?? '');
        assert.ok(grants, 'plugin_auth_grants is one RETURN QUERY (the shape sql/017 generates from)');
        for (const name of ['consume_usage', 'check_usage', 'plugin_auth_usage_limits']) {
          const body = src.get(name) ?? '';
          assert.ok(body.includes(grants[1]!), `${name} embeds the current plugin_auth_grants query`);
          assert.ok(!body.includes('public.plugin_auth_grants('), `${name} calls no nested set-returning function`);
          assert.ok(!body.includes("RAISE EXCEPTION 'unknown_user"), `${name} uses plugin_auth_require_user`);
        }
      }));
  });
}
