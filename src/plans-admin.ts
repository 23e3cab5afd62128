import type { Queryable } from './db.ts';
import type { CatalogPlan } from './catalog.ts';
import { NotFoundError, ValidationError } from './errors.ts';
import { fromDatabaseError, sqlState } from './errors.ts';

/** Which Stripe product and price a plan is sold as. Omitted fields are left as they are. */
export interface StripeLink {
  productId?: string;
  priceId?: string;
}

const SLUG = /^[a-z0-9][a-z0-9_-]{0,49}$/;
const PRODUCT = /^prod_[A-Za-z0-9]{1,250}$/;
const PRICE = /^price_[A-Za-z0-9]{1,249}$/;

/**
 * Operator action: links a plan to its Stripe product and price (what the webhook sync looks a plan
 * up by). One parameterized UPDATE; returns the plan as the catalog shows it. A price already
 * linked to another plan is refused (the partial unique index on stripe_price_id).
 */
export async function linkPlanToStripe(db: Pick<Queryable, 'query'>, slug: string, link: StripeLink): Promise<CatalogPlan> {
  validateLink(slug, link);
  try {
    const rows = await db.query<PlanRow>(
      `UPDATE public.subscription_plans
          SET stripe_product_id = COALESCE($2, stripe_product_id),
              stripe_price_id = COALESCE($3, stripe_price_id),
              updated_at = NOW()
        WHERE plan_slug = $1
      RETURNING plan_slug, name, price_monthly, limits, features, is_active, stripe_product_id, stripe_price_id`,
      [slug, link.productId ?? null, link.priceId ?? null],
    );
    if (!rows[0]) throw new NotFoundError('unknown_plan', `no plan with slug "${slug}": see \`figma-plugin-auth-db plans\``);
    return planFromRow(rows[0]);
  } catch (error) {
    if (sqlState(error) === '23505') {
      throw new ValidationError('stripe_price_in_use', `Stripe price ${link.priceId} is already linked to another plan: unlink it there first`, { cause: error });
    }
    throw fromDatabaseError(error);
  }
}

/** Checks slug and ids before anything is sent; throws ValidationError with a stable code. */
export function validateLink(slug: string, link: StripeLink): void {
  if (!SLUG.test(slug)) throw new ValidationError('invalid_plan_slug', 'a plan slug is lowercase letters, digits, "-" and "_", e.g. "pro"');
  if (link.productId === undefined && link.priceId === undefined) {
    throw new ValidationError('invalid_stripe_link', 'give a Stripe product id (prod_...), a price id (price_...), or both');
  }
  if (link.productId !== undefined && !PRODUCT.test(link.productId)) {
    throw new ValidationError('invalid_stripe_product_id', 'a Stripe product id looks like prod_ followed by letters and digits');
  }
  if (link.priceId !== undefined && !PRICE.test(link.priceId)) {
    throw new ValidationError('invalid_stripe_price_id', 'a Stripe price id looks like price_ followed by letters and digits');
  }
}

export interface PlanRow {
  plan_slug: string;
  name: string;
  price_monthly: number | null;
  limits: CatalogPlan['limits'];
  features: string[] | null;
  is_active: boolean | null;
  stripe_product_id: string | null;
  stripe_price_id: string | null;
}

export function planFromRow(row: PlanRow): CatalogPlan {
  return {
    slug: row.plan_slug,
    name: row.name,
    priceMonthly: row.price_monthly ?? 0,
    limits: row.limits,
    features: row.features,
    isActive: row.is_active ?? false,
    stripeProductId: row.stripe_product_id,
    stripePriceId: row.stripe_price_id,
  };
}
