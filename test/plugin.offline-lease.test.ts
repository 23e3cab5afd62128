// Offline leases in a real browser, loaded the way Figma loads a plugin UI: the client inside
// <iframe sandbox="allow-scripts" srcdoc="..."> on a page served from 127.0.0.1, whose script
// stands in for the main thread (figma.clientStorage) behind the real installPluginBridge. The
// backend is createPluginServer on another 127.0.0.1 port, stopped and started again by the test;
// Gumroad is a local stand-in. On both databases. No browser, no test: it fails.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, Frame, Page } from 'playwright-core';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { launchChromium, pluginHostPage } from './helpers/plugin-host.ts';
import { startGumroadStandIn } from './helpers/license-standins.ts';
import { createPluginAuth } from '../src/auth.ts';
import { generateEntitlementKey } from '../src/entitlements/index.ts';
import { serve, type Served } from '../src/http/index.ts';
import { createPluginServer } from '../src/server/index.ts';
import type { LicenseResult, PluginClient } from '../src/plugin/index.ts';
import { TOKEN_SECRET } from './helpers/secrets.ts';

const PRODUCT = 'plug-pro_Wsw==';
const SESSION_KEY = 'figma-plugin-auth-db.session';

declare global {
  interface Window {
    client: PluginClient;
  }
}

/** The host page (helpers/plugin-host.ts) with this file's plugin UI. */
function hostPage(apiBaseUrl: string): Promise<string> {
  return pluginHostPage(`
    import { createPluginClient } from './src/plugin/index.ts';
    window.client = createPluginClient({ apiBaseUrl: API, retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 40 }, leaseClockToleranceSeconds: 1 });`, { API: JSON.stringify(apiBaseUrl) });
}

let browser: Browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

for (const dialect of DIALECTS) {
  describe(`offline leases in Chromium [${dialect}]`, () => {
    test('licensed online; with the server stopped the stored lease answers until it ends (a refund meanwhile waits for its end); then unknown, never unlicensed; online again: refunded', () =>
      withDatabase(dialect, async ({ db }) => {
        const gumroad = await startGumroadStandIn();
        const auth = createPluginAuth(db, {
          tokenSecret: TOKEN_SECRET, entitlementSigningKey: await generateEntitlementKey(), gumroad: { apiBaseUrl: gumroad.url },
          leases: { offlineSeconds: 12, refreshSeconds: 6 },
        });
        await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: PRODUCT, deviceLimit: 1 });
        // A 3-second heartbeat window: the client beats every second (heartbeatSeconds).
        await auth.leases.setPlanPolicy('pro', { heartbeatWindow: 3, overageAllowance: null, floating: null });
        const userId = await createUser(db);
        const session = await auth.tokens.issue(userId, { deviceName: 'Figma' });
        const { key } = gumroad.sell();
        await auth.licenses.activate(userId, { provider: 'gumroad', licenseKey: key, deviceId: session.deviceId });
        const handler = createPluginServer(auth, { log: () => {} });
        let api: Served = await serve(handler);
        const port = Number(new URL(api.url).port);
        const site: Served = await serve(async () => new Response(await hostPage(api.url), { headers: { 'content-type': 'text/html; charset=utf-8' } }));
        let page: Page | undefined;
        try {
          page = await browser.newPage();
          await page.goto(site.url);
          const frame: Frame = page.frames().find((f) => f !== page!.mainFrame())!;
          await frame.waitForFunction(() => typeof window.client === 'object');
          // The main thread holds the session, as after a sign-in.
          await page.evaluate(([k, s, d]) => {
            window.stand.storage.set(k, s);
            window.stand.storage.set(`${k}.device`, d);
          }, [SESSION_KEY, { token: session.token, expiresAt: session.expiresAt.toISOString(), tokenId: session.tokenId, userId, deviceId: session.deviceId }, session.deviceId] as const);
          const license = () => frame.evaluate(() => window.client.license()) as Promise<LicenseResult>;

          const online = await license();
          assert.equal(online.kind, 'licensed');
          assert.ok(online.kind === 'licensed' && !online.offline && online.planSlug === 'pro' && online.overage === false);
          const stored = await page.evaluate((k) => window.stand.storage.get(`${k}.lease`) as { jwt: string; deviceId: string; userId: string }, SESSION_KEY);
          assert.deepEqual([stored.deviceId, stored.userId], [session.deviceId, userId]);
          assert.equal(stored.jwt.split('.').length, 3);
          assert.ok(online.kind === 'licensed' && online.heartbeatSeconds === 1);

          // keepLicensed beats every heartbeatSeconds: the device's lease stays fresh.
          type Kept = { kept: LicenseResult[]; stopKeep: () => void };
          await frame.evaluate(() => {
            const w = window as unknown as Kept;
            w.kept = [];
            w.stopKeep = window.client.keepLicensed((r) => w.kept.push(r));
          });
          await sleep(3500);
          const kept = await frame.evaluate(() => {
            const w = window as unknown as Kept;
            w.stopKeep();
            return w.kept;
          });
          assert.ok(kept.length >= 2, `beats: ${kept.length}`);
          assert.ok(kept.every((r) => r.kind === 'licensed' && !r.offline));
          const [seen] = await db.query<{ age: number }>('SELECT extract(epoch FROM now() - last_seen_at)::float8 AS age FROM public.license_devices WHERE device_id = $1::uuid', [session.deviceId]);
          assert.ok(seen!.age < 2, `last heartbeat ${seen!.age} s ago`);

          // The server goes away. The plugin still knows: licensed, from the lease, verified in the iframe.
          await api.close();
          const offline = await license();
          assert.ok(offline.kind === 'licensed' && offline.offline && offline.planSlug === 'pro', JSON.stringify(offline));
          // A refund while the plugin is offline: it cannot know yet; the lease holds until its end.
          await db.query(`SELECT public.license_apply_state(id, 'refunded', NULL, NULL, NULL, now(), true) FROM public.licenses WHERE user_id = $1::uuid`, [userId]);
          assert.equal((await license()).kind, 'licensed');
          // A lease changed in storage verifies nothing.
          await page.evaluate((k) => {
            const lease = window.stand.storage.get(`${k}.lease`) as { jwt: string };
            window.stand.storage.set(`${k}.lease.saved`, lease);
            const [h, , s] = lease.jwt.split('.');
            const claims = btoa(JSON.stringify({ licensed: true, reason: 'valid' })).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
            window.stand.storage.set(`${k}.lease`, { ...lease, jwt: `${h}.${claims}.${s}` });
          }, SESSION_KEY);
          assert.deepEqual(await license(), { kind: 'unknown', reason: 'lease_invalid', status: null });
          await page.evaluate((k) => window.stand.storage.set(`${k}.lease`, window.stand.storage.get(`${k}.lease.saved`)), SESSION_KEY);
          // Past the lease's end (12 s, plus 1 s of tolerance): not known. Never "unlicensed" for want of a server.
          const expiresAt = (await license() as { expiresAt: Date }).expiresAt;
          await sleep(Math.max(0, new Date(expiresAt).getTime() + 1500 - Date.now()));
          assert.deepEqual(await license(), { kind: 'unknown', reason: 'lease_expired', status: null });

          // The server is back (same port): the refund takes effect, and the new lease says so offline too.
          api = await serve(handler, { port });
          const refunded = await license();
          assert.ok(refunded.kind === 'unlicensed' && refunded.reason === 'license_refunded' && !refunded.offline, JSON.stringify(refunded));
          await api.close();
          const refundedOffline = await license();
          assert.ok(refundedOffline.kind === 'unlicensed' && refundedOffline.reason === 'license_refunded' && refundedOffline.offline, JSON.stringify(refundedOffline));

          // Sign-out clears the lease with the session.
          await frame.evaluate(() => window.client.signOut());
          assert.equal(await page.evaluate((k) => window.stand.storage.has(`${k}.lease`), SESSION_KEY), false);
        } finally {
          await page?.close();
          await api.close().catch(() => {});
          await site.close();
          await gumroad.close();
        }
      }));
  });
}
