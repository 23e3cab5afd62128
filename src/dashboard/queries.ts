// What the dashboard shows, read from the database. Every query reads a rollup
// (usage_daily_totals through usage_report, daily_usage_summary, user_plan_history) or an index
// (sql/014_dashboard.sql): none of them scans plugin_usage, so the page's cost follows the number
// of days, users and denials shown, not the size of the log. Dates come back as text, so a pool
// without this package's DATE parser reads the same values. Definitions: docs/dashboard.md.
import type { Queryable } from '../core/db.ts';
import { fromDatabaseError, NotFoundError, PluginAuthError, ValidationError, type ErrorCode } from '../core/errors.ts';

/** The date ranges the page offers, in UTC days up to today (included). */
export const RANGES = [7, 30, 90] as const;
export type RangeDays = (typeof RANGES)[number];

export interface Range {
  days: RangeDays;
  /** First and last UTC day, 'YYYY-MM-DD'. */
  from: string;
  to: string;
  /** Every day of the range, oldest first. */
  dates: string[];
  /** The database's clock when the page was read. */
  now: Date;
}

export interface CallsDay {
  date: string;
  action: string;
  allowed: number;
  denied: number;
}

export interface UsersDay {
  date: string;
  /** Users with a counter row (an allowed call) or a denied call that day. */
  active: number;
  /** Users created that day (users.created_at). */
  newUsers: number;
  /** Users with at least one limit_reached denial that day. */
  hitLimit: number;
}

export interface Funnel {
  withinDays: number;
  /** Users whose first limit_reached denial in the range is at hand. */
  hitLimit: number;
  /** Of those: moved to a plan with a higher price, granting access, within N days after it. */
  upgraded: number;
  /** Of those upgraded: on a paid plan that grants access now. */
  stillPaying: number;
}

export interface PlanDay {
  date: string;
  /** Users per plan at the end of the day (now, for today). */
  users: Record<string, number>;
  /** Paying subscriptions per plan (status active or past_due, granting access). */
  paying: Record<string, number>;
}

export interface PlanInfo {
  slug: string;
  name: string;
  /** Cents per month. */
  priceMonthly: number;
}

export interface DeviceBucket {
  /** 1, 2, 3, 4 or 5 (5 = five or more). */
  count: number;
  /** Users with that many distinct devices among their live tokens. */
  byDevices: number;
  /** Users with that many live tokens. */
  byTokens: number;
}

export interface SharingSuspect {
  userId: string;
  email: string;
  devices: number;
  tokens: number;
  deviceNames: string[];
}

export interface TopUser {
  userId: string;
  email: string;
  planSlug: string;
  /** Counted operations in the range: sum of daily_usage_summary.count (allowed minus refunded). */
  used: number;
  /** Denied calls in the range. */
  denied: number;
  calls: number;
}

export interface Overview {
  range: Range;
  calls: CallsDay[];
  actions: string[];
  users: UsersDay[];
  funnel: Funnel;
  plans: PlanInfo[];
  planMix: PlanDay[];
  devices: DeviceBucket[];
  liveTokens: number;
  usersWithTokens: number;
  sharing: SharingSuspect[];
  sharingThreshold: number;
  topUsers: TopUser[];
}

export interface OverviewOptions {
  days?: number;
  /** Funnel window: upgraded within this many days of the first denial (1 to 90, default 7). */
  withinDays?: number;
  /** Distinct devices from which a user counts as possibly sharing (2 to 100, default 3). */
  sharingThreshold?: number;
  /** Rows in the top-users table (1 to 100, default 10). */
  topUsers?: number;
}

async function run<R>(db: Queryable, text: string, params: unknown[]): Promise<R[]> {
  try {
    return await db.query<R>(text, params);
  } catch (error) {
    throw error instanceof PluginAuthError ? error : fromDatabaseError(error);
  }
}

function integerIn(value: unknown, min: number, max: number, code: ErrorCode, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(code, `${code}: ${what} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

export function checkDays(days: unknown): RangeDays {
  if (!RANGES.includes(days as RangeDays)) {
    throw new ValidationError('invalid_days', `invalid_days: days must be one of ${RANGES.join(', ')}`);
  }
  return days as RangeDays;
}

const addDays = (date: string, n: number) => new Date(Date.parse(`${date}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
const startOf = (date: string) => `${date}T00:00:00Z`;

/** The range, on the database's clock (UTC days). */
export async function readRange(db: Queryable, days: RangeDays): Promise<Range> {
  const [row] = await run<{ today: string; now: Date }>(db, `SELECT ((pg_catalog.now() AT TIME ZONE 'UTC')::date)::text AS today, pg_catalog.now() AS now`, []);
  const to = row!.today;
  const from = addDays(to, -(days - 1));
  const dates = Array.from({ length: days }, (_, i) => addDays(from, i));
  return { days, from, to, dates, now: new Date(row!.now) };
}

/** Calls per UTC day and action, allowed and denied: public.usage_report (the rollup of sql/011). */
export async function readCalls(db: Queryable, range: Range): Promise<CallsDay[]> {
  const rows = await run<{ usage_date: string; action: string; allowed: number; denied: number }>(
    db,
    'SELECT r.usage_date::text AS usage_date, r.action, r.allowed, r.denied FROM public.usage_report($1::integer) AS r',
    [range.days],
  );
  return rows.map((r) => ({ date: r.usage_date, action: r.action, allowed: Number(r.allowed), denied: Number(r.denied) }));
}

/** Active, new and limited users per day. Counters by idx_daily_usage_summary_usage_date,
 * denials by idx_plugin_usage_denied_created_at, new users by idx_users_created_at. */
export async function readUsersPerDay(db: Queryable, range: Range): Promise<UsersDay[]> {
  const rows = await run<{ day: string; active: number; new_users: number; hit_limit: number }>(
    db,
    `WITH counted AS (
       SELECT d.usage_date AS day, d.user_id
         FROM public.daily_usage_summary AS d
        WHERE d.usage_date >= $1::date AND d.usage_date <= $2::date
     ), denied AS (
       SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, u.user_id, u.reason
         FROM public.plugin_usage AS u
        WHERE NOT u.allowed AND u.created_at >= $3::timestamptz AND u.created_at < $4::timestamptz
     ), active AS (
       -- UNION (distinct pairs, hashed), then a plain count: cheaper than count(DISTINCT), which sorts.
       SELECT x.day, count(*)::integer AS n
         FROM (SELECT c.day, c.user_id FROM counted AS c UNION SELECT e.day, e.user_id FROM denied AS e) AS x
        GROUP BY x.day
     ), limited AS (
       SELECT y.day, count(*)::integer AS n
         FROM (SELECT DISTINCT e.day, e.user_id FROM denied AS e WHERE e.reason = 'limit_reached') AS y
        GROUP BY y.day
     ), fresh AS (
       SELECT (w.created_at AT TIME ZONE 'UTC')::date AS day, count(*)::integer AS n
         FROM public.users AS w
        WHERE w.created_at >= $3::timestamptz AND w.created_at < $4::timestamptz
        GROUP BY 1
     )
     SELECT g.day::date::text AS day, COALESCE(a.n, 0) AS active, COALESCE(f.n, 0) AS new_users, COALESCE(l.n, 0) AS hit_limit
       FROM pg_catalog.generate_series($1::date::timestamp, $2::date::timestamp, interval '1 day') AS g(day)
       LEFT JOIN active AS a ON a.day = g.day::date
       LEFT JOIN fresh AS f ON f.day = g.day::date
       LEFT JOIN limited AS l ON l.day = g.day::date
      ORDER BY 1`,
    [range.from, range.to, startOf(range.from), startOf(addDays(range.to, 1))],
  );
  return rows.map((r) => ({ date: r.day, active: r.active, newUsers: r.new_users, hitLimit: r.hit_limit }));
}

/**
 * The funnel: users whose first limit_reached denial in the range was at t; of those, who moved
 * within N days after t (user_plan_history) to a plan that grants access and costs more than the
 * plan the denial was logged under; of those, who is on a paid plan granting access now.
 */
export async function readFunnel(db: Queryable, range: Range, withinDays: number): Promise<Funnel> {
  const [row] = await run<{ hit: number; upgraded: number; still_paying: number }>(
    db,
    `WITH firsts AS (
       SELECT DISTINCT ON (u.user_id) u.user_id, u.created_at AS hit_at, u.plan_slug
         FROM public.plugin_usage AS u
        WHERE NOT u.allowed AND u.reason = 'limit_reached'
          AND u.created_at >= $1::timestamptz AND u.created_at < $2::timestamptz
        ORDER BY u.user_id, u.created_at
     ), upgraded AS (
       SELECT f.user_id
         FROM firsts AS f
         LEFT JOIN public.subscription_plans AS was ON was.plan_slug = f.plan_slug
        WHERE EXISTS (
          SELECT 1
            FROM public.user_plan_history AS h
            JOIN public.subscription_plans AS p ON p.id = h.plan_id
           WHERE h.user_id = f.user_id
             AND h.changed_at > f.hit_at
             AND h.changed_at <= f.hit_at + pg_catalog.make_interval(days => $3::integer)
             AND h.grants_access
             AND COALESCE(p.price_monthly, 0) > COALESCE(was.price_monthly, 0))
     )
     SELECT (SELECT count(*) FROM firsts)::integer AS hit,
            (SELECT count(*) FROM upgraded)::integer AS upgraded,
            (SELECT count(*)
               FROM upgraded AS g
               JOIN public.user_subscriptions AS s ON s.user_id = g.user_id
               JOIN public.subscription_plans AS p ON p.id = s.plan_id
              WHERE COALESCE(p.price_monthly, 0) > 0
                AND public.subscription_grants_access(s.status, s.current_period_end, pg_catalog.now()))::integer AS still_paying`,
    [startOf(range.from), startOf(addDays(range.to, 1)), withinDays],
  );
  return { withinDays, hitLimit: row!.hit, upgraded: row!.upgraded, stillPaying: row!.still_paying };
}

export async function readPlans(db: Queryable): Promise<PlanInfo[]> {
  const rows = await run<{ plan_slug: string; name: string; price_monthly: number | null }>(
    db,
    `SELECT p.plan_slug, p.name, p.price_monthly FROM public.subscription_plans AS p
      ORDER BY COALESCE(p.price_monthly, 0), p.plan_slug`,
    [],
  );
  return rows.map((r) => ({ slug: r.plan_slug, name: r.name, priceMonthly: r.price_monthly ?? 0 }));
}

/**
 * Users per plan at the end of each day, from user_plan_history: each history row that grants
 * access is an interval [changed_at, next change of that user), cut at current_period_end for
 * past_due and manual rows (where subscription_grants_access ends access). The SQL returns the
 * count at the end of the first day (day NULL) and the change on each later day; the running sum
 * is taken here. Users without a granting interval are on free.
 */
export async function readPlanMix(db: Queryable, range: Range, plans: PlanInfo[], newUsers: UsersDay[]): Promise<PlanDay[]> {
  const firstEnd = startOf(addDays(range.from, 1));
  const deltas = await run<{ day: string | null; plan_slug: string; paying: boolean; delta: number }>(
    db,
    `WITH h AS (
       SELECT h.plan_id, h.status, h.grants_access, h.current_period_end, h.changed_at AS start_at,
              lead(h.changed_at) OVER (PARTITION BY h.user_id ORDER BY h.changed_at, h.id) AS next_at
         FROM public.user_plan_history AS h
     ), iv AS (
       SELECT h.plan_id, h.status IN ('active', 'past_due') AS paying, h.start_at,
              LEAST(COALESCE(h.next_at, 'infinity'::timestamptz),
                    CASE WHEN h.status IN ('past_due', 'manual') AND h.current_period_end IS NOT NULL
                         THEN h.current_period_end ELSE 'infinity'::timestamptz END) AS end_at
         FROM h
        WHERE h.grants_access
     ), ev AS (
       SELECT iv.plan_id, iv.paying, iv.start_at AS at, 1 AS delta FROM iv WHERE iv.end_at > iv.start_at
       UNION ALL
       SELECT iv.plan_id, iv.paying, iv.end_at, -1 FROM iv
        WHERE iv.end_at > iv.start_at AND iv.end_at < 'infinity'::timestamptz
     )
     SELECT CASE WHEN ev.at <= $1::timestamptz THEN NULL
                 ELSE ((ev.at - interval '1 microsecond') AT TIME ZONE 'UTC')::date::text END AS day,
            p.plan_slug, ev.paying, sum(ev.delta)::integer AS delta
       FROM ev
       JOIN public.subscription_plans AS p ON p.id = ev.plan_id
      WHERE ev.at <= pg_catalog.now()
      GROUP BY 1, 2, 3`,
    [firstEnd],
  );
  const [base] = await run<{ n: number }>(
    db,
    // Two counts rather than one OR: each is an index-only scan of idx_users_created_at.
    `SELECT ((SELECT count(*) FROM public.users AS w WHERE w.created_at < $1::timestamptz)
           + (SELECT count(*) FROM public.users AS w WHERE w.created_at IS NULL))::integer AS n`,
    [startOf(range.from)],
  );
  const slugs = plans.map((p) => p.slug);
  const users = Object.fromEntries(slugs.map((s) => [s, 0])) as Record<string, number>;
  const paying = Object.fromEntries(slugs.map((s) => [s, 0])) as Record<string, number>;
  const byDay = new Map<string, typeof deltas>();
  for (const d of deltas) {
    if (d.day === null) {
      users[d.plan_slug] = (users[d.plan_slug] ?? 0) + d.delta;
      if (d.paying) paying[d.plan_slug] = (paying[d.plan_slug] ?? 0) + d.delta;
    } else {
      byDay.set(d.day, [...(byDay.get(d.day) ?? []), d]);
    }
  }
  let total = base!.n;
  const fresh = new Map(newUsers.map((u) => [u.date, u.newUsers]));
  return range.dates.map((date, i) => {
    if (i > 0) {
      for (const d of byDay.get(date) ?? []) {
        users[d.plan_slug] = (users[d.plan_slug] ?? 0) + d.delta;
        if (d.paying) paying[d.plan_slug] = (paying[d.plan_slug] ?? 0) + d.delta;
      }
    }
    total += fresh.get(date) ?? 0;
    const granted = Object.entries(users).filter(([slug]) => slug !== 'free').reduce((sum, [, n]) => sum + n, 0);
    return { date, users: { ...users, free: Math.max(total - granted, 0) }, paying: { ...paying } };
  });
}

/** Live tokens (not revoked, not expired) per user: idx_plugin_tokens_live, index only. */
export async function readDevices(db: Queryable, threshold: number): Promise<{ buckets: DeviceBucket[]; liveTokens: number; usersWithTokens: number; sharing: SharingSuspect[] }> {
  const rows = await run<{ bucket: number; by_devices: number; by_tokens: number }>(
    db,
    `WITH per AS (
       SELECT t.user_id, count(*)::integer AS tokens, count(DISTINCT COALESCE(t.device_name, ''))::integer AS devices
         FROM public.plugin_tokens AS t
        WHERE t.revoked_at IS NULL AND t.expires_at > pg_catalog.now()
        GROUP BY t.user_id
     )
     SELECT b.bucket,
            (SELECT count(*) FROM per WHERE LEAST(per.devices, 5) = b.bucket)::integer AS by_devices,
            (SELECT count(*) FROM per WHERE LEAST(per.tokens, 5) = b.bucket)::integer AS by_tokens
       FROM pg_catalog.generate_series(1, 5) AS b(bucket)
      ORDER BY b.bucket`,
    [],
  );
  const [totals] = await run<{ tokens: number; users: number }>(
    db,
    `SELECT count(*)::integer AS tokens, count(DISTINCT t.user_id)::integer AS users
       FROM public.plugin_tokens AS t WHERE t.revoked_at IS NULL AND t.expires_at > pg_catalog.now()`,
    [],
  );
  const sharing = await run<{ user_id: string; email: string; devices: number; tokens: number; names: string[] }>(
    db,
    `WITH per AS (
       SELECT t.user_id, count(*)::integer AS tokens, count(DISTINCT COALESCE(t.device_name, ''))::integer AS devices,
              array_agg(DISTINCT COALESCE(t.device_name, '(unnamed)') ORDER BY COALESCE(t.device_name, '(unnamed)')) AS names
         FROM public.plugin_tokens AS t
        WHERE t.revoked_at IS NULL AND t.expires_at > pg_catalog.now()
        GROUP BY t.user_id
     )
     SELECT per.user_id, w.email, per.devices, per.tokens, per.names
       FROM per JOIN public.users AS w ON w.id = per.user_id
      WHERE per.devices >= $1::integer
      ORDER BY per.devices DESC, per.tokens DESC, w.email
      LIMIT 50`,
    [threshold],
  );
  return {
    buckets: rows.map((r) => ({ count: r.bucket, byDevices: r.by_devices, byTokens: r.by_tokens })),
    liveTokens: totals!.tokens,
    usersWithTokens: totals!.users,
    sharing: sharing.map((s) => ({ userId: s.user_id, email: s.email, devices: s.devices, tokens: s.tokens, deviceNames: s.names })),
  };
}

/** Users with the most calls in the range: counted operations plus denied calls. */
export async function readTopUsers(db: Queryable, range: Range, limit: number): Promise<TopUser[]> {
  const rows = await run<{ user_id: string; email: string; plan_slug: string; used: number; denied: number }>(
    db,
    `WITH c AS (
       SELECT d.user_id, sum(d.count)::bigint AS used
         FROM public.daily_usage_summary AS d
        WHERE d.usage_date >= $1::date AND d.usage_date <= $2::date
        GROUP BY d.user_id
     ), x AS (
       SELECT u.user_id, count(*)::bigint AS denied
         FROM public.plugin_usage AS u
        WHERE NOT u.allowed AND u.created_at >= $3::timestamptz AND u.created_at < $4::timestamptz
        GROUP BY u.user_id
     ), top AS (
       SELECT COALESCE(c.user_id, x.user_id) AS user_id, COALESCE(c.used, 0) AS used, COALESCE(x.denied, 0) AS denied
         FROM c FULL JOIN x ON x.user_id = c.user_id
        ORDER BY COALESCE(c.used, 0) + COALESCE(x.denied, 0) DESC, 1
        LIMIT $5::integer
     )
     SELECT top.user_id, w.email, COALESCE(p.plan_slug, 'free') AS plan_slug, top.used::integer AS used, top.denied::integer AS denied
       FROM top
       JOIN public.users AS w ON w.id = top.user_id
       LEFT JOIN public.user_subscriptions AS s ON s.user_id = top.user_id
            AND public.subscription_grants_access(s.status, s.current_period_end, pg_catalog.now())
       LEFT JOIN public.subscription_plans AS p ON p.id = s.plan_id
      ORDER BY top.used + top.denied DESC, top.user_id`,
    [range.from, range.to, startOf(range.from), startOf(addDays(range.to, 1)), limit],
  );
  return rows.map((r) => ({ userId: r.user_id, email: r.email, planSlug: r.plan_slug, used: r.used, denied: r.denied, calls: r.used + r.denied }));
}

/** Everything the overview page shows. */
export async function readOverview(db: Queryable, options: OverviewOptions = {}): Promise<Overview> {
  const days = checkDays(options.days ?? 30);
  const withinDays = integerIn(options.withinDays ?? 7, 1, 90, 'invalid_within', 'within (days)');
  const sharingThreshold = integerIn(options.sharingThreshold ?? 3, 2, 100, 'invalid_threshold', 'the sharing threshold');
  const topLimit = integerIn(options.topUsers ?? 10, 1, 100, 'invalid_limit', 'the number of top users');
  const range = await readRange(db, days);
  const calls = await readCalls(db, range);
  const users = await readUsersPerDay(db, range);
  const funnel = await readFunnel(db, range, withinDays);
  const plans = await readPlans(db);
  const planMix = await readPlanMix(db, range, plans, users);
  const devices = await readDevices(db, sharingThreshold);
  const topUsers = await readTopUsers(db, range, topLimit);
  return {
    range,
    calls,
    actions: [...new Set(calls.map((c) => c.action))].sort(),
    users,
    funnel,
    plans,
    planMix,
    devices: devices.buckets,
    liveTokens: devices.liveTokens,
    usersWithTokens: devices.usersWithTokens,
    sharing: devices.sharing,
    sharingThreshold,
    topUsers,
  };
}

// ---- one user ----

export interface UserView {
  range: Range;
  user: { id: string; email: string; name: string | null; createdAt: Date | null };
  planNow: { slug: string; status: string | null; source: string };
  usage: { date: string; action: string; used: number; allowed: number; denied: number; refunded: number }[];
  history: { changedAt: Date; planSlug: string | null; status: string | null; currentPeriodEnd: Date | null; grantsAccess: boolean; source: string }[];
  tokens: { tokenId: string; deviceName: string | null; status: 'active' | 'revoked' | 'expired'; createdAt: Date; expiresAt: Date; lastUsedAt: Date | null; revokedAt: Date | null; revokedReason: string | null }[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function checkUuid(value: string, code: ErrorCode, what: string): string {
  if (!UUID.test(value)) throw new ValidationError(code, `${code}: ${what} must be a uuid`);
  return value.toLowerCase();
}

export async function readUserView(db: Queryable, userId: string, days: RangeDays): Promise<UserView> {
  const id = checkUuid(userId, 'invalid_user_id', 'the user id');
  const range = await readRange(db, checkDays(days));
  const [user] = await run<{ id: string; email: string; name: string | null; created_at: Date | null }>(
    db,
    'SELECT w.id, w.email, w.name, w.created_at FROM public.users AS w WHERE w.id = $1::uuid',
    [id],
  );
  if (!user) throw new NotFoundError('unknown_user', `unknown_user: no user with id ${id}`);
  const [plan] = await run<{ plan_slug: string; status: string | null; source: string }>(
    db,
    `SELECT COALESCE(p.plan_slug, 'free') AS plan_slug, s.status,
            CASE WHEN p.plan_slug IS NULL THEN 'free' WHEN s.stripe_subscription_id IS NOT NULL THEN 'stripe'
                 WHEN s.status = 'manual' THEN 'manual' ELSE 'subscription' END AS source
       FROM public.users AS w
       LEFT JOIN public.user_subscriptions AS s ON s.user_id = w.id
       LEFT JOIN public.subscription_plans AS p ON p.id = s.plan_id
            AND public.subscription_grants_access(s.status, s.current_period_end, pg_catalog.now())
      WHERE w.id = $1::uuid`,
    [id],
  );
  const usage = await run<{ usage_date: string; action: string; used: number; allowed: number; denied: number; refunded: number }>(
    db,
    'SELECT s.usage_date::text AS usage_date, s.action, s.used, s.allowed, s.denied, s.refunded FROM public.usage_summary($1::uuid, $2::date, $3::date) AS s',
    [id, range.from, range.to],
  );
  const history = await run<{ changed_at: Date; plan_slug: string | null; status: string | null; current_period_end: Date | null; grants_access: boolean; source: string }>(
    db,
    `SELECT h.changed_at, p.plan_slug, h.status, h.current_period_end, h.grants_access, h.source
       FROM public.user_plan_history AS h
       LEFT JOIN public.subscription_plans AS p ON p.id = h.plan_id
      WHERE h.user_id = $1::uuid
      ORDER BY h.changed_at DESC, h.id DESC
      LIMIT 100`,
    [id],
  );
  const tokens = await run<{ id: string; device_name: string | null; status: 'active' | 'revoked' | 'expired'; created_at: Date; expires_at: Date; last_used_at: Date | null; revoked_at: Date | null; revoked_reason: string | null }>(
    db,
    'SELECT t.id, t.device_name, t.status, t.created_at, t.expires_at, t.last_used_at, t.revoked_at, t.revoked_reason FROM public.list_plugin_tokens($1::uuid) AS t',
    [id],
  );
  return {
    range,
    user: { id: user.id, email: user.email, name: user.name, createdAt: user.created_at },
    planNow: { slug: plan!.plan_slug, status: plan!.status, source: plan!.source },
    usage: usage.map((u) => ({ date: u.usage_date, action: u.action, used: u.used, allowed: u.allowed, denied: u.denied, refunded: u.refunded })),
    history: history.map((h) => ({ changedAt: h.changed_at, planSlug: h.plan_slug, status: h.status, currentPeriodEnd: h.current_period_end, grantsAccess: h.grants_access, source: h.source })),
    tokens: tokens.map((t) => ({ tokenId: t.id, deviceName: t.device_name, status: t.status, createdAt: t.created_at, expiresAt: t.expires_at, lastUsedAt: t.last_used_at, revokedAt: t.revoked_at, revokedReason: t.revoked_reason })),
  };
}

/** Revokes one token of this user; false when it was not live. */
export async function revokeUserToken(db: Queryable, userId: string, tokenId: string): Promise<boolean> {
  const uid = checkUuid(userId, 'invalid_user_id', 'the user id');
  const tid = checkUuid(tokenId, 'invalid_token_id', 'the token id');
  const owner = await run<{ user_id: string }>(db, 'SELECT t.user_id FROM public.plugin_tokens AS t WHERE t.id = $1::uuid', [tid]);
  if (owner[0]?.user_id !== uid) throw new NotFoundError('token_not_found', 'token_not_found: this user has no token with that id');
  const [row] = await run<{ revoked: boolean }>(db, 'SELECT public.revoke_plugin_token($1::uuid, $2::varchar) AS revoked', [tid, 'revoked_from_dashboard']);
  return row!.revoked;
}
