-- 020: the hot paths, measured step by step (issue 17, goal 1; BENCHMARKS.md, "sql/020"). Written to
-- run under `SET LOCAL search_path = pg_catalog`; every name is schema-qualified. Signatures, result
-- types, answers and error codes are unchanged; re-running this file regenerates the same functions.
--
-- What costs in these functions is mostly fixed per call: each plpgsql expression and each
-- statement is set up again in every transaction, and a plan node costs its start-up even when it
-- reads no row. So:
-- - verify_plugin_token: its common path (a live token used within the last minute) is one
--   RETURN QUERY of the lookup with the answer, and one test. Any other case takes the full path
--   (the lookup again, computing the status): the digest's shape is tested there, which is enough,
--   because a digest equal to a stored one is well formed (plugin_tokens_token_hash_check).
-- - plugin_auth_grants (the one entitlement rule, sql/016) is rewritten with the access rule of
--   public.subscription_grants_access inlined, GENERATED from its source in the catalog: no nested
--   PL/pgSQL call (with its search_path switch) per subscription row. subscription_grants_access
--   stays the single source of that rule and is still called elsewhere. (license_terms is not
--   inlined: its call runs only per license row, while an inlined subquery's plan nodes would
--   start up on every call; measured slower.)
-- - consume_usage, check_usage and plugin_auth_usage_limits are generated again, as sql/017 does,
--   from the rewritten rule, with the argument checks as one test on valid input.
--
-- This DO block supersedes the generator of sql/017 (which still runs first on a full setup and is
-- then overwritten here). A later file that redefines plugin_auth_grants or
-- subscription_grants_access must re-run this generator; test/hot-paths.test.ts fails when the copy
-- is stale.

-- Verify (017): the same checks and answers.
CREATE OR REPLACE FUNCTION public.verify_plugin_token(p_token_id UUID, p_token_hash TEXT)
RETURNS TABLE (status TEXT, user_id UUID, expires_at TIMESTAMP WITH TIME ZONE, device_name VARCHAR)
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
  v_last_used_at TIMESTAMP WITH TIME ZONE;
BEGIN
  -- The common path: a live token with this digest, last used less than a minute ago. A deleted
  -- user's tokens are gone with it (ON DELETE CASCADE): no second lookup.
  RETURN QUERY
  SELECT 'ok'::text, t.user_id, t.expires_at, t.device_name
    FROM public.plugin_tokens AS t
   WHERE t.id = p_token_id
     AND t.token_hash = p_token_hash
     AND t.revoked_at IS NULL
     AND t.expires_at > pg_catalog.now()
     AND t.last_used_at >= pg_catalog.now() - INTERVAL '1 minute';
  IF FOUND THEN
    RETURN;
  END IF;

  -- A NULL or malformed digest names no token: refused (invalid_digest), never compared further.
  -- Spelled with octet_length and a negated class: no bounded repetition, no multibyte ltrim.
  IF p_token_hash IS NULL OR pg_catalog.octet_length(p_token_hash) <> 64
      OR p_token_hash ~ '[^0-9a-f]' THEN
    RAISE EXCEPTION 'invalid_digest: p_token_hash must be the lowercase hex SHA-256 of the token, never the token itself'
      USING ERRCODE = 'PA029';
  END IF;
  SELECT CASE WHEN t.token_hash IS DISTINCT FROM p_token_hash THEN 'invalid'
              WHEN t.revoked_at IS NOT NULL THEN 'revoked'
              WHEN t.expires_at <= pg_catalog.now() THEN 'expired'
              ELSE 'ok' END,
         t.user_id, t.expires_at, t.device_name, t.last_used_at
    INTO status, user_id, expires_at, device_name, v_last_used_at
    FROM public.plugin_tokens AS t
   WHERE t.id = p_token_id;
  IF status IS DISTINCT FROM 'ok' THEN
    -- Not found (NULL), invalid, revoked or expired: the status alone.
    status := COALESCE(status, 'invalid');
    user_id := NULL;
    expires_at := NULL;
    device_name := NULL;
  ELSIF v_last_used_at IS NULL OR v_last_used_at < pg_catalog.now() - INTERVAL '1 minute' THEN
    -- SKIP LOCKED: when another verify of this token is already writing, this one need not.
    UPDATE public.plugin_tokens AS t
       SET last_used_at = pg_catalog.now()
     WHERE t.id = (SELECT c.id FROM public.plugin_tokens AS c
                    WHERE c.id = p_token_id
                      AND (c.last_used_at IS NULL OR c.last_used_at < pg_catalog.now() - INTERVAL '1 minute')
                      FOR UPDATE SKIP LOCKED);
  END IF;
  RETURN NEXT;
END;
$$;

DO $generate$
DECLARE
  v_src TEXT;
  v_new TEXT;
  v_def TEXT;
  v_callee TEXT;
  v_params TEXT[];
  v_body TEXT;
  v_call TEXT[];
  v_args TEXT[];
  v_expr TEXT;
  v_i INTEGER;
  v_columns TEXT;
  v_grants TEXT;
  v_action_bad TEXT;
  v_items_bad TEXT;
  v_raise TEXT;
  v_checks TEXT;
  v_consume_checks TEXT;
  v_limits TEXT;
  v_answer TEXT;
  v_fn TEXT;
BEGIN
  ---------------------------------------------------------------------------------------------
  -- 1. plugin_auth_grants with the access rule inlined: the rule's parameters are replaced by the
  --    call's arguments (whole identifiers only; the expression is put on one line, its source
  --    holding no string literal with runs of spaces). A rule of another shape stops setup.
  ---------------------------------------------------------------------------------------------
  SELECT p.prosrc, pg_catalog.pg_get_functiondef(p.oid) INTO v_src, v_def
    FROM pg_catalog.pg_proc AS p
   WHERE p.oid OPERATOR(pg_catalog.=) 'public.plugin_auth_grants(uuid, timestamp with time zone)'::pg_catalog.regprocedure;
  v_new := v_src;

  -- The access rule: `BEGIN RETURN <expression>; END;`, called in a WHERE clause.
  SELECT p.prosrc, p.proargnames INTO v_callee, v_params
    FROM pg_catalog.pg_proc AS p
   WHERE p.oid OPERATOR(pg_catalog.=) 'public.subscription_grants_access(character varying, timestamp with time zone, timestamp with time zone)'::pg_catalog.regprocedure;
  v_body := (pg_catalog.regexp_match(v_callee, '^\s*BEGIN\s+RETURN\s+(.*);\s*END;?\s*$'))[1];
  IF v_body IS NULL THEN
    RAISE EXCEPTION 'subscription_grants_access is no longer one RETURN: update the generator in sql/020_hot_paths_plain.sql';
  END IF;
  FOR v_call IN SELECT pg_catalog.regexp_matches(v_new, 'public\.subscription_grants_access\(([^()]*)\)', 'g') LOOP
    v_args := pg_catalog.regexp_split_to_array(pg_catalog.btrim(v_call[1]), '\s*,\s*');
    IF pg_catalog.cardinality(v_args) OPERATOR(pg_catalog.<>) pg_catalog.cardinality(v_params) THEN
      RAISE EXCEPTION 'plugin_auth_grants calls subscription_grants_access with % arguments: update the generator in sql/020_hot_paths_plain.sql',
        pg_catalog.cardinality(v_args);
    END IF;
    v_expr := v_body;
    FOR v_i IN 1 .. pg_catalog.cardinality(v_params) LOOP
      v_expr := pg_catalog.regexp_replace(v_expr, '\m' || v_params[v_i] || '\M', v_args[v_i], 'g');
    END LOOP;
    v_new := pg_catalog.replace(v_new, 'public.subscription_grants_access(' || v_call[1] || ')',
                                '(' || pg_catalog.btrim(pg_catalog.regexp_replace(v_expr, '\s+', ' ', 'g')) || ')');
  END LOOP;

  IF v_new OPERATOR(pg_catalog.<>) v_src THEN
    EXECUTE pg_catalog.replace(v_def, v_src, v_new);
  END IF;

  ---------------------------------------------------------------------------------------------
  -- 2. consume_usage, check_usage and plugin_auth_usage_limits, as sql/017 generates them, from the
  --    rule's query as plugin_auth_grants now states it (`BEGIN RETURN QUERY <query>; END;`), with
  --    the argument checks as one test.
  ---------------------------------------------------------------------------------------------
  SELECT p.prosrc,
         (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.n), ', ' ORDER BY a.o)
            FROM ROWS FROM (pg_catalog.unnest(p.proargnames), pg_catalog.unnest(p.proargmodes::text[])) WITH ORDINALITY AS a(n, m, o)
           WHERE a.m OPERATOR(pg_catalog.=) 't')
    INTO v_src, v_columns
    FROM pg_catalog.pg_proc AS p
   WHERE p.oid OPERATOR(pg_catalog.=) 'public.plugin_auth_grants(uuid, timestamp with time zone)'::pg_catalog.regprocedure;
  v_grants := (pg_catalog.regexp_match(v_src, '^\s*BEGIN\s+RETURN\s+QUERY\s+(.*);\s*END;?\s*$'))[1];
  IF v_grants IS NULL OR v_columns IS NULL THEN
    RAISE EXCEPTION 'plugin_auth_grants is no longer one RETURN QUERY: update the generator in sql/020_hot_paths_plain.sql';
  END IF;

  -- The argument checks. Valid input passes one test (each plpgsql expression has a cost of its
  -- own in every transaction); when it fails, the checks in their order say which argument.
  -- The action rule '^[A-Za-z0-9_.:-]{1,64}$' and the key rule are spelled without bounded
  -- repetition or multibyte ltrim: a negated class and octet_length (ASCII only: bytes = characters).
  v_action_bad := $t$p_action IS NULL OR pg_catalog.octet_length(p_action) NOT BETWEEN 1 AND 64
      OR p_action ~ '[^A-Za-z0-9_.:-]'$t$;
  v_items_bad := $t$p_items IS NULL OR p_items < 1 OR p_items > 10000$t$;
  v_raise := pg_catalog.replace(pg_catalog.replace($t$
    IF @action_bad@ THEN
      RAISE EXCEPTION 'invalid_action: action must be 1 to 64 characters of A-Z a-z 0-9 _ . : -'
        USING ERRCODE = 'PA003';
    END IF;
    IF @items_bad@ THEN
      RAISE EXCEPTION 'invalid_items: items must be an integer from 1 to 10000' USING ERRCODE = 'PA002';
    END IF;$t$, '@action_bad@', v_action_bad), '@items_bad@', v_items_bad);
  -- check_usage: action and items.
  v_checks := pg_catalog.replace(pg_catalog.replace(pg_catalog.replace($t$
  IF @action_bad@ OR @items_bad@ THEN@raise@
  END IF;$t$, '@action_bad@', v_action_bad), '@items_bad@', v_items_bad), '@raise@', v_raise);
  -- consume_usage: action, items, idempotency key, metadata.
  v_consume_checks := pg_catalog.replace(pg_catalog.replace(pg_catalog.replace($t$
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
  END IF;$t$, '@action_bad@', v_action_bad), '@items_bad@', v_items_bad), '@raise@', v_raise);

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
$fn$$t$, '@locals@', v_fn), '@consume_checks@', v_consume_checks), '@limits@', v_limits), '@answer@', v_answer);

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
