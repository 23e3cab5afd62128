-- 021: one SQLSTATE per error code (issue 12). invalid_cutoff is PA024 everywhere: the table of
-- codes and SQLSTATEs is src/core/errors.ts (ERRORS), and purge_usage_batch (sql/011) raised it as
-- PA071. This block rewrites the installed definition in place, changing only that SQLSTATE, so it
-- follows whatever the latest earlier file defined, and re-running it changes nothing.
-- Written to run under `SET LOCAL search_path = pg_catalog`; every name is schema-qualified.
DO $one_sqlstate$
DECLARE
  v_fn RECORD;
  v_def TEXT;
  v_new TEXT;
BEGIN
  FOR v_fn IN
    SELECT p.oid FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
     WHERE n.nspname OPERATOR(pg_catalog.=) 'public'
       AND p.prosrc OPERATOR(pg_catalog.~~) '%invalid_cutoff:%'
  LOOP
    v_def := pg_catalog.pg_get_functiondef(v_fn.oid);
    v_new := pg_catalog.regexp_replace(v_def,
      '(RAISE EXCEPTION ''invalid_cutoff:[^;]*USING ERRCODE = )''PA071''', '\1''PA024''', 'g');
    IF v_new OPERATOR(pg_catalog.<>) v_def THEN
      EXECUTE v_new;
    END IF;
  END LOOP;
END;
$one_sqlstate$;
