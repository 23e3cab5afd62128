// A local stand-in for Figma's OAuth 2 endpoints and GET /v1/me, on 127.0.0.1, following Figma's
// published shapes field by field:
// - GET  /oauth (authorization page): client_id, redirect_uri (must be registered), scope,
//   state, response_type=code, code_challenge + code_challenge_method=S256 (PKCE). It shows a consent
//   page ("Allow access" / "Deny") for the signed-in Figma user; Allow redirects to
//   redirect_uri?code=…&state=…, Deny to redirect_uri?error=access_denied&state=…
// - POST /v1/oauth/token (form body: redirect_uri, code, grant_type=authorization_code,
//   code_verifier; client credentials in an `Authorization: Basic` header, or client_id and
//   client_secret in the body as older guides post them). 200: { user_id_string, access_token,
//   token_type: 'bearer', expires_in, refresh_token }. Errors in Figma's REST shape
//   { error: true, status, message } (openapi ErrorResponsePayloadWithErrorBoolean). A code is good
//   once, for 60 s, for its redirect_uri and its PKCE challenge.
// - GET  /v1/me (Authorization: Bearer): 200 { id, handle, img_url, email }; a bad token
//   403 { status: 403, err: 'Invalid token' } (ErrorResponsePayloadWithErrMessage); 429 and 500 alike.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FigmaAccount {
  id: string;
  handle: string;
  email?: string;
  img_url?: string;
}

export type MeFailure = { kind: 'http'; status: 403 | 429 | 500 } | { kind: 'slow'; ms: number } | { kind: 'garbage' } | { kind: 'no_id' };

export interface FigmaOAuthStandIn {
  url: string;
  clientId: string;
  clientSecret: string;
  /** Registered redirect URIs (exact match, as Figma's app settings). */
  redirectUris: Set<string>;
  /** Who is signed in on figma.com in the browser that opens the consent page. */
  account: FigmaAccount;
  /** Access tokens issued (the test checks they are stored nowhere). */
  issued: string[];
  /** Each call: path and outcome. */
  calls: { path: string; status: number }[];
  /** How client credentials arrived at the token endpoint. */
  clientAuth: ('basic' | 'body')[];
  meFailure: MeFailure | null;
  tokenFailure: { kind: 'http'; status: 500 | 503 } | null;
  /** Non-browser tests: opens the authorization URL, clicks Allow (or Deny) as `account`, returns the redirect. */
  consent(authorizationUrl: string, choice?: 'allow' | 'deny', account?: FigmaAccount): Promise<string>;
  close(): Promise<void>;
}

interface Grant {
  clientId: string;
  redirectUri: string;
  challenge: string | null;
  account: FigmaAccount;
  expiresAt: number;
  used: boolean;
}

const figmaError = (status: number, message: string) => ({ error: true, status, message, i18n: null });
const s256 = (verifier: string) => createHash('sha256').update(verifier).digest('base64url');

export async function startFigmaOAuthStandIn(options: { redirectUris?: string[]; account?: FigmaAccount } = {}): Promise<FigmaOAuthStandIn> {
  const grants = new Map<string, Grant>();
  const pending = new Map<string, { clientId: string; redirectUri: string; state: string; challenge: string | null; account: FigmaAccount }>();
  const tokens = new Map<string, FigmaAccount>();
  const standIn: FigmaOAuthStandIn = {
    url: '',
    clientId: `standin-client-${randomBytes(4).toString('hex')}`,
    clientSecret: `standin-secret-${randomBytes(16).toString('hex')}`,
    redirectUris: new Set(options.redirectUris ?? []),
    account: options.account ?? { id: '1234567890', handle: 'Ada', email: 'ada@example.com' },
    issued: [],
    calls: [],
    clientAuth: [],
    meFailure: null,
    tokenFailure: null,
    consent: async () => '',
    close: async () => {},
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', standIn.url);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      standIn.calls.push({ path: url.pathname, status });
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify(body));
    };
    const page = (status: number, html: string) => {
      standIn.calls.push({ path: url.pathname, status });
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><meta charset="utf-8"><title>Figma</title><body>${html}</body>`);
    };
    const redirect = (location: string) => {
      standIn.calls.push({ path: url.pathname, status: 302 });
      res.writeHead(302, { location });
      res.end();
    };
    try {
      if (req.method === 'GET' && url.pathname === '/oauth') return authorize(url, page);
      if (req.method === 'POST' && url.pathname === '/oauth/decide') return decide(new URLSearchParams(await body(req)), redirect, page);
      if (req.method === 'POST' && url.pathname === '/v1/oauth/token') return await token(req, send);
      if (req.method === 'GET' && url.pathname === '/v1/me') return await me(req, res, send);
      return send(404, figmaError(404, 'Not found'));
    } catch {
      return send(500, figmaError(500, 'Internal server error'));
    }
  });

  function authorize(url: URL, page: (status: number, html: string) => void) {
    const p = url.searchParams;
    const clientId = p.get('client_id') ?? '';
    const redirectUri = p.get('redirect_uri') ?? '';
    if (clientId !== standIn.clientId) return page(400, '<p>Invalid client_id</p>');
    if (!standIn.redirectUris.has(redirectUri)) return page(400, '<p>Invalid redirect_uri</p>');
    if (p.get('response_type') !== 'code') return page(400, '<p>Invalid response_type</p>');
    if (!(p.get('scope') ?? '').split(/[ ,]/).includes('current_user:read')) return page(400, '<p>Invalid scope</p>');
    const challenge = p.get('code_challenge');
    if (challenge !== null && p.get('code_challenge_method') !== 'S256') return page(400, '<p>Invalid code_challenge_method</p>');
    const id = randomBytes(12).toString('hex');
    pending.set(id, { clientId, redirectUri, state: p.get('state') ?? '', challenge, account: standIn.account });
    return page(200, `<h1>Allow access to your Figma account?</h1><p>Signed in as <b id="handle">${standIn.account.handle}</b></p>
<form method="post" action="/oauth/decide"><input type="hidden" name="request" value="${id}">
<button name="choice" value="allow" id="allow">Allow access</button> <button name="choice" value="deny" id="deny">Deny</button></form>`);
  }

  function decide(form: URLSearchParams, redirect: (l: string) => void, page: (status: number, html: string) => void) {
    const request = pending.get(form.get('request') ?? '');
    if (!request) return page(400, '<p>Expired</p>');
    pending.delete(form.get('request') ?? '');
    const target = new URL(request.redirectUri);
    if (form.get('choice') !== 'allow') {
      target.searchParams.set('error', 'access_denied');
    } else {
      const code = randomBytes(24).toString('base64url');
      grants.set(code, { clientId: request.clientId, redirectUri: request.redirectUri, challenge: request.challenge, account: request.account, expiresAt: Date.now() + 60_000, used: false });
      target.searchParams.set('code', code);
    }
    target.searchParams.set('state', request.state);
    return redirect(target.toString());
  }

  async function token(req: IncomingMessage, send: (s: number, b: unknown) => void) {
    if (standIn.tokenFailure) return send(standIn.tokenFailure.status, figmaError(standIn.tokenFailure.status, 'Internal server error'));
    const form = new URLSearchParams(await body(req));
    let clientId = form.get('client_id');
    let clientSecret = form.get('client_secret');
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      // RFC 6749 2.3.1: both parts form-urlencoded before joining.
      clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
      clientSecret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
      standIn.clientAuth.push('basic');
    } else {
      standIn.clientAuth.push('body');
    }
    if (clientId !== standIn.clientId || clientSecret !== standIn.clientSecret) return send(401, figmaError(401, 'Invalid client credentials'));
    if (form.get('grant_type') !== 'authorization_code') return send(400, figmaError(400, 'Invalid grant_type'));
    const code = form.get('code') ?? '';
    const grant = grants.get(code);
    if (!grant || grant.clientId !== clientId) return send(400, figmaError(400, 'Invalid code'));
    if (grant.used) {
      grants.delete(code); // a replayed code burns it
      return send(400, figmaError(400, 'Invalid code'));
    }
    grant.used = true;
    if (grant.expiresAt < Date.now()) return send(400, figmaError(400, 'Code expired'));
    if (form.get('redirect_uri') !== grant.redirectUri) return send(400, figmaError(400, 'Invalid redirect_uri'));
    if (grant.challenge !== null) {
      const verifier = form.get('code_verifier');
      if (!verifier || s256(verifier) !== grant.challenge) return send(400, figmaError(400, 'Invalid code_verifier'));
    }
    const accessToken = `figu_${randomBytes(24).toString('base64url')}`;
    tokens.set(accessToken, grant.account);
    standIn.issued.push(accessToken);
    return send(200, {
      user_id_string: grant.account.id,
      access_token: accessToken,
      token_type: 'bearer',
      expires_in: 7_776_000,
      refresh_token: `figr_${randomBytes(24).toString('base64url')}`,
    });
  }

  async function me(req: IncomingMessage, res: ServerResponse, send: (s: number, b: unknown) => void) {
    const failure = standIn.meFailure;
    if (failure?.kind === 'slow') await new Promise((r) => setTimeout(r, failure.ms));
    if (res.destroyed || req.destroyed) return;
    if (failure?.kind === 'http') return send(failure.status, { status: failure.status, err: failure.status === 403 ? 'Invalid token' : failure.status === 429 ? 'Rate limit exceeded' : 'Internal server error' });
    if (failure?.kind === 'garbage') {
      standIn.calls.push({ path: '/v1/me', status: 200 });
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"id": "12');
    }
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const account = bearer ? tokens.get(bearer) : undefined;
    if (!account) return send(403, { status: 403, err: 'Invalid token' });
    if (failure?.kind === 'no_id') return send(200, { handle: account.handle, img_url: '', email: account.email });
    return send(200, { id: account.id, handle: account.handle, img_url: account.img_url ?? 'https://s3-alpha.figma.com/profile/standin', email: account.email ?? '' });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  standIn.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  standIn.consent = async (authorizationUrl, choice = 'allow', account) => {
    const saved = standIn.account;
    if (account) standIn.account = account;
    try {
      const page = await fetch(authorizationUrl);
      const html = await page.text();
      const id = /name="request" value="([0-9a-f]+)"/.exec(html)?.[1];
      if (!id) throw new Error(`the stand-in refused the authorization request (${page.status}): ${html}`);
      const decided = await fetch(`${standIn.url}/oauth/decide`, {
        method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ request: id, choice }).toString(),
      });
      return decided.headers.get('location') ?? '';
    } finally {
      standIn.account = saved;
    }
  };
  standIn.close = () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  return standIn;
}

async function body(req: IncomingMessage): Promise<string> {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  return raw;
}
