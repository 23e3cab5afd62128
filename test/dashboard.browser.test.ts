// The dashboard in a real browser (Debian's Chromium through playwright-core), on both databases:
// the seeded history on every chart (read back from the table under it), the funnel's exact
// counts, 401 without the key, the revoke action, and that the page makes no request beyond
// its own loopback address and logs no console error; and that another local server (another
// port of the same host) never gets a usable secret from the dashboard's cookie. A missing Chromium fails these tests; it never skips them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { expectOverview, seedDashboardHistory, type Expected, type SeedModel } from './helpers/dashboard.ts';
import { tableRows as pageTableRows } from './helpers/pages.ts';
import { readCookie, startDashboardServer } from '../src/dashboard/server.ts';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Another local server, e.g. a dev server on another port: records the Cookie header of every request. */
async function startOtherServer(host: string): Promise<{ origin: string; cookies: (string | null)[]; close(): Promise<void> }> {
  const cookies: (string | null)[] = [];
  const server: Server = createServer((req, res) => {
    cookies.push(req.headers.cookie ?? null);
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<p>another local server</p>');
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    origin: `http://${host}:${(server.address() as AddressInfo).port}`,
    cookies,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** What the other server can do with what it saw: replay it to the dashboard, with any Host header. */
function replay(origin: string, host: string, cookie: string): Promise<number> {
  const u = new URL(origin);
  return new Promise((resolve, reject) => {
    httpRequest({ host: u.hostname, port: u.port, path: '/', headers: { host, cookie } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    }).on('error', reject).end();
  });
}

const CHROMIUM = '/usr/bin/chromium';
let browser: Browser;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install -y chromium; .ci/run installs it)`);
  browser = await chromium.launch({ executablePath: CHROMIUM });
});
after(async () => {
  await browser?.close();
});

/** A table's body as text cells, numbers without their thousands separators. */
const tableRows = (page: Page, id: string) => pageTableRows(page, id, { plainNumbers: true });

async function checkOverview(page: Page, want: Expected, model: SeedModel): Promise<void> {
  // Every chart is an SVG image that says what it shows.
  for (const id of ['chart-calls', 'chart-users', 'chart-funnel', 'chart-plans', 'chart-mrr', 'chart-devices']) {
    const chart = page.locator(`svg#${id}`);
    assert.equal(await chart.getAttribute('role'), 'img', id);
    assert.ok(((await chart.getAttribute('aria-label')) ?? '').length > 20, `${id} has an aria-label`);
    assert.ok((await chart.boundingBox())!.height > 50, `${id} is drawn`);
    assert.ok((await chart.locator('title').count()) > 0, `${id} has tooltips`);
  }
  assert.ok((await page.locator('svg#chart-calls text.legend').count()) >= 2, 'the calls chart has a legend');

  const calls = await tableRows(page, 'table-calls');
  assert.deepEqual(new Map(calls.map((r) => [`${r[0]}|${r[1]}`, [Number(r[2]), Number(r[3])]])), want.calls);
  // The stacked bars carry the same numbers: one mark per non-zero value.
  const marks = await page.$$eval('svg#chart-calls rect.mark title', (ts) => ts.map((t) => t.textContent ?? ''));
  assert.equal(marks.length, [...want.calls.values()].flat().filter((n) => n > 0).length);

  const users = await tableRows(page, 'table-users');
  assert.deepEqual(users, want.users.map((u) => [u.date, String(u.active), String(u.newUsers), String(u.hitLimit)]));

  const funnel = await tableRows(page, 'table-funnel');
  assert.deepEqual(funnel.map((r) => Number(r[1])), [want.funnel.hitLimit, want.funnel.upgraded, want.funnel.stillPaying]);

  const plans = await tableRows(page, 'table-plans');
  const slugs = await page.$$eval('#table-plans thead th', (ths) => ths.slice(1).map((t) => t.textContent ?? ''));
  assert.deepEqual(plans, want.planMix.map((d) => [d.date, ...slugs.map((s) => String(d.users[s]))]));

  const mrr = await tableRows(page, 'table-mrr');
  const last = want.planMix.at(-1)!;
  const paid = Object.entries(model.prices).filter(([, p]) => p > 0);
  const dollars = (cents: number) => `$${(cents / 100).toFixed(2)}`;
  for (const [slug, price] of paid) {
    const row = mrr.find((r) => r[0] === slug)!;
    assert.equal(Number(row[2]), last.paying[slug], `${slug} paying`);
    assert.equal(row[3], dollars(last.paying[slug]! * price), `${slug} MRR`);
  }
  assert.equal(mrr.at(-1)![3], dollars(paid.reduce((s, [slug, price]) => s + last.paying[slug]! * price, 0)));

  const devices = await tableRows(page, 'table-devices');
  assert.deepEqual(devices.map((r) => [Number(r[1]), Number(r[2])]), want.devices.map((d) => [d.byDevices, d.byTokens]));
  const sharing = await tableRows(page, 'table-sharing');
  assert.deepEqual(sharing.map((r) => r[0]).sort(), want.sharing);

  const top = await tableRows(page, 'table-top-users');
  assert.deepEqual(top.map((r) => [r[0], Number(r[2]), Number(r[3]), Number(r[4])]), want.top.map((t) => [t.email, t.calls, t.used, t.denied]));
}

for (const dialect of DIALECTS) {
  describe(`dashboard in the browser [${dialect}]`, () => {
    test('the seeded history on every chart, exact funnel, the user view, revoke; nothing leaves its loopback address, no console error', () =>
      withDatabase(dialect, async ({ db }) => {
        const model = await seedDashboardHistory(db, { crowd: 16 });
        const server = await startDashboardServer(db, { port: 0 });
        const context = await browser.newContext();
        const page = await context.newPage();
        const requests: string[] = [];
        const problems: string[] = [];
        page.on('request', (r) => requests.push(r.url()));
        page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
        page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
        try {
          // Without the key: 401, and nothing of the data.
          const anonymous = await browser.newPage();
          const denied = await anonymous.goto(`${server.origin}/`);
          assert.equal(denied!.status(), 401);
          assert.doesNotMatch(await anonymous.content(), /@example\.com/);
          assert.equal((await anonymous.goto(`${server.origin}/users/${model.users[0]!.id}`))!.status(), 401);
          await anonymous.close();

          // With it: the key moves into the cookie, the 30-day page.
          const first = await page.goto(server.url);
          assert.equal(first!.status(), 200);
          assert.equal(new URL(page.url()).search, '');
          assert.match(first!.headers()['content-security-policy']!, /default-src 'none'/);
          await checkOverview(page, expectOverview(model, { days: 30 }), model);

          // The range switch: 7 and 90 days, by the links.
          await page.click('nav.range a:text("7 days")');
          assert.match(page.url(), /days=7/);
          await checkOverview(page, expectOverview(model, { days: 7 }), model);
          await page.click('nav.range a:text("90 days")');
          await checkOverview(page, expectOverview(model, { days: 90 }), model);

          // The funnel window: cy upgraded 15 days after her denial, counted only with 30 days.
          await page.goto(`${server.origin}/?days=30&within=30`);
          const wide = expectOverview(model, { days: 30, within: 30 });
          assert.deepEqual((await tableRows(page, 'table-funnel')).map((r) => Number(r[1])), [wide.funnel.hitLimit, wide.funnel.upgraded, wide.funnel.stillPaying]);
          assert.ok(wide.funnel.upgraded > expectOverview(model, { days: 30 }).funnel.upgraded);

          // A top user's page: usage by day, plan history, tokens.
          await page.goto(`${server.origin}/?days=30`);
          await page.click('#table-top-users a:text("eve@example.com")');
          const eve = model.users.find((u) => u.key === 'eve')!;
          assert.equal(new URL(page.url()).pathname, `/users/${eve.id}`);
          const usage = await tableRows(page, 'table-user-usage');
          const mine = expectOverview({ ...model, calls: model.calls.filter((c) => c.userKey === 'eve') }, { days: 30 });
          assert.deepEqual(new Map(usage.map((r) => [`${r[0]}|${r[1]}`, [Number(r[3]), Number(r[4])]])), mine.calls);
          assert.equal(await page.locator('svg#chart-user-usage').getAttribute('role'), 'img');
          const history = await tableRows(page, 'table-plan-history');
          assert.deepEqual(history.map((r) => [r[1], r[2]]), [['enterprise', 'manual']]);
          const eveTokens = model.tokens.filter((t) => t.userKey === 'eve');
          assert.equal((await tableRows(page, 'table-tokens')).length, eveTokens.length);

          // Revoke one: the confirmation page, then the POST; the database says revoked.
          const target = eveTokens.find((t) => t.device === 'Windows PC')!;
          await page.click(`a[data-token-id="${target.tokenId}"]`);
          assert.match(await page.locator('#confirm').innerText(), /Windows PC/);
          const revokedBefore = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_tokens WHERE revoked_at IS NOT NULL', []);
          await page.click('#confirm-revoke');
          assert.equal(new URL(page.url()).pathname, `/users/${eve.id}`);
          assert.match(await page.locator('.notice').innerText(), /revoked/);
          const [row] = await db.query<{ revoked_at: Date | null; revoked_reason: string | null }>(
            'SELECT revoked_at, revoked_reason FROM public.plugin_tokens WHERE id = $1::uuid', [target.tokenId]);
          assert.ok(row!.revoked_at !== null);
          assert.equal(row!.revoked_reason, 'revoked_from_dashboard');
          const revokedAfter = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_tokens WHERE revoked_at IS NOT NULL', []);
          assert.equal(revokedAfter[0]!.n, revokedBefore[0]!.n + 1);
          const tokenRow = (await tableRows(page, 'table-tokens')).find((r) => r[0] === 'Windows PC')!;
          assert.match(tokenRow[1]!, /^revoked/);

          // The overview follows: eve now has three devices.
          target.revoked = true;
          await page.goto(`${server.origin}/?days=30`);
          await checkOverview(page, expectOverview(model, { days: 30 }), model);

          assert.ok(requests.length > 8);
          const outside = requests.filter((u) => !u.startsWith('data:') && new URL(u).hostname !== server.host);
          assert.deepEqual(outside, [], `requests beyond ${server.host}`);
          assert.deepEqual(problems, []);
        } finally {
          await context.close();
          await server.close();
        }
      }));

    test('another server on another port of the same host gets no usable secret: a session id, not the key, refused for its Host and once ended; on the random loopback host, no cookie at all', () =>
      withDatabase(dialect, async ({ db }) => {
        await seedDashboardHistory(db, { crowd: 1 });
        const context = await browser.newContext();
        const page = await context.newPage();
        // 1. The dashboard on 127.0.0.1 (as with --host 127.0.0.1), a dev server on another port of it.
        const shared = await startDashboardServer(db, { port: 0, host: '127.0.0.1' });
        const other = await startOtherServer('127.0.0.1');
        try {
          assert.equal((await page.goto(shared.url))!.status(), 200);
          await page.goto(`${other.origin}/`);
          const seen = other.cookies.find((c) => c !== null) ?? '';
          // Browsers scope cookies by host, not port: the other server does receive the cookie...
          const value = readCookie(seen, shared.cookieName);
          assert.ok(value, `Chromium sent the dashboard's cookie to another port (${seen})`);
          // ...but it is not the key, nor holds it.
          assert.notEqual(value, shared.key);
          assert.ok(!seen.includes(shared.key), 'the key never reaches another server');
          // Replayed by a browser page under its own host name: refused (the session is bound to its Host).
          assert.equal(await replay(shared.origin, new URL(other.origin).host, `${shared.cookieName}=${value}`), 401);
          assert.equal(await replay(shared.origin, `localhost:${new URL(shared.origin).port}`, `${shared.cookieName}=${value}`), 401);
          // Once the session ends, the value is worth nothing even with the right Host.
          shared.endSessions();
          assert.equal(await replay(shared.origin, new URL(shared.origin).host, `${shared.cookieName}=${value}`), 401);
          assert.equal((await page.goto(`${shared.origin}/`))!.status(), 401, 'the browser itself is signed out');
        } finally {
          await shared.close();
        }
        // 2. The default: a random loopback address per start. The other server (127.0.0.1) gets no cookie.
        const own = await startDashboardServer(db, { port: 0 });
        try {
          assert.match(own.host, /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/);
          assert.notEqual(own.host, '127.0.0.1');
          assert.equal((await page.goto(own.url))!.status(), 200);
          assert.match(await page.content(), /Calls per day/);
          const browserCookies = await context.cookies(own.origin);
          assert.equal(browserCookies.find((c) => c.name === own.cookieName)?.domain, own.host);
          const before = other.cookies.length;
          await page.goto(`${other.origin}/`);
          const fresh = other.cookies.slice(before); // the page, and the favicon Chromium asks for
          assert.ok(fresh.length >= 1);
          for (const seen of fresh) {
            assert.equal(readCookie(seen, own.cookieName), null, `no dashboard cookie on 127.0.0.1 (${seen})`);
            assert.ok(!(seen ?? '').includes(own.key));
          }
        } finally {
          await own.close();
          await other.close();
          await context.close();
        }
      }));
  });
}
