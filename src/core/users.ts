// Operators name users the way they know them: by id or by email. One lookup, shared by the CLI
// commands that take a <user>, so "unknown user" is one error everywhere.
import { withTypedErrors, type Queryable } from './queryable.ts';
import { NotFoundError, ValidationError } from './errors.ts';
import { hasControl, isUuid } from './validation.ts';

export interface UserRef {
  id: string;
  email: string;
  name: string | null;
  createdAt: Date | null;
}

/**
 * The user with this id (a uuid) or email. Emails match case-insensitively; if two stored emails
 * differ only in case, the exact one wins. A value that is neither a uuid nor shaped like an email
 * (an '@', at most 320 characters, no control character) is `invalid_user_id` (ValidationError),
 * never echoed: it may be a token pasted in the wrong place. Throws NotFoundError `unknown_user`
 * when no user has that id or email.
 */
export async function findUser(db: Pick<Queryable, 'query'>, idOrEmail: string): Promise<UserRef> {
  db = withTypedErrors(db);
  const value: string = typeof idOrEmail === 'string' ? idOrEmail.trim() : '';
  const byId: boolean = isUuid(value);
  if (!byId && (!value.includes('@') || value.length > 320 || hasControl(value))) {
    throw new ValidationError('invalid_user_id', 'invalid_user_id: give a user id (a uuid) or an email address');
  }
  let rows: { id: string; email: string; name: string | null; created_at: Date | null }[];
  rows = byId
    ? await db.query('SELECT id, email, name, created_at FROM public.users WHERE id = $1::uuid', [value])
    : await db.query(
        `SELECT id, email, name, created_at FROM public.users
          WHERE lower(email) = lower($1::varchar)
          ORDER BY (email = $1::varchar) DESC
          LIMIT 1`,
        [value],
      );
  const row = rows[0];
  if (!row) {
    throw new NotFoundError('unknown_user', `unknown_user: no user with ${byId ? 'id' : 'email'} "${value}"`);
  }
  return { id: row.id, email: row.email, name: row.name, createdAt: row.created_at };
}
