\set n random(1, 10000)
SELECT CASE WHEN t.token_hash IS DISTINCT FROM pg_catalog.md5(:n) || pg_catalog.md5(:n) THEN 'invalid'
            WHEN t.revoked_at IS NOT NULL THEN 'revoked'
            WHEN t.expires_at <= pg_catalog.now() THEN 'expired' ELSE 'ok' END AS status,
       t.user_id, t.expires_at, t.device_name
  FROM public.plugin_tokens AS t
 WHERE t.id = ('70000000-0000-4000-8000-' || pg_catalog.lpad(:n, 12, '0'))::uuid;
