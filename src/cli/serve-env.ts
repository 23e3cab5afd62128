// The settings of `figma-plugin-auth-db serve`, read from environment variables and checked all at
// once before anything starts: each missing or malformed one is named (never its value: most are
// secrets). Each optional feature is off until its variables are set.
import { SetupError } from '../core/errors.ts';
import type { Env } from '../core/env.ts';
import type { PluginAuthOptions } from '../auth.ts';
import type { FigmaOAuthOptions, MeteredRoute } from '../server/index.ts';

export interface ServeSettings {
  databaseUrl: string;
  port: number;
  host: string;
  basePath: string;
  auth: PluginAuthOptions;
  stripeWebhookSecret?: string;
  /** The billing routes (STRIPE_SECRET_KEY with BILLING_SUCCESS_URL and BILLING_RETURN_URL). */
  billing?: { successUrl: string; cancelUrl?: string; returnUrl: string };
  website?: { origin: string; sessionUrl: string; loginUrl?: string };
  /** Sign in with Figma (FIGMA_CLIENT_ID, FIGMA_CLIENT_SECRET, FIGMA_OAUTH_BASE_URL, FIGMA_API_BASE_URL, PUBLIC_URL). */
  figmaOAuth?: FigmaOAuthOptions;
  meter: Record<string, MeteredRoute>;
  /** What is on, for the startup line (names only). */
  features: string[];
}

/** Every variable serve reads, and what it is for (docs/deploy.md lists the same). */
export const SERVE_ENV = [
  'DATABASE_URL', 'PLUGIN_TOKEN_SECRET', 'ENTITLEMENT_SIGNING_KEY', 'STRIPE_WEBHOOK_SECRET',
  'STRIPE_SECRET_KEY', 'STRIPE_API_BASE_URL', 'BILLING_SUCCESS_URL', 'BILLING_CANCEL_URL', 'BILLING_RETURN_URL',
  'FIGMA_PERSONAL_ACCESS_TOKEN', 'FIGMA_PLUGIN_ID', 'FIGMA_API_BASE_URL', 'LEMONSQUEEZY_WEBHOOK_SECRET', 'LEMONSQUEEZY_API_BASE_URL',
  'GUMROAD_ACCESS_TOKEN', 'GUMROAD_API_BASE_URL', 'WEBSITE_ORIGIN', 'WEBSITE_SESSION_URL', 'WEBSITE_LOGIN_URL',
  'FIGMA_CLIENT_ID', 'FIGMA_CLIENT_SECRET', 'FIGMA_OAUTH_BASE_URL', 'PUBLIC_URL',
  'PORT', 'HOST', 'BASE_PATH', 'METER',
] as const;

/** One entry of METER: `/path=action` (one item per call) or `/path=action:field` (items from that JSON field). */
const METER_ENTRY = /^(\/[A-Za-z0-9._~\/-]*)=([A-Za-z0-9._-]{1,64})(?::([A-Za-z_][A-Za-z0-9_]{0,63}))?$/;

export function readServeSettings(env: Env): ServeSettings {
  const problems: string[] = [];
  const get = (name: (typeof SERVE_ENV)[number]) => {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
  };
  const features: string[] = [];

  const databaseUrl = get('DATABASE_URL');
  if (!databaseUrl) problems.push('DATABASE_URL is missing: a postgres:// URL (or pglite:<dir> on one machine)');
  else if (!/^(postgres(ql)?:\/\/|pglite:|memory:\/\/)/.test(databaseUrl)) problems.push('DATABASE_URL is not a postgres:// URL, pglite:<dir> or memory://');

  const tokenSecret = get('PLUGIN_TOKEN_SECRET');
  if (!tokenSecret) problems.push('PLUGIN_TOKEN_SECRET is missing: at least 32 random bytes, e.g. `openssl rand -base64 48`');
  else if (new TextEncoder().encode(tokenSecret).byteLength < 32) problems.push('PLUGIN_TOKEN_SECRET is too short: at least 32 bytes');

  const auth: PluginAuthOptions = { ...(tokenSecret ? { tokenSecret } : {}) };
  const entitlementKey = get('ENTITLEMENT_SIGNING_KEY');
  if (entitlementKey) {
    // The library checks the key itself (createPluginAuth); here only that it is a JSON object.
    try {
      const jwk: unknown = JSON.parse(entitlementKey);
      if (typeof jwk !== 'object' || jwk === null) throw new Error('not an object');
      auth.entitlementSigningKey = entitlementKey;
      features.push('entitlements');
    } catch {
      problems.push('ENTITLEMENT_SIGNING_KEY is not a JSON private key (`figma-plugin-auth-db keygen` or `npm run entitlements:keygen` makes one)');
    }
  }

  const stripeWebhookSecret = get('STRIPE_WEBHOOK_SECRET');
  if (stripeWebhookSecret) {
    if (!/^whsec_[A-Za-z0-9]{8,}$/.test(stripeWebhookSecret)) problems.push('STRIPE_WEBHOOK_SECRET is not an endpoint signing secret (whsec_…)');
    else features.push('stripe');
  }

  // Stripe's API: checkout and the customer portal for the plugin session (the billing routes).
  const stripeKey = get('STRIPE_SECRET_KEY');
  const successUrl = get('BILLING_SUCCESS_URL');
  const returnUrl = get('BILLING_RETURN_URL');
  let billing: ServeSettings['billing'];
  if (stripeKey || successUrl || returnUrl) {
    if (!stripeKey) problems.push('STRIPE_SECRET_KEY is missing: BILLING_SUCCESS_URL or BILLING_RETURN_URL is set, but checkout and the portal need Stripe\'s API');
    else if (!/^(sk|rk)_(test|live)_[A-Za-z0-9_]{8,}$/.test(stripeKey)) problems.push('STRIPE_SECRET_KEY is not a secret key (sk_…) or a restricted key (rk_…)');
    if (!successUrl) problems.push('BILLING_SUCCESS_URL is missing: where Stripe Checkout sends the buyer after paying');
    if (!returnUrl) problems.push('BILLING_RETURN_URL is missing: where the customer portal\'s return link leads');
    const success = httpUrl('BILLING_SUCCESS_URL');
    const cancel = httpUrl('BILLING_CANCEL_URL');
    const back = httpUrl('BILLING_RETURN_URL');
    const apiBaseUrl = httpUrl('STRIPE_API_BASE_URL');
    if (stripeKey && /^(sk|rk)_(test|live)_[A-Za-z0-9_]{8,}$/.test(stripeKey) && success && back) {
      auth.stripe = { secretKey: stripeKey, ...(apiBaseUrl ? { apiBaseUrl } : {}) };
      billing = { successUrl: success, returnUrl: back, ...(cancel ? { cancelUrl: cancel } : {}) };
      features.push('billing');
    }
  }

  const pat = get('FIGMA_PERSONAL_ACCESS_TOKEN');
  const pluginId = get('FIGMA_PLUGIN_ID');
  if (pat) {
    // Without the plugin id a payment token of any plugin would be accepted: required.
    if (!pluginId) problems.push('FIGMA_PLUGIN_ID is missing: Figma sign-in needs your plugin\'s id (manifest `id`)');
    else if (!/^\d{1,30}$/.test(pluginId)) problems.push('FIGMA_PLUGIN_ID is not a plugin id (digits)');
    const apiBaseUrl = httpUrl('FIGMA_API_BASE_URL');
    if (pluginId && /^\d{1,30}$/.test(pluginId)) {
      auth.figma = { personalAccessToken: pat, pluginId, ...(apiBaseUrl ? { apiBaseUrl } : {}) };
      features.push('figma');
    }
  } else if (pluginId) {
    problems.push('FIGMA_PERSONAL_ACCESS_TOKEN is missing: FIGMA_PLUGIN_ID is set, but Figma sign-in needs the token too');
  }

  const lemonSecret = get('LEMONSQUEEZY_WEBHOOK_SECRET');
  if (lemonSecret) {
    if (lemonSecret.length < 6 || lemonSecret.length > 255) problems.push('LEMONSQUEEZY_WEBHOOK_SECRET must be 6 to 255 characters');
    else {
      const apiBaseUrl = httpUrl('LEMONSQUEEZY_API_BASE_URL');
      auth.lemonSqueezy = { webhookSecret: lemonSecret, ...(apiBaseUrl ? { apiBaseUrl } : {}) };
      features.push('lemonsqueezy');
    }
  }
  const gumroadToken = get('GUMROAD_ACCESS_TOKEN');
  if (gumroadToken) {
    const apiBaseUrl = httpUrl('GUMROAD_API_BASE_URL');
    auth.gumroad = { accessToken: gumroadToken, ...(apiBaseUrl ? { apiBaseUrl } : {}) };
    features.push('gumroad');
  }

  const websiteOrigin = get('WEBSITE_ORIGIN');
  const sessionUrl = get('WEBSITE_SESSION_URL');
  let website: ServeSettings['website'];
  if (websiteOrigin || sessionUrl) {
    if (!websiteOrigin) problems.push('WEBSITE_ORIGIN is missing: WEBSITE_SESSION_URL is set, but the login needs the website\'s origin too');
    else if (!isOrigin(websiteOrigin)) problems.push('WEBSITE_ORIGIN is not an origin such as https://app.example.com');
    if (!sessionUrl) problems.push('WEBSITE_SESSION_URL is missing: the URL on your website that answers {"userId"} for its session cookie');
    const session = httpUrl('WEBSITE_SESSION_URL');
    const loginUrl = httpUrl('WEBSITE_LOGIN_URL');
    if (websiteOrigin && isOrigin(websiteOrigin) && session) {
      website = { origin: new URL(websiteOrigin).origin, sessionUrl: session, ...(loginUrl ? { loginUrl } : {}) };
      features.push('login');
    }
  }

  // Sign in with Figma: both halves of the OAuth app's credentials, or neither.
  const clientId = get('FIGMA_CLIENT_ID');
  const clientSecret = get('FIGMA_CLIENT_SECRET');
  let figmaOAuth: FigmaOAuthOptions | undefined;
  if (clientId || clientSecret) {
    if (!clientId) problems.push('FIGMA_CLIENT_ID is missing: FIGMA_CLIENT_SECRET is set, but Sign in with Figma needs the OAuth app\'s client id too');
    if (!clientSecret) problems.push('FIGMA_CLIENT_SECRET is missing: FIGMA_CLIENT_ID is set, but Sign in with Figma needs the OAuth app\'s client secret too');
    const oauthBaseUrl = httpUrl('FIGMA_OAUTH_BASE_URL');
    const apiBaseUrl = httpUrl('FIGMA_API_BASE_URL');
    const publicUrl = httpUrl('PUBLIC_URL');
    if (clientId && clientSecret) {
      figmaOAuth = { clientId, clientSecret, ...(oauthBaseUrl ? { oauthBaseUrl } : {}), ...(apiBaseUrl ? { apiBaseUrl } : {}), ...(publicUrl ? { publicUrl } : {}) };
      features.push('figma-sign-in');
    }
  }

  const portText = get('PORT') ?? '8787';
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port > 65535) problems.push('PORT is not a whole number from 0 to 65535');
  const host = get('HOST') ?? '127.0.0.1';
  if (!/^[A-Za-z0-9.:[\]-]{1,255}$/.test(host)) problems.push('HOST is not a host name or an IP address');
  const basePath = get('BASE_PATH') ?? '';
  if (basePath && !/^\/[A-Za-z0-9._~\/-]*$/.test(basePath)) problems.push('BASE_PATH must start with / (e.g. /api)');

  const meter: Record<string, MeteredRoute> = {};
  for (const entry of (get('METER') ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
    const match = METER_ENTRY.exec(entry);
    if (!match) {
      problems.push(`METER: "${entry.slice(0, 80)}" is not /path=action or /path=action:field`);
      continue;
    }
    const [, path, action, field] = match as unknown as [string, string, string, string | undefined];
    if (meter[path]) problems.push(`METER: ${path} is listed twice`);
    meter[path] = { action, ...(field ? { items: (body: Record<string, unknown>) => body[field] } : {}) };
  }
  if (Object.keys(meter).length) features.push(`meter (${Object.keys(meter).join(', ')})`);

  if (problems.length) {
    throw new SetupError('server_env_invalid', `server_env_invalid: ${problems.length === 1 ? problems[0] : `\n  ${problems.join('\n  ')}`}`);
  }
  return {
    databaseUrl: databaseUrl!, port, host, basePath, auth, meter, features,
    ...(stripeWebhookSecret ? { stripeWebhookSecret } : {}),
    ...(billing ? { billing } : {}),
    ...(website ? { website } : {}),
    ...(figmaOAuth ? { figmaOAuth } : {}),
  };

  function httpUrl(name: (typeof SERVE_ENV)[number]): string | undefined {
    const value = get(name);
    if (value === undefined) return undefined;
    try {
      if (['http:', 'https:'].includes(new URL(value).protocol)) return value;
    } catch {
      // reported below
    }
    problems.push(`${name} is not an http(s) URL`);
    return undefined;
  }
}

function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return ['http:', 'https:'].includes(url.protocol) && url.origin === value.replace(/\/$/, '');
  } catch {
    return false;
  }
}
