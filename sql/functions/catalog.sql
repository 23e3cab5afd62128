-- plugin_auth_catalog(): the live schema as JSON, read by setup, verify and status.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.plugin_auth_catalog()
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  WITH RECURSIVE schema AS (
    SELECT n.oid, n.nspowner, n.nspacl FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public'
  ), mine (oid) AS (
    -- The calling role and every role it is a member of (pg_has_role would say "all" for a superuser).
    SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER
    UNION
    SELECT am.roleid FROM pg_catalog.pg_auth_members am JOIN mine m ON am.member = m.oid
  ), owners (oid) AS (
    -- The schema's owner and its members; pg_database_owner's member is the database's owner.
    SELECT s.nspowner FROM schema s
    UNION
    SELECT d.datdba FROM pg_catalog.pg_database d, schema s
     WHERE d.datname = pg_catalog.current_database() AND pg_catalog.pg_get_userbyid(s.nspowner) = 'pg_database_owner'
    UNION
    SELECT am.member FROM pg_catalog.pg_auth_members am JOIN owners o ON am.roleid = o.oid
  ), trusted AS (
    -- Roles whose code may run as us: superusers, the schema's owner and its members, and the
    -- calling role with every role it is a member of (it could act as them anyway).
    SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolsuper
    UNION SELECT m.oid FROM mine m
    UNION SELECT o.oid FROM owners o
  )
  SELECT jsonb_build_object(
    'serverVersion', pg_catalog.current_setting('server_version'),
    'serverVersionNum', pg_catalog.current_setting('server_version_num')::int,
    'database', pg_catalog.current_database(),
    'tables', COALESCE((
      SELECT jsonb_agg(jsonb_build_object(
        'name', c.relname,
        'comment', pg_catalog.obj_description(c.oid, 'pg_class'),
        'rls', c.relrowsecurity,
        'owner', pg_catalog.pg_get_userbyid(c.relowner),
        'ownerTrusted', c.relowner IN (SELECT t.oid FROM trusted t),
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
            'definition', pg_catalog.pg_get_constraintdef(k.oid),
            -- The constrained columns in key order (a check constraint: the columns it uses).
            'columns', COALESCE((
              SELECT pg_catalog.jsonb_agg(a.attname ORDER BY u.ord)
                FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
                LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum), '[]'::jsonb),
            -- A foreign key's referenced table and columns, in the order of 'columns'; null otherwise.
            'references', CASE WHEN k.contype = 'f' THEN pg_catalog.jsonb_build_object(
              'table', (SELECT r.relname FROM pg_catalog.pg_class r WHERE r.oid = k.confrelid),
              'columns', (
                SELECT pg_catalog.jsonb_agg(a.attname ORDER BY u.ord)
                  FROM pg_catalog.unnest(k.confkey) WITH ORDINALITY AS u(attnum, ord)
                  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum)
            ) END
          ) ORDER BY k.conname)
          FROM pg_catalog.pg_constraint k
          -- PostgreSQL 18 also catalogs NOT NULL as constraints ('n'); columns carry that already.
          WHERE k.conrelid = c.oid AND k.contype IN ('p', 'u', 'f', 'c', 'x')), '[]'::jsonb),
        'indexes', COALESCE((
          SELECT jsonb_agg(jsonb_build_object(
            'name', i.relname,
            'definition', pg_catalog.pg_get_indexdef(x.indexrelid),
            -- The key columns in order (not the INCLUDE ones); null for an expression.
            'columns', (
              SELECT pg_catalog.jsonb_agg(a.attname ORDER BY s.n)
                FROM pg_catalog.generate_series(0, x.indnkeyatts - 1) AS s(n)
                LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[s.n]),
            'unique', x.indisunique,
            -- A partial index's WHERE condition as pg_get_expr prints it (pretty), or null.
            'predicate', pg_catalog.pg_get_expr(x.indpred, x.indrelid, true)
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
        'owner', pg_catalog.pg_get_userbyid(p.proowner),
        'ownerTrusted', p.proowner IN (SELECT t.oid FROM trusted t),
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
      FROM public.plugin_auth_migrations m), '[]'::jsonb),
    'security', jsonb_build_object(
      'serviceRole', EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'service_role'),
      -- Who may create objects in public besides the trusted roles ('PUBLIC': everyone).
      'schemaCreate', COALESCE((
        SELECT jsonb_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END)
          FROM schema s, pg_catalog.aclexplode(s.nspacl) a
         WHERE a.privilege_type = 'CREATE'
           AND (a.grantee = 0 OR a.grantee NOT IN (SELECT t.oid FROM trusted t))), '[]'::jsonb),
      -- Operators outside pg_catalog that an expression over built-in types could bind to instead
      -- of a pg_catalog operator: the same name and kind, argument types of pg_catalog that equal,
      -- or implicitly cast to, the built-in operator's. Operators on an extension's own types
      -- (citext, hstore, vector, ltree ...) never match: our columns are all of built-in types.
      'operators', COALESCE((
        SELECT jsonb_agg(o.oid::pg_catalog.regoperator::text ORDER BY o.oid::pg_catalog.regoperator::text)
          FROM pg_catalog.pg_operator o
          LEFT JOIN pg_catalog.pg_type lt ON lt.oid = o.oprleft
          LEFT JOIN pg_catalog.pg_type rt ON rt.oid = o.oprright
         WHERE o.oprnamespace <> 'pg_catalog'::regnamespace
           AND (o.oprleft = 0 OR lt.typnamespace = 'pg_catalog'::regnamespace)
           AND (o.oprright = 0 OR rt.typnamespace = 'pg_catalog'::regnamespace)
           AND EXISTS (
             SELECT 1 FROM pg_catalog.pg_operator b
              WHERE b.oprnamespace = 'pg_catalog'::regnamespace
                AND b.oprname = o.oprname AND b.oprkind = o.oprkind
                AND (b.oprleft = o.oprleft OR EXISTS (
                      SELECT 1 FROM pg_catalog.pg_cast k
                       WHERE k.castsource = o.oprleft AND k.casttarget = b.oprleft AND k.castcontext = 'i'))
                AND (b.oprright = o.oprright OR EXISTS (
                      SELECT 1 FROM pg_catalog.pg_cast k
                       WHERE k.castsource = o.oprright AND k.casttarget = b.oprright AND k.castcontext = 'i')))
      ), '[]'::jsonb)
    )
  );
$function$;
