// The operator's console: find a user, see every source of their plan and what they did, act on
// them (each action audited in the same transaction, with the state before and after), see what
// failed, export any table as CSV. Every query reads an index (named at each); definitions and a
// walk-through: docs/dashboard.md.
import { withTypedErrors, type Queryable } from '../core/db.ts';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import { createSeats } from '../billing/seats.ts';
import { createSubscriptions } from '../billing/subscriptions.ts';
import { checkUuid } from './queries.ts';

// ---- find ----

export interface FoundUser {
  userId: string;
  email: string;
  name: string | null;
  figmaUserId: string | null;
  /** What matched: id, email, name, figma_id, license_prefix, stripe_customer, stripe_subscription. */
  matched: string;
}

const MAX_QUERY = 255;

/** Escapes LIKE's wildcards, so a search for "a_b%" finds that text and nothing else. */
const likeText = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * Users by id, email (exact by users_email_key; when nothing matches exactly, containing the text), Figma user id (exact,
 * users_figma_user_id_key and figma_users), name or handle (containing), license key prefix (the
 * first 8 characters stored with each license: idx_licenses_key_prefix), Stripe customer or
 * subscription id (exact, idx_user_subscriptions_stripe_customer / _stripe_subscription).
 * At most 50, exact matches first.
 */
export async function searchUsers(db: Queryable, query: string): Promise<FoundUser[]> {
  db = withTypedErrors(db);
  if (typeof query !== 'string') throw new ValidationError('invalid_search', 'invalid_search: the search is text');
  const q = query.trim();
  if (q.length === 0) return [];
  if (q.length > MAX_QUERY || /[\u0000-\u001f\u007f]/.test(q)) {
    throw new ValidationError('invalid_search', `invalid_search: search for 1 to ${MAX_QUERY} characters without control characters`);
  }
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(q) ? q.toLowerCase() : null;
  const rows = await db.query<{ id: string; email: string; name: string | null; figma_user_id: string | null; matched: string; rank: number }>(
    `WITH hits AS (
       SELECT w.id, 'id' AS matched, 0 AS rank FROM public.users AS w WHERE w.id = $2::uuid
       UNION ALL
       SELECT w.id, 'email', 1 FROM public.users AS w WHERE w.email = $1::varchar
       UNION ALL
       SELECT w.id, 'figma_id', 1 FROM public.users AS w WHERE w.figma_user_id = $1::varchar
       UNION ALL
       SELECT f.user_id, 'figma_id', 1 FROM public.figma_users AS f WHERE f.figma_user_id = $1::varchar AND f.user_id IS NOT NULL
       UNION ALL
       SELECT s.user_id, 'stripe_customer', 1 FROM public.user_subscriptions AS s WHERE s.stripe_customer_id = $1::varchar
       UNION ALL
       SELECT s.user_id, 'stripe_subscription', 1 FROM public.user_subscriptions AS s WHERE s.stripe_subscription_id = $1::varchar
       UNION ALL
       SELECT k.user_id, 'license_prefix', 1 FROM public.licenses AS k
        WHERE pg_catalog.length($1::text) >= 4 AND k.key_prefix = pg_catalog.left($1::text, 8)
     ), contained AS (
       -- Only when nothing matched exactly: this one reads every user (linear in users, never in calls).
       SELECT w.id, CASE WHEN w.email ILIKE $3::text THEN 'email' ELSE 'name' END AS matched, 2 AS rank
         FROM public.users AS w
        WHERE NOT EXISTS (SELECT 1 FROM hits) AND (w.email ILIKE $3::text OR w.name ILIKE $3::text)
        LIMIT 50
     ), every AS (
       SELECT * FROM hits UNION ALL SELECT * FROM contained
     ), best AS (
       SELECT DISTINCT ON (h.id) h.id, h.matched, h.rank FROM every AS h ORDER BY h.id, h.rank, h.matched
     )
     SELECT w.id, w.email, w.name, w.figma_user_id, b.matched, b.rank
       FROM best AS b JOIN public.users AS w ON w.id = b.id
      ORDER BY b.rank, w.email
      LIMIT 50`,
    [q, uuid, `%${likeText(q)}%`],
  );
  return rows.map((r) => ({ userId: r.id, email: r.email, name: r.name, figmaUserId: r.figma_user_id, matched: r.matched }));
}

// ---- one user: what the overview's user page did not show ----

export interface ConsoleLicense {
  licenseId: string;
  provider: string;
  keyPrefix: string;
  status: string;
  productId: string;
  planSlug: string | null;
  expiresAt: Date | null;
  checkedAt: Date;
  /** Devices the license is activated on, with their lease (list_license_devices: last seen, lease end, live). */
  devices: { deviceId: string; deviceName: string; activatedAt: Date; lastSeenAt: Date | null; leaseEndsAt: Date | null; live: boolean }[];
  /**
   * What was paid for it, as the store reported it (PRICED_LICENSES): minor units and currency,
   * the billing interval of a subscription ('month', '3 months', …; null: one-time), and whether
   * it was refunded. Null: not recorded (a Lemon Squeezy order never seen, a row from before sql/031).
   */
  amount: { minor: number; currency: string; interval: string | null; refunded: boolean } | null;
}

/**
 * Every license with the amount its store reported (sql/031, sql/032), one row each:
 * - Gumroad: the price its verify answer carried (licenses.price_minor / currency / price_interval).
 * - Lemon Squeezy: its webhooks, by the license's order_id. A subscription (store_subscriptions,
 *   from subscription_created / _updated) is recurring at its latest paid period invoice's total
 *   (else its order's total), over the interval set on the variant's plan link (no interval set:
 *   not recorded); an order without a subscription is a one-time sale at its total less what was
 *   refunded, sold when the order was placed. Neither seen: licenses.price_* (not recorded).
 * per_month_num / per_month_den bring a recurring amount to a month (null: one-time); billing is
 * false for a subscription on trial, paused, unpaid or expired (no MRR); is_sale is false for a
 * refunded, disputed, charged-back, unpaid or fraudulent purchase.
 */
const PRICED_LICENSES = `
SELECT k.id AS license_id, k.provider, k.user_id, k.status, k.quantity, k.created_at,
       y.price_minor, y.currency, CASE WHEN y.price_minor IS NULL THEN NULL ELSE x.num END AS per_month_num, x.den AS per_month_den,
       CASE WHEN y.price_minor IS NULL THEN NULL ELSE x.interval_label END AS interval_label,
       COALESCE(o.ordered_at, k.created_at) AS sold_at,
       k.status NOT IN ('refunded', 'disputed', 'chargebacked')
         AND (o.order_id IS NULL OR (NOT o.refunded AND o.status IN ('paid', 'partial_refund'))) AS is_sale,
       s.subscription_id IS NULL OR s.status IS NULL OR s.status IN ('active', 'past_due', 'cancelled') AS billing
  FROM public.licenses AS k
  LEFT JOIN public.store_orders AS o ON o.provider = k.provider AND o.order_id = k.order_id
  -- The order's subscription (the newest, should an order have several): hashed, not sorted.
  LEFT JOIN (SELECT s.provider, s.order_id, s.subscription_id, s.status, s.recurring_minor, s.currency
               FROM public.store_subscriptions AS s
              WHERE s.order_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM public.store_subscriptions AS n
                                 WHERE n.provider = s.provider AND n.order_id = s.order_id
                                   AND (n.updated_at > s.updated_at OR n.updated_at = s.updated_at AND n.subscription_id < s.subscription_id))
            ) AS s ON s.provider = k.provider AND s.order_id = k.order_id
  -- The variant's own mapping, else the product's (as license_terms picks the plan).
  LEFT JOIN public.license_products AS mv ON mv.provider = k.provider AND mv.product_id = k.product_id AND mv.variant_id = k.variant_id AND k.variant_id <> ''
  LEFT JOIN public.license_products AS mp ON mp.provider = k.provider AND mp.product_id = k.product_id AND mp.variant_id = ''
 CROSS JOIN LATERAL (
    SELECT CASE WHEN mv.provider IS NOT NULL THEN mv.price_interval ELSE mp.price_interval END AS price_interval,
           CASE WHEN mv.provider IS NOT NULL THEN mv.price_interval_count ELSE mp.price_interval_count END AS price_interval_count) AS m
 CROSS JOIN LATERAL (
    SELECT CASE WHEN s.subscription_id IS NOT NULL THEN CASE m.price_interval WHEN 'month' THEN 1 WHEN 'year' THEN 1 WHEN 'week' THEN 52 WHEN 'day' THEN 365 END
                WHEN o.order_id IS NOT NULL THEN NULL
                WHEN k.price_interval IS NOT NULL THEN 1 END AS num,
           CASE WHEN s.subscription_id IS NOT NULL THEN CASE m.price_interval WHEN 'month' THEN 1 ELSE 12 END * m.price_interval_count
                WHEN o.order_id IS NOT NULL THEN NULL
                ELSE CASE k.price_interval WHEN 'month' THEN 1 WHEN 'quarter' THEN 3 WHEN 'half_year' THEN 6 WHEN 'year' THEN 12 WHEN 'two_years' THEN 24 END END AS den,
           CASE WHEN s.subscription_id IS NOT NULL THEN CASE WHEN m.price_interval_count = 1 THEN m.price_interval::text
                                                             ELSE m.price_interval_count::text || ' ' || m.price_interval || 's' END
                WHEN o.order_id IS NOT NULL THEN NULL
                ELSE k.price_interval::text END AS interval_label) AS x
 CROSS JOIN LATERAL (
    SELECT CASE WHEN s.subscription_id IS NOT NULL THEN CASE WHEN m.price_interval IS NOT NULL THEN COALESCE(s.recurring_minor, o.total_minor) END
                WHEN o.order_id IS NOT NULL THEN o.total_minor - o.refunded_minor
                ELSE k.price_minor END AS price_minor,
           CASE WHEN s.subscription_id IS NOT NULL THEN CASE WHEN m.price_interval IS NOT NULL THEN CASE WHEN s.recurring_minor IS NOT NULL THEN s.currency ELSE o.currency END END
                WHEN o.order_id IS NOT NULL THEN o.currency
                ELSE k.currency END::text AS currency) AS y`;

export interface ConsoleRequest {
  at: Date;
  action: string;
  items: number;
  allowed: boolean;
  reason: string;
  planSlug: string | null;
  used: number | null;
  limit: number | null;
  refunded: boolean;
}

export interface UserConsole {
  subscription: {
    planSlug: string;
    status: string;
    stripeCustomerId: string | null;
    stripeSubscriptionId: string | null;
    currentPeriodEnd: Date | null;
    cancelAtPeriodEnd: boolean;
    trialEnd: Date | null;
    quantity: number;
  } | null;
  figma: { figmaUserId: string; paymentStatus: string; grantUntil: Date; checkedAt: Date } | null;
  licenses: ConsoleLicense[];
  /** Seats this user holds (of an owner's team), and the members of this user's own team. */
  seatHeld: { ownerId: string; ownerEmail: string; assignedAt: Date } | null;
  seatMembers: { memberId: string; email: string; assignedAt: Date }[];
  today: { action: string; used: number; allowed: number; denied: number; refunded: number }[];
  last30: { allowed: number; denied: number; refunded: number; used: number };
  requests: ConsoleRequest[];
  refusals: { at: Date; route: string; reason: string }[];
  audit: AuditRow[];
}

export interface AuditRow {
  id: number;
  at: Date;
  actor: string;
  action: string;
  userId: string | null;
  subject: string | null;
  before: unknown;
  after: unknown;
}

const json = (value: unknown) => (typeof value === 'string' ? JSON.parse(value) : value);

export async function readUserConsole(db: Queryable, userId: string, requestLimit = 50): Promise<UserConsole> {
  db = withTypedErrors(db);
  const id = checkUuid(userId, 'invalid_user_id', 'the user id');
  const [sub] = await db.query<{ plan_slug: string; status: string; stripe_customer_id: string | null; stripe_subscription_id: string | null; current_period_end: Date | null; cancel_at_period_end: boolean; trial_end: Date | null; quantity: number }>(
    `SELECT p.plan_slug, s.status, s.stripe_customer_id, s.stripe_subscription_id, s.current_period_end, s.cancel_at_period_end, s.trial_end, s.quantity
       FROM public.user_subscriptions AS s JOIN public.subscription_plans AS p ON p.id = s.plan_id
      WHERE s.user_id = $1::uuid`,
    [id],
  );
  const [figma] = await db.query<{ figma_user_id: string; payment_status: string; grant_until: Date; checked_at: Date }>(
    'SELECT f.figma_user_id, f.payment_status, f.grant_until, f.checked_at FROM public.figma_users AS f WHERE f.user_id = $1::uuid',
    [id],
  );
  const licenses = await db.query<{ id: string; provider: string; key_prefix: string; status: string; product_id: string; plan_slug: string | null; expires_at: Date | null; checked_at: Date }>(
    `SELECT k.id, k.provider, k.key_prefix, k.status, k.product_id, p.plan_slug, k.expires_at, k.checked_at
       FROM public.licenses AS k
      CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
       LEFT JOIN public.subscription_plans AS p ON p.id = t.plan_id
      WHERE k.user_id = $1::uuid
      ORDER BY k.created_at, k.id`,
    [id],
  );
  const amounts = await db.query<{ license_id: string; price_minor: string | null; currency: string | null; interval_label: string | null; is_sale: boolean }>(
    `SELECT p.license_id, p.price_minor::text AS price_minor, p.currency, p.interval_label, p.is_sale FROM (${PRICED_LICENSES}) AS p WHERE p.user_id = $1::uuid`,
    [id],
  );
  // The devices with their lease state, as the licensing API lists them (devices of every license of the user).
  const devices = await db.query<{ license_id: string; device_id: string; device_name: string; activated_at: Date; last_seen_at: Date | null; lease_ends_at: Date | null; live: boolean }>(
    `SELECT d.license_id, d.device_id, d.device_name, d.activated_at, d.last_seen_at, d.lease_ends_at, d.live
       FROM public.list_license_devices($1::uuid) AS d ORDER BY d.activated_at, d.device_id`,
    [id],
  );
  const [held] = await db.query<{ owner_user_id: string; email: string; assigned_at: Date }>(
    `SELECT a.owner_user_id, w.email, a.assigned_at FROM public.seat_assignments AS a JOIN public.users AS w ON w.id = a.owner_user_id
      WHERE a.member_user_id = $1::uuid`,
    [id],
  );
  const members = await db.query<{ member_user_id: string; email: string; assigned_at: Date }>(
    `SELECT a.member_user_id, w.email, a.assigned_at FROM public.seat_assignments AS a JOIN public.users AS w ON w.id = a.member_user_id
      WHERE a.owner_user_id = $1::uuid ORDER BY a.seat_order`,
    [id],
  );
  // usage_summary: the counters and the log, today and over 30 days (idx_plugin_usage_user_id).
  const usage = await db.query<{ usage_date: string; action: string; used: number; allowed: number; denied: number; refunded: number; today: boolean }>(
    `SELECT s.usage_date::text AS usage_date, s.action, s.used, s.allowed, s.denied, s.refunded,
            s.usage_date = (pg_catalog.now() AT TIME ZONE 'UTC')::date AS today
       FROM public.usage_summary($1::uuid, ((pg_catalog.now() AT TIME ZONE 'UTC')::date - 29), (pg_catalog.now() AT TIME ZONE 'UTC')::date) AS s`,
    [id],
  );
  // The last calls, newest first (idx_plugin_usage_user_id, backwards).
  const requests = await db.query<{ created_at: Date; action: string; items: number; allowed: boolean; reason: string; plan_slug: string | null; used: number | null; usage_limit: number | null; refunded: boolean }>(
    `SELECT u.created_at, u.action, u.items, u.allowed, u.reason, u.plan_slug, u.used, u.usage_limit, u.refunded_at IS NOT NULL AS refunded
       FROM public.plugin_usage AS u
      WHERE u.user_id = $1::uuid
      ORDER BY u.created_at DESC, u.id DESC
      LIMIT $2::integer`,
    [id, requestLimit],
  );
  const refusals = await db.query<{ received_at: Date; route: string; reason_code: string }>(
    `SELECT r.received_at, r.route, r.reason_code FROM public.sign_in_refusals AS r
      WHERE r.user_id = $1::uuid ORDER BY r.received_at DESC LIMIT 20`,
    [id],
  );
  const audit = await readAudit(db, { userId: id, limit: 50 });
  const sum = (k: 'used' | 'allowed' | 'denied' | 'refunded') => usage.reduce((a, u) => a + u[k], 0);
  return {
    subscription: sub
      ? { planSlug: sub.plan_slug, status: sub.status, stripeCustomerId: sub.stripe_customer_id, stripeSubscriptionId: sub.stripe_subscription_id, currentPeriodEnd: sub.current_period_end, cancelAtPeriodEnd: sub.cancel_at_period_end, trialEnd: sub.trial_end, quantity: sub.quantity }
      : null,
    figma: figma ? { figmaUserId: figma.figma_user_id, paymentStatus: figma.payment_status, grantUntil: figma.grant_until, checkedAt: figma.checked_at } : null,
    licenses: licenses.map((k) => ({
      licenseId: k.id,
      provider: k.provider,
      keyPrefix: k.key_prefix,
      status: k.status,
      productId: k.product_id,
      planSlug: k.plan_slug,
      expiresAt: k.expires_at,
      checkedAt: k.checked_at,
      devices: devices.filter((d) => d.license_id === k.id).map((d) => ({ deviceId: d.device_id, deviceName: d.device_name, activatedAt: d.activated_at, lastSeenAt: d.last_seen_at, leaseEndsAt: d.lease_ends_at, live: d.live })),
      amount: ((a) => (a && a.price_minor !== null && a.currency !== null
        ? { minor: Number(a.price_minor), currency: a.currency.toUpperCase(), interval: a.interval_label, refunded: !a.is_sale }
        : null))(amounts.find((a) => a.license_id === k.id)),
    })),
    seatHeld: held ? { ownerId: held.owner_user_id, ownerEmail: held.email, assignedAt: held.assigned_at } : null,
    seatMembers: members.map((m) => ({ memberId: m.member_user_id, email: m.email, assignedAt: m.assigned_at })),
    today: usage.filter((u) => u.today).map((u) => ({ action: u.action, used: u.used, allowed: u.allowed, denied: u.denied, refunded: u.refunded })),
    last30: { used: sum('used'), allowed: sum('allowed'), denied: sum('denied'), refunded: sum('refunded') },
    requests: requests.map((r) => ({ at: r.created_at, action: r.action, items: r.items, allowed: r.allowed, reason: r.reason, planSlug: r.plan_slug, used: r.used, limit: r.usage_limit, refunded: r.refunded })),
    refusals: refusals.map((r) => ({ at: r.received_at, route: r.route, reason: r.reason_code })),
    audit,
  };
}

// ---- audit ----

export async function readAudit(db: Queryable, options: { userId?: string; limit?: number } = {}): Promise<AuditRow[]> {
  db = withTypedErrors(db);
  const rows = await db.query<{ id: string; created_at: Date; actor: string; action: string; user_id: string | null; subject: string | null; before: unknown; after: unknown }>(
    `SELECT a.id, a.created_at, a.actor, a.action, a.user_id, a.subject, a.before, a.after
       FROM public.console_audit_log AS a
      WHERE $1::uuid IS NULL OR a.user_id = $1::uuid
      ORDER BY a.created_at DESC, a.id DESC
      LIMIT $2::integer`,
    [options.userId ?? null, options.limit ?? 200],
  );
  return rows.map((r) => ({ id: Number(r.id), at: r.created_at, actor: r.actor, action: r.action, userId: r.user_id, subject: r.subject, before: json(r.before), after: json(r.after) }));
}

// ---- act ----

export const ACTIONS = ['grant_plan', 'extend_trial', 'refund_today', 'revoke_token', 'revoke_device', 'deactivate_license', 'remove_seat', 'resync_stripe'] as const;
export type ConsoleAction = (typeof ACTIONS)[number];

export interface ActionInput {
  /** grant_plan: the plan slug. */
  plan?: string;
  /** grant_plan: the last day (YYYY-MM-DD, UTC, through its end); empty: no end. */
  until?: string;
  /** extend_trial: days to add (1 to 366). */
  days?: string;
  /** revoke_token: the token id; revoke_device: licenseId:deviceId; deactivate_license: the license id; remove_seat: the member's id (this user owns the team) or 'held' (the seat this user holds). */
  subject?: string;
}

export interface ActionContext {
  /** Who acts (the audit's actor). */
  actor: string;
  /** The re-sync from Stripe, when the host provides it. */
  reconcileStripe?: (userId: string) => Promise<unknown>;
}

export interface ActionResult {
  action: ConsoleAction;
  userId: string;
  subject: string | null;
  before: unknown;
  after: unknown;
  /** One line for the page. */
  message: string;
}

export function checkAction(value: string): ConsoleAction {
  if (!(ACTIONS as readonly string[]).includes(value)) throw new NotFoundError('unknown_action', 'unknown_action: no such console action');
  return value as ConsoleAction;
}

type Tx = Queryable;
const inTransaction = <T>(db: Queryable & { transaction?: <R>(fn: (tx: Queryable) => Promise<R>) => Promise<R> }, fn: (tx: Tx) => Promise<T>): Promise<T> =>
  typeof db.transaction === 'function' ? db.transaction(fn) : fn(db);

async function subscriptionState(tx: Tx, userId: string): Promise<Record<string, unknown> | null> {
  const [row] = await tx.query<Record<string, unknown>>(
    `SELECT p.plan_slug, s.status, s.current_period_end, s.trial_end, s.cancel_at_period_end, s.stripe_subscription_id
       FROM public.user_subscriptions AS s JOIN public.subscription_plans AS p ON p.id = s.plan_id WHERE s.user_id = $1::uuid`,
    [userId],
  );
  return row ?? null;
}

async function usageToday(tx: Tx, userId: string): Promise<Record<string, number>> {
  const rows = await tx.query<{ action: string; count: number }>(
    `SELECT d.action, d.count FROM public.daily_usage_summary AS d
      WHERE d.user_id = $1::uuid AND d.usage_date = (pg_catalog.now() AT TIME ZONE 'UTC')::date ORDER BY d.action`,
    [userId],
  );
  return Object.fromEntries(rows.map((r) => [r.action, r.count]));
}

function untilDate(value: string | undefined): Date | null {
  if (value === undefined || value === '') return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const date = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + 1)) : null;
  if (!date || Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) <= value || date.getTime() <= Date.now()) {
    throw new ValidationError('invalid_until', 'invalid_until: until is a day (YYYY-MM-DD) from today on');
  }
  return date; // the end of that UTC day
}

/** Runs one action and writes its audit row, in one transaction: both or neither. */
export async function runAction(
  raw: Queryable & { transaction?: <R>(fn: (tx: Queryable) => Promise<R>) => Promise<R> },
  userId: string,
  action: ConsoleAction,
  input: ActionInput,
  context: ActionContext,
): Promise<ActionResult> {
  const uid = checkUuid(userId, 'invalid_user_id', 'the user id');
  if (typeof context.actor !== 'string' || context.actor.length < 1 || context.actor.length > 255 || /[\u0000-\u001f\u007f]/.test(context.actor)) {
    throw new ValidationError('invalid_actor', 'invalid_actor: the actor is 1 to 255 characters without control characters');
  }
  if (action === 'resync_stripe' && !context.reconcileStripe) {
    throw new ValidationError('action_unavailable', 'action_unavailable: re-sync from Stripe needs the reconcileStripe option of the dashboard');
  }
  // The Stripe call is made before the transaction: no transaction stays open across the network.
  let reconciled: unknown;
  if (action === 'resync_stripe') {
    const before = await subscriptionState(withTypedErrors(raw), uid);
    reconciled = await context.reconcileStripe!(uid);
    const after = await subscriptionState(withTypedErrors(raw), uid);
    return inTransaction(raw, async (t) => {
      const tx = withTypedErrors(t);
      await audit(tx, context.actor, action, uid, null, before, { subscription: after, result: summarize(reconciled) });
      return { action, userId: uid, subject: null, before, after, message: 'Re-synced from Stripe.' };
    });
  }
  return inTransaction(raw, async (t) => {
    const tx = withTypedErrors(t);
    const [user] = await tx.query<{ id: string }>('SELECT w.id FROM public.users AS w WHERE w.id = $1::uuid FOR NO KEY UPDATE', [uid]);
    if (!user) throw new NotFoundError('unknown_user', `unknown_user: no user with id ${uid}`);
    let result: Omit<ActionResult, 'action' | 'userId'>;
    switch (action) {
      case 'grant_plan': {
        const plan = typeof input.plan === 'string' ? input.plan : '';
        const until = untilDate(input.until);
        const before = await subscriptionState(tx, uid);
        const granted = await createSubscriptions(tx).assignPlan(uid, plan, { until });
        const after = await subscriptionState(tx, uid);
        result = { subject: granted.planSlug, before, after, message: `Plan ${granted.planSlug} granted${until ? ` until ${until.toISOString().slice(0, 10)} (end of day, UTC)` : ' with no end'}.` };
        break;
      }
      case 'extend_trial': {
        const days = /^\d{1,3}$/.test(input.days ?? '') ? Number(input.days) : NaN;
        if (!(days >= 1 && days <= 366)) throw new ValidationError('invalid_extension', 'invalid_extension: extend by 1 to 366 days');
        const before = await subscriptionState(tx, uid);
        if (!before || before.status !== 'manual' || before.current_period_end === null) {
          throw new ValidationError('not_extendable', 'not_extendable: only a plan granted until a date (status manual) is extended here; a Stripe trial is extended in Stripe');
        }
        const end = new Date(before.current_period_end as Date);
        const from = end.getTime() > Date.now() ? end : new Date();
        const until = new Date(from.getTime() + days * 86_400_000);
        await createSubscriptions(tx).assignPlan(uid, before.plan_slug as string, { until });
        const after = await subscriptionState(tx, uid);
        result = { subject: before.plan_slug as string, before, after, message: `Extended by ${days} days, until ${until.toISOString().slice(0, 16).replace('T', ' ')} UTC.` };
        break;
      }
      case 'refund_today': {
        const before = await usageToday(tx, uid);
        const [row] = await tx.query<{ n: number }>('SELECT public.console_refund_today($1::uuid) AS n', [uid]);
        const after = await usageToday(tx, uid);
        result = { subject: null, before: { counters: before }, after: { counters: after, refundedCalls: row!.n }, message: `Today's usage refunded: ${row!.n} calls given back.` };
        break;
      }
      case 'revoke_token': {
        const tokenId = checkUuid(input.subject ?? '', 'invalid_token_id', 'the token id');
        const [tok] = await tx.query<{ user_id: string; device_name: string | null; revoked_at: Date | null; revoked_reason: string | null; expires_at: Date }>(
          'SELECT t.user_id, t.device_name, t.revoked_at, t.revoked_reason, t.expires_at FROM public.plugin_tokens AS t WHERE t.id = $1::uuid',
          [tokenId],
        );
        if (tok?.user_id !== uid) throw new NotFoundError('token_not_found', 'token_not_found: this user has no token with that id');
        await tx.query('SELECT public.revoke_plugin_token($1::uuid, $2::varchar)', [tokenId, 'revoked_from_dashboard']);
        const [after] = await tx.query<Record<string, unknown>>('SELECT t.revoked_at, t.revoked_reason FROM public.plugin_tokens AS t WHERE t.id = $1::uuid', [tokenId]);
        result = { subject: tokenId, before: { device_name: tok.device_name, revoked_at: tok.revoked_at, revoked_reason: tok.revoked_reason }, after, message: `Token ${tokenId} revoked: that device must sign in again.` };
        break;
      }
      case 'revoke_device': {
        const [licenseId, deviceId] = (input.subject ?? '').split(':');
        const lid = checkUuid(licenseId ?? '', 'invalid_license_id', 'the license id');
        const did = checkUuid(deviceId ?? '', 'invalid_device_id', 'the device id');
        const [lic] = await tx.query<{ provider: string; key_hash: string; user_id: string }>(
          'SELECT k.provider, k.key_hash, k.user_id FROM public.licenses AS k WHERE k.id = $1::uuid', [lid]);
        if (lic?.user_id !== uid) throw new NotFoundError('license_not_found', 'license_not_found: this user has no such license');
        const [dev] = await tx.query<{ device_name: string; activated_at: Date }>(
          'SELECT d.device_name, d.activated_at FROM public.license_devices AS d WHERE d.license_id = $1::uuid AND d.device_id = $2::uuid', [lid, did]);
        if (!dev) throw new NotFoundError('device_not_found', 'device_not_found: the license is not activated on that device');
        const [left] = await tx.query<{ n: number }>('SELECT public.license_remove_device($1::varchar, $2::text, $3::uuid, $4::uuid) AS n', [lic.provider, lic.key_hash, uid, did]);
        result = { subject: `${lid}:${did}`, before: { device_name: dev.device_name, activated_at: dev.activated_at }, after: { removed: true, devices_left: left!.n }, message: `Device ${dev.device_name} released from the license: ${left!.n} left.` };
        break;
      }
      case 'deactivate_license': {
        const lid = checkUuid(input.subject ?? '', 'invalid_license_id', 'the license id');
        const [lic] = await tx.query<{ user_id: string; status: string }>('SELECT k.user_id, k.status FROM public.licenses AS k WHERE k.id = $1::uuid FOR UPDATE', [lid]);
        if (lic?.user_id !== uid) throw new NotFoundError('license_not_found', 'license_not_found: this user has no such license');
        await tx.query(
          `UPDATE public.licenses AS k SET status = 'disabled', state_at = GREATEST(k.state_at, pg_catalog.now()), updated_at = pg_catalog.now() WHERE k.id = $1::uuid`,
          [lid],
        );
        result = { subject: lid, before: { status: lic.status }, after: { status: 'disabled' }, message: 'License deactivated: it no longer grants a plan.' };
        break;
      }
      case 'remove_seat': {
        const subject = input.subject ?? '';
        const owner = subject === 'held' ? null : checkUuid(subject, 'invalid_user_id', 'the member id');
        const [seat] = await tx.query<{ owner_user_id: string; member_user_id: string; assigned_at: Date }>(
          owner === null
            ? 'SELECT a.owner_user_id, a.member_user_id, a.assigned_at FROM public.seat_assignments AS a WHERE a.member_user_id = $1::uuid'
            : 'SELECT a.owner_user_id, a.member_user_id, a.assigned_at FROM public.seat_assignments AS a WHERE a.owner_user_id = $1::uuid AND a.member_user_id = $2::uuid',
          owner === null ? [uid] : [uid, owner],
        );
        if (!seat) throw new NotFoundError('seat_not_found', 'seat_not_found: no such seat');
        await createSeats(tx).remove(seat.owner_user_id, seat.member_user_id);
        result = { subject: `${seat.owner_user_id}:${seat.member_user_id}`, before: seat, after: { removed: true }, message: 'Seat removed.' };
        break;
      }
    }
    await audit(tx, context.actor, action, uid, result.subject, result.before, result.after);
    return { action, userId: uid, ...result };
  });
}

/** What a reconcile returned, as plain JSON for the audit (at most a few KB). */
function summarize(value: unknown): unknown {
  try {
    const text = JSON.stringify(value ?? null);
    return text.length <= 4096 ? JSON.parse(text) : { truncated: true };
  } catch {
    return { unserializable: true };
  }
}

async function audit(tx: Tx, actor: string, action: string, userId: string, subject: string | null, before: unknown, after: unknown): Promise<void> {
  await tx.query(
    `INSERT INTO public.console_audit_log (actor, action, user_id, subject, before, after)
     VALUES ($1::varchar, $2::varchar, $3::uuid, $4::varchar, $5::jsonb, $6::jsonb)`,
    [actor, action, userId, subject, JSON.stringify(before ?? null), JSON.stringify(after ?? null)],
  );
}

// ---- what failed ----

export interface Failures {
  /** Per provider and outcome, the deliveries of the range (idx_webhook_deliveries_received_at). */
  deliveries: { provider: string; outcome: string; n: number }[];
  /** The refused deliveries of the range, newest first (at most 100). */
  refusedDeliveries: { at: Date; provider: string; eventId: string | null; reason: string }[];
  /** Subscriptions past due, or set to cancel at the period's end (idx_user_subscriptions_user_id). */
  atRisk: { userId: string; email: string; planSlug: string; status: string; cancelAtPeriodEnd: boolean; currentPeriodEnd: Date | null }[];
  /** Refused sign-ins and sessions by route and reason, in the range. */
  signIns: { route: string; reason: string; n: number; last: Date }[];
  /** Users refused with limit_reached today (idx_plugin_usage_denied_created_at), the 500 refused most often; their emails by users_pkey. */
  atLimit: { userId: string; email: string; planSlug: string | null; denied: number; last: Date }[];
}

export async function readFailures(db: Queryable, days: number): Promise<Failures> {
  db = withTypedErrors(db);
  const since = `(pg_catalog.now() - pg_catalog.make_interval(days => $1::integer))`;
  const deliveries = await db.query<{ provider: string; outcome: string; n: number }>(
    `SELECT d.provider, d.outcome, count(*)::integer AS n FROM public.webhook_deliveries AS d
      WHERE d.received_at >= ${since} GROUP BY 1, 2 ORDER BY 1, 2`,
    [days],
  );
  const refused = await db.query<{ received_at: Date; provider: string; event_id: string | null; reason_code: string }>(
    `SELECT d.received_at, d.provider, d.event_id, d.reason_code FROM public.webhook_deliveries AS d
      WHERE d.received_at >= ${since} AND d.outcome = 'refused' ORDER BY d.received_at DESC, d.id DESC LIMIT 100`,
    [days],
  );
  const atRisk = await db.query<{ user_id: string; email: string; plan_slug: string; status: string; cancel_at_period_end: boolean; current_period_end: Date | null }>(
    `SELECT s.user_id, w.email, p.plan_slug, s.status, s.cancel_at_period_end, s.current_period_end
       FROM public.user_subscriptions AS s
       JOIN public.users AS w ON w.id = s.user_id
       JOIN public.subscription_plans AS p ON p.id = s.plan_id
      WHERE (s.status = 'past_due' OR s.status = 'unpaid' OR s.status = 'incomplete' OR s.cancel_at_period_end)
        AND s.status IN ('past_due', 'unpaid', 'incomplete', 'active', 'trialing')
      ORDER BY s.current_period_end NULLS LAST, w.email
      LIMIT 500`,
    [],
  );
  const signIns = await db.query<{ route: string; reason_code: string; n: number; last: Date }>(
    `SELECT r.route, r.reason_code, count(*)::integer AS n, max(r.received_at) AS last FROM public.sign_in_refusals AS r
      WHERE r.received_at >= ${since} GROUP BY 1, 2 ORDER BY n DESC, 1, 2`,
    [days],
  );
  // The 500 users refused most often today (ties by user id) are picked before their emails are
  // read: at most 500 lookups by users_pkey, never a pass over the users table.
  const atLimit = await db.query<{ user_id: string; email: string; plan_slug: string | null; denied: number; last: Date }>(
    `SELECT x.user_id, (SELECT u.email FROM public.users AS u WHERE u.id = x.user_id) AS email, x.plan_slug, x.denied, x.last
       FROM (SELECT p.user_id, count(*)::integer AS denied, max(p.created_at) AS last,
                    (array_agg(p.plan_slug ORDER BY p.created_at DESC))[1] AS plan_slug
               FROM public.plugin_usage AS p
              WHERE NOT p.allowed AND p.reason = 'limit_reached'
                AND p.created_at >= ((pg_catalog.now() AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC'
              GROUP BY p.user_id
              ORDER BY denied DESC, p.user_id
              LIMIT 500) AS x
      ORDER BY x.denied DESC, 2`,
    [],
  );
  return {
    deliveries,
    refusedDeliveries: refused.map((r) => ({ at: r.received_at, provider: r.provider, eventId: r.event_id, reason: r.reason_code })),
    atRisk: atRisk.map((r) => ({ userId: r.user_id, email: r.email, planSlug: r.plan_slug, status: r.status, cancelAtPeriodEnd: r.cancel_at_period_end, currentPeriodEnd: r.current_period_end })),
    signIns: signIns.map((r) => ({ route: r.route, reason: r.reason_code, n: r.n, last: r.last })),
    atLimit: atLimit.map((r) => ({ userId: r.user_id, email: r.email, planSlug: r.plan_slug, denied: r.denied, last: r.last })),
  };
}

// ---- money ----

export interface MoneySource {
  source: 'stripe' | 'figma' | 'lemonsqueezy' | 'gumroad';
  /** Users this source makes paying now. */
  payingUsers: number;
  /** Seats paid for (Stripe quantity, license quantity); Figma: one per user. */
  seats: number;
  /** Cents per month at this package's plan prices (subscription_plans.price_monthly); null where the source reports its own price and none is stored. */
  mrrCents: number | null;
}

/**
 * Paying users and seats per source now, and MRR at the plan prices where the plan price is what
 * the source charges (Stripe subscriptions). Figma and the stores report their own prices, which
 * this version does not store yet: their MRR is shown as not recorded.
 */
export async function readMoney(db: Queryable): Promise<MoneySource[]> {
  db = withTypedErrors(db);
  const [row] = await db.query<{ s_users: number; s_seats: number; s_mrr: number; f_users: number; l_users: number; l_seats: number; g_users: number; g_seats: number }>(
    `SELECT (SELECT count(*) FROM public.user_subscriptions AS s
              WHERE s.stripe_subscription_id IS NOT NULL AND s.status IN ('active', 'past_due') AND s.quantity > 0)::integer AS s_users,
            (SELECT COALESCE(sum(s.quantity), 0) FROM public.user_subscriptions AS s
              WHERE s.stripe_subscription_id IS NOT NULL AND s.status IN ('active', 'past_due'))::integer AS s_seats,
            (SELECT COALESCE(sum(s.quantity * COALESCE(p.price_monthly, 0)), 0) FROM public.user_subscriptions AS s
               JOIN public.subscription_plans AS p ON p.id = s.plan_id
              WHERE s.stripe_subscription_id IS NOT NULL AND s.status IN ('active', 'past_due'))::integer AS s_mrr,
            (SELECT count(*) FROM public.figma_users AS f WHERE f.payment_status = 'PAID' AND f.user_id IS NOT NULL)::integer AS f_users,
            (SELECT count(DISTINCT k.user_id) FROM public.licenses AS k WHERE k.provider = 'lemonsqueezy' AND k.status = 'active')::integer AS l_users,
            (SELECT COALESCE(sum(k.quantity), 0) FROM public.licenses AS k WHERE k.provider = 'lemonsqueezy' AND k.status = 'active')::integer AS l_seats,
            (SELECT count(DISTINCT k.user_id) FROM public.licenses AS k WHERE k.provider = 'gumroad' AND k.status = 'active')::integer AS g_users,
            (SELECT COALESCE(sum(k.quantity), 0) FROM public.licenses AS k WHERE k.provider = 'gumroad' AND k.status = 'active')::integer AS g_seats`,
    [],
  );
  const r = row!;
  return [
    { source: 'stripe', payingUsers: r.s_users, seats: r.s_seats, mrrCents: r.s_mrr },
    { source: 'figma', payingUsers: r.f_users, seats: r.f_users, mrrCents: null },
    { source: 'lemonsqueezy', payingUsers: r.l_users, seats: r.l_seats, mrrCents: null },
    { source: 'gumroad', payingUsers: r.g_users, seats: r.g_seats, mrrCents: null },
  ];
}

/** One source's money in one currency, at the prices the source reported (sql/031). */
export interface MoneyAmount {
  source: MoneySource['source'];
  /** ISO 4217 code upper-cased; null: paying users whose price is not recorded. */
  currency: string | null;
  /** Users this source makes paying now (in this currency). */
  payingUsers: number;
  /** Seats they hold (Stripe quantity, license quantity; Figma: one per user). */
  seats: number;
  /** Seats on recurring prices: the divisor of MRR per seat. */
  recurringSeats: number;
  /** Recurring revenue normalized to a month, in minor units, rounded once per row. */
  mrrMinor: number;
  /** MRR per recurring seat, rounded; null without recurring seats. */
  mrrPerSeatMinor: number | null;
  /** One-time sales in the last 30 days, and their sum in minor units. */
  sales30d: number;
  sales30dMinor: number;
}

/**
 * Money per source and currency at the prices each source reported: Stripe's price unit_amount ×
 * quantity on active and past-due subscriptions; Gumroad's and Lemon Squeezy's price on active
 * licenses; Figma's at the price the operator set on the PAID link. Recurring prices are brought
 * to a month (a year is 1/12, a quarter 1/3, a week 52/12, a day 365/12, over the interval
 * count); one-time prices count as sales when bought in the last 30 days (Figma: the date of
 * purchase; Lemon Squeezy: when the order was placed; Gumroad: when first activated here;
 * refunded, disputed and charged-back licenses are not sales). Lemon Squeezy's amounts come from
 * its webhooks (PRICED_LICENSES). Currencies are never added together.
 */
export async function readMoneyByCurrency(db: Queryable): Promise<MoneyAmount[]> {
  db = withTypedErrors(db);
  const rows = await db.query<{ source: MoneyAmount['source']; currency: string | null; users: number; seats: number; recurring_seats: number; mrr: string; sales: number; sales_minor: string }>(
    `WITH since AS (SELECT pg_catalog.now() - interval '30 days' AS t),
     stripe AS (
       SELECT 'stripe'::text AS source, pg_catalog.upper(s.currency) AS currency,
              (count(*) FILTER (WHERE s.quantity > 0))::integer AS users,
              COALESCE(sum(s.quantity), 0)::integer AS seats,
              COALESCE(sum(s.quantity) FILTER (WHERE s.unit_amount IS NOT NULL), 0)::integer AS recurring_seats,
              COALESCE(sum(s.unit_amount::numeric * s.quantity
                           * CASE s.price_interval WHEN 'month' THEN 1 WHEN 'year' THEN 1 / 12.0
                                                   WHEN 'week' THEN 52 / 12.0 WHEN 'day' THEN 365 / 12.0 END
                           / s.price_interval_count), 0) AS mrr,
              0 AS sales, 0::numeric AS sales_minor
         FROM public.user_subscriptions AS s
        WHERE s.stripe_subscription_id IS NOT NULL AND s.status IN ('active', 'past_due')
        GROUP BY 2),
     figma AS (
       SELECT 'figma'::text, pg_catalog.upper(l.currency),
              count(*)::integer, count(*)::integer,
              (count(*) FILTER (WHERE l.price_interval IS NOT NULL))::integer,
              COALESCE(sum(l.price_minor * CASE l.price_interval WHEN 'month' THEN 1 WHEN 'year' THEN 1 / 12.0 END), 0),
              (count(*) FILTER (WHERE l.price_minor IS NOT NULL AND l.price_interval IS NULL AND f.date_of_purchase >= (SELECT t FROM since)))::integer,
              COALESCE(sum(l.price_minor) FILTER (WHERE l.price_interval IS NULL AND f.date_of_purchase >= (SELECT t FROM since)), 0)
         FROM public.figma_users AS f
         LEFT JOIN public.figma_plan_links AS l ON l.link = 'PAID'
        WHERE f.payment_status = 'PAID' AND f.user_id IS NOT NULL
        GROUP BY 2),
     stores AS (
       SELECT k.provider::text, pg_catalog.upper(k.currency),
              (count(DISTINCT k.user_id) FILTER (WHERE k.status = 'active'))::integer,
              COALESCE(sum(k.quantity) FILTER (WHERE k.status = 'active'), 0)::integer,
              COALESCE(sum(k.quantity) FILTER (WHERE k.status = 'active' AND k.per_month_num IS NOT NULL AND k.billing), 0)::integer,
              COALESCE(sum(k.price_minor::numeric * k.per_month_num / k.per_month_den)
                         FILTER (WHERE k.status = 'active' AND k.per_month_num IS NOT NULL AND k.billing), 0),
              (count(*) FILTER (WHERE k.price_minor IS NOT NULL AND k.per_month_num IS NULL AND k.sold_at >= (SELECT t FROM since) AND k.is_sale))::integer,
              COALESCE(sum(k.price_minor) FILTER (WHERE k.price_minor IS NOT NULL AND k.per_month_num IS NULL AND k.sold_at >= (SELECT t FROM since) AND k.is_sale), 0)
         -- OFFSET 0: each license's amount is computed once, not once per aggregate that reads it.
         FROM (${PRICED_LICENSES} OFFSET 0) AS k
        WHERE k.status = 'active' OR k.sold_at >= (SELECT t FROM since)
        GROUP BY 1, 2)
     SELECT x.source, x.currency, x.users, x.seats, x.recurring_seats,
            pg_catalog.round(x.mrr)::text AS mrr, x.sales, x.sales_minor::text AS sales_minor
       FROM (SELECT * FROM stripe UNION ALL SELECT * FROM figma UNION ALL SELECT * FROM stores) AS x (source, currency, users, seats, recurring_seats, mrr, sales, sales_minor)
      WHERE x.users > 0 OR x.sales > 0
      ORDER BY pg_catalog.array_position(ARRAY['stripe', 'figma', 'lemonsqueezy', 'gumroad'], x.source), x.currency NULLS LAST`,
    [],
  );
  return rows.map((r) => {
    const mrr = Number(r.mrr);
    return {
      source: r.source, currency: r.currency, payingUsers: r.users, seats: r.seats, recurringSeats: r.recurring_seats,
      mrrMinor: mrr, mrrPerSeatMinor: r.recurring_seats > 0 ? Math.round(mrr / r.recurring_seats) : null,
      sales30d: r.sales, sales30dMinor: Number(r.sales_minor),
    };
  });
}

// ---- export ----

/**
 * One CSV cell: quoted when it holds a comma, a quote or a line break; and a cell that a
 * spreadsheet would read as a formula (starting with =, +, -, @, a tab or a carriage return)
 * gets a leading apostrophe, so it is shown as text, never evaluated.
 */
export function csvCell(value: unknown): string {
  let text = value === null || value === undefined ? '' : value instanceof Date ? value.toISOString() : typeof value === 'object' ? JSON.stringify(value) : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(head: string[], rows: unknown[][]): string {
  return [head, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}
