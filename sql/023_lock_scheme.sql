-- 023: one advisory-lock scheme (issue 12). Every lock our functions take is the two-key form
-- pg_advisory_xact_lock(namespace, pg_catalog.hashtext(key)), with the namespaces listed once in
-- src/core/locks.ts (LOCKS); test/locks.test.ts checks the installed functions against that list.
-- Until now two locks spelled their namespace as text: the per-user token lock of
-- issue_plugin_token (one key, hashtext('figma-plugin-auth-db:tokens:' || user)) and the per-user
-- subscription lock of sync_stripe_subscription and assign_plan (namespace
-- hashtext('figma-plugin-auth-db:user_subscriptions')). They become namespaces 7304 and 7305.
-- The functions are otherwise unchanged: this block rewrites the installed definitions in place,
-- so it follows whatever the latest earlier file defined, and re-running it changes nothing.
-- (Setup's own lock keeps its one-key form, hashtext('figma-plugin-auth-db:setup'): it is taken
-- before any of our objects exist and must stay the same key for every version of this package.)
-- Written to run under `SET LOCAL search_path = pg_catalog`; every name is schema-qualified.
DO $lock_scheme$
DECLARE
  v_fn RECORD;
  v_def TEXT;
  v_new TEXT;
BEGIN
  FOR v_fn IN
    SELECT p.oid FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
     WHERE n.nspname OPERATOR(pg_catalog.=) 'public'
       AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['issue_plugin_token', 'sync_stripe_subscription', 'assign_plan']::pg_catalog.name[])
  LOOP
    v_def := pg_catalog.pg_get_functiondef(v_fn.oid);
    v_new := pg_catalog.replace(v_def,
      $o$pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('figma-plugin-auth-db:tokens:' || p_user_id::text))$o$,
      $n$pg_catalog.pg_advisory_xact_lock(7304, pg_catalog.hashtext(p_user_id::text))$n$);
    v_new := pg_catalog.replace(v_new,
      $o$pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('figma-plugin-auth-db:user_subscriptions'),$o$,
      $n$pg_catalog.pg_advisory_xact_lock(7305,$n$);
    IF v_new OPERATOR(pg_catalog.<>) v_def THEN
      EXECUTE v_new;
    END IF;
  END LOOP;
END;
$lock_scheme$;
