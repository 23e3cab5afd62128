// What the library asks of Stripe's API: the reconcile (re-read every subscription and repair what
// missed or reordered webhooks left behind), checkout sessions bound to a user, and customer-portal
// links. Writes go through syncSubscription, the webhook's own path, with an event time that is
// provably older than any change Stripe made after the read (see snapshotTime), so a webhook that
// arrives during a reconcile is never overwritten by the older state the reconcile read.
import { withTypedErrors, type Queryable } from '../core/queryable.ts';
import { NotFoundError, PluginAuthError, SetupError, ValidationError } from '../core/errors.ts';
import * as input from '../core/validation.ts';
import { createStripeApi, StripeApiError, type StripeAnswer, type StripeApiOptions, type StripeList } from './stripe-api.ts';
import { syncSubscription, type StripeSubscriptionLike, type SyncResult } from './subscriptions.ts';

export type { StripeApiOptions } from './stripe-api.ts';

export interface ReconcileOptions {
  /** Only this user's subscriptions: those of the user's Stripe customer, else those whose metadata.user_id is the user. */
  userId?: string;
  /** Only this Stripe customer's subscriptions (cus_…). */
  customerId?: string;
  /** Report what would change, change nothing (each write is tried in a transaction that is rolled back). */
  dryRun?: boolean;
  /** Subscriptions per page of GET /v1/subscriptions, 1 to 100 (default 100). */
  pageSize?: number;
}

/** A field whose value differs between the database row and Stripe. Dates are ISO strings. */
export interface ReconcileField {
  field: 'plan' | 'status' | 'priceId' | 'customerId' | 'quantity' | 'currentPeriodStart' | 'currentPeriodEnd' | 'cancelAtPeriodEnd' | 'canceledAt' | 'trialEnd';
  database: string | number | boolean | null;
  stripe: string | number | boolean | null;
}

/**
 * What the reconcile did about one difference (in a dry run: what it would do):
 * - applied: the row now holds Stripe's state;
 * - stale: the row changed after Stripe was read (a webhook was faster): left as it is;
 * - superseded: the user's row holds another subscription that grants access: left as it is;
 * - duplicate: the row already held this state;
 * - unknown_customer / unknown_price / invalid_subscription: not written, as the webhook would refuse it;
 * - reported: nothing to write (a row whose subscription Stripe no longer has).
 */
export type ReconcileOutcome = 'applied' | 'stale' | 'superseded' | 'duplicate' | 'unknown_customer' | 'unknown_price' | 'invalid_subscription' | 'reported';

export interface ReconcileDifference {
  /**
   * missing: Stripe has the subscription and no row holds it; changed: the row holding it differs
   * from Stripe; not_in_stripe: a row holds a subscription Stripe answers 404 for.
   */
  kind: 'missing' | 'changed' | 'not_in_stripe';
  subscriptionId: string;
  customerId: string | null;
  /** The user the row belongs to, or whom the write found (null when none). */
  userId: string | null;
  fields: ReconcileField[];
  outcome: ReconcileOutcome;
}

export interface ReconcileReport {
  dryRun: boolean;
  scope: { userId?: string; customerId?: string };
  /** Stripe subscriptions read (all statuses). */
  checked: number;
  /** Pages of GET /v1/subscriptions read. */
  pages: number;
  /** Subscriptions whose row already matches Stripe. */
  unchanged: number;
  /** Differences repaired (in a dry run: that would be). */
  applied: number;
  differences: ReconcileDifference[];
  startedAt: Date;
  finishedAt: Date;
}

export interface CheckoutOptions {
  /** The plan's slug: its linked Stripe price is sold (plans.linkStripe). */
  plan: string;
  /** Where Stripe sends the buyer after paying; may hold {CHECKOUT_SESSION_ID}. */
  successUrl: string;
  /** Where Stripe sends the buyer who goes back. */
  cancelUrl?: string;
  /** Seats (line item quantity), 1 to 100000 (default 1): more than 1 makes a team (docs/subscriptions.md). */
  quantity?: number;
}

export interface CheckoutSession {
  /** cs_… */
  id: string;
  /** Stripe's hosted checkout page: open it for the user. */
  url: string;
  expiresAt: Date | null;
}

export interface PortalSession {
  /** bps_… */
  id: string;
  /** Stripe's customer portal for this user: a short-lived link, open it at once. */
  url: string;
}

/** Stripe's subscription object, as far as the reconcile reads it. */
interface StripeSubscription extends StripeSubscriptionLike {
  created?: number;
}

interface RowState {
  user_id: string;
  plan_slug: string;
  status: string;
  stripe_customer_id: string | null;
  stripe_subscription_id: string | null;
  stripe_price_id: string | null;
  current_period_start: Date | null;
  current_period_end: Date | null;
  cancel_at_period_end: boolean;
  canceled_at: Date | null;
  trial_end: Date | null;
  quantity: number;
}

const ROW_COLUMNS = `s.user_id, p.plan_slug, s.status, s.stripe_customer_id, s.stripe_subscription_id, s.stripe_price_id,
  s.current_period_start, s.current_period_end, s.cancel_at_period_end, s.canceled_at, s.trial_end, s.quantity`;

const CUSTOMER_ID = /^cus_[A-Za-z0-9]{1,250}$/;
const SUBSCRIPTION_ID = /^sub_[A-Za-z0-9]{1,250}$/;
const MAX_URL_LENGTH = 2048;

/** A rollback on purpose: the dry run's write is tried, then undone. */
class DryRun extends Error {}

export function createStripeBilling(rawDb: Queryable, options: StripeApiOptions | undefined) {
  const db = withTypedErrors(rawDb);
  const api = options ? createStripeApi(options) : null;
  const stripe = () => {
    if (!api) throw new SetupError('stripe_not_configured', 'stripe_not_configured: pass createPluginAuth(db, { stripe: { secretKey } }) (STRIPE_SECRET_KEY)');
    return api;
  };

  /** The user's row, or null; unknown_user when there is no such user. */
  async function userRow(userId: string): Promise<{ email: string | null; stripe_customer_id: string | null }> {
    const rows = await db.query<{ email: string | null; stripe_customer_id: string | null }>(
      `SELECT u.email, s.stripe_customer_id FROM public.users u
         LEFT JOIN public.user_subscriptions s ON s.user_id = u.id WHERE u.id = $1::uuid`,
      [userId],
    );
    if (!rows[0]) throw new NotFoundError('unknown_user', `unknown_user: no user with id ${userId}`);
    return rows[0];
  }

  return {
    /**
     * Re-reads subscriptions from Stripe (GET /v1/subscriptions?status=all, every page) and repairs
     * each row that missed or reordered webhooks left different, through the webhook's own write.
     * Errors: stripe_not_configured, invalid_user_id, unknown_user, invalid_stripe_id,
     * invalid_page_size, stripe_auth_failed, stripe_request_failed, stripe_unavailable.
     */
    async reconcileStripe(options: ReconcileOptions = {}): Promise<ReconcileReport> {
      const client = stripe();
      const { userId, customerId, dryRun = false, pageSize = 100 } = options ?? {};
      if (userId !== undefined) input.userId(userId);
      if (customerId !== undefined && (typeof customerId !== 'string' || !CUSTOMER_ID.test(customerId))) {
        throw new ValidationError('invalid_stripe_id', 'invalid_stripe_id: customerId must be a Stripe customer id (cus_…)');
      }
      if (typeof dryRun !== 'boolean') throw new ValidationError('invalid_dry_run', 'invalid_dry_run: dryRun must be true or false');
      if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > 100) {
        throw new ValidationError('invalid_page_size', 'invalid_page_size: pageSize must be a whole number from 1 to 100 (Stripe\'s list limit)');
      }
      const startedAt = new Date();
      const report: ReconcileReport = {
        dryRun, scope: { ...(userId ? { userId } : {}), ...(customerId ? { customerId } : {}) },
        checked: 0, pages: 0, unchanged: 0, applied: 0, differences: [], startedAt, finishedAt: startedAt,
      };

      // Which customer to list: the one given, else the user's, else all (a user without a
      // customer: every subscription, kept when its metadata.user_id is the user).
      let listCustomer = customerId;
      let metadataUser: string | undefined;
      if (userId) {
        const row = await userRow(userId);
        if (customerId && row.stripe_customer_id && row.stripe_customer_id !== customerId) {
          throw new ValidationError('invalid_stripe_id', 'invalid_stripe_id: customerId is not the Stripe customer of userId');
        }
        listCustomer ??= row.stripe_customer_id ?? undefined;
        if (!listCustomer) metadataUser = userId;
      }

      const seen = new Set<string>();
      let startingAfter: string | undefined;
      for (;;) {
        const answer = await client.get<StripeList<StripeSubscription>>('/v1/subscriptions', {
          status: 'all', limit: pageSize, customer: listCustomer, starting_after: startingAfter,
        });
        const list = answer.body;
        if (list.object !== 'list' || !Array.isArray(list.data) || typeof list.has_more !== 'boolean') {
          throw new StripeApiError('stripe_unavailable', 'stripe_unavailable: GET /v1/subscriptions did not answer a list object', { type: null, code: null, param: null, status: 200, requestId: null });
        }
        report.pages++;
        const at = snapshotTime(answer);
        const page = list.data.filter((s) => typeof s?.id === 'string');
        const kept = metadataUser ? page.filter((s) => s.metadata?.user_id === metadataUser) : page;
        for (const s of kept) seen.add(s.id);
        report.checked += kept.length;
        await compareAndRepair(kept, at, report);
        if (!list.has_more || page.length === 0) break;
        startingAfter = page[page.length - 1]!.id;
      }

      // Rows in scope holding a subscription the listing did not return: ask Stripe for each.
      const scopeRows = await db.query<{ stripe_subscription_id: string }>(
        `SELECT s.stripe_subscription_id FROM public.user_subscriptions s
          WHERE s.stripe_subscription_id IS NOT NULL
            AND ($1::uuid IS NULL OR s.user_id = $1::uuid)
            AND ($2::text IS NULL OR s.stripe_customer_id = $2::text)
          ORDER BY s.stripe_subscription_id`,
        [userId ?? null, customerId ?? null],
      );
      for (const { stripe_subscription_id: id } of scopeRows) {
        if (seen.has(id)) continue;
        const row = (await rowsBySubscription([id]))[0]!;
        let answer: StripeAnswer<StripeSubscription> | null = null;
        if (SUBSCRIPTION_ID.test(id)) {
          try {
            answer = await client.get<StripeSubscription>(`/v1/subscriptions/${encodeURIComponent(id)}`);
          } catch (error) {
            if (!(error instanceof StripeApiError && error.stripe.status === 404)) throw error;
          }
        }
        if (answer && answer.body.object === 'subscription' && answer.body.id === id) {
          report.checked++;
          await compareAndRepair([answer.body], snapshotTime(answer), report);
        } else {
          report.differences.push({ kind: 'not_in_stripe', subscriptionId: id, customerId: row.stripe_customer_id, userId: row.user_id, fields: [], outcome: 'reported' });
        }
      }
      report.finishedAt = new Date();
      return report;

      async function compareAndRepair(subscriptions: StripeSubscription[], at: Date, out: ReconcileReport): Promise<void> {
        if (subscriptions.length === 0) return;
        const rows = new Map((await rowsBySubscription(subscriptions.map((s) => s.id))).map((r) => [r.stripe_subscription_id!, r]));
        const priceIds = [...new Set(subscriptions.map((s) => idOf(s.items?.data?.[0]?.price)).filter((p): p is string => typeof p === 'string'))];
        const plans = new Map(
          (await db.query<{ stripe_price_id: string; plan_slug: string }>(
            'SELECT p.stripe_price_id, p.plan_slug FROM public.subscription_plans p WHERE p.stripe_price_id = ANY($1::text[])',
            [priceIds],
          )).map((p) => [p.stripe_price_id, p.plan_slug]),
        );
        for (const s of subscriptions) {
          const row = rows.get(s.id) ?? null;
          const fields = differences(row, s, plans);
          if (row && fields.length === 0) {
            out.unchanged++;
            continue;
          }
          const { outcome, userId: found } = await write(s, at);
          if (outcome === 'applied') out.applied++;
          out.differences.push({
            kind: row ? 'changed' : 'missing',
            subscriptionId: s.id,
            customerId: idOf(s.customer) ?? null,
            userId: row?.user_id ?? found,
            fields,
            outcome,
          });
        }
      }

      async function write(s: StripeSubscription, at: Date): Promise<{ outcome: ReconcileOutcome; userId: string | null }> {
        const full = db as Queryable & { transaction?: <T>(fn: (tx: Queryable) => Promise<T>) => Promise<T> };
        try {
          let result: SyncResult;
          if (!dryRun) {
            result = await syncSubscription(db, s, { eventCreated: at });
          } else {
            if (typeof full.transaction !== 'function') throw new SetupError('stripe_config_invalid', 'stripe_config_invalid: a dry run needs a database with transactions (openDatabase)');
            let tried: SyncResult | undefined;
            try {
              await full.transaction(async (tx) => {
                tried = await syncSubscription(tx, s, { eventCreated: at });
                throw new DryRun();
              });
            } catch (error) {
              if (!(error instanceof DryRun)) throw error;
            }
            result = tried!;
          }
          return { outcome: result.applied ? 'applied' : result.reason, userId: result.userId };
        } catch (error) {
          if (error instanceof PluginAuthError && ['unknown_customer', 'unknown_price', 'invalid_subscription'].includes(error.code)) {
            return { outcome: error.code as ReconcileOutcome, userId: null };
          }
          throw error;
        }
      }
    },

    /**
     * A Stripe Checkout session (mode subscription) for the plan's price, bound to the user: their
     * id in client_reference_id, in the session's metadata and in the subscription's metadata
     * (what the webhook reads), and their Stripe customer when they have one. Errors:
     * stripe_not_configured, invalid_user_id, unknown_user, unknown_plan, plan_not_for_sale,
     * invalid_return_url, invalid_quantity, and Stripe's (stripe_*).
     */
    async createCheckoutSession(userId: string, options: CheckoutOptions): Promise<CheckoutSession> {
      const client = stripe();
      input.userId(userId);
      const { plan, successUrl, cancelUrl, quantity = 1 } = options ?? ({} as CheckoutOptions);
      returnUrl(successUrl, 'successUrl');
      if (cancelUrl !== undefined) returnUrl(cancelUrl, 'cancelUrl');
      if (!Number.isSafeInteger(quantity) || quantity < 1 || quantity > 100_000) {
        throw new ValidationError('invalid_quantity', 'invalid_quantity: quantity must be a whole number from 1 to 100000');
      }
      if (typeof plan !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,49}$/.test(plan)) {
        throw new NotFoundError('unknown_plan', 'unknown_plan: plan must be the slug of a plan');
      }
      const plans = await db.query<{ stripe_price_id: string | null; is_active: boolean }>(
        'SELECT p.stripe_price_id, p.is_active FROM public.subscription_plans p WHERE p.plan_slug = $1::varchar',
        [plan],
      );
      if (!plans[0]) throw new NotFoundError('unknown_plan', `unknown_plan: no plan with slug ${plan}`);
      if (!plans[0].stripe_price_id || !plans[0].is_active) {
        throw new ValidationError('plan_not_for_sale', `plan_not_for_sale: plan ${plan} is ${plans[0].is_active ? 'not linked to a Stripe price (plans.linkStripe)' : 'not active'}`);
      }
      const user = await userRow(userId);
      const answer = await client.post<Record<string, unknown>>('/v1/checkout/sessions', {
        mode: 'subscription',
        line_items: [{ price: plans[0].stripe_price_id, quantity }],
        client_reference_id: userId,
        metadata: { user_id: userId },
        subscription_data: { metadata: { user_id: userId } },
        success_url: successUrl,
        cancel_url: cancelUrl,
        ...(user.stripe_customer_id ? { customer: user.stripe_customer_id } : deliverable(user.email) ? { customer_email: user.email } : {}),
      });
      const { id, url, expires_at: expiresAt } = answer.body;
      if (typeof id !== 'string' || typeof url !== 'string') {
        throw new StripeApiError('stripe_unavailable', 'stripe_unavailable: POST /v1/checkout/sessions answered without id and url', { type: null, code: null, param: null, status: 200, requestId: null });
      }
      return { id, url, expiresAt: typeof expiresAt === 'number' ? new Date(expiresAt * 1000) : null };
    },

    /**
     * A customer-portal session for the user's Stripe customer (manage card, plan, cancel).
     * Errors: stripe_not_configured, invalid_user_id, unknown_user, no_stripe_customer,
     * invalid_return_url, and Stripe's (stripe_*).
     */
    async createPortalSession(userId: string, options: { returnUrl: string }): Promise<PortalSession> {
      const client = stripe();
      input.userId(userId);
      returnUrl(options?.returnUrl, 'returnUrl');
      const user = await userRow(userId);
      if (!user.stripe_customer_id) {
        throw new NotFoundError('no_stripe_customer', 'no_stripe_customer: the user has no Stripe customer yet (no checkout completed)');
      }
      const answer = await client.post<Record<string, unknown>>('/v1/billing_portal/sessions', {
        customer: user.stripe_customer_id,
        return_url: options.returnUrl,
      });
      const { id, url } = answer.body;
      if (typeof id !== 'string' || typeof url !== 'string') {
        throw new StripeApiError('stripe_unavailable', 'stripe_unavailable: POST /v1/billing_portal/sessions answered without id and url', { type: null, code: null, param: null, status: 200, requestId: null });
      }
      return { id, url };
    },
  };

  async function rowsBySubscription(ids: string[]): Promise<RowState[]> {
    return db.query<RowState>(
      `SELECT ${ROW_COLUMNS} FROM public.user_subscriptions s JOIN public.subscription_plans p ON p.id = s.plan_id
        WHERE s.stripe_subscription_id = ANY($1::text[])`,
      [ids],
    );
  }
}

export type StripeBilling = ReturnType<typeof createStripeBilling>;

/**
 * The event time a reconcile write carries: strictly older than any change Stripe can have made
 * after it read the page. Stripe's Date header (d, whole seconds, Stripe's clock) is at most one
 * round trip (e) after the read, so the read happened at or after d - e; every later change has
 * an event `created` of at least floor(d - e) >= d - ceil(e), and d - ceil(e) - 1 is below it.
 * A webhook for such a change therefore always wins over the reconcile's write, whatever the
 * order they reach the database. Without a Date header: our own send time less the 5-minute skew
 * allowance the sync accepts.
 */
export function snapshotTime(answer: Pick<StripeAnswer<unknown>, 'date' | 'elapsedMs' | 'sentAt'>): Date {
  const t = answer.date
    ? Math.floor(answer.date.getTime() / 1000) - Math.ceil(answer.elapsedMs / 1000) - 1
    : Math.floor(answer.sentAt / 1000) - 300 - 1;
  // Never ahead of our own clock (the sync refuses times far in the future).
  return new Date(Math.min(t, Math.floor(Date.now() / 1000)) * 1000);
}

const idOf = (value: unknown): string | undefined =>
  typeof value === 'string' ? value : typeof value === 'object' && value !== null && typeof (value as { id?: unknown }).id === 'string' ? (value as { id: string }).id : undefined;

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const stripeIso = (n: unknown) => (typeof n === 'number' && Number.isFinite(n) ? new Date(n * 1000).toISOString() : null);

/** The fields of the row that differ from Stripe's subscription (every field when there is no row). */
function differences(row: RowState | null, s: StripeSubscription, plans: Map<string, string>): ReconcileField[] {
  const item = s.items?.data?.[0];
  const price = idOf(item?.price) ?? null;
  const quantity = item?.quantity ?? s.quantity ?? 1;
  const stripe: Record<ReconcileField['field'], string | number | boolean | null> = {
    plan: price ? plans.get(price) ?? null : null,
    status: typeof s.status === 'string' ? s.status : null,
    priceId: price,
    customerId: idOf(s.customer) ?? null,
    quantity: typeof quantity === 'number' ? quantity : null,
    currentPeriodStart: stripeIso(item?.current_period_start ?? s.current_period_start),
    currentPeriodEnd: stripeIso(item?.current_period_end ?? s.current_period_end),
    cancelAtPeriodEnd: s.cancel_at_period_end === true,
    canceledAt: stripeIso(s.canceled_at),
    trialEnd: stripeIso(s.trial_end),
  };
  const database: Record<ReconcileField['field'], string | number | boolean | null> = row
    ? {
        plan: row.plan_slug, status: row.status, priceId: row.stripe_price_id, customerId: row.stripe_customer_id,
        quantity: row.quantity, currentPeriodStart: iso(row.current_period_start), currentPeriodEnd: iso(row.current_period_end),
        cancelAtPeriodEnd: row.cancel_at_period_end, canceledAt: iso(row.canceled_at), trialEnd: iso(row.trial_end),
      }
    : { plan: null, status: null, priceId: null, customerId: null, quantity: null, currentPeriodStart: null, currentPeriodEnd: null, cancelAtPeriodEnd: null, canceledAt: null, trialEnd: null };
  return (Object.keys(stripe) as ReconcileField['field'][])
    .filter((field) => database[field] !== stripe[field])
    .map((field) => ({ field, database: database[field], stripe: stripe[field] }));
}

/**
 * An email Stripe may prefill and write to: an address, not one under a reserved top-level domain
 * (a user created by Sign in with Figma without an email is figma-<id>@users.figma.invalid; Stripe
 * would refuse it, or the buyer could not change it). Otherwise Checkout asks the buyer.
 */
function deliverable(email: string | null): email is string {
  return typeof email === 'string' && email.length <= 254 && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) && !/\.(invalid|localhost|local)$/i.test(email);
}

/** A return URL for Stripe: https (http only for localhost and 127.0.0.1), at most 2048 characters. */
function returnUrl(value: unknown, name: string): void {
  let url: URL | null = null;
  try {
    url = typeof value === 'string' && value.length <= MAX_URL_LENGTH ? new URL(value) : null;
  } catch {
    url = null;
  }
  const local = url && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (!url || !(url.protocol === 'https:' || (url.protocol === 'http:' && local)) || url.username || url.password) {
    throw new ValidationError('invalid_return_url', `invalid_return_url: ${name} must be an https URL of at most ${MAX_URL_LENGTH} characters (http only for localhost)`);
  }
}
