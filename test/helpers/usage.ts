// Shared by the usage tests: put a user on a plan the way the subscriptions API will (one
// user_subscriptions row), and read the tables back.
import type { Queryable } from '../../src/core/db.ts';

/** Puts the user on a plan (status active unless told), replacing any subscription row. */
export async function setPlan(db: Queryable, userId: string, slug: string, status = 'active'): Promise<void> {
  await db.query(
    `INSERT INTO public.user_subscriptions (user_id, plan_id, status)
     SELECT $1, p.id, $3 FROM public.subscription_plans p WHERE p.plan_slug = $2
     ON CONFLICT (user_id) DO UPDATE SET plan_id = EXCLUDED.plan_id, status = EXCLUDED.status`,
    [userId, slug, status],
  );
}

/** Back to the free plan: no subscription row. */
export async function clearPlan(db: Queryable, userId: string): Promise<void> {
  await db.query('DELETE FROM public.user_subscriptions WHERE user_id = $1', [userId]);
}

/** Writes a counter row for an earlier (or any) UTC day directly: we cannot move the clock. */
export async function setCounter(db: Queryable, userId: string, action: string, daysAgo: number, count: number): Promise<void> {
  await db.query(
    `INSERT INTO public.daily_usage_summary (user_id, action, usage_date, count)
     VALUES ($1, $2, (now() AT TIME ZONE 'UTC')::date - $3::int, $4)
     ON CONFLICT (user_id, action, usage_date) DO UPDATE SET count = EXCLUDED.count`,
    [userId, action, daysAgo, count],
  );
}

/** The counter of one UTC day (0 when no row). */
export async function counter(db: Queryable, userId: string, action = 'resize', daysAgo = 0): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `SELECT COALESCE(max(count), 0)::int AS n FROM public.daily_usage_summary
      WHERE user_id = $1 AND action = $2 AND usage_date = (now() AT TIME ZONE 'UTC')::date - $3::int`,
    [userId, action, daysAgo],
  );
  return rows[0]!.n;
}

export interface Totals {
  usageRows: number;
  allowedRows: number;
  deniedRows: number;
  summaryRows: number;
  counted: number;
}

/** Row counts of the two tables metering writes (for "nothing was written" and "counter = allowed"). */
export async function totals(db: Queryable, userId?: string): Promise<Totals> {
  const rows = await db.query<Totals>(
    `SELECT (SELECT count(*)::int FROM public.plugin_usage WHERE $1::uuid IS NULL OR user_id = $1) AS "usageRows",
            (SELECT count(*)::int FROM public.plugin_usage WHERE allowed AND ($1::uuid IS NULL OR user_id = $1)) AS "allowedRows",
            (SELECT count(*)::int FROM public.plugin_usage WHERE NOT allowed AND ($1::uuid IS NULL OR user_id = $1)) AS "deniedRows",
            (SELECT count(*)::int FROM public.daily_usage_summary WHERE $1::uuid IS NULL OR user_id = $1) AS "summaryRows",
            (SELECT COALESCE(sum(count), 0)::int FROM public.daily_usage_summary WHERE $1::uuid IS NULL OR user_id = $1) AS counted`,
    [userId ?? null],
  );
  return rows[0]!;
}

/** The next UTC midnight after the database's now(): daily plans' resetsAt. */
export async function nextUtcMidnight(db: Queryable): Promise<Date> {
  const rows = await db.query<{ t: Date }>(
    `SELECT (((now() AT TIME ZONE 'UTC')::date + 1)::timestamp AT TIME ZONE 'UTC') AS t`,
  );
  return rows[0]!.t;
}
