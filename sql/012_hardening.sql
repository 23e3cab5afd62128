-- 012: hardening. SQLSTATEs PA013-PA015:
--   PA013 untrusted_object   PA014 schema_create_open   PA015 invalid_object
--
-- 1. The security helpers of 009 took the object to lock down as text and pasted it into REVOKE
--    with %s, and service_role could execute them: a caller with the service-role key could run
--    any SQL. They are replaced by helpers that take a regclass / regprocedure (PostgreSQL parses
--    and quotes the name; a string that is not one object's name is an error, never SQL), and
--    that nobody but their owner may execute (setup's security step revokes EXECUTE from PUBLIC,
--    anon, authenticated and service_role).
-- 2. service_role gets exactly SELECT, INSERT, UPDATE, DELETE on our tables: Supabase's default
--    privileges also give it TRUNCATE, REFERENCES and TRIGGER (and MAINTAIN on PostgreSQL 17),
--    which setup now takes back. Sequences (identity columns, which need no privilege to insert)
--    give nothing to anyone but the owner.
-- 3. plugin_auth_catalog() also reports who owns each table and function, whether that owner is a
--    trusted role, who besides the trusted roles may CREATE in public, and operators that shadow a
--    pg_catalog operator: setup refuses such a database (untrusted_object, schema_create_open) and
--    `verify` reports the same objects. The rules: src/trust.ts and docs/security.md.

DROP FUNCTION IF EXISTS public.plugin_auth_secure(TEXT[], TEXT[]);
DROP FUNCTION IF EXISTS public.plugin_auth_revoke_public(TEXT, TEXT, ACLITEM[], TEXT[]);

-- Takes every privilege on one table or sequence away from PUBLIC and the given roles (those that
-- exist), when its ACL gives them any; true when it revoked something. A NULL ACL counts as open:
-- revoking makes it explicit, so taking back a hand-made grant later returns it to the same state.
CREATE OR REPLACE FUNCTION public.plugin_auth_revoke_public(p_object REGCLASS, p_roles TEXT[])
RETURNS BOOLEAN
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_kind TEXT;
  v_acl ACLITEM[];
  v_roles TEXT[];
  v_role TEXT;
BEGIN
  SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' WHEN c.relkind IN ('r', 'p') THEN 'TABLE' END, c.relacl
    INTO v_kind, v_acl
    FROM pg_catalog.pg_class c WHERE c.oid = p_object;
  IF v_kind IS NULL THEN
    RAISE EXCEPTION 'invalid_object: % is not a table or a sequence', p_object USING ERRCODE = 'PA015';
  END IF;
  SELECT COALESCE(pg_catalog.array_agg(r.rolname::TEXT ORDER BY r.rolname), ARRAY[]::TEXT[]) INTO v_roles
    FROM pg_catalog.pg_roles r WHERE r.rolname = ANY (COALESCE(p_roles, ARRAY[]::TEXT[]));
  IF v_acl IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM pg_catalog.aclexplode(v_acl) a
        WHERE a.grantee = 0 OR a.grantee IN (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = ANY (v_roles))) THEN
    RETURN false;
  END IF;
  EXECUTE pg_catalog.format('REVOKE ALL ON %s %s FROM PUBLIC', v_kind, p_object);
  FOREACH v_role IN ARRAY v_roles LOOP
    EXECUTE pg_catalog.format('REVOKE ALL ON %s %s FROM %I', v_kind, p_object, v_role);
  END LOOP;
  RETURN true;
END;
$$;

-- The same for one function: a NULL ACL is the default one, EXECUTE for PUBLIC.
CREATE OR REPLACE FUNCTION public.plugin_auth_revoke_public_function(p_function REGPROCEDURE, p_roles TEXT[])
RETURNS BOOLEAN
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_acl ACLITEM[];
  v_roles TEXT[];
  v_role TEXT;
BEGIN
  SELECT p.proacl INTO v_acl FROM pg_catalog.pg_proc p WHERE p.oid = p_function;
  SELECT COALESCE(pg_catalog.array_agg(r.rolname::TEXT ORDER BY r.rolname), ARRAY[]::TEXT[]) INTO v_roles
    FROM pg_catalog.pg_roles r WHERE r.rolname = ANY (COALESCE(p_roles, ARRAY[]::TEXT[]));
  IF v_acl IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM pg_catalog.aclexplode(v_acl) a
        WHERE a.grantee = 0 OR a.grantee IN (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = ANY (v_roles))) THEN
    RETURN false;
  END IF;
  EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', p_function);
  FOREACH v_role IN ARRAY v_roles LOOP
    EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %I', p_function, v_role);
  END LOOP;
  RETURN true;
END;
$$;

-- Locks down the objects it is given, exactly (setup passes this package's tables and functions by
-- oid, from the generated schema snapshot: never an overload someone else created), and returns one
-- line per change it made (a re-run that finds everything in place returns none, changes nothing
-- and takes no lock):
-- - tables: RLS on; nothing for PUBLIC, anon, authenticated; exactly SELECT, INSERT, UPDATE, DELETE
--   for service_role where it exists; their sequences: nothing for anyone but the owner.
-- - p_functions: nothing for PUBLIC, anon, authenticated; EXECUTE for service_role.
-- - p_owner_only (these security helpers): nothing for anyone but the owner.
CREATE OR REPLACE FUNCTION public.plugin_auth_secure(
  p_tables REGCLASS[],
  p_functions REGPROCEDURE[],
  p_owner_only REGPROCEDURE[]
) RETURNS SETOF TEXT
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_table REGCLASS;
  v_sequence REGCLASS;
  v_function REGPROCEDURE;
  v_public_roles TEXT[] := ARRAY['anon', 'authenticated'];
  v_service OID;
  v_privileges TEXT[];
BEGIN
  SELECT r.oid INTO v_service FROM pg_catalog.pg_roles r WHERE r.rolname = 'service_role';

  FOREACH v_table IN ARRAY COALESCE(p_tables, ARRAY[]::REGCLASS[]) LOOP
    IF NOT (SELECT c.relrowsecurity FROM pg_catalog.pg_class c WHERE c.oid = v_table) THEN
      EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_table);
      RETURN NEXT pg_catalog.format('row level security on table %s', v_table);
    END IF;
    IF public.plugin_auth_revoke_public(v_table, v_public_roles) THEN
      RETURN NEXT pg_catalog.format('no privilege for PUBLIC, anon or authenticated on table %s', v_table);
    END IF;
    IF v_service IS NOT NULL THEN
      SELECT pg_catalog.array_agg(a.privilege_type || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
                                  ORDER BY a.privilege_type)
        INTO v_privileges
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
       WHERE c.oid = v_table AND a.grantee = v_service;
      IF v_privileges IS DISTINCT FROM ARRAY['DELETE', 'INSERT', 'SELECT', 'UPDATE'] THEN
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM service_role', v_table);
        EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO service_role', v_table);
        RETURN NEXT pg_catalog.format('exactly SELECT, INSERT, UPDATE, DELETE for service_role on table %s', v_table);
      END IF;
    END IF;
    -- Sequences behind identity / serial columns.
    FOR v_sequence IN
      SELECT d.objid::REGCLASS FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
       WHERE d.refobjid = v_table AND d.classid = 'pg_catalog.pg_class'::REGCLASS AND d.deptype IN ('a', 'i')
    LOOP
      IF public.plugin_auth_revoke_public(v_sequence, v_public_roles || ARRAY['service_role']) THEN
        RETURN NEXT pg_catalog.format('no privilege for anyone but the owner on sequence %s', v_sequence);
      END IF;
    END LOOP;
  END LOOP;

  FOREACH v_function IN ARRAY COALESCE(p_functions, ARRAY[]::REGPROCEDURE[]) LOOP
    IF public.plugin_auth_revoke_public_function(v_function, v_public_roles) THEN
      RETURN NEXT pg_catalog.format('no EXECUTE for PUBLIC, anon or authenticated on function %s', v_function);
    END IF;
    IF v_service IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
          WHERE p.oid = v_function AND a.grantee = v_service AND a.privilege_type = 'EXECUTE') THEN
      EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO service_role', v_function);
      RETURN NEXT pg_catalog.format('EXECUTE for service_role on function %s', v_function);
    END IF;
  END LOOP;

  FOREACH v_function IN ARRAY COALESCE(p_owner_only, ARRAY[]::REGPROCEDURE[]) LOOP
    IF public.plugin_auth_revoke_public_function(v_function, v_public_roles || ARRAY['service_role']) THEN
      RETURN NEXT pg_catalog.format('no EXECUTE for anyone but the owner on function %s', v_function);
    END IF;
  END LOOP;
END;
$$;

-- The catalog of 005, plus owners, trust and the security facts above.
CREATE OR REPLACE FUNCTION public.plugin_auth_catalog() RETURNS JSONB
LANGUAGE sql
STABLE
SET search_path = ''
AS $$
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
$$;
