// Sign in with Figma, the database half: the user of a Figma identity the server verified through
// OAuth (GET /v1/me). One SQL call (public.figma_oauth_user, sql/functions/figma.sql) finds or creates the user under
// the per-Figma-user lock, so concurrent first sign-ins of one Figma account make one user. An email
// already used by another user is never merged: see docs/sign-in.md ("Linking").
import { withTypedErrors, type Database } from '../core/queryable.ts';
import { ValidationError } from '../core/errors.ts';
import { hasControl } from '../core/validation.ts';

export interface FigmaIdentity {
  /** /v1/me `id`: Figma's stable user id. */
  figmaUserId: string;
  /** /v1/me `email`, or null when Figma gave none. */
  email: string | null;
}

export interface FigmaIdentityUser {
  userId: string;
  /** This sign-in created the user. */
  created: boolean;
  /** The new user got Figma's email (false: it existed, or another user already has that email). */
  emailStored: boolean;
}

const FIGMA_ID = /^[A-Za-z0-9_.:-]{1,255}$/;

export function createFigmaIdentity(db: Database) {
  db = withTypedErrors(db);
  return {
    /** The user of a verified Figma identity, created on the first sign-in. Never stores a token. */
    async userFor(identity: FigmaIdentity): Promise<FigmaIdentityUser> {
      const { figmaUserId, email } = identity ?? ({} as FigmaIdentity);
      if (typeof figmaUserId !== 'string' || !FIGMA_ID.test(figmaUserId)) {
        throw new ValidationError('invalid_figma_user_id', 'invalid_figma_user_id: a Figma user id is 1 to 255 characters of A-Z a-z 0-9 _ . : -');
      }
      if (email !== null && (typeof email !== 'string' || email.length > 320 || hasControl(email) || !/^[^@\s]+@[^@\s]+$/.test(email))) {
        throw new ValidationError('invalid_figma_email', 'invalid_figma_email: the email Figma returned is not an address');
      }
      const rows = await db.transaction((tx) =>
        tx.query<{ user_id: string; created: boolean; email_stored: boolean }>(
          'SELECT user_id, created, email_stored FROM public.figma_oauth_user($1::varchar, $2::varchar)',
          [figmaUserId, email],
        ),
      );
      const row = rows[0]!;
      return { userId: row.user_id, created: row.created, emailStored: row.email_stored };
    },
  };
}

export type FigmaIdentityStore = ReturnType<typeof createFigmaIdentity>;
