// The license stores' quirks (docs/licenses.md#store-quirks), against the 127.0.0.1 stand-ins,
// which follow the stores' documented and implemented behaviour field by field: Gumroad counting a
// use unless increment_uses_count is exactly "false"; Gumroad products identified by product_id
// since 2023-01-09 (older ones also by permalink); a key activated moments after its purchase,
// before the store's license API knows it (Lemon Squeezy and Gumroad).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, createUser, device, withDatabase } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { startGumroadStandIn, startLemonSqueezyStandIn, type GumroadStandIn, type LemonStandIn } from './helpers/license-standins.ts';
import { createPluginAuth, type PluginAuth } from '../src/auth.ts';
import type { Database } from '../src/core/db.ts';
import { PluginAuthError } from '../src/core/errors.ts';
import { httpStatusOf, clientOutcome } from '../src/core/http-status.ts';
import { LEMON_WEBHOOK_SECRET } from './helpers/secrets.ts';

const GUMROAD_PRODUCT = 'plug-pro_Wsw==';
const code = (e: unknown) => (e as PluginAuthError).code;

interface Ctx { db: Database; auth: PluginAuth; lemon: LemonStandIn; gumroad: GumroadStandIn }

async function withStores(dialect: (typeof DIALECTS)[number], fn: (ctx: Ctx) => Promise<void>, unknownKeyRetryMs?: number[]) {
  const lemon = await startLemonSqueezyStandIn();
  const gumroad = await startGumroadStandIn();
  try {
    await withDatabase(dialect, async ({ db }) => {
      const auth = createPluginAuth(db, {
        lemonSqueezy: { apiBaseUrl: lemon.url, webhookSecret: LEMON_WEBHOOK_SECRET },
        gumroad: { apiBaseUrl: gumroad.url },
        licenses: { cacheSeconds: 0, ...(unknownKeyRetryMs ? { unknownKeyRetryMs } : {}) },
      });
      await auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: '111' });
      await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: GUMROAD_PRODUCT });
      await fn({ db, auth, lemon, gumroad });
    });
  } finally {
    await lemon.close();
    await gumroad.close();
  }
}

for (const dialect of DIALECTS) {
  describe(`store quirks [${dialect}]`, () => {
    test('Gumroad counts a use unless increment_uses_count is exactly "false": activate, validate and pings count none', () =>
      withStores(dialect, async ({ db, auth, gumroad }) => {
        // The stand-in counts as Gumroad does: "False", "0", a missing parameter, a JSON body sent as text.
        const { key, purchase } = gumroad.sell();
        const verify = (body: string, type: string) =>
          fetch(`${gumroad.url}/v2/licenses/verify`, { method: 'POST', headers: { 'content-type': type }, body }).then((r) => r.status);
        const form = (extra: string) => `product_id=${encodeURIComponent(GUMROAD_PRODUCT)}&license_key=${key}${extra}`;
        assert.equal(await verify(form('&increment_uses_count=False'), 'application/x-www-form-urlencoded'), 200);
        assert.equal(await verify(form('&increment_uses_count=0'), 'application/x-www-form-urlencoded'), 200);
        assert.equal(await verify(form(''), 'application/x-www-form-urlencoded'), 200);
        assert.equal(purchase.uses, 3, 'each of those counted a use');
        assert.equal(await verify(JSON.stringify({ product_id: GUMROAD_PRODUCT, license_key: key, increment_uses_count: false }), 'text/plain'), 404, 'a JSON body without its type carries no parameters');
        assert.equal(await verify(JSON.stringify({ product_id: GUMROAD_PRODUCT, license_key: key, increment_uses_count: false }), 'application/json'), 200);
        assert.equal(purchase.uses, 3, 'a JSON false does not count');
        purchase.uses = 0;
        gumroad.calls.length = 0;

        const user = await createUser(db);
        await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, ...await device(db, user, 'a') });
        await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, ...await device(db, user, 'b') });
        for (let i = 0; i < 3; i++) await auth.licenses.validate(user, { provider: 'gumroad', licenseKey: key });
        await auth.licenses.handleWebhook('gumroad', new URLSearchParams({ resource_name: 'sale', license_key: key }).toString(), { 'content-type': 'application/x-www-form-urlencoded' });
        assert.equal(gumroad.calls.length, 6);
        assert.ok(gumroad.calls.every((c) => c.form.increment_uses_count === 'false'), 'the exact string Gumroad honours, form-encoded');
        assert.equal(purchase.uses, 0, 'six checks, no use counted');
        // Devices are ours to count (Gumroad has no limit); the store's `uses` is never read as one.
        assert.deepEqual((await auth.licenses.list(user))[0]!.devices.length, 2);
      }));

    test('Gumroad products: by product_id, or by permalink for a product created before 2023-01-09; a newer one linked by permalink is gumroad_product_id_required', () =>
      withStores(dialect, async ({ db, auth, gumroad }) => {
        await auth.plans.linkLicense('basic', { provider: 'gumroad', productId: 'old-plugin' });
        await auth.plans.linkLicense('enterprise', { provider: 'gumroad', productId: 'new-plugin' });
        const old = gumroad.sell({ productId: 'b0ZfQ2xkUHJvZHVjdElk_Q==', permalink: 'old-plugin', productCreatedAt: '2022-06-01T00:00:00Z' });
        const user = await createUser(db);
        const a = await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: old.key, productId: 'old-plugin', ...await device(db, user, 'a') });
        assert.equal(a.planSlug, 'basic', 'the permalink mapping grants its plan');
        assert.deepEqual(gumroad.calls.at(-1)!.form, { product_permalink: 'old-plugin', license_key: old.key, increment_uses_count: 'false' });
        const stored = await db.query<{ product_id: string }>('SELECT product_id FROM public.licenses');
        assert.deepEqual(stored, [{ product_id: 'old-plugin' }], 'stored as linked, so the mapping keeps matching');
        // Checks and pings keep asking by the permalink.
        const v = await auth.licenses.validate(user, { provider: 'gumroad', licenseKey: old.key });
        assert.deepEqual([v.valid, v.answeredBy, gumroad.calls.at(-1)!.form.product_permalink], [true, 'store', 'old-plugin']);
        // Without a productId, the linked products are tried, by id or by permalink as each is linked.
        const other = await createUser(db);
        const old2 = gumroad.sell({ productId: 'b0ZfQ2xkUHJvZHVjdElk_Q==', permalink: 'old-plugin', productCreatedAt: '2022-06-01T00:00:00Z' });
        assert.equal((await auth.licenses.activate(other, { provider: 'gumroad', licenseKey: old2.key, ...await device(db, other, 'a') })).planSlug, 'basic');

        // A product created after the cutover, linked by its permalink: Gumroad answers HTTP 500
        // with the id to use. A configuration error naming it, not an outage; nothing written.
        const fresh = gumroad.sell({ productId: 'bmV3UHJvZHVjdElkMTIz_w==', permalink: 'new-plugin', productCreatedAt: '2024-05-01T00:00:00Z' });
        const third = await createUser(db);
        const d = await device(db, third, 'a');
        const before = await dumpDatabase(db);
        await assert.rejects(auth.licenses.activate(third, { provider: 'gumroad', licenseKey: fresh.key, productId: 'new-plugin', ...d }), (e) => {
          assert.equal(code(e), 'gumroad_product_id_required');
          assert.match((e as Error).message, /link bmV3UHJvZHVjdElkMTIz_w== instead of the permalink new-plugin/);
          assert.ok(!(e as Error).message.includes(fresh.key), 'never the key');
          return true;
        });
        assert.deepEqual(await dumpDatabase(db), before);
        // Linked by its product_id, it works.
        await auth.plans.linkLicense('enterprise', { provider: 'gumroad', productId: 'bmV3UHJvZHVjdElkMTIz_w==' });
        assert.equal((await auth.licenses.activate(third, { provider: 'gumroad', licenseKey: fresh.key, productId: 'bmV3UHJvZHVjdElkMTIz_w==', ...d })).planSlug, 'enterprise');
        // A key the seller disabled: refused on first activation.
        const disabled = gumroad.sell({ disabled: true });
        await assert.rejects(auth.licenses.activate(third, { provider: 'gumroad', licenseKey: disabled.key, productId: GUMROAD_PRODUCT, ...d }), (e) => code(e) === 'license_key_rejected');
      }));

    test('Gumroad: a key disabled at the store after activation is stored disabled by a check or a ping, and answers its license reason', () =>
      withStores(dialect, async ({ db, auth, gumroad }) => {
        const user = await createUser(db);
        const d = await device(db, user, 'a');
        const sale = gumroad.sell({ isMultiseatLicense: true, quantity: 1, subscriptionEndedAt: '2099-01-01T00:00:00Z' });
        await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: sale.key, productId: GUMROAD_PRODUCT, ...d });
        assert.equal((await auth.leases.require(user, d.deviceId)).reason, 'valid');
        sale.purchase.disabled = true;
        // Before: the check threw license_key_rejected and left the license granting.
        const checked = await auth.licenses.validate(user, { provider: 'gumroad', licenseKey: sale.key });
        assert.deepEqual([checked.valid, checked.status, checked.planSlug, checked.answeredBy], [false, 'disabled', 'free', 'store']);
        const [row] = await db.query<{ status: string; expires_at: Date | null; quantity: number }>('SELECT status, expires_at, quantity FROM public.licenses');
        assert.deepEqual([row!.status, row!.expires_at?.toISOString(), row!.quantity], ['disabled', '2099-01-01T00:00:00.000Z', 1], 'the rest of what was known is kept');
        await assert.rejects(auth.leases.require(user, d.deviceId), (e) => code(e) === 'license_suspended');
        assert.equal((await auth.subscriptions.effectivePlan(user)).source, 'free');
        const history = await db.query<{ status: string }>('SELECT status FROM public.user_plan_history WHERE user_id = $1::uuid ORDER BY id', [user]);
        assert.deepEqual(history.map((h) => h.status), ['active', 'disabled']);
        // Enabled again at the store: the next check says so.
        sale.purchase.disabled = false;
        assert.equal((await auth.licenses.validate(user, { provider: 'gumroad', licenseKey: sale.key })).valid, true);
        // A ping for a key whose access ended: verified, stored as ended (license_expired).
        sale.purchase.accessExpired = true;
        const ping = await auth.licenses.handleWebhook('gumroad', new URLSearchParams({ resource_name: 'subscription_ended', license_key: sale.key }).toString());
        assert.deepEqual([ping.applied, ping.reason], [true, 'applied']);
        assert.equal((await db.query<{ status: string }>('SELECT status FROM public.licenses'))[0]!.status, 'ended');
        await assert.rejects(auth.leases.require(user, d.deviceId), (e) => code(e) === 'license_expired');
        // Any other refusal still throws and changes nothing.
        sale.purchase.accessExpired = false;
        gumroad.purchases.delete(sale.key);
        const before = await dumpDatabase(db);
        await assert.rejects(auth.licenses.validate(user, { provider: 'gumroad', licenseKey: sale.key }), (e) => code(e) === 'license_key_unknown' || code(e) === 'license_key_rejected');
        assert.deepEqual(await dumpDatabase(db), before);
      }));

    test('a key activated moments after its purchase: asked again with backoff until the store knows it (both stores)', () =>
      withStores(dialect, async ({ db, auth, lemon, gumroad }) => {
        const user = await createUser(db);
        const d = await device(db, user, 'a');
        const ls = lemon.sell({ availableAt: Date.now() + 700 });
        const started = Date.now();
        const a = await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: ls.key, ...d });
        assert.equal(a.planSlug, 'pro');
        assert.ok(Date.now() - started >= 500, 'waited for the store');
        const activations = lemon.calls.filter((c) => c.path === '/v1/licenses/activate');
        assert.ok(activations.length >= 2 && activations.length <= 3, `asked ${activations.length} times`);
        assert.equal(ls.license.instances.size, 1, 'one instance at the store');

        const other = await createUser(db);
        const gr = gumroad.sell({ availableAt: Date.now() + 700 });
        assert.equal((await auth.licenses.activate(other, { provider: 'gumroad', licenseKey: gr.key, ...await device(db, other, 'a') })).planSlug, 'pro');
        assert.ok(gumroad.calls.length >= 2);
      }, [400, 800]));

    test('a key the store still does not know after the retries: license_key_unknown, retryable, nothing written; a key of another shape is rejected at once', () =>
      withStores(dialect, async ({ db, auth, lemon, gumroad }) => {
        const user = await createUser(db);
        const d = await device(db, user, 'a');
        const ls = lemon.sell({ availableAt: Date.now() + 3_600_000 });
        const gr = gumroad.sell({ availableAt: Date.now() + 3_600_000 });
        const before = await dumpDatabase(db);
        for (const [provider, key] of [['lemonsqueezy', ls.key], ['gumroad', gr.key]] as const) {
          const calls = lemon.calls.length + gumroad.calls.length;
          await assert.rejects(auth.licenses.activate(user, { provider, licenseKey: key, ...d }), (e) => {
            assert.equal(code(e), 'license_key_unknown');
            assert.equal((e as PluginAuthError).retryable, true);
            assert.equal(clientOutcome(httpStatusOf(e as PluginAuthError)), 'refused', '404: the plugin shows it, and keeps its session');
            assert.equal(httpStatusOf(e as PluginAuthError), 404);
            return true;
          });
          assert.equal(lemon.calls.length + gumroad.calls.length - calls, 3, 'the first call and two retries');
        }
        assert.deepEqual(await dumpDatabase(db), before);
        // Not the store's shape (a typo, another store's key): rejected without retrying.
        for (const [provider, key] of [['lemonsqueezy', 'NOT-A-LEMON-KEY'], ['gumroad', gr.key.slice(0, -1)], ['lemonsqueezy', gr.key]] as const) {
          const calls = lemon.calls.length + gumroad.calls.length;
          await assert.rejects(auth.licenses.activate(user, { provider, licenseKey: key, ...d }), (e) => code(e) === 'license_key_rejected');
          assert.equal(lemon.calls.length + gumroad.calls.length - calls, 1, `${provider}: one call`);
        }
        // The purchase reaches the store: the same call now works.
        ls.license.availableAt = 0;
        assert.equal((await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: ls.key, ...d })).planSlug, 'pro');
        // The delays are checked where they are configured.
        assert.throws(() => createPluginAuth(db, { gumroad: {}, licenses: { unknownKeyRetryMs: [1, 2, 3, 4, 5, 6] } }), (e) => code(e) === 'license_config_invalid');
        assert.throws(() => createPluginAuth(db, { gumroad: {}, licenses: { unknownKeyRetryMs: [20_000] } }), (e) => code(e) === 'license_config_invalid');
      }, [50, 100]));
  });
}
