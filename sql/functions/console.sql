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
  v_refunded INTEGER := 0;
  v_row RECORD;
BEGIN
  PERFORM public.plugin_auth_require_user(p_user_id);
  -- As refund_usage, for every call counted today: each refunded log row takes one off its
  -- action's counter. A consume running meanwhile commits its counter and its log row together:
  -- its row is either seen here (refunded, and its count taken off) or not (and its count stays).
  FOR v_row IN
    WITH gone AS (
      UPDATE public.plugin_usage AS u SET refunded_at = pg_catalog.now()
       WHERE u.user_id = p_user_id AND u.allowed AND u.refunded_at IS NULL
         AND u.created_at >= v_today::timestamp AT TIME ZONE 'UTC'
      RETURNING u.action, (u.created_at AT TIME ZONE 'UTC')::date AS usage_date
    )
    SELECT g.action, g.usage_date, pg_catalog.count(*)::integer AS n FROM gone AS g GROUP BY 1, 2 ORDER BY 1, 2
  LOOP
    UPDATE public.daily_usage_summary AS d
       SET count = GREATEST(d.count - v_row.n, 0), updated_at = pg_catalog.now()
     WHERE d.user_id = p_user_id AND d.action = v_row.action AND d.usage_date = v_row.usage_date;
    v_refunded := v_refunded + v_row.n;
  END LOOP;
  RETURN v_refunded;
END;
$function$;
