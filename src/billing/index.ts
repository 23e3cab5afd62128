// billing/: what users pay for, from every source. plans (plans, limits and their links to Stripe
// prices, Figma and store products), subscriptions (Stripe sync and manual assignment, the
// effective plan), sources (the one entitlement rule over all sources: Stripe, Figma, Lemon
// Squeezy, Gumroad, seats, manual), figma (Figma's Payments API), licenses with lemonsqueezy and
// gumroad (license keys, devices, webhooks) over store-http, seats (team seats), teams (invitations
// with claim links, remove, leave, transfer), stripe-billing (reconcile, checkout and the customer
// portal) over stripe-api (Stripe's REST API on fetch).
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
export {
  createStripeBilling,
  type StripeBilling,
  type ReconcileOptions,
  type ReconcileReport,
  type ReconcileDifference,
  type ReconcileField,
  type ReconcileOutcome,
  type CheckoutOptions,
  type CheckoutSession,
  type PortalSession,
} from './stripe-billing.ts';
export { createStripeApi, StripeApiError, type StripeApi, type StripeApiOptions, type StripeErrorInfo } from './stripe-api.ts';
export { createPlans, type Plans, type Plan, type PlanLimits, type StripeLink, type FigmaLink, type LicenseLink } from './plans.ts';
export { type Figma, type FigmaOptions, type FigmaPayment, type FigmaSignIn } from './figma.ts';
export { SOURCE_PRECEDENCE, listGrants, type PlanSource, type PlanGrant } from './sources.ts';
export { createLicenses, type Licenses, type LicenseOptions, type ActivateInput, type Activation, type LicenseInfo, type Validation, type WebhookResult } from './licenses.ts';
export { type LemonSqueezyOptions } from './lemonsqueezy.ts';
export { type GumroadOptions } from './gumroad.ts';
export { createSeats, type Seats, type SeatList, type SeatMember, type SeatAssignment } from './seats.ts';
export { createTeams, type Teams, type Team, type TeamMember, type Invitation, type InviteInput, type Claim, type PendingInvitation, type Transfer } from './teams.ts';
