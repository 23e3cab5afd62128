export { openDatabase, DEFAULT_PGLITE_DIR, type Database, type Queryable, type OpenOptions } from './db.ts';
export { createPluginAuth, type PluginAuth, type PluginAuthOptions } from './auth.ts';
export {
  PluginAuthError,
  ValidationError,
  NotFoundError,
  AuthError,
  SetupError,
  DatabaseError,
} from './errors.ts';
export {
  setup,
  applySchema,
  applySchemaViaSupabase,
  resolveTarget,
  describeTarget,
  type SetupResult,
  type SetupMode,
  type SetupTarget,
} from './setup.ts';
export { buildSetupScript, loadMigrations, schemaVersion, type Migration } from './migrations.ts';
export { readCatalog, diffSchema, loadExpectedSchema, formatDifferences, type Catalog, type Difference } from './catalog.ts';
export { loadDevelopmentEnv } from './env.ts';
export { createTokens, type Tokens, type TokenOptions, type IssuedToken, type VerifiedToken, type TokenInfo } from './tokens.ts';
export { type BegunLogin } from './login.ts';
export { type TokenKey } from './token-signer.ts';
export {
  createSubscriptions,
  type Subscriptions,
  type SubscriptionStatus,
  type StripeSubscriptionLike,
  type SyncOptions,
  type SyncResult,
  type EffectivePlan,
  type AssignedPlan,
} from './subscriptions.ts';
export { createPlans, type Plans, type Plan, type PlanLimits, type StripeLink } from './plans.ts';
export { createUsage, type Usage, type UsageAnswer, type UsageReason, type UsageSummaryDay, type ConsumeOptions, type CheckOptions, type SummaryOptions, type RefundResult } from './usage.ts';
export { usageReport, type ReportOptions, type UsageReportDay } from './usage-report.ts';
export { purgeUsage, parseAge, type PurgeOptions, type PurgeResult } from './retention.ts';
export { findUser, type UserRef } from './users.ts';
export { createUsageReport, type UsageReport, type UsageDenial, type UsageTotal } from './usage-report.ts';
export { ServiceError } from './errors.ts';
export { type FigmaLink } from './plans.ts';
export { type Figma, type FigmaOptions, type FigmaPayment, type FigmaSignIn } from './billing/figma.ts';
export { SOURCE_PRECEDENCE, listGrants, type PlanSource, type PlanGrant } from './billing/sources.ts';
export { withPluginCors, defaultPluginRoute, PLUGIN_ALLOW_HEADERS, WEBSITE_ONLY_ROUTES, serve, toNodeListener, toRequest, writeResponse, type Handler, type PluginCorsOptions, type Served } from './http/index.ts';
export { createEntitlements, generateEntitlementKey, type Entitlements, type EntitlementClaims, type EntitlementSnapshot, type EntitlementKeyOptions, type EntitlementJwk, type PublicJwks } from './entitlements/index.ts';
export { createDashboardHandler, type DashboardHandler, type DashboardOptions } from './dashboard/handler.ts';
export { startDashboardServer, type DashboardServer, type DashboardServerOptions } from './dashboard/server.ts';
export { createLicenses, type Licenses, type LicenseOptions, type ActivateInput, type Activation, type LicenseInfo, type Validation, type WebhookResult } from './billing/licenses.ts';
export { type LemonSqueezyOptions } from './billing/lemonsqueezy.ts';
export { type GumroadOptions } from './billing/gumroad.ts';
export { createSeats, type Seats, type SeatList, type SeatMember, type SeatAssignment } from './billing/seats.ts';
export { type LicenseLink } from './plans.ts';
export { type LicenseProvider } from './validation.ts';
