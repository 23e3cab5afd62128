// The one server-side supabase-js client, for setup (exec_sql by rpc) and the command line's
// Supabase target (src/cli/target.ts): a service-role key, no session, and a WebSocket transport.
// @supabase/supabase-js and ws are optional peer dependencies: only this path needs them (a
// database URL, Supabase's included, goes through pg), so they are loaded here, on demand, and a
// missing one is `missing_dependency`, naming the package and the command that installs it.
import type { SupabaseClient } from '@supabase/supabase-js';
import { SetupError } from '../core/errors.ts';

/** Imports an optional package, or throws `missing_dependency` naming it. */
export async function loadOptional<T>(name: string, needs: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((error as Error).message).includes(name)) {
      throw new SetupError('missing_dependency', `missing_dependency: ${needs} needs the package ${name}, which is not installed: npm install ${name}`, { cause: error });
    }
    throw error;
  }
}

const NEEDS = 'the Supabase REST path (SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY without DATABASE_URL)';

/**
 * A server-side supabase-js client. supabase-js builds its realtime client eagerly, and on Node
 * before 22 (no global WebSocket) it needs a WebSocket constructor: the `ws` package it names.
 * We never open a socket; this only lets the client be created.
 */
export async function createSupabaseClient(url: string, serviceRoleKey: string): Promise<SupabaseClient> {
  const { createClient } = await loadOptional<typeof import('@supabase/supabase-js')>('@supabase/supabase-js', NEEDS);
  const transport = globalThis.WebSocket ?? (await loadOptional<typeof import('ws')>('ws', NEEDS)).default;
  return createClient(url, serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: transport as never },
  });
}
