// Teams that manage themselves (sql/028, sql/functions/teams.sql): a team owner (the buyer of a
// team license or of a Stripe subscription of N > 1 seats) invites a member by email or by a
// verified Figma identity with a claim link, and nobody is seated without claiming it. The link's
// token is random (32 bytes), given once, and stored as its SHA-256 digest only; it expires and is
// used once. The claim seats the member through seat_assign_member under the team's locks, so the
// last free seat claimed by two invitees at once goes to exactly one. Removing a member, leaving,
// and transferring ownership each land in user_plan_history.
import { withTypedErrors, type Queryable } from '../core/queryable.ts';
import { ValidationError } from '../core/errors.ts';
import { randomBase64url, sha256Hex } from '../core/bytes.ts';
import { DEFAULT_INVITATION_TTL_SECONDS, MAX_INVITATION_TTL_SECONDS, MAX_PENDING_INVITATIONS, MIN_INVITATION_TTL_SECONDS } from '../core/limits.ts';
import * as validate from '../core/validation.ts';
import { createSeats, type SeatMember } from './seats.ts';

export interface InviteInput {
  /** The member's email address: the claim must come from the user with this email (compared lower-case). */
  email?: string;
  /** Or the member's Figma user id: the claim must come from the user this Figma account is verified for (a payment token or Sign in with Figma). */
  figmaUserId?: string;
  /** How long the claim link works (default 7 days; 600 s to 30 days). */
  ttlSeconds?: number;
}

export interface Invitation {
  invitationId: string;
  /** The claim token: give it to the member (in a link). Returned once; only its SHA-256 is stored. */
  token: string;
  expiresAt: Date;
}

export interface Claim {
  ownerId: string;
  /** The team license the seat is of (null: of the owner's Stripe subscription). */
  licenseId: string | null;
  subscriptionId: string | null;
  seatsUsed: number;
  seats: number;
}

export interface PendingInvitation {
  invitationId: string;
  email: string | null;
  figmaUserId: string | null;
  createdAt: Date;
  expiresAt: Date;
}

export interface TeamMember extends SeatMember {
  /** The member's email (the owner invited it). */
  email: string;
}

export interface Team {
  /** Seats bought over the user's teams in force (0: the user owns no team in force). */
  seats: number;
  /** Members assigned (after a decrease, possibly more than seats: see `active`). */
  used: number;
  members: TeamMember[];
  /** Invitations not yet claimed, revoked or expired. */
  invitations: PendingInvitation[];
  /** The seat this user holds on someone's team, or null. */
  memberOf: { ownerId: string; active: boolean; assignedAt: Date } | null;
}

export interface Transfer {
  /** Team licenses moved to the new owner. */
  licenses: number;
  /** The Stripe subscription row moved (null: none). */
  subscriptionId: string | null;
  /** Seats now managed by the new owner. */
  members: number;
  /** Pending invitations now the new owner's. */
  invitations: number;
}

const CLAIM_TOKEN = /^[A-Za-z0-9_-]{43}$/;
const FIGMA_ID = /^[A-Za-z0-9_.:-]{1,255}$/;
const EMAIL = /^[^@\s\p{Cc}]{1,200}@[^@\s\p{Cc}]{1,200}$/u;

function invitee(input: InviteInput): { email: string | null; figmaUserId: string | null } {
  if (typeof input !== 'object' || input === null) throw new ValidationError('invalid_invitation', 'invalid_invitation: pass { email } or { figmaUserId }');
  const { email, figmaUserId } = input;
  if ((email === undefined) === (figmaUserId === undefined)) {
    throw new ValidationError('invalid_invitation', 'invalid_invitation: invite one email address or one Figma user id');
  }
  if (email !== undefined) {
    const normalized = typeof email === 'string' ? email.trim().toLowerCase() : '';
    if (!EMAIL.test(normalized) || validate.hasLoneSurrogate(normalized)) throw new ValidationError('invalid_invitation', 'invalid_invitation: email is not an email address');
    return { email: normalized, figmaUserId: null };
  }
  if (typeof figmaUserId !== 'string' || !FIGMA_ID.test(figmaUserId)) {
    throw new ValidationError('invalid_invitation', 'invalid_invitation: figmaUserId is 1 to 255 characters of A-Z a-z 0-9 _ . : -');
  }
  return { email: null, figmaUserId };
}

function ttl(value: unknown): number {
  if (value === undefined) return DEFAULT_INVITATION_TTL_SECONDS;
  if (!Number.isInteger(value) || (value as number) < MIN_INVITATION_TTL_SECONDS || (value as number) > MAX_INVITATION_TTL_SECONDS) {
    throw new ValidationError('invalid_invitation', `invalid_invitation: ttlSeconds is a whole number from ${MIN_INVITATION_TTL_SECONDS} to ${MAX_INVITATION_TTL_SECONDS}`);
  }
  return value as number;
}

function claimToken(value: unknown): string {
  if (typeof value !== 'string' || !CLAIM_TOKEN.test(value)) {
    throw new ValidationError('invalid_claim_token', 'invalid_claim_token: the claim token is the 43 characters an invitation gave');
  }
  return value;
}

const TEAM_SQL = `
  SELECT (SELECT jsonb_agg(jsonb_build_object('userId', a.member_user_id, 'email', u.email) ORDER BY a.seat_order)
            FROM public.seat_assignments a JOIN public.users u ON u.id = a.member_user_id
           WHERE a.owner_user_id = $1::uuid) AS emails,
         (SELECT jsonb_agg(jsonb_build_object('invitationId', i.id, 'email', i.invitee_email, 'figmaUserId', i.invitee_figma_user_id,
                                              'createdAt', i.created_at, 'expiresAt', i.expires_at) ORDER BY i.created_at, i.id)
            FROM public.team_invitations i
           WHERE i.owner_user_id = $1::uuid AND i.claimed_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()) AS invitations,
         (SELECT jsonb_build_object('ownerId', a.owner_user_id, 'assignedAt', a.assigned_at,
                   'active', EXISTS (SELECT 1 FROM public.plugin_auth_grants(a.member_user_id, now()) g WHERE g.source = 'seat'))
            FROM public.seat_assignments a WHERE a.member_user_id = $1::uuid) AS member_of`;

const parse = <T>(raw: unknown): T => (typeof raw === 'string' ? JSON.parse(raw) : raw) as T;

export function createTeams(db: Queryable) {
  db = withTypedErrors(db);
  const seats = createSeats(db);
  return {
    /**
     * Invites a member to the owner's team: a claim token to send them (in a link), valid for
     * ttlSeconds, once. A new invitation to the same person replaces their pending one. Seats
     * nobody: the member claims it (consent). Errors: invalid_user_id, invalid_invitation,
     * unknown_user, team_not_found (no team in force), too_many_invitations.
     */
    async invite(ownerId: string, input: InviteInput): Promise<Invitation> {
      validate.userId(ownerId, 'ownerId');
      const who = invitee(input);
      const ttlSeconds = ttl(input.ttlSeconds);
      const token = randomBase64url(32);
      const rows = await db.query<{ invitation_id: string; expires_at: Date }>(
        'SELECT * FROM public.team_invite($1::uuid, $2::text, $3::varchar, $4::varchar, $5::integer, $6::integer)',
        [ownerId, await sha256Hex(token), who.email, who.figmaUserId, ttlSeconds, MAX_PENDING_INVITATIONS],
      );
      return { invitationId: rows[0]!.invitation_id, token, expiresAt: rows[0]!.expires_at };
    },
    /**
     * The invited user accepts: one seat of the owner's team, in one transaction with the link
     * being used. Errors: invalid_user_id, invalid_claim_token, unknown_user, invitation_not_found,
     * invitation_used (claimed, revoked or replaced), invitation_expired, invitation_not_for_you,
     * no_seats_left, seat_taken (the link stays unused after these two).
     */
    async claim(userId: string, token: string): Promise<Claim> {
      validate.userId(userId);
      const hash = await sha256Hex(claimToken(token));
      const rows = await db.query<{ owner_user_id: string; license_id: string | null; subscription_id: string | null; seats_used: number; seats: number }>(
        'SELECT * FROM public.team_claim_invitation($1::text, $2::uuid)', [hash, userId]);
      const r = rows[0]!;
      return { ownerId: r.owner_user_id, licenseId: r.license_id, subscriptionId: r.subscription_id, seatsUsed: r.seats_used, seats: r.seats };
    },
    /** Revokes a pending invitation of the owner's (its link stops working). Errors: invalid_user_id, invalid_invitation_id, invitation_not_found. */
    async revokeInvitation(ownerId: string, invitationId: string): Promise<void> {
      validate.userId(ownerId, 'ownerId');
      if (!validate.isUuid(invitationId)) throw new ValidationError('invalid_invitation_id', 'invalid_invitation_id: invitationId must be a uuid');
      await db.query('SELECT public.team_revoke_invitation($1::uuid, $2::uuid)', [ownerId, invitationId]);
    },
    /** The owner takes a member's seat back (history: removed). Errors: invalid_user_id, seat_not_found. */
    async remove(ownerId: string, memberUserId: string): Promise<void> {
      validate.userId(ownerId, 'ownerId');
      validate.userId(memberUserId, 'memberUserId');
      await db.query('SELECT public.team_remove_member($1::uuid, $2::uuid)', [ownerId, memberUserId]);
    },
    /** A member gives up their seat (history: left). Errors: invalid_user_id, seat_not_found. */
    async leave(memberUserId: string): Promise<{ ownerId: string }> {
      validate.userId(memberUserId, 'memberUserId');
      const rows = await db.query<{ owner: string }>('SELECT public.team_leave($1::uuid) AS owner', [memberUserId]);
      return { ownerId: rows[0]!.owner };
    },
    /**
     * Hands the team to one of its members: the team licenses, the team Stripe subscription row,
     * the seats and the pending invitations become the new owner's; the seats themselves do not
     * change. Errors: invalid_user_id, unknown_user, team_not_found, team_transfer_blocked (not a
     * member; the owner; a Stripe team to a user with a subscription of their own).
     */
    async transfer(ownerId: string, newOwnerId: string): Promise<Transfer> {
      validate.userId(ownerId, 'ownerId');
      validate.userId(newOwnerId, 'newOwnerId');
      const rows = await db.query<{ licenses: number; subscription_id: string | null; members: number; invitations: number }>(
        'SELECT * FROM public.team_transfer_ownership($1::uuid, $2::uuid)', [ownerId, newOwnerId]);
      const r = rows[0]!;
      return { licenses: r.licenses, subscriptionId: r.subscription_id, members: r.members, invitations: r.invitations };
    },
    /** The user's team as its owner sees it (seats, members with emails, pending invitations), and the seat they hold. */
    async get(userId: string): Promise<Team> {
      validate.userId(userId);
      const list = await seats.list(userId);
      const row = (await db.query<{ emails: unknown; invitations: unknown; member_of: unknown }>(TEAM_SQL, [userId]))[0]!;
      const emails = new Map((parse<{ userId: string; email: string }[] | null>(row.emails) ?? []).map((e) => [e.userId, e.email]));
      const invitations = (parse<(Omit<PendingInvitation, 'createdAt' | 'expiresAt'> & { createdAt: string; expiresAt: string })[] | null>(row.invitations) ?? [])
        .map((i) => ({ invitationId: i.invitationId, email: i.email, figmaUserId: i.figmaUserId, createdAt: new Date(i.createdAt), expiresAt: new Date(i.expiresAt) }));
      const m = parse<{ ownerId: string; assignedAt: string; active: boolean } | null>(row.member_of);
      return {
        seats: list.seats,
        used: list.used,
        members: list.members.map((member) => ({ ...member, email: emails.get(member.userId) ?? '' })),
        invitations,
        memberOf: m ? { ownerId: m.ownerId, active: m.active, assignedAt: new Date(m.assignedAt) } : null,
      };
    },
  };
}

export type Teams = ReturnType<typeof createTeams>;
