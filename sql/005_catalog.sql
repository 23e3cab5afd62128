-- 005: the catalog as this package sees it, as one JSON document.
-- Setup's report, `verify`, `status` and `diagram` all read the live schema through this function,
-- so they work the same over a direct connection, PGlite, or Supabase's REST API (rpc), and every
-- figure they print comes from the catalog, never from constants.
CREATE OR REPLACE FUNCTION public.plugin_auth_catalog() RETURNS JSONB
LANGUAGE sql
STABLE
SET search_path = ''
AS $$
  SELECT jsonb_build_object(
    'serverVersion', pg_catalog.current_setting('server_version'),
    'serverVersionNum', pg_catalog.current_setting('server_version_num')::int,
    'database', pg_catalog.current_database(),
    'tables', COALESCE((
      SELECT jsonb_agg(jsonb_build_object(
        'name', c.relname,
        'comment', pg_catalog.obj_description(c.oid, 'pg_class'),
        'rls', c.relrowsecurity,
        'acl', COALESCE(c.relacl::text[], ARRAY[]::text[]),
        'columns', (
          SELECT jsonb_agg(jsonb_build_object(
            'name', a.attname,
            'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
            'notNull', a.attnotnull,
            'default', pg_catalog.pg_get_expr(d.adbin, d.adrelid),
            'identity', a.attidentity::text
          ) ORDER BY a.attnum)
          FROM pg_catalog.pg_attribute a
          LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
        'constraints', COALESCE((
          SELECT jsonb_agg(jsonb_build_object(
            'name', k.conname,
            'type', k.contype::text,
            'definition', pg_catalog.pg_get_constraintdef(k.oid)
          ) ORDER BY k.conname)
          FROM pg_catalog.pg_constraint k
          -- PostgreSQL 18 also catalogs NOT NULL as constraints ('n'); columns carry that already.
          WHERE k.conrelid = c.oid AND k.contype IN ('p', 'u', 'f', 'c', 'x')), '[]'::jsonb),
        'indexes', COALESCE((
          SELECT jsonb_agg(jsonb_build_object(
            'name', i.relname,
            'definition', pg_catalog.pg_get_indexdef(x.indexrelid)
          ) ORDER BY i.relname)
          FROM pg_catalog.pg_index x
          JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
          WHERE x.indrelid = c.oid), '[]'::jsonb)
      ) ORDER BY c.relname)
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                        WHERE e.classid = 'pg_catalog.pg_class'::regclass
                          AND e.objid = c.oid AND e.deptype = 'e')), '[]'::jsonb),
    'functions', COALESCE((
      SELECT jsonb_agg(jsonb_build_object(
        'name', p.proname,
        'arguments', pg_catalog.pg_get_function_identity_arguments(p.oid),
        'result', pg_catalog.pg_get_function_result(p.oid),
        'language', l.lanname,
        'securityDefiner', p.prosecdef,
        'volatility', p.provolatile::text,
        'config', COALESCE(p.proconfig, ARRAY[]::text[]),
        'acl', COALESCE(p.proacl::text[], ARRAY[]::text[]),
        'sourceMd5', pg_catalog.md5(p.prosrc)
      ) ORDER BY p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid))
      FROM pg_catalog.pg_proc p
      JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      JOIN pg_catalog.pg_language l ON l.oid = p.prolang
      WHERE n.nspname = 'public'
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                        WHERE e.classid = 'pg_catalog.pg_proc'::regclass
                          AND e.objid = p.oid AND e.deptype = 'e')), '[]'::jsonb),
    'plans', COALESCE((
      SELECT jsonb_agg(jsonb_build_object(
        'slug', sp.plan_slug,
        'name', sp.name,
        'priceMonthly', sp.price_monthly,
        'limits', sp.limits,
        'features', pg_catalog.to_jsonb(sp.features),
        'isActive', sp.is_active,
        'stripeProductId', sp.stripe_product_id,
        'stripePriceId', sp.stripe_price_id
      ) ORDER BY sp.price_monthly, sp.plan_slug)
      FROM public.subscription_plans sp), '[]'::jsonb),
    'migrations', COALESCE((
      SELECT jsonb_agg(jsonb_build_object(
        'version', m.version,
        'name', m.name,
        'checksum', m.checksum,
        'appliedAt', m.applied_at
      ) ORDER BY m.version)
      FROM public.plugin_auth_migrations m), '[]'::jsonb)
  );
$$;
