// auth.leases: device leases (heartbeats, floating and node-locked licenses, the overage
// allowance), the device list with live and lapsed devices, and offline leases: a signed,
// device-bound statement the plugin verifies without the server for days (docs/licenses.md).
// The rules are SQL (sql/functions/leases.sql); this is the typed layer and the signing.
import { loadJose } from '../core/jose.ts';
import { withTypedErrors, type Queryable } from '../core/queryable.ts';
import { AuthError, SetupError, ValidationError, type ErrorCode } from '../core/errors.ts';
import * as validate from '../core/validation.ts';
import { LICENSE_REASONS, type LicenseReason } from '../plugin/constants.ts';
import type { LicenseProvider } from '../core/validation.ts';
import { resolveEntitlementKeys, type EntitlementKeyOptions, type PublicJwks } from '../entitlements/keys.ts';
import {
  DEFAULT_LEASE_REFRESH_SECONDS,
  DEFAULT_OFFLINE_LEASE_SECONDS,
  ENTITLEMENT_ISSUER,
  LEASE_AUDIENCE,
  LEASE_TYP,
  MAX_OFFLINE_LEASE_SECONDS,
} from '../plugin/constants.ts';

/**
 * Why a license (or the user, on this device) is or is not licensed. `valid` grants; every other
 * reason is an error code of docs/reference/errors.md, answered 403 when thrown by require().
 * One list, shared with the plugin client (src/plugin/leases.ts).
 */
export type LeaseReason = LicenseReason;
export { LICENSE_REASONS as LEASE_REASONS };

/** Which reason the answer names when no license is valid: the one nearest to granting first. */
const PRIORITY: readonly LeaseReason[] = [
  'heartbeat_missed', 'device_limit_reached', 'not_activated_on_device', 'license_not_linked',
  'license_expired', 'license_suspended', 'license_disputed', 'license_refunded', 'no_license',
];

export interface LeaseOptions {
  /** Lifetime of an offline lease in seconds, 10 to 30 days (default 7 days). */
  offlineSeconds?: number;
  /** Age after which the plugin refreshes its lease in the background (default 4 hours; less than offlineSeconds). */
  refreshSeconds?: number;
}

export interface LeasePolicy {
  /** Seconds a device stays counted after its last heartbeat; null: no heartbeat (counted until deactivated). */
  heartbeatWindow: number | null;
  /** e.g. 1.25: a cap of 4 lets a 5th device in, flagged `overage`; null: 1 (none). */
  overageAllowance: number | null;
  /** true: any devices of the owner take the N slots (no activation per device); null: node-locked. */
  floating: boolean | null;
}

/** One license's answer for one device. */
export interface LicenseLease {
  licenseId: string;
  provider: LicenseProvider;
  keyPrefix: string;
  planSlug: string | null;
  reason: LeaseReason;
  /** The device holds a slot past the cap, within the overage allowance. */
  overage: boolean;
  /** The cap (null: none). */
  deviceLimit: number | null;
  /** Devices that may hold a lease at once: floor(cap x allowance); null: no cap. */
  allowed: number | null;
  devicesLive: number;
  heartbeatWindow: number | null;
  floating: boolean;
  licenseExpiresAt: Date | null;
}

export interface LeaseAnswer {
  /** Whether this device may use `planSlug` now: a license valid on it, or a plan from another source (Stripe, Figma, a seat, manual). */
  licensed: boolean;
  reason: LeaseReason;
  /** The plan this device has (the best source that is valid on it); null when not licensed. */
  planSlug: string | null;
  /** Where that plan comes from (`lemonsqueezy`, `gumroad`, `stripe`, `figma`, `seat`, `manual`, ...). */
  source: string | null;
  overage: boolean;
  deviceId: string;
  licenses: LicenseLease[];
  /** Send the next heartbeat within this many seconds (a third of the shortest window); null: no window. */
  heartbeatSeconds: number | null;
}

export interface OfflineLease {
  /** Compact JWS (typ license-lease+jwt), signed with the entitlement key; verify with verifyLicenseLease. */
  jwt: string;
  expiresAt: Date;
  /** When the plugin should fetch a new one (in the background). */
  refreshAfter: Date;
}

export interface DeviceInfo {
  licenseId: string;
  provider: LicenseProvider;
  keyPrefix: string;
  deviceId: string;
  deviceName: string;
  activatedAt: Date;
  lastSeenAt: Date;
  /** When the lease lapses without a heartbeat; null: no heartbeat window. */
  leaseEndsAt: Date | null;
  /** live: counted now; expired: missed its window, slot freed. */
  state: 'live' | 'expired';
  overage: boolean;
  floating: boolean;
  heartbeatWindow: number | null;
}

interface HeartbeatRow {
  license_id: string;
  provider: LicenseProvider;
  key_prefix: string;
  plan_slug: string | null;
  reason: LeaseReason;
  overage: boolean;
  device_limit: number | null;
  allowed: number | null;
  devices_live: number;
  heartbeat_window: number | null;
  floating: boolean;
  license_expires_at: Date | null;
}

const LICENSE_SOURCES = new Set(['lemonsqueezy', 'gumroad']);

function leaseSeconds(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    throw new SetupError('license_config_invalid', `license_config_invalid: leases.${name} must be a whole number of seconds from ${min} to ${max}`);
  }
  return value as number;
}

function policy(value: unknown): { window: number | null; overage: number | null; floating: boolean | null } {
  if (typeof value !== 'object' || value === null) {
    throw new ValidationError('invalid_lease_policy', 'invalid_lease_policy: pass { heartbeatWindow, overageAllowance, floating }');
  }
  const { heartbeatWindow = null, overageAllowance = null, floating = null } = value as Partial<LeasePolicy>;
  const ok =
    (heartbeatWindow === null || (Number.isInteger(heartbeatWindow) && heartbeatWindow >= 1 && heartbeatWindow <= 2_592_000)) &&
    (overageAllowance === null || (typeof overageAllowance === 'number' && overageAllowance >= 1 && overageAllowance <= 10 &&
      Math.round(overageAllowance * 100) === overageAllowance * 100)) &&
    (floating === null || typeof floating === 'boolean');
  if (!ok) {
    throw new ValidationError('invalid_lease_policy',
      'invalid_lease_policy: heartbeatWindow is 1 to 2592000 seconds, overageAllowance 1.00 to 10.00 (two decimals), floating true or false; null unsets');
  }
  return { window: heartbeatWindow, overage: overageAllowance, floating };
}

export function createLeases(db: Queryable, options: EntitlementKeyOptions & { leases?: LeaseOptions }) {
  db = withTypedErrors(db);
  const o = options.leases ?? {};
  const offlineSeconds = leaseSeconds(o.offlineSeconds, 'offlineSeconds', DEFAULT_OFFLINE_LEASE_SECONDS, 10, MAX_OFFLINE_LEASE_SECONDS);
  const refreshSeconds = leaseSeconds(o.refreshSeconds, 'refreshSeconds', Math.min(DEFAULT_LEASE_REFRESH_SECONDS, Math.floor(offlineSeconds / 2)), 1, offlineSeconds - 1);
  const keys = resolveEntitlementKeys(options);

  async function heartbeat(userId: string, deviceId: string): Promise<LeaseAnswer> {
    validate.userId(userId);
    const device = validate.deviceId(deviceId, true)!;
    const rows = await db.query<HeartbeatRow>('SELECT * FROM public.license_device_heartbeat($1::uuid, $2::uuid)', [userId, device]);
    const grants = await db.query<{ source: string; plan_slug: string }>(
      'SELECT g.source, g.plan_slug FROM public.plugin_auth_grants($1::uuid, now()) AS g ORDER BY g.rank', [userId]);
    const licenses: LicenseLease[] = rows.map((r) => ({
      licenseId: r.license_id,
      provider: r.provider,
      keyPrefix: r.key_prefix,
      planSlug: r.plan_slug,
      reason: r.reason,
      overage: r.overage,
      deviceLimit: r.device_limit,
      allowed: r.allowed,
      devicesLive: r.devices_live,
      heartbeatWindow: r.heartbeat_window,
      floating: r.floating,
      licenseExpiresAt: r.license_expires_at,
    }));
    // The best grant that holds on this device: a license grant only when a license of that store
    // and plan is valid here; any other source (Stripe, Figma, a seat, manual) as it is.
    const valid = licenses.filter((l) => l.reason === 'valid');
    const best = grants.find((g) => !LICENSE_SOURCES.has(g.source) || valid.some((l) => l.provider === g.source && l.planSlug === g.plan_slug));
    const windows = licenses.map((l) => l.heartbeatWindow).filter((w): w is number => w !== null);
    const heartbeatSeconds = windows.length ? Math.max(1, Math.floor(Math.min(...windows) / 3)) : null;
    if (best) {
      const holding = valid.filter((l) => l.provider === best.source && l.planSlug === best.plan_slug);
      return {
        licensed: true, reason: 'valid', planSlug: best.plan_slug, source: best.source,
        // Flagged only when every license that grants it holds this device past its cap.
        overage: holding.length > 0 && holding.every((l) => l.overage),
        deviceId: device, licenses, heartbeatSeconds,
      };
    }
    const reason = PRIORITY.find((r) => licenses.some((l) => l.reason === r)) ?? 'no_license';
    return { licensed: false, reason, planSlug: null, source: null, overage: false, deviceId: device, licenses, heartbeatSeconds };
  }

  return {
    /**
     * The heartbeat of a device (the verified session's deviceId): refreshes its lease on each of
     * the user's licenses, takes a free slot (floating licenses; a lapsed device), and answers why.
     */
    heartbeat,

    /** heartbeat(), and when licensed or not, a signed lease stating the answer for offline use (needs entitlementSigningKey). */
    async offlineLease(userId: string, deviceId: string): Promise<LeaseAnswer & { lease: OfflineLease }> {
      const { signing } = await keys();
      const answer = await heartbeat(userId, deviceId);
      const iat = Math.floor(Date.now() / 1000);
      const exp = iat + offlineSeconds;
      const { SignJWT } = await loadJose();
      const jwt = await new SignJWT({
        dev: answer.deviceId,
        licensed: answer.licensed,
        reason: answer.reason,
        plan: answer.planSlug,
        overage: answer.overage,
        rfa: iat + refreshSeconds,
      })
        .setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: LEASE_TYP })
        .setSubject(userId.toLowerCase())
        .setIssuer(ENTITLEMENT_ISSUER)
        .setAudience(LEASE_AUDIENCE)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(signing.key);
      return { ...answer, lease: { jwt, expiresAt: new Date(exp * 1000), refreshAfter: new Date((iat + refreshSeconds) * 1000) } };
    },

    /** heartbeat(), throwing the reason as a typed AuthError (403 at the server) when not licensed. */
    async require(userId: string, deviceId: string): Promise<LeaseAnswer> {
      const answer = await heartbeat(userId, deviceId);
      if (!answer.licensed) {
        throw new AuthError(answer.reason as ErrorCode, `${answer.reason}: this device is not licensed (${answer.licenses.length} license(s) checked)`);
      }
      return answer;
    },

    /** The devices of a user's licenses (or of one license), live and expired, newest lease last. */
    async devices(userId: string, filter: { licenseId?: string } = {}): Promise<DeviceInfo[]> {
      validate.userId(userId);
      const licenseId = filter.licenseId === undefined ? null : validate.userId(filter.licenseId, 'licenseId');
      const rows = await db.query<{
        license_id: string; provider: LicenseProvider; key_prefix: string; device_id: string; device_name: string;
        activated_at: Date; last_seen_at: Date; lease_ends_at: Date | null; live: boolean; overage: boolean; floating: boolean; heartbeat_window: number | null;
      }>('SELECT * FROM public.list_license_devices($1::uuid, $2::uuid)', [userId, licenseId]);
      return rows.map((r) => ({
        licenseId: r.license_id, provider: r.provider, keyPrefix: r.key_prefix, deviceId: r.device_id, deviceName: r.device_name,
        activatedAt: r.activated_at, lastSeenAt: r.last_seen_at, leaseEndsAt: r.lease_ends_at,
        state: r.live ? 'live' : 'expired', overage: r.overage, floating: r.floating, heartbeatWindow: r.heartbeat_window,
      }));
    },

    /** The lease policy of a plan: every license whose mapping grants it (a mapping's own policy wins). */
    async setPlanPolicy(planSlug: string, value: LeasePolicy): Promise<void> {
      const p = policy(value);
      await db.query('SELECT 1 FROM public.set_plan_lease_policy($1::varchar, $2::integer, $3::numeric, $4::boolean)', [planSlug, p.window, p.overage, p.floating]);
    },

    /** The lease policy of a product mapping (plans.linkLicense made it). */
    async setProductPolicy(product: { provider: LicenseProvider; productId: string; variantId?: string }, value: LeasePolicy): Promise<void> {
      const p = policy(value);
      if (typeof product !== 'object' || product === null) throw new ValidationError('invalid_lease_policy', 'invalid_lease_policy: pass { provider, productId, variantId? }');
      const provider = validate.licenseProvider(product.provider);
      await db.query('SELECT public.set_license_product_lease_policy($1::varchar, $2::varchar, $3::varchar, $4::integer, $5::numeric, $6::boolean)',
        [provider, product.productId, product.variantId ?? null, p.window, p.overage, p.floating]);
    },

    /** The public keys that verify offline leases: the entitlement keys (auth.entitlements.jwks()). */
    async jwks(): Promise<PublicJwks> {
      return (await keys()).jwks();
    },

    /** The lease lifetimes in force. */
    settings: { offlineSeconds, refreshSeconds },
  };
}

export type Leases = ReturnType<typeof createLeases>;
