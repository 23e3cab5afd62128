// License keys sold through Lemon Squeezy or Gumroad as a plan source (sql/016). The stores are
// asked by this file only; consume_usage reads what they answered and never calls them.
//
// One key, one user: the key is stored as its SHA-256 digest (plus the store's key id and a
// four-character prefix), bound to the first user who activates it. Every activation and check of
// a key runs in one transaction that first takes a transaction-scoped advisory lock on that digest
// (namespace 7320, taken by license_begin_activation or here): concurrent activations of one key
// queue there, so the device limit is exact, and concurrent checks make one call (single flight).
import { withTypedErrors, type Database, type Queryable } from '../core/queryable.ts';
import { lock } from '../core/locks.ts';
import { AuthError, NotFoundError, PluginAuthError, ServiceError, SetupError, ValidationError } from '../core/errors.ts';
import { sha256Hex } from '../tokens/signer.ts';
import { fromUtf8, utf8 } from '../core/bytes.ts';
import * as validate from '../core/validation.ts';
import type { LicenseProvider } from '../core/validation.ts';
import { lemonActivate, lemonDeactivate, lemonSignatureValid, lemonValidate, resolveLemonSqueezy, type LemonSqueezyOptions } from './lemonsqueezy.ts';
import { gumroadRevokedStatus, gumroadVerify, resolveGumroad, type GumroadOptions } from './gumroad.ts';
import { parseAge } from '../usage/retention.ts';
import { NAMES, dateOrNull, idText, retryUnknownKey, type StoreConfig, type StoreLicense } from './store-http.ts';

export const DEFAULT_LICENSE_CACHE_SECONDS = 300;
export const DEFAULT_LICENSE_GRACE_SECONDS = 24 * 3600;
export const DEFAULT_LICENSE_TIMEOUT_MS = 5000;
/** A just-bought key the store does not know yet: asked again after these delays (ms). */
export const DEFAULT_UNKNOWN_KEY_RETRY_MS: readonly number[] = [500, 1500];
/** At most this many linked Gumroad products are tried for a key given without productId. */
export const MAX_GUMROAD_PRODUCTS_TRIED = 10;
const MAX_WEBHOOK_BYTES = 1024 * 1024;

export interface LicenseOptions {
  /** A stored answer younger than this is used by validate without calling the store (default 300 s). */
  cacheSeconds?: number;
  /** On 429, 5xx or a timeout, validate falls back to a stored answer this young (default 24 h). */
  graceSeconds?: number;
  /** Per call to a store (default 5000 ms). */
  timeoutMs?: number;
  /**
   * A first activation of a key of the store's own shape that the store does not know yet (a
   * purchase moments ago) is asked again after each of these delays (default [500, 1500] ms; at
   * most 5, each at most 10000), then answered license_key_unknown (retryable).
   */
  unknownKeyRetryMs?: number[];
}

export interface ActivateInput {
  provider: LicenseProvider;
  licenseKey: string;
  /**
   * The device: the id auth.tokens.verify returns for the plugin's session (minted by the server,
   * per install). Device limits count these ids, never names.
   */
  deviceId: string;
  /** For display (default: the session's device name). */
  deviceName?: string | null;
  /** Gumroad only: the product the key is for (default: each linked Gumroad product in turn). */
  productId?: string;
}

export interface Activation {
  activated: true;
  /** The user's effective plan right after activation. */
  planSlug: string;
  /** Devices this license is active on now (live leases: a device past its heartbeat window is not counted). */
  activationsUsed: number;
  /** The device limit in force (the smallest of the product mapping's, the plan's and the store's), or null: none. */
  activationLimit: number | null;
  expiresAt: Date | null;
  /** This device holds a slot past the limit, within the overage allowance (docs/licenses.md#device-leases). */
  overage: boolean;
  /** Always 'valid' for an activation (a refusal is an error); the reasons of docs/licenses.md#reasons. */
  reason: 'valid';
}

export interface LicenseInfo {
  id: string;
  provider: LicenseProvider;
  /** The first four characters of the key, for support. */
  keyPrefix: string;
  status: StoreLicense['status'];
  productId: string;
  variantId: string | null;
  /** The plan the product mapping grants (null: not linked). */
  planSlug: string | null;
  devices: { deviceId: string; deviceName: string; activatedAt: Date }[];
  activationLimit: number | null;
  /** > 1: a team license, whose plan goes to assigned members (auth.seats). */
  seats: number;
  expiresAt: Date | null;
  checkedAt: Date;
}

export interface Validation {
  valid: boolean;
  status: StoreLicense['status'];
  planSlug: string;
  expiresAt: Date | null;
  checkedAt: Date;
  /** 'store': asked now; 'cache': within cacheSeconds; 'grace': the store failed and the stored answer was used. */
  answeredBy: 'store' | 'cache' | 'grace';
}

export interface WebhookResult {
  /** Whether a license changed. */
  applied: boolean;
  /**
   * applied, duplicate (a replay), stale (older than what we know), revoked (a webhook never
   * lifts a refund), ignored, unknown_license, recorded (no license changed, but Lemon Squeezy's
   * order, subscription or invoice was recorded for the money page).
   */
  reason: 'applied' | 'duplicate' | 'stale' | 'revoked' | 'ignored' | 'unknown_license' | 'recorded';
  event: string;
  licenses: number;
  /** Lemon Squeezy: whether an order, subscription or invoice row changed (docs/licenses.md#money). */
  recorded: boolean;
}

/** What a Lemon Squeezy webhook says about money (sql/032): one Order, Subscription or Subscription invoice object. */
type LemonMoney =
  | { kind: 'order'; orderId: string; productId: string | null; variantId: string | null; status: string; totalMinor: number; refundedMinor: number;
      currency: string; refunded: boolean; orderedAt: Date; at: Date }
  | { kind: 'subscription'; subscriptionId: string; orderId: string; productId: string | null; variantId: string | null; status: string; quantity: number | null; at: Date }
  | { kind: 'invoice'; subscriptionId: string; billingReason: string; status: string; totalMinor: number; currency: string; invoicedAt: Date };

const MONEY_EVENTS = new Set(['order_created', 'order_refunded', 'subscription_created', 'subscription_updated', 'subscription_payment_success']);
const minor = (v: unknown) => (Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 100_000_000_000 ? (v as number) : null);
const word = (v: unknown) => (typeof v === 'string' && /^[a-z_]{1,32}$/.test(v) ? v : null);

/**
 * The money in a Lemon Squeezy webhook, field by field as its API reference names them (the
 * Order, Subscription and Subscription invoice objects). Null: not a money event. A money event
 * without the fields it is recorded and ordered by is invalid_webhook (nothing written). Names,
 * emails, card digits and URLs in the body are never read.
 */
function lemonMoney(event: string, data: { id?: unknown; attributes?: Record<string, unknown> } | undefined): LemonMoney | null {
  if (!MONEY_EVENTS.has(event)) return null;
  // order_refunded and subscription_updated also change a license, which needs fewer fields:
  // without the money fields they still revoke or renew, and record no money.
  if (event === 'order_refunded' || event === 'subscription_updated') {
    try {
      return lemonMoneyOf(event, data);
    } catch {
      return null;
    }
  }
  return lemonMoneyOf(event, data);
}

function lemonMoneyOf(event: string, data: { id?: unknown; attributes?: Record<string, unknown> } | undefined): LemonMoney {
  const a = data?.attributes ?? {};
  const bad = (what: string) => new ValidationError('invalid_webhook', `invalid_webhook: ${event} without ${what}`);
  const currency = typeof a.currency === 'string' && /^[A-Za-z]{3}$/.test(a.currency) ? a.currency : null;
  if (event === 'order_created' || event === 'order_refunded') {
    const item = (typeof a.first_order_item === 'object' && a.first_order_item !== null ? a.first_order_item : {}) as Record<string, unknown>;
    const orderId = idText(data?.id);
    const total = minor(a.total);
    const refundedMinor = a.refunded_amount === undefined || a.refunded_amount === null ? 0 : minor(a.refunded_amount);
    const orderedAt = dateOrNull(a.created_at);
    const at = dateOrNull(a.updated_at);
    const status = word(a.status);
    if (orderId === null || total === null || refundedMinor === null || currency === null || orderedAt === null || at === null || status === null) {
      throw bad('the order id, total, refunded_amount, currency, status, created_at and updated_at of its Order object');
    }
    return { kind: 'order', orderId, productId: idText(item.product_id), variantId: idText(item.variant_id), status, totalMinor: total,
      refundedMinor, currency, refunded: a.refunded === true, orderedAt, at };
  }
  if (event === 'subscription_created' || event === 'subscription_updated') {
    const item = (typeof a.first_subscription_item === 'object' && a.first_subscription_item !== null ? a.first_subscription_item : {}) as Record<string, unknown>;
    const subscriptionId = idText(data?.id);
    const orderId = idText(a.order_id);
    const at = dateOrNull(a.updated_at);
    const status = word(a.status);
    if (subscriptionId === null || orderId === null || at === null || status === null) {
      throw bad('the subscription id, order_id, status and updated_at of its Subscription object');
    }
    const quantity = Number.isInteger(item.quantity) && (item.quantity as number) >= 0 && (item.quantity as number) <= 100000 ? (item.quantity as number) : null;
    return { kind: 'subscription', subscriptionId, orderId, productId: idText(a.product_id), variantId: idText(a.variant_id), status, quantity, at };
  }
  const subscriptionId = idText(a.subscription_id);
  const total = minor(a.total);
  const invoicedAt = dateOrNull(a.created_at);
  const billingReason = word(a.billing_reason);
  const status = word(a.status);
  if (subscriptionId === null || total === null || currency === null || invoicedAt === null || billingReason === null || status === null) {
    throw bad('the subscription_id, billing_reason, status, total, currency and created_at of its Subscription invoice object');
  }
  return { kind: 'invoice', subscriptionId, billingReason, status, totalMinor: total, currency, invoicedAt };
}

async function recordLemonMoney(tx: Pick<Queryable, 'query'>, m: LemonMoney): Promise<'recorded' | 'stale' | 'ignored'> {
  const rows = m.kind === 'order'
    ? await tx.query<{ r: 'recorded' | 'stale' }>(
        `SELECT public.store_record_order('lemonsqueezy'::varchar, $1::varchar, $2::varchar, $3::varchar, $4::varchar, $5::bigint, $6::bigint,
           $7::varchar, $8::boolean, $9::timestamptz, $10::timestamptz) AS r`,
        [m.orderId, m.productId, m.variantId, m.status, m.totalMinor, m.refundedMinor, m.currency, m.refunded, m.orderedAt, m.at])
    : m.kind === 'subscription'
      ? await tx.query<{ r: 'recorded' | 'stale' }>(
          `SELECT public.store_record_subscription('lemonsqueezy'::varchar, $1::varchar, $2::varchar, $3::varchar, $4::varchar, $5::varchar,
             $6::integer, $7::timestamptz) AS r`,
          [m.subscriptionId, m.orderId, m.productId, m.variantId, m.status, m.quantity, m.at])
      : await tx.query<{ r: 'recorded' | 'stale' | 'ignored' }>(
          `SELECT public.store_record_invoice('lemonsqueezy'::varchar, $1::varchar, $2::varchar, $3::varchar, $4::bigint, $5::varchar,
             $6::timestamptz) AS r`,
          [m.subscriptionId, m.billingReason, m.status, m.totalMinor, m.currency, m.invoicedAt]);
  return rows[0]!.r;
}

interface LicenseRow {
  id: string;
  provider: LicenseProvider;
  key_prefix: string;
  user_id: string;
  product_id: string;
  variant_id: string;
  status: StoreLicense['status'];
  activation_limit: number | null;
  quantity: number;
  expires_at: Date | null;
  checked_at: Date;
  fresh: boolean;
  in_grace: boolean;
}

const GRANTING = new Set(['active', 'inactive']);
const keyPrefix = (key: string) => key.slice(0, 4);
const digest = (key: string) => sha256Hex(key);

function seconds(value: unknown, name: string, fallback: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > max) {
    throw new SetupError('license_config_invalid', `license_config_invalid: licenses.${name} must be a whole number from 0 to ${max}`);
  }
  return v as number;
}

type HeaderBag = Headers | Record<string, string | string[] | undefined>;
function header(headers: HeaderBag, name: string): string | null {
  if (headers instanceof Headers) return headers.get(name);
  if (typeof headers !== 'object' || headers === null) return null;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? (v[0] ?? null) : typeof v === 'string' ? v : null;
  }
  return null;
}

function rawBytes(rawBody: unknown): Uint8Array {
  if (typeof rawBody === 'string') return utf8(rawBody);
  if (rawBody instanceof Uint8Array) return rawBody;
  if (rawBody instanceof ArrayBuffer) return new Uint8Array(rawBody);
  throw new ValidationError('invalid_webhook', 'invalid_webhook: pass the raw request body (string, Uint8Array or ArrayBuffer), exactly as received');
}

const notConfigured = (provider: LicenseProvider) =>
  new SetupError(
    'license_not_configured',
    provider === 'lemonsqueezy'
      ? 'license_not_configured: pass createPluginAuth(db, { lemonSqueezy: { webhookSecret } })'
      : 'license_not_configured: pass createPluginAuth(db, { gumroad: {} })',
  );

export function createLicenses(
  db: Database,
  options: { lemonSqueezy?: LemonSqueezyOptions; gumroad?: GumroadOptions; licenses?: LicenseOptions },
) {
  db = withTypedErrors(db);
  const o = options.licenses ?? {};
  const cacheSeconds = seconds(o.cacheSeconds, 'cacheSeconds', DEFAULT_LICENSE_CACHE_SECONDS, 7 * 24 * 3600);
  const graceSeconds = seconds(o.graceSeconds, 'graceSeconds', DEFAULT_LICENSE_GRACE_SECONDS, 90 * 24 * 3600);
  const timeoutMs = seconds(o.timeoutMs, 'timeoutMs', DEFAULT_LICENSE_TIMEOUT_MS, 120_000) || DEFAULT_LICENSE_TIMEOUT_MS;
  const unknownKeyRetryMs = o.unknownKeyRetryMs ?? DEFAULT_UNKNOWN_KEY_RETRY_MS;
  if (!Array.isArray(unknownKeyRetryMs) || unknownKeyRetryMs.length > 5 || !unknownKeyRetryMs.every((ms) => Number.isInteger(ms) && ms >= 0 && ms <= 10_000)) {
    throw new SetupError('license_config_invalid', 'license_config_invalid: licenses.unknownKeyRetryMs must be at most 5 whole numbers of milliseconds from 0 to 10000');
  }
  const lemon = options.lemonSqueezy ? resolveLemonSqueezy(options.lemonSqueezy, timeoutMs) : null;
  const gumroad = options.gumroad ? resolveGumroad(options.gumroad, timeoutMs) : null;

  const store = (provider: LicenseProvider): StoreConfig => {
    const config = provider === 'lemonsqueezy' ? lemon?.config : gumroad;
    if (!config) throw notConfigured(provider);
    return config;
  };

  /** Gumroad needs the product: the given one, else each linked Gumroad product in turn. */
  async function gumroadFind(tx: Queryable, key: string, productId: string | null): Promise<StoreLicense> {
    const config = store('gumroad');
    if (productId) return gumroadVerify(config, productId, key);
    const products = await tx.query<{ product_id: string }>(
      "SELECT DISTINCT product_id FROM public.license_products WHERE provider = 'gumroad' ORDER BY product_id LIMIT $1::integer",
      [MAX_GUMROAD_PRODUCTS_TRIED],
    );
    let last: unknown = new AuthError('license_key_rejected', 'license_key_rejected: no Gumroad product is linked to a plan (auth.plans.linkLicense) and no productId was given');
    for (const { product_id } of products) {
      try {
        return await gumroadVerify(config, product_id, key);
      } catch (error) {
        // Try the next product; if none answers, the most telling refusal stands: a product that
        // must be linked by its product_id, then unknown (perhaps not yet), then rejected.
        const rank = (e: unknown) => ['license_key_rejected', 'license_key_unknown', 'gumroad_product_id_required'].indexOf((e as PluginAuthError)?.code);
        if (!(error instanceof PluginAuthError) || rank(error) < 0) throw error;
        if (rank(error) > rank(last)) last = error;
      }
    }
    throw last;
  }

  const planSlug = async (userId: string) =>
    (await db.query<{ plan_slug: string }>('SELECT plan_slug FROM public.effective_plan($1::uuid)', [userId]))[0]?.plan_slug ?? 'free';

  async function activate(userId: string, input: ActivateInput): Promise<Activation> {
    validate.userId(userId);
    if (typeof input !== 'object' || input === null) {
      throw new ValidationError('invalid_license_key', 'invalid_license_key: pass { provider, licenseKey, deviceId }');
    }
    const provider = validate.licenseProvider(input.provider);
    const key = validate.licenseKey(input.licenseKey);
    const deviceId = validate.deviceId(input.deviceId, true)!;
    const name = input.deviceName === undefined || input.deviceName === null ? null : validate.requiredDeviceName(input.deviceName);
    const productId = provider === 'gumroad' ? validate.storeId(input.productId, 'productId', true) : null;
    store(provider);
    const hash = await digest(key);
    let createdInstance: string | null = null;
    try {
      const row = await db.transaction(async (tx) => {
        const begun = (await tx.query<{ license_id: string | null; device_known: boolean; device_name: string }>(
          'SELECT * FROM public.license_begin_activation($1::varchar, $2::text, $3::uuid, $4::uuid, $5::varchar)',
          [provider, hash, userId, deviceId, name],
        ))[0]!;
        const device = begun.device_name;
        let answer: StoreLicense;
        // A key never activated here may be a purchase the store has not finished: asked again.
        const ask = <T>(call: () => Promise<T>) => (begun.license_id ? call() : retryUnknownKey(call, unknownKeyRetryMs));
        if (provider === 'lemonsqueezy') {
          answer = await ask(() => (begun.device_known ? lemonValidate(store(provider), key) : lemonActivate(store(provider), key, device)));
          if (!begun.device_known) createdInstance = answer.instanceId;
        } else {
          const known = begun.license_id
            ? (await tx.query<{ product_id: string }>('SELECT product_id FROM public.licenses WHERE id = $1::uuid', [begun.license_id]))[0]?.product_id ?? null
            : null;
          answer = await ask(() => gumroadFind(tx, key, productId ?? known));
        }
        if (!GRANTING.has(answer.status) && !begun.license_id) {
          throw new AuthError('license_key_rejected', `license_key_rejected: ${NAMES[provider]} reports this license as ${answer.status}`);
        }
        return (await tx.query<{ license_id: string; activations_used: number; device_limit: number | null }>(
          `SELECT * FROM public.license_record_activation($1::varchar, $2::text, $3::varchar, $4::uuid, $5::uuid, $6::varchar,
             $7::varchar, $8::varchar, $9::varchar, $10::varchar, $11::varchar, $12::integer, $13::integer,
             $14::timestamptz, $15::varchar, $16::bigint, $17::varchar, $18::varchar)`,
          [provider, hash, keyPrefix(key), userId, deviceId, name, answer.providerKeyId, answer.productId, answer.variantId,
            answer.orderId, answer.status, answer.activationLimit, answer.quantity, answer.expiresAt, answer.instanceId,
            answer.priceMinor ?? null, answer.currency ?? null, answer.priceInterval ?? null],
        ))[0]!;
      });
      const info = (await db.query<{ expires_at: Date | null }>('SELECT expires_at FROM public.licenses WHERE id = $1::uuid', [row.license_id]))[0];
      const lease = (await db.query<{ overage: boolean }>(
        'SELECT l.overage FROM public.list_license_devices($1::uuid, $2::uuid) AS l WHERE l.device_id = $3::uuid', [userId, row.license_id, deviceId]))[0];
      return {
        activated: true,
        planSlug: await planSlug(userId),
        activationsUsed: row.activations_used,
        activationLimit: row.device_limit,
        expiresAt: info?.expires_at ?? null,
        overage: lease?.overage ?? false,
        reason: 'valid',
      };
    } catch (error) {
      // Lemon Squeezy counted an activation we did not keep: give it back (best effort).
      if (createdInstance) await lemonDeactivate(store('lemonsqueezy'), key, createdInstance).catch(() => {});
      throw error;
    }
  }

  async function deactivate(userId: string, input: { provider: LicenseProvider; licenseKey: string; deviceId: string }): Promise<{ activationsUsed: number }> {
    validate.userId(userId);
    if (typeof input !== 'object' || input === null) throw new ValidationError('invalid_license_key', 'invalid_license_key: pass { provider, licenseKey, deviceId }');
    const provider = validate.licenseProvider(input.provider);
    const key = validate.licenseKey(input.licenseKey);
    const device = validate.deviceId(input.deviceId, true)!;
    const hash = await digest(key);
    const left = await db.transaction(async (tx) => {
      await lock(tx, 'licenseKey', `${provider}:${hash}`);
      const found = await tx.query<{ instance_id: string | null }>(
        `SELECT d.instance_id FROM public.licenses k JOIN public.license_devices d ON d.license_id = k.id
          WHERE k.provider = $1::varchar AND k.key_hash = $2::text AND k.user_id = $3::uuid AND d.device_id = $4::uuid`,
        [provider, hash, userId, device],
      );
      if (provider === 'lemonsqueezy' && found[0]?.instance_id) await lemonDeactivate(store(provider), key, found[0].instance_id);
      return (await tx.query<{ n: number }>('SELECT public.license_remove_device($1::varchar, $2::text, $3::uuid, $4::uuid) AS n', [provider, hash, userId, device]))[0]!.n;
    });
    return { activationsUsed: left };
  }

  async function validateKey(userId: string, input: { provider: LicenseProvider; licenseKey: string }): Promise<Validation> {
    validate.userId(userId);
    if (typeof input !== 'object' || input === null) throw new ValidationError('invalid_license_key', 'invalid_license_key: pass { provider, licenseKey }');
    const provider = validate.licenseProvider(input.provider);
    const key = validate.licenseKey(input.licenseKey);
    store(provider);
    const hash = await digest(key);
    const result = await db.transaction(async (tx) => {
      await lock(tx, 'licenseKey', `${provider}:${hash}`);
      const row = (await tx.query<LicenseRow>(
        `SELECT k.*, k.checked_at > pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $3::integer) AS fresh,
                k.checked_at > pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $4::integer) AS in_grace
           FROM public.licenses k WHERE k.provider = $1::varchar AND k.key_hash = $2::text`,
        [provider, hash, cacheSeconds, graceSeconds],
      ))[0];
      if (!row) throw new NotFoundError('license_not_found', 'license_not_found: this license key was never activated; activate it first');
      if (row.user_id !== userId) throw new AuthError('license_in_use', 'license_in_use: this license key is activated by another user');
      if (row.fresh && cacheSeconds > 0) return { row, answeredBy: 'cache' as const };
      let answer: Pick<StoreLicense, 'status' | 'expiresAt' | 'activationLimit'> & { quantity: number | null };
      try {
        answer = provider === 'lemonsqueezy' ? await lemonValidate(store(provider), key) : await gumroadVerify(store(provider), row.product_id, key);
      } catch (error) {
        if (error instanceof ServiceError && error.code === 'license_unavailable' && row.in_grace) return { row, answeredBy: 'grace' as const };
        // Gumroad refuses a key the seller disabled (or whose access ended) with a 404: for a key
        // activated here that is an answer, stored as the license's status (it grants nothing).
        const revoked = provider === 'gumroad' ? gumroadRevokedStatus(error) : null;
        if (!revoked) throw error;
        answer = { status: revoked, expiresAt: row.expires_at, activationLimit: row.activation_limit, quantity: null };
      }
      await tx.query(
        'SELECT public.license_apply_state($1::uuid, $2::varchar, $3::timestamptz, $4::integer, $5::integer, pg_catalog.clock_timestamp(), true)',
        [row.id, answer.status, answer.expiresAt, answer.activationLimit, answer.quantity],
      );
      const fresh = (await tx.query<LicenseRow>('SELECT * FROM public.licenses WHERE id = $1::uuid', [row.id]))[0]!;
      return { row: fresh, answeredBy: 'store' as const };
    });
    const { row } = result;
    const valid = GRANTING.has(row.status) && (row.expires_at === null || row.expires_at.getTime() > Date.now());
    return { valid, status: row.status, planSlug: await planSlug(userId), expiresAt: row.expires_at, checkedAt: row.checked_at, answeredBy: result.answeredBy };
  }

  async function list(userId: string): Promise<LicenseInfo[]> {
    validate.userId(userId);
    const rows = await db
      .query<LicenseRow & { plan_slug: string | null; device_limit: number | null; seats: number | null; devices: unknown }>(
        `SELECT k.*, p.plan_slug, t.device_limit, t.seats,
                (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('deviceId', d.device_id, 'deviceName', d.device_name, 'activatedAt', d.activated_at)
                                             ORDER BY d.activated_at, d.device_id)
                   FROM public.license_devices d WHERE d.license_id = k.id) AS devices
           FROM public.licenses k
          CROSS JOIN LATERAL public.license_terms(k.provider, k.product_id, k.variant_id) t
           LEFT JOIN public.subscription_plans p ON p.id = t.plan_id
          WHERE k.user_id = $1::uuid
          ORDER BY k.created_at, k.id`,
        [userId],
      )
    return rows.map((r) => {
      const devices = (typeof r.devices === 'string' ? JSON.parse(r.devices) : r.devices ?? []) as { deviceId: string; deviceName: string; activatedAt: string }[];
      const limits = [r.device_limit, r.activation_limit].filter((n): n is number => n !== null);
      return {
        id: r.id,
        provider: r.provider,
        keyPrefix: r.key_prefix,
        status: r.status,
        productId: r.product_id,
        variantId: r.variant_id || null,
        planSlug: r.plan_slug,
        devices: devices.map((d) => ({ deviceId: d.deviceId, deviceName: d.deviceName, activatedAt: new Date(d.activatedAt) })),
        activationLimit: limits.length ? Math.min(...limits) : null,
        seats: r.seats ?? r.quantity,
        expiresAt: r.expires_at,
        checkedAt: r.checked_at,
      };
    });
  }

  const applyWebhook = (
    q: Pick<Queryable, 'query'>,
    provider: LicenseProvider,
    eventId: string,
    event: string,
    match: 'key_id' | 'order_id' | 'key_hash' | 'none',
    value: string | null,
    status: StoreLicense['status'] | null,
    expiresAt: Date | null,
    at: Date | null,
    authoritative: boolean,
  ) =>
    q.query<{ applied: boolean; reason: WebhookResult['reason']; licenses: number }>(
      `SELECT * FROM public.license_apply_webhook($1::varchar, $2::text, $3::varchar, $4::varchar, $5::text, $6::varchar,
         $7::timestamptz, COALESCE($8::timestamptz, pg_catalog.clock_timestamp()), $9::boolean)`,
      [provider, eventId, event, match, value, status, expiresAt, at, authoritative],
    );

  /** Lemon Squeezy: signed; the event says what changed. */
  async function lemonWebhook(bytes: Uint8Array, headers: HeaderBag): Promise<WebhookResult> {
    if (!lemon) throw notConfigured('lemonsqueezy');
    if (!(await lemonSignatureValid(lemon.secret, bytes, header(headers, 'x-signature')))) {
      throw new AuthError('invalid_signature', 'invalid_signature: the X-Signature header is missing or is not the HMAC-SHA256 of this body with lemonSqueezy.webhookSecret');
    }
    let body: { meta?: { event_name?: unknown }; data?: { id?: unknown; type?: unknown; attributes?: Record<string, unknown> } };
    try {
      body = JSON.parse(fromUtf8(bytes));
    } catch {
      throw new ValidationError('invalid_webhook', 'invalid_webhook: the Lemon Squeezy webhook body is not JSON');
    }
    const event = typeof body?.meta?.event_name === 'string' && /^[a-z0-9_.:-]{1,64}$/.test(body.meta.event_name) ? body.meta.event_name : null;
    if (!event) throw new ValidationError('invalid_webhook', 'invalid_webhook: meta.event_name is missing');
    const attributes = body.data?.attributes ?? {};
    const at = dateOrNull(attributes.updated_at);
    let match: 'key_id' | 'order_id' | 'none' = 'none';
    let value: string | null = null;
    let status: StoreLicense['status'] | null = null;
    let expiresAt: Date | null = null;
    if (event === 'license_key_updated') {
      match = 'key_id';
      value = idText(body.data?.id);
      const s = attributes.status;
      status = s === 'inactive' || s === 'active' || s === 'expired' || s === 'disabled' ? s : null;
      expiresAt = dateOrNull(attributes.expires_at);
    } else if (event === 'order_refunded') {
      // Sent for full and partial refunds; only a full one (refunded: true, status refunded)
      // revokes. Lemon Squeezy has no dispute event: a chargeback it settles is a full refund.
      match = 'order_id';
      value = idText(body.data?.id);
      status = attributes.refunded === false && attributes.status !== 'refunded' ? null : 'refunded';
    } else if (event === 'subscription_expired') {
      match = 'order_id';
      value = idText(attributes.order_id);
      status = 'expired';
    } else if (event === 'subscription_updated') {
      match = 'order_id';
      value = idText(attributes.order_id);
      status = attributes.status === 'expired' ? 'expired' : attributes.status === 'active' || attributes.status === 'on_trial' ? 'active' : null;
    }
    if (match !== 'none' && (value === null || at === null)) {
      throw new ValidationError('invalid_webhook', `invalid_webhook: ${event} without the id and updated_at it is matched and ordered by`);
    }
    const money = lemonMoney(event, body.data);
    const eventId = await sha256Hex(bytes);
    // One transaction: the delivery's digest (a replay stops there), the license's state, the money.
    return db.transaction(async (tx) => {
      const row = (await applyWebhook(tx, 'lemonsqueezy', eventId, event, status ? match : 'none', value, status, expiresAt, at, false))[0]!;
      if (row.reason === 'duplicate' || money === null) return { ...row, event, recorded: false };
      const recorded = await recordLemonMoney(tx, money);
      // The license's word first (applied, stale, revoked); then the money's (recorded, stale).
      const reason: WebhookResult['reason'] = row.applied || row.reason === 'stale' || row.reason === 'revoked' ? row.reason
        : recorded === 'recorded' ? 'recorded'
          : recorded === 'stale' && row.reason === 'ignored' ? 'stale'
            : row.reason;
      return { ...row, reason, event, recorded: recorded === 'recorded' };
    });
  }

  /**
   * Gumroad: unsigned, so a hint: the key is verified with the API before anything changes. A
   * ping is never de-duplicated (anyone could send its bytes first) nor stored: a ping for a key
   * we do not know writes nothing, and one for a known key applies what Gumroad answers now.
   */
  async function gumroadWebhook(bytes: Uint8Array): Promise<WebhookResult> {
    const config = store('gumroad');
    const form = new URLSearchParams(fromUtf8(bytes));
    const name = form.get('resource_name') ?? 'sale';
    const event = /^[a-z0-9_.:-]{1,64}$/.test(name) ? name : 'unknown';
    const eventId = await sha256Hex(bytes);
    const key = form.get('license_key');
    const hash = key !== null && /^[\x21-\x7e]{1,255}$/.test(key) ? await digest(key) : null;
    return db.transaction(async (tx) => {
      const row = hash
        ? (await tx.query<{ product_id: string; expires_at: Date | null }>(
            "SELECT product_id, expires_at FROM public.licenses WHERE provider = 'gumroad' AND key_hash = $1::text", [hash]))[0]
        : undefined;
      if (!row || !key || !hash) return { applied: false, reason: 'unknown_license' as const, event, licenses: 0, recorded: false };
      await lock(tx, 'licenseKey', `gumroad:${hash}`);
      const answer = await gumroadVerify(config, row.product_id, key).catch((error: unknown) => {
        // A key the seller disabled, or whose access ended: stored as such (see validate).
        const revoked = gumroadRevokedStatus(error);
        if (!revoked) throw error;
        return { status: revoked, expiresAt: row.expires_at };
      });
      const rows = await applyWebhook(tx, 'gumroad', eventId, event, 'key_hash', hash, answer.status, answer.expiresAt, null, true);
      return { ...rows[0]!, event, recorded: false };
    });
  }

  /**
   * Retention of stored webhook deliveries (kept to de-duplicate signed ones): deletes those
   * received before `olderThan` (a Date or an age such as '30d'; at least a day ago). Gumroad's
   * unsigned pings are never stored. Run it on a schedule, like usage retention.
   */
  async function purgeWebhookEvents({ olderThan }: { olderThan: Date | string }): Promise<{ deleted: number }> {
    const cutoff = typeof olderThan === 'string' ? parseAge(olderThan) : olderThan;
    if (!(cutoff instanceof Date) || Number.isNaN(cutoff.getTime())) {
      throw new ValidationError('invalid_cutoff', 'invalid_cutoff: olderThan must be a Date or an age such as 30d');
    }
    const rows = await db.query<{ n: number }>('SELECT public.purge_license_webhook_events($1::timestamptz) AS n', [cutoff]);
    return { deleted: rows[0]!.n };
  }

  return {
    /**
     * Activates a license key for the user on a device (the id auth.tokens.verify returns for
     * the plugin's session): asks the store, binds the key to this user (another user:
     * license_in_use), and enforces the device limit, counting device ids (device_limit_reached
     * names the devices to release). Activating a device already on the license is idempotent.
     * Errors: invalid_user_id, invalid_license_provider, invalid_license_key, invalid_device_id,
     * unknown_device, invalid_device_name, invalid_license_product, license_not_configured,
     * license_key_rejected, license_in_use, device_limit_reached, license_unavailable, unknown_user.
     */
    activate,
    /** Frees a device of the user's license (at Lemon Squeezy too). Errors: those of activate, license_not_found. */
    deactivate,
    /** The user's licenses, with devices, plan and limits; never the keys. */
    list,
    /**
     * What the store says about the user's license now, cached for cacheSeconds (single flight:
     * concurrent checks of one key make one call), falling back to the stored answer for
     * graceSeconds on 429, 5xx or a timeout. Errors: those of activate, license_not_found.
     */
    validate: validateKey,
    /**
     * A store's webhook, with the raw body exactly as received and the request headers. Lemon
     * Squeezy: X-Signature checked in constant time (invalid_signature, nothing changed).
     * Gumroad: the ping is unsigned, so the key it names is verified with the API first, and it
     * is neither stored nor de-duplicated (a ping for an unknown key writes nothing).
     * Lemon Squeezy deliveries are de-duplicated (the body's SHA-256, stored with the change; see
     * purgeWebhookEvents) and ordered by the store's updated_at (an older one changes nothing). Errors: invalid_signature,
     * invalid_webhook, license_not_configured, license_unavailable (Gumroad: answer non-2xx so it retries).
     */
    async handleWebhook(provider: LicenseProvider, rawBody: string | Uint8Array | ArrayBuffer, headers: HeaderBag = {}): Promise<WebhookResult> {
      const p = validate.licenseProvider(provider);
      const bytes = rawBytes(rawBody);
      if (bytes.byteLength > MAX_WEBHOOK_BYTES) throw new ValidationError('invalid_webhook', 'invalid_webhook: the body is larger than 1 MB');
      return p === 'lemonsqueezy' ? await lemonWebhook(bytes, headers) : await gumroadWebhook(bytes);
    },
    purgeWebhookEvents,
  };
}

export type Licenses = ReturnType<typeof createLicenses>;
export type { LemonSqueezyOptions, GumroadOptions, LicenseProvider };
