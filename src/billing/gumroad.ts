// Gumroad's license verification (POST https://api.gumroad.com/v2/licenses/verify with product_id,
// license_key, increment_uses_count): answers { success, uses, purchase { refunded, disputed,
// chargebacked, subscription_ended_at, subscription_cancelled_at, subscription_failed_at,
// is_multiseat_license, quantity, sale_id, product_id, … } }, or 404 { success: false, message }.
// Gumroad has no activation limit of its own and its resource-subscription pings are unsigned:
// we always verify with increment_uses_count=false and treat a ping as a hint to verify again.
import { SetupError } from '../core/errors.ts';
import { dateOrNull, idText, postForm, rejected, resolveBase, unavailable, type StoreConfig, type StoreLicense } from './store-http.ts';

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

export async function gumroadVerify(config: StoreConfig, productId: string, key: string): Promise<StoreLicense> {
  const { status, body } = await postForm('gumroad', config, '/v2/licenses/verify', {
    product_id: productId,
    license_key: key,
    increment_uses_count: 'false',
  });
  if (status !== 200 || body!.success !== true) throw rejected('gumroad', `HTTP ${status}`);
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
    productId: idText(purchase.product_id) ?? productId,
    variantId: null,
    orderId: idText(purchase.sale_id) ?? idText(purchase.id),
    activationLimit: null,
    quantity: Math.min(quantity, 100000),
    expiresAt: ended,
    instanceId: null,
  };
}
