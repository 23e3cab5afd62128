// The login CSRF in Chromium, on both databases: a victim signed in on the website (a session
// cookie) visits an attacker's page on another 127.0.0.1 port, which tries to complete the
// attacker's login with a top-level form POST (text/plain, JSON-shaped), a no-cors fetch and a
// CORS fetch. Each request that reaches the server carries the victim's cookie and is refused;
// the login stays pending. The honest page (loginPageHtml, on the website origin) shows the same
// confirmation code as the plugin and completes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { createPluginAuth } from '../src/auth.ts';
import { serve, type Served } from '../src/http/node.ts';
import { createPluginServer, loginPageHtml, type LogEntry } from '../src/server/index.ts';
import { TOKEN_SECRET } from './helpers/secrets.ts';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
let browser: Browser;

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install -y chromium); they never skip`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
});
after(() => browser?.close());

for (const dialect of DIALECTS) {
  describe(`login CSRF in Chromium [${dialect}]`, () => {
    test('a cross-site form POST, no-cors fetch and CORS fetch are refused; the honest page completes', () =>
      withDatabase(dialect, async ({ db }) => {
        const victim = await createUser(db);
        const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
        const seen: Array<{ contentType: string | null; origin: string | null; site: string | null; cookie: boolean }> = [];
        const logs: LogEntry[] = [];
        let website: Served | undefined;
        let attacker: Served | undefined;
        // The website and its API on one origin (as behind one domain); the session is a cookie.
        let handle: ((request: Request) => Promise<Response>) | undefined;
        website = await serve(async (request) => {
          const path = new URL(request.url).pathname;
          if (path === '/sign-in') return new Response('signed in', { headers: { 'set-cookie': 'sid=victim; Path=/; HttpOnly' } });
          if (path === '/plugin-login') return new Response(loginPageHtml({ completeUrl: '/plugin/login/complete', account: 'victim@example.com' }), { headers: { 'content-type': 'text/html; charset=utf-8' } });
          if (path === '/plugin/login/complete' && request.method === 'POST') {
            seen.push({ contentType: request.headers.get('content-type'), origin: request.headers.get('origin'), site: request.headers.get('sec-fetch-site'), cookie: (request.headers.get('cookie') ?? '').includes('sid=victim') });
          }
          return handle!(request);
        });
        handle = createPluginServer(auth, {
          website: { origin: website.url, userId: (request) => ((request.headers.get('cookie') ?? '').includes('sid=victim') ? victim : null) },
          log: (e) => logs.push(e),
        });
        const api = website.url;
        const begin = async () => (await (await fetch(`${api}/plugin/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { readKey: string; loginUrl: string; code: string };
        const poll = async (readKey: string) => ((await (await fetch(`${api}/plugin/login/poll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ readKey }) })).json()) as { status: string; token?: string });

        // The attacker begins a login of their own and plants its write key in their page.
        const attack = await begin();
        const attackKey = new URL(attack.loginUrl).hash.slice(1);
        const completeUrl = `${api}/plugin/login/complete`;
        const evil = `<!doctype html><meta charset="utf-8"><body>
<form id="f" method="POST" action="${completeUrl}" enctype="text/plain"><input name='{"writeKey":"${attackKey}","x":"' value='"}'></form>
<script>
window.noCors = () => fetch(${JSON.stringify(completeUrl)}, { method: 'POST', mode: 'no-cors', credentials: 'include',
  headers: { 'content-type': 'application/json' }, body: JSON.stringify({ writeKey: ${JSON.stringify(attackKey)} }) }).then((r) => r.type, (e) => e.name);
window.cors = () => fetch(${JSON.stringify(completeUrl)}, { method: 'POST', credentials: 'include',
  headers: { 'content-type': 'application/json' }, body: JSON.stringify({ writeKey: ${JSON.stringify(attackKey)} }) }).then((r) => r.status, (e) => e.name);
</script>`;
        attacker = await serve(() => new Response(evil, { headers: { 'content-type': 'text/html; charset=utf-8' } }));
        assert.notEqual(new URL(attacker.url).port, new URL(api).port);
        const context = await browser.newContext();
        try {
          const page = await context.newPage();
          await page.goto(`${api}/sign-in`); // the victim is signed in on the website

          await page.goto(attacker.url);
          assert.equal(await page.evaluate(() => (window as unknown as { noCors(): Promise<string> }).noCors()), 'opaque', 'the no-cors request was sent');
          assert.equal(await page.evaluate(() => (window as unknown as { cors(): Promise<string> }).cors()), 'TypeError', 'the CORS request fails at its preflight');
          await Promise.all([page.waitForURL(completeUrl), page.evaluate(() => (document.getElementById('f') as HTMLFormElement).submit())]);
          const formAnswer = await page.evaluate(() => document.body.innerText);
          assert.match(formAnswer, /unsupported_media_type|cross_site_request/);

          assert.equal(seen.length, 2, 'the no-cors fetch and the form reached the server; the CORS fetch never left its preflight');
          assert.ok(seen.every((s) => s.cookie), 'both carried the victim\'s session cookie: without the checks they would have completed');
          assert.ok(seen.every((s) => s.contentType?.startsWith('text/plain')), 'a cross-site page cannot send application/json without a preflight');
          assert.deepEqual(logs.filter((l) => l.route === '/plugin/login/complete').map((l) => [l.status, l.code]), [[415, 'unsupported_media_type'], [405, 'method_not_allowed'], [415, 'unsupported_media_type']],
            'the no-cors fetch, the CORS preflight (refused: no CORS for this route), the form');
          assert.deepEqual(await poll(attack.readKey), { status: 'pending' }, 'the attacker\'s login was not completed');

          // The honest flow: the plugin begins, the user opens the link on the website, checks the code, confirms.
          const honest = await begin();
          await page.goto(honest.loginUrl);
          await page.waitForFunction(() => document.getElementById('code')!.textContent !== '…');
          assert.equal(await page.textContent('#code'), honest.code, 'the page shows the code the plugin shows');
          assert.equal(new URL(page.url()).hash, '', 'the write key is gone from the address bar');
          await page.click('#confirm');
          await page.waitForFunction(() => document.body.dataset.result !== undefined);
          assert.equal(await page.evaluate(() => document.body.dataset.result), 'ok');
          const last = seen.at(-1)!;
          assert.deepEqual([last.contentType, last.origin, last.site, last.cookie], ['application/json', api, 'same-origin', true]);
          const done = await poll(honest.readKey);
          assert.equal(done.status, 'done');
          assert.equal((await auth.tokens.verify(done.token!)).userId, victim);
        } finally {
          await context.close();
          await attacker?.close();
          await website.close();
        }
      }));
  });
}
