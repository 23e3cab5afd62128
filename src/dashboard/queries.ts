// What the dashboard shows, read from the database. Every query reads a rollup or an index:
// usage_daily_totals (through usage_report, sql/011), the per-user rollups of sql/019 for the days
// that are frozen (usage_daily_users, usage_user_windows, usage_user_days), and for the days still
// open (today) daily_usage_summary, usage_user_days and the calls not rolled up yet, by their
// indexes; user_plan_history for plans. None of them scans plugin_usage, and the per-user figures
// (top users, hit the limit) read one window row per user instead of every user-day, so the
// page's cost follows today's activity and the number of users, not the size of the log. Each
// query is one statement: the frozen part and the open part are read in one snapshot. Dates come
// back as text, so a pool without this package's DATE parser reads the same values. Definitions:
// docs/dashboard.md.
import { withTypedErrors, type Queryable } from '../core/db.ts';
import { NotFoundError, ValidationError, type ErrorCode } from '../core/errors.ts';

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
  db = withTypedErrors(db);
  const [row] = await db.query<{ today: string; now: Date }>(`SELECT ((pg_catalog.now() AT TIME ZONE 'UTC')::date)::text AS today, pg_catalog.now() AS now`, []);
  const to = row!.today;
  const from = addDays(to, -(days - 1));
  const dates = Array.from({ length: days }, (_, i) => addDays(from, i));
  return { days, from, to, dates, now: new Date(row!.now) };
}

/** Calls per UTC day and action, allowed and denied: public.usage_report (the rollup of sql/011). */
export async function readCalls(db: Queryable, range: Range): Promise<CallsDay[]> {
  db = withTypedErrors(db);
  const rows = await db.query<{ usage_date: string; action: string; allowed: number; denied: number }>(
    'SELECT r.usage_date::text AS usage_date, r.action, r.allowed, r.denied FROM public.usage_report($1::integer) AS r',
    [range.days],
  );
  return rows.map((r) => ({ date: r.usage_date, action: r.action, allowed: Number(r.allowed), denied: Number(r.denied) }));
}

/**
 * The rollup state, as CTEs for one statement: `st.frozen_to`, the first UTC day not frozen by
 * sql/019 ('-infinity': none frozen), and `st.mark`, the rollup's watermark (calls at or after it
 * are not rolled up yet). Every query reads it in its own snapshot, so a rollup that commits in
 * between is seen entirely or not at all.
 */
const STATE = `st AS MATERIALIZED (
       SELECT COALESCE((SELECT f.frozen_to FROM public.usage_user_rollup_state AS f WHERE f.id), '-infinity'::date) AS frozen_to,
              COALESCE((SELECT s.rolled_up_to FROM public.usage_rollup_state AS s WHERE s.id), '-infinity'::timestamptz) AS mark
     )`;

/** The windows kept per user by sql/019 (usage_user_windows.days): the ranges the page offers. */
const windowDays = (range: Range): number => range.days;

/**
 * Active, new and limited users per day. Frozen days: usage_daily_users. Days from frozen_to on:
 * distinct users over the counters (idx_daily_usage_summary_usage_date), the rolled-up denials
 * (usage_user_days) and the denials not rolled up yet (idx_plugin_usage_denied_created_at).
 * New users by idx_users_created_at.
 */
export async function readUsersPerDay(db: Queryable, range: Range): Promise<UsersDay[]> {
  db = withTypedErrors(db);
  const rows = await db.query<{ day: string; active: number; new_users: number; hit_limit: number }>(
    `WITH ${STATE}, frozen AS (
       SELECT u.usage_date AS day, u.active, u.hit_limit
         FROM public.usage_daily_users AS u
        WHERE u.usage_date >= $1::date AND u.usage_date < (SELECT st.frozen_to FROM st)
     ), pairs AS (
       SELECT d.usage_date AS day, d.user_id, false AS limited
         FROM public.daily_usage_summary AS d
        WHERE d.usage_date >= (SELECT GREATEST(st.frozen_to, $1::date) FROM st) AND d.usage_date <= $2::date
       UNION ALL
       SELECT r.usage_date, r.user_id, r.limit_reached > 0
         FROM public.usage_user_days AS r
        WHERE r.usage_date >= (SELECT GREATEST(st.frozen_to, $1::date) FROM st) AND r.usage_date <= $2::date
       UNION ALL
       SELECT (p.created_at AT TIME ZONE 'UTC')::date, p.user_id, p.reason = 'limit_reached'
         FROM public.plugin_usage AS p
        WHERE NOT p.allowed AND p.created_at >= (SELECT GREATEST(st.mark, $3::timestamptz) FROM st)
          AND p.created_at < $4::timestamptz
     ), live AS (
       SELECT x.day, count(*)::integer AS active, (count(*) FILTER (WHERE x.limited))::integer AS hit_limit
         FROM (SELECT q.day, q.user_id, bool_or(q.limited) AS limited FROM pairs AS q GROUP BY q.day, q.user_id) AS x
        GROUP BY x.day
     ), fresh AS (
       SELECT (w.created_at AT TIME ZONE 'UTC')::date AS day, count(*)::integer AS n
         FROM public.users AS w
        WHERE w.created_at >= $3::timestamptz AND w.created_at < $4::timestamptz
        GROUP BY 1
     )
     SELECT g.day::date::text AS day, COALESCE(a.active, 0) AS active, COALESCE(f.n, 0) AS new_users, COALESCE(a.hit_limit, 0) AS hit_limit
       FROM pg_catalog.generate_series($1::date::timestamp, $2::date::timestamp, interval '1 day') AS g(day)
       LEFT JOIN (SELECT * FROM frozen UNION ALL SELECT * FROM live) AS a ON a.day = g.day::date
       LEFT JOIN fresh AS f ON f.day = g.day::date
      ORDER BY 1`,
    [range.from, range.to, startOf(range.from), startOf(addDays(range.to, 1))],
  );
  return rows.map((r) => ({ date: r.day, active: r.active, newUsers: r.new_users, hitLimit: r.hit_limit }));
}

/**
 * Per-user sums over the range, as CTEs: the user's window row (usage_user_windows, the frozen
 * days of the last N days), minus `corr`, the frozen days of the window before the range (only
 * when frozen_to is behind today: the first minutes after midnight, or a rollup that has not run
 * for days), plus `live`, the days from frozen_to on. `touched` are the users whose window row
 * alone does not give the range (`exact` has their figures); every other user's figures are
 * their window row's. Sums are of integers (a bigint sum keeps a numeric per group).
 * $1 from, $2 to, $3 and $4 their timestamps, $5 the window (days).
 */
const RANGE_SUMS = `${STATE}, corr AS (
       SELECT r.user_id, -sum(r.used) AS used, -sum(r.denied) AS denied, -count(*) AS days
         FROM public.usage_user_days AS r
        WHERE r.usage_date >= (SELECT st.frozen_to - $5::integer + 1 FROM st)
          AND r.usage_date < (SELECT LEAST(st.frozen_to, $1::date) FROM st)
        GROUP BY r.user_id
     ), live AS (
       SELECT d.user_id, d.count AS used, 0 AS denied
         FROM public.daily_usage_summary AS d
        WHERE d.usage_date >= (SELECT GREATEST(st.frozen_to, $1::date) FROM st) AND d.usage_date <= $2::date
       UNION ALL
       SELECT r.user_id, 0, r.denied
         FROM public.usage_user_days AS r
        WHERE r.usage_date >= (SELECT GREATEST(st.frozen_to, $1::date) FROM st) AND r.usage_date <= $2::date
          AND r.denied > 0
       UNION ALL
       SELECT p.user_id, 0, 1
         FROM public.plugin_usage AS p
        WHERE NOT p.allowed AND p.created_at >= (SELECT GREATEST(st.mark, $3::timestamptz) FROM st)
          AND p.created_at < $4::timestamptz
     ), touched AS (
       SELECT x.user_id, sum(x.used) AS used, sum(x.denied) AS denied, sum(x.days) AS days, bool_or(x.live) AS live
         FROM (SELECT c.user_id, c.used, c.denied, c.days, false AS live FROM corr AS c
               UNION ALL
               SELECT l.user_id, l.used, l.denied, 0, true FROM live AS l) AS x
        GROUP BY x.user_id
     ), exact AS (
       SELECT t.user_id, COALESCE(w.used, 0) + t.used AS used, COALESCE(w.denied, 0) + t.denied AS denied
         FROM touched AS t
         LEFT JOIN public.usage_user_windows AS w ON w.days = $5::integer AND w.user_id = t.user_id
        WHERE t.live OR COALESCE(w.active_days, 0) + t.days > 0
     )`;

/**
 * The funnel: users whose first limit_reached denial in the range was at t; of those, who moved
 * within N days after t (user_plan_history, any source) to a plan that grants access and costs
 * more than the plan the denial was logged under; of those, whose best plan in force now
 * (plugin_auth_grants) has a price.
 * "Hit the limit": the window's count of users with a limit day (usage_user_rollup_state, kept by
 * the freeze), corrected for the users with limit_reached denials on the days read live or on
 * frozen days of the window before the range. t is looked up only for users with a granting
 * history row in the range (idx_user_plan_history_changed_at): the window row's first limit day,
 * else the first one read live.
 */
export async function readFunnel(db: Queryable, range: Range, withinDays: number): Promise<Funnel> {
  db = withTypedErrors(db);
  const [row] = await db.query<{ hit: number; upgraded: number; still_paying: number }>(
    `WITH ${STATE}, limits AS (
       -- limit_reached days the window row does not hold as the range needs: -1 for a frozen day of
       -- the window before the range, +1 for a day read live (rolled up or not yet).
       -- A call's id breaks a tie of two calls in one microsecond, as the rollup's first_limit_plan does.
       SELECT r.user_id, -1 AS n, NULL::timestamptz AS hit_at, NULL::varchar AS plan_slug, NULL::bigint AS call_id
         FROM public.usage_user_days AS r
        WHERE r.usage_date >= (SELECT st.frozen_to - $5::integer + 1 FROM st)
          AND r.usage_date < (SELECT LEAST(st.frozen_to, $1::date) FROM st) AND r.limit_reached > 0
       UNION ALL
       SELECT r.user_id, 1, r.first_limit_at, r.first_limit_plan, NULL::bigint
         FROM public.usage_user_days AS r
        WHERE r.usage_date >= (SELECT GREATEST(st.frozen_to, $1::date) FROM st) AND r.usage_date <= $2::date
          AND r.limit_reached > 0
       UNION ALL
       SELECT p.user_id, 1, p.created_at, p.plan_slug, p.id
         FROM public.plugin_usage AS p
        WHERE NOT p.allowed AND p.reason = 'limit_reached'
          AND p.created_at >= (SELECT GREATEST(st.mark, $3::timestamptz) FROM st) AND p.created_at < $4::timestamptz
     ), touched AS (
       -- Per user: the correction, whether a day read live has one, and its first.
       SELECT l.user_id, sum(l.n) AS n, bool_or(l.n > 0) AS live,
              min(l.hit_at) AS live_at, (array_agg(l.plan_slug ORDER BY l.hit_at, l.call_id) FILTER (WHERE l.n > 0))[1] AS live_plan
         FROM limits AS l
        GROUP BY l.user_id
     ), hit AS (
       -- The window's count (kept by the freeze), less the touched users it holds, plus those of
       -- them who hit the limit in the range.
       SELECT COALESCE((SELECT CASE $5::integer WHEN 7 THEN f.limited_7 WHEN 30 THEN f.limited_30 ELSE f.limited_90 END
                          FROM public.usage_user_rollup_state AS f WHERE f.id AND f.frozen_to IS NOT NULL), 0)
            + (SELECT count(*) FILTER (WHERE t.live OR COALESCE(w.limit_days, 0) + t.n > 0)
                    - count(*) FILTER (WHERE w.limit_days > 0)
                 FROM touched AS t
                 LEFT JOIN public.usage_user_windows AS w ON w.days = $5::integer AND w.user_id = t.user_id) AS n
     ), candidates AS (
       SELECT DISTINCT h.user_id
         FROM public.user_plan_history AS h
        WHERE h.changed_at > $3::timestamptz AND h.changed_at <= pg_catalog.now() AND h.grants_access
     ), firsts AS (
       SELECT DISTINCT ON (x.user_id) x.user_id, x.hit_at, x.plan_slug
         FROM (
           -- The window's first limit day, when it is in the range.
           SELECT w.user_id, w.first_limit_at AS hit_at, w.first_limit_plan AS plan_slug
             FROM candidates AS c
             JOIN public.usage_user_windows AS w ON w.days = $5::integer AND w.user_id = c.user_id
            WHERE w.first_limit_at >= $3::timestamptz
           UNION ALL
           -- Users with a limit day of the window before the range: the first on the range's frozen days.
           SELECT t.user_id, f.first_limit_at, f.first_limit_plan
             FROM touched AS t
             JOIN candidates AS c ON c.user_id = t.user_id
            CROSS JOIN LATERAL (
              SELECT r.first_limit_at, r.first_limit_plan
                FROM public.usage_user_days AS r
               WHERE r.user_id = t.user_id AND r.usage_date >= $1::date AND r.usage_date < (SELECT st.frozen_to FROM st)
                 AND r.limit_reached > 0
               ORDER BY r.usage_date
               LIMIT 1) AS f
            WHERE t.n < 0
           UNION ALL
           -- The days read live.
           SELECT t.user_id, t.live_at, t.live_plan
             FROM touched AS t
             JOIN candidates AS c ON c.user_id = t.user_id
            WHERE t.live
         ) AS x
        ORDER BY x.user_id, x.hit_at
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
             AND h.changed_at <= f.hit_at + pg_catalog.make_interval(days => $6::integer)
             AND h.grants_access
             AND COALESCE(p.price_monthly, 0) > COALESCE(was.price_monthly, 0))
     )
     SELECT (SELECT hit.n FROM hit)::integer AS hit,
            (SELECT count(*) FROM upgraded)::integer AS upgraded,
            (SELECT count(*)
               FROM upgraded AS g
              CROSS JOIN LATERAL (SELECT b.plan_id FROM public.plugin_auth_grants(g.user_id, pg_catalog.now()) AS b WHERE b.rank = 1) AS best
               JOIN public.subscription_plans AS p ON p.id = best.plan_id
              WHERE COALESCE(p.price_monthly, 0) > 0)::integer AS still_paying`,
    [range.from, range.to, startOf(range.from), startOf(addDays(range.to, 1)), windowDays(range), withinDays],
  );
  return { withinDays, hitLimit: row!.hit, upgraded: row!.upgraded, stillPaying: row!.still_paying };
}

export async function readPlans(db: Queryable): Promise<PlanInfo[]> {
  db = withTypedErrors(db);
  const rows = await db.query<{ plan_slug: string; name: string; price_monthly: number | null }>(
    `SELECT p.plan_slug, p.name, p.price_monthly FROM public.subscription_plans AS p
      ORDER BY COALESCE(p.price_monthly, 0), p.plan_slug`,
    [],
  );
  return rows.map((r) => ({ slug: r.plan_slug, name: r.name, priceMonthly: r.price_monthly ?? 0 }));
}

/**
 * Users per plan at the end of each day, from user_plan_history. Each source is a stream of its
 * own (the subscription row: stripe, manual, subscription, deleted; figma; lemonsqueezy; gumroad;
 * seat), and each history row that grants access is an interval [changed_at, next row of the same
 * user and stream), cut where that source stops granting: current_period_end for past_due and
 * manual subscription rows (subscription_grants_access), for licenses, seats and Figma's FIRST_USE
 * trial, and for the latest Figma PAID / TRIAL row the figma_users row's grant_until now. A user
 * granted by several sources at once counts once, on the best plan (plugin_auth_grants' order:
 * price, resizes, batch, source precedence); paying (MRR) counts subscription rows with status
 * active or past_due only, the one source whose price is this package's price_monthly. The SQL
 * returns the count at the end of the first day (day NULL) and the change on each later day; the
 * running sum is taken here. Users without a granting interval are on free.
 */
export async function readPlanMix(db: Queryable, range: Range, plans: PlanInfo[], newUsers: UsersDay[]): Promise<PlanDay[]> {
  db = withTypedErrors(db);
  const firstEnd = startOf(addDays(range.from, 1));
  const deltas = await db.query<{ day: string | null; plan_slug: string; users: number; paying: number }>(
    `WITH x AS (
       -- Narrow rows before the sort: the stream, and what the row itself says about its end
       -- (NULL for a Figma PAID / TRIAL grant: figma_users.grant_until, read below).
       SELECT h.id, h.user_id, h.plan_id, h.grants_access, h.changed_at, h.current_period_end AS period_end,
              CASE WHEN h.source IN ('stripe', 'manual', 'subscription', 'deleted') THEN 1 WHEN h.source = 'figma' THEN 2
                   WHEN h.source = 'lemonsqueezy' THEN 3 WHEN h.source = 'gumroad' THEN 4 WHEN h.source = 'seat' THEN 5 ELSE 6 END AS stream,
              h.source IN ('stripe', 'manual', 'subscription') AND h.status IN ('active', 'past_due') AS paying,
              CASE h.source WHEN 'stripe' THEN 10 WHEN 'subscription' THEN 10 WHEN 'figma' THEN 20
                            WHEN 'lemonsqueezy' THEN 30 WHEN 'gumroad' THEN 40 WHEN 'seat' THEN 50 ELSE 60 END AS precedence,
              CASE WHEN h.source IN ('stripe', 'manual', 'subscription') THEN
                        CASE WHEN h.status IN ('past_due', 'manual') AND h.current_period_end IS NOT NULL
                             THEN h.current_period_end ELSE 'infinity'::timestamptz END
                   WHEN h.source = 'figma' AND h.status IN ('PAID', 'TRIAL') THEN NULL
                   ELSE COALESCE(h.current_period_end, 'infinity'::timestamptz) END AS cut_at
         FROM public.user_plan_history AS h
     ), h AS (
       -- In the order of idx_user_plan_history_streams (index only; each user's few rows sorted by stream).
       SELECT x.*, lead(x.changed_at) OVER (PARTITION BY x.user_id, x.stream ORDER BY x.changed_at, x.id) AS next_at FROM x
     ), iv AS (
       SELECT h.user_id, h.stream, h.plan_id, h.changed_at AS start_at, h.paying, h.precedence,
              LEAST(COALESCE(h.next_at, 'infinity'::timestamptz),
                    COALESCE(h.cut_at, CASE WHEN h.next_at IS NULL THEN COALESCE(f.grant_until, h.period_end) END,
                             'infinity'::timestamptz)) AS end_at
         FROM h
         LEFT JOIN public.figma_users AS f ON h.stream = 2 AND f.user_id = h.user_id
        WHERE h.grants_access
     ), ok AS MATERIALIZED (
       SELECT iv.* FROM iv WHERE iv.end_at > iv.start_at
     ), multi AS (
       -- Users with a row of a source other than the subscription row: the best-of below (exact
       -- for one stream too); everyone else takes their intervals as they are.
       SELECT DISTINCT h.user_id FROM public.user_plan_history AS h
        WHERE h.source NOT IN ('stripe', 'manual', 'subscription', 'deleted')
     ), points AS (
       SELECT DISTINCT ok.user_id, t.at
         FROM ok JOIN multi ON multi.user_id = ok.user_id
        CROSS JOIN LATERAL (VALUES (ok.start_at), (ok.end_at)) AS t(at)
     ), segments AS (
       SELECT p.user_id, p.at AS start_at, lead(p.at) OVER (PARTITION BY p.user_id ORDER BY p.at) AS end_at FROM points AS p
     ), best AS (
       -- A user granted by several sources: on each stretch between two changes, the best grant.
       SELECT DISTINCT ON (g.user_id, g.start_at) g.user_id, ok.plan_id, g.start_at, g.end_at
         FROM segments AS g
         JOIN ok ON ok.user_id = g.user_id AND ok.start_at <= g.start_at AND ok.end_at >= g.end_at
         JOIN public.subscription_plans AS p ON p.id = ok.plan_id
        WHERE g.end_at IS NOT NULL
        ORDER BY g.user_id, g.start_at, COALESCE(p.price_monthly, 0) DESC,
                 CASE WHEN (p.limits ->> 'resizesPerDay')::integer = -1 THEN 2147483647 ELSE (p.limits ->> 'resizesPerDay')::integer END DESC,
                 CASE WHEN (p.limits ->> 'batchSize')::integer = -1 THEN 2147483647 ELSE (p.limits ->> 'batchSize')::integer END DESC,
                 ok.precedence, p.plan_slug
     ), ev AS (
       -- Each interval is +1 at its start and -1 at its end (when it ends): users per plan from
       -- the best grant of each user, paying from every paying subscription row (revenue is the
       -- subscription's, whatever else grants the user more).
       SELECT e.at, ok.plan_id,
              CASE WHEN ok.user_id NOT IN (SELECT multi.user_id FROM multi) THEN e.delta ELSE 0 END AS users,
              CASE WHEN ok.paying THEN e.delta ELSE 0 END AS paying
         FROM ok CROSS JOIN LATERAL (VALUES (ok.start_at, 1), (ok.end_at, -1)) AS e(at, delta)
        WHERE e.at < 'infinity'::timestamptz
       UNION ALL
       SELECT e.at, best.plan_id, e.delta, 0
         FROM best CROSS JOIN LATERAL (VALUES (best.start_at, 1), (best.end_at, -1)) AS e(at, delta)
        WHERE e.at < 'infinity'::timestamptz
     )
     SELECT d.day, p.plan_slug, d.users, d.paying
       FROM (SELECT CASE WHEN ev.at <= $1::timestamptz THEN NULL
                         ELSE ((ev.at - interval '1 microsecond') AT TIME ZONE 'UTC')::date::text END AS day,
                    ev.plan_id, sum(ev.users)::integer AS users, sum(ev.paying)::integer AS paying
               FROM ev
              WHERE ev.at <= pg_catalog.now()
              GROUP BY 1, 2) AS d
       JOIN public.subscription_plans AS p ON p.id = d.plan_id`,
    [firstEnd],
  );
  const [base] = await db.query<{ n: number }>(
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
      users[d.plan_slug] = (users[d.plan_slug] ?? 0) + d.users;
      paying[d.plan_slug] = (paying[d.plan_slug] ?? 0) + d.paying;
    } else {
      byDay.set(d.day, [...(byDay.get(d.day) ?? []), d]);
    }
  }
  let total = base!.n;
  const fresh = new Map(newUsers.map((u) => [u.date, u.newUsers]));
  return range.dates.map((date, i) => {
    if (i > 0) {
      for (const d of byDay.get(date) ?? []) {
        users[d.plan_slug] = (users[d.plan_slug] ?? 0) + d.users;
        paying[d.plan_slug] = (paying[d.plan_slug] ?? 0) + d.paying;
      }
    }
    total += fresh.get(date) ?? 0;
    const granted = Object.entries(users).filter(([slug]) => slug !== 'free').reduce((sum, [, n]) => sum + n, 0);
    return { date, users: { ...users, free: Math.max(total - granted, 0) }, paying: { ...paying } };
  });
}

/**
 * Live tokens (not revoked, not expired) per user, in one pass over idx_plugin_tokens_live (index
 * only): the buckets, the totals and the possible sharing (device names read for those users only,
 * by idx_plugin_tokens_user_id).
 */
export async function readDevices(db: Queryable, threshold: number): Promise<{ buckets: DeviceBucket[]; liveTokens: number; usersWithTokens: number; sharing: SharingSuspect[] }> {
  db = withTypedErrors(db);
  const rows = await db.query<{ bucket: number; by_devices: number; by_tokens: number; tokens: number; users: number; sharing: { user_id: string; email: string; devices: number; tokens: number; names: string[] }[] | string | null }>(
    `WITH per AS MATERIALIZED (
       SELECT t.user_id, count(*)::integer AS tokens, count(DISTINCT t.device_id)::integer AS devices
         FROM public.plugin_tokens AS t
        WHERE t.revoked_at IS NULL AND t.expires_at > pg_catalog.now()
        GROUP BY t.user_id
     ), by_devices AS (
       SELECT LEAST(per.devices, 5) AS bucket, count(*)::integer AS n FROM per GROUP BY 1
     ), by_tokens AS (
       SELECT LEAST(per.tokens, 5) AS bucket, count(*)::integer AS n FROM per GROUP BY 1
     ), totals AS (
       SELECT COALESCE(sum(per.tokens), 0)::integer AS tokens, count(*)::integer AS users FROM per
     ), suspects AS (
       SELECT per.user_id, w.email, per.devices, per.tokens
         FROM per JOIN public.users AS w ON w.id = per.user_id
        WHERE per.devices >= $1::integer
        ORDER BY per.devices DESC, per.tokens DESC, w.email
        LIMIT 50
     ), sharing AS (
       SELECT json_agg(json_build_object('user_id', x.user_id, 'email', x.email, 'devices', x.devices,
                                         'tokens', x.tokens, 'names', n.names)
                       ORDER BY x.devices DESC, x.tokens DESC, x.email) AS list
         FROM suspects AS x
        CROSS JOIN LATERAL (
          SELECT array_agg(DISTINCT COALESCE(t.device_name, '(unnamed)') ORDER BY COALESCE(t.device_name, '(unnamed)')) AS names
            FROM public.plugin_tokens AS t
           WHERE t.user_id = x.user_id AND t.revoked_at IS NULL AND t.expires_at > pg_catalog.now()) AS n
     )
     SELECT b.bucket, COALESCE(d.n, 0) AS by_devices, COALESCE(k.n, 0) AS by_tokens,
            totals.tokens, totals.users, sharing.list AS sharing
       FROM pg_catalog.generate_series(1, 5) AS b(bucket)
       LEFT JOIN by_devices AS d ON d.bucket = b.bucket
       LEFT JOIN by_tokens AS k ON k.bucket = b.bucket
      CROSS JOIN totals
      CROSS JOIN sharing
      ORDER BY b.bucket`,
    [threshold],
  );
  const first = rows[0]!;
  const list = (typeof first.sharing === 'string' ? JSON.parse(first.sharing) : first.sharing ?? []) as { user_id: string; email: string; devices: number; tokens: number; names: string[] }[];
  return {
    buckets: rows.map((r) => ({ count: r.bucket, byDevices: r.by_devices, byTokens: r.by_tokens })),
    liveTokens: first.tokens,
    usersWithTokens: first.users,
    sharing: list.map((s) => ({ userId: s.user_id, email: s.email, devices: s.devices, tokens: s.tokens, deviceNames: s.names })),
  };
}

/**
 * Users with the most calls in the range: counted operations plus denied calls. The touched users
 * (RANGE_SUMS) exactly; every other user by their window row, read in the order of
 * idx_usage_user_windows_calls until enough are found. The plan shown is the best plan in force
 * now (plugin_auth_grants), of the users listed only.
 */
export async function readTopUsers(db: Queryable, range: Range, limit: number): Promise<TopUser[]> {
  db = withTypedErrors(db);
  const rows = await db.query<{ user_id: string; email: string; plan_slug: string; used: number; denied: number }>(
    `WITH ${RANGE_SUMS}, untouched AS (
       SELECT w.user_id, w.used, w.denied
         FROM public.usage_user_windows AS w
        WHERE w.days = $5::integer AND w.user_id NOT IN (SELECT t.user_id FROM touched AS t)
        ORDER BY w.used + w.denied DESC, w.user_id
        LIMIT $6::integer
     ), top AS (
       SELECT a.user_id, a.used, a.denied
         FROM (SELECT e.user_id, e.used, e.denied FROM exact AS e
               UNION ALL
               SELECT u.user_id, u.used, u.denied FROM untouched AS u) AS a
        ORDER BY a.used + a.denied DESC, a.user_id
        LIMIT $6::integer
     )
     SELECT top.user_id, w.email, COALESCE(best.plan_slug, 'free') AS plan_slug, top.used::integer AS used, top.denied::integer AS denied
       FROM top
       JOIN public.users AS w ON w.id = top.user_id
       LEFT JOIN LATERAL (
         SELECT b.plan_slug FROM public.plugin_auth_grants(top.user_id, pg_catalog.now()) AS b WHERE b.rank = 1
       ) AS best ON true
      ORDER BY top.used + top.denied DESC, top.user_id`,
    [range.from, range.to, startOf(range.from), startOf(addDays(range.to, 1)), windowDays(range), limit],
  );
  return rows.map((r) => ({ userId: r.user_id, email: r.email, planSlug: r.plan_slug, used: r.used, denied: r.denied, calls: r.used + r.denied }));
}

/** Everything the overview page shows. */
export async function readOverview(db: Queryable, options: OverviewOptions = {}): Promise<Overview> {
  db = withTypedErrors(db);
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
  /** The best grant in force (plugin_auth_grants, rank 1), else free: source stripe, figma, lemonsqueezy, gumroad, seat, manual or free. */
  planNow: { slug: string; status: string | null; source: string };
  /** Every grant in force now, best first (plugin_auth_grants): what each source gives this user. */
  grants: { source: string; planSlug: string; until: Date | null; detail: string | null }[];
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
  db = withTypedErrors(db);
  const id = checkUuid(userId, 'invalid_user_id', 'the user id');
  const range = await readRange(db, checkDays(days));
  const [user] = await db.query<{ id: string; email: string; name: string | null; created_at: Date | null }>(
    'SELECT w.id, w.email, w.name, w.created_at FROM public.users AS w WHERE w.id = $1::uuid',
    [id],
  );
  if (!user) throw new NotFoundError('unknown_user', `unknown_user: no user with id ${id}`);
  // The same rule as consume_usage and effectivePlan: every source in force, best first.
  const grants = await db.query<{ source: string; plan_slug: string; until: Date | null; detail: string | null }>(
    'SELECT g.source, g.plan_slug, g.until, g.detail FROM public.plugin_auth_grants($1::uuid, pg_catalog.now()) AS g ORDER BY g.rank',
    [id],
  );
  const usage = await db.query<{ usage_date: string; action: string; used: number; allowed: number; denied: number; refunded: number }>(
    'SELECT s.usage_date::text AS usage_date, s.action, s.used, s.allowed, s.denied, s.refunded FROM public.usage_summary($1::uuid, $2::date, $3::date) AS s',
    [id, range.from, range.to],
  );
  const history = await db.query<{ changed_at: Date; plan_slug: string | null; status: string | null; current_period_end: Date | null; grants_access: boolean; source: string }>(
    `SELECT h.changed_at, p.plan_slug, h.status, h.current_period_end, h.grants_access, h.source
       FROM public.user_plan_history AS h
       LEFT JOIN public.subscription_plans AS p ON p.id = h.plan_id
      WHERE h.user_id = $1::uuid
      ORDER BY h.changed_at DESC, h.id DESC
      LIMIT 100`,
    [id],
  );
  const tokens = await db.query<{ id: string; device_name: string | null; status: 'active' | 'revoked' | 'expired'; created_at: Date; expires_at: Date; last_used_at: Date | null; revoked_at: Date | null; revoked_reason: string | null }>(
    'SELECT t.id, t.device_name, t.status, t.created_at, t.expires_at, t.last_used_at, t.revoked_at, t.revoked_reason FROM public.list_plugin_tokens($1::uuid) AS t',
    [id],
  );
  return {
    range,
    user: { id: user.id, email: user.email, name: user.name, createdAt: user.created_at },
    planNow: grants[0] ? { slug: grants[0].plan_slug, status: grants[0].detail, source: grants[0].source } : { slug: 'free', status: null, source: 'free' },
    grants: grants.map((g) => ({ source: g.source, planSlug: g.plan_slug, until: g.until, detail: g.detail })),
    usage: usage.map((u) => ({ date: u.usage_date, action: u.action, used: u.used, allowed: u.allowed, denied: u.denied, refunded: u.refunded })),
    history: history.map((h) => ({ changedAt: h.changed_at, planSlug: h.plan_slug, status: h.status, currentPeriodEnd: h.current_period_end, grantsAccess: h.grants_access, source: h.source })),
    tokens: tokens.map((t) => ({ tokenId: t.id, deviceName: t.device_name, status: t.status, createdAt: t.created_at, expiresAt: t.expires_at, lastUsedAt: t.last_used_at, revokedAt: t.revoked_at, revokedReason: t.revoked_reason })),
  };
}

/** Revokes one token of this user; false when it was not live. */
export async function revokeUserToken(db: Queryable, userId: string, tokenId: string): Promise<boolean> {
  db = withTypedErrors(db);
  const uid = checkUuid(userId, 'invalid_user_id', 'the user id');
  const tid = checkUuid(tokenId, 'invalid_token_id', 'the token id');
  const owner = await db.query<{ user_id: string }>('SELECT t.user_id FROM public.plugin_tokens AS t WHERE t.id = $1::uuid', [tid]);
  if (owner[0]?.user_id !== uid) throw new NotFoundError('token_not_found', 'token_not_found: this user has no token with that id');
  const [row] = await db.query<{ revoked: boolean }>('SELECT public.revoke_plugin_token($1::uuid, $2::varchar) AS revoked', [tid, 'revoked_from_dashboard']);
  return row!.revoked;
}
