import {
  ACTION_CHARACTERS_TEXT,
  MAX_ACTION_LENGTH,
  MAX_EVENT_SKEW_MS,
  MAX_ITEMS,
  MAX_LOGIN_TTL_SECONDS,
  MAX_METADATA_BYTES,
  MAX_TEXT_LENGTH,
  MAX_TOKEN_TTL_SECONDS,
  MIN_LOGIN_TTL_SECONDS,
  MIN_MAX_TOKENS,
  MIN_TOKEN_TTL_SECONDS,
} from './limits.ts';

/**
 * Every failure the library reports is a PluginAuthError with a stable `code`, one of ERRORS below
 * (docs/reference/errors.md is generated from it; its limits are limits.ts's). Messages name what to fix and never contain a token, key or password.
 */
export class PluginAuthError extends Error {
  // The class's name, written out: a minifier (Next.js's production build) renames classes, and
  // the HTTP status table and the plugin client read `name`.
  override name = 'PluginAuthError';
  readonly code: ErrorCode;
  override readonly cause?: unknown;
  constructor(code: ErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message);
    // A subclass of the caller's gets its own name (ours write theirs out, below).
    if (new.target !== PluginAuthError) this.name = new.target.name;
    this.code = code;
    if (options.cause !== undefined) this.cause = options.cause;
  }

  /**
   * True when the same call, made again unchanged, may succeed: the failure was transient (its row
   * in ERRORS says `retryable: true`). A consume retried with the same idempotency key is counted
   * at most once, whether or not the lost attempt had been counted.
   */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

/** Bad input: nothing was written. */
export class ValidationError extends PluginAuthError {
  override name = 'ValidationError';
}
/** A referenced row (user, plan, token, login request, Stripe customer or price) does not exist. */
export class NotFoundError extends PluginAuthError {
  override name = 'NotFoundError';
}
/** A plugin token or login key that must be refused. */
export class AuthError extends PluginAuthError {
  override name = 'AuthError';
}
/** Setup or schema verification failed. */
export class SetupError extends PluginAuthError {
  override name = 'SetupError';
}
/** The database refused or failed in a way this library does not model. */
export class DatabaseError extends PluginAuthError {
  override name = 'DatabaseError';
}
/** An outside service (Figma's Payments API) refused our credentials or did not answer usefully. */
export class ServiceError extends PluginAuthError {
  override name = 'ServiceError';
}

export type ErrorClassName = 'ValidationError' | 'NotFoundError' | 'AuthError' | 'SetupError' | 'DatabaseError' | 'ServiceError';

export interface ErrorInfo {
  /** The stable code: `error.code`, and the first word of the message of the SQL function raising it. */
  readonly code: string;
  /** The SQLSTATE our SQL functions raise it with (class "PA"); null when only TypeScript raises it. */
  readonly sqlstate: `PA${number}` | null;
  readonly class: ErrorClassName;
  /** Where it comes from, for the README's table. */
  readonly area: string;
  /** When it is raised (Markdown, one sentence). */
  readonly meaning: string;
  /** The same call made again may succeed (`error.retryable`); absent: it will fail the same way. */
  readonly retryable?: true;
}

/**
 * Every error code, once. docs/reference/errors.md is generated from this table (`npm run
 * generate`), and test/core.errors.test.ts checks it against the code: every code thrown in src/ and
 * every SQLSTATE raised by the installed SQL functions is here, and every row is used.
 */
export const ERRORS = [
  { code: 'no_database_configured', sqlstate: null, class: 'SetupError', area: 'setup', meaning: 'production setup without `DATABASE_URL` or the Supabase pair' },
  { code: 'invalid_database_url', sqlstate: null, class: 'SetupError', area: 'setup', meaning: 'a `DATABASE_URL` that is not a postgres:// URL, `memory://` or `pglite:<dir>`' },
  { code: 'incomplete_supabase_config', sqlstate: null, class: 'SetupError', area: 'setup', meaning: '`SUPABASE_URL` without `SUPABASE_SERVICE_ROLE_KEY`, or the other way round' },
  { code: 'invalid_supabase_url', sqlstate: null, class: 'SetupError', area: 'setup', meaning: 'a `SUPABASE_URL` that is not an https:// project URL' },
  { code: 'database_locked', sqlstate: null, class: 'SetupError', area: 'setup', meaning: 'another process owns the embedded database\'s directory and does not serve it (opened with `share: false`, or not answering on its socket); the message names its pid and since when (see [docs/embedded.md](docs/embedded.md))' },
  { code: 'connection_failed', sqlstate: null, class: 'SetupError', area: 'setup', meaning: 'server unreachable, login refused, database missing' },
  { code: 'exec_sql_missing', sqlstate: null, class: 'SetupError', area: 'setup', meaning: 'Supabase REST path without the `exec_sql` function' },
  { code: 'missing_dependency', sqlstate: null, class: 'SetupError', area: 'setup', meaning: 'an optional package this path needs is not installed (the message names it and the install command)' },
  { code: 'schema_modified', sqlstate: 'PA010', class: 'SetupError', area: 'setup', meaning: 'an applied `sql/` file has changed' },
  { code: 'schema_newer', sqlstate: 'PA011', class: 'SetupError', area: 'setup', meaning: 'the database was set up by a newer version of this package' },
  { code: 'schema_drift', sqlstate: 'PA012', class: 'SetupError', area: 'setup', meaning: 'an existing table has another shape, or a missing object cannot be restored without overwriting a function changed by hand (each difference named)' },
  { code: 'untrusted_object', sqlstate: 'PA013', class: 'SetupError', area: 'setup', meaning: 'a function with one of our names but not our signature, an object of ours owned by an untrusted role, or an operator shadowing `pg_catalog`\'s (each named; see [docs/security.md](docs/security.md))' },
  { code: 'schema_create_open', sqlstate: 'PA014', class: 'SetupError', area: 'setup', meaning: 'a role other than the owner (or `PUBLIC`) may `CREATE` in schema `public`' },
  { code: 'invalid_object', sqlstate: 'PA015', class: 'SetupError', area: 'setup', meaning: 'a security helper was given something that is not a table, sequence or function' },
  { code: 'setup_failed', sqlstate: null, class: 'SetupError', area: 'setup', meaning: 'anything else; the message is PostgreSQL\'s' },
  { code: 'invalid_user_id', sqlstate: null, class: 'ValidationError', area: 'any', meaning: 'a user id that is not a uuid (any API taking a user; `findUser`: neither a uuid nor an email); refused before the database, never echoed' },
  { code: 'unknown_user', sqlstate: 'PA001', class: 'NotFoundError', area: 'any', meaning: 'a well-formed user id (or email) that no user has' },
  { code: 'invalid_items', sqlstate: 'PA002', class: 'ValidationError', area: 'usage', meaning: `items is not an integer from 1 to ${MAX_ITEMS} (see [docs/usage.md](docs/usage.md#error-codes))` },
  { code: 'invalid_action', sqlstate: 'PA003', class: 'ValidationError', area: 'usage', meaning: `an action that is not 1 to ${MAX_ACTION_LENGTH} characters of \`${ACTION_CHARACTERS_TEXT}\`` },
  { code: 'invalid_idempotency_key', sqlstate: 'PA004', class: 'ValidationError', area: 'usage', meaning: `an idempotency key that is empty, longer than ${MAX_TEXT_LENGTH} characters or has control characters` },
  { code: 'invalid_metadata', sqlstate: 'PA005', class: 'ValidationError', area: 'usage', meaning: `metadata that is not a JSON object, or over ${MAX_METADATA_BYTES} bytes as stored (its jsonb text)` },
  { code: 'invalid_date', sqlstate: 'PA006', class: 'ValidationError', area: 'usage', meaning: 'a summary range that is not two valid dates in order' },
  { code: 'no_plan', sqlstate: 'PA007', class: 'NotFoundError', area: 'usage', meaning: 'the free plan is missing' },
  { code: 'unknown_idempotency_key', sqlstate: 'PA008', class: 'NotFoundError', area: 'usage', meaning: 'refund of a key no call of this user has' },
  { code: 'idempotency_key_reused', sqlstate: 'PA009', class: 'ValidationError', area: 'usage', meaning: 'a key reused for another action or batch size, after its operation was refunded, or after the 10-minute retry window (see [docs/usage.md](docs/usage.md#idempotency-keys))' },
  { code: 'token_invalid', sqlstate: null, class: 'AuthError', area: 'tokens', meaning: 'verify refused the token: not ours, malformed or forged' },
  { code: 'token_expired', sqlstate: null, class: 'AuthError', area: 'tokens', meaning: 'verify refused the token: past its expiry' },
  { code: 'token_revoked', sqlstate: null, class: 'AuthError', area: 'tokens', meaning: 'verify refused the token: revoked, or its user is gone' },
  { code: 'token_secret_missing', sqlstate: null, class: 'SetupError', area: 'tokens', meaning: 'tokens used without `tokenSecret` or a signing key' },
  { code: 'token_secret_too_short', sqlstate: null, class: 'SetupError', area: 'tokens', meaning: 'a `tokenSecret` under 32 bytes' },
  { code: 'token_secret_invalid', sqlstate: null, class: 'SetupError', area: 'tokens', meaning: 'a `tokenSecret` that is not a string' },
  { code: 'token_key_conflict', sqlstate: null, class: 'SetupError', area: 'tokens', meaning: 'both `tokenSecret` and an asymmetric key given' },
  { code: 'token_key_invalid', sqlstate: null, class: 'SetupError', area: 'tokens', meaning: 'a token signing key that cannot be read or has the wrong algorithm' },
  { code: 'token_private_key_missing', sqlstate: null, class: 'SetupError', area: 'tokens', meaning: 'issuing tokens with only a public key' },
  { code: 'invalid_device_name', sqlstate: 'PA020', class: 'ValidationError', area: 'tokens', meaning: `a device name longer than ${MAX_TEXT_LENGTH} characters or with control characters (see [docs/tokens.md](docs/tokens.md#error-codes))` },
  { code: 'invalid_ttl', sqlstate: 'PA021', class: 'ValidationError', area: 'tokens', meaning: `a token lifetime that is not a whole number of seconds from ${MIN_TOKEN_TTL_SECONDS} to ${MAX_TOKEN_TTL_SECONDS}, or a login lifetime not from ${MIN_LOGIN_TTL_SECONDS} to ${MAX_LOGIN_TTL_SECONDS} seconds` },
  { code: 'invalid_reason', sqlstate: 'PA023', class: 'ValidationError', area: 'tokens', meaning: `a revocation reason longer than ${MAX_TEXT_LENGTH} characters or with control characters` },
  { code: 'invalid_cutoff', sqlstate: 'PA024', class: 'ValidationError', area: 'tokens', meaning: 'a cutoff in the future (token purge) or less than a day ago (usage purge), or an age that is not `90d`/`36h`' },
  { code: 'invalid_max_tokens', sqlstate: 'PA028', class: 'ValidationError', area: 'tokens', meaning: `a live-token cap (\`maxTokensPerUser\`) that is not a whole number of at least ${MIN_MAX_TOKENS}` },
  { code: 'invalid_digest', sqlstate: 'PA029', class: 'ValidationError', area: 'tokens', meaning: 'a token digest that is not 64 hex characters' },
  { code: 'invalid_device_id', sqlstate: null, class: 'ValidationError', area: 'tokens', meaning: 'a device id that is not a uuid (see [docs/tokens.md](docs/tokens.md#devices))' },
  { code: 'unknown_device', sqlstate: 'PA100', class: 'NotFoundError', area: 'licenses', meaning: 'a device id that no plugin session of the user carries (see [docs/licenses.md](docs/licenses.md#devices))' },
  { code: 'invalid_token_id', sqlstate: null, class: 'ValidationError', area: 'tokens', meaning: 'a token id that is not a uuid' },
  { code: 'token_not_found', sqlstate: 'PA022', class: 'NotFoundError', area: 'tokens', meaning: 'unknown token id' },
  { code: 'login_not_found', sqlstate: 'PA025', class: 'NotFoundError', area: 'tokens', meaning: 'unknown, used or purged login key' },
  { code: 'login_expired', sqlstate: 'PA026', class: 'AuthError', area: 'tokens', meaning: 'the login\'s ten minutes passed' },
  { code: 'login_already_completed', sqlstate: 'PA027', class: 'AuthError', area: 'tokens', meaning: 'the login was completed for another user' },
  { code: 'entitlement_key_invalid', sqlstate: null, class: 'SetupError', area: 'entitlements', meaning: 'bad `entitlementSigningKey` / `entitlementPreviousKeys`: its shape at `createPluginAuth`, a key that fails the Web Crypto checks at the first `snapshot` / `jwks`' },
  { code: 'invalid_entitlement_ttl', sqlstate: null, class: 'SetupError', area: 'entitlements', meaning: 'an `entitlementTtlSeconds` out of range, at `createPluginAuth`' },
  { code: 'entitlement_key_missing', sqlstate: null, class: 'SetupError', area: 'entitlements', meaning: '`entitlements.snapshot` / `jwks` without `entitlementSigningKey`' },
  { code: 'invalid_subscription', sqlstate: 'PA030', class: 'ValidationError', area: 'subscriptions', meaning: 'a Stripe subscription without the fields sync needs (see [docs/subscriptions.md](docs/subscriptions.md#error-codes))' },
  { code: 'invalid_event_created', sqlstate: 'PA031', class: 'ValidationError', area: 'subscriptions', meaning: `an event time that is infinite or more than ${MAX_EVENT_SKEW_MS / 60_000} minutes ahead (milliseconds get a hint)` },
  { code: 'invalid_until', sqlstate: 'PA035', class: 'ValidationError', area: 'subscriptions', meaning: 'a manual assignment\'s end that is not a valid future date' },
  { code: 'price_already_linked', sqlstate: 'PA036', class: 'ValidationError', area: 'subscriptions', meaning: 'the Stripe price belongs to another plan' },
  { code: 'invalid_stripe_id', sqlstate: 'PA037', class: 'ValidationError', area: 'subscriptions', meaning: 'a Stripe id of the wrong shape or prefix' },
  { code: 'unknown_customer', sqlstate: 'PA032', class: 'NotFoundError', area: 'subscriptions', meaning: 'nothing links the Stripe customer to a user' },
  { code: 'unknown_price', sqlstate: 'PA033', class: 'NotFoundError', area: 'subscriptions', meaning: 'no plan is linked to the Stripe price' },
  { code: 'unknown_plan', sqlstate: 'PA034', class: 'NotFoundError', area: 'subscriptions', meaning: 'no plan has the slug' },
  { code: 'stripe_not_configured', sqlstate: null, class: 'SetupError', area: 'subscriptions', meaning: 'a reconcile, checkout or portal call without the `stripe` options (`secretKey`; see [docs/subscriptions.md](docs/subscriptions.md#error-codes))' },
  { code: 'stripe_config_invalid', sqlstate: null, class: 'SetupError', area: 'subscriptions', meaning: 'bad `stripe` options: a secret key that is not `sk_…`/`rk_…`, an API base URL that is not http(s), a timeout or retry count out of range' },
  { code: 'stripe_auth_failed', sqlstate: null, class: 'ServiceError', area: 'subscriptions', meaning: 'Stripe answered 401/403: the secret key is wrong, revoked, or lacks a permission (the key is never quoted)' },
  { code: 'stripe_unavailable', sqlstate: null, class: 'ServiceError', area: 'subscriptions', meaning: 'Stripe answered 429 or 5xx after the retries (Retry-After honoured), timed out, could not be reached, or answered something that is not its JSON', retryable: true },
  { code: 'stripe_request_failed', sqlstate: null, class: 'ServiceError', area: 'subscriptions', meaning: 'Stripe refused the request (4xx): the message names Stripe\'s `error.type`, `code` and `param`' },
  { code: 'no_stripe_customer', sqlstate: null, class: 'NotFoundError', area: 'subscriptions', meaning: 'a portal link for a user without a Stripe customer (no checkout completed yet)' },
  { code: 'plan_not_for_sale', sqlstate: null, class: 'ValidationError', area: 'subscriptions', meaning: 'a checkout for a plan that is inactive or not linked to a Stripe price' },
  { code: 'invalid_return_url', sqlstate: null, class: 'ValidationError', area: 'subscriptions', meaning: 'a checkout or portal return URL that is not https (http only for localhost) or is over 2048 characters' },
  { code: 'invalid_quantity', sqlstate: null, class: 'ValidationError', area: 'subscriptions', meaning: 'a checkout quantity that is not a whole number from 1 to 100000' },
  { code: 'invalid_page_size', sqlstate: null, class: 'ValidationError', area: 'subscriptions', meaning: 'a reconcile page size that is not 1 to 100 (Stripe\'s list limit)' },
  { code: 'invalid_dry_run', sqlstate: null, class: 'ValidationError', area: 'subscriptions', meaning: 'a reconcile `dryRun` that is not a boolean' },
  { code: 'invalid_payment_token', sqlstate: null, class: 'ValidationError', area: 'figma', meaning: 'not a payment token (type, size, characters); nothing sent or written' },
  { code: 'payment_token_rejected', sqlstate: null, class: 'AuthError', area: 'figma', meaning: 'Figma refused the payment token (400/404): the plugin gets a new one' },
  { code: 'payment_token_wrong_plugin', sqlstate: null, class: 'AuthError', area: 'figma', meaning: 'Figma\'s answer is about another plugin or widget than `figma.pluginId`, or names none: nothing stored' },
  { code: 'figma_token_invalid', sqlstate: null, class: 'ServiceError', area: 'figma', meaning: 'Figma refused the personal access token (401/403; `status` and `verify` warn)' },
  { code: 'figma_unavailable', sqlstate: null, class: 'ServiceError', area: 'figma', meaning: '429, 5xx or timeout with no stored answer within the grace' },
  { code: 'figma_not_configured', sqlstate: null, class: 'SetupError', area: 'figma', meaning: 'a Figma call without the `figma` options (see [docs/figma-payments.md](docs/figma-payments.md#error-codes))' },
  { code: 'figma_token_missing', sqlstate: null, class: 'SetupError', area: 'figma', meaning: '`figma` options without `personalAccessToken`' },
  { code: 'figma_plugin_id_missing', sqlstate: null, class: 'SetupError', area: 'figma', meaning: '`figma` options without `pluginId` (the manifest id; required)' },
  { code: 'figma_config_invalid', sqlstate: null, class: 'SetupError', area: 'figma', meaning: 'bad `figma` options (plugin id, API base URL, grace)' },
  { code: 'figma_create_user_failed', sqlstate: null, class: 'SetupError', area: 'figma', meaning: 'the host\'s `createUser` for a new Figma user failed or returned no id' },
  { code: 'invalid_figma_user_id', sqlstate: 'PA060', class: 'ValidationError', area: 'figma', meaning: 'a Figma user id that is not 1 to 64 digits' },
  { code: 'invalid_figma_link', sqlstate: 'PA061', class: 'ValidationError', area: 'figma', meaning: 'a plan link to Figma without a valid plugin id' },
  { code: 'invalid_trial_days', sqlstate: 'PA062', class: 'ValidationError', area: 'figma', meaning: 'trial days that are not an integer from 0 to 365' },
  { code: 'invalid_figma_price', sqlstate: 'PA190', class: 'ValidationError', area: 'figma', meaning: 'a price for a Figma plan link that is not whole minor units from 0 with a three-letter currency (and month or year), or a price on a TRIAL or FIRST_USE link (see [docs/dashboard.md](docs/dashboard.md#money))' },
  { code: 'figma_user_linked', sqlstate: 'PA063', class: 'ValidationError', area: 'figma', meaning: 'the Figma user is linked to another user' },
  { code: 'invalid_grace', sqlstate: 'PA064', class: 'ValidationError', area: 'figma', meaning: 'a grace period out of range' },
  { code: 'invalid_figma_answer', sqlstate: 'PA065', class: 'ValidationError', area: 'figma', meaning: 'a Figma answer with a status or date out of range (nothing stored)' },
  { code: 'invalid_figma_email', sqlstate: 'PA140', class: 'ValidationError', area: 'sign-in', meaning: 'Sign in with Figma: `/v1/me` returned an email that is not an address (nothing written; see [docs/sign-in.md](docs/sign-in.md#error-codes))' },
  { code: 'figma_oauth_state_invalid', sqlstate: null, class: 'AuthError', area: 'sign-in', meaning: 'Sign in with Figma: the callback\'s `state` does not match the sign-in this browser started (or its cookie is missing, forged or expired)' },
  { code: 'figma_oauth_denied', sqlstate: null, class: 'AuthError', area: 'sign-in', meaning: 'Sign in with Figma: the user did not allow access on Figma\'s page' },
  { code: 'figma_oauth_failed', sqlstate: null, class: 'AuthError', area: 'sign-in', meaning: 'Sign in with Figma: Figma refused the code exchange (a used or expired code, a PKCE verifier mismatch, a wrong redirect URI or client secret) or `/v1/me` refused the token' },
  { code: 'invalid_login_method', sqlstate: null, class: 'ValidationError', area: 'sign-in', meaning: '`POST /plugin/login?method=` other than `figma` or `website`' },
  { code: 'supabase_auth_missing', sqlstate: null, class: 'SetupError', area: 'sign-in', meaning: 'the opt-in Supabase user sync on a database without `auth.users`' },
  { code: 'figma_oauth_not_configured', sqlstate: null, class: 'SetupError', area: 'sign-in', meaning: 'bad `figmaOAuth` options of `createPluginServer` (client id, client secret, URLs)' },
  { code: 'invalid_license_key', sqlstate: null, class: 'ValidationError', area: 'licenses', meaning: 'not a license key (type, size, characters); nothing sent or written (see [docs/licenses.md](docs/licenses.md#error-codes))' },
  { code: 'invalid_license_provider', sqlstate: 'PA080', class: 'ValidationError', area: 'licenses', meaning: 'a provider other than `lemonsqueezy` or `gumroad`' },
  { code: 'invalid_license_product', sqlstate: 'PA081', class: 'ValidationError', area: 'licenses', meaning: 'a product or variant id of the wrong shape' },
  { code: 'invalid_license_link', sqlstate: 'PA082', class: 'ValidationError', area: 'licenses', meaning: 'a license mapping with a device limit or seat count out of range, or a renewal interval other than day, week, month or year (Lemon Squeezy variants only) with a count from 1 to 365' },
  { code: 'invalid_store_order', sqlstate: 'PA150', class: 'ValidationError', area: 'licenses', meaning: 'a Lemon Squeezy order, subscription or invoice (webhook) with an id, amount, currency, status or time out of range: nothing written (see [docs/licenses.md](docs/licenses.md#money))' },
  { code: 'invalid_license_answer', sqlstate: 'PA083', class: 'ValidationError', area: 'licenses', meaning: 'a store answer with a status, limit or quantity out of range (nothing stored)' },
  { code: 'invalid_event_id', sqlstate: 'PA089', class: 'ValidationError', area: 'licenses', meaning: 'a webhook without a usable event id' },
  { code: 'not_partitioned', sqlstate: 'PA090', class: 'SetupError', area: 'scale', meaning: 'a call the PL/Proxy proxy of a layout sharded by user does not route (seats whose owner and member are on different partitions, login requests, retention and the rollup); raised by `sql/plproxy/proxy.sql` (see [docs/scale.md](docs/scale.md))' },
  { code: 'invalid_webhook', sqlstate: null, class: 'ValidationError', area: 'licenses', meaning: 'a webhook body that is not the store\'s JSON or form' },
  { code: 'license_in_use', sqlstate: 'PA084', class: 'AuthError', area: 'licenses', meaning: 'the key is bound to another user' },
  { code: 'device_limit_reached', sqlstate: 'PA085', class: 'AuthError', area: 'licenses', meaning: 'past the device limit; the message names the devices to release' },
  { code: 'license_key_rejected', sqlstate: null, class: 'AuthError', area: 'licenses', meaning: 'the store refused the key' },
  { code: 'license_key_unknown', sqlstate: null, class: 'NotFoundError', area: 'licenses', retryable: true, meaning: '**retryable**: the store does not know a key of its own shape (404) after the retries of a first activation: a key bought moments ago can take a minute or two to reach the store\'s license API; try again shortly, or check the key (see [docs/licenses.md](docs/licenses.md#store-quirks))' },
  { code: 'gumroad_product_id_required', sqlstate: null, class: 'SetupError', area: 'licenses', meaning: 'a Gumroad product linked by its permalink that Gumroad verifies by `product_id` only (created on or after 2023-01-09); the message names the id to link' },
  { code: 'invalid_signature', sqlstate: null, class: 'AuthError', area: 'licenses', meaning: 'a webhook not signed with the secret (nothing changed)' },
  { code: 'license_not_found', sqlstate: 'PA086', class: 'NotFoundError', area: 'licenses', meaning: 'the user has no such license' },
  { code: 'license_unavailable', sqlstate: null, class: 'ServiceError', area: 'licenses', meaning: '429 (Lemon Squeezy: 60 a minute), 5xx or timeout with no stored answer within the grace' },
  { code: 'license_not_configured', sqlstate: null, class: 'SetupError', area: 'licenses', meaning: 'a license call without the `lemonSqueezy` / `gumroad` options' },
  { code: 'license_config_invalid', sqlstate: null, class: 'SetupError', area: 'licenses', meaning: 'bad `lemonSqueezy` / `gumroad` / `licenses` options' },
  { code: 'invalid_lease_policy', sqlstate: 'PA120', class: 'ValidationError', area: 'licenses', meaning: 'a lease policy with a heartbeat window outside 1 to 2592000 seconds or an overage allowance outside 1.00 to 10.00, or for a product that is not linked (see [docs/licenses.md](docs/licenses.md#device-leases))' },
  { code: 'license_expired', sqlstate: null, class: 'AuthError', area: 'licenses', meaning: 'a lease answer\'s reason (see [docs/licenses.md](docs/licenses.md#reasons)): the license expired or its subscription ended' },
  { code: 'license_suspended', sqlstate: null, class: 'AuthError', area: 'licenses', meaning: 'a lease answer\'s reason: the store disabled the key' },
  { code: 'license_refunded', sqlstate: null, class: 'AuthError', area: 'licenses', meaning: 'a lease answer\'s reason: the purchase was refunded' },
  { code: 'license_disputed', sqlstate: null, class: 'AuthError', area: 'licenses', meaning: 'a lease answer\'s reason: the purchase is disputed or was charged back' },
  { code: 'license_not_linked', sqlstate: null, class: 'AuthError', area: 'licenses', meaning: 'a lease answer\'s reason: the license\'s product is linked to no plan' },
  { code: 'not_activated_on_device', sqlstate: null, class: 'AuthError', area: 'licenses', meaning: 'a lease answer\'s reason: a node-locked license not activated on this device' },
  { code: 'heartbeat_missed', sqlstate: null, class: 'AuthError', area: 'licenses', meaning: 'a lease answer\'s reason: this device missed its heartbeat window and its slot was taken' },
  { code: 'no_license', sqlstate: null, class: 'AuthError', area: 'licenses', meaning: 'a lease answer\'s reason: the user holds no license and no other plan source' },
  { code: 'no_seats_left', sqlstate: 'PA087', class: 'AuthError', area: 'seats', meaning: 'every seat of the purchase is taken' },
  { code: 'seat_taken', sqlstate: 'PA088', class: 'ValidationError', area: 'seats', meaning: 'the member already holds a seat of another owner' },
  { code: 'seat_not_found', sqlstate: 'PA137', class: 'NotFoundError', area: 'seats', meaning: 'the owner has no seat assigned to that member (remove), or the user holds no seat of any team (leave)' },
  { code: 'invalid_invitation', sqlstate: 'PA134', class: 'ValidationError', area: 'teams', meaning: 'an invitation that is not for exactly one email address or one Figma user id, or whose lifetime (`ttlSeconds`) is not 600 (10 minutes) to 2592000 (30 days) (see [docs/licenses.md](docs/licenses.md#teams))' },
  { code: 'invalid_claim_token', sqlstate: null, class: 'ValidationError', area: 'teams', meaning: 'a claim token that is not the 43 characters of base64url an invitation gives; nothing is looked up' },
  { code: 'invalid_invitation_id', sqlstate: null, class: 'ValidationError', area: 'teams', meaning: 'an invitation id that is not a uuid' },
  { code: 'invitation_not_found', sqlstate: 'PA130', class: 'NotFoundError', area: 'teams', meaning: 'no invitation has this claim link (claim), or the owner has no pending invitation with this id (revoke)' },
  { code: 'invitation_expired', sqlstate: 'PA131', class: 'AuthError', area: 'teams', meaning: 'a claim link past its expiry; the owner sends a new one' },
  { code: 'invitation_used', sqlstate: 'PA132', class: 'AuthError', area: 'teams', meaning: 'a claim link already claimed, revoked by the owner, or replaced by a newer invitation to the same person' },
  { code: 'invitation_not_for_you', sqlstate: 'PA133', class: 'AuthError', area: 'teams', meaning: 'a claim link sent to another email address or Figma account than the signed-in user\'s; nothing changes' },
  { code: 'team_not_found', sqlstate: 'PA135', class: 'NotFoundError', area: 'teams', meaning: 'the user owns no team (in force, to invite): no license or Stripe subscription of more than one seat' },
  { code: 'team_transfer_blocked', sqlstate: 'PA136', class: 'ValidationError', area: 'teams', meaning: 'a transfer to the owner, to a user who is not a member of the team, or (a Stripe team) to a user with a subscription of their own' },
  { code: 'too_many_invitations', sqlstate: 'PA138', class: 'ValidationError', area: 'teams', meaning: 'the owner has 1000 pending invitations; revoke some or let them expire' },
  { code: 'invalid_within', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'a funnel window (`within`) that is not a whole number of days from 1 to 90' },
  { code: 'invalid_threshold', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'a sharing threshold that is not 2 to 100 devices per user' },
  { code: 'invalid_form', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'a dashboard form that is too large or malformed' },
  { code: 'not_confirmed', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'a console action posted without its confirmation step' },
  { code: 'invalid_search', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'a console search that is empty, longer than 255 characters or holds control characters' },
  { code: 'unknown_action', sqlstate: null, class: 'NotFoundError', area: 'dashboard', meaning: 'a console action that does not exist (see [docs/dashboard.md](docs/dashboard.md#act))' },
  { code: 'action_unavailable', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'a console action whose option is not given (re-sync from Stripe without `reconcileStripe`)' },
  { code: 'invalid_actor', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'the `actor` of a console action is not 1 to 255 characters without control characters' },
  { code: 'invalid_extension', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'a trial extension that is not 1 to 366 days' },
  { code: 'not_extendable', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'extend a trial on a user without a plan granted until a date (a Stripe trial is extended in Stripe)' },
  { code: 'invalid_license_id', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'a license id that is not a uuid' },
  { code: 'device_not_found', sqlstate: null, class: 'NotFoundError', area: 'dashboard', meaning: 'the license is not activated on that device' },
  { code: 'invalid_period', sqlstate: null, class: 'ValidationError', area: 'dashboard', meaning: 'churn and conversion over time (`/series`) by a period that is not `day`, `week` or `month` (see [docs/dashboard.md](docs/dashboard.md#churn-and-conversion-over-time))' },
  { code: 'invalid_export', sqlstate: null, class: 'NotFoundError', area: 'dashboard', meaning: 'a CSV export of a table the console does not have' },
  { code: 'invalid_days', sqlstate: 'PA070', class: 'ValidationError', area: 'growth', meaning: 'a report range that is not 1 to 366 days' },
  { code: 'invalid_batch_size', sqlstate: 'PA072', class: 'ValidationError', area: 'growth', meaning: 'a purge batch size that is not 1 to 100000' },
  { code: 'invalid_max_batches', sqlstate: null, class: 'ValidationError', area: 'growth', meaning: 'a purge batch count that is not a positive integer' },
  { code: 'invalid_pause', sqlstate: null, class: 'ValidationError', area: 'growth', meaning: 'a pause between purge batches out of range' },
  { code: 'invalid_limit', sqlstate: null, class: 'ValidationError', area: 'growth', meaning: 'a row limit (`usage` report, dashboard lists) out of range' },
  { code: 'invalid_input', sqlstate: null, class: 'ValidationError', area: 'database', meaning: 'SQLSTATE class 22 (NUL bytes, malformed uuid or date, out-of-range number): the database refused a value; the message is PostgreSQL\'s' },
  { code: 'check_violation', sqlstate: null, class: 'ValidationError', area: 'database', meaning: 'SQLSTATE 23514: a value a table\'s check refused' },
  { code: 'unique_violation', sqlstate: null, class: 'ValidationError', area: 'database', meaning: 'SQLSTATE 23505: a value that must be unique already exists' },
  { code: 'foreign_key_violation', sqlstate: null, class: 'NotFoundError', area: 'database', meaning: 'SQLSTATE 23503: a referenced row is missing' },
  { code: 'connection_lost', sqlstate: null, class: 'DatabaseError', area: 'database', retryable: true, meaning: '**retryable** (`error.retryable` is true): the connection broke during the call (the server ended the session: restart, failover, `pg_terminate_backend`; or the network dropped it) or while opening one; it was discarded and the pool goes on. The call may or may not have taken effect: retry it (a consume with the same idempotency key is counted once)' },
  { code: 'database_error', sqlstate: null, class: 'DatabaseError', area: 'database', meaning: 'anything else from the server (a timeout, a lock not granted); the message is PostgreSQL\'s' },
  { code: 'invalid_json', sqlstate: null, class: 'ValidationError', area: 'server', meaning: 'a request body that is not a JSON object (malformed, or another JSON value); answered 400 (see [docs/server.md](docs/server.md#errors))' },
  { code: 'body_too_large', sqlstate: null, class: 'ValidationError', area: 'server', meaning: 'a request body over the route\'s byte cap (16 KiB for plugin routes, 1 MiB for webhooks by default); answered 413, read no further' },
  { code: 'unsupported_media_type', sqlstate: null, class: 'ValidationError', area: 'server', meaning: 'a JSON route called without `content-type: application/json`; answered 415' },
  { code: 'cross_site_request', sqlstate: null, class: 'AuthError', area: 'server', meaning: 'the website route called from another origin (`Origin` not the website\'s, or `Sec-Fetch-Site` not `same-origin`); answered 403' },
  { code: 'server_config_invalid', sqlstate: null, class: 'SetupError', area: 'server', meaning: 'bad `createPluginServer` options (basePath, meter, website.origin, stripe.webhookSecret, limits), at creation' },
  { code: 'not_signed_in', sqlstate: null, class: 'AuthError', area: 'server', meaning: 'the website route called with no user signed in on the website (`website.userId` returned null); answered 401' },
  { code: 'server_env_invalid', sqlstate: null, class: 'SetupError', area: 'cli', meaning: '`serve`: a missing or malformed environment variable (each one named, never its value; exit code 2; see [docs/deploy.md](docs/deploy.md))' },
  { code: 'not_set_up', sqlstate: null, class: 'SetupError', area: 'cli', meaning: 'the database has no schema yet: run `setup` (see [docs/cli.md](docs/cli.md#error-codes))' },
  { code: 'needs_database_url', sqlstate: null, class: 'ValidationError', area: 'cli', meaning: 'a command that needs SQL access given only the Supabase REST pair' },
  { code: 'supabase_failed', sqlstate: null, class: 'SetupError', area: 'cli', meaning: 'Supabase\'s REST API refused a call; the message is its answer' },
] as const satisfies readonly ErrorInfo[];

/** Every stable code the library reports. */
export type ErrorCode = (typeof ERRORS)[number]['code'];

const RETRYABLE = new Set<string>(ERRORS.filter((e: ErrorInfo) => e.retryable).map((e) => e.code));

const CLASSES: Record<ErrorClassName, new (code: ErrorCode, message: string, o?: { cause?: unknown }) => PluginAuthError> = {
  ValidationError, NotFoundError, AuthError, SetupError, DatabaseError, ServiceError,
};
const BY_SQLSTATE = new Map<string, ErrorInfo>(ERRORS.filter((e) => e.sqlstate).map((e) => [e.sqlstate!, e]));

interface PgLikeError {
  code?: unknown;
  message?: unknown;
}

/** The SQLSTATE of a driver error (pg and PGlite both expose it as `code`). */
export function sqlState(error: unknown): string | undefined {
  // A translated error keeps the driver's error as its cause.
  if (error instanceof PluginAuthError) return sqlState(error.cause);
  const code = (error as PgLikeError | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Turns a driver error into a typed error. Errors raised by our SQL functions keep their stable
 * code; anything else becomes a DatabaseError coded by SQLSTATE class, with the server's message
 * (server messages never contain our parameters' values: we never interpolate them).
 */
export function fromDatabaseError(error: unknown): PluginAuthError {
  if (error instanceof PluginAuthError) return error;
  const state = sqlState(error);
  const message = String((error as PgLikeError | null)?.message ?? error);
  const ours = state ? BY_SQLSTATE.get(state) : undefined;
  if (ours) return new CLASSES[ours.class](ours.code as ErrorCode, message, { cause: error });
  if (state === '23503') return new NotFoundError('foreign_key_violation', message, { cause: error });
  if (state === '23514') return new ValidationError('check_violation', message, { cause: error });
  // Class 22 (data exception: malformed uuid/date/number/json text, NUL in text, values out of
  // range) is always the caller's input, never the database's fault.
  if (state?.startsWith('22')) return new ValidationError('invalid_input', message, { cause: error });
  if (state === '23505') return new ValidationError('unique_violation', message, { cause: error });
  return new DatabaseError('database_error', message, { cause: error });
}
