// Teams that manage themselves, end to end over HTTP on 127.0.0.1 (src/server/teams.ts over
// src/billing/teams.ts and sql/functions/teams.sql), on both databases: invite by email and by
// Figma identity, claim from the plugin and from the website (the login page's CSRF rules),
// expired, reused, replaced and revoked links, the member's consent, remove, leave, transfer of
// ownership, the plan history of each change, the last free seat raced by parallel claims, and
// hostile input that writes nothing.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { DAY, PRICES, linkPrices, subscription } from './helpers/stripe.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { createPluginAuth, type PluginAuth } from '../src/auth.ts';
import { serve } from '../src/http/node.ts';
import { createPluginServer, type LogEntry } from '../src/server/index.ts';
import type { SentInvitation } from '../src/server/teams.ts';
import type { Database } from '../src/core/db.ts';
import { TOKEN_SECRET } from './helpers/secrets.ts';

const WEBSITE = 'https://app.example.com';
const JSON_HEADERS = { 'content-type': 'application/json' };
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface Ctx {
  db: Database;
  auth: PluginAuth;
  url: string;
  logs: LogEntry[];
  sent: SentInvitation[];
  /** Who the website says is signed in. */
  website: { userId: string | null };
  /** A plugin session's bearer token for the user. */
  session(userId: string): Promise<string>;
  /** A call to a plugin route with the user's session: status and JSON body. */
  call(userId: string | null, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, any> }>;
  /** A Stripe team subscription of `quantity` seats of pro for the owner (created or updated). */
  stripeTeam(owner: string, quantity: number, id?: string): Promise<void>;
}

async function withTeams(dialect: (typeof DIALECTS)[number], fn: (ctx: Ctx) => Promise<void>, max?: number) {
  await withDatabase(dialect, async ({ db }) => {
    const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
    await linkPrices(db);
    const logs: LogEntry[] = [];
    const sent: SentInvitation[] = [];
    const website = { userId: null as string | null };
    const handle = createPluginServer(auth, {
      log: (e) => logs.push(e),
      website: { origin: WEBSITE, userId: () => website.userId },
      teams: { onInvite: (i) => { sent.push(i); } },
    });
    const served = await serve(handle);
    const sessions = new Map<string, string>();
    const session = async (userId: string) => {
      if (!sessions.has(userId)) sessions.set(userId, (await auth.tokens.issue(userId, { deviceName: 'Figma' })).token);
      return sessions.get(userId)!;
    };
    const call: Ctx['call'] = async (userId, method, path, body) => {
      const headers: Record<string, string> = { ...JSON_HEADERS };
      if (userId) headers.authorization = `Bearer ${await session(userId)}`;
      const response = await fetch(`${served.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
      return { status: response.status, body: (await response.json()) as Record<string, any> };
    };
    let at = Math.floor(Date.now() / 1000) - 600;
    const stripeTeam: Ctx['stripeTeam'] = async (owner, quantity, id = `sub_team_${owner.slice(0, 8)}`) => {
      const base = Math.floor(Date.now() / 1000);
      const s = subscription({ userId: owner, id, customer: `cus_${id}`, priceId: PRICES.pro, periodStart: base - DAY, periodEnd: base + 30 * DAY });
      s.items.data[0].quantity = quantity;
      const r = await auth.subscriptions.syncFromStripe(s as never, { eventCreated: ++at });
      assert.equal(r.applied, true);
    };
    try {
      await fn({ db, auth, url: served.url, logs, sent, website, session, call, stripeTeam });
    } finally {
      await served.close();
    }
  }, max ? { max } : {});
}

const history = (db: Database, userId: string) =>
  db.query<{ source: string; status: string | null; grants_access: boolean }>(
    'SELECT source, status, grants_access FROM public.user_plan_history WHERE user_id = $1::uuid ORDER BY id', [userId]);
const planOf = async (auth: PluginAuth, userId: string) => {
  const p = await auth.subscriptions.effectivePlan(userId);
  return `${p.source}:${p.planSlug}`;
};
const pending = async (db: Database) =>
  (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.team_invitations WHERE claimed_at IS NULL AND revoked_at IS NULL'))[0]!.n;

for (const dialect of DIALECTS) {
  describe(`teams over HTTP [${dialect}]`, () => {
    test('invite by email, claim from the plugin (consent first), the team view, remove, leave, transfer; each change in the plan history', () =>
      withTeams(dialect, async ({ db, auth, call, sent, stripeTeam }) => {
        const owner = await createUser(db);
        const [alice, bob, carol, dave] = (await Promise.all(['alice', 'bob', 'carol', 'dave'].map((n) => createUser(db, `${n}@example.com`)))) as [string, string, string, string];
        await stripeTeam(owner, 3);

        const invited = await call(owner, 'POST', '/plugin/team/invite', { email: '  Alice@Example.COM ' });
        assert.equal(invited.status, 201);
        const token = invited.body.token as string;
        assert.match(token, /^[A-Za-z0-9_-]{43}$/);
        assert.equal(invited.body.claimUrl, `${WEBSITE}/team/join#${token}`, 'the token rides in the fragment');
        assert.ok(new Date(invited.body.expiresAt).getTime() > Date.now() + 6.9 * DAY * 1000, 'seven days by default');
        assert.deepEqual(sent.map((s) => [s.ownerId, s.email, s.figmaUserId, s.claimUrl, s.invitationId]),
          [[owner, 'alice@example.com', null, invited.body.claimUrl, invited.body.invitationId]], 'onInvite delivers the link');
        // Stored as its digest only; nobody seated before the member accepts.
        const stored = await db.query<{ token_hash: string; invitee_email: string }>('SELECT token_hash, invitee_email FROM public.team_invitations');
        assert.deepEqual(stored, [{ token_hash: sha256(token), invitee_email: 'alice@example.com' }]);
        assert.ok(!JSON.stringify(await dumpDatabase(db)).includes(token), 'the token is in no table');
        assert.equal(await planOf(auth, alice), 'free:free', 'invited is not seated');
        assert.equal((await auth.seats.list(owner)).used, 0);

        // Someone else with the link: refused, and the link still works for Alice.
        const stolen = await call(bob, 'POST', '/plugin/team/claim', { token });
        assert.deepEqual([stolen.status, stolen.body.error], [403, 'invitation_not_for_you']);
        const claimed = await call(alice, 'POST', '/plugin/team/claim', { token });
        assert.equal(claimed.status, 200);
        assert.deepEqual([claimed.body.ownerId, claimed.body.licenseId, typeof claimed.body.subscriptionId, claimed.body.seatsUsed, claimed.body.seats],
          [owner, null, 'string', 1, 3]);
        assert.equal(await planOf(auth, alice), 'seat:pro');
        const reused = await call(alice, 'POST', '/plugin/team/claim', { token });
        assert.deepEqual([reused.status, reused.body.error], [410, 'invitation_used'], 'a link is used once');

        // A second invitation to the same person replaces the first; a revoked one stops working.
        const c1 = (await call(owner, 'POST', '/plugin/team/invite', { email: 'carol@example.com' })).body;
        const c2 = (await call(owner, 'POST', '/plugin/team/invite', { email: 'carol@example.com', ttlSeconds: 3600 })).body;
        assert.ok(Math.abs(new Date(c2.expiresAt).getTime() - Date.now() - 3600_000) < 120_000, 'ttlSeconds');
        assert.deepEqual((await call(carol, 'POST', '/plugin/team/claim', { token: c1.token })).body, { error: 'invitation_used' });
        const d1 = (await call(owner, 'POST', '/plugin/team/invite', { email: 'dave@example.com' })).body;
        const view = await call(owner, 'GET', '/plugin/team');
        assert.equal(view.status, 200);
        assert.deepEqual([view.body.seats, view.body.used, view.body.members.map((m: any) => [m.userId, m.email, m.active]), view.body.memberOf],
          [3, 1, [[alice, 'alice@example.com', true]], null]);
        assert.deepEqual(view.body.invitations.map((i: any) => [i.invitationId, i.email, i.figmaUserId]),
          [[c2.invitationId, 'carol@example.com', null], [d1.invitationId, 'dave@example.com', null]], 'pending invitations only');
        assert.ok(!JSON.stringify(view.body).includes(c2.token), 'the view never holds a token');
        assert.deepEqual((await call(owner, 'POST', '/plugin/team/invitations/revoke', { invitationId: d1.invitationId })).body, { revoked: true });
        assert.deepEqual((await call(dave, 'POST', '/plugin/team/claim', { token: d1.token })).body, { error: 'invitation_used' });
        assert.deepEqual((await call(owner, 'POST', '/plugin/team/invitations/revoke', { invitationId: d1.invitationId })).status, 404);
        assert.equal((await call(carol, 'POST', '/plugin/team/claim', { token: c2.token })).status, 200);

        // An expired link.
        const b1 = (await call(owner, 'POST', '/plugin/team/invite', { email: 'bob@example.com' })).body;
        await db.query("UPDATE public.team_invitations SET created_at = now() - interval '8 days', expires_at = now() - interval '1 second' WHERE id = $1::uuid", [b1.invitationId]);
        assert.deepEqual(await call(bob, 'POST', '/plugin/team/claim', { token: b1.token }), { status: 410, body: { error: 'invitation_expired' } });
        assert.equal(await planOf(auth, bob), 'free:free');

        // The member's own view; the owner removes Carol; Alice leaves.
        const mine = (await call(alice, 'GET', '/plugin/team')).body;
        assert.deepEqual([mine.memberOf.ownerId, mine.memberOf.active, mine.seats], [owner, true, 0]);
        assert.deepEqual(await call(owner, 'POST', '/plugin/team/remove', { memberId: carol }), { status: 200, body: { removed: true } });
        assert.deepEqual(await call(owner, 'POST', '/plugin/team/remove', { memberId: carol }), { status: 404, body: { error: 'seat_not_found' } });
        assert.equal(await planOf(auth, carol), 'free:free');
        assert.deepEqual(await call(alice, 'POST', '/plugin/team/leave'), { status: 200, body: { ownerId: owner } });
        assert.deepEqual(await call(alice, 'POST', '/plugin/team/leave'), { status: 404, body: { error: 'seat_not_found' } });
        assert.equal(await planOf(auth, alice), 'free:free');
        assert.deepEqual((await history(db, alice)).map((h) => [h.source, h.status, h.grants_access]), [['seat', 'active', true], ['seat', 'left', false]]);
        assert.deepEqual((await history(db, carol)).map((h) => [h.source, h.status, h.grants_access]), [['seat', 'active', true], ['seat', 'removed', false]]);

        // Transfer: only to a member; then the team (subscription, seats, invitations) is Bob's.
        assert.deepEqual(await call(owner, 'POST', '/plugin/team/transfer', { newOwnerId: bob }), { status: 409, body: { error: 'team_transfer_blocked' } });
        const b2 = (await call(owner, 'POST', '/plugin/team/invite', { email: 'bob@example.com' })).body;
        assert.equal((await call(bob, 'POST', '/plugin/team/claim', { token: b2.token })).status, 200);
        const d2 = (await call(owner, 'POST', '/plugin/team/invite', { email: 'dave@example.com' })).body;
        const moved = await call(owner, 'POST', '/plugin/team/transfer', { newOwnerId: bob });
        assert.equal(moved.status, 200);
        assert.deepEqual([moved.body.licenses, typeof moved.body.subscriptionId, moved.body.members, moved.body.invitations], [0, 'string', 1, 1]);
        assert.deepEqual((await db.query<{ user_id: string }>('SELECT user_id FROM public.user_subscriptions')).map((r) => r.user_id), [bob]);
        assert.equal(await planOf(auth, bob), 'seat:pro', 'the seats are unchanged');
        const bobs = (await call(bob, 'GET', '/plugin/team')).body;
        assert.deepEqual([bobs.seats, bobs.used, bobs.invitations.length, bobs.memberOf.ownerId], [3, 1, 1, bob]);
        assert.deepEqual(await call(owner, 'POST', '/plugin/team/invite', { email: 'x@example.com' }), { status: 404, body: { error: 'team_not_found' } });
        assert.deepEqual(await call(owner, 'POST', '/plugin/team/remove', { memberId: bob }), { status: 404, body: { error: 'seat_not_found' } });
        // Dave's pending invitation came along: he joins Bob's team.
        assert.equal((await call(dave, 'POST', '/plugin/team/claim', { token: d2.token })).body.ownerId, bob);
        assert.deepEqual((await history(db, owner)).filter((h) => h.source === 'team').map((h) => [h.status, h.grants_access]), [['transferred_out', false]]);
        assert.deepEqual((await history(db, bob)).filter((h) => h.source === 'team').map((h) => [h.status, h.grants_access]), [['transferred_in', false]]);
        // Stripe's next event finds the row by its subscription id: it stays Bob's.
        await stripeTeam(owner, 4, `sub_team_${owner.slice(0, 8)}`);
        assert.deepEqual((await db.query<{ user_id: string; quantity: number }>('SELECT user_id, quantity FROM public.user_subscriptions')), [{ user_id: bob, quantity: 4 }]);
        assert.equal((await call(bob, 'GET', '/plugin/team')).body.seats, 4);
      }));

    test('a license team (Gumroad-style multi-seat, linked with seats) and a Figma identity invitation; transfer moves the license', () =>
      withTeams(dialect, async ({ db, auth, call }) => {
        const owner = await createUser(db);
        const [member, stranger] = [await createUser(db), await createUser(db)];
        await auth.plans.linkLicense('enterprise', { provider: 'lemonsqueezy', productId: '111', variantId: '333', seats: 2 });
        const [license] = await db.query<{ id: string }>(
          `INSERT INTO public.licenses (provider, key_hash, key_prefix, user_id, product_id, variant_id, status, checked_at, state_at)
           VALUES ('lemonsqueezy', $1::text, 'ABCD', $2::uuid, '111', '333', 'active', now(), now()) RETURNING id`, [sha256('team-key'), owner]);
        await auth.figmaIdentity.userFor({ figmaUserId: '1234567', email: null }).then(async ({ userId }) => {
          // The member signed in with Figma once: their Figma account is verified for this user.
          await db.query('UPDATE public.figma_users SET user_id = $1::uuid WHERE user_id = $2::uuid', [member, userId]);
        });
        const inv = await call(owner, 'POST', '/plugin/team/invite', { figmaUserId: '1234567' });
        assert.equal(inv.status, 201);
        assert.deepEqual((await call(stranger, 'POST', '/plugin/team/claim', { token: inv.body.token })).body, { error: 'invitation_not_for_you' });
        const claimed = await call(member, 'POST', '/plugin/team/claim', { token: inv.body.token });
        assert.deepEqual([claimed.status, claimed.body.licenseId, claimed.body.seats], [200, license!.id, 2]);
        assert.equal(await planOf(auth, member), 'seat:enterprise');
        const moved = await call(owner, 'POST', '/plugin/team/transfer', { newOwnerId: member });
        assert.deepEqual(moved.body, { licenses: 1, subscriptionId: null, members: 1, invitations: 0 });
        assert.deepEqual((await db.query<{ user_id: string }>('SELECT user_id FROM public.licenses')).map((r) => r.user_id), [member]);
        assert.equal(await planOf(auth, member), 'seat:enterprise');
        assert.deepEqual((await history(db, member)).filter((h) => h.source !== 'figma').map((h) => [h.source, h.status]), [['seat', 'active'], ['team', 'transferred_in']]);
        // A user with no team: nothing to invite to or transfer.
        assert.deepEqual(await call(stranger, 'POST', '/plugin/team/invite', { email: 'a@example.com' }), { status: 404, body: { error: 'team_not_found' } });
        assert.deepEqual(await call(stranger, 'POST', '/plugin/team/transfer', { newOwnerId: owner }), { status: 404, body: { error: 'team_not_found' } });
      }));

    test('the website claim route follows the login page\'s CSRF rules, and is closed to the plugin\'s origin', () =>
      withTeams(dialect, async ({ db, url, call, website, stripeTeam, auth }) => {
        const owner = await createUser(db);
        const member = await createUser(db, 'member@example.com');
        await stripeTeam(owner, 2);
        const { token } = (await call(owner, 'POST', '/plugin/team/invite', { email: 'member@example.com' })).body;
        const claim = (headers: Record<string, string>, body: string = JSON.stringify({ token })) => fetch(`${url}/team/claim`, { method: 'POST', headers, body });
        website.userId = member;
        const refused: [Record<string, string>, number, string][] = [
          [{ 'content-type': 'text/plain', 'sec-fetch-site': 'same-origin' }, 415, 'unsupported_media_type'],
          [{ ...JSON_HEADERS, origin: 'https://evil.example' }, 403, 'cross_site_request'],
          [{ ...JSON_HEADERS, origin: 'null' }, 403, 'cross_site_request'],
          [{ ...JSON_HEADERS, origin: WEBSITE, 'sec-fetch-site': 'cross-site' }, 403, 'cross_site_request'],
          [{ ...JSON_HEADERS, 'sec-fetch-site': 'same-site' }, 403, 'cross_site_request'],
          [{ ...JSON_HEADERS }, 403, 'cross_site_request'],
        ];
        for (const [headers, status, error] of refused) {
          const r = await claim(headers);
          assert.deepEqual([r.status, ((await r.json()) as { error: string }).error], [status, error], JSON.stringify(headers));
          assert.equal(r.headers.get('access-control-allow-origin'), null, 'no CORS on the website route');
        }
        website.userId = null;
        const anonymous = await claim({ ...JSON_HEADERS, origin: WEBSITE });
        assert.deepEqual([anonymous.status, await anonymous.json()], [401, { error: 'not_signed_in' }]);
        assert.equal(await pending(db), 1, 'refusals used nothing');
        const preflight = await fetch(`${url}/team/claim`, { method: 'OPTIONS', headers: { origin: 'null', 'access-control-request-method': 'POST' } });
        assert.equal(preflight.headers.get('access-control-allow-origin'), null);
        website.userId = member;
        const ok = await claim({ ...JSON_HEADERS, origin: WEBSITE, 'sec-fetch-site': 'same-origin' });
        assert.equal(ok.status, 200);
        assert.equal(((await ok.json()) as { ownerId: string }).ownerId, owner);
        assert.equal(await planOf(auth, member), 'seat:pro');
        const again = await claim({ ...JSON_HEADERS, origin: WEBSITE });
        assert.deepEqual([again.status, await again.json()], [410, { error: 'invitation_used' }]);
        // The plugin routes answer the plugin UI's null-origin preflight.
        const plugin = await fetch(`${url}/plugin/team/claim`, { method: 'OPTIONS', headers: { origin: 'null', 'access-control-request-method': 'POST' } });
        assert.deepEqual([plugin.status, plugin.headers.get('access-control-allow-origin')], [204, '*']);
      }));

    test('the last free seat, claimed by 16 invitees at once over HTTP: exactly one wins; one link claimed 8 times at once: once', () =>
      withTeams(dialect, async ({ db, auth, call, stripeTeam }) => {
        const owner = await createUser(db);
        await stripeTeam(owner, 3);
        await auth.seats.assign(owner, owner);
        await auth.seats.assign(owner, await createUser(db));
        const invitees = await Promise.all(Array.from({ length: 16 }, (_, i) => createUser(db, `racer${i}@example.com`)));
        const tokens: string[] = [];
        for (let i = 0; i < invitees.length; i++) tokens.push((await call(owner, 'POST', '/plugin/team/invite', { email: `racer${i}@example.com` })).body.token);
        for (const u of invitees) await call(u, 'GET', '/plugin/team'); // sessions issued before the race
        const results = await Promise.all(invitees.map((u, i) => call(u, 'POST', '/plugin/team/claim', { token: tokens[i] })));
        const statuses = results.map((r) => (r.status === 200 ? 'ok' : `${r.status}:${r.body.error}`)).sort();
        assert.deepEqual(statuses, [...Array(15).fill('403:no_seats_left'), 'ok']);
        const list = await auth.seats.list(owner);
        assert.deepEqual([list.seats, list.used], [3, 3]);
        assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.team_invitations WHERE claimed_at IS NOT NULL'))[0]!.n, 1);
        assert.equal(await pending(db), 15, 'a refused claim leaves its link unused');
        // One link, eight parallel claims by its invitee (a double click times eight): one seat, once.
        await auth.seats.remove(owner, owner);
        const loser = invitees.find((_, i) => results[i]!.status !== 200)!;
        const token = tokens[invitees.indexOf(loser)]!;
        const same = await Promise.all(Array.from({ length: 8 }, () => call(loser, 'POST', '/plugin/team/claim', { token })));
        assert.deepEqual(same.map((r) => (r.status === 200 ? 'ok' : `${r.status}:${r.body.error}`)).sort(), ['410:invitation_used', ...Array(6).fill('410:invitation_used'), 'ok'].sort());
        assert.deepEqual([(await auth.seats.list(owner)).used, await planOf(auth, loser)], [3, 'seat:pro']);
      }, 20));

    test('a transfer racing claims, invitations and Stripe events: no deadlock, and every seat ends with the new owner', () =>
      withTeams(dialect, async ({ db, auth, call, stripeTeam }) => {
        const owner = await createUser(db);
        const heir = await createUser(db, 'heir@example.com');
        await stripeTeam(owner, 20, 'sub_race');
        await auth.seats.assign(owner, heir);
        const invitees = await Promise.all(Array.from({ length: 8 }, (_, i) => createUser(db, `late${i}@example.com`)));
        const tokens: string[] = [];
        for (let i = 0; i < 8; i++) tokens.push((await call(owner, 'POST', '/plugin/team/invite', { email: `late${i}@example.com` })).body.token);
        for (const u of [...invitees, owner, heir]) await call(u, 'GET', '/plugin/team');
        const answers = await Promise.all([
          ...invitees.map((u, i) => call(u, 'POST', '/plugin/team/claim', { token: tokens[i] })),
          call(owner, 'POST', '/plugin/team/transfer', { newOwnerId: heir }),
          call(owner, 'POST', '/plugin/team/invite', { email: 'more@example.com' }),
          stripeTeam(owner, 21, 'sub_race').then(() => ({ status: 200, body: {} as Record<string, any> })),
        ]);
        // Every answer is a success or a typed refusal (an invite after the transfer finds no team).
        for (const a of answers) assert.ok(a.status === 200 || a.status === 201 || a.body.error === 'team_not_found', JSON.stringify(a));
        assert.ok(answers.slice(0, 8).every((a) => a.status === 200), 'each claim seats its member, before or after the transfer');
        const owners = await db.query<{ owner_user_id: string; n: number }>('SELECT owner_user_id, count(*)::int AS n FROM public.seat_assignments GROUP BY 1');
        assert.deepEqual(owners, [{ owner_user_id: heir, n: 9 }]);
        assert.deepEqual(await db.query('SELECT user_id, quantity FROM public.user_subscriptions'), [{ user_id: heir, quantity: 21 }]);
        assert.deepEqual(await db.query('SELECT DISTINCT owner_user_id FROM public.team_invitations WHERE claimed_at IS NULL AND revoked_at IS NULL'),
          answers[9]!.status === 201 ? [{ owner_user_id: heir }] : []);
      }, 20));

    test('hostile input: typed errors with the right status, nothing written, no token or body in the logs', () =>
      withTeams(dialect, async ({ db, url, call, logs, stripeTeam, auth, session }) => {
        const owner = await createUser(db);
        const member = await createUser(db, 'member@example.com');
        await stripeTeam(owner, 2);
        const { token } = (await call(owner, 'POST', '/plugin/team/invite', { email: 'member@example.com' })).body;
        await call(member, 'GET', '/plugin/team');
        const other = await createUser(db);
        await stripeTeam(other, 2, 'sub_other_team');
        const before = await dumpDatabase(db);
        const cases: [string | null, string, unknown, number, string][] = [
          [owner, '/plugin/team/invite', {}, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { email: 'a@example.com', figmaUserId: '1' }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { email: ['a@example.com'] }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { email: "x'); DROP TABLE public.users; --" }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { email: 'a b@example.com' }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { email: 'a\u0000@example.com' }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { email: `${'a'.repeat(300)}@example.com` }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { figmaUserId: '../../etc' }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { figmaUserId: 12345 }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { email: 'a@example.com', ttlSeconds: 0 }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { email: 'a@example.com', ttlSeconds: 1e12 }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { email: 'a@example.com', ttlSeconds: '3600' }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', { email: 'a@example.com', ttlSeconds: 3600.5 }, 400, 'invalid_invitation'],
          [owner, '/plugin/team/invite', '[]', 400, 'invalid_json'],
          [owner, '/plugin/team/invite', '{"email":', 400, 'invalid_json'],
          [null, '/plugin/team/invite', { email: 'a@example.com' }, 401, 'token_invalid'],
          [member, '/plugin/team/claim', {}, 400, 'invalid_claim_token'],
          [member, '/plugin/team/claim', { token: 42 }, 400, 'invalid_claim_token'],
          [member, '/plugin/team/claim', { token: `${token}x` }, 400, 'invalid_claim_token'],
          [member, '/plugin/team/claim', { token: "' OR 1=1 --" }, 400, 'invalid_claim_token'],
          [member, '/plugin/team/claim', { token: sha256(token) }, 400, 'invalid_claim_token'],
          [member, '/plugin/team/claim', { token: 'A'.repeat(43) }, 404, 'invitation_not_found'],
          [null, '/plugin/team/claim', { token }, 401, 'token_invalid'],
          [owner, '/plugin/team/remove', { memberId: 'not-a-uuid' }, 400, 'invalid_user_id'],
          [owner, '/plugin/team/remove', { memberId: owner }, 404, 'seat_not_found'],
          [owner, '/plugin/team/transfer', { newOwnerId: null }, 400, 'invalid_user_id'],
          [owner, '/plugin/team/transfer', { newOwnerId: owner }, 409, 'team_transfer_blocked'],
          [owner, '/plugin/team/transfer', { newOwnerId: '00000000-0000-4000-8000-000000000000' }, 400, 'unknown_user'],
          [owner, '/plugin/team/invitations/revoke', { invitationId: 'x' }, 400, 'invalid_invitation_id'],
          [owner, '/plugin/team/invitations/revoke', { invitationId: '00000000-0000-4000-8000-000000000000' }, 404, 'invitation_not_found'],
          [member, '/plugin/team/leave', undefined, 404, 'seat_not_found'],
        ];
        for (const [who, path, body, status, error] of cases) {
          const r = await call(who, 'POST', path, body ?? {});
          assert.deepEqual([r.status, r.body.error], [status, error], `${path} ${JSON.stringify(body)}`);
        }
        // The member, seated on another team, cannot be claimed by this one (seat_taken), and keeps the link.
        await auth.seats.assign(other, member);
        assert.deepEqual(await call(member, 'POST', '/plugin/team/claim', { token }), { status: 409, body: { error: 'seat_taken' } });
        await auth.seats.remove(other, member);
        const after = await dumpDatabase(db);
        for (const table of ['team_invitations', 'seat_assignments', 'users', 'licenses']) {
          assert.deepEqual(after.rows[table], before.rows[table], `${table} unchanged`);
        }
        // A body over the cap is read no further.
        const big = await fetch(`${url}/plugin/team/invite`, { method: 'POST', headers: { ...JSON_HEADERS, authorization: `Bearer ${await session(owner)}` }, body: JSON.stringify({ email: 'a'.repeat(40_000) }) });
        assert.equal(big.status, 413);
        const logged = JSON.stringify(logs);
        assert.ok(!logged.includes(token) && !logged.includes('DROP TABLE') && !logged.includes('example.com'), 'logs hold codes, never bodies or tokens');
        assert.ok(logs.every((e) => /^[a-z_]+$/.test(e.code)));
      }));
  });
}
