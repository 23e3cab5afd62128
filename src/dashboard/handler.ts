// createDashboardHandler: the dashboard as one web-standard Request → Response function, so that
// a host application can mount it behind its own admin login (Next.js route handlers, Hono, Bun,
// Deno, or Node through src/dashboard/server.ts). Read-only except one action: revoking a token
// (POST, authorized like every route, with a confirmation step and a CSRF token).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Queryable } from '../core/db.ts';
import { NotFoundError, PluginAuthError, ValidationError, type ErrorCode } from '../core/errors.ts';
import { CSS, renderConfirmRevoke, renderMessage, renderOverview, renderUser, type PageContext } from './page.ts';
import { checkDays, checkUuid, readOverview, readUserView, revokeUserToken, type RangeDays } from './queries.ts';

export interface DashboardOptions {
  /**
   * Decides whether a request may see the dashboard: your admin login, or the CLI's access key.
   * Called for every request, before anything is read; false (or a throw) answers 401.
   */
  authorize(request: Request): boolean | Promise<boolean>;
  /** Path the handler is mounted under, e.g. '/admin/dashboard' (default ''): links start with it. */
  basePath?: string;
  /** Distinct devices from which a user is listed as possibly sharing (2 to 100, default 3). */
  sharingThreshold?: number;
  /** Rows in the top-users table (default 10). */
  topUsers?: number;
  /** Shown in the page header (default: the database's description, passwords redacted). */
  label?: string;
}

export type DashboardHandler = (request: Request) => Promise<Response>;

const STYLE_HASH = `'sha256-${createHash('sha256').update(CSS).digest('base64')}'`;

/** Nothing but this page's own stylesheet and a data: favicon: no script, no request elsewhere. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `style-src ${STYLE_HASH}`,
  'img-src data:',
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

function html(status: number, body: string, extra: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { 'content-type': 'text/html; charset=utf-8', ...SECURITY_HEADERS, ...extra } });
}

const USER_PATH = /^\/users\/([^/]+)$/;
const REVOKE_PATH = /^\/users\/([^/]+)\/tokens\/([^/]+)\/revoke$/;

export function createDashboardHandler(db: Queryable & { description?: string }, options: DashboardOptions): DashboardHandler {
  if (typeof options?.authorize !== 'function') {
    throw new TypeError('createDashboardHandler: options.authorize(request) is required (your admin check, or the CLI key)');
  }
  const base = (options.basePath ?? '').replace(/\/+$/, '');
  if (base !== '' && !/^\/[A-Za-z0-9._~\-/]*$/.test(base)) throw new TypeError('createDashboardHandler: basePath must be a path like /admin/dashboard');
  const target = options.label ?? db.description ?? 'database';
  // Per handler: a CSRF token is the HMAC of the action, so only a page this handler served can post it.
  const csrfSecret = randomBytes(32);
  const csrf = (userId: string, tokenId: string) => createHmac('sha256', csrfSecret).update(`revoke:${userId}:${tokenId}`).digest('base64url');
  const csrfValid = (userId: string, tokenId: string, given: string | null) => {
    const expected = Buffer.from(csrf(userId, tokenId));
    const actual = Buffer.from(given ?? '');
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  };

  return async function dashboard(request: Request): Promise<Response> {
    const ctx: PageContext = { base, target };
    let allowed = false;
    try {
      allowed = (await options.authorize(request)) === true;
    } catch {
      allowed = false;
    }
    if (!allowed) {
      return html(401, renderMessage(ctx, '401 Unauthorized', 'Open the dashboard through the URL it printed (with ?key=…), or sign in to the application that mounts it.'), { 'www-authenticate': 'Key' });
    }
    const url = new URL(request.url);
    if (base && url.pathname !== base && !url.pathname.startsWith(`${base}/`)) return html(404, renderMessage(ctx, '404 Not found', 'No such page.'));
    const path = url.pathname.slice(base.length) || '/';

    // Time spent in the database for this request (Server-Timing, and the page's footer).
    let dbMs = 0;
    const timed: Queryable = {
      async query(text, params, options) {
        const t0 = performance.now();
        try {
          return await db.query(text, params, options);
        } finally {
          dbMs += performance.now() - t0;
        }
      },
      exec: (script) => db.exec(script),
    };
    const done = (status: number, page: (ms: number) => string) => html(status, page(dbMs), { 'server-timing': `db;dur=${dbMs.toFixed(1)}` });

    try {
      const days = parseDays(url.searchParams.get('days'));
      if (path === '/') {
        if (request.method !== 'GET' && request.method !== 'HEAD') return methodNotAllowed(ctx, 'GET');
        const within = url.searchParams.get('within');
        const overview = await readOverview(timed, {
          days,
          withinDays: within === null ? undefined : parseWhole(within, 'invalid_within'),
          sharingThreshold: options.sharingThreshold,
          topUsers: options.topUsers,
        });
        return done(200, (ms) => renderOverview({ ...ctx, dbMs: ms }, overview));
      }
      let m = USER_PATH.exec(path);
      if (m) {
        if (request.method !== 'GET' && request.method !== 'HEAD') return methodNotAllowed(ctx, 'GET');
        const view = await readUserView(timed, decode(m[1]!), days);
        const revoked = url.searchParams.get('revoked');
        return done(200, () => renderUser(ctx, view, { notice: revoked ? `Token ${revoked.slice(0, 36)} revoked: that device must sign in again.` : undefined }));
      }
      m = REVOKE_PATH.exec(path);
      if (m) {
        const userId = checkUuid(decode(m[1]!), 'invalid_user_id', 'the user id');
        const tokenId = checkUuid(decode(m[2]!), 'invalid_token_id', 'the token id');
        if (request.method === 'GET') {
          const view = await readUserView(timed, userId, days);
          if (!view.tokens.some((t) => t.tokenId === tokenId)) throw new NotFoundError('token_not_found', 'token_not_found: this user has no token with that id');
          return done(200, () => renderConfirmRevoke(ctx, view, tokenId, csrf(userId, tokenId)));
        }
        if (request.method !== 'POST') return methodNotAllowed(ctx, 'GET, POST');
        // A form another site submits carries neither this handler's CSRF token nor (browsers
        // that send it) a same-origin Sec-Fetch-Site.
        if (request.headers.get('sec-fetch-site') === 'cross-site') return html(403, renderMessage(ctx, '403 Forbidden', 'Cross-site request refused.'));
        const text = await request.text();
        if (text.length > 4096) throw new ValidationError('invalid_form', 'invalid_form: the form is too large');
        const form = new URLSearchParams(text);
        if (!csrfValid(userId, tokenId, form.get('csrf'))) return html(403, renderMessage(ctx, '403 Forbidden', 'The form has expired or did not come from this dashboard: open the token list and try again.'));
        if (form.get('confirm') !== 'yes') throw new ValidationError('not_confirmed', 'not_confirmed: confirm the revocation on the confirmation page');
        await revokeUserToken(timed, userId, tokenId);
        return new Response(null, { status: 303, headers: { location: `${base}/users/${userId}?revoked=${tokenId}`, ...SECURITY_HEADERS } });
      }
      return html(404, renderMessage(ctx, '404 Not found', 'No such page.'));
    } catch (error) {
      if (error instanceof ValidationError) return html(400, renderMessage(ctx, `400 ${error.code}`, error.message));
      if (error instanceof NotFoundError) return html(404, renderMessage(ctx, `404 ${error.code}`, error.message));
      const code = error instanceof PluginAuthError ? error.code : 'dashboard_error';
      return html(500, renderMessage(ctx, `500 ${code}`, error instanceof Error ? error.message : String(error)));
    }
  };
}

function methodNotAllowed(ctx: PageContext, allow: string): Response {
  return html(405, renderMessage(ctx, '405 Method not allowed', `Allowed: ${allow}.`), { allow });
}

function parseDays(value: string | null): RangeDays {
  if (value === null) return 30;
  return checkDays(parseWhole(value, 'invalid_days'));
}

function parseWhole(value: string, code: ErrorCode): number {
  if (!/^\d{1,4}$/.test(value)) throw new ValidationError(code, `${code}: expected a whole number`);
  return Number(value);
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
