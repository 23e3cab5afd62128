// figma-plugin-auth-db: the runtime library a plugin's backend imports. The tree under src/ is one
// folder per concern: core/ (database, errors, validation, locks), usage/, tokens/, billing/ (plans,
// subscriptions and every payment source), entitlements/, http/, dashboard/, and plugin/ (the
// browser-side client, its own subpath). Setting up the schema is tooling, not runtime: it is the
// `figma-plugin-auth-db/schema` subpath (src/schema/) and the command line (src/cli/). Neither is
// imported from here (test/layout.test.ts keeps it so). Each folder's index.ts opens with what its room holds.
export * from './core/index.ts';
export { createPluginAuth, type PluginAuth, type PluginAuthOptions } from './auth.ts';
export * from './usage/index.ts';
export * from './tokens/index.ts';
export * from './billing/index.ts';
export { createEntitlements, generateEntitlementKey, type Entitlements, type EntitlementClaims, type EntitlementSnapshot, type EntitlementKeyOptions, type EntitlementJwk, type PreviousEntitlementKey, type PublicJwks } from './entitlements/index.ts';
export { withPluginCors, defaultPluginRoute, PLUGIN_ALLOW_HEADERS, WEBSITE_ONLY_ROUTES, serve, toNodeListener, toRequest, writeResponse, type Handler, type PluginCorsOptions, type Served } from './http/index.ts';
export * from './dashboard/index.ts';
