// License keys from Lemon Squeezy and Gumroad, device limits and team seats as plan sources
// (sql/016, src/billing/licenses.ts). Both stores are local stand-ins on 127.0.0.1.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { DIALECTS, SERVER_DIALECTS, createUser, device, dropDatabase, freshDatabase, withDatabase } from './helpers/databases.ts';
import { DAY, PRICES, linkPrices, subscription } from './helpers/stripe.ts';
import { buildSetupScript, loadMigrations } from '../src/schema/migrations.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { startGumroadStandIn, startLemonSqueezyStandIn, type GumroadStandIn, type LemonStandIn } from './helpers/license-standins.ts';
import { createPluginAuth, type PluginAuth } from '../src/auth.ts';
import type { Database } from '../src/core/db.ts';
import { PluginAuthError } from '../src/core/errors.ts';
import type { LicenseOptions } from '../src/billing/licenses.ts';
import { LEMON_WEBHOOK_SECRET as WEBHOOK_SECRET } from './helpers/secrets.ts';
import { readDevices } from '../src/dashboard/queries.ts';
import { SECRET } from './helpers/tokens.ts';

const GUMROAD_PRODUCT = 'plug-pro_Wsw==';
const code = (e: unknown) => (e as PluginAuthError).code;
const count = async (db: Database, table: string) => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.${table}`))[0]!.n;

interface Ctx { db: Database; auth: PluginAuth; lemon: LemonStandIn; gumroad: GumroadStandIn; make: (o?: LicenseOptions) => PluginAuth }

async function withStores(dialect: (typeof DIALECTS)[number], fn: (ctx: Ctx) => Promise<void>, max?: number) {
  const lemon = await startLemonSqueezyStandIn();
  const gumroad = await startGumroadStandIn();
  try {
    await withDatabase(dialect, async ({ db }) => {
      const make = (licenses: LicenseOptions = {}) => createPluginAuth(db, {
        lemonSqueezy: { apiBaseUrl: lemon.url, webhookSecret: WEBHOOK_SECRET },
        gumroad: { apiBaseUrl: gumroad.url },
        licenses,
      });
      const auth = make();
      await auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: '111' });
      await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: GUMROAD_PRODUCT });
      await fn({ db, auth, lemon, gumroad, make });
    }, max ? { max } : {});
  } finally {
    await lemon.close();
    await gumroad.close();
  }
}

/** A Lemon Squeezy webhook delivery: body and headers, signed with the secret unless told otherwise. */
function lemonEvent(event: string, data: { type: string; id: string | number; attributes: Record<string, unknown> }, secret = WEBHOOK_SECRET) {
  const body = JSON.stringify({ meta: { event_name: event, webhook_id: 'wh_1' }, data });
  const signature = createHmac('sha256', secret).update(body).digest('hex');
  return { body, headers: { 'content-type': 'application/json', 'x-event-name': event, 'x-signature': signature } };
}

const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

for (const dialect of DIALECTS) {
  describe(`licenses [${dialect}]`, () => {
    test('Lemon Squeezy: activate grants the linked plan, validate is cached, deactivate frees the device at the store too', () =>
      withStores(dialect, async ({ auth, lemon, db }) => {
        const user = await createUser(db);
        const { key, license } = lemon.sell({ activationLimit: 3, expiresAt: '2099-01-01T00:00:00.000000Z' });
        const a = await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, ...await device(db, user, 'Figma desktop') });
        assert.deepEqual([a.activated, a.planSlug, a.activationsUsed, a.activationLimit, a.expiresAt?.toISOString()], [true, 'pro', 1, 3, '2099-01-01T00:00:00.000Z']);
        assert.deepEqual(lemon.calls.at(-1), { path: '/v1/licenses/activate', form: { license_key: key, instance_name: 'Figma desktop' } });
        assert.equal(license.instances.size, 1);
        assert.equal((await auth.usage.consume(user, 'resize')).planSlug, 'pro');
        const plan = await auth.subscriptions.effectivePlan(user);
        assert.deepEqual([plan.source, plan.grants[0]!.detail], ['lemonsqueezy', 'active']);
        // The same device again: idempotent, no second instance at the store.
        const again = await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, ...await device(db, user, 'Figma desktop') });
        assert.equal(again.activationsUsed, 1);
        assert.equal(license.instances.size, 1);
        const calls = lemon.calls.length;
        const v = await auth.licenses.validate(user, { provider: 'lemonsqueezy', licenseKey: key });
        assert.deepEqual([v.valid, v.status, v.answeredBy, v.planSlug], [true, 'active', 'cache', 'pro']);
        assert.equal(lemon.calls.length, calls, 'cached: no call');
        const listed = await auth.licenses.list(user);
        assert.equal(listed.length, 1);
        assert.deepEqual([listed[0]!.keyPrefix, listed[0]!.planSlug, listed[0]!.devices.map((d) => d.deviceName), listed[0]!.activationLimit],
          [key.slice(0, 4), 'pro', ['Figma desktop'], 3]);
        assert.ok(!JSON.stringify(listed).includes(key), 'list never holds the key');
        const stored = await db.query<{ key_hash: string; provider_key_id: string }>('SELECT key_hash, provider_key_id FROM public.licenses');
        assert.deepEqual(stored.map((r) => r.provider_key_id), [String(license.id)]);
        assert.match(stored[0]!.key_hash, /^[0-9a-f]{64}$/);
        const d = await auth.licenses.deactivate(user, { provider: 'lemonsqueezy', licenseKey: key, deviceId: (await device(db, user, 'Figma desktop')).deviceId });
        assert.equal(d.activationsUsed, 0);
        assert.equal(license.instances.size, 0, 'deactivated at Lemon Squeezy');
        assert.equal(lemon.calls.at(-1)!.path, '/v1/licenses/deactivate');
        // The license still grants (it is the user's, on no device now).
        assert.equal((await auth.subscriptions.effectivePlan(user)).source, 'lemonsqueezy');
        // History for the dashboard.
        const history = await db.query<{ source: string; grants_access: boolean }>('SELECT source, grants_access FROM public.user_plan_history WHERE user_id = $1::uuid ORDER BY id', [user]);
        assert.deepEqual(history, [{ source: 'lemonsqueezy', grants_access: true }]);
      }));

    test('a key activated by one user is refused to another (license_in_use) for both stores, writing nothing', () =>
      withStores(dialect, async ({ auth, lemon, gumroad, db }) => {
        const [alice, bob] = [await createUser(db), await createUser(db)];
        const ls = lemon.sell();
        const gr = gumroad.sell();
        await auth.licenses.activate(alice, { provider: 'lemonsqueezy', licenseKey: ls.key, ...await device(db, alice, 'a') });
        await auth.licenses.activate(alice, { provider: 'gumroad', licenseKey: gr.key, ...await device(db, alice, 'a') });
        await device(db, bob, 'a');
        await device(db, bob, 'b');
        const before = await dumpDatabase(db);
        const calls = lemon.calls.length + gumroad.calls.length;
        for (const [provider, key] of [['lemonsqueezy', ls.key], ['gumroad', gr.key]] as const) {
          await assert.rejects(auth.licenses.activate(bob, { provider, licenseKey: key, ...await device(db, bob, 'b') }), (e) => code(e) === 'license_in_use');
          await assert.rejects(auth.licenses.validate(bob, { provider, licenseKey: key }), (e) => code(e) === 'license_in_use');
          await assert.rejects(auth.licenses.deactivate(bob, { provider, licenseKey: key, deviceId: (await device(db, bob, 'a')).deviceId }), (e) => code(e) === 'license_not_found');
        }
        assert.equal(lemon.calls.length + gumroad.calls.length, calls, 'refused before asking the store');
        assert.deepEqual(await dumpDatabase(db), before);
        assert.equal((await auth.subscriptions.effectivePlan(bob)).source, 'free');
        // Unknown keys: the store refuses them.
        await assert.rejects(auth.licenses.activate(bob, { provider: 'lemonsqueezy', licenseKey: 'NOPE-0000', ...await device(db, bob, 'b') }), (e) => code(e) === 'license_key_rejected');
        await assert.rejects(auth.licenses.activate(bob, { provider: 'gumroad', licenseKey: 'NOPE-0000', ...await device(db, bob, 'b') }), (e) => code(e) === 'license_key_rejected');
        await assert.rejects(auth.licenses.validate(bob, { provider: 'gumroad', licenseKey: 'NOPE-0000' }), (e) => code(e) === 'license_not_found');
        assert.deepEqual(await dumpDatabase(db), before);
      }));

    test('Gumroad: verify with increment_uses_count=false, the product found among linked ones; the mapping\'s device limit names the devices to release', () =>
      withStores(dialect, async ({ auth, gumroad, db }) => {
        await auth.plans.linkLicense('basic', { provider: 'gumroad', productId: 'other-product' });
        await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: GUMROAD_PRODUCT, deviceLimit: 2 });
        const user = await createUser(db);
        const { key, purchase } = gumroad.sell();
        const a = await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, ...await device(db, user, 'laptop') });
        assert.deepEqual([a.planSlug, a.activationsUsed, a.activationLimit], ['pro', 1, 2]);
        assert.ok(gumroad.calls.every((c) => c.form.increment_uses_count === 'false'));
        assert.equal(purchase.uses, 0);
        assert.equal((await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, ...await device(db, user, 'desktop') })).activationsUsed, 2);
        const error = await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, ...await device(db, user, 'tablet') }).then(() => null, (e: unknown) => e);
        assert.equal(code(error), 'device_limit_reached');
        const [laptop, desktop] = [await device(db, user, 'laptop'), await device(db, user, 'desktop')];
        assert.equal((error as Error).message, `device_limit_reached: this license is active on 2 of 2 devices; deactivate one of: laptop (${laptop.deviceId.slice(0, 8)}), desktop (${desktop.deviceId.slice(0, 8)})`);
        await auth.licenses.deactivate(user, { provider: 'gumroad', licenseKey: key, deviceId: (await device(db, user, 'laptop')).deviceId });
        assert.equal((await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, ...await device(db, user, 'tablet') })).activationsUsed, 2);
        assert.deepEqual((await auth.licenses.list(user))[0]!.devices.map((d) => d.deviceName).sort(), ['desktop', 'tablet']);
        assert.equal((await auth.subscriptions.effectivePlan(user)).source, 'gumroad');
        // Lemon Squeezy's own activation limit is honoured (its 400 answer).
      }));

    test('Lemon Squeezy activation_limit is honoured: its refusal and our count agree', () =>
      withStores(dialect, async ({ auth, lemon, db }) => {
        const user = await createUser(db);
        const { key, license } = lemon.sell({ activationLimit: 1 });
        await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, ...await device(db, user, 'one') });
        const calls = lemon.calls.length;
        await assert.rejects(auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, ...await device(db, user, 'two') }),
          (e) => code(e) === 'device_limit_reached' && /deactivate one of: one/.test((e as Error).message));
        assert.equal(lemon.calls.length, calls, 'our stored limit refuses before the store is asked');
        assert.equal(license.instances.size, 1);
      }));

    test('refund by a signed Lemon Squeezy webhook revokes the plan at once; forged, unsigned and replayed deliveries change nothing; out of order is safe', () =>
      withStores(dialect, async ({ auth, lemon, db }) => {
        const user = await createUser(db);
        const { key, license } = lemon.sell();
        await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, ...await device(db, user, 'd') });
        assert.equal((await auth.usage.check(user, 'resize')).planSlug, 'pro');
        const refund = lemonEvent('order_refunded', { type: 'orders', id: license.orderId, attributes: { refunded: true, status: 'refunded', updated_at: ago(1000) } });
        const before = await dumpDatabase(db);
        const forged = lemonEvent('order_refunded', { type: 'orders', id: license.orderId, attributes: { refunded: true, updated_at: ago(1000) } }, 'wrong-secret');
        for (const headers of [forged.headers, { ...refund.headers, 'x-signature': undefined }, { ...refund.headers, 'x-signature': 'zz' }, { ...refund.headers, 'x-signature': refund.headers['x-signature'].replace(/^./, (c) => (c === 'a' ? 'b' : 'a')) }]) {
          await assert.rejects(auth.licenses.handleWebhook('lemonsqueezy', refund.body, headers), (e) => code(e) === 'invalid_signature');
        }
        // A body changed after signing.
        await assert.rejects(auth.licenses.handleWebhook('lemonsqueezy', refund.body.replace('true', 'false'), refund.headers), (e) => code(e) === 'invalid_signature');
        assert.deepEqual(await dumpDatabase(db), before, 'a refused delivery changes nothing');
        const applied = await auth.licenses.handleWebhook('lemonsqueezy', refund.body, new Headers(refund.headers));
        assert.deepEqual(applied, { applied: true, reason: 'applied', licenses: 1, event: 'order_refunded', recorded: false });
        assert.equal((await auth.usage.consume(user, 'resize')).planSlug, 'free', 'revoked at once');
        assert.equal((await auth.subscriptions.effectivePlan(user)).source, 'free');
        // Replay: de-duplicated.
        assert.deepEqual(await auth.licenses.handleWebhook('lemonsqueezy', refund.body, refund.headers), { applied: false, reason: 'duplicate', licenses: 0, event: 'order_refunded', recorded: false });
        // Out of order: an older "active" update arrives after the refund.
        const older = lemonEvent('license_key_updated', { type: 'license-keys', id: license.id, attributes: { status: 'active', updated_at: ago(60_000) } });
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', older.body, older.headers)).reason, 'stale');
        // Even a newer "active" webhook does not lift a refund.
        const newer = lemonEvent('license_key_updated', { type: 'license-keys', id: license.id, attributes: { status: 'active', updated_at: ago(0) } });
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', newer.body, newer.headers)).reason, 'revoked');
        assert.equal((await auth.licenses.validate(user, { provider: 'lemonsqueezy', licenseKey: key })).valid, false);
        const history = await db.query<{ status: string; grants_access: boolean }>('SELECT status, grants_access FROM public.user_plan_history WHERE user_id = $1::uuid ORDER BY id', [user]);
        assert.deepEqual(history.map((h) => [h.status, h.grants_access]), [['active', true], ['refunded', false]]);
      }));

    test('Lemon Squeezy expiry and disable: subscription_expired and license_key_updated, ordered by updated_at; events arriving out of order', () =>
      withStores(dialect, async ({ auth, lemon, db }) => {
        const user = await createUser(db);
        const { key, license } = lemon.sell();
        await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, ...await device(db, user, 'd') });
        // The later event (expired, t-1s) arrives first; the earlier renewal (active, t-10s) second.
        const expired = lemonEvent('subscription_expired', { type: 'subscriptions', id: 77, attributes: { order_id: license.orderId, status: 'expired', updated_at: ago(1000) } });
        const renewed = lemonEvent('subscription_updated', { type: 'subscriptions', id: 77, attributes: { order_id: license.orderId, status: 'active', updated_at: ago(10_000) } });
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', expired.body, expired.headers)).reason, 'applied');
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', renewed.body, renewed.headers)).reason, 'stale');
        assert.equal((await auth.subscriptions.effectivePlan(user)).source, 'free');
        // A real renewal, later than the expiry, restores it.
        const later = lemonEvent('subscription_updated', { type: 'subscriptions', id: 77, attributes: { order_id: license.orderId, status: 'active', updated_at: ago(0) } });
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', later.body, later.headers)).reason, 'applied');
        assert.equal((await auth.subscriptions.effectivePlan(user)).source, 'lemonsqueezy');
        const cancelled = lemonEvent('subscription_cancelled', { type: 'subscriptions', id: 77, attributes: { order_id: license.orderId, status: 'cancelled', updated_at: ago(0) } });
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', cancelled.body, cancelled.headers)).reason, 'ignored', 'still in force until it expires');
        const unknown = lemonEvent('order_refunded', { type: 'orders', id: 999999, attributes: { updated_at: ago(0) } });
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', unknown.body, unknown.headers)).reason, 'unknown_license');
        const disabled = lemonEvent('license_key_updated', { type: 'license-keys', id: license.id, attributes: { status: 'disabled', updated_at: new Date(Date.now() + 1000).toISOString() } });
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', disabled.body, disabled.headers)).reason, 'applied');
        assert.equal((await auth.usage.check(user, 'resize')).planSlug, 'free');
        const future = lemonEvent('license_key_updated', { type: 'license-keys', id: license.id, attributes: { status: 'active', updated_at: '2999-01-01T00:00:00Z' } });
        const before = await dumpDatabase(db);
        await assert.rejects(auth.licenses.handleWebhook('lemonsqueezy', future.body, future.headers), (e) => code(e) === 'invalid_license_answer');
        assert.deepEqual(await dumpDatabase(db), before, 'a far-future event time is refused, the event id not stored');
      }));

    test('a Gumroad ping is a hint: the key is re-verified (increment_uses_count=false) before anything changes; a refund revokes at once', () =>
      withStores(dialect, async ({ auth, gumroad, db }) => {
        const user = await createUser(db);
        const { key, purchase } = gumroad.sell();
        await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, ...await device(db, user, 'd') });
        const ping = (fields: Record<string, string>) => new URLSearchParams({ seller_id: 'seller', product_id: GUMROAD_PRODUCT, sale_id: purchase.saleId, license_key: key, ...fields }).toString();
        // Forged: claims a refund Gumroad knows nothing of.
        const calls = gumroad.calls.length;
        const forged = await auth.licenses.handleWebhook('gumroad', ping({ resource_name: 'refund', refunded: 'true' }), { 'content-type': 'application/x-www-form-urlencoded' });
        assert.equal(gumroad.calls.length, calls + 1);
        assert.deepEqual(gumroad.calls.at(-1)!.form, { product_id: GUMROAD_PRODUCT, license_key: key, increment_uses_count: 'false' });
        assert.equal(forged.event, 'refund');
        assert.equal((await auth.subscriptions.effectivePlan(user)).source, 'gumroad', 'the API says not refunded: still granted');
        // The buyer sends the bytes of the refund ping Gumroad will send, before Gumroad does: it
        // is re-verified (not refunded yet), changes nothing and is not remembered, so Gumroad's
        // own ping with the same bytes is not a "duplicate": it revokes.
        const refundPing = ping({ resource_name: 'refund', refunded: 'true', timestamp: '2' });
        const early = await auth.licenses.handleWebhook('gumroad', refundPing);
        assert.equal((await auth.subscriptions.effectivePlan(user)).source, 'gumroad', early.reason);
        purchase.refunded = true;
        const real = await auth.licenses.handleWebhook('gumroad', refundPing);
        assert.deepEqual([real.applied, real.reason], [true, 'applied']);
        assert.equal((await auth.usage.consume(user, 'resize')).planSlug, 'free');
        // The same ping again: verified again (never de-duplicated), the same state.
        const calls2 = gumroad.calls.length;
        assert.notEqual((await auth.licenses.handleWebhook('gumroad', refundPing)).reason, 'duplicate');
        assert.equal(gumroad.calls.length, calls2 + 1);
        assert.equal((await auth.usage.consume(user, 'resize')).planSlug, 'free');
        assert.equal(await count(db, 'license_webhook_events'), 0, 'Gumroad pings are never stored');
        // Dispute and chargeback, and a subscription that ended.
        purchase.refunded = false;
        purchase.disputed = true;
        assert.equal((await auth.licenses.validate(user, { provider: 'gumroad', licenseKey: key })).status, 'refunded', 'cached');
        await db.query('UPDATE public.licenses SET checked_at = checked_at - interval \'10 minutes\'');
        assert.equal((await auth.licenses.validate(user, { provider: 'gumroad', licenseKey: key })).status, 'disputed');
        purchase.disputed = false;
        purchase.subscriptionEndedAt = ago(1000);
        await auth.licenses.handleWebhook('gumroad', ping({ resource_name: 'subscription_ended' }));
        assert.equal((await auth.licenses.list(user))[0]!.status, 'ended');
        // A ping for a key nobody activated: nothing asked, nothing changed.
        const before = gumroad.calls.length;
        assert.equal((await auth.licenses.handleWebhook('gumroad', ping({ license_key: 'UNKNOWN-KEY', resource_name: 'sale' }))).reason, 'unknown_license');
        assert.equal(gumroad.calls.length, before);
      }));

    test('validate: cache, then 429 (Lemon Squeezy\'s 60 a minute) and 5xx fall back to the stored answer within grace, else license_unavailable', () =>
      withStores(dialect, async ({ auth, lemon, db, make }) => {
        const user = await createUser(db);
        const { key } = lemon.sell();
        await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, ...await device(db, user, 'd') });
        const noCache = make({ cacheSeconds: 0 });
        assert.equal((await noCache.licenses.validate(user, { provider: 'lemonsqueezy', licenseKey: key })).answeredBy, 'store');
        lemon.ratePerMinute = lemon.calls.length; // the minute's budget is spent
        const limited = await noCache.licenses.validate(user, { provider: 'lemonsqueezy', licenseKey: key });
        assert.deepEqual([limited.answeredBy, limited.valid], ['grace', true]);
        lemon.ratePerMinute = 60;
        for (const status of [500, 503] as const) {
          lemon.failure = { kind: 'http', status };
          assert.equal((await noCache.licenses.validate(user, { provider: 'lemonsqueezy', licenseKey: key })).answeredBy, 'grace');
        }
        lemon.failure = { kind: 'garbage' };
        assert.equal((await noCache.licenses.validate(user, { provider: 'lemonsqueezy', licenseKey: key })).answeredBy, 'grace');
        await db.query("UPDATE public.licenses SET checked_at = checked_at - interval '25 hours'");
        await assert.rejects(noCache.licenses.validate(user, { provider: 'lemonsqueezy', licenseKey: key }), (e) => code(e) === 'license_unavailable');
        lemon.failure = { kind: 'slow', ms: 1000 };
        await assert.rejects(make({ cacheSeconds: 0, timeoutMs: 100 }).licenses.validate(user, { provider: 'lemonsqueezy', licenseKey: key }),
          (e) => code(e) === 'license_unavailable' && /within 100 ms/.test((e as Error).message));
        lemon.failure = null;
        // A new activation while the store is rate limited: license_unavailable, nothing written.
        const { key: other } = lemon.sell();
        lemon.ratePerMinute = 0;
        await device(db, user, 'x');
        const before = await dumpDatabase(db);
        await assert.rejects(auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: other, ...await device(db, user, 'x') }), (e) => code(e) === 'license_unavailable');
        assert.deepEqual(await dumpDatabase(db), before);
      }));

    test('seats: a Gumroad multi-seat purchase of 3 seats; members get the plan as source seat; the 4th is no_seats_left; remove frees one', () =>
      withStores(dialect, async ({ auth, gumroad, lemon, db }) => {
        const owner = await createUser(db);
        const members = await Promise.all(Array.from({ length: 5 }, () => createUser(db)));
        const { key, purchase } = gumroad.sell({ isMultiseatLicense: true, quantity: 3 });
        await auth.licenses.activate(owner, { provider: 'gumroad', licenseKey: key, ...await device(db, owner, 'owner') });
        assert.equal((await auth.subscriptions.effectivePlan(owner)).source, 'free', 'a team license grants through seats');
        for (const m of members.slice(0, 3)) await auth.seats.assign(owner, m);
        assert.equal((await auth.seats.assign(owner, members[0]!)).seatsUsed, 3, 'idempotent');
        await assert.rejects(auth.seats.assign(owner, members[3]!), (e) => code(e) === 'no_seats_left');
        const plan = await auth.subscriptions.effectivePlan(members[0]!);
        assert.deepEqual([plan.planSlug, plan.source, plan.grants[0]!.detail], ['pro', 'seat', 'gumroad']);
        assert.equal((await auth.usage.consume(members[1]!, 'resize')).planSlug, 'pro');
        const list = await auth.seats.list(owner);
        assert.deepEqual([list.seats, list.used], [3, 3]);
        await auth.seats.remove(owner, members[0]!);
        await assert.rejects(auth.seats.remove(owner, members[0]!), (e) => code(e) === 'seat_not_found');
        assert.equal((await auth.subscriptions.effectivePlan(members[0]!)).source, 'free');
        await auth.seats.assign(owner, members[3]!);
        // Another owner cannot take a seated member.
        const other = await createUser(db);
        const ls = lemon.sell({ variantId: 333 });
        await auth.plans.linkLicense('enterprise', { provider: 'lemonsqueezy', productId: '111', variantId: '333', seats: 2 });
        await auth.licenses.activate(other, { provider: 'lemonsqueezy', licenseKey: ls.key, ...await device(db, other, 'o') });
        await assert.rejects(auth.seats.assign(other, members[3]!), (e) => code(e) === 'seat_taken');
        await auth.seats.assign(other, members[4]!);
        assert.deepEqual([(await auth.subscriptions.effectivePlan(members[4]!)).planSlug, (await auth.seats.list(other)).seats], ['enterprise', 2]);
        // The team license refunded: every member loses the plan at once.
        purchase.refunded = true;
        await auth.licenses.handleWebhook('gumroad', new URLSearchParams({ resource_name: 'refund', license_key: key, product_id: GUMROAD_PRODUCT }).toString());
        assert.equal((await auth.usage.check(members[1]!, 'resize')).planSlug, 'free');
        await assert.rejects(auth.seats.assign(owner, members[0]!), (e) => code(e) === 'no_seats_left');
      }));

    test('Stripe seats: items.data[0].quantity 5 makes a team of 5; members get the plan as source seat; a decrease keeps the first members seated', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db);
        await linkPrices(db);
        const owner = await createUser(db);
        const members = await Promise.all(Array.from({ length: 6 }, () => createUser(db)));
        const base = Math.floor(Date.now() / 1000) - 600;
        let at = base;
        const team = (quantity: number | undefined, status = 'active') => {
          const s = subscription({ userId: owner, id: 'sub_team', customer: 'cus_team', priceId: PRICES.pro, status, periodStart: base - DAY, periodEnd: base + 30 * DAY });
          if (quantity === undefined) delete s.items.data[0].quantity;
          else s.items.data[0].quantity = quantity;
          return s as never;
        };
        const sync = (quantity: number | undefined, status = 'active') => auth.subscriptions.syncFromStripe(team(quantity, status), { eventCreated: ++at });
        const source = async (user: string) => { const p = await auth.subscriptions.effectivePlan(user); return `${p.source}:${p.planSlug}`; };
        const active = async () => (await auth.seats.list(owner)).members.map((m) => m.active);

        assert.equal((await sync(5)).applied, true);
        const plan = await auth.subscriptions.effectivePlan(owner);
        assert.deepEqual([plan.source, plan.subscription?.quantity, plan.subscription?.status], ['free', 5, 'active'], 'a team subscription grants through seats');
        for (const m of members.slice(0, 5)) {
          const a = await auth.seats.assign(owner, m);
          assert.deepEqual([a.licenseId, typeof a.subscriptionId], [null, 'string']);
        }
        assert.equal((await auth.seats.assign(owner, members[0]!)).seatsUsed, 5, 'idempotent');
        await assert.rejects(auth.seats.assign(owner, members[5]!), (e) => code(e) === 'no_seats_left');
        const seated = await auth.subscriptions.effectivePlan(members[0]!);
        assert.deepEqual([seated.source, seated.planSlug, seated.grants[0]!.detail, seated.until?.getTime()], ['seat', 'pro', 'stripe', (base + 30 * DAY) * 1000]);
        assert.equal((await auth.usage.consume(members[4]!, 'resize')).planSlug, 'pro');
        assert.deepEqual(await active(), [true, true, true, true, true]);
        assert.deepEqual([(await auth.seats.list(owner)).seats, (await auth.seats.list(owner)).used], [5, 5]);
        // The same event again: a duplicate; the same event time with another quantity: applied.
        assert.deepEqual(await auth.subscriptions.syncFromStripe(team(5), { eventCreated: at }), { applied: false, reason: 'duplicate', userId: owner, planSlug: 'pro', status: 'active' });
        assert.equal((await auth.subscriptions.syncFromStripe(team(4), { eventCreated: at })).applied, true);
        assert.deepEqual(await active(), [true, true, true, true, false]);
        await sync(5);

        // Down to 3 seats: the 3 members assigned first keep theirs, the 2 newest lose access.
        await sync(3);
        assert.deepEqual(await active(), [true, true, true, false, false]);
        assert.deepEqual(await Promise.all(members.slice(0, 5).map(source)), ['seat:pro', 'seat:pro', 'seat:pro', 'free:free', 'free:free']);
        assert.equal((await auth.usage.consume(members[4]!, 'resize')).planSlug, 'free');
        await assert.rejects(auth.seats.assign(owner, members[5]!), (e) => code(e) === 'no_seats_left', 'five assigned, three seats');
        const list = await auth.seats.list(owner);
        assert.deepEqual([list.seats, list.used], [3, 5]);
        // A seated member leaves: the next in line gets the seat.
        await auth.seats.remove(owner, members[0]!);
        assert.deepEqual(await active(), [true, true, true, false]);
        assert.equal(await source(members[3]!), 'seat:pro');
        assert.equal(await source(members[4]!), 'free:free');
        // Back up to 5: everyone assigned is seated again; one seat is free.
        await sync(5);
        assert.deepEqual(await active(), [true, true, true, true]);
        await auth.seats.assign(owner, owner);
        assert.equal(await source(owner), 'seat:pro', 'the owner may take a seat');
        // Cancelled: no seat grants; the assignments are kept for a renewal.
        await sync(5, 'canceled');
        assert.deepEqual(await active(), [false, false, false, false, false]);
        await assert.rejects(auth.seats.assign(owner, members[0]!), (e) => code(e) === 'no_seats_left');
        await sync(5);
        assert.deepEqual(await active(), [true, true, true, true, true]);
        // Quantity 1 (or none, a metered price): the subscriber's own plan again, no team.
        await sync(1);
        assert.deepEqual([await source(owner), (await auth.seats.list(owner)).seats], ['stripe:pro', 0]);
        assert.equal(await source(members[1]!), 'free:free');
        await sync(undefined);
        assert.equal((await auth.subscriptions.effectivePlan(owner)).subscription?.quantity, 1);
        // Quantity 0: nobody.
        await sync(0);
        assert.deepEqual([await source(owner), await source(members[1]!)], ['free:free', 'free:free']);
        // A manual plan over the row is never a team.
        await sync(5);
        await auth.subscriptions.assignPlan(owner, 'basic');
        assert.deepEqual([await source(owner), await source(members[1]!)], ['manual:basic', 'free:free']);
        // A member holds one seat, but only of a team in force: this owner's is not (a manual plan
        // over the row), so another owner's team may seat one of its members (seat_taken while in
        // force: the seat-squatting test below).
        const other = await createUser(db);
        await auth.subscriptions.syncFromStripe({ ...subscription({ userId: other, id: 'sub_other', customer: 'cus_other', priceId: PRICES.enterprise }), items: { data: [{ price: { id: PRICES.enterprise }, quantity: 2 }] } } as never, { eventCreated: ++at });
        await auth.seats.assign(other, members[1]!);
        await auth.seats.assign(other, members[5]!);
        assert.deepEqual([await source(members[1]!), await source(members[5]!)], ['seat:enterprise', 'seat:enterprise']);
        // Deleting the owner's row frees its seats (ON DELETE CASCADE).
        await db.query('DELETE FROM public.user_subscriptions WHERE user_id = $1::uuid', [other]);
        assert.equal(await count(db, 'seat_assignments'), 4);
      }));

    test('seat squatting: a stranger\'s team that is refunded no longer holds the member; a team in force does (issue 22)', () =>
      withStores(dialect, async ({ auth, gumroad, db }) => {
        const [stranger, employer, victim] = [await createUser(db), await createUser(db), await createUser(db)];
        const squat = gumroad.sell({ isMultiseatLicense: true, quantity: 3 });
        const honest = gumroad.sell({ isMultiseatLicense: true, quantity: 3 });
        await auth.licenses.activate(stranger, { provider: 'gumroad', licenseKey: squat.key, ...await device(db, stranger, 'd') });
        await auth.licenses.activate(employer, { provider: 'gumroad', licenseKey: honest.key, ...await device(db, employer, 'd') });
        await auth.seats.assign(stranger, victim);
        // While the stranger's team is in force, the seat is theirs: seat_taken.
        await assert.rejects(auth.seats.assign(employer, victim), (e) => code(e) === 'seat_taken');
        // Refunded (the ping re-verified with Gumroad): the team is no longer in force.
        squat.purchase.refunded = true;
        const ping = new URLSearchParams({ resource_name: 'refund', license_key: squat.key, product_id: GUMROAD_PRODUCT }).toString();
        assert.equal((await auth.licenses.handleWebhook('gumroad', ping)).applied, true);
        const seated = await auth.seats.assign(employer, victim);
        assert.deepEqual([seated.seatsUsed, seated.seats], [1, 3]);
        assert.deepEqual([(await auth.subscriptions.effectivePlan(victim)).source, (await auth.seats.list(stranger)).used], ['seat', 0]);
        assert.deepEqual((await auth.seats.list(employer)).members.map((m) => [m.userId, m.active]), [[victim, true]]);
        // An expired team, too; and a Stripe team that was cancelled.
        const other = await createUser(db);
        await auth.seats.assign(employer, other);
        await db.query("UPDATE public.licenses SET expires_at = now() - interval '1 second' WHERE user_id = $1::uuid", [employer]);
        const third = gumroad.sell({ isMultiseatLicense: true, quantity: 2 });
        await auth.licenses.activate(stranger, { provider: 'gumroad', licenseKey: third.key, ...await device(db, stranger, 'd') });
        assert.equal((await auth.seats.assign(stranger, other)).seatsUsed, 1);
        assert.equal(await count(db, 'seat_assignments'), 2);
      }));

    test('Gumroad pings for unknown keys write nothing; stored deliveries are purged by age (issue 22)', () =>
      withStores(dialect, async ({ auth, db, gumroad }) => {
        const before = await dumpDatabase(db);
        for (let i = 0; i < 500; i++) {
          const ping = new URLSearchParams({ resource_name: 'sale', license_key: `UNKNOWN-${i}`, product_id: GUMROAD_PRODUCT }).toString();
          assert.deepEqual(await auth.licenses.handleWebhook('gumroad', ping), { applied: false, reason: 'unknown_license', event: 'sale', licenses: 0, recorded: false });
        }
        assert.deepEqual(await dumpDatabase(db), before, '500 pings for unknown keys: not a row');
        assert.equal(gumroad.calls.length, 0, 'and no call to Gumroad');
        // Lemon Squeezy's signed deliveries are stored (to de-duplicate them) until purged.
        const event = (id: number) => lemonEvent('license_key_updated', { type: 'license-keys', id, attributes: { status: 'active', updated_at: ago(1000) } });
        for (const id of [1, 2, 3]) {
          const e = event(id);
          await auth.licenses.handleWebhook('lemonsqueezy', e.body, e.headers);
        }
        assert.equal(await count(db, 'license_webhook_events'), 3);
        await db.query("UPDATE public.license_webhook_events SET received_at = now() - interval '40 days' WHERE event_id IN (SELECT event_id FROM public.license_webhook_events ORDER BY received_at LIMIT 2)");
        assert.deepEqual(await auth.licenses.purgeWebhookEvents({ olderThan: '30d' }), { deleted: 2 });
        assert.equal(await count(db, 'license_webhook_events'), 1);
        await assert.rejects(auth.licenses.purgeWebhookEvents({ olderThan: new Date() }), (e) => code(e) === 'invalid_cutoff');
        await assert.rejects(auth.licenses.purgeWebhookEvents({ olderThan: 'soon' }), (e) => code(e) === 'invalid_cutoff');
        assert.equal(await count(db, 'license_webhook_events'), 1);
      }));

    test('a device limit of 1 counts devices, not names: five sessions named "Figma" are five devices (issue 22)', () =>
      withStores(dialect, async ({ gumroad, db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET, gumroad: { apiBaseUrl: gumroad.url } });
        await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: GUMROAD_PRODUCT, deviceLimit: 1 });
        const user = await createUser(db);
        const { key } = gumroad.sell();
        const sessions = await Promise.all(Array.from({ length: 5 }, () => auth.tokens.issue(user, { deviceName: 'Figma' })));
        const verified = await Promise.all(sessions.map((s) => auth.tokens.verify(s.token)));
        const activate = (i: number) => auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, deviceId: verified[i]!.deviceId, deviceName: verified[i]!.deviceName });
        assert.equal((await activate(0)).activationsUsed, 1);
        for (const i of [1, 2, 3, 4]) await assert.rejects(activate(i), (e) => code(e) === 'device_limit_reached');
        // The same device again, and the same install after signing in again: fine.
        assert.equal((await activate(0)).activationsUsed, 1);
        const relogin = await auth.tokens.issue(user, { deviceName: 'Figma', deviceId: verified[0]!.deviceId });
        const back = await auth.tokens.verify(relogin.token);
        assert.equal((await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, deviceId: back.deviceId })).activationsUsed, 1);
        const [license] = await auth.licenses.list(user);
        assert.deepEqual(license!.devices.map((d) => [d.deviceId, d.deviceName]), [[verified[0]!.deviceId, 'Figma']]);
        // Another user's device id is not this user's device: unknown_device, nothing written.
        const other = await createUser(db);
        const theirs = await auth.tokens.issue(other, { deviceName: 'Figma' });
        await assert.rejects(auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, deviceId: theirs.deviceId }), (e) => code(e) === 'unknown_device');
        // Deactivating frees the device; another one may take the place.
        await auth.licenses.deactivate(user, { provider: 'gumroad', licenseKey: key, deviceId: verified[0]!.deviceId });
        assert.equal((await activate(3)).activationsUsed, 1);
        // The dashboard's sharing table counts the five devices, named "Figma" once.
        const devices = await readDevices(db, 2);
        const row = devices.sharing.find((s) => s.userId === user)!;
        assert.deepEqual([row.devices, row.tokens, row.deviceNames], [5, 6, ['Figma']]);
        assert.equal(devices.buckets.find((b) => b.count === 5)!.byDevices, 1);
      }));

    test('a license team that shrinks (Gumroad quantity 3 -> 2) keeps its first members seated', () =>
      withStores(dialect, async ({ auth, gumroad, db }) => {
        const owner = await createUser(db);
        const members = await Promise.all(Array.from({ length: 3 }, () => createUser(db)));
        const { key, purchase } = gumroad.sell({ isMultiseatLicense: true, quantity: 3 });
        await auth.licenses.activate(owner, { provider: 'gumroad', licenseKey: key, ...await device(db, owner, 'owner') });
        for (const m of members) await auth.seats.assign(owner, m);
        purchase.quantity = 2;
        await db.query("UPDATE public.licenses SET checked_at = checked_at - interval '10 minutes'");
        await auth.licenses.validate(owner, { provider: 'gumroad', licenseKey: key });
        const list = await auth.seats.list(owner);
        assert.deepEqual([list.seats, list.used, list.members.map((m) => m.active)], [2, 3, [true, true, false]]);
        assert.equal((await auth.subscriptions.effectivePlan(members[2]!)).source, 'free');
        assert.equal((await auth.usage.check(members[0]!, 'resize')).planSlug, 'pro');
        // Down to 1: a team of one is no team; the buyer holds the license's plan again.
        purchase.quantity = 1;
        await db.query("UPDATE public.licenses SET checked_at = checked_at - interval '10 minutes'");
        await auth.licenses.validate(owner, { provider: 'gumroad', licenseKey: key });
        assert.deepEqual([(await auth.subscriptions.effectivePlan(owner)).source, (await auth.subscriptions.effectivePlan(members[0]!)).source], ['gumroad', 'free']);
      }));

    test('a plan caps devices per license: the cap in force is the smallest of the mapping\'s, the plan\'s and the store\'s', () =>
      withStores(dialect, async ({ auth, lemon, gumroad, db }) => {
        const pro = await auth.plans.setDeviceLimit('pro', 2);
        assert.equal(pro.deviceLimit, 2);
        assert.equal((await auth.plans.list()).find((p) => p.slug === 'pro')!.deviceLimit, 2);
        const user = await createUser(db);
        // Lemon Squeezy allows 5, the mapping none, the plan 2: 2.
        const ls = lemon.sell({ activationLimit: 5 });
        const first = await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: ls.key, ...await device(db, user, 'laptop') });
        assert.equal(first.activationLimit, 2);
        await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: ls.key, ...await device(db, user, 'desktop') });
        const calls = lemon.calls.length;
        await assert.rejects(auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: ls.key, ...await device(db, user, 'tablet') }),
          (e) => code(e) === 'device_limit_reached' && /2 of 2 devices; deactivate one of: laptop \([0-9a-f]{8}\), desktop \([0-9a-f]{8}\)$/.test((e as Error).message));
        assert.equal(lemon.calls.length, calls, 'refused before the store is asked');
        // Gumroad has no limit of its own: the plan's applies; the mapping's when smaller.
        const gr = gumroad.sell();
        assert.equal((await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: gr.key, ...await device(db, user, 'a') })).activationLimit, 2);
        await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: GUMROAD_PRODUCT, deviceLimit: 1 });
        await assert.rejects(auth.licenses.activate(user, { provider: 'gumroad', licenseKey: gr.key, ...await device(db, user, 'b') }), (e) => code(e) === 'device_limit_reached');
        assert.deepEqual((await auth.licenses.list(user)).map((l) => [l.provider, l.activationLimit]), [['lemonsqueezy', 2], ['gumroad', 1]]);
        // The store's own limit when it is the smallest.
        await auth.plans.setDeviceLimit('pro', 1000);
        await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: GUMROAD_PRODUCT });
        assert.deepEqual((await auth.licenses.list(user)).map((l) => l.activationLimit), [5, 1000]);
        // No cap anywhere (Gumroad, no mapping limit, plan cap removed): none.
        assert.equal((await auth.plans.setDeviceLimit('pro', null)).deviceLimit, null);
        assert.deepEqual((await auth.licenses.list(user)).map((l) => l.activationLimit), [5, null]);
        assert.equal((await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: gr.key, ...await device(db, user, 'b') })).activationsUsed, 2);
        // Lowering a cap keeps the devices already active and refuses new ones.
        await auth.plans.setDeviceLimit('pro', 1);
        assert.deepEqual((await auth.licenses.list(user)).map((l) => l.devices.length), [2, 2]);
        await assert.rejects(auth.licenses.activate(user, { provider: 'gumroad', licenseKey: gr.key, ...await device(db, user, 'c') }), (e) => code(e) === 'device_limit_reached');
        // Bad caps: a typed error, nothing written.
        const before = await dumpDatabase(db);
        for (const [slug, limit, expected] of [['pro', 0, 'invalid_license_link'], ['pro', 1001, 'invalid_license_link'], ['pro', 1.5, 'invalid_license_link'],
          ['pro', '2', 'invalid_license_link'], ['pro', undefined, 'invalid_license_link'], ['platinum', 2, 'unknown_plan'], [42, 2, 'unknown_plan']] as const) {
          await assert.rejects(auth.plans.setDeviceLimit(slug as string, limit as number), (e) => code(e) === expected, `${slug} ${String(limit)}`);
        }
        assert.deepEqual(await dumpDatabase(db), before);
      }));

    test('Lemon Squeezy has no dispute event: a chargeback it settles arrives as a full refund (revoked); a partial refund changes nothing', () =>
      withStores(dialect, async ({ auth, lemon, db }) => {
        const user = await createUser(db);
        const { key, license } = lemon.sell();
        await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, ...await device(db, user, 'd') });
        const partial = lemonEvent('order_refunded', { type: 'orders', id: license.orderId, attributes: { status: 'paid', refunded: false, refunded_amount: 100, updated_at: ago(2000) } });
        assert.deepEqual(await auth.licenses.handleWebhook('lemonsqueezy', partial.body, partial.headers), { applied: false, reason: 'ignored', licenses: 0, event: 'order_refunded', recorded: false });
        assert.equal((await auth.subscriptions.effectivePlan(user)).source, 'lemonsqueezy');
        const full = lemonEvent('order_refunded', { type: 'orders', id: license.orderId, attributes: { status: 'refunded', refunded: true, refunded_amount: 1500, updated_at: ago(1000) } });
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', full.body, full.headers)).reason, 'applied');
        assert.equal((await auth.subscriptions.effectivePlan(user)).source, 'free');
      }));

    test('plans.linkLicense: variant over product, unlink, and bad links refused before any write', () =>
      withStores(dialect, async ({ auth, db }) => {
        await auth.plans.linkLicense('basic', { provider: 'lemonsqueezy', productId: '111', variantId: '222' });
        assert.equal(await count(db, 'license_products'), 3);
        const before = await dumpDatabase(db);
        const bad: [unknown, string][] = [
          [{ provider: 'stripe', productId: '1' }, 'invalid_license_provider'],
          [{ provider: 'gumroad', productId: '' }, 'invalid_license_product'],
          [{ provider: 'gumroad', productId: 'a b' }, 'invalid_license_product'],
          [{ provider: 'gumroad', productId: 'x', variantId: 5 }, 'invalid_license_product'],
          [{ provider: 'gumroad', productId: 'x', deviceLimit: 0 }, 'invalid_license_link'],
          [{ provider: 'gumroad', productId: 'x', seats: 2.5 }, 'invalid_license_link'],
          [null, 'invalid_license_product'],
        ];
        for (const [link, expected] of bad) {
          await assert.rejects(auth.plans.linkLicense('pro', link as never), (e) => e instanceof PluginAuthError && code(e) === expected, JSON.stringify(link));
        }
        await assert.rejects(auth.plans.linkLicense('platinum', { provider: 'gumroad', productId: 'x' }), (e) => code(e) === 'unknown_plan');
        assert.deepEqual(await dumpDatabase(db), before);
        assert.equal(await auth.plans.linkLicense(null, { provider: 'lemonsqueezy', productId: '111', variantId: '222' }), null);
        assert.equal(await count(db, 'license_products'), 2);
      }));

    test('bad input to licenses and seats: a typed error before any call or write', () =>
      withStores(dialect, async ({ auth, lemon, gumroad, db }) => {
        const user = await createUser(db);
        const { key } = lemon.sell();
        const d = await device(db, user, 'd');
        const before = await dumpDatabase(db);
        const calls = () => lemon.calls.length + gumroad.calls.length;
        const start = calls();
        const cases: [() => Promise<unknown>, string][] = [
          [() => auth.licenses.activate('nope', { provider: 'lemonsqueezy', licenseKey: key, ...d }), 'invalid_user_id'],
          [() => auth.licenses.activate(user, { provider: 'paddle' as never, licenseKey: key, ...d }), 'invalid_license_provider'],
          [() => auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: '', ...d }), 'invalid_license_key'],
          [() => auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: 'a b', ...d }), 'invalid_license_key'],
          [() => auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: 'x'.repeat(256), ...d }), 'invalid_license_key'],
          [() => auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: 42 as never, ...d }), 'invalid_license_key'],
          [() => auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, deviceId: d.deviceId, deviceName: '' }), 'invalid_device_name'],
          [() => auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, deviceId: d.deviceId, deviceName: 'a\u0085b' }), 'invalid_device_name'],
          [() => auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key } as never), 'invalid_device_id'],
          [() => auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, deviceId: 'Figma' }), 'invalid_device_id'],
          // A device id no session of this user carries (another user's, or made up): refused before the store is asked.
          [() => auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, deviceId: '00000000-0000-4000-8000-000000000001' }), 'unknown_device'],
          [() => auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, ...d, productId: '../x y' }), 'invalid_license_product'],
          [() => auth.licenses.activate(user, null as never), 'invalid_license_key'],
          [() => auth.licenses.activate('00000000-0000-4000-8000-000000000000', { provider: 'lemonsqueezy', licenseKey: key, ...d }), 'unknown_user'],
          [() => auth.licenses.validate(user, { provider: 'gumroad', licenseKey: '\u0000' }), 'invalid_license_key'],
          [() => auth.licenses.deactivate(user, { provider: 'lemonsqueezy', licenseKey: key, deviceId: d.deviceId }), 'license_not_found'],
          [() => auth.licenses.handleWebhook('paddle' as never, '{}', {}), 'invalid_license_provider'],
          [() => auth.licenses.handleWebhook('lemonsqueezy', 42 as never, {}), 'invalid_webhook'],
          [() => auth.licenses.handleWebhook('lemonsqueezy', '{}', {}), 'invalid_signature'],
          [() => auth.licenses.handleWebhook('lemonsqueezy', 'x'.repeat(1024 * 1024 + 1), {}), 'invalid_webhook'],
          [() => auth.seats.assign('x', user), 'invalid_user_id'],
          [() => auth.seats.assign(user, 'x'), 'invalid_user_id'],
          [() => auth.seats.assign(user, user), 'no_seats_left'],
          [() => auth.seats.remove(user, 'x'), 'invalid_user_id'],
          [() => auth.seats.list('x'), 'invalid_user_id'],
          [() => createPluginAuth(db).licenses.activate(user, { provider: 'gumroad', licenseKey: key, ...d }), 'license_not_configured'],
          [() => createPluginAuth(db).licenses.handleWebhook('lemonsqueezy', '{}', {}), 'license_not_configured'],
        ];
        for (const [call, expected] of cases) {
          const error = await call().then(() => undefined, (e: unknown) => e);
          assert.ok(error instanceof PluginAuthError, `${expected}: ${String(error)}`);
          assert.equal(error.code, expected);
          assert.ok(!error.message.includes(key), 'the key is never in a message');
        }
        assert.equal(calls(), start, 'no store was asked');
        assert.deepEqual(await dumpDatabase(db), before);
        assert.throws(() => createPluginAuth(db, { lemonSqueezy: { webhookSecret: '' } }), (e) => code(e) === 'license_config_invalid');
        assert.throws(() => createPluginAuth(db, { gumroad: { apiBaseUrl: 'ftp://x' } }), (e) => code(e) === 'license_config_invalid');
        assert.throws(() => createPluginAuth(db, { gumroad: {}, licenses: { cacheSeconds: -1 } }), (e) => code(e) === 'license_config_invalid');
      }));
  });
}

for (const dialect of SERVER_DIALECTS) {
  describe(`licenses, concurrency [${dialect}, real parallel connections]`, () => {
    test('16 concurrent activations of one key on 16 devices with a device limit of 3: exactly 3 succeed [postgres]', () =>
      withStores(dialect, async ({ auth, lemon, gumroad, db }) => {
        await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: GUMROAD_PRODUCT, deviceLimit: 3 });
        for (const provider of ['lemonsqueezy', 'gumroad'] as const) {
          const user = await createUser(db);
          const key = provider === 'lemonsqueezy' ? lemon.sell({ activationLimit: 3 }).key : gumroad.sell().key;
          lemon.delayMs = gumroad.delayMs = 30;
          const sessions = [];
          for (let i = 0; i < 16; i++) sessions.push(await device(db, user, `device-${i}`));
          const results = await Promise.allSettled(sessions.map((d) => auth.licenses.activate(user, { provider, licenseKey: key, ...d })));
          const ok = results.filter((r) => r.status === 'fulfilled');
          const refused = results.filter((r) => r.status === 'rejected');
          assert.equal(ok.length, 3, provider);
          assert.ok(refused.every((r) => code((r as PromiseRejectedResult).reason) === 'device_limit_reached'), provider);
          const devices = await db.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM public.license_devices d JOIN public.licenses k ON k.id = d.license_id WHERE k.user_id = $1::uuid', [user]);
          assert.equal(devices[0]!.n, 3, provider);
          if (provider === 'lemonsqueezy') assert.equal([...lemon.keys.get(key)!.instances.values()].length, 3, 'the store holds the same 3');
        }
        const backends = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()');
        assert.ok(backends[0]!.n >= 8, `parallel connections were used (${backends[0]!.n})`);
      }, 20));

    test('16 parallel seat assigns for 5 seats: exactly 5 members seated [postgres]', () =>
      withStores(dialect, async ({ auth, gumroad, db }) => {
        const owner = await createUser(db);
        const { key } = gumroad.sell({ isMultiseatLicense: true, quantity: 5 });
        await auth.licenses.activate(owner, { provider: 'gumroad', licenseKey: key, ...await device(db, owner, 'owner') });
        const members = await Promise.all(Array.from({ length: 16 }, () => createUser(db)));
        const results = await Promise.allSettled(members.map((m) => auth.seats.assign(owner, m)));
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5);
        assert.ok(results.filter((r) => r.status === 'rejected').every((r) => code((r as PromiseRejectedResult).reason) === 'no_seats_left'));
        assert.equal(await count(db, 'seat_assignments'), 5);
        const seated = await Promise.all(members.map(async (m) => (await auth.subscriptions.effectivePlan(m)).source));
        assert.equal(seated.filter((s) => s === 'seat').length, 5);
      }, 20));
  });
}

for (const dialect of SERVER_DIALECTS) {
  describe(`seats, concurrency [${dialect}, real parallel connections]`, () => {
    test('16 parallel seat assigns for a Stripe subscription of quantity 5: exactly 5 members seated [postgres]', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db);
        await linkPrices(db);
        const owner = await createUser(db);
        const s = subscription({ userId: owner, priceId: PRICES.pro });
        s.items.data[0].quantity = 5;
        await auth.subscriptions.syncFromStripe(s as never, { eventCreated: Math.floor(Date.now() / 1000) - 60 });
        const members = await Promise.all(Array.from({ length: 16 }, () => createUser(db)));
        const results = await Promise.allSettled(members.map((m) => auth.seats.assign(owner, m)));
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5);
        assert.ok(results.filter((r) => r.status === 'rejected').every((r) => code((r as PromiseRejectedResult).reason) === 'no_seats_left'));
        assert.equal(await count(db, 'seat_assignments'), 5);
        const seated = await Promise.all(members.map(async (m) => (await auth.subscriptions.effectivePlan(m)).source));
        assert.equal(seated.filter((x) => x === 'seat').length, 5);
        const backends = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()');
        assert.ok(backends[0]!.n >= 8, `parallel connections were used (${backends[0]!.n})`);
      }, { max: 20 }));

    test('16 parallel seat assigns for a Stripe quantity of 4 and a Gumroad team of 3: exactly 7 members seated [postgres]', () =>
      withStores(dialect, async ({ auth, gumroad, db }) => {
        await linkPrices(db);
        const owner = await createUser(db);
        const { key } = gumroad.sell({ isMultiseatLicense: true, quantity: 3 });
        await auth.licenses.activate(owner, { provider: 'gumroad', licenseKey: key, ...await device(db, owner, 'owner') });
        const s = subscription({ userId: owner, priceId: PRICES.enterprise });
        s.items.data[0].quantity = 4;
        await auth.subscriptions.syncFromStripe(s as never, { eventCreated: Math.floor(Date.now() / 1000) - 60 });
        const members = await Promise.all(Array.from({ length: 16 }, () => createUser(db)));
        const results = await Promise.allSettled(members.map((m) => auth.seats.assign(owner, m)));
        const ok = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<{ licenseId: string | null }>).value);
        assert.equal(ok.length, 7);
        assert.deepEqual([ok.filter((a) => a.licenseId !== null).length, ok.filter((a) => a.licenseId === null).length], [3, 4]);
        assert.ok(results.filter((r) => r.status === 'rejected').every((r) => code((r as PromiseRejectedResult).reason) === 'no_seats_left'));
        assert.equal(await count(db, 'seat_assignments'), 7);
        const plans = await Promise.all(members.map(async (m) => { const p = await auth.subscriptions.effectivePlan(m); return `${p.source}:${p.planSlug}`; }));
        assert.deepEqual([plans.filter((p) => p === 'seat:pro').length, plans.filter((p) => p === 'seat:enterprise').length], [3, 4]);
        const list = await auth.seats.list(owner);
        assert.deepEqual([list.seats, list.used, list.members.every((m) => m.active)], [7, 7, true]);
        const backends = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()');
        assert.ok(backends[0]!.n >= 8, `parallel connections were used (${backends[0]!.n})`);
      }, 20));
  });
}

describe('upgrade from sql/017: subscriptions get quantity 1, license seats are kept, every grant stays the same [postgres and pglite]', () => {
  for (const dialect of DIALECTS) {
    test(dialect, async () => {
      const t = await freshDatabase(dialect, { setup: false });
      try {
        await t.db.exec(`BEGIN;\n${buildSetupScript(loadMigrations().filter((m) => m.version < 18), null)}\nCOMMIT;`);
        const [subscriber, owner, member] = [await createUser(t.db), await createUser(t.db), await createUser(t.db)];
        await linkPrices(t.db);
        await t.db.query('SELECT * FROM public.sync_stripe_subscription($1::jsonb, now() - interval \'1 minute\')',
          [JSON.stringify(subscription({ userId: subscriber, priceId: PRICES.basic }))]);
        await t.db.query("SELECT * FROM public.link_license_plan('pro', 'gumroad', 'team-product', NULL, NULL, 3)");
        const [license] = await t.db.query<{ id: string }>(
          `INSERT INTO public.licenses (provider, key_hash, key_prefix, user_id, product_id, status, checked_at, state_at)
           VALUES ('gumroad', repeat('a', 64), 'ABCD', $1::uuid, 'team-product', 'active', now(), '-infinity') RETURNING id`, [owner]);
        await t.db.query('INSERT INTO public.seat_assignments (license_id, owner_user_id, member_user_id) VALUES ($1::uuid, $2::uuid, $3::uuid)', [license!.id, owner, member]);
        const grants = async () => Promise.all([subscriber, owner, member].map(async (u) =>
          (await t.db.query<{ source: string; plan_slug: string }>('SELECT source, plan_slug FROM public.plugin_auth_grants($1::uuid) ORDER BY rank', [u]))
            .map((g) => `${g.source}:${g.plan_slug}`)));
        const before = await grants();
        assert.deepEqual(before, [['stripe:basic'], [], ['seat:pro']]);
        await t.db.exec(`BEGIN;\n${buildSetupScript()}\nCOMMIT;`);
        assert.deepEqual(await grants(), before);
        assert.deepEqual(await t.db.query('SELECT quantity FROM public.user_subscriptions'), [{ quantity: 1 }]);
        assert.deepEqual(await t.db.query('SELECT license_id, subscription_id, seat_order::int AS seat_order FROM public.seat_assignments'),
          [{ license_id: license!.id, subscription_id: null, seat_order: 1 }], 'seats already given are numbered in the order they were');
        const next = await createUser(t.db);
        await t.db.query('SELECT * FROM public.seat_assign_member($1::uuid, $2::uuid)', [owner, next]);
        assert.deepEqual(await t.db.query('SELECT seat_order::int AS seat_order FROM public.seat_assignments WHERE member_user_id = $1::uuid', [next]), [{ seat_order: 2 }]);
        const versions = await t.db.query<{ version: number }>('SELECT max(version)::int AS version FROM public.plugin_auth_migrations');
        assert.equal(versions[0]!.version, loadMigrations().at(-1)!.version);
        // And the sync now keeps the quantity.
        const s = subscription({ userId: subscriber, priceId: PRICES.basic });
        s.items.data[0].quantity = 3;
        await t.db.query('SELECT * FROM public.sync_stripe_subscription($1::jsonb, now())', [JSON.stringify(s)]);
        assert.deepEqual(await t.db.query('SELECT quantity FROM public.user_subscriptions'), [{ quantity: 3 }]);
      } finally {
        await t.db.close();
        if (t.name) await dropDatabase(t.name);
      }
    });
  }
});
