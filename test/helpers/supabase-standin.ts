// A stand-in for Supabase's REST endpoint /rest/v1/rpc/<function>, in front of a REAL PostgreSQL
// database: it checks the service-role key like the API gateway does, finds the function like
// PostgREST does (PGRST202 when it is missing), and runs it with named arguments. Only the HTTP
// layer is stood in; every statement runs on the real server, one call per transaction.
import { createServer, type Server } from 'node:http';
import pg from 'pg';

export interface StandIn {
  url: string;
  calls: string[];
  close(): Promise<void>;
}

export async function startSupabaseStandIn(databaseUrl: string, serviceRoleKey: string): Promise<StandIn> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  // An idle connection ended by the server (the test dropping its database WITH (FORCE)) must not
  // crash the test process; a request in flight still gets its error.
  pool.on('error', () => {});
  const calls: string[] = [];
  const server: Server = createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      const match = /^\/rest\/v1\/rpc\/([a-z_][a-z0-9_]*)$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !match) return send(404, { message: 'not found' });
      if (req.headers.apikey !== serviceRoleKey || req.headers.authorization !== `Bearer ${serviceRoleKey}`) {
        return send(401, { message: 'Invalid API key', hint: 'Double check your Supabase `anon` or `service_role` API key.' });
      }
      const name = match[1]!;
      calls.push(name);
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const args = (raw ? JSON.parse(raw) : {}) as Record<string, unknown>;
      const found = await pool.query<{ args: string[] | null }>(
        `SELECT p.proargnames AS args FROM pg_catalog.pg_proc p
          WHERE p.pronamespace = 'public'::regnamespace AND p.proname = $1`,
        [name],
      );
      const argNames = Object.keys(args).sort();
      const fn = found.rows.find((r) => JSON.stringify([...(r.args ?? [])].sort()) === JSON.stringify(argNames));
      if (!fn) {
        return send(404, {
          code: 'PGRST202',
          message: `Could not find the function public.${name}(${argNames.join(', ')}) in the schema cache`,
          details: 'Searched for the function with the given argument names, but no matches were found in the schema cache.',
          hint: null,
        });
      }
      const params = argNames.map((a) => args[a]);
      const call = argNames.map((a, i) => `"${a}" => $${i + 1}`).join(', ');
      const result = await pool.query(`SELECT public."${name}"(${call}) AS result`, params);
      return send(200, result.rows[0]?.result ?? null);
    } catch (error) {
      const e = error as { code?: string; message?: string; detail?: string; hint?: string };
      return send(400, { code: e.code ?? 'XX000', message: e.message, details: e.detail ?? null, hint: e.hint ?? null });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await pool.end();
    },
  };
}

/** The exec_sql function the README tells Supabase users to create (service_role only). */
export const EXEC_SQL_DDL = `
CREATE OR REPLACE FUNCTION public.exec_sql(sql text) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
  EXECUTE sql;
END;
$$;
REVOKE ALL ON FUNCTION public.exec_sql(text) FROM PUBLIC;
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
    REVOKE ALL ON FUNCTION public.exec_sql(text) FROM anon, authenticated;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
    GRANT EXECUTE ON FUNCTION public.exec_sql(text) TO service_role;
  END IF;
END $$;
`;
