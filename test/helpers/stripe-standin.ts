// A stand-in for Stripe's API on 127.0.0.1, following Stripe's API reference field by field for
// what the library calls: GET /v1/subscriptions (a list object: object "list", data, has_more,
// url; limit 1-100, default 10; starting_after; status, default every status but canceled, "all"
// for every one; customer), GET /v1/subscriptions/:id, POST /v1/checkout/sessions and
// POST /v1/billing_portal/sessions (form-encoded, bracket keys), Stripe's error object
// ({ error: { type, code, message, param } }), 401 for a missing or wrong key, 429 when a rate
// limit is armed, idempotency keys (the same key and parameters replay the first answer with
// Idempotent-Replayed: true; other parameters are an idempotency_error), a Request-Id and a Date
// header on every answer. Lists are newest first (by created), as Stripe's are.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';

export const STANDIN_SECRET_KEY = 'sk_test_standin0000000000000000';

export interface StripeStandin {
  url: string;
  /** Subscriptions by id (the stand-in's state; edit them to change what Stripe "has"). */
  subscriptions: Map<string, Record<string, any>>;
  /** Customers that exist (cus_…). */
  customers: Set<string>;
  /** Prices that exist (price_…). */
  prices: Set<string>;
  /** Every request, in order: method, path with query, parsed form (POST), idempotency key. */
  requests: Array<{ method: string; path: string; form: Record<string, string>; idempotencyKey: string | null; status: number }>;
  /** Checkout sessions created, with the parameters they were created with. */
  checkoutSessions: Array<Record<string, any>>;
  portalSessions: Array<Record<string, any>>;
  /** The next n requests answer 429 (with Retry-After: retryAfter seconds when given). */
  rateLimit(n: number, retryAfter?: number): void;
  /** The next n requests answer 500 with an api_error. */
  fail(n: number): void;
  /** The next n POSTs are carried out (and kept under their idempotency key), then answered 500: an answer lost on the way. */
  loseAnswers(n: number): void;
  /** Runs before a GET /v1/subscriptions page is answered, after its data was taken (a webhook racing the read). */
  onList?: (query: URLSearchParams) => Promise<void> | void;
  close(): Promise<void>;
}

const ALL_STATUSES = ['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'];

export async function startStripeStandin(): Promise<StripeStandin> {
  const subscriptions = new Map<string, Record<string, any>>();
  const customers = new Set<string>();
  const prices = new Set<string>();
  const requests: StripeStandin['requests'] = [];
  const idempotency = new Map<string, { params: string; status: number; body: unknown }>();
  let rateLimited = 0;
  let retryAfter: number | undefined;
  let failing = 0;
  let losing = 0;

  const standin: StripeStandin = {
    url: '',
    subscriptions,
    customers,
    prices,
    requests,
    checkoutSessions: [],
    portalSessions: [],
    rateLimit(n, after) {
      rateLimited = n;
      retryAfter = after;
    },
    fail(n) {
      failing = n;
    },
    loseAnswers(n) {
      losing = n;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  const error = (status: number, fields: { type: string; message: string; code?: string; param?: string }) => ({ status, body: { error: fields } });

  async function answer(req: IncomingMessage, url: URL, raw: string): Promise<{ status: number; body: unknown; headers?: Record<string, string> }> {
    const auth = req.headers.authorization ?? '';
    if (!auth) {
      return error(401, { type: 'invalid_request_error', message: 'You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. \'Authorization: Bearer YOUR_SECRET_KEY\').' });
    }
    const key = /^Bearer (.+)$/.exec(auth)?.[1] ?? '';
    if (key !== STANDIN_SECRET_KEY) {
      return error(401, { type: 'invalid_request_error', message: `Invalid API Key provided: ${key.slice(0, 8)}****${key.slice(-4)}` });
    }
    if (rateLimited > 0) {
      rateLimited--;
      return {
        ...error(429, { type: 'invalid_request_error', message: 'Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.', code: 'rate_limit' }),
        headers: { 'stripe-rate-limited-reason': 'global-rate', ...(retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : {}) },
      };
    }
    if (failing > 0) {
      failing--;
      return { ...error(500, { type: 'api_error', message: 'An unknown error occurred' }), headers: { 'stripe-should-retry': 'true' } };
    }
    if (req.method === 'GET' && url.pathname === '/v1/subscriptions') return list(url.searchParams);
    const one = /^\/v1\/subscriptions\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && one) {
      const s = subscriptions.get(decodeURIComponent(one[1]!));
      return s
        ? { status: 200, body: structuredClone(s) }
        : error(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'id', message: `No such subscription: '${one[1]}'` });
    }
    if (req.method === 'POST' && (url.pathname === '/v1/checkout/sessions' || url.pathname === '/v1/billing_portal/sessions')) {
      if (!/^application\/x-www-form-urlencoded\b/.test(req.headers['content-type'] ?? '')) {
        return error(400, { type: 'invalid_request_error', message: 'Invalid request: send the parameters form-encoded.' });
      }
      const form = Object.fromEntries(new URLSearchParams(raw));
      const key = req.headers['idempotency-key'];
      if (typeof key === 'string') {
        const seen = idempotency.get(`${url.pathname} ${key}`);
        if (seen) {
          if (seen.params !== raw) {
            return error(400, { type: 'idempotency_error', message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.` });
          }
          return { status: seen.status, body: seen.body, headers: { 'idempotent-replayed': 'true' } };
        }
      }
      const result = url.pathname === '/v1/checkout/sessions' ? checkout(form) : portal(form);
      if (typeof key === 'string') idempotency.set(`${url.pathname} ${key}`, { params: raw, status: result.status, body: result.body });
      if (losing > 0) {
        losing--;
        return { ...error(500, { type: 'api_error', message: 'An unknown error occurred' }), headers: { 'stripe-should-retry': 'true' } };
      }
      return result;
    }
    return error(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${url.pathname}).` });
  }

  async function list(query: URLSearchParams): Promise<{ status: number; body: unknown }> {
    const limitText = query.get('limit') ?? '10';
    const limit = /^\d+$/.test(limitText) ? Number(limitText) : NaN;
    if (!(limit >= 1 && limit <= 100)) {
      return error(400, { type: 'invalid_request_error', code: 'parameter_invalid_integer', param: 'limit', message: 'This value must be greater than or equal to 1 and less than or equal to 100.' });
    }
    const status = query.get('status');
    if (status !== null && status !== 'all' && status !== 'ended' && !ALL_STATUSES.includes(status)) {
      return error(400, { type: 'invalid_request_error', code: 'parameter_invalid_string', param: 'status', message: `Invalid status: must be one of ${[...ALL_STATUSES, 'ended', 'all'].join(', ')}` });
    }
    const customer = query.get('customer');
    let all = [...subscriptions.values()]
      .filter((s) => (status === 'all' ? true : status === null ? s.status !== 'canceled' : status === 'ended' ? ['canceled', 'incomplete_expired'].includes(s.status) : s.status === status))
      .filter((s) => customer === null || s.customer === customer)
      .sort((a, b) => b.created - a.created || (a.id < b.id ? 1 : -1));
    const after = query.get('starting_after');
    if (after !== null) {
      const index = all.findIndex((s) => s.id === after);
      if (index < 0) return error(400, { type: 'invalid_request_error', code: 'resource_missing', param: 'starting_after', message: `No such subscription: '${after}'` });
      all = all.slice(index + 1);
    }
    const data = all.slice(0, limit).map((s) => structuredClone(s));
    await standin.onList?.(query);
    return { status: 200, body: { object: 'list', data, has_more: all.length > limit, url: '/v1/subscriptions' } };
  }

  function checkout(form: Record<string, string>): { status: number; body: unknown } {
    const missing = ['mode', 'line_items[0][price]', 'success_url'].find((p) => !form[p]);
    if (missing) return error(400, { type: 'invalid_request_error', code: 'parameter_missing', param: missing, message: `Missing required param: ${missing}.` });
    if (!['payment', 'setup', 'subscription'].includes(form.mode!)) {
      return error(400, { type: 'invalid_request_error', code: 'parameter_invalid_string', param: 'mode', message: 'Invalid mode.' });
    }
    if (!prices.has(form['line_items[0][price]']!)) {
      return error(400, { type: 'invalid_request_error', code: 'resource_missing', param: 'line_items[0][price]', message: `No such price: '${form['line_items[0][price]']}'` });
    }
    if (form.customer && !customers.has(form.customer)) {
      return error(400, { type: 'invalid_request_error', code: 'resource_missing', param: 'customer', message: `No such customer: '${form.customer}'` });
    }
    if (form.customer && form.customer_email) {
      return error(400, { type: 'invalid_request_error', param: 'customer_email', message: 'You may only specify one of these parameters: customer, customer_email.' });
    }
    if (form.client_reference_id !== undefined && form.client_reference_id.length > 200) {
      return error(400, { type: 'invalid_request_error', code: 'string_length_exceeded', param: 'client_reference_id', message: 'client_reference_id is too long (200 characters at most).' });
    }
    const id = `cs_test_${randomBytes(24).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const metadata = Object.fromEntries(Object.entries(form).filter(([k]) => /^metadata\[/.test(k)).map(([k, v]) => [k.slice(9, -1), v]));
    const session = {
      id,
      object: 'checkout.session',
      cancel_url: form.cancel_url ?? null,
      client_reference_id: form.client_reference_id ?? null,
      created,
      customer: form.customer ?? null,
      customer_email: form.customer_email ?? null,
      expires_at: created + 24 * 3600,
      livemode: false,
      metadata,
      mode: form.mode,
      payment_status: 'unpaid',
      status: 'open',
      subscription: null,
      success_url: form.success_url,
      url: `https://checkout.stripe.com/c/pay/${id}`,
    };
    standin.checkoutSessions.push({ ...session, params: form });
    return { status: 200, body: session };
  }

  function portal(form: Record<string, string>): { status: number; body: unknown } {
    if (!form.customer) return error(400, { type: 'invalid_request_error', code: 'parameter_missing', param: 'customer', message: 'Missing required param: customer.' });
    if (!customers.has(form.customer)) {
      return error(400, { type: 'invalid_request_error', code: 'resource_missing', param: 'customer', message: `No such customer: '${form.customer}'` });
    }
    const session = {
      id: `bps_${randomBytes(12).toString('hex')}`,
      object: 'billing_portal.session',
      configuration: 'bpc_standin',
      created: Math.floor(Date.now() / 1000),
      customer: form.customer,
      flow: null,
      livemode: false,
      locale: null,
      on_behalf_of: null,
      return_url: form.return_url ?? null,
      url: `https://billing.stripe.com/p/session/test_${randomBytes(16).toString('hex')}`,
    };
    standin.portalSessions.push({ ...session, params: form });
    return { status: 200, body: session };
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const raw = Buffer.concat(chunks).toString('utf8');
      answer(req, url, raw).then(
        ({ status, body, headers }) => {
          requests.push({
            method: req.method ?? '',
            path: `${url.pathname}${url.search}`,
            form: req.method === 'POST' ? Object.fromEntries(new URLSearchParams(raw)) : {},
            idempotencyKey: typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'] : null,
            status,
          });
          res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_${randomBytes(7).toString('hex')}`, ...headers });
          res.end(JSON.stringify(body));
        },
        (e) => {
          res.writeHead(500);
          res.end(String(e));
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  standin.url = `http://127.0.0.1:${address.port}`;
  return standin;
}
