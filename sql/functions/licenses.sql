-- Lemon Squeezy and Gumroad licenses: plan links, activations per device, webhooks, history.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.license_check_provider(p_provider character varying)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
BEGIN
  IF p_provider IS NULL OR p_provider NOT IN ('lemonsqueezy', 'gumroad') THEN
    RAISE EXCEPTION 'invalid_license_provider: provider must be lemonsqueezy or gumroad' USING ERRCODE = 'PA080';
  END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.link_license_plan(p_plan_slug character varying, p_provider character varying, p_product_id character varying, p_variant_id character varying DEFAULT NULL::character varying, p_device_limit integer DEFAULT NULL::integer, p_seats integer DEFAULT NULL::integer, p_interval character varying DEFAULT NULL::character varying, p_interval_count integer DEFAULT NULL::integer)
 RETURNS SETOF public.subscription_plans
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_plan_id UUID;
BEGIN
  PERFORM public.license_check_provider(p_provider);
  IF p_product_id IS NULL OR p_product_id !~ '^[A-Za-z0-9_=+/.:-]{1,128}$'
     OR (p_variant_id IS NOT NULL AND p_variant_id !~ '^[A-Za-z0-9_=+/.:-]{1,128}$') THEN
    RAISE EXCEPTION 'invalid_license_product: a product or variant id is 1 to 128 characters of A-Z a-z 0-9 _ = + / . : -'
      USING ERRCODE = 'PA081';
  END IF;
  IF (p_device_limit IS NOT NULL AND p_device_limit NOT BETWEEN 1 AND 1000) OR (p_seats IS NOT NULL AND p_seats NOT BETWEEN 1 AND 100000) THEN
    RAISE EXCEPTION 'invalid_license_link: deviceLimit is 1 to 1000 and seats 1 to 100000' USING ERRCODE = 'PA082';
  END IF;
  -- The renewal interval of a subscription variant (sql/032): Lemon Squeezy's variant interval
  -- (day, week, month, year) and interval_count (1 to 365, default 1); Lemon Squeezy only.
  IF p_interval IS NOT NULL AND (p_interval NOT IN ('day', 'week', 'month', 'year') OR p_provider <> 'lemonsqueezy')
     OR p_interval_count IS NOT NULL AND (p_interval IS NULL OR p_interval_count NOT BETWEEN 1 AND 365) THEN
    RAISE EXCEPTION 'invalid_license_link: interval is day, week, month or year (Lemon Squeezy variants only) and intervalCount 1 to 365'
      USING ERRCODE = 'PA082';
  END IF;
  IF p_plan_slug IS NULL THEN
    DELETE FROM public.license_products AS m
     WHERE m.provider = p_provider AND m.product_id = p_product_id AND m.variant_id = COALESCE(p_variant_id, '');
    RETURN;
  END IF;
  SELECT p.id INTO v_plan_id FROM public.subscription_plans AS p WHERE p.plan_slug = p_plan_slug;
  IF v_plan_id IS NULL THEN
    RAISE EXCEPTION 'unknown_plan: no plan with slug %', p_plan_slug USING ERRCODE = 'PA034';
  END IF;
  INSERT INTO public.license_products AS m (provider, product_id, variant_id, plan_id, device_limit, seats, price_interval, price_interval_count)
  VALUES (p_provider, p_product_id, COALESCE(p_variant_id, ''), v_plan_id, p_device_limit, p_seats,
          p_interval, CASE WHEN p_interval IS NULL THEN NULL ELSE COALESCE(p_interval_count, 1) END)
  ON CONFLICT (provider, product_id, variant_id) DO UPDATE SET plan_id = EXCLUDED.plan_id,
    device_limit = EXCLUDED.device_limit, seats = EXCLUDED.seats,
    price_interval = EXCLUDED.price_interval, price_interval_count = EXCLUDED.price_interval_count, updated_at = pg_catalog.now();
  RETURN QUERY SELECT p.* FROM public.subscription_plans AS p WHERE p.id = v_plan_id;
END;
$function$;

CREATE OR REPLACE FUNCTION public.set_plan_device_limit(p_plan_slug character varying, p_device_limit integer)
 RETURNS SETOF public.subscription_plans
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
BEGIN
  IF p_device_limit IS NOT NULL AND p_device_limit NOT BETWEEN 1 AND 1000 THEN
    RAISE EXCEPTION 'invalid_license_link: deviceLimit is 1 to 1000 (or null for no cap)' USING ERRCODE = 'PA082';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.subscription_plans AS p WHERE p.plan_slug = p_plan_slug) THEN
    RAISE EXCEPTION 'unknown_plan: no plan with slug %', p_plan_slug USING ERRCODE = 'PA034';
  END IF;
  RETURN QUERY
  UPDATE public.subscription_plans AS p
     SET device_limit = p_device_limit, updated_at = pg_catalog.now()
   WHERE p.plan_slug = p_plan_slug
  RETURNING p.*;
END;
$function$;

CREATE OR REPLACE FUNCTION public.license_apply_state(p_license_id uuid, p_status character varying, p_expires_at timestamp with time zone, p_activation_limit integer, p_quantity integer, p_event_at timestamp with time zone, p_authoritative boolean)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_license public.licenses%ROWTYPE;
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.clock_timestamp();
BEGIN
  IF p_status IS NULL OR p_status NOT IN ('inactive', 'active', 'expired', 'disabled', 'refunded', 'disputed', 'chargebacked', 'ended')
     OR (p_quantity IS NOT NULL AND p_quantity < 1) OR (p_activation_limit IS NOT NULL AND p_activation_limit < 0)
     OR p_event_at IS NULL OR p_event_at > v_now + INTERVAL '5 minutes' THEN
    RAISE EXCEPTION 'invalid_license_answer: status, quantity, activation limit or event time out of range' USING ERRCODE = 'PA083';
  END IF;
  SELECT k.* INTO v_license FROM public.licenses AS k WHERE k.id = p_license_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'license_not_found: no such license' USING ERRCODE = 'PA086';
  END IF;
  IF NOT COALESCE(p_authoritative, false) AND p_event_at < v_license.state_at THEN
    RETURN 'stale';
  END IF;
  IF NOT COALESCE(p_authoritative, false) AND v_license.status IN ('refunded', 'disputed', 'chargebacked')
     AND p_status NOT IN ('refunded', 'disputed', 'chargebacked') THEN
    RETURN 'revoked';
  END IF;
  UPDATE public.licenses AS k SET
    status = CASE WHEN p_authoritative AND k.provider = 'lemonsqueezy' AND k.status IN ('refunded', 'disputed', 'chargebacked')
                  THEN k.status ELSE p_status END,
    expires_at = CASE WHEN p_authoritative THEN p_expires_at ELSE COALESCE(p_expires_at, k.expires_at) END,
    activation_limit = CASE WHEN p_authoritative THEN p_activation_limit ELSE k.activation_limit END,
    quantity = COALESCE(p_quantity, k.quantity),
    checked_at = CASE WHEN p_authoritative THEN v_now ELSE k.checked_at END,
    state_at = CASE WHEN p_authoritative THEN k.state_at ELSE p_event_at END, updated_at = v_now
   WHERE k.id = p_license_id;
  IF v_license.status IS DISTINCT FROM (SELECT k.status FROM public.licenses AS k WHERE k.id = p_license_id) THEN
    PERFORM public.license_record_history(p_license_id);
  END IF;
  RETURN 'applied';
END;
$function$;

CREATE OR REPLACE FUNCTION public.license_record_history(p_license_id uuid)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
BEGIN
  INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
  SELECT x.who, x.plan_id, x.status, x.expires_at,
         x.plan_id IS NOT NULL AND x.status IN ('active', 'inactive')
           AND (x.expires_at IS NULL OR x.expires_at > pg_catalog.now()),
         x.source, pg_catalog.now()
    FROM (
      SELECT k.user_id AS who, t.plan_id, k.status, k.expires_at, k.provider::varchar AS source
        FROM public.licenses AS k
       CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
       WHERE k.id = p_license_id AND COALESCE(t.seats, k.quantity) = 1
      UNION ALL
      SELECT a.member_user_id, t.plan_id, k.status, k.expires_at, 'seat'
        FROM public.licenses AS k
       CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
        JOIN public.seat_assignments AS a ON a.license_id = k.id
       WHERE k.id = p_license_id
    ) AS x;
END;
$function$;

CREATE OR REPLACE FUNCTION public.license_begin_activation(p_provider character varying, p_key_hash text, p_user_id uuid, p_device_id uuid, p_device_name character varying, OUT license_id uuid, OUT device_known boolean, OUT device_name character varying)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_license public.licenses%ROWTYPE;
  v_limit INTEGER;
  v_allowed INTEGER;
  v_window INTEGER;
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
  -- Leases (sql/027): only live devices count, up to the cap times the overage allowance. A known
  -- device whose lease is live is idempotent; a lapsed one needs a free slot like a new one.
  SELECT t.device_limit, t.allowed, t.heartbeat_window INTO v_limit, v_allowed, v_window
    FROM public.license_lease_terms(v_license.id) AS t;
  IF device_known AND EXISTS (SELECT 1 FROM public.license_devices AS d
                               WHERE d.license_id = v_license.id AND d.device_id = p_device_id
                                 AND public.license_device_live(d.last_seen_at, v_window, pg_catalog.clock_timestamp())) THEN
    RETURN;
  END IF;
  SELECT pg_catalog.count(*)::integer,
         pg_catalog.string_agg(d.device_name || ' (' || pg_catalog.left(d.device_id::text, 8) || ')', ', ' ORDER BY d.activated_at, d.device_id)
    INTO v_count, v_devices
    FROM public.license_devices AS d
   WHERE d.license_id = v_license.id AND d.device_id <> p_device_id
     AND public.license_device_live(d.last_seen_at, v_window, pg_catalog.clock_timestamp());
  IF v_allowed IS NOT NULL AND v_count >= v_allowed THEN
    RAISE EXCEPTION 'device_limit_reached: this license is active on % of % devices; deactivate one of: %', v_count, v_limit, v_devices
      USING ERRCODE = 'PA085';
  END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.license_record_activation(p_provider character varying, p_key_hash text, p_key_prefix character varying, p_user_id uuid, p_device_id uuid, p_device_name character varying, p_provider_key_id character varying, p_product_id character varying, p_variant_id character varying, p_order_id character varying, p_status character varying, p_activation_limit integer, p_quantity integer, p_expires_at timestamp with time zone, p_instance_id character varying, p_price_minor bigint DEFAULT NULL::bigint, p_currency character varying DEFAULT NULL::character varying, p_price_interval character varying DEFAULT NULL::character varying, OUT license_id uuid, OUT activations_used integer, OUT device_limit integer, OUT plan_id uuid)
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
  v_allowed INTEGER;
  v_window INTEGER;
  v_live BOOLEAN;
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
  -- The price the store reported (sql/031): minor units and an ISO 4217 code together, or neither.
  IF (p_price_minor IS NULL) <> (p_currency IS NULL)
     OR (p_price_minor IS NOT NULL AND (p_price_minor NOT BETWEEN 0 AND 100000000000 OR p_currency !~ '^[A-Za-z]{3}$'))
     OR (p_price_interval IS NOT NULL AND (p_price_minor IS NULL OR p_price_interval NOT IN ('month', 'quarter', 'half_year', 'year', 'two_years'))) THEN
    RAISE EXCEPTION 'invalid_license_answer: a price is whole minor units from 0 with a three-letter currency, and a period of month, quarter, half_year, year or two_years'
      USING ERRCODE = 'PA083';
  END IF;
  SELECT b.license_id, b.device_known, b.device_name INTO license_id, v_known, v_device_name
    FROM public.license_begin_activation(p_provider, p_key_hash, p_user_id, p_device_id, p_device_name) AS b;
  IF license_id IS NULL THEN
    INSERT INTO public.licenses AS k (provider, key_hash, key_prefix, provider_key_id, user_id, product_id, variant_id,
      order_id, status, activation_limit, quantity, expires_at, checked_at, state_at, price_minor, currency, price_interval)
    VALUES (p_provider, p_key_hash, p_key_prefix, p_provider_key_id, p_user_id, p_product_id, COALESCE(p_variant_id, ''),
      p_order_id, p_status, p_activation_limit, p_quantity, p_expires_at, v_now, '-infinity', p_price_minor, p_currency, p_price_interval)
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
      -- A store that names no price keeps the one recorded before.
      price_minor = CASE WHEN p_price_minor IS NULL THEN k.price_minor ELSE p_price_minor END,
      currency = CASE WHEN p_price_minor IS NULL THEN k.currency ELSE p_currency END,
      price_interval = CASE WHEN p_price_minor IS NULL THEN k.price_interval ELSE p_price_interval END,
      checked_at = v_now, updated_at = v_now
     WHERE k.id = license_id;
  END IF;
  SELECT t.plan_id, t.seats INTO plan_id, v_seats
    FROM public.license_terms(p_provider, p_product_id, COALESCE(p_variant_id, '')) AS t;
  -- The cap and the lease policy (sql/027) with what the store just said.
  SELECT t.device_limit, t.allowed, t.heartbeat_window INTO device_limit, v_allowed, v_window
    FROM public.license_lease_terms(license_id) AS t;
  v_live := v_known AND EXISTS (SELECT 1 FROM public.license_devices AS d
                                 WHERE d.license_id = license_id AND d.device_id = p_device_id
                                   AND public.license_device_live(d.last_seen_at, v_window, v_now));
  IF NOT v_live THEN
    IF v_allowed IS NOT NULL
       AND (SELECT pg_catalog.count(*) FROM public.license_devices AS d
             WHERE d.license_id = license_id AND d.device_id <> p_device_id
               AND public.license_device_live(d.last_seen_at, v_window, v_now)) >= v_allowed THEN
      RAISE EXCEPTION 'device_limit_reached: this license is active on % of % devices; deactivate one of: %',
        v_allowed, device_limit,
        (SELECT pg_catalog.string_agg(d.device_name || ' (' || pg_catalog.left(d.device_id::text, 8) || ')', ', ' ORDER BY d.activated_at, d.device_id)
           FROM public.license_devices AS d
          WHERE d.license_id = license_id AND d.device_id <> p_device_id
            AND public.license_device_live(d.last_seen_at, v_window, v_now))
        USING ERRCODE = 'PA085';
    END IF;
  END IF;
  IF NOT v_known THEN
    INSERT INTO public.license_devices (license_id, device_id, device_name, instance_id, last_seen_at, leased_at)
    VALUES (license_id, p_device_id, v_device_name, p_instance_id, v_now, v_now);
  ELSE
    -- The same device again: its name may have changed; its store instance is kept or replaced;
    -- the activation is a heartbeat, and a lapsed lease begins again.
    UPDATE public.license_devices AS d SET device_name = v_device_name, instance_id = COALESCE(p_instance_id, d.instance_id),
           last_seen_at = v_now, leased_at = CASE WHEN v_live THEN d.leased_at ELSE v_now END
     WHERE d.license_id = license_id AND d.device_id = p_device_id;
  END IF;
  SELECT pg_catalog.count(*)::integer INTO activations_used FROM public.license_devices AS d
   WHERE d.license_id = license_id AND public.license_device_live(d.last_seen_at, v_window, v_now);
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
