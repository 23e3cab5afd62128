// Team seats (sql/016, sql/018): a team license (a purchase of N > 1 seats: Gumroad's multi-seat
// quantity, or a product mapping with seats) or a team Stripe subscription (items.data[0].quantity
// N > 1) lets its owner assign N members, each of whom gets its plan as source 'seat'.
// seat_assign_member locks the owner's team licenses and subscription, so concurrent assigns queue
// and the N+1th is no_seats_left, exactly. When a team shrinks below its members, the members
// assigned first keep their seats (plugin_auth_grants); the newest wait for a free one.
import { withTypedErrors, type Queryable } from '../core/queryable.ts';
import { NotFoundError } from '../core/errors.ts';
import * as validate from '../core/validation.ts';

export interface SeatMember {
  userId: string;
  /** The team license the seat is of, or null for a seat of the owner's Stripe subscription. */
  licenseId: string | null;
  /** The owner's Stripe subscription row (user_subscriptions.id) the seat is of, or null. */
  subscriptionId: string | null;
  assignedAt: Date;
  /**
   * Whether the seat grants its plan now: its team is in force and the seat is among the first N
   * given of the team's N seats. False for the newest members after a decrease.
   */
  active: boolean;
}

export interface SeatList {
  /** Seats bought over the owner's team licenses and team Stripe subscription in force. */
  seats: number;
  /** Members assigned, in the order they were (after a decrease, possibly more than seats: see SeatMember.active). */
  used: number;
  members: SeatMember[];
}

export interface SeatAssignment {
  /** The team license the member holds a seat of (null: of the Stripe subscription). */
  licenseId: string | null;
  /** The Stripe subscription row the member holds a seat of (null: of a license). */
  subscriptionId: string | null;
  seatsUsed: number;
  seats: number;
}

const TEAM_SEATS_SQL = `
  SELECT COALESCE((SELECT sum(COALESCE(t.seats, k.quantity))::integer FROM public.licenses k
                     CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) t
                    WHERE k.user_id = $1::uuid AND t.plan_id IS NOT NULL AND COALESCE(t.seats, k.quantity) > 1
                      AND k.status IN ('active', 'inactive') AND (k.expires_at IS NULL OR k.expires_at > now())), 0)
       + COALESCE((SELECT s.quantity FROM public.user_subscriptions s
                    WHERE s.user_id = $1::uuid AND s.status <> 'manual' AND s.quantity > 1
                      AND public.subscription_grants_access(s.status, s.current_period_end, now())), 0) AS seats,
         (SELECT jsonb_agg(jsonb_build_object(
                   'userId', a.member_user_id, 'licenseId', a.license_id, 'subscriptionId', a.subscription_id,
                   'assignedAt', a.assigned_at,
                   'active', EXISTS (SELECT 1 FROM public.plugin_auth_grants(a.member_user_id, now()) g WHERE g.source = 'seat'))
                 ORDER BY a.seat_order)
            FROM public.seat_assignments a WHERE a.owner_user_id = $1::uuid) AS members`;

export function createSeats(db: Queryable) {
  db = withTypedErrors(db);
  const list = async (ownerId: string): Promise<SeatList> => {
    validate.userId(ownerId, 'ownerId');
    const rows = await db
      .query<{ seats: number; members: unknown }>(TEAM_SEATS_SQL, [ownerId]);
    const raw = rows[0]!.members;
    type Raw = Omit<SeatMember, 'assignedAt'> & { assignedAt: string };
    const members = ((typeof raw === 'string' ? JSON.parse(raw) : raw ?? []) as Raw[])
      .map((m) => ({ userId: m.userId, licenseId: m.licenseId, subscriptionId: m.subscriptionId, assignedAt: new Date(m.assignedAt), active: m.active }));
    return { seats: rows[0]!.seats, used: members.length, members };
  };

  return {
    /**
     * Gives the member a seat of the owner's team licenses or team Stripe subscription
     * (idempotent). Errors: invalid_user_id, unknown_user, seat_taken, no_seats_left.
     */
    async assign(ownerId: string, memberUserId: string): Promise<SeatAssignment> {
      validate.userId(ownerId, 'ownerId');
      validate.userId(memberUserId, 'memberUserId');
      const rows = await db
        .query<{ license_id: string | null; subscription_id: string | null; seats_used: number; seats: number }>(
          'SELECT * FROM public.seat_assign_member($1::uuid, $2::uuid)', [ownerId, memberUserId]);
      const row = rows[0]!;
      return { licenseId: row.license_id, subscriptionId: row.subscription_id, seatsUsed: row.seats_used, seats: row.seats };
    },
    /** Takes the member's seat back (the next member waiting after a decrease gets it). Errors: invalid_user_id, seat_not_found. */
    async remove(ownerId: string, memberUserId: string): Promise<void> {
      validate.userId(ownerId, 'ownerId');
      validate.userId(memberUserId, 'memberUserId');
      const rows = await db
        .query('DELETE FROM public.seat_assignments WHERE owner_user_id = $1::uuid AND member_user_id = $2::uuid RETURNING member_user_id', [ownerId, memberUserId]);
      if (rows.length === 0) throw new NotFoundError('seat_not_found', 'seat_not_found: this member holds no seat of this owner');
    },
    /** The owner's seats and who holds them. */
    list,
  };
}

export type Seats = ReturnType<typeof createSeats>;
