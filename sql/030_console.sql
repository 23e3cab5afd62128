-- 030: the operator's console (issue 28): what it records and reads besides the usage rollups.
--
-- 1. console_audit_log: every action taken from the console (who, when, what, and the state
--    before and after as JSON). Kept when the user is deleted (no foreign key): an audit outlives
--    its subject.
-- 2. webhook_deliveries: one row per webhook delivery the plugin server answered (Stripe, Lemon
--    Squeezy, Gumroad): accepted, duplicate, ignored or refused with the error code. Never the
--    body nor a signature: the event id where the provider gives one (Stripe's evt_…, the SHA-256
--    of a Lemon Squeezy body), else NULL.
-- 3. sign_in_refusals: one row per refused sign-in or refused plugin session (the route and the
--    error code; the user when it is known). Never a token, key nor code.
-- 4. The refund of a day's usage (sql/functions/console.sql: console_refund_today) reads the
--    counters and the log by their existing indexes; nothing new there.
--
-- State only (docs/schema.md). Written to run under `SET LOCAL search_path = pg_catalog, pg_temp`;
-- every name is schema-qualified.

CREATE TABLE IF NOT EXISTS public.console_audit_log (
  id BIGINT GENERATED ALWAYS AS IDENTITY,
  actor VARCHAR(255) NOT NULL,
  action VARCHAR(64) NOT NULL,
  user_id UUID,
  subject VARCHAR(255),
  before JSONB,
  after JSONB,
  created_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
  CONSTRAINT console_audit_log_pkey PRIMARY KEY (id),
  CONSTRAINT console_audit_log_actor_check CHECK (pg_catalog.length(actor) >= 1 AND actor !~ '[[:cntrl:]]'),
  CONSTRAINT console_audit_log_action_check CHECK (action ~ '^[a-z_]{1,64}$'),
  CONSTRAINT console_audit_log_subject_check CHECK (subject IS NULL OR subject !~ '[[:cntrl:]]'),
  CONSTRAINT console_audit_log_json_check CHECK (pg_catalog.pg_column_size(before) <= 65536 AND pg_catalog.pg_column_size(after) <= 65536)
);
COMMENT ON TABLE public.console_audit_log IS 'actions taken from the operator''s console: who, when, what, before and after';
CREATE INDEX IF NOT EXISTS idx_console_audit_log_created_at ON public.console_audit_log (created_at);
CREATE INDEX IF NOT EXISTS idx_console_audit_log_user_id ON public.console_audit_log (user_id, created_at);

CREATE TABLE IF NOT EXISTS public.webhook_deliveries (
  id BIGINT GENERATED ALWAYS AS IDENTITY,
  provider VARCHAR(16) NOT NULL,
  event_id VARCHAR(255),
  outcome VARCHAR(16) NOT NULL,
  reason_code VARCHAR(64) NOT NULL,
  received_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
  CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id),
  CONSTRAINT webhook_deliveries_provider_check CHECK (provider IN ('stripe', 'lemonsqueezy', 'gumroad', 'figma')),
  CONSTRAINT webhook_deliveries_event_id_check CHECK (event_id IS NULL OR event_id ~ '^[A-Za-z0-9_.:-]{1,255}$'),
  CONSTRAINT webhook_deliveries_outcome_check CHECK (outcome IN ('accepted', 'duplicate', 'ignored', 'refused')),
  CONSTRAINT webhook_deliveries_reason_code_check CHECK (reason_code ~ '^[a-z0-9_]{1,64}$')
);
COMMENT ON TABLE public.webhook_deliveries IS 'webhook deliveries answered by the plugin server: outcome and reason code, never the body or a signature';
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_received_at ON public.webhook_deliveries (received_at);
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_outcome ON public.webhook_deliveries (provider, outcome, received_at);

CREATE TABLE IF NOT EXISTS public.sign_in_refusals (
  id BIGINT GENERATED ALWAYS AS IDENTITY,
  route VARCHAR(64) NOT NULL,
  reason_code VARCHAR(64) NOT NULL,
  user_id UUID,
  received_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(),
  CONSTRAINT sign_in_refusals_pkey PRIMARY KEY (id),
  CONSTRAINT sign_in_refusals_route_check CHECK (route ~ '^[a-z0-9_./-]{1,64}$'),
  CONSTRAINT sign_in_refusals_reason_code_check CHECK (reason_code ~ '^[a-z0-9_]{1,64}$')
);
COMMENT ON TABLE public.sign_in_refusals IS 'refused sign-ins and plugin sessions: route and error code, never a token';
CREATE INDEX IF NOT EXISTS idx_sign_in_refusals_received_at ON public.sign_in_refusals (received_at);
CREATE INDEX IF NOT EXISTS idx_sign_in_refusals_user_id ON public.sign_in_refusals (user_id, received_at) WHERE user_id IS NOT NULL;

-- Search by license key prefix (the first 8 characters kept with each license).
CREATE INDEX IF NOT EXISTS idx_licenses_key_prefix ON public.licenses (key_prefix);
-- Subscriptions at risk: past due, unpaid, incomplete, or canceling at the period's end.
CREATE INDEX IF NOT EXISTS idx_user_subscriptions_at_risk ON public.user_subscriptions (current_period_end)
  WHERE status = 'past_due' OR status = 'unpaid' OR status = 'incomplete' OR cancel_at_period_end;
