-- Who is entitled to what: the access rule of a subscription row (subscription_grants_access, the
-- single source of that rule: scripts/sql-generate.ts inlines it into plugin_auth_grants), a
-- license's terms, the effective plan, and manual plan assignment.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.subscription_grants_access(p_status character varying, p_current_period_end timestamp with time zone, p_at timestamp with time zone DEFAULT now())
 RETURNS boolean
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
BEGIN
  RETURN CASE
    WHEN p_status IN ('active', 'trialing') THEN true
    WHEN p_status = 'past_due' THEN p_current_period_end IS NOT NULL AND p_current_period_end > p_at
    WHEN p_status = 'manual' THEN p_current_period_end IS NULL OR p_current_period_end > p_at
    ELSE false
  END;
END;
$function$;

CREATE OR REPLACE FUNCTION public.license_terms(p_provider character varying, p_product_id character varying, p_variant_id character varying, OUT plan_id uuid, OUT device_limit integer, OUT seats integer)
 RETURNS record
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
BEGIN
  SELECT m.plan_id, LEAST(m.device_limit, p.device_limit), m.seats INTO plan_id, device_limit, seats
    FROM public.license_products AS m
    JOIN public.subscription_plans AS p ON p.id = m.plan_id
   WHERE m.provider = p_provider AND m.product_id = p_product_id AND m.variant_id IN (COALESCE(p_variant_id, ''), '')
   ORDER BY m.variant_id = '' LIMIT 1;
END;
$function$;

CREATE OR REPLACE FUNCTION public.effective_plan(p_user_id uuid, p_at timestamp with time zone DEFAULT now())
 RETURNS SETOF public.subscription_plans
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
BEGIN
  RETURN QUERY
  SELECT p.*
    FROM public.subscription_plans AS p
   WHERE p.id = COALESCE(
     (SELECT g.plan_id FROM public.plugin_auth_grants(p_user_id, p_at) AS g WHERE g.rank = 1),
     (SELECT f.id FROM public.subscription_plans AS f WHERE f.plan_slug = 'free'));
END;
$function$;

CREATE OR REPLACE FUNCTION public.assign_plan(p_user_id uuid, p_plan_slug character varying, p_until timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(user_id uuid, plan_slug character varying, status character varying, current_period_end timestamp with time zone)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
DECLARE
  v_plan_id UUID;
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.date_trunc('second', NOW());
BEGIN
  PERFORM public.plugin_auth_require_user(p_user_id);
  SELECT p.id INTO v_plan_id FROM public.subscription_plans p WHERE p.plan_slug = p_plan_slug;
  IF v_plan_id IS NULL THEN
    RAISE EXCEPTION 'unknown_plan: no plan with slug %', p_plan_slug USING ERRCODE = 'PA034';
  END IF;
  IF p_until IS NOT NULL AND p_until <= NOW() THEN
    RAISE EXCEPTION 'invalid_until: until must be in the future (or null for no end)' USING ERRCODE = 'PA035';
  END IF;

  -- The same per-user lock as sync_stripe_subscription: one writer of a user's row at a time.
  PERFORM pg_catalog.pg_advisory_xact_lock(7305,
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
$function$;
