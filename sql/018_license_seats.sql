-- 018: team seats from a Stripe subscription's quantity, a device cap on the plan itself, and the
-- rule that a team of N seats grants exactly N members (the oldest assignments) when N shrinks.
--
-- - user_subscriptions.quantity: items.data[0].quantity of the Stripe subscription, written by
--   sync_stripe_subscription (redefined below). 1 = the subscriber's own plan, as before; N > 1 =
--   a team subscription of N seats, which, like a team license (sql/016), grants nothing to its
--   owner directly: the owner assigns members (and may assign themselves); 0 = no seat at all.
--   A manual row (assign_plan) is never a team.
-- - seat_assignments.subscription_id: a seat of the owner's Stripe subscription instead of one of
--   their team licenses (exactly one of license_id and subscription_id is set).
-- - subscription_plans.device_limit: at most this many devices per license of the plan. The cap in
--   force is the smallest of the product mapping's, the plan's and the store's own (Lemon Squeezy
--   activation_limit); license_terms returns the mapping's and the plan's together.
-- - seat_assignments.seat_order: the order seats were given. When a team's seats drop below its
--   assignments (a Stripe quantity decrease, a smaller Gumroad quantity, a mapping with fewer
--   seats), the members assigned first keep their seats; the newest ones lose access until a seat
--   is free again (the assignments are kept). Assigning past the seats is no_seats_left.
--
-- Every ALTER TABLE adds one column with ADD COLUMN IF NOT EXISTS (setup's preflight accepts that
-- column missing while this file is pending: src/migrations.ts). Runs with every name
-- schema-qualified (also under SET LOCAL search_path = pg_catalog). No new SQLSTATEs: a bad quantity
-- is invalid_subscription (PA030), a bad plan device limit invalid_license_link (PA082).

ALTER TABLE public.user_subscriptions ADD COLUMN IF NOT EXISTS quantity INTEGER NOT NULL DEFAULT 1
  CONSTRAINT user_subscriptions_quantity_check CHECK (
    quantity OPERATOR(pg_catalog.>=) 0 AND quantity OPERATOR(pg_catalog.<=) 100000);

ALTER TABLE public.subscription_plans ADD COLUMN IF NOT EXISTS device_limit INTEGER
  CONSTRAINT subscription_plans_device_limit_check CHECK (
    device_limit OPERATOR(pg_catalog.>=) 1 AND device_limit OPERATOR(pg_catalog.<=) 1000);

ALTER TABLE public.seat_assignments ADD COLUMN IF NOT EXISTS subscription_id UUID
  CONSTRAINT seat_assignments_subscription_id_fkey REFERENCES public.user_subscriptions(id) ON DELETE CASCADE;

-- Guarded: ALTER COLUMN takes an exclusive lock even when there is nothing to change.
DO $seats$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
              WHERE a.attrelid OPERATOR(pg_catalog.=) 'public.seat_assignments'::pg_catalog.regclass
                AND a.attname OPERATOR(pg_catalog.=) 'license_id' AND a.attnotnull) THEN
    ALTER TABLE public.seat_assignments ALTER COLUMN license_id DROP NOT NULL;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint AS k
                  WHERE k.conrelid OPERATOR(pg_catalog.=) 'public.seat_assignments'::pg_catalog.regclass
                    AND k.conname OPERATOR(pg_catalog.=) 'seat_assignments_source_check') THEN
    ALTER TABLE public.seat_assignments ADD CONSTRAINT seat_assignments_source_check
      CHECK ((license_id IS NULL) OPERATOR(pg_catalog.<>) (subscription_id IS NULL));
  END IF;
END
$seats$;

-- seat_order: the order seats were given, a seat's place in its team (who keeps one when the team
-- shrinks). assigned_at cannot be it: two assigns may share a timestamp (PGlite's clock has
-- millisecond resolution). Seats already given are numbered by (assigned_at, member_user_id),
-- new ones by the identity, drawn after seat_assign_member's locks: in the order they are given.
DO $seat_order$
DECLARE
  v_next BIGINT;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                  WHERE a.attrelid OPERATOR(pg_catalog.=) 'public.seat_assignments'::pg_catalog.regclass
                    AND a.attname OPERATOR(pg_catalog.=) 'seat_order' AND NOT a.attisdropped) THEN
    ALTER TABLE public.seat_assignments ADD COLUMN IF NOT EXISTS seat_order BIGINT;
    UPDATE public.seat_assignments AS a SET seat_order = o.n
      FROM (SELECT s.member_user_id,
                   pg_catalog.row_number() OVER (ORDER BY s.assigned_at, s.member_user_id) AS n
              FROM public.seat_assignments AS s) AS o
     WHERE o.member_user_id OPERATOR(pg_catalog.=) a.member_user_id;
    SELECT COALESCE(pg_catalog.max(a.seat_order), 0) OPERATOR(pg_catalog.+) 1 INTO v_next FROM public.seat_assignments AS a;
    ALTER TABLE public.seat_assignments ALTER COLUMN seat_order SET NOT NULL;
    EXECUTE pg_catalog.format(
      'ALTER TABLE public.seat_assignments ALTER COLUMN seat_order ADD GENERATED ALWAYS AS IDENTITY (START WITH %s)', v_next);
  END IF;
END
$seat_order$;

-- The foreign key's index, and the order of a subscription's seats.
CREATE INDEX IF NOT EXISTS idx_seat_assignments_subscription_id
  ON public.seat_assignments (subscription_id, seat_order);

-- 1. The mapping of a license to its plan, device cap and seats (sql/016), the cap now the smaller
-- of the mapping's and the plan's (LEAST ignores a null: no cap there).
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
  SELECT m.plan_id, LEAST(m.device_limit, p.device_limit), m.seats INTO plan_id, device_limit, seats
    FROM public.license_products AS m
    JOIN public.subscription_plans AS p ON p.id = m.plan_id
   WHERE m.provider = p_provider AND m.product_id = p_product_id AND m.variant_id IN (COALESCE(p_variant_id, ''), '')
   ORDER BY m.variant_id = '' LIMIT 1;
END;
$$;

-- 2. The one entitlement rule (sql/015, sql/016), with seats of Stripe subscriptions:
--   stripe:  the user's subscription row while it grants access, unless it is a team (quantity
--            other than 1; a manual row never is).
--   seat:    the user's seat of a team license in force (its mapped plan), or of a team Stripe
--            subscription that grants access (its plan), while the seat is among the first N of
--            its team by seat_order, N the team's seats now.
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
         AND (s.status = 'manual' OR s.quantity = 1)
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
         AND public.subscription_grants_access(s.status, s.current_period_end, p_at)
         AND (SELECT pg_catalog.count(*) FROM public.seat_assignments AS b
               WHERE b.subscription_id = a.subscription_id
                 AND b.seat_order < a.seat_order) < s.quantity
    ) AS g
    JOIN public.subscription_plans AS p ON p.id = g.plan_id
   ORDER BY 1;
END;
$$;

-- 3. Seats (sql/016), from the owner's team licenses and team Stripe subscription. The team
-- licenses in force are locked in id order, then the subscription row, so concurrent assigns of
-- one owner queue; the first source with a free seat takes the member (licenses first). A seat
-- counts as taken whether or not it is among the first N (see 2): after a decrease, nobody new is
-- seated until the assignments fit again. Idempotent for a member already seated by this owner.
-- Errors: unknown_user, seat_taken (the member holds another owner's seat), no_seats_left (every
-- seat taken, or no team license or subscription in force).
CREATE OR REPLACE FUNCTION public.seat_assign_member(p_owner_id UUID, p_member_id UUID,
  OUT license_id UUID, OUT subscription_id UUID, OUT seats_used INTEGER, OUT seats INTEGER)
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
  IF FOUND THEN
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
$$;

-- sql/016's signature, kept for SQL callers: a seat of a Stripe subscription returns a null license_id.
CREATE OR REPLACE FUNCTION public.seat_assign(p_owner_id UUID, p_member_id UUID,
  OUT license_id UUID, OUT seats_used INTEGER, OUT seats INTEGER)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  SELECT m.license_id, m.seats_used, m.seats INTO license_id, seats_used, seats
    FROM public.seat_assign_member(p_owner_id, p_member_id) AS m;
END;
$$;

-- 4. A plan's own device cap (null: none). Errors: invalid_license_link (not 1 to 1000), unknown_plan.
CREATE OR REPLACE FUNCTION public.set_plan_device_limit(p_plan_slug VARCHAR, p_device_limit INTEGER)
RETURNS SETOF public.subscription_plans
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
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
$$;

-- 5. Stripe sync (sql/013), keeping the subscription's quantity (seats).
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
  v_quantity_json JSONB;
  v_quantity INTEGER;
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
  -- The seats bought: items.data[0].quantity (older API versions: the subscription's quantity).
  -- Missing or null (a metered price has none): 1. Stripe allows 0; more than 100000 is refused.
  -- Each cast is behind a CASE arm: AND does not promise evaluation order.
  v_quantity_json := COALESCE(NULLIF(v_item -> 'quantity', 'null'::jsonb), NULLIF(p_subscription -> 'quantity', 'null'::jsonb));
  v_quantity := CASE
    WHEN v_quantity_json IS NULL THEN 1
    WHEN pg_catalog.jsonb_typeof(v_quantity_json) <> 'number' THEN NULL
    WHEN (v_quantity_json #>> '{}')::numeric BETWEEN 0 AND 100000
         AND (v_quantity_json #>> '{}')::numeric = pg_catalog.trunc((v_quantity_json #>> '{}')::numeric)
      THEN ((v_quantity_json #>> '{}')::numeric)::integer END;
  IF v_quantity IS NULL THEN
    RAISE EXCEPTION 'invalid_subscription: items.data[0].quantity must be a whole number from 0 to 100000' USING ERRCODE = 'PA030';
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
    stripe_event_created, quantity)
  VALUES (
    v_user_id, v_plan_id, v_status, v_customer, v_id, v_price,
    v_period_start, v_period_end, v_cancel_at_period_end, v_canceled_at, v_trial_end,
    p_event_created, v_quantity)
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
    quantity = EXCLUDED.quantity,
    updated_at = NOW()
  WHERE (
      s.stripe_event_created IS NULL
      OR s.stripe_event_created < EXCLUDED.stripe_event_created
      OR (s.stripe_event_created = EXCLUDED.stripe_event_created
          AND (s.plan_id, s.status, s.stripe_customer_id, s.stripe_subscription_id, s.stripe_price_id,
               s.current_period_start, s.current_period_end, s.cancel_at_period_end, s.canceled_at, s.trial_end,
               s.quantity)
              IS DISTINCT FROM
              (EXCLUDED.plan_id, EXCLUDED.status, EXCLUDED.stripe_customer_id, EXCLUDED.stripe_subscription_id,
               EXCLUDED.stripe_price_id, EXCLUDED.current_period_start, EXCLUDED.current_period_end,
               EXCLUDED.cancel_at_period_end, EXCLUDED.canceled_at, EXCLUDED.trial_end, EXCLUDED.quantity)
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
          s.current_period_start, s.current_period_end, s.cancel_at_period_end, s.canceled_at, s.trial_end, s.quantity)
           IS NOT DISTINCT FROM
         (v_plan_id, v_status, v_customer, v_id, v_price,
          v_period_start, v_period_end, v_cancel_at_period_end, v_canceled_at, v_trial_end, v_quantity) AS same
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

-- 6. consume_usage, check_usage and plugin_auth_usage_limits embed the query of plugin_auth_grants
-- (sql/017). They are generated again from the rule redefined above by sql/020, whose generator
-- supersedes sql/017's: the two files are applied in the same setup transaction (any database
-- below 18 has both pending), and test/hot-paths.test.ts checks the copy in force.
