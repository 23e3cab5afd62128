// Gumroad's license verification (POST https://api.gumroad.com/v2/licenses/verify with product_id,
// license_key, increment_uses_count): answers { success, uses, purchase { refunded, disputed,
// chargebacked, subscription_ended_at, subscription_cancelled_at, subscription_failed_at,
// is_multiseat_license, quantity, sale_id, product_id, … } }, or 404 { success: false, message }.
// Gumroad has no activation limit of its own and its resource-subscription pings are unsigned:
// we always verify with increment_uses_count=false and treat a ping as a hint to verify again.
//
// Its quirks, from its API reference and its licenses controller (antiwork/gumroad,
// app/controllers/api/v2/licenses_controller.rb):
// - A use is counted unless increment_uses_count is exactly "false" (the string or a JSON false):
//   "False", "0", a missing parameter, or a JSON body sent without its content type all count one.
//   We send the form-encoded string "false", and never read `uses` as a device count.
// - Products are identified by product_id (e.g. "oz3Zfddt_sezByjb-Bd1KQ==") and, for products
//   created before 2023-01-09, also by their permalink (product_permalink). A newer product asked
//   by permalink answers HTTP 500 "The 'product_id' parameter is required …": a configuration
//   error (gumroad_product_id_required), not an outage.
// - A disabled key answers 404 "This license key has been disabled."; a purchase whose access
//   ended, 404 "Access to the purchase associated with this license has expired.".
import { SetupError } from '../core/errors.ts';
import { dateOrNull, idText, notFound, postForm, rejected, resolveBase, unavailable, type StoreConfig, type StoreLicense } from './store-http.ts';

/**
 * A Gumroad product id (what its API calls product_id: URL-safe base64 of 16 bytes, "…==") as
 * opposed to a permalink (a short slug, "plugin-pro"), which only products created before
 * 2023-01-09 may be verified by.
 */
export const isGumroadProductId = (id: string) => /^[A-Za-z0-9_-]+={1,2}$/.test(id);

export const DEFAULT_GUMROAD_API_BASE_URL = 'https://api.gumroad.com';

export interface GumroadOptions {
  /** Default https://api.gumroad.com; tests point it at a local stand-in. */
  apiBaseUrl?: string;
  /** Optional: sent as a bearer token (verification itself needs none). */
  accessToken?: string;
}

export function resolveGumroad(options: GumroadOptions, timeoutMs: number): StoreConfig {
  if (typeof options !== 'object' || options === null) {
    throw new SetupError('license_config_invalid', 'license_config_invalid: gumroad must be { apiBaseUrl?, accessToken? }');
  }
  const token = options.accessToken;
  if (token !== undefined && (typeof token !== 'string' || !/^[\x21-\x7e]{8,1024}$/.test(token))) {
    throw new SetupError('license_config_invalid', 'license_config_invalid: gumroad.accessToken must be your Gumroad access token');
  }
  return {
    base: resolveBase('gumroad', options.apiBaseUrl, DEFAULT_GUMROAD_API_BASE_URL),
    timeoutMs,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  };
}

const REVOKED = new WeakMap<Error, 'disabled' | 'ended'>();

/**
 * The status a refusal of gumroadVerify stands for, when Gumroad refused a key it knows: 404 "This
 * license key has been disabled." (disabled by the seller) or "Access to the purchase associated
 * with this license has expired." (ended). Null for any other error. A key activated before is
 * stored with this status (it grants nothing) instead of the check failing.
 */
export const gumroadRevokedStatus = (error: unknown): 'disabled' | 'ended' | null => (error instanceof Error ? REVOKED.get(error) ?? null : null);

export async function gumroadVerify(config: StoreConfig, productId: string, key: string): Promise<StoreLicense> {
  const { status, body } = await postForm('gumroad', config, '/v2/licenses/verify', {
    [isGumroadProductId(productId) ? 'product_id' : 'product_permalink']: productId,
    license_key: key,
    increment_uses_count: 'false',
  }, { keep500: true });
  const message = typeof body!.message === 'string' ? body!.message : '';
  if (status === 500) {
    const wanted = /product_id' parameter is required.*'([A-Za-z0-9_=+/.:-]{1,128})'/s.exec(message)?.[1];
    if (!wanted) throw unavailable('gumroad', 'answered HTTP 500');
    throw new SetupError('gumroad_product_id_required', `gumroad_product_id_required: Gumroad verifies this product by its product_id only; link ${wanted} instead of the permalink ${productId} (plans.linkLicense)`);
  }
  if (status === 404 && /does not exist/i.test(message)) throw notFound('gumroad', key);
  if (status !== 200 || body!.success !== true) {
    const revoked = status === 404 ? (/has been disabled/i.test(message) ? 'disabled' : /access .*has expired/i.test(message) ? 'ended' : null) : null;
    const error = rejected('gumroad', `HTTP ${status}${revoked === 'disabled' ? ', disabled' : revoked === 'ended' ? ', access expired' : ''}`);
    if (revoked) REVOKED.set(error, revoked);
    throw error;
  }
  const purchase = body!.purchase as Record<string, unknown> | undefined;
  if (typeof purchase !== 'object' || purchase === null) throw unavailable('gumroad', 'answered without a purchase');
  const ended = dateOrNull(purchase.subscription_ended_at);
  const quantity = purchase.is_multiseat_license === true && Number.isInteger(purchase.quantity) && (purchase.quantity as number) >= 1
    ? (purchase.quantity as number)
    : 1;
  const status2: StoreLicense['status'] = purchase.refunded === true ? 'refunded'
    : purchase.chargebacked === true ? 'chargebacked'
      : purchase.disputed === true ? 'disputed'
        : ended !== null && ended.getTime() <= Date.now() ? 'ended'
          : 'active';
  return {
    status: status2,
    providerKeyId: null,
    // The product as we asked for it (and linked it): a permalink stays the permalink, so the
    // mapping that names it keeps matching; Gumroad matched the key to it.
    productId,
    variantId: null,
    orderId: idText(purchase.sale_id) ?? idText(purchase.id),
    activationLimit: null,
    quantity: Math.min(quantity, 100000),
    expiresAt: ended,
    instanceId: null,
    ...gumroadPrice(purchase),
  };
}

const GUMROAD_RECURRENCE: Record<string, string> = { monthly: 'month', quarterly: 'quarter', biannually: 'half_year', yearly: 'year', every_two_years: 'two_years' };

/**
 * The price Gumroad reports: purchase.price (cents, the whole purchase), purchase.currency and
 * purchase.recurrence. Anything missing or out of shape records no price (the license is kept).
 */
function gumroadPrice(purchase: Record<string, unknown>): Pick<StoreLicense, 'priceMinor' | 'currency' | 'priceInterval'> {
  const price = purchase.price;
  const currency = purchase.currency;
  if (!Number.isInteger(price) || (price as number) < 0 || (price as number) > 100_000_000_000 || typeof currency !== 'string' || !/^[A-Za-z]{3}$/.test(currency)) {
    return { priceMinor: null, currency: null, priceInterval: null };
  }
  const recurrence = typeof purchase.recurrence === 'string' ? GUMROAD_RECURRENCE[purchase.recurrence] ?? null : null;
  return { priceMinor: price as number, currency, priceInterval: recurrence };
}
