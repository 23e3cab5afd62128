// npm run setup / npm run setup:production as a developer runs them: subprocesses, real output.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIALECTS, dropDatabase, freshDatabase } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { runScript, type RunResult } from './helpers/run.ts';
import { passwordServer } from './helpers/password-server.ts';
import { EXEC_SQL_DDL, startSupabaseStandIn } from './helpers/supabase-standin.ts';
import { loadDevelopmentEnv } from '../src/core/env.ts';

function assertErrorBlock(result: RunResult, retry: string) {
  assert.equal(result.code, 1, result.all);
  assert.match(result.stderr, /^Status: ERROR$/m);
  assert.match(result.stderr, /^Reason: \S/m);
  assert.match(result.stderr, /^Troubleshooting:\n(\* .+\n)+/m);
  assert.match(result.stderr, new RegExp(`^Command to retry:\\n${retry.replace(/[:]/g, '\\$&')}$`, 'm'));
  assert.doesNotMatch(result.stdout, /✅/);
}

function assertNoSecret(result: RunResult, ...secrets: string[]) {
  for (const secret of secrets) assert.ok(!result.all.includes(secret), `secret ${secret.slice(0, 3)}… leaked:\n${result.all}`);
}

describe('setup commands [pglite]', () => {
  test('npm run setup on the embedded default prints the report, and a re-run changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fpa-setup-'));
    try {
      const env = { PGLITE_DATA_DIR: join(dir, 'pglite') };
      const first = await runScript('setup-database.ts', [], { env });
      assert.equal(first.code, 0, first.all);
      for (const line of [
        '✅ Database Schema Implementation Complete',
        'Tables Created:',
        '1. subscription_plans (master plan configuration with limits)',
        '5. user_subscriptions (user plan assignment and Stripe sync)',
        'Indexes Added',
        'idx_plugin_tokens_user_id, idx_plugin_tokens_token'.split(', ')[0]!,
        'Seed Data:',
        '- 4 subscription plans (free, basic, pro, enterprise) with pricing and limits',
        'Next Steps:',
        'Run: npx figma-plugin-auth-db setup',
      ]) {
        assert.ok(first.stdout.includes(line), `report has "${line}"`);
      }
      assert.match(first.stdout, /- increment_daily_usage\(p_user_id uuid, p_action character varying, p_date date\) → INTEGER/);
      assert.match(first.stdout, /applied now: 001_host_tables/);
      const second = await runScript('setup-database.ts', [], { env });
      assert.equal(second.code, 0, second.all);
      assert.match(second.stdout, /already up to date: nothing changed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('production refuses to run without a database, and never falls back to PGlite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fpa-prod-'));
    try {
      // A .env.local with a DATABASE_URL must be ignored in production.
      writeFileSync(join(dir, '.env.local'), 'DATABASE_URL=postgres://x:y@127.0.0.1:1/z\n');
      const result = await runScript('setup-production-db.ts', [], { cwd: dir });
      assertErrorBlock(result, 'npx figma-plugin-auth-db setup --production');
      assert.match(result.stderr, /Production setup needs DATABASE_URL/);
      assert.match(result.stderr, /\.env files are ignored/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('development reads .env.local, then .env, under the real environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fpa-env-'));
    try {
      writeFileSync(join(dir, '.env.local'), 'A=local\nB=local\n');
      writeFileSync(join(dir, '.env'), 'A=env\nB=env\nC=env\n');
      const env = loadDevelopmentEnv(dir, { B: 'real' });
      assert.deepEqual([env.A, env.B, env.C], ['local', 'real', 'env']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('malformed configuration gets the error block, with no secret echoed', async () => {
    const key = 'sk-very-secret-service-role-key-42';
    const cases: [Record<string, string>, RegExp][] = [
      [{ DATABASE_URL: 'mysql://root:hunter2hunter2@db/app' }, /DATABASE_URL must be a postgres/],
      [{ SUPABASE_SERVICE_ROLE_KEY: key }, /SUPABASE_URL is missing/],
      [{ SUPABASE_URL: 'not a url', SUPABASE_SERVICE_ROLE_KEY: key }, /SUPABASE_URL must be an http/],
    ];
    for (const [env, reason] of cases) {
      const result = await runScript('setup-production-db.ts', [], { env });
      assertErrorBlock(result, 'npx figma-plugin-auth-db setup --production');
      assert.match(result.stderr, reason);
      assertNoSecret(result, key, 'hunter2hunter2');
    }
  });
});

if (DIALECTS.includes('postgres')) {
  describe('setup commands [postgres]', () => {
    test('development and production entry points build identical databases', async () => {
      const dev = await freshDatabase('postgres', { setup: false });
      const prod = await freshDatabase('postgres', { setup: false });
      try {
        const a = await runScript('setup-database.ts', [], { env: { DATABASE_URL: dev.url! } });
        const b = await runScript('setup-production-db.ts', [], { env: { DATABASE_URL: prod.url! } });
        assert.equal(a.code, 0, a.all);
        assert.equal(b.code, 0, b.all);
        assert.deepEqual(await dumpDatabase(dev.db, { normalize: true }), await dumpDatabase(prod.db, { normalize: true }));
        // The same script: identical schema by construction, and the same checksums recorded.
        const checksums = (db: typeof dev.db) => db.query('SELECT version, name, checksum FROM public.plugin_auth_migrations ORDER BY version');
        assert.deepEqual(await checksums(dev.db), await checksums(prod.db));
      } finally {
        for (const t of [dev, prod]) {
          await t.db.close();
          await dropDatabase(t.name!);
        }
      }
    });

    test('an unreachable server: error block with the real connection error, password redacted', async () => {
      const password = 'correct-horse-battery-staple';
      const result = await runScript('setup-production-db.ts', [], {
        env: { DATABASE_URL: `postgresql://app:${password}@127.0.0.1:1/app` },
      });
      assertErrorBlock(result, 'npx figma-plugin-auth-db setup --production');
      assert.match(result.stderr, /Reason: .*ECONNREFUSED/);
      assert.match(result.stderr, /Verify DATABASE_URL/);
      assertNoSecret(result, password);
    });

    test('a wrong password: the server\'s own message, and the password nowhere', async () => {
      const password = 'wrong-password-5f1c9e';
      const server = await passwordServer(password);
      try {
        const result = await runScript('setup-database.ts', [], { env: { DATABASE_URL: server.wrongPasswordUrl } });
        assertErrorBlock(result, 'npx figma-plugin-auth-db setup');
        assert.match(result.stderr, /Reason: password authentication failed for user "postgres"/);
        assertNoSecret(result, password);
      } finally {
        await server.stop();
      }
    });

    test('Supabase without exec_sql: the block says how to create it, and the key is nowhere', async () => {
      const t = await freshDatabase('postgres', { setup: false });
      const key = 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXNlY3JldA';
      const standIn = await startSupabaseStandIn(t.url!, key);
      try {
        const missing = await runScript('setup-database.ts', [], { env: { SUPABASE_URL: standIn.url, SUPABASE_SERVICE_ROLE_KEY: key } });
        assertErrorBlock(missing, 'npx figma-plugin-auth-db setup');
        assert.match(missing.stderr, /Reason: .*exec_sql function does not exist/);
        assert.match(missing.stderr, /\* Create the exec_sql function/);
        assert.match(missing.stderr, /\* Verify SUPABASE_SERVICE_ROLE_KEY is set in \.env\.local/);
        assert.match(missing.stderr, /\* Ensure users table exists \(required for foreign keys\)/);
        assertNoSecret(missing, key);
        await t.db.exec(EXEC_SQL_DDL);
        const ok = await runScript('setup-database.ts', [], { env: { SUPABASE_URL: standIn.url, SUPABASE_SERVICE_ROLE_KEY: key } });
        assert.equal(ok.code, 0, ok.all);
        assert.match(ok.stdout, /Target: Supabase at http:\/\/127\.0\.0\.1:\d+\/ \(exec_sql over the REST API\)/);
        assertNoSecret(ok, key);
      } finally {
        await standIn.close();
        await t.db.close();
        await dropDatabase(t.name!);
      }
    });
  });
}


test('an optional package that is not installed is missing_dependency, naming it and its install command', async () => {
  const { loadOptional } = await import('../src/schema/supabase.ts');
  await assert.rejects(loadOptional('figma-plugin-auth-db-no-such-package', 'this path'), (e: { code?: string; message?: string }) =>
    e.code === 'missing_dependency' && /this path needs the package figma-plugin-auth-db-no-such-package.*npm install figma-plugin-auth-db-no-such-package/.test(e.message ?? ''));
  // An installed one loads.
  assert.equal(typeof (await loadOptional<typeof import('ws')>('ws', 'this path')).default, 'function');
});
