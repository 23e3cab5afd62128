// Money at the prices each source reported (sql/031), on both databases: Stripe records the
// price's unit_amount, currency and interval from the subscription payload; Gumroad records
// purchase.price / currency / recurrence from its verify answer (the 127.0.0.1 stand-in); Figma
// reports no price, so the PAID link carries the operator's; and the console's money figures
// equal sums computed here from the rows read back, per currency, never across currencies.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, createUser, device, withDatabase } from './helpers/databases.ts';
import { startGumroadStandIn } from './helpers/license-standins.ts';
import { linkPrices, subscription, PRICES } from './helpers/stripe.ts';
import { createPluginAuth } from '../src/auth.ts';
import { readMoneyByCurrency, type MoneyAmount } from '../src/dashboard/console.ts';
import { money, renderMoney } from '../src/dashboard/console-page.ts';
import type { Database } from '../src/core/db.ts';

const GUMROAD_PRODUCT = 'plug-pro_Wsw==';
const MONTHS: Record<string, number> = { month: 1, quarter: 3, half_year: 6, year: 12, two_years: 24 };
const STRIPE_PER_MONTH: Record<string, number> = { day: 365 / 12, week: 52 / 12, month: 1, year: 1 / 12 };

async function sync(db: Database, sub: Record<string, unknown>) {
  await db.query('SELECT * FROM public.sync_stripe_subscription($1::jsonb, now() - interval \'1 minute\')', [JSON.stringify(sub)]);
}

/** The money figures computed in TypeScript from the rows as stored. */
async function expected(db: Database): Promise<Map<string, Omit<MoneyAmount, 'source' | 'currency' | 'mrrPerSeatMinor'>>> {
  const out = new Map<string, { payingUsers: number; seats: number; recurringSeats: number; mrrMinor: number; sales30d: number; sales30dMinor: number }>();
  const at = (source: string, currency: string | null) => {
    const k = `${source}|${currency === null ? '' : currency.toUpperCase()}`;
    if (!out.has(k)) out.set(k, { payingUsers: 0, seats: 0, recurringSeats: 0, mrrMinor: 0, sales30d: 0, sales30dMinor: 0 });
    return out.get(k)!;
  };
  const monthAgo = Date.now() - 30 * 86_400_000;
  for (const s of await db.query<{ quantity: number; unit_amount: string | null; currency: string | null; price_interval: string | null; price_interval_count: number | null }>(
    `SELECT quantity, unit_amount::text, currency, price_interval, price_interval_count FROM public.user_subscriptions
      WHERE stripe_subscription_id IS NOT NULL AND status IN ('active', 'past_due')`)) {
    const r = at('stripe', s.currency);
    if (s.quantity > 0) r.payingUsers += 1;
    r.seats += s.quantity;
    if (s.unit_amount !== null) {
      r.recurringSeats += s.quantity;
      r.mrrMinor += (Number(s.unit_amount) * s.quantity * STRIPE_PER_MONTH[s.price_interval!]!) / s.price_interval_count!;
    }
  }
  const [link] = await db.query<{ price_minor: string | null; currency: string | null; price_interval: string | null }>(
    "SELECT price_minor::text, currency, price_interval FROM public.figma_plan_links WHERE link = 'PAID'");
  for (const f of await db.query<{ date_of_purchase: Date | null }>("SELECT date_of_purchase FROM public.figma_users WHERE payment_status = 'PAID' AND user_id IS NOT NULL")) {
    const r = at('figma', link?.currency ?? null);
    r.payingUsers += 1;
    r.seats += 1;
    if (link?.price_interval) {
      r.recurringSeats += 1;
      r.mrrMinor += Number(link.price_minor) / MONTHS[link.price_interval]!;
    } else if (link?.price_minor != null && f.date_of_purchase && f.date_of_purchase.getTime() >= monthAgo) {
      r.sales30d += 1;
      r.sales30dMinor += Number(link.price_minor);
    }
  }
  const users = new Map<string, Set<string>>();
  for (const k of await db.query<{ provider: string; user_id: string; status: string; quantity: number; price_minor: string | null; currency: string | null; price_interval: string | null; created_at: Date }>(
    'SELECT provider, user_id, status, quantity, price_minor::text, currency, price_interval, created_at FROM public.licenses')) {
    const key = `${k.provider}|${k.currency === null ? '' : k.currency.toUpperCase()}`;
    if (k.status === 'active') {
      const r = at(k.provider, k.currency);
      if (!users.has(key)) users.set(key, new Set());
      users.get(key)!.add(k.user_id);
      r.payingUsers = users.get(key)!.size;
      r.seats += k.quantity;
      if (k.price_interval) {
        r.recurringSeats += k.quantity;
        r.mrrMinor += Number(k.price_minor) / MONTHS[k.price_interval]!;
      }
    }
    if (k.price_minor !== null && !k.price_interval && k.created_at.getTime() >= monthAgo && !['refunded', 'disputed', 'chargebacked'].includes(k.status)) {
      const r = at(k.provider, k.currency);
      r.sales30d += 1;
      r.sales30dMinor += Number(k.price_minor);
    }
  }
  for (const [k, v] of out) {
    v.mrrMinor = Math.round(v.mrrMinor);
    if (v.payingUsers === 0 && v.sales30d === 0) out.delete(k);
  }
  return out;
}

for (const dialect of DIALECTS) {
  describe(`money at the sources' prices [${dialect}]`, () => {
    test('Stripe records unit_amount, currency and interval from the payload; a tiered price or a bare price id records none', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const [a, b, c] = [await createUser(db), await createUser(db), await createUser(db)];
        await sync(db, subscription({ id: 'sub_a', customer: 'cus_a', userId: a, unitAmount: 1999, currency: 'usd', interval: 'month', quantity: 3 }));
        await sync(db, subscription({ id: 'sub_b', customer: 'cus_b', userId: b, priceId: PRICES.pro, unitAmount: 12000, currency: 'eur', interval: 'year', intervalCount: 1 }));
        await sync(db, subscription({ id: 'sub_c', customer: 'cus_c', userId: c, unitAmount: null }));
        const rows = await db.query<{ user_id: string; unit_amount: string | null; currency: string | null; price_interval: string | null; price_interval_count: number | null; quantity: number }>(
          'SELECT user_id, unit_amount::text, currency, price_interval, price_interval_count, quantity FROM public.user_subscriptions');
        const by = new Map(rows.map((r) => [r.user_id, [r.unit_amount, r.currency, r.price_interval, r.price_interval_count, r.quantity]]));
        assert.deepEqual(by.get(a), ['1999', 'usd', 'month', 1, 3]);
        assert.deepEqual(by.get(b), ['12000', 'eur', 'year', 1, 1]);
        assert.deepEqual(by.get(c), [null, null, null, null, 1]);
        // A later event with the price given as a bare id: synced, and the amount is no longer claimed.
        const bare = subscription({ id: 'sub_a', customer: 'cus_a', userId: a, quantity: 3 });
        (bare.items.data[0] as Record<string, unknown>).price = PRICES.basic;
        await db.query('SELECT * FROM public.sync_stripe_subscription($1::jsonb, now())', [JSON.stringify(bare)]);
        const [after] = await db.query<{ unit_amount: string | null }>('SELECT unit_amount::text FROM public.user_subscriptions WHERE user_id = $1::uuid', [a]);
        assert.equal(after!.unit_amount, null);
      }));

    test("Gumroad records purchase.price, currency and recurrence from the stand-in's verify answer", async () => {
      const gumroad = await startGumroadStandIn();
      try {
        await withDatabase(dialect, async ({ db }) => {
          const auth = createPluginAuth(db, { gumroad: { apiBaseUrl: gumroad.url } });
          await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: GUMROAD_PRODUCT });
          const once = gumroad.sell({ price: 2900, currency: 'usd' });
          const monthly = gumroad.sell({ price: 700, currency: 'eur', recurrence: 'monthly' });
          const yearly = gumroad.sell({ price: 6000, currency: 'usd', recurrence: 'yearly', isMultiseatLicense: true, quantity: 4 });
          const [u1, u2, u3] = [await createUser(db), await createUser(db), await createUser(db)];
          for (const [u, s] of [[u1, once], [u2, monthly], [u3, yearly]] as const) {
            await auth.licenses.activate(u, { provider: 'gumroad', licenseKey: s.key, productId: GUMROAD_PRODUCT, ...await device(db, u, 'Mac') });
          }
          const rows = await db.query<{ user_id: string; price_minor: string; currency: string; price_interval: string | null; quantity: number }>(
            'SELECT user_id, price_minor::text, currency, price_interval, quantity FROM public.licenses');
          const by = new Map(rows.map((r) => [r.user_id, [r.price_minor, r.currency, r.price_interval, r.quantity]]));
          assert.deepEqual(by.get(u1), ['2900', 'usd', null, 1]);
          assert.deepEqual(by.get(u2), ['700', 'eur', 'month', 1]);
          assert.deepEqual(by.get(u3), ['6000', 'usd', 'year', 4]);
          // Each came from a verify call to the stand-in (no uses counted), not from anything else.
          assert.deepEqual(new Set(gumroad.calls.map((c) => `${c.path} ${c.form.increment_uses_count}`)), new Set(['/v2/licenses/verify false']));
          assert.ok(gumroad.calls.length >= 3);
        });
      } finally {
        await gumroad.close();
      }
    });

    test('Figma reports no price: the PAID link carries the operator\'s, and a bad price is refused with nothing written', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db);
        await auth.plans.linkFigma('pro', 'PAID', { price: { amountMinor: 900, currency: 'usd', interval: 'month' } });
        const read = async () => (await db.query<{ price_minor: string | null; currency: string | null; price_interval: string | null }>(
          "SELECT price_minor::text, currency, price_interval FROM public.figma_plan_links WHERE link = 'PAID'"))[0];
        assert.deepEqual({ ...(await read()) }, { price_minor: '900', currency: 'usd', price_interval: 'month' });
        for (const price of [{ amountMinor: -1, currency: 'usd' }, { amountMinor: 1.5, currency: 'usd' }, { amountMinor: 100, currency: 'dollars' }, { amountMinor: 100, currency: 'usd', interval: 'week' }]) {
          await assert.rejects(auth.plans.linkFigma('basic', 'PAID', { price: price as never }), { code: 'invalid_figma_price' });
        }
        await assert.rejects(auth.plans.linkFigma('basic', 'TRIAL', { price: { amountMinor: 100, currency: 'usd' } }), { code: 'invalid_figma_price' });
        // The SQL refuses the same on its own (SQLSTATE PA190), and writes nothing.
        const pa190 = (e: unknown) => (e as { code?: string }).code === 'PA190' && /^invalid_figma_price:/.test((e as Error).message);
        await assert.rejects(db.query("SELECT * FROM public.link_figma_plan('basic', 'PAID', NULL, 100, 'usd', 'week')"), pa190);
        await assert.rejects(db.query("SELECT * FROM public.link_figma_plan('basic', 'PAID', NULL, 100, NULL)"), pa190);
        await assert.rejects(db.query("SELECT * FROM public.link_figma_plan('basic', 'FIRST_USE', 7, 100, 'usd')"), pa190);
        assert.deepEqual({ ...(await read()) }, { price_minor: '900', currency: 'usd', price_interval: 'month' });
        // The old three-argument call still works (and, without a price, clears it).
        await db.query("SELECT * FROM public.link_figma_plan('pro', 'PAID', NULL)");
        assert.deepEqual({ ...(await read()) }, { price_minor: null, currency: null, price_interval: null });
      }));

    test('the money figures equal sums over the seeded rows, per currency; rendered escaped', () =>
      withDatabase(dialect, async ({ db }) => {
        await linkPrices(db);
        const auth = createPluginAuth(db);
        const user = () => createUser(db);
        // Stripe: usd monthly x3 seats, usd weekly, eur yearly every 2 years, a tiered (unrecorded) one, a canceled one.
        const subs = [
          { unitAmount: 1999, currency: 'usd', interval: 'month' as const, quantity: 3 },
          { unitAmount: 500, currency: 'usd', interval: 'week' as const },
          { unitAmount: 24000, currency: 'eur', interval: 'year' as const, intervalCount: 2 },
          { unitAmount: null },
          { unitAmount: 1000, currency: 'usd', interval: 'month' as const, status: 'canceled' },
        ];
        for (const [i, f] of subs.entries()) await sync(db, subscription({ id: `sub_${i}`, customer: `cus_${i}`, userId: await user(), ...f }));
        // Figma: three PAID users, two bought within 30 days, one 40 days ago; one-time $12.
        await auth.plans.linkFigma('pro', 'PAID', { price: { amountMinor: 1200, currency: 'usd' } });
        for (const [i, days] of [2, 10, 40].entries()) {
          await db.query(
            `INSERT INTO public.figma_users (figma_user_id, user_id, payment_status, date_of_purchase, checked_at, grant_until)
             VALUES ($1::varchar, $2::uuid, 'PAID', now() - $3::integer * interval '1 day', now(), now() + interval '1 day')`,
            [`9${i}`, await user(), days]);
        }
        // Licenses as the stores reported them: Lemon Squeezy's and Gumroad's, recurring and one-time, other currencies, refunded, old.
        const licenses: [string, string, number, string | null, string | null, number, number][] = [
          ['lemonsqueezy', 'active', 4900, 'USD', null, 1, 3],
          ['lemonsqueezy', 'active', 1500, 'USD', 'quarter', 2, 60],
          ['lemonsqueezy', 'refunded', 4900, 'USD', null, 1, 5],
          ['lemonsqueezy', 'active', 9900, 'EUR', null, 1, 45],
          ['gumroad', 'active', 700, 'eur', 'month', 1, 1],
          ['gumroad', 'active', 6000, 'usd', 'two_years', 5, 200],
          ['gumroad', 'active', 150000, 'jpy', null, 1, 7],
          ['gumroad', 'expired', 2900, 'usd', null, 1, 9],
        ];
        for (const [i, [provider, status, price, currency, interval, quantity, days]] of licenses.entries()) {
          await db.query(
            `INSERT INTO public.licenses (provider, key_hash, key_prefix, user_id, product_id, status, quantity, checked_at, state_at,
                                          created_at, price_minor, currency, price_interval)
             VALUES ($1::varchar, $2::char(64), 'KEY', $3::uuid, 'p1', $4::varchar, $5::integer, now(), now(),
                     now() - $6::integer * interval '1 day', $7::bigint, $8::char(3), $9::varchar)`,
            [provider, i.toString(16).padStart(64, '0'), await user(), status, quantity, days, price, currency, interval]);
        }
        // A license from before sql/031: paying, price not recorded.
        await db.query(
          `INSERT INTO public.licenses (provider, key_hash, key_prefix, user_id, product_id, status, checked_at, state_at)
           VALUES ('gumroad', $1::char(64), 'KEY', $2::uuid, 'p1', 'active', now(), now())`, ['f'.repeat(64), await user()]);
        // A CHECK: a price without its currency is refused by the table itself.
        await assert.rejects(db.query(`UPDATE public.licenses SET currency = NULL WHERE price_minor = 4900`));
        await assert.rejects(db.query(`UPDATE public.licenses SET currency = 'US$' WHERE price_minor = 4900`));

        const got = await readMoneyByCurrency(db);
        const want = await expected(db);
        assert.deepEqual(new Set(got.map((r) => `${r.source}|${r.currency ?? ''}`)), new Set(want.keys()));
        for (const r of got) {
          const w = want.get(`${r.source}|${r.currency ?? ''}`)!;
          assert.deepEqual(
            { payingUsers: r.payingUsers, seats: r.seats, recurringSeats: r.recurringSeats, mrrMinor: r.mrrMinor, sales30d: r.sales30d, sales30dMinor: r.sales30dMinor },
            w, `${r.source} ${r.currency}`);
          assert.equal(r.mrrPerSeatMinor, w.recurringSeats > 0 ? Math.round(w.mrrMinor / w.recurringSeats) : null);
        }
        // Spot checks against the hand arithmetic, so the two computations cannot agree on a mistake.
        const one = (s: string, c: string | null) => got.find((r) => r.source === s && r.currency === c)!;
        assert.equal(one('stripe', 'USD').mrrMinor, Math.round(1999 * 3 + (500 * 52) / 12));
        assert.equal(one('stripe', 'EUR').mrrMinor, 1000);
        assert.equal(one('stripe', null).payingUsers, 1);
        assert.deepEqual([one('figma', 'USD').payingUsers, one('figma', 'USD').sales30d, one('figma', 'USD').sales30dMinor, one('figma', 'USD').mrrMinor], [3, 2, 2400, 0]);
        assert.deepEqual([one('lemonsqueezy', 'USD').payingUsers, one('lemonsqueezy', 'USD').mrrMinor, one('lemonsqueezy', 'USD').sales30d, one('lemonsqueezy', 'USD').sales30dMinor], [2, 500, 1, 4900]);
        assert.deepEqual([one('lemonsqueezy', 'EUR').payingUsers, one('lemonsqueezy', 'EUR').sales30d], [1, 0]);
        assert.deepEqual([one('gumroad', 'USD').mrrMinor, one('gumroad', 'USD').mrrPerSeatMinor, one('gumroad', 'USD').sales30d, one('gumroad', 'USD').sales30dMinor], [250, 50, 1, 2900]);
        assert.deepEqual([one('gumroad', 'JPY').sales30dMinor, one('gumroad', null).payingUsers], [150000, 1]);

        const html = renderMoney({ base: '', target: 'test' }, [], got);
        assert.match(html, /table-money-currency/);
        assert.ok(html.includes('JPY 150,000'), 'yen has no minor digits');
        assert.ok(html.includes('USD 49.00'));
        assert.equal(money(123456, 'EUR'), 'EUR 1,234.56');
        // Escaped: a currency as rendered passes through the escaper.
        const hostile = renderMoney({ base: '', target: 'test' }, [], [{ ...got[0]!, currency: '<b>' }]);
        assert.ok(!hostile.includes('<b>') && hostile.includes('&lt;b&gt;'));
      }));
  });
}
