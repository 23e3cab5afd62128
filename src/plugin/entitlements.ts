// Offline verification of an entitlement snapshot (auth.entitlements.snapshot on the server) in
// the plugin UI, with jose's browser build (WebCrypto). Use it to render "3 resizes left today" and
// to gate buttons without a round trip; the server's consume stays the authority.
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet } from 'jose';
import { ENTITLEMENT_ALGORITHMS, ENTITLEMENT_AUDIENCE, ENTITLEMENT_ISSUER, ENTITLEMENT_TYP, MAX_ENTITLEMENT_TTL_SECONDS } from './constants.ts';

export interface Entitlement {
  userId: string;
  /** The effective plan's slug. */
  plan: string;
  action: string;
  used: number;
  /** null: unlimited. */
  usageLimit: number | null;
  remaining: number | null;
  batchLimit: number | null;
  /** When the counter resets; null: never (lifetime limits). */
  resetsAt: Date | null;
  /** When this snapshot stops being valid (at most 15 minutes after it was made). */
  expiresAt: Date;
}

export type EntitlementCheck =
  | { kind: 'ok'; entitlement: Entitlement }
  /** Past its exp: fetch a new one (or treat the user as offline). */
  | { kind: 'expired' }
  /** Validly signed, but about another user than options.userId (e.g. a snapshot left from another account): never trust it. */
  | { kind: 'wrong_user' }
  /**
   * Bad signature, unknown key, a retired key past its end or a snapshot outliving it
   * (`key_retired`), wrong issuer/audience/type, malformed: never trust it.
   */
  | { kind: 'invalid'; reason: string };

export interface VerifyEntitlementOptions {
  /**
   * Required: the id of the user signed in to this plugin session (client.userId()). A snapshot
   * about anyone else is `wrong_user`.
   */
  userId: string;
  /** The time to check exp against (default now). */
  currentDate?: Date;
  /** Allowed clock skew in seconds (default 5). */
  clockToleranceSeconds?: number;
}

const isCount = (v: unknown): v is number | null => v === null || (typeof v === 'number' && Number.isInteger(v));

/**
 * Verifies a snapshot against the server's public JWKS (auth.entitlements.jwks()), offline, for the
 * user `options.userId`. A previous key's `exp` in the JWKS ends it: past it the key verifies
 * nothing, and a snapshot whose exp is later than its key's is refused (`key_retired`).
 */
export async function verifyEntitlementSnapshot(
  jwt: string,
  jwks: JSONWebKeySet,
  options: VerifyEntitlementOptions,
): Promise<EntitlementCheck> {
  if (typeof options?.userId !== 'string' || options.userId === '') {
    throw new TypeError('verifyEntitlementSnapshot: options.userId (the signed-in user, e.g. await client.userId()) is required');
  }
  let payload;
  let protectedHeader;
  try {
    ({ payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(jwks), {
      algorithms: [...ENTITLEMENT_ALGORITHMS],
      issuer: ENTITLEMENT_ISSUER,
      audience: ENTITLEMENT_AUDIENCE,
      typ: ENTITLEMENT_TYP,
      requiredClaims: ['sub', 'iat', 'exp', 'plan'],
      clockTolerance: options.clockToleranceSeconds ?? 5,
      ...(options.currentDate ? { currentDate: options.currentDate } : {}),
    }));
  } catch (error) {
    if (error instanceof errors.JWTExpired) return { kind: 'expired' };
    return { kind: 'invalid', reason: error instanceof errors.JOSEError ? error.code : 'malformed' };
  }
  const { sub, iat, exp, plan, action, used, usageLimit, remaining, batchLimit, resetsAt } = payload as Record<string, unknown>;
  if (typeof exp !== 'number' || typeof iat !== 'number' || exp - iat > MAX_ENTITLEMENT_TTL_SECONDS) {
    return { kind: 'invalid', reason: 'lifetime_too_long' };
  }
  // The key that verified it (by kid; without one, every key jose could have used): its end, if any.
  const candidates = (jwks.keys ?? []).filter((k) => (protectedHeader.kid === undefined ? k.alg === protectedHeader.alg : k.kid === protectedHeader.kid));
  const ends = candidates.map((k) => (k as { exp?: unknown }).exp).filter((e) => e !== undefined);
  if (ends.length) {
    const end = Math.min(...ends.map((e) => (typeof e === 'number' ? e : Number.NEGATIVE_INFINITY)));
    const now = (options.currentDate ?? new Date()).getTime() / 1000;
    if (now >= end || exp > end) return { kind: 'invalid', reason: 'key_retired' };
  }
  if (
    typeof sub !== 'string' || typeof plan !== 'string' || typeof action !== 'string' || typeof used !== 'number' ||
    !isCount(usageLimit) || !isCount(remaining) || !isCount(batchLimit) ||
    !(resetsAt === null || (typeof resetsAt === 'string' && !Number.isNaN(Date.parse(resetsAt))))
  ) {
    return { kind: 'invalid', reason: 'unexpected_claims' };
  }
  if (sub.toLowerCase() !== options.userId.toLowerCase()) return { kind: 'wrong_user' };
  return {
    kind: 'ok',
    entitlement: {
      userId: sub, plan, action, used, usageLimit, remaining, batchLimit,
      resetsAt: resetsAt === null ? null : new Date(resetsAt),
      expiresAt: new Date(exp * 1000),
    },
  };
}
