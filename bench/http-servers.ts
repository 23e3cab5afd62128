// The two servers of the HTTP line of `npm run bench`, in one process of their own (the load
// generator runs in the bench's process): the library's createPluginServer on Node (CORS, body
// read under its cap, token verify, consume, JSON), and a minimal node:http handler doing the same
// work by hand: the bearer token's JWT checked with jose, its SHA-256, then the same two prepared
// calls (verify_plugin_session, consume_usage), on the same pool. Prints `READY <library port>
// <bare port>` once both listen; stops on SIGTERM.
// Environment: BENCH_HTTP_DATABASE_URL, BENCH_HTTP_SECRET, BENCH_HTTP_POOL (connections).
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jwtVerify } from 'jose';
import { openDatabase } from '../src/core/db.ts';
import { createPluginAuth } from '../src/auth.ts';
import { createPluginServer } from '../src/server/index.ts';
import { serve } from '../src/http/node.ts';

const url = process.env.BENCH_HTTP_DATABASE_URL!;
const secret = process.env.BENCH_HTTP_SECRET!;
const db = await openDatabase(url, { max: Number(process.env.BENCH_HTTP_POOL ?? 8) });
const auth = createPluginAuth(db, { tokenSecret: secret });

// A: the library, as a plugin backend on Node serves it (docs/server.md).
const library = await serve(createPluginServer(auth, { meter: { '/plugin/resize': { action: 'resize' } }, log: () => {} }));

// B: the same work, by hand. The SQL texts are the library's (src/tokens/tokens.ts,
// src/usage/usage.ts), prepared under names of their own.
const VERIFY = 'SELECT status, user_id, expires_at, device_name, device_id FROM public.verify_plugin_session($1::uuid, $2::text)';
const CONSUME = 'SELECT * FROM public.consume_usage($1::uuid, $2::varchar, $3::integer, $4::text, $5::jsonb)';
const key = new TextEncoder().encode(secret);
const readAll = (req: IncomingMessage) =>
  new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
const answer = (res: ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'access-control-allow-origin': '*' }).end(text);
};
const bare = createServer(async (req, res) => {
  try {
    const body = JSON.parse((await readAll(req)).toString('utf8')) as Record<string, unknown>;
    if (typeof body !== 'object' || body === null) return answer(res, 400, { error: 'invalid_json' });
    const token = /^Bearer (\S{1,4096})$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], issuer: 'figma-plugin-auth-db', audience: 'figma-plugin' });
    const digest = createHash('sha256').update(token).digest('hex');
    const [session] = await db.query<{ status: string; user_id: string }>(VERIFY, [payload.jti, digest], { prepare: 'bench_http_verify' });
    if (session?.status !== 'ok' || session.user_id !== payload.sub) return answer(res, 401, { error: 'token_invalid' });
    const [row] = await db.query<{ allowed: boolean; reason: string; plan_slug: string; used: number; usage_limit: number | null; remaining: number | null; batch_limit: number | null; resets_at: Date | null; replayed: boolean }>(
      CONSUME, [session.user_id, 'resize', 1, null, null], { prepare: 'bench_http_consume' });
    answer(res, row!.allowed ? 200 : 402, {
      allowed: row!.allowed, reason: row!.reason, planSlug: row!.plan_slug, used: row!.used, usageLimit: row!.usage_limit,
      remaining: row!.remaining, batchLimit: row!.batch_limit, resetsAt: row!.resets_at, replayed: row!.replayed,
    });
  } catch {
    if (!res.headersSent) answer(res, 500, { error: 'internal_error' });
  }
});
await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));

process.stdout.write(`READY ${new URL(library.url).port} ${(bare.address() as AddressInfo).port}\n`);
process.once('SIGTERM', async () => {
  bare.closeAllConnections();
  bare.close();
  await library.close();
  await db.close();
  process.exit(0);
});
