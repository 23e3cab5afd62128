import { withTypedErrors, type Queryable } from '../core/queryable.ts';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import { toPlan, type Plan, type PlanLimits, type PlanRow } from './plans.ts';
import { toGrant, type PlanGrant, type PlanSource } from './sources.ts';
import * as input from '../core/validation.ts';

/** Stripe's subscription statuses, plus 'manual' for plans assigned outside Stripe. */
export type SubscriptionStatus =
  | 'incomplete'
  | 'incomplete_expired'
  | 'trialing'
  | 'active'
  | 'past_due'
  | 'canceled'
  | 'unpaid'
  | 'paused'
  | 'manual';

type StripeId = string | { id: string } | null | undefined;

/**
 * The part of a Stripe subscription object the sync reads. `Stripe.Subscription` (the `stripe`
 * package's type) fits it as is, from any API version: the period is read from the first item
 * (current API) or from the subscription itself (older versions).
 */
export interface StripeSubscriptionLike {
  id: string;
  object?: string;
  status: string;
  customer: StripeId;
  metadata?: Record<string, string> | null;
  items: {
    data: Array<{
      price: StripeId;
      /** Seats bought: 1 (or missing) is the subscriber's own plan, N > 1 a team of N seats (auth.seats). */
      quantity?: number | null;
      current_period_start?: number | null;
      current_period_end?: number | null;
    }>;
  };
  /** Older API versions: the quantity on the subscription, not on the item. */
  quantity?: number | null;
  current_period_start?: number | null;
  current_period_end?: number | null;
  cancel_at_period_end?: boolean | null;
  canceled_at?: number | null;
  trial_end?: number | null;
}

export interface SyncOptions {
  /**
   * The Stripe event's `created` (epoch seconds, as in `event.created`) or a Date. Refused
   * (invalid_event_created) when more than 5 minutes ahead of the clock: milliseconds
   * (`Date.now()`) read as seconds would freeze the row.
   */
  eventCreated: number | Date;
}

/**
 * What syncFromStripe did. `applied: false` changed nothing:
 * - 'stale': an event newer than this one was already applied;
 * - 'duplicate': this event (same second, same data) was already applied;
 * - 'superseded': the event is about another subscription than the one the user's row holds, and
 *   would take away access the row still grants (e.g. the old subscription's cancellation after the
 *   user moved to a new one, or over a manual plan).
 * planSlug and status are the row's state after the call, in every case.
 */
export type SyncResult =
  | { applied: true; userId: string; planSlug: string; status: SubscriptionStatus }
  | { applied: false; reason: 'stale' | 'duplicate' | 'superseded'; userId: string; planSlug: string; status: SubscriptionStatus };

/** The plan a user has right now, and why. */
export interface EffectivePlan {
  userId: string;
  planSlug: string;
  limits: PlanLimits;
  plan: Plan;
  /**
   * Which source grants the plan: the best grant in force (public.plugin_auth_grants, the rule
   * consume_usage applies); 'free' when none is.
   */
  source: PlanSource;
  /** When that grant ends unless renewed (see PlanGrant.until); null for free or no end. */
  until: Date | null;
  /** Every grant in force, best first (the first is the one above); empty on free. */
  grants: PlanGrant[];
  /** The status of the user's subscription row (null: no row). */
  status: SubscriptionStatus | null;
  /** The user's subscription row, whether or not it grants access; null when the user has none. */
  subscription: {
    planSlug: string;
    status: SubscriptionStatus;
    currentPeriodStart: Date | null;
    currentPeriodEnd: Date | null;
    cancelAtPeriodEnd: boolean;
    canceledAt: Date | null;
    trialEnd: Date | null;
    stripeCustomerId: string | null;
    stripeSubscriptionId: string | null;
    stripePriceId: string | null;
    /** Seats bought (items.data[0].quantity): 1 is the subscriber's own plan; N > 1 a team of N seats, granted through auth.seats; 0 none. */
    quantity: number;
  } | null;
}

export interface AssignedPlan {
  userId: string;
  planSlug: string;
  status: 'manual';
  /** When the plan ends; null = no end. */
  until: Date | null;
}

const idOf = (value: StripeId): string | undefined => (typeof value === 'string' ? value : value?.id);

/**
 * Only the fields the SQL function reads, in Stripe's own shape: a webhook's subscription object is
 * several kilobytes, and sending 400 bytes keeps the round trip small. The SQL function accepts
 * the full object too (supabase.rpc callers pass it as is).
 */
function essentials(s: StripeSubscriptionLike): Record<string, unknown> {
  const item = s.items?.data?.[0];
  // JSON would turn NaN or Infinity into null (read as 1): refuse anything but a whole number here.
  for (const q of [item?.quantity, s.quantity]) {
    if (q !== undefined && q !== null && !(Number.isInteger(q) && (q as number) >= 0 && (q as number) <= 100_000)) {
      throw new ValidationError('invalid_subscription', 'invalid_subscription: items.data[0].quantity must be a whole number from 0 to 100000');
    }
  }
  return {
    object: s.object,
    id: s.id,
    status: s.status,
    customer: idOf(s.customer),
    metadata: s.metadata?.user_id === undefined ? {} : { user_id: s.metadata.user_id },
    items: {
      data: item
        ? [{ price: { id: idOf(item.price) }, quantity: item.quantity, current_period_start: item.current_period_start, current_period_end: item.current_period_end }]
        : [],
    },
    quantity: s.quantity,
    current_period_start: s.current_period_start,
    current_period_end: s.current_period_end,
    cancel_at_period_end: s.cancel_at_period_end,
    canceled_at: s.canceled_at,
    trial_end: s.trial_end,
  };
}

interface EffectiveRow extends PlanRow {
  user_id: string;
  s_plan_slug: string | null;
  s_status: SubscriptionStatus | null;
  s_current_period_start: Date | null;
  s_current_period_end: Date | null;
  s_cancel_at_period_end: boolean | null;
  s_canceled_at: Date | null;
  s_trial_end: Date | null;
  s_stripe_customer_id: string | null;
  s_stripe_subscription_id: string | null;
  s_stripe_price_id: string | null;
  s_quantity: number | null;
  grants: Array<{ source: PlanGrant['source']; plan_slug: string; until: string | null; detail: string }> | string | null;
}

// plugin_auth_grants (sql/015) is the one definition of the rule, and effective_plan takes its first
// row; this only reads their answers, joined to the user so an unknown user is an error, not "free".
const EFFECTIVE_PLAN_SQL = `
  SELECT u.id AS user_id, e.*,
         sp.plan_slug AS s_plan_slug, s.status AS s_status,
         s.current_period_start AS s_current_period_start, s.current_period_end AS s_current_period_end,
         s.cancel_at_period_end AS s_cancel_at_period_end, s.canceled_at AS s_canceled_at,
         s.trial_end AS s_trial_end, s.stripe_customer_id AS s_stripe_customer_id,
         s.stripe_subscription_id AS s_stripe_subscription_id, s.stripe_price_id AS s_stripe_price_id,
         s.quantity AS s_quantity,
         (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('source', g.source, 'plan_slug', g.plan_slug,
                                                                    'until', g.until, 'detail', g.detail) ORDER BY g.rank)
            FROM public.plugin_auth_grants(u.id, v.at) g) AS grants
    FROM public.users u
   CROSS JOIN (SELECT COALESCE($2::timestamptz, NOW()) AS at) v
    LEFT JOIN public.user_subscriptions s ON s.user_id = u.id
    LEFT JOIN public.subscription_plans sp ON sp.id = s.plan_id
    LEFT JOIN LATERAL public.effective_plan(u.id, v.at) e ON true
   WHERE u.id = $1::uuid`;

/**
 * The one write path of a Stripe subscription: the webhook (syncFromStripe) and the reconcile
 * (reconcileStripe) both call it, on a query path that translates errors (withTypedErrors).
 */
export async function syncSubscription(db: Queryable, subscription: StripeSubscriptionLike, options: SyncOptions): Promise<SyncResult> {
  if (typeof subscription !== 'object' || subscription === null || Array.isArray(subscription)) {
    throw new ValidationError('invalid_subscription', 'invalid_subscription: pass a Stripe subscription object (event.data.object)');
  }
  const created = input.eventCreated(options?.eventCreated);
  let json: string;
  try {
    json = JSON.stringify(essentials(subscription));
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError('invalid_subscription', 'invalid_subscription: the subscription is not JSON (a BigInt or a cycle)');
  }
  const rows = await db
    .query<{ applied: boolean; reason: string; user_id: string; plan_slug: string; status: SubscriptionStatus }>(
      'SELECT * FROM public.sync_stripe_subscription($1::jsonb, $2::timestamptz)',
      [json, created],
    );
  const row = rows[0]!;
  const state = { userId: row.user_id, planSlug: row.plan_slug, status: row.status };
  return row.applied
    ? { applied: true, ...state }
    : { applied: false, reason: row.reason as 'stale' | 'duplicate' | 'superseded', ...state };
}

/** Subscription state: Stripe webhook sync, manual plans, and the plan a user has right now. */
export function createSubscriptions(db: Queryable) {
  db = withTypedErrors(db);
  return {
    /**
     * Applies a Stripe subscription (event.data.object of customer.subscription.created, .updated
     * or .deleted) to its user's row, in one atomic statement. Safe to call for every delivery:
     * late and repeated events change nothing and say so. Errors: invalid_subscription,
     * invalid_event_created, unknown_customer, unknown_price (nothing written).
     */
    syncFromStripe(subscription: StripeSubscriptionLike, options: SyncOptions): Promise<SyncResult> {
      return syncSubscription(db, subscription, options);
    },

    /**
     * Gives the user a plan sold outside Stripe, from now until `until` (omitted: no end).
     * Replaces the user's row (see docs/subscriptions.md). Errors: invalid_user_id, unknown_user, unknown_plan, invalid_until.
     */
    async assignPlan(userId: string, planSlug: string, options: { until?: Date | null } = {}): Promise<AssignedPlan> {
      input.userId(userId);
      const until = options.until ?? null;
      if (until !== null && (!(until instanceof Date) || Number.isNaN(until.getTime()))) {
        throw new ValidationError('invalid_until', 'invalid_until: until must be a Date (or omitted for no end)');
      }
      const rows = await db
        .query<{ user_id: string; plan_slug: string; current_period_end: Date | null }>(
          'SELECT * FROM public.assign_plan($1::uuid, $2::varchar, $3::timestamptz)',
          [userId, planSlug, until],
        );
      const row = rows[0]!;
      return { userId: row.user_id, planSlug: row.plan_slug, status: 'manual', until: row.current_period_end };
    },

    /** The user's plan now (or at `at`): the same rule consume_usage applies in SQL. Errors: invalid_user_id, unknown_user. */
    async effectivePlan(userId: string, options: { at?: Date } = {}): Promise<EffectivePlan> {
      input.userId(userId);
      const at = input.optionalDate(options.at, 'invalid_date', 'at must be a valid Date');
      const rows = await db
        .query<EffectiveRow>(EFFECTIVE_PLAN_SQL, [userId, at ?? null]);
      const row = rows[0];
      if (!row) throw new NotFoundError('unknown_user', `unknown_user: no user with id ${userId}`);
      if (!row.plan_slug) throw new NotFoundError('no_plan', 'no_plan: the free plan is missing from subscription_plans');
      const plan = toPlan(row);
      const raw = typeof row.grants === 'string' ? JSON.parse(row.grants) : row.grants;
      const grants = ((raw ?? []) as Array<{ source: PlanGrant['source']; plan_slug: string; until: string | null; detail: string }>)
        .map((g) => toGrant({ ...g, until: g.until === null ? null : new Date(g.until) }));
      const best = grants[0];
      return {
        userId: row.user_id,
        planSlug: plan.slug,
        limits: plan.limits,
        plan,
        source: best?.source ?? 'free',
        until: best?.until ?? null,
        grants,
        status: row.s_status,
        subscription: row.s_status
          ? {
              planSlug: row.s_plan_slug!,
              status: row.s_status,
              currentPeriodStart: row.s_current_period_start,
              currentPeriodEnd: row.s_current_period_end,
              cancelAtPeriodEnd: row.s_cancel_at_period_end ?? false,
              canceledAt: row.s_canceled_at,
              trialEnd: row.s_trial_end,
              stripeCustomerId: row.s_stripe_customer_id,
              stripeSubscriptionId: row.s_stripe_subscription_id,
              stripePriceId: row.s_stripe_price_id,
              quantity: row.s_quantity ?? 1,
            }
          : null,
      };
    },
  };
}

export type Subscriptions = ReturnType<typeof createSubscriptions>;
