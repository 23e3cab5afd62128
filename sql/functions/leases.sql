-- Device leases: heartbeats, floating and node-locked licenses, the overage allowance, the device
-- list with live and lapsed devices (docs/licenses.md#device-leases). State: sql/027.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

-- What governs a license's devices: the cap (the smallest of mapping, plan and store), the
-- heartbeat window, the overage allowance and floating (each the mapping's, else the plan's), and
-- `allowed`, the devices that may hold a lease at once (floor(cap x allowance); NULL: no cap).
CREATE OR REPLACE FUNCTION public.license_lease_terms(p_license_id uuid, OUT plan_id uuid, OUT device_limit integer, OUT heartbeat_window integer, OUT overage_allowance numeric, OUT floating boolean, OUT allowed integer)
 RETURNS record
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
BEGIN
  SELECT m.plan_id, LEAST(m.device_limit, p.device_limit, k.activation_limit),
         COALESCE(m.heartbeat_window, p.heartbeat_window),
         COALESCE(m.overage_allowance, p.overage_allowance, 1.00),
         COALESCE(m.floating, p.floating, false)
    INTO plan_id, device_limit, heartbeat_window, overage_allowance, floating
    FROM public.licenses AS k
    LEFT JOIN LATERAL (
      SELECT x.* FROM public.license_products AS x
       WHERE x.provider = k.provider AND x.product_id = k.product_id AND x.variant_id IN (k.variant_id, '')
       ORDER BY x.variant_id = '' LIMIT 1) AS m ON true
    LEFT JOIN public.subscription_plans AS p ON p.id = m.plan_id
   WHERE k.id = p_license_id;
  IF NOT FOUND THEN
    overage_allowance := 1.00;
    floating := false;
  END IF;
  -- Without a mapping the store's own limit still caps the key.
  IF plan_id IS NULL THEN
    SELECT k.activation_limit INTO device_limit FROM public.licenses AS k WHERE k.id = p_license_id;
  END IF;
  allowed := CASE WHEN device_limit IS NULL THEN NULL
                  ELSE pg_catalog.floor(device_limit * overage_allowance)::integer END;
END;
$function$;

-- Whether a device's lease is live: within the window of its last heartbeat (no window: always).
CREATE OR REPLACE FUNCTION public.license_device_live(p_last_seen_at timestamp with time zone, p_heartbeat_window integer, p_at timestamp with time zone)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  SELECT p_heartbeat_window IS NULL
      OR p_last_seen_at OPERATOR(pg_catalog.>) (p_at OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => p_heartbeat_window));
$function$;

CREATE OR REPLACE FUNCTION public.license_check_lease_policy(p_heartbeat_window integer, p_overage_allowance numeric)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
BEGIN
  IF (p_heartbeat_window IS NOT NULL AND p_heartbeat_window NOT BETWEEN 1 AND 2592000)
     OR (p_overage_allowance IS NOT NULL AND (p_overage_allowance < 1 OR p_overage_allowance > 10
         OR p_overage_allowance <> pg_catalog.round(p_overage_allowance, 2))) THEN
    RAISE EXCEPTION 'invalid_lease_policy: heartbeatWindow is 1 to 2592000 seconds and overageAllowance 1.00 to 10.00 (two decimals)'
      USING ERRCODE = 'PA120';
  END IF;
END;
$function$;

-- The lease policy of a plan (every license whose mapping grants it). NULLs unset.
CREATE OR REPLACE FUNCTION public.set_plan_lease_policy(p_plan_slug character varying, p_heartbeat_window integer, p_overage_allowance numeric, p_floating boolean)
 RETURNS SETOF public.subscription_plans
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
BEGIN
  PERFORM public.license_check_lease_policy(p_heartbeat_window, p_overage_allowance);
  IF NOT EXISTS (SELECT 1 FROM public.subscription_plans AS p WHERE p.plan_slug = p_plan_slug) THEN
    RAISE EXCEPTION 'unknown_plan: no plan with slug %', p_plan_slug USING ERRCODE = 'PA034';
  END IF;
  RETURN QUERY
  UPDATE public.subscription_plans AS p
     SET heartbeat_window = p_heartbeat_window, overage_allowance = p_overage_allowance, floating = p_floating,
         updated_at = pg_catalog.now()
   WHERE p.plan_slug = p_plan_slug
  RETURNING p.*;
END;
$function$;

-- The lease policy of a product mapping (link_license_plan made it). NULLs unset (the plan's applies).
CREATE OR REPLACE FUNCTION public.set_license_product_lease_policy(p_provider character varying, p_product_id character varying, p_variant_id character varying, p_heartbeat_window integer, p_overage_allowance numeric, p_floating boolean)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
BEGIN
  PERFORM public.license_check_provider(p_provider);
  PERFORM public.license_check_lease_policy(p_heartbeat_window, p_overage_allowance);
  UPDATE public.license_products AS m
     SET heartbeat_window = p_heartbeat_window, overage_allowance = p_overage_allowance, floating = p_floating,
         updated_at = pg_catalog.now()
   WHERE m.provider = p_provider AND m.product_id = p_product_id AND m.variant_id = COALESCE(p_variant_id, '');
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invalid_lease_policy: no such product mapping; link the product to a plan first (plans.linkLicense)'
      USING ERRCODE = 'PA120';
  END IF;
  RETURN true;
END;
$function$;

-- The heartbeat of one device of a user, for each license the user holds: refreshes the device's
-- lease (or takes a slot: a floating license, or a lapsed device when a slot is free) and answers
-- one machine-readable reason per license. Takes each key's lock (namespace 7320, as activation
-- does), in license id order, so heartbeats and activations of one key are counted exactly.
CREATE OR REPLACE FUNCTION public.license_device_heartbeat(p_user_id uuid, p_device_id uuid)
 RETURNS TABLE(license_id uuid, provider character varying, key_prefix character varying, plan_slug character varying, reason text, overage boolean, device_limit integer, allowed integer, devices_live integer, heartbeat_window integer, floating boolean, license_expires_at timestamp with time zone)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
DECLARE
  v_id UUID;
  v_license public.licenses%ROWTYPE;
  v_terms RECORD;
  v_device public.license_devices%ROWTYPE;
  v_found BOOLEAN;
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.clock_timestamp();
  v_others INTEGER;
  v_name VARCHAR;
  v_leased TIMESTAMP WITH TIME ZONE;
BEGIN
  PERFORM public.plugin_auth_require_user(p_user_id);
  SELECT t.device_name INTO v_name FROM public.plugin_tokens AS t
   WHERE t.user_id = p_user_id AND t.device_id = p_device_id
   ORDER BY t.created_at DESC LIMIT 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown_device: this device id belongs to no plugin session of this user; pass the deviceId auth.tokens.verify returns'
      USING ERRCODE = 'PA100';
  END IF;
  v_name := COALESCE(NULLIF(v_name, ''), 'Unnamed device');
  FOR v_id IN SELECT k.id FROM public.licenses AS k WHERE k.user_id = p_user_id ORDER BY k.id LOOP
    SELECT k.* INTO v_license FROM public.licenses AS k WHERE k.id = v_id;
    PERFORM pg_catalog.pg_advisory_xact_lock(7320, pg_catalog.hashtext(v_license.provider || ':' || v_license.key_hash));
    -- Read again under the lock: a webhook or an activation may have changed it meanwhile.
    SELECT k.* INTO v_license FROM public.licenses AS k WHERE k.id = v_id;
    IF NOT FOUND OR v_license.user_id <> p_user_id THEN
      CONTINUE;
    END IF;
    v_now := pg_catalog.clock_timestamp();
    SELECT * INTO v_terms FROM public.license_lease_terms(v_id) AS x;
    license_id := v_id;
    provider := v_license.provider;
    key_prefix := v_license.key_prefix;
    plan_slug := (SELECT p.plan_slug FROM public.subscription_plans AS p WHERE p.id = v_terms.plan_id);
    device_limit := v_terms.device_limit;
    allowed := v_terms.allowed;
    heartbeat_window := v_terms.heartbeat_window;
    floating := v_terms.floating;
    license_expires_at := v_license.expires_at;
    overage := false;
    reason := CASE WHEN v_license.status = 'refunded' THEN 'license_refunded'
                   WHEN v_license.status IN ('disputed', 'chargebacked') THEN 'license_disputed'
                   WHEN v_license.status = 'disabled' THEN 'license_suspended'
                   WHEN v_license.status IN ('expired', 'ended') OR v_license.expires_at <= v_now THEN 'license_expired'
                   WHEN v_terms.plan_id IS NULL THEN 'license_not_linked'
                   ELSE NULL END;
    IF reason IS NULL THEN
      SELECT d.* INTO v_device FROM public.license_devices AS d
       WHERE d.license_id = v_id AND d.device_id = p_device_id FOR UPDATE;
      v_found := FOUND;
      SELECT pg_catalog.count(*)::integer INTO v_others FROM public.license_devices AS d
       WHERE d.license_id = v_id AND d.device_id <> p_device_id
         AND public.license_device_live(d.last_seen_at, v_terms.heartbeat_window, v_now);
      IF v_found AND public.license_device_live(v_device.last_seen_at, v_terms.heartbeat_window, v_now) THEN
        UPDATE public.license_devices AS d SET last_seen_at = v_now WHERE d.license_id = v_id AND d.device_id = p_device_id;
        reason := 'valid';
      ELSIF v_found THEN
        -- Lapsed: its slot was freed. It takes one again if one is free.
        IF v_terms.allowed IS NULL OR v_others < v_terms.allowed THEN
          UPDATE public.license_devices AS d SET last_seen_at = v_now, leased_at = v_now
           WHERE d.license_id = v_id AND d.device_id = p_device_id;
          reason := 'valid';
        ELSE
          reason := 'heartbeat_missed';
        END IF;
      ELSIF v_terms.floating THEN
        IF v_terms.allowed IS NULL OR v_others < v_terms.allowed THEN
          INSERT INTO public.license_devices (license_id, device_id, device_name, last_seen_at, leased_at)
          VALUES (v_id, p_device_id, v_name, v_now, v_now);
          reason := 'valid';
        ELSE
          reason := 'device_limit_reached';
        END IF;
      ELSE
        reason := 'not_activated_on_device';
      END IF;
      IF reason = 'valid' AND v_terms.device_limit IS NOT NULL THEN
        -- Past the cap (within the allowance): the newest leases are the extra ones.
        SELECT d.leased_at INTO v_leased FROM public.license_devices AS d WHERE d.license_id = v_id AND d.device_id = p_device_id;
        overage := (SELECT pg_catalog.count(*) FROM public.license_devices AS d
                     WHERE d.license_id = v_id AND public.license_device_live(d.last_seen_at, v_terms.heartbeat_window, pg_catalog.clock_timestamp())
                       AND (d.leased_at, d.device_id) < (v_leased, p_device_id)) >= v_terms.device_limit;
      END IF;
    END IF;
    devices_live := (SELECT pg_catalog.count(*)::integer FROM public.license_devices AS d
                      WHERE d.license_id = v_id AND public.license_device_live(d.last_seen_at, v_terms.heartbeat_window, pg_catalog.clock_timestamp()));
    RETURN NEXT;
  END LOOP;
END;
$function$;

-- Every device of a user's licenses (or of one license), live or lapsed, for support and the
-- dashboard: when it was activated, seen, when its lease ends, and whether it is past the cap.
CREATE OR REPLACE FUNCTION public.list_license_devices(p_user_id uuid, p_license_id uuid DEFAULT NULL::uuid)
 RETURNS TABLE(license_id uuid, provider character varying, key_prefix character varying, device_id uuid, device_name character varying, activated_at timestamp with time zone, last_seen_at timestamp with time zone, lease_ends_at timestamp with time zone, live boolean, overage boolean, floating boolean, heartbeat_window integer)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_column
BEGIN
  PERFORM public.plugin_auth_require_user(p_user_id);
  RETURN QUERY
  SELECT z.license_id, z.provider, z.key_prefix, z.device_id, z.device_name, z.activated_at, z.last_seen_at,
         z.lease_ends_at, z.live,
         z.live AND z.device_limit IS NOT NULL AND z.live_rank > z.device_limit,
         z.floating, z.heartbeat_window
    FROM (
      SELECT y.*, CASE WHEN y.live THEN pg_catalog.count(*) FILTER (WHERE y.live)
                    OVER (PARTITION BY y.license_id ORDER BY y.leased_at, y.device_id) END AS live_rank
        FROM (
          SELECT d.license_id, k.provider, k.key_prefix, d.device_id, d.device_name, d.activated_at, d.last_seen_at,
                 d.leased_at, t.device_limit, t.floating, t.heartbeat_window,
                 CASE WHEN t.heartbeat_window IS NULL THEN NULL
                      ELSE d.last_seen_at + pg_catalog.make_interval(secs => t.heartbeat_window) END AS lease_ends_at,
                 public.license_device_live(d.last_seen_at, t.heartbeat_window, pg_catalog.now()) AS live
            FROM public.licenses AS k
            JOIN public.license_devices AS d ON d.license_id = k.id
           CROSS JOIN LATERAL public.license_lease_terms(k.id) AS t
           WHERE k.user_id = p_user_id AND (p_license_id IS NULL OR k.id = p_license_id)
        ) AS y
    ) AS z
   ORDER BY z.license_id, z.live DESC, z.leased_at, z.device_id;
END;
$function$;
