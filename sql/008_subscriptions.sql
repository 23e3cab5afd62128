-- 008: subscriptions. Stripe webhook sync that survives out-of-order and duplicate deliveries,
-- plans sold outside Stripe (manual), and linking plans to Stripe products and prices.
-- The rule "which plan does a subscription grant" stays in 003 (subscription_grants_access): these
-- functions only write the row it reads.
-- SQLSTATEs: PA030-PA039 (PA001 unknown_user is shared with 003).

-- Epoch seconds (a Stripe timestamp, as JSON) to timestamptz; null for null, missing or non-numbers.
-- A non-number is not an error: Stripe sends null for periods and dates that do not apply.
CREATE OR REPLACE FUNCTION public.stripe_timestamp(p_value JSONB) RETURNS TIMESTAMP WITH TIME ZONE
LANGUAGE sql
IMMUTABLE
SET search_path = ''
AS $$
  SELECT CASE WHEN pg_catalog.jsonb_typeof(p_value) = 'number'
              THEN pg_catalog.to_timestamp((p_value)::numeric::double precision) END;
$$;

-- Applies one Stripe subscription object (event.data.object of customer.subscription.created,
-- .updated or .deleted) to its user's single user_subscriptions row, in one statement.
-- p_event_created = the event's `created`: the row remembers the newest one applied, and
--   older than it       -> nothing changes, reason 'stale';
--   same second, same data -> nothing changes, reason 'duplicate' (a redelivery);
--   same second, different data -> applied (Stripe's `created` has one-second resolution, so two
--     events of one second cannot be ordered), except that a canceled / incomplete_expired
--     subscription is never brought back by an event of the same second;
--   newer             -> applied.
-- A different subscription (a user's second Stripe subscription, or a manual plan in the row) takes
-- the row over only if it grants access, or the row no longer does: otherwise 'superseded' (e.g.
-- the old subscription's cancellation arriving after the user moved to a new one).
-- The decision is the WHERE of ON CONFLICT DO UPDATE, evaluated on the row locked at that moment
-- (and a per-user advisory lock covers the first insert): concurrent deliveries serialize, and the
-- newest event wins whatever the arrival order.
-- User: the row already holding this subscription, else the row holding this customer, else
-- metadata.user_id (an existing user). Plan: the first item's price, via stripe_price_id.
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

  -- Current API versions keep the period on each item; older ones on the subscription.
  v_period_start := COALESCE(public.stripe_timestamp(v_item -> 'current_period_start'),
                             public.stripe_timestamp(p_subscription -> 'current_period_start'));
  v_period_end := COALESCE(public.stripe_timestamp(v_item -> 'current_period_end'),
                           public.stripe_timestamp(p_subscription -> 'current_period_end'));
  v_cancel_at_period_end := pg_catalog.jsonb_typeof(p_subscription -> 'cancel_at_period_end') = 'boolean'
                            AND (p_subscription -> 'cancel_at_period_end')::boolean;
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

-- Gives a user a plan sold outside Stripe (enterprise deal, support grant): status 'manual', from
-- now until p_until (null: no end). It replaces the user's row: the Stripe subscription link, price,
-- trial and cancellation fields are cleared; the Stripe customer id is kept (so the user's next
-- checkout still finds them), and so is the ordering mark, moved to now: a Stripe event created
-- before the assignment can no longer overwrite it. A later Stripe subscription that grants access
-- takes the row back (see sync_stripe_subscription).
CREATE OR REPLACE FUNCTION public.assign_plan(
  p_user_id UUID,
  p_plan_slug VARCHAR,
  p_until TIMESTAMP WITH TIME ZONE DEFAULT NULL
) RETURNS TABLE (user_id UUID, plan_slug VARCHAR, status VARCHAR, current_period_end TIMESTAMP WITH TIME ZONE)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
  v_plan_id UUID;
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.date_trunc('second', NOW());
BEGIN
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;
  SELECT p.id INTO v_plan_id FROM public.subscription_plans p WHERE p.plan_slug = p_plan_slug;
  IF v_plan_id IS NULL THEN
    RAISE EXCEPTION 'unknown_plan: no plan with slug %', p_plan_slug USING ERRCODE = 'PA034';
  END IF;
  IF p_until IS NOT NULL AND p_until <= NOW() THEN
    RAISE EXCEPTION 'invalid_until: until must be in the future (or null for no end)' USING ERRCODE = 'PA035';
  END IF;

  -- The same per-user lock as sync_stripe_subscription: one writer of a user's row at a time.
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('figma-plugin-auth-db:user_subscriptions'),
                                           pg_catalog.hashtext(p_user_id::text));

  INSERT INTO public.user_subscriptions AS s (
    user_id, plan_id, status, current_period_start, current_period_end, stripe_event_created)
  VALUES (p_user_id, v_plan_id, 'manual', NOW(), p_until, v_now)
  ON CONFLICT ON CONSTRAINT idx_user_subscriptions_user_id DO UPDATE SET
    plan_id = EXCLUDED.plan_id,
    status = 'manual',
    stripe_subscription_id = NULL,
    stripe_price_id = NULL,
    current_period_start = EXCLUDED.current_period_start,
    current_period_end = EXCLUDED.current_period_end,
    cancel_at_period_end = false,
    canceled_at = NULL,
    trial_end = NULL,
    stripe_event_created = GREATEST(s.stripe_event_created, EXCLUDED.stripe_event_created),
    updated_at = NOW();

  RETURN QUERY SELECT p_user_id, p_plan_slug, 'manual'::varchar, p_until;
END;
$$;

-- Links a plan to its Stripe product and price (both nullable: null unlinks). The webhook sync finds
-- the plan by the price, so a price may belong to one plan only.
CREATE OR REPLACE FUNCTION public.link_stripe_plan(
  p_plan_slug VARCHAR,
  p_product_id VARCHAR,
  p_price_id VARCHAR
) RETURNS SETOF public.subscription_plans
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
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
$$;
