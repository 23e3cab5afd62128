// The lease routes of createPluginServer over HTTP (src/server/leases.ts): POST /plugin/license/lease
// (the heartbeat of the token's device, its reasons, the signed lease and its keys) and GET
// /plugin/license/devices; the device is always the token's. Gumroad is a local stand-in.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { startGumroadStandIn } from './helpers/license-standins.ts';
import { createPluginAuth } from '../src/auth.ts';
import { generateEntitlementKey } from '../src/entitlements/index.ts';
import { serve } from '../src/http/index.ts';
import { createPluginServer } from '../src/server/index.ts';
import { verifyLicenseLease } from '../src/plugin/index.ts';
import { TOKEN_SECRET } from './helpers/secrets.ts';

const PRODUCT = 'plug-pro_Wsw==';

for (const dialect of DIALECTS) {
  describe(`lease routes [${dialect}]`, () => {
    test('POST /plugin/license/lease answers the token device\'s reasons and a lease that verifies for it; GET /plugin/license/devices marks the caller; 401 without a token', () =>
      withDatabase(dialect, async ({ db }) => {
        const gumroad = await startGumroadStandIn();
        const withKey = createPluginAuth(db, { tokenSecret: TOKEN_SECRET, entitlementSigningKey: await generateEntitlementKey(), gumroad: { apiBaseUrl: gumroad.url } });
        const withoutKey = createPluginAuth(db, { tokenSecret: TOKEN_SECRET, gumroad: { apiBaseUrl: gumroad.url } });
        await withKey.plans.linkLicense('pro', { provider: 'gumroad', productId: PRODUCT, deviceLimit: 1 });
        await withKey.leases.setPlanPolicy('pro', { heartbeatWindow: 600, overageAllowance: null, floating: null });
        const user = await createUser(db);
        const first = await withKey.tokens.issue(user, { deviceName: 'Figma desktop' });
        const second = await withKey.tokens.issue(user, { deviceName: 'Figma web' });
        await withKey.licenses.activate(user, { provider: 'gumroad', licenseKey: gumroad.sell().key, deviceId: first.deviceId });
        const served = await serve(createPluginServer(withKey, { log: () => {} }));
        const bare = await serve(createPluginServer(withoutKey, { log: () => {} }));
        try {
          const lease = (url: string, token?: string, body?: string) =>
            fetch(`${url}/plugin/license/lease`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body ? { body } : {}) });
          let r = await lease(served.url);
          assert.deepEqual([r.status, await r.json()], [401, { error: 'token_invalid' }]);
          // A deviceId in the body is ignored: the device is the token's.
          r = await lease(served.url, second.token, JSON.stringify({ deviceId: first.deviceId }));
          assert.equal(r.status, 200);
          const onSecond = await r.json() as { licensed: boolean; reason: string; deviceId: string; lease: { jwt: string } };
          assert.deepEqual([onSecond.licensed, onSecond.reason, onSecond.deviceId], [false, 'not_activated_on_device', second.deviceId]);
          r = await lease(served.url, first.token);
          const onFirst = await r.json() as { licensed: boolean; reason: string; planSlug: string; heartbeatSeconds: number; lease: { jwt: string; expiresAt: string }; jwks: { keys: unknown[] } };
          assert.deepEqual([onFirst.licensed, onFirst.reason, onFirst.planSlug, onFirst.heartbeatSeconds], [true, 'valid', 'pro', 200]);
          assert.equal(r.headers.get('access-control-allow-origin'), '*');
          const check = await verifyLicenseLease(onFirst.lease.jwt, onFirst.jwks as never, { userId: user, deviceId: first.deviceId });
          assert.ok(check.kind === 'ok' && check.lease.licensed && check.lease.planSlug === 'pro');
          assert.equal((await verifyLicenseLease(onFirst.lease.jwt, onFirst.jwks as never, { userId: user, deviceId: second.deviceId })).kind, 'wrong_device');
          // Without an entitlement key: the heartbeat, no lease.
          r = await lease(bare.url, first.token);
          const noKey = await r.json() as { licensed: boolean; lease: unknown; jwks: unknown };
          assert.deepEqual([r.status, noKey.licensed, noKey.lease, noKey.jwks], [200, true, null, null]);
          // The device list, the caller marked.
          r = await fetch(`${served.url}/plugin/license/devices`, { headers: { authorization: `Bearer ${first.token}` } });
          const { devices } = await r.json() as { devices: Array<{ deviceId: string; deviceName: string; state: string; current: boolean; leaseEndsAt: string }> };
          assert.deepEqual(devices.map((d) => [d.deviceId, d.deviceName, d.state, d.current]), [[first.deviceId, 'Figma desktop', 'live', true]]);
          assert.ok(Date.parse(devices[0]!.leaseEndsAt) > Date.now() + 590_000);
          r = await fetch(`${served.url}/plugin/license/devices`, { headers: { authorization: `Bearer ${second.token}` } });
          assert.deepEqual((await r.json() as { devices: Array<{ current: boolean }> }).devices.map((d) => d.current), [false]);
          r = await fetch(`${served.url}/plugin/license/devices`, { method: 'OPTIONS' });
          assert.deepEqual([r.status, r.headers.get('access-control-allow-origin')], [204, '*']);
          r = await fetch(`${served.url}/plugin/license/devices`, { method: 'DELETE', headers: { authorization: `Bearer ${first.token}` } });
          assert.equal(r.status, 405);
        } finally {
          await served.close();
          await bare.close();
          await gumroad.close();
        }
      }));
  });
}
