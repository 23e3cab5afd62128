// What both license stores' clients share: one form-encoded POST with a timeout, typed failures,
// and the license state they answer, as sql/016 stores it. Nothing of a key reaches an error.
import { AuthError, NotFoundError, ServiceError, SetupError } from '../core/errors.ts';
import type { LicenseProvider } from '../core/validation.ts';

const MAX_ANSWER_BYTES = 64 * 1024;

/** A license as a store reported it. */
export interface StoreLicense {
  status: 'inactive' | 'active' | 'expired' | 'disabled' | 'refunded' | 'disputed' | 'chargebacked' | 'ended';
  providerKeyId: string | null;
  productId: string;
  variantId: string | null;
  orderId: string | null;
  /** The store's own device limit (Lemon Squeezy), else null. */
  activationLimit: number | null;
  /** Seats bought (Gumroad multi-seat quantity), else 1. */
  quantity: number;
  expiresAt: Date | null;
  /** Lemon Squeezy's activation instance, after activate. */
  instanceId: string | null;
  /** What the buyer paid, in minor units of `currency`, when the store's answer says (Gumroad's purchase.price); else null. */
  priceMinor?: number | null;
  /** The currency's ISO 4217 code as the store writes it, with priceMinor. */
  currency?: string | null;
  /** The billing period of a subscription purchase (month, quarter, half_year, year, two_years); null for a one-time sale. */
  priceInterval?: string | null;
}

export interface StoreConfig {
  base: URL;
  timeoutMs: number;
  headers: Record<string, string>;
}

export const NAMES: Record<LicenseProvider, string> = { lemonsqueezy: 'Lemon Squeezy', gumroad: 'Gumroad' };

export const unavailable = (provider: LicenseProvider, why: string) =>
  new ServiceError('license_unavailable', `license_unavailable: ${NAMES[provider]} ${why}; no stored answer for this license is recent enough to use instead`);

export const rejected = (provider: LicenseProvider, why: string) =>
  new AuthError('license_key_rejected', `license_key_rejected: ${NAMES[provider]} does not accept this license key (${why})`);

/**
 * The store does not know a key of its own shape (404): a key bought moments ago may not have
 * reached the store's license API yet (Polar users report up to two minutes after purchase), so
 * this is retryable, and says so; a typo in a well-shaped key gets the same answer.
 */
export const unknownKey = (provider: LicenseProvider) =>
  new NotFoundError('license_key_unknown', `license_key_unknown: ${NAMES[provider]} does not know this license key (yet): a key bought moments ago can take a minute or two to reach its license API; try again shortly, or check the key`);

/**
 * The shape of each store's own keys: Lemon Squeezy's are UUIDs; Gumroad's four groups of eight
 * hexadecimal characters (its API reference's example, BEA0454F-918A4F76-B68EFA71-6187C39D). A
 * 404 for a key of another shape is a wrong key (license_key_rejected, at once); for a key of the
 * store's shape it may be a purchase the store has not finished: retried, then license_key_unknown.
 */
export const KEY_SHAPES: Record<LicenseProvider, RegExp> = {
  lemonsqueezy: /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/,
  gumroad: /^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{8}){3}$/,
};

/** A store's 404 for a key: unknown (retryable) when it has the store's shape, else rejected. */
export const notFound = (provider: LicenseProvider, key: string) =>
  KEY_SHAPES[provider].test(key) ? unknownKey(provider) : rejected(provider, 'HTTP 404');

/**
 * Runs a first activation's store call again while the store answers license_key_unknown, after
 * each delay in turn (backoff); the last answer stands.
 */
export async function retryUnknownKey<T>(call: () => Promise<T>, delaysMs: readonly number[]): Promise<T> {
  for (const delay of delaysMs) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof NotFoundError && error.code === 'license_key_unknown')) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
  return call();
}

const ID = /^[A-Za-z0-9_=+/.:-]{1,128}$/;
/** A store id (number or string) as text, or null when absent or not id-shaped. */
export const idText = (value: unknown): string | null => {
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : typeof value === 'string' ? value : null;
  return text !== null && ID.test(text) ? text : null;
};

export const dateOrNull = (value: unknown): Date | null => {
  if (typeof value !== 'string' || value === '') return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
};

export function resolveBase(provider: LicenseProvider, value: unknown, fallback: string): URL {
  try {
    const base = new URL((value as string | undefined) ?? fallback);
    if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new Error('protocol');
    return base;
  } catch {
    throw new SetupError('license_config_invalid', `license_config_invalid: ${provider}.apiBaseUrl must be an http(s) URL`);
  }
}

/** POSTs a form; returns the status and parsed JSON (null when not JSON). 429, 5xx and timeouts are license_unavailable. */
export async function postForm(
  provider: LicenseProvider,
  config: StoreConfig,
  path: string,
  form: Record<string, string>,
  options: { keep500?: boolean } = {},
): Promise<{ status: number; body: Record<string, unknown> | null }> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(new URL(path, config.base), {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded', ...config.headers },
      body: new URLSearchParams(form).toString(),
      redirect: 'error',
      signal: AbortSignal.timeout(config.timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    // No cause attached: a fetch error may quote the request, and the request carries the key.
    const name = (error as Error)?.name;
    throw unavailable(provider, name === 'TimeoutError' || name === 'AbortError' ? `did not answer within ${config.timeoutMs} ms` : 'could not be reached');
  }
  // keep500: a caller that reads a 500's JSON message (Gumroad's product_id requirement).
  if (response.status === 429 || (response.status >= 500 && !(options.keep500 && response.status === 500))) throw unavailable(provider, `answered HTTP ${response.status}`);
  if (text.length > MAX_ANSWER_BYTES) throw unavailable(provider, 'sent an answer that is too large');
  let body: Record<string, unknown> | null = null;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    body = null;
  }
  if (body === null) throw unavailable(provider, `answered HTTP ${response.status} without JSON`);
  return { status: response.status, body };
}
