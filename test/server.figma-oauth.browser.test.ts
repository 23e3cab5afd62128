// Sign in with Figma end to end in Chromium, on both databases: the plugin UI runs the way Figma
// loads it (<iframe sandbox="allow-scripts" srcdoc> on a page from 127.0.0.1: origin "null"), its
// signIn() asks the bridge to open the login URL; the test follows that URL in a second page of the
// same browser: the server's page shows the plugin's code, "The codes match" goes to the stand-in
// Figma consent page, "Allow access" comes back to the callback, which shows "Done: go back to
// Figma" with the code. The plugin's poll then holds a session, and a metered call goes through.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Frame } from 'playwright-core';
import { TOKEN_SECRET } from './helpers/secrets.ts';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { launchChromium, pluginHostPage } from './helpers/plugin-host.ts';
import { startFigmaOAuthStandIn } from './helpers/figma-oauth-standin.ts';
import { createPluginAuth } from '../src/auth.ts';
import { serve, type Served } from '../src/http/node.ts';
import { createPluginServer } from '../src/server/index.ts';
import type { CallResult, PluginClient, SignInResult } from '../src/plugin/index.ts';

declare global {
  interface Window {
    client: PluginClient;
    signInResult: SignInResult | null;
    loginCode: string | null;
  }
}

/** The host page (helpers/plugin-host.ts) with this file's plugin UI. */
function hostPage(apiBaseUrl: string): Promise<string> {
  return pluginHostPage(`
    import { createPluginClient } from './src/plugin/index.ts';
    window.loginCode = null;
    window.client = createPluginClient({ apiBaseUrl: API, poll: { initialDelayMs: 50, maxDelayMs: 200 }, onLoginCode: (c) => (window.loginCode = c) });`, { API: JSON.stringify(apiBaseUrl) });
}

let browser: Browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

for (const dialect of DIALECTS) {
  describe(`Sign in with Figma in Chromium [${dialect}]`, () => {
    test('the plugin UI in a null-origin iframe signs in with Figma (code, consent, done page) and makes a metered call', () =>
      withDatabase(dialect, async ({ db }) => {
        const figma = await startFigmaOAuthStandIn({ account: { id: '31415926', handle: 'Pat Plugin', email: 'pat@example.com' } });
        const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
        const api: Served = await serve(createPluginServer(auth, {
          basePath: '/api',
          meter: { '/plugin/resize': { action: 'resize', items: (body) => body.layers } },
          figmaOAuth: { clientId: figma.clientId, clientSecret: figma.clientSecret, oauthBaseUrl: figma.url, apiBaseUrl: figma.url },
          log: () => {},
        }));
        figma.redirectUris.add(`${api.url}/api/plugin/login/figma/callback`);
        const html = await hostPage(`${api.url}/api`);
        const site: Served = await serve(() => new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8' } }));
        const context = await browser.newContext();
        try {
          const plugin = await context.newPage();
          await plugin.goto(site.url);
          const frame: Frame = plugin.frames().find((f) => f !== plugin.mainFrame())!;
          await frame.waitForFunction(() => typeof window.client === 'object');
          assert.equal(await frame.evaluate(() => self.origin), 'null');

          await frame.evaluate(() => {
            window.signInResult = null;
            void window.client.signIn().then((r) => (window.signInResult = r));
          });
          await plugin.waitForFunction(() => window.stand.opened.length === 1);
          const loginUrl = await plugin.evaluate(() => window.stand.opened[0]!);
          assert.ok(loginUrl.startsWith(`${api.url}/api/plugin/login/figma#`), loginUrl);
          const pluginCode = await frame.evaluate(() => window.loginCode);
          assert.match(pluginCode ?? '', /^[2-9A-HJ-NP-Z]{3}-[2-9A-HJ-NP-Z]{3}$/);

          // The system browser: the server's page, Figma's consent, the callback.
          const browserPage = await context.newPage();
          await browserPage.goto(loginUrl);
          await browserPage.waitForFunction(() => document.getElementById('code')!.textContent !== '…');
          assert.equal(await browserPage.textContent('#code'), pluginCode, 'the page shows the code the plugin shows');
          assert.equal(new URL(browserPage.url()).hash, '', 'the write key is gone from the address bar');
          await Promise.all([browserPage.waitForURL(`${figma.url}/oauth?**`), browserPage.click('#confirm')]);
          assert.equal(await browserPage.textContent('#handle'), 'Pat Plugin');
          await Promise.all([browserPage.waitForURL(`${api.url}/api/plugin/login/figma/callback?**`), browserPage.click('#allow')]);
          assert.equal(await browserPage.textContent('h1'), 'Done: go back to Figma');
          assert.equal(await browserPage.textContent('#code'), pluginCode);
          const cookies = await context.cookies(api.url);
          assert.deepEqual(cookies.filter((c) => c.name.startsWith('fpa_figma_')), [], 'the flow cookie is gone');

          await frame.waitForFunction(() => window.signInResult !== null, undefined, { timeout: 20_000 });
          assert.equal((await frame.evaluate(() => window.signInResult))!.kind, 'ok');
          const resized = (await frame.evaluate(() => window.client.call('/plugin/resize', { layers: 1 }))) as CallResult<{ allowed: boolean; planSlug: string }>;
          assert.equal(resized.kind, 'ok');
          const [user] = await db.query<{ id: string; email: string }>("SELECT id, email FROM public.users WHERE figma_user_id = '31415926'");
          assert.equal(user!.email, 'pat@example.com');
          const [usage] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM public.plugin_usage WHERE user_id = $1::uuid AND action = 'resize' AND allowed", [user!.id]);
          assert.equal(usage!.n, 1);
          assert.equal(figma.issued.length, 1);
        } finally {
          await context.close();
          await site.close();
          await api.close();
          await figma.close();
        }
      }));
  });
}
