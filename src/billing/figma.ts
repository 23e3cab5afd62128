// Figma's own checkout as a plan source. Figma sends no payment webhooks: the Payments REST API
// (GET /v1/payments?plugin_payment_token=…, the plugin owner's personal access token in
// X-Figma-Token) is the only server-side truth, and its user_id is the only Figma identity a
// backend can trust (figma.currentUser.id is the plugin's claim). What Figma said is stored
// (sql/015); consume_usage reads that and never calls Figma. An answer counts only when its
// resource_id is this plugin's (figma.pluginId, required): a payment token minted for another
// plugin proves nothing about this one.
//
// Sign-in is unauthenticated, so a check must not be a lever on the database or on the owner's
// rate limit: no connection and no lock is held while Figma is asked (the stored answer is read in
// one statement, Figma is called, the answer is stored in one statement); concurrent checks of one
// token in this process share one call (single flight, keyed by the token's SHA-256 digest); and
// a token Figma refused is refused from memory for refusalCacheSeconds (digests only, bounded in
// number) without asking again.
import { withTypedErrors, type Database, type Queryable } from '../core/queryable.ts';
import { AuthError, PluginAuthError, ServiceError, SetupError, ValidationError, sqlState } from '../core/errors.ts';
import { sha256Hex } from '../tokens/signer.ts';
import * as validate from '../core/validation.ts';
import type { IssuedToken } from '../tokens/tokens.ts';

export const DEFAULT_FIGMA_API_BASE_URL = 'https://api.figma.com';
export const DEFAULT_FIGMA_CACHE_SECONDS = 300;
export const DEFAULT_FIGMA_GRACE_SECONDS = 24 * 3600;
export const DEFAULT_FIGMA_TIMEOUT_MS = 5000;
/** Payment tokens Figma issues are far shorter; anything longer is refused before any call. */
export const MAX_PAYMENT_TOKEN_LENGTH = 4096;
export const DEFAULT_FIGMA_REFUSAL_CACHE_SECONDS = 600;
/** Refused token digests remembered at most by default (oldest forgotten first): memory stays bounded under a flood. */
export const DEFAULT_FIGMA_REFUSAL_CACHE_SIZE = 10_000;
const MAX_ANSWER_BYTES = 64 * 1024;
// Printable ASCII without spaces: what a token sent in a query string can be.
const TOKEN_SHAPE = /^[\x21-\x7e]+$/;
const FIGMA_ID = /^[A-Za-z0-9_.:-]{1,255}$/;

export interface FigmaOptions {
  /** The plugin owner's personal access token (X-Figma-Token). OAuth tokens are not accepted by this endpoint. */
  personalAccessToken: string;
  /** Default https://api.figma.com; tests point it at a local stand-in. */
  apiBaseUrl?: string;
  /** A stored answer younger than this is used without calling Figma (default 300 s). 0: always call. */
  cacheSeconds?: number;
  /**
   * How long a stored answer stays good (default 24 h): on 429 or 5xx a check falls back to it for
   * this long, and a PAID or TRIAL answer grants its plan for this long after it was checked.
   */
  graceSeconds?: number;
  /** Per call to Figma (default 5000 ms); past it the call counts as unavailable. */
  timeoutMs?: number;
  /**
   * Your plugin's id (manifest `id`, e.g. from FIGMA_PLUGIN_ID). Required: an answer whose
   * resource_id is missing or another plugin's is refused (payment_token_wrong_plugin).
   */
  pluginId: string;
  /**
   * A payment token Figma refused (400/404, another plugin's) is refused again from memory for this
   * long, without a call (default 600 s; 0: never remembered). Only its SHA-256 digest is kept.
   */
  refusalCacheSeconds?: number;
  /** How many refused digests are remembered at most (default 10,000, about 1 MB); the oldest go first. */
  refusalCacheSize?: number;
  /**
   * Creates the user for a Figma user signing in for the first time, inside the sign-in
   * transaction (queries on `tx`), and returns its users.id. Needed when your users table has
   * required columns beyond email; the default inserts (email 'figma-<id>@users.figma.invalid',
   * figma_user_id where that column exists).
   */
  createUser?: (tx: Queryable, identity: { figmaUserId: string }) => Promise<string>;
}

/** What Figma says about the user of a payment token, as stored. */
export interface FigmaPayment {
  /** Attested by Figma. */
  figmaUserId: string;
  /** The user it is linked to (signIn or link), or null. */
  userId: string | null;
  /** PAID and TRIAL grant their linked plans; UNPAID and UNKNOWN (anything else Figma said) grant nothing. */
  status: 'PAID' | 'TRIAL' | 'UNPAID' | 'UNKNOWN';
  /** Figma's own status word when it was not one of the known three (else null). */
  figmaStatus: string | null;
  /** Kept by Figma after refunds: not proof of access. */
  dateOfPurchase: Date | null;
  checkedAt: Date;
  /** Until when this answer grants its plan (checkedAt + graceSeconds). */
  grantUntil: Date;
  /** When this Figma user was first verified: the start of a FIRST_USE trial. */
  firstSeenAt: Date;
  /**
   * 'figma': Figma was called now (by this check, or by a concurrent check of the same token it
   * joined); 'cache': within cacheSeconds; 'grace': Figma failed and the stored answer was used.
   */
  answeredBy: 'figma' | 'cache' | 'grace';
}

export interface FigmaSignIn extends IssuedToken {
  userId: string;
  figmaUserId: string;
  /** The effective plan of the user right after sign-in. */
  planSlug: string;
}

interface FigmaUserRow {
  figma_user_id: string;
  user_id: string | null;
  payment_status: FigmaPayment['status'];
  figma_payment_status: string | null;
  date_of_purchase: Date | null;
  checked_at: Date;
  grant_until: Date;
  first_seen_at: Date;
}

interface CachedRow extends FigmaUserRow {
  token_fresh: boolean;
  answer_in_grace: boolean;
}

const toPayment = (row: FigmaUserRow, answeredBy: FigmaPayment['answeredBy']): FigmaPayment => ({
  figmaUserId: row.figma_user_id,
  userId: row.user_id,
  status: row.payment_status,
  figmaStatus: row.figma_payment_status,
  dateOfPurchase: row.date_of_purchase,
  checkedAt: row.checked_at,
  grantUntil: row.grant_until,
  firstSeenAt: row.first_seen_at,
  answeredBy,
});

const unavailable = (why: string) =>
  new ServiceError('figma_unavailable', `figma_unavailable: ${why}; no stored answer for this payment token is recent enough to use instead`);

/** The plugin's payment token, checked before anything is sent or written. Never echoed. */
function checkPaymentToken(token: unknown): string {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_PAYMENT_TOKEN_LENGTH || !TOKEN_SHAPE.test(token)) {
    throw new ValidationError(
      'invalid_payment_token',
      `invalid_payment_token: pass the string from figma.payments.getPluginPaymentTokenAsync() (1 to ${MAX_PAYMENT_TOKEN_LENGTH} printable characters, no spaces)`,
    );
  }
  return token;
}

/** A whole-number option from 0 to max (seconds, milliseconds or a count). */
function seconds(value: unknown, name: string, fallback: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > max) {
    throw new SetupError('figma_config_invalid', `figma_config_invalid: figma.${name} must be a whole number from 0 to ${max}`);
  }
  return v as number;
}

/** Figma's answer to one call, parsed; failures are typed errors. */
interface FigmaAnswer {
  figmaUserId: string;
  status: string;
  dateOfPurchase: Date | null;
  resourceId: string | null;
  resourceType: string | null;
}

export function resolveFigmaOptions(options: FigmaOptions) {
  if (typeof options !== 'object' || options === null) {
    throw new SetupError('figma_config_invalid', 'figma_config_invalid: figma must be { personalAccessToken, pluginId, apiBaseUrl?, cacheSeconds?, graceSeconds?, timeoutMs?, refusalCacheSeconds? }');
  }
  const pat = options.personalAccessToken;
  if (typeof pat !== 'string' || pat.length < 8 || pat.length > 1024 || !TOKEN_SHAPE.test(pat)) {
    throw new SetupError('figma_token_missing', 'figma_token_missing: figma.personalAccessToken must be the plugin owner\'s personal access token (e.g. from FIGMA_PERSONAL_ACCESS_TOKEN)');
  }
  let base: URL;
  try {
    base = new URL(options.apiBaseUrl ?? DEFAULT_FIGMA_API_BASE_URL);
    if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new Error('protocol');
  } catch {
    throw new SetupError('figma_config_invalid', 'figma_config_invalid: figma.apiBaseUrl must be an http(s) URL');
  }
  if (options.pluginId === undefined || options.pluginId === null || options.pluginId === '') {
    throw new SetupError(
      'figma_plugin_id_missing',
      'figma_plugin_id_missing: figma.pluginId is required: the id from your plugin\'s manifest.json (e.g. from FIGMA_PLUGIN_ID); without it a payment token of any other plugin would be accepted',
    );
  }
  if (typeof options.pluginId !== 'string' || !FIGMA_ID.test(options.pluginId)) {
    throw new SetupError('figma_config_invalid', 'figma_config_invalid: figma.pluginId must be the id from your manifest');
  }
  if (options.createUser !== undefined && typeof options.createUser !== 'function') {
    throw new SetupError('figma_config_invalid', 'figma_config_invalid: figma.createUser must be a function (tx, { figmaUserId }) => userId');
  }
  return {
    pat,
    base,
    cacheSeconds: seconds(options.cacheSeconds, 'cacheSeconds', DEFAULT_FIGMA_CACHE_SECONDS, 7 * 24 * 3600),
    graceSeconds: seconds(options.graceSeconds, 'graceSeconds', DEFAULT_FIGMA_GRACE_SECONDS, 90 * 24 * 3600),
    timeoutMs: seconds(options.timeoutMs, 'timeoutMs', DEFAULT_FIGMA_TIMEOUT_MS, 120_000) || DEFAULT_FIGMA_TIMEOUT_MS,
    refusalCacheSeconds: seconds(options.refusalCacheSeconds, 'refusalCacheSeconds', DEFAULT_FIGMA_REFUSAL_CACHE_SECONDS, 24 * 3600),
    refusalCacheSize: seconds(options.refusalCacheSize, 'refusalCacheSize', DEFAULT_FIGMA_REFUSAL_CACHE_SIZE, 1_000_000),
    pluginId: options.pluginId,
    createUser: options.createUser,
  };
}
type Resolved = ReturnType<typeof resolveFigmaOptions>;

/** One call of GET /v1/payments. Nothing of either token reaches an error. */
async function callPaymentsApi(config: Resolved, paymentToken: string): Promise<FigmaAnswer> {
  const url = new URL('/v1/payments', config.base);
  url.searchParams.set('plugin_payment_token', paymentToken);
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      headers: { 'X-Figma-Token': config.pat, accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(config.timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    // No cause attached: a fetch error may quote the request.
    const name = (error as Error)?.name;
    throw unavailable(name === 'TimeoutError' || name === 'AbortError'
      ? `the Payments API did not answer within ${config.timeoutMs} ms`
      : 'the Payments API could not be reached');
  }
  const code = response.status;
  if (code === 401 || code === 403) {
    throw new ServiceError(
      'figma_token_invalid',
      `figma_token_invalid: Figma refused the personal access token (HTTP ${code}): it is wrong, revoked or expired (they last at most 90 days). Create a new one for the plugin's owner and set it in figma.personalAccessToken`,
    );
  }
  if (code === 400 || code === 404) {
    throw new AuthError('payment_token_rejected', `payment_token_rejected: Figma refused the payment token (HTTP ${code}); the plugin should get a new one with figma.payments.getPluginPaymentTokenAsync()`);
  }
  if (code !== 200) throw unavailable(`the Payments API answered HTTP ${code}`);
  if (text.length > MAX_ANSWER_BYTES) throw unavailable('the Payments API answer is too large');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw unavailable('the Payments API answer is not JSON');
  }
  const meta = (body as { meta?: Record<string, unknown> } | null)?.meta;
  const payment = meta?.payment_status as { type?: unknown; status?: unknown } | undefined;
  // The OpenAPI spec names the field `type`, the HTML documentation `status`: accept both.
  const status = typeof payment?.type === 'string' ? payment.type : payment?.status;
  const userId = meta?.user_id;
  if (typeof userId !== 'string' || !FIGMA_ID.test(userId) || typeof status !== 'string') {
    throw unavailable('the Payments API answer has no user_id and payment_status');
  }
  // Missing counts as different: an answer that names no resource proves nothing about this plugin.
  const resourceId = typeof meta?.resource_id === 'string' ? meta.resource_id : null;
  if (resourceId !== config.pluginId) {
    throw new AuthError(
      'payment_token_wrong_plugin',
      `payment_token_wrong_plugin: Figma's answer is ${resourceId === null ? 'about no plugin' : 'about another plugin or widget'}, not figma.pluginId; the payment token must come from this plugin's figma.payments.getPluginPaymentTokenAsync()`,
    );
  }
  const purchased = typeof meta?.date_of_purchase === 'string' ? new Date(meta.date_of_purchase) : null;
  return {
    figmaUserId: userId,
    // A status that is not a plain word is stored as UNKNOWN, like any value we do not know.
    status: /^[A-Za-z0-9_]{1,64}$/.test(status) ? status : 'UNRECOGNIZED',
    dateOfPurchase: purchased && !Number.isNaN(purchased.getTime()) ? purchased : null,
    resourceId: resourceId && resourceId.length <= 255 ? resourceId : null,
    resourceType: typeof meta?.resource_type === 'string' ? meta.resource_type : null,
  };
}

const CACHED_SQL = `
  SELECT f.*,
         c.checked_at > pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $2::integer) AS token_fresh,
         f.checked_at > pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $3::integer) AS answer_in_grace
    FROM public.figma_payment_checks c
    JOIN public.figma_users f ON f.figma_user_id = c.figma_user_id
   WHERE c.token_hash = $1::text`;

export function createFigma(
  db: Database,
  options: FigmaOptions,
  deps: {
    issueToken(userId: string, options: { deviceName?: string | null; deviceId?: string | null }): Promise<IssuedToken>;
    planSlug(userId: string): Promise<string>;
  },
) {
  db = withTypedErrors(db);
  const config = resolveFigmaOptions(options);

  // Refusals by token digest: digest -> [when it is forgotten (ms), the refusal's code]. A Map keeps
  // insertion order, so the first entry is the oldest: past MAX_REMEMBERED_REFUSALS it goes first.
  const refusals = new Map<string, { until: number; code: 'payment_token_rejected' | 'payment_token_wrong_plugin'; message: string }>();
  // Checks in flight, by digest: a concurrent check of the same token waits for the same answer.
  const flights = new Map<string, Promise<FigmaPayment>>();

  function rememberRefusal(digest: string, error: AuthError): void {
    if (config.refusalCacheSeconds === 0 || config.refusalCacheSize === 0) return;
    refusals.delete(digest);
    refusals.set(digest, { until: Date.now() + config.refusalCacheSeconds * 1000, code: error.code as 'payment_token_rejected', message: error.message });
    while (refusals.size > config.refusalCacheSize) refusals.delete(refusals.keys().next().value!);
  }

  function rememberedRefusal(digest: string): AuthError | null {
    const entry = refusals.get(digest);
    if (!entry) return null;
    if (entry.until <= Date.now()) {
      refusals.delete(digest);
      return null;
    }
    return new AuthError(entry.code, entry.message);
  }

  /** One check: no connection or lock is held while Figma is asked. */
  async function check(token: string, digest: string): Promise<FigmaPayment> {
    const cached = (await db.query<CachedRow>(CACHED_SQL, [digest, config.cacheSeconds, config.graceSeconds]))[0];
    if (cached?.token_fresh && config.cacheSeconds > 0) return toPayment(cached, 'cache');
    let answer: FigmaAnswer;
    try {
      answer = await callPaymentsApi(config, token);
    } catch (error) {
      if (error instanceof AuthError) rememberRefusal(digest, error);
      if (error instanceof ServiceError && error.code === 'figma_unavailable' && cached?.answer_in_grace) {
        return toPayment(cached, 'grace');
      }
      if (error instanceof PluginAuthError && error.code === 'figma_token_invalid') {
        // `status` and `verify` warn about the token from now on.
        const status = /HTTP (\d{3})/.exec(error.message)?.[1];
        await db.query('SELECT public.figma_record_api_result($1::integer)', [Number(status)]).catch(() => {});
      }
      throw error;
    }
    // One statement, its own short transaction: the upserts in figma_record_check are safe to race.
    const rows = await db.query<FigmaUserRow>(
      `SELECT * FROM public.figma_record_check($1::text, $2::varchar, $3::varchar, $4::timestamptz, $5::varchar, $6::varchar, $7::integer)`,
      [digest, answer.figmaUserId, answer.status, answer.dateOfPurchase, answer.resourceId, answer.resourceType, config.graceSeconds],
    );
    return toPayment(rows[0]!, 'figma');
  }

  async function verify(paymentToken: unknown): Promise<FigmaPayment> {
    const token = checkPaymentToken(paymentToken);
    const digest = await sha256Hex(token);
    const refused = rememberedRefusal(digest);
    if (refused) throw refused;
    const running = flights.get(digest);
    if (running) return running;
    const flight = check(token, digest).finally(() => flights.delete(digest));
    flights.set(digest, flight);
    return flight;
  }

  return {
    /**
     * What Figma says about the user of this payment token (from figma.payments
     * .getPluginPaymentTokenAsync() in the plugin), stored. Within cacheSeconds of the last check
     * of this token the stored answer is returned without calling Figma; concurrent checks of one
     * token in this process make one call; a refused token is refused from memory for
     * refusalCacheSeconds. Errors: invalid_payment_token, payment_token_rejected (get a new
     * token), payment_token_wrong_plugin (another plugin's token), figma_token_invalid (the
     * personal access token), figma_unavailable (429, 5xx, timeout, with no stored answer within
     * graceSeconds).
     */
    verifyPaymentToken: verify,

    /**
     * Signs in with Figma alone: verifies the payment token, finds or creates the one user of that
     * verified Figma user id, and issues a plugin token. Concurrent first sign-ins of one Figma
     * user create exactly one user. Figma is asked before any transaction opens. Errors: those of
     * verifyPaymentToken (payment_token_wrong_plugin among them), invalid_device_name,
     * figma_create_user_failed (pass figma.createUser), and the token configuration's.
     */
    async signIn(paymentToken: string, { deviceName, deviceId }: { deviceName?: string | null; deviceId?: string | null } = {}): Promise<FigmaSignIn> {
      const device = validate.deviceName(deviceName);
      const keep = validate.deviceId(deviceId, false);
      checkPaymentToken(paymentToken);
      const payment = await verify(paymentToken);
      const figmaUserId = payment.figmaUserId;
      const userId = await db.transaction(async (tx) => {
        const found = await tx.query<{ id: string | null }>('SELECT public.figma_user_for_sign_in($1::varchar) AS id', [figmaUserId]);
        if (found[0]?.id) return found[0].id;
        let created: string;
        try {
          created = config.createUser
            ? await config.createUser(tx, { figmaUserId })
            : (await tx.query<{ id: string }>('SELECT public.figma_create_user($1::varchar) AS id', [figmaUserId]))[0]!.id;
        } catch (error) {
          // The host's own typed errors pass through; a database error (a required column) is ours to explain.
          if (error instanceof PluginAuthError && sqlState(error) === undefined) throw error;
          throw new SetupError(
            'figma_create_user_failed',
            `figma_create_user_failed: creating the user for a new Figma sign-in failed (${(error as Error)?.message ?? 'unknown error'}); if your users table has required columns, pass figma.createUser`,
            { cause: error },
          );
        }
        if (!validate.isUuid(created)) {
          throw new SetupError('figma_create_user_failed', 'figma_create_user_failed: figma.createUser must return the new users.id (a uuid)');
        }
        await tx.query('SELECT public.figma_link_user($1::varchar, $2::uuid)', [figmaUserId, created]);
        return created;
      });
      const issued = await deps.issueToken(userId, { deviceName: device, deviceId: keep });
      return { ...issued, userId, figmaUserId, planSlug: await deps.planSlug(userId) };
    },

    /**
     * Links the Figma account of this payment token to an existing user (e.g. after the website
     * login hand-over, when the plugin also sends its payment token). Idempotent. Errors: those of
     * verifyPaymentToken, invalid_user_id, unknown_user, figma_user_linked (the Figma account, or
     * the user, is already linked elsewhere).
     */
    async link(userId: string, paymentToken: string): Promise<FigmaPayment> {
      validate.userId(userId);
      checkPaymentToken(paymentToken);
      const payment = await verify(paymentToken);
      await db.transaction((tx) => tx.query('SELECT public.figma_link_user($1::varchar, $2::uuid)', [payment.figmaUserId, userId]));
      return { ...payment, userId };
    },
  };
}

export type Figma = ReturnType<typeof createFigma>;
