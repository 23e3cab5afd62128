// Sign in with Figma: the OAuth 2 authorization code flow with PKCE (S256) against Figma's REST API,
// through oauth4webapi (Web Crypto and fetch only). Three browser routes under {basePath}:
//   GET  /plugin/login/figma           the page the plugin opens (write key in the fragment): shows
//                                      the confirmation code, and on "The codes match" posts the
//                                      write key to /start (same origin only);
//   POST /plugin/login/figma/start     makes state and the PKCE verifier, keeps them with the write key
//                                      in an encrypted cookie named after the state, redirects to Figma;
//   GET  /plugin/login/figma/callback  checks state against that cookie, exchanges the code (client
//                                      secret in a Basic header, the verifier), reads GET /v1/me, finds or
//                                      creates the user by the verified Figma id, completes the login.
// Why a cookie and not a table: it binds the flow to the browser that started it (a callback
// link sent to someone else fails: no cookie), it needs no state on the server, and the write key
// already binds it to the login request. It is AES-GCM encrypted under a key derived (HKDF) from
// the client secret, lives 10 minutes, is HttpOnly, SameSite=Lax (sent on Figma's top-level
// redirect back) and scoped to the callback's path. The access token is used for one /v1/me call
// and then dropped: never stored, logged or shown.
import type * as OAuth from 'oauth4webapi';
import { AuthError, NotFoundError, ServiceError, SetupError, ValidationError } from '../core/errors.ts';
import type { PluginAuth } from '../auth.ts';
import { CODE_ALPHABET, confirmationCode } from './login-page.ts';
import { mediaType, readBody } from './body.ts';

export interface FigmaOAuthOptions {
  /** The OAuth app's client id (FIGMA_CLIENT_ID). */
  clientId: string;
  /** The OAuth app's client secret (FIGMA_CLIENT_SECRET): server-side only. */
  clientSecret: string;
  /**
   * This server's public origin, e.g. https://api.example.com (default: the origin of the request).
   * The redirect URI registered with Figma is `${publicUrl}${basePath}/plugin/login/figma/callback`.
   */
  publicUrl?: string;
  /** Figma's authorization page host (FIGMA_OAUTH_BASE_URL), default https://www.figma.com. */
  oauthBaseUrl?: string;
  /** Figma's API host for the token endpoint and /v1/me (FIGMA_API_BASE_URL), default https://api.figma.com. */
  apiBaseUrl?: string;
  /** Milliseconds for each call to Figma (default 10000). */
  timeoutMs?: number;
  /**
   * How the client secret reaches the token endpoint: 'basic' (default: an `Authorization: Basic`
   * header, as Figma's current docs for api.figma.com/v1/oauth/token) or 'body' (client_id and
   * client_secret form fields, as older guides post them).
   */
  clientAuth?: 'basic' | 'body';
}

export const FIGMA_OAUTH_SCOPE = 'current_user:read';
const COOKIE_PREFIX = 'fpa_figma_';
const FLOW_SECONDS = 600;
const FIGMA_ID = /^[A-Za-z0-9_.:-]{1,255}$/;
const WRITE_KEY = /^[A-Za-z0-9_-]{43}$/;

type Auth = Pick<PluginAuth, 'tokens' | 'figmaIdentity'>;

// oauth4webapi is loaded on the first sign-in rather than with the server (BENCHMARKS.md, the
// cold starts): the routes that use it are async, and the options are checked without it.
type OAuthLib = typeof OAuth;
let oauthLib: Promise<OAuthLib> | undefined;
const loadOAuth = (): Promise<OAuthLib> => (oauthLib ??= import('oauth4webapi'));

const notConfigured = (why: string) => new SetupError('figma_oauth_not_configured', `figma_oauth_not_configured: ${why}`);

function httpBase(value: string | undefined, fallback: string, name: string): string {
  const raw = value ?? fallback;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw notConfigured(`${name} must be an http(s) URL`);
  }
  if (!['http:', 'https:'].includes(url.protocol) || url.search || url.hash) throw notConfigured(`${name} must be an http(s) URL`);
  return url.toString().replace(/\/+$/, '');
}

/** The three routes, as handlers the server mounts; `pagePath` is e.g. '/api/plugin/login/figma'. */
export function createFigmaOAuth(auth: Auth, options: FigmaOAuthOptions, basePath: string) {
  const { clientId, clientSecret } = options;
  if (typeof clientId !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(clientId)) throw notConfigured('figmaOAuth.clientId must be the OAuth app\'s client id');
  if (typeof clientSecret !== 'string' || !/^[\x21-\x7e]{8,500}$/.test(clientSecret)) throw notConfigured('figmaOAuth.clientSecret must be the OAuth app\'s client secret');
  const oauthBase = httpBase(options.oauthBaseUrl, 'https://www.figma.com', 'figmaOAuth.oauthBaseUrl');
  const apiBase = httpBase(options.apiBaseUrl, 'https://api.figma.com', 'figmaOAuth.apiBaseUrl');
  const publicUrl = options.publicUrl === undefined ? undefined : new URL(httpBase(options.publicUrl, '', 'figmaOAuth.publicUrl')).origin;
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 60_000) throw notConfigured('figmaOAuth.timeoutMs must be 100 to 60000');

  const as: OAuth.AuthorizationServer = {
    issuer: oauthBase,
    authorization_endpoint: `${oauthBase}/oauth`,
    token_endpoint: `${apiBase}/v1/oauth/token`,
  };
  const client: OAuth.Client = { client_id: clientId };
  if (options.clientAuth !== undefined && options.clientAuth !== 'basic' && options.clientAuth !== 'body') throw notConfigured("figmaOAuth.clientAuth is 'basic' or 'body'");
  const clientAuth = (oauth: OAuthLib) => (options.clientAuth === 'body' ? oauth.ClientSecretPost(clientSecret) : oauth.ClientSecretBasic(clientSecret));
  // http:// hosts only for local stand-ins; Figma's own are https.
  const insecure = (oauth: OAuthLib) => (oauthBase.startsWith('http:') || apiBase.startsWith('http:') ? { [oauth.allowInsecureRequests]: true } : {});
  const cookieKey = deriveCookieKey(clientSecret);

  const pagePath = `${basePath}/plugin/login/figma`;
  const origin = (request: Request) => publicUrl ?? new URL(request.url).origin;
  const redirectUri = (request: Request) => `${origin(request)}${pagePath}/callback`;

  return {
    /** Where the plugin's browser goes: the page, with the write key in the fragment (never sent to a server). */
    loginUrl: (request: Request, writeKey: string) => `${origin(request)}${pagePath}#${writeKey}`,

    page: async (): Promise<Response> => html(200, confirmPage(`${pagePath}/start`), {}, `'self' ${new URL(oauthBase).origin}`),

    start: async (request: Request): Promise<Response> => {
      refuseCrossSite(request, origin(request));
      if (mediaType(request) !== 'application/x-www-form-urlencoded') throw new ValidationError('unsupported_media_type', 'unsupported_media_type: a form post');
      const form = new URLSearchParams(await readSmallText(request));
      const writeKey = form.get('login') ?? '';
      if (!WRITE_KEY.test(writeKey)) throw new NotFoundError('login_not_found', 'login_not_found: that is not a write key issued by beginLogin');
      const oauth = await loadOAuth();
      const state = oauth.generateRandomState();
      const verifier = oauth.generateRandomCodeVerifier();
      const challenge = await oauth.calculatePKCECodeChallenge(verifier);
      const sealed = await seal(await cookieKey, cookieName(state), { s: state, v: verifier, w: writeKey, x: Date.now() + FLOW_SECONDS * 1000 });
      const target = new URL(as.authorization_endpoint!);
      target.search = new URLSearchParams({
        client_id: clientId,
        redirect_uri: redirectUri(request),
        scope: FIGMA_OAUTH_SCOPE,
        state,
        response_type: 'code',
        code_challenge: challenge,
        code_challenge_method: 'S256',
      }).toString();
      const secure = origin(request).startsWith('https:') ? '; Secure' : '';
      return new Response(null, {
        status: 303,
        headers: {
          location: target.toString(),
          'set-cookie': `${cookieName(state)}=${sealed}; Path=${pagePath}/callback; Max-Age=${FLOW_SECONDS}; HttpOnly; SameSite=Lax${secure}`,
          'cache-control': 'no-store',
          'referrer-policy': 'no-referrer',
        },
      });
    },

    callback: async (request: Request): Promise<Response> => {
      const url = new URL(request.url);
      const state = url.searchParams.get('state') ?? '';
      // The flow this browser started for this state, or nothing: checked before Figma is called.
      const flow = /^[A-Za-z0-9_-]{22,128}$/.test(state) ? await open(await cookieKey, cookieName(state), readCookie(request, cookieName(state))) : null;
      if (!flow || flow.s !== state || !(flow.x > Date.now()) || !WRITE_KEY.test(flow.w)) {
        throw new AuthError('figma_oauth_state_invalid', 'figma_oauth_state_invalid: this sign-in was not started in this browser, or it expired; start again from the plugin');
      }
      const oauth = await loadOAuth();
      let params: URLSearchParams;
      try {
        params = oauth.validateAuthResponse(as, client, url, flow.s);
      } catch (error) {
        if (error instanceof oauth.AuthorizationResponseError) throw new AuthError('figma_oauth_denied', 'figma_oauth_denied: access was not allowed on Figma\'s page');
        throw new AuthError('figma_oauth_state_invalid', 'figma_oauth_state_invalid: the callback does not belong to this sign-in');
      }

      const accessToken = await exchange(params, redirectUri(request), flow.v);
      const me = await readMe(accessToken);
      const { userId } = await auth.figmaIdentity.userFor(me);
      await auth.tokens.completeLogin(flow.w, userId);
      const code = await confirmationCode(flow.w);
      return html(200, donePage(code), { 'set-cookie': `${cookieName(state)}=; Path=${pagePath}/callback; Max-Age=0; HttpOnly; SameSite=Lax` });
    },
  };

  async function exchange(params: URLSearchParams, redirect: string, verifier: string): Promise<string> {
    const oauth = await loadOAuth();
    let response: Response;
    try {
      response = await oauth.authorizationCodeGrantRequest(as, client, clientAuth(oauth), params, redirect, verifier, {
        ...insecure(oauth),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch {
      throw new ServiceError('figma_unavailable', 'figma_unavailable: Figma\'s token endpoint did not answer');
    }
    if (response.status === 429 || response.status >= 500) {
      await response.body?.cancel().catch(() => {});
      throw new ServiceError('figma_unavailable', `figma_unavailable: Figma's token endpoint answered ${response.status}`);
    }
    try {
      const tokens = await oauth.processAuthorizationCodeResponse(as, client, response);
      return tokens.access_token;
    } catch {
      // A used or expired code, a verifier that does not match the challenge, a wrong secret or
      // redirect URI: Figma's message is not repeated (it may quote what was sent).
      throw new AuthError('figma_oauth_failed', 'figma_oauth_failed: Figma refused the sign-in code; start again from the plugin');
    }
  }

  async function readMe(accessToken: string): Promise<{ figmaUserId: string; email: string | null }> {
    let response: Response;
    let body: unknown;
    try {
      response = await fetch(`${apiBase}/v1/me`, {
        headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.status === 401 || response.status === 403) {
        await response.body?.cancel().catch(() => {});
        throw new AuthError('figma_oauth_failed', 'figma_oauth_failed: Figma refused the access token at /v1/me');
      }
      if (response.status !== 200) throw new Error(String(response.status));
      body = await response.json();
    } catch (error) {
      if (error instanceof AuthError) throw error;
      throw new ServiceError('figma_unavailable', 'figma_unavailable: Figma\'s /v1/me did not answer usefully');
    }
    const me = body as { id?: unknown; email?: unknown } | null;
    if (typeof me !== 'object' || me === null || typeof me.id !== 'string' || !FIGMA_ID.test(me.id)) {
      throw new ServiceError('figma_unavailable', 'figma_unavailable: Figma\'s /v1/me answer has no user id');
    }
    return { figmaUserId: me.id, email: typeof me.email === 'string' && me.email !== '' ? me.email : null };
  }
}

/** Browser routes take their own pages' posts only (see server.ts refuseCrossSite for the website's). */
function refuseCrossSite(request: Request, origin: string): void {
  const given = request.headers.get('origin');
  const site = request.headers.get('sec-fetch-site');
  const ok = (given === null || given === origin) && (site === null ? given !== null : site === 'same-origin');
  if (!ok) throw new AuthError('cross_site_request', 'cross_site_request: the sign-in is started from this server\'s own page only');
}

/** The form, read under a 1 KiB cap while it streams (it holds one 43-character key). */
async function readSmallText(request: Request): Promise<string> {
  return new TextDecoder().decode(await readBody(request, 1024));
}

// --- the flow cookie: AES-GCM, key from HKDF(client secret), the cookie's name as associated data

interface Flow {
  /** state */ s: string;
  /** PKCE verifier */ v: string;
  /** the login's write key */ w: string;
  /** expiry, ms since the epoch */ x: number;
}

const cookieName = (state: string) => `${COOKIE_PREFIX}${state.slice(0, 16)}`;
const utf8 = new TextEncoder();

async function deriveCookieKey(secret: string): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey('raw', utf8.encode(secret), 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: utf8.encode('figma-plugin-auth-db'), info: utf8.encode('figma-oauth-flow-cookie v1') },
    material,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

async function seal(key: CryptoKey, name: string, flow: Flow): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: utf8.encode(name) }, key, utf8.encode(JSON.stringify(flow))));
  const out = new Uint8Array(iv.length + sealed.length);
  out.set(iv);
  out.set(sealed, iv.length);
  return base64url(out);
}

async function open(key: CryptoKey, name: string, value: string | null): Promise<Flow | null> {
  if (!value || value.length > 2048) return null;
  try {
    const bytes = fromBase64url(value);
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: bytes.slice(0, 12), additionalData: utf8.encode(name) }, key, bytes.slice(12));
    const flow = JSON.parse(new TextDecoder().decode(plain)) as Flow;
    return typeof flow.s === 'string' && typeof flow.v === 'string' && typeof flow.w === 'string' && typeof flow.x === 'number' ? flow : null;
  } catch {
    return null; // forged, truncated or from another secret
  }
}

function readCookie(request: Request, name: string): string | null {
  for (const part of (request.headers.get('cookie') ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function base64url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64url(text: string): Uint8Array {
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

// --- pages

// The confirmation page keeps same-origin referrers: with no-referrer, Chromium sends `Origin: null`
// on its form post, which /start refuses like any opaque origin.
const PAGE_HEAD = (title: string, referrer: 'no-referrer' | 'same-origin' = 'no-referrer') => `<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="${referrer}"><title>${title}</title>
<body style="font:16px system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em">
<h1 style="font-size:1.3em">${title}</h1>`;

// form-action also governs where a form's redirect may go (Chromium): 'self', plus Figma's page on the confirmation page.
const html = (status: number, body: string, headers: Record<string, string> = {}, formAction = "'self'") =>
  new Response(body, {
    status,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'x-frame-options': 'DENY',
      'content-security-policy': `default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
      ...headers,
    },
  });

/** The confirmation page: the code from the fragment's write key; the form posts it to /start. */
function confirmPage(startPath: string): string {
  return `${PAGE_HEAD('Sign in with Figma', 'same-origin')}
<p>Your plugin shows a code. Continue only if it is this one:</p>
<p id="code" style="font:600 2em ui-monospace,monospace;letter-spacing:.15em">…</p>
<form id="form" method="post" action="${startPath.replace(/[&<>"']/g, '')}">
<input type="hidden" name="login" id="login">
<button id="confirm" disabled>The codes match: continue with Figma</button>
</form>
<p id="status" role="status"></p>
<script>
(async () => {
  const alphabet = ${JSON.stringify(CODE_ALPHABET)};
  const writeKey = location.hash.slice(1);
  history.replaceState(null, '', location.pathname + location.search);
  if (!/^[A-Za-z0-9_-]{43}$/.test(writeKey)) { document.getElementById('status').textContent = 'This link is incomplete: start the sign-in from the plugin again.'; return; }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(writeKey)));
  const chars = Array.from(digest.slice(0, 6), (b) => alphabet[b & 31]);
  document.getElementById('code').textContent = chars.slice(0, 3).join('') + '-' + chars.slice(3).join('');
  document.getElementById('login').value = writeKey;
  document.getElementById('confirm').disabled = false;
})();
</script>
</body></html>
`;
}

function donePage(code: string): string {
  return `${PAGE_HEAD('Done: go back to Figma')}
<p>You are signed in. Your plugin showed this code:</p>
<p id="code" style="font:600 2em ui-monospace,monospace;letter-spacing:.15em">${code}</p>
<p>If it did not, you did not start this sign-in: sign out in the plugin.</p>
<p data-result="ok" id="status" role="status">Done: go back to Figma.</p>
</body></html>
`;
}

/** A failed browser route, as a page (the JSON answer is for the plugin's routes). */
export function figmaErrorPage(status: number, code: string): Response {
  const safe = /^[a-z_]{1,64}$/.test(code) ? code : 'internal_error';
  return html(status, `${PAGE_HEAD('Not signed in')}
<p data-result="${safe}" id="status" role="status">The sign-in did not finish (${safe}). Start again from the plugin.</p>
</body></html>
`);
}
