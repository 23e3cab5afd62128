// npm run dashboard:screenshot: seeds the known history of the dashboard tests (a larger crowd)
// and the console's stories into an in-memory PGlite database, serves the dashboard on 127.0.0.1,
// and saves with the machine's Chromium (never a downloaded browser): the 30-day page as
// docs/dashboard.png, and the console's pages as docs/dashboard-user.png (a user refused at the
// limit), docs/dashboard-confirm.png (an action's confirmation) and docs/dashboard-failures.png;
// then, with the churn-and-conversion stories added, docs/dashboard-series.png (/series).
// `npm run dashboard:screenshot -- series` writes that one only.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { openDatabase } from '../src/core/db.ts';
import { applySchema } from '../src/schema/setup.ts';
import { startDashboardServer } from '../src/dashboard/server.ts';
import { seedDashboardHistory } from '../test/helpers/dashboard.ts';
import { seedConsole, serverFailures } from '../test/helpers/console.ts';
import { seedSeries } from '../test/helpers/series.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const out = (name: string) => fileURLToPath(new URL(`../docs/${name}`, import.meta.url));
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);

const seriesOnly = process.argv.slice(2).includes('series');
const db = await openDatabase('memory://');
await applySchema(db);
await seedDashboardHistory(db, { crowd: 60 });
const seeded = await seedConsole(db, { domain: 'example.org' });
await serverFailures(db, seeded.ada);
const server = await startDashboardServer(db, { port: 0, label: 'in-memory PGlite (seeded example history)' });
const browser = await chromium.launch({ executablePath: CHROMIUM });
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  const written: string[] = [];
  await page.goto(server.url);
  if (!seriesOnly) {
    await page.screenshot({ path: out('dashboard.png'), fullPage: true });
    await page.goto(`${server.origin}/users/${seeded.cy}`);
    await page.screenshot({ path: out('dashboard-user.png'), fullPage: true });
    await page.goto(`${server.origin}/users/${seeded.cy}/actions/refund_today`);
    await page.screenshot({ path: out('dashboard-confirm.png') });
    await page.goto(`${server.origin}/failures`);
    await page.screenshot({ path: out('dashboard-failures.png'), fullPage: true });
    written.push('dashboard.png', 'dashboard-user.png', 'dashboard-confirm.png', 'dashboard-failures.png');
  }
  // Churn and conversion over time, with its stories added to the history above (after the other pages' photographs).
  await seedSeries(db);
  await page.goto(`${server.origin}/series?days=90&by=week`);
  await page.screenshot({ path: out('dashboard-series.png'), fullPage: true });
  written.push('dashboard-series.png');
  for (const name of written) console.log(`wrote ${out(name)}`);
} finally {
  await browser.close();
  await server.close();
  await db.close();
}
