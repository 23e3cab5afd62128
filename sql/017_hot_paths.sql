-- 017: the hot paths (issue 17) and one copy of each usage mechanism (issue 12, SQL bullet).
-- Written to run under `SET LOCAL search_path = pg_catalog`; every name is schema-qualified.
-- Signatures and result types are unchanged; re-running this file regenerates the same functions.
--
-- - public.plugin_auth_require_user: the one unknown_user check (PA001), called by the usage
--   functions only after their main statement found nothing (off the hot path).
-- - consume_usage, check_usage and plugin_auth_usage_limits are GENERATED below from one template
--   each, sharing the same text for the argument checks, the limits lookup and the answer assembly.
--   The limits lookup embeds the query of public.plugin_auth_grants (the one entitlement rule,
--   sql/015) read from the catalog when this file runs: whatever branches plugin_auth_grants has
--   then (sql/016 adds license and seat sources), consume and check apply exactly them, in one
--   statement, without a nested PL/pgSQL set-returning call per consume (measured: BENCHMARKS.md).
--   A later file that redefines plugin_auth_grants must re-run the generator: it is the DO block at
--   the end of this file; test/hot-paths.test.ts fails when the copy is stale.

-- The one unknown_user check. Raises PA001 when p_user_id names no user; returns otherwise.
CREATE OR REPLACE FUNCTION public.plugin_auth_require_user(p_user_id UUID)
RETURNS VOID
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;
END;
$$;

-- Verify (013): the same checks and answers. The digest test is spelled with length and ltrim
-- instead of the regular expression '^[0-9a-f]{64}$', whose bounded repetition cost ~35 us a call
-- (measured in a loop of calls on one connection: BENCHMARKS.md), the largest part of verify.
CREATE OR REPLACE FUNCTION public.verify_plugin_token(p_token_id UUID, p_token_hash TEXT)
RETURNS TABLE (status TEXT, user_id UUID, expires_at TIMESTAMP WITH TIME ZONE, device_name VARCHAR)
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
  v_token RECORD;
BEGIN
  -- A NULL or malformed digest names no token: refused like everywhere else (invalid_digest), never
  -- compared. Inline rather than a call of plugin_auth_check_digest: this is the hot path.
  IF p_token_hash IS NULL OR pg_catalog.length(p_token_hash) <> 64
      OR pg_catalog.ltrim(p_token_hash, '0123456789abcdef') <> '' THEN
    RAISE EXCEPTION 'invalid_digest: p_token_hash must be the lowercase hex SHA-256 of the token, never the token itself'
      USING ERRCODE = 'PA029';
  END IF;
  -- The common path is this one primary-key lookup and nothing else. A deleted user's tokens are
  -- gone with it (ON DELETE CASCADE), so "the user still exists" needs no second lookup.
  SELECT t.user_id, t.token_hash, t.expires_at, t.device_name, t.revoked_at, t.last_used_at
    INTO v_token
    FROM public.plugin_tokens AS t
   WHERE t.id = p_token_id;
  IF NOT FOUND OR v_token.token_hash IS DISTINCT FROM p_token_hash THEN
    status := 'invalid';
  ELSIF v_token.revoked_at IS NOT NULL THEN
    status := 'revoked';
  ELSIF v_token.expires_at <= pg_catalog.now() THEN
    status := 'expired';
  ELSE
    status := 'ok';
    user_id := v_token.user_id;
    expires_at := v_token.expires_at;
    device_name := v_token.device_name;
    IF v_token.last_used_at IS NULL OR v_token.last_used_at < pg_catalog.now() - INTERVAL '1 minute' THEN
      -- SKIP LOCKED: when another verify of this token is already writing, this one need not.
      UPDATE public.plugin_tokens AS t
         SET last_used_at = pg_catalog.now()
       WHERE t.id = (SELECT c.id FROM public.plugin_tokens AS c
                      WHERE c.id = p_token_id
                        AND (c.last_used_at IS NULL OR c.last_used_at < pg_catalog.now() - INTERVAL '1 minute')
                        FOR UPDATE SKIP LOCKED);
    END IF;
  END IF;
  RETURN NEXT;
END;
$$;

DO $generate$
DECLARE
  v_src TEXT;
  v_columns TEXT;
  v_grants TEXT;
  v_checks TEXT;
  v_limits TEXT;
  v_answer TEXT;
  v_fn TEXT;
BEGIN
  -- The rule's query, as plugin_auth_grants states it: `BEGIN RETURN QUERY <query>; END;`.
  SELECT p.prosrc,
         (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.n), ', ' ORDER BY a.o)
            FROM ROWS FROM (pg_catalog.unnest(p.proargnames), pg_catalog.unnest(p.proargmodes::text[])) WITH ORDINALITY AS a(n, m, o)
           WHERE a.m OPERATOR(pg_catalog.=) 't')
    INTO v_src, v_columns
    FROM pg_catalog.pg_proc AS p
   WHERE p.oid OPERATOR(pg_catalog.=) 'public.plugin_auth_grants(uuid, timestamp with time zone)'::pg_catalog.regprocedure;
  v_grants := (pg_catalog.regexp_match(v_src, '^\s*BEGIN\s+RETURN\s+QUERY\s+(.*);\s*END;?\s*$'))[1];
  IF v_grants IS NULL OR v_columns IS NULL THEN
    RAISE EXCEPTION 'plugin_auth_grants is no longer one RETURN QUERY: update the generator in sql/017_hot_paths.sql';
  END IF;

  -- Shared by consume_usage and check_usage: the argument checks.
  v_checks := $t$
  -- The rule of '^[A-Za-z0-9_.:-]{1,64}$', spelled with ltrim: the regular expression's bounded
  -- repetition cost ~15 us a call here, more than the rest of the checks together.
  IF p_action IS NULL OR pg_catalog.length(p_action) NOT BETWEEN 1 AND 64
      OR pg_catalog.ltrim(p_action, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-') <> '' THEN
    RAISE EXCEPTION 'invalid_action: action must be 1 to 64 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA003';
  END IF;
  IF p_items IS NULL OR p_items < 1 OR p_items > 10000 THEN
    RAISE EXCEPTION 'invalid_items: items must be an integer from 1 to 10000' USING ERRCODE = 'PA002';
  END IF;$t$;

  -- Shared by consume_usage, check_usage and plugin_auth_usage_limits: the user's effective plan
  -- now (the best grant of plugin_auth_grants, else free) and the limits that apply to this action:
  -- the plan's for 'resize', none for any other action; -1 = no limit. One statement for "does the
  -- user exist" and "which plan"; the error path tells them apart.
  v_limits := pg_catalog.replace(pg_catalog.replace($t$
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
  IF p_action = 'resize' THEN
    v_limit := (v_limits ->> 'resizesPerDay')::integer;
    v_batch := (v_limits ->> 'batchSize')::integer;
    v_daily := (v_limits ->> 'isDaily')::boolean;
  ELSE
    v_limit := -1;
    v_batch := -1;
    v_daily := true;
  END IF;$t$, '@grants@', v_grants), '@columns@', v_columns);

  -- Shared by consume_usage and check_usage: the answer row.
  v_answer := $t$
  allowed := v_reason = 'ok';
  reason := v_reason;
  plan_slug := v_plan_slug;
  used := v_used;
  usage_limit := NULLIF(v_limit, -1);
  remaining := CASE WHEN v_limit <> -1 THEN GREATEST(v_limit - v_used, 0) END;
  batch_limit := NULLIF(v_batch, -1);
  resets_at := CASE WHEN v_daily THEN (v_today + 1)::timestamp AT TIME ZONE 'UTC' END;
  replayed := false;$t$;

  -- The locals every generated body declares (p_at: the instant plugin_auth_grants is asked about).
  v_fn := $t$
  p_at TIMESTAMP WITH TIME ZONE := pg_catalog.now();
  v_today DATE := (p_at AT TIME ZONE 'UTC')::date;
  v_limits JSONB;
  v_plan_slug TEXT;
  v_limit INTEGER;   -- -1 = unlimited
  v_batch INTEGER;   -- -1 = unlimited
  v_daily BOOLEAN;$t$;

  EXECUTE pg_catalog.replace(pg_catalog.replace($t$
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
$fn$$t$, '@locals@', v_fn), '@limits@', v_limits);

  -- Consumes one operation if the user's plan allows it, and logs the call either way (rules: sql/006).
  EXECUTE pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace($t$
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
BEGIN@checks@
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
@limits@

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
$fn$$t$, '@locals@', v_fn), '@checks@', v_checks), '@limits@', v_limits), '@answer@', v_answer);

  -- What consume_usage would answer now (used and remaining as after that call), writing nothing.
  EXECUTE pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace($t$
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
$fn$$t$, '@locals@', v_fn), '@checks@', v_checks), '@limits@', v_limits), '@answer@', v_answer);
END;
$generate$;
