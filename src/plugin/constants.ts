// Shared by the server (src/entitlements) and the plugin: what a snapshot's header and claims say.
export const ENTITLEMENT_ISSUER = 'figma-plugin-auth-db';
export const ENTITLEMENT_AUDIENCE = 'figma-plugin-entitlements';
export const ENTITLEMENT_TYP = 'entitlement+jwt';
/** Snapshots are valid for at most 15 minutes: the plan can change at any webhook. */
export const MAX_ENTITLEMENT_TTL_SECONDS = 900;
export const ENTITLEMENT_ALGORITHMS = ['ES256', 'EdDSA'] as const;
