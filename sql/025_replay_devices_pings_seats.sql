-- 025: what a second probe accepted in the database layer (issue 22, item 3). Four fixes:
--
-- 1. Idempotency keys grant without counting. A key answered its first answer forever, even after
--    the operation was refunded: consume, refund, retry with the key = allowed, never counted. A
--    key now replays only the same operation (action and items), only within the retry window of
--    10 minutes after its first use, and never once refunded; otherwise idempotency_key_reused
--    (PA009). The advisory lock per (user, key) is unchanged: of concurrent calls with one new key
--    exactly one counts and the others replay its answer. (consume_usage)
-- 2. Device limits counted names. A device is now an id the server mints with a plugin session
--    (plugin_tokens.device_id), kept across sign-ins only when the plugin sends back an id that a
--    token of the same user carries; the name stays for display. License activations count
--    device ids (license_devices.device_id); an id that no session of the user carries is
--    unknown_device (PA100). verify_plugin_session returns the device id; verify_plugin_token keeps
--    its answer (without it) for callers of the SQL function.
--    (plugin_tokens, plugin_login_requests, license_devices; begin_plugin_login, claim_plugin_login,
--    issue_plugin_token, verify_plugin_session, verify_plugin_token, license_begin_activation,
--    license_record_activation, license_remove_device)
-- 3. Gumroad pings are unsigned, yet were de-duplicated and stored before anything was verified: a
--    ping sent first with the bytes of a coming one made the real one a "duplicate", and pings for
--    unknown keys were stored for ever. Gumroad pings are no longer stored nor de-duplicated (each
--    is re-verified with Gumroad's API, which is idempotent); the stored ones are dropped; stored
--    deliveries (Lemon Squeezy's, signed) are purged by purge_license_webhook_events.
--    (license_apply_webhook, purge_license_webhook_events)
-- 4. Seat squatting: a seat of a team no longer in force kept its member (seat_taken), so a
--    stranger who seated someone and was refunded blocked them from their employer's team. Such a
--    seat is given up when another team assigns the member. (seat_assign_member)
--
-- Functions below are the full current text (from the catalog of a database set up to 024, then
-- edited). A changed signature drops the old one. Written to run under
-- `SET LOCAL search_path = pg_catalog, pg_temp`; every name is schema-qualified.

-------------------------------------------------------------------------------------------------
-- State
-------------------------------------------------------------------------------------------------

-- A device per session, minted by the server. Tokens issued before this file each get their own.
ALTER TABLE public.plugin_tokens ADD COLUMN IF NOT EXISTS device_id UUID;
UPDATE public.plugin_tokens SET device_id = pg_catalog.gen_random_uuid() WHERE device_id IS NULL;
ALTER TABLE public.plugin_tokens ALTER COLUMN device_id SET DEFAULT pg_catalog.gen_random_uuid();
ALTER TABLE public.plugin_tokens ALTER COLUMN device_id SET NOT NULL;
-- "Is this a device of this user?" at sign-in and activation.
CREATE INDEX IF NOT EXISTS idx_plugin_tokens_user_device ON public.plugin_tokens (user_id, device_id);

-- The device id a plugin sends back when it begins a login; checked against the user at claim.
ALTER TABLE public.plugin_login_requests ADD COLUMN IF NOT EXISTS device_id UUID;

-- License devices by id. Existing rows take the device of the owner's newest session of that
-- name (so the plugin that activated keeps its activation), else a device of their own.
ALTER TABLE public.license_devices ADD COLUMN IF NOT EXISTS device_id UUID;
UPDATE public.license_devices AS d
   SET device_id = COALESCE(
     (SELECT t.device_id FROM public.plugin_tokens AS t
        JOIN public.licenses AS k ON k.user_id = t.user_id
       WHERE k.id = d.license_id AND t.device_name = d.device_name
         AND NOT EXISTS (SELECT 1 FROM public.license_devices AS o
                          WHERE o.license_id = d.license_id AND o.device_id = t.device_id)
       ORDER BY t.created_at DESC LIMIT 1),
     pg_catalog.gen_random_uuid())
 WHERE d.device_id IS NULL;
ALTER TABLE public.license_devices ALTER COLUMN device_id SET NOT NULL;
DO $license_devices_key$
BEGIN
  -- The key was (license_id, device_name): one row per name. Now one row per device.
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_constraint AS c
              WHERE c.conrelid OPERATOR(pg_catalog.=) 'public.license_devices'::pg_catalog.regclass
                AND c.conname OPERATOR(pg_catalog.=) 'license_devices_pkey'
                AND pg_catalog.pg_get_constraintdef(c.oid) OPERATOR(pg_catalog.<>) 'PRIMARY KEY (license_id, device_id)') THEN
    ALTER TABLE public.license_devices DROP CONSTRAINT license_devices_pkey;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint AS c
                  WHERE c.conrelid OPERATOR(pg_catalog.=) 'public.license_devices'::pg_catalog.regclass
                    AND c.conname OPERATOR(pg_catalog.=) 'license_devices_pkey') THEN
    ALTER TABLE public.license_devices ADD CONSTRAINT license_devices_pkey PRIMARY KEY (license_id, device_id);
  END IF;
END
$license_devices_key$;

COMMENT ON TABLE public.license_devices IS 'devices a license is activated on (plugin session device ids; names for display)';
COMMENT ON TABLE public.license_webhook_events IS 'applied signed store webhook deliveries (SHA-256 of the body), for de-duplication; never Gumroad pings';

-- Gumroad pings were stored unverified; none is read again.
DELETE FROM public.license_webhook_events WHERE provider = 'gumroad';
-- Retention of the stored (signed) deliveries reads by age.
CREATE INDEX IF NOT EXISTS idx_license_webhook_events_received_at ON public.license_webhook_events (received_at);

-- Old signatures, replaced below.
DROP FUNCTION IF EXISTS public.issue_plugin_token(uuid, uuid, text, character varying, timestamp with time zone, integer);
DROP FUNCTION IF EXISTS public.begin_plugin_login(text, text, integer, character varying);
DROP FUNCTION IF EXISTS public.license_record_activation(character varying, text, character varying, uuid, character varying,
  character varying, character varying, character varying, character varying, character varying, integer, integer,
  timestamp with time zone, character varying);
DROP FUNCTION IF EXISTS public.license_begin_activation(character varying, text, uuid, character varying);
DROP FUNCTION IF EXISTS public.license_remove_device(character varying, text, uuid, character varying);

-------------------------------------------------------------------------------------------------
-- 1. Idempotency keys: consume_usage (the replay check; the rest as sql/020 generated it)
-------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION public.consume_usage(p_user_id uuid, p_action character varying, p_items integer DEFAULT 1, p_idempotency_key text DEFAULT NULL::text, p_metadata jsonb DEFAULT NULL::jsonb)
 RETURNS TABLE(allowed boolean, reason text, plan_slug text, used integer, usage_limit integer, remaining integer, batch_limit integer, resets_at timestamp with time zone, replayed boolean)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
DECLARE
  p_at TIMESTAMP WITH TIME ZONE := pg_catalog.now();
  v_today DATE := (p_at AT TIME ZONE 'UTC')::date;
  v_limits JSONB;
  v_plan_slug TEXT;
  v_limit INTEGER;   -- -1 = unlimited
  v_batch INTEGER;   -- -1 = unlimited
  v_daily BOOLEAN;
  v_first public.plugin_usage%ROWTYPE;
  v_past INTEGER;
  v_used INTEGER;
  v_reason TEXT;
BEGIN
  IF p_action IS NULL OR pg_catalog.octet_length(p_action) NOT BETWEEN 1 AND 64
      OR p_action ~ '[^A-Za-z0-9_.:-]' OR p_items IS NULL OR p_items < 1 OR p_items > 10000
      OR (p_idempotency_key IS NOT NULL AND (pg_catalog.length(p_idempotency_key) NOT BETWEEN 1 AND 255
          OR p_idempotency_key ~ '[[:cntrl:]]'))
      OR (p_metadata IS NOT NULL AND (pg_catalog.jsonb_typeof(p_metadata) <> 'object'
          OR pg_catalog.octet_length(p_metadata::text) > 16384)) THEN
    IF p_action IS NULL OR pg_catalog.octet_length(p_action) NOT BETWEEN 1 AND 64
      OR p_action ~ '[^A-Za-z0-9_.:-]' THEN
      RAISE EXCEPTION 'invalid_action: action must be 1 to 64 characters of A-Z a-z 0-9 _ . : -'
        USING ERRCODE = 'PA003';
    END IF;
    IF p_items IS NULL OR p_items < 1 OR p_items > 10000 THEN
      RAISE EXCEPTION 'invalid_items: items must be an integer from 1 to 10000' USING ERRCODE = 'PA002';
    END IF;
    IF p_idempotency_key IS NOT NULL AND (pg_catalog.length(p_idempotency_key) NOT BETWEEN 1 AND 255
        OR p_idempotency_key ~ '[[:cntrl:]]') THEN
      RAISE EXCEPTION 'invalid_idempotency_key: the key must be 1 to 255 characters without control characters'
        USING ERRCODE = 'PA004';
    END IF;
    RAISE EXCEPTION 'invalid_metadata: metadata must be a JSON object of at most 16 kB' USING ERRCODE = 'PA005';
  END IF;

  IF p_idempotency_key IS NOT NULL THEN
    PERFORM pg_catalog.pg_advisory_xact_lock(7301, pg_catalog.hashtext(p_user_id::text || ':' || p_idempotency_key));
    SELECT * INTO v_first FROM public.plugin_usage AS u
     WHERE u.user_id = p_user_id AND u.idempotency_key = p_idempotency_key;
    IF FOUND THEN
      IF v_first.action <> p_action OR v_first.items <> p_items THEN
        RAISE EXCEPTION 'idempotency_key_reused: this key was first used for another action or batch size; use a new key per operation'
          USING ERRCODE = 'PA009';
      END IF;
      -- A replay answers a retry of the same operation, nothing more: never once the operation
      -- was given back (the work failed, a new attempt is a new operation), never after the retry
      -- window (10 minutes, docs/usage.md). Otherwise one key would grant work without counting it.
      IF v_first.refunded_at IS NOT NULL THEN
        RAISE EXCEPTION 'idempotency_key_reused: the operation of this key was refunded; a new attempt needs a new key'
          USING ERRCODE = 'PA009';
      END IF;
      IF v_first.created_at < p_at - INTERVAL '10 minutes' THEN
        RAISE EXCEPTION 'idempotency_key_reused: this key was first used over 10 minutes ago (the retry window); use a new key per operation'
          USING ERRCODE = 'PA009';
      END IF;
      allowed := v_first.allowed;
      reason := v_first.reason;
      plan_slug := v_first.plan_slug;
      used := v_first.used;
      usage_limit := v_first.usage_limit;
      remaining := CASE WHEN v_first.usage_limit IS NOT NULL THEN GREATEST(v_first.usage_limit - v_first.used, 0) END;
      batch_limit := v_first.batch_limit;
      resets_at := v_first.resets_at;
      replayed := true;
      RETURN NEXT;
      RETURN;
    END IF;
  END IF;

  SELECT p.plan_slug, p.limits INTO v_plan_slug, v_limits
    FROM public.users AS w
    JOIN public.subscription_plans AS p ON p.id = COALESCE(
      (SELECT g.plan_id FROM (SELECT (pg_catalog.row_number() OVER (
            ORDER BY COALESCE(p.price_monthly, 0) DESC,
                     CASE WHEN (p.limits ->> 'resizesPerDay')::integer = -1 THEN 2147483647
                          ELSE (p.limits ->> 'resizesPerDay')::integer END DESC,
                     CASE WHEN (p.limits ->> 'batchSize')::integer = -1 THEN 2147483647
                          ELSE (p.limits ->> 'batchSize')::integer END DESC,
                     g.precedence,
                     g.until DESC NULLS FIRST,
                     p.plan_slug))::integer,
         g.source::varchar, p.id, p.plan_slug, g.until, g.detail::varchar
    FROM (
      SELECT CASE WHEN s.status = 'manual' THEN 'manual' ELSE 'stripe' END AS source,
             CASE WHEN s.status = 'manual' THEN 60 ELSE 10 END AS precedence,
             s.plan_id, s.current_period_end AS until, s.status::text AS detail
        FROM public.user_subscriptions AS s
       WHERE s.user_id = p_user_id
         AND (s.status = 'manual' OR s.quantity = 1)
         AND (CASE WHEN s.status IN ('active', 'trialing') THEN true WHEN s.status = 'past_due' THEN s.current_period_end IS NOT NULL AND s.current_period_end > p_at WHEN s.status = 'manual' THEN s.current_period_end IS NULL OR s.current_period_end > p_at ELSE false END)
      UNION ALL
      SELECT 'figma', 20, l.plan_id,
             CASE WHEN l.link = 'FIRST_USE' THEN f.first_seen_at + pg_catalog.make_interval(secs => l.trial_seconds)
                  ELSE f.grant_until END,
             l.link::text
        FROM public.figma_users AS f
        JOIN public.figma_plan_links AS l
          ON (l.link = f.payment_status AND f.grant_until > p_at)
          OR (l.link = 'FIRST_USE' AND f.first_seen_at + pg_catalog.make_interval(secs => l.trial_seconds) > p_at)
       WHERE f.user_id = p_user_id
      UNION ALL
      SELECT k.provider::text, CASE WHEN k.provider = 'lemonsqueezy' THEN 30 ELSE 40 END,
             t.plan_id, k.expires_at, k.status::text
        FROM public.licenses AS k
       CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
       WHERE k.user_id = p_user_id
         AND k.status IN ('active', 'inactive')
         AND (k.expires_at IS NULL OR k.expires_at > p_at)
         AND t.plan_id IS NOT NULL
         AND COALESCE(t.seats, k.quantity) = 1
      UNION ALL
      SELECT 'seat', 50, t.plan_id, k.expires_at, k.provider::text
        FROM public.seat_assignments AS a
        JOIN public.licenses AS k ON k.id = a.license_id
       CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
       WHERE a.member_user_id = p_user_id
         AND k.status IN ('active', 'inactive')
         AND (k.expires_at IS NULL OR k.expires_at > p_at)
         AND t.plan_id IS NOT NULL
         AND COALESCE(t.seats, k.quantity) > 1
         AND (SELECT pg_catalog.count(*) FROM public.seat_assignments AS b
               WHERE b.license_id = a.license_id
                 AND b.seat_order < a.seat_order) < COALESCE(t.seats, k.quantity)
      UNION ALL
      SELECT 'seat', 50, s.plan_id, s.current_period_end, 'stripe'
        FROM public.seat_assignments AS a
        JOIN public.user_subscriptions AS s ON s.id = a.subscription_id
       WHERE a.member_user_id = p_user_id
         AND s.status <> 'manual'
         AND s.quantity > 1
         AND (CASE WHEN s.status IN ('active', 'trialing') THEN true WHEN s.status = 'past_due' THEN s.current_period_end IS NOT NULL AND s.current_period_end > p_at WHEN s.status = 'manual' THEN s.current_period_end IS NULL OR s.current_period_end > p_at ELSE false END)
         AND (SELECT pg_catalog.count(*) FROM public.seat_assignments AS b
               WHERE b.subscription_id = a.subscription_id
                 AND b.seat_order < a.seat_order) < s.quantity
    ) AS g
    JOIN public.subscription_plans AS p ON p.id = g.plan_id
   ORDER BY 1) AS g(rank, source, plan_id, plan_slug, until, detail) WHERE g.rank = 1),
      (SELECT f.id FROM public.subscription_plans AS f WHERE f.plan_slug = 'free'))
   WHERE w.id = p_user_id;
  IF NOT FOUND THEN
    PERFORM public.plugin_auth_require_user(p_user_id);
    RAISE EXCEPTION 'no_plan: the user has no effective plan and the free plan is missing; run setup'
      USING ERRCODE = 'PA007';
  END IF;
  IF p_action = 'resize' THEN
    v_limit := (v_limits ->> 'resizesPerDay')::integer;
    v_batch := (v_limits ->> 'batchSize')::integer;
    v_daily := (v_limits ->> 'isDaily')::boolean;
  ELSE
    v_limit := -1;
    v_batch := -1;
    v_daily := true;
  END IF;

  -- v_past: what other days used (lifetime plans; 0 for daily ones); see sql/006.
  v_past := 0;
  IF NOT v_daily THEN
    IF v_limit <> -1 THEN
      PERFORM pg_catalog.pg_advisory_xact_lock(7302, pg_catalog.hashtext(p_user_id::text || ':' || p_action));
    END IF;
    SELECT COALESCE(sum(d.count), 0)::integer INTO v_past FROM public.daily_usage_summary AS d
     WHERE d.user_id = p_user_id AND d.action = p_action AND d.usage_date <> v_today;
  END IF;

  IF v_batch <> -1 AND p_items > v_batch THEN
    v_reason := 'batch_too_large';
  ELSIF v_limit = -1 THEN
    INSERT INTO public.daily_usage_summary AS d (user_id, action, usage_date, count)
    VALUES (p_user_id, p_action, v_today, 1)
    ON CONFLICT (user_id, action, usage_date)
    DO UPDATE SET count = d.count + 1, updated_at = pg_catalog.now()
    RETURNING d.count INTO v_used;
    v_reason := 'ok';
  ELSIF v_past + 1 > v_limit THEN
    -- Also the case limit = 0: the insert arm of the upsert below ignores its WHERE.
    v_reason := 'limit_reached';
  ELSE
    -- The row lock of ON CONFLICT DO UPDATE serializes concurrent callers; WHERE re-checks the
    -- limit against the latest committed count. No row returned = denied, nothing changed.
    INSERT INTO public.daily_usage_summary AS d (user_id, action, usage_date, count)
    VALUES (p_user_id, p_action, v_today, 1)
    ON CONFLICT (user_id, action, usage_date)
    DO UPDATE SET count = d.count + 1, updated_at = pg_catalog.now()
    WHERE v_past + d.count + 1 <= v_limit
    RETURNING d.count INTO v_used;
    v_reason := CASE WHEN FOUND THEN 'ok' ELSE 'limit_reached' END;
  END IF;

  IF v_reason <> 'ok' THEN
    -- Denied: report today's count unchanged; limit_reached wins over batch_too_large.
    SELECT COALESCE(max(d.count), 0) INTO v_used FROM public.daily_usage_summary AS d
     WHERE d.user_id = p_user_id AND d.action = p_action AND d.usage_date = v_today;
    IF v_limit <> -1 AND v_past + v_used + 1 > v_limit THEN
      v_reason := 'limit_reached';
    END IF;
  END IF;
  v_used := v_past + v_used;

  allowed := v_reason = 'ok';
  reason := v_reason;
  plan_slug := v_plan_slug;
  used := v_used;
  usage_limit := NULLIF(v_limit, -1);
  remaining := CASE WHEN v_limit <> -1 THEN GREATEST(v_limit - v_used, 0) END;
  batch_limit := NULLIF(v_batch, -1);
  resets_at := CASE WHEN v_daily THEN (v_today + 1)::timestamp AT TIME ZONE 'UTC' END;
  replayed := false;

  -- The log row keeps the whole answer: a replay of this key returns it unchanged.
  INSERT INTO public.plugin_usage (user_id, action, items, allowed, reason, plan_slug, idempotency_key,
                                   metadata, used, usage_limit, batch_limit, resets_at)
  VALUES (p_user_id, p_action, p_items, v_reason = 'ok', v_reason, v_plan_slug, p_idempotency_key,
          p_metadata, v_used, NULLIF(v_limit, -1), NULLIF(v_batch, -1),
          CASE WHEN v_daily THEN (v_today + 1)::timestamp AT TIME ZONE 'UTC' END);
  RETURN NEXT;
END;
$function$;

-------------------------------------------------------------------------------------------------
-- 2. Devices: sign-in (begin, claim, issue), verify, license activations
-------------------------------------------------------------------------------------------------
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

CREATE OR REPLACE FUNCTION public.license_begin_activation(p_provider character varying, p_key_hash text, p_user_id uuid, p_device_id uuid, p_device_name character varying, OUT license_id uuid, OUT device_known boolean, OUT device_name character varying)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_license public.licenses%ROWTYPE;
  v_limit INTEGER;
  v_devices TEXT;
  v_count INTEGER;
BEGIN
  PERFORM public.license_check_provider(p_provider);
  PERFORM public.plugin_auth_check_digest(p_key_hash, 'p_key_hash');
  PERFORM public.plugin_auth_require_user(p_user_id);
  IF p_device_name IS NOT NULL AND (pg_catalog.length(p_device_name) NOT BETWEEN 1 AND 255 OR p_device_name ~ '[[:cntrl:]]') THEN
    RAISE EXCEPTION 'invalid_device_name: a device name is 1 to 255 characters without control characters' USING ERRCODE = 'PA020';
  END IF;
  -- A device is an id the server minted with a plugin session of this user (plugin_tokens.device_id),
  -- never the name the caller sends: five machines all called "Figma" are five devices.
  SELECT t.device_name INTO device_name FROM public.plugin_tokens AS t
   WHERE t.user_id = p_user_id AND t.device_id = p_device_id
   ORDER BY t.created_at DESC LIMIT 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown_device: this device id belongs to no plugin session of this user; pass the deviceId auth.tokens.verify returns'
      USING ERRCODE = 'PA100';
  END IF;
  -- The name is for display: the caller's, else the session's, else a placeholder.
  device_name := COALESCE(p_device_name, NULLIF(device_name, ''), 'Unnamed device');
  PERFORM pg_catalog.pg_advisory_xact_lock(7320, pg_catalog.hashtext(p_provider || ':' || p_key_hash));
  SELECT k.* INTO v_license FROM public.licenses AS k
   WHERE k.provider = p_provider AND k.key_hash = p_key_hash FOR UPDATE;
  IF NOT FOUND THEN
    license_id := NULL;
    device_known := false;
    RETURN;
  END IF;
  IF v_license.user_id <> p_user_id THEN
    RAISE EXCEPTION 'license_in_use: this license key is activated by another user' USING ERRCODE = 'PA084';
  END IF;
  license_id := v_license.id;
  device_known := EXISTS (SELECT 1 FROM public.license_devices AS d WHERE d.license_id = v_license.id AND d.device_id = p_device_id);
  IF device_known THEN
    RETURN;
  END IF;
  SELECT LEAST(t.device_limit, v_license.activation_limit) INTO v_limit
    FROM public.license_terms(v_license.provider, v_license.product_id, v_license.variant_id) AS t;
  SELECT pg_catalog.count(*)::integer,
         pg_catalog.string_agg(d.device_name || ' (' || pg_catalog.left(d.device_id::text, 8) || ')', ', ' ORDER BY d.activated_at, d.device_id)
    INTO v_count, v_devices
    FROM public.license_devices AS d WHERE d.license_id = v_license.id;
  IF v_limit IS NOT NULL AND v_count >= v_limit THEN
    RAISE EXCEPTION 'device_limit_reached: this license is active on % of % devices; deactivate one of: %', v_count, v_limit, v_devices
      USING ERRCODE = 'PA085';
  END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.license_record_activation(p_provider character varying, p_key_hash text, p_key_prefix character varying, p_user_id uuid, p_device_id uuid, p_device_name character varying, p_provider_key_id character varying, p_product_id character varying, p_variant_id character varying, p_order_id character varying, p_status character varying, p_activation_limit integer, p_quantity integer, p_expires_at timestamp with time zone, p_instance_id character varying, OUT license_id uuid, OUT activations_used integer, OUT device_limit integer, OUT plan_id uuid)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
DECLARE
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.clock_timestamp();
  v_known BOOLEAN;
  v_old_status VARCHAR;
  v_seats INTEGER;
  v_device_name VARCHAR;
BEGIN
  IF p_product_id IS NULL OR p_product_id !~ '^[A-Za-z0-9_=+/.:-]{1,128}$'
     OR (COALESCE(p_variant_id, '') <> '' AND p_variant_id !~ '^[A-Za-z0-9_=+/.:-]{1,128}$') THEN
    RAISE EXCEPTION 'invalid_license_product: a product or variant id is 1 to 128 characters of A-Z a-z 0-9 _ = + / . : -'
      USING ERRCODE = 'PA081';
  END IF;
  IF p_status IS NULL OR p_status NOT IN ('inactive', 'active', 'expired', 'disabled', 'refunded', 'disputed', 'chargebacked', 'ended')
     OR (p_activation_limit IS NOT NULL AND p_activation_limit < 0) OR p_quantity IS NULL OR p_quantity < 1
     OR p_key_prefix IS NULL OR p_key_prefix !~ '^[\x21-\x7e]{1,8}$' THEN
    RAISE EXCEPTION 'invalid_license_answer: status, activation limit, quantity or key prefix out of range' USING ERRCODE = 'PA083';
  END IF;
  SELECT b.license_id, b.device_known, b.device_name INTO license_id, v_known, v_device_name
    FROM public.license_begin_activation(p_provider, p_key_hash, p_user_id, p_device_id, p_device_name) AS b;
  IF license_id IS NULL THEN
    INSERT INTO public.licenses AS k (provider, key_hash, key_prefix, provider_key_id, user_id, product_id, variant_id,
      order_id, status, activation_limit, quantity, expires_at, checked_at, state_at)
    VALUES (p_provider, p_key_hash, p_key_prefix, p_provider_key_id, p_user_id, p_product_id, COALESCE(p_variant_id, ''),
      p_order_id, p_status, p_activation_limit, p_quantity, p_expires_at, v_now, '-infinity')
    RETURNING k.id INTO license_id;
    v_old_status := NULL;
  ELSE
    SELECT k.status INTO v_old_status FROM public.licenses AS k WHERE k.id = license_id;
    UPDATE public.licenses AS k SET
      provider_key_id = COALESCE(p_provider_key_id, k.provider_key_id),
      order_id = COALESCE(p_order_id, k.order_id),
      -- A refund or dispute we learned of stays until the store says otherwise in a check.
      status = CASE WHEN k.status IN ('refunded', 'disputed', 'chargebacked') AND p_provider = 'lemonsqueezy'
                    THEN k.status ELSE p_status END,
      activation_limit = p_activation_limit, quantity = p_quantity, expires_at = p_expires_at,
      checked_at = v_now, updated_at = v_now
     WHERE k.id = license_id;
  END IF;
  SELECT t.plan_id, LEAST(t.device_limit, p_activation_limit), t.seats INTO plan_id, device_limit, v_seats
    FROM public.license_terms(p_provider, p_product_id, COALESCE(p_variant_id, '')) AS t;
  IF NOT v_known THEN
    IF device_limit IS NOT NULL
       AND (SELECT pg_catalog.count(*) FROM public.license_devices AS d WHERE d.license_id = license_id) >= device_limit THEN
      RAISE EXCEPTION 'device_limit_reached: this license is active on % of % devices; deactivate one of: %',
        device_limit, device_limit,
        (SELECT pg_catalog.string_agg(d.device_name || ' (' || pg_catalog.left(d.device_id::text, 8) || ')', ', ' ORDER BY d.activated_at, d.device_id)
           FROM public.license_devices AS d WHERE d.license_id = license_id)
        USING ERRCODE = 'PA085';
    END IF;
    INSERT INTO public.license_devices (license_id, device_id, device_name, instance_id)
    VALUES (license_id, p_device_id, v_device_name, p_instance_id);
  ELSE
    -- The same device again: its name may have changed; its store instance is kept or replaced.
    UPDATE public.license_devices AS d SET device_name = v_device_name, instance_id = COALESCE(p_instance_id, d.instance_id)
     WHERE d.license_id = license_id AND d.device_id = p_device_id;
  END IF;
  SELECT pg_catalog.count(*)::integer INTO activations_used FROM public.license_devices AS d WHERE d.license_id = license_id;
  IF v_old_status IS DISTINCT FROM (SELECT k.status FROM public.licenses AS k WHERE k.id = license_id) THEN
    PERFORM public.license_record_history(license_id);
  END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.license_remove_device(p_provider character varying, p_key_hash text, p_user_id uuid, p_device_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_id UUID;
  v_left INTEGER;
BEGIN
  PERFORM public.license_check_provider(p_provider);
  PERFORM public.plugin_auth_check_digest(p_key_hash, 'p_key_hash');
  PERFORM pg_catalog.pg_advisory_xact_lock(7320, pg_catalog.hashtext(p_provider || ':' || p_key_hash));
  SELECT k.id INTO v_id FROM public.licenses AS k
   WHERE k.provider = p_provider AND k.key_hash = p_key_hash AND k.user_id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'license_not_found: this user has no such license' USING ERRCODE = 'PA086';
  END IF;
  DELETE FROM public.license_devices AS d WHERE d.license_id = v_id AND d.device_id = p_device_id;
  SELECT pg_catalog.count(*)::integer INTO v_left FROM public.license_devices AS d WHERE d.license_id = v_id;
  RETURN v_left;
END;
$function$;

-------------------------------------------------------------------------------------------------
-- 3. Webhooks: Gumroad pings never de-duplicated nor stored; retention of stored deliveries
-------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION public.license_apply_webhook(p_provider character varying, p_event_id text, p_event_name character varying, p_match character varying, p_value text, p_status character varying, p_expires_at timestamp with time zone, p_event_at timestamp with time zone, p_authoritative boolean DEFAULT false, OUT applied boolean, OUT reason text, OUT licenses integer)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_id UUID;
  v_result TEXT;
BEGIN
  PERFORM public.license_check_provider(p_provider);
  IF p_event_id IS NULL OR p_event_id !~ '^[0-9a-f]{64}$' OR p_event_name IS NULL OR p_event_name !~ '^[a-z0-9_.:-]{1,64}$' THEN
    RAISE EXCEPTION 'invalid_event_id: the event id is the SHA-256 of the delivery and the name 1 to 64 characters of a-z 0-9 _ . : -'
      USING ERRCODE = 'PA089';
  END IF;
  IF p_match IS NULL OR p_match NOT IN ('key_id', 'order_id', 'key_hash', 'none') THEN
    RAISE EXCEPTION 'invalid_license_answer: p_match is key_id, order_id, key_hash or none' USING ERRCODE = 'PA083';
  END IF;
  -- Signed deliveries (Lemon Squeezy) are de-duplicated by their body's digest. Gumroad's pings
  -- are unsigned: anyone can send one first, so they are never de-duplicated nor stored; each is
  -- applied with the state just verified with Gumroad's API (p_authoritative), which is idempotent.
  IF p_provider <> 'gumroad' THEN
    INSERT INTO public.license_webhook_events (provider, event_id, event_name) VALUES (p_provider, p_event_id, p_event_name)
    ON CONFLICT (provider, event_id) DO NOTHING;
    IF NOT FOUND THEN
      applied := false; reason := 'duplicate'; licenses := 0;
      RETURN;
    END IF;
  END IF;
  licenses := 0;
  reason := 'unknown_license';
  IF p_match = 'none' OR p_status IS NULL THEN
    applied := false; reason := 'ignored';
    RETURN;
  END IF;
  FOR v_id IN
    SELECT k.id FROM public.licenses AS k
     WHERE k.provider = p_provider
       AND CASE p_match WHEN 'key_id' THEN k.provider_key_id = p_value
                        WHEN 'order_id' THEN k.order_id = p_value
                        ELSE k.key_hash = p_value END
     ORDER BY k.id
  LOOP
    v_result := public.license_apply_state(v_id, p_status, p_expires_at, NULL, NULL, p_event_at, p_authoritative);
    IF v_result = 'applied' THEN
      licenses := licenses + 1;
    END IF;
    reason := CASE WHEN licenses > 0 THEN 'applied' ELSE v_result END;
  END LOOP;
  applied := licenses > 0;
END;
$function$;

-- Deletes stored deliveries received before the cutoff (at least a day ago: a store retries a
-- failed delivery within hours, and a retry must still be found). Returns how many.
CREATE OR REPLACE FUNCTION public.purge_license_webhook_events(p_cutoff timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_deleted INTEGER;
BEGIN
  IF p_cutoff IS NULL OR p_cutoff > pg_catalog.now() - INTERVAL '1 day' THEN
    RAISE EXCEPTION 'invalid_cutoff: keep at least the last day of webhook deliveries (the cutoff must be at least 1 day ago)'
      USING ERRCODE = 'PA024';
  END IF;
  DELETE FROM public.license_webhook_events AS e WHERE e.received_at < p_cutoff;
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  RETURN v_deleted;
END;
$function$;

-------------------------------------------------------------------------------------------------
-- 4. Seats: a seat of a team no longer in force never blocks
-------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION public.seat_assign_member(p_owner_id uuid, p_member_id uuid, OUT license_id uuid, OUT subscription_id uuid, OUT seats_used integer, OUT seats integer)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
DECLARE
  v_row RECORD;
  v_existing public.seat_assignments%ROWTYPE;
  v_total INTEGER := 0;
  v_used INTEGER := 0;
  v_count INTEGER;
BEGIN
  IF p_owner_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS u WHERE u.id = p_owner_id)
     OR p_member_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS u WHERE u.id = p_member_id) THEN
    RAISE EXCEPTION 'unknown_user: the owner or the member does not exist' USING ERRCODE = 'PA001';
  END IF;
  FOR v_row IN
    SELECT k.id, COALESCE(t.seats, k.quantity) AS n
      FROM public.licenses AS k
     CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
     WHERE k.user_id = p_owner_id AND t.plan_id IS NOT NULL AND COALESCE(t.seats, k.quantity) > 1
       AND k.status IN ('active', 'inactive') AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now())
     ORDER BY k.id
       FOR UPDATE OF k
  LOOP
    v_total := v_total + v_row.n;
    SELECT pg_catalog.count(*)::integer INTO v_count FROM public.seat_assignments AS a WHERE a.license_id = v_row.id;
    v_used := v_used + v_count;
    IF license_id IS NULL AND v_count < v_row.n THEN
      license_id := v_row.id;
    END IF;
  END LOOP;
  FOR v_row IN
    SELECT s.id, s.quantity AS n
      FROM public.user_subscriptions AS s
     WHERE s.user_id = p_owner_id AND s.status <> 'manual' AND s.quantity > 1
       AND public.subscription_grants_access(s.status, s.current_period_end, pg_catalog.now())
       FOR UPDATE OF s
  LOOP
    v_total := v_total + v_row.n;
    SELECT pg_catalog.count(*)::integer INTO v_count FROM public.seat_assignments AS a WHERE a.subscription_id = v_row.id;
    v_used := v_used + v_count;
    IF license_id IS NULL AND subscription_id IS NULL AND v_count < v_row.n THEN
      subscription_id := v_row.id;
    END IF;
  END LOOP;
  SELECT a.* INTO v_existing FROM public.seat_assignments AS a WHERE a.member_user_id = p_member_id FOR UPDATE;
  -- A seat of a team no longer in force (refunded, expired, unlinked, no longer a team) holds
  -- nobody: it is given up here, so a stranger who seated someone and was refunded cannot keep
  -- them from their own team (seat_taken only for a team in force; issue 22).
  IF FOUND AND NOT EXISTS (
       SELECT 1 FROM public.licenses AS k
        CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
        WHERE k.id = v_existing.license_id AND t.plan_id IS NOT NULL AND COALESCE(t.seats, k.quantity) > 1
          AND k.status IN ('active', 'inactive') AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now())
       UNION ALL
       SELECT 1 FROM public.user_subscriptions AS s
        WHERE s.id = v_existing.subscription_id AND s.status <> 'manual' AND s.quantity > 1
          AND public.subscription_grants_access(s.status, s.current_period_end, pg_catalog.now())) THEN
    DELETE FROM public.seat_assignments AS a WHERE a.member_user_id = p_member_id;
    v_existing := NULL;
  END IF;
  IF v_existing.member_user_id IS NOT NULL THEN
    IF v_existing.owner_user_id <> p_owner_id THEN
      RAISE EXCEPTION 'seat_taken: this member already holds a seat of another team' USING ERRCODE = 'PA088';
    END IF;
    license_id := v_existing.license_id; subscription_id := v_existing.subscription_id;
    seats_used := v_used; seats := v_total;
    RETURN;
  END IF;
  IF license_id IS NULL AND subscription_id IS NULL THEN
    RAISE EXCEPTION 'no_seats_left: all % seats are taken; remove a member or buy more seats', v_total USING ERRCODE = 'PA087';
  END IF;
  -- seat_order is drawn here, after the locks above: a seat's place follows the order seats are given.
  INSERT INTO public.seat_assignments (license_id, subscription_id, owner_user_id, member_user_id)
  VALUES (license_id, subscription_id, p_owner_id, p_member_id);
  seats_used := v_used + 1;
  seats := v_total;
END;
$function$;
