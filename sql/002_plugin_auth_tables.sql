-- 002: the seed's five tables and their indexes.
-- Rules (from the seed): IF NOT EXISTS on every CREATE; every foreign key ON DELETE CASCADE;
-- record timestamps are TIMESTAMP WITH TIME ZONE DEFAULT NOW(). Event timestamps that are unknown
-- when a row is written (revoked_at, last_used_at, refunded_at, ...) are TIMESTAMP WITH TIME ZONE
-- with no default: a default of NOW() there would, say, mark every new token revoked.
-- Unique constraints carry the seed's index names, so each is one index, not a constraint plus a twin.

-- 1. subscription_plans: exactly the seed's DDL, plus a CHECK that keeps malformed limits out.
CREATE TABLE IF NOT EXISTS public.subscription_plans (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  plan_slug VARCHAR(50) UNIQUE NOT NULL,
  stripe_product_id VARCHAR(255),
  stripe_price_id VARCHAR(255),
  name VARCHAR(255) NOT NULL,
  description TEXT,
  price_monthly INTEGER DEFAULT 0,
  limits JSONB NOT NULL DEFAULT '{"resizesPerDay": 2, "batchSize": 1, "isDaily": false}'::jsonb,
  features TEXT[],
  is_active BOOLEAN DEFAULT true,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  -- limits = {"resizesPerDay": int >= -1, "batchSize": -1 or int >= 1, "isDaily": bool}; -1 = no limit.
  -- CASE guards each cast: AND does not promise evaluation order, and a failed cast is an error,
  -- not a violated check.
  CONSTRAINT subscription_plans_limits_check CHECK (
    jsonb_typeof(limits) = 'object'
    AND CASE WHEN jsonb_typeof(limits -> 'resizesPerDay') = 'number'
             THEN (limits ->> 'resizesPerDay')::numeric BETWEEN -1 AND 2147483647
                  AND (limits ->> 'resizesPerDay')::numeric = trunc((limits ->> 'resizesPerDay')::numeric)
             ELSE false END
    AND CASE WHEN jsonb_typeof(limits -> 'batchSize') = 'number'
             THEN (limits ->> 'batchSize')::numeric BETWEEN -1 AND 2147483647
                  AND (limits ->> 'batchSize')::numeric <> 0
                  AND (limits ->> 'batchSize')::numeric = trunc((limits ->> 'batchSize')::numeric)
             ELSE false END
    AND COALESCE(jsonb_typeof(limits -> 'isDaily'), 'missing') = 'boolean'
  ),
  CONSTRAINT subscription_plans_slug_check CHECK (plan_slug ~ '^[a-z0-9][a-z0-9_-]*$'),
  CONSTRAINT subscription_plans_price_check CHECK (price_monthly >= 0)
);

-- A Stripe price belongs to one plan: the webhook sync finds the plan by it.
CREATE UNIQUE INDEX IF NOT EXISTS idx_subscription_plans_stripe_price_id
  ON public.subscription_plans (stripe_price_id) WHERE stripe_price_id IS NOT NULL;

-- 2. plugin_tokens: one row per issued plugin token (JWT). id = the JWT's jti.
CREATE TABLE IF NOT EXISTS public.plugin_tokens (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  -- SHA-256 digest of the token, lowercase hex. The token itself is never stored.
  token_hash CHAR(64) NOT NULL,
  device_name VARCHAR(255),
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
  last_used_at TIMESTAMP WITH TIME ZONE,
  revoked_at TIMESTAMP WITH TIME ZONE,
  revoked_reason VARCHAR(255),
  CONSTRAINT plugin_tokens_token_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT plugin_tokens_expiry_check CHECK (expires_at > created_at)
)
-- verify rewrites last_used_at (at most once a minute per token): room left on each page keeps
-- those updates HOT (no new index entries in the four indexes), even on a table of old tokens.
WITH (fillfactor = 90);

CREATE INDEX IF NOT EXISTS idx_plugin_tokens_user_id ON public.plugin_tokens (user_id);
CREATE UNIQUE INDEX IF NOT EXISTS idx_plugin_tokens_token ON public.plugin_tokens (token_hash);

-- 3. plugin_usage: one row per metered request, allowed or denied. It also keeps the answer given,
-- so that a retried request with the same idempotency key gets exactly the same answer back.
CREATE TABLE IF NOT EXISTS public.plugin_usage (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  action VARCHAR(64) NOT NULL,
  items INTEGER NOT NULL DEFAULT 1,
  allowed BOOLEAN NOT NULL,
  reason VARCHAR(32) NOT NULL,
  plan_slug VARCHAR(50),
  idempotency_key VARCHAR(255),
  metadata JSONB,
  used INTEGER,
  usage_limit INTEGER,
  batch_limit INTEGER,
  resets_at TIMESTAMP WITH TIME ZONE,
  refunded_at TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  CONSTRAINT plugin_usage_items_check CHECK (items >= 1),
  CONSTRAINT plugin_usage_action_check CHECK (length(action) >= 1),
  CONSTRAINT plugin_usage_refund_check CHECK (refunded_at IS NULL OR allowed)
);

-- user_id leads, so this is also the foreign key's index; created_at serves per-user history.
CREATE INDEX IF NOT EXISTS idx_plugin_usage_user_id ON public.plugin_usage (user_id, created_at);
CREATE INDEX IF NOT EXISTS idx_plugin_usage_created_at ON public.plugin_usage (created_at);
CREATE UNIQUE INDEX IF NOT EXISTS idx_plugin_usage_idempotency
  ON public.plugin_usage (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- 4. daily_usage_summary: one counter per user, action and UTC day. The UNIQUE constraint is what
-- makes INSERT ... ON CONFLICT DO UPDATE an atomic increment.
CREATE TABLE IF NOT EXISTS public.daily_usage_summary (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  action VARCHAR(64) NOT NULL,
  usage_date DATE NOT NULL DEFAULT ((NOW() AT TIME ZONE 'UTC')::date),
  count INTEGER NOT NULL DEFAULT 0,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  CONSTRAINT idx_daily_usage_user_action_date UNIQUE (user_id, action, usage_date),
  CONSTRAINT daily_usage_summary_count_check CHECK (count >= 0),
  CONSTRAINT daily_usage_summary_action_check CHECK (length(action) >= 1)
)
-- Every allowed consume rewrites its counter row: free space on the page keeps that update HOT.
WITH (fillfactor = 80);

-- 5. user_subscriptions: one row per user, synced from Stripe or assigned by hand.
CREATE TABLE IF NOT EXISTS public.user_subscriptions (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  plan_id UUID NOT NULL REFERENCES public.subscription_plans(id) ON DELETE CASCADE,
  status VARCHAR(32) NOT NULL DEFAULT 'active',
  stripe_customer_id VARCHAR(255),
  stripe_subscription_id VARCHAR(255),
  stripe_price_id VARCHAR(255),
  current_period_start TIMESTAMP WITH TIME ZONE,
  current_period_end TIMESTAMP WITH TIME ZONE,
  cancel_at_period_end BOOLEAN NOT NULL DEFAULT false,
  canceled_at TIMESTAMP WITH TIME ZONE,
  trial_end TIMESTAMP WITH TIME ZONE,
  -- `created` of the last Stripe event applied: an older event arriving late changes nothing.
  stripe_event_created TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  CONSTRAINT idx_user_subscriptions_user_id UNIQUE (user_id),
  CONSTRAINT idx_user_subscriptions_stripe_subscription UNIQUE (stripe_subscription_id),
  CONSTRAINT user_subscriptions_status_check CHECK (status IN (
    'incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due',
    'canceled', 'unpaid', 'paused', 'manual'
  ))
);

CREATE INDEX IF NOT EXISTS idx_user_subscriptions_stripe_customer
  ON public.user_subscriptions (stripe_customer_id);
CREATE INDEX IF NOT EXISTS idx_user_subscriptions_plan_id ON public.user_subscriptions (plan_id);

-- Table comments are what the setup report prints next to each table: read back from the catalog.
COMMENT ON TABLE public.subscription_plans IS 'master plan configuration with limits';
COMMENT ON TABLE public.plugin_tokens IS 'JWT token storage for audit/revocation';
COMMENT ON TABLE public.plugin_usage IS 'detailed usage event tracking';
COMMENT ON TABLE public.daily_usage_summary IS 'efficient atomic usage counters';
COMMENT ON TABLE public.user_subscriptions IS 'user plan assignment and Stripe sync';
