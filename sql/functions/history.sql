-- Trigger functions that record every change of a user's plan (user_plan_history, the dashboard).
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.plugin_auth_record_plan_history()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.plugin_auth_record_figma_history()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_now TIMESTAMP WITH TIME ZONE := pg_catalog.now();
  v_same_user BOOLEAN := TG_OP = 'UPDATE' AND OLD.user_id IS NOT DISTINCT FROM NEW.user_id;
BEGIN
  IF NEW.user_id IS NULL THEN
    RETURN NEW;
  END IF;
  -- Same user, same status: only a lapse and its return matter, and only for a status that grants
  -- a plan (an UNPAID user checked after the grace records nothing).
  IF v_same_user AND OLD.payment_status IS NOT DISTINCT FROM NEW.payment_status
     AND NOT EXISTS (SELECT 1 FROM public.figma_plan_links AS l WHERE l.link = NEW.payment_status) THEN
    RETURN NEW;
  END IF;
  IF v_same_user AND OLD.grant_until < NEW.checked_at AND OLD.grant_until < v_now
     AND EXISTS (SELECT 1 FROM public.figma_plan_links AS l WHERE l.link = OLD.payment_status) THEN
    INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
    VALUES (NEW.user_id, NULL, 'LAPSED', OLD.grant_until, false, 'figma', OLD.grant_until);
  END IF;
  INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
  SELECT NEW.user_id, g.plan_id, COALESCE(g.link, NEW.payment_status), COALESCE(g.until, NEW.grant_until),
         g.plan_id IS NOT NULL, 'figma', v_now
    FROM (SELECT NULL::integer AS nothing) AS one
    LEFT JOIN LATERAL (
      SELECT l.plan_id, l.link,
             CASE WHEN l.link = 'FIRST_USE' THEN NEW.first_seen_at + pg_catalog.make_interval(secs => l.trial_seconds)
                  ELSE NEW.grant_until END AS until
        FROM public.figma_plan_links AS l
        JOIN public.subscription_plans AS p ON p.id = l.plan_id
       WHERE (l.link = NEW.payment_status AND NEW.grant_until > v_now)
          OR (l.link = 'FIRST_USE' AND NEW.first_seen_at + pg_catalog.make_interval(secs => l.trial_seconds) > v_now)
       ORDER BY COALESCE(p.price_monthly, 0) DESC, l.link = 'FIRST_USE', l.link
       LIMIT 1
    ) AS g ON true;
  RETURN NEW;
END;
$function$;

CREATE OR REPLACE FUNCTION public.plugin_auth_record_seat_history()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = OLD.member_user_id) THEN
      -- Why the seat ended: 'left' (team_leave), else 'removed' (the owner, or a seat given up).
      INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
      VALUES (OLD.member_user_id, NULL,
              COALESCE(NULLIF(pg_catalog.current_setting('plugin_auth.seat_change', true), ''), 'removed'),
              NULL, false, 'seat', pg_catalog.now());
    END IF;
    RETURN OLD;
  END IF;
  INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
  SELECT NEW.member_user_id, t.plan_id, k.status, k.expires_at,
         t.plan_id IS NOT NULL AND k.status IN ('active', 'inactive')
           AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now()),
         'seat', pg_catalog.now()
    FROM public.licenses AS k
   CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
   WHERE k.id = NEW.license_id
  UNION ALL
  SELECT NEW.member_user_id, s.plan_id, s.status, s.current_period_end,
         COALESCE(public.subscription_grants_access(s.status, s.current_period_end, pg_catalog.now()), false),
         'seat', pg_catalog.now()
    FROM public.user_subscriptions AS s
   WHERE s.id = NEW.subscription_id;
  RETURN NEW;
END;
$function$;
