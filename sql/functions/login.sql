-- The plugin's sign-in handshake: begin (the plugin), complete (the signed-in browser), poll and
-- claim (the plugin again). Keys are stored as digests only.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.begin_plugin_login(p_read_key_hash text, p_write_key_hash text, p_ttl_seconds integer DEFAULT 600, p_device_name character varying DEFAULT NULL::character varying, p_device_id uuid DEFAULT NULL::uuid)
 RETURNS timestamp with time zone
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_expires_at TIMESTAMP WITH TIME ZONE;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_read_key_hash, 'p_read_key_hash');
  PERFORM public.plugin_auth_check_digest(p_write_key_hash, 'p_write_key_hash');
  IF p_ttl_seconds IS NULL OR p_ttl_seconds < 10 OR p_ttl_seconds > 3600 THEN
    RAISE EXCEPTION 'invalid_ttl: a login request lives 10 to 3600 seconds' USING ERRCODE = 'PA021';
  END IF;
  IF p_device_name IS NOT NULL AND (pg_catalog.length(p_device_name) > 255 OR p_device_name ~ '[\u0001-\u001f\u007f-\u009f]') THEN
    RAISE EXCEPTION 'invalid_device_name: device name must be at most 255 characters without control characters'
      USING ERRCODE = 'PA020';
  END IF;
  INSERT INTO public.plugin_login_requests (read_key_hash, write_key_hash, device_name, device_id, expires_at)
  VALUES (p_read_key_hash, p_write_key_hash, p_device_name, p_device_id,
          pg_catalog.now() + pg_catalog.make_interval(secs => p_ttl_seconds))
  RETURNING plugin_login_requests.expires_at INTO v_expires_at;
  RETURN v_expires_at;
END;
$function$;

CREATE OR REPLACE FUNCTION public.complete_plugin_login(p_write_key_hash text, p_user_id uuid)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_request public.plugin_login_requests%ROWTYPE;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_write_key_hash, 'p_write_key_hash');
  PERFORM public.plugin_auth_require_user(p_user_id);
  -- One statement decides: a racing second completion waits for the row lock, then finds it done.
  UPDATE public.plugin_login_requests r
     SET user_id = p_user_id, completed_at = pg_catalog.now()
   WHERE r.write_key_hash = p_write_key_hash AND r.completed_at IS NULL AND r.expires_at > pg_catalog.now();
  IF FOUND THEN
    RETURN;
  END IF;
  SELECT * INTO v_request FROM public.plugin_login_requests r WHERE r.write_key_hash = p_write_key_hash;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'login_not_found: no pending login for this write key (already used, purged or never begun)'
      USING ERRCODE = 'PA025';
  END IF;
  IF v_request.completed_at IS NOT NULL THEN
    IF v_request.user_id = p_user_id THEN
      RETURN;
    END IF;
    RAISE EXCEPTION 'login_already_completed: this login was completed for another user' USING ERRCODE = 'PA027';
  END IF;
  RAISE EXCEPTION 'login_expired: the login request expired; start a new login from the plugin' USING ERRCODE = 'PA026';
END;
$function$;

CREATE OR REPLACE FUNCTION public.poll_plugin_login(p_read_key_hash text)
 RETURNS TABLE(status text, user_id uuid, device_name character varying)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
DECLARE
  v_request public.plugin_login_requests%ROWTYPE;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_read_key_hash, 'p_read_key_hash');
  SELECT * INTO v_request FROM public.plugin_login_requests r WHERE r.read_key_hash = p_read_key_hash;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'login_not_found: no login for this read key (already collected, purged or never begun)'
      USING ERRCODE = 'PA025';
  END IF;
  IF v_request.expires_at <= pg_catalog.now() THEN
    RAISE EXCEPTION 'login_expired: the login request expired; start a new login' USING ERRCODE = 'PA026';
  END IF;
  RETURN QUERY SELECT CASE WHEN v_request.completed_at IS NULL THEN 'pending' ELSE 'completed' END,
                      v_request.user_id, v_request.device_name;
END;
$function$;

CREATE OR REPLACE FUNCTION public.claim_plugin_login(p_read_key_hash text, p_user_id uuid, p_token_id uuid, p_token_hash text, p_expires_at timestamp with time zone, p_max_active integer DEFAULT NULL::integer)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_device_name VARCHAR;
  v_device_id UUID;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_read_key_hash, 'p_read_key_hash');
  DELETE FROM public.plugin_login_requests r
   WHERE r.read_key_hash = p_read_key_hash AND r.user_id = p_user_id
     AND r.completed_at IS NOT NULL AND r.expires_at > pg_catalog.now()
  RETURNING r.device_name, r.device_id INTO v_device_name, v_device_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'login_not_found: this login was already collected, expired or purged' USING ERRCODE = 'PA025';
  END IF;
  PERFORM public.issue_plugin_token(p_token_id, p_user_id, p_token_hash, v_device_name, p_expires_at, p_max_active, v_device_id);
END;
$function$;
