-- 014: what the operator's dashboard (src/dashboard/) reads: the history of each user's plan, and
-- the indexes that keep every dashboard query on an index or a rollup as plugin_usage grows.
-- Written to run with search_path = pg_catalog: every name is schema-qualified, operators in
-- CHECKs are OPERATOR(pg_catalog.x).
--
-- user_plan_history: one row each time a user_subscriptions row is created, changes plan, status
-- or period end, or is deleted. It is what "upgraded within N days of hitting the limit" and "plan
-- mix over time" are computed from (user_subscriptions only holds the present). A trigger fills
-- it, so every writer (sync_stripe_subscription, assign_plan, a hand-made UPDATE) is recorded
-- without changing them. Payment sources that keep their own tables may insert rows here too
-- (source names the writer).
--
-- changed_at: the row's new updated_at when the write set one (a writer that back-dates a change,
-- e.g. an import, is recorded at that time), else the transaction's time; never in the future.
-- grants_access: public.subscription_grants_access(status, current_period_end) at changed_at.
CREATE TABLE IF NOT EXISTS public.user_plan_history (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  -- NULL: the subscription row was deleted (the user is back on free).
  plan_id UUID REFERENCES public.subscription_plans(id) ON DELETE CASCADE,
  status VARCHAR(32),
  current_period_end TIMESTAMP WITH TIME ZONE,
  grants_access BOOLEAN NOT NULL,
  source VARCHAR(32) NOT NULL,
  changed_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT pg_catalog.now(),
  CONSTRAINT user_plan_history_source_check CHECK (
    pg_catalog.length(source) OPERATOR(pg_catalog.>=) 1
  ),
  CONSTRAINT user_plan_history_deleted_check CHECK (
    plan_id IS NOT NULL OR NOT grants_access
  )
);

-- user_id leads: the foreign key's index, a user's history in order, and the plan-mix window.
CREATE INDEX IF NOT EXISTS idx_user_plan_history_user_id
  ON public.user_plan_history (user_id, changed_at);
CREATE INDEX IF NOT EXISTS idx_user_plan_history_plan_id ON public.user_plan_history (plan_id);

COMMENT ON TABLE public.user_plan_history IS 'every change of a user''s subscription row, for the dashboard';

CREATE OR REPLACE FUNCTION public.plugin_auth_record_plan_history()
RETURNS TRIGGER
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_at TIMESTAMP WITH TIME ZONE;
BEGIN
  IF TG_OP = 'DELETE' THEN
    -- A user being deleted takes its history with it (ON DELETE CASCADE): nothing to record.
    IF EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = OLD.user_id) THEN
      INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
      VALUES (OLD.user_id, NULL, NULL, NULL, false, 'deleted', pg_catalog.now());
    END IF;
    RETURN OLD;
  END IF;
  v_at := CASE WHEN TG_OP = 'INSERT' OR NEW.updated_at IS DISTINCT FROM OLD.updated_at
               THEN LEAST(COALESCE(NEW.updated_at, pg_catalog.now()), pg_catalog.now())
               ELSE pg_catalog.now() END;
  INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
  VALUES (NEW.user_id, NEW.plan_id, NEW.status, NEW.current_period_end,
          COALESCE(public.subscription_grants_access(NEW.status, NEW.current_period_end, v_at), false),
          CASE WHEN NEW.stripe_subscription_id IS NOT NULL THEN 'stripe'
               WHEN NEW.status = 'manual' THEN 'manual'
               ELSE 'subscription' END,
          v_at);
  RETURN NEW;
END;
$$;

-- Two triggers: a WHEN that compares OLD and NEW is only allowed on an UPDATE trigger. An UPDATE
-- that sets the same values again (a redelivered webhook) records nothing.
DROP TRIGGER IF EXISTS plugin_auth_plan_history_write ON public.user_subscriptions;
CREATE TRIGGER plugin_auth_plan_history_write
  AFTER INSERT OR DELETE ON public.user_subscriptions
  FOR EACH ROW EXECUTE FUNCTION public.plugin_auth_record_plan_history();
DROP TRIGGER IF EXISTS plugin_auth_plan_history_change ON public.user_subscriptions;
CREATE TRIGGER plugin_auth_plan_history_change
  AFTER UPDATE OF plan_id, status, current_period_end ON public.user_subscriptions
  FOR EACH ROW
  WHEN (OLD.plan_id IS DISTINCT FROM NEW.plan_id OR OLD.status IS DISTINCT FROM NEW.status
        OR OLD.current_period_end IS DISTINCT FROM NEW.current_period_end)
  EXECUTE FUNCTION public.plugin_auth_record_plan_history();

-- The subscriptions that exist when this file is applied: one row each, at their last change.
INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
SELECT s.user_id, s.plan_id, s.status, s.current_period_end,
       COALESCE(public.subscription_grants_access(s.status, s.current_period_end,
                LEAST(COALESCE(s.updated_at, s.created_at, pg_catalog.now()), pg_catalog.now())), false),
       CASE WHEN s.stripe_subscription_id IS NOT NULL THEN 'stripe'
            WHEN s.status = 'manual' THEN 'manual'
            ELSE 'subscription' END,
       LEAST(COALESCE(s.updated_at, s.created_at, pg_catalog.now()), pg_catalog.now())
  FROM public.user_subscriptions AS s
 WHERE NOT EXISTS (SELECT 1 FROM public.user_plan_history AS h WHERE h.user_id = s.user_id);

-- Denied calls by time: "users who hit a limit", the funnel's first denial, denials per user.
-- Partial: an allowed consume (the hot path) adds no entry; INCLUDE makes it an index-only scan.
CREATE INDEX IF NOT EXISTS idx_plugin_usage_denied_created_at
  ON public.plugin_usage (created_at) INCLUDE (user_id, reason, plan_slug) WHERE NOT allowed;

-- Active users per day from the counters. Neither column ever changes, so the counter's
-- increments stay HOT updates (count is deliberately not in the index).
CREATE INDEX IF NOT EXISTS idx_daily_usage_summary_usage_date
  ON public.daily_usage_summary (usage_date, user_id);

-- Live tokens per user and device, without reading the tokens' rows.
CREATE INDEX IF NOT EXISTS idx_plugin_tokens_live
  ON public.plugin_tokens (expires_at) INCLUDE (user_id, device_name) WHERE revoked_at IS NULL;

-- New users per day: idx_users_created_at, created by sql/001 with a users table it creates (a
-- host's own users table is never altered; there the dashboard's new-users figure scans it).
