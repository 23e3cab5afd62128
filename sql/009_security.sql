-- 009: least privilege, applied by every setup run.
-- On Supabase every table and function in `public` is reachable through the REST API with the
-- public anon key unless grants and row-level security say otherwise, and Supabase's default
-- privileges grant new objects to anon and authenticated. This function closes that for the
-- objects it is given: setup calls it at the end of every run with the list of this package's
-- tables and functions (from the generated schema snapshot), so objects added by later files are
-- covered too, and a grant someone added by hand is taken back on the next run.
--
-- - Tables: ROW LEVEL SECURITY enabled, with no policies: for any role that is subject to RLS, no
--   row is visible or writable. The backend works as the table owner (direct connection) or as
--   service_role (Supabase; BYPASSRLS), both of which bypass RLS.
-- - Privileges on the tables, their sequences and the functions: none for PUBLIC, anon or
--   authenticated; all for service_role, where that role exists. On plain PostgreSQL without
--   Supabase's roles only PUBLIC is revoked.
-- - Every step first checks whether it is needed, so a re-run changes nothing and takes no lock
--   (ALTER TABLE would take an ACCESS EXCLUSIVE lock on a table that serves traffic).
--
-- SECURITY INVOKER: it runs with the rights of whoever runs setup (the owner of these objects).
-- Takes every privilege on one object away from PUBLIC and p_roles, when its ACL gives them any.
-- A NULL ACL counts as open: for a function it means the default, EXECUTE for PUBLIC; for a table it
-- means never granted, and revoking makes the ACL explicit, so that taking back a hand-made grant
-- later returns it to exactly the same state. p_object is a regclass / regprocedure as text
-- (quoted by PostgreSQL); p_kind one of three keywords.
CREATE OR REPLACE FUNCTION public.plugin_auth_revoke_public(p_kind TEXT, p_object TEXT, p_acl ACLITEM[], p_roles TEXT[])
RETURNS VOID
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_role TEXT;
BEGIN
  IF p_kind NOT IN ('TABLE', 'SEQUENCE', 'FUNCTION') THEN
    RAISE EXCEPTION 'plugin_auth_revoke_public: p_kind must be TABLE, SEQUENCE or FUNCTION';
  END IF;
  IF p_acl IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM pg_catalog.aclexplode(p_acl) a
        WHERE a.grantee = 0
           OR a.grantee IN (SELECT r.oid FROM pg_catalog.pg_roles r
                             WHERE r.rolname = ANY (COALESCE(p_roles, ARRAY[]::TEXT[])))) THEN
    RETURN;
  END IF;
  EXECUTE pg_catalog.format('REVOKE ALL ON %s %s FROM PUBLIC', p_kind, p_object);
  FOREACH v_role IN ARRAY COALESCE(p_roles, ARRAY[]::TEXT[]) LOOP
    EXECUTE pg_catalog.format('REVOKE ALL ON %s %s FROM %I', p_kind, p_object, v_role);
  END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION public.plugin_auth_secure(p_tables TEXT[], p_functions TEXT[])
RETURNS VOID
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_table REGCLASS;
  v_sequence REGCLASS;
  v_function REGPROCEDURE;
  v_public_roles TEXT[];
  v_has_service_role BOOLEAN;
BEGIN
  SELECT pg_catalog.array_agg(r.rolname) INTO v_public_roles
    FROM pg_catalog.pg_roles r WHERE r.rolname IN ('anon', 'authenticated');
  v_has_service_role := EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'service_role');

  FOR v_table IN
    SELECT c.oid::regclass FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname = ANY (p_tables)
  LOOP
    IF NOT (SELECT c.relrowsecurity FROM pg_catalog.pg_class c WHERE c.oid = v_table) THEN
      EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_table);
    END IF;
    PERFORM public.plugin_auth_revoke_public('TABLE', v_table::TEXT,
      (SELECT c.relacl FROM pg_catalog.pg_class c WHERE c.oid = v_table), v_public_roles);
    IF v_has_service_role
       AND NOT pg_catalog.has_table_privilege('service_role', v_table, 'SELECT, INSERT, UPDATE, DELETE') THEN
      EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO service_role', v_table);
    END IF;
    -- Sequences behind identity / serial columns.
    FOR v_sequence IN
      SELECT d.objid::regclass FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
       WHERE d.refobjid = v_table AND d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
    LOOP
      PERFORM public.plugin_auth_revoke_public('SEQUENCE', v_sequence::TEXT,
        (SELECT s.relacl FROM pg_catalog.pg_class s WHERE s.oid = v_sequence), v_public_roles);
    END LOOP;
  END LOOP;

  FOR v_function IN
    SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY (p_functions)
  LOOP
    PERFORM public.plugin_auth_revoke_public('FUNCTION', v_function::TEXT,
      (SELECT p.proacl FROM pg_catalog.pg_proc p WHERE p.oid = v_function), v_public_roles);
    IF v_has_service_role AND NOT pg_catalog.has_function_privilege('service_role', v_function, 'EXECUTE') THEN
      EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO service_role', v_function);
    END IF;
  END LOOP;
END;
$$;
