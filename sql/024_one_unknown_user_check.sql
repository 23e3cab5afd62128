-- 024: one unknown_user check (issue 12). sql/017 made public.plugin_auth_require_user the one
-- place that raises unknown_user (PA001) for the usage hot paths; the other functions still
-- carried their own copy of the same five lines. This block replaces each copy, in the installed
-- definitions, with a call of the helper: the same check (a null or absent user id), the same
-- message and SQLSTATE. A check of another shape (seat_assign_member's, of two users at once) is left
-- alone; test/errors.test.ts lists which functions raise PA001 themselves.
-- The functions are otherwise unchanged: this rewrites whatever the latest earlier file defined,
-- and re-running it changes nothing. Written to run under `SET LOCAL search_path = pg_catalog`.
DO $one_user_check$
DECLARE
  v_fn RECORD;
  v_def TEXT;
  v_new TEXT;
BEGIN
  FOR v_fn IN
    SELECT p.oid FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
     WHERE n.nspname OPERATOR(pg_catalog.=) 'public'
       AND p.proname OPERATOR(pg_catalog.<>) 'plugin_auth_require_user'
       AND p.prosrc OPERATOR(pg_catalog.~~) '%unknown_user: no user with id %'
  LOOP
    v_def := pg_catalog.pg_get_functiondef(v_fn.oid);
    v_new := pg_catalog.regexp_replace(v_def,
      'IF p_user_id IS NULL OR NOT EXISTS \(SELECT 1 FROM public\.users (AS )?([a-z]+) WHERE \2\.id = p_user_id\) THEN\s+'
      'RAISE EXCEPTION ''unknown_user: no user with id %'', p_user_id USING ERRCODE = ''PA001'';\s+END IF;',
      'PERFORM public.plugin_auth_require_user(p_user_id);', 'g');
    IF v_new OPERATOR(pg_catalog.<>) v_def THEN
      EXECUTE v_new;
    END IF;
  END LOOP;
END;
$one_user_check$;
