-- 016: license keys sold through Lemon Squeezy and Gumroad, device limits, and team seats, as
-- sources of the one entitlement rule (plugin_auth_grants, redefined here with two more branches).
--
-- The stores are called by the library (src/billing/licenses.ts), never by SQL. What they answered
-- is stored here; consume_usage only reads it. A key is stored as its SHA-256 digest, the store's
-- own key id and a four-character prefix for support; never the key itself.
--
-- Runs with every name schema-qualified (also under SET LOCAL search_path = pg_catalog).
-- SQLSTATEs PA080-PA089:
--   PA080 invalid_license_provider  PA081 invalid_license_product  PA082 invalid_license_link
--   PA083 invalid_license_answer    PA084 license_in_use           PA085 device_limit_reached
--   PA086 license_not_found         PA087 no_seats_left            PA088 seat_taken
--   PA089 invalid_event_id
-- Advisory lock namespace (two-int form): 7320 = one license key (activation, check, single flight).

-- 1. Which plan a store's product (or one of its variants) grants. variant_id '' = every variant
-- of the product without a mapping of its own. device_limit caps devices per license (null: only
-- the store's own limit, if any); seats > 1 makes every license of it a team license of that many
-- seats (null: the purchase's own quantity).
CREATE TABLE IF NOT EXISTS public.license_products (
  provider VARCHAR(16) NOT NULL,
  product_id VARCHAR(128) NOT NULL,
  variant_id VARCHAR(128) NOT NULL DEFAULT '',
  plan_id UUID NOT NULL REFERENCES public.subscription_plans(id) ON DELETE CASCADE,
  device_limit INTEGER,
  seats INTEGER,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  PRIMARY KEY (provider, product_id, variant_id),
  CONSTRAINT license_products_provider_check CHECK (
    provider OPERATOR(pg_catalog.=) ANY (ARRAY['lemonsqueezy', 'gumroad']::VARCHAR[])),
  CONSTRAINT license_products_ids_check CHECK (
    product_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$'
    AND (variant_id OPERATOR(pg_catalog.=) '' OR variant_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$')),
  CONSTRAINT license_products_limits_check CHECK (
    (device_limit IS NULL OR device_limit OPERATOR(pg_catalog.>=) 1 AND device_limit OPERATOR(pg_catalog.<=) 1000)
    AND (seats IS NULL OR seats OPERATOR(pg_catalog.>=) 1 AND seats OPERATOR(pg_catalog.<=) 100000))
);

CREATE INDEX IF NOT EXISTS idx_license_products_plan_id ON public.license_products (plan_id);

-- 2. Every activated key. One key (provider, digest) belongs to exactly one user.
-- status: the store's word (inactive, active, expired, disabled) or ours from its answers and
-- webhooks (refunded, disputed, chargebacked, ended). Only active and inactive grant.
-- state_at orders the webhooks: the store's updated_at of the last one applied (-infinity: none);
-- a webhook older than it changes nothing. An answer of the store's API is the present and
-- always applies (it does not move state_at).
CREATE TABLE IF NOT EXISTS public.licenses (
  id UUID PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
  provider VARCHAR(16) NOT NULL,
  key_hash CHAR(64) NOT NULL,
  key_prefix VARCHAR(8) NOT NULL,
  provider_key_id VARCHAR(128),
  user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  product_id VARCHAR(128) NOT NULL,
  variant_id VARCHAR(128) NOT NULL DEFAULT '',
  order_id VARCHAR(128),
  status VARCHAR(16) NOT NULL,
  activation_limit INTEGER,
  quantity INTEGER NOT NULL DEFAULT 1,
  expires_at TIMESTAMP WITH TIME ZONE,
  checked_at TIMESTAMP WITH TIME ZONE NOT NULL,
  state_at TIMESTAMP WITH TIME ZONE NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  CONSTRAINT licenses_provider_check CHECK (
    provider OPERATOR(pg_catalog.=) ANY (ARRAY['lemonsqueezy', 'gumroad']::VARCHAR[])),
  CONSTRAINT licenses_key_hash_check CHECK (key_hash OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$'),
  CONSTRAINT licenses_key_prefix_check CHECK (key_prefix OPERATOR(pg_catalog.~) '^[\x21-\x7e]{1,8}$'),
  CONSTRAINT licenses_status_check CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY[
    'inactive', 'active', 'expired', 'disabled', 'refunded', 'disputed', 'chargebacked', 'ended']::VARCHAR[])),
  CONSTRAINT licenses_ids_check CHECK (
    product_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$'
    AND (variant_id OPERATOR(pg_catalog.=) '' OR variant_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$')
    AND (provider_key_id IS NULL OR provider_key_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$')
    AND (order_id IS NULL OR order_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$')),
  CONSTRAINT licenses_counts_check CHECK (
    (activation_limit IS NULL OR activation_limit OPERATOR(pg_catalog.>=) 0)
    AND quantity OPERATOR(pg_catalog.>=) 1)
);

CREATE UNIQUE INDEX IF NOT EXISTS idx_licenses_key ON public.licenses (provider, key_hash);
-- The entitlement probe (one per consume) and the seat owner's licenses.
CREATE INDEX IF NOT EXISTS idx_licenses_user_id ON public.licenses (user_id);
-- Webhooks find a license by the store's key id or order id.
CREATE INDEX IF NOT EXISTS idx_licenses_provider_key_id ON public.licenses (provider, provider_key_id);
CREATE INDEX IF NOT EXISTS idx_licenses_order_id ON public.licenses (provider, order_id);

-- 3. The devices a license is activated on: the plugin tokens' device names. instance_id is Lemon
-- Squeezy's activation instance (needed to deactivate there).
CREATE TABLE IF NOT EXISTS public.license_devices (
  license_id UUID NOT NULL REFERENCES public.licenses(id) ON DELETE CASCADE,
  device_name VARCHAR(255) NOT NULL,
  instance_id VARCHAR(128),
  activated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (license_id, device_name),
  CONSTRAINT license_devices_device_name_check CHECK (
    pg_catalog.length(device_name) OPERATOR(pg_catalog.>=) 1 AND device_name OPERATOR(pg_catalog.!~) '[[:cntrl:]]'),
  CONSTRAINT license_devices_instance_id_check CHECK (
    instance_id IS NULL OR instance_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$')
);

-- 4. Webhook deliveries already applied (the SHA-256 of the raw body: a retry sends the same
-- body), written in the transaction of the change they made.
CREATE TABLE IF NOT EXISTS public.license_webhook_events (
  provider VARCHAR(16) NOT NULL,
  event_id CHAR(64) NOT NULL,
  event_name VARCHAR(64) NOT NULL,
  received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (provider, event_id),
  CONSTRAINT license_webhook_events_event_id_check CHECK (event_id OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$'),
  CONSTRAINT license_webhook_events_event_name_check CHECK (event_name OPERATOR(pg_catalog.~) '^[a-z0-9_.:-]{1,64}$')
);

-- 5. Team seats: a member holds at most one seat, of one team license.
CREATE TABLE IF NOT EXISTS public.seat_assignments (
  license_id UUID NOT NULL REFERENCES public.licenses(id) ON DELETE CASCADE,
  owner_user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  member_user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  assigned_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (member_user_id)
);

CREATE INDEX IF NOT EXISTS idx_seat_assignments_license_id ON public.seat_assignments (license_id);
CREATE INDEX IF NOT EXISTS idx_seat_assignments_owner_user_id ON public.seat_assignments (owner_user_id);

ALTER TABLE public.license_products ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.licenses ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.license_devices ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.license_webhook_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.seat_assignments ENABLE ROW LEVEL SECURITY;

COMMENT ON TABLE public.license_products IS 'which plan a Lemon Squeezy or Gumroad product (variant) grants, device limit, seats';
COMMENT ON TABLE public.licenses IS 'activated license keys (SHA-256 digests), their owner and what the store said';
COMMENT ON TABLE public.license_devices IS 'devices a license is activated on (plugin token device names)';
COMMENT ON TABLE public.license_webhook_events IS 'applied store webhook deliveries (SHA-256 of the body), for de-duplication';
COMMENT ON TABLE public.seat_assignments IS 'team seats: which member holds a seat of which team license';

-- 6. The mapping of a license to its plan, device limit and seats: the variant's own row, else
-- the product's ('' variant). No row: the license grants nothing (yet).
CREATE OR REPLACE FUNCTION public.license_terms(
  p_provider VARCHAR, p_product_id VARCHAR, p_variant_id VARCHAR,
  OUT plan_id UUID, OUT device_limit INTEGER, OUT seats INTEGER
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  SELECT m.plan_id, m.device_limit, m.seats INTO plan_id, device_limit, seats
    FROM public.license_products AS m
   WHERE m.provider = p_provider AND m.product_id = p_product_id AND m.variant_id IN (COALESCE(p_variant_id, ''), '')
   ORDER BY m.variant_id = '' LIMIT 1;
END;
$$;

-- 7. The one entitlement rule (sql/015), with the license and seat branches:
--   lemonsqueezy / gumroad: the user's licenses (idx_licenses_user_id) that are not team
--                    licenses, status active or inactive, not past expires_at; their mapped plan.
--   seat:            the user's seat (seat_assignments, primary key member_user_id) of a team
--                    license that is itself in force; its mapped plan.
-- Source precedence: 10 stripe, 20 figma, 30 lemonsqueezy, 40 gumroad, 50 seat, 60 manual.
CREATE OR REPLACE FUNCTION public.plugin_auth_grants(
  p_user_id UUID,
  p_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
) RETURNS TABLE (
  rank INTEGER,
  source VARCHAR,
  plan_id UUID,
  plan_slug VARCHAR,
  until TIMESTAMP WITH TIME ZONE,
  detail VARCHAR
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  RETURN QUERY
  SELECT (pg_catalog.row_number() OVER (
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
         AND public.subscription_grants_access(s.status, s.current_period_end, p_at)
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
    ) AS g
    JOIN public.subscription_plans AS p ON p.id = g.plan_id
   ORDER BY 1;
END;
$$;

CREATE OR REPLACE FUNCTION public.license_check_provider(p_provider VARCHAR) RETURNS VOID
LANGUAGE plpgsql
IMMUTABLE
SET search_path = ''
AS $$
BEGIN
  IF p_provider IS NULL OR p_provider NOT IN ('lemonsqueezy', 'gumroad') THEN
    RAISE EXCEPTION 'invalid_license_provider: provider must be lemonsqueezy or gumroad' USING ERRCODE = 'PA080';
  END IF;
END;
$$;

-- A history row for the dashboard (user_plan_history, sql/014) after a license changed state.
CREATE OR REPLACE FUNCTION public.license_record_history(p_license_id UUID) RETURNS VOID
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
  SELECT k.user_id, t.plan_id, k.status, k.expires_at,
         t.plan_id IS NOT NULL AND k.status IN ('active', 'inactive')
           AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now()),
         k.provider, pg_catalog.now()
    FROM public.licenses AS k
   CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
   WHERE k.id = p_license_id;
END;
$$;

-- 8. Before asking the store to activate a key on a device: takes the key's lock (7320, held to
-- the end of the caller's transaction), refuses a key bound to another user (license_in_use) and
-- a device past the limit we know (device_limit_reached, naming the devices). Returns the
-- license's id if it is already stored (null: first activation) and whether this device is
-- already active on it.
CREATE OR REPLACE FUNCTION public.license_begin_activation(
  p_provider VARCHAR, p_key_hash TEXT, p_user_id UUID, p_device_name VARCHAR,
  OUT license_id UUID, OUT device_known BOOLEAN
)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_license public.licenses%ROWTYPE;
  v_limit INTEGER;
  v_devices TEXT;
  v_count INTEGER;
BEGIN
  PERFORM public.license_check_provider(p_provider);
  PERFORM public.plugin_auth_check_digest(p_key_hash, 'p_key_hash');
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS u WHERE u.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;
  IF p_device_name IS NULL OR pg_catalog.length(p_device_name) NOT BETWEEN 1 AND 255 OR p_device_name ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'invalid_device_name: a device name is 1 to 255 characters without control characters' USING ERRCODE = 'PA020';
  END IF;
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
  device_known := EXISTS (SELECT 1 FROM public.license_devices AS d WHERE d.license_id = v_license.id AND d.device_name = p_device_name);
  IF device_known THEN
    RETURN;
  END IF;
  SELECT LEAST(t.device_limit, v_license.activation_limit) INTO v_limit
    FROM public.license_terms(v_license.provider, v_license.product_id, v_license.variant_id) AS t;
  SELECT pg_catalog.count(*)::integer, pg_catalog.string_agg(d.device_name, ', ' ORDER BY d.activated_at, d.device_name)
    INTO v_count, v_devices
    FROM public.license_devices AS d WHERE d.license_id = v_license.id;
  IF v_limit IS NOT NULL AND v_count >= v_limit THEN
    RAISE EXCEPTION 'device_limit_reached: this license is active on % of % devices; deactivate one of: %', v_count, v_limit, v_devices
      USING ERRCODE = 'PA085';
  END IF;
END;
$$;

-- 9. What the store said on activation, stored under the key's lock: the license (created on
-- first activation, bound to p_user_id) and the device. Re-checks binding and the device limit
-- with what the store just said (its activation_limit). Returns the license and devices in use.
CREATE OR REPLACE FUNCTION public.license_record_activation(
  p_provider VARCHAR, p_key_hash TEXT, p_key_prefix VARCHAR, p_user_id UUID, p_device_name VARCHAR,
  p_provider_key_id VARCHAR, p_product_id VARCHAR, p_variant_id VARCHAR, p_order_id VARCHAR,
  p_status VARCHAR, p_activation_limit INTEGER, p_quantity INTEGER, p_expires_at TIMESTAMP WITH TIME ZONE,
  p_instance_id VARCHAR,
  OUT license_id UUID, OUT activations_used INTEGER, OUT device_limit INTEGER, OUT plan_id UUID
)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_variable
DECLARE
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.clock_timestamp();
  v_known BOOLEAN;
  v_old_status VARCHAR;
  v_seats INTEGER;
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
  SELECT b.license_id, b.device_known INTO license_id, v_known
    FROM public.license_begin_activation(p_provider, p_key_hash, p_user_id, p_device_name) AS b;
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
        (SELECT pg_catalog.string_agg(d.device_name, ', ' ORDER BY d.activated_at, d.device_name)
           FROM public.license_devices AS d WHERE d.license_id = license_id)
        USING ERRCODE = 'PA085';
    END IF;
    INSERT INTO public.license_devices (license_id, device_name, instance_id)
    VALUES (license_id, p_device_name, p_instance_id);
  ELSIF p_instance_id IS NOT NULL THEN
    UPDATE public.license_devices AS d SET instance_id = p_instance_id
     WHERE d.license_id = license_id AND d.device_name = p_device_name;
  END IF;
  SELECT pg_catalog.count(*)::integer INTO activations_used FROM public.license_devices AS d WHERE d.license_id = license_id;
  IF v_old_status IS DISTINCT FROM (SELECT k.status FROM public.licenses AS k WHERE k.id = license_id) THEN
    PERFORM public.license_record_history(license_id);
  END IF;
END;
$$;

-- 10. A new state of a license, from a check (p_authoritative: what the store's API said now) or a
-- webhook (its updated_at). A webhook older than the last one applied: 'stale', nothing changes. A webhook never
-- lifts a refund, dispute or chargeback; a Gumroad check can (it reports those flags itself).
CREATE OR REPLACE FUNCTION public.license_apply_state(
  p_license_id UUID, p_status VARCHAR, p_expires_at TIMESTAMP WITH TIME ZONE, p_activation_limit INTEGER,
  p_quantity INTEGER, p_event_at TIMESTAMP WITH TIME ZONE, p_authoritative BOOLEAN
) RETURNS TEXT
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
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
$$;

-- 11. One webhook delivery, de-duplicated and applied in one transaction: records the event id
-- (a replay answers 'duplicate' and changes nothing), finds the licenses it concerns (by the
-- store's key id, order id, or key digest) and applies the new state to each.
-- Returns (applied, reason, licenses).
CREATE OR REPLACE FUNCTION public.license_apply_webhook(
  p_provider VARCHAR, p_event_id TEXT, p_event_name VARCHAR, p_match VARCHAR, p_value TEXT,
  p_status VARCHAR, p_expires_at TIMESTAMP WITH TIME ZONE, p_event_at TIMESTAMP WITH TIME ZONE,
  p_authoritative BOOLEAN DEFAULT false,
  OUT applied BOOLEAN, OUT reason TEXT, OUT licenses INTEGER
)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
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
  INSERT INTO public.license_webhook_events (provider, event_id, event_name) VALUES (p_provider, p_event_id, p_event_name)
  ON CONFLICT (provider, event_id) DO NOTHING;
  IF NOT FOUND THEN
    applied := false; reason := 'duplicate'; licenses := 0;
    RETURN;
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
$$;

-- 12. Frees a device of a license (the caller has told the store first). Returns the devices
-- still active. license_not_found when the key is not this user's.
CREATE OR REPLACE FUNCTION public.license_remove_device(
  p_provider VARCHAR, p_key_hash TEXT, p_user_id UUID, p_device_name VARCHAR
) RETURNS INTEGER
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
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
  DELETE FROM public.license_devices AS d WHERE d.license_id = v_id AND d.device_name = p_device_name;
  SELECT pg_catalog.count(*)::integer INTO v_left FROM public.license_devices AS d WHERE d.license_id = v_id;
  RETURN v_left;
END;
$$;

-- 13. Plan <-> store product (variant). p_plan_slug null unlinks. Errors: invalid_license_provider,
-- invalid_license_product, invalid_license_link, unknown_plan.
CREATE OR REPLACE FUNCTION public.link_license_plan(
  p_plan_slug VARCHAR, p_provider VARCHAR, p_product_id VARCHAR, p_variant_id VARCHAR DEFAULT NULL,
  p_device_limit INTEGER DEFAULT NULL, p_seats INTEGER DEFAULT NULL
) RETURNS SETOF public.subscription_plans
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
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
  IF p_plan_slug IS NULL THEN
    DELETE FROM public.license_products AS m
     WHERE m.provider = p_provider AND m.product_id = p_product_id AND m.variant_id = COALESCE(p_variant_id, '');
    RETURN;
  END IF;
  SELECT p.id INTO v_plan_id FROM public.subscription_plans AS p WHERE p.plan_slug = p_plan_slug;
  IF v_plan_id IS NULL THEN
    RAISE EXCEPTION 'unknown_plan: no plan with slug %', p_plan_slug USING ERRCODE = 'PA034';
  END IF;
  INSERT INTO public.license_products AS m (provider, product_id, variant_id, plan_id, device_limit, seats)
  VALUES (p_provider, p_product_id, COALESCE(p_variant_id, ''), v_plan_id, p_device_limit, p_seats)
  ON CONFLICT (provider, product_id, variant_id) DO UPDATE SET plan_id = EXCLUDED.plan_id,
    device_limit = EXCLUDED.device_limit, seats = EXCLUDED.seats, updated_at = pg_catalog.now();
  RETURN QUERY SELECT p.* FROM public.subscription_plans AS p WHERE p.id = v_plan_id;
END;
$$;

-- 14. Seats. The owner's team licenses (in force, mapped, seats > 1) are locked in id order, so
-- concurrent assigns of one owner queue; the first with a free seat takes the member. Idempotent
-- for a member already seated by this owner. Errors: unknown_user, seat_taken (the member holds
-- another owner's seat), no_seats_left (every seat taken, or no team license).
CREATE OR REPLACE FUNCTION public.seat_assign(p_owner_id UUID, p_member_id UUID,
  OUT license_id UUID, OUT seats_used INTEGER, OUT seats INTEGER)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
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
  SELECT a.* INTO v_existing FROM public.seat_assignments AS a WHERE a.member_user_id = p_member_id FOR UPDATE;
  IF FOUND THEN
    IF v_existing.owner_user_id <> p_owner_id THEN
      RAISE EXCEPTION 'seat_taken: this member already holds a seat of another team' USING ERRCODE = 'PA088';
    END IF;
    license_id := v_existing.license_id; seats_used := v_used; seats := v_total;
    RETURN;
  END IF;
  IF license_id IS NULL THEN
    RAISE EXCEPTION 'no_seats_left: all % seats are taken; remove a member or buy more seats', v_total USING ERRCODE = 'PA087';
  END IF;
  INSERT INTO public.seat_assignments (license_id, owner_user_id, member_user_id) VALUES (license_id, p_owner_id, p_member_id);
  seats_used := v_used + 1;
  seats := v_total;
END;
$$;
