-- 003: the seed's increment_daily_usage, and the one definition of "which plan does this user have".
-- Conventions for every function: parameters p_*, locals v_*, SET search_path = '' with every name
-- schema-qualified, errors raised with a named SQLSTATE (class PA, listed in the README) and a
-- message that starts with the stable error code and says what to fix.

-- Atomically adds 1 to the user's counter for (action, day), creating it, and returns the new count.
-- One statement: the row lock taken by ON CONFLICT DO UPDATE makes N concurrent calls add exactly N.
CREATE OR REPLACE FUNCTION public.increment_daily_usage(
  p_user_id UUID,
  p_action VARCHAR,
  p_date DATE DEFAULT ((NOW() AT TIME ZONE 'UTC')::date)
) RETURNS INTEGER
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
  v_count INTEGER;
BEGIN
  IF p_action IS NULL OR p_action !~ '^[A-Za-z0-9_.:-]{1,64}$' THEN
    RAISE EXCEPTION 'invalid_action: action must be 1 to 64 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA003';
  END IF;
  IF p_date IS NULL THEN
    RAISE EXCEPTION 'invalid_date: p_date must not be null' USING ERRCODE = 'PA006';
  END IF;
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;

  INSERT INTO public.daily_usage_summary AS d (user_id, action, usage_date, count)
  VALUES (p_user_id, p_action, p_date, 1)
  ON CONFLICT (user_id, action, usage_date)
  DO UPDATE SET count = d.count + 1, updated_at = NOW()
  RETURNING d.count INTO v_count;

  RETURN v_count;
END;
$$;

-- Does a subscription in this state grant its plan at p_at? The single rule, used by SQL
-- (effective_plan, consume_usage, check_usage) and by TypeScript (subscriptions.effectivePlan):
-- active and trialing grant it; past_due keeps it until current_period_end (Stripe's retry
-- window); manual (sold outside Stripe) grants it until current_period_end, or forever when that
-- is null; every other status (canceled, unpaid, paused, incomplete, incomplete_expired) does not.
-- PL/pgSQL, not SQL: a SQL function with SET search_path is never inlined and is planned again on
-- every call (~70 us inside consume_usage); a PL/pgSQL function keeps its plan for the session.
CREATE OR REPLACE FUNCTION public.subscription_grants_access(
  p_status VARCHAR,
  p_current_period_end TIMESTAMP WITH TIME ZONE,
  p_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
) RETURNS BOOLEAN
LANGUAGE plpgsql
IMMUTABLE
SET search_path = ''
AS $$
BEGIN
  RETURN CASE
    WHEN p_status IN ('active', 'trialing') THEN true
    WHEN p_status = 'past_due' THEN p_current_period_end IS NOT NULL AND p_current_period_end > p_at
    WHEN p_status = 'manual' THEN p_current_period_end IS NULL OR p_current_period_end > p_at
    ELSE false
  END;
END;
$$;

-- The user's effective plan at p_at: the subscribed plan while its status grants access, else free.
-- Returns no row only when the free plan itself is missing.
CREATE OR REPLACE FUNCTION public.effective_plan(
  p_user_id UUID,
  p_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
) RETURNS SETOF public.subscription_plans
LANGUAGE plpgsql
STABLE
SET search_path = ''
AS $$
BEGIN
  RETURN QUERY
  SELECT p.*
    FROM public.subscription_plans AS p
   WHERE p.plan_slug = COALESCE(
     (SELECT sp.plan_slug
        FROM public.user_subscriptions AS s
        JOIN public.subscription_plans AS sp ON sp.id = s.plan_id
       WHERE s.user_id = p_user_id
         AND public.subscription_grants_access(s.status, s.current_period_end, p_at)),
     'free');
END;
$$;
