// A small client of Stripe's REST API on the platform fetch (Node, Deno, Bun, Workers alike):
// form-encoded requests as Stripe expects them, Stripe's error objects turned into typed errors,
// 429 and 5xx retried with Retry-After or exponential backoff, an idempotency key on every POST
// (the same key on each retry of one call). The secret key is sent as a bearer token and never
// appears in an error, a message or a log line.
import { ServiceError, SetupError } from '../core/errors.ts';

export const STRIPE_API_BASE_URL = 'https://api.stripe.com';
/** The API version the requests ask for: subscription periods on each item, as the sync reads them. */
export const STRIPE_API_VERSION = '2025-09-30.clover';

export interface StripeApiOptions {
  /** The secret key (sk_live_…, sk_test_…) or a restricted key (rk_…) with the permissions used. */
  secretKey: string;
  /** Stripe's API host (default https://api.stripe.com); a stand-in's in tests. */
  apiBaseUrl?: string;
  /** Per request, in milliseconds (default 10000). */
  timeoutMs?: number;
  /** Retries of a 429, 5xx or network failure (default 3). */
  maxRetries?: number;
  /** First backoff in milliseconds when Stripe sends no Retry-After (default 500; doubled each retry, at most 8 s). */
  retryBaseMs?: number;
}

export interface StripeErrorInfo {
  /** error.type: api_error, card_error, idempotency_error, invalid_request_error. */
  type: string | null;
  code: string | null;
  param: string | null;
  status: number;
  /** Stripe's Request-Id header (req_…), for Stripe's support. */
  requestId: string | null;
}

/** A refusal or failure from Stripe's API; `stripe` holds Stripe's own error fields. */
export class StripeApiError extends ServiceError {
  override name = 'ServiceError';
  constructor(code: 'stripe_auth_failed' | 'stripe_unavailable' | 'stripe_request_failed', message: string, readonly stripe: StripeErrorInfo) {
    super(code, message);
  }
}

export interface StripeAnswer<T> {
  body: T;
  /** Stripe's clock when it answered (the Date header, whole seconds), or null without one. */
  date: Date | null;
  /** Milliseconds from sending the request to reading the answer (this attempt). */
  elapsedMs: number;
  /** Our clock when this attempt was sent. */
  sentAt: number;
}

export interface StripeList<T> {
  object: 'list';
  data: T[];
  has_more: boolean;
  url: string;
}

export type StripeApi = ReturnType<typeof createStripeApi>;

const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
const MAX_RETRY_AFTER_MS = 60_000;

export function createStripeApi(options: StripeApiOptions) {
  const { secretKey } = options ?? ({} as StripeApiOptions);
  if (typeof secretKey !== 'string' || !/^(sk|rk)_(test|live)_[A-Za-z0-9_]{8,}$/.test(secretKey)) {
    throw new SetupError('stripe_config_invalid', 'stripe_config_invalid: stripe.secretKey must be a Stripe secret or restricted key (sk_… or rk_…)');
  }
  let base: URL;
  try {
    base = new URL(options.apiBaseUrl ?? STRIPE_API_BASE_URL);
    if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new Error('protocol');
  } catch {
    throw new SetupError('stripe_config_invalid', 'stripe_config_invalid: stripe.apiBaseUrl must be an http(s) URL');
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxRetries = options.maxRetries ?? 3;
  const retryBaseMs = options.retryBaseMs ?? 500;
  for (const [name, value, max] of [['timeoutMs', timeoutMs, 600_000], ['maxRetries', maxRetries, 10], ['retryBaseMs', retryBaseMs, 60_000]] as const) {
    if (!Number.isSafeInteger(value) || value < 0 || value > max || (name === 'timeoutMs' && value < 1)) {
      throw new SetupError('stripe_config_invalid', `stripe_config_invalid: stripe.${name} must be a whole number from ${name === 'timeoutMs' ? 1 : 0} to ${max}`);
    }
  }

  async function request<T>(method: 'GET' | 'POST', path: string, params: FormParams = {}, idempotencyKey?: string): Promise<StripeAnswer<T>> {
    const url = new URL(path.replace(/^\//, ''), base.href.endsWith('/') ? base : new URL(`${base.href}/`));
    const form = encodeForm(params);
    if (method === 'GET' && form) url.search = form;
    const key = method === 'POST' ? idempotencyKey ?? crypto.randomUUID() : undefined;
    for (let attempt = 0; ; attempt++) {
      const sentAt = Date.now();
      let response: Response;
      let text: string;
      try {
        response = await fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${secretKey}`,
            accept: 'application/json',
            'stripe-version': STRIPE_API_VERSION,
            ...(method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': key! } : {}),
          },
          ...(method === 'POST' ? { body: form } : {}),
          redirect: 'error',
          signal: AbortSignal.timeout(timeoutMs),
        });
        text = await response.text();
      } catch (error) {
        // No cause attached: a fetch error may quote the request, and the request carries the key.
        const name = (error as Error)?.name;
        if (attempt < maxRetries) {
          await sleep(backoff(attempt));
          continue;
        }
        const why = name === 'TimeoutError' || name === 'AbortError' ? `did not answer within ${timeoutMs} ms` : 'could not be reached';
        throw new StripeApiError('stripe_unavailable', `stripe_unavailable: Stripe ${why} (${method} ${path})`, info(null, 0, null));
      }
      const elapsedMs = Date.now() - sentAt;
      const requestId = response.headers.get('request-id');
      if (text.length > MAX_ANSWER_BYTES) {
        throw new StripeApiError('stripe_unavailable', `stripe_unavailable: Stripe sent an answer that is too large (${method} ${path})`, info(null, response.status, requestId));
      }
      let body: unknown = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
      if (response.ok && isObject(body)) {
        const dateHeader = response.headers.get('date');
        const date = dateHeader ? new Date(dateHeader) : null;
        return { body: body as T, date: date && !Number.isNaN(date.getTime()) ? date : null, elapsedMs, sentAt };
      }
      const error = isObject(body) && isObject(body.error) ? body.error : null;
      // Stripe-Should-Retry, when present, is Stripe's own answer to "may this be retried".
      const shouldRetry = response.headers.get('stripe-should-retry');
      // 409: the request conflicted with another (a concurrent one with the same idempotency key, a lock).
      const retryable = shouldRetry === 'true'
        || (shouldRetry !== 'false' && (response.status === 429 || response.status === 409 || response.status >= 500));
      if (retryable && attempt < maxRetries) {
        const after = retryAfterMs(response.headers.get('retry-after'));
        await sleep(after ?? backoff(attempt));
        continue;
      }
      const detail = info(error, response.status, requestId);
      if (response.status === 401 || response.status === 403) {
        // Stripe's message quotes part of the key: never passed on.
        throw new StripeApiError('stripe_auth_failed', `stripe_auth_failed: Stripe refused the secret key (HTTP ${response.status}${detail.type ? `, ${detail.type}` : ''})`, detail);
      }
      if (retryable || !error) {
        throw new StripeApiError('stripe_unavailable', `stripe_unavailable: Stripe answered HTTP ${response.status}${attempt ? ` after ${attempt + 1} attempts` : ''} (${method} ${path})`, detail);
      }
      const message = typeof error.message === 'string' ? `: ${error.message.slice(0, 300)}` : '';
      const named = [detail.type, detail.code, detail.param && `param ${detail.param}`].filter(Boolean).join(', ');
      throw new StripeApiError('stripe_request_failed', `stripe_request_failed: Stripe refused ${method} ${path} (HTTP ${response.status}${named ? `, ${named}` : ''})${message}`, detail);
    }
  }

  const backoff = (attempt: number) => Math.min(8_000, retryBaseMs * 2 ** attempt) * (0.75 + Math.random() * 0.5);

  return {
    get: <T>(path: string, params?: FormParams) => request<T>('GET', path, params),
    post: <T>(path: string, params: FormParams, idempotencyKey?: string) => request<T>('POST', path, params, idempotencyKey),
  };
}

/** A request's parameters: nested objects and arrays become Stripe's bracket keys (metadata[user_id], line_items[0][price], expand[]). */
export type FormValue = string | number | boolean | null | undefined | FormValue[] | { [key: string]: FormValue };
export type FormParams = { [key: string]: FormValue };

export function encodeForm(params: FormParams): string {
  const out = new URLSearchParams();
  const add = (key: string, value: FormValue) => {
    if (value === undefined || value === null) return;
    if (Array.isArray(value)) {
      // Arrays of scalars are key[]; arrays of objects are indexed (line_items[0][price]).
      value.forEach((v, i) => add(isObject(v) || Array.isArray(v) ? `${key}[${i}]` : `${key}[]`, v));
    } else if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) add(`${key}[${k}]`, v);
    } else {
      out.append(key, String(value));
    }
  };
  for (const [k, v] of Object.entries(params)) add(k, v);
  return out.toString();
}

function info(error: Record<string, unknown> | null, status: number, requestId: string | null): StripeErrorInfo {
  const text = (v: unknown) => (typeof v === 'string' && /^[\w.\[\]-]{1,100}$/.test(v) ? v : null);
  return { type: text(error?.type), code: text(error?.code), param: text(error?.param), status, requestId: text(requestId) };
}

/** Retry-After in seconds (or an HTTP date), capped at a minute; null when absent or unreadable. */
function retryAfterMs(value: string | null): number | null {
  if (value === null) return null;
  const ms = /^\d{1,6}$/.test(value.trim()) ? Number(value.trim()) * 1000 : new Date(value).getTime() - Date.now();
  return Number.isFinite(ms) ? Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms)) : null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
