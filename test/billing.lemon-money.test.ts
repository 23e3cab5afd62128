// Lemon Squeezy's money from its webhooks (sql/032, src/billing/licenses.ts lemonWebhook), on both
// databases: order_created / order_refunded (Order object), subscription_created / _updated
// (Subscription object) and subscription_payment_success (Subscription invoice object), as the
// 127.0.0.1 stand-in's fixtures build them field by field; recorded per order, idempotent and
// ordered by updated_at, before or after the key is activated; counted on the console's money
// page per currency, with the sums computed here from the seeded events; refunds leave revenue;
// a forged or malformed delivery writes nothing; eight parallel deliveries record once.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { DIALECTS, createUser, device, withDatabase } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { lemonDelivery, lemonInvoice, lemonOrder, lemonSubscription, startLemonSqueezyStandIn, type LemonStandIn } from './helpers/license-standins.ts';
import { LEMON_WEBHOOK_SECRET as SECRET } from './helpers/secrets.ts';
import { createPluginAuth, type PluginAuth } from '../src/auth.ts';
import { readMoneyByCurrency, readUserConsole } from '../src/dashboard/console.ts';
import { licenseAmount, renderMoney } from '../src/dashboard/console-page.ts';
import type { PluginAuthError } from '../src/core/errors.ts';
import type { Database } from '../src/core/db.ts';

const code = (e: unknown) => (e as PluginAuthError).code;
const ago = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();
const count = async (db: Database, table: string) => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.${table}`))[0]!.n;

interface Ctx { db: Database; auth: PluginAuth; lemon: LemonStandIn; send: (event: string, data: unknown) => ReturnType<PluginAuth['licenses']['handleWebhook']> }

async function withLemon(dialect: (typeof DIALECTS)[number], fn: (ctx: Ctx) => Promise<void>, max?: number) {
  const lemon = await startLemonSqueezyStandIn();
  try {
    await withDatabase(dialect, async ({ db }) => {
      const auth = createPluginAuth(db, { lemonSqueezy: { apiBaseUrl: lemon.url, webhookSecret: SECRET } });
      // One-time product 111; a yearly variant 224 and a monthly one 225 of subscription product 112.
      await auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: '111' });
      await auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: '112', variantId: '224', interval: 'year' });
      await auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: '112', variantId: '225', interval: 'month' });
      const send = (event: string, data: unknown) => {
        const d = lemonDelivery(event, data, SECRET);
        return auth.licenses.handleWebhook('lemonsqueezy', d.body, d.headers);
      };
      await fn({ db, auth, lemon, send });
    }, max ? { max } : {});
  } finally {
    await lemon.close();
  }
}

/** A seeded purchase, as the events sent for it say. */
interface Seeded {
  user: string;
  currency: string | null;
  /** One-time: the order's total less refunds; recurring: the latest paid period invoice (else the order). */
  amount: number | null;
  /** Months per billing period (recurring), null for a one-time sale. */
  months: number | null;
  /** Placed within 30 days. */
  recent: boolean;
  refunded: boolean;
}

/** The money page's Lemon Squeezy rows, computed from the seeded purchases alone. */
function expectedFrom(seeded: Seeded[]) {
  const out = new Map<string, { payingUsers: number; seats: number; recurringSeats: number; mrrMinor: number; sales30d: number; sales30dMinor: number }>();
  for (const s of seeded) {
    const k = s.amount === null ? '' : s.currency!;
    const r = out.get(k) ?? { payingUsers: 0, seats: 0, recurringSeats: 0, mrrMinor: 0, sales30d: 0, sales30dMinor: 0 };
    out.set(k, r);
    if (!s.refunded) {
      r.payingUsers += 1;
      r.seats += 1;
    }
    if (s.amount !== null && s.months !== null && !s.refunded) {
      r.recurringSeats += 1;
      r.mrrMinor += s.amount / s.months;
    }
    if (s.amount !== null && s.months === null && s.recent && !s.refunded) {
      r.sales30d += 1;
      r.sales30dMinor += s.amount;
    }
  }
  for (const [k, v] of out) {
    v.mrrMinor = Math.round(v.mrrMinor);
    if (v.payingUsers === 0 && v.sales30d === 0) out.delete(k);
  }
  return out;
}

for (const dialect of DIALECTS) {
  describe(`Lemon Squeezy money [${dialect}]`, () => {
    test('orders before and after activation, subscriptions and their invoices, in two currencies: the money page equals the sums of the seeded events; refunds leave it', () =>
      withLemon(dialect, async ({ db, auth, lemon, send }) => {
        const seeded: Seeded[] = [];
        const activate = async (key: string) => {
          const user = await createUser(db);
          await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: key, ...await device(db, user, 'Mac') });
          return user;
        };
        // A: one-time USD 49.00 (tax 4.00 included), the order delivered before the key is activated.
        const a = lemon.sell();
        assert.equal((await send('order_created', lemonOrder({ orderId: a.license.orderId, total: 4900, tax: 400, currency: 'USD', createdAt: ago(3), updatedAt: ago(3) }))).reason, 'recorded');
        seeded.push({ user: await activate(a.key), currency: 'USD', amount: 4900, months: null, recent: true, refunded: false });
        // B: one-time EUR 39.00, activated first, its order delivered after.
        const b = lemon.sell();
        const bUser = await activate(b.key);
        const bOrder = await send('order_created', lemonOrder({ orderId: b.license.orderId, total: 3900, currency: 'EUR', createdAt: ago(1), updatedAt: ago(1) }));
        assert.deepEqual(bOrder, { applied: false, reason: 'recorded', licenses: 0, event: 'order_created', recorded: true });
        seeded.push({ user: bUser, currency: 'EUR', amount: 3900, months: null, recent: true, refunded: false });
        // C: one-time USD 29.00, then fully refunded: the license is revoked and the sale leaves revenue.
        const c = lemon.sell();
        const cUser = await activate(c.key);
        await send('order_created', lemonOrder({ orderId: c.license.orderId, total: 2900, currency: 'USD', createdAt: ago(2), updatedAt: ago(2) }));
        const refund = await send('order_refunded', lemonOrder({ orderId: c.license.orderId, total: 2900, currency: 'USD', status: 'refunded', refunded: true, refundedAmount: 2900, createdAt: ago(2), updatedAt: ago(1) }));
        assert.deepEqual(refund, { applied: true, reason: 'applied', licenses: 1, event: 'order_refunded', recorded: true });
        seeded.push({ user: cUser, currency: 'USD', amount: 0, months: null, recent: true, refunded: true });
        // D: one-time USD 19.00 bought 40 days ago: paying, not a sale of the last 30 days; partially refunded 5.00.
        const d = lemon.sell();
        const dUser = await activate(d.key);
        await send('order_created', lemonOrder({ orderId: d.license.orderId, total: 1900, currency: 'USD', createdAt: ago(40), updatedAt: ago(40) }));
        await send('order_refunded', lemonOrder({ orderId: d.license.orderId, total: 1900, currency: 'USD', status: 'partial_refund', refundedAmount: 500, createdAt: ago(40), updatedAt: ago(20) }));
        seeded.push({ user: dUser, currency: 'USD', amount: 1400, months: null, recent: false, refunded: false });
        // E: yearly EUR subscription: the order (120.00), the subscription, its initial invoice, a renewal at 108.00.
        const e = lemon.sell({ productId: 112, variantId: 224 });
        const eUser = await activate(e.key);
        await send('order_created', lemonOrder({ orderId: e.license.orderId, productId: 112, variantId: 224, total: 12000, currency: 'EUR', createdAt: ago(400), updatedAt: ago(400) }));
        // The renewal invoice arrives before the subscription object: kept, linked when it arrives.
        assert.equal((await send('subscription_payment_success', lemonInvoice({ invoiceId: 9002, subscriptionId: 700, billingReason: 'renewal', total: 10800, currency: 'EUR', createdAt: ago(35), updatedAt: ago(35) }))).reason, 'recorded');
        assert.equal((await send('subscription_created', lemonSubscription({ subscriptionId: 700, orderId: e.license.orderId, productId: 112, variantId: 224, createdAt: ago(400), updatedAt: ago(400) }))).reason, 'recorded');
        // The older initial invoice, delivered late: stale. An "updated" (proration) invoice: ignored.
        assert.equal((await send('subscription_payment_success', lemonInvoice({ invoiceId: 9001, subscriptionId: 700, billingReason: 'initial', total: 12000, currency: 'EUR', createdAt: ago(400), updatedAt: ago(400) }))).reason, 'stale');
        assert.equal((await send('subscription_payment_success', lemonInvoice({ invoiceId: 9003, subscriptionId: 700, billingReason: 'updated', total: 333, currency: 'EUR', createdAt: ago(10), updatedAt: ago(10) }))).reason, 'ignored');
        seeded.push({ user: eUser, currency: 'EUR', amount: 10800, months: 12, recent: false, refunded: false });
        // F: monthly USD subscription with no invoice yet: at its order's total.
        const f = lemon.sell({ productId: 112, variantId: 225 });
        const fUser = await activate(f.key);
        await send('subscription_created', lemonSubscription({ subscriptionId: 701, orderId: f.license.orderId, productId: 112, variantId: 225, createdAt: ago(5), updatedAt: ago(5) }));
        await send('order_created', lemonOrder({ orderId: f.license.orderId, productId: 112, variantId: 225, total: 1500, currency: 'USD', createdAt: ago(5), updatedAt: ago(5) }));
        seeded.push({ user: fUser, currency: 'USD', amount: 1500, months: 1, recent: true, refunded: false });
        // G: a license whose order was never seen: paying, amount not recorded.
        const g = lemon.sell();
        seeded.push({ user: await activate(g.key), currency: null, amount: null, months: null, recent: true, refunded: false });
        // H: an order for a key nobody activated: recorded, but no user pays through it here.
        assert.equal((await send('order_created', lemonOrder({ orderId: 987654, total: 99900, currency: 'USD', createdAt: ago(1), updatedAt: ago(1) }))).reason, 'recorded');

        assert.equal(await count(db, 'store_orders'), 7);
        assert.equal(await count(db, 'store_subscriptions'), 2);
        const got = (await readMoneyByCurrency(db)).filter((r) => r.source === 'lemonsqueezy');
        const want = expectedFrom(seeded);
        assert.deepEqual(new Set(got.map((r) => r.currency ?? '')), new Set(want.keys()));
        for (const r of got) {
          assert.deepEqual({ payingUsers: r.payingUsers, seats: r.seats, recurringSeats: r.recurringSeats, mrrMinor: r.mrrMinor, sales30d: r.sales30d, sales30dMinor: r.sales30dMinor },
            want.get(r.currency ?? ''), `lemonsqueezy ${r.currency}`);
        }
        // And against the hand arithmetic, so the two cannot agree on a mistake.
        const one = (c: string | null) => got.find((r) => r.currency === c)!;
        assert.deepEqual([one('USD').payingUsers, one('USD').mrrMinor, one('USD').sales30d, one('USD').sales30dMinor], [3, 1500, 1, 4900]);
        assert.deepEqual([one('EUR').payingUsers, one('EUR').mrrMinor, one('EUR').sales30d, one('EUR').sales30dMinor], [2, 900, 1, 3900]);
        assert.equal(one(null).payingUsers, 1);

        // The user page: each license's amount, or not recorded.
        const amount = async (user: string) => (await readUserConsole(db, user)).licenses[0]!.amount;
        assert.deepEqual(await amount(bUser), { minor: 3900, currency: 'EUR', interval: null, refunded: false });
        assert.deepEqual(await amount(cUser), { minor: 0, currency: 'USD', interval: null, refunded: true });
        assert.deepEqual(await amount(eUser), { minor: 10800, currency: 'EUR', interval: 'year', refunded: false });
        assert.equal(await amount(seeded[6]!.user), null);
        assert.equal(licenseAmount(await amount(eUser)), 'EUR 108.00 / year');
        assert.equal(licenseAmount(await amount(bUser)), 'EUR 39.00 once');
        assert.equal(licenseAmount(await amount(seeded[6]!.user)), 'not recorded');
        const html = renderMoney({ base: '', target: 'test' }, [], got);
        assert.ok(html.includes('EUR 9.00') && html.includes('USD 49.00') && html.includes('not recorded'));

        // Nothing personal or secret was stored: no email, name, key or body.
        const dump = JSON.stringify(await db.query('SELECT * FROM public.store_orders')) + JSON.stringify(await db.query('SELECT * FROM public.store_subscriptions'));
        assert.ok(!dump.includes('buyer@example.com') && !dump.includes('Buyer Name') && !dump.includes(a.key) && !dump.includes('receipt'));
      }));

    test('duplicate and out-of-order deliveries: a replay records nothing, an older event changes nothing, a refund is never lifted', () =>
      withLemon(dialect, async ({ db, auth, lemon, send }) => {
        const sale = lemon.sell();
        const user = await createUser(db);
        await auth.licenses.activate(user, { provider: 'lemonsqueezy', licenseKey: sale.key, ...await device(db, user, 'Mac') });
        const created = lemonDelivery('order_created', lemonOrder({ orderId: sale.license.orderId, total: 5000, currency: 'GBP', createdAt: ago(2), updatedAt: ago(2) }), SECRET);
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', created.body, created.headers)).reason, 'recorded');
        assert.deepEqual(await auth.licenses.handleWebhook('lemonsqueezy', created.body, created.headers), { applied: false, reason: 'duplicate', licenses: 0, event: 'order_created', recorded: false });
        const refunded = lemonOrder({ orderId: sale.license.orderId, total: 5000, currency: 'GBP', status: 'refunded', refunded: true, refundedAmount: 5000, createdAt: ago(2), updatedAt: ago(1) });
        assert.equal((await send('order_refunded', refunded)).reason, 'applied');
        // An older order event (a separate delivery of the pre-refund state) arrives after the refund.
        const older = await send('order_created', lemonOrder({ orderId: sale.license.orderId, total: 5000, currency: 'GBP', createdAt: ago(2), updatedAt: ago(1.5) }));
        assert.deepEqual([older.reason, older.recorded], ['stale', false]);
        // Even a newer "paid" order event does not lift the refund.
        await send('order_created', lemonOrder({ orderId: sale.license.orderId, total: 5000, currency: 'GBP', createdAt: ago(2), updatedAt: ago(0) }));
        const [row] = await db.query<{ status: string; refunded: boolean; refunded_minor: string }>('SELECT status, refunded, refunded_minor::text FROM public.store_orders');
        assert.deepEqual({ ...row }, { status: 'refunded', refunded: true, refunded_minor: '5000' });
        assert.equal((await readMoneyByCurrency(db)).filter((r) => r.source === 'lemonsqueezy').length, 0, 'a refunded sale and a revoked license leave the money page');
        // Subscriptions: the newer state (expired) first, the older (active) second.
        await send('subscription_updated', lemonSubscription({ subscriptionId: 800, orderId: 1, status: 'expired', updatedAt: ago(1) }));
        assert.equal((await send('subscription_created', lemonSubscription({ subscriptionId: 800, orderId: 1, status: 'active', updatedAt: ago(3) }))).reason, 'stale');
        const [sub] = await db.query<{ status: string }>('SELECT status FROM public.store_subscriptions WHERE subscription_id = $1::varchar', ['800']);
        assert.equal(sub!.status, 'expired');
        assert.equal(await count(db, 'store_orders'), 1);
      }));

    test('a forged signature or a malformed body writes nothing, with a typed error code', () =>
      withLemon(dialect, async ({ db, auth, send }) => {
        const before = await dumpDatabase(db);
        const good = lemonOrder({ orderId: 4242, total: 1000, currency: 'USD', createdAt: ago(1), updatedAt: ago(1) });
        const forged = lemonDelivery('order_created', good, 'not-the-secret');
        await assert.rejects(auth.licenses.handleWebhook('lemonsqueezy', forged.body, forged.headers), (e) => code(e) === 'invalid_signature');
        const bad = (attributes: Record<string, unknown>) => ({ ...good, attributes: { ...good.attributes, ...attributes } });
        for (const [event, data] of [
          ['order_created', bad({ total: '10.00' })],
          ['order_created', bad({ total: -1 })],
          ['order_created', bad({ currency: 'US$' })],
          ['order_created', bad({ created_at: null })],
          ['order_created', bad({ status: 'Paid!' })],
          ['order_created', { ...good, id: 'order 1' }],
          ['subscription_created', ((x) => ({ ...x, attributes: { ...x.attributes, status: undefined } }))(lemonSubscription({ subscriptionId: 5, orderId: 6 }))],
          ['subscription_payment_success', { ...lemonInvoice({ invoiceId: 1, subscriptionId: 2, total: 100, currency: 'USD' }), attributes: { total: 100, currency: 'USD' } }],
        ] as const) {
          await assert.rejects(send(event, data), (e) => code(e) === 'invalid_webhook', `${event} ${JSON.stringify(data).slice(0, 80)}`);
        }
        // Checked again by the database: an unknown status, a refund above the total, a far-future time (PA150).
        for (const data of [bad({ status: 'settled' }), bad({ refunded_amount: 2000 }), bad({ updated_at: '2999-01-01T00:00:00.000000Z' })]) {
          await assert.rejects(send('order_created', data), (e) => code(e) === 'invalid_store_order');
        }
        const wellFormed = lemonDelivery('order_created', good, SECRET);
        const body = '{"meta": {"event_name": "order_created"}, "data": ';
        await assert.rejects(auth.licenses.handleWebhook('lemonsqueezy', body, { 'x-signature': createHmac('sha256', SECRET).update(body).digest('hex') }), (e) => code(e) === 'invalid_webhook');
        assert.deepEqual(await dumpDatabase(db), before, 'nothing written, not even the delivery');
        // The SQL function refuses on its own, with its SQLSTATE.
        await assert.rejects(db.query(`SELECT public.store_record_order('lemonsqueezy', '1', NULL, NULL, 'paid', 100, 0, 'usd!', false, now(), now())`),
          (e) => (e as { code?: string }).code === 'PA150' && /^invalid_store_order:/.test((e as Error).message));
        // And the well-formed one is recorded.
        assert.equal((await auth.licenses.handleWebhook('lemonsqueezy', wellFormed.body, wellFormed.headers)).reason, 'recorded');
      }));

    test('the same order_created delivered 8 times in parallel is recorded once', () =>
      withLemon(dialect, async ({ db, auth }) => {
        const delivery = lemonDelivery('order_created', lemonOrder({ orderId: 31337, total: 2500, currency: 'JPY', createdAt: ago(1), updatedAt: ago(1) }), SECRET);
        const results = await Promise.all(Array.from({ length: 8 }, () => auth.licenses.handleWebhook('lemonsqueezy', delivery.body, delivery.headers)));
        assert.deepEqual(results.map((r) => r.reason).sort(), ['duplicate', 'duplicate', 'duplicate', 'duplicate', 'duplicate', 'duplicate', 'duplicate', 'recorded']);
        assert.equal(await count(db, 'store_orders'), 1);
        assert.equal(await count(db, 'license_webhook_events'), 1);
      }, 8));

    test("a variant's renewal interval on its plan link: day, week, month or year, Lemon Squeezy only", () =>
      withLemon(dialect, async ({ db, auth }) => {
        await auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: '113', variantId: '9', interval: 'week', intervalCount: 2 });
        const [row] = await db.query<{ price_interval: string; price_interval_count: number }>(
          "SELECT price_interval, price_interval_count FROM public.license_products WHERE product_id = '113'");
        assert.deepEqual({ ...row }, { price_interval: 'week', price_interval_count: 2 });
        const before = await dumpDatabase(db);
        for (const link of [
          { provider: 'lemonsqueezy' as const, productId: '113', interval: 'fortnight' as never },
          { provider: 'lemonsqueezy' as const, productId: '113', interval: 'month' as const, intervalCount: 0 },
          { provider: 'lemonsqueezy' as const, productId: '113', intervalCount: 3 },
          { provider: 'gumroad' as const, productId: 'g1', interval: 'month' as const },
        ]) {
          await assert.rejects(auth.plans.linkLicense('pro', link), (e) => code(e) === 'invalid_license_link', JSON.stringify(link));
        }
        await assert.rejects(db.query("SELECT * FROM public.link_license_plan('pro', 'gumroad', 'g1', NULL, NULL, NULL, 'month')"), (e) => (e as { code?: string }).code === 'PA082');
        assert.deepEqual(await dumpDatabase(db), before);
      }));
  });
}
