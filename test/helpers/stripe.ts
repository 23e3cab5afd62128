// Stripe objects for tests, cloned from Stripe's own fixtures (test/fixtures/stripe/) and modified:
// ids, status, price, periods and event time. Everything else keeps Stripe's real shape.
import { readFileSync } from 'node:fs';
import type { Queryable } from '../../src/core/db.ts';

const fixture = (name: string): Record<string, any> =>
  JSON.parse(readFileSync(new URL(`../fixtures/stripe/${name}.json`, import.meta.url), 'utf8'));

const SUBSCRIPTION = fixture('subscription');
const EVENT = fixture('event');
const PRICE = fixture('price');

export const PRICES = { basic: 'price_basic_monthly', pro: 'price_pro_monthly', enterprise: 'price_enterprise_monthly' } as const;

/** Links basic, pro and enterprise to Stripe prices, cloned from the price fixture. */
export async function linkPrices(db: Queryable): Promise<void> {
  for (const [slug, priceId] of Object.entries(PRICES)) {
    const price = { ...PRICE, id: priceId, product: `prod_${slug}` };
    await db.query('UPDATE public.subscription_plans SET stripe_product_id = $2, stripe_price_id = $3 WHERE plan_slug = $1', [
      slug,
      price.product,
      price.id,
    ]);
  }
}

export interface SubscriptionFields {
  id?: string;
  customer?: string;
  status?: string;
  priceId?: string;
  /** epoch seconds */
  periodStart?: number;
  periodEnd?: number;
  userId?: string;
  cancelAtPeriodEnd?: boolean;
  canceledAt?: number | null;
  trialEnd?: number | null;
  /** Older API versions: the period on the subscription, not on the item. */
  legacyPeriod?: boolean;
  /** The price's unit_amount (minor units; null: a tiered price), currency and recurring period. */
  unitAmount?: number | null;
  currency?: string;
  interval?: 'day' | 'week' | 'month' | 'year';
  intervalCount?: number;
  /** items.data[0].quantity (seats). */
  quantity?: number;
}

export const DAY = 86_400;
export const T0 = Date.UTC(2026, 10, 1) / 1000; // 2026-11-01, epoch seconds

/** A subscription object in Stripe's shape (the fixture), with the given fields. */
export function subscription(f: SubscriptionFields = {}): Record<string, any> {
  const s = structuredClone(SUBSCRIPTION);
  const item = s.items.data[0];
  s.id = f.id ?? 'sub_test_1';
  s.customer = f.customer ?? 'cus_test_1';
  s.status = f.status ?? 'active';
  s.metadata = f.userId ? { user_id: f.userId } : {};
  item.id = `si_${s.id}`;
  item.subscription = s.id;
  item.price = { ...item.price, id: f.priceId ?? PRICES.basic };
  if (f.unitAmount !== undefined) {
    item.price.unit_amount = f.unitAmount;
    item.price.unit_amount_decimal = f.unitAmount === null ? null : String(f.unitAmount);
    if (f.unitAmount === null) item.price.billing_scheme = 'tiered';
  }
  if (f.currency !== undefined) item.price.currency = f.currency;
  if (f.interval !== undefined || f.intervalCount !== undefined) {
    item.price.recurring = { ...item.price.recurring, interval: f.interval ?? item.price.recurring.interval, interval_count: f.intervalCount ?? item.price.recurring.interval_count };
  }
  if (f.quantity !== undefined) item.quantity = f.quantity;
  const start = f.periodStart ?? T0;
  const end = f.periodEnd ?? start + 30 * DAY;
  if (f.legacyPeriod) {
    delete item.current_period_start;
    delete item.current_period_end;
    s.current_period_start = start;
    s.current_period_end = end;
  } else {
    item.current_period_start = start;
    item.current_period_end = end;
  }
  s.cancel_at_period_end = f.cancelAtPeriodEnd ?? false;
  s.canceled_at = f.canceledAt ?? null;
  s.trial_end = f.trialEnd ?? null;
  s.cancel_at = null;
  s.ended_at = s.status === 'canceled' ? s.canceled_at : null;
  return s;
}

/** A webhook event in Stripe's shape (the event fixture), carrying a subscription. */
export function event(type: string, object: Record<string, any>, created: number, id = `evt_${type}_${created}`): Record<string, any> {
  const e = structuredClone(EVENT);
  e.id = id;
  e.type = type;
  e.created = created;
  e.api_version = '2025-09-30.clover';
  e.data = { object };
  return e;
}

/** A deterministic PRNG (mulberry32), so a failing shuffle can be replayed from its seed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
