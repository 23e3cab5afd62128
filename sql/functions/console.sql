-- The operator's console (src/dashboard/console.ts, docs/dashboard.md): the actions that have no
-- function of their own elsewhere.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.console_refund_today(p_user_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_today DATE := (pg_catalog.now() AT TIME ZONE 'UTC')::date;
  v_refunded INTEGER;
BEGIN
  PERFORM public.plugin_auth_require_user(p_user_id);
  -- The counters first: a consume holding one commits its log row before this goes on, and one
  -- that comes after waits and counts from zero.
  PERFORM 1 FROM public.daily_usage_summary AS d
   WHERE d.user_id = p_user_id AND d.usage_date = v_today
   ORDER BY d.action
     FOR UPDATE;
  UPDATE public.plugin_usage AS u SET refunded_at = pg_catalog.now()
   WHERE u.user_id = p_user_id AND u.allowed AND u.refunded_at IS NULL
     AND u.created_at >= v_today::timestamp AT TIME ZONE 'UTC';
  GET DIAGNOSTICS v_refunded = ROW_COUNT;
  UPDATE public.daily_usage_summary AS d SET count = 0, updated_at = pg_catalog.now()
   WHERE d.user_id = p_user_id AND d.usage_date = v_today AND d.count <> 0;
  RETURN v_refunded;
END;
$function$;
