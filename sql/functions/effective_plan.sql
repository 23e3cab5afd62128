-- The effective plan kept as one row per user (public.user_effective_plans, sql/026): how a row is
-- computed, the triggers that keep it exact in the transaction of every change to a source, and
-- the locks that order them. The hot paths read the row (sql/templates/hot-paths.sql); docs/usage.md,
-- "The effective plan row", says when it is rebuilt and how the fallback works.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.plugin_auth_effective_plan_write(p_user_id uuid, p_wait boolean DEFAULT true)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
-- One user's row from the rule, under the row's lock: the row is locked first (FOR UPDATE; a
-- missing row is inserted, and whoever inserts it first holds it), then the rule is read, each
-- statement reading what was committed once the lock is held. A second writer of the same user
-- waits for the first to commit and recomputes after it. p_wait false (consume's rebuild): a row
-- locked by another transaction is left to it, and false is returned. The caller holds the terms
-- lock (7331) shared. A row lock, not an advisory lock: a bulk write of many users holds no entry
-- of the shared lock table per user.
DECLARE
  v_at TIMESTAMP WITH TIME ZONE := pg_catalog.now();
  v_locked BOOLEAN;
  v_plan_id UUID;
  v_sources INTEGER;
  v_until TIMESTAMP WITH TIME ZONE;
BEGIN
  IF p_user_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS w WHERE w.id = p_user_id) THEN
    RETURN true; -- a deleted user's row went with it (ON DELETE CASCADE)
  END IF;
  LOOP
    IF p_wait THEN
      PERFORM 1 FROM public.user_effective_plans AS e WHERE e.user_id = p_user_id FOR UPDATE;
      v_locked := FOUND;
    ELSE
      PERFORM 1 FROM public.user_effective_plans AS e WHERE e.user_id = p_user_id FOR UPDATE SKIP LOCKED;
      v_locked := FOUND;
      IF NOT v_locked AND EXISTS (SELECT 1 FROM public.user_effective_plans AS e WHERE e.user_id = p_user_id) THEN
        RETURN false;
      END IF;
    END IF;
    -- The rule's answer (rank 1) and the earliest instant a grant in force stops by time alone: a
    -- past_due or manual period end, a Figma grace or trial end, a license expiry. Active and
    -- trialing Stripe subscriptions do not end by time; a Stripe seat ends only when its team's
    -- subscription is past_due (added below). Nothing starts granting by time alone.
    SELECT pg_catalog.count(*)::integer,
           (pg_catalog.array_agg(g.plan_id ORDER BY g.rank))[1],
           pg_catalog.min(CASE WHEN g.source = 'stripe' AND g.detail IN ('active', 'trialing') THEN NULL
                               WHEN g.source = 'seat' AND g.detail = 'stripe' THEN NULL
                               ELSE g.until END)
      INTO v_sources, v_plan_id, v_until
      FROM public.plugin_auth_grants(p_user_id, v_at) AS g;
    v_until := LEAST(v_until,
      (SELECT pg_catalog.min(s.current_period_end)
         FROM public.seat_assignments AS a
         JOIN public.user_subscriptions AS s ON s.id = a.subscription_id
        WHERE a.member_user_id = p_user_id AND s.status = 'past_due' AND s.current_period_end > v_at));
    IF v_plan_id IS NULL THEN
      SELECT f.id INTO v_plan_id FROM public.subscription_plans AS f WHERE f.plan_slug = 'free';
    END IF;
    IF v_locked THEN
      IF v_plan_id IS NULL THEN
        -- No grant and no free plan: no row (the hot paths fall back to the rule: no_plan).
        DELETE FROM public.user_effective_plans AS e WHERE e.user_id = p_user_id;
      ELSE
        UPDATE public.user_effective_plans AS e
           SET plan_id = v_plan_id, valid_until = v_until, sources = v_sources, updated_at = pg_catalog.clock_timestamp()
         WHERE e.user_id = p_user_id;
      END IF;
      RETURN true;
    END IF;
    IF v_plan_id IS NULL THEN
      RETURN true;
    END IF;
    INSERT INTO public.user_effective_plans AS e (user_id, plan_id, valid_until, sources, updated_at)
    VALUES (p_user_id, v_plan_id, v_until, v_sources, pg_catalog.clock_timestamp())
    ON CONFLICT (user_id) DO NOTHING;
    IF FOUND THEN
      RETURN true;
    END IF;
    -- Another transaction wrote the row meanwhile (this insert waited for it to commit): lock it
    -- and read the rule again.
    IF NOT p_wait THEN
      RETURN false;
    END IF;
  END LOOP;
END;
$function$;

CREATE OR REPLACE FUNCTION public.plugin_auth_effective_plan_refresh(p_user_ids uuid[])
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
-- Recomputes the rows of these users. The terms lock shared (7331; a change of plans or plan
-- links takes it exclusively), then each user's row lock in uuid order, so two transactions
-- refreshing overlapping sets queue instead of deadlocking. All held to the end of the transaction.
DECLARE
  v_user UUID;
BEGIN
  IF p_user_ids IS NULL OR pg_catalog.cardinality(p_user_ids) = 0 THEN
    RETURN;
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock_shared(7331, 0);
  FOR v_user IN SELECT DISTINCT u.id FROM pg_catalog.unnest(p_user_ids) AS u(id) WHERE u.id IS NOT NULL ORDER BY 1 LOOP
    PERFORM public.plugin_auth_effective_plan_write(v_user, true);
  END LOOP;
END;
$function$;

CREATE OR REPLACE FUNCTION public.plugin_auth_effective_plan_source()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
-- AFTER each row of a source: the users whose answer the row can change, before and after.
DECLARE
  v_users UUID[] := ARRAY[]::UUID[];
BEGIN
  IF TG_TABLE_NAME = 'user_subscriptions' THEN
    -- The subscriber, and the members seated on it (a team subscription).
    IF TG_OP <> 'INSERT' THEN
      v_users := v_users || OLD.user_id || ARRAY(SELECT a.member_user_id FROM public.seat_assignments AS a WHERE a.subscription_id = OLD.id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
      v_users := v_users || NEW.user_id || ARRAY(SELECT a.member_user_id FROM public.seat_assignments AS a WHERE a.subscription_id = NEW.id);
    END IF;
  ELSIF TG_TABLE_NAME = 'licenses' THEN
    -- The buyer, and the members seated on it (a team license).
    IF TG_OP <> 'INSERT' THEN
      v_users := v_users || OLD.user_id || ARRAY(SELECT a.member_user_id FROM public.seat_assignments AS a WHERE a.license_id = OLD.id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
      v_users := v_users || NEW.user_id || ARRAY(SELECT a.member_user_id FROM public.seat_assignments AS a WHERE a.license_id = NEW.id);
    END IF;
  ELSIF TG_TABLE_NAME = 'figma_users' THEN
    IF TG_OP <> 'INSERT' THEN
      v_users := v_users || OLD.user_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
      v_users := v_users || NEW.user_id;
    END IF;
  ELSIF TG_TABLE_NAME = 'seat_assignments' THEN
    -- Every member of the team: a seat's rank (seat_order among the seats) decides who is within
    -- the quantity, so one seat given up can seat another member.
    IF TG_OP <> 'INSERT' THEN
      v_users := v_users || OLD.member_user_id || ARRAY(
        SELECT a.member_user_id FROM public.seat_assignments AS a
         WHERE a.license_id = OLD.license_id OR a.subscription_id = OLD.subscription_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
      v_users := v_users || NEW.member_user_id || ARRAY(
        SELECT a.member_user_id FROM public.seat_assignments AS a
         WHERE a.license_id = NEW.license_id OR a.subscription_id = NEW.subscription_id);
    END IF;
  ELSE
    RAISE EXCEPTION 'plugin_auth_effective_plan_source: not a source table: %', TG_TABLE_NAME;
  END IF;
  PERFORM public.plugin_auth_effective_plan_refresh(v_users);
  RETURN NULL;
END;
$function$;

CREATE OR REPLACE FUNCTION public.plugin_auth_effective_plan_terms()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
-- A plan's slug, price or limits (how grants rank, which plan is free), a Figma plan link or a
-- license product mapping changed: any user's answer may change. Every row goes; each is rebuilt
-- by the user's next consume (or next source change). The terms lock, exclusive, waits for every
-- transaction that is writing a row (they hold it shared) and keeps new ones out until commit, so
-- no row computed from the old terms survives.
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(7331, 0);
  DELETE FROM public.user_effective_plans;
  RETURN NULL;
END;
$function$;
