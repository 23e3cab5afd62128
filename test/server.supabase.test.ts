// Supabase Auth sessions as the website login (src/server/supabase.ts) and the opt-in user sync
// (sql/opt-in/supabase_auth_users.sql, src/schema/supabase-users.ts): tokens from the Authorization
// header and from @supabase/ssr's cookie (plain, base64-, chunked), verified against a stand-in
// JWKS or the legacy HS256 secret; expired, foreign, wrongly signed, alg-confused and anonymous
// tokens are nobody; the login hand-over through the server; the trigger and backfill on both
// databases, never installed by setup.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { SignJWT, generateKeyPair, base64url } from 'jose';
import { TOKEN_SECRET } from './helpers/secrets.ts';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { runScript } from './helpers/run.ts';
import { startSupabaseAuthStandIn } from './helpers/supabase-auth-standin.ts';
import { createPluginAuth } from '../src/auth.ts';
import { serve } from '../src/http/node.ts';
import { createPluginServer, supabaseWebsiteUser } from '../src/server/index.ts';
import { installSupabaseUserSync } from '../src/schema/supabase-users.ts';
import type { Database } from '../src/core/db.ts';

const LEGACY_SECRET = 'super-secret-jwt-token-with-at-least-32-characters-long';
const WEBSITE = 'https://app.example.com';

const req = (headers: Record<string, string>) => new Request('https://app.example.com/api/plugin/login/complete', { method: 'POST', headers });
const cookieValue = (session: unknown, form: 'plain' | 'base64') =>
  form === 'plain' ? encodeURIComponent(JSON.stringify(session)) : `base64-${base64url.encode(JSON.stringify(session))}`;

test('supabaseWebsiteUser: a project JWKS token from the bearer header or the session cookie (plain, base64-, chunked) is its sub; anything else is nobody', async () => {
  const project = await startSupabaseAuthStandIn();
  const other = await startSupabaseAuthStandIn();
  try {
    const userId = supabaseWebsiteUser({ projectUrl: project.url });
    const sub = randomUUID();
    const token = await project.sign(sub);
    assert.equal(await userId(req({ authorization: `Bearer ${token}` })), sub);
    const session = { access_token: token, token_type: 'bearer', expires_in: 3600, refresh_token: 'r-123', user: { id: sub } };
    assert.equal(await userId(req({ cookie: `theme=dark; sb-abcdefghijklmnop-auth-token=${cookieValue(session, 'plain')}` })), sub);
    const encoded = cookieValue(session, 'base64');
    assert.equal(await userId(req({ cookie: `sb-abcdefghijklmnop-auth-token=${encoded}` })), sub);
    const half = Math.floor(encoded.length / 2);
    assert.equal(await userId(req({ cookie: `sb-abcdefghijklmnop-auth-token.1=${encoded.slice(half)}; sb-abcdefghijklmnop-auth-token.0=${encoded.slice(0, half)}` })), sub, 'chunks joined in index order');
    assert.equal(await userId(req({ cookie: `sb-abcdefghijklmnop-auth-token.1=${encoded.slice(half)}` })), null, 'a missing chunk');
    assert.equal(await userId(req({ cookie: `sb-abcdefghijklmnop-auth-token=${encodeURIComponent(JSON.stringify([token, 'r-123']))}` })), sub, 'the older array form');
    assert.ok(project.jwksFetches >= 1);

    const nobody = async (t: string, why: string) => assert.equal(await userId(req({ authorization: `Bearer ${t}` })), null, why);
    await nobody(await project.sign(sub, { expiresIn: Math.floor(Date.now() / 1000) - 120 }), 'expired');
    await nobody(await other.sign(sub), 'another project (issuer and key)');
    await nobody(await other.sign(sub, { issuer: `${project.url}/auth/v1` }), 'another project\'s key claiming this issuer');
    const { privateKey: wrongKey } = await generateKeyPair('ES256');
    await nobody(await project.sign(sub, { key: wrongKey }), 'signed with a key not in the JWKS, under its kid');
    await nobody(await project.sign(sub, { claims: { is_anonymous: true } }), 'anonymous user');
    await nobody(await project.sign('not-a-uuid'), 'sub is not a users.id');
    await nobody(await new SignJWT({ role: 'authenticated' }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuer(`${project.url}/auth/v1`).setAudience('authenticated').setExpirationTime('1h').sign(new TextEncoder().encode(LEGACY_SECRET)), 'HS256 against a JWKS project');
    const [h, p] = token.split('.');
    await nobody(`${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${p}.`, 'alg none');
    await nobody(`${h}.${base64url.encode(JSON.stringify({ sub: randomUUID(), aud: 'authenticated', iss: `${project.url}/auth/v1`, exp: 9999999999 }))}.${token.split('.')[2]}`, 'payload swapped under a real signature');
    assert.equal(await userId(req({})), null);
    assert.equal(await userId(req({ cookie: 'sb-x-auth-token=base64-%%%' })), null);
    assert.equal(await supabaseWebsiteUser({ projectUrl: project.url, allowAnonymous: true })(req({ authorization: `Bearer ${await project.sign(sub, { claims: { is_anonymous: true } })}` })), sub);
    assert.equal(await supabaseWebsiteUser({ projectUrl: project.url, audience: 'other' })(req({ authorization: `Bearer ${token}` })), null, 'audience');
  } finally {
    await project.close();
    await other.close();
  }
});

test('supabaseWebsiteUser: the legacy JWT secret (HS256); a wrong secret or an asymmetric token is nobody; bad options are server_config_invalid', async () => {
  const issuer = 'https://abcdefghijklmnop.supabase.co/auth/v1';
  const sub = randomUUID();
  const hs = (secret: string, o: { iss?: string; exp?: string | number } = {}) =>
    new SignJWT({ role: 'authenticated' }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(sub).setIssuer(o.iss ?? issuer).setAudience('authenticated').setExpirationTime(o.exp ?? '1h').sign(new TextEncoder().encode(secret));
  const userId = supabaseWebsiteUser({ projectUrl: 'https://abcdefghijklmnop.supabase.co', jwtSecret: LEGACY_SECRET });
  assert.equal(await userId(req({ authorization: `Bearer ${await hs(LEGACY_SECRET)}` })), sub);
  assert.equal(await userId(req({ authorization: `Bearer ${await hs(`${LEGACY_SECRET}x`)}` })), null, 'wrong secret');
  assert.equal(await userId(req({ authorization: `Bearer ${await hs(LEGACY_SECRET, { iss: 'https://zzzz.supabase.co/auth/v1' })}` })), null, 'another project');
  assert.equal(await userId(req({ authorization: `Bearer ${await hs(LEGACY_SECRET, { exp: Math.floor(Date.now() / 1000) - 60 })}` })), null, 'expired');
  assert.throws(() => supabaseWebsiteUser({}), { code: 'server_config_invalid' });
  assert.throws(() => supabaseWebsiteUser({ projectUrl: 'https://x.supabase.co', jwtSecret: 'short' }), { code: 'server_config_invalid' });
  assert.throws(() => supabaseWebsiteUser({ projectUrl: 'not a url' }), { code: 'server_config_invalid' });
});

async function makeAuthSchema(db: Database): Promise<void> {
  await db.exec(`CREATE SCHEMA IF NOT EXISTS auth;
    CREATE TABLE auth.users (id uuid PRIMARY KEY, email varchar(255), created_at timestamptz NOT NULL DEFAULT now());`);
}

for (const dialect of DIALECTS) {
  describe(`Supabase Auth [${dialect}]`, () => {
    test('the user sync: never installed by setup; supabase_auth_missing without auth.users; backfill, trigger, the email rule, re-run changes nothing', () =>
      withDatabase(dialect, async ({ db }) => {
        await assert.rejects(installSupabaseUserSync(db), { code: 'supabase_auth_missing' });
        await makeAuthSchema(db);
        const triggers = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_catalog.pg_trigger WHERE tgname = 'plugin_auth_on_supabase_user'"))[0]!.n;
        assert.equal(triggers, 0, 'setup did not install it');
        const before = randomUUID();
        await db.query('INSERT INTO auth.users (id, email) VALUES ($1::uuid, $2::varchar)', [before, 'early@example.com']);
        await db.query("INSERT INTO public.users (email) VALUES ('Taken@Example.com')");
        await installSupabaseUserSync(db);
        const fresh = randomUUID();
        const clash = randomUUID();
        const phone = randomUUID();
        await db.query('INSERT INTO auth.users (id, email) VALUES ($1::uuid, $2::varchar), ($3::uuid, $4::varchar), ($5::uuid, NULL)', [fresh, 'new@example.com', clash, 'taken@example.com', phone]);
        await installSupabaseUserSync(db); // again: nothing changes
        const rows = await db.query<{ id: string; email: string }>('SELECT id, email FROM public.users WHERE id = ANY($1::uuid[]) ORDER BY email', [[before, fresh, clash, phone]]);
        assert.deepEqual(rows, [
          { id: clash, email: `${clash}@users.supabase.invalid` },
          { id: phone, email: `${phone}@users.supabase.invalid` },
          { id: before, email: 'early@example.com' },
          { id: fresh, email: 'new@example.com' },
        ].sort((a, b) => (a.email < b.email ? -1 : 1)));
        const n = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.users'))[0]!.n;
        assert.equal(n, 5);
      }));

    test('login hand-over with a Supabase session cookie through createPluginServer; an expired or foreign session is not_signed_in', () =>
      withDatabase(dialect, async ({ db }) => {
        const project = await startSupabaseAuthStandIn();
        const other = await startSupabaseAuthStandIn();
        await makeAuthSchema(db);
        await installSupabaseUserSync(db);
        const sub = randomUUID();
        await db.query('INSERT INTO auth.users (id, email) VALUES ($1::uuid, $2::varchar)', [sub, 'supa@example.com']);
        const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
        const served = await serve(createPluginServer(auth, { website: { origin: WEBSITE, userId: supabaseWebsiteUser({ projectUrl: project.url }) }, log: () => {} }));
        try {
          const login = async () => {
            const r = await fetch(`${served.url}/plugin/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
            const { readKey, loginUrl } = (await r.json()) as { readKey: string; loginUrl: string };
            return { readKey, writeKey: loginUrl.split('#')[1]! };
          };
          const complete = (writeKey: string, accessToken: string) =>
            fetch(`${served.url}/plugin/login/complete`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', origin: WEBSITE, 'sec-fetch-site': 'same-origin', cookie: `sb-abcdefghijklmnop-auth-token=${cookieValue({ access_token: accessToken }, 'base64')}` },
              body: JSON.stringify({ writeKey }),
            });
          for (const [token, why] of [
            [await project.sign(sub, { expiresIn: Math.floor(Date.now() / 1000) - 60 }), 'expired'],
            [await other.sign(sub), 'another project'],
          ] as const) {
            const { writeKey } = await login();
            const r = await complete(writeKey, token);
            assert.equal(r.status, 401, why);
            assert.equal(((await r.json()) as { error: string }).error, 'not_signed_in');
          }
          const { readKey, writeKey } = await login();
          assert.equal((await complete(writeKey, await project.sign(sub))).status, 200);
          const polled = (await (await fetch(`${served.url}/plugin/login/poll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ readKey }) })).json()) as { token: string };
          assert.equal((await auth.tokens.verify(polled.token)).userId, sub);
        } finally {
          await served.close();
          await project.close();
          await other.close();
        }
      }));
  });
}

test('CLI: setup --supabase-auth-users installs the sync after setup (real PostgreSQL, as a subprocess); without auth.users it fails with supabase_auth_missing', () =>
  withDatabase('postgres', async ({ db, url }) => {
    const plain = await runScript('src/cli/main.ts', ['setup', '--production', '--supabase-auth-users'], { env: { DATABASE_URL: url! } });
    assert.notEqual(plain.code, 0, plain.all);
    assert.match(plain.all, /supabase_auth_missing/);
    await makeAuthSchema(db);
    const id = randomUUID();
    await db.query('INSERT INTO auth.users (id, email) VALUES ($1::uuid, $2::varchar)', [id, 'cli@example.com']);
    const run = await runScript('src/cli/main.ts', ['setup', '--production', '--supabase-auth-users'], { env: { DATABASE_URL: url! } });
    assert.equal(run.code, 0, run.all);
    assert.match(run.stdout, /Supabase user sync installed/);
    const rows = await db.query<{ email: string }>('SELECT email FROM public.users WHERE id = $1::uuid', [id]);
    assert.deepEqual(rows, [{ email: 'cli@example.com' }]);
    const again = await runScript('src/cli/main.ts', ['setup', '--production'], { env: { DATABASE_URL: url! } });
    assert.equal(again.code, 0, again.all);
    const n = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_catalog.pg_trigger WHERE tgname = 'plugin_auth_on_supabase_user'"))[0]!.n;
    assert.equal(n, 1, 'a later plain setup leaves it in place');
    const verified = await runScript('src/cli/main.ts', ['verify', '--production'], { env: { DATABASE_URL: url! } });
    assert.equal(verified.code, 0, verified.all);
    assert.match(verified.stdout, /matches the expected schema/, 'the opt-in functions are not reported as drift');
  }, { setup: false }));
