// figma-plugin-auth-db: the runtime library a plugin's backend imports. The root is narrow on
// purpose: one entry (createPluginAuth over openDatabase), the error classes and their table, the
// types of what the parts take and return, and three operator helpers that work across all users
// (usageReport, purgeUsage, createDashboardHandler). The parts themselves (usage, tokens, plans,
// subscriptions, figma, licenses, seats, entitlements) are reached through createPluginAuth only:
// one object per database, each input checked once where it enters.
// The tree under src/ is one folder per concern: core/ (database, errors, validation, locks),
// usage/, tokens/, billing/ (plans, subscriptions and every payment source), entitlements/, http/,
// dashboard/, and plugin/ (the browser-side client, its own subpath). Setting up the schema is
// tooling, not runtime: it is the `figma-plugin-auth-db/schema` subpath (src/schema/) and the
// command line (src/cli/). Neither is imported from here (test/repo.layout.test.ts keeps it so).
export { createPluginAuth, type PluginAuth, type PluginAuthOptions } from './auth.ts';
export { openDatabase, type Database, type Queryable, type OpenOptions, type PGliteInstance } from './core/db.ts';
export {
  PluginAuthError,
  ValidationError,
  NotFoundError,
  AuthError,
  SetupError,
  DatabaseError,
  ServiceError,
  ERRORS,
  type ErrorCode,
  type ErrorInfo,
  type ErrorClassName,
} from './core/errors.ts';
export { type UserRef } from './core/users.ts';
export { type LicenseProvider } from './core/validation.ts';

// Operator helpers over every user (docs/scale.md, docs/dashboard.md).
export { usageReport, type ReportOptions, type UsageReportDay, type UsageDenial, type UsageTotal } from './usage/report.ts';
export { purgeUsage, type PurgeOptions, type PurgeResult } from './usage/retention.ts';
export { createDashboardHandler, type DashboardHandler, type DashboardOptions } from './dashboard/handler.ts';

// The types of the parts of createPluginAuth, for code that passes them around.
export type { Usage, UsageAnswer, UsageReason, UsageSummaryDay, ConsumeOptions, CheckOptions, SummaryOptions, RefundResult } from './usage/usage.ts';
export type { UsageReport } from './usage/report.ts';
export type { Tokens, TokenOptions, IssuedToken, VerifiedToken, TokenInfo } from './tokens/tokens.ts';
export type { BegunLogin } from './tokens/login.ts';
export type { TokenKey } from './tokens/signer.ts';
export type {
  Subscriptions,
  SubscriptionStatus,
  StripeSubscriptionLike,
  SyncOptions,
  SyncResult,
  EffectivePlan,
  AssignedPlan,
} from './billing/subscriptions.ts';
export type {
  StripeBilling,
  StripeApiOptions,
  ReconcileOptions,
  ReconcileReport,
  ReconcileDifference,
  ReconcileField,
  ReconcileOutcome,
  CheckoutOptions,
  CheckoutSession,
  PortalSession,
} from './billing/stripe-billing.ts';
export type { StripeApiError, StripeErrorInfo } from './billing/stripe-api.ts';
export type { Plans, Plan, PlanLimits, StripeLink, FigmaLink, LicenseLink } from './billing/plans.ts';
export type { Figma, FigmaOptions, FigmaPayment, FigmaSignIn } from './billing/figma.ts';
export type { PlanSource, PlanGrant } from './billing/sources.ts';
export type { Licenses, LicenseOptions, ActivateInput, Activation, LicenseInfo, Validation, WebhookResult } from './billing/licenses.ts';
export type { LemonSqueezyOptions } from './billing/lemonsqueezy.ts';
export type { GumroadOptions } from './billing/gumroad.ts';
export type { Seats, SeatList, SeatMember, SeatAssignment } from './billing/seats.ts';
export type { Leases, LeaseOptions, LeasePolicy, LeaseReason, LeaseAnswer, LicenseLease, OfflineLease, DeviceInfo } from './billing/leases.ts';
export type { Teams, Team, TeamMember, Invitation, InviteInput, Claim, PendingInvitation, Transfer } from './billing/teams.ts';
export type { Entitlements, EntitlementClaims, EntitlementSnapshot, EntitlementKeyOptions, EntitlementJwk, PreviousEntitlementKey, PublicJwks } from './entitlements/index.ts';
