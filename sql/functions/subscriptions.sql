-- Stripe: plan links by product and price, and the webhook's subscription sync.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.stripe_timestamp(p_value jsonb)
 RETURNS timestamp with time zone
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  SELECT CASE WHEN pg_catalog.jsonb_typeof(p_value) = 'number'
              THEN pg_catalog.to_timestamp((p_value)::numeric::double precision) END;
$function$;

CREATE OR REPLACE FUNCTION public.link_stripe_plan(p_plan_slug character varying, p_product_id character varying, p_price_id character varying)
 RETURNS SETOF public.subscription_plans
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
BEGIN
  IF (p_product_id IS NOT NULL AND p_product_id !~ '^\S{1,255}$')
     OR (p_price_id IS NOT NULL AND p_price_id !~ '^\S{1,255}$') THEN
    RAISE EXCEPTION 'invalid_stripe_id: Stripe ids are 1 to 255 characters without spaces' USING ERRCODE = 'PA037';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.subscription_plans p WHERE p.plan_slug = p_plan_slug) THEN
    RAISE EXCEPTION 'unknown_plan: no plan with slug %', p_plan_slug USING ERRCODE = 'PA034';
  END IF;
  -- The partial unique index is the guarantee; this check only names the problem.
  IF p_price_id IS NOT NULL AND EXISTS (
       SELECT 1 FROM public.subscription_plans p
        WHERE p.stripe_price_id = p_price_id AND p.plan_slug <> p_plan_slug) THEN
    RAISE EXCEPTION 'price_already_linked: Stripe price % belongs to another plan; unlink it there first', p_price_id
      USING ERRCODE = 'PA036';
  END IF;
  RETURN QUERY
  UPDATE public.subscription_plans p
     SET stripe_product_id = p_product_id, stripe_price_id = p_price_id, updated_at = NOW()
   WHERE p.plan_slug = p_plan_slug
  RETURNING p.*;
END;
$function$;

CREATE OR REPLACE FUNCTION public.sync_stripe_subscription(p_subscription jsonb, p_event_created timestamp with time zone)
 RETURNS TABLE(applied boolean, reason text, user_id uuid, plan_slug character varying, status character varying)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
DECLARE
  v_id TEXT;
  v_status TEXT;
  v_customer TEXT;
  v_item JSONB;
  v_price TEXT;
  v_metadata_user TEXT;
  v_user_id UUID;
  v_moved UUID;
  v_plan_id UUID;
  v_plan_slug VARCHAR;
  v_period_start TIMESTAMP WITH TIME ZONE;
  v_period_end TIMESTAMP WITH TIME ZONE;
  v_cancel_at_period_end BOOLEAN;
  v_canceled_at TIMESTAMP WITH TIME ZONE;
  v_trial_end TIMESTAMP WITH TIME ZONE;
  v_quantity_json JSONB;
  v_quantity INTEGER;
  v_unit_amount BIGINT;
  v_currency TEXT;
  v_interval TEXT;
  v_interval_count INTEGER;
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
  -- The price the item is billed at, when the payload carries the expanded price (webhooks do):
  -- unit_amount (minor units), currency, recurring.interval and interval_count. A price without a
  -- unit_amount (tiered, or a custom unit_amount_decimal) or a price given as a bare id records no
  -- amount (all four NULL); the subscription is synced either way.
  IF pg_catalog.jsonb_typeof(v_item -> 'price') = 'object'
     AND pg_catalog.jsonb_typeof(v_item -> 'price' -> 'unit_amount') = 'number'
     AND pg_catalog.jsonb_typeof(v_item -> 'price' -> 'currency') = 'string'
     AND pg_catalog.jsonb_typeof(v_item -> 'price' -> 'recurring' -> 'interval') = 'string' THEN
    v_unit_amount := CASE WHEN (v_item -> 'price' ->> 'unit_amount') ~ '^[0-9]{1,11}$'
                          THEN (v_item -> 'price' ->> 'unit_amount')::bigint END;
    v_currency := CASE WHEN (v_item -> 'price' ->> 'currency') ~ '^[A-Za-z]{3}$' THEN v_item -> 'price' ->> 'currency' END;
    v_interval := CASE WHEN (v_item -> 'price' -> 'recurring' ->> 'interval') IN ('day', 'week', 'month', 'year')
                       THEN v_item -> 'price' -> 'recurring' ->> 'interval' END;
    v_interval_count := CASE WHEN pg_catalog.jsonb_typeof(v_item -> 'price' -> 'recurring' -> 'interval_count') IS DISTINCT FROM 'number' THEN 1
                             WHEN (v_item -> 'price' -> 'recurring' ->> 'interval_count') ~ '^[0-9]{1,3}$'
                                  AND (v_item -> 'price' -> 'recurring' ->> 'interval_count')::integer BETWEEN 1 AND 365
                               THEN (v_item -> 'price' -> 'recurring' ->> 'interval_count')::integer END;
    IF v_unit_amount IS NULL OR v_unit_amount > 100000000000 OR v_currency IS NULL OR v_interval IS NULL OR v_interval_count IS NULL THEN
      v_unit_amount := NULL; v_currency := NULL; v_interval := NULL; v_interval_count := NULL;
    END IF;
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
  PERFORM pg_catalog.pg_advisory_xact_lock(7305,
                                           pg_catalog.hashtext(v_user_id::text));
  -- A team transfer (team_transfer_ownership, which takes this lock for both users) may have
  -- moved the row to another user while we waited: follow it, under that user's lock too.
  SELECT s.user_id INTO v_moved FROM public.user_subscriptions s WHERE s.stripe_subscription_id = v_id;
  IF v_moved IS NOT NULL AND v_moved <> v_user_id THEN
    v_user_id := v_moved;
    PERFORM pg_catalog.pg_advisory_xact_lock(7305, pg_catalog.hashtext(v_user_id::text));
  END IF;

  INSERT INTO public.user_subscriptions AS s (
    user_id, plan_id, status, stripe_customer_id, stripe_subscription_id, stripe_price_id,
    current_period_start, current_period_end, cancel_at_period_end, canceled_at, trial_end,
    stripe_event_created, quantity, unit_amount, currency, price_interval, price_interval_count)
  VALUES (
    v_user_id, v_plan_id, v_status, v_customer, v_id, v_price,
    v_period_start, v_period_end, v_cancel_at_period_end, v_canceled_at, v_trial_end,
    p_event_created, v_quantity, v_unit_amount, v_currency, v_interval, v_interval_count)
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
    unit_amount = EXCLUDED.unit_amount,
    currency = EXCLUDED.currency,
    price_interval = EXCLUDED.price_interval,
    price_interval_count = EXCLUDED.price_interval_count,
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
$function$;
