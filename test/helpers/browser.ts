// Debian's Chromium for every browser test (never a downloaded build; missing, the tests fail, they
// never skip). `npm test` starts one browser for the whole run when it runs a browser test
// (startSharedBrowser, from scripts/test.ts) and hands its address to the test processes, which
// connect to it instead of each starting a browser of their own (a start is about 2.5 s of CPU
// here, a connection a few ms); every test still works in a browser context of its own (its own
// cookies, storage and cache). A test file run on its own starts its own browser.
import { existsSync, readFileSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** The variable that carries the shared browser's address to the test processes. */
export const SHARED_BROWSER_ENV = 'FPA_TEST_BROWSER_WS';

function assertChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install -y chromium; .ci/run installs it); they never skip`);
  }
}

/**
 * The run's shared browser when `npm test` started one, else a browser of this process's own,
 * started with `args` (Playwright adds its own headless defaults, --no-sandbox among them).
 */
export async function launchChromium(args: string[] = ['--no-sandbox']): Promise<Browser> {
  assertChromium();
  const shared = process.env[SHARED_BROWSER_ENV];
  if (shared) return chromium.connect(shared);
  return chromium.launch({ executablePath: CHROMIUM, args });
}

/** Whether a test file uses a browser (it calls launchChromium). */
export function usesBrowser(file: string): boolean {
  try {
    return readFileSync(file, 'utf8').includes('launchChromium(');
  } catch {
    return false;
  }
}

/**
 * One browser for the test processes of a run: its address and how to stop it. Undefined when
 * Chromium is missing, so that each browser test fails with the message that says so.
 */
export async function startSharedBrowser(): Promise<{ wsEndpoint: string; close: () => Promise<void> } | undefined> {
  if (!existsSync(CHROMIUM)) return undefined;
  const server = await chromium.launchServer({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  return { wsEndpoint: server.wsEndpoint(), close: () => server.close() };
}
