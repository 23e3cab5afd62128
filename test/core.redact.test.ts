// No secret in any output: setup subprocesses that fail in various ways, the CLI, and in-process
// errors of tokens and logins in every form a developer might print them (message, String,
// JSON.stringify, util.inspect with the whole cause chain), plus anything written to the console.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { randomBytes } from 'node:crypto';
import { DIALECTS, createUser, device, dropDatabase, freshDatabase, withDatabase } from './helpers/databases.ts';
import { runScript } from './helpers/run.ts';
import { passwordServer } from './helpers/password-server.ts';
import { startSupabaseStandIn } from './helpers/supabase-standin.ts';
import { createPluginAuth } from '../src/auth.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { STANDIN_PLUGIN_ID, startFigmaStandIn } from './helpers/figma-standin.ts';
import { startGumroadStandIn, startLemonSqueezyStandIn } from './helpers/license-standins.ts';
import { createHmac } from 'node:crypto';
import { LEMON_WEBHOOK_SECRET, TOKEN_SECRET as SECRET } from './helpers/secrets.ts';

function assertClean(text: string, secrets: string[], where: string) {
  for (const secret of secrets) {
    assert.ok(secret.length >= 8, 'a meaningful secret');
    assert.ok(!text.includes(secret), `a secret (${secret.slice(0, 4)}…) appears in ${where}:\n${text.slice(0, 2000)}`);
    for (const part of secret.split('.')) if (part.length >= 16) assert.ok(!text.includes(part), `part of a secret appears in ${where}`);
  }
}

/** Every way an error tends to get printed, the cause chain included. */
const renderings = (error: unknown) =>
  [String(error), (error as Error)?.message ?? '', JSON.stringify(error) ?? '', inspect(error, { depth: 10, showHidden: true })].join('\n');

/** Captures console output while fn runs. */
async function captureConsole(fn: () => Promise<void>): Promise<string> {
  const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;
  const saved = methods.map((m) => console[m]);
  let out = '';
  for (const m of methods) console[m] = (...args: unknown[]) => { out += `${args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: 10 }))).join(' ')}\n`; };
  try {
    await fn();
  } finally {
    methods.forEach((m, i) => (console[m] = saved[i]!));
  }
  return out;
}

for (const dialect of DIALECTS) {
  describe(`secrets stay out of errors and logs [${dialect}]`, () => {
    test('token and login errors, in every rendering and with their causes, hold no token, key or secret', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        const secrets: string[] = [SECRET];
        const errors: unknown[] = [];
        const logs = await captureConsole(async () => {
          const catching = async (fn: () => Promise<unknown>) => { try { await fn(); } catch (e) { errors.push(e); } };
          const issued = await auth.tokens.issue(user, { deviceName: 'laptop' });
          secrets.push(issued.token);
          const login = await auth.tokens.beginLogin();
          secrets.push(login.readKey, login.writeKey);
          // Refused tokens: tampered, revoked, expired-by-deletion of the user, wrong secret.
          await catching(() => auth.tokens.verify(`${issued.token}x`));
          await catching(() => auth.tokens.verify(issued.token.slice(0, -3)));
          await catching(() => createPluginAuth(db, { tokenSecret: 'z'.repeat(48) }).tokens.verify(issued.token));
          await auth.tokens.revoke(issued.tokenId, 'test');
          await catching(() => auth.tokens.verify(issued.token));
          // Login errors: wrong key, key with a typo, completing for a missing user, polling twice.
          await catching(() => auth.tokens.completeLogin(login.readKey, user));
          await catching(() => auth.tokens.pollLogin(`${login.readKey.slice(0, -1)}A`));
          await catching(() => auth.tokens.completeLogin(login.writeKey, '00000000-0000-0000-0000-000000000000'));
          await auth.tokens.completeLogin(login.writeKey, user);
          const polled = await auth.tokens.pollLogin(login.readKey);
          secrets.push(polled!.token);
          await catching(() => auth.tokens.pollLogin(login.readKey));
          // A database-level failure carrying parameters: a duplicate token id, straight from the driver.
          await catching(() => auth.tokens.issue(user, { deviceName: 'x'.repeat(300) }));
          // A short secret is refused without being echoed.
          const short = 'short-secret-123';
          secrets.push(short);
          await catching(async () => createPluginAuth(db, { tokenSecret: short }));
        });
        assert.ok(errors.length >= 9, `errors collected: ${errors.length}`);
        for (const error of errors) assertClean(renderings(error), secrets, `error ${String(error).slice(0, 60)}`);
        assertClean(logs, secrets, 'console output');
      }));

    test('Figma: the personal access token and payment tokens appear in no error, log line or database row', () =>
      withDatabase(dialect, async ({ db }) => {
        const pat = `figd_${randomBytes(24).toString('base64url')}`;
        const figma = await startFigmaStandIn(pat);
        try {
          const options = { personalAccessToken: pat, pluginId: STANDIN_PLUGIN_ID, apiBaseUrl: figma.url, cacheSeconds: 0, refusalCacheSeconds: 0 };
          const auth = createPluginAuth(db, { tokenSecret: SECRET, figma: options });
          const paid = `pt_${randomBytes(24).toString('base64url')}`;
          const unknown = `pt_${randomBytes(24).toString('base64url')}`;
          figma.tokens.set(paid, { figmaUserId: '4242', status: 'PAID' });
          const secrets = [pat, paid, unknown];
          const errors: unknown[] = [];
          const logs = await captureConsole(async () => {
            const catching = async (fn: () => Promise<unknown>) => { try { await fn(); } catch (e) { errors.push(e); } };
            const session = await auth.figma.signIn(paid, { deviceName: 'Figma' });
            secrets.push(session.token);
            await catching(() => auth.figma.verifyPaymentToken(unknown)); // 400
            await catching(() => createPluginAuth(db, { figma: { ...options, personalAccessToken: `${pat}x` } }).figma.verifyPaymentToken(paid)); // 401
            figma.failure = { kind: 'http', status: 500 };
            await catching(() => auth.figma.verifyPaymentToken(unknown));
            figma.failure = { kind: 'slow', ms: 500 };
            await catching(() => createPluginAuth(db, { figma: { ...options, timeoutMs: 50 } }).figma.verifyPaymentToken(unknown));
            figma.failure = null;
            await catching(() => createPluginAuth(db, { figma: { ...options, apiBaseUrl: 'http://127.0.0.1:1' } }).figma.verifyPaymentToken(paid));
            await catching(() => auth.figma.signIn(`${paid} `));
            const other = await createUser(db);
            await catching(() => auth.figma.link(other, paid)); // figma_user_linked
          });
          assert.ok(errors.length >= 6, `errors collected: ${errors.length}`);
          for (const error of errors) assertClean(renderings(error), secrets, `error ${String(error).slice(0, 60)}`);
          assertClean(logs, secrets, 'console output');
          assertClean(JSON.stringify(await dumpDatabase(db)), secrets, 'the database dump');
        } finally {
          await figma.close();
        }
      }));

    test('license keys and the webhook secret appear in no error, log line or database row (only a digest and a 4-character prefix)', () =>
      withDatabase(dialect, async ({ db }) => {
        const lemon = await startLemonSqueezyStandIn();
        const gumroad = await startGumroadStandIn();
        const webhookSecret = LEMON_WEBHOOK_SECRET;
        const accessToken = `gat_${randomBytes(16).toString('hex')}`;
        try {
          const options = { lemonSqueezy: { apiBaseUrl: lemon.url, webhookSecret }, gumroad: { apiBaseUrl: gumroad.url, accessToken }, licenses: { cacheSeconds: 0 } };
          const auth = createPluginAuth(db, options);
          await auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: '111' });
          await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: 'plug-pro_Wsw==', deviceLimit: 1 });
          const ls = lemon.sell({ activationLimit: 1 });
          const gr = gumroad.sell();
          const unknown = `UNKNOWN-${randomBytes(12).toString('hex')}`;
          // The prefix (4 characters) is kept on purpose; everything longer must not be.
          const secrets = [ls.key.slice(4), gr.key.slice(4), unknown, webhookSecret, accessToken];
          const [alice, bob] = [await createUser(db), await createUser(db)];
          const errors: unknown[] = [];
          const answers: unknown[] = [];
          const logs = await captureConsole(async () => {
            const catching = async (fn: () => Promise<unknown>) => { try { await fn(); } catch (e) { errors.push(e); } };
            await auth.licenses.activate(alice, { provider: 'lemonsqueezy', licenseKey: ls.key, ...await device(db, alice, 'a') });
            await auth.licenses.activate(alice, { provider: 'gumroad', licenseKey: gr.key, ...await device(db, alice, 'a') });
            await catching(async () => auth.licenses.activate(bob, { provider: 'lemonsqueezy', licenseKey: ls.key, ...await device(db, bob, 'b') })); // license_in_use
            await catching(async () => auth.licenses.activate(alice, { provider: 'gumroad', licenseKey: gr.key, ...await device(db, alice, 'b') })); // device_limit_reached
            await catching(async () => auth.licenses.activate(alice, { provider: 'lemonsqueezy', licenseKey: unknown, ...await device(db, alice, 'a') })); // 404
            await catching(async () => auth.licenses.activate(alice, { provider: 'gumroad', licenseKey: unknown, ...await device(db, alice, 'a') }));
            await catching(async () => auth.licenses.activate(alice, { provider: 'lemonsqueezy', licenseKey: `${unknown} x`, ...await device(db, alice, 'a') })); // invalid
            lemon.failure = { kind: 'http', status: 503 };
            await catching(async () => auth.licenses.activate(bob, { provider: 'lemonsqueezy', licenseKey: unknown, ...await device(db, bob, 'a') }));
            lemon.failure = { kind: 'slow', ms: 500 };
            await catching(async () => createPluginAuth(db, { ...options, licenses: { timeoutMs: 50 } }).licenses.activate(bob, { provider: 'lemonsqueezy', licenseKey: unknown, ...await device(db, bob, 'a') }));
            lemon.failure = null;
            // Gumroad unreachable: validate answers from the stored check, within the grace period
            // (docs/licenses.md), and that answer must not carry the key either.
            answers.push(await createPluginAuth(db, { ...options, gumroad: { apiBaseUrl: 'http://127.0.0.1:1', accessToken } }).licenses.validate(alice, { provider: 'gumroad', licenseKey: gr.key }));
            const body = JSON.stringify({ meta: { event_name: 'order_refunded' }, data: { type: 'orders', id: ls.license.orderId, attributes: { updated_at: new Date().toISOString() } } });
            await catching(() => auth.licenses.handleWebhook('lemonsqueezy', body, { 'x-signature': createHmac('sha256', 'wrong').update(body).digest('hex') }));
            await auth.licenses.handleWebhook('lemonsqueezy', body, { 'x-signature': createHmac('sha256', webhookSecret).update(body).digest('hex') });
            await auth.licenses.handleWebhook('gumroad', new URLSearchParams({ resource_name: 'refund', license_key: gr.key, product_id: 'plug-pro_Wsw==' }).toString());
            for (const l of await auth.licenses.list(alice)) console.log(l);
          });
          assert.ok(errors.length >= 8, `errors collected: ${errors.length}`);
          assert.equal(answers.length, 1, 'validate answered from the stored check while Gumroad was unreachable');
          for (const error of errors) assertClean(renderings(error), secrets, `error ${String(error).slice(0, 60)}`);
          assertClean(JSON.stringify(answers), secrets, 'the stored answer');
          assertClean(logs, secrets, 'console output');
          assertClean(JSON.stringify(await dumpDatabase(db)), secrets, 'the database dump');
          assert.ok(gumroad.calls.some((c) => c.authorization === `Bearer ${accessToken}`), 'the access token went only to Gumroad');
        } finally {
          await lemon.close();
          await gumroad.close();
        }
      }));

    test('a failed parameterized call: the driver error (also as cause) does not carry raw values we never send', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        const login = await auth.tokens.beginLogin();
        await db.exec(`ALTER TABLE public.plugin_tokens ADD CONSTRAINT hostile_refuse_all CHECK (false) NOT VALID`);
        await auth.tokens.completeLogin(login.writeKey, user);
        // The poll mints a token, then the claim fails in the database: the error's cause is the
        // driver's error, with (on PGlite) the query and its parameters: digests only, never the token or key.
        const error = await auth.tokens.pollLogin(login.readKey).then(() => undefined, (e: unknown) => e);
        assert.equal((error as { code?: string }).code, 'check_violation');
        assertClean(renderings(error), [SECRET, login.readKey, login.writeKey], 'a failed claim');
      }));
  });
}

if (DIALECTS.includes('postgres')) {
  describe('secrets stay out of setup and CLI output [postgres]', () => {
    test('failing setups and CLI runs: no password or service-role key in stdout or stderr', async () => {
      const password = `pw-${randomBytes(12).toString('hex')}`;
      const key = `eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.${randomBytes(24).toString('base64url')}`;
      const server = await passwordServer(password);
      const t = await freshDatabase('postgres', { setup: false });
      const standIn = await startSupabaseStandIn(t.url!, key);
      try {
        const runs = [
          // wrong password
          await runScript('setup-database.ts', [], { env: { DATABASE_URL: server.wrongPasswordUrl } }),
          await runScript('setup-production-db.ts', [], { env: { DATABASE_URL: server.wrongPasswordUrl } }),
          // unreachable host
          await runScript('setup-production-db.ts', [], { env: { DATABASE_URL: `postgres://app:${password}@127.0.0.1:1/app` } }),
          // password with URL-special characters, percent-encoded
          await runScript('setup-production-db.ts', [], { env: { DATABASE_URL: `postgres://app:${encodeURIComponent(`${password}@:/?#`)}@127.0.0.1:1/app` } }),
          // malformed URL around the password
          await runScript('setup-production-db.ts', [], { env: { DATABASE_URL: `postgres://app:${password}@[bad/app` } }),
          // bad Supabase key, and missing exec_sql with the right key
          await runScript('setup-production-db.ts', [], { env: { SUPABASE_URL: standIn.url, SUPABASE_SERVICE_ROLE_KEY: `${key}-wrong` } }),
          await runScript('setup-production-db.ts', [], { env: { SUPABASE_URL: standIn.url, SUPABASE_SERVICE_ROLE_KEY: key } }),
          await runScript('setup-production-db.ts', [], { env: { SUPABASE_URL: 'http://127.0.0.1:1', SUPABASE_SERVICE_ROLE_KEY: key } }),
          // the CLI
          await runScript('src/cli/main.ts', ['status', '--database-url', server.wrongPasswordUrl]),
          await runScript('src/cli/main.ts', ['verify', '--database-url', `postgres://app:${password}@127.0.0.1:1/app`]),
          await runScript('src/cli/main.ts', ['status'], { env: { SUPABASE_URL: standIn.url, SUPABASE_SERVICE_ROLE_KEY: key } }),
          await runScript('src/cli/main.ts', ['setup', '--database-url', server.wrongPasswordUrl]),
        ];
        for (const [i, r] of runs.entries()) {
          assert.notEqual(r.code, 0, `run ${i} should fail:\n${r.all}`);
          assertClean(r.all, [password, key, `${key}-wrong`, encodeURIComponent(`${password}@:/?#`)], `run ${i}`);
        }
      } finally {
        await standIn.close();
        await server.stop();
        await t.db.close();
        await dropDatabase(t.name!);
      }
    });
  });
}
