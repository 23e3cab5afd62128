// The entitlement signing key: a private JWK (Ed25519 -> EdDSA, or P-256 -> ES256), checked when
// createPluginAuth runs. Messages name what is wrong, never any key material.
// Web Crypto only (this module is part of the edge entry): its calls are async, so createPluginAuth
// checks the key's shape at once and starts the cryptographic checks (the key imports, "x"/"y"
// match "d", the thumbprint kid); what they find is reported by the first snapshot() or jwks().
import { SetupError } from '../core/errors.ts';
import { sha256Base64url, utf8 } from '../core/bytes.ts';

import { MAX_ENTITLEMENT_TTL_SECONDS } from '../plugin/constants.ts';

export { ENTITLEMENT_AUDIENCE, ENTITLEMENT_ISSUER, ENTITLEMENT_TYP, MAX_ENTITLEMENT_TTL_SECONDS } from '../plugin/constants.ts';

/** A JWK as JSON.parse gives it. */
export type EntitlementJwk = Record<string, unknown>;

export interface EntitlementKeyOptions {
  /**
   * Private JWK that signs snapshots (ENTITLEMENT_SIGNING_KEY): a JSON string or the parsed object,
   * `{"kty":"EC","crv":"P-256",...}` (ES256) or `{"kty":"OKP","crv":"Ed25519",...}` (EdDSA). Bad: a
   * SetupError entitlement_key_invalid at createPluginAuth. Absent (or ''): snapshot() and jwks()
   * throw entitlement_key_missing.
   */
  entitlementSigningKey?: string | EntitlementJwk;
  /**
   * Keys retired by a rotation (public or private JWKs), never used to sign, each with an end:
   * `{ jwk, until }` (a Date or an ISO 8601 string; set it to the rotation time + the snapshot
   * lifetime, 15 minutes). Until then jwks() lists it, with `exp` (seconds) so that clients refuse
   * it afterwards and refuse snapshots that would outlive it; from then on jwks() drops it. A bare
   * JWK (the earlier form) ends MAX_ENTITLEMENT_TTL_SECONDS after createPluginAuth ran.
   */
  entitlementPreviousKeys?: Array<string | EntitlementJwk | PreviousEntitlementKey>;
  /** Validity of a snapshot in seconds, 1 to 900 (default 900). */
  entitlementTtlSeconds?: number;
}

/** A retired key and when it stops verifying anything. */
export interface PreviousEntitlementKey {
  jwk: string | EntitlementJwk;
  until: Date | string;
}

export interface PublicJwk {
  kty: 'OKP' | 'EC';
  crv: 'Ed25519' | 'P-256';
  x: string;
  y?: string;
  kid: string;
  alg: 'EdDSA' | 'ES256';
  use: 'sig';
  /** Retired keys only: when the key stops verifying (seconds since the epoch). */
  exp?: number;
}

export interface PublicJwks {
  keys: PublicJwk[];
}

interface ResolvedKey {
  key: CryptoKey;
  alg: 'EdDSA' | 'ES256';
  kid: string;
  publicJwk: PublicJwk;
}

const invalid = (what: string, why: string) =>
  new SetupError('entitlement_key_invalid', `entitlement_key_invalid: ${what} ${why} (generate one with \`npx figma-plugin-auth-db keygen\`)`);

function parse(value: unknown, what: string): EntitlementJwk {
  let jwk = value;
  if (typeof value === 'string') {
    try {
      jwk = JSON.parse(value);
    } catch {
      // JSON.parse's message quotes the input: never pass it on.
      throw invalid(what, 'is not JSON');
    }
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw invalid(what, 'must be a JWK object');
  return jwk as EntitlementJwk;
}

/** RFC 7638 thumbprint: the default kid. */
function thumbprint(jwk: PublicJwk): Promise<string> {
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return sha256Base64url(JSON.stringify(members));
}

const BASE64URL_32 = /^[A-Za-z0-9_-]{43}$/;
const PROBE = utf8('figma-plugin-auth-db entitlement key check');

/** The checks that need no crypto, at createPluginAuth; then resolveKeyMaterial. */
function checkKeyShape(value: unknown, what: string, kind: 'private' | 'any'): { jwk: EntitlementJwk; alg: ResolvedKey['alg']; isPrivate: boolean } {
  const jwk = parse(value, what);
  const isPrivate = typeof jwk.d === 'string';
  if (kind === 'private' && !isPrivate) throw invalid(what, 'must be a private key (the JWK has no "d")');
  let alg: ResolvedKey['alg'];
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') alg = 'EdDSA';
  else if (jwk.kty === 'EC' && jwk.crv === 'P-256') alg = 'ES256';
  else throw invalid(what, 'must be an Ed25519 (kty OKP) or P-256 (kty EC) key');
  if (jwk.alg !== undefined && jwk.alg !== alg) throw invalid(what, `has "alg" ${JSON.stringify(String(jwk.alg))}, expected ${alg}`);
  if (jwk.kid !== undefined && (typeof jwk.kid !== 'string' || jwk.kid === '' || jwk.kid.length > 200)) {
    throw invalid(what, 'has a "kid" that is not a non-empty string');
  }
  // Every coordinate of both curves is 32 bytes: 43 base64url characters.
  const { x, y, d } = jwk as Record<string, unknown>;
  const coordinates = alg === 'ES256' ? [x, y] : [x];
  if (isPrivate) coordinates.push(d);
  if (!coordinates.every((c) => typeof c === 'string' && BASE64URL_32.test(c))) throw invalid(what, 'is not a valid key');
  return { jwk, alg, isPrivate };
}

/** Imports the key, checks that "x"/"y" belong to "d" (a signature made with "d" verifies with them), derives the kid. */
async function resolveKeyMaterial({ jwk, alg, isPrivate }: ReturnType<typeof checkKeyShape>, what: string): Promise<ResolvedKey> {
  const { kty, crv, x, y, d } = jwk as Record<string, string>;
  const publicMaterial = alg === 'ES256' ? { kty, crv, x, y } : { kty, crv, x };
  const params = alg === 'ES256' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' };
  const signParams = alg === 'ES256' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'Ed25519' };
  const mismatch = () => invalid(what, 'has "x"/"y" that do not match its "d"');
  let publicKey: CryptoKey;
  try {
    publicKey = await crypto.subtle.importKey('jwk', publicMaterial, params, true, ['verify']);
  } catch {
    throw invalid(what, 'is not a valid key');
  }
  let key = publicKey;
  if (isPrivate) {
    // Some platforms refuse a private JWK whose public part is not d's at import, others sign with
    // d regardless: the probe signature settles it on both.
    try {
      key = await crypto.subtle.importKey('jwk', { ...publicMaterial, d }, params, false, ['sign']);
    } catch {
      throw mismatch();
    }
    if (!(await crypto.subtle.verify(signParams, publicKey, await crypto.subtle.sign(signParams, key, PROBE), PROBE))) throw mismatch();
  }
  const publicJwk: PublicJwk = {
    kty: jwk.kty as PublicJwk['kty'],
    crv: jwk.crv as PublicJwk['crv'],
    x: x!,
    ...(alg === 'ES256' ? { y: y! } : {}),
    kid: '',
    alg,
    use: 'sig',
  };
  publicJwk.kid = (jwk.kid as string | undefined) ?? (await thumbprint(publicJwk));
  return { key, alg, kid: publicJwk.kid, publicJwk };
}

export interface ResolvedEntitlementKeys {
  signing: ResolvedKey;
  ttlSeconds: number;
  /** The current key, then the previous keys whose end is still ahead of `now` (ms). */
  jwks(now?: number): PublicJwks;
}

/** `{ jwk, until }` or a bare JWK (ending `bareEnd`): the JWK and its end in ms. */
function previousEntry(entry: unknown, i: number, bareEnd: number): { jwk: unknown; until: number } {
  const what = `entitlementPreviousKeys[${i}]`;
  if (typeof entry !== 'object' || entry === null || !('until' in entry || 'jwk' in entry)) return { jwk: entry, until: bareEnd };
  const { jwk, until } = entry as { jwk?: unknown; until?: unknown };
  const end = until instanceof Date ? until.getTime() : typeof until === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(until) ? Date.parse(until) : Number.NaN;
  if (!Number.isFinite(end)) throw invalid(what, 'needs "until": a Date or an ISO 8601 time when the key stops verifying (the rotation time + 15 minutes)');
  if (jwk === undefined) throw invalid(what, 'needs "jwk": the retired key');
  return { jwk, until: end };
}


/**
 * Checks the options' shape now (throws at createPluginAuth) and starts the key checks; the
 * returned function resolves the keys, or rejects with what the checks found, or with
 * entitlement_key_missing when no key was given.
 */
export function resolveEntitlementKeys(options: EntitlementKeyOptions): () => Promise<ResolvedEntitlementKeys> {
  const ttl = options.entitlementTtlSeconds ?? MAX_ENTITLEMENT_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_ENTITLEMENT_TTL_SECONDS) {
    throw new SetupError(
      'invalid_entitlement_ttl',
      `invalid_entitlement_ttl: entitlementTtlSeconds must be a whole number from 1 to ${MAX_ENTITLEMENT_TTL_SECONDS}`,
    );
  }
  const given = options.entitlementSigningKey;
  const previous = options.entitlementPreviousKeys ?? [];
  if (!Array.isArray(previous)) throw invalid('entitlementPreviousKeys', 'must be an array of JWKs');
  const bareEnd = Date.now() + MAX_ENTITLEMENT_TTL_SECONDS * 1000;
  const retiredShapes = previous.map((entry, i) => {
    const { jwk, until } = previousEntry(entry, i, bareEnd);
    return { ...checkKeyShape(jwk, `entitlementPreviousKeys[${i}]`, 'any'), until };
  });
  if (given === undefined || given === '') {
    if (retiredShapes.length) throw invalid('entitlementSigningKey', 'is missing, but entitlementPreviousKeys are given');
    return () =>
      Promise.reject(
        new SetupError(
          'entitlement_key_missing',
          'entitlement_key_missing: entitlement snapshots need entitlementSigningKey (a private JWK, e.g. ENTITLEMENT_SIGNING_KEY; `npx figma-plugin-auth-db keygen` makes one) in createPluginAuth options',
        ),
      );
  }
  const signingShape = checkKeyShape(given, 'entitlementSigningKey', 'private');
  // Kids given in the JWKs repeat: known now. A repeat among thumbprints is found by the checks below.
  const givenKids = [signingShape, ...retiredShapes].map((k) => k.jwk.kid).filter((kid): kid is string => typeof kid === 'string');
  const repeated = givenKids.find((kid, i) => givenKids.indexOf(kid) !== i);
  if (repeated !== undefined) throw invalid('entitlementPreviousKeys', `repeat the kid ${JSON.stringify(repeated)}`);
  const resolved = (async (): Promise<ResolvedEntitlementKeys> => {
    const signing = await resolveKeyMaterial(signingShape, 'entitlementSigningKey');
    const retired = await Promise.all(
      retiredShapes.map(async (shape, i) => {
        const key = await resolveKeyMaterial(shape, `entitlementPreviousKeys[${i}]`);
        return { ...key, until: shape.until, publicJwk: { ...key.publicJwk, exp: Math.floor(shape.until / 1000) } };
      }),
    );
    const kids = new Set<string>();
    for (const k of [signing, ...retired]) {
      if (kids.has(k.kid)) throw invalid('entitlementPreviousKeys', `repeat the kid ${JSON.stringify(k.kid)}`);
      kids.add(k.kid);
    }
    return {
      signing,
      ttlSeconds: ttl,
      // Read at each call: a retired key leaves the set at its end without a restart.
      jwks: (now = Date.now()) => ({ keys: [signing.publicJwk, ...retired.filter((k) => k.until > now).map((k) => k.publicJwk)] }),
    };
  })();
  // Started now; its failure is reported to each caller, never as an unhandled rejection.
  resolved.catch(() => {});
  return () => resolved;
}

/** A new private JWK for entitlementSigningKey, with its thumbprint as kid. ES256 by default. */
export async function generateEntitlementKey(alg: 'ES256' | 'EdDSA' = 'ES256'): Promise<EntitlementJwk> {
  const params = alg === 'ES256' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' };
  const pair = (await crypto.subtle.generateKey(params, true, ['sign', 'verify'])) as CryptoKeyPair;
  const { key_ops: _ops, ext: _ext, ...jwk } = (await crypto.subtle.exportKey('jwk', pair.privateKey)) as Record<string, unknown>;
  const publicJwk = { ...jwk, alg, use: 'sig', kid: '' } as unknown as PublicJwk;
  return { ...jwk, alg, use: 'sig', kid: await thumbprint(publicJwk) };
}
