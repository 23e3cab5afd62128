-- The usage rollups behind the dashboard and usage_report.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.usage_rollup()
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.plugin_auth_roll_user_days(p_from timestamp with time zone, p_to timestamp with time zone)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.plugin_auth_build_user_days(p_to timestamp with time zone)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.plugin_auth_freeze_user_days(p_to date)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.usage_report(p_days integer DEFAULT 30)
 RETURNS TABLE(usage_date date, action character varying, allowed bigint, denied bigint)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
DECLARE
  v_from DATE;
  v_since TIMESTAMP WITH TIME ZONE;
BEGIN
  IF p_days IS NULL OR p_days < 1 OR p_days > 366 THEN
    RAISE EXCEPTION 'invalid_days: days must be an integer from 1 to 366' USING ERRCODE = 'PA070';
  END IF;
  v_from := (pg_catalog.now() AT TIME ZONE 'UTC')::date - (p_days - 1);
  PERFORM public.usage_rollup();
  -- The index range bound as a value, so that every plan (also a cached generic one) scans only
  -- the recent end of the created_at index. The statement below re-reads the watermark in its own
  -- snapshot and filters on it: a rollup committed in between is then counted once, in the totals.
  SELECT GREATEST(s.rolled_up_to, v_from::timestamp AT TIME ZONE 'UTC') INTO v_since
    FROM public.usage_rollup_state AS s WHERE s.id;

  RETURN QUERY
  WITH recent AS (
    SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, u.action AS act,
           count(*) FILTER (WHERE u.allowed) AS n_allowed,
           count(*) FILTER (WHERE NOT u.allowed) AS n_denied
      FROM public.plugin_usage AS u
     WHERE u.created_at >= v_since
       AND u.created_at >= (SELECT s.rolled_up_to FROM public.usage_rollup_state AS s WHERE s.id)
     GROUP BY 1, 2
  ), rolled AS (
    SELECT t.usage_date AS day, t.action AS act, t.allowed AS n_allowed, t.denied AS n_denied
      FROM public.usage_daily_totals AS t
     WHERE t.usage_date >= v_from
  )
  SELECT x.day, x.act::varchar, sum(x.n_allowed)::bigint, sum(x.n_denied)::bigint
    FROM (SELECT * FROM rolled UNION ALL SELECT * FROM recent) AS x
   WHERE x.day >= v_from
   GROUP BY x.day, x.act
   ORDER BY x.day, x.act;
END;
$function$;
