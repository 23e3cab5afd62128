-- Team seats: a team owner assigns members to the seats of a license or Stripe subscription.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.seat_assign_member(p_owner_id uuid, p_member_id uuid, OUT license_id uuid, OUT subscription_id uuid, OUT seats_used integer, OUT seats integer)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
DECLARE
  v_row RECORD;
  v_existing public.seat_assignments%ROWTYPE;
  v_total INTEGER := 0;
  v_used INTEGER := 0;
  v_count INTEGER;
BEGIN
  IF p_owner_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS u WHERE u.id = p_owner_id)
     OR p_member_id IS NULL OR NOT EXISTS (SELECT 1 FROM public.users AS u WHERE u.id = p_member_id) THEN
    RAISE EXCEPTION 'unknown_user: the owner or the member does not exist' USING ERRCODE = 'PA001';
  END IF;
  FOR v_row IN
    SELECT k.id, COALESCE(t.seats, k.quantity) AS n
      FROM public.licenses AS k
     CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
     WHERE k.user_id = p_owner_id AND t.plan_id IS NOT NULL AND COALESCE(t.seats, k.quantity) > 1
       AND k.status IN ('active', 'inactive') AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now())
     ORDER BY k.id
       FOR UPDATE OF k
  LOOP
    v_total := v_total + v_row.n;
    SELECT pg_catalog.count(*)::integer INTO v_count FROM public.seat_assignments AS a WHERE a.license_id = v_row.id;
    v_used := v_used + v_count;
    IF license_id IS NULL AND v_count < v_row.n THEN
      license_id := v_row.id;
    END IF;
  END LOOP;
  FOR v_row IN
    SELECT s.id, s.quantity AS n
      FROM public.user_subscriptions AS s
     WHERE s.user_id = p_owner_id AND s.status <> 'manual' AND s.quantity > 1
       AND public.subscription_grants_access(s.status, s.current_period_end, pg_catalog.now())
       FOR UPDATE OF s
  LOOP
    v_total := v_total + v_row.n;
    SELECT pg_catalog.count(*)::integer INTO v_count FROM public.seat_assignments AS a WHERE a.subscription_id = v_row.id;
    v_used := v_used + v_count;
    IF license_id IS NULL AND subscription_id IS NULL AND v_count < v_row.n THEN
      subscription_id := v_row.id;
    END IF;
  END LOOP;
  SELECT a.* INTO v_existing FROM public.seat_assignments AS a WHERE a.member_user_id = p_member_id FOR UPDATE;
  -- A seat of a team no longer in force (refunded, expired, unlinked, no longer a team) holds
  -- nobody: it is given up here, so a stranger who seated someone and was refunded cannot keep
  -- them from their own team (seat_taken only for a team in force; issue 22).
  IF FOUND AND NOT EXISTS (
       SELECT 1 FROM public.licenses AS k
        CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
        WHERE k.id = v_existing.license_id AND t.plan_id IS NOT NULL AND COALESCE(t.seats, k.quantity) > 1
          AND k.status IN ('active', 'inactive') AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now())
       UNION ALL
       SELECT 1 FROM public.user_subscriptions AS s
        WHERE s.id = v_existing.subscription_id AND s.status <> 'manual' AND s.quantity > 1
          AND public.subscription_grants_access(s.status, s.current_period_end, pg_catalog.now())) THEN
    DELETE FROM public.seat_assignments AS a WHERE a.member_user_id = p_member_id;
    v_existing := NULL;
  END IF;
  IF v_existing.member_user_id IS NOT NULL THEN
    IF v_existing.owner_user_id <> p_owner_id THEN
      RAISE EXCEPTION 'seat_taken: this member already holds a seat of another team' USING ERRCODE = 'PA088';
    END IF;
    license_id := v_existing.license_id; subscription_id := v_existing.subscription_id;
    seats_used := v_used; seats := v_total;
    RETURN;
  END IF;
  IF license_id IS NULL AND subscription_id IS NULL THEN
    RAISE EXCEPTION 'no_seats_left: all % seats are taken; remove a member or buy more seats', v_total USING ERRCODE = 'PA087';
  END IF;
  -- seat_order is drawn here, after the locks above: a seat's place follows the order seats are given.
  INSERT INTO public.seat_assignments (license_id, subscription_id, owner_user_id, member_user_id)
  VALUES (license_id, subscription_id, p_owner_id, p_member_id);
  seats_used := v_used + 1;
  seats := v_total;
END;
$function$;

CREATE OR REPLACE FUNCTION public.seat_assign(p_owner_id uuid, p_member_id uuid, OUT license_id uuid, OUT seats_used integer, OUT seats integer)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
BEGIN
  SELECT m.license_id, m.seats_used, m.seats INTO license_id, seats_used, seats
    FROM public.seat_assign_member(p_owner_id, p_member_id) AS m;
END;
$function$;
