// Lemon Squeezy's License API (https://api.lemonsqueezy.com/v1/licenses/{activate,validate,deactivate}):
// form-encoded POSTs with Accept: application/json, no API key, 60 requests a minute. Answers
// carry `activated` / `valid` / `deactivated`, `error`, `license_key { id, status, activation_limit,
// activation_usage, expires_at }`, `instance { id, name }` and `meta { order_id, product_id,
// variant_id, … }`. Webhooks are signed: X-Signature is the hex HMAC-SHA256 of the raw body.
import { fromHex, utf8 } from '../core/bytes.ts';
import { AuthError, SetupError } from '../core/errors.ts';
import { dateOrNull, idText, notFound, postForm, rejected, resolveBase, unavailable, type StoreConfig, type StoreLicense } from './store-http.ts';

export const DEFAULT_LEMONSQUEEZY_API_BASE_URL = 'https://api.lemonsqueezy.com';

export interface LemonSqueezyOptions {
  /** Default https://api.lemonsqueezy.com; tests point it at a local stand-in. */
  apiBaseUrl?: string;
  /** The signing secret of your Lemon Squeezy webhook (Settings > Webhooks). */
  webhookSecret: string;
}

export function resolveLemonSqueezy(options: LemonSqueezyOptions, timeoutMs: number) {
  if (typeof options !== 'object' || options === null) {
    throw new SetupError('license_config_invalid', 'license_config_invalid: lemonSqueezy must be { apiBaseUrl?, webhookSecret }');
  }
  const secret = options.webhookSecret;
  if (typeof secret !== 'string' || secret.length < 6 || secret.length > 255) {
    throw new SetupError('license_config_invalid', 'license_config_invalid: lemonSqueezy.webhookSecret must be your webhook\'s signing secret (6 to 255 characters)');
  }
  const config: StoreConfig = { base: resolveBase('lemonsqueezy', options.apiBaseUrl, DEFAULT_LEMONSQUEEZY_API_BASE_URL), timeoutMs, headers: {} };
  return { config, secret };
}

const STATUSES = new Set(['inactive', 'active', 'expired', 'disabled']);

function toLicense(body: Record<string, unknown>): StoreLicense {
  const key = body.license_key as Record<string, unknown> | undefined;
  const meta = body.meta as Record<string, unknown> | undefined;
  const instance = body.instance as Record<string, unknown> | null | undefined;
  const status = key?.status;
  const productId = idText(meta?.product_id);
  if (typeof status !== 'string' || !STATUSES.has(status) || productId === null) {
    throw unavailable('lemonsqueezy', 'answered without a license_key status and meta.product_id');
  }
  const limit = key?.activation_limit;
  return {
    status: status as StoreLicense['status'],
    providerKeyId: idText(key?.id),
    productId,
    variantId: idText(meta?.variant_id),
    orderId: idText(meta?.order_id),
    activationLimit: Number.isInteger(limit) && (limit as number) >= 0 ? (limit as number) : null,
    quantity: 1,
    expiresAt: dateOrNull(key?.expires_at),
    instanceId: idText(instance?.id),
  };
}

function refusal(status: number, body: Record<string, unknown>, key: string): Error {
  const error = typeof body.error === 'string' ? body.error : '';
  // 404 "license_key not found.": unknown to the store, perhaps not yet (a purchase moments ago).
  if (status === 404 && !body.license_key) return notFound('lemonsqueezy', key);
  if (/activation limit/i.test(error)) {
    return new AuthError('device_limit_reached', 'device_limit_reached: Lemon Squeezy says this license key has reached its activation limit; deactivate a device first');
  }
  return rejected('lemonsqueezy', `HTTP ${status}`);
}

export async function lemonActivate(config: StoreConfig, key: string, deviceName: string): Promise<StoreLicense> {
  const { status, body } = await postForm('lemonsqueezy', config, '/v1/licenses/activate', { license_key: key, instance_name: deviceName });
  if (status !== 200 || body!.activated !== true) throw refusal(status, body!, key);
  return toLicense(body!);
}

export async function lemonValidate(config: StoreConfig, key: string): Promise<StoreLicense> {
  const { status, body } = await postForm('lemonsqueezy', config, '/v1/licenses/validate', { license_key: key });
  // An expired or disabled key answers valid: false with the key's status: that is an answer.
  if (status === 200 && body!.license_key) return toLicense(body!);
  throw refusal(status, body!, key);
}

export async function lemonDeactivate(config: StoreConfig, key: string, instanceId: string): Promise<void> {
  const { status, body } = await postForm('lemonsqueezy', config, '/v1/licenses/deactivate', { license_key: key, instance_id: instanceId });
  // 404: the instance is already gone there; ours is freed all the same.
  if (status === 200 || status === 404) return;
  throw refusal(status, body!, key);
}

/** X-Signature over the raw body, checked by Web Crypto's HMAC verify (a constant-time comparison). */
export async function lemonSignatureValid(secret: string, rawBody: Uint8Array, signature: string | null): Promise<boolean> {
  if (signature === null || !/^[0-9a-f]{64}$/i.test(signature)) return false;
  const key = await crypto.subtle.importKey('raw', utf8(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  return crypto.subtle.verify('HMAC', key, fromHex(signature)!, rawBody as Uint8Array<ArrayBuffer>);
}
