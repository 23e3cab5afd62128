// A local stand-in for Figma's Payments REST API (GET /v1/payments), on 127.0.0.1, shaped like
// figma/rest-api-spec: 200 answers { status, error: false, meta: { user_id, resource_id,
// resource_type, payment_status: { type } (or { status }, the HTML docs' spelling),
// date_of_purchase? } }; errors { status, error: true, message }. It counts the calls it receives,
// and can hold every call until released (a slow Figma, without timers).
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInUser {
  figmaUserId: string;
  /** Any string: PAID, TRIAL, UNPAID, or something Figma does not document (NOT_SUPPORTED). */
  status: string;
  /** 'status' answers with the HTML docs' field name instead of the spec's `type`. */
  spelling?: 'type' | 'status';
  dateOfPurchase?: string;
  /** The plugin the token was minted for (default STANDIN_PLUGIN_ID); null: the answer names none. */
  resourceId?: string | null;
}

/** The plugin id the stand-in's answers name unless told otherwise: configure figma.pluginId with it. */
export const STANDIN_PLUGIN_ID = '1234567890123456789';

/** What the next answers are, beyond the normal one: an HTTP error, or a slow answer. */
export type Failure = { kind: 'http'; status: 400 | 401 | 403 | 404 | 429 | 500 | 502 | 503 } | { kind: 'slow'; ms: number } | { kind: 'garbage' };

export interface FigmaStandIn {
  url: string;
  /** Personal access token it accepts. */
  pat: string;
  /** payment token -> the user it belongs to. */
  tokens: Map<string, StandInUser>;
  /** Calls received, and the payment tokens and X-Figma-Token values they carried. */
  calls: { paymentToken: string | null; pat: string | null }[];
  /** Set to make every following call fail this way (null: answer normally). */
  failure: Failure | null;
  /** Milliseconds every normal answer waits first (to let concurrent checks pile up). */
  delayMs: number;
  /**
   * Slow on demand, without timers: after hold(), every call (answered normally or refused) waits
   * until release(). `waiting` is how many calls are waiting now; untilWaiting(n) resolves when n are.
   */
  hold(): void;
  release(): void;
  readonly waiting: number;
  untilWaiting(n: number): Promise<void>;
  close(): Promise<void>;
}

const ERROR_MESSAGES: Record<number, string> = {
  400: 'Invalid plugin payment token',
  401: 'Invalid token',
  403: 'Forbidden',
  404: 'Not found',
  429: 'Rate limit exceeded',
  500: 'Internal server error',
  502: 'Bad gateway',
  503: 'Service unavailable',
};

export async function startFigmaStandIn(pat: string): Promise<FigmaStandIn> {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let gate: Promise<void> | null = null;
  let open = () => {};
  let waiting = 0;
  let watchers: { n: number; resolve: () => void }[] = [];
  const notify = () => {
    watchers = watchers.filter((w) => (waiting >= w.n ? (w.resolve(), false) : true));
  };
  const state = {
    pat, tokens: new Map(), calls: [], failure: null, delayMs: 0,
    hold() {
      if (!gate) gate = new Promise<void>((resolve) => (open = resolve));
    },
    release() {
      open();
      gate = null;
    },
    get waiting() {
      return waiting;
    },
    untilWaiting(n: number) {
      return new Promise<void>((resolve) => {
        watchers.push({ n, resolve });
        notify();
      });
    },
  } as Omit<FigmaStandIn, 'url' | 'close'>;
  const server = createServer(async (req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const given = typeof req.headers['x-figma-token'] === 'string' ? req.headers['x-figma-token'] : null;
    const paymentToken = url.searchParams.get('plugin_payment_token');
    state.calls.push({ paymentToken, pat: given });
    if (gate) {
      waiting += 1;
      notify();
      await gate;
      waiting -= 1;
    }
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(body));
    };
    const error = (status: number) => send(status, { status, error: true, message: ERROR_MESSAGES[status] ?? 'Error' });
    if (req.method !== 'GET' || url.pathname !== '/v1/payments') return error(404);
    const failure = state.failure;
    if (failure?.kind === 'http') return error(failure.status);
    if (failure?.kind === 'slow') await sleep(failure.ms);
    if (failure?.kind === 'garbage') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end('<html>maintenance</html>');
    }
    if (given !== state.pat) return error(401);
    const user = paymentToken ? state.tokens.get(paymentToken) : undefined;
    if (!user) return error(400);
    if (state.delayMs) await sleep(state.delayMs);
    const field = user.spelling ?? 'type';
    send(200, {
      status: 200,
      error: false,
      meta: {
        user_id: user.figmaUserId,
        ...(user.resourceId === null ? {} : { resource_id: user.resourceId ?? STANDIN_PLUGIN_ID }),
        resource_type: 'PLUGIN',
        payment_status: { [field]: user.status },
        ...(user.dateOfPurchase ? { date_of_purchase: user.dateOfPurchase } : {}),
      },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const standIn = state as FigmaStandIn;
  const standInClose = () =>
    new Promise<void>((resolve) => {
      standIn.release();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  standIn.url = `http://127.0.0.1:${port}`;
  standIn.close = standInClose;
  return standIn;
}
