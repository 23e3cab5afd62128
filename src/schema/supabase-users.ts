// The opt-in Supabase user sync (sql/opt-in/supabase_auth_users.sql): a public.users row for each
// auth.users row, by trigger, plus a one-time copy of the existing ones. Never part of setup: a
// host's tables get it only when asked (`setup --supabase-auth-users`, or this function).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withTypedErrors, type Database } from '../core/db.ts';
import { SetupError } from '../core/errors.ts';

export const SUPABASE_USER_SYNC_FILE = fileURLToPath(new URL('../../sql/opt-in/supabase_auth_users.sql', import.meta.url));

/** The SQL the sync installs, for review or a migration tool of the host's own. */
export function supabaseUserSyncSql(): string {
  return readFileSync(SUPABASE_USER_SYNC_FILE, 'utf8');
}

/** Installs the sync in one transaction. Needs Supabase's auth.users (supabase_auth_missing otherwise). Re-running changes nothing. */
export async function installSupabaseUserSync(db: Database): Promise<void> {
  const typed = withTypedErrors(db);
  await typed.transaction(async (tx) => {
    const found = await tx.query<{ ok: boolean }>("SELECT pg_catalog.to_regclass('auth.users') IS NOT NULL AS ok");
    if (!found[0]?.ok) {
      throw new SetupError('supabase_auth_missing', 'supabase_auth_missing: this database has no auth.users table (Supabase Auth); the user sync is for Supabase projects');
    }
    await tx.exec(supabaseUserSyncSql());
  });
}
