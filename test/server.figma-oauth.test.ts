// Sign in with Figma (src/server/figma-oauth.ts, src/tokens/figma-identity.ts, figma_oauth_user in
// sql/functions/figma.sql) through real HTTP on 127.0.0.1 against a stand-in of Figma's OAuth
// endpoints and /v1/me, on both databases: the whole flow to a metered call, one user per Figma id
// (also 16 first sign-ins at once), linking with Figma checkout, the email rule, and the hostile
// cases (state, replayed code, PKCE, consent denied, /v1/me failing, slow or lying, cross-site
// start, a forged cookie).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TOKEN_SECRET } from './helpers/secrets.ts';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { startFigmaOAuthStandIn, type FigmaAccount, type FigmaOAuthStandIn } from './helpers/figma-oauth-standin.ts';
import { startFigmaStandIn } from './helpers/figma-standin.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { createPluginAuth } from '../src/auth.ts';
import { serve } from '../src/http/node.ts';
import { confirmationCode, createPluginServer, type LogEntry, type PluginServerOptions } from '../src/server/index.ts';
import type { Database } from '../src/core/db.ts';

const PAT = 'figd_figma-oauth-test-personal-access-token';
const PLUGIN_ID = '1234567890123456789';

interface Started {
  url: string;
  logs: LogEntry[];
  figma: FigmaOAuthStandIn;
  auth: ReturnType<typeof createPluginAuth>;
  close(): Promise<void>;
}

async function start(db: Database, options: { payments?: string; timeoutMs?: number; clientAuth?: 'basic' | 'body'; server?: Partial<PluginServerOptions> } = {}): Promise<Started> {
  const figma = await startFigmaOAuthStandIn();
  const auth = createPluginAuth(db, {
    tokenSecret: TOKEN_SECRET,
    ...(options.payments ? { figma: { personalAccessToken: PAT, apiBaseUrl: options.payments, pluginId: PLUGIN_ID } } : {}),
  });
  const logs: LogEntry[] = [];
  const handle = createPluginServer(auth, {
    basePath: '/api',
    log: (e) => logs.push(e),
    meter: { '/plugin/resize': { action: 'resize', items: (body) => body.layers } },
    figmaOAuth: {
      clientId: figma.clientId, clientSecret: figma.clientSecret, oauthBaseUrl: figma.url, apiBaseUrl: figma.url,
      ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.clientAuth ? { clientAuth: options.clientAuth } : {}),
    },
    ...options.server,
  });
  const served = await serve(handle);
  figma.redirectUris.add(`${served.url}/api/plugin/login/figma/callback`);
  return { url: served.url, logs, figma, auth, close: async () => { await served.close(); await figma.close(); } };
}

interface Flow {
  readKey: string;
  writeKey: string;
  code: string;
  loginUrl: string;
  /** The redirect to Figma's page. */
  authorizeUrl: string;
  /** name=value of the flow cookie. */
  cookie: string;
}

/** What the plugin and the browser do up to Figma's consent page. */
async function begin(s: Started): Promise<Flow> {
  const begun = await fetch(`${s.url}/api/plugin/login?method=figma`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(begun.status, 200);
  const { readKey, loginUrl, code } = (await begun.json()) as { readKey: string; loginUrl: string; code: string };
  const [page, writeKey] = loginUrl.split('#') as [string, string];
  assert.equal(page, `${s.url}/api/plugin/login/figma`);
  const shown = await fetch(page);
  assert.equal(shown.status, 200);
  assert.match(await shown.text(), /The codes match: continue with Figma/);
  const started = await fetch(`${s.url}/api/plugin/login/figma/start`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: s.url, 'sec-fetch-site': 'same-origin' },
    body: new URLSearchParams({ login: writeKey }).toString(),
  });
  assert.equal(started.status, 303);
  const setCookie = started.headers.getSetCookie()[0]!;
  assert.match(setCookie, /^fpa_figma_[A-Za-z0-9_-]{16}=[A-Za-z0-9_-]+; Path=\/api\/plugin\/login\/figma\/callback; Max-Age=600; HttpOnly; SameSite=Lax$/);
  return { readKey, writeKey, code, loginUrl, authorizeUrl: started.headers.get('location')!, cookie: setCookie.split(';')[0]! };
}

const callback = (url: string, cookie: string | null) => fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });

async function poll(s: Started, readKey: string) {
  const r = await fetch(`${s.url}/api/plugin/login/poll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ readKey }) });
  return (await r.json()) as { status: string; token?: string; tokenId?: string; error?: string };
}

/** The whole flow as one Figma account; returns the plugin's token and the done page. */
async function signIn(s: Started, account?: FigmaAccount) {
  const flow = await begin(s);
  const back = await s.figma.consent(flow.authorizeUrl, 'allow', account);
  const done = await callback(back, flow.cookie);
  const page = await done.text();
  const polled = await poll(s, flow.readKey);
  return { flow, done, page, polled };
}

const userOfToken = async (s: Started, token: string) => (await s.auth.tokens.verify(token)).userId;

for (const dialect of DIALECTS) {
  describe(`Sign in with Figma [${dialect}]`, () => {
    test('plugin → page → Figma consent → callback → done page with the code → poll → metered call; PKCE S256 and Basic client auth; no access token kept', () =>
      withDatabase(dialect, async ({ db }) => {
        const s = await start(db);
        try {
          const flow = await begin(s);
          const authorize = new URL(flow.authorizeUrl);
          assert.equal(authorize.origin + authorize.pathname, `${s.figma.url}/oauth`);
          const p = authorize.searchParams;
          assert.equal(p.get('client_id'), s.figma.clientId);
          assert.equal(p.get('redirect_uri'), `${s.url}/api/plugin/login/figma/callback`);
          assert.equal(p.get('scope'), 'current_user:read');
          assert.equal(p.get('response_type'), 'code');
          assert.equal(p.get('code_challenge_method'), 'S256');
          assert.match(p.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/);
          assert.match(p.get('state')!, /^[A-Za-z0-9_-]{43}$/);
          assert.equal(flow.code, await confirmationCode(flow.writeKey));
          assert.equal((await poll(s, flow.readKey)).status, 'pending');

          const back = await s.figma.consent(flow.authorizeUrl);
          const done = await callback(back, flow.cookie);
          assert.equal(done.status, 200);
          const page = await done.text();
          assert.match(page, /Done: go back to Figma/);
          assert.ok(page.includes(flow.code), 'the done page shows the confirmation code');
          assert.match(done.headers.getSetCookie()[0]!, /Max-Age=0/, 'the flow cookie is cleared');
          assert.deepEqual(s.figma.clientAuth, ['basic']);

          const polled = await poll(s, flow.readKey);
          assert.equal(polled.status, 'done');
          const userId = await userOfToken(s, polled.token!);
          const [user] = await db.query<{ email: string; figma_user_id: string }>('SELECT email, figma_user_id FROM public.users WHERE id = $1::uuid', [userId]);
          assert.deepEqual(user, { email: 'ada@example.com', figma_user_id: '1234567890' });
          const [linked] = await db.query<{ user_id: string; payment_status: string }>('SELECT user_id, payment_status FROM public.figma_users WHERE figma_user_id = $1::varchar', ['1234567890']);
          assert.deepEqual(linked, { user_id: userId, payment_status: 'UNKNOWN' });

          const resized = await fetch(`${s.url}/api/plugin/resize`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${polled.token}` }, body: '{"layers":1}' });
          assert.equal(resized.status, 200);
          assert.equal(((await resized.json()) as { allowed: boolean }).allowed, true);

          // The access token was used for exactly one /v1/me call and is stored nowhere.
          assert.equal(s.figma.issued.length, 1);
          assert.deepEqual(s.figma.calls.filter((c) => c.path === '/v1/me'), [{ path: '/v1/me', status: 200 }]);
          const dump = JSON.stringify(await dumpDatabase(db));
          assert.ok(!dump.includes(s.figma.issued[0]!), 'access token in the database');
          assert.ok(!dump.includes(flow.writeKey) && !dump.includes(flow.cookie.split('=')[1]!), 'write key or cookie in the database');
          assert.ok(!JSON.stringify(s.logs).includes(s.figma.issued[0]!));

          // Again with the same Figma account: the same user, not a new one.
          const again = await signIn(s);
          assert.equal(await userOfToken(s, again.polled.token!), userId);
          const n = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.users'))[0]!.n;
          assert.equal(n, 1);
        } finally {
          await s.close();
        }
      }));

    test('linking: Figma checkout (payment token) and Sign in with Figma are one user, in either order', () =>
      withDatabase(dialect, async ({ db }) => {
        const payments = await startFigmaStandIn(PAT);
        const s = await start(db, { payments: payments.url });
        try {
          // Signed in with Figma first, then the plugin presents a payment token of the same Figma user.
          const first = await signIn(s, { id: '555', handle: 'Paid', email: 'paid@example.com' });
          const userId = await userOfToken(s, first.polled.token!);
          payments.tokens.set('payment-token-555', { figmaUserId: '555', status: 'PAID' });
          const bought = await s.auth.figma.signIn('payment-token-555');
          assert.equal(bought.userId, userId);
          // Checkout first (the user was made by the payment sign-in), then Sign in with Figma.
          payments.tokens.set('payment-token-777', { figmaUserId: '777', status: 'PAID' });
          const paidFirst = await s.auth.figma.signIn('payment-token-777');
          const later = await signIn(s, { id: '777', handle: 'Later', email: 'later@example.com' });
          assert.equal(await userOfToken(s, later.polled.token!), paidFirst.userId);
          const [row] = await db.query<{ payment_status: string }>('SELECT payment_status FROM public.figma_users WHERE figma_user_id = $1::varchar', ['777']);
          assert.equal(row!.payment_status, 'PAID', 'the sign-in keeps what the Payments API said');
          // A Figma id already linked to another (website) user signs in as that user, never a new one.
          const websiteUser = await createUser(db, 'site@example.com');
          payments.tokens.set('payment-token-888', { figmaUserId: '888', status: 'UNPAID' });
          await s.auth.figma.link(websiteUser, 'payment-token-888');
          const linked = await signIn(s, { id: '888', handle: 'Site', email: 'other@example.com' });
          assert.equal(await userOfToken(s, linked.polled.token!), websiteUser);
          const [site] = await db.query<{ email: string }>('SELECT email FROM public.users WHERE id = $1::uuid', [websiteUser]);
          assert.equal(site!.email, 'site@example.com', 'an existing user\'s email is never changed by a sign-in');
        } finally {
          await s.close();
          await payments.close();
        }
      }));

    test('an email another user already has is never merged: a Figma-keyed user with a placeholder email', () =>
      withDatabase(dialect, async ({ db }) => {
        const s = await start(db);
        try {
          const existing = await createUser(db, 'Grace@Example.com');
          const r = await signIn(s, { id: '4242', handle: 'Grace', email: 'grace@example.com' });
          assert.equal(r.polled.status, 'done');
          const userId = await userOfToken(s, r.polled.token!);
          assert.notEqual(userId, existing);
          const [user] = await db.query<{ email: string; figma_user_id: string }>('SELECT email, figma_user_id FROM public.users WHERE id = $1::uuid', [userId]);
          assert.deepEqual(user, { email: 'figma-4242@users.figma.invalid', figma_user_id: '4242' });
          const [old] = await db.query<{ email: string; figma_user_id: string | null }>('SELECT email, figma_user_id FROM public.users WHERE id = $1::uuid', [existing]);
          assert.deepEqual(old, { email: 'Grace@Example.com', figma_user_id: null });
          // The library says so, too.
          assert.deepEqual(await s.auth.figmaIdentity.userFor({ figmaUserId: '4242', email: 'grace@example.com' }), { userId, created: false, emailStored: false });
          await assert.rejects(s.auth.figmaIdentity.userFor({ figmaUserId: '9', email: 'not an email' }), { code: 'invalid_figma_email' });
          await assert.rejects(s.auth.figmaIdentity.userFor({ figmaUserId: "1' OR 1=1", email: null }), { code: 'invalid_figma_user_id' });
        } finally {
          await s.close();
        }
      }));

    test('hostile: state mismatch, no cookie, forged cookie, cross-site start, consent denied — Figma is never asked for a token', () =>
      withDatabase(dialect, async ({ db }) => {
        const s = await start(db);
        try {
          const flow = await begin(s);
          const back = new URL(await s.figma.consent(flow.authorizeUrl));
          const expectPage = async (r: Response, status: number, code: string) => {
            assert.equal(r.status, status);
            assert.match(r.headers.get('content-type')!, /text\/html/);
            assert.match(await r.text(), new RegExp(`data-result="${code}"`));
          };
          // Another state (an attacker's callback link), the right cookie.
          const wrong = new URL(back);
          wrong.searchParams.set('state', 'A'.repeat(43));
          await expectPage(await callback(wrong.toString(), flow.cookie), 401, 'figma_oauth_state_invalid');
          // The right link in a browser that did not start the flow (no cookie).
          await expectPage(await callback(back.toString(), null), 401, 'figma_oauth_state_invalid');
          // A forged cookie value under the right name.
          await expectPage(await callback(back.toString(), `${flow.cookie.split('=')[0]}=${'x'.repeat(80)}`), 401, 'figma_oauth_state_invalid');
          // Another flow's cookie renamed to this state's name (the name is bound into the encryption).
          const other = await begin(s);
          await expectPage(await callback(back.toString(), `${flow.cookie.split('=')[0]}=${other.cookie.split('=')[1]}`), 401, 'figma_oauth_state_invalid');
          assert.deepEqual(s.figma.calls.filter((c) => c.path === '/v1/oauth/token'), [], 'no code exchange for a refused state');
          // Denied on Figma's page.
          const denied = await s.figma.consent(other.authorizeUrl, 'deny');
          await expectPage(await callback(denied, other.cookie), 401, 'figma_oauth_denied');
          // A cross-site form post to /start (an attacker's page auto-submitting their write key).
          for (const headers of [{ origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'cross-site' }, {}, { origin: 'null' }] as Record<string, string>[]) {
            const r = await fetch(`${s.url}/api/plugin/login/figma/start`, {
              method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
              body: new URLSearchParams({ login: flow.writeKey }).toString(),
            });
            assert.equal(r.status, 403, JSON.stringify(headers));
            assert.equal(r.headers.get('set-cookie'), null);
          }
          // An oversized form (the page posts one 43-character key) is refused while it streams.
          const big = await fetch(`${s.url}/api/plugin/login/figma/start`, {
            method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: s.url, 'sec-fetch-site': 'same-origin' },
            body: `login=${flow.writeKey}&pad=${'x'.repeat(4096)}`,
          });
          assert.equal(big.status, 413);
          assert.match(await big.text(), /data-result="body_too_large"/);
          // Nothing completed: both logins still pending, no user.
          assert.equal((await poll(s, flow.readKey)).status, 'pending');
          assert.equal((await poll(s, other.readKey)).status, 'pending');
          const n = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.users'))[0]!.n;
          assert.equal(n, 0);
          for (const entry of s.logs) assert.doesNotMatch(JSON.stringify(entry), /code=|state=|fpa_figma_/);
        } finally {
          await s.close();
        }
      }));

    test('hostile: a replayed code, and a code from another flow (PKCE verifier mismatch) are refused by Figma; the login stays untouched', () =>
      withDatabase(dialect, async ({ db }) => {
        const s = await start(db);
        try {
          const flow = await begin(s);
          const back = await s.figma.consent(flow.authorizeUrl);
          assert.equal((await callback(back, flow.cookie)).status, 200);
          const firstToken = await poll(s, flow.readKey);
          assert.equal(firstToken.status, 'done');
          // Replayed: the same callback URL with the same cookie (e.g. from history).
          const replay = await callback(back, flow.cookie);
          assert.equal(replay.status, 401);
          assert.match(await replay.text(), /figma_oauth_failed/);

          // Code injection: the attacker's own code, pasted into the victim's callback with the victim's state.
          const victim = await begin(s);
          const attacker = await begin(s);
          const attackerBack = new URL(await s.figma.consent(attacker.authorizeUrl, 'allow', { id: '666', handle: 'Mallory', email: 'm@example.com' }));
          const injected = new URL(await s.figma.consent(victim.authorizeUrl)); // victim's state
          injected.searchParams.set('code', attackerBack.searchParams.get('code')!);
          const r = await callback(injected.toString(), victim.cookie);
          assert.equal(r.status, 401);
          assert.match(await r.text(), /figma_oauth_failed/);
          assert.equal(s.figma.calls.filter((c) => c.path === '/v1/oauth/token' && c.status === 400).length, 2);
          assert.equal((await poll(s, victim.readKey)).status, 'pending');
          const n = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM public.figma_users WHERE figma_user_id = '666'"))[0]!.n;
          assert.equal(n, 0, 'the attacker\'s Figma account got nowhere');
        } finally {
          await s.close();
        }
      }));

    test('hostile: /v1/me failing (403, 429, 500), slow, garbled or without an id, and the token endpoint down: typed pages, nothing written', () =>
      withDatabase(dialect, async ({ db }) => {
        const s = await start(db, { timeoutMs: 300 });
        try {
          const cases: [FigmaOAuthStandIn['meFailure'], number, string][] = [
            [{ kind: 'http', status: 403 }, 401, 'figma_oauth_failed'],
            [{ kind: 'http', status: 429 }, 503, 'figma_unavailable'],
            [{ kind: 'http', status: 500 }, 503, 'figma_unavailable'],
            [{ kind: 'slow', ms: 1500 }, 503, 'figma_unavailable'],
            [{ kind: 'garbage' }, 503, 'figma_unavailable'],
            [{ kind: 'no_id' }, 503, 'figma_unavailable'],
          ];
          for (const [failure, status, code] of cases) {
            s.figma.meFailure = failure;
            const flow = await begin(s);
            const r = await callback(await s.figma.consent(flow.authorizeUrl), flow.cookie);
            assert.equal(r.status, status, JSON.stringify(failure));
            assert.match(await r.text(), new RegExp(`data-result="${code}"`));
            assert.equal((await poll(s, flow.readKey)).status, 'pending');
          }
          s.figma.meFailure = null;
          s.figma.tokenFailure = { kind: 'http', status: 503 };
          const flow = await begin(s);
          const r = await callback(await s.figma.consent(flow.authorizeUrl), flow.cookie);
          assert.equal(r.status, 503);
          const { users, figma } = (await db.query<{ users: number; figma: number }>('SELECT (SELECT count(*)::int FROM public.users) AS users, (SELECT count(*)::int FROM public.figma_users) AS figma'))[0]!;
          assert.deepEqual({ users, figma }, { users: 0, figma: 0 });
          assert.ok(s.logs.some((e) => e.code === 'figma_unavailable' && e.status === 503 && e.route === '/plugin/login/figma/callback'));
        } finally {
          await s.close();
        }
      }));

    test('16 first sign-ins of one Figma account at once make one user; every plugin gets a session for it', () =>
      withDatabase(dialect, async ({ db }) => {
        const s = await start(db);
        try {
          const flows = await Promise.all(Array.from({ length: 16 }, () => begin(s)));
          const backs = await Promise.all(flows.map((f) => s.figma.consent(f.authorizeUrl, 'allow', { id: '16161616', handle: 'Many', email: 'many@example.com' })));
          const answers = await Promise.all(flows.map((f, i) => callback(backs[i]!, f.cookie)));
          assert.deepEqual(answers.map((a) => a.status), Array(16).fill(200));
          const users = new Set<string>();
          for (const f of flows) users.add(await userOfToken(s, (await poll(s, f.readKey)).token!));
          assert.equal(users.size, 1);
          const n = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM public.users WHERE figma_user_id = '16161616' OR email = 'many@example.com'"))[0]!.n;
          assert.equal(n, 1);
        } finally {
          await s.close();
        }
      }, { max: 16 }));

    test('configuration: bad figmaOAuth options are figma_oauth_not_configured; with a website too, ?method picks the page; clientAuth body', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
        assert.throws(() => createPluginServer(auth, { figmaOAuth: { clientId: '', clientSecret: 'x'.repeat(20) } }), { code: 'figma_oauth_not_configured' });
        assert.throws(() => createPluginServer(auth, { figmaOAuth: { clientId: 'id', clientSecret: 'short' } }), { code: 'figma_oauth_not_configured' });
        assert.throws(() => createPluginServer(auth, { figmaOAuth: { clientId: 'id', clientSecret: 'x'.repeat(20), apiBaseUrl: 'ftp://figma' } }), { code: 'figma_oauth_not_configured' });
        const s = await start(db, { server: { website: { origin: 'https://app.example.com', userId: () => null } } });
        try {
          const login = async (q: string) => (await (await fetch(`${s.url}/api/plugin/login${q}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { loginUrl?: string; error?: string };
          assert.match((await login('')).loginUrl!, /^https:\/\/app\.example\.com\/plugin-login#/);
          assert.match((await login('?method=website')).loginUrl!, /^https:\/\/app\.example\.com\/plugin-login#/);
          assert.match((await login('?method=figma')).loginUrl!, new RegExp(`^${s.url}/api/plugin/login/figma#`));
          assert.equal((await login('?method=github')).error, 'invalid_login_method');
        } finally {
          await s.close();
        }
        // The client secret as form fields instead of the Basic header.
        const body = await start(db, { clientAuth: 'body' });
        try {
          const r = await signIn(body, { id: '8080', handle: 'Body', email: 'body@example.com' });
          assert.equal(r.polled.status, 'done');
          assert.deepEqual(body.figma.clientAuth, ['body']);
        } finally {
          await body.close();
        }
      }));
  });
}
