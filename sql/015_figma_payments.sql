-- 015: Figma's own checkout as a plan source, a Figma-verified identity, and the one entitlement
-- rule over every source.
--
-- Figma has no payment webhooks: the Payments REST API (GET /v1/payments) is the only server-side
-- truth, called by the library (src/billing/figma.ts), never by SQL. What Figma answered is stored
-- here; consume_usage only reads it.
--
-- The entitlement rule (docs/figma-payments.md, "Source precedence"): plugin_auth_grants(user, at)
-- lists every grant in force, one UNION ALL branch per source and one index probe per branch, best
-- first; effective_plan, plugin_auth_usage_limits (so consume_usage and check_usage) and
-- subscriptions.effectivePlan all take its first row, else free. A new source (license keys, team
-- seats) is one more branch with its own precedence number.
--
-- Runs with every name schema-qualified (also under SET LOCAL search_path = pg_catalog).
-- SQLSTATEs PA060-PA069:
--   PA060 invalid_figma_user_id   PA061 invalid_figma_link     PA062 invalid_trial_days
--   PA063 figma_user_linked       PA064 invalid_grace          PA065 invalid_figma_answer
-- Advisory lock namespaces (two-int form): 7310 = one payment token's check (single flight),
-- 7311 = one Figma user's sign-in (exactly one user per Figma id).

-- 1. What Figma said about each verified Figma user. One row per Figma user id (attested by the
-- Payments API, unlike figma.currentUser.id sent by a plugin). first_seen_at is written once, so a
-- server-side trial counted from it survives reinstalls.
CREATE TABLE IF NOT EXISTS public.figma_users (
  figma_user_id VARCHAR(255) PRIMARY KEY,
  -- The user of this package the Figma account belongs to (signIn, or link at the web login).
  user_id UUID REFERENCES public.users(id) ON DELETE CASCADE,
  -- PAID, TRIAL, UNPAID, or UNKNOWN for anything else Figma may answer (it grants nothing).
  payment_status VARCHAR(16) NOT NULL,
  -- Figma's own word when it was not one of the three known statuses (e.g. a future value).
  figma_payment_status VARCHAR(64),
  -- Kept by Figma after a refund or a subscription end: it proves nothing about access.
  date_of_purchase TIMESTAMP WITH TIME ZONE,
  resource_id VARCHAR(255),
  resource_type VARCHAR(32),
  -- When Figma gave this answer, and until when it grants its plan (checked_at + graceSeconds):
  -- a plugin that stops presenting fresh payment tokens loses a paid plan after that.
  checked_at TIMESTAMP WITH TIME ZONE NOT NULL,
  grant_until TIMESTAMP WITH TIME ZONE NOT NULL,
  first_seen_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT pg_catalog.now(),
  created_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  CONSTRAINT figma_users_figma_user_id_check CHECK (figma_user_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_.:-]{1,255}$'),
  CONSTRAINT figma_users_payment_status_check CHECK (
    payment_status OPERATOR(pg_catalog.=) ANY (ARRAY['PAID', 'TRIAL', 'UNPAID', 'UNKNOWN']::VARCHAR[])),
  CONSTRAINT figma_users_figma_payment_status_check CHECK (figma_payment_status OPERATOR(pg_catalog.~) '^[A-Za-z0-9_]{1,64}$'),
  CONSTRAINT figma_users_resource_check CHECK (
    resource_id OPERATOR(pg_catalog.!~) '[[:cntrl:]]' AND resource_type OPERATOR(pg_catalog.~) '^[A-Z_]{1,32}$'),
  CONSTRAINT figma_users_grant_check CHECK (grant_until OPERATOR(pg_catalog.>=) checked_at)
);

-- The entitlement probe (one per consume) and "one Figma account per user".
CREATE UNIQUE INDEX IF NOT EXISTS idx_figma_users_user_id ON public.figma_users (user_id);

-- 2. Which payment tokens were checked, by SHA-256 digest (the token itself is a credential and is
-- never stored). The cache key: who a payment token belongs to is only known once Figma answered,
-- so a token is cached, and single-flighted, by its digest.
CREATE TABLE IF NOT EXISTS public.figma_payment_checks (
  token_hash CHAR(64) PRIMARY KEY,
  figma_user_id VARCHAR(255) NOT NULL REFERENCES public.figma_users(figma_user_id) ON DELETE CASCADE,
  checked_at TIMESTAMP WITH TIME ZONE NOT NULL,
  CONSTRAINT figma_payment_checks_token_hash_check CHECK (token_hash OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$')
);

CREATE INDEX IF NOT EXISTS idx_figma_payment_checks_figma_user_id ON public.figma_payment_checks (figma_user_id);

-- 3. Which plan a Figma status grants: PAID and TRIAL as Figma reports them, and FIRST_USE, the
-- server-side trial: the plan for trial_seconds from a Figma user's first_seen_at.
CREATE TABLE IF NOT EXISTS public.figma_plan_links (
  link VARCHAR(16) PRIMARY KEY,
  plan_id UUID NOT NULL REFERENCES public.subscription_plans(id) ON DELETE CASCADE,
  trial_seconds INTEGER,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  CONSTRAINT figma_plan_links_link_check CHECK (
    link OPERATOR(pg_catalog.=) ANY (ARRAY['PAID', 'TRIAL', 'FIRST_USE']::VARCHAR[])),
  CONSTRAINT figma_plan_links_trial_check CHECK (
    (link OPERATOR(pg_catalog.=) 'FIRST_USE') OPERATOR(pg_catalog.=) (trial_seconds IS NOT NULL)
    AND (trial_seconds IS NULL OR trial_seconds OPERATOR(pg_catalog.>=) 60))
);

CREATE INDEX IF NOT EXISTS idx_figma_plan_links_plan_id ON public.figma_plan_links (plan_id);

-- 4. Did Figma accept the personal access token last time? One row; `status` and `verify` warn
-- while the last refusal (401/403) is newer than the last success. Nothing of the token is kept.
CREATE TABLE IF NOT EXISTS public.figma_api_state (
  id BOOLEAN PRIMARY KEY DEFAULT true,
  last_ok_at TIMESTAMP WITH TIME ZONE,
  last_rejected_at TIMESTAMP WITH TIME ZONE,
  last_rejected_status INTEGER,
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now(),
  CONSTRAINT figma_api_state_single_row_check CHECK (id)
);

ALTER TABLE public.figma_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.figma_payment_checks ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.figma_plan_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.figma_api_state ENABLE ROW LEVEL SECURITY;

COMMENT ON TABLE public.figma_users IS 'verified Figma users and what the Payments API said';
COMMENT ON TABLE public.figma_payment_checks IS 'checked Figma payment tokens (SHA-256 digests) for cache and single flight';
COMMENT ON TABLE public.figma_plan_links IS 'which plan a Figma payment status (or first use) grants';
COMMENT ON TABLE public.figma_api_state IS 'last acceptance and refusal of the Figma personal access token';

-- 5. The one entitlement rule. Every grant of the user in force at p_at, best first (rank 1 is the
-- effective plan). One branch per source, each one index probe:
--   stripe / manual: the user's user_subscriptions row (unique on user_id), by
--                    subscription_grants_access (sql/003); until = current_period_end.
--   figma:           the user's figma_users row (unique on user_id) joined to figma_plan_links
--                    (at most three rows): PAID / TRIAL while the stored answer is within its
--                    grace (until = grant_until); FIRST_USE until first_seen_at + trial_seconds.
-- Best = the highest price_monthly; then the highest resizesPerDay (-1, unlimited, highest); then
-- the highest batchSize (likewise); then the source precedence below (two sources granting the
-- same plan); then the later until (null: no end); then plan_slug.
-- Source precedence (lower first), spaced so that later sources slot in:
--   10 stripe, 20 figma, 30 lemonsqueezy, 40 gumroad, 50 seat, 60 manual.
-- PL/pgSQL: it keeps its plan for the session (a SQL function with SET search_path is planned again
-- on every call).
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
    ) AS g
    JOIN public.subscription_plans AS p ON p.id = g.plan_id
   ORDER BY 1;
END;
$$;

-- The user's effective plan at p_at: the best grant in force (plugin_auth_grants), else free.
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
   WHERE p.id = COALESCE(
     (SELECT g.plan_id FROM public.plugin_auth_grants(p_user_id, p_at) AS g WHERE g.rank = 1),
     (SELECT f.id FROM public.subscription_plans AS f WHERE f.plan_slug = 'free'));
END;
$$;

-- The limits that apply to this user and action now: the effective plan's (plugin_auth_grants)
-- for 'resize', none for any other action; -1 = no limit. Shared by consume_usage and check_usage.
-- One statement for "does the user exist" and "which plan"; the error path tells them apart.
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
    JOIN public.subscription_plans AS p ON p.id = COALESCE(
      (SELECT g.plan_id FROM public.plugin_auth_grants(w.id, pg_catalog.now()) AS g WHERE g.rank = 1),
      (SELECT f.id FROM public.subscription_plans AS f WHERE f.plan_slug = 'free'))
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

-- 6. Storing what Figma said. Called by the library after a 200 from the Payments API, inside the
-- transaction that holds the token's lock (7310). Upserts the Figma user (first_seen_at is kept),
-- records the token digest, forgets the user's other token digests older than a day (payment
-- tokens are short-lived: at most a handful of rows per user remain), and notes that the personal
-- access token was accepted.
CREATE OR REPLACE FUNCTION public.figma_record_check(
  p_token_hash TEXT,
  p_figma_user_id VARCHAR,
  p_payment_status VARCHAR,
  p_date_of_purchase TIMESTAMP WITH TIME ZONE,
  p_resource_id VARCHAR,
  p_resource_type VARCHAR,
  p_grace_seconds INTEGER
) RETURNS SETOF public.figma_users
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.clock_timestamp();
  v_status VARCHAR;
  v_raw VARCHAR;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_token_hash, 'p_token_hash');
  IF p_figma_user_id IS NULL OR p_figma_user_id !~ '^[A-Za-z0-9_.:-]{1,255}$' THEN
    RAISE EXCEPTION 'invalid_figma_user_id: a Figma user id is 1 to 255 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA060';
  END IF;
  IF p_payment_status IS NULL OR p_payment_status !~ '^[A-Za-z0-9_]{1,64}$' THEN
    RAISE EXCEPTION 'invalid_figma_answer: payment_status must be 1 to 64 characters of A-Z a-z 0-9 _'
      USING ERRCODE = 'PA065';
  END IF;
  IF p_grace_seconds IS NULL OR p_grace_seconds < 0 THEN
    RAISE EXCEPTION 'invalid_grace: p_grace_seconds must be 0 or more' USING ERRCODE = 'PA064';
  END IF;
  -- Only the three statuses Figma documents grant anything; NOT_SUPPORTED (what a plugin sees
  -- where payments are unavailable) or any future value is stored as UNKNOWN.
  IF p_payment_status IN ('PAID', 'TRIAL', 'UNPAID') THEN
    v_status := p_payment_status;
  ELSE
    v_status := 'UNKNOWN';
    v_raw := p_payment_status;
  END IF;

  RETURN QUERY
  INSERT INTO public.figma_users AS f (
    figma_user_id, payment_status, figma_payment_status, date_of_purchase, resource_id, resource_type,
    checked_at, grant_until, first_seen_at)
  VALUES (
    p_figma_user_id, v_status, v_raw, p_date_of_purchase,
    NULLIF(pg_catalog.left(p_resource_id, 255), ''),
    CASE WHEN p_resource_type ~ '^[A-Z_]{1,32}$' THEN p_resource_type END,
    v_now, v_now + pg_catalog.make_interval(secs => p_grace_seconds), v_now)
  ON CONFLICT (figma_user_id) DO UPDATE SET
    payment_status = EXCLUDED.payment_status,
    figma_payment_status = EXCLUDED.figma_payment_status,
    date_of_purchase = EXCLUDED.date_of_purchase,
    resource_id = EXCLUDED.resource_id,
    resource_type = EXCLUDED.resource_type,
    checked_at = EXCLUDED.checked_at,
    grant_until = EXCLUDED.grant_until,
    updated_at = EXCLUDED.checked_at
  RETURNING f.*;

  INSERT INTO public.figma_payment_checks AS c (token_hash, figma_user_id, checked_at)
  VALUES (p_token_hash, p_figma_user_id, v_now)
  ON CONFLICT (token_hash) DO UPDATE SET figma_user_id = EXCLUDED.figma_user_id, checked_at = EXCLUDED.checked_at;

  DELETE FROM public.figma_payment_checks AS c
   WHERE c.figma_user_id = p_figma_user_id AND c.token_hash <> p_token_hash
     AND c.checked_at < v_now - INTERVAL '1 day';

  PERFORM public.figma_record_api_result(200);
END;
$$;

-- The personal access token's last acceptance (p_http_status 200) or refusal (401, 403).
CREATE OR REPLACE FUNCTION public.figma_record_api_result(p_http_status INTEGER) RETURNS VOID
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.clock_timestamp();
BEGIN
  IF p_http_status = 200 THEN
    INSERT INTO public.figma_api_state AS a (id, last_ok_at, updated_at) VALUES (true, v_now, v_now)
    ON CONFLICT (id) DO UPDATE SET last_ok_at = EXCLUDED.last_ok_at, updated_at = EXCLUDED.updated_at
    -- A success every check would rewrite the row on every cache miss: once a minute is enough.
    WHERE a.last_ok_at IS NULL OR a.last_ok_at < v_now - INTERVAL '1 minute'
       OR a.last_rejected_at >= a.last_ok_at;
  ELSIF p_http_status IN (401, 403) THEN
    INSERT INTO public.figma_api_state AS a (id, last_rejected_at, last_rejected_status, updated_at)
    VALUES (true, v_now, p_http_status, v_now)
    ON CONFLICT (id) DO UPDATE SET last_rejected_at = EXCLUDED.last_rejected_at,
      last_rejected_status = EXCLUDED.last_rejected_status, updated_at = EXCLUDED.updated_at;
  ELSE
    RAISE EXCEPTION 'invalid_figma_answer: p_http_status must be 200, 401 or 403' USING ERRCODE = 'PA065';
  END IF;
END;
$$;

-- 7. Figma identity -> user. Called inside one transaction by signIn: the lock (7311) makes
-- concurrent first sign-ins of one Figma user queue, so exactly one of them creates the user.
-- Returns the linked user, else a host users row whose figma_user_id column (the seed's, if the
-- host table has it) names this Figma user (then linked), else null (the caller creates one).
CREATE OR REPLACE FUNCTION public.figma_user_for_sign_in(p_figma_user_id VARCHAR) RETURNS UUID
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_user_id UUID;
BEGIN
  IF p_figma_user_id IS NULL OR p_figma_user_id !~ '^[A-Za-z0-9_.:-]{1,255}$' THEN
    RAISE EXCEPTION 'invalid_figma_user_id: a Figma user id is 1 to 255 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA060';
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock(7311, pg_catalog.hashtext(p_figma_user_id));
  SELECT f.user_id INTO v_user_id FROM public.figma_users AS f WHERE f.figma_user_id = p_figma_user_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invalid_figma_user_id: Figma user % was never verified; verify a payment token first', p_figma_user_id
      USING ERRCODE = 'PA060';
  END IF;
  IF v_user_id IS NULL AND public.plugin_auth_users_has_figma_column() THEN
    EXECUTE 'SELECT u.id FROM public.users AS u WHERE u.figma_user_id = $1 LIMIT 1'
      INTO v_user_id USING p_figma_user_id;
    IF v_user_id IS NOT NULL THEN
      PERFORM public.figma_link_user(p_figma_user_id, v_user_id);
    END IF;
  END IF;
  RETURN v_user_id;
END;
$$;

-- Does the host's users table have the seed's figma_user_id column? (A host table may not.)
CREATE OR REPLACE FUNCTION public.plugin_auth_users_has_figma_column() RETURNS BOOLEAN
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  RETURN EXISTS (
    SELECT 1 FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = 'public.users'::pg_catalog.regclass AND a.attname = 'figma_user_id'
       AND NOT a.attisdropped AND a.attnum > 0);
END;
$$;

-- The default user for a Figma-only sign-in, on the seed's users table: email
-- figma-<id>@users.figma.invalid (.invalid never delivers; the column is NOT NULL UNIQUE there) and
-- figma_user_id. A host table with other required columns: pass figma.createUser instead.
CREATE OR REPLACE FUNCTION public.figma_create_user(p_figma_user_id VARCHAR) RETURNS UUID
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_user_id UUID;
BEGIN
  IF p_figma_user_id IS NULL OR p_figma_user_id !~ '^[A-Za-z0-9_.:-]{1,255}$' THEN
    RAISE EXCEPTION 'invalid_figma_user_id: a Figma user id is 1 to 255 characters of A-Z a-z 0-9 _ . : -'
      USING ERRCODE = 'PA060';
  END IF;
  IF public.plugin_auth_users_has_figma_column() THEN
    EXECUTE 'INSERT INTO public.users (email, figma_user_id) VALUES ($1, $2) RETURNING id'
      INTO v_user_id USING 'figma-' || p_figma_user_id || '@users.figma.invalid', p_figma_user_id;
  ELSE
    EXECUTE 'INSERT INTO public.users (email) VALUES ($1) RETURNING id'
      INTO v_user_id USING 'figma-' || p_figma_user_id || '@users.figma.invalid';
  END IF;
  RETURN v_user_id;
END;
$$;

-- Links a verified Figma user to a user (idempotent). One Figma account per user and one user per
-- Figma account: anything else is figma_user_linked. Also fills users.figma_user_id where the host
-- table has that column and it is empty.
CREATE OR REPLACE FUNCTION public.figma_link_user(p_figma_user_id VARCHAR, p_user_id UUID) RETURNS VOID
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_current UUID;
BEGIN
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS u WHERE u.id = p_user_id) THEN
    RAISE EXCEPTION 'unknown_user: no user with id %', p_user_id USING ERRCODE = 'PA001';
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock(7311, pg_catalog.hashtext(p_figma_user_id));
  SELECT f.user_id INTO v_current FROM public.figma_users AS f WHERE f.figma_user_id = p_figma_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invalid_figma_user_id: Figma user % was never verified; verify a payment token first', p_figma_user_id
      USING ERRCODE = 'PA060';
  END IF;
  IF v_current = p_user_id THEN
    RETURN;
  END IF;
  IF v_current IS NOT NULL THEN
    RAISE EXCEPTION 'figma_user_linked: this Figma account already belongs to another user'
      USING ERRCODE = 'PA063';
  END IF;
  IF EXISTS (SELECT 1 FROM public.figma_users AS f WHERE f.user_id = p_user_id) THEN
    RAISE EXCEPTION 'figma_user_linked: this user is already linked to another Figma account'
      USING ERRCODE = 'PA063';
  END IF;
  UPDATE public.figma_users AS f SET user_id = p_user_id, updated_at = pg_catalog.now()
   WHERE f.figma_user_id = p_figma_user_id;
  IF public.plugin_auth_users_has_figma_column() THEN
    EXECUTE 'UPDATE public.users AS u SET figma_user_id = $1 WHERE u.id = $2 AND u.figma_user_id IS NULL'
      USING p_figma_user_id, p_user_id;
  END IF;
END;
$$;

-- 8. Plan <-> Figma status: PAID and TRIAL as Figma reports them; FIRST_USE with p_trial_days, the
-- server-side trial. p_plan_slug null unlinks (returns no row). Errors: invalid_figma_link,
-- invalid_trial_days, unknown_plan.
CREATE OR REPLACE FUNCTION public.link_figma_plan(
  p_plan_slug VARCHAR,
  p_link VARCHAR,
  p_trial_days INTEGER DEFAULT NULL
) RETURNS SETOF public.subscription_plans
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_plan_id UUID;
BEGIN
  IF p_link IS NULL OR p_link NOT IN ('PAID', 'TRIAL', 'FIRST_USE') THEN
    RAISE EXCEPTION 'invalid_figma_link: link a plan to PAID, TRIAL or FIRST_USE' USING ERRCODE = 'PA061';
  END IF;
  IF (p_link = 'FIRST_USE' AND p_plan_slug IS NOT NULL AND (p_trial_days IS NULL OR p_trial_days NOT BETWEEN 1 AND 3650))
     OR (p_link <> 'FIRST_USE' AND p_trial_days IS NOT NULL) THEN
    RAISE EXCEPTION 'invalid_trial_days: FIRST_USE takes 1 to 3650 trial days; PAID and TRIAL take none'
      USING ERRCODE = 'PA062';
  END IF;
  IF p_plan_slug IS NULL THEN
    DELETE FROM public.figma_plan_links AS l WHERE l.link = p_link;
    RETURN;
  END IF;
  SELECT p.id INTO v_plan_id FROM public.subscription_plans AS p WHERE p.plan_slug = p_plan_slug;
  IF v_plan_id IS NULL THEN
    RAISE EXCEPTION 'unknown_plan: no plan with slug %', p_plan_slug USING ERRCODE = 'PA034';
  END IF;
  INSERT INTO public.figma_plan_links AS l (link, plan_id, trial_seconds)
  VALUES (p_link, v_plan_id, p_trial_days * 86400)
  ON CONFLICT (link) DO UPDATE SET plan_id = EXCLUDED.plan_id, trial_seconds = EXCLUDED.trial_seconds,
    updated_at = pg_catalog.now();
  RETURN QUERY SELECT p.* FROM public.subscription_plans AS p WHERE p.id = v_plan_id;
END;
$$;
