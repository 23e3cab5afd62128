-- 006: plan-aware usage metering: consume_usage, check_usage, refund_usage, usage_summary.
-- One call = one round trip = one transaction. These functions are the implementation; the
-- TypeScript API (src/usage.ts) only validates JavaScript types and calls them, so supabase.rpc
-- callers get exactly the same behaviour.
--
-- Rules (PRODUCT.md section 3):
-- - Plan: read at call time, by the rule of public.effective_plan (sql/003): the subscribed plan
--   while public.subscription_grants_access says so, else free. It is written out as a join rather
--   than a call of effective_plan because a SQL function with SET search_path is never inlined and
--   is parsed and planned again on every call (measured ~120 us a call, more than the rest of consume);
--   the status rule itself stays in subscription_grants_access, and test/usage.test.ts checks that
--   both agree for every status. The plans' limits govern the action 'resize'; any other action
--   is counted per UTC day and logged, never limited.
-- - One call counts 1, whatever p_items (the batch size, capped by limits.batchSize).
-- - isDaily: used = today's counter (UTC); otherwise the sum of all the user's days for the action.
-- - Allowed only if used + 1 <= limit. A denied call changes no counter and is logged with its
--   reason; limit_reached wins over batch_too_large (a smaller batch would not help).
-- - Idempotency key: the first answer is stored in plugin_usage and returned again (replayed).
--
-- Exactness under concurrency, without EXCEPTION blocks (a subtransaction each):
-- - one conditional upsert of today's counter (INSERT ... ON CONFLICT DO UPDATE ... WHERE
--   earlier days + count + 1 <= limit); its row lock serializes callers and the WHERE re-checks
--   the limit against the latest committed count. Earlier days are 0 on daily plans.
-- - lifetime plans also take a transaction advisory lock per (user, action) before summing the
--   earlier days (a call begun before UTC midnight may still be adding to yesterday's row).
-- - idempotency keys: a transaction advisory lock per (user, key) before looking for the first
--   answer, so concurrent calls with one key queue and all but the first replay.
-- Advisory lock namespaces (first int of the two-int form): 7301 = idempotency key, 7302 =
-- lifetime counter. A hash collision only makes two unrelated callers queue, never miscount.
-- Under READ COMMITTED (the default, and what rpc uses) each statement after a lock sees what the
-- previous holder committed.

-- The limits that apply to this user and action now: the effective plan's (by the rule of
-- subscription_grants_access, sql/003) for 'resize', none for any other action. -1 = no limit.
-- Shared by consume_usage and check_usage, so both always read the same plan. One statement for
-- "does the user exist" and "which plan": the error path tells them apart. PL/pgSQL keeps its
-- plan for the session (written as a join rather than a call of effective_plan: one lookup less).
CREATE OR REPLACE FUNCTION public.plugin_auth_usage_limits(
  p_user_id UUID,
  p_action VARCHAR,
  OUT plan_slug TEXT,
  OUT usage_limit INTEGER,
  OUT batch_limit INTEGER,
  OUT is_daily BOOLEAN
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_limits JSONB;
BEGIN
  SELECT p.plan_slug, p.limits INTO plan_slug, v_limits
    FROM public.users AS w
    LEFT JOIN public.user_subscriptions AS s ON s.user_id = w.id
    LEFT JOIN public.subscription_plans AS sp
      ON sp.id = s.plan_id AND public.subscription_grants_access(s.status, s.current_period_end, pg_catalog.now())
    JOIN public.subscription_plans AS p ON p.plan_slug = COALESCE(sp.plan_slug, 'free')
   WHERE w.id = p_user_id;
  IF NOT FOUND THEN
    IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = p_user_id) THEN
      RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
    END IF;
    RAISE EXCEPTION 'no_plan: the user has no effective plan and the free plan is missing; run setup'
      USING ERRCODE = 'PA007';
  END IF;
  IF p_action = 'resize' THEN
    usage_limit := (v_limits ->> 'resizesPerDay')::integer;
    batch_limit := (v_limits ->> 'batchSize')::integer;
    is_daily := (v_limits ->> 'isDaily')::boolean;
  ELSE
    usage_limit := -1;
    batch_limit := -1;
    is_daily := true;
  END IF;
END;
$$;

-- Consumes one operation if the user's plan allows it, and logs the call either way.
CREATE OR REPLACE FUNCTION public.consume_usage(
  p_user_id UUID,
  p_action VARCHAR,
  p_items INTEGER DEFAULT 1,
  p_idempotency_key TEXT DEFAULT NULL,
  p_metadata JSONB DEFAULT NULL
) RETURNS TABLE (
  allowed BOOLEAN,
  reason TEXT,
  plan_slug TEXT,
  used INTEGER,
  usage_limit INTEGER,
  remaining INTEGER,
  batch_limit INTEGER,
  resets_at TIMESTAMP WITH TIME ZONE,
  replayed BOOLEAN
)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
  v_today DATE := (pg_catalog.now() AT TIME ZONE 'UTC')::date;
  v_first public.plugin_usage%ROWTYPE;
  v_plan_slug TEXT;
  v_limit INTEGER;   -- -1 = unlimited
  v_batch INTEGER;   -- -1 = unlimited
  v_daily BOOLEAN;
  v_past INTEGER;
  v_used INTEGER;
  v_reason TEXT;
BEGIN
  IF p_action IS NULL OR p_action !~ '^[A-Za-z0-9_.:-]{1,64}$' THEN
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
  IF p_metadata IS NOT NULL AND (pg_catalog.jsonb_typeof(p_metadata) <> 'object'
      OR pg_catalog.octet_length(p_metadata::text) > 16384) THEN
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

  SELECT l.plan_slug, l.usage_limit, l.batch_limit, l.is_daily INTO v_plan_slug, v_limit, v_batch, v_daily
    FROM public.plugin_auth_usage_limits(p_user_id, p_action) AS l;

  -- v_past: what other days used (lifetime plans; 0 for daily ones). Both kinds then go through
  -- the same conditional upsert of today's row, so calls in flight while the plan switches between
  -- daily and lifetime still serialize on that row. Lifetime callers first take a lock per (user,
  -- action): a call that began before UTC midnight may still be adding to yesterday's row.
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
    -- Also the case limit = 0: the insert arm of the upsert below ignores its WHERE, so it must
    -- only be reached when a first row of count 1 is within the limit.
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
$$;

-- What consume_usage would answer now (used and remaining as after that call), writing nothing.
-- It takes no lock: between check and consume another request may take the last operation, so
-- only consume's answer is binding.
CREATE OR REPLACE FUNCTION public.check_usage(
  p_user_id UUID,
  p_action VARCHAR,
  p_items INTEGER DEFAULT 1
) RETURNS TABLE (
  allowed BOOLEAN,
  reason TEXT,
  plan_slug TEXT,
  used INTEGER,
  usage_limit INTEGER,
  remaining INTEGER,
  batch_limit INTEGER,
  resets_at TIMESTAMP WITH TIME ZONE,
  replayed BOOLEAN
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
  v_today DATE := (pg_catalog.now() AT TIME ZONE 'UTC')::date;
  v_plan_slug TEXT;
  v_limit INTEGER;
  v_batch INTEGER;
  v_daily BOOLEAN;
  v_used INTEGER;
  v_reason TEXT;
BEGIN
  IF p_action IS NULL OR p_action !~ '^[A-Za-z0-9_.:-]{1,64}$' THEN
    RAISE EXCEPTION 'invalid_action: action must be 1 to 64 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA003';
  END IF;
  IF p_items IS NULL OR p_items < 1 OR p_items > 10000 THEN
    RAISE EXCEPTION 'invalid_items: items must be an integer from 1 to 10000' USING ERRCODE = 'PA002';
  END IF;

  SELECT l.plan_slug, l.usage_limit, l.batch_limit, l.is_daily INTO v_plan_slug, v_limit, v_batch, v_daily
    FROM public.plugin_auth_usage_limits(p_user_id, p_action) AS l;

  SELECT COALESCE(sum(d.count), 0)::integer INTO v_used FROM public.daily_usage_summary AS d
   WHERE d.user_id = p_user_id AND d.action = p_action AND (NOT v_daily OR d.usage_date = v_today);

  IF v_limit <> -1 AND v_used + 1 > v_limit THEN
    v_reason := 'limit_reached';
  ELSIF v_batch <> -1 AND p_items > v_batch THEN
    v_reason := 'batch_too_large';
  ELSE
    v_reason := 'ok';
    v_used := v_used + 1;
  END IF;

  allowed := v_reason = 'ok';
  reason := v_reason;
  plan_slug := v_plan_slug;
  used := v_used;
  usage_limit := NULLIF(v_limit, -1);
  remaining := CASE WHEN v_limit <> -1 THEN GREATEST(v_limit - v_used, 0) END;
  batch_limit := NULLIF(v_batch, -1);
  resets_at := CASE WHEN v_daily THEN (v_today + 1)::timestamp AT TIME ZONE 'UTC' END;
  replayed := false;
  RETURN NEXT;
END;
$$;

-- Gives back the operation counted by the call with this idempotency key: true when it did,
-- false when there is nothing to give back (already refunded, or that call was denied).
-- The counter of the UTC day the call was counted on goes down by one, never below zero.
CREATE OR REPLACE FUNCTION public.refund_usage(
  p_user_id UUID,
  p_idempotency_key TEXT
) RETURNS BOOLEAN
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_action VARCHAR;
  v_date DATE;
BEGIN
  IF p_idempotency_key IS NULL OR pg_catalog.length(p_idempotency_key) NOT BETWEEN 1 AND 255
      OR p_idempotency_key ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'invalid_idempotency_key: the key must be 1 to 255 characters without control characters'
      USING ERRCODE = 'PA004';
  END IF;

  -- Same lock as consume_usage: a refund racing the consume it refunds waits for it to commit.
  PERFORM pg_catalog.pg_advisory_xact_lock(7301, pg_catalog.hashtext(p_user_id::text || ':' || p_idempotency_key));

  -- The row lock of this UPDATE makes a concurrent second refund find refunded_at set: once only.
  UPDATE public.plugin_usage AS u SET refunded_at = pg_catalog.now()
   WHERE u.user_id = p_user_id AND u.idempotency_key = p_idempotency_key
     AND u.allowed AND u.refunded_at IS NULL
  RETURNING u.action, (u.created_at AT TIME ZONE 'UTC')::date INTO v_action, v_date;

  IF NOT FOUND THEN
    IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = p_user_id) THEN
      RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.plugin_usage AS u
                    WHERE u.user_id = p_user_id AND u.idempotency_key = p_idempotency_key) THEN
      RAISE EXCEPTION 'unknown_idempotency_key: no usage of this user was recorded with this key'
        USING ERRCODE = 'PA008';
    END IF;
    RETURN false;
  END IF;

  UPDATE public.daily_usage_summary AS d
     SET count = GREATEST(d.count - 1, 0), updated_at = pg_catalog.now()
   WHERE d.user_id = p_user_id AND d.action = v_action AND d.usage_date = v_date;
  RETURN true;
END;
$$;

-- Per UTC day and action in [p_from, p_to] (default: the 30 days up to today): the counter
-- (allowed minus refunded) and, from the log, how many calls were allowed, denied and refunded.
-- Days without any row are left out.
CREATE OR REPLACE FUNCTION public.usage_summary(
  p_user_id UUID,
  p_from DATE DEFAULT NULL,
  p_to DATE DEFAULT NULL
) RETURNS TABLE (
  usage_date DATE,
  action VARCHAR,
  used INTEGER,
  allowed INTEGER,
  denied INTEGER,
  refunded INTEGER
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
  v_to DATE := COALESCE(p_to, (pg_catalog.now() AT TIME ZONE 'UTC')::date);
  v_from DATE := COALESCE(p_from, v_to - 29);
BEGIN
  IF v_from > v_to OR v_from = '-infinity'::date OR v_to = 'infinity'::date THEN
    RAISE EXCEPTION 'invalid_date: from must be a date on or before to' USING ERRCODE = 'PA006';
  END IF;
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;

  RETURN QUERY
  WITH counters AS (
    SELECT d.usage_date AS day, d.action AS act, d.count AS n
      FROM public.daily_usage_summary AS d
     WHERE d.user_id = p_user_id AND d.usage_date BETWEEN v_from AND v_to
  ), calls AS (
    SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, u.action AS act,
           count(*) FILTER (WHERE u.allowed)::integer AS n_allowed,
           count(*) FILTER (WHERE NOT u.allowed)::integer AS n_denied,
           count(*) FILTER (WHERE u.refunded_at IS NOT NULL)::integer AS n_refunded
      FROM public.plugin_usage AS u
     WHERE u.user_id = p_user_id
       AND u.created_at >= v_from::timestamp AT TIME ZONE 'UTC'
       AND u.created_at < (v_to + 1)::timestamp AT TIME ZONE 'UTC'
     GROUP BY 1, 2
  )
  SELECT COALESCE(c.day, l.day), COALESCE(c.act, l.act)::varchar, COALESCE(c.n, 0),
         COALESCE(l.n_allowed, 0), COALESCE(l.n_denied, 0), COALESCE(l.n_refunded, 0)
    FROM counters AS c
    FULL JOIN calls AS l ON l.day = c.day AND l.act = c.act
   ORDER BY 1, 2;
END;
$$;
