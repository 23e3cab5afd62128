// The two servers of the Deno HTTP line of `npm run bench`, in one Deno process (the load generator
// runs in the bench's Node process): the Deno recipe of docs/deploy.md (createPluginServer over
// createPluginAuth on postgres.js, served by Deno.serve), and a minimal Deno.serve handler doing the
// same work by hand: the bearer token's JWT checked with jose, its SHA-256 (Web Crypto), then the
// same two prepared calls (verify_plugin_session, consume_usage) on the same pool. The counterpart
// of bench/http-servers.ts on Node. Prints `READY <library port> <bare port>` once both listen;
// stops on SIGTERM. Environment: BENCH_HTTP_DATABASE_URL, BENCH_HTTP_SECRET, BENCH_HTTP_POOL.
import { jwtVerify } from 'jose';
import { createPluginAuth, createPluginServer, openPostgresJs } from '../src/edge/index.ts';

declare const Deno: {
  env: { get(name: string): string | undefined };
  serve(
    options: { port: number; hostname: string; onListen(addr: { port: number }): void },
    handler: (request: Request) => Promise<Response>,
  ): { finished: Promise<void>; shutdown(): Promise<void> };
  addSignalListener(signal: 'SIGTERM', handler: () => void): void;
  exit(code: number): never;
};

const secret = Deno.env.get('BENCH_HTTP_SECRET')!;
const db = await openPostgresJs(Deno.env.get('BENCH_HTTP_DATABASE_URL'), { max: Number(Deno.env.get('BENCH_HTTP_POOL') ?? 8) });
const auth = createPluginAuth(db, { tokenSecret: secret });

const listen = (handler: (request: Request) => Promise<Response>) =>
  new Promise<number>((resolve) => {
    Deno.serve({ port: 0, hostname: '127.0.0.1', onListen: ({ port }) => resolve(port) }, handler);
  });

// A: the library, as the Deno recipe serves it.
const libraryPort = await listen(createPluginServer(auth, { meter: { '/plugin/resize': { action: 'resize' } }, log: () => {} }));

// B: the same work, by hand. The SQL texts are the library's (src/tokens/tokens.ts,
// src/usage/usage.ts), prepared under names of their own.
const VERIFY = 'SELECT status, user_id, expires_at, device_name, device_id FROM public.verify_plugin_session($1::uuid, $2::text)';
const CONSUME = 'SELECT * FROM public.consume_usage($1::uuid, $2::varchar, $3::integer, $4::text, $5::jsonb)';
const key = new TextEncoder().encode(secret);
const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', 'access-control-allow-origin': '*' } });
const hex = (bytes: ArrayBuffer) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
const barePort = await listen(async (request) => {
  try {
    const body = (await request.json()) as Record<string, unknown>;
    if (typeof body !== 'object' || body === null) return json(400, { error: 'invalid_json' });
    const token = /^Bearer (\S{1,4096})$/.exec(request.headers.get('authorization') ?? '')?.[1] ?? '';
    const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], issuer: 'figma-plugin-auth-db', audience: 'figma-plugin' });
    const digest = hex(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token)));
    const [session] = await db.query<{ status: string; user_id: string }>(VERIFY, [payload.jti, digest], { prepare: 'bench_http_verify' });
    if (session?.status !== 'ok' || session.user_id !== payload.sub) return json(401, { error: 'token_invalid' });
    const [row] = await db.query<{ allowed: boolean; reason: string; plan_slug: string; used: number; usage_limit: number | null; remaining: number | null; batch_limit: number | null; resets_at: Date | null; replayed: boolean }>(
      CONSUME, [session.user_id, 'resize', 1, null, null], { prepare: 'bench_http_consume' });
    return json(row!.allowed ? 200 : 402, {
      allowed: row!.allowed, reason: row!.reason, planSlug: row!.plan_slug, used: row!.used, usageLimit: row!.usage_limit,
      remaining: row!.remaining, batchLimit: row!.batch_limit, resetsAt: row!.resets_at, replayed: row!.replayed,
    });
  } catch {
    return json(500, { error: 'internal_error' });
  }
});

console.log(`READY ${libraryPort} ${barePort}`);
Deno.addSignalListener('SIGTERM', () => {
  db.close().finally(() => Deno.exit(0));
});
