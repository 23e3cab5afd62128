// The dashboard's queries, handler, plan-history trigger and CLI command, on both databases.
// The browser side is test/dashboard-browser.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { expectOverview, seedDashboardHistory, utcDate } from './helpers/dashboard.ts';
import { createDashboardHandler } from '../src/index.ts';
import { readOverview } from '../src/dashboard/queries.ts';
import { keyMatches, startDashboardServer } from '../src/dashboard/server.ts';
import { createPluginAuth } from '../src/auth.ts';
import { openDatabase } from '../src/core/db.ts';
import { buildSetupScript } from '../src/schema/migrations.ts';

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

    test('the access key: constant-time match, a redirect that moves it into an HttpOnly SameSite=Strict cookie', () =>
      withDatabase(dialect, async ({ db }) => {
        assert.equal(keyMatches('abc', 'abc'), true);
        assert.equal(keyMatches('abd', 'abc'), false);
        assert.equal(keyMatches('', 'abc'), false);
        assert.equal(keyMatches(null, 'abc'), false);
        await seedDashboardHistory(db, { crowd: 1 });
        const server = await startDashboardServer(db, { port: 0 });
        try {
          assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/\?key=[A-Za-z0-9_-]{43}$/);
          assert.equal((await fetch(`${server.origin}/`)).status, 401);
          assert.equal((await fetch(`${server.origin}/?key=wrong`)).status, 401);
          assert.equal((await fetch(`${server.origin}/`, { headers: { cookie: `${server.cookieName}=wrong` } })).status, 401);
          const hop = await fetch(server.url, { redirect: 'manual' });
          assert.equal(hop.status, 303);
          assert.equal(hop.headers.get('location'), '/');
          const cookie = hop.headers.get('set-cookie')!;
          assert.match(cookie, /HttpOnly/);
          assert.match(cookie, /SameSite=Strict/);
          const page = await fetch(`${server.origin}/?days=7`, { headers: { cookie: cookie.split(';')[0]! } });
          assert.equal(page.status, 200);
          assert.match(await page.text(), /Calls per day/);
        } finally {
          await server.close();
        }
      }));

    test('`figma-plugin-auth-db dashboard --port 0` prints its URL with a key, serves the page, stops on SIGTERM', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'fpa-dash-'));
      try {
        const target = dialect === 'pglite' ? `pglite:${join(dir, 'pglite')}` : undefined;
        await withDatabase(dialect, async ({ db, url }) => {
          let databaseUrl = url!;
          if (target) {
            const local = await openDatabase(target);
            await local.exec(`BEGIN;\n${buildSetupScript()}\nCOMMIT;`);
            await createUser(local, 'cli@example.com');
            await local.close();
            databaseUrl = target;
          } else {
            await createUser(db, 'cli@example.com');
          }
          const child = spawn(process.execPath, [BIN, 'dashboard', '--port', '0', '--database-url', databaseUrl], {
            cwd: dir,
            env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
          });
          let stdout = '';
          let stderr = '';
          child.stderr.on('data', (d) => (stderr += d));
          const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
          const link = await new Promise<string>((resolve, reject) => {
            child.stdout.on('data', (d) => {
              stdout += d;
              const m = /http:\/\/127\.0\.0\.1:\d+\/\?key=[A-Za-z0-9_-]+/.exec(stdout);
              if (m) resolve(m[0]);
            });
            child.on('close', () => reject(new Error(`dashboard exited: ${stdout}${stderr}`)));
          });
          const origin = new URL(link).origin;
          assert.equal((await fetch(`${origin}/`)).status, 401);
          const hop = await fetch(link, { redirect: 'manual' });
          const page = await fetch(`${origin}/`, { headers: { cookie: hop.headers.get('set-cookie')!.split(';')[0]! } });
          assert.equal(page.status, 200);
          assert.match(await page.text(), new RegExp(utcDate(new Date()).slice(0, 4)));
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
