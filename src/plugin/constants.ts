// Shared by the server (src/entitlements) and the plugin: what a snapshot's header and claims say.
export const ENTITLEMENT_ISSUER = 'figma-plugin-auth-db';
export const ENTITLEMENT_AUDIENCE = 'figma-plugin-entitlements';
export const ENTITLEMENT_TYP = 'entitlement+jwt';
/** Snapshots are valid for at most 15 minutes: the plan can change at any webhook. */
export const MAX_ENTITLEMENT_TTL_SECONDS = 900;
export const ENTITLEMENT_ALGORITHMS = ['ES256', 'EdDSA'] as const;

// Offline license leases (docs/licenses.md#offline-leases): signed with the entitlement keys.
export const LEASE_AUDIENCE = 'figma-plugin-license-lease';
export const LEASE_TYP = 'license-lease+jwt';
/** The longest an offline lease may last: 30 days. */
export const MAX_OFFLINE_LEASE_SECONDS = 30 * 24 * 3600;
/** Default lifetime of an offline lease: 7 days. */
export const DEFAULT_OFFLINE_LEASE_SECONDS = 7 * 24 * 3600;
/** Default age after which the client refreshes a lease in the background: 4 hours. */
export const DEFAULT_LEASE_REFRESH_SECONDS = 4 * 3600;
/** Default clock skew a lease is verified with: 5 minutes. */
export const DEFAULT_LEASE_CLOCK_TOLERANCE_SECONDS = 300;

/** The reasons of docs/licenses.md#reasons: `valid`, or the error code saying why not. */
export type LicenseReason =
  | 'valid'
  | 'license_expired'
  | 'license_suspended'
  | 'license_refunded'
  | 'license_disputed'
  | 'license_not_linked'
  | 'device_limit_reached'
  | 'not_activated_on_device'
  | 'heartbeat_missed'
  | 'no_license';

export const LICENSE_REASONS: readonly LicenseReason[] = [
  'valid', 'license_expired', 'license_suspended', 'license_refunded', 'license_disputed', 'license_not_linked',
  'device_limit_reached', 'not_activated_on_device', 'heartbeat_missed', 'no_license',
];
