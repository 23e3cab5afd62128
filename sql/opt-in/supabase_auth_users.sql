-- Opt-in, never applied by setup: Supabase's documented pattern of a public row for each auth.users
-- row, for hosts that sign users in with Supabase Auth (docs/sign-in.md). Applied only by
-- `figma-plugin-auth-db setup --supabase-auth-users` or installSupabaseUserSync(db).
-- public.users.id = auth.users.id, so a Supabase access token's `sub` is the users.id.
-- Linking rule (as Sign in with Figma's): an email that another users row already has is never
-- merged; the new row gets the placeholder <id>@users.supabase.invalid instead, and a sign-up never
-- fails because of it. A user without an email (phone sign-in) gets the placeholder too.
-- Re-running changes nothing. Existing auth.users rows are copied once (the backfill below).

CREATE OR REPLACE FUNCTION public.plugin_auth_sync_supabase_user(p_id UUID, p_email VARCHAR) RETURNS VOID
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM public.users AS u WHERE u.id = p_id) THEN
    RETURN;
  END IF;
  IF p_email IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM public.users AS u WHERE pg_catalog.lower(u.email) = pg_catalog.lower(p_email)
  ) THEN
    BEGIN
      INSERT INTO public.users (id, email) VALUES (p_id, p_email);
      RETURN;
    EXCEPTION WHEN unique_violation OR string_data_right_truncation THEN
      NULL; -- taken meanwhile, or longer than the email column: the placeholder below
    END;
  END IF;
  INSERT INTO public.users (id, email) VALUES (p_id, p_id::text || '@users.supabase.invalid')
  ON CONFLICT (id) DO NOTHING;
END;
$$;

CREATE OR REPLACE FUNCTION public.plugin_auth_on_supabase_user() RETURNS TRIGGER
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
  PERFORM public.plugin_auth_sync_supabase_user(NEW.id, NEW.email);
  RETURN NEW;
END;
$$;

REVOKE ALL ON FUNCTION public.plugin_auth_sync_supabase_user(UUID, VARCHAR) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.plugin_auth_on_supabase_user() FROM PUBLIC;

DROP TRIGGER IF EXISTS plugin_auth_on_supabase_user ON auth.users;
CREATE TRIGGER plugin_auth_on_supabase_user
  AFTER INSERT ON auth.users
  FOR EACH ROW EXECUTE FUNCTION public.plugin_auth_on_supabase_user();

DO $backfill$
DECLARE
  v_row RECORD;
BEGIN
  FOR v_row IN SELECT a.id, a.email FROM auth.users AS a ORDER BY a.created_at, a.id LOOP
    PERFORM public.plugin_auth_sync_supabase_user(v_row.id, v_row.email);
  END LOOP;
END;
$backfill$;
