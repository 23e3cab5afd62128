// Shared by the token and login tests: a secret, a database wrapper that counts round trips, and a
// way to sign JWTs by hand (to forge expired, not-yet-valid, mis-addressed ones).
import { randomUUID } from 'node:crypto';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import type { Database } from '../../src/core/db.ts';
import type { Dump } from './dump.ts';

/** The token secret of test/helpers/secrets.ts, under the name the token and login tests use. */
export { TOKEN_SECRET as SECRET } from './secrets.ts';

/** The same database, counting the statements sent through it. */
export function counting(db: Database): { db: Database; count: () => number } {
  let n = 0;
  return {
    db: { ...db, query: (text, params) => { n++; return db.query(text, params); } },
    count: () => n,
  };
}

export interface Claims {
  sub?: string;
  jti?: string;
  iat?: number;
  exp?: number;
  nbf?: number;
  iss?: string;
  aud?: string;
}

export async function signBy(secret: string, claims: Claims, alg = 'HS256'): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const c = { sub: randomUUID(), jti: randomUUID(), iat: now, exp: now + 3600, iss: 'figma-plugin-auth-db', aud: 'figma-plugin', ...claims };
  let jwt = new SignJWT({}).setProtectedHeader({ alg, typ: 'JWT' }).setSubject(c.sub).setJti(c.jti)
    .setIssuedAt(c.iat).setExpirationTime(c.exp).setIssuer(c.iss).setAudience(c.aud);
  if (c.nbf !== undefined) jwt = jwt.setNotBefore(c.nbf);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** Asserts that none of the secrets appears anywhere in the dump (any table, any column). */
export function assertAbsent(dump: Dump, secrets: string[]): void {
  const text = JSON.stringify(dump.rows);
  for (const secret of secrets) {
    assert.ok(secret.length >= 20, 'a meaningful secret');
    assert.ok(!text.includes(secret), 'a raw secret is stored in the database');
    // Nor a large piece of it (e.g. the signature part of a JWT, or a key without its first char).
    for (const part of secret.split('.')) if (part.length >= 20) assert.ok(!text.includes(part), 'part of a raw secret is stored');
  }
}

export const code = (expected: string) => (error: unknown) => {
  assert.equal((error as { code?: string }).code, expected, String(error));
  return true;
};
