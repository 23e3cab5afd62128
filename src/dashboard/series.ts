// Churn and conversion over time (the console's /series page): per day, ISO week or calendar
// month (UTC), paying users at the period's start, new paying, churned, the churn rate, sign-ups
// and the share of them who became paying within N days. One statement, read from
// user_plan_history (idx_user_plan_history_streams, index only, one pass in (user, time) order:
// the plan mix's reading) and users (idx_users_created_at, the window only). Definitions:
// docs/dashboard.md#churn-and-conversion-over-time.
import { withTypedErrors, type Queryable } from '../core/db.ts';
import { ValidationError } from '../core/errors.ts';

/** The windows the page offers (days up to today, included). */
export const SERIES_WINDOWS = [7, 30, 90, 180, 365] as const;
export type SeriesWindow = (typeof SERIES_WINDOWS)[number];
export const SERIES_UNITS = ['day', 'week', 'month'] as const;
export type SeriesUnit = (typeof SERIES_UNITS)[number];

/** The period of a window when none is asked for: days up to 30 days, weeks up to 180, else months. */
export const defaultUnit = (days: SeriesWindow): SeriesUnit => (days <= 30 ? 'day' : days <= 180 ? 'week' : 'month');

export interface SeriesOptions {
  days?: number;
  unit?: string;
  /** Conversion: a sign-up counts as converted when paying within this many days of signing up (1 to 90, default 30). */
  withinDays?: number;
}

export interface SeriesPeriod {
  /** First UTC day of the period, 'YYYY-MM-DD'. */
  start: string;
  /** Where the period ends: the next period's start, or now for the last one. */
  endsAt: Date;
  /** Users paying just before the period's start (after every change before it). */
  payingAtStart: number;
  /** Users not paying at the start who are paying at the end. */
  newPaying: number;
  /** Users paying at the start who are not paying at the end. */
  churned: number;
  /** churned ÷ payingAtStart; null when nobody paid at the start. */
  churnRate: number | null;
  /** payingAtStart + newPaying − churned. */
  payingAtEnd: number;
  /** Users created in the period (users.created_at). */
  signUps: number;
  /** Of those, users paying at some moment within withinDays days after they signed up. */
  converted: number;
  /** converted ÷ signUps; null without sign-ups. */
  conversionRate: number | null;
  /** Every sign-up of the period has had its withinDays days (else the conversion is so far). */
  complete: boolean;
}

export interface Series {
  days: SeriesWindow;
  unit: SeriesUnit;
  withinDays: number;
  /** The database's clock when read: the end of the last period. */
  now: Date;
  periods: SeriesPeriod[];
}

export function checkSeriesWindow(days: unknown): SeriesWindow {
  if (!SERIES_WINDOWS.includes(days as SeriesWindow)) {
    throw new ValidationError('invalid_days', `invalid_days: days must be one of ${SERIES_WINDOWS.join(', ')}`);
  }
  return days as SeriesWindow;
}

export function checkSeriesUnit(unit: unknown): SeriesUnit {
  if (!SERIES_UNITS.includes(unit as SeriesUnit)) {
    throw new ValidationError('invalid_period', `invalid_period: the period must be one of ${SERIES_UNITS.join(', ')}`);
  }
  return unit as SeriesUnit;
}

function checkWithin(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 90) {
    throw new ValidationError('invalid_within', 'invalid_within: within (days) must be a whole number from 1 to 90');
  }
  return value;
}

/** The index of the period holding t (a UTC timestamp), counted from b.first_start, in b.unit. */
const periodIndex = (t: string) => `CASE b.unit
         WHEN 'day' THEN pg_catalog.date_trunc('day', ${t})::date - b.first_start::date
         WHEN 'week' THEN (pg_catalog.date_trunc('week', ${t})::date - b.first_start::date) / 7
         ELSE ((pg_catalog.date_part('year', ${t}) - pg_catalog.date_part('year', b.first_start)) * 12
               + pg_catalog.date_part('month', ${t}) - pg_catalog.date_part('month', b.first_start))::integer END`;

/**
 * g(t): how many period boundaries are at or before t (boundaries: each period's start, and now
 * as the last period's end). ±infinity never reaches date_trunc (the first two branches).
 */
const boundariesUpTo = (t: string) => `CASE WHEN ${t} < b.first_start THEN 0 WHEN ${t} >= b.now_utc THEN b.n + 1
         ELSE 1 + ${periodIndex(t)} END`;

/**
 * The series, in one statement.
 *
 * Paying: a user is paying at a moment when a history row in force then (the latest of its
 * source's stream, as the plan mix reads them) grants a plan whose price_monthly is above zero
 * and says the user pays: a subscription row (stripe or subscription source) active or past due
 * (past due until its period end), a Figma row whose granting link is PAID (until the next row,
 * or figma_users.grant_until for the latest), a Lemon Squeezy or Gumroad license that grants
 * (until its expiry). Trials, manual grants and team seats are not paying. A user paying through
 * several sources at once counts once.
 *
 * Periods are whole UTC days, ISO weeks (from Monday) or calendar months, from the one holding
 * the window's first day to the one holding today, which ends now. A change at time t belongs to
 * the period [start, next start) holding t: the state "at the start" of a period is the state
 * after every change strictly before its start. Each paid interval [a, z) is turned into the run
 * of period boundaries at which it is in force (a < b <= z); a user's runs are merged (a user
 * paying through two sources, or leaving and coming back between two boundaries, is one run), so
 * counting runs counts users.
 * $1 first period's start (timestamp, UTC), $2 the unit, $3 the number of periods, $4 within days,
 * $5 now (the clock the periods were computed from: one clock for the whole read, even across midnight).
 */
const SERIES_SQL = `WITH x AS (
       SELECT h.id, h.user_id, h.plan_id, h.grants_access, h.changed_at, h.status, h.current_period_end AS period_end,
              CASE WHEN h.source IN ('stripe', 'manual', 'subscription', 'deleted') THEN 1 WHEN h.source = 'figma' THEN 2
                   WHEN h.source = 'lemonsqueezy' THEN 3 WHEN h.source = 'gumroad' THEN 4 WHEN h.source = 'seat' THEN 5 ELSE 6 END AS stream,
              CASE WHEN h.source IN ('stripe', 'subscription') THEN h.status IN ('active', 'past_due')
                   WHEN h.source = 'figma' THEN h.status = 'PAID'
                   WHEN h.source IN ('lemonsqueezy', 'gumroad') THEN true
                   ELSE false END AS pays
         FROM public.user_plan_history AS h
     ), h AS (
       -- In the order of idx_user_plan_history_streams: every row of the stream ends the one before
       -- (a cancel, a downgrade to free, a manual grant replacing a Stripe row, a refund).
       SELECT x.*, lead(x.changed_at) OVER (PARTITION BY x.user_id, x.stream ORDER BY x.changed_at, x.id) AS next_at FROM x
     ), paid AS MATERIALIZED (
       -- Only intervals that end at or after the first period's start (one ending exactly then is
       -- in force just before it, and churns in the first period): nothing earlier is counted.
       SELECT i.user_id, i.start_at, i.end_at
         FROM (
       SELECT h.user_id, h.changed_at AS start_at,
              LEAST(COALESCE(h.next_at, 'infinity'::timestamptz),
                    CASE WHEN h.stream = 1 THEN
                              CASE WHEN h.status = 'past_due' AND h.period_end IS NOT NULL THEN h.period_end ELSE 'infinity'::timestamptz END
                         WHEN h.stream = 2 THEN
                              CASE WHEN h.next_at IS NULL
                                   THEN COALESCE((SELECT f.grant_until FROM public.figma_users AS f WHERE f.user_id = h.user_id), h.period_end, 'infinity'::timestamptz)
                                   ELSE 'infinity'::timestamptz END
                         ELSE COALESCE(h.period_end, 'infinity'::timestamptz) END) AS end_at
         FROM h
        -- The priced plans as one array (an InitPlan): a filter on the single pass, never a join
        -- the planner could put outside it. The latest Figma row's end by idx_figma_users_user_id.
        WHERE h.grants_access AND h.pays
          AND h.plan_id = ANY (ARRAY(SELECT p.id FROM public.subscription_plans AS p WHERE COALESCE(p.price_monthly, 0) > 0))
         ) AS i
        WHERE i.end_at > i.start_at AND i.end_at >= ($1::timestamp AT TIME ZONE 'UTC')
     ), bounds AS (
       SELECT $1::timestamp AS first_start, $2::text AS unit, $3::integer AS n,
              ($5::timestamptz AT TIME ZONE 'UTC') AS now_utc
     ), runs AS MATERIALIZED (
       -- g(t): how many period boundaries are at or before t (boundaries: each period's start, and
       -- now as the last period's end). An interval [a, z) is in force just before boundaries
       -- g(a) .. g(z) - 1; one in force at none of them (inside one period) drops out here.
       -- Materialized: each g is computed once, and the sort below is of plain integers.
       SELECT r.user_id, r.k1, r.k2
         FROM (SELECT p.user_id, ${boundariesUpTo('(p.start_at AT TIME ZONE \'UTC\')')} AS k1, ${boundariesUpTo('(p.end_at AT TIME ZONE \'UTC\')')} AS k2
                 FROM paid AS p CROSS JOIN bounds AS b) AS r
        WHERE r.k2 > r.k1
     ), marked AS (
       SELECT r.user_id, r.k1, r.k2,
              CASE WHEN r.k1 <= max(r.k2) OVER (PARTITION BY r.user_id ORDER BY r.k1, r.k2 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                   THEN 0 ELSE 1 END AS fresh
         FROM runs AS r
     ), islands AS (
       SELECT m.user_id, min(m.k1) AS k1, max(m.k2) AS k2
         FROM (SELECT m.*, sum(m.fresh) OVER (PARTITION BY m.user_id ORDER BY m.k1, m.k2) AS island FROM marked AS m) AS m
        GROUP BY m.user_id, m.island
     ), moves AS (
       SELECT i.k1 AS k, 1 AS starts, 0 AS ends FROM islands AS i
       UNION ALL
       SELECT i.k2, 0, 1 FROM islands AS i
     ), per AS (
       SELECT m.k, sum(m.starts)::integer AS starts, sum(m.ends)::integer AS ends FROM moves AS m GROUP BY m.k
     ), signups AS (
       -- Users created in the window (idx_users_created_at), each with whether a paid interval is
       -- in force at some moment of [created_at, created_at + N days]: a hash join on user_id
       -- with the paid intervals (never a scan of them per sign-up).
       SELECT w.id, w.created_at,
              bool_or(p.user_id IS NOT NULL) AS converted
         FROM public.users AS w
         LEFT JOIN paid AS p
           ON p.user_id = w.id
          AND p.start_at <= w.created_at + pg_catalog.make_interval(days => $4::integer)
          AND p.end_at > w.created_at
        WHERE w.created_at >= ($1::timestamp AT TIME ZONE 'UTC') AND w.created_at <= $5::timestamptz
        GROUP BY w.id, w.created_at
     ), signed AS (
       SELECT ${periodIndex('(s.created_at AT TIME ZONE \'UTC\')')} AS period,
              count(*)::integer AS sign_ups, (count(*) FILTER (WHERE s.converted))::integer AS converted
         FROM signups AS s CROSS JOIN bounds AS b
        GROUP BY 1
     )
     SELECT k.k AS period,
            COALESCE((SELECT sum(q.starts - q.ends) FROM per AS q WHERE q.k <= k.k), 0)::integer AS paying_at_start,
            COALESCE((SELECT q.starts FROM per AS q WHERE q.k = k.k + 1), 0) AS new_paying,
            COALESCE((SELECT q.ends FROM per AS q WHERE q.k = k.k + 1), 0) AS churned,
            COALESCE(s.sign_ups, 0) AS sign_ups, COALESCE(s.converted, 0) AS converted
       FROM pg_catalog.generate_series(0, $3::integer - 1) AS k(k)
       LEFT JOIN signed AS s ON s.period = k.k
      ORDER BY 1`;

const DAY = 86_400_000;
const dayOf = (t: number) => new Date(t).toISOString().slice(0, 10);

/** The start of the period holding the UTC day `date` (ms since the epoch). */
function periodStart(date: number, unit: SeriesUnit): number {
  const d = new Date(date);
  if (unit === 'day') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  if (unit === 'week') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

function nextStart(start: number, unit: SeriesUnit): number {
  const d = new Date(start);
  if (unit === 'day') return start + DAY;
  if (unit === 'week') return start + 7 * DAY;
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** The periods of a window ending at `now`: starts (ms), the last one holding today. */
export function seriesPeriods(now: Date, days: SeriesWindow, unit: SeriesUnit): number[] {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const starts: number[] = [];
  for (let s = periodStart(today - (days - 1) * DAY, unit); s <= today; s = nextStart(s, unit)) starts.push(s);
  return starts;
}

export async function readSeries(db: Queryable, options: SeriesOptions = {}): Promise<Series> {
  db = withTypedErrors(db);
  const days = checkSeriesWindow(options.days ?? 90);
  const unit = options.unit === undefined ? defaultUnit(days) : checkSeriesUnit(options.unit);
  const withinDays = checkWithin(options.withinDays ?? 30);
  // The periods come from the database's clock (one read), then one statement reads them all.
  const [clock] = await db.query<{ now: Date }>('SELECT pg_catalog.now() AS now', []);
  const now = new Date(clock!.now);
  const starts = seriesPeriods(now, days, unit);
  const rows = await db.query<{ period: number; paying_at_start: number; new_paying: number; churned: number; sign_ups: number; converted: number }>(
    SERIES_SQL,
    [new Date(starts[0]!).toISOString().replace('T', ' ').replace('Z', ''), unit, starts.length, withinDays, now],
  );
  const periods = rows.map((r, i): SeriesPeriod => {
    const endsAt = i + 1 < starts.length ? new Date(starts[i + 1]!) : now;
    const payingAtStart = Number(r.paying_at_start);
    const newPaying = Number(r.new_paying);
    const churned = Number(r.churned);
    const signUps = Number(r.sign_ups);
    const converted = Number(r.converted);
    return {
      start: dayOf(starts[i]!),
      endsAt,
      payingAtStart,
      newPaying,
      churned,
      churnRate: payingAtStart > 0 ? churned / payingAtStart : null,
      payingAtEnd: payingAtStart + newPaying - churned,
      signUps,
      converted,
      conversionRate: signUps > 0 ? converted / signUps : null,
      complete: endsAt.getTime() + withinDays * DAY <= now.getTime(),
    };
  });
  return { days, unit, withinDays, now, periods };
}
