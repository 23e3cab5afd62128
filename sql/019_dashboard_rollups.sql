-- 019: the dashboard's rollups (issue 16: "fast on a large database"), and plan history from every
-- payment source. Written to run with search_path = pg_catalog: every name is schema-qualified,
-- operators in CHECKs are OPERATOR(pg_catalog.x). Re-runnable; the backfill runs once.
--
-- Why: at 10 million calls (100k users, 90 days) the 30-day page read 330k counters and 660k
-- denials for "active users", and again per user for the funnel and the top users: seconds of
-- database time. Three tables, filled by the rollup that the 30-day report already runs
-- (usage_rollup, sql/011: every report rolls up the calls older than 5 minutes) and never by
-- consume_usage, so the hot path does no more work than before:
--
-- - usage_user_days: one row per UTC day and user who was active that day. The denials of the day
--   (how many, how many limit_reached, the first limit_reached and the plan it was logged under)
--   are rolled up from the denied-calls index (sql/014) with the calls; `used`, the sum of the
--   user's counters that day (daily_usage_summary, allowed minus refunded), is filled when the
--   day is frozen.
-- - usage_daily_users: active users and users who hit a limit, per frozen day.
-- - usage_user_windows: per user, the sums over the frozen days of the last 7, 30 and 90 days
--   (used, denied, days with a limit_reached denial, active days, the first limit_reached), so
--   that "top users", "hit the limit in the range" and the funnel read one row per user and an
--   index instead of every user-day.
--
-- Freezing: a day is frozen once the rollup's watermark has passed its end (00:00 UTC of the next
-- day, plus the 5 minutes of lag): all its calls are rolled up and consume_usage no longer
-- writes its counters. usage_user_rollup_state.frozen_to is the first day not frozen. The
-- dashboard reads frozen days from these tables and the days from frozen_to on (today, and
-- yesterday for the first minutes after midnight) live, from daily_usage_summary,
-- usage_user_days and the calls not rolled up yet, in one statement.
-- What a frozen day keeps, like usage_daily_totals: a counter written for a past day after it was
-- frozen (increment_daily_usage with an old p_date, an import) and a refund of a call of a
-- frozen day do not change it; deleting a user removes the user's rows (ON DELETE CASCADE) but
-- not the user from usage_daily_users. Re-rolling (usage_rollup_state.rolled_up_to set back to
-- '-infinity', docs/scale.md) rebuilds these tables from plugin_usage and the counters.
--
-- Plan history: user_plan_history (sql/014) had rows from user_subscriptions (a trigger) and from
-- licenses (sql/016). Added here: the Figma source (a trigger on figma_users: a link to a user,
-- a change of the payment status, a grant that lapsed and came back) and seats (a trigger on
-- seat_assignments, and the members' rows when a team license changes state). Each source is its
-- own stream: the dashboard computes a row's interval up to the next row of the same stream,
-- and a user's plan at a moment is the best plan over the streams in force (src/dashboard).

-- 0. If one of the rollup tables is missing (a restore re-runs this file) while the state row
-- exists, forget the state: the backfill at the end then rebuilds all of them.
DO $plugin_auth_019_reset$
BEGIN
  IF pg_catalog.to_regclass('public.usage_user_rollup_state') IS NOT NULL
     AND (pg_catalog.to_regclass('public.usage_user_days') IS NULL
          OR pg_catalog.to_regclass('public.usage_daily_users') IS NULL
          OR pg_catalog.to_regclass('public.usage_user_windows') IS NULL) THEN
    DELETE FROM public.usage_user_rollup_state;
  END IF;
END
$plugin_auth_019_reset$;

-- 1. One row per UTC day and user with a counter row or a denied call that day.
CREATE TABLE IF NOT EXISTS public.usage_user_days (
  usage_date DATE NOT NULL,
  user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  -- Denied calls of the day, and of those the limit_reached ones (batch_too_large is the rest).
  denied INTEGER NOT NULL DEFAULT 0,
  limit_reached INTEGER NOT NULL DEFAULT 0,
  -- The day's first limit_reached denial and the plan_slug it was logged under (the funnel's t).
  first_limit_at TIMESTAMP WITH TIME ZONE,
  first_limit_plan VARCHAR(50),
  -- Sum of the user's daily_usage_summary counts that day; NULL until the day is frozen.
  used INTEGER,
  CONSTRAINT usage_user_days_pkey PRIMARY KEY (usage_date, user_id),
  CONSTRAINT usage_user_days_counts_check CHECK (
    denied OPERATOR(pg_catalog.>=) 0 AND limit_reached OPERATOR(pg_catalog.>=) 0
    AND limit_reached OPERATOR(pg_catalog.<=) denied
    AND (used IS NULL OR used OPERATOR(pg_catalog.>=) 0)
    AND (first_limit_at IS NULL) OPERATOR(pg_catalog.=) (limit_reached OPERATOR(pg_catalog.=) 0))
);
-- The foreign key's index; also a user's first limit_reached day in a range (the windows' first
-- limit day, the funnel), index only.
CREATE INDEX IF NOT EXISTS idx_usage_user_days_user_id
  ON public.usage_user_days (user_id, usage_date) INCLUDE (limit_reached, first_limit_at, first_limit_plan);

-- 2. Per frozen UTC day: users active (a row in usage_user_days) and users with a limit_reached denial.
CREATE TABLE IF NOT EXISTS public.usage_daily_users (
  usage_date DATE PRIMARY KEY,
  active INTEGER NOT NULL,
  hit_limit INTEGER NOT NULL,
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  CONSTRAINT usage_daily_users_counts_check CHECK (
    hit_limit OPERATOR(pg_catalog.>=) 0 AND active OPERATOR(pg_catalog.>=) hit_limit)
);

-- 3. Per user and window (7, 30 or 90 days): sums over the frozen days
-- [frozen_to - days + 1, frozen_to - 1], i.e. the range of that many days ending today without
-- today. A row exists while active_days > 0.
CREATE TABLE IF NOT EXISTS public.usage_user_windows (
  days SMALLINT NOT NULL,
  user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  used BIGINT NOT NULL DEFAULT 0,
  denied BIGINT NOT NULL DEFAULT 0,
  limit_days INTEGER NOT NULL DEFAULT 0,
  active_days INTEGER NOT NULL DEFAULT 0,
  -- The first limit_reached denial in the window's days and the plan it was logged under.
  first_limit_at TIMESTAMP WITH TIME ZONE,
  first_limit_plan VARCHAR(50),
  CONSTRAINT usage_user_windows_pkey PRIMARY KEY (days, user_id),
  CONSTRAINT usage_user_windows_days_check CHECK (days OPERATOR(pg_catalog.=) ANY (ARRAY[7, 30, 90]::SMALLINT[]))
);
CREATE INDEX IF NOT EXISTS idx_usage_user_windows_user_id ON public.usage_user_windows (user_id);
-- Top users: the window's rows by calls, highest first, ties by user id (the table's order).
CREATE INDEX IF NOT EXISTS idx_usage_user_windows_calls
  ON public.usage_user_windows (days, (used OPERATOR(pg_catalog.+) denied) DESC, user_id);
-- Users who hit a limit in the window: counted from this index alone.
CREATE INDEX IF NOT EXISTS idx_usage_user_windows_limited
  ON public.usage_user_windows (days, user_id) WHERE limit_days OPERATOR(pg_catalog.>) 0;

-- The plan mix reads the whole history in (user, time) order, index only.
CREATE INDEX IF NOT EXISTS idx_user_plan_history_streams
  ON public.user_plan_history (user_id, changed_at, id) INCLUDE (plan_id, grants_access, status, current_period_end, source);
-- The funnel's candidates: who got a plan granted in the range (every source writes here).
CREATE INDEX IF NOT EXISTS idx_user_plan_history_changed_at
  ON public.user_plan_history (changed_at) INCLUDE (user_id) WHERE grants_access;

-- 4. One row: days before frozen_to are frozen (NULL: none yet).
CREATE TABLE IF NOT EXISTS public.usage_user_rollup_state (
  id BOOLEAN PRIMARY KEY DEFAULT true,
  frozen_to DATE,
  -- Users with a limit day in each window (usage_user_windows.limit_days > 0), as of frozen_to.
  limited_7 INTEGER NOT NULL DEFAULT 0,
  limited_30 INTEGER NOT NULL DEFAULT 0,
  limited_90 INTEGER NOT NULL DEFAULT 0,
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  CONSTRAINT usage_user_rollup_state_single_row CHECK (id)
);

ALTER TABLE public.usage_user_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.usage_daily_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.usage_user_windows ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.usage_user_rollup_state ENABLE ROW LEVEL SECURITY;

COMMENT ON TABLE public.usage_user_days IS 'per UTC day and active user: denials (rolled up) and counted operations (when frozen), for the dashboard';
COMMENT ON TABLE public.usage_daily_users IS 'active users and users who hit a limit per frozen UTC day, for the dashboard';
COMMENT ON TABLE public.usage_user_windows IS 'per user, sums over the frozen days of the last 7, 30 and 90 days, for the dashboard';
COMMENT ON TABLE public.usage_user_rollup_state IS 'which days usage_user_days, usage_daily_users and usage_user_windows have frozen';

-- 5. Adds the denials with p_from <= created_at < p_to to usage_user_days; returns how many.
-- Called by usage_rollup under its lock, with the same bounds as the totals (so a call is in both
-- or in neither). Reads plugin_usage by idx_plugin_usage_denied_created_at (index only).
CREATE OR REPLACE FUNCTION public.plugin_auth_roll_user_days(
  p_from TIMESTAMP WITH TIME ZONE,
  p_to TIMESTAMP WITH TIME ZONE
) RETURNS BIGINT
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_rows BIGINT;
BEGIN
  WITH denials AS (
    SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, u.user_id AS who,
           pg_catalog.count(*)::integer AS n,
           (pg_catalog.count(*) FILTER (WHERE u.reason = 'limit_reached'))::integer AS n_limit,
           pg_catalog.min(u.created_at) FILTER (WHERE u.reason = 'limit_reached') AS first_at,
           (pg_catalog.array_agg(u.plan_slug ORDER BY u.created_at, u.id) FILTER (WHERE u.reason = 'limit_reached'))[1] AS first_plan
      FROM public.plugin_usage AS u
     WHERE NOT u.allowed AND u.created_at >= p_from AND u.created_at < p_to
     GROUP BY 1, 2
  ), added AS (
    INSERT INTO public.usage_user_days AS d (usage_date, user_id, denied, limit_reached, first_limit_at, first_limit_plan)
    SELECT x.day, x.who, x.n, x.n_limit, x.first_at, x.first_plan
      FROM denials AS x
     -- A user deleted since the call took its calls along; the row would fail its foreign key.
     WHERE EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = x.who)
    ON CONFLICT (usage_date, user_id) DO UPDATE SET
      denied = d.denied + excluded.denied,
      limit_reached = d.limit_reached + excluded.limit_reached,
      first_limit_plan = CASE WHEN excluded.first_limit_at < d.first_limit_at OR d.first_limit_at IS NULL
                              THEN COALESCE(excluded.first_limit_plan, d.first_limit_plan) ELSE d.first_limit_plan END,
      first_limit_at = LEAST(d.first_limit_at, excluded.first_limit_at)
  )
  SELECT COALESCE(pg_catalog.sum(x.n), 0)::bigint INTO v_rows FROM denials AS x;
  RETURN v_rows;
END;
$$;

-- 5b. Builds usage_user_days from the whole log at once, into empty tables (a re-roll, the
-- backfill): every denial before p_to, and for the days before p_to's day (complete, so frozen
-- right after) the counters too, in one insert: each row is written once (a roll of the denials
-- and then a freeze would write the million rows of a 10M-call log twice).
CREATE OR REPLACE FUNCTION public.plugin_auth_build_user_days(p_to TIMESTAMP WITH TIME ZONE)
RETURNS BIGINT
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_day DATE := (p_to AT TIME ZONE 'UTC')::date;
  v_rows BIGINT;
BEGIN
  WITH denials AS (
    SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, u.user_id AS who,
           pg_catalog.count(*)::integer AS n,
           (pg_catalog.count(*) FILTER (WHERE u.reason = 'limit_reached'))::integer AS n_limit,
           pg_catalog.min(u.created_at) FILTER (WHERE u.reason = 'limit_reached') AS first_at,
           (pg_catalog.array_agg(u.plan_slug ORDER BY u.created_at, u.id) FILTER (WHERE u.reason = 'limit_reached'))[1] AS first_plan
      FROM public.plugin_usage AS u
     WHERE NOT u.allowed AND u.created_at < p_to
     GROUP BY 1, 2
  ), counters AS (
    SELECT c.usage_date AS day, c.user_id AS who, pg_catalog.sum(c.count)::integer AS used
      FROM public.daily_usage_summary AS c
     WHERE c.usage_date < v_day
     GROUP BY 1, 2
  ), added AS (
    INSERT INTO public.usage_user_days (usage_date, user_id, denied, limit_reached, first_limit_at, first_limit_plan, used)
    SELECT COALESCE(x.day, c.day), COALESCE(x.who, c.who), COALESCE(x.n, 0), COALESCE(x.n_limit, 0), x.first_at, x.first_plan,
           CASE WHEN COALESCE(x.day, c.day) < v_day THEN COALESCE(c.used, 0) END
      FROM denials AS x
      FULL JOIN counters AS c ON c.day = x.day AND c.who = x.who
     WHERE EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = COALESCE(x.who, c.who))
    ON CONFLICT (usage_date, user_id) DO NOTHING
  )
  SELECT COALESCE(pg_catalog.sum(x.n), 0)::bigint INTO v_rows FROM denials AS x;
  RETURN v_rows;
END;
$$;

-- 6. Freezes the days from frozen_to up to p_to (excluded), never past the rollup's watermark:
-- the day's counters into usage_user_days.used (rows added for users with counters only), the
-- day's counts into usage_daily_users, and the windows moved forward (each frozen day added to
-- the windows it enters and taken out of those it leaves). Returns the number of days frozen.
-- Called by usage_rollup under its lock; when called alone it takes that lock (and returns 0
-- when a rollup holds it). Set-based: a catch-up of many days costs about what one day does per row.
CREATE OR REPLACE FUNCTION public.plugin_auth_freeze_user_days(p_to DATE)
RETURNS INTEGER
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_mark TIMESTAMP WITH TIME ZONE;
  v_from DATE;
  v_to DATE;
BEGIN
  IF NOT pg_catalog.pg_try_advisory_xact_lock(7303, 0) THEN
    RETURN 0;
  END IF;
  SELECT s.rolled_up_to INTO v_mark FROM public.usage_rollup_state AS s WHERE s.id;
  IF v_mark IS NULL OR v_mark = '-infinity' OR p_to IS NULL THEN
    RETURN 0;
  END IF;
  -- Days before the watermark's day are complete: all their calls are rolled up.
  v_to := LEAST(p_to, (v_mark AT TIME ZONE 'UTC')::date);
  -- Every writer of the state holds the lock taken above: a plain read is enough (a report on
  -- a day already frozen then writes nothing here).
  SELECT f.frozen_to INTO v_from FROM public.usage_user_rollup_state AS f WHERE f.id;
  IF NOT FOUND THEN
    INSERT INTO public.usage_user_rollup_state (id) VALUES (true) ON CONFLICT (id) DO NOTHING;
  END IF;
  IF v_from IS NULL THEN
    -- First freeze: from the earliest day with a counter or a denial (both by an index).
    v_from := LEAST((SELECT pg_catalog.min(d.usage_date) FROM public.daily_usage_summary AS d),
                    (SELECT pg_catalog.min(d.usage_date) FROM public.usage_user_days AS d),
                    v_to);
  END IF;
  IF v_from >= v_to THEN
    IF v_from IS DISTINCT FROM (SELECT f.frozen_to FROM public.usage_user_rollup_state AS f WHERE f.id) THEN
      UPDATE public.usage_user_rollup_state AS f SET frozen_to = v_from, updated_at = pg_catalog.now() WHERE f.id;
    END IF;
    RETURN 0;
  END IF;

  -- The counters of the days being frozen, per user and day.
  INSERT INTO public.usage_user_days AS d (usage_date, user_id, used)
  SELECT c.usage_date, c.user_id, pg_catalog.sum(c.count)::integer
    FROM public.daily_usage_summary AS c
   WHERE c.usage_date >= v_from AND c.usage_date < v_to
   GROUP BY c.usage_date, c.user_id
  ON CONFLICT (usage_date, user_id) DO UPDATE SET used = excluded.used WHERE d.used IS DISTINCT FROM excluded.used;
  UPDATE public.usage_user_days AS d SET used = 0
   WHERE d.usage_date >= v_from AND d.usage_date < v_to AND d.used IS NULL;

  INSERT INTO public.usage_daily_users AS t (usage_date, active, hit_limit)
  SELECT d.usage_date, pg_catalog.count(*)::integer, (pg_catalog.count(*) FILTER (WHERE d.limit_reached > 0))::integer
    FROM public.usage_user_days AS d
   WHERE d.usage_date >= v_from AND d.usage_date < v_to
   GROUP BY d.usage_date
  ON CONFLICT (usage_date) DO UPDATE SET active = excluded.active, hit_limit = excluded.hit_limit,
                                         updated_at = pg_catalog.now();

  -- Windows, from covering [v_from - n + 1, v_from - 1] to covering [v_to - n + 1, v_to - 1]: add
  -- the frozen days that enter, take out the days that leave (each was added when it entered).
  -- The first limit day: a window that had none takes the first of the days entering (they are
  -- later than every day it holds).
  INSERT INTO public.usage_user_windows AS w (days, user_id, used, denied, limit_days, active_days, first_limit_at, first_limit_plan)
  SELECT n.days, d.user_id,
         pg_catalog.sum(s.sign * d.used), pg_catalog.sum(s.sign * d.denied),
         pg_catalog.sum(s.sign * (d.limit_reached > 0)::integer), pg_catalog.sum(s.sign),
         pg_catalog.min(d.first_limit_at) FILTER (WHERE s.sign = 1),
         (pg_catalog.array_agg(d.first_limit_plan ORDER BY d.first_limit_at) FILTER (WHERE s.sign = 1 AND d.limit_reached > 0))[1]
    FROM (VALUES (7::smallint), (30::smallint), (90::smallint)) AS n(days)
   CROSS JOIN LATERAL (VALUES (1, GREATEST(v_from, v_to - n.days + 1), v_to - 1),
                              (-1, v_from - n.days + 1, LEAST(v_from - 1, v_to - n.days))) AS s(sign, lo, hi)
    JOIN public.usage_user_days AS d ON d.usage_date >= s.lo AND d.usage_date <= s.hi
   GROUP BY n.days, d.user_id
  ON CONFLICT (days, user_id) DO UPDATE SET
    used = w.used + excluded.used, denied = w.denied + excluded.denied,
    limit_days = w.limit_days + excluded.limit_days, active_days = w.active_days + excluded.active_days,
    first_limit_plan = CASE WHEN w.first_limit_at IS NULL THEN excluded.first_limit_plan ELSE w.first_limit_plan END,
    first_limit_at = COALESCE(w.first_limit_at, excluded.first_limit_at);
  -- A window whose first limit day left it: the first of the days it still holds, one index probe
  -- per such user (usage_user_days by user and day; only users with a limit on a day that left).
  UPDATE public.usage_user_windows AS w
     SET first_limit_at = f.first_limit_at, first_limit_plan = f.first_limit_plan
    FROM (SELECT n.days, d.user_id
            FROM (VALUES (7::smallint), (30::smallint), (90::smallint)) AS n(days)
            JOIN public.usage_user_days AS d
              ON d.limit_reached > 0
             AND d.usage_date >= v_from - n.days + 1 AND d.usage_date <= LEAST(v_from - 1, v_to - n.days)
           GROUP BY n.days, d.user_id) AS a
    LEFT JOIN LATERAL (
      SELECT r.first_limit_at, r.first_limit_plan
        FROM public.usage_user_days AS r
       WHERE r.user_id = a.user_id AND r.usage_date >= v_to - a.days + 1 AND r.usage_date <= v_to - 1
         AND r.limit_reached > 0
       ORDER BY r.usage_date
       LIMIT 1
    ) AS f ON true
   WHERE w.days = a.days AND w.user_id = a.user_id
     AND w.first_limit_at < ((v_to - a.days + 1)::timestamp AT TIME ZONE 'UTC');
  -- Rows whose last active day left the window: only users active on a day that left one.
  DELETE FROM public.usage_user_windows AS w
   WHERE w.active_days <= 0
     AND w.user_id IN (SELECT d.user_id FROM public.usage_user_days AS d
                        WHERE d.usage_date >= v_from - 89 AND d.usage_date <= LEAST(v_from - 1, v_to - 7));

  UPDATE public.usage_user_rollup_state AS f
     SET frozen_to = v_to, updated_at = pg_catalog.now(),
         limited_7 = (SELECT pg_catalog.count(*) FROM public.usage_user_windows AS w WHERE w.days = 7 AND w.limit_days > 0),
         limited_30 = (SELECT pg_catalog.count(*) FROM public.usage_user_windows AS w WHERE w.days = 30 AND w.limit_days > 0),
         limited_90 = (SELECT pg_catalog.count(*) FROM public.usage_user_windows AS w WHERE w.days = 90 AND w.limit_days > 0)
   WHERE f.id;
  RETURN v_to - v_from;
END;
$$;

-- 7. The rollup of sql/011, with the per-user days: the totals, then the denials (same bounds),
-- then the days that became complete are frozen. A watermark at '-infinity' (a re-roll) or set back
-- before the frozen days (by hand) starts the per-user tables over from the whole log.
CREATE OR REPLACE FUNCTION public.usage_rollup()
RETURNS BIGINT
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_from TIMESTAMP WITH TIME ZONE;
  v_to TIMESTAMP WITH TIME ZONE := pg_catalog.now() - INTERVAL '5 minutes';
  v_rows BIGINT;
  v_frozen DATE;
BEGIN
  IF NOT pg_catalog.pg_try_advisory_xact_lock(7303, 0) THEN
    RETURN 0;
  END IF;
  SELECT s.rolled_up_to INTO v_from FROM public.usage_rollup_state AS s WHERE s.id;
  IF v_from IS NULL THEN
    INSERT INTO public.usage_rollup_state (id) VALUES (true) ON CONFLICT (id) DO NOTHING;
    v_from := '-infinity';
  END IF;
  IF v_from >= v_to THEN
    RETURN 0;
  END IF;

  WITH calls AS (
    SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, u.action AS act,
           count(*) FILTER (WHERE u.allowed) AS n_allowed,
           count(*) FILTER (WHERE NOT u.allowed) AS n_denied
      FROM public.plugin_usage AS u
     WHERE u.created_at >= v_from AND u.created_at < v_to
     GROUP BY 1, 2
  ), added AS (
    INSERT INTO public.usage_daily_totals AS t (usage_date, action, allowed, denied)
    SELECT c.day, c.act, c.n_allowed, c.n_denied FROM calls AS c
    ON CONFLICT (usage_date, action)
    DO UPDATE SET allowed = t.allowed + excluded.allowed, denied = t.denied + excluded.denied,
                  updated_at = pg_catalog.now()
  )
  -- A data-modifying CTE runs whether or not it is read.
  SELECT COALESCE(sum(c.n_allowed + c.n_denied), 0)::bigint INTO v_rows FROM calls AS c;

  SELECT f.frozen_to INTO v_frozen FROM public.usage_user_rollup_state AS f WHERE f.id;
  IF v_from = '-infinity' OR v_from < (v_frozen::timestamp AT TIME ZONE 'UTC') THEN
    DELETE FROM public.usage_user_days;
    DELETE FROM public.usage_daily_users;
    DELETE FROM public.usage_user_windows;
    UPDATE public.usage_user_rollup_state AS f
       SET frozen_to = NULL, limited_7 = 0, limited_30 = 0, limited_90 = 0, updated_at = pg_catalog.now() WHERE f.id;
    PERFORM public.plugin_auth_build_user_days(v_to);
  ELSE
    PERFORM public.plugin_auth_roll_user_days(v_from, v_to);
  END IF;

  UPDATE public.usage_rollup_state AS s SET rolled_up_to = v_to, updated_at = pg_catalog.now() WHERE s.id;
  PERFORM public.plugin_auth_freeze_user_days((v_to AT TIME ZONE 'UTC')::date);
  RETURN v_rows;
END;
$$;

-- 8. Plan history from Figma: a row when a figma_users row is linked to a user, when its payment
-- status changes, and when a grant that had lapsed (no fresh payment token within the grace) comes
-- back, preceded by a row at the moment it lapsed. The row holds the best Figma grant in force
-- (the rule of plugin_auth_grants' figma branch): its plan, the link that grants it (PAID, TRIAL,
-- FIRST_USE) as status and its end as current_period_end; with no grant, the payment status and
-- no plan. A refresh of the same grant (every cache miss) records nothing: the dashboard reads
-- the latest grant_until from figma_users.
CREATE OR REPLACE FUNCTION public.plugin_auth_record_figma_history()
RETURNS TRIGGER
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.now();
  v_same_user BOOLEAN := TG_OP = 'UPDATE' AND OLD.user_id IS NOT DISTINCT FROM NEW.user_id;
BEGIN
  IF NEW.user_id IS NULL THEN
    RETURN NEW;
  END IF;
  -- Same user, same status: only a lapse and its return matter, and only for a status that grants
  -- a plan (an UNPAID user checked after the grace records nothing).
  IF v_same_user AND OLD.payment_status IS NOT DISTINCT FROM NEW.payment_status
     AND NOT EXISTS (SELECT 1 FROM public.figma_plan_links AS l WHERE l.link = NEW.payment_status) THEN
    RETURN NEW;
  END IF;
  IF v_same_user AND OLD.grant_until < NEW.checked_at AND OLD.grant_until < v_now
     AND EXISTS (SELECT 1 FROM public.figma_plan_links AS l WHERE l.link = OLD.payment_status) THEN
    INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
    VALUES (NEW.user_id, NULL, 'LAPSED', OLD.grant_until, false, 'figma', OLD.grant_until);
  END IF;
  INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
  SELECT NEW.user_id, g.plan_id, COALESCE(g.link, NEW.payment_status), COALESCE(g.until, NEW.grant_until),
         g.plan_id IS NOT NULL, 'figma', v_now
    FROM (SELECT NULL::integer AS nothing) AS one
    LEFT JOIN LATERAL (
      SELECT l.plan_id, l.link,
             CASE WHEN l.link = 'FIRST_USE' THEN NEW.first_seen_at + pg_catalog.make_interval(secs => l.trial_seconds)
                  ELSE NEW.grant_until END AS until
        FROM public.figma_plan_links AS l
        JOIN public.subscription_plans AS p ON p.id = l.plan_id
       WHERE (l.link = NEW.payment_status AND NEW.grant_until > v_now)
          OR (l.link = 'FIRST_USE' AND NEW.first_seen_at + pg_catalog.make_interval(secs => l.trial_seconds) > v_now)
       ORDER BY COALESCE(p.price_monthly, 0) DESC, l.link = 'FIRST_USE', l.link
       LIMIT 1
    ) AS g ON true;
  RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS plugin_auth_figma_history_write ON public.figma_users;
CREATE TRIGGER plugin_auth_figma_history_write
  AFTER INSERT ON public.figma_users
  FOR EACH ROW EXECUTE FUNCTION public.plugin_auth_record_figma_history();
DROP TRIGGER IF EXISTS plugin_auth_figma_history_change ON public.figma_users;
CREATE TRIGGER plugin_auth_figma_history_change
  AFTER UPDATE OF user_id, payment_status, grant_until ON public.figma_users
  FOR EACH ROW
  WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.payment_status IS DISTINCT FROM NEW.payment_status
        OR OLD.grant_until < NEW.checked_at)
  EXECUTE FUNCTION public.plugin_auth_record_figma_history();

-- 9. Plan history from seats: a row for the member when a seat is assigned (the team license's plan,
-- status and expiry) and when it is removed (no plan). A member deleted with the seat records nothing.
CREATE OR REPLACE FUNCTION public.plugin_auth_record_seat_history()
RETURNS TRIGGER
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = OLD.member_user_id) THEN
      INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
      VALUES (OLD.member_user_id, NULL, 'removed', NULL, false, 'seat', pg_catalog.now());
    END IF;
    RETURN OLD;
  END IF;
  INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
  SELECT NEW.member_user_id, t.plan_id, k.status, k.expires_at,
         t.plan_id IS NOT NULL AND k.status IN ('active', 'inactive')
           AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now()),
         'seat', pg_catalog.now()
    FROM public.licenses AS k
   CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
   WHERE k.id = NEW.license_id;
  RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS plugin_auth_seat_history_write ON public.seat_assignments;
CREATE TRIGGER plugin_auth_seat_history_write
  AFTER INSERT OR DELETE ON public.seat_assignments
  FOR EACH ROW EXECUTE FUNCTION public.plugin_auth_record_seat_history();

-- 10. sql/016's history row after a license changed state, now by what the license grants: a
-- personal license (one seat) grants its owner, a team license grants only its seats, so the
-- owner gets no row for it and each seated member gets one (source seat).
CREATE OR REPLACE FUNCTION public.license_record_history(p_license_id UUID) RETURNS VOID
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
  SELECT x.who, x.plan_id, x.status, x.expires_at,
         x.plan_id IS NOT NULL AND x.status IN ('active', 'inactive')
           AND (x.expires_at IS NULL OR x.expires_at > pg_catalog.now()),
         x.source, pg_catalog.now()
    FROM (
      SELECT k.user_id AS who, t.plan_id, k.status, k.expires_at, k.provider::varchar AS source
        FROM public.licenses AS k
       CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
       WHERE k.id = p_license_id AND COALESCE(t.seats, k.quantity) = 1
      UNION ALL
      SELECT a.member_user_id, t.plan_id, k.status, k.expires_at, 'seat'
        FROM public.licenses AS k
       CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
        JOIN public.seat_assignments AS a ON a.license_id = k.id
       WHERE k.id = p_license_id
    ) AS x;
END;
$$;

-- 11. Backfill, once (the state row is its mark): the denials already rolled up into the totals
-- (below the watermark), then every complete day frozen. On a database of 10 million calls this
-- takes about half a minute (docs/dashboard.md); on a new database nothing.
DO $plugin_auth_019_backfill$
DECLARE
  v_mark TIMESTAMP WITH TIME ZONE;
BEGIN
  IF EXISTS (SELECT 1 FROM public.usage_user_rollup_state AS f WHERE f.id) THEN
    RETURN;
  END IF;
  -- The rollup's lock: a rollup running now finishes first, and the watermark read below is its.
  PERFORM pg_catalog.pg_advisory_xact_lock(7303, 0);
  DELETE FROM public.usage_user_days;
  DELETE FROM public.usage_daily_users;
  DELETE FROM public.usage_user_windows;
  INSERT INTO public.usage_user_rollup_state (id, frozen_to) VALUES (true, NULL);
  SELECT s.rolled_up_to INTO v_mark FROM public.usage_rollup_state AS s WHERE s.id;
  IF v_mark IS NOT NULL AND v_mark > '-infinity' THEN
    PERFORM public.plugin_auth_build_user_days(v_mark);
    PERFORM public.plugin_auth_freeze_user_days((v_mark AT TIME ZONE 'UTC')::date);
  END IF;
END
$plugin_auth_019_backfill$;
