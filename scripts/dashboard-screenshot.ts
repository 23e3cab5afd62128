// npm run dashboard:screenshot: seeds the known history of the dashboard tests (a larger crowd)
// into an in-memory PGlite database, serves the dashboard on 127.0.0.1, and saves the 30-day page
// as docs/dashboard.png with the machine's Chromium (never a downloaded browser).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { openDatabase } from '../src/core/db.ts';
import { applySchema } from '../src/schema/setup.ts';
import { startDashboardServer } from '../src/dashboard/server.ts';
import { seedDashboardHistory } from '../test/helpers/dashboard.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUT = fileURLToPath(new URL('../docs/dashboard.png', import.meta.url));
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);

const db = await openDatabase('memory://');
await applySchema(db);
await seedDashboardHistory(db, { crowd: 60 });
const server = await startDashboardServer(db, { port: 0, label: 'in-memory PGlite (seeded example history)' });
const browser = await chromium.launch({ executablePath: CHROMIUM });
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  await page.goto(server.url);
  await page.screenshot({ path: OUT, fullPage: true });
  console.log(`wrote ${OUT}`);
} finally {
  await browser.close();
  await server.close();
  await db.close();
}
