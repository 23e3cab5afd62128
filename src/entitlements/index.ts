// auth.entitlements: a short-lived, signed statement of what the user's plan allows right now, for
// the plugin UI to verify offline (render "3 resizes left today", gate buttons) without a round
// trip. The numbers are check_usage's (sql/006), so they agree with consume; consume stays the
// authority. The signing key is resolved when createPluginAuth runs (a bad key fails at start-up);
// without one, snapshot() and jwks() throw entitlement_key_missing.
import { loadJose } from '../core/jose.ts';
import type { Queryable } from '../core/queryable.ts';
import * as validate from '../core/validation.ts';
import { usageCalls } from '../usage/usage.ts';
import {
  ENTITLEMENT_AUDIENCE,
  ENTITLEMENT_ISSUER,
  ENTITLEMENT_TYP,
  resolveEntitlementKeys,
  type EntitlementKeyOptions,
  type PublicJwks,
} from './keys.ts';

export {
  ENTITLEMENT_AUDIENCE,
  ENTITLEMENT_ISSUER,
  ENTITLEMENT_TYP,
  MAX_ENTITLEMENT_TTL_SECONDS,
  generateEntitlementKey,
  type EntitlementKeyOptions,
  type EntitlementJwk,
  type PreviousEntitlementKey,
  type PublicJwks,
} from './keys.ts';

/** The claims of a snapshot, besides iss/aud/sub/iat/exp. null limits mean unlimited. */
export interface EntitlementClaims {
  /** The effective plan's slug ('free', 'pro', ...). */
  plan: string;
  /** The metered action the numbers are about ('resize'). */
  action: string;
  used: number;
  usageLimit: number | null;
  remaining: number | null;
  batchLimit: number | null;
  /** ISO 8601, when the counter resets (daily plans); null: never. */
  resetsAt: string | null;
}

export interface EntitlementSnapshot {
  /** Compact JWS (typ entitlement+jwt), signed with the current key; its `kid` is in jwks(). */
  jwt: string;
  expiresAt: Date;
}

export function createEntitlements(db: Queryable, options: EntitlementKeyOptions) {
  const keys = resolveEntitlementKeys(options);
  const usage = usageCalls(db);
  return {
    /** A snapshot of the user's entitlements now, valid for entitlementTtlSeconds (<= 15 minutes). */
    async snapshot(userId: string): Promise<EntitlementSnapshot> {
      const { signing, ttlSeconds } = await keys();
      validate.userId(userId); // the one check of this door; usageCalls does not repeat it
      // check_usage answers what one more consume would: count and remaining *after* it when allowed.
      // The snapshot states now: `remaining` is how many more consumes the plan allows.
      const answer = await usage.check(userId, 'resize', 1);
      const used = answer.allowed ? answer.used - 1 : answer.used;
      const iat = Math.floor(Date.now() / 1000);
      const exp = iat + ttlSeconds;
      const claims: EntitlementClaims = {
        plan: answer.planSlug,
        action: 'resize',
        used,
        usageLimit: answer.usageLimit,
        remaining: answer.usageLimit === null ? null : Math.max(answer.usageLimit - used, 0),
        batchLimit: answer.batchLimit,
        resetsAt: answer.resetsAt ? answer.resetsAt.toISOString() : null,
      };
      const { SignJWT } = await loadJose();
      const jwt = await new SignJWT({ ...claims })
        .setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: ENTITLEMENT_TYP })
        .setSubject(userId.toLowerCase())
        .setIssuer(ENTITLEMENT_ISSUER)
        .setAudience(ENTITLEMENT_AUDIENCE)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(signing.key);
      return { jwt, expiresAt: new Date(exp * 1000) };
    },

    /**
     * The public keys that verify snapshots: the current one first, then the previous keys whose
     * `until` is still ahead (each with its `exp`); a previous key past its end is left out.
     */
    async jwks(): Promise<PublicJwks> {
      return (await keys()).jwks();
    },
  };
}

export type Entitlements = ReturnType<typeof createEntitlements>;
