// A local stand-in for a Supabase project's Auth signing keys: GET /auth/v1/.well-known/jwks.json
// answers the project's public JWKS (an ES256 key, as Supabase's asymmetric JWT signing keys), and
// sign() makes access tokens shaped like Supabase's (iss <project>/auth/v1, aud authenticated,
// role, sub = auth.users.id, session_id, is_anonymous). It counts JWKS fetches.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload } from 'jose';

export interface SupabaseAuthStandIn {
  /** The project URL, e.g. http://127.0.0.1:PORT (stands for https://<ref>.supabase.co). */
  url: string;
  jwksFetches: number;
  /** A Supabase-shaped access token for sub, signed with the project's key unless told otherwise. */
  sign(sub: string, options?: { claims?: JWTPayload; expiresIn?: string | number; key?: CryptoKey; kid?: string; issuer?: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startSupabaseAuthStandIn(): Promise<SupabaseAuthStandIn> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig', key_ops: ['verify'] };
  const standIn: SupabaseAuthStandIn = { url: '', jwksFetches: 0, sign: async () => '', close: async () => {} };
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/auth/v1/.well-known/jwks.json') {
      standIn.jwksFetches += 1;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=600' });
      return res.end(JSON.stringify({ keys: [jwk] }));
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"code":404,"error_code":"not_found","msg":"Not found"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  standIn.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  standIn.sign = (sub, o = {}) =>
    new SignJWT({ role: 'authenticated', aal: 'aal1', session_id: randomUUID(), is_anonymous: false, email: 'someone@example.com', ...o.claims })
      .setProtectedHeader({ alg: 'ES256', kid: o.kid ?? kid, typ: 'JWT' })
      .setSubject(sub)
      .setIssuer(o.issuer ?? `${standIn.url}/auth/v1`)
      .setAudience('authenticated')
      .setIssuedAt()
      .setExpirationTime(o.expiresIn ?? '1h')
      .sign(o.key ?? privateKey);
  standIn.close = () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  return standIn;
}
