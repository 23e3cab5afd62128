-- 011: growth: a 30-day report that stays flat as plugin_usage grows, and batched retention.
-- SQLSTATEs PA070-PA079:
--   PA070 invalid_days   PA071 invalid_cutoff   PA072 invalid_batch_size
--
-- Why a rollup table and not an index: a report of calls per day across all users over 30 days
-- reads every call of those 30 days from plugin_usage (3.3 million rows at 10 million rows per 90
-- days), index or not: its cost grows with the traffic. usage_daily_totals keeps one row per UTC day
-- and action, filled incrementally from the existing created_at index (no new index on
-- plugin_usage, so consume pays nothing more); the report reads 30 days x actions rows from it
-- plus the few minutes of calls not yet rolled up. Totals outlive retention: purge_usage_batch
-- never deletes a call that is not rolled up yet.
--
-- The rollup lag: a call is rolled up once its created_at (its transaction's start) is more than
-- 5 minutes old, so a consume still in flight when the rollup runs is not skipped (a consume is
-- one short statement; one that runs more than 5 minutes would be left out of the totals).

-- Calls per UTC day and action, across all users (allowed and denied as logged; refunds do not
-- change them: usage_summary shows them per user).
CREATE TABLE IF NOT EXISTS public.usage_daily_totals (
  usage_date DATE NOT NULL,
  action VARCHAR(64) NOT NULL,
  allowed BIGINT NOT NULL DEFAULT 0,
  denied BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  CONSTRAINT usage_daily_totals_pkey PRIMARY KEY (usage_date, action),
  CONSTRAINT usage_daily_totals_counts_check CHECK (allowed >= 0 AND denied >= 0)
);

-- One row: calls with created_at < rolled_up_to are in usage_daily_totals, the others are not.
CREATE TABLE IF NOT EXISTS public.usage_rollup_state (
  id BOOLEAN PRIMARY KEY DEFAULT true,
  rolled_up_to TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT '-infinity',
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  CONSTRAINT usage_rollup_state_single_row CHECK (id)
);
INSERT INTO public.usage_rollup_state (id) VALUES (true) ON CONFLICT (id) DO NOTHING;

COMMENT ON TABLE public.usage_daily_totals IS 'calls per UTC day and action across all users, for reports';
COMMENT ON TABLE public.usage_rollup_state IS 'how far plugin_usage is rolled up into usage_daily_totals';

-- Adds the calls from rolled_up_to to now() - 5 minutes to the totals; returns how many. One
-- rollup at a time (transaction advisory lock, namespace 7303): a caller that finds it taken
-- returns 0 at once, the running one covers its calls. Reads plugin_usage by its created_at index.
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

  UPDATE public.usage_rollup_state AS s SET rolled_up_to = v_to, updated_at = pg_catalog.now() WHERE s.id;
  RETURN v_rows;
END;
$$;

-- Calls per UTC day and action over the last p_days days (today included), across all users.
-- Rolls up first, then reads totals and the not-yet-rolled-up calls in one statement (one
-- snapshot, so a concurrent rollup is counted either entirely or not at all). Days without calls
-- are left out.
CREATE OR REPLACE FUNCTION public.usage_report(p_days INTEGER DEFAULT 30)
RETURNS TABLE (usage_date DATE, action VARCHAR, allowed BIGINT, denied BIGINT)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
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
$$;

-- Retention: deletes at most p_batch_size calls older than p_older_than (and already rolled up),
-- oldest first from p_after on, and returns how many and the newest created_at deleted (the next
-- batch's p_after: each batch starts where the previous one stopped instead of stepping over the
-- dead index entries the previous batches left). One call = one short transaction: rows locked by
-- someone else (a refund) are skipped, never waited for. daily_usage_summary is never touched: the
-- counters are the limits (lifetime plans count every day).
CREATE OR REPLACE FUNCTION public.purge_usage_batch(
  p_older_than TIMESTAMP WITH TIME ZONE,
  p_batch_size INTEGER DEFAULT 1000,
  p_after TIMESTAMP WITH TIME ZONE DEFAULT NULL
) RETURNS TABLE (deleted INTEGER, last_created_at TIMESTAMP WITH TIME ZONE)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
  v_cutoff TIMESTAMP WITH TIME ZONE;
BEGIN
  IF p_older_than IS NULL OR p_older_than > pg_catalog.now() - INTERVAL '1 day' THEN
    RAISE EXCEPTION 'invalid_cutoff: keep at least the last day of calls (older_than must be at least 1 day ago)'
      USING ERRCODE = 'PA071';
  END IF;
  IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 100000 THEN
    RAISE EXCEPTION 'invalid_batch_size: batch size must be an integer from 1 to 100000' USING ERRCODE = 'PA072';
  END IF;
  SELECT LEAST(p_older_than, s.rolled_up_to) INTO v_cutoff FROM public.usage_rollup_state AS s WHERE s.id;

  RETURN QUERY
  WITH picked AS (
    SELECT u.id FROM public.plugin_usage AS u
     WHERE u.created_at < v_cutoff AND u.created_at >= COALESCE(p_after, '-infinity')
     ORDER BY u.created_at
     LIMIT p_batch_size
       FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM public.plugin_usage AS u USING picked AS p WHERE u.id = p.id
    RETURNING u.created_at
  )
  SELECT count(*)::integer, max(g.created_at) FROM gone AS g;
END;
$$;
