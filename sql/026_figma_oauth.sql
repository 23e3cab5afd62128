-- 026: Sign in with Figma (OAuth). The server exchanges the authorization code, reads GET /v1/me
-- and calls figma_oauth_user with the verified Figma id and email: one user per Figma id, also
-- under concurrent first sign-ins (the per-Figma-user lock 7311 of sql/015, taken first).
-- The Figma id becomes a verified Figma user (a figma_users row, payment status UNKNOWN until
-- the Payments API says more; first_seen_at starts a FIRST_USE trial like a payment check does),
-- so Figma checkout, server-side trials and this sign-in key on the same identity.
-- Linking rule: an email already used by another user is never merged. A new Figma user gets
-- Figma's email only when no users row has it (case-insensitively); otherwise the placeholder
-- figma-<id>@users.figma.invalid of figma_create_user, and email_stored = false says so.
-- An existing user's email is never changed here.
-- SQLSTATEs: PA060 invalid_figma_user_id and PA001 unknown_user (sql/015's), PA140 invalid_figma_email.
-- Written to run under `SET LOCAL search_path = pg_catalog`; every name is schema-qualified.

CREATE OR REPLACE FUNCTION public.figma_oauth_user(p_figma_user_id VARCHAR, p_email VARCHAR)
RETURNS TABLE (user_id UUID, created BOOLEAN, email_stored BOOLEAN)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_user_id UUID;
  v_email_stored BOOLEAN := FALSE;
BEGIN
  IF p_figma_user_id IS NULL OR p_figma_user_id !~ '^[A-Za-z0-9_.:-]{1,255}$' THEN
    RAISE EXCEPTION 'invalid_figma_user_id: a Figma user id is 1 to 255 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA060';
  END IF;
  IF p_email IS NOT NULL AND (pg_catalog.length(p_email) > 320 OR p_email !~ '^[^@[:space:][:cntrl:]]+@[^@[:space:][:cntrl:]]+$') THEN
    RAISE EXCEPTION 'invalid_figma_email: the email Figma returned is not an address' USING ERRCODE = 'PA140';
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock(7311, pg_catalog.hashtext(p_figma_user_id));

  -- A verified Figma user from now on; an existing row (a payment check) keeps what Figma said.
  INSERT INTO public.figma_users AS f (figma_user_id, payment_status, checked_at, grant_until)
  VALUES (p_figma_user_id, 'UNKNOWN', pg_catalog.now(), pg_catalog.now())
  ON CONFLICT (figma_user_id) DO NOTHING;

  -- The user this Figma account is linked to, or the host row naming it (then linked).
  SELECT f.user_id INTO v_user_id FROM public.figma_users AS f WHERE f.figma_user_id = p_figma_user_id;
  IF v_user_id IS NULL AND public.plugin_auth_users_has_figma_column() THEN
    EXECUTE 'SELECT u.id FROM public.users AS u WHERE u.figma_user_id = $1 LIMIT 1'
      INTO v_user_id USING p_figma_user_id;
    IF v_user_id IS NOT NULL THEN
      PERFORM public.figma_link_user(p_figma_user_id, v_user_id);
    END IF;
  END IF;
  IF v_user_id IS NOT NULL THEN
    RETURN QUERY SELECT v_user_id, FALSE, FALSE;
    RETURN;
  END IF;

  -- A new user. Figma's email only when nobody has it; a concurrent insert of the same email
  -- elsewhere (a website sign-up) loses nothing: this sign-in falls back to the placeholder.
  IF p_email IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM public.users AS u WHERE pg_catalog.lower(u.email) = pg_catalog.lower(p_email)
  ) THEN
    BEGIN
      IF public.plugin_auth_users_has_figma_column() THEN
        EXECUTE 'INSERT INTO public.users (email, figma_user_id) VALUES ($1, $2) RETURNING id'
          INTO v_user_id USING p_email, p_figma_user_id;
      ELSE
        EXECUTE 'INSERT INTO public.users (email) VALUES ($1) RETURNING id' INTO v_user_id USING p_email;
      END IF;
      v_email_stored := TRUE;
    EXCEPTION WHEN unique_violation OR string_data_right_truncation THEN
      v_user_id := NULL; -- taken meanwhile, or longer than the host's email column
    END;
  END IF;
  IF v_user_id IS NULL THEN
    v_user_id := public.figma_create_user(p_figma_user_id);
  END IF;
  PERFORM public.figma_link_user(p_figma_user_id, v_user_id);
  RETURN QUERY SELECT v_user_id, TRUE, v_email_stored;
END;
$$;

COMMENT ON FUNCTION public.figma_oauth_user(VARCHAR, VARCHAR) IS
  'Sign in with Figma: the user of a verified Figma id (/v1/me), created once; never merges by email';
