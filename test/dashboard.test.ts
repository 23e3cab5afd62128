// The dashboard's queries, handler, plan-history trigger and CLI command, on both databases.
// The browser side is test/dashboard.browser.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DIALECTS, createUser, device, withDatabase } from './helpers/databases.ts';
import { expectOverview, seedDashboardHistory, utcDate } from './helpers/dashboard.ts';
import { copyDataDir } from './helpers/pglite.ts';
import { createDashboardHandler } from '../src/index.ts';
import { readFunnel, readOverview, readRange, readTopUsers, readUsersPerDay, readUserView, type RangeDays } from '../src/dashboard/queries.ts';
import { createHash } from 'node:crypto';
import { keyMatches, startDashboardServer } from '../src/dashboard/server.ts';
import { createPluginAuth } from '../src/auth.ts';
import { openDatabase } from '../src/core/db.ts';

const BIN = fileURLToPath(new URL('../bin/figma-plugin-auth-db.js', import.meta.url));
const allow = { authorize: () => true };

for (const dialect of DIALECTS) {
  describe(`dashboard queries and handler [${dialect}]`, () => {
    test('the funnel counts exactly the seeded stories: 6 hit the limit, 3 upgraded within 7 days, 4 within 30', () =>
      withDatabase(dialect, async ({ db }) => {
        await seedDashboardHistory(db, { crowd: 0 });
        const week = await readOverview(db, { days: 30, withinDays: 7 });
        // ada (upgraded a day later), dee (basic → pro the next day), gus (today, through the API);
        // bob and fay never upgraded; cy upgraded 15 days after her denial.
        assert.deepEqual({ ...week.funnel }, { withinDays: 7, hitLimit: 6, upgraded: 3, stillPaying: 3 });
        const month = await readOverview(db, { days: 30, withinDays: 30 });
        assert.deepEqual({ ...month.funnel }, { withinDays: 30, hitLimit: 6, upgraded: 4, stillPaying: 4 });
        // 7 days: ada's and cy's denials are older: bob, dee, fay, gus; dee and gus upgraded.
        const seven = await readOverview(db, { days: 7, withinDays: 7 });
        assert.deepEqual({ ...seven.funnel }, { withinDays: 7, hitLimit: 4, upgraded: 2, stillPaying: 2 });
      }));

    for (const days of [7, 30, 90]) {
      test(`every figure of the ${days}-day overview is what the seeded history says`, () =>
        withDatabase(dialect, async ({ db }) => {
          const model = await seedDashboardHistory(db, { crowd: 14 });
          const o = await readOverview(db, { days });
          const want = expectOverview(model, { days, now: o.range.now });
          assert.deepEqual(o.range.dates, want.dates);
          assert.deepEqual(new Map(o.calls.map((c) => [`${c.date}|${c.action}`, [c.allowed, c.denied]])), want.calls);
          assert.deepEqual(o.users, want.users);
          assert.deepEqual({ hitLimit: o.funnel.hitLimit, upgraded: o.funnel.upgraded, stillPaying: o.funnel.stillPaying }, want.funnel);
          assert.deepEqual(o.planMix, want.planMix);
          assert.deepEqual(o.devices, want.devices);
          assert.deepEqual(o.sharing.map((s) => s.email).sort(), want.sharing);
          assert.deepEqual(o.topUsers.map((t) => ({ email: t.email, used: t.used, denied: t.denied, calls: t.calls })), want.top);
          // The seed holds what the charts are about: someone sharing, denials, someone paying.
          assert.ok(want.sharing.includes('eve@example.com'));
          assert.ok(o.calls.some((c) => c.denied > 0));
          assert.ok(o.planMix.at(-1)!.paying.pro! > 0);
        }));
    }

    test('the rollups of sql/019: frozen a day at a time, all at once, or behind today, the figures are the seeded history', () =>
      withDatabase(dialect, async ({ db }) => {
        const day = (d: string, n: number) => utcDate(new Date(Date.parse(`${d}T00:00:00Z`) + n * 86_400_000));
        const model = await seedDashboardHistory(db, { crowd: 14 });
        await db.query('SELECT public.usage_rollup()');
        const tables = async () => ({
          days: await db.query('SELECT * FROM public.usage_user_days ORDER BY usage_date, user_id'),
          daily: await db.query('SELECT usage_date::text AS d, active, hit_limit FROM public.usage_daily_users ORDER BY 1'),
          windows: await db.query('SELECT * FROM public.usage_user_windows ORDER BY days, user_id'),
          state: await db.query('SELECT frozen_to::text AS f, limited_7, limited_30, limited_90 FROM public.usage_user_rollup_state'),
        });
        const caughtUp = await tables();
        // The rollup freezes the days before its watermark (now - 5 minutes): today, except in the
        // first five minutes of a UTC day, when it is still yesterday.
        const [mark] = await db.query<{ d: string }>(`SELECT (s.rolled_up_to AT TIME ZONE 'UTC')::date::text AS d FROM public.usage_rollup_state s`);
        assert.ok(mark!.d === model.today || mark!.d === day(model.today, -1), `watermark day ${mark!.d}`);
        assert.equal(caughtUp.state[0]!.f, mark!.d);
        assert.ok(caughtUp.windows.length > 0 && caughtUp.daily.length > 30);
        // What each range shows, against the model, with whatever is frozen at the moment.
        const check = async (label: string) => {
          for (const days of [7, 30, 90] as RangeDays[]) {
            const range = await readRange(db, days);
            for (const within of [7, 30]) {
              const want = expectOverview(model, { days, within, now: range.now });
              const funnel = await readFunnel(db, range, within);
              assert.deepEqual({ hitLimit: funnel.hitLimit, upgraded: funnel.upgraded, stillPaying: funnel.stillPaying }, want.funnel, `${label}: funnel, ${days} days, within ${within}`);
              if (within !== 7) continue;
              assert.deepEqual(await readUsersPerDay(db, range), want.users, `${label}: users, ${days} days`);
              const top = await readTopUsers(db, range, 10);
              assert.deepEqual(top.map((t) => ({ email: t.email, used: t.used, denied: t.denied, calls: t.calls })), want.top, `${label}: top users, ${days} days`);
            }
          }
        };
        await check('caught up');

        // Start over and freeze one day at a time (the daily path: each day enters the windows,
        // and leaves them 7, 30 and 90 days later), checking on the way with frozen_to behind today.
        await db.exec(`DELETE FROM public.usage_user_days; DELETE FROM public.usage_daily_users; DELETE FROM public.usage_user_windows;
                       UPDATE public.usage_user_rollup_state SET frozen_to = NULL, limited_7 = 0, limited_30 = 0, limited_90 = 0;`);
        await db.query(`SELECT public.plugin_auth_roll_user_days('-infinity', (SELECT s.rolled_up_to FROM public.usage_rollup_state s))`);
        await check('nothing frozen');
        const [first] = await db.query<{ d: string }>('SELECT min(usage_date)::text AS d FROM public.daily_usage_summary');
        for (let d = day(first!.d, 1); d <= mark!.d; d = day(d, 1)) {
          const [row] = await db.query<{ n: number }>('SELECT public.plugin_auth_freeze_user_days($1::date) AS n', [d]);
          assert.equal(row!.n, 1, `froze the day before ${d}`);
          if (d === day(model.today, -40) || d === day(model.today, -3)) await check(`frozen to ${d}`);
        }
        assert.deepEqual(await tables(), caughtUp, 'a day at a time ends where one catch-up does');
        await check('a day at a time');

        // A re-roll (watermark back to -infinity, docs/scale.md) rebuilds them from the log.
        await db.exec(`UPDATE public.usage_rollup_state SET rolled_up_to = '-infinity'; TRUNCATE public.usage_daily_totals;`);
        await db.query('SELECT public.usage_rollup()');
        assert.deepEqual(await tables(), caughtUp, 're-rolled');
      }));

    test('the funnel: of two denials in one microsecond, the first by id is the hit, and its plan decides the upgrade', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db, 'tie@example.com');
        const at = new Date(Date.now() - 3_600_000).toISOString();
        // Stored basic first, free second; free has the smaller id (the call made first).
        await db.query(
          `INSERT INTO public.plugin_usage (id, user_id, action, items, allowed, reason, plan_slug, created_at) OVERRIDING SYSTEM VALUE
           VALUES (1000, $1::uuid, 'resize', 1, false, 'limit_reached', 'basic', $2::timestamptz),
                  (10, $1::uuid, 'resize', 1, false, 'limit_reached', 'free', $2::timestamptz)`,
          [user, at],
        );
        await db.query(
          `INSERT INTO public.user_subscriptions (user_id, plan_id, status)
           SELECT $1::uuid, p.id, 'active' FROM public.subscription_plans p WHERE p.plan_slug = 'basic'`,
          [user],
        );
        // Hit on free, then basic: an upgrade. Hit on basic (the stored order) would be none.
        const funnel = await readFunnel(db, await readRange(db, 7), 7);
        assert.deepEqual({ hitLimit: funnel.hitLimit, upgraded: funnel.upgraded }, { hitLimit: 1, upgraded: 1 });
      }));

    test('plan history from every source (Figma linked, lapsed and back, unpaid; a license; a seat and its team license), on the user page and in the plan mix', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db);
        const digest = () => createHash('sha256').update(String(Math.random())).digest('hex');
        const history = async (userId: string) =>
          (await db.query<{ plan_slug: string | null; status: string | null; grants_access: boolean; source: string }>(
            `SELECT p.plan_slug, h.status, h.grants_access, h.source FROM public.user_plan_history h
               LEFT JOIN public.subscription_plans p ON p.id = h.plan_id WHERE h.user_id = $1::uuid ORDER BY h.id`,
            [userId],
          )).map((r) => [r.source, r.plan_slug, r.status, r.grants_access]);
        const mixNow = async () => {
          const o = await readOverview(db, { days: 7 });
          return { users: o.planMix.at(-1)!.users, paying: o.planMix.at(-1)!.paying };
        };

        // ada pays a Stripe-like subscription for basic, and is also PAID on Figma, linked to pro.
        const ada = await createUser(db, 'ada@example.com');
        await db.query(
          `INSERT INTO public.user_subscriptions (user_id, plan_id, status, stripe_subscription_id)
           SELECT $1::uuid, p.id, 'active', 'sub_ada' FROM public.subscription_plans p WHERE p.plan_slug = 'basic'`,
          [ada],
        );
        await db.query(`SELECT * FROM public.link_figma_plan('pro', 'PAID')`);
        await db.query(`SELECT * FROM public.figma_record_check($1::text, 'figma-ada', 'PAID', NULL, NULL, NULL, 3600)`, [digest()]);
        assert.deepEqual(await history(ada), [['stripe', 'basic', 'active', true]], 'an unlinked Figma user has no history');
        await db.query(`SELECT public.figma_link_user('figma-ada', $1::uuid)`, [ada]);
        assert.deepEqual(await history(ada), [['stripe', 'basic', 'active', true], ['figma', 'pro', 'PAID', true]]);
        // A refresh of the same grant (the next check) records nothing.
        await db.query(`SELECT * FROM public.figma_record_check($1::text, 'figma-ada', 'PAID', NULL, NULL, NULL, 3600)`, [digest()]);
        assert.equal((await history(ada)).length, 2);

        const view = await readUserView(db, ada, 30);
        assert.deepEqual(view.planNow, { slug: 'pro', status: 'PAID', source: 'figma' });
        assert.deepEqual(view.grants.map((g) => [g.source, g.planSlug]), [['figma', 'pro'], ['stripe', 'basic']]);
        assert.deepEqual(view.history.map((h) => h.source), ['figma', 'stripe']);
        const page = await (await createDashboardHandler(db, allow)(new Request(`http://127.0.0.1/users/${ada}`))).text();
        assert.match(page, /<table id="table-grants">[\s\S]*?<th scope="row">figma<\/th><td class="text">pro<\/td>/);
        assert.match(page, /<table id="table-plan-history">[\s\S]*?<td class="text">figma<\/td>/);
        // The plan mix counts ada once, on the best plan; the revenue is her Stripe subscription's.
        let mix = await mixNow();
        assert.deepEqual([mix.users.pro, mix.users.basic, mix.users.free, mix.paying.basic, mix.paying.pro], [1, 0, 0, 1, 0]);

        // The Figma grant lapses (no fresh payment token within the grace): basic again, then back.
        // (As if linked three hours ago and last checked two hours ago, with a one-hour grace.)
        await db.query(`UPDATE public.user_plan_history SET changed_at = now() - interval '3 hours' WHERE user_id = $1::uuid AND source = 'figma'`, [ada]);
        await db.query(`UPDATE public.figma_users SET checked_at = now() - interval '2 hours', grant_until = now() - interval '1 hour' WHERE figma_user_id = 'figma-ada'`);
        assert.equal((await history(ada)).length, 2);
        mix = await mixNow();
        assert.deepEqual([mix.users.pro, mix.users.basic], [0, 1]);
        await db.query(`SELECT * FROM public.figma_record_check($1::text, 'figma-ada', 'PAID', NULL, NULL, NULL, 3600)`, [digest()]);
        assert.deepEqual((await history(ada)).slice(2), [['figma', null, 'LAPSED', false], ['figma', 'pro', 'PAID', true]]);
        mix = await mixNow();
        assert.deepEqual([mix.users.pro, mix.users.basic], [1, 0]);
        // Figma says UNPAID: the subscription's plan again; checked again, nothing more recorded.
        await db.query(`SELECT * FROM public.figma_record_check($1::text, 'figma-ada', 'UNPAID', NULL, NULL, NULL, 0)`, [digest()]);
        await db.query(`SELECT * FROM public.figma_record_check($1::text, 'figma-ada', 'UNPAID', NULL, NULL, NULL, 0)`, [digest()]);
        assert.deepEqual((await history(ada)).slice(4), [['figma', null, 'UNPAID', false]]);
        mix = await mixNow();
        assert.deepEqual([mix.users.pro, mix.users.basic, mix.paying.basic], [0, 1, 1]);
        assert.deepEqual((await readUserView(db, ada, 7)).planNow, { slug: 'basic', status: 'active', source: 'stripe' });

        // A personal Gumroad license (sql/016 records it), and a Lemon Squeezy team license of 3
        // seats: the owner gets no plan from it, the seated member does.
        const dee = await createUser(db, 'dee@example.com');
        const owner = await createUser(db, 'owner@example.com');
        const member = await createUser(db, 'member@example.com');
        await db.query(`SELECT * FROM public.link_license_plan('basic', 'gumroad', 'solo')`);
        await db.query(`SELECT * FROM public.link_license_plan('enterprise', 'lemonsqueezy', 'team', NULL, NULL, 3)`);
        const activate = async (provider: string, user: string, product: string, quantity: number) =>
          db.query<{ license_id: string }>(
            `SELECT license_id FROM public.license_record_activation($1::varchar, $2::text, 'ABCD', $3::uuid, $6::uuid, 'Mac', NULL, $4::varchar,
               NULL, NULL, 'active', NULL, $5::integer, NULL, NULL)`,
            [provider, digest(), user, product, quantity, (await device(db, user, 'Mac')).deviceId],
          );
        await activate('gumroad', dee, 'solo', 1);
        const [team] = await activate('lemonsqueezy', owner, 'team', 3);
        assert.deepEqual(await history(dee), [['gumroad', 'basic', 'active', true]]);
        assert.deepEqual(await history(owner), []);
        await auth.seats.assign(owner, member);
        assert.deepEqual(await history(member), [['seat', 'enterprise', 'active', true]]);
        assert.deepEqual((await readUserView(db, member, 7)).planNow, { slug: 'enterprise', status: 'lemonsqueezy', source: 'seat' });
        mix = await mixNow();
        assert.deepEqual([mix.users.enterprise, mix.users.basic, mix.users.free], [1, 2, 1]);
        // The team license is refunded: the member's seat stops granting (a row for each member).
        await db.query(`SELECT public.license_apply_state($1::uuid, 'refunded', NULL, NULL, NULL, now(), true)`, [team!.license_id]);
        assert.deepEqual((await history(member)).at(-1), ['seat', 'enterprise', 'refunded', false]);
        mix = await mixNow();
        assert.deepEqual([mix.users.enterprise, mix.users.free], [0, 2]);
        await auth.seats.remove(owner, member);
        assert.deepEqual((await history(member)).at(-1), ['seat', null, 'removed', false]);
        const memberPage = await (await createDashboardHandler(db, allow)(new Request(`http://127.0.0.1/users/${member}`))).text();
        assert.match(memberPage, /No source grants a plan now/);
        assert.match(memberPage, /\(no plan\)/);
      }));

    test('plan history: every change of a subscription row once, an identical rewrite not at all, deletions kept apart from user deletion', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db);
        const userId = await createUser(db);
        await auth.subscriptions.assignPlan(userId, 'pro');
        await auth.subscriptions.assignPlan(userId, 'enterprise', { until: new Date(Date.now() + 86_400_000) });
        await db.query(`UPDATE public.user_subscriptions SET status = status, plan_id = plan_id WHERE user_id = $1::uuid`, [userId]);
        const rows = await db.query<{ plan_slug: string | null; status: string | null; grants_access: boolean; source: string }>(
          `SELECT p.plan_slug, h.status, h.grants_access, h.source FROM public.user_plan_history h
             LEFT JOIN public.subscription_plans p ON p.id = h.plan_id WHERE h.user_id = $1::uuid ORDER BY h.id`,
          [userId],
        );
        assert.deepEqual(rows, [
          { plan_slug: 'pro', status: 'manual', grants_access: true, source: 'manual' },
          { plan_slug: 'enterprise', status: 'manual', grants_access: true, source: 'manual' },
        ]);
        await db.query('DELETE FROM public.user_subscriptions WHERE user_id = $1::uuid', [userId]);
        const [last] = await db.query<{ plan_id: string | null; grants_access: boolean; source: string }>(
          'SELECT plan_id, grants_access, source FROM public.user_plan_history WHERE user_id = $1::uuid ORDER BY id DESC LIMIT 1',
          [userId],
        );
        assert.deepEqual(last, { plan_id: null, grants_access: false, source: 'deleted' });
        // Deleting a user with a subscription works and takes the history along.
        const other = await createUser(db);
        await auth.subscriptions.assignPlan(other, 'basic');
        await db.query('DELETE FROM public.users WHERE id = $1::uuid', [other]);
        const [left] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.user_plan_history WHERE user_id = $1::uuid', [other]);
        assert.equal(left!.n, 0);
      }));

    test('the handler: 401 unless authorized, a CSP that forbids other origins, typed 400s, 404s', () =>
      withDatabase(dialect, async ({ db }) => {
        await seedDashboardHistory(db, { crowd: 2 });
        assert.throws(() => createDashboardHandler(db, {} as never), TypeError);
        const seen: string[] = [];
        const closed = createDashboardHandler(db, { authorize: (r) => (seen.push(new URL(r.url).pathname), false) });
        for (const path of ['/', '/users/00000000-0000-0000-0000-000000000000', '/nope']) {
          const res = await closed(new Request(`http://127.0.0.1${path}`));
          assert.equal(res.status, 401);
          assert.doesNotMatch(await res.text(), /@example\.com/);
        }
        assert.deepEqual(seen, ['/', '/users/00000000-0000-0000-0000-000000000000', '/nope']);
        const throwing = createDashboardHandler(db, { authorize: () => { throw new Error('session store down'); } });
        assert.equal((await throwing(new Request('http://127.0.0.1/'))).status, 401);

        const open = createDashboardHandler(db, { ...allow, basePath: '/admin/dash' });
        const page = await open(new Request('http://127.0.0.1/admin/dash/?days=7'));
        assert.equal(page.status, 200);
        const csp = page.headers.get('content-security-policy')!;
        assert.match(csp, /default-src 'none'/);
        assert.doesNotMatch(csp, /https?:|\*|unsafe/);
        assert.match(page.headers.get('server-timing')!, /^db;dur=\d/);
        const body = await page.text();
        assert.doesNotMatch(body, /<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
        assert.match(body, /href="\/admin\/dash\/users\/[0-9a-f-]{36}\?days=7"/);
        for (const id of ['chart-calls', 'chart-users', 'chart-funnel', 'chart-plans', 'chart-mrr', 'chart-devices']) {
          assert.match(body, new RegExp(`<svg id="${id}" role="img" aria-label="[^"]{20,}"`), id);
        }
        const bad = await open(new Request('http://127.0.0.1/admin/dash/?days=12'));
        assert.equal(bad.status, 400);
        assert.match(await bad.text(), /invalid_days/);
        assert.equal((await open(new Request('http://127.0.0.1/admin/dash/users/not-a-uuid'))).status, 400);
        assert.equal((await open(new Request('http://127.0.0.1/admin/dash/users/00000000-0000-0000-0000-000000000000'))).status, 404);
        assert.equal((await open(new Request('http://127.0.0.1/elsewhere'))).status, 404);
        assert.equal((await open(new Request('http://127.0.0.1/admin/dash/', { method: 'POST' }))).status, 405);
      }));

    test('revoke: only a POST with the confirmation page\'s CSRF token and confirm=yes revokes, and only that token', () =>
      withDatabase(dialect, async ({ db }) => {
        const model = await seedDashboardHistory(db, { crowd: 0 });
        const handler = createDashboardHandler(db, allow);
        const eve = model.users.find((u) => u.key === 'eve')!;
        const [target, other] = model.tokens.filter((t) => t.userKey === 'eve');
        const path = `http://127.0.0.1/users/${eve.id}/tokens/${target!.tokenId}/revoke`;
        const live = async (id: string) => (await db.query<{ r: Date | null }>('SELECT revoked_at AS r FROM public.plugin_tokens WHERE id = $1::uuid', [id]))[0]!.r === null;
        const post = (body: string, headers: Record<string, string> = {}) =>
          handler(new Request(path, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } }));

        const confirm = await handler(new Request(path));
        assert.equal(confirm.status, 200);
        const csrf = /name="csrf" value="([^"]+)"/.exec(await confirm.text())![1]!;
        assert.equal((await post('confirm=yes')).status, 403);
        assert.equal((await post(`csrf=${'A'.repeat(csrf.length)}&confirm=yes`)).status, 403);
        assert.equal((await post(`csrf=${csrf}&confirm=yes`, { 'sec-fetch-site': 'cross-site' })).status, 403);
        assert.equal((await post(`csrf=${csrf}`)).status, 400);
        // The token of another user through this user's path: not found, nothing revoked.
        const ada = model.users.find((u) => u.key === 'ada')!;
        const wrong = await handler(new Request(`http://127.0.0.1/users/${ada.id}/tokens/${target!.tokenId}/revoke`, { method: 'POST', body: `csrf=${csrf}&confirm=yes` }));
        assert.equal(wrong.status, 403);
        assert.ok(await live(target!.tokenId));

        const done = await post(`csrf=${csrf}&confirm=yes`);
        assert.equal(done.status, 303);
        assert.equal(done.headers.get('location'), `/users/${eve.id}?revoked=${target!.tokenId}`);
        assert.equal(await live(target!.tokenId), false);
        assert.equal(await live(other!.tokenId), true);
      }));

    test('the access key: constant-time match, exchanged by a redirect for a session cookie (HttpOnly, SameSite=Strict) that is not the key', () =>
      withDatabase(dialect, async ({ db }) => {
        assert.equal(keyMatches('abc', 'abc'), true);
        assert.equal(keyMatches('abd', 'abc'), false);
        assert.equal(keyMatches('', 'abc'), false);
        assert.equal(keyMatches(null, 'abc'), false);
        await seedDashboardHistory(db, { crowd: 1 });
        const server = await startDashboardServer(db, { port: 0 });
        try {
          // By default a random loopback address, bound for real (Linux routes all of 127/8 to loopback).
          assert.match(server.url, /^http:\/\/127\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d+\/\?key=[A-Za-z0-9_-]{43}$/);
          assert.notEqual(server.host, '127.0.0.1');
          assert.equal(new URL(server.url).hostname, server.host);
          assert.equal((await fetch(`${server.origin}/`)).status, 401);
          assert.equal((await fetch(`${server.origin}/?key=wrong`)).status, 401);
          assert.equal((await fetch(`${server.origin}/`, { headers: { cookie: `${server.cookieName}=wrong` } })).status, 401);
          const hop = await fetch(server.url, { redirect: 'manual' });
          assert.equal(hop.status, 303);
          assert.equal(hop.headers.get('location'), '/');
          const cookie = hop.headers.get('set-cookie')!;
          assert.match(cookie, /HttpOnly/);
          assert.match(cookie, /SameSite=Strict/);
          const pair = cookie.split(';')[0]!;
          const sid = pair.slice(pair.indexOf('=') + 1);
          assert.match(sid, /^[A-Za-z0-9_-]{43}$/);
          assert.notEqual(sid, server.key, 'the cookie holds a session id, never the key');
          assert.ok(!cookie.includes(server.key));
          const page = await fetch(`${server.origin}/?days=7`, { headers: { cookie: pair } });
          assert.equal(page.status, 200);
          assert.match(await page.text(), /Calls per day/);
          // Each exchange opens its own session.
          const second = (await fetch(server.url, { redirect: 'manual' })).headers.get('set-cookie')!.split(';')[0]!;
          assert.notEqual(second, pair);
          // A session is bound to the Host it was issued for: the same id sent with another Host is refused.
          const withHost = (host: string, cookieHeader: string) =>
            new Promise<number>((resolve, reject) => {
              const u = new URL(server.origin);
              http.get({ host: u.hostname, port: u.port, path: '/', headers: { host, cookie: cookieHeader } }, (res) => {
                res.resume();
                resolve(res.statusCode!);
              }).on('error', reject);
            });
          assert.equal(await withHost(new URL(server.origin).host, pair), 200);
          assert.equal(await withHost(`127.0.0.1:${new URL(server.origin).port}`, pair), 401);
          assert.equal(await withHost(`localhost:${new URL(server.origin).port}`, pair), 401);
          // Ended sessions are refused; the key still opens a new one.
          server.endSessions();
          assert.equal((await fetch(`${server.origin}/`, { headers: { cookie: pair } })).status, 401);
          assert.equal((await fetch(`${server.origin}/`, { headers: { cookie: second } })).status, 401);
          const third = (await fetch(server.url, { redirect: 'manual' })).headers.get('set-cookie')!.split(';')[0]!;
          assert.equal((await fetch(`${server.origin}/`, { headers: { cookie: third } })).status, 200);
        } finally {
          await server.close();
        }
        // An explicit host is used as given; sessionSeconds is checked.
        const local = await startDashboardServer(db, { port: 0, host: '127.0.0.1' });
        try {
          assert.equal(local.host, '127.0.0.1');
          assert.match(local.url, /^http:\/\/127\.0\.0\.1:\d+\//);
        } finally {
          await local.close();
        }
        await assert.rejects(startDashboardServer(db, { port: 0, sessionSeconds: 0 }), TypeError);
      }));

    test('`figma-plugin-auth-db dashboard --port 0` prints its URL with a key, serves the page, stops on SIGTERM', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'fpa-dash-'));
      try {
        const target = dialect === 'pglite' ? `pglite:${join(dir, 'pglite')}` : undefined;
        await withDatabase(dialect, async ({ db, url }) => {
          let databaseUrl = url!;
          let userId: string;
          if (target) {
            await copyDataDir('setup', target.slice('pglite:'.length)); // setup's script, run once per schema
            const local = await openDatabase(target);
            userId = await createUser(local, 'cli@example.com');
            await local.close();
            databaseUrl = target;
          } else {
            userId = await createUser(db, 'cli@example.com');
          }
          // A Stripe key in the environment turns on the console's re-sync (nothing is sent to Stripe here).
          const child = spawn(process.execPath, [BIN, 'dashboard', '--port', '0', '--database-url', databaseUrl], {
            cwd: dir,
            env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', STRIPE_SECRET_KEY: 'sk_test_dashboard_cli_0000000000', STRIPE_API_BASE_URL: 'http://127.0.0.1:9' },
          });
          let stdout = '';
          let stderr = '';
          child.stderr.on('data', (d) => (stderr += d));
          const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
          const link = await new Promise<string>((resolve, reject) => {
            child.stdout.on('data', (d) => {
              stdout += d;
              const m = /http:\/\/127\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d+\/\?key=[A-Za-z0-9_-]+/.exec(stdout);
              if (m) resolve(m[0]);
            });
            child.on('close', () => reject(new Error(`dashboard exited: ${stdout}${stderr}`)));
          });
          const origin = new URL(link).origin;
          assert.notEqual(new URL(link).hostname, '127.0.0.1', 'a random loopback address by default');
          assert.equal((await fetch(`${origin}/`)).status, 401);
          const hop = await fetch(link, { redirect: 'manual' });
          const page = await fetch(`${origin}/`, { headers: { cookie: hop.headers.get('set-cookie')!.split(';')[0]! } });
          assert.equal(page.status, 200);
          assert.match(await page.text(), new RegExp(utcDate(new Date()).slice(0, 4)));
          const userPage = await (await fetch(`${origin}/users/${userId}`, { headers: { cookie: hop.headers.get('set-cookie')!.split(';')[0]! } })).text();
          assert.match(userPage, /data-action="resync_stripe"/, 'STRIPE_SECRET_KEY turns on Re-sync from Stripe');
          assert.doesNotMatch(userPage, /not configured/);
          assert.doesNotMatch(stdout + stderr + userPage, /sk_test_dashboard_cli/, 'the key is never printed or shown');
          child.kill('SIGTERM');
          assert.equal(await exited, 0, stderr);
          assert.match(stdout, /Ctrl\+C/);
        }, { max: 2 });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
