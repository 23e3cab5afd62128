\set n random(1, 10000)
WITH t AS (
  SELECT t.ctid AS row_id, t.user_id, t.token_hash, t.revoked_at, t.expires_at, t.device_name, t.device_id, t.last_used_at
    FROM public.plugin_tokens AS t
   WHERE t.id = ('80000000-0000-4000-8000-' || pg_catalog.lpad(:n, 12, '0'))::uuid
), touched AS (
  UPDATE public.plugin_tokens AS p SET last_used_at = pg_catalog.now()
    FROM t
   WHERE p.ctid = t.row_id
     AND t.token_hash = pg_catalog.md5('b' || :n) || pg_catalog.md5('b' || :n) AND t.revoked_at IS NULL AND t.expires_at > pg_catalog.now()
     AND (t.last_used_at IS NULL OR t.last_used_at < pg_catalog.now() - INTERVAL '1 minute')
  RETURNING 1
)
SELECT CASE WHEN t.token_hash IS DISTINCT FROM pg_catalog.md5('b' || :n) || pg_catalog.md5('b' || :n) THEN 'invalid'
            WHEN t.revoked_at IS NOT NULL THEN 'revoked'
            WHEN t.expires_at <= pg_catalog.now() THEN 'expired' ELSE 'ok' END AS status,
       t.user_id, t.expires_at, t.device_name, t.device_id
  FROM t;
