// Signing and checking plugin JWTs with jose (loaded on first use: core/jose.ts). Pure: no database. The key material is resolved once,
// when createPluginAuth runs, so a bad secret or key fails at start-up, not on the first request;
// a *missing* one fails only when a method that needs it is called (usage-only servers need none).
import { loadJose } from '../core/jose.ts';
import { base64url, fromBase64, syncCrypto, utf8, type SyncCrypto } from '../core/bytes.ts';
import { AuthError, SetupError } from '../core/errors.ts';
import { isUuid } from '../core/validation.ts';

/**
 * Node's KeyObject as far as it is used here, described rather than imported: this module is part of
 * the edge entry, where node:crypto does not exist.
 */
export interface KeyObject {
  readonly type: string;
  readonly asymmetricKeyType?: string;
  export(options?: unknown): unknown;
}

/** A key as jose takes it, or a PEM string (PKCS#8 private, SPKI public). */
export type TokenKey = KeyObject | CryptoKey | string;

export interface TokenSigningOptions {
  /** HS256 secret (e.g. PLUGIN_TOKEN_SECRET), at least 32 bytes. An empty string counts as unset. */
  tokenSecret?: string;
  /** EdDSA (Ed25519) key pair, instead of tokenSecret. Without privateKey this instance only verifies. */
  tokenKeyPair?: { privateKey?: TokenKey; publicKey: TokenKey };
  /** JWT `iss` (default 'figma-plugin-auth-db'). */
  tokenIssuer?: string;
  /** JWT `aud` (default 'figma-plugin'). */
  tokenAudience?: string;
}

export const DEFAULT_ISSUER = 'figma-plugin-auth-db';
export const DEFAULT_AUDIENCE = 'figma-plugin';
export const MIN_SECRET_BYTES = 32;
/** Our tokens are about 400 characters; anything far longer is refused before it is parsed. */
export const MAX_TOKEN_LENGTH = 4096;

const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Lowercase hex SHA-256: what plugin_tokens and plugin_login_requests store instead of the value. */
export { sha256Hex } from '../core/bytes.ts';

export interface VerifiedClaims {
  userId: string;
  tokenId: string;
  exp: number;
}

export interface Signer {
  sign(claims: { userId: string; tokenId: string; iat: number; exp: number }): Promise<string>;
  /** Checks signature, algorithm, exp/nbf/iss/aud. Throws AuthError token_invalid or token_expired. */
  verify(token: unknown): Promise<VerifiedClaims>;
}

const invalid = (why: string) => new AuthError('token_invalid', `token_invalid: ${why}`);

type Resolved =
  | { alg: 'HS256'; signKey: Uint8Array; verifyKey: Uint8Array }
  | { alg: 'EdDSA'; signKey: AsyncKey | undefined; verifyKey: AsyncKey }
  | undefined;

function resolveKeys(options: TokenSigningOptions): Resolved {
  const secret = options.tokenSecret;
  const pair = options.tokenKeyPair;
  if (secret !== undefined && secret !== '' && pair) {
    throw new SetupError('token_key_conflict', 'token_key_conflict: give tokenSecret (HS256) or tokenKeyPair (EdDSA), not both');
  }
  if (pair) {
    const verifyKey = asKey(pair.publicKey, 'public');
    const signKey = pair.privateKey === undefined ? undefined : asKey(pair.privateKey, 'private');
    return { alg: 'EdDSA', signKey, verifyKey };
  }
  if (secret === undefined || secret === '') return undefined;
  if (typeof secret !== 'string') {
    throw new SetupError('token_secret_invalid', 'token_secret_invalid: tokenSecret must be a string');
  }
  const bytes = new TextEncoder().encode(secret);
  if (bytes.length < MIN_SECRET_BYTES) {
    // Never echo the secret, nor its length in a way that helps: say what is needed.
    throw new SetupError(
      'token_secret_too_short',
      `token_secret_too_short: tokenSecret must be at least ${MIN_SECRET_BYTES} bytes (e.g. \`openssl rand -base64 48\`)`,
    );
  }
  return { alg: 'HS256', signKey: bytes, verifyKey: bytes };
}

/** A key ready for jose, or the promise of one (a PEM is imported by Web Crypto on first use). */
type AsyncKey = KeyObject | CryptoKey | Promise<CryptoKey>;

// The fixed DER prefixes of an Ed25519 SubjectPublicKeyInfo (RFC 8410: 12 bytes, then the 32-byte
// key) and PKCS#8 PrivateKeyInfo (16 bytes, then the 32-byte seed). A PEM is checked against them
// when createPluginAuth runs, so a wrong key fails at start-up though the import itself is async.
const ED25519_SPKI = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
const ED25519_PKCS8 = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

function ed25519Der(pem: string, kind: 'public' | 'private'): Uint8Array<ArrayBuffer> | undefined {
  const label = kind === 'public' ? 'PUBLIC KEY' : 'PRIVATE KEY';
  const match = new RegExp(`^\\s*-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----\\s*$`).exec(pem);
  const der = match ? fromBase64(match[1]!) : undefined;
  const prefix = kind === 'public' ? ED25519_SPKI : ED25519_PKCS8;
  if (!der || der.length !== prefix.length + 32 || prefix.some((byte, i) => der[i] !== byte)) return undefined;
  return der;
}

/** A Node KeyObject, recognised without importing node:crypto (edge runtimes have none). */
const isKeyObject = (key: unknown): key is KeyObject =>
  typeof key === 'object' && key !== null && typeof (key as KeyObject).export === 'function' && 'asymmetricKeyType' in key;

function asKey(key: TokenKey, kind: 'public' | 'private'): AsyncKey {
  const bad = () =>
    new SetupError('token_key_invalid', `token_key_invalid: tokenKeyPair.${kind}Key must be an Ed25519 ${kind} key (KeyObject, CryptoKey or PEM)`);
  if (typeof key === 'string') {
    const der = ed25519Der(key, kind);
    if (!der) throw bad();
    const imported = crypto.subtle
      .importKey(kind === 'public' ? 'spki' : 'pkcs8', der, { name: 'Ed25519' }, false, [kind === 'public' ? 'verify' : 'sign'])
      .catch(() => Promise.reject(bad()));
    // Checked above; a platform refusing it anyway is reported when the key is first used, never
    // as an unhandled rejection.
    imported.catch(() => {});
    return imported;
  }
  const ok = isKeyObject(key)
    ? key.type === kind && key.asymmetricKeyType === 'ed25519'
    : typeof key === 'object' && key !== null && (key as CryptoKey).type === kind && (key as CryptoKey).algorithm?.name === 'Ed25519';
  if (!ok) throw bad();
  return key;
}

export function createSigner(options: TokenSigningOptions): () => Signer {
  const keys = resolveKeys(options);
  const issuer = options.tokenIssuer ?? DEFAULT_ISSUER;
  const audience = options.tokenAudience ?? DEFAULT_AUDIENCE;
  const missing = () =>
    new SetupError(
      'token_secret_missing',
      'token_secret_missing: plugin tokens need tokenSecret (at least 32 bytes, e.g. PLUGIN_TOKEN_SECRET) or tokenKeyPair in createPluginAuth options',
    );

  // HS256: the secret is imported as an HMAC key once, on first use; given the raw bytes, jose
  // imports them again on every sign and every check (measured: BENCHMARKS.md, the HTTP line).
  let hmac: Promise<CryptoKey> | undefined;
  const keyOf = async (key: Uint8Array | AsyncKey | undefined): Promise<CryptoKey> => {
    if (!(key instanceof Uint8Array)) return (await key) as CryptoKey;
    hmac ??= crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    return hmac;
  };

  const accept = keys?.alg === 'HS256' && syncCrypto ? hs256Accept(syncCrypto, keys.verifyKey, issuer, audience) : undefined;

  const signer: Signer | undefined = keys && {
    async sign({ userId, tokenId, iat, exp }) {
      if (!keys.signKey) {
        throw new SetupError('token_private_key_missing', 'token_private_key_missing: tokenKeyPair has no privateKey, so this instance can only verify');
      }
      const { SignJWT } = await loadJose();
      return new SignJWT({})
        .setProtectedHeader({ alg: keys.alg, typ: 'JWT' })
        .setSubject(userId)
        .setJti(tokenId)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .setIssuer(issuer)
        .setAudience(audience)
        .sign(await keyOf(keys.signKey));
    },
    async verify(token) {
      // Cheap shape checks first: garbage never reaches the JSON parser or the crypto.
      if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || !JWS_COMPACT.test(token)) {
        throw invalid('not a token issued by this service');
      }
      // A token this service issued, checked synchronously; anything else goes to jose, which
      // decides (and words) every refusal.
      let payload: Record<string, unknown> | undefined = accept?.(token);
      if (!payload) {
        const { errors: joseErrors, jwtVerify } = await loadJose();
        try {
          ({ payload } = await jwtVerify(token, await keyOf(keys.verifyKey), {
            // The allow-list is exactly the configured algorithm: never `none`, never a swapped one.
            algorithms: [keys.alg],
            issuer,
            audience,
            requiredClaims: ['sub', 'jti', 'iat', 'exp'],
          }));
        } catch (error) {
          if (error instanceof joseErrors.JWTExpired) {
            throw new AuthError('token_expired', 'token_expired: the token has expired; sign in again');
          }
          // jose's messages name the failed check (signature, "aud" claim, ...), never the token.
          const reason = error instanceof joseErrors.JOSEError ? error.message : 'malformed token';
          throw invalid(reason);
        }
      }
      if (!payload || !isUuid(payload.sub) || !isUuid(payload.jti) || typeof payload.exp !== 'number') {
        throw invalid('unexpected claims');
      }
      return { userId: payload.sub.toLowerCase(), tokenId: payload.jti.toLowerCase(), exp: payload.exp };
    },
  };

  return () => {
    if (!signer) throw missing();
    return signer;
  };
}

/**
 * The HS256 check of a token exactly as this service signs them, with node:crypto's synchronous
 * HMAC (Web Crypto's is a thread-pool job per call, the largest cost of a token check: BENCHMARKS.md).
 * It only ever accepts: it returns the claims when the header is the one sign() writes
 * ({"alg":"HS256","typ":"JWT"}, byte for byte), the signature is the canonical base64url of the
 * HMAC (compared in constant time), and the claims pass what jwtVerify checks with the options
 * used in verify (iss, aud, sub, jti, iat and exp present; iss and aud equal; iat, nbf and exp
 * numbers; nbf not in the future; exp in the future). In every other case it returns undefined
 * and jose's jwtVerify checks the token from scratch, so what is refused, and the words of the
 * refusal, are jose's. test/tokens.test.ts compares both on well-formed and tampered tokens.
 */
function hs256Accept(sync: SyncCrypto, secret: Uint8Array, issuer: string, audience: string): (token: string) => Record<string, unknown> | undefined {
  const header = base64url(utf8(JSON.stringify({ alg: 'HS256', typ: 'JWT' })));
  const decoder = new TextDecoder('utf-8', { fatal: true });
  return (token) => {
    const [h, p, s, extra] = token.split('.');
    if (h !== header || p === undefined || s === undefined || extra !== undefined) return undefined;
    const expected = sync.createHmac('sha256', secret).update(`${h}.${p}`, 'utf8').digest('base64url');
    if (s.length !== expected.length || !sync.timingSafeEqual(utf8(s), utf8(expected))) return undefined;
    let claims: unknown;
    try {
      const bytes = fromBase64(p.replace(/-/g, '+').replace(/_/g, '/'));
      if (!bytes) return undefined;
      claims = JSON.parse(decoder.decode(bytes));
    } catch {
      return undefined;
    }
    if (typeof claims !== 'object' || claims === null || Object.prototype.toString.call(claims) !== '[object Object]') return undefined;
    const c = claims as Record<string, unknown>;
    for (const claim of ['sub', 'jti', 'iat', 'exp', 'iss', 'aud']) if (!Object.hasOwn(c, claim)) return undefined;
    if (c.iss !== issuer) return undefined;
    if (!(c.aud === audience || (Array.isArray(c.aud) && c.aud.includes(audience)))) return undefined;
    const now = Math.floor(Date.now() / 1000);
    if (typeof c.iat !== 'number' || typeof c.exp !== 'number' || c.exp <= now) return undefined;
    if (c.nbf !== undefined && (typeof c.nbf !== 'number' || c.nbf > now)) return undefined;
    return c;
  };
}
