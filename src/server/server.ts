// createPluginServer: the plugin backend's routes as one web-standard handler (Request → Response).
// Each feature's routes exist only when it is configured; every answer carries an x-request-id;
// errors are answered by the one status table (core/http-status.ts) and logged as one line
// without bodies, tokens or keys. Edge-safe: Web Crypto and web streams only, and the library is
// reached through the PluginAuth object passed in (nothing here imports the database layer).
import { AuthError, PluginAuthError, SetupError, ValidationError } from '../core/errors.ts';
import { httpStatusOf } from '../core/http-status.ts';
import { PLUGIN_ALLOW_HEADERS } from '../http/cors.ts';
import { bodylessJsonResponse, jsonBytes, withJsonBody } from '../http/json-bytes.ts';
import { directHandlers, directRequests } from '../http/direct.ts';
import type { PluginAuth } from '../auth.ts';
import { cancelBody, DEFAULT_LIMITS, readBody, readJsonObject, readOptionalJsonObject, requireJson } from './body.ts';
import { confirmationCode } from './login-page.ts';
import { createFigmaOAuth, figmaErrorPage, type FigmaOAuthOptions } from './figma-oauth.ts';
import { DEFAULT_STRIPE_TOLERANCE_SECONDS, verifyStripeSignature } from './stripe.ts';
import { addLeaseRoutes } from './leases.ts';
import { addBillingRoutes, type BillingRouteOptions } from './billing.ts';
import { addTeamRoutes, type TeamRoutesOptions } from './teams.ts';

/** The parts of createPluginAuth's object the server calls. */
export type ServerAuth = Pick<PluginAuth, 'tokens' | 'usage' | 'entitlements' | 'figma' | 'figmaIdentity' | 'licenses' | 'leases' | 'subscriptions' | 'teams' | 'configured'> &
  Partial<Pick<PluginAuth, 'events'>>;

export interface MeteredRoute {
  /** The usage action counted (e.g. 'resize'). */
  action: string;
  /** How many items the call consumes, read from the JSON body (default 1). A throw is invalid_items. */
  items?: (body: Record<string, unknown>) => unknown;
}

export interface WebsiteOptions {
  /** Your website's origin, e.g. https://app.example.com: the only origin the login confirmation is accepted from. */
  origin: string;
  /** Who is signed in on your website for this request (your session cookie); null when nobody is. */
  userId: (request: Request) => Promise<string | null> | string | null;
  /** The login page (default `${origin}/plugin-login`); the write key is appended as its fragment. */
  loginUrl?: string;
}

export interface LogEntry {
  requestId: string;
  method: string;
  /** The route's path (under basePath), or '(unknown)'. */
  route: string;
  status: number;
  /** The error's class name, e.g. ValidationError, or TypeError for an unexpected throw. */
  error: string;
  /** The stable code answered, e.g. invalid_json. */
  code: string;
}

export interface PluginServerOptions {
  /** Prefix of every route, e.g. '/api' (default none). */
  basePath?: string;
  /** Metered routes: path → the action counted and how to read items from the body. POST, bearer token, Idempotency-Key header. */
  meter?: Record<string, MeteredRoute>;
  /** The website half of the login hand-over. Without it there are no login routes. */
  website?: WebsiteOptions;
  /** The Stripe webhook (POST /webhooks/stripe): the endpoint's signing secret, whsec_…. */
  stripe?: { webhookSecret: string; toleranceSeconds?: number };
  /** Byte caps on request bodies (default json 16 KiB, webhook 1 MiB). */
  limits?: { json?: number; webhook?: number };
  /** One call per failed request (status ≥ 400). Default: one line on console.error. */
  log?: (entry: LogEntry) => void;
  /** Sign in with Figma (OAuth 2, authorization code + PKCE, GET /v1/me): docs/sign-in.md. */
  figmaOAuth?: FigmaOAuthOptions;
  /** Stripe Checkout and the customer portal for the signed-in user (POST /plugin/billing/checkout, /plugin/billing/portal); needs createPluginAuth's `stripe`. */
  billing?: BillingRouteOptions;
  /** Teams that manage themselves (/plugin/team/…, and POST /team/claim with `website`): docs/licenses.md#teams. */
  teams?: TeamRoutesOptions;
}

type Route = {
  /** Opened to the plugin UI (CORS for the "null" origin). */
  plugin: boolean;
  /** A browser page: errors are answered as a small HTML page, not JSON. */
  page?: boolean;
  handle: (request: Request, id: string) => Promise<Response>;
};

const encoder = new TextEncoder();
/**
 * A JSON answer, with its length: an adapter can write it in one piece instead of chunk by chunk.
 * Made without its body stream; the handler gives it one on the way out unless the request came
 * from the Node adapter serving this handler directly, which writes the bytes (http/direct.ts).
 */
const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body);
  if (text === undefined) throw new TypeError('json: the value has no JSON form');
  const bytes = encoder.encode(text);
  return bodylessJsonResponse(bytes, status, headers);
};
const decoder = new TextDecoder();
const defaultLog = (e: LogEntry) =>
  console.error(`figma-plugin-auth-db server: ${e.requestId} ${e.method} ${e.route} ${e.status} ${e.error} ${e.code}`);

export function createPluginServer(auth: ServerAuth, options: PluginServerOptions = {}): (request: Request) => Promise<Response> {
  if (!auth?.configured?.tokens) {
    throw new SetupError('token_secret_missing', 'token_secret_missing: the server needs plugin tokens: createPluginAuth(db, { tokenSecret })');
  }
  const basePath = normalizeBasePath(options.basePath);
  const figmaOAuth = options.figmaOAuth === undefined ? null : createFigmaOAuth(auth, options.figmaOAuth, basePath);
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new SetupError('server_config_invalid', `server_config_invalid: limits.${name} must be a positive whole number of bytes`);
  }
  const log = options.log ?? defaultLog;
  const routes = new Map<string, Map<string, Route>>(); // path → method → route
  const add = (method: string, path: string, route: Route) => {
    const byMethod = routes.get(path) ?? new Map<string, Route>();
    if (byMethod.has(method)) throw new SetupError('server_config_invalid', `server_config_invalid: two routes for ${method} ${path}`);
    routes.set(path, byMethod.set(method, route));
  };

  const bearer = async (request: Request) => {
    const header = request.headers.get('authorization') ?? '';
    const token = /^Bearer (\S{1,4096})$/.exec(header)?.[1] ?? '';
    return auth.tokens.verify(token);
  };
  // The device of a plugin session, in one place: what tokens.verify says about the token.
  // Keys and tokens from a body go to the library as they came: it checks their type and shape
  // (a non-string is the same refusal as a malformed string).
  const text = (value: unknown) => value as string;
  // Each webhook delivery is recorded for the console (auth.events): its outcome and reason
  // code, the event id the handler noted; never the body or a signature.
  const delivered = (provider: 'stripe' | 'lemonsqueezy' | 'gumroad', handle: (request: Request, note: { eventId?: unknown }) => Promise<Response>) =>
    async (request: Request): Promise<Response> => {
      const note: { eventId?: unknown } = {};
      try {
        const response = await handle(request, note);
        const bytes = jsonBytes.get(response);
        const answer = (bytes ? JSON.parse(decoder.decode(bytes)) : await withJsonBody(response).clone().json().catch(() => ({}))) as { ignored?: unknown; reason?: unknown };
        const reason = typeof answer.ignored === 'string' ? 'ignored' : typeof answer.reason === 'string' ? answer.reason : 'applied';
        const outcome = reason === 'duplicate' ? 'duplicate' : reason === 'ignored' ? 'ignored' : 'accepted';
        await auth.events?.webhookDelivery(provider, outcome, reason, typeof note.eventId === 'string' ? note.eventId : null);
        return response;
      } catch (error) {
        await auth.events?.webhookDelivery(provider, 'refused', error instanceof PluginAuthError ? error.code : 'internal_error', typeof note.eventId === 'string' ? note.eventId : null);
        throw error;
      }
    };

  // Login hand-over: the plugin begins and polls; the website's page, or Sign in with Figma, completes.
  if (options.website || figmaOAuth) {
    const website = options.website;
    const origin = website ? normalizeOrigin(website.origin) : null;
    const loginUrl = website ? website.loginUrl ?? `${origin}/plugin-login` : null;
    add('POST', '/plugin/login', {
      plugin: true,
      handle: async (request) => {
        // ?method=figma picks Sign in with Figma when the website login is configured too.
        const method = new URL(request.url).searchParams.get('method');
        if (method !== null && method !== 'figma' && method !== 'website') throw new ValidationError('invalid_login_method', 'invalid_login_method: method is figma or website');
        if ((method === 'figma' && !figmaOAuth) || (method === 'website' && !loginUrl)) throw new HttpOnly('not_found', 404);
        // Optional body { deviceId }: the id this install was given at its last sign-in, kept
        // when the user who completes the login has a session with it (else a new device).
        const { deviceId } = await readOptionalJsonObject(request, limits.json);
        const { readKey, writeKey, expiresAt } = await auth.tokens.beginLogin({ deviceName: 'Figma', deviceId: deviceId as string | undefined });
        // The write key travels in the URL fragment, which browsers never send to a server.
        const url = figmaOAuth && (method === 'figma' || !loginUrl) ? figmaOAuth.loginUrl(request, writeKey) : `${loginUrl}#${writeKey}`;
        return json({ readKey, loginUrl: url, code: await confirmationCode(writeKey), expiresAt });
      },
    });
    add('POST', '/plugin/login/poll', {
      plugin: true,
      handle: async (request) => {
        const { readKey } = await readJsonObject(request, limits.json);
        const session = await auth.tokens.pollLogin(text(readKey));
        return json(session ? { status: 'done', ...session } : { status: 'pending' });
      },
    });
  }
  if (figmaOAuth) {
    add('GET', '/plugin/login/figma', { plugin: false, page: true, handle: () => figmaOAuth.page() });
    add('POST', '/plugin/login/figma/start', { plugin: false, page: true, handle: (request) => figmaOAuth.start(request) });
    add('GET', '/plugin/login/figma/callback', { plugin: false, page: true, handle: (request) => figmaOAuth.callback(request) });
  }
  if (options.website) {
    const website = options.website;
    const origin = normalizeOrigin(website.origin);
    add('POST', '/plugin/login/complete', {
      plugin: false, // website-only: CORS is never opened for it
      handle: async (request) => {
        requireJson(request);
        refuseCrossSite(request, origin);
        const userId = await website.userId(request);
        if (!userId) throw new AuthError('not_signed_in', 'not_signed_in: nobody is signed in on the website');
        const { writeKey } = await readJsonObject(request, limits.json);
        await auth.tokens.completeLogin(text(writeKey), userId);
        return json({ ok: true });
      },
    });
  }

  // The calling session ends: its token is revoked.
  add('POST', '/plugin/sign-out', {
    plugin: true,
    handle: async (request) => {
      const session = await bearer(request);
      return json({ revoked: await auth.tokens.revoke(session.tokenId, 'signed_out') });
    },
  });

  if (auth.configured.entitlements) {
    add('GET', '/plugin/entitlements', { plugin: true, handle: async (request) => json(await auth.entitlements.snapshot((await bearer(request)).userId)) });
    add('GET', '/plugin/jwks', { plugin: true, handle: async () => json(await auth.entitlements.jwks()) });
  }

  if (auth.configured.figma) {
    add('POST', '/plugin/figma/sign-in', {
      plugin: true,
      handle: async (request) => {
        // deviceId: the id this install was given at its last sign-in (kept if it is this user's).
        const { paymentToken, deviceId } = await readJsonObject(request, limits.json);
        const signedIn = await auth.figma.signIn(text(paymentToken), { deviceName: 'Figma', deviceId: deviceId as string | undefined });
        const { token, tokenId, expiresAt, userId, figmaUserId, planSlug } = signedIn;
        return json({ token, tokenId, expiresAt, deviceId: signedIn.deviceId, userId, figmaUserId, planSlug });
      },
    });
  }

  if (auth.configured.lemonSqueezy || auth.configured.gumroad) {
    const license = async (request: Request, action: 'activate' | 'deactivate') => {
      const session = await bearer(request);
      const { provider, licenseKey } = await readJsonObject(request, limits.json);
      // The device is the session's: a server-minted id (device limits count ids, never names).
      const input = { provider: provider as 'lemonsqueezy' | 'gumroad', licenseKey: text(licenseKey), deviceId: session.deviceId, deviceName: session.deviceName };
      return json(action === 'activate' ? await auth.licenses.activate(session.userId, input) : await auth.licenses.deactivate(session.userId, input));
    };
    add('POST', '/plugin/license/activate', { plugin: true, handle: (request) => license(request, 'activate') });
    add('POST', '/plugin/license/deactivate', { plugin: true, handle: (request) => license(request, 'deactivate') });
  }
  // Device leases and offline leases (src/server/leases.ts).
  addLeaseRoutes({ auth, add, bearer });
  // The stores' webhooks get the raw bytes, exactly as received: the signature covers them.
  if (auth.configured.lemonSqueezy) {
    add('POST', '/webhooks/lemonsqueezy', {
      plugin: false,
      handle: delivered('lemonsqueezy', async (request) => json(await auth.licenses.handleWebhook('lemonsqueezy', await readBody(request, limits.webhook), request.headers))),
    });
  }
  if (auth.configured.gumroad) {
    add('POST', '/webhooks/gumroad', {
      plugin: false,
      handle: delivered('gumroad', async (request) => json(await auth.licenses.handleWebhook('gumroad', await readBody(request, limits.webhook), request.headers))),
    });
  }

  if (options.stripe) {
    const { webhookSecret, toleranceSeconds = DEFAULT_STRIPE_TOLERANCE_SECONDS } = options.stripe;
    if (typeof webhookSecret !== 'string' || !webhookSecret.startsWith('whsec_')) {
      throw new SetupError('server_config_invalid', 'server_config_invalid: stripe.webhookSecret must be the endpoint\'s signing secret (whsec_…)');
    }
    add('POST', '/webhooks/stripe', {
      plugin: false,
      handle: delivered('stripe', async (request, note) => {
        const body = await readBody(request, limits.webhook);
        await verifyStripeSignature(body, request.headers.get('stripe-signature'), webhookSecret, { toleranceSeconds });
        const event = parseEvent(body);
        note.eventId = (event as { id?: unknown }).id;
        if (!['customer.subscription.created', 'customer.subscription.updated', 'customer.subscription.deleted'].includes(event.type)) {
          // Acknowledged, or Stripe keeps retrying events this endpoint does not use.
          return json({ received: true, ignored: event.type });
        }
        // event.created orders deliveries: a late or repeated event changes nothing.
        const result = await auth.subscriptions.syncFromStripe(event.data.object as never, { eventCreated: event.created });
        return json({ received: true, ...result });
      }),
    });
  }

  if (options.billing) {
    addBillingRoutes(add, auth, options.billing, bearer, async (request) => readOptionalJsonObject(request, limits.json));
  }
  if (options.teams !== undefined) {
    const website = options.website ? { origin: normalizeOrigin(options.website.origin), userId: options.website.userId } : null;
    addTeamRoutes({ auth, add, bearer, readJson: (request) => readJsonObject(request, limits.json), website, requireJson, refuseCrossSite }, options.teams);
  }

  for (const [path, metered] of Object.entries(options.meter ?? {})) {
    if (!/^\/[A-Za-z0-9._~\/-]*$/.test(path)) throw new SetupError('server_config_invalid', `server_config_invalid: meter path "${path}" must start with / and hold only URL path characters`);
    if (typeof metered?.action !== 'string') throw new SetupError('server_config_invalid', `server_config_invalid: meter["${path}"].action must be a string`);
    add('POST', path, {
      plugin: true,
      handle: async (request) => {
        const session = await bearer(request);
        const body = await readJsonObject(request, limits.json);
        let items: unknown = 1;
        if (metered.items) {
          try {
            items = metered.items(body);
          } catch {
            throw new ValidationError('invalid_items', 'invalid_items: the body does not say how many items');
          }
        }
        const idempotencyKey = request.headers.get('idempotency-key') ?? undefined;
        const answer = await auth.usage.consume(session.userId, metered.action, { items: items as number, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) });
        // 402: the plugin shows the upgrade screen, with answer.reason, remaining and resetsAt.
        return json(answer, answer.allowed ? 200 : 402);
      },
    });
  }

  // Paths with a route opened to the plugin UI (CORS), worked out once.
  const pluginPaths = new Set([...routes].filter(([, byMethod]) => [...byMethod.values()].some((r) => r.plugin)).map(([path]) => path));

  const handle = async (request: Request): Promise<Response> => {
    const requestId = crypto.randomUUID();
    const pathname = new URL(request.url).pathname;
    const path = basePath && (pathname === basePath || pathname.startsWith(`${basePath}/`)) ? pathname.slice(basePath.length) || '/' : basePath ? null : pathname;
    const byMethod = path === null ? undefined : routes.get(path);
    const route = byMethod?.get(request.method);
    // Unknown paths under /plugin/ are opened too, so the plugin can read their 404.
    const isPlugin = byMethod ? pluginPaths.has(path!) : path !== null && path.startsWith('/plugin/');

    let response: Response;
    if (isPlugin && request.method === 'OPTIONS') {
      response = new Response(null, {
        status: 204,
        headers: {
          'access-control-allow-methods': byMethod ? [...byMethod.keys()].join(', ') : 'GET, POST',
          'access-control-allow-headers': PLUGIN_ALLOW_HEADERS.join(', '),
          'access-control-max-age': '600',
        },
      });
    } else {
      try {
        if (!byMethod) throw new HttpOnly('not_found', 404);
        if (!route) throw new HttpOnly('method_not_allowed', 405, { allow: [...byMethod.keys()].join(', ') });
        response = await route.handle(request, requestId);
      } catch (error) {
        const known = error instanceof PluginAuthError || error instanceof HttpOnly;
        const code = known ? error.code : 'internal_error';
        const status = error instanceof HttpOnly ? error.status : known ? httpStatusOf(error) : 500;
        log({ requestId, method: request.method, route: path !== null && byMethod ? path : '(unknown)', status, error: errorName(error), code });
        // Refused sign-ins and plugin sessions, by reason, for the console (never the token).
        if (path !== null && byMethod && (SIGN_IN_ROUTES.has(path) || (status === 401 && route?.plugin))) await auth.events?.signInRefused(path, code);
        // Unread body: stop it here (the Node adapter then closes the connection).
        await cancelBody(request);
        response = route?.page
          ? figmaErrorPage(status, code)
          : json(status >= 500 ? { error: code, requestId } : { error: code }, status, error instanceof HttpOnly ? error.headers : {});
      }
    }
    // A body-less JSON answer gets its body, unless the Node adapter writes its bytes (http/direct.ts).
    if (!directRequests.has(request)) response = withJsonBody(response);
    const decorate = (headers: Headers) => {
      headers.set('x-request-id', requestId);
      if (isPlugin) {
        headers.set('access-control-allow-origin', '*'); // bearer tokens, never cookies: no credentials mode
        headers.set('access-control-expose-headers', 'retry-after, x-request-id');
        headers.delete('access-control-allow-credentials');
      }
    };
    try {
      decorate(response.headers);
      return response;
    } catch {
      // Immutable headers (Response.redirect, a fetched Response): a copy.
      const headers = new Headers(response.headers);
      decorate(headers);
      return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
    }
  };
  directHandlers.add(handle);
  return handle;
}

/** The routes whose every refusal is a refused sign-in (a plugin route's 401 is one too: a refused session). */
const SIGN_IN_ROUTES = new Set(['/plugin/figma/sign-in', '/plugin/login/poll', '/plugin/login/complete', '/plugin/login/figma/callback', '/plugin/login/figma/start']);

/** A 404/405: answered with a code, not an error of the library. */
class HttpOnly extends Error {
  constructor(readonly code: string, readonly status: number, readonly headers: Record<string, string> = {}) {
    super(code);
    this.name = 'HttpError';
  }
}

/** The error's class name only: never its message (a parser's message quotes the body). */
const errorName = (error: unknown) => (error instanceof Error && /^[A-Za-z]{1,40}$/.test(error.name) ? error.name : typeof error);

/**
 * The website route takes requests from the website's own pages only: Origin equal to the
 * configured origin, or, with no Origin, Sec-Fetch-Site: same-origin. A cross-site form, a
 * no-cors fetch and a same-site page on a sibling host are refused before anything is read.
 */
function refuseCrossSite(request: Request, origin: string): void {
  const given = request.headers.get('origin');
  const site = request.headers.get('sec-fetch-site');
  const ok = given !== null ? given === origin && (site === null || site === 'same-origin') : site === 'same-origin';
  if (!ok) throw new AuthError('cross_site_request', 'cross_site_request: the login confirmation is accepted from the website\'s own pages only');
}

function parseEvent(body: Uint8Array): { type: string; created: number; data: { object: unknown } } {
  let event: unknown;
  try {
    event = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new ValidationError('invalid_json', 'invalid_json: the event is not valid JSON');
  }
  const e = event as { type?: unknown; created?: unknown; data?: { object?: unknown } } | null;
  if (typeof e !== 'object' || e === null || typeof e.type !== 'string' || typeof e.created !== 'number' || typeof e.data?.object !== 'object') {
    throw new ValidationError('invalid_json', 'invalid_json: not a Stripe event');
  }
  return e as { type: string; created: number; data: { object: unknown } };
}

function normalizeBasePath(basePath: string | undefined): string {
  if (basePath === undefined || basePath === '' || basePath === '/') return '';
  if (!/^\/[A-Za-z0-9._~\/-]*$/.test(basePath)) throw new SetupError('server_config_invalid', 'server_config_invalid: basePath must start with / (e.g. /api)');
  return basePath.replace(/\/+$/, '');
}

function normalizeOrigin(origin: string): string {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new SetupError('server_config_invalid', 'server_config_invalid: website.origin must be an origin such as https://app.example.com');
  }
  if (!['http:', 'https:'].includes(url.protocol) || url.origin !== origin.replace(/\/$/, '')) {
    throw new SetupError('server_config_invalid', 'server_config_invalid: website.origin must be an origin such as https://app.example.com (scheme, host and port only)');
  }
  return url.origin;
}
