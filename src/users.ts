// Operators name users the way they know them: by id or by email. One lookup, shared by the CLI
// commands that take a <user>, so "unknown user" is one error everywhere.
import type { Queryable } from './db.ts';
import { fromDatabaseError, NotFoundError } from './errors.ts';
import { isUuid } from './token-signer.ts';

export interface UserRef {
  id: string;
  email: string;
  name: string | null;
  createdAt: Date | null;
}

/**
 * The user with this id (a uuid) or email. Emails match case-insensitively; if two stored emails
 * differ only in case, the exact one wins. Throws NotFoundError `unknown_user`.
 */
export async function findUser(db: Pick<Queryable, 'query'>, idOrEmail: string): Promise<UserRef> {
  const value = idOrEmail.trim();
  const byId = isUuid(value);
  let rows: { id: string; email: string; name: string | null; created_at: Date | null }[];
  try {
    rows = byId
      ? await db.query('SELECT id, email, name, created_at FROM public.users WHERE id = $1', [value])
      : await db.query(
          `SELECT id, email, name, created_at FROM public.users
            WHERE lower(email) = lower($1)
            ORDER BY (email = $1) DESC
            LIMIT 1`,
          [value],
        );
  } catch (error) {
    throw fromDatabaseError(error);
  }
  const row = rows[0];
  if (!row) {
    throw new NotFoundError('unknown_user', `unknown_user: no user with ${byId ? 'id' : 'email'} "${value}"`);
  }
  return { id: row.id, email: row.email, name: row.name, createdAt: row.created_at };
}
