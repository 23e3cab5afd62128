-- 013: input hardening (issue 11, items 3, 4, 5 and 7). CREATE OR REPLACE of the functions whose
-- checks change; signatures, grants and owners are unchanged. Written to run under
-- `SET LOCAL search_path = pg_catalog`: every name is schema-qualified, and the one statement
-- outside a function body spells its operators OPERATOR(pg_catalog.x).
--
-- - verify_plugin_token: a NULL or malformed digest is refused (invalid_digest, PA029) instead of
--   being compared, and the comparison is null-safe (IS DISTINCT FROM). Before, (id, NULL) made
--   `token_hash <> NULL` NULL, which fell through to status 'ok' with the user id.
-- - sync_stripe_subscription: an event time that is infinite or more than 5 minutes ahead of now()
--   is refused (invalid_event_created, PA031); a missing cancel_at_period_end is false (it was NULL,
--   and the NOT NULL column answered 23502). Rows frozen by such a time earlier are thawed below.
-- - issue_plugin_token, begin_plugin_login (device names), revoke_plugin_token,
--   revoke_all_plugin_tokens (reasons): control characters (C0, DEL and C1, e.g. U+0085) are refused
--   with the function's own code (invalid_device_name PA020, invalid_reason PA023), the same check
--   src/validation.ts makes, instead of reaching sql/010's CHECKs as check_violation. The class is
--   spelled out rather than [[:cntrl:]], whose meaning beyond ASCII depends on the locale.

-- Verify (007, 3.): refuses a NULL digest; null-safe comparison.
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
  -- A NULL or malformed digest names no token: refused like everywhere else (invalid_digest), never
  -- compared. Inline rather than a call of plugin_auth_check_digest: this is the hot path.
  IF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION 'invalid_digest: p_token_hash must be the lowercase hex SHA-256 of the token, never the token itself'
      USING ERRCODE = 'PA029';
  END IF;
  -- The common path is this one primary-key lookup and nothing else. A deleted user's tokens are
  -- gone with it (ON DELETE CASCADE), so "the user still exists" needs no second lookup.
  SELECT t.user_id, t.token_hash, t.expires_at, t.device_name, t.revoked_at, t.last_used_at
    INTO v_token
    FROM public.plugin_tokens AS t
   WHERE t.id = p_token_id;
  IF NOT FOUND OR v_token.token_hash IS DISTINCT FROM p_token_hash THEN
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

-- Issue (007, 2.): device names without control characters.
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

-- Revoke one token (007, 4.): reasons without control characters.
CREATE OR REPLACE FUNCTION public.revoke_plugin_token(p_token_id UUID, p_reason VARCHAR DEFAULT NULL)
RETURNS BOOLEAN
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
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
$$;

-- Sign out everywhere (007, 5.): same rule for the reason.
CREATE OR REPLACE FUNCTION public.revoke_all_plugin_tokens(p_user_id UUID, p_reason VARCHAR DEFAULT 'revoke_all')
RETURNS INTEGER
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_count INTEGER;
BEGIN
  IF p_reason IS NOT NULL AND (pg_catalog.length(p_reason) > 255 OR p_reason ~ '[\u0001-\u001f\u007f-\u009f]') THEN
    RAISE EXCEPTION 'invalid_reason: reason must be at most 255 characters without control characters'
      USING ERRCODE = 'PA023';
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

-- Begin a login (007, 8.): same rule for the device name.
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
  IF p_device_name IS NOT NULL AND (pg_catalog.length(p_device_name) > 255 OR p_device_name ~ '[\u0001-\u001f\u007f-\u009f]') THEN
    RAISE EXCEPTION 'invalid_device_name: device name must be at most 255 characters without control characters'
      USING ERRCODE = 'PA020';
  END IF;
  INSERT INTO public.plugin_login_requests (read_key_hash, write_key_hash, device_name, expires_at)
  VALUES (p_read_key_hash, p_write_key_hash, p_device_name,
          pg_catalog.now() + pg_catalog.make_interval(secs => p_ttl_seconds))
  RETURNING plugin_login_requests.expires_at INTO v_expires_at;
  RETURN v_expires_at;
END;
$$;

-- Stripe sync (008): event times bounded; missing cancel_at_period_end is false.
CREATE OR REPLACE FUNCTION public.sync_stripe_subscription(
  p_subscription JSONB,
  p_event_created TIMESTAMP WITH TIME ZONE
) RETURNS TABLE (applied BOOLEAN, reason TEXT, user_id UUID, plan_slug VARCHAR, status VARCHAR)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
  v_id TEXT;
  v_status TEXT;
  v_customer TEXT;
  v_item JSONB;
  v_price TEXT;
  v_metadata_user TEXT;
  v_user_id UUID;
  v_plan_id UUID;
  v_plan_slug VARCHAR;
  v_period_start TIMESTAMP WITH TIME ZONE;
  v_period_end TIMESTAMP WITH TIME ZONE;
  v_cancel_at_period_end BOOLEAN;
  v_canceled_at TIMESTAMP WITH TIME ZONE;
  v_trial_end TIMESTAMP WITH TIME ZONE;
  v_row RECORD;
BEGIN
  IF p_subscription IS NULL OR pg_catalog.jsonb_typeof(p_subscription) <> 'object'
     OR COALESCE(p_subscription ->> 'object', 'subscription') <> 'subscription' THEN
    RAISE EXCEPTION 'invalid_subscription: pass a Stripe subscription object (event.data.object), not the event'
      USING ERRCODE = 'PA030';
  END IF;
  v_id := CASE WHEN pg_catalog.jsonb_typeof(p_subscription -> 'id') = 'string' THEN p_subscription ->> 'id' END;
  IF v_id IS NULL OR pg_catalog.length(v_id) NOT BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION 'invalid_subscription: id must be a Stripe subscription id' USING ERRCODE = 'PA030';
  END IF;
  v_status := CASE WHEN pg_catalog.jsonb_typeof(p_subscription -> 'status') = 'string' THEN p_subscription ->> 'status' END;
  IF v_status IS NULL OR v_status NOT IN ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due',
                                          'canceled', 'unpaid', 'paused') THEN
    RAISE EXCEPTION 'invalid_subscription: status must be one of Stripe''s subscription statuses'
      USING ERRCODE = 'PA030';
  END IF;
  -- customer is an id, or the expanded customer object.
  v_customer := CASE pg_catalog.jsonb_typeof(p_subscription -> 'customer')
                  WHEN 'string' THEN p_subscription ->> 'customer'
                  WHEN 'object' THEN p_subscription -> 'customer' ->> 'id' END;
  IF v_customer IS NULL OR pg_catalog.length(v_customer) NOT BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION 'invalid_subscription: customer must be a Stripe customer id' USING ERRCODE = 'PA030';
  END IF;
  v_item := p_subscription -> 'items' -> 'data' -> 0;
  v_price := CASE pg_catalog.jsonb_typeof(v_item -> 'price')
               WHEN 'string' THEN v_item ->> 'price'
               WHEN 'object' THEN v_item -> 'price' ->> 'id' END;
  IF v_price IS NULL THEN
    RAISE EXCEPTION 'invalid_subscription: items.data[0].price.id is missing' USING ERRCODE = 'PA030';
  END IF;
  IF p_event_created IS NULL THEN
    RAISE EXCEPTION 'invalid_event_created: pass the event''s created time' USING ERRCODE = 'PA031';
  END IF;
  -- The row keeps the newest event time applied, and every older event is 'stale': an infinite or
  -- far-future time (epoch milliseconds read as seconds: year 58000) would freeze the row forever.
  -- Five minutes covers any clock skew between Stripe and this server.
  IF NOT pg_catalog.isfinite(p_event_created) OR p_event_created > pg_catalog.now() + INTERVAL '5 minutes' THEN
    RAISE EXCEPTION 'invalid_event_created: the event time must be finite and at most 5 minutes in the future (event.created is epoch seconds, not milliseconds)'
      USING ERRCODE = 'PA031';
  END IF;

  -- Current API versions keep the period on each item; older ones on the subscription.
  v_period_start := COALESCE(public.stripe_timestamp(v_item -> 'current_period_start'),
                             public.stripe_timestamp(p_subscription -> 'current_period_start'));
  v_period_end := COALESCE(public.stripe_timestamp(v_item -> 'current_period_end'),
                           public.stripe_timestamp(p_subscription -> 'current_period_end'));
  -- Missing, null or not a boolean: false (Stripe's default), never NULL (the column is NOT NULL).
  v_cancel_at_period_end := COALESCE(pg_catalog.jsonb_typeof(p_subscription -> 'cancel_at_period_end') = 'boolean'
                                     AND (p_subscription -> 'cancel_at_period_end')::boolean, false);
  v_canceled_at := public.stripe_timestamp(p_subscription -> 'canceled_at');
  v_trial_end := public.stripe_timestamp(p_subscription -> 'trial_end');

  -- A deactivated plan still has subscribers: is_active only governs what is sold.
  SELECT p.id, p.plan_slug INTO v_plan_id, v_plan_slug
    FROM public.subscription_plans p WHERE p.stripe_price_id = v_price;
  IF v_plan_id IS NULL THEN
    RAISE EXCEPTION 'unknown_price: no plan is linked to Stripe price %; link it with plans.linkStripe', v_price
      USING ERRCODE = 'PA033';
  END IF;

  SELECT s.user_id INTO v_user_id FROM public.user_subscriptions s WHERE s.stripe_subscription_id = v_id;
  IF v_user_id IS NULL THEN
    SELECT s.user_id INTO v_user_id FROM public.user_subscriptions s
     WHERE s.stripe_customer_id = v_customer ORDER BY s.updated_at DESC LIMIT 1;
  END IF;
  IF v_user_id IS NULL AND pg_catalog.jsonb_typeof(p_subscription -> 'metadata' -> 'user_id') = 'string' THEN
    v_metadata_user := p_subscription -> 'metadata' ->> 'user_id';
    IF v_metadata_user ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
      SELECT u.id INTO v_user_id FROM public.users u WHERE u.id = v_metadata_user::uuid;
    END IF;
  END IF;
  IF v_user_id IS NULL THEN
    RAISE EXCEPTION 'unknown_customer: Stripe customer % is not linked to a user; set metadata.user_id (an existing users.id) on the subscription', v_customer
      USING ERRCODE = 'PA032';
  END IF;

  -- Two first deliveries for a user without a row both INSERT; ON CONFLICT arbitrates on user_id
  -- only, so the second can trip over the stripe_subscription_id unique index instead (a non-arbiter
  -- index raises rather than falling back to DO UPDATE). A transaction-scoped lock per user
  -- serializes one user's subscription writes (a handful of webhooks per user); it is released at
  -- commit, so it is safe on pooled connections.
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('figma-plugin-auth-db:user_subscriptions'),
                                           pg_catalog.hashtext(v_user_id::text));

  INSERT INTO public.user_subscriptions AS s (
    user_id, plan_id, status, stripe_customer_id, stripe_subscription_id, stripe_price_id,
    current_period_start, current_period_end, cancel_at_period_end, canceled_at, trial_end,
    stripe_event_created)
  VALUES (
    v_user_id, v_plan_id, v_status, v_customer, v_id, v_price,
    v_period_start, v_period_end, v_cancel_at_period_end, v_canceled_at, v_trial_end,
    p_event_created)
  ON CONFLICT ON CONSTRAINT idx_user_subscriptions_user_id DO UPDATE SET
    plan_id = EXCLUDED.plan_id,
    status = EXCLUDED.status,
    stripe_customer_id = EXCLUDED.stripe_customer_id,
    stripe_subscription_id = EXCLUDED.stripe_subscription_id,
    stripe_price_id = EXCLUDED.stripe_price_id,
    current_period_start = EXCLUDED.current_period_start,
    current_period_end = EXCLUDED.current_period_end,
    cancel_at_period_end = EXCLUDED.cancel_at_period_end,
    canceled_at = EXCLUDED.canceled_at,
    trial_end = EXCLUDED.trial_end,
    stripe_event_created = EXCLUDED.stripe_event_created,
    updated_at = NOW()
  WHERE (
      s.stripe_event_created IS NULL
      OR s.stripe_event_created < EXCLUDED.stripe_event_created
      OR (s.stripe_event_created = EXCLUDED.stripe_event_created
          AND (s.plan_id, s.status, s.stripe_customer_id, s.stripe_subscription_id, s.stripe_price_id,
               s.current_period_start, s.current_period_end, s.cancel_at_period_end, s.canceled_at, s.trial_end)
              IS DISTINCT FROM
              (EXCLUDED.plan_id, EXCLUDED.status, EXCLUDED.stripe_customer_id, EXCLUDED.stripe_subscription_id,
               EXCLUDED.stripe_price_id, EXCLUDED.current_period_start, EXCLUDED.current_period_end,
               EXCLUDED.cancel_at_period_end, EXCLUDED.canceled_at, EXCLUDED.trial_end)
          AND NOT (s.stripe_subscription_id IS NOT DISTINCT FROM EXCLUDED.stripe_subscription_id
                   AND s.status IN ('canceled', 'incomplete_expired')
                   AND EXCLUDED.status NOT IN ('canceled', 'incomplete_expired'))))
    AND (s.stripe_subscription_id IS NOT DISTINCT FROM EXCLUDED.stripe_subscription_id
         OR public.subscription_grants_access(EXCLUDED.status, EXCLUDED.current_period_end)
         OR NOT public.subscription_grants_access(s.status, s.current_period_end))
  RETURNING s.user_id INTO v_row;

  IF FOUND THEN
    RETURN QUERY SELECT true, 'applied'::text, v_user_id, v_plan_slug, v_status::varchar;
    RETURN;
  END IF;

  -- Not applied: say why, and what the row holds now.
  SELECT s.stripe_event_created, s.stripe_subscription_id, s.status, p.plan_slug,
         (s.plan_id, s.status, s.stripe_customer_id, s.stripe_subscription_id, s.stripe_price_id,
          s.current_period_start, s.current_period_end, s.cancel_at_period_end, s.canceled_at, s.trial_end)
           IS NOT DISTINCT FROM
         (v_plan_id, v_status, v_customer, v_id, v_price,
          v_period_start, v_period_end, v_cancel_at_period_end, v_canceled_at, v_trial_end) AS same
    INTO v_row
    FROM public.user_subscriptions s
    JOIN public.subscription_plans p ON p.id = s.plan_id
   WHERE s.user_id = v_user_id;
  RETURN QUERY SELECT false,
    CASE WHEN v_row.stripe_event_created > p_event_created THEN 'stale'
         WHEN v_row.same THEN 'duplicate'
         WHEN v_row.stripe_subscription_id IS DISTINCT FROM v_id THEN 'superseded'
         ELSE 'stale' END,
    v_user_id, v_row.plan_slug, v_row.status;
END;
$$;

-- A row whose ordering mark an earlier version let run into the future (an event time in
-- milliseconds, 'infinity') ignores every later event as 'stale'. Move the mark back to now: the
-- next real event applies again. Rows with a sane mark are not touched.
UPDATE public.user_subscriptions AS s
   SET stripe_event_created = pg_catalog.now()
 WHERE s.stripe_event_created OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.+) INTERVAL '5 minutes');
