// The synchronous token check (node:crypto's HMAC and SHA-256, where the runtime has them) against
// jose's jwtVerify: the same verdict on every token, well-formed or tampered; a token this service
// signed never reaches Web Crypto; the digests equal Web Crypto's. Then the same through
// tokens.issue / tokens.verify on both databases.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createHash, randomUUID } from 'node:crypto';
import { jwtVerify, errors as joseErrors } from 'jose';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { SECRET, signBy } from './helpers/tokens.ts';
import { createSigner } from '../src/tokens/signer.ts';
import { sha256Hex, sha256HexWebCrypto, syncCrypto } from '../src/core/bytes.ts';
import { createPluginAuth } from '../src/auth.ts';

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
/** A JWS signed by hand: any header, any payload bytes. */
const hand = (header: unknown, payload: unknown, secret = SECRET) => {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
};
const HEADER = { alg: 'HS256', typ: 'JWT' };
const OPTIONS = { algorithms: ['HS256'], issuer: 'figma-plugin-auth-db', audience: 'figma-plugin', requiredClaims: ['sub', 'jti', 'iat', 'exp'] };

type Verdict = { ok: true; claims: unknown } | { ok: false; expired: boolean };
async function byJose(token: string): Promise<Verdict> {
  try {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(SECRET), OPTIONS);
    // The signer's own claim checks after jose's (uuid sub and jti, numeric exp).
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
    if (typeof payload.sub !== 'string' || !uuid.test(payload.sub) || typeof payload.jti !== 'string' || !uuid.test(payload.jti)) return { ok: false, expired: false };
    return { ok: true, claims: { userId: payload.sub.toLowerCase(), tokenId: payload.jti.toLowerCase(), exp: payload.exp } };
  } catch (error) {
    return { ok: false, expired: error instanceof joseErrors.JWTExpired };
  }
}
async function bySigner(token: string): Promise<Verdict> {
  try {
    return { ok: true, claims: await createSigner({ tokenSecret: SECRET })().verify(token) };
  } catch (error) {
    const code = (error as { code?: string }).code;
    assert.ok(code === 'token_invalid' || code === 'token_expired', String(error));
    return { ok: false, expired: code === 'token_expired' };
  }
}

/** Counts the calls of crypto.subtle.verify (each still made) while fn runs. */
async function countingWebCryptoVerify(fn: () => Promise<unknown>): Promise<number> {
  const subtle = globalThis.crypto.subtle;
  const original = subtle.verify;
  let calls = 0;
  subtle.verify = function (this: SubtleCrypto, ...args: Parameters<SubtleCrypto['verify']>) {
    calls++;
    return original.apply(this, args);
  } as SubtleCrypto['verify'];
  try {
    await fn();
  } finally {
    subtle.verify = original;
  }
  return calls;
}

async function matrix(): Promise<Record<string, string>> {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: randomUUID(), jti: randomUUID(), iat: now, exp: now + 3600, iss: 'figma-plugin-auth-db', aud: 'figma-plugin' };
  const valid = await signBy(SECRET, claims);
  const [h, p, s] = valid.split('.') as [string, string, string];
  // The last base64url character of a 32-byte signature carries 4 bits; its neighbours in the
  // alphabet decode to the same bytes (jose's decoder ignores the spare bits) or to others.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(s.at(-1)!);
  const { sub: _sub, ...noSub } = claims;
  const { jti: _jti, ...noJti } = claims;
  const { iat: _iat, ...noIat } = claims;
  return {
    valid,
    'valid, signed by hand': hand(HEADER, claims),
    'valid, header keys in another order': hand({ typ: 'JWT', alg: 'HS256' }, claims),
    'valid, header with a kid': hand({ ...HEADER, kid: 'k1' }, claims),
    'valid, header with crit': hand({ ...HEADER, crit: ['b64'], b64: true }, claims),
    'valid, aud as an array holding it': hand(HEADER, { ...claims, aud: ['other', 'figma-plugin'] }),
    'valid, nbf in the past': hand(HEADER, { ...claims, nbf: now - 10 }),
    'valid, upper-case uuids': hand(HEADER, { ...claims, sub: claims.sub.toUpperCase(), jti: claims.jti.toUpperCase() }),
    expired: hand(HEADER, { ...claims, exp: now - 10 }),
    'exp is now': hand(HEADER, { ...claims, exp: now }),
    'exp as a string': hand(HEADER, { ...claims, exp: String(now + 3600) }),
    'iat as a string': hand(HEADER, { ...claims, iat: String(now) }),
    'nbf in the future': hand(HEADER, { ...claims, nbf: now + 600 }),
    'nbf as a string': hand(HEADER, { ...claims, nbf: String(now - 10) }),
    'wrong iss': hand(HEADER, { ...claims, iss: 'someone-else' }),
    'wrong aud': hand(HEADER, { ...claims, aud: 'other' }),
    'aud array without it': hand(HEADER, { ...claims, aud: ['other'] }),
    'no sub': hand(HEADER, noSub),
    'no jti': hand(HEADER, noJti),
    'no iat': hand(HEADER, noIat),
    'sub not a uuid': hand(HEADER, { ...claims, sub: 'admin' }),
    'payload an array': hand(HEADER, [claims]),
    'payload null': hand(HEADER, null),
    'payload not JSON': hand(HEADER, 'not json'),
    'payload not UTF-8': (() => {
      const input = `${b64(HEADER)}.${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}`;
      return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
    })(),
    'other secret': hand(HEADER, claims, 'another-secret-0123456789abcdef0123456789'),
    'payload swapped, old signature': `${h}.${b64({ ...claims, sub: randomUUID() })}.${s}`,
    'signature, last character +1': `${h}.${p}.${s.slice(0, -1)}${alphabet[(last + 1) % 64]}`,
    'signature, last character +4': `${h}.${p}.${s.slice(0, -1)}${alphabet[(last + 4) % 64]}`,
    'signature one character short': `${h}.${p}.${s.slice(0, -1)}`,
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`,
    'alg HS512, signed with the secret': (() => {
      const input = `${b64({ alg: 'HS512', typ: 'JWT' })}.${p}`;
      return `${input}.${createHmac('sha512', SECRET).update(input).digest('base64url')}`;
    })(),
  };
}

describe('token check: the synchronous HS256 path', () => {
  test('the runtime has node:crypto through process.getBuiltinModule (the synchronous path is in use here)', () => {
    assert.ok(syncCrypto, 'Node has process.getBuiltinModule');
  });

  test('gives jose\'s verdict on every token, well-formed or tampered, and the same claims', async () => {
    const tokens = await matrix();
    let accepted = 0;
    for (const [name, token] of Object.entries(tokens)) {
      const expected = await byJose(token);
      assert.deepEqual(await bySigner(token), expected, name);
      if (expected.ok) accepted++;
    }
    assert.ok(accepted >= 8, 'the matrix holds accepted tokens');
    assert.ok(Object.keys(tokens).length - accepted >= 20, 'and refused ones');
  });

  test('a token this service signed never reaches Web Crypto; any other token is checked by jose', async () => {
    const tokens = await matrix();
    const signer = createSigner({ tokenSecret: SECRET })();
    const now = Math.floor(Date.now() / 1000);
    const own = await signer.sign({ userId: randomUUID(), tokenId: randomUUID(), iat: now, exp: now + 60 });
    assert.equal(await countingWebCryptoVerify(async () => {
      for (let i = 0; i < 5; i++) await signer.verify(own);
    }), 0);
    for (const name of ['valid, header keys in another order', 'wrong aud', 'expired', 'signature, last character +1', 'payload swapped, old signature']) {
      const calls = await countingWebCryptoVerify(() => signer.verify(tokens[name]!).catch(() => {}));
      assert.equal(calls, 1, name);
    }
  });

  test('sha256Hex equals Web Crypto\'s digest for strings and byte views', async () => {
    const bytes = new Uint8Array(300).map((_, i) => (i * 7) & 0xff);
    for (const value of ['', 'abc', 'é漢字🙂', 'x'.repeat(5000), bytes, bytes.subarray(17, 200)]) {
      assert.equal(await sha256Hex(value), await sha256HexWebCrypto(value));
    }
    assert.equal(await sha256Hex('abc'), createHash('sha256').update('abc').digest('hex'));
  });
});

for (const dialect of DIALECTS) {
  describe(`tokens.verify with the synchronous path [${dialect}]`, () => {
    test('issue then verify: stored digest is the token\'s SHA-256, verify needs no Web Crypto, tampered tokens are refused', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const issued = await auth.tokens.issue(userId, { deviceName: 'test' });
        const [row] = await db.query<{ token_hash: string }>('SELECT token_hash FROM public.plugin_tokens WHERE id = $1::uuid', [issued.tokenId]);
        assert.equal(row!.token_hash, createHash('sha256').update(issued.token).digest('hex'));
        let verified: unknown;
        assert.equal(await countingWebCryptoVerify(async () => (verified = await auth.tokens.verify(issued.token))), 0);
        assert.equal((verified as { userId: string }).userId, userId);
        const [h, p, s] = issued.token.split('.') as [string, string, string];
        const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
        await assert.rejects(auth.tokens.verify(`${h}.${b64({ ...claims, exp: Math.floor(Date.now() / 1000) - 1 })}.${s}`), { code: 'token_invalid' });
        await assert.rejects(auth.tokens.verify(hand(HEADER, { ...claims, exp: Math.floor(Date.now() / 1000) - 1 })), { code: 'token_expired' });
        // A well-signed token with a tokenId never issued: the database refuses it.
        await assert.rejects(auth.tokens.verify(hand(HEADER, { ...claims, jti: randomUUID() })), { code: 'token_invalid' });
      }));
  });
}
