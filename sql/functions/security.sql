-- Row level security and grants on exactly this package's tables and functions; run by every
-- setup (src/schema/migrations.ts). Owner only.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.plugin_auth_revoke_public(p_object regclass, p_roles text[])
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.plugin_auth_revoke_public_function(p_function regprocedure, p_roles text[])
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.plugin_auth_secure(p_tables regclass[], p_functions regprocedure[], p_owner_only regprocedure[])
 RETURNS SETOF text
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$;
