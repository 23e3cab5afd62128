// The one server-side supabase-js client, for setup (exec_sql by rpc) and the command line's
// Supabase target (src/cli/target.ts): a service-role key, no session, and a WebSocket transport.
import { createClient, type SupabaseClient } from '@supabase/supabase-js';

/**
 * A server-side supabase-js client. supabase-js builds its realtime client eagerly, and on Node
 * before 22 (no global WebSocket) it needs a WebSocket constructor: the `ws` package it names.
 * We never open a socket; this only lets the client be created.
 */
export async function createSupabaseClient(url: string, serviceRoleKey: string): Promise<SupabaseClient> {
  const transport = globalThis.WebSocket ?? (await import('ws')).default;
  return createClient(url, serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: transport as never },
  });
}
