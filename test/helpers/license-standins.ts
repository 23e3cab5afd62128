// Local stand-ins for the two license stores, on 127.0.0.1, shaped like their public docs.
// Lemon Squeezy License API: POST /v1/licenses/{activate,validate,deactivate}, form-encoded,
// answers { activated | valid | deactivated, error, license_key { id, status, key, activation_limit,
// activation_usage, created_at, expires_at }, instance { id, name, created_at } | null, meta {
// store_id, order_id, order_item_id, product_id, product_name, variant_id, variant_name,
// customer_id, customer_name, customer_email } }; 404 for an unknown key, 422 for a missing field,
// 400 at the activation limit, 429 past 60 requests a minute.
// Gumroad: POST /v2/licenses/verify (product_id or product_permalink, license_key,
// increment_uses_count) answers { success: true, uses, purchase { … } } or 404 { success: false,
// message }, following its licenses controller (antiwork/gumroad,
// app/controllers/api/v2/licenses_controller.rb): a use is counted unless increment_uses_count is
// exactly "false" (or a JSON false); parameters are read from a form body, or from a JSON body
// sent as application/json (any other body carries none); a non-string parameter is 400; without
// product_id, a product created after the 2023-01-09 cutover is HTTP 500 "The 'product_id'
// parameter is required …", an older one is matched by its permalink; a disabled key is 404.
// Both stores: a key sold with `availableAt` in the future is unknown (404) until then, as a
// purchase the store's license API has not caught up with.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';

export type Failure = { kind: 'http'; status: 429 | 500 | 502 | 503 } | { kind: 'slow'; ms: number } | { kind: 'garbage' };

interface Base {
  url: string;
  failure: Failure | null;
  delayMs: number;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const readBody = async (req: IncomingMessage) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
};
const send = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => Promise<unknown>): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => void handler(req, res).catch(() => { res.writeHead(500); res.end(); }));
  // Longer than any test: an idle keep-alive socket closed by the server while fetch reuses it
  // would read as "could not be reached".
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

// ---------------------------------------------------------------- Lemon Squeezy

export interface LemonKey {
  /** Epoch ms before which the License API does not know the key yet (default 0). */
  availableAt: number;
  id: number;
  status: 'inactive' | 'active' | 'expired' | 'disabled';
  activationLimit: number | null;
  expiresAt: string | null;
  productId: number;
  variantId: number;
  orderId: number;
  instances: Map<string, string>;
}

export interface LemonStandIn extends Base {
  keys: Map<string, LemonKey>;
  calls: { path: string; form: Record<string, string> }[];
  /** Requests a minute before 429 (the documented 60). */
  ratePerMinute: number;
  /** A new key the stand-in knows (a purchase). */
  sell(o?: Partial<Omit<LemonKey, 'instances'>>): { key: string; license: LemonKey };
}

export async function startLemonSqueezyStandIn(): Promise<LemonStandIn> {
  let window = { start: Date.now(), count: 0 };
  let nextId = 1000;
  const state = {
    keys: new Map<string, LemonKey>(),
    calls: [] as LemonStandIn['calls'],
    failure: null as Failure | null,
    delayMs: 0,
    ratePerMinute: 60,
  };
  const keyObject = (key: string, k: LemonKey) => ({
    id: k.id, status: k.status, key, activation_limit: k.activationLimit, activation_usage: k.instances.size,
    created_at: '2026-11-01T10:00:00.000000Z', expires_at: k.expiresAt,
  });
  const meta = (k: LemonKey) => ({
    store_id: 1, order_id: k.orderId, order_item_id: k.orderId + 1, product_id: k.productId, product_name: 'Plugin Pro',
    variant_id: k.variantId, variant_name: 'Default', customer_id: 42, customer_name: 'Buyer', customer_email: 'buyer@example.com',
  });
  const server = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const form = await readBody(req);
    state.calls.push({ path: url.pathname, form: Object.fromEntries(form) });
    if (Date.now() - window.start >= 60_000) window = { start: Date.now(), count: 0 };
    window.count += 1;
    if (window.count > state.ratePerMinute) return send(res, 429, { error: 'Too Many Attempts.' });
    const failure = state.failure;
    if (failure?.kind === 'http') return send(res, failure.status, { error: 'Server Error' });
    if (failure?.kind === 'slow') await sleep(failure.ms);
    if (failure?.kind === 'garbage') { res.writeHead(200, { 'content-type': 'text/html' }); return res.end('<html>maintenance</html>'); }
    if (req.method !== 'POST' || req.headers.accept !== 'application/json') return send(res, 404, { error: 'Not found.' });
    if (state.delayMs) await sleep(state.delayMs);
    const licenseKey = form.get('license_key');
    const verb = url.pathname.replace('/v1/licenses/', '');
    const flag = verb === 'activate' ? 'activated' : verb === 'validate' ? 'valid' : 'deactivated';
    if (!licenseKey) return send(res, 422, { [flag]: false, error: 'The license key field is required.' });
    const found = state.keys.get(licenseKey);
    const k = found && found.availableAt <= Date.now() ? found : undefined;
    if (!k) return send(res, 404, { [flag]: false, error: 'license_key not found.', license_key: null, meta: null });
    if (verb === 'activate') {
      const name = form.get('instance_name');
      if (!name) return send(res, 422, { activated: false, error: 'The instance name field is required.' });
      if (k.status === 'expired' || k.status === 'disabled') {
        return send(res, 400, { activated: false, error: `This license key is ${k.status}.`, license_key: keyObject(licenseKey, k), instance: null, meta: meta(k) });
      }
      if (k.activationLimit !== null && k.instances.size >= k.activationLimit) {
        return send(res, 400, { activated: false, error: 'This license key has reached the activation limit.', license_key: keyObject(licenseKey, k), instance: null, meta: meta(k) });
      }
      const id = randomUUID();
      k.instances.set(id, name);
      k.status = 'active';
      return send(res, 200, { activated: true, error: null, license_key: keyObject(licenseKey, k), instance: { id, name, created_at: new Date().toISOString() }, meta: meta(k) });
    }
    if (verb === 'validate') {
      const instanceId = form.get('instance_id');
      const instance = instanceId ? k.instances.get(instanceId) : undefined;
      if (instanceId && !instance) return send(res, 404, { valid: false, error: 'license_key instance not found.', license_key: keyObject(licenseKey, k), instance: null, meta: meta(k) });
      const valid = k.status === 'active' || k.status === 'inactive';
      return send(res, 200, { valid, error: valid ? null : `This license key is ${k.status}.`, license_key: keyObject(licenseKey, k), instance: instance ? { id: instanceId, name: instance } : null, meta: meta(k) });
    }
    if (verb === 'deactivate') {
      const instanceId = form.get('instance_id');
      if (!instanceId) return send(res, 422, { deactivated: false, error: 'The instance id field is required.' });
      if (!k.instances.delete(instanceId)) return send(res, 404, { deactivated: false, error: 'license_key instance not found.' });
      if (k.instances.size === 0) k.status = 'inactive';
      return send(res, 200, { deactivated: true, error: null, license_key: keyObject(licenseKey, k), meta: meta(k) });
    }
    return send(res, 404, { error: 'Not found.' });
  });
  const standIn = state as unknown as LemonStandIn;
  standIn.url = server.url;
  standIn.close = server.close;
  standIn.sell = (o = {}) => {
    const key = randomUUID().toUpperCase();
    const id = nextId++;
    const license: LemonKey = {
      availableAt: 0, id, status: 'inactive', activationLimit: 5, expiresAt: null, productId: 111, variantId: 222, orderId: 5000 + id, ...o, instances: new Map(),
    };
    state.keys.set(key, license);
    return { key, license };
  };
  return standIn;
}

// ---------------------------------------------------------------- Lemon Squeezy webhooks
// The bodies Lemon Squeezy POSTs to a webhook (docs.lemonsqueezy.com/help/webhooks: a JSON:API
// resource object under `data`, `meta.event_name`, `X-Signature` the hex HMAC-SHA256 of the raw
// body with the signing secret): order_created and order_refunded carry an Order object,
// subscription_created and subscription_updated a Subscription object,
// subscription_payment_success a Subscription invoice object. Every attribute of each object as
// its API reference lists it (docs.lemonsqueezy.com/api/orders, /api/subscriptions,
// /api/subscription-invoices), with the types it gives: ids in attributes are numbers, data.id
// a string, amounts integers in cents, dates ISO 8601 strings with microseconds.

export interface LemonOrderFields {
  orderId: number;
  productId: number;
  variantId: number;
  priceId: number;
  /** What the buyer paid, tax included, in cents of `currency`. */
  total: number;
  tax: number;
  currency: string;
  status: 'pending' | 'failed' | 'paid' | 'refunded' | 'partial_refund' | 'fraudulent';
  refunded: boolean;
  refundedAmount: number;
  createdAt: string;
  updatedAt: string;
}

const lsDate = (d: string | number | Date) => new Date(d).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
const cents = (n: number, currency: string) => `${currency === 'USD' ? '$' : `${currency} `}${(n / 100).toFixed(2)}`;

/** An Order object (GET /v1/orders/:id), as order_created and order_refunded send it. */
export function lemonOrder(o: Partial<LemonOrderFields> & Pick<LemonOrderFields, 'orderId' | 'total' | 'currency'>) {
  const f: LemonOrderFields = { productId: 111, variantId: 222, priceId: 333, tax: 0, status: 'paid', refunded: false, refundedAmount: 0,
    createdAt: new Date().toISOString(), updatedAt: new Date().toISOString(), ...o };
  const subtotal = f.total - f.tax;
  return {
    type: 'orders',
    id: String(f.orderId),
    attributes: {
      store_id: 1, customer_id: 42, identifier: randomUUID(), order_number: f.orderId, user_name: 'Buyer Name', user_email: 'buyer@example.com',
      currency: f.currency, currency_rate: f.currency === 'USD' ? '1.0000' : '1.0850',
      subtotal, setup_fee: 0, discount_total: 0, tax: f.tax, total: f.total, refunded_amount: f.refundedAmount,
      subtotal_usd: subtotal, setup_fee_usd: 0, discount_total_usd: 0, tax_usd: f.tax, total_usd: f.total, refunded_amount_usd: f.refundedAmount,
      tax_name: 'VAT', tax_rate: '0.00', tax_inclusive: false,
      status: f.status, status_formatted: f.status.replace(/^./, (c) => c.toUpperCase()).replace('_', ' '),
      refunded: f.refunded, refunded_at: f.refunded ? lsDate(f.updatedAt) : null,
      subtotal_formatted: cents(subtotal, f.currency), setup_fee_formatted: cents(0, f.currency), discount_total_formatted: cents(0, f.currency),
      tax_formatted: cents(f.tax, f.currency), total_formatted: cents(f.total, f.currency), refunded_amount_formatted: cents(f.refundedAmount, f.currency),
      first_order_item: {
        id: f.orderId + 1, order_id: f.orderId, product_id: f.productId, variant_id: f.variantId, price_id: f.priceId,
        product_name: 'Plugin Pro', variant_name: 'Default', price: subtotal, quantity: 1,
        created_at: lsDate(f.createdAt), updated_at: lsDate(f.createdAt), test_mode: false,
      },
      urls: { receipt: `https://app.lemonsqueezy.com/my-orders/${randomUUID()}?signature=${'0'.repeat(64)}` },
      created_at: lsDate(f.createdAt), updated_at: lsDate(f.updatedAt), test_mode: false,
    },
    relationships: {},
    links: { self: `https://api.lemonsqueezy.com/v1/orders/${f.orderId}` },
  };
}

export interface LemonSubscriptionFields {
  subscriptionId: number;
  orderId: number;
  productId: number;
  variantId: number;
  priceId: number;
  quantity: number;
  status: 'on_trial' | 'active' | 'paused' | 'past_due' | 'unpaid' | 'cancelled' | 'expired';
  createdAt: string;
  updatedAt: string;
}

/** A Subscription object (GET /v1/subscriptions/:id), as subscription_created and subscription_updated send it. */
export function lemonSubscription(o: Partial<LemonSubscriptionFields> & Pick<LemonSubscriptionFields, 'subscriptionId' | 'orderId'>) {
  const f: LemonSubscriptionFields = { productId: 111, variantId: 222, priceId: 333, quantity: 1, status: 'active',
    createdAt: new Date().toISOString(), updatedAt: new Date().toISOString(), ...o };
  return {
    type: 'subscriptions',
    id: String(f.subscriptionId),
    attributes: {
      store_id: 1, customer_id: 42, order_id: f.orderId, order_item_id: f.orderId + 1, product_id: f.productId, variant_id: f.variantId,
      product_name: 'Plugin Pro', variant_name: 'Monthly', user_name: 'Buyer Name', user_email: 'buyer@example.com',
      status: f.status, status_formatted: f.status.replace(/^./, (c) => c.toUpperCase()), card_brand: 'visa', card_last_four: '4242',
      payment_processor: 'stripe', pause: null, cancelled: f.status === 'cancelled', trial_ends_at: null, billing_anchor: 12,
      first_subscription_item: {
        id: f.subscriptionId + 1, subscription_id: f.subscriptionId, price_id: f.priceId, quantity: f.quantity, is_usage_based: false,
        created_at: lsDate(f.createdAt), updated_at: lsDate(f.updatedAt),
      },
      urls: { update_payment_method: 'https://example.lemonsqueezy.com/subscription/1/payment-details', customer_portal: 'https://example.lemonsqueezy.com/billing' },
      renews_at: lsDate(Date.parse(f.createdAt) + 30 * 86_400_000), ends_at: null,
      created_at: lsDate(f.createdAt), updated_at: lsDate(f.updatedAt), test_mode: false,
    },
    relationships: {},
    links: { self: `https://api.lemonsqueezy.com/v1/subscriptions/${f.subscriptionId}` },
  };
}

export interface LemonInvoiceFields {
  invoiceId: number;
  subscriptionId: number;
  billingReason: 'initial' | 'renewal' | 'updated';
  status: 'pending' | 'paid' | 'void' | 'refunded' | 'partial_refund';
  total: number;
  currency: string;
  createdAt: string;
  updatedAt: string;
}

/** A Subscription invoice object (GET /v1/subscription-invoices/:id), as subscription_payment_success sends it. */
export function lemonInvoice(o: Partial<LemonInvoiceFields> & Pick<LemonInvoiceFields, 'invoiceId' | 'subscriptionId' | 'total' | 'currency'>) {
  const f: LemonInvoiceFields = { billingReason: 'renewal', status: 'paid', createdAt: new Date().toISOString(), updatedAt: new Date().toISOString(), ...o };
  return {
    type: 'subscription-invoices',
    id: String(f.invoiceId),
    attributes: {
      store_id: 1, subscription_id: f.subscriptionId, customer_id: 42, user_name: 'Buyer Name', user_email: 'buyer@example.com',
      billing_reason: f.billingReason, card_brand: 'visa', card_last_four: '4242',
      currency: f.currency, currency_rate: f.currency === 'USD' ? '1.00000000' : '1.08500000',
      status: f.status, status_formatted: f.status.replace(/^./, (c) => c.toUpperCase()),
      refunded: f.status === 'refunded', refunded_at: f.status === 'refunded' ? lsDate(f.updatedAt) : null,
      subtotal: f.total, discount_total: 0, tax: 0, tax_inclusive: false, total: f.total, refunded_amount: 0,
      subtotal_usd: f.total, discount_total_usd: 0, tax_usd: 0, total_usd: f.total, refunded_amount_usd: 0,
      subtotal_formatted: cents(f.total, f.currency), discount_total_formatted: cents(0, f.currency), tax_formatted: cents(0, f.currency),
      total_formatted: cents(f.total, f.currency), refunded_amount_formatted: cents(0, f.currency),
      urls: { invoice_url: 'https://app.lemonsqueezy.com/my-orders/invoice' },
      created_at: lsDate(f.createdAt), updated_at: lsDate(f.updatedAt), test_mode: false,
    },
    relationships: {},
    links: { self: `https://api.lemonsqueezy.com/v1/subscription-invoices/${f.invoiceId}` },
  };
}

/** A webhook delivery as Lemon Squeezy sends it: the body, X-Event-Name and X-Signature (HMAC-SHA256 of the body, hex). */
export function lemonDelivery(event: string, data: unknown, secret: string) {
  const body = JSON.stringify({ meta: { event_name: event, webhook_id: randomUUID(), test_mode: false }, data });
  const signature = createHmac('sha256', secret).update(body).digest('hex');
  return { body, headers: { 'content-type': 'application/json', 'x-event-name': event, 'x-signature': signature } };
}

// ---------------------------------------------------------------- Gumroad

export interface GumroadPurchase {
  productId: string;
  /** The product's permalink (product_permalink), accepted without product_id for products created before the cutover. */
  permalink: string;
  /** When the product was created (ISO): after 2023-01-09 it is verified by product_id only. */
  productCreatedAt: string;
  /** Disabled by the seller: 404 "This license key has been disabled." */
  disabled: boolean;
  /** The purchase's access ended (e.g. a membership): 404 "Access to the purchase associated with this license has expired." */
  accessExpired: boolean;
  /** Epoch ms before which the API does not know the key yet (default 0). */
  availableAt: number;
  saleId: string;
  refunded: boolean;
  disputed: boolean;
  chargebacked: boolean;
  subscriptionEndedAt: string | null;
  subscriptionCancelledAt: string | null;
  subscriptionFailedAt: string | null;
  isMultiseatLicense: boolean;
  quantity: number;
  uses: number;
  /** purchase.price: what the buyer paid, in cents of `currency` (Gumroad's verify answer). */
  price: number;
  /** purchase.currency as Gumroad writes it ("usd"). */
  currency: string;
  /** purchase.recurrence: null for a one-time sale, else monthly | quarterly | biannually | yearly | every_two_years. */
  recurrence: string | null;
}

export interface GumroadStandIn extends Base {
  purchases: Map<string, GumroadPurchase>;
  calls: { path: string; form: Record<string, string>; authorization: string | null }[];
  sell(o?: Partial<GumroadPurchase>): { key: string; purchase: GumroadPurchase };
}

/** Gumroad's cutover: products created after it are verified by product_id only. */
export const GUMROAD_PRODUCT_ID_CUTOVER = Date.UTC(2023, 0, 9);

/** Parameters as Rails reads them: a form body, or a JSON body sent as application/json; anything else carries none. */
async function readParams(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(text));
  if (type === 'application/json') {
    try {
      const parsed: unknown = JSON.parse(text);
      return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  }
  return {};
}

export async function startGumroadStandIn(): Promise<GumroadStandIn> {
  const state = {
    purchases: new Map<string, GumroadPurchase>(),
    calls: [] as GumroadStandIn['calls'],
    failure: null as Failure | null,
    delayMs: 0,
  };
  const server = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const params = await readParams(req);
    state.calls.push({ path: url.pathname, form: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])), authorization: req.headers.authorization ?? null });
    const failure = state.failure;
    if (failure?.kind === 'http') return send(res, failure.status, { success: false, message: 'Server error' });
    if (failure?.kind === 'slow') await sleep(failure.ms);
    if (failure?.kind === 'garbage') { res.writeHead(200, { 'content-type': 'text/html' }); return res.end('<html>maintenance</html>'); }
    if (req.method !== 'POST' || url.pathname !== '/v2/licenses/verify') return send(res, 404, { success: false, message: 'Not found' });
    if (state.delayMs) await sleep(state.delayMs);
    for (const name of ['license_key', 'product_id', 'product_permalink']) {
      if (params[name] !== undefined && params[name] !== '' && typeof params[name] !== 'string') {
        return send(res, 400, { success: false, message: `The '${name}' parameter must be a string.` });
      }
    }
    const key = (params.license_key as string | undefined) ?? '';
    const productId = (params.product_id as string | undefined) || null;
    const found = state.purchases.get(key);
    const known = found && found.availableAt <= Date.now() ? found : undefined;
    const missing = () => send(res, 404, { success: false, message: 'That license does not exist for the provided product.' });
    if (productId !== null) {
      if (!known || known.productId !== productId) return missing();
    } else {
      if (known && Date.parse(known.productCreatedAt) > GUMROAD_PRODUCT_ID_CUTOVER) {
        return send(res, 500, { success: false, message: `The 'product_id' parameter is required to verify the license for this product. Please set 'product_id' to '${known.productId}' in the request.` });
      }
      if (!known || known.permalink !== params.product_permalink) return missing();
    }
    const p = known;
    if (p.disabled) return send(res, 404, { success: false, message: 'This license key has been disabled.' });
    if (p.accessExpired) return send(res, 404, { success: false, message: 'Access to the purchase associated with this license has expired.' });
    if (params.increment_uses_count !== 'false' && params.increment_uses_count !== false) p.uses += 1;
    send(res, 200, {
      success: true,
      uses: p.uses,
      purchase: {
        seller_id: 'seller', product_id: p.productId, product_name: 'Plugin Pro', permalink: p.permalink, product_permalink: `https://example.gumroad.com/l/${p.permalink}`,
        email: 'buyer@example.com', price: p.price, gumroad_fee: Math.round(p.price / 10), currency: p.currency, quantity: p.quantity, discover_fee_charged: false,
        can_contact: true, referrer: 'direct', card: { visual: null, type: null }, order_number: 1234, sale_id: p.saleId,
        sale_timestamp: '2026-11-01T10:00:00Z', purchaser_id: '999', subscription_id: null, variants: '', license_key: key,
        is_multiseat_license: p.isMultiseatLicense, ip_country: 'India', recurrence: p.recurrence, is_gift_receiver_purchase: false,
        refunded: p.refunded, disputed: p.disputed, dispute_won: false, id: p.saleId, created_at: '2026-11-01T10:00:00Z',
        custom_fields: [], chargebacked: p.chargebacked,
        subscription_ended_at: p.subscriptionEndedAt, subscription_cancelled_at: p.subscriptionCancelledAt, subscription_failed_at: p.subscriptionFailedAt,
      },
    });
  });
  const standIn = state as unknown as GumroadStandIn;
  standIn.url = server.url;
  standIn.close = server.close;
  standIn.sell = (o = {}) => {
    const key = [0, 1, 2, 3].map(() => randomBytes(4).toString('hex').toUpperCase()).join('-');
    const purchase: GumroadPurchase = {
      productId: 'plug-pro_Wsw==', permalink: 'plugin-pro', productCreatedAt: '2024-03-01T00:00:00Z', disabled: false, accessExpired: false, availableAt: 0, saleId: `sale_${randomBytes(6).toString('hex')}`, refunded: false, disputed: false, chargebacked: false,
      subscriptionEndedAt: null, subscriptionCancelledAt: null, subscriptionFailedAt: null, isMultiseatLicense: false, quantity: 1, uses: 0, price: 1500, currency: 'usd', recurrence: null, ...o,
    };
    state.purchases.set(key, purchase);
    return { key, purchase };
  };
  return standIn;
}
