-- Plugin sessions: issuing, verifying, listing and revoking plugin tokens (stored as SHA-256
-- digests only), and purging expired ones.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.plugin_auth_check_digest(p_digest text, p_what text)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
BEGIN
  IF p_digest IS NULL OR p_digest !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION 'invalid_digest: % must be the lowercase hex SHA-256 of the value, never the value itself', p_what
      USING ERRCODE = 'PA029';
  END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.issue_plugin_token(p_token_id uuid, p_user_id uuid, p_token_hash text, p_device_name character varying, p_expires_at timestamp with time zone, p_max_active integer DEFAULT NULL::integer, p_device_id uuid DEFAULT NULL::uuid)
 RETURNS uuid
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_device_id UUID;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_token_hash, 'p_token_hash');
  IF p_token_id IS NULL THEN
    RAISE EXCEPTION 'invalid_digest: p_token_id (the JWT jti) must not be null' USING ERRCODE = 'PA029';
  END IF;
  IF p_device_name IS NOT NULL AND (pg_catalog.length(p_device_name) > 255 OR p_device_name ~ '[\u0001-\u001f\u007f-\u009f]') THEN
    RAISE EXCEPTION 'invalid_device_name: device name must be at most 255 characters without control characters'
      USING ERRCODE = 'PA020';
  END IF;
  IF p_expires_at IS NULL OR p_expires_at <= pg_catalog.now() THEN
    RAISE EXCEPTION 'invalid_ttl: p_expires_at must be in the future' USING ERRCODE = 'PA021';
  END IF;
  IF p_max_active IS NOT NULL AND p_max_active < 1 THEN
    RAISE EXCEPTION 'invalid_max_tokens: p_max_active must be at least 1 (or null for no cap)' USING ERRCODE = 'PA028';
  END IF;
  PERFORM public.plugin_auth_require_user(p_user_id);

  IF p_max_active IS NOT NULL THEN
    -- Two devices signing in at once must not both see room for one more: issues for one user
    -- queue here (transaction-scoped, so safe on pooled connections; other users do not wait).
    PERFORM pg_catalog.pg_advisory_xact_lock(7304, pg_catalog.hashtext(p_user_id::text));
  END IF;

  -- The device: the one named by p_device_id when the server minted it for this user (a token of
  -- this user carries it: the plugin keeps its id and sends it back at its next sign-in), else a
  -- new one. Never the caller's free text: device limits count these ids (sql/025).
  IF p_device_id IS NOT NULL
     AND EXISTS (SELECT 1 FROM public.plugin_tokens AS d WHERE d.user_id = p_user_id AND d.device_id = p_device_id) THEN
    v_device_id := p_device_id;
  ELSE
    v_device_id := pg_catalog.gen_random_uuid();
  END IF;
  INSERT INTO public.plugin_tokens (id, user_id, token_hash, device_name, expires_at, device_id)
  VALUES (p_token_id, p_user_id, p_token_hash, p_device_name, p_expires_at, v_device_id);

  IF p_max_active IS NOT NULL THEN
    -- Keep the new token and the newest p_max_active - 1 others.
    UPDATE public.plugin_tokens t
       SET revoked_at = pg_catalog.now(), revoked_reason = 'max_tokens_per_user'
     WHERE t.id IN (
       SELECT a.id FROM public.plugin_tokens a
        WHERE a.user_id = p_user_id AND a.id <> p_token_id
          AND a.revoked_at IS NULL AND a.expires_at > pg_catalog.now()
        ORDER BY a.created_at DESC, a.expires_at DESC
        OFFSET p_max_active - 1);
  END IF;
  RETURN v_device_id;
END;
$function$;

-- verify_plugin_token (sql/020) with the device id. The hot path: one RETURN QUERY on its common path.
CREATE OR REPLACE FUNCTION public.verify_plugin_session(p_token_id uuid, p_token_hash text)
 RETURNS TABLE(status text, user_id uuid, expires_at timestamp with time zone, device_name character varying, device_id uuid)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
DECLARE
  v_last_used_at TIMESTAMP WITH TIME ZONE;
BEGIN
  -- The common path: a live token with this digest, last used less than a minute ago. A deleted
  -- user's tokens are gone with it (ON DELETE CASCADE): no second lookup.
  RETURN QUERY
  SELECT 'ok'::text, t.user_id, t.expires_at, t.device_name, t.device_id
    FROM public.plugin_tokens AS t
   WHERE t.id = p_token_id
     AND t.token_hash = p_token_hash
     AND t.revoked_at IS NULL
     AND t.expires_at > pg_catalog.now()
     AND t.last_used_at >= pg_catalog.now() - INTERVAL '1 minute';
  IF FOUND THEN
    RETURN;
  END IF;

  -- A NULL or malformed digest names no token: refused (invalid_digest), never compared further.
  -- Spelled with octet_length and a negated class: no bounded repetition, no multibyte ltrim.
  IF p_token_hash IS NULL OR pg_catalog.octet_length(p_token_hash) <> 64
      OR p_token_hash ~ '[^0-9a-f]' THEN
    RAISE EXCEPTION 'invalid_digest: p_token_hash must be the lowercase hex SHA-256 of the token, never the token itself'
      USING ERRCODE = 'PA029';
  END IF;
  SELECT CASE WHEN t.token_hash IS DISTINCT FROM p_token_hash THEN 'invalid'
              WHEN t.revoked_at IS NOT NULL THEN 'revoked'
              WHEN t.expires_at <= pg_catalog.now() THEN 'expired'
              ELSE 'ok' END,
         t.user_id, t.expires_at, t.device_name, t.device_id, t.last_used_at
    INTO status, user_id, expires_at, device_name, device_id, v_last_used_at
    FROM public.plugin_tokens AS t
   WHERE t.id = p_token_id;
  IF status IS DISTINCT FROM 'ok' THEN
    -- Not found (NULL), invalid, revoked or expired: the status alone.
    status := COALESCE(status, 'invalid');
    user_id := NULL;
    expires_at := NULL;
    device_name := NULL;
    device_id := NULL;
  ELSIF v_last_used_at IS NULL OR v_last_used_at < pg_catalog.now() - INTERVAL '1 minute' THEN
    -- SKIP LOCKED: when another verify of this token is already writing, this one need not.
    UPDATE public.plugin_tokens AS t
       SET last_used_at = pg_catalog.now()
     WHERE t.id = (SELECT c.id FROM public.plugin_tokens AS c
                    WHERE c.id = p_token_id
                      AND (c.last_used_at IS NULL OR c.last_used_at < pg_catalog.now() - INTERVAL '1 minute')
                      FOR UPDATE SKIP LOCKED);
  END IF;
  RETURN NEXT;
END;
$function$;

-- The earlier answer, for callers of the SQL function: the same checks (one text, above).
CREATE OR REPLACE FUNCTION public.verify_plugin_token(p_token_id uuid, p_token_hash text)
 RETURNS TABLE(status text, user_id uuid, expires_at timestamp with time zone, device_name character varying)
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  SELECT v.status, v.user_id, v.expires_at, v.device_name FROM public.verify_plugin_session(p_token_id, p_token_hash) AS v;
$function$;

CREATE OR REPLACE FUNCTION public.list_plugin_tokens(p_user_id uuid)
 RETURNS TABLE(id uuid, device_name character varying, created_at timestamp with time zone, expires_at timestamp with time zone, last_used_at timestamp with time zone, revoked_at timestamp with time zone, revoked_reason character varying, status text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
BEGIN
  PERFORM public.plugin_auth_require_user(p_user_id);
  RETURN QUERY
    SELECT t.id, t.device_name, t.created_at, t.expires_at, t.last_used_at, t.revoked_at, t.revoked_reason,
           CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
                WHEN t.expires_at <= pg_catalog.now() THEN 'expired'
                ELSE 'active' END
      FROM public.plugin_tokens t
     WHERE t.user_id = p_user_id
     ORDER BY t.created_at DESC, t.id;
END;
$function$;

CREATE OR REPLACE FUNCTION public.revoke_plugin_token(p_token_id uuid, p_reason character varying DEFAULT NULL::character varying)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_revoked_at TIMESTAMP WITH TIME ZONE;
BEGIN
  IF p_reason IS NOT NULL AND (pg_catalog.length(p_reason) > 255 OR p_reason ~ '[\u0001-\u001f\u007f-\u009f]') THEN
    RAISE EXCEPTION 'invalid_reason: reason must be at most 255 characters without control characters'
      USING ERRCODE = 'PA023';
  END IF;
  UPDATE public.plugin_tokens t
     SET revoked_at = pg_catalog.now(), revoked_reason = p_reason
   WHERE t.id = p_token_id AND t.revoked_at IS NULL
  RETURNING t.revoked_at INTO v_revoked_at;
  IF FOUND THEN
    RETURN true;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.plugin_tokens t WHERE t.id = p_token_id) THEN
    RAISE EXCEPTION 'token_not_found: no plugin token with id %', p_token_id USING ERRCODE = 'PA022';
  END IF;
  RETURN false;
END;
$function$;

CREATE OR REPLACE FUNCTION public.revoke_all_plugin_tokens(p_user_id uuid, p_reason character varying DEFAULT 'revoke_all'::character varying)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_count INTEGER;
BEGIN
  IF p_reason IS NOT NULL AND (pg_catalog.length(p_reason) > 255 OR p_reason ~ '[\u0001-\u001f\u007f-\u009f]') THEN
    RAISE EXCEPTION 'invalid_reason: reason must be at most 255 characters without control characters'
      USING ERRCODE = 'PA023';
  END IF;
  PERFORM public.plugin_auth_require_user(p_user_id);
  UPDATE public.plugin_tokens t
     SET revoked_at = pg_catalog.now(), revoked_reason = p_reason
   WHERE t.user_id = p_user_id AND t.revoked_at IS NULL AND t.expires_at > pg_catalog.now();
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$function$;

CREATE OR REPLACE FUNCTION public.purge_plugin_sessions(p_cutoff timestamp with time zone DEFAULT now())
 RETURNS TABLE(tokens integer, login_requests integer)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_tokens INTEGER;
  v_logins INTEGER;
BEGIN
  IF p_cutoff IS NULL OR p_cutoff > pg_catalog.now() THEN
    RAISE EXCEPTION 'invalid_cutoff: the cutoff must not be in the future' USING ERRCODE = 'PA024';
  END IF;
  DELETE FROM public.plugin_tokens t WHERE t.expires_at < p_cutoff;
  GET DIAGNOSTICS v_tokens = ROW_COUNT;
  DELETE FROM public.plugin_login_requests r WHERE r.expires_at < p_cutoff;
  GET DIAGNOSTICS v_logins = ROW_COUNT;
  RETURN QUERY SELECT v_tokens, v_logins;
END;
$function$;
