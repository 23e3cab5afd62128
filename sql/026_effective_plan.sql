-- 026: the effective plan kept as one row per user (issue 26). consume_usage read every source of
-- a plan on every call (Stripe and manual subscriptions, Figma, two stores' licenses, license
-- seats, Stripe seats): five index probes where a user almost always has one source or none.
-- public.user_effective_plans holds the answer of the entitlement rule (plugin_auth_grants, rank 1,
-- or the free plan) with the earliest instant it can change by time alone (valid_until); the hot
-- paths read it while it is valid and fall back to the full rule when it is missing or lapsed.
--
-- It is written by triggers on every source, in the transaction of the change (sql/functions/
-- effective_plan.sql): user_subscriptions, figma_users, licenses and seat_assignments recompute the
-- users they touch; subscription_plans, figma_plan_links and license_products (which change what a
-- source grants, or how grants rank) remove every row, rebuilt by the next consume. Deleting a user
-- or a plan removes its rows (ON DELETE CASCADE). docs/usage.md, "The effective plan row".
--
-- No backfill: a missing row is the fallback's case, and the next consume of each user writes it.
--
-- State only (docs/schema.md). The triggers name functions of sql/functions/effective_plan.sql,
-- so they are created after the function files: the part below the marker line runs then.
-- Written to run under `SET LOCAL search_path = pg_catalog, pg_temp`; every name is schema-qualified.

CREATE TABLE IF NOT EXISTS public.user_effective_plans (
  user_id UUID NOT NULL,
  plan_id UUID NOT NULL,
  valid_until TIMESTAMP WITH TIME ZONE,
  sources INTEGER NOT NULL,
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now() NOT NULL,
  CONSTRAINT user_effective_plans_pkey PRIMARY KEY (user_id),
  CONSTRAINT user_effective_plans_sources_check CHECK (sources >= 0),
  CONSTRAINT user_effective_plans_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE,
  CONSTRAINT user_effective_plans_plan_id_fkey FOREIGN KEY (plan_id) REFERENCES public.subscription_plans(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_user_effective_plans_plan_id ON public.user_effective_plans (plan_id);

COMMENT ON TABLE public.user_effective_plans IS 'the effective plan of each user (the entitlement rule''s answer), valid until valid_until; written by triggers on every source';

-- @@ after the functions
-- The triggers (their functions are in sql/functions/effective_plan.sql). Each is created once.
DO $triggers$
DECLARE
  v_trigger RECORD;
BEGIN
  FOR v_trigger IN
    SELECT t.tbl, t.name, t.definition FROM (VALUES
      ('user_subscriptions', 'plugin_auth_effective_plan_write',
       'AFTER INSERT OR DELETE ON public.user_subscriptions FOR EACH ROW EXECUTE FUNCTION public.plugin_auth_effective_plan_source()'),
      ('user_subscriptions', 'plugin_auth_effective_plan_change',
       'AFTER UPDATE ON public.user_subscriptions FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.plan_id IS DISTINCT FROM NEW.plan_id OR OLD.status IS DISTINCT FROM NEW.status OR OLD.current_period_end IS DISTINCT FROM NEW.current_period_end OR OLD.quantity IS DISTINCT FROM NEW.quantity) EXECUTE FUNCTION public.plugin_auth_effective_plan_source()'),
      ('figma_users', 'plugin_auth_effective_plan_write',
       'AFTER INSERT OR DELETE ON public.figma_users FOR EACH ROW EXECUTE FUNCTION public.plugin_auth_effective_plan_source()'),
      ('figma_users', 'plugin_auth_effective_plan_change',
       'AFTER UPDATE ON public.figma_users FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.payment_status IS DISTINCT FROM NEW.payment_status OR OLD.grant_until IS DISTINCT FROM NEW.grant_until OR OLD.first_seen_at IS DISTINCT FROM NEW.first_seen_at) EXECUTE FUNCTION public.plugin_auth_effective_plan_source()'),
      ('licenses', 'plugin_auth_effective_plan_write',
       'AFTER INSERT OR DELETE ON public.licenses FOR EACH ROW EXECUTE FUNCTION public.plugin_auth_effective_plan_source()'),
      ('licenses', 'plugin_auth_effective_plan_change',
       'AFTER UPDATE ON public.licenses FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.provider IS DISTINCT FROM NEW.provider OR OLD.product_id IS DISTINCT FROM NEW.product_id OR OLD.variant_id IS DISTINCT FROM NEW.variant_id OR OLD.status IS DISTINCT FROM NEW.status OR OLD.quantity IS DISTINCT FROM NEW.quantity OR OLD.expires_at IS DISTINCT FROM NEW.expires_at) EXECUTE FUNCTION public.plugin_auth_effective_plan_source()'),
      ('seat_assignments', 'plugin_auth_effective_plan_write',
       'AFTER INSERT OR DELETE OR UPDATE ON public.seat_assignments FOR EACH ROW EXECUTE FUNCTION public.plugin_auth_effective_plan_source()'),
      ('subscription_plans', 'plugin_auth_effective_plan_change',
       'AFTER UPDATE ON public.subscription_plans FOR EACH ROW WHEN (OLD.plan_slug IS DISTINCT FROM NEW.plan_slug OR OLD.price_monthly IS DISTINCT FROM NEW.price_monthly OR OLD.limits IS DISTINCT FROM NEW.limits) EXECUTE FUNCTION public.plugin_auth_effective_plan_terms()'),
      ('subscription_plans', 'plugin_auth_effective_plan_terms',
       'AFTER DELETE ON public.subscription_plans FOR EACH STATEMENT EXECUTE FUNCTION public.plugin_auth_effective_plan_terms()'),
      ('figma_plan_links', 'plugin_auth_effective_plan_terms',
       'AFTER INSERT OR UPDATE OR DELETE ON public.figma_plan_links FOR EACH STATEMENT EXECUTE FUNCTION public.plugin_auth_effective_plan_terms()'),
      ('license_products', 'plugin_auth_effective_plan_terms',
       'AFTER INSERT OR UPDATE OR DELETE ON public.license_products FOR EACH STATEMENT EXECUTE FUNCTION public.plugin_auth_effective_plan_terms()')
    ) AS t(tbl, name, definition)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS g
                    WHERE g.tgrelid OPERATOR(pg_catalog.=) pg_catalog.format('public.%I', v_trigger.tbl)::regclass
                      AND g.tgname OPERATOR(pg_catalog.=) v_trigger.name) THEN
      EXECUTE pg_catalog.format('CREATE TRIGGER %I %s', v_trigger.name, v_trigger.definition);
    END IF;
  END LOOP;
END
$triggers$;
