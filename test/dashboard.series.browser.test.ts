// Churn and conversion over time in a real browser (Debian's Chromium through playwright-core), on
// both databases: reached from the overview with the keyboard alone, the window and the period
// picked with the keyboard, the table equal to the figures computed from the seeded history, the
// charts drawn with their labels, no script and nothing loaded from elsewhere, and the CSV equal
// to the database. A missing Chromium fails these tests; it never skips them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './helpers/plugin-host.ts';
import { parseCsv, tableRows } from './helpers/pages.ts';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { SERIES_XSS, expectedSeries, seedSeries } from './helpers/series.ts';
import { startDashboardServer } from '../src/dashboard/server.ts';
import { readSeries } from '../src/dashboard/series.ts';

let browser: Browser;
before(async () => {
  browser = await launchChromium([]);
});
after(async () => {
  await browser?.close();
});

/** Presses Tab until the focused element is the link with this text (at most 80 times); false if never. */
async function tabTo(page: Page, text: string): Promise<boolean> {
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const e = document.activeElement;
      return e && e.tagName === 'A' ? (e.textContent ?? '').trim() : null;
    });
    if (focused === text) return true;
  }
  return false;
}

for (const dialect of DIALECTS) {
  describe(`churn and conversion over time in the browser [${dialect}]`, () => {
    test('reached and driven by keyboard; the table is the seeded history; the CSV is the database', () =>
      withDatabase(dialect, async ({ db }) => {
        const model = await seedSeries(db);
        const server = await startDashboardServer(db, { port: 0 });
        const context = await browser.newContext();
        const page = await context.newPage();
        const problems: string[] = [];
        const requests: string[] = [];
        page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
        page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
        page.on('dialog', (d) => problems.push(`dialog: ${d.message()}`));
        page.on('request', (r) => requests.push(r.url()));
        try {
          assert.equal((await page.goto(server.url))!.status(), 200);
          // From the overview to the series with the keyboard alone.
          assert.ok(await tabTo(page, 'Churn and conversion'), 'the console link is reachable with Tab');
          await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
          assert.equal(new URL(page.url()).pathname, '/series');
          // The default window: 90 days by week, conversion within 30 days.
          let series = await readSeries(db, { days: 90 });
          assert.equal(series.unit, 'week');
          const check = async (days: number, unit: 'day' | 'week' | 'month') => {
            const rows = await tableRows(page, 'table-series');
            const want = expectedSeries(model, series.now, days, unit, 30);
            assert.deepEqual(
              rows.map((r) => [r[0], ...r.slice(2, 5), r[6], r[7], r[8]].join(' ')),
              want.map((w) => [w.start, w.payingAtStart, w.newPaying, w.churned, w.payingAtEnd, w.signUps, w.converted].join(' ')),
              `${days} days by ${unit}`,
            );
            assert.ok(want.some((w) => w.newPaying > 0) && want.some((w) => w.churned > 0) && want.some((w) => w.signUps > 0), 'the seeded history moves');
          };
          await check(90, 'week');
          // Both charts, labelled with their totals; no script at all.
          const label = await page.locator('#chart-series-moves').getAttribute('aria-label');
          const news = series.periods.reduce((a, p) => a + p.newPaying, 0);
          const gone = series.periods.reduce((a, p) => a + p.churned, 0);
          assert.match(label!, new RegExp(`${news} new, ${gone} churned`));
          assert.equal(await page.locator('#chart-series-moves').getAttribute('role'), 'img');
          assert.equal(await page.locator('#chart-series-rates').getAttribute('role'), 'img');
          assert.equal(await page.locator('script').count(), 0);
          assert.doesNotMatch(await page.content(), new RegExp(SERIES_XSS.replace(/[()]/g, '\\$&')));

          // The window and the period, picked with the keyboard: a year by month, then 30 days by day.
          assert.ok(await tabTo(page, '365 days'));
          await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
          assert.match(page.url(), /days=365&by=month/);
          series = await readSeries(db, { days: 365, unit: 'month' });
          await check(365, 'month');
          assert.ok(await tabTo(page, '30 days'));
          await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
          series = await readSeries(db, { days: 30, unit: 'day' });
          await check(30, 'day');
          assert.ok(await tabTo(page, 'week'));
          await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
          assert.match(page.url(), /days=30&by=week/);
          series = await readSeries(db, { days: 30, unit: 'week' });
          await check(30, 'week');

          // The CSV link of this view, reachable by keyboard; its rows are the database's series.
          assert.ok(await tabTo(page, 'CSV'));
          const href = await page.evaluate(() => (document.activeElement as HTMLAnchorElement).href);
          const response = await context.request.get(href);
          assert.equal(response.status(), 200);
          assert.match(response.headers()['content-type']!, /^text\/csv/);
          assert.match(response.headers()['content-disposition']!, /attachment; filename="series.csv"/);
          const csv = parseCsv(await response.text());
          assert.deepEqual(csv[0], ['period_start', 'period_end', 'paying_at_start', 'new_paying', 'churned', 'churn_rate', 'paying_at_end', 'sign_ups', 'paying_within_30_days', 'conversion_rate', 'conversion_complete']);
          const fromDb = await readSeries(db, { days: 30, unit: 'week' });
          assert.deepEqual(
            csv.slice(1).map((r) => [r[0], ...r.slice(2, 5), r[6], r[7], r[8], r[10]]),
            fromDb.periods.map((p) => [p.start, p.payingAtStart, p.newPaying, p.churned, p.payingAtEnd, p.signUps, p.converted, p.complete].map(String)),
          );
          assert.deepEqual(csv.slice(1).map((r) => r[1]!.slice(0, 10)), fromDb.periods.map((p) => p.endsAt.toISOString().slice(0, 10)));
          assert.deepEqual(csv.slice(1).map((r) => r[5]), fromDb.periods.map((p) => (p.churnRate === null ? '' : `${Math.round(p.churnRate * 1000) / 10}%`)));

          // A hostile period in the address bar: 400 naming the code, nothing of it shown as markup.
          const bad = await page.goto(`${server.origin}/series?by=${encodeURIComponent(SERIES_XSS)}`);
          assert.equal(bad!.status(), 400);
          assert.match(await page.locator('main').innerText(), /invalid_period/);
          assert.equal(await page.locator('script').count(), 0);

          const outside = requests.filter((u) => !u.startsWith('data:') && new URL(u).hostname !== server.host);
          assert.deepEqual(outside, []);
          assert.deepEqual(problems.filter((p) => !/status of 400/.test(p)), []);
        } finally {
          await context.close();
          await server.close();
        }
      }));
  });
}
