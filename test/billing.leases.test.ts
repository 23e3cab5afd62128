// Device leases (sql/027, sql/functions/leases.sql, src/billing/leases.ts): heartbeats in real time
// with short windows, node-locked and floating licenses, the overage allowance, the device list,
// machine-readable reasons, offline leases; 16 devices racing for N slots on real parallel
// connections. Gumroad and Lemon Squeezy are local stand-ins on 127.0.0.1.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { DIALECTS, SERVER_DIALECTS, createUser, device, withDatabase } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { startGumroadStandIn, startLemonSqueezyStandIn, type GumroadStandIn, type LemonStandIn } from './helpers/license-standins.ts';
import { createPluginAuth, type PluginAuth } from '../src/auth.ts';
import type { Database } from '../src/core/db.ts';
import { PluginAuthError } from '../src/core/errors.ts';
import { generateEntitlementKey } from '../src/entitlements/index.ts';
import { verifyLicenseLease } from '../src/plugin/leases.ts';
import { LEMON_WEBHOOK_SECRET } from './helpers/secrets.ts';

const PRODUCT = 'plug-pro_Wsw==';
const code = (e: unknown) => (e as PluginAuthError).code;
const KEY = await generateEntitlementKey('ES256');

interface Ctx { db: Database; auth: PluginAuth; gumroad: GumroadStandIn; lemon: LemonStandIn }

async function withLeases(dialect: (typeof DIALECTS)[number], fn: (ctx: Ctx) => Promise<void>, max?: number) {
  const gumroad = await startGumroadStandIn();
  const lemon = await startLemonSqueezyStandIn();
  try {
    await withDatabase(dialect, async ({ db }) => {
      const auth = createPluginAuth(db, {
        gumroad: { apiBaseUrl: gumroad.url },
        lemonSqueezy: { apiBaseUrl: lemon.url, webhookSecret: LEMON_WEBHOOK_SECRET },
        entitlementSigningKey: KEY,
        leases: { offlineSeconds: 3600, refreshSeconds: 600 },
      });
      await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: PRODUCT, deviceLimit: 2 });
      await auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: '111' });
      await fn({ db, auth, gumroad, lemon });
    }, max ? { max } : {});
  } finally {
    await gumroad.close();
    await lemon.close();
  }
}

/** A user with a Gumroad license activated on `first`, and n devices (the first one activated). */
async function licensed(ctx: Ctx, n: number) {
  const user = await createUser(ctx.db);
  const { key } = ctx.gumroad.sell();
  const devices = [];
  for (let i = 0; i < n; i++) devices.push((await device(ctx.db, user, `device-${i}`)).deviceId);
  await ctx.auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, deviceId: devices[0]! });
  return { user, key, devices };
}

for (const dialect of DIALECTS) {
  describe(`device leases [${dialect}]`, () => {
    test('node-locked with a 3 s heartbeat window: a device that misses it stops counting and frees its slot; it comes back only to a free slot', () =>
      withLeases(dialect, async (ctx) => {
        const { auth } = ctx;
        await auth.leases.setProductPolicy({ provider: 'gumroad', productId: PRODUCT }, { heartbeatWindow: 3, overageAllowance: null, floating: null });
        const { user, key, devices: [a, b, c, d] } = await licensed(ctx, 4);
        const b1 = await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, deviceId: b! });
        assert.deepEqual([b1.activationsUsed, b1.activationLimit, b1.overage, b1.reason], [2, 2, false, 'valid']);
        // Both beat (a's lease began at its activation), then a third device is refused.
        assert.equal((await auth.leases.heartbeat(user, a!)).reason, 'valid');
        await assert.rejects(auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, deviceId: c! }), (e) => code(e) === 'device_limit_reached');
        // Never activated on d: node-locked says so; b is live.
        const onD = await auth.leases.heartbeat(user, d!);
        assert.deepEqual([onD.licensed, onD.reason, onD.planSlug, onD.licenses[0]!.reason], [false, 'not_activated_on_device', null, 'not_activated_on_device']);
        assert.equal(onD.heartbeatSeconds, 1);
        // a keeps beating; b stops. After the window b is expired and c takes its slot.
        for (let i = 0; i < 7; i++) {
          const beat = await auth.leases.heartbeat(user, a!);
          assert.deepEqual([beat.licensed, beat.reason, beat.planSlug, beat.source], [true, 'valid', 'pro', 'gumroad']);
          await sleep(500);
        }
        const listed = await auth.leases.devices(user);
        assert.deepEqual(listed.map((x) => [x.deviceId, x.state]).sort(), [[a!, 'live'], [b!, 'expired']].sort());
        const lapsedB = listed.find((x) => x.deviceId === b)!;
        assert.ok(lapsedB.leaseEndsAt! < new Date() && lapsedB.leaseEndsAt!.getTime() - lapsedB.lastSeenAt.getTime() === 3000);
        const c1 = await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, deviceId: c! });
        assert.deepEqual([c1.activationsUsed, c1.overage], [2, false]);
        // b's heartbeat finds its slot taken: heartbeat_missed, and it is not counted.
        const onB = await auth.leases.heartbeat(user, b!);
        assert.deepEqual([onB.licensed, onB.reason], [false, 'heartbeat_missed']);
        assert.equal(onB.licenses[0]!.devicesLive, 2);
        await assert.rejects(auth.leases.require(user, b!), (e) => code(e) === 'heartbeat_missed' && e instanceof PluginAuthError && e.name === 'AuthError');
        // Deactivating c frees a slot: b's next heartbeat takes it again, as a new lease.
        await auth.licenses.deactivate(user, { provider: 'gumroad', licenseKey: key, deviceId: c! });
        const back = await auth.leases.heartbeat(user, b!);
        assert.deepEqual([back.licensed, back.reason], [true, 'valid']);
        const after = await auth.leases.devices(user);
        assert.deepEqual(after.filter((x) => x.state === 'live').map((x) => x.deviceId).sort(), [a!, b!].sort());
      }));

    test('floating with an overage allowance of 1.5 on a cap of 2: any 3 devices hold a lease, the third flagged; the fourth is device_limit_reached', () =>
      withLeases(dialect, async (ctx) => {
        const { auth, db } = ctx;
        await auth.leases.setPlanPolicy('pro', { heartbeatWindow: 3, overageAllowance: 1.5, floating: true });
        const { user, devices } = await licensed(ctx, 5);
        const answers = [];
        for (const d of devices) answers.push(await auth.leases.heartbeat(user, d));
        assert.deepEqual(answers.map((x) => [x.reason, x.overage]),
          [['valid', false], ['valid', false], ['valid', true], ['device_limit_reached', false], ['device_limit_reached', false]]);
        assert.deepEqual([answers[0]!.licenses[0]!.allowed, answers[0]!.licenses[0]!.deviceLimit, answers[0]!.licenses[0]!.floating], [3, 2, true]);
        const listed = await auth.leases.devices(user);
        assert.deepEqual(listed.map((x) => [x.deviceId, x.state, x.overage]), [[devices[0], 'live', false], [devices[1], 'live', false], [devices[2], 'live', true]]);
        // The product's own policy wins over the plan's: node-locked there, so new devices are refused.
        await auth.leases.setProductPolicy({ provider: 'gumroad', productId: PRODUCT }, { heartbeatWindow: null, overageAllowance: null, floating: false });
        assert.equal((await auth.leases.heartbeat(user, devices[4]!)).reason, 'not_activated_on_device');
        await auth.leases.setProductPolicy({ provider: 'gumroad', productId: PRODUCT }, { heartbeatWindow: null, overageAllowance: null, floating: null });
        // Everyone stops but devices[3]: after the window it takes a slot, and it is not the overage.
        await sleep(3200);
        const late = await auth.leases.heartbeat(user, devices[3]!);
        assert.deepEqual([late.reason, late.overage, late.licenses[0]!.devicesLive], ['valid', false, 1]);
        const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.license_devices');
        assert.equal(rows[0]!.n, 4, 'lapsed leases are kept (expired in the list), never duplicated');
      }));

    test('reasons: refunded, suspended, expired, disputed, unlinked; a Stripe-less user without licenses is no_license; another source still licenses the device', () =>
      withLeases(dialect, async (ctx) => {
        const { auth, db } = ctx;
        const { user, devices: [a] } = await licensed(ctx, 1);
        const [{ id }] = await db.query<{ id: string }>('SELECT id FROM public.licenses WHERE user_id = $1::uuid', [user]) as [{ id: string }];
        const cases = [['refunded', 'license_refunded'], ['disabled', 'license_suspended'], ['expired', 'license_expired'], ['chargebacked', 'license_disputed'], ['ended', 'license_expired']] as const;
        for (const [status, reason] of cases) {
          await db.query('SELECT public.license_apply_state($1::uuid, $2::varchar, NULL, NULL, NULL, now(), true)', [id, status]);
          const answer = await auth.leases.heartbeat(user, a!);
          assert.deepEqual([answer.licensed, answer.reason, answer.licenses[0]!.reason], [false, reason, reason], status);
          await assert.rejects(auth.leases.require(user, a!), (e) => code(e) === reason);
        }
        await db.query('SELECT public.license_apply_state($1::uuid, $2::varchar, NULL, NULL, NULL, now(), true)', [id, 'active']);
        assert.equal((await auth.leases.heartbeat(user, a!)).reason, 'valid');
        await auth.plans.linkLicense(null, { provider: 'gumroad', productId: PRODUCT });
        assert.equal((await auth.leases.heartbeat(user, a!)).reason, 'license_not_linked');
        // A manual plan is a source of its own: licensed on any device, whatever the licenses say.
        await auth.subscriptions.assignPlan(user, 'pro');
        const manual = await auth.leases.heartbeat(user, a!);
        assert.deepEqual([manual.licensed, manual.reason, manual.planSlug], [true, 'valid', 'pro']);
        assert.notEqual(manual.source, 'gumroad');
        const nobody = await createUser(db);
        const { deviceId } = await device(db, nobody, 'fresh');
        const none = await auth.leases.heartbeat(nobody, deviceId);
        assert.deepEqual([none.licensed, none.reason, none.licenses], [false, 'no_license', []]);
      }));

    test('bad input is a typed error and writes nothing: policies, device ids, another user\'s device', () =>
      withLeases(dialect, async (ctx) => {
        const { auth, db } = ctx;
        const { user } = await licensed(ctx, 1);
        const other = await createUser(db);
        const { deviceId: foreign } = await device(db, other, 'theirs');
        const before = await dumpDatabase(db);
        const bad = [
          { heartbeatWindow: 0, overageAllowance: null, floating: null },
          { heartbeatWindow: 2_592_001, overageAllowance: null, floating: null },
          { heartbeatWindow: 1.5, overageAllowance: null, floating: null },
          { heartbeatWindow: null, overageAllowance: 0.9, floating: null },
          { heartbeatWindow: null, overageAllowance: 1.255, floating: null },
          { heartbeatWindow: null, overageAllowance: 11, floating: null },
          { heartbeatWindow: null, overageAllowance: null, floating: 'yes' },
        ];
        for (const policy of bad) {
          await assert.rejects(auth.leases.setPlanPolicy('pro', policy as never), (e) => code(e) === 'invalid_lease_policy', JSON.stringify(policy));
        }
        await assert.rejects(auth.leases.setProductPolicy({ provider: 'gumroad', productId: 'not-linked' }, { heartbeatWindow: 5, overageAllowance: null, floating: null }),
          (e) => code(e) === 'invalid_lease_policy');
        await assert.rejects(auth.leases.setPlanPolicy('no-such-plan', { heartbeatWindow: 5, overageAllowance: null, floating: null }), (e) => code(e) === 'unknown_plan');
        // The SQL door refuses the same (PA120), for callers of the SQL functions.
        await assert.rejects(db.query('SELECT * FROM public.set_plan_lease_policy($1::varchar, $2::integer, $3::numeric, $4::boolean)', ['pro', 0, null, null]),
          (e) => (e as { code?: string }).code === 'PA120');
        await assert.rejects(auth.leases.heartbeat(user, 'not-a-uuid'), (e) => code(e) === 'invalid_device_id');
        await assert.rejects(auth.leases.heartbeat(user, foreign), (e) => code(e) === 'unknown_device');
        await assert.rejects(auth.leases.heartbeat('nope', foreign), (e) => code(e) === 'invalid_user_id');
        assert.deepEqual(await dumpDatabase(db), before);
        assert.throws(() => createPluginAuth(db, { leases: { offlineSeconds: 31 * 86400 } }), (e) => code(e) === 'license_config_invalid');
        assert.throws(() => createPluginAuth(db, { leases: { offlineSeconds: 3600, refreshSeconds: 3600 } }), (e) => code(e) === 'license_config_invalid');
      }));

    test('offline lease: signed for this user and device, verified offline for its lifetime, refused for another device, tampered, from the future or after its end', () =>
      withLeases(dialect, async (ctx) => {
        const { auth } = ctx;
        const { user, devices: [a, b] } = await licensed(ctx, 2);
        const jwks = await auth.leases.jwks();
        const answer = await auth.leases.offlineLease(user, a!);
        assert.equal(answer.reason, 'valid');
        const issued = Date.now();
        assert.ok(Math.abs(answer.lease.expiresAt.getTime() - issued - 3600_000) < 5000);
        assert.ok(Math.abs(answer.lease.refreshAfter.getTime() - issued - 600_000) < 5000);
        const ok = await verifyLicenseLease(answer.lease.jwt, jwks, { userId: user, deviceId: a! });
        assert.equal(ok.kind, 'ok');
        if (ok.kind === 'ok') assert.deepEqual([ok.lease.licensed, ok.lease.reason, ok.lease.planSlug, ok.lease.deviceId], [true, 'valid', 'pro', a]);
        // 59 minutes later, with no server: still licensed. After its end (plus the 5-minute tolerance): expired, not "unlicensed".
        assert.equal((await verifyLicenseLease(answer.lease.jwt, jwks, { userId: user, deviceId: a!, currentDate: new Date(issued + 59 * 60_000) })).kind, 'ok');
        assert.equal((await verifyLicenseLease(answer.lease.jwt, jwks, { userId: user, deviceId: a!, currentDate: new Date(issued + 64 * 60_000) })).kind, 'ok', 'within the clock tolerance');
        assert.equal((await verifyLicenseLease(answer.lease.jwt, jwks, { userId: user, deviceId: a!, currentDate: new Date(issued + 66 * 60_000) })).kind, 'expired');
        // A machine whose clock is set 10 minutes back sees a lease from the future: refused.
        assert.deepEqual(await verifyLicenseLease(answer.lease.jwt, jwks, { userId: user, deviceId: a!, currentDate: new Date(issued - 10 * 60_000) }), { kind: 'invalid', reason: 'issued_in_future' });
        assert.equal((await verifyLicenseLease(answer.lease.jwt, jwks, { userId: user, deviceId: a!, currentDate: new Date(issued - 60_000) })).kind, 'ok', '1 minute of skew is tolerated');
        assert.equal((await verifyLicenseLease(answer.lease.jwt, jwks, { userId: user, deviceId: b! })).kind, 'wrong_device');
        assert.equal((await verifyLicenseLease(answer.lease.jwt, jwks, { userId: b!, deviceId: a! })).kind, 'wrong_user');
        const [h, p, s] = answer.lease.jwt.split('.') as [string, string, string];
        const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), dev: b }), 'utf8').toString('base64url');
        assert.equal((await verifyLicenseLease(`${h}.${forged}.${s}`, jwks, { userId: user, deviceId: b! })).kind, 'invalid');
        const otherKeys = { keys: [{ ...(await generateEntitlementKey('ES256')), d: undefined }] };
        assert.equal((await verifyLicenseLease(answer.lease.jwt, JSON.parse(JSON.stringify(otherKeys)), { userId: user, deviceId: a! })).kind, 'invalid');
        // A snapshot is not a lease (another typ and audience).
        const snapshot = await auth.entitlements.snapshot(user);
        assert.equal((await verifyLicenseLease(snapshot.jwt, jwks, { userId: user, deviceId: a! })).kind, 'invalid');
        // b is not activated (node-locked): its lease says so, signed, so offline it knows it is not licensed.
        const onB = await auth.leases.offlineLease(user, b!);
        const checkB = await verifyLicenseLease(onB.lease.jwt, jwks, { userId: user, deviceId: b! });
        assert.ok(checkB.kind === 'ok' && !checkB.lease.licensed && checkB.lease.reason === 'not_activated_on_device');
      }));
  });
}

for (const dialect of SERVER_DIALECTS) {
  describe(`device leases, concurrency [${dialect}, real parallel connections]`, () => {
    test('16 devices racing for 4 floating slots (overage 1.25: 5) with 3 s heartbeats and expiries: exactly 5 leases in every round [postgres]', () =>
      withLeases(dialect, async (ctx) => {
        const { auth, db } = ctx;
        await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: PRODUCT, deviceLimit: 4 });
        await auth.leases.setProductPolicy({ provider: 'gumroad', productId: PRODUCT }, { heartbeatWindow: 3, overageAllowance: 1.25, floating: true });
        const { user, devices } = await licensed(ctx, 16);
        const race = (who: string[]) => Promise.all(who.map((d) => auth.leases.heartbeat(user, d)));
        // Round 1: the activated device and 15 others at once.
        const first = await race(devices);
        const holders = devices.filter((_, i) => first[i]!.reason === 'valid');
        assert.equal(holders.length, 5);
        assert.ok(holders.includes(devices[0]!), 'the activated device keeps its lease');
        assert.equal(first.filter((x) => x.overage).length, 1, 'exactly one holds the slot past the cap');
        assert.ok(first.filter((x) => x.reason !== 'valid').every((x) => x.reason === 'device_limit_reached'));
        // Rounds 2-4: everyone beats again, in parallel; the holders keep their slots, nobody else gets one.
        for (let round = 0; round < 3; round++) {
          await sleep(400);
          const again = await race(devices);
          assert.deepEqual(devices.filter((_, i) => again[i]!.reason === 'valid').sort(), [...holders].sort(), `round ${round + 2}`);
        }
        // The holders stop; after the window the 11 others race for the freed slots: exactly 5 win.
        await sleep(3300);
        const others = devices.filter((d) => !holders.includes(d));
        const second = await race(others);
        const winners = others.filter((_, i) => second[i]!.reason === 'valid');
        assert.equal(winners.length, 5);
        // And the lapsed holders find their slots taken: heartbeat_missed, exactly.
        const lapsed = await race(holders);
        assert.deepEqual(lapsed.map((x) => x.reason), holders.map(() => 'heartbeat_missed'));
        const live = (await auth.leases.devices(user)).filter((x) => x.state === 'live');
        assert.deepEqual(live.map((x) => x.deviceId).sort(), [...winners].sort());
        assert.equal(live.filter((x) => x.overage).length, 1);
        const backends = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()');
        assert.ok(backends[0]!.n >= 8, `parallel connections were used (${backends[0]!.n})`);
      }, 20));

    test('node-locked: 16 parallel activations and heartbeats while 2 of 3 leases lapse: exactly the freed slots are taken [postgres]', () =>
      withLeases(dialect, async (ctx) => {
        const { auth, db, gumroad } = ctx;
        await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: PRODUCT, deviceLimit: 3 });
        await auth.leases.setProductPolicy({ provider: 'gumroad', productId: PRODUCT }, { heartbeatWindow: 3, overageAllowance: null, floating: null });
        const { user, key, devices } = await licensed(ctx, 16);
        for (const d of devices.slice(1, 3)) await auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, deviceId: d });
        // devices[0] keeps beating across the window; 1 and 2 lapse.
        for (let i = 0; i < 7; i++) {
          assert.equal((await auth.leases.heartbeat(user, devices[0]!)).reason, 'valid');
          await sleep(500);
        }
        gumroad.delayMs = 30;
        const racers = devices.slice(1);
        const results = await Promise.allSettled(racers.map((d, i) => (i % 2 === 0
          ? auth.licenses.activate(user, { provider: 'gumroad', licenseKey: key, deviceId: d }).then(() => 'valid')
          : auth.leases.heartbeat(user, d).then((x) => x.reason))));
        const taken = results.filter((r) => r.status === 'fulfilled' && r.value === 'valid').length;
        assert.equal(taken, 2, JSON.stringify(results.map((r) => (r.status === 'fulfilled' ? r.value : code(r.reason)))));
        for (const r of results) {
          if (r.status === 'rejected') assert.equal(code(r.reason), 'device_limit_reached');
          else assert.ok(['valid', 'not_activated_on_device', 'heartbeat_missed'].includes(r.value as string), String(r.value));
        }
        const live = (await auth.leases.devices(user)).filter((x) => x.state === 'live');
        assert.equal(live.length, 3);
        assert.ok(live.some((x) => x.deviceId === devices[0]));
        const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.license_devices');
        assert.ok(rows[0]!.n >= 3);
      }, 20));
  });
}
