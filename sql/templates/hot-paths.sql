-- Templates of the generated hot-path functions: `npm run generate` renders them into
-- sql/functions/generated/hot-paths.sql (scripts/sql-generate.ts); setup never reads this file.
--
-- Why generated: measured (BENCHMARKS.md, "sql/020"), a nested PL/pgSQL call per subscription row
-- and a call of plugin_auth_grants per consume cost more than the work they do. So:
-- 1. plugin_auth_grants (the one entitlement rule) is rendered with the access rule of
--    public.subscription_grants_access (sql/functions/grants.sql, its single source) inlined at
--    each call: the rule's parameters replaced by the call's arguments, on one line.
-- 2. plugin_auth_usage_limits, consume_usage and check_usage embed the rendered query of
--    plugin_auth_grants (@grants@, its result columns @columns@) and share the snippets below.
--
-- Layout: each section starts with a line `-- @@ <name>` and runs to the next one; its text is
-- taken as is (no comments between sections: they would become part of the text). @name@ inside a
-- section is replaced by that section's (rendered) text. To change consume_usage: edit its section
-- here, run `npm run generate`, then setup; test/repo.generated.test.ts fails while the output is stale.
-- consume_usage's common case (no idempotency key, a daily or unlimited plan, a valid effective
-- plan row) is also sent as one plain statement by the TypeScript API: src/usage/common-consume.ts.
-- A change to what consume answers or writes there is a change to both;
-- test/usage.common-path.test.ts compares them call by call.
-- @@ plugin_auth_grants
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
$$
-- @@ action_bad
p_action IS NULL OR pg_catalog.octet_length(p_action) NOT BETWEEN 1 AND 64
      OR p_action ~ '[^A-Za-z0-9_.:-]'
-- @@ items_bad
p_items IS NULL OR p_items < 1 OR p_items > 10000
-- @@ raise

    IF @action_bad@ THEN
      RAISE EXCEPTION 'invalid_action: action must be 1 to 64 characters of A-Z a-z 0-9 _ . : -'
        USING ERRCODE = 'PA003';
    END IF;
    IF @items_bad@ THEN
      RAISE EXCEPTION 'invalid_items: items must be an integer from 1 to 10000' USING ERRCODE = 'PA002';
    END IF;
-- @@ checks

  IF @action_bad@ OR @items_bad@ THEN@raise@
  END IF;
-- @@ consume_checks

  IF @action_bad@ OR @items_bad@
      OR (p_idempotency_key IS NOT NULL AND (pg_catalog.length(p_idempotency_key) NOT BETWEEN 1 AND 255
          OR p_idempotency_key ~ '[[:cntrl:]]'))
      OR (p_metadata IS NOT NULL AND (pg_catalog.jsonb_typeof(p_metadata) <> 'object'
          OR pg_catalog.octet_length(p_metadata::text) > 16384)) THEN@raise@
    IF p_idempotency_key IS NOT NULL AND (pg_catalog.length(p_idempotency_key) NOT BETWEEN 1 AND 255
        OR p_idempotency_key ~ '[[:cntrl:]]') THEN
      RAISE EXCEPTION 'invalid_idempotency_key: the key must be 1 to 255 characters without control characters'
        USING ERRCODE = 'PA004';
    END IF;
    RAISE EXCEPTION 'invalid_metadata: metadata must be a JSON object of at most 16 kB' USING ERRCODE = 'PA005';
  END IF;
-- @@ plan_rule

    SELECT p.plan_slug, p.limits INTO v_plan_slug, v_limits
      FROM public.users AS w
      JOIN public.subscription_plans AS p ON p.id = COALESCE(
        (SELECT g.plan_id FROM (@grants@) AS g(@columns@) WHERE g.rank = 1),
        (SELECT f.id FROM public.subscription_plans AS f WHERE f.plan_slug = 'free'))
     WHERE w.id = p_user_id;
    IF NOT FOUND THEN
      PERFORM public.plugin_auth_require_user(p_user_id);
      RAISE EXCEPTION 'no_plan: the user has no effective plan and the free plan is missing; run setup'
        USING ERRCODE = 'PA007';
    END IF;
-- @@ plan_row

  -- The effective plan row (sql/functions/effective_plan.sql), while valid: written by triggers
  -- in the transaction of every change to a source, so it is the rule's answer until valid_until.
  SELECT p.plan_slug, p.limits INTO v_plan_slug, v_limits
    FROM public.user_effective_plans AS e
    JOIN public.subscription_plans AS p ON p.id = e.plan_id
   WHERE e.user_id = p_user_id AND (e.valid_until IS NULL OR e.valid_until > p_at);
-- @@ plan_limits

  IF p_action = 'resize' THEN
    v_limit := (v_limits ->> 'resizesPerDay')::integer;
    v_batch := (v_limits ->> 'batchSize')::integer;
    v_daily := (v_limits ->> 'isDaily')::boolean;
  ELSE
    v_limit := -1;
    v_batch := -1;
    v_daily := true;
  END IF;
-- @@ limits
@plan_row@
  IF NOT FOUND THEN
    -- Missing or lapsed: the full rule (a read-only function writes nothing).@plan_rule@
  END IF;@plan_limits@
-- @@ consume_limits
@plan_row@
  IF NOT FOUND THEN
    -- Missing or lapsed: rebuild it when that is safe (read committed, so the rebuild reads what
    -- is committed once the row is locked; the terms lock free; the row not locked by a writer),
    -- then the full rule if there is still no row (an unknown user, no free plan).
    IF pg_catalog.current_setting('transaction_isolation') = 'read committed'
       AND pg_catalog.pg_try_advisory_xact_lock_shared(7331, 0)
       AND public.plugin_auth_effective_plan_write(p_user_id, false) THEN@plan_row@
    END IF;
    IF NOT FOUND THEN@plan_rule@
    END IF;
  END IF;@plan_limits@
-- @@ answer

  allowed := v_reason = 'ok';
  reason := v_reason;
  plan_slug := v_plan_slug;
  used := v_used;
  usage_limit := NULLIF(v_limit, -1);
  remaining := CASE WHEN v_limit <> -1 THEN GREATEST(v_limit - v_used, 0) END;
  batch_limit := NULLIF(v_batch, -1);
  resets_at := CASE WHEN v_daily THEN (v_today + 1)::timestamp AT TIME ZONE 'UTC' END;
  replayed := false;
-- @@ locals

  p_at TIMESTAMP WITH TIME ZONE := pg_catalog.now();
  v_today DATE := (p_at AT TIME ZONE 'UTC')::date;
  v_limits JSONB;
  v_plan_slug TEXT;
  v_limit INTEGER;   -- -1 = unlimited
  v_batch INTEGER;   -- -1 = unlimited
  v_daily BOOLEAN;
-- @@ plugin_auth_usage_limits

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
AS $fn$
#variable_conflict use_column
DECLARE@locals@
BEGIN@limits@
  plan_slug := v_plan_slug;
  usage_limit := v_limit;
  batch_limit := v_batch;
  is_daily := v_daily;
END;
$fn$
-- @@ consume_usage

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
AS $fn$
#variable_conflict use_column
DECLARE@locals@
  v_first public.plugin_usage%ROWTYPE;
  v_past INTEGER;
  v_used INTEGER;
  v_reason TEXT;
BEGIN@consume_checks@

  IF p_idempotency_key IS NOT NULL THEN
    PERFORM pg_catalog.pg_advisory_xact_lock(7301, pg_catalog.hashtext(p_user_id::text || ':' || p_idempotency_key));
    SELECT * INTO v_first FROM public.plugin_usage AS u
     WHERE u.user_id = p_user_id AND u.idempotency_key = p_idempotency_key;
    IF FOUND THEN
      IF v_first.action <> p_action OR v_first.items <> p_items THEN
        RAISE EXCEPTION 'idempotency_key_reused: this key was first used for another action or batch size; use a new key per operation'
          USING ERRCODE = 'PA009';
      END IF;
      -- A replay answers a retry of the same operation, nothing more: never once the operation
      -- was given back (the work failed, a new attempt is a new operation), never after the retry
      -- window (10 minutes, docs/usage.md). Otherwise one key would grant work without counting it.
      IF v_first.refunded_at IS NOT NULL THEN
        RAISE EXCEPTION 'idempotency_key_reused: the operation of this key was refunded; a new attempt needs a new key'
          USING ERRCODE = 'PA009';
      END IF;
      IF v_first.created_at < p_at - INTERVAL '10 minutes' THEN
        RAISE EXCEPTION 'idempotency_key_reused: this key was first used over 10 minutes ago (the retry window); use a new key per operation'
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
@consume_limits@

  -- v_past: what other days used (lifetime plans; 0 for daily ones); see sql/006.
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
    -- Also the case limit = 0: the insert arm of the upsert below ignores its WHERE.
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
@answer@

  -- The log row keeps the whole answer: a replay of this key returns it unchanged.
  INSERT INTO public.plugin_usage (user_id, action, items, allowed, reason, plan_slug, idempotency_key,
                                   metadata, used, usage_limit, batch_limit, resets_at)
  VALUES (p_user_id, p_action, p_items, v_reason = 'ok', v_reason, v_plan_slug, p_idempotency_key,
          p_metadata, v_used, NULLIF(v_limit, -1), NULLIF(v_batch, -1),
          CASE WHEN v_daily THEN (v_today + 1)::timestamp AT TIME ZONE 'UTC' END);
  RETURN NEXT;
END;
$fn$
-- @@ check_usage

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
AS $fn$
#variable_conflict use_column
DECLARE@locals@
  v_used INTEGER;
  v_reason TEXT;
BEGIN@checks@
@limits@

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
@answer@
  RETURN NEXT;
END;
$fn$
