// The operator's console in a real browser (Debian's Chromium through playwright-core), on both
// databases: search by every key, each action through its confirmation page and its audit row,
// the failure views with failures the plugin server itself recorded, CSV downloads matching the
// database, hostile input in every field searched or shown (markup, CSV formulas), and CSRF
// refusals (no token, a foreign Origin, another session's token). A missing Chromium fails these
// tests; it never skips them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './helpers/plugin-host.ts';
import { parseCsv, tableRows } from './helpers/pages.ts';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { FORMULA, XSS, seedConsole, serverFailures } from './helpers/console.ts';
import { PRICES, subscription } from './helpers/stripe.ts';
import { TOKEN_SECRET } from './helpers/secrets.ts';
import { createPluginAuth } from '../src/auth.ts';
import { startDashboardServer } from '../src/dashboard/server.ts';
import { createDashboardHandler } from '../src/dashboard/handler.ts';
import { csvCell } from '../src/dashboard/console.ts';

let browser: Browser;
before(async () => {
  browser = await launchChromium([]);
});
after(async () => {
  await browser?.close();
});

const DAY = 86_400;

for (const dialect of DIALECTS) {
  describe(`operator's console in the browser [${dialect}]`, () => {
    test('find, act through confirmations with audit rows, see what failed, export CSV; hostile input stays text; CSRF refused', () =>
      withDatabase(dialect, async ({ db }) => {
        const s = await seedConsole(db);
        await serverFailures(db, s.ada);
        const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
        const reconciled: string[] = [];
        const server = await startDashboardServer(db, {
          port: 0,
          // The Stripe reconcile is the Stripe integration's; here it re-applies ada's subscription as active.
          reconcileStripe: async (userId) => {
            reconciled.push(userId);
            const now = Math.floor(Date.now() / 1000);
            return auth.subscriptions.syncFromStripe(subscription({ id: 'sub_ADA', customer: 'cus_ADA123', status: 'active', priceId: PRICES.pro, userId, periodStart: now - 20 * DAY, periodEnd: now + 10 * DAY }) as never, { eventCreated: now });
          },
        });
        const context = await browser.newContext();
        const page = await context.newPage();
        const problems: string[] = [];
        const requests: string[] = [];
        page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
        page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
        page.on('dialog', (d) => problems.push(`dialog: ${d.message()}`));
        page.on('request', (r) => requests.push(r.url()));
        const audits = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.console_audit_log'))[0]!.n;
        const lastAudit = async () =>
          (await db.query<{ actor: string; action: string; user_id: string; subject: string | null; before: unknown; after: unknown }>(
            'SELECT actor, action, user_id, subject, before, after FROM public.console_audit_log ORDER BY id DESC LIMIT 1'))[0]!;
        const parse = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : v) as Record<string, any>;
        const search = async (q: string) => {
          await page.fill('#q', q);
          await Promise.all([page.waitForNavigation(), page.press('#q', 'Enter')]); // the keyboard alone
        };
        /** Opens the action's confirmation from the user page, checks it names the subject, confirms. */
        const confirm = async (selector: string, expect: RegExp, fill?: () => Promise<void>) => {
          await page.click(selector);
          assert.match(await page.locator('#confirm').innerText(), expect);
          await fill?.();
          await Promise.all([page.waitForNavigation(), page.click('#confirm button[type="submit"]')]);
          assert.equal(await page.locator('.notice').count(), 1, await page.locator('main').innerText());
          assert.match(await page.locator('.notice').innerText(), /./);
        };
        try {
          assert.equal((await page.goto(server.url))!.status(), 200);

          // ---- find ----
          await search('ada@example.com');
          assert.equal(new URL(page.url()).pathname, `/users/${s.ada}`);
          const sources = await page.locator('#sources').innerText();
          assert.match(sources, /cus_ADA123/);
          assert.match(sources, /past_due/);
          await search('cus_BEA456');
          assert.equal(new URL(page.url()).pathname, `/users/${s.bea}`);
          assert.match(await page.locator('#sources').innerText(), /cancels at period end/);
          await search('sub_ADA');
          assert.equal(new URL(page.url()).pathname, `/users/${s.ada}`);
          await search('CYKEY123');
          assert.equal(new URL(page.url()).pathname, `/users/${s.cy}`);
          await search('figma-evil-1');
          assert.equal(new URL(page.url()).pathname, `/users/${s.evil}`);
          await search('@example.com');
          const found = await tableRows(page, 'table-search');
          assert.deepEqual(found.map((r) => r[0]).sort(), ['ada@example.com', 'bea@example.com', 'cy@example.com', 'eve@example.com']);
          // LIKE's wildcards are text: '%' finds nobody's email unless it holds one.
          await search('%');
          assert.equal((await tableRows(page, 'table-search')).length, 0);

          // ---- hostile input: searched and shown, never markup ----
          await search('<script>');
          assert.equal(new URL(page.url()).pathname, `/users/${s.evil}`);
          assert.equal(await page.locator('img[src="x"]').count(), 0);
          assert.equal(await page.locator('script').count(), 0);
          assert.match(await page.locator('#user-title').innerText(), /<script>/);
          await page.goto(`${server.origin}/search?q=${encodeURIComponent(XSS)}&list=1`);
          assert.equal(await page.locator('img[src="x"]').count(), 0);
          assert.equal(await page.locator('#q').inputValue(), XSS);
          assert.notEqual(await page.title(), 'pwned');

          // ---- cy's page: licenses, devices, today, the last requests with their outcome ----
          await page.goto(`${server.origin}/users/${s.cy}`);
          const requestRows = await tableRows(page, 'table-requests');
          assert.deepEqual(requestRows.map((r) => r[3]), ['limit_reached', 'allowed', 'allowed']);
          assert.deepEqual((await tableRows(page, 'table-today')).map((r) => [r[0], r[1], r[2], r[3]]), [['resize', '2', '2', '1']]);
          assert.match((await tableRows(page, 'table-licenses'))[0]![0]!, /CYKEY123/);
          // Its amount: no Lemon Squeezy order seen yet, then the order its webhook recorded (sql/032).
          assert.equal((await tableRows(page, 'table-licenses'))[0]![3], 'not recorded');
          await db.query("UPDATE public.licenses SET order_id = '7001' WHERE key_prefix = 'CYKEY123'");
          await db.query(`INSERT INTO public.store_orders (provider, order_id, status, total_minor, currency, ordered_at, state_at)
                          VALUES ('lemonsqueezy', '7001', 'paid', 4900, 'USD', now(), now())`);
          await page.goto(`${server.origin}/users/${s.cy}`);
          assert.equal((await tableRows(page, 'table-licenses'))[0]![3], 'USD 49.00 once');
          // The device row carries its lease as the licensing API lists it.
          const [lease] = await db.query<{ live: boolean }>('SELECT live FROM public.list_license_devices($1::uuid)', [s.cy]);
          const deviceRow = (await tableRows(page, 'table-licenses'))[1]!;
          assert.match(deviceRow[0]!, /Cy laptop/);
          assert.equal(deviceRow[1], lease!.live ? 'lease live' : 'lease expired');
          assert.doesNotMatch(await page.content(), /SECRET-REST/);
          assert.equal(await page.locator('img[src="x"]').count(), 0);

          // ---- act: each through its confirmation, each audited ----
          let n = await audits();
          await confirm('a[data-action="refund_today"]', /Refund today/);
          const [counter] = await db.query<{ count: number }>(
            `SELECT count FROM public.daily_usage_summary WHERE user_id = $1::uuid AND usage_date = (now() AT TIME ZONE 'UTC')::date`, [s.cy]);
          assert.equal(counter!.count, 0);
          const refundedRows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_usage WHERE user_id = $1::uuid AND refunded_at IS NOT NULL', [s.cy]);
          assert.equal(refundedRows[0]!.n, 2);
          assert.equal(await audits(), n + 1);
          let a = await lastAudit();
          assert.deepEqual([a.action, a.user_id, a.actor], ['refund_today', s.cy, 'dashboard']);
          assert.deepEqual(parse(a.before).counters, { resize: 2 });
          assert.deepEqual(parse(a.after), { counters: { resize: 0 }, refundedCalls: 2 });
          // The plugin can consume again: the limit starts over.
          assert.equal((await auth.usage.consume(s.cy, 'resize')).allowed, true);

          const until = new Date(Date.now() + 10 * DAY * 1000).toISOString().slice(0, 10);
          await confirm('a[data-action="grant_plan"]', /Change or grant a plan/, async () => {
            await page.selectOption('#field-plan', 'pro');
            await page.fill('#field-until', until);
          });
          const [sub] = await db.query<{ status: string; plan_slug: string; current_period_end: Date }>(
            'SELECT s.status, p.plan_slug, s.current_period_end FROM public.user_subscriptions s JOIN public.subscription_plans p ON p.id = s.plan_id WHERE s.user_id = $1::uuid', [s.cy]);
          assert.deepEqual([sub!.status, sub!.plan_slug], ['manual', 'pro']);
          assert.equal(new Date(sub!.current_period_end).toISOString(), new Date(Date.parse(`${until}T00:00:00Z`) + DAY * 1000).toISOString());
          a = await lastAudit();
          assert.equal(a.action, 'grant_plan');
          assert.equal(parse(a.before), null);
          assert.equal(parse(a.after).plan_slug, 'pro');
          assert.equal((await auth.subscriptions.effectivePlan(s.cy)).planSlug, 'pro');

          await confirm('a[data-action="extend_trial"]', /Extend a trial/, async () => page.fill('#field-days', '5'));
          const [ext] = await db.query<{ current_period_end: Date }>('SELECT current_period_end FROM public.user_subscriptions WHERE user_id = $1::uuid', [s.cy]);
          assert.equal(new Date(ext!.current_period_end).getTime() - new Date(sub!.current_period_end).getTime(), 5 * DAY * 1000);
          assert.equal((await lastAudit()).action, 'extend_trial');

          await confirm(`a[data-token-id="${s.cyTokenId}"]`, /Cy's Mac/);
          const [tok] = await db.query<{ revoked_reason: string | null }>('SELECT revoked_reason FROM public.plugin_tokens WHERE id = $1::uuid', [s.cyTokenId]);
          assert.equal(tok!.revoked_reason, 'revoked_from_dashboard');
          a = await lastAudit();
          assert.deepEqual([a.action, a.subject], ['revoke_token', s.cyTokenId]);

          await confirm(`a[data-action="revoke_device"]`, /Cy laptop on lemonsqueezy license CYKEY123/);
          assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.license_devices WHERE license_id = $1::uuid', [s.licenseId]))[0]!.n, 0);
          a = await lastAudit();
          assert.deepEqual([a.action, a.subject, parse(a.after).devices_left], ['revoke_device', `${s.licenseId}:${s.deviceId}`, 0]);

          await confirm(`a[data-action="remove_seat"][data-subject="${s.eve}"]`, /eve@example\.com/);
          assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.seat_assignments WHERE member_user_id = $1::uuid', [s.eve]))[0]!.n, 0);
          assert.equal((await lastAudit()).action, 'remove_seat');

          await confirm(`a[data-action="deactivate_license"]`, /CYKEY123/);
          assert.equal((await db.query<{ status: string }>('SELECT status FROM public.licenses WHERE id = $1::uuid', [s.licenseId]))[0]!.status, 'disabled');
          a = await lastAudit();
          assert.deepEqual([a.action, parse(a.before).status, parse(a.after).status], ['deactivate_license', 'active', 'disabled']);

          // Re-sync from Stripe: the injected reconcile runs, its before/after audited.
          await page.goto(`${server.origin}/users/${s.ada}`);
          await confirm('a[data-action="resync_stripe"]', /Re-sync from Stripe/);
          assert.deepEqual(reconciled, [s.ada]);
          a = await lastAudit();
          assert.deepEqual([a.action, parse(a.before).status, parse(a.after).subscription.status], ['resync_stripe', 'past_due', 'active']);
          // The user page lists what was done to the user.
          assert.equal((await tableRows(page, 'table-user-audit'))[0]![2], 'resync_stripe');

          // ---- CSRF: no token, a foreign Origin, another session's token: 403, nothing written ----
          n = await audits();
          await page.goto(`${server.origin}/users/${s.ada}/actions/refund_today`);
          const token = await page.locator('input[name="csrf"]').getAttribute('value');
          const form = (csrf: string | null) => ({ ...(csrf === null ? {} : { csrf }), confirm: 'yes' });
          const actionUrl = `${server.origin}/users/${s.ada}/actions/refund_today`;
          assert.equal((await context.request.post(actionUrl, { form: form(null), headers: { origin: server.origin } })).status(), 403);
          assert.equal((await context.request.post(actionUrl, { form: form(token), headers: { origin: 'http://evil.test' } })).status(), 403);
          const other = await browser.newContext();
          const otherPage = await other.newPage();
          await otherPage.goto(server.url);
          assert.equal((await other.request.post(actionUrl, { form: form(token), headers: { origin: server.origin } })).status(), 403, "another session's token");
          await other.close();
          assert.equal((await context.request.post(actionUrl, { form: { csrf: token! }, headers: { origin: server.origin } })).status(), 400, 'not confirmed');
          assert.equal(await audits(), n);
          // The same form, confirmed, from this origin: done.
          assert.equal((await context.request.post(actionUrl, { form: form(token), headers: { origin: server.origin }, maxRedirects: 0 })).status(), 303);
          assert.equal(await audits(), n + 1);

          // ---- what failed ----
          await page.goto(`${server.origin}/failures?days=7`);
          const deliveries = await tableRows(page, 'table-deliveries');
          const stripeRow = deliveries.find((r) => r[0] === 'stripe')!;
          assert.ok(stripeRow, await page.locator('main').innerText());
          const recorded = await db.query<{ outcome: string; n: number }>(`SELECT outcome, count(*)::int AS n FROM public.webhook_deliveries WHERE provider = 'stripe' GROUP BY 1`);
          const byOutcome = Object.fromEntries(recorded.map((r) => [r.outcome, r.n]));
          assert.deepEqual(stripeRow.slice(1).map(Number), ['accepted', 'duplicate', 'ignored', 'refused'].map((o) => byOutcome[o] ?? 0));
          assert.equal(byOutcome.refused, 1);
          assert.equal(byOutcome.ignored, 1);
          assert.equal((byOutcome.accepted ?? 0) + (byOutcome.duplicate ?? 0), 2);
          const refused = await tableRows(page, 'table-refused-deliveries');
          assert.deepEqual(refused.map((r) => [r[1], r[3]]), [['stripe', 'invalid_signature']]);
          assert.deepEqual((await tableRows(page, 'table-sign-ins')).map((r) => [r[0], r[1], r[2]]), [['/plugin/sign-out', 'token_invalid', '1']]);
          const atRisk = await tableRows(page, 'table-at-risk');
          assert.deepEqual(atRisk.map((r) => [r[0], r[2], r[3]]).sort(), [['bea@example.com', 'active', 'at period end']]);
          const atLimit = await tableRows(page, 'table-at-limit');
          assert.deepEqual(atLimit.map((r) => [r[0], r[2]]), [['cy@example.com', '1']]);
          // Nothing of a body or a signature was stored.
          const stored = JSON.stringify(await db.query('SELECT * FROM public.webhook_deliveries'));
          assert.doesNotMatch(stored, /v1=|sub_ADA|cus_ADA/);

          // ---- CSV: what the database holds; formulas neutralised ----
          const csv = async (path: string) => {
            const r = await context.request.get(`${server.origin}${path}`);
            assert.equal(r.status(), 200, path);
            assert.match(r.headers()['content-type']!, /^text\/csv/);
            assert.match(r.headers()['content-disposition']!, /attachment/);
            return parseCsv(await r.text());
          };
          const risk = await csv('/export/at-risk.csv');
          assert.deepEqual(risk[0], ['user_id', 'email', 'plan', 'status', 'cancel_at_period_end', 'current_period_end']);
          assert.deepEqual(risk.slice(1).map((r) => [r[0], r[1], r[3]]), [[s.bea, 'bea@example.com', 'active']]);
          const audit = await csv('/export/audit.csv');
          const dbAudit = await db.query<{ id: string; action: string }>('SELECT id::text AS id, action FROM public.console_audit_log ORDER BY id DESC');
          assert.deepEqual(audit.slice(1).map((r) => [r[0], r[3]]), dbAudit.map((r) => [r.id, r.action]));
          const hooks = await csv('/export/webhook-deliveries.csv?days=7');
          assert.equal(hooks.length - 1, recorded.reduce((x, r) => x + r.n, 0));
          const evilCsv = await csv(`/export/search.csv?q=${encodeURIComponent('figma-evil-1')}`);
          assert.equal(evilCsv[1]![2], `'${FORMULA}${XSS}`, 'a formula is exported as text');
          const requestsCsv = await csv(`/export/requests.csv?user=${s.cy}`);
          const dbRequests = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_usage WHERE user_id = $1::uuid', [s.cy]);
          assert.equal(requestsCsv.length - 1, dbRequests[0]!.n);
          const money = await csv('/export/money.csv');
          assert.deepEqual(money.find((r) => r[0] === 'stripe')!.slice(1, 3), ['2', '2']);
          assert.equal((await context.request.get(`${server.origin}/export/users.csv`)).status(), 404);

          // ---- money, audit pages render ----
          await page.goto(`${server.origin}/money`);
          assert.deepEqual((await tableRows(page, 'table-money')).find((r) => r[0] === 'stripe')!.slice(1, 3), ['2', '2']);
          await page.goto(`${server.origin}/audit`);
          assert.equal((await tableRows(page, 'table-audit')).length, dbAudit.length);

          const outside = requests.filter((u) => !u.startsWith('data:') && new URL(u).hostname !== server.host);
          assert.deepEqual(outside, []);
          assert.deepEqual(problems, []);
        } finally {
          await context.close();
          await server.close();
        }
      }));

    test('without reconcileStripe the re-sync is shown as not configured and refused; an unknown action is 404; bad input writes nothing', () =>
      withDatabase(dialect, async ({ db }) => {
        const s = await seedConsole(db);
        const handler = createDashboardHandler(db, { authorize: () => true, csrfSession: () => 'one' });
        const origin = 'http://127.0.0.1';
        const page = await handler(new Request(`${origin}/users/${s.ada}`));
        const html = await page.text();
        assert.match(html, /Re-sync from Stripe \(not configured\)/);
        assert.doesNotMatch(html, /data-action="resync_stripe"/);
        const confirmPage = await (await handler(new Request(`${origin}/users/${s.ada}/actions/resync_stripe`))).text();
        const csrf = /name="csrf" value="([^"]+)"/.exec(confirmPage)![1]!;
        const post = (path: string, body: Record<string, string>) =>
          handler(new Request(`${origin}${path}`, { method: 'POST', body: new URLSearchParams(body).toString(), headers: { origin, 'content-type': 'application/x-www-form-urlencoded' } }));
        const before = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.console_audit_log'))[0]!.n;
        const r = await post(`/users/${s.ada}/actions/resync_stripe`, { csrf, confirm: 'yes' });
        assert.equal(r.status, 400);
        assert.match(await r.text(), /action_unavailable/);
        assert.equal((await handler(new Request(`${origin}/users/${s.ada}/actions/delete_everything`))).status, 404);
        // A plan that does not exist, a day in the past, a trial on a Stripe row: typed refusals, nothing written.
        const grantPage = await (await handler(new Request(`${origin}/users/${s.ada}/actions/grant_plan`))).text();
        const grantCsrf = /name="csrf" value="([^"]+)"/.exec(grantPage)![1]!;
        const bad = await post(`/users/${s.ada}/actions/grant_plan`, { csrf: grantCsrf, confirm: 'yes', plan: `${XSS}` });
        assert.equal(bad.status, 404);
        const badText = await bad.text();
        assert.match(badText, /unknown_plan/);
        assert.doesNotMatch(badText, /<img src=x/);
        assert.equal((await post(`/users/${s.ada}/actions/grant_plan`, { csrf: grantCsrf, confirm: 'yes', plan: 'pro', until: '2001-01-01' })).status, 400);
        const extPage = await (await handler(new Request(`${origin}/users/${s.ada}/actions/extend_trial`))).text();
        const extCsrf = /name="csrf" value="([^"]+)"/.exec(extPage)![1]!;
        assert.match(await (await post(`/users/${s.ada}/actions/extend_trial`, { csrf: extCsrf, confirm: 'yes', days: '5' })).text(), /not_extendable/);
        assert.equal((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.console_audit_log'))[0]!.n, before);
        const [sub] = await db.query<{ status: string }>('SELECT status FROM public.user_subscriptions WHERE user_id = $1::uuid', [s.ada]);
        assert.equal(sub!.status, 'past_due');
        // A search that is too long or holds control characters: invalid_search, 400.
        assert.equal((await handler(new Request(`${origin}/search?q=${'a'.repeat(256)}`))).status, 400);
        assert.equal((await handler(new Request(`${origin}/search?q=a%00b`))).status, 400);
      }));
  });
}

test('CSV cells: formulas get a leading apostrophe, quotes and line breaks are quoted', () => {
  assert.equal(csvCell('=1+1'), "'=1+1");
  assert.equal(csvCell('+1'), "'+1");
  assert.equal(csvCell('-1'), "'-1");
  assert.equal(csvCell('@SUM(A1)'), "'@SUM(A1)");
  assert.equal(csvCell('\tx'), "'\tx");
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
  assert.equal(csvCell('=A1,"x"'), `"'=A1,""x"""`);
  assert.equal(csvCell(null), '');
  assert.equal(csvCell(new Date(0)), '1970-01-01T00:00:00.000Z');
  assert.equal(csvCell(42), '42');
});
