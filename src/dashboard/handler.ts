// createDashboardHandler: the dashboard as one web-standard Request → Response function, so that
// a host application can mount it behind its own admin login (Next.js route handlers, Hono, Bun,
// Deno, or Node through src/dashboard/server.ts). The operator's console too (src/dashboard/
// console.ts): search, the actions on a user (each a GET confirmation page, then a POST carrying
// a CSRF token bound to the session, the action and its subject, from this origin only; each
// written to the audit log), what failed, money, CSV exports.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Queryable } from '../core/db.ts';
import { NotFoundError, PluginAuthError, ValidationError, type ErrorCode } from '../core/errors.ts';
import { CSS, renderConfirmRevoke, renderMessage, renderOverview, renderUser, type PageContext } from './page.ts';
import { checkDays, checkUuid, readOverview, readPlans, readUserView, type RangeDays } from './queries.ts';
import { checkAction, readAudit, readFailures, readMoney, readMoneyByCurrency, readUserConsole, runAction, searchUsers, toCsv, type ActionInput, type ConsoleAction } from './console.ts';
import { renderActionConfirm, renderAudit, renderFailures, renderMoney, renderSearch, renderUserConsole } from './console-page.ts';
import { readSeries } from './series.ts';
import { percent, renderSeries } from './series-page.ts';

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
  /** Who acts, for the audit log (default 'dashboard'): your admin's id or email. */
  actor?: (request: Request) => string | Promise<string>;
  /**
   * The operator's session, to bind CSRF tokens to (e.g. your admin session id; the CLI's server
   * passes its session). Default: one secret per handler.
   */
  csrfSession?: (request: Request) => string;
  /** "Re-sync from Stripe" on a user's page: the reconcile of the Stripe integration. Without it the action is shown as not configured. */
  reconcileStripe?: (userId: string) => Promise<unknown>;
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
const ACTION_PATH = /^\/users\/([^/]+)\/actions\/([^/]+)$/;
const EXPORT_PATH = /^\/export\/([a-z-]+)\.csv$/;

export function createDashboardHandler(db: Queryable & { description?: string }, options: DashboardOptions): DashboardHandler {
  if (typeof options?.authorize !== 'function') {
    throw new TypeError('createDashboardHandler: options.authorize(request) is required (your admin check, or the CLI key)');
  }
  const base = (options.basePath ?? '').replace(/\/+$/, '');
  if (base !== '' && !/^\/[A-Za-z0-9._~\-/]*$/.test(base)) throw new TypeError('createDashboardHandler: basePath must be a path like /admin/dashboard');
  const target = options.label ?? db.description ?? 'database';
  // Per handler: a CSRF token is the HMAC of the action, so only a page this handler served can post it.
  const csrfSecret = randomBytes(32);
  // With csrfSession, the token is bound to the operator's session too: one session's form is
  // refused in another.
  const session = (request: Request) => {
    try {
      return options.csrfSession?.(request) ?? '';
    } catch {
      return '';
    }
  };
  const csrf = (request: Request, action: string, userId: string, subject: string) =>
    createHmac('sha256', csrfSecret).update(`${session(request).length}:${session(request)}|${action}:${userId}:${subject}`).digest('base64url');
  const csrfValid = (request: Request, action: string, userId: string, subject: string, given: string | null) => {
    const expected = Buffer.from(csrf(request, action, userId, subject));
    const actual = Buffer.from(given ?? '');
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  };
  const actor = async (request: Request) => {
    if (!options.actor) return 'dashboard';
    return String(await options.actor(request));
  };
  /**
   * A POST from elsewhere: an Origin that is not this one. The pages' no-referrer policy makes a
   * browser send `Origin: null` with its own forms: then only its Sec-Fetch-Site (which no page
   * can set) saying same-origin is accepted. Without Origin (a script), a cross-site fetch is refused.
   */
  const foreign = (request: Request, url: URL) => {
    const origin = request.headers.get('origin');
    const site = request.headers.get('sec-fetch-site');
    if (origin === 'null') return site !== 'same-origin';
    if (origin !== null) return origin !== url.origin || (site !== null && site !== 'same-origin');
    return site !== null && site !== 'same-origin';
  };
  const readForm = async (request: Request) => {
    const text = await request.text();
    if (text.length > 4096) throw new ValidationError('invalid_form', 'invalid_form: the form is too large');
    return new URLSearchParams(text);
  };
  const forbidden = (ctx: PageContext, why: string) => html(403, renderMessage(ctx, '403 Forbidden', why));
  const csv = (name: string, body: string) =>
    new Response(body, { status: 200, headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': `attachment; filename="${name}.csv"`, ...SECURITY_HEADERS } });

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
      // Churn and conversion over time: its own windows (up to 365 days) and periods.
      if (path === '/series' || path === '/export/series.csv') {
        if (request.method !== 'GET' && request.method !== 'HEAD') return methodNotAllowed(ctx, 'GET');
        const series = await readSeries(timed, parseSeriesParams(url.searchParams));
        if (path === '/series') return done(200, (ms) => renderSeries({ ...ctx, dbMs: ms }, series));
        return csv('series', toCsv(
          ['period_start', 'period_end', 'paying_at_start', 'new_paying', 'churned', 'churn_rate', 'paying_at_end', 'sign_ups', `paying_within_${series.withinDays}_days`, 'conversion_rate', 'conversion_complete'],
          series.periods.map((p) => [p.start, p.endsAt, p.payingAtStart, p.newPaying, p.churned, p.churnRate === null ? null : percent(p.churnRate), p.payingAtEnd, p.signUps, p.converted, p.conversionRate === null ? null : percent(p.conversionRate), p.complete])));
      }
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
        const more = await readUserConsole(timed, view.user.id);
        const revoked = url.searchParams.get('revoked');
        const done_ = url.searchParams.get('done');
        const notice = revoked ? `Token ${revoked.slice(0, 36)} revoked: that device must sign in again.` : done_ ? done_.slice(0, 300) : undefined;
        return done(200, () => renderUser(ctx, view, { notice, extra: renderUserConsole(ctx, view, more, { resync: Boolean(options.reconcileStripe) }) }));
      }
      m = REVOKE_PATH.exec(path);
      if (m) {
        const userId = checkUuid(decode(m[1]!), 'invalid_user_id', 'the user id');
        const tokenId = checkUuid(decode(m[2]!), 'invalid_token_id', 'the token id');
        if (request.method === 'GET') {
          const view = await readUserView(timed, userId, days);
          if (!view.tokens.some((t) => t.tokenId === tokenId)) throw new NotFoundError('token_not_found', 'token_not_found: this user has no token with that id');
          return done(200, () => renderConfirmRevoke(ctx, view, tokenId, csrf(request, 'revoke_token', userId, tokenId)));
        }
        if (request.method !== 'POST') return methodNotAllowed(ctx, 'GET, POST');
        // A form another site submits carries neither this handler's CSRF token nor this origin.
        if (foreign(request, url)) return forbidden(ctx, 'Cross-site request refused.');
        const form = await readForm(request);
        if (!csrfValid(request, 'revoke_token', userId, tokenId, form.get('csrf'))) return forbidden(ctx, 'The form has expired or did not come from this dashboard: open the token list and try again.');
        if (form.get('confirm') !== 'yes') throw new ValidationError('not_confirmed', 'not_confirmed: confirm the revocation on the confirmation page');
        await runAction(db, userId, 'revoke_token', { subject: tokenId }, { actor: await actor(request) });
        return new Response(null, { status: 303, headers: { location: `${base}/users/${userId}?revoked=${tokenId}`, ...SECURITY_HEADERS } });
      }
      m = ACTION_PATH.exec(path);
      if (m) {
        const userId = checkUuid(decode(m[1]!), 'invalid_user_id', 'the user id');
        const action: ConsoleAction = checkAction(decode(m[2]!));
        if (request.method === 'GET') {
          const subject = url.searchParams.get('subject') ?? '';
          const view = await readUserView(timed, userId, days);
          const more = await readUserConsole(timed, userId);
          const subjectText = describeSubject(action, subject, view, more);
          const plans = await readPlans(timed);
          return done(200, () => renderActionConfirm(ctx, view, action, subject || null, subjectText, csrf(request, action, userId, subject), plans));
        }
        if (request.method !== 'POST') return methodNotAllowed(ctx, 'GET, POST');
        if (foreign(request, url)) return forbidden(ctx, 'Cross-site request refused.');
        const form = await readForm(request);
        const subject = form.get('subject') ?? '';
        if (!csrfValid(request, action, userId, subject, form.get('csrf'))) return forbidden(ctx, 'The form has expired or did not come from this dashboard: open the user page and try again.');
        if (form.get('confirm') !== 'yes') throw new ValidationError('not_confirmed', 'not_confirmed: confirm the action on its confirmation page');
        const input: ActionInput = { subject, plan: form.get('plan') ?? undefined, until: form.get('until') ?? undefined, days: form.get('days') ?? undefined };
        const result = await runAction(db, userId, action, input, { actor: await actor(request), reconcileStripe: options.reconcileStripe });
        return new Response(null, { status: 303, headers: { location: `${base}/users/${userId}?done=${encodeURIComponent(result.message)}`, ...SECURITY_HEADERS } });
      }
      if (path === '/search' || path === '/failures' || path === '/money' || path === '/audit' || EXPORT_PATH.test(path)) {
        if (request.method !== 'GET' && request.method !== 'HEAD') return methodNotAllowed(ctx, 'GET');
      }
      if (path === '/search') {
        const q = url.searchParams.get('q') ?? '';
        const found = await searchUsers(timed, q);
        // One match: straight to the user.
        if (found.length === 1 && url.searchParams.get('list') === null) {
          return new Response(null, { status: 303, headers: { location: `${base}/users/${found[0]!.userId}`, ...SECURITY_HEADERS } });
        }
        return done(200, () => renderSearch(ctx, q.trim(), found));
      }
      if (path === '/failures') {
        const d = parseFailureDays(url.searchParams.get('days'));
        const failures = await readFailures(timed, d);
        return done(200, () => renderFailures(ctx, failures, d));
      }
      if (path === '/money') {
        const money = await readMoney(timed);
        const amounts = await readMoneyByCurrency(timed);
        return done(200, () => renderMoney(ctx, money, amounts));
      }
      if (path === '/audit') {
        const rows = await readAudit(timed, { limit: 200 });
        return done(200, () => renderAudit(ctx, rows));
      }
      m = EXPORT_PATH.exec(path);
      if (m) return await exportCsv(timed, m[1]!, url.searchParams, csv);
      return html(404, renderMessage(ctx, '404 Not found', 'No such page.'));
    } catch (error) {
      if (error instanceof ValidationError) return html(400, renderMessage(ctx, `400 ${error.code}`, error.message));
      if (error instanceof NotFoundError) return html(404, renderMessage(ctx, `404 ${error.code}`, error.message));
      const code = error instanceof PluginAuthError ? error.code : 'dashboard_error';
      return html(500, renderMessage(ctx, `500 ${code}`, error instanceof Error ? error.message : String(error)));
    }
  };
}

/** What the confirmation page names: the token's device, the license, the seat. */
function describeSubject(action: ConsoleAction, subject: string, view: Awaited<ReturnType<typeof readUserView>>, more: Awaited<ReturnType<typeof readUserConsole>>): string | null {
  switch (action) {
    case 'revoke_token': {
      const t = view.tokens.find((x) => x.tokenId === subject);
      if (!t) throw new NotFoundError('token_not_found', 'token_not_found: this user has no token with that id');
      return `token on ${t.deviceName ?? '(unnamed)'}`;
    }
    case 'deactivate_license': {
      const k = more.licenses.find((x) => x.licenseId === subject);
      if (!k) throw new NotFoundError('license_not_found', 'license_not_found: this user has no such license');
      return `${k.provider} license ${k.keyPrefix}… (${k.status})`;
    }
    case 'revoke_device': {
      const [lid, did] = subject.split(':');
      const k = more.licenses.find((x) => x.licenseId === lid);
      const d = k?.devices.find((x) => x.deviceId === did);
      if (!k || !d) throw new NotFoundError('device_not_found', 'device_not_found: the license is not activated on that device');
      return `${d.deviceName} on ${k.provider} license ${k.keyPrefix}…`;
    }
    case 'remove_seat': {
      if (subject === 'held') {
        if (!more.seatHeld) throw new NotFoundError('seat_not_found', 'seat_not_found: no such seat');
        return `the seat held in the team of ${more.seatHeld.ownerEmail}`;
      }
      const m = more.seatMembers.find((x) => x.memberId === subject);
      if (!m) throw new NotFoundError('seat_not_found', 'seat_not_found: no such seat');
      return `the seat of ${m.email}`;
    }
    default:
      return null;
  }
}

type CsvAnswer = (name: string, body: string) => Response;

/** Every table of the console as CSV (formula-safe cells: console.ts csvCell). */
async function exportCsv(db: Queryable, name: string, params: URLSearchParams, csv: CsvAnswer): Promise<Response> {
  switch (name) {
    case 'search': {
      const rows = await searchUsers(db, params.get('q') ?? '');
      return csv(name, toCsv(['user_id', 'email', 'name', 'figma_user_id', 'matched'], rows.map((r) => [r.userId, r.email, r.name, r.figmaUserId, r.matched])));
    }
    case 'requests': {
      const user = checkUuid(params.get('user') ?? '', 'invalid_user_id', 'the user id');
      const c = await readUserConsole(db, user, 1000);
      return csv(name, toCsv(['at', 'action', 'items', 'allowed', 'reason', 'plan', 'used', 'limit', 'refunded'], c.requests.map((r) => [r.at, r.action, r.items, r.allowed, r.reason, r.planSlug, r.used, r.limit, r.refunded])));
    }
    case 'audit': {
      const rows = await readAudit(db, { limit: 100000 });
      return csv(name, toCsv(['id', 'at', 'actor', 'action', 'user_id', 'subject', 'before', 'after'], rows.map((a) => [a.id, a.at, a.actor, a.action, a.userId, a.subject, a.before, a.after])));
    }
    case 'webhook-deliveries': {
      const rows = await db.query<{ received_at: Date; provider: string; event_id: string | null; outcome: string; reason_code: string }>(
        `SELECT d.received_at, d.provider, d.event_id, d.outcome, d.reason_code FROM public.webhook_deliveries AS d
          WHERE d.received_at >= pg_catalog.now() - pg_catalog.make_interval(days => $1::integer) ORDER BY d.received_at DESC, d.id DESC LIMIT 100000`,
        [parseFailureDays(params.get('days'))],
      );
      return csv(name, toCsv(['received_at', 'provider', 'event_id', 'outcome', 'reason_code'], rows.map((r) => [r.received_at, r.provider, r.event_id, r.outcome, r.reason_code])));
    }
    case 'sign-in-refusals': {
      const rows = await db.query<{ received_at: Date; route: string; reason_code: string; user_id: string | null }>(
        `SELECT r.received_at, r.route, r.reason_code, r.user_id FROM public.sign_in_refusals AS r
          WHERE r.received_at >= pg_catalog.now() - pg_catalog.make_interval(days => $1::integer) ORDER BY r.received_at DESC, r.id DESC LIMIT 100000`,
        [parseFailureDays(params.get('days'))],
      );
      return csv(name, toCsv(['received_at', 'route', 'reason_code', 'user_id'], rows.map((r) => [r.received_at, r.route, r.reason_code, r.user_id])));
    }
    case 'at-risk': {
      const f = await readFailures(db, 1);
      return csv(name, toCsv(['user_id', 'email', 'plan', 'status', 'cancel_at_period_end', 'current_period_end'], f.atRisk.map((r) => [r.userId, r.email, r.planSlug, r.status, r.cancelAtPeriodEnd, r.currentPeriodEnd])));
    }
    case 'at-limit': {
      const f = await readFailures(db, 1);
      return csv(name, toCsv(['user_id', 'email', 'plan', 'refused_today', 'last'], f.atLimit.map((r) => [r.userId, r.email, r.planSlug, r.denied, r.last])));
    }
    case 'money': {
      const rows = await readMoney(db);
      return csv(name, toCsv(['source', 'paying_users', 'seats', 'mrr_cents'], rows.map((r) => [r.source, r.payingUsers, r.seats, r.mrrCents])));
    }
    case 'money-by-currency': {
      const rows = await readMoneyByCurrency(db);
      return csv(name, toCsv(['source', 'currency', 'paying_users', 'seats', 'recurring_seats', 'mrr_minor', 'mrr_per_seat_minor', 'sales_30d', 'sales_30d_minor'],
        rows.map((r) => [r.source, r.currency, r.payingUsers, r.seats, r.recurringSeats, r.mrrMinor, r.mrrPerSeatMinor, r.sales30d, r.sales30dMinor])));
    }
    default:
      throw new NotFoundError('invalid_export', 'invalid_export: no such table to export');
  }
}

/** The failure views' range: the overview's ranges (7, 30, 90 days), 7 by default. */
function parseFailureDays(value: string | null): number {
  return value === null ? 7 : parseDays(value);
}

function methodNotAllowed(ctx: PageContext, allow: string): Response {
  return html(405, renderMessage(ctx, '405 Method not allowed', `Allowed: ${allow}.`), { allow });
}

function parseDays(value: string | null): RangeDays {
  if (value === null) return 30;
  return checkDays(parseWhole(value, 'invalid_days'));
}

/** /series?days=7|30|90|180|365&by=day|week|month&within=1..90 (each optional; checked by readSeries). */
function parseSeriesParams(params: URLSearchParams): { days?: number; unit?: string; withinDays?: number } {
  const days = params.get('days');
  const by = params.get('by');
  const within = params.get('within');
  return {
    days: days === null ? undefined : parseWhole(days, 'invalid_days'),
    unit: by === null ? undefined : by,
    withinDays: within === null ? undefined : parseWhole(within, 'invalid_within'),
  };
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
