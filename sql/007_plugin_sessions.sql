-- 007: plugin sessions. Tokens are JWTs signed by the library; plugin_tokens (002) keeps only their
-- SHA-256 digest. This file adds the functions behind tokens.issue/verify/revoke/list/purge and the
-- Figma login hand-over (the plugin polls with a read key while the system browser completes the
-- login with a write key). SQLSTATEs PA020-PA029 (PA001 unknown_user is shared with 003):
--   PA020 invalid_device_name   PA021 invalid_ttl            PA022 token_not_found
--   PA023 invalid_reason        PA024 invalid_cutoff         PA025 login_not_found
--   PA026 login_expired         PA027 login_already_completed PA028 invalid_max_tokens
--   PA029 invalid_digest
-- Digests are lowercase hex SHA-256, computed by the caller: raw tokens and keys never reach SQL.

-- 1. Pending logins. A row lives from beginLogin until the plugin's successful poll deletes it
-- (or purge removes it after it expired). Only digests of the two keys are stored.
CREATE TABLE IF NOT EXISTS public.plugin_login_requests (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  read_key_hash CHAR(64) NOT NULL,
  write_key_hash CHAR(64) NOT NULL,
  -- Set by completeLogin: the user the browser signed in as.
  user_id UUID REFERENCES public.users(id) ON DELETE CASCADE,
  -- Name given to the token minted at the successful poll (e.g. "Figma desktop").
  device_name VARCHAR(255),
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
  completed_at TIMESTAMP WITH TIME ZONE,
  CONSTRAINT plugin_login_requests_read_key_hash_check CHECK (read_key_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT plugin_login_requests_write_key_hash_check CHECK (write_key_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT plugin_login_requests_keys_differ_check CHECK (read_key_hash <> write_key_hash),
  CONSTRAINT plugin_login_requests_expiry_check CHECK (expires_at > created_at),
  CONSTRAINT plugin_login_requests_completion_check CHECK ((user_id IS NULL) = (completed_at IS NULL))
);

CREATE UNIQUE INDEX IF NOT EXISTS idx_plugin_login_requests_read_key
  ON public.plugin_login_requests (read_key_hash);
CREATE UNIQUE INDEX IF NOT EXISTS idx_plugin_login_requests_write_key
  ON public.plugin_login_requests (write_key_hash);
CREATE INDEX IF NOT EXISTS idx_plugin_login_requests_user_id ON public.plugin_login_requests (user_id);
CREATE INDEX IF NOT EXISTS idx_plugin_login_requests_expires_at ON public.plugin_login_requests (expires_at);
-- purgeExpired deletes tokens by expiry: without this it would scan the whole table.
CREATE INDEX IF NOT EXISTS idx_plugin_tokens_expires_at ON public.plugin_tokens (expires_at);

-- Row level security with no policy: on Supabase the anon and authenticated roles reach public
-- tables through the REST API, and whoever could UPDATE user_id here could sign in as anyone.
-- The library connects as the table owner (or service_role), which RLS does not restrict.
ALTER TABLE public.plugin_login_requests ENABLE ROW LEVEL SECURITY;

COMMENT ON TABLE public.plugin_login_requests IS 'pending Figma plugin logins (read/write key digests)';

-- Shared argument checks. IMMUTABLE helpers, no table access.
CREATE OR REPLACE FUNCTION public.plugin_auth_check_digest(p_digest TEXT, p_what TEXT) RETURNS VOID
LANGUAGE plpgsql
IMMUTABLE
SET search_path = ''
AS $$
BEGIN
  IF p_digest IS NULL OR p_digest !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION 'invalid_digest: % must be the lowercase hex SHA-256 of the value, never the value itself', p_what
      USING ERRCODE = 'PA029';
  END IF;
END;
$$;

-- 2. Issue: records a token the library has just signed (id = its jti). With p_max_active, the
-- user's oldest active tokens beyond that many are revoked in the same transaction. Returns how
-- many were revoked to make room.
CREATE OR REPLACE FUNCTION public.issue_plugin_token(
  p_token_id UUID,
  p_user_id UUID,
  p_token_hash TEXT,
  p_device_name VARCHAR,
  p_expires_at TIMESTAMP WITH TIME ZONE,
  p_max_active INTEGER DEFAULT NULL
) RETURNS INTEGER
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_revoked INTEGER := 0;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_token_hash, 'p_token_hash');
  IF p_token_id IS NULL THEN
    RAISE EXCEPTION 'invalid_digest: p_token_id (the JWT jti) must not be null' USING ERRCODE = 'PA029';
  END IF;
  IF p_device_name IS NOT NULL AND pg_catalog.length(p_device_name) > 255 THEN
    RAISE EXCEPTION 'invalid_device_name: device name must be at most 255 characters' USING ERRCODE = 'PA020';
  END IF;
  IF p_expires_at IS NULL OR p_expires_at <= pg_catalog.now() THEN
    RAISE EXCEPTION 'invalid_ttl: p_expires_at must be in the future' USING ERRCODE = 'PA021';
  END IF;
  IF p_max_active IS NOT NULL AND p_max_active < 1 THEN
    RAISE EXCEPTION 'invalid_max_tokens: p_max_active must be at least 1 (or null for no cap)' USING ERRCODE = 'PA028';
  END IF;
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;

  IF p_max_active IS NOT NULL THEN
    -- Two devices signing in at once must not both see room for one more: issues for one user
    -- queue here (transaction-scoped, so safe on pooled connections; other users do not wait).
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('figma-plugin-auth-db:tokens:' || p_user_id::text));
  END IF;

  INSERT INTO public.plugin_tokens (id, user_id, token_hash, device_name, expires_at)
  VALUES (p_token_id, p_user_id, p_token_hash, p_device_name, p_expires_at);

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
    GET DIAGNOSTICS v_revoked = ROW_COUNT;
  END IF;
  RETURN v_revoked;
END;
$$;

-- 3. Verify: the library has already checked the JWT (signature, algorithm, exp, aud, iss); this
-- is the one round trip that checks the row. Status 'ok', 'invalid' (no such token, digest
-- mismatch, user gone), 'revoked' or 'expired'. No exception block. PL/pgSQL, so its statements
-- are prepared once per session (a SQL function with SET search_path is planned on every call).
-- On 'ok' it also sets last_used_at, but only when it is null or over a minute old, and
-- SKIP LOCKED means concurrent verifies of one token never wait for each other: a burst of verifies
-- writes the row at most once a minute.
CREATE OR REPLACE FUNCTION public.verify_plugin_token(p_token_id UUID, p_token_hash TEXT)
RETURNS TABLE (status TEXT, user_id UUID, expires_at TIMESTAMP WITH TIME ZONE, device_name VARCHAR)
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
  v_token RECORD;
BEGIN
  -- The common path is this one primary-key lookup and nothing else. A deleted user's tokens are
  -- gone with it (ON DELETE CASCADE), so "the user still exists" needs no second lookup.
  SELECT t.user_id, t.token_hash, t.expires_at, t.device_name, t.revoked_at, t.last_used_at
    INTO v_token
    FROM public.plugin_tokens AS t
   WHERE t.id = p_token_id;
  IF NOT FOUND OR v_token.token_hash <> p_token_hash THEN
    status := 'invalid';
  ELSIF v_token.revoked_at IS NOT NULL THEN
    status := 'revoked';
  ELSIF v_token.expires_at <= pg_catalog.now() THEN
    status := 'expired';
  ELSE
    status := 'ok';
    user_id := v_token.user_id;
    expires_at := v_token.expires_at;
    device_name := v_token.device_name;
    IF v_token.last_used_at IS NULL OR v_token.last_used_at < pg_catalog.now() - INTERVAL '1 minute' THEN
      -- SKIP LOCKED: when another verify of this token is already writing, this one need not.
      UPDATE public.plugin_tokens AS t
         SET last_used_at = pg_catalog.now()
       WHERE t.id = (SELECT c.id FROM public.plugin_tokens AS c
                      WHERE c.id = p_token_id
                        AND (c.last_used_at IS NULL OR c.last_used_at < pg_catalog.now() - INTERVAL '1 minute')
                        FOR UPDATE SKIP LOCKED);
    END IF;
  END IF;
  RETURN NEXT;
END;
$$;

-- 4. Revoke one token. True when this call revoked it, false when it already was (the first
-- reason is kept).
CREATE OR REPLACE FUNCTION public.revoke_plugin_token(p_token_id UUID, p_reason VARCHAR DEFAULT NULL)
RETURNS BOOLEAN
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_revoked_at TIMESTAMP WITH TIME ZONE;
BEGIN
  IF p_reason IS NOT NULL AND pg_catalog.length(p_reason) > 255 THEN
    RAISE EXCEPTION 'invalid_reason: reason must be at most 255 characters' USING ERRCODE = 'PA023';
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
$$;

-- 5. Sign out everywhere: revokes every active token of the user; returns how many.
CREATE OR REPLACE FUNCTION public.revoke_all_plugin_tokens(p_user_id UUID, p_reason VARCHAR DEFAULT 'revoke_all')
RETURNS INTEGER
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_count INTEGER;
BEGIN
  IF p_reason IS NOT NULL AND pg_catalog.length(p_reason) > 255 THEN
    RAISE EXCEPTION 'invalid_reason: reason must be at most 255 characters' USING ERRCODE = 'PA023';
  END IF;
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;
  UPDATE public.plugin_tokens t
     SET revoked_at = pg_catalog.now(), revoked_reason = p_reason
   WHERE t.user_id = p_user_id AND t.revoked_at IS NULL AND t.expires_at > pg_catalog.now();
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$;

-- 6. A user's tokens (newest first), without digests: what a "your devices" page shows.
CREATE OR REPLACE FUNCTION public.list_plugin_tokens(p_user_id UUID)
RETURNS TABLE (
  id UUID, device_name VARCHAR, created_at TIMESTAMP WITH TIME ZONE, expires_at TIMESTAMP WITH TIME ZONE,
  last_used_at TIMESTAMP WITH TIME ZONE, revoked_at TIMESTAMP WITH TIME ZONE, revoked_reason VARCHAR, status TEXT
)
LANGUAGE plpgsql
STABLE
SET search_path = ''
AS $$
BEGIN
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;
  RETURN QUERY
    SELECT t.id, t.device_name, t.created_at, t.expires_at, t.last_used_at, t.revoked_at, t.revoked_reason,
           CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
                WHEN t.expires_at <= pg_catalog.now() THEN 'expired'
                ELSE 'active' END
      FROM public.plugin_tokens t
     WHERE t.user_id = p_user_id
     ORDER BY t.created_at DESC, t.id;
END;
$$;

-- 7. Purge: deletes tokens (revoked or not) and login requests that expired before p_cutoff.
-- A cutoff in the future would delete live sessions, so it is refused.
CREATE OR REPLACE FUNCTION public.purge_plugin_sessions(p_cutoff TIMESTAMP WITH TIME ZONE DEFAULT NOW())
RETURNS TABLE (tokens INTEGER, login_requests INTEGER)
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
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
$$;

-- 8. Login hand-over.
-- beginLogin: stores the two key digests; returns when the request expires.
CREATE OR REPLACE FUNCTION public.begin_plugin_login(
  p_read_key_hash TEXT,
  p_write_key_hash TEXT,
  p_ttl_seconds INTEGER DEFAULT 600,
  p_device_name VARCHAR DEFAULT NULL
) RETURNS TIMESTAMP WITH TIME ZONE
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_expires_at TIMESTAMP WITH TIME ZONE;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_read_key_hash, 'p_read_key_hash');
  PERFORM public.plugin_auth_check_digest(p_write_key_hash, 'p_write_key_hash');
  IF p_ttl_seconds IS NULL OR p_ttl_seconds < 10 OR p_ttl_seconds > 3600 THEN
    RAISE EXCEPTION 'invalid_ttl: a login request lives 10 to 3600 seconds' USING ERRCODE = 'PA021';
  END IF;
  IF p_device_name IS NOT NULL AND pg_catalog.length(p_device_name) > 255 THEN
    RAISE EXCEPTION 'invalid_device_name: device name must be at most 255 characters' USING ERRCODE = 'PA020';
  END IF;
  INSERT INTO public.plugin_login_requests (read_key_hash, write_key_hash, device_name, expires_at)
  VALUES (p_read_key_hash, p_write_key_hash, p_device_name,
          pg_catalog.now() + pg_catalog.make_interval(secs => p_ttl_seconds))
  RETURNING plugin_login_requests.expires_at INTO v_expires_at;
  RETURN v_expires_at;
END;
$$;

-- completeLogin: the web page, after signing the user in, binds the request to the user. Completing
-- again for the same user is a no-op; for another user it is refused (the first sign-in wins).
CREATE OR REPLACE FUNCTION public.complete_plugin_login(p_write_key_hash TEXT, p_user_id UUID)
RETURNS VOID
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_request public.plugin_login_requests%ROWTYPE;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_write_key_hash, 'p_write_key_hash');
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;
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
$$;

-- pollLogin, step 1 (every poll): 'pending' while the browser has not completed the login,
-- 'completed' with the user once it has. Reads only.
CREATE OR REPLACE FUNCTION public.poll_plugin_login(p_read_key_hash TEXT)
RETURNS TABLE (status TEXT, user_id UUID, device_name VARCHAR)
LANGUAGE plpgsql
STABLE
SET search_path = ''
AS $$
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
$$;

-- pollLogin, step 2 (once, after 'completed'): deletes the request and records the token the
-- library signed for that user, atomically. Of racing pollers exactly one deletes the row; the
-- others get login_not_found. If recording the token fails, the delete is rolled back with it and
-- the plugin can poll again.
CREATE OR REPLACE FUNCTION public.claim_plugin_login(
  p_read_key_hash TEXT,
  p_user_id UUID,
  p_token_id UUID,
  p_token_hash TEXT,
  p_expires_at TIMESTAMP WITH TIME ZONE,
  p_max_active INTEGER DEFAULT NULL
) RETURNS VOID
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_device_name VARCHAR;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_read_key_hash, 'p_read_key_hash');
  DELETE FROM public.plugin_login_requests r
   WHERE r.read_key_hash = p_read_key_hash AND r.user_id = p_user_id
     AND r.completed_at IS NOT NULL AND r.expires_at > pg_catalog.now()
  RETURNING r.device_name INTO v_device_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'login_not_found: this login was already collected, expired or purged' USING ERRCODE = 'PA025';
  END IF;
  PERFORM public.issue_plugin_token(p_token_id, p_user_id, p_token_hash, v_device_name, p_expires_at, p_max_active);
END;
$$;
