// figma-plugin-auth-db/plugin: the browser-safe plugin client (no Node built-ins, no database
// driver). The UI iframe uses createPluginClient and verifyEntitlementSnapshot; the main thread
// uses installPluginBridge (also at figma-plugin-auth-db/plugin/main, which needs no DOM types).
export {
  createPluginClient,
  createParentBridge,
  randomId,
  type PluginClient,
  type PluginClientOptions,
  type CallResult,
  type CallOptions,
  type SignInResult,
  type UsageAnswerJson,
  type Bridge,
  type RetryOptions,
  type PollOptions,
  type LicenseResult,
} from './client.ts';
export { verifyLicenseLease, LICENSE_REASONS, type LicenseReason, type LicenseLeaseClaims, type LeaseCheck, type VerifyLeaseOptions } from './leases.ts';
export { verifyEntitlementSnapshot, type Entitlement, type EntitlementCheck, type VerifyEntitlementOptions } from './entitlements.ts';
export { installPluginBridge, DEFAULT_STORAGE_KEY, type BridgeFigma, type BridgeOptions } from './main.ts';
export { BRIDGE_TAG, type StoredSession, type StoredLease, type BridgeOp, type CheckoutInterstitial, type PaymentStatusType } from './protocol.ts';
export { ENTITLEMENT_ISSUER, ENTITLEMENT_AUDIENCE, ENTITLEMENT_TYP, MAX_ENTITLEMENT_TTL_SECONDS, LEASE_AUDIENCE, LEASE_TYP, MAX_OFFLINE_LEASE_SECONDS, DEFAULT_OFFLINE_LEASE_SECONDS } from './constants.ts';
