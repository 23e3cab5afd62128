// Team seats (sql/016): a team license (a purchase of N > 1 seats: Gumroad's multi-seat quantity,
// or a product mapping with seats) lets its owner assign N members, each of whom gets the
// license's plan as source 'seat'. seat_assign locks the owner's team licenses, so concurrent
// assigns queue and the N+1th is no_seats_left, exactly.
import type { Queryable } from '../core/db.ts';
import { NotFoundError, fromDatabaseError } from '../core/errors.ts';
import * as validate from '../core/validation.ts';

export interface SeatList {
  /** Seats bought over the owner's team licenses in force. */
  seats: number;
  used: number;
  members: { userId: string; licenseId: string; assignedAt: Date }[];
}

export function createSeats(db: Queryable) {
  const list = async (ownerId: string): Promise<SeatList> => {
    validate.userId(ownerId, 'ownerId');
    const rows = await db
      .query<{ seats: number; members: unknown }>(
        `SELECT COALESCE((SELECT sum(COALESCE(t.seats, k.quantity))::integer FROM public.licenses k
                            CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) t
                           WHERE k.user_id = $1::uuid AND t.plan_id IS NOT NULL AND COALESCE(t.seats, k.quantity) > 1
                             AND k.status IN ('active', 'inactive') AND (k.expires_at IS NULL OR k.expires_at > now())), 0) AS seats,
                (SELECT jsonb_agg(jsonb_build_object('userId', a.member_user_id, 'licenseId', a.license_id, 'assignedAt', a.assigned_at)
                                  ORDER BY a.assigned_at, a.member_user_id)
                   FROM public.seat_assignments a WHERE a.owner_user_id = $1::uuid) AS members`,
        [ownerId],
      )
      .catch((e: unknown) => Promise.reject(fromDatabaseError(e)));
    const raw = rows[0]!.members;
    const members = ((typeof raw === 'string' ? JSON.parse(raw) : raw ?? []) as { userId: string; licenseId: string; assignedAt: string }[])
      .map((m) => ({ userId: m.userId, licenseId: m.licenseId, assignedAt: new Date(m.assignedAt) }));
    return { seats: rows[0]!.seats, used: members.length, members };
  };

  return {
    /** Gives the member a seat of the owner's team licenses (idempotent). Errors: invalid_user_id, unknown_user, seat_taken, no_seats_left. */
    async assign(ownerId: string, memberUserId: string): Promise<{ licenseId: string; seatsUsed: number; seats: number }> {
      validate.userId(ownerId, 'ownerId');
      validate.userId(memberUserId, 'memberUserId');
      const rows = await db
        .query<{ license_id: string; seats_used: number; seats: number }>('SELECT * FROM public.seat_assign($1::uuid, $2::uuid)', [ownerId, memberUserId])
        .catch((e: unknown) => Promise.reject(fromDatabaseError(e)));
      return { licenseId: rows[0]!.license_id, seatsUsed: rows[0]!.seats_used, seats: rows[0]!.seats };
    },
    /** Takes the member's seat back. Errors: invalid_user_id, seat_not_found. */
    async remove(ownerId: string, memberUserId: string): Promise<void> {
      validate.userId(ownerId, 'ownerId');
      validate.userId(memberUserId, 'memberUserId');
      const rows = await db
        .query('DELETE FROM public.seat_assignments WHERE owner_user_id = $1::uuid AND member_user_id = $2::uuid RETURNING member_user_id', [ownerId, memberUserId])
        .catch((e: unknown) => Promise.reject(fromDatabaseError(e)));
      if (rows.length === 0) throw new NotFoundError('seat_not_found', 'seat_not_found: this member holds no seat of this owner');
    },
    /** The owner's seats and who holds them. */
    list,
  };
}

export type Seats = ReturnType<typeof createSeats>;
