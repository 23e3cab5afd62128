-- One SQLSTATE per error code: invalid_cutoff is PA024 everywhere (purge_usage_batch raised it as
-- PA071 since sql/011). The table of codes and SQLSTATEs is src/core/errors.ts (ERRORS); the
-- function is otherwise sql/011's, unchanged.
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
$$;
