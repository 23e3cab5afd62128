// Offline verification of a license lease (auth.leases.offlineLease on the server) in the plugin,
// with jose's browser build (Web Crypto): a signed, device-bound statement of whether this device
// is licensed, valid for days, so that a plugin that cannot reach the server still knows.
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet } from 'jose';
import { DEFAULT_LEASE_CLOCK_TOLERANCE_SECONDS, LICENSE_REASONS, type LicenseReason, ENTITLEMENT_ALGORITHMS, ENTITLEMENT_ISSUER, LEASE_AUDIENCE, LEASE_TYP, MAX_OFFLINE_LEASE_SECONDS } from './constants.ts';

export { LICENSE_REASONS, type LicenseReason } from './constants.ts';

export interface LicenseLeaseClaims {
  userId: string;
  deviceId: string;
  licensed: boolean;
  reason: LicenseReason;
  /** The plan this device had when the lease was signed; null when not licensed. */
  planSlug: string | null;
  overage: boolean;
  issuedAt: Date;
  /** Fetch a new lease after this (in the background). */
  refreshAfter: Date;
  /** The lease ends: a revocation (refund, expiry) takes effect here at the latest. */
  expiresAt: Date;
}

export type LeaseCheck =
  | { kind: 'ok'; lease: LicenseLeaseClaims }
  /** Past its exp (beyond the clock tolerance): ask the server again; until then, not known. */
  | { kind: 'expired' }
  /** Validly signed, but about another user or another device: never trust it. */
  | { kind: 'wrong_user' }
  | { kind: 'wrong_device' }
  /** Bad signature, unknown or retired key, issued in the future, wrong type, malformed: never trust it. */
  | { kind: 'invalid'; reason: string };

export interface VerifyLeaseOptions {
  /** The signed-in user (client.userId()). */
  userId: string;
  /** This install's device id (the session's deviceId). */
  deviceId: string;
  currentDate?: Date;
  /** Clock skew allowed in seconds, both ways (default 300: an offline machine's clock drifts). */
  clockToleranceSeconds?: number;
}

/**
 * Verifies a lease against the server's public keys (the JWKS the lease route answered with, or
 * one bundled with the plugin), offline, for this user and device.
 */
export async function verifyLicenseLease(jwt: string, jwks: JSONWebKeySet, options: VerifyLeaseOptions): Promise<LeaseCheck> {
  if (typeof options?.userId !== 'string' || options.userId === '' || typeof options.deviceId !== 'string' || options.deviceId === '') {
    throw new TypeError('verifyLicenseLease: options.userId and options.deviceId (the signed-in session\'s) are required');
  }
  const tolerance = options.clockToleranceSeconds ?? DEFAULT_LEASE_CLOCK_TOLERANCE_SECONDS;
  const now = (options.currentDate ?? new Date()).getTime() / 1000;
  let payload;
  let protectedHeader;
  try {
    ({ payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(jwks), {
      algorithms: [...ENTITLEMENT_ALGORITHMS],
      issuer: ENTITLEMENT_ISSUER,
      audience: LEASE_AUDIENCE,
      typ: LEASE_TYP,
      requiredClaims: ['sub', 'iat', 'exp', 'dev', 'reason'],
      clockTolerance: tolerance,
      ...(options.currentDate ? { currentDate: options.currentDate } : {}),
    }));
  } catch (error) {
    if (error instanceof errors.JWTExpired) return { kind: 'expired' };
    return { kind: 'invalid', reason: error instanceof errors.JOSEError ? error.code : 'malformed' };
  }
  const { sub, dev, iat, exp, rfa, licensed, reason, plan, overage } = payload as Record<string, unknown>;
  if (typeof exp !== 'number' || typeof iat !== 'number' || exp - iat > MAX_OFFLINE_LEASE_SECONDS) return { kind: 'invalid', reason: 'lifetime_too_long' };
  // A lease from the future is a clock set back after it was signed (or a forged time): refused.
  if (iat > now + tolerance) return { kind: 'invalid', reason: 'issued_in_future' };
  // A retired key (its exp in the JWKS) verifies nothing after its end, nor a lease outliving it.
  const candidates = (jwks.keys ?? []).filter((k) => (protectedHeader.kid === undefined ? k.alg === protectedHeader.alg : k.kid === protectedHeader.kid));
  const ends = candidates.map((k) => (k as { exp?: unknown }).exp).filter((e) => e !== undefined);
  if (ends.length) {
    const end = Math.min(...ends.map((e) => (typeof e === 'number' ? e : Number.NEGATIVE_INFINITY)));
    if (now >= end || exp > end) return { kind: 'invalid', reason: 'key_retired' };
  }
  if (
    typeof sub !== 'string' || typeof dev !== 'string' || typeof licensed !== 'boolean' || typeof overage !== 'boolean' ||
    typeof rfa !== 'number' || !(plan === null || typeof plan === 'string') || !LICENSE_REASONS.includes(reason as LicenseReason) ||
    licensed !== (reason === 'valid')
  ) {
    return { kind: 'invalid', reason: 'unexpected_claims' };
  }
  if (sub.toLowerCase() !== options.userId.toLowerCase()) return { kind: 'wrong_user' };
  if (dev.toLowerCase() !== options.deviceId.toLowerCase()) return { kind: 'wrong_device' };
  return {
    kind: 'ok',
    lease: {
      userId: sub, deviceId: dev, licensed, reason: reason as LicenseReason, planSlug: plan as string | null, overage,
      issuedAt: new Date(iat * 1000), refreshAfter: new Date(rfa * 1000), expiresAt: new Date(exp * 1000),
    },
  };
}
