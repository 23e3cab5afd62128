-- Teams that manage themselves: invitations with claim links, removal, leaving, ownership transfer.
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).
-- Lock order, everywhere: the owner's team lock (advisory, namespace 7330, key the owner id), an
-- invitation's row, the owner's team licenses (by id), the subscriptions lock of the users
-- (7305, the Stripe sync's), the Stripe subscription row. seat_assign_member takes the licenses and
-- the subscription row in the same order; the Stripe sync takes 7305 before the row.

CREATE OR REPLACE FUNCTION public.team_in_force(p_owner_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  SELECT EXISTS (
           SELECT 1 FROM public.licenses AS k
            CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
            WHERE k.user_id = p_owner_id AND t.plan_id IS NOT NULL AND COALESCE(t.seats, k.quantity) > 1
              AND k.status IN ('active', 'inactive') AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now()))
      OR EXISTS (
           SELECT 1 FROM public.user_subscriptions AS s
            WHERE s.user_id = p_owner_id AND s.status <> 'manual' AND s.quantity > 1
              AND public.subscription_grants_access(s.status, s.current_period_end, pg_catalog.now()));
$function$;

CREATE OR REPLACE FUNCTION public.team_invite(p_owner_id uuid, p_token_hash text, p_email character varying, p_figma_user_id character varying, p_ttl_seconds integer DEFAULT 604800, p_max_pending integer DEFAULT 1000, OUT invitation_id uuid, OUT expires_at timestamp with time zone)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
DECLARE
  v_pending INTEGER;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_token_hash, 'the claim token');
  PERFORM public.plugin_auth_require_user(p_owner_id);
  IF (p_email IS NULL) = (p_figma_user_id IS NULL)
     OR (p_email IS NOT NULL AND p_email !~ '^[^@[:space:][:cntrl:][:upper:]]{1,200}@[^@[:space:][:cntrl:][:upper:]]{1,200}$')
     OR (p_figma_user_id IS NOT NULL AND p_figma_user_id !~ '^[A-Za-z0-9_.:-]{1,255}$') THEN
    RAISE EXCEPTION 'invalid_invitation: invite one lower-case email address or one Figma user id' USING ERRCODE = 'PA134';
  END IF;
  IF p_ttl_seconds IS NULL OR p_ttl_seconds < 600 OR p_ttl_seconds > 2592000 THEN
    RAISE EXCEPTION 'invalid_invitation: an invitation lives 600 seconds (10 minutes) to 2592000 (30 days)' USING ERRCODE = 'PA134';
  END IF;
  -- Serializes the owner's invitations (the cap below is exact) with claims and transfers: the
  -- team is checked under the lock, so an invitation never lands on a team just transferred.
  PERFORM pg_catalog.pg_advisory_xact_lock(7330, pg_catalog.hashtext(p_owner_id::text));
  IF NOT public.team_in_force(p_owner_id) THEN
    RAISE EXCEPTION 'team_not_found: this user owns no team in force (a license or Stripe subscription of more than one seat)' USING ERRCODE = 'PA135';
  END IF;
  -- A new invitation to the same person replaces the pending one: one live link per invitee.
  UPDATE public.team_invitations AS i SET revoked_at = pg_catalog.now()
   WHERE i.owner_user_id = p_owner_id AND i.claimed_at IS NULL AND i.revoked_at IS NULL
     AND (i.invitee_email = p_email OR i.invitee_figma_user_id = p_figma_user_id);
  SELECT pg_catalog.count(*)::integer INTO v_pending FROM public.team_invitations AS i
   WHERE i.owner_user_id = p_owner_id AND i.claimed_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > pg_catalog.now();
  IF v_pending >= COALESCE(p_max_pending, 1000) THEN
    RAISE EXCEPTION 'too_many_invitations: % invitations are pending; revoke some or wait until they expire', v_pending USING ERRCODE = 'PA138';
  END IF;
  INSERT INTO public.team_invitations (owner_user_id, token_hash, invitee_email, invitee_figma_user_id, expires_at)
  VALUES (p_owner_id, p_token_hash, p_email, p_figma_user_id, pg_catalog.now() + pg_catalog.make_interval(secs => p_ttl_seconds))
  RETURNING id, team_invitations.expires_at INTO invitation_id, expires_at;
END;
$function$;

CREATE OR REPLACE FUNCTION public.team_claim_invitation(p_token_hash text, p_user_id uuid, OUT owner_user_id uuid, OUT license_id uuid, OUT subscription_id uuid, OUT seats_used integer, OUT seats integer)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
DECLARE
  v_invitation public.team_invitations%ROWTYPE;
  v_email TEXT;
  v_owner UUID;
BEGIN
  PERFORM public.plugin_auth_check_digest(p_token_hash, 'the claim token');
  PERFORM public.plugin_auth_require_user(p_user_id);
  SELECT u.email INTO v_email FROM public.users AS u WHERE u.id = p_user_id;
  -- The owner's team lock, then the invitation's row: of two claims of one link, the second waits
  -- and finds it used. A transfer may move the invitation to another owner while we wait for the
  -- lock: then the new owner's lock is taken too.
  LOOP
    SELECT i.owner_user_id INTO v_owner FROM public.team_invitations AS i WHERE i.token_hash = p_token_hash;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'invitation_not_found: no invitation has this claim link' USING ERRCODE = 'PA130';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(7330, pg_catalog.hashtext(v_owner::text));
    SELECT i.* INTO v_invitation FROM public.team_invitations AS i WHERE i.token_hash = p_token_hash FOR UPDATE;
    EXIT WHEN v_invitation.owner_user_id = v_owner;
  END LOOP;
  IF v_invitation.claimed_at IS NOT NULL OR v_invitation.revoked_at IS NOT NULL THEN
    RAISE EXCEPTION 'invitation_used: this claim link was already used, or the owner revoked or replaced it' USING ERRCODE = 'PA132';
  END IF;
  IF v_invitation.expires_at <= pg_catalog.now() THEN
    RAISE EXCEPTION 'invitation_expired: this claim link expired; ask the team owner for a new one' USING ERRCODE = 'PA131';
  END IF;
  IF (v_invitation.invitee_email IS NOT NULL AND pg_catalog.lower(v_email) IS DISTINCT FROM v_invitation.invitee_email::text)
     OR (v_invitation.invitee_figma_user_id IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM public.figma_users AS f
            WHERE f.figma_user_id = v_invitation.invitee_figma_user_id AND f.user_id = p_user_id)) THEN
    RAISE EXCEPTION 'invitation_not_for_you: this claim link was sent to another email address or Figma account' USING ERRCODE = 'PA133';
  END IF;
  -- The seat, under the team's locks (no_seats_left, seat_taken): a refusal rolls the claim back
  -- and leaves the link unused.
  SELECT m.license_id, m.subscription_id, m.seats_used, m.seats INTO license_id, subscription_id, seats_used, seats
    FROM public.seat_assign_member(v_invitation.owner_user_id, p_user_id) AS m;
  UPDATE public.team_invitations AS i SET claimed_at = pg_catalog.now(), claimed_by = p_user_id WHERE i.id = v_invitation.id;
  owner_user_id := v_invitation.owner_user_id;
END;
$function$;

CREATE OR REPLACE FUNCTION public.team_revoke_invitation(p_owner_id uuid, p_invitation_id uuid)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
BEGIN
  UPDATE public.team_invitations AS i SET revoked_at = pg_catalog.now()
   WHERE i.id = p_invitation_id AND i.owner_user_id = p_owner_id AND i.claimed_at IS NULL AND i.revoked_at IS NULL;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'invitation_not_found: this owner has no pending invitation with this id' USING ERRCODE = 'PA130';
  END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.team_remove_member(p_owner_id uuid, p_member_id uuid)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
BEGIN
  -- The reason the seat history records (plugin_auth_record_seat_history), for this delete only.
  PERFORM pg_catalog.set_config('plugin_auth.seat_change', 'removed', true);
  DELETE FROM public.seat_assignments AS a WHERE a.owner_user_id = p_owner_id AND a.member_user_id = p_member_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'seat_not_found: this member holds no seat of this owner' USING ERRCODE = 'PA137';
  END IF;
  PERFORM pg_catalog.set_config('plugin_auth.seat_change', '', true);
END;
$function$;

CREATE OR REPLACE FUNCTION public.team_leave(p_member_id uuid)
 RETURNS uuid
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_owner UUID;
BEGIN
  PERFORM pg_catalog.set_config('plugin_auth.seat_change', 'left', true);
  DELETE FROM public.seat_assignments AS a WHERE a.member_user_id = p_member_id RETURNING a.owner_user_id INTO v_owner;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'seat_not_found: this user holds no seat of any team' USING ERRCODE = 'PA137';
  END IF;
  PERFORM pg_catalog.set_config('plugin_auth.seat_change', '', true);
  RETURN v_owner;
END;
$function$;

CREATE OR REPLACE FUNCTION public.team_transfer_ownership(p_owner_id uuid, p_new_owner_id uuid, OUT licenses integer, OUT subscription_id uuid, OUT members integer, OUT invitations integer)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
DECLARE
  v_licenses UUID[];
BEGIN
  PERFORM public.plugin_auth_require_user(p_owner_id);
  PERFORM public.plugin_auth_require_user(p_new_owner_id);
  IF p_owner_id = p_new_owner_id THEN
    RAISE EXCEPTION 'team_transfer_blocked: the new owner is the owner already' USING ERRCODE = 'PA136';
  END IF;
  -- The lock order (above): the owner's team lock, the team licenses by id, both users'
  -- subscription locks, the subscription row.
  PERFORM pg_catalog.pg_advisory_xact_lock(7330, pg_catalog.hashtext(p_owner_id::text));
  SELECT pg_catalog.array_agg(x.id ORDER BY x.id) INTO v_licenses FROM (
    SELECT k.id FROM public.licenses AS k
     CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
     WHERE k.user_id = p_owner_id AND t.plan_id IS NOT NULL AND COALESCE(t.seats, k.quantity) > 1
     ORDER BY k.id
       FOR UPDATE OF k) AS x;
  PERFORM pg_catalog.pg_advisory_xact_lock(7305, pg_catalog.hashtext(x.u::text))
     FROM (SELECT LEAST(p_owner_id, p_new_owner_id) AS u UNION ALL SELECT GREATEST(p_owner_id, p_new_owner_id)) AS x;
  SELECT s.id INTO subscription_id FROM public.user_subscriptions AS s
   WHERE s.user_id = p_owner_id AND s.status <> 'manual' AND s.quantity > 1
     FOR UPDATE OF s;
  IF v_licenses IS NULL AND subscription_id IS NULL THEN
    RAISE EXCEPTION 'team_not_found: this user owns no team (a license or Stripe subscription of more than one seat)' USING ERRCODE = 'PA135';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.seat_assignments AS a WHERE a.owner_user_id = p_owner_id AND a.member_user_id = p_new_owner_id) THEN
    RAISE EXCEPTION 'team_transfer_blocked: the new owner must be a member of this team (invite them, and transfer once they have claimed a seat)' USING ERRCODE = 'PA136';
  END IF;
  IF subscription_id IS NOT NULL THEN
    IF EXISTS (SELECT 1 FROM public.user_subscriptions AS s WHERE s.user_id = p_new_owner_id) THEN
      RAISE EXCEPTION 'team_transfer_blocked: the new owner has a subscription of their own; a user holds one subscription' USING ERRCODE = 'PA136';
    END IF;
    UPDATE public.user_subscriptions AS s SET user_id = p_new_owner_id WHERE s.id = subscription_id;
  END IF;
  UPDATE public.licenses AS k SET user_id = p_new_owner_id WHERE k.id = ANY (COALESCE(v_licenses, ARRAY[]::uuid[]));
  licenses := COALESCE(pg_catalog.cardinality(v_licenses), 0);
  UPDATE public.seat_assignments AS a SET owner_user_id = p_new_owner_id
   WHERE a.owner_user_id = p_owner_id
     AND (a.license_id = ANY (COALESCE(v_licenses, ARRAY[]::uuid[])) OR a.subscription_id = subscription_id);
  GET DIAGNOSTICS members = ROW_COUNT;
  UPDATE public.team_invitations AS i SET owner_user_id = p_new_owner_id
   WHERE i.owner_user_id = p_owner_id AND i.claimed_at IS NULL AND i.revoked_at IS NULL;
  GET DIAGNOSTICS invitations = ROW_COUNT;
  -- The plan history of both owners: one row per team moved (an owner's team grants them nothing
  -- directly, so grants_access is false; the members' seats are unchanged).
  INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
  SELECT o.user_id, g.plan_id, o.status, g.period_end, false, 'team', pg_catalog.now()
    FROM (SELECT t.plan_id, k.expires_at AS period_end FROM public.licenses AS k
           CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) AS t
           WHERE k.id = ANY (COALESCE(v_licenses, ARRAY[]::uuid[]))
          UNION ALL
          SELECT s.plan_id, s.current_period_end FROM public.user_subscriptions AS s WHERE s.id = subscription_id) AS g
   CROSS JOIN (VALUES (p_owner_id, 'transferred_out'), (p_new_owner_id, 'transferred_in')) AS o(user_id, status);
END;
$function$;
