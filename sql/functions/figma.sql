-- Figma payments: users known by their Figma id, payment checks, the API's health, plan links.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.plugin_auth_users_has_figma_column()
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
BEGIN
  RETURN EXISTS (
    SELECT 1 FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = 'public.users'::pg_catalog.regclass AND a.attname = 'figma_user_id'
       AND NOT a.attisdropped AND a.attnum > 0);
END;
$function$;

CREATE OR REPLACE FUNCTION public.link_figma_plan(p_plan_slug character varying, p_link character varying, p_trial_days integer DEFAULT NULL::integer, p_price_minor bigint DEFAULT NULL::bigint, p_currency character varying DEFAULT NULL::character varying, p_price_interval character varying DEFAULT NULL::character varying)
 RETURNS SETOF public.subscription_plans
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_plan_id UUID;
BEGIN
  IF p_link IS NULL OR p_link NOT IN ('PAID', 'TRIAL', 'FIRST_USE') THEN
    RAISE EXCEPTION 'invalid_figma_link: link a plan to PAID, TRIAL or FIRST_USE' USING ERRCODE = 'PA061';
  END IF;
  IF (p_link = 'FIRST_USE' AND p_plan_slug IS NOT NULL AND (p_trial_days IS NULL OR p_trial_days NOT BETWEEN 1 AND 3650))
     OR (p_link <> 'FIRST_USE' AND p_trial_days IS NOT NULL) THEN
    RAISE EXCEPTION 'invalid_trial_days: FIRST_USE takes 1 to 3650 trial days; PAID and TRIAL take none'
      USING ERRCODE = 'PA062';
  END IF;
  -- Figma's API reports no price: the operator says what a PAID link is sold at (sql/031).
  IF (p_price_minor IS NULL) <> (p_currency IS NULL)
     OR (p_price_minor IS NOT NULL AND (p_link <> 'PAID' OR p_price_minor NOT BETWEEN 0 AND 100000000000
                                        OR p_currency !~ '^[A-Za-z]{3}$'))
     OR (p_price_interval IS NOT NULL AND (p_price_minor IS NULL OR p_price_interval NOT IN ('month', 'year'))) THEN
    RAISE EXCEPTION 'invalid_figma_price: a PAID link''s price is whole minor units from 0 with a three-letter currency, and month, year or none (one-time)'
      USING ERRCODE = 'PA190';
  END IF;
  IF p_plan_slug IS NULL THEN
    DELETE FROM public.figma_plan_links AS l WHERE l.link = p_link;
    RETURN;
  END IF;
  SELECT p.id INTO v_plan_id FROM public.subscription_plans AS p WHERE p.plan_slug = p_plan_slug;
  IF v_plan_id IS NULL THEN
    RAISE EXCEPTION 'unknown_plan: no plan with slug %', p_plan_slug USING ERRCODE = 'PA034';
  END IF;
  INSERT INTO public.figma_plan_links AS l (link, plan_id, trial_seconds, price_minor, currency, price_interval)
  VALUES (p_link, v_plan_id, p_trial_days * 86400, p_price_minor, p_currency, p_price_interval)
  ON CONFLICT (link) DO UPDATE SET plan_id = EXCLUDED.plan_id, trial_seconds = EXCLUDED.trial_seconds,
    price_minor = EXCLUDED.price_minor, currency = EXCLUDED.currency, price_interval = EXCLUDED.price_interval,
    updated_at = pg_catalog.now();
  RETURN QUERY SELECT p.* FROM public.subscription_plans AS p WHERE p.id = v_plan_id;
END;
$function$;

CREATE OR REPLACE FUNCTION public.figma_create_user(p_figma_user_id character varying)
 RETURNS uuid
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_user_id UUID;
BEGIN
  IF p_figma_user_id IS NULL OR p_figma_user_id !~ '^[A-Za-z0-9_.:-]{1,255}$' THEN
    RAISE EXCEPTION 'invalid_figma_user_id: a Figma user id is 1 to 255 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA060';
  END IF;
  IF public.plugin_auth_users_has_figma_column() THEN
    EXECUTE 'INSERT INTO public.users (email, figma_user_id) VALUES ($1, $2) RETURNING id'
      INTO v_user_id USING 'figma-' || p_figma_user_id || '@users.figma.invalid', p_figma_user_id;
  ELSE
    EXECUTE 'INSERT INTO public.users (email) VALUES ($1) RETURNING id'
      INTO v_user_id USING 'figma-' || p_figma_user_id || '@users.figma.invalid';
  END IF;
  RETURN v_user_id;
END;
$function$;

CREATE OR REPLACE FUNCTION public.figma_link_user(p_figma_user_id character varying, p_user_id uuid)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_current UUID;
BEGIN
  PERFORM public.plugin_auth_require_user(p_user_id);
  PERFORM pg_catalog.pg_advisory_xact_lock(7311, pg_catalog.hashtext(p_figma_user_id));
  SELECT f.user_id INTO v_current FROM public.figma_users AS f WHERE f.figma_user_id = p_figma_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invalid_figma_user_id: Figma user % was never verified; verify a payment token first', p_figma_user_id
      USING ERRCODE = 'PA060';
  END IF;
  IF v_current = p_user_id THEN
    RETURN;
  END IF;
  IF v_current IS NOT NULL THEN
    RAISE EXCEPTION 'figma_user_linked: this Figma account already belongs to another user'
      USING ERRCODE = 'PA063';
  END IF;
  IF EXISTS (SELECT 1 FROM public.figma_users AS f WHERE f.user_id = p_user_id) THEN
    RAISE EXCEPTION 'figma_user_linked: this user is already linked to another Figma account'
      USING ERRCODE = 'PA063';
  END IF;
  UPDATE public.figma_users AS f SET user_id = p_user_id, updated_at = pg_catalog.now()
   WHERE f.figma_user_id = p_figma_user_id;
  IF public.plugin_auth_users_has_figma_column() THEN
    EXECUTE 'UPDATE public.users AS u SET figma_user_id = $1 WHERE u.id = $2 AND u.figma_user_id IS NULL'
      USING p_figma_user_id, p_user_id;
  END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.figma_user_for_sign_in(p_figma_user_id character varying)
 RETURNS uuid
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_user_id UUID;
BEGIN
  IF p_figma_user_id IS NULL OR p_figma_user_id !~ '^[A-Za-z0-9_.:-]{1,255}$' THEN
    RAISE EXCEPTION 'invalid_figma_user_id: a Figma user id is 1 to 255 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA060';
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock(7311, pg_catalog.hashtext(p_figma_user_id));
  SELECT f.user_id INTO v_user_id FROM public.figma_users AS f WHERE f.figma_user_id = p_figma_user_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invalid_figma_user_id: Figma user % was never verified; verify a payment token first', p_figma_user_id
      USING ERRCODE = 'PA060';
  END IF;
  IF v_user_id IS NULL AND public.plugin_auth_users_has_figma_column() THEN
    EXECUTE 'SELECT u.id FROM public.users AS u WHERE u.figma_user_id = $1 LIMIT 1'
      INTO v_user_id USING p_figma_user_id;
    IF v_user_id IS NOT NULL THEN
      PERFORM public.figma_link_user(p_figma_user_id, v_user_id);
    END IF;
  END IF;
  RETURN v_user_id;
END;
$function$;

CREATE OR REPLACE FUNCTION public.figma_record_check(p_token_hash text, p_figma_user_id character varying, p_payment_status character varying, p_date_of_purchase timestamp with time zone, p_resource_id character varying, p_resource_type character varying, p_grace_seconds integer)
 RETURNS SETOF public.figma_users
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.clock_timestamp();
  v_status VARCHAR;
  v_raw VARCHAR;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_token_hash, 'p_token_hash');
  IF p_figma_user_id IS NULL OR p_figma_user_id !~ '^[A-Za-z0-9_.:-]{1,255}$' THEN
    RAISE EXCEPTION 'invalid_figma_user_id: a Figma user id is 1 to 255 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA060';
  END IF;
  IF p_payment_status IS NULL OR p_payment_status !~ '^[A-Za-z0-9_]{1,64}$' THEN
    RAISE EXCEPTION 'invalid_figma_answer: payment_status must be 1 to 64 characters of A-Z a-z 0-9 _'
      USING ERRCODE = 'PA065';
  END IF;
  IF p_grace_seconds IS NULL OR p_grace_seconds < 0 THEN
    RAISE EXCEPTION 'invalid_grace: p_grace_seconds must be 0 or more' USING ERRCODE = 'PA064';
  END IF;
  -- Only the three statuses Figma documents grant anything; NOT_SUPPORTED (what a plugin sees
  -- where payments are unavailable) or any future value is stored as UNKNOWN.
  IF p_payment_status IN ('PAID', 'TRIAL', 'UNPAID') THEN
    v_status := p_payment_status;
  ELSE
    v_status := 'UNKNOWN';
    v_raw := p_payment_status;
  END IF;

  RETURN QUERY
  INSERT INTO public.figma_users AS f (
    figma_user_id, payment_status, figma_payment_status, date_of_purchase, resource_id, resource_type,
    checked_at, grant_until, first_seen_at)
  VALUES (
    p_figma_user_id, v_status, v_raw, p_date_of_purchase,
    NULLIF(pg_catalog.left(p_resource_id, 255), ''),
    CASE WHEN p_resource_type ~ '^[A-Z_]{1,32}$' THEN p_resource_type END,
    v_now, v_now + pg_catalog.make_interval(secs => p_grace_seconds), v_now)
  ON CONFLICT (figma_user_id) DO UPDATE SET
    payment_status = EXCLUDED.payment_status,
    figma_payment_status = EXCLUDED.figma_payment_status,
    date_of_purchase = EXCLUDED.date_of_purchase,
    resource_id = EXCLUDED.resource_id,
    resource_type = EXCLUDED.resource_type,
    checked_at = EXCLUDED.checked_at,
    grant_until = EXCLUDED.grant_until,
    updated_at = EXCLUDED.checked_at
  RETURNING f.*;

  INSERT INTO public.figma_payment_checks AS c (token_hash, figma_user_id, checked_at)
  VALUES (p_token_hash, p_figma_user_id, v_now)
  ON CONFLICT (token_hash) DO UPDATE SET figma_user_id = EXCLUDED.figma_user_id, checked_at = EXCLUDED.checked_at;

  DELETE FROM public.figma_payment_checks AS c
   WHERE c.figma_user_id = p_figma_user_id AND c.token_hash <> p_token_hash
     AND c.checked_at < v_now - INTERVAL '1 day';

  PERFORM public.figma_record_api_result(200);
END;
$function$;

CREATE OR REPLACE FUNCTION public.figma_record_api_result(p_http_status integer)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.clock_timestamp();
BEGIN
  IF p_http_status = 200 THEN
    INSERT INTO public.figma_api_state AS a (id, last_ok_at, updated_at) VALUES (true, v_now, v_now)
    ON CONFLICT (id) DO UPDATE SET last_ok_at = EXCLUDED.last_ok_at, updated_at = EXCLUDED.updated_at
    -- A success every check would rewrite the row on every cache miss: once a minute is enough.
    WHERE a.last_ok_at IS NULL OR a.last_ok_at < v_now - INTERVAL '1 minute'
       OR a.last_rejected_at >= a.last_ok_at;
  ELSIF p_http_status IN (401, 403) THEN
    INSERT INTO public.figma_api_state AS a (id, last_rejected_at, last_rejected_status, updated_at)
    VALUES (true, v_now, p_http_status, v_now)
    ON CONFLICT (id) DO UPDATE SET last_rejected_at = EXCLUDED.last_rejected_at,
      last_rejected_status = EXCLUDED.last_rejected_status, updated_at = EXCLUDED.updated_at;
  ELSE
    RAISE EXCEPTION 'invalid_figma_answer: p_http_status must be 200, 401 or 403' USING ERRCODE = 'PA065';
  END IF;
END;
$function$;

-- Sign in with Figma: the user of a Figma id the server verified through OAuth (GET /v1/me), found
-- or created under the per-Figma-user lock (7311), so concurrent first sign-ins make one user. The
-- id becomes a verified Figma user (a figma_users row, payment status UNKNOWN until the Payments API
-- says more; first_seen_at starts a FIRST_USE trial as a payment check does). Linking rule: an
-- email another users row has (case-insensitively) is never merged: a new user gets Figma's email
-- only when nobody has it, else figma_create_user's placeholder (email_stored = false); an existing
-- user's email is never changed. PA140 invalid_figma_email; PA060 and PA001 as above.
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
