-- Usage metering besides the generated hot paths (sql/functions/generated/hot-paths.sql): the one
-- unknown_user check, refunds, the per-day summary, and retention.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.plugin_auth_require_user(p_user_id uuid)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
BEGIN
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.increment_daily_usage(p_user_id uuid, p_action character varying, p_date date DEFAULT ((now() AT TIME ZONE 'UTC'::text))::date)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_count INTEGER;
BEGIN
  IF p_action IS NULL OR p_action !~ '^[A-Za-z0-9_.:-]{1,64}$' THEN
    RAISE EXCEPTION 'invalid_action: action must be 1 to 64 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA003';
  END IF;
  IF p_date IS NULL THEN
    RAISE EXCEPTION 'invalid_date: p_date must not be null' USING ERRCODE = 'PA006';
  END IF;
  PERFORM public.plugin_auth_require_user(p_user_id);

  INSERT INTO public.daily_usage_summary AS d (user_id, action, usage_date, count)
  VALUES (p_user_id, p_action, p_date, 1)
  ON CONFLICT (user_id, action, usage_date)
  DO UPDATE SET count = d.count + 1, updated_at = NOW()
  RETURNING d.count INTO v_count;

  RETURN v_count;
END;
$function$;

CREATE OR REPLACE FUNCTION public.refund_usage(p_user_id uuid, p_idempotency_key text)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_action VARCHAR;
  v_date DATE;
BEGIN
  IF p_idempotency_key IS NULL OR pg_catalog.length(p_idempotency_key) NOT BETWEEN 1 AND 255
      OR p_idempotency_key ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'invalid_idempotency_key: the key must be 1 to 255 characters without control characters'
      USING ERRCODE = 'PA004';
  END IF;

  -- Same lock as consume_usage: a refund racing the consume it refunds waits for it to commit.
  PERFORM pg_catalog.pg_advisory_xact_lock(7301, pg_catalog.hashtext(p_user_id::text || ':' || p_idempotency_key));

  -- The row lock of this UPDATE makes a concurrent second refund find refunded_at set: once only.
  UPDATE public.plugin_usage AS u SET refunded_at = pg_catalog.now()
   WHERE u.user_id = p_user_id AND u.idempotency_key = p_idempotency_key
     AND u.allowed AND u.refunded_at IS NULL
  RETURNING u.action, (u.created_at AT TIME ZONE 'UTC')::date INTO v_action, v_date;

  IF NOT FOUND THEN
    PERFORM public.plugin_auth_require_user(p_user_id);
    IF NOT EXISTS (SELECT 1 FROM public.plugin_usage AS u
                    WHERE u.user_id = p_user_id AND u.idempotency_key = p_idempotency_key) THEN
      RAISE EXCEPTION 'unknown_idempotency_key: no usage of this user was recorded with this key'
        USING ERRCODE = 'PA008';
    END IF;
    RETURN false;
  END IF;

  UPDATE public.daily_usage_summary AS d
     SET count = GREATEST(d.count - 1, 0), updated_at = pg_catalog.now()
   WHERE d.user_id = p_user_id AND d.action = v_action AND d.usage_date = v_date;
  RETURN true;
END;
$function$;

CREATE OR REPLACE FUNCTION public.usage_summary(p_user_id uuid, p_from date DEFAULT NULL::date, p_to date DEFAULT NULL::date)
 RETURNS TABLE(usage_date date, action character varying, used integer, allowed integer, denied integer, refunded integer)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_column
DECLARE
  v_to DATE := COALESCE(p_to, (pg_catalog.now() AT TIME ZONE 'UTC')::date);
  v_from DATE := COALESCE(p_from, v_to - 29);
BEGIN
  IF v_from > v_to OR v_from = '-infinity'::date OR v_to = 'infinity'::date THEN
    RAISE EXCEPTION 'invalid_date: from must be a date on or before to' USING ERRCODE = 'PA006';
  END IF;
  PERFORM public.plugin_auth_require_user(p_user_id);

  RETURN QUERY
  WITH counters AS (
    SELECT d.usage_date AS day, d.action AS act, d.count AS n
      FROM public.daily_usage_summary AS d
     WHERE d.user_id = p_user_id AND d.usage_date BETWEEN v_from AND v_to
  ), calls AS (
    SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, u.action AS act,
           count(*) FILTER (WHERE u.allowed)::integer AS n_allowed,
           count(*) FILTER (WHERE NOT u.allowed)::integer AS n_denied,
           count(*) FILTER (WHERE u.refunded_at IS NOT NULL)::integer AS n_refunded
      FROM public.plugin_usage AS u
     WHERE u.user_id = p_user_id
       AND u.created_at >= v_from::timestamp AT TIME ZONE 'UTC'
       AND u.created_at < (v_to + 1)::timestamp AT TIME ZONE 'UTC'
     GROUP BY 1, 2
  )
  SELECT COALESCE(c.day, l.day), COALESCE(c.act, l.act)::varchar, COALESCE(c.n, 0),
         COALESCE(l.n_allowed, 0), COALESCE(l.n_denied, 0), COALESCE(l.n_refunded, 0)
    FROM counters AS c
    FULL JOIN calls AS l ON l.day = c.day AND l.act = c.act
   ORDER BY 1, 2;
END;
$function$;

CREATE OR REPLACE FUNCTION public.purge_usage_batch(p_older_than timestamp with time zone, p_batch_size integer DEFAULT 1000, p_after timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(deleted integer, last_created_at timestamp with time zone)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
DECLARE
  v_cutoff TIMESTAMP WITH TIME ZONE;
BEGIN
  IF p_older_than IS NULL OR p_older_than > pg_catalog.now() - INTERVAL '1 day' THEN
    RAISE EXCEPTION 'invalid_cutoff: keep at least the last day of calls (older_than must be at least 1 day ago)'
      USING ERRCODE = 'PA024';
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
$function$;
