// figma-plugin-auth-db: the runtime library a plugin's backend imports. The tree under src/ is one
// folder per concern: core/ (database, errors, validation, locks), usage/, tokens/, billing/ (plans,
// subscriptions and every payment source), entitlements/, http/, dashboard/, and plugin/ (the
// browser-side client, its own subpath). Setting up the schema is tooling, not runtime: it is the
// `figma-plugin-auth-db/schema` subpath (src/schema/) and the command line (src/cli/). Neither is
// imported from here (test/layout.test.ts keeps it so).
export { openDatabase, DEFAULT_PGLITE_DIR, type Database, type Queryable, type OpenOptions } from './core/db.ts';
export { createPluginAuth, type PluginAuth, type PluginAuthOptions } from './auth.ts';
export {
  PluginAuthError,
  ValidationError,
  NotFoundError,
  AuthError,
  SetupError,
  DatabaseError,
} from './core/errors.ts';
export { loadDevelopmentEnv } from './core/env.ts';
export { createTokens, type Tokens, type TokenOptions, type IssuedToken, type VerifiedToken, type TokenInfo } from './tokens/tokens.ts';
export { type BegunLogin } from './tokens/login.ts';
export { type TokenKey } from './tokens/signer.ts';
export {
  createSubscriptions,
  type Subscriptions,
  type SubscriptionStatus,
  type StripeSubscriptionLike,
  type SyncOptions,
  type SyncResult,
  type EffectivePlan,
  type AssignedPlan,
} from './billing/subscriptions.ts';
export { createPlans, type Plans, type Plan, type PlanLimits, type StripeLink } from './billing/plans.ts';
export { createUsage, type Usage, type UsageAnswer, type UsageReason, type UsageSummaryDay, type ConsumeOptions, type CheckOptions, type SummaryOptions, type RefundResult } from './usage/usage.ts';
export { usageReport, type ReportOptions, type UsageReportDay } from './usage/report.ts';
export { purgeUsage, parseAge, type PurgeOptions, type PurgeResult } from './usage/retention.ts';
export { findUser, type UserRef } from './core/users.ts';
export { createUsageReport, type UsageReport, type UsageDenial, type UsageTotal } from './usage/report.ts';
export { ServiceError } from './core/errors.ts';
export { type FigmaLink } from './billing/plans.ts';
export { type Figma, type FigmaOptions, type FigmaPayment, type FigmaSignIn } from './billing/figma.ts';
export { SOURCE_PRECEDENCE, listGrants, type PlanSource, type PlanGrant } from './billing/sources.ts';
export { withPluginCors, defaultPluginRoute, PLUGIN_ALLOW_HEADERS, WEBSITE_ONLY_ROUTES, serve, toNodeListener, toRequest, writeResponse, type Handler, type PluginCorsOptions, type Served } from './http/index.ts';
export { createEntitlements, generateEntitlementKey, type Entitlements, type EntitlementClaims, type EntitlementSnapshot, type EntitlementKeyOptions, type EntitlementJwk, type PublicJwks } from './entitlements/index.ts';
export { createDashboardHandler, type DashboardHandler, type DashboardOptions } from './dashboard/handler.ts';
export { startDashboardServer, type DashboardServer, type DashboardServerOptions } from './dashboard/server.ts';
export { createLicenses, type Licenses, type LicenseOptions, type ActivateInput, type Activation, type LicenseInfo, type Validation, type WebhookResult } from './billing/licenses.ts';
export { type LemonSqueezyOptions } from './billing/lemonsqueezy.ts';
export { type GumroadOptions } from './billing/gumroad.ts';
export { createSeats, type Seats, type SeatList } from './billing/seats.ts';
export { type LicenseLink } from './billing/plans.ts';
export { type LicenseProvider } from './core/validation.ts';
