import { withTypedErrors, type Database } from './core/queryable.ts';
import { SetupError } from './core/errors.ts';
import { createTokens, type TokenOptions } from './tokens/tokens.ts';
import { createFigmaIdentity } from './tokens/figma-identity.ts';
import { createSubscriptions } from './billing/subscriptions.ts';
import { createStripeBilling, type StripeApiOptions } from './billing/stripe-billing.ts';
import { createPlans } from './billing/plans.ts';
import { createUsage } from './usage/usage.ts';
import { createFigma, type FigmaOptions } from './billing/figma.ts';
import { createLicenses, type LicenseOptions } from './billing/licenses.ts';
import type { LemonSqueezyOptions } from './billing/lemonsqueezy.ts';
import type { GumroadOptions } from './billing/gumroad.ts';
import { createSeats } from './billing/seats.ts';
import { createLeases, type LeaseOptions } from './billing/leases.ts';
import { createTeams } from './billing/teams.ts';
import { createEntitlements, type EntitlementKeyOptions } from './entitlements/index.ts';
import { createEvents } from './core/events.ts';

/** Options of createPluginAuth. Each part documents its own (entitlement snapshots: docs/plugin.md). */
export interface PluginAuthOptions extends EntitlementKeyOptions {
  /**
   * HS256 secret for plugin tokens (PLUGIN_TOKEN_SECRET): at least 32 bytes. Needed only by
   * `tokens`; the other parts work without it.
   */
  tokenSecret?: string;
  /** Plugin tokens: EdDSA key pair instead of tokenSecret (see docs/tokens.md). */
  tokenKeyPair?: TokenOptions['tokenKeyPair'];
  /** Plugin tokens: JWT iss (default 'figma-plugin-auth-db') and aud (default 'figma-plugin'). */
  tokenIssuer?: string;
  tokenAudience?: string;
  /** Plugin tokens: default lifetime in seconds (default 7 days), per-user cap, login request life (600 s). */
  tokenTtlSeconds?: number;
  maxTokensPerUser?: number;
  loginTtlSeconds?: number;
  /**
   * Figma's Payments API as a plan source and sign-in (docs/figma-payments.md). Without it,
   * `auth.figma` refuses every call with figma_not_configured.
   */
  figma?: FigmaOptions;
  /** Lemon Squeezy license keys and signed webhooks (docs/licenses.md). Without it, Lemon Squeezy calls are license_not_configured. */
  lemonSqueezy?: LemonSqueezyOptions;
  /** Gumroad license keys and pings (docs/licenses.md). Without it, Gumroad calls are license_not_configured. */
  gumroad?: GumroadOptions;
  /** License checks: cacheSeconds (300), graceSeconds (24 h), timeoutMs (5000). */
  licenses?: LicenseOptions;
  /** Offline license leases: offlineSeconds (7 days), refreshSeconds (4 h) (docs/licenses.md#offline-leases). */
  leases?: LeaseOptions;
  /**
   * Stripe's API (STRIPE_SECRET_KEY): `subscriptions.reconcileStripe`, `createCheckoutSession` and
   * `createPortalSession` (docs/subscriptions.md). Without it they are stripe_not_configured; the
   * webhook sync needs none of it.
   */
  stripe?: StripeApiOptions;
}

/**
 * The library's entry point: one object per database, grouping the parts of the product.
 * Every part is a thin, typed layer over the SQL functions installed by setup.
 */
export function createPluginAuth(raw: Database, options: PluginAuthOptions = {}) {
  // Every part queries through the one translating path; auth.db stays the caller's own.
  const db = withTypedErrors(raw);
  const tokens = createTokens(db, options);
  const subscriptions = { ...createSubscriptions(db), ...createStripeBilling(db, options.stripe) };
  return {
    db: raw,
    usage: createUsage(db),
    tokens,
    /** Sign in with Figma: the user of a Figma id verified through OAuth (createPluginServer's figmaOAuth). */
    figmaIdentity: createFigmaIdentity(db),
    subscriptions,
    plans: createPlans(db),
    figma: options.figma
      ? createFigma(db, options.figma, {
          issueToken: (userId, o) => tokens.issue(userId, o),
          planSlug: async (userId) => (await subscriptions.effectivePlan(userId)).planSlug,
        })
      : figmaNotConfigured(),
    entitlements: createEntitlements(db, options),
    licenses: createLicenses(db, options),
    seats: createSeats(db),
    /** Device leases, heartbeats, the device list and offline leases (docs/licenses.md#device-leases). */
    leases: createLeases(db, options),
    /** Teams that manage themselves: invitations with claim links, remove, leave, transfer (docs/licenses.md#teams). */
    teams: createTeams(db),
    /** What the server records for the operator's console: webhook deliveries and refused sign-ins (docs/dashboard.md). */
    events: createEvents(db),
    /** Which optional parts have their options: the server (src/server/) opens a feature's routes only when it is configured. */
    configured: {
      tokens: Boolean(options.tokenSecret || options.tokenKeyPair),
      entitlements: Boolean(options.entitlementSigningKey),
      figma: Boolean(options.figma),
      lemonSqueezy: Boolean(options.lemonSqueezy),
      gumroad: Boolean(options.gumroad),
      stripe: Boolean(options.stripe),
    },
  };
}

/** auth.figma without options.figma: every call says what to configure. */
function figmaNotConfigured(): ReturnType<typeof createFigma> {
  const refuse = async (): Promise<never> => {
    throw new SetupError('figma_not_configured', 'figma_not_configured: pass createPluginAuth(db, { figma: { personalAccessToken, pluginId } })');
  };
  return { verifyPaymentToken: refuse, signIn: refuse, link: refuse };
}

export type PluginAuth = ReturnType<typeof createPluginAuth>;
