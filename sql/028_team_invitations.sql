-- 028: teams that manage themselves (issue 27, item 4). A team owner (the buyer of a team license
-- or of a Stripe subscription of N > 1 seats) invites a member by email or by a verified Figma
-- identity with a claim link; nobody is seated without claiming it (their consent). The link's
-- token is stored as its SHA-256 digest only; it expires, and it is used once.
--
-- - team_invitations: one row per invitation. Exactly one of invitee_email (lower-case) and
--   invitee_figma_user_id is set. A claim sets claimed_at and claimed_by in the same transaction
--   as the seat it gives (team_claim_invitation); a revoked or replaced invitation gets revoked_at.
--   Rows are kept as the team's record of invitations; deleting the owner deletes them.
--
-- State only (docs/schema.md): the functions (team_invite, team_claim_invitation,
-- team_revoke_invitation, team_remove_member, team_leave, team_transfer_ownership) are in
-- sql/functions/teams.sql; the seat history trigger function (now also for seats of Stripe
-- subscriptions, and with the reason a seat ended) in sql/functions/history.sql. New SQLSTATEs
-- PA130-PA137 (src/core/errors.ts). Written to run under SET LOCAL search_path = pg_catalog;
-- every name is schema-qualified.

CREATE TABLE IF NOT EXISTS public.team_invitations (
  id UUID DEFAULT pg_catalog.gen_random_uuid() NOT NULL,
  owner_user_id UUID NOT NULL,
  token_hash CHARACTER(64) NOT NULL,
  invitee_email CHARACTER VARYING(255),
  invitee_figma_user_id CHARACTER VARYING(255),
  created_at TIMESTAMP WITH TIME ZONE DEFAULT pg_catalog.now() NOT NULL,
  expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
  claimed_at TIMESTAMP WITH TIME ZONE,
  claimed_by UUID,
  revoked_at TIMESTAMP WITH TIME ZONE,
  CONSTRAINT team_invitations_pkey PRIMARY KEY (id),
  CONSTRAINT team_invitations_owner_user_id_fkey FOREIGN KEY (owner_user_id) REFERENCES public.users(id) ON DELETE CASCADE,
  CONSTRAINT team_invitations_claimed_by_fkey FOREIGN KEY (claimed_by) REFERENCES public.users(id) ON DELETE CASCADE,
  CONSTRAINT team_invitations_token_hash_check CHECK (token_hash OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$'),
  CONSTRAINT team_invitations_invitee_check CHECK ((invitee_email IS NULL) OPERATOR(pg_catalog.<>) (invitee_figma_user_id IS NULL)),
  CONSTRAINT team_invitations_email_check CHECK (
    invitee_email IS NULL OR (invitee_email::text OPERATOR(pg_catalog.~) '^[^@[:space:][:cntrl:][:upper:]]{1,200}@[^@[:space:][:cntrl:][:upper:]]{1,200}$')),
  CONSTRAINT team_invitations_figma_user_id_check CHECK (
    invitee_figma_user_id IS NULL OR (invitee_figma_user_id::text OPERATOR(pg_catalog.~) '^[A-Za-z0-9_.:-]{1,255}$')),
  CONSTRAINT team_invitations_expiry_check CHECK (expires_at OPERATOR(pg_catalog.>) created_at),
  CONSTRAINT team_invitations_claim_check CHECK ((claimed_at IS NULL) OPERATOR(pg_catalog.=) (claimed_by IS NULL))
);
COMMENT ON TABLE public.team_invitations IS 'team invitations: a claim link''s SHA-256 digest, who it is for, and whether it was claimed';

-- The claim looks the link up by its digest; one digest, one invitation.
CREATE UNIQUE INDEX IF NOT EXISTS idx_team_invitations_token_hash ON public.team_invitations (token_hash);
-- The owner's invitations (the team view, re-invites, transfers); the foreign keys' indexes.
CREATE INDEX IF NOT EXISTS idx_team_invitations_owner_user_id ON public.team_invitations (owner_user_id, created_at);
CREATE INDEX IF NOT EXISTS idx_team_invitations_claimed_by ON public.team_invitations (claimed_by);
