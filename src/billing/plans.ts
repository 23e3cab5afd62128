import { withTypedErrors, type Queryable } from '../core/queryable.ts';
import { sqlState, ValidationError } from '../core/errors.ts';
import * as validate from '../core/validation.ts';
import type { LicenseProvider } from '../core/validation.ts';

/** A plan's limits; -1 means no limit. */
export interface PlanLimits {
  resizesPerDay: number;
  batchSize: number;
  isDaily: boolean;
}

export interface Plan {
  id: string;
  slug: string;
  name: string;
  description: string | null;
  /** In cents. */
  priceMonthly: number;
  limits: PlanLimits;
  features: string[];
  isActive: boolean;
  stripeProductId: string | null;
  stripePriceId: string | null;
  /** At most this many devices per license key of the plan (null: no cap of the plan's own). */
  deviceLimit: number | null;
}

export interface PlanRow {
  id: string;
  plan_slug: string;
  name: string;
  description: string | null;
  price_monthly: number | null;
  limits: PlanLimits;
  features: string[] | null;
  is_active: boolean | null;
  stripe_product_id: string | null;
  stripe_price_id: string | null;
  device_limit?: number | null;
}

export function toPlan(row: PlanRow): Plan {
  return {
    id: row.id,
    slug: row.plan_slug,
    name: row.name,
    description: row.description,
    priceMonthly: row.price_monthly ?? 0,
    limits: { resizesPerDay: row.limits.resizesPerDay, batchSize: row.limits.batchSize, isDaily: row.limits.isDaily },
    features: row.features ?? [],
    isActive: row.is_active ?? true,
    stripeProductId: row.stripe_product_id,
    stripePriceId: row.stripe_price_id,
    deviceLimit: row.device_limit ?? null,
  };
}

export interface StripeLink {
  /** Stripe product id (prod_...), or null to unlink. */
  productId: string | null;
  /** Stripe price id (price_...), or null to unlink. The webhook sync finds the plan by it. */
  priceId: string | null;
}

/**
 * A Figma status a plan can be linked to: PAID and TRIAL as the Payments API reports them, and
 * FIRST_USE, a server-side trial counted from a verified Figma user's first sign-in (needs days).
 */
export type FigmaLink = 'PAID' | 'TRIAL' | 'FIRST_USE';

/** The plans table: what is sold, at which limits, under which Stripe price or Figma status. */
export function createPlans(db: Queryable) {
  db = withTypedErrors(db);
  return {
    /** Plans by price, cheapest first. Inactive plans (no longer sold) only with includeInactive. */
    async list(options: { includeInactive?: boolean } = {}): Promise<Plan[]> {
      const rows = await db
        .query<PlanRow>(
          `SELECT * FROM public.subscription_plans
            WHERE $1::boolean OR is_active IS NOT false
            ORDER BY price_monthly NULLS FIRST, plan_slug`,
          [options.includeInactive === true],
        );
      return rows.map(toPlan);
    },

    /** Links a plan to its Stripe product and price (null unlinks). Errors: unknown_plan, price_already_linked, invalid_stripe_id. */
    async linkStripe(planSlug: string, link: StripeLink): Promise<Plan> {
      const id = (v: unknown) => v === undefined || v === null || typeof v === 'string';
      // Not a string: the driver would store String(v) or its JSON ("42", "{}") as a Stripe id.
      if (typeof link !== 'object' || link === null || !id(link.productId) || !id(link.priceId)) {
        throw new ValidationError('invalid_stripe_id', 'invalid_stripe_id: pass { productId, priceId } (null unlinks)');
      }
      try {
        const rows = await db.query<PlanRow>('SELECT * FROM public.link_stripe_plan($1::varchar, $2::varchar, $3::varchar)', [
          planSlug,
          link.productId,
          link.priceId,
        ]);
        return toPlan(rows[0]!);
      } catch (error) {
        // Two plans linked to one price at the same instant: the unique index refuses the second.
        if (sqlState(error) === '23505') {
          throw new ValidationError('price_already_linked', 'price_already_linked: this Stripe price belongs to another plan', { cause: error });
        }
        throw error;
      }
    },

    /**
     * Links a plan to a Figma payment status: `linkFigma('pro', 'PAID')`, `linkFigma('pro', 'TRIAL')`,
     * or a server-side trial, `linkFigma('pro', 'FIRST_USE', { trialDays: 7 })`. One plan per status;
     * linking again moves it. `linkFigma(null, status)` unlinks (returns null). Figma's API reports
     * no price: `linkFigma('pro', 'PAID', { price: { amountMinor: 900, currency: 'usd', interval: 'month' } })`
     * records what the plugin's Figma listing charges, for the console's money page (linking again
     * without a price clears it).
     * Errors: unknown_plan, invalid_figma_link, invalid_trial_days (docs/figma-payments.md).
     */
    async linkFigma(planSlug: string | null, status: FigmaLink, options: { trialDays?: number; price?: FigmaPrice | null } = {}): Promise<Plan | null> {
      return linkFigmaPlan(db, planSlug, status, options);
    },

    /**
     * Links a plan to a store's product (or one variant of it): a license of it grants the plan
     * while valid. `deviceLimit` caps devices per license; `seats` > 1 makes each license a team
     * license of that many seats (null: the purchase's quantity). `linkLicense(null, …)` unlinks.
     * Errors: unknown_plan, invalid_license_provider, invalid_license_product, invalid_license_link.
     */
    async linkLicense(planSlug: string | null, link: LicenseLink): Promise<Plan | null> {
      return linkLicensePlan(db, planSlug, link);
    },

    /**
     * Caps devices per license key of the plan, whichever product it was sold as: the cap in force
     * is the smallest of this, the product mapping's `deviceLimit` and the store's own limit.
     * `null` removes the plan's cap. Errors: unknown_plan, invalid_license_link (not 1 to 1000).
     */
    async setDeviceLimit(planSlug: string, deviceLimit: number | null): Promise<Plan> {
      return setPlanDeviceLimit(db, planSlug, deviceLimit);
    },
  };
}

/** set_plan_device_limit (sql/018), also used by the CLI over a direct connection. */
export async function setPlanDeviceLimit(db: Pick<Queryable, 'query'>, planSlug: unknown, deviceLimit: unknown): Promise<Plan> {
  db = withTypedErrors(db);
  if (typeof planSlug !== 'string') throw new ValidationError('unknown_plan', 'unknown_plan: planSlug must be a plan slug');
  if (deviceLimit === undefined) {
    throw new ValidationError('invalid_license_link', 'invalid_license_link: pass deviceLimit, a whole number from 1 to 1000 (or null for no cap)');
  }
  const limit = validate.optionalCount(deviceLimit, 'invalid_license_link', 'deviceLimit must be a whole number from 1 to 1000 (or null for no cap)', 1, 1000);
  const rows = await db
    .query<PlanRow>('SELECT * FROM public.set_plan_device_limit($1::varchar, $2::integer)', [planSlug, limit]);
  return toPlan(rows[0]!);
}

/** A store product (variant) a plan is sold as (docs/licenses.md). */
export interface LicenseLink {
  provider: LicenseProvider;
  productId: string;
  variantId?: string | null;
  deviceLimit?: number | null;
  seats?: number | null;
  /**
   * Lemon Squeezy subscription variants: the renewal interval the variant is sold at (its
   * `interval` in Lemon Squeezy: day, week, month or year), which the store's webhooks do not
   * carry. With intervalCount (its `interval_count`, default 1) it brings the subscription's
   * amount to a month on the console's money page. Null: a one-time product, or not set.
   */
  interval?: 'day' | 'week' | 'month' | 'year' | null;
  intervalCount?: number | null;
}

/** A Lemon Squeezy variant's renewal interval (sql/032), checked as link_license_plan checks it. */
export function licenseInterval(link: LicenseLink, provider: LicenseProvider): { interval: string | null; intervalCount: number | null } {
  const interval = link.interval ?? null;
  const count = link.intervalCount ?? null;
  if ((interval !== null && (!['day', 'week', 'month', 'year'].includes(interval as string) || provider !== 'lemonsqueezy'))
      || (count !== null && (interval === null || !Number.isInteger(count) || count < 1 || count > 365))) {
    throw new ValidationError('invalid_license_link', "invalid_license_link: interval is 'day', 'week', 'month' or 'year' (Lemon Squeezy variants only) and intervalCount a whole number from 1 to 365");
  }
  return { interval, intervalCount: interval === null ? null : count ?? 1 };
}

/** link_license_plan (sql/016), also used by the CLI over a direct connection. */
export async function linkLicensePlan(db: Pick<Queryable, 'query'>, planSlug: unknown, link: LicenseLink): Promise<Plan | null> {
  db = withTypedErrors(db);
  if (planSlug !== null && typeof planSlug !== 'string') {
    throw new ValidationError('unknown_plan', 'unknown_plan: planSlug must be a plan slug (or null to unlink)');
  }
  if (typeof link !== 'object' || link === null) {
    throw new ValidationError('invalid_license_product', 'invalid_license_product: pass { provider, productId, variantId? }');
  }
  const provider = validate.licenseProvider(link.provider);
  const productId = validate.storeId(link.productId, 'productId', false);
  const variantId = validate.storeId(link.variantId, 'variantId', true);
  const deviceLimit = validate.optionalCount(link.deviceLimit, 'invalid_license_link', 'deviceLimit must be a whole number from 1 to 1000', 1, 1000);
  const seats = validate.optionalCount(link.seats, 'invalid_license_link', 'seats must be a whole number from 1 to 100000', 1, 100000);
  const { interval, intervalCount } = licenseInterval(link, provider);
  const rows = await db
    .query<PlanRow>('SELECT * FROM public.link_license_plan($1::varchar, $2::varchar, $3::varchar, $4::varchar, $5::integer, $6::integer, $7::varchar, $8::integer)', [
      planSlug, provider, productId, variantId, deviceLimit, seats, interval, intervalCount,
    ]);
  return rows[0] ? toPlan(rows[0]) : null;
}

/** What a PAID Figma link is sold at: Figma's API reports no price, so the operator sets it. */
export interface FigmaPrice {
  /** Whole minor units (cents) of currency. */
  amountMinor: number;
  /** ISO 4217 code, e.g. 'usd'. */
  currency: string;
  /** 'month' or 'year' for a Figma subscription; omitted or null for a one-time payment. */
  interval?: 'month' | 'year' | null;
}

function figmaPrice(price: unknown, status: string): FigmaPrice | null {
  if (price === undefined || price === null) return null;
  const p = price as Record<string, unknown>;
  if (typeof price !== 'object' || status !== 'PAID' || !Number.isInteger(p.amountMinor) || (p.amountMinor as number) < 0
      || (p.amountMinor as number) > 100_000_000_000 || typeof p.currency !== 'string' || !/^[A-Za-z]{3}$/.test(p.currency)
      || (p.interval !== undefined && p.interval !== null && p.interval !== 'month' && p.interval !== 'year')) {
    throw new ValidationError('invalid_figma_price', "invalid_figma_price: price is { amountMinor: whole minor units from 0, currency: a three-letter code, interval?: 'month' | 'year' } and only on a PAID link");
  }
  return { amountMinor: p.amountMinor as number, currency: p.currency, interval: (p.interval as 'month' | 'year' | null | undefined) ?? null };
}

/** link_figma_plan (sql/015), also used by the CLI over a direct connection. */
export async function linkFigmaPlan(
  db: Pick<Queryable, 'query'>,
  planSlug: unknown,
  status: unknown,
  options: { trialDays?: unknown; price?: unknown } = {},
): Promise<Plan | null> {
  if (planSlug !== null && typeof planSlug !== 'string') {
  db = withTypedErrors(db);
    throw new ValidationError('unknown_plan', 'unknown_plan: planSlug must be a plan slug (or null to unlink)');
  }
  if (status !== 'PAID' && status !== 'TRIAL' && status !== 'FIRST_USE') {
    throw new ValidationError('invalid_figma_link', "invalid_figma_link: link a plan to 'PAID', 'TRIAL' or 'FIRST_USE'");
  }
  const days = options?.trialDays;
  if (days !== undefined && (!Number.isInteger(days) || (days as number) < 1 || (days as number) > 3650)) {
    throw new ValidationError('invalid_trial_days', 'invalid_trial_days: trialDays must be a whole number from 1 to 3650');
  }
  const price = figmaPrice(options?.price, status);
  const rows = await db
    .query<PlanRow>('SELECT * FROM public.link_figma_plan($1::varchar, $2::varchar, $3::integer, $4::bigint, $5::varchar, $6::varchar)',
      [planSlug, status, days ?? null, price?.amountMinor ?? null, price?.currency ?? null, price?.interval ?? null]);
  return rows[0] ? toPlan(rows[0]) : null;
}

export type Plans = ReturnType<typeof createPlans>;
