// The UI-iframe half of the plugin client: sign in through the system browser, authenticated
// calls with idempotent retries, sign-out. Browser-only APIs (fetch, crypto.getRandomValues,
// postMessage); no Node built-ins. Every outcome is a typed result the UI can switch on; nothing
// here throws for an HTTP status.
import { clientOutcome } from '../core/http-status.ts';
import { BRIDGE_TAG, isBridgeReply, isDeviceId, isStoredLease, isStoredSession, type BridgeOp, type CheckoutInterstitial, type PaymentStatusType, type StoredSession } from './protocol.ts';
import { LICENSE_REASONS, verifyLicenseLease, type LicenseReason } from './leases.ts';
import type { JSONWebKeySet } from 'jose';

/** The usage answer the backend sends with a 402 (consume's answer, as JSON). */
export interface UsageAnswerJson {
  allowed: boolean;
  reason: 'ok' | 'limit_reached' | 'batch_too_large';
  planSlug: string;
  used: number;
  usageLimit: number | null;
  remaining: number | null;
  batchLimit: number | null;
  /** ISO 8601, or null: never resets. */
  resetsAt: string | null;
  replayed: boolean;
}

/** The result of call(): switch on `kind`. */
export type CallResult<T> =
  | { kind: 'ok'; status: number; data: T }
  /** 401, or no stored session: the token is gone or refused; signIn() again. */
  | { kind: 'sign_in_again'; code: string }
  /** 402: the plan says no; `usage` says why (limit_reached / batch_too_large), remaining and resetsAt. */
  | { kind: 'upgrade'; usage: UsageAnswerJson }
  /** 410: a login (or other one-time step) expired or was used: start the flow over. */
  | { kind: 'start_over'; code: string }
  /** Any other 4xx: the request itself is wrong; retrying will not help. */
  | { kind: 'refused'; status: number; code: string }
  /** Network errors or 5xx on every attempt. */
  | { kind: 'unavailable'; status: number | null; attempts: number };

export type SignInResult =
  | { kind: 'ok'; expiresAt: Date }
  /** The login expired (ten minutes) or was used elsewhere: offer a new sign-in. */
  | { kind: 'start_over'; code: string }
  | { kind: 'refused'; status: number; code: string }
  | { kind: 'unavailable'; status: number | null; attempts: number }
  | { kind: 'cancelled' };

/**
 * The result of license(): switch on `kind`. `offline: true` means the server could not be reached
 * and the answer is the stored lease's, verified here: "could not check" never means unlicensed.
 */
export type LicenseResult =
  | { kind: 'licensed'; reason: 'valid'; planSlug: string | null; overage: boolean; offline: boolean; expiresAt: Date | null; refreshAfter: Date | null; heartbeatSeconds: number | null }
  /** The server (or a lease it signed) says no, with why: license_refunded, heartbeat_missed, not_activated_on_device, ... */
  | { kind: 'unlicensed'; reason: Exclude<LicenseReason, 'valid'>; offline: boolean; expiresAt: Date | null; refreshAfter: Date | null; heartbeatSeconds: number | null }
  /** Could not check and no usable lease (none stored, past its end, not verifiable): not known, not "unlicensed". */
  | { kind: 'unknown'; reason: 'no_lease' | 'lease_expired' | 'lease_invalid'; status: number | null }
  /** 401, or no session: sign in again. */
  | { kind: 'sign_in_again'; code: string }
  /** Another 4xx (e.g. 404: the backend has no lease route). */
  | { kind: 'refused'; status: number; code: string }
  | { kind: 'cancelled' };

/** The UI's side of the postMessage bridge to the main thread. */
export interface Bridge {
  request(op: BridgeOp): Promise<unknown>;
}

export interface RetryOptions {
  /** Attempts in all, first included (default 4). */
  attempts?: number;
  /** First back-off delay in ms (default 300), doubled each retry, capped by maxDelayMs (default 4000); with jitter. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface PollOptions {
  /** First wait before polling, in ms (default 1000); grows by 1.5 each poll up to maxDelayMs (default 5000). */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

export interface PluginClientOptions {
  /** Your backend, e.g. https://api.example.com (listed in the manifest's networkAccess.allowedDomains). */
  apiBaseUrl: string;
  /** Default: { login: '/plugin/login', poll: '/plugin/login/poll', signOut: '/plugin/sign-out' } (createPluginServer's routes). */
  routes?: { login?: string; poll?: string; signOut?: string; lease?: string };
  /**
   * Public keys to verify offline leases with, bundled with the plugin (auth.leases.jwks()). Default:
   * the keys the lease route answered with, kept beside the lease. Pinning is stronger: nothing in
   * clientStorage can then make a lease verify.
   */
  leaseJwks?: JSONWebKeySet;
  /** Clock skew allowed when verifying a lease offline, in seconds (default 300). */
  leaseClockToleranceSeconds?: number;
  /** Default: the main thread through parent.postMessage (see installPluginBridge). */
  bridge?: Bridge;
  retry?: RetryOptions;
  poll?: PollOptions;
  /** Opens the login page; return false when it could not. Default window.open, then figma.openExternal via the bridge. */
  openUrl?: (url: string) => boolean;
  /** Called with the login URL once the login has begun: show it as a link in case no browser opened. */
  onLoginUrl?: (url: string) => void;
  /**
   * Called with the login's confirmation code (e.g. "7KQ-M4D") once the login has begun: show it;
   * the login page shows the same code and asks the user to confirm they match (docs/server.md).
   */
  onLoginCode?: (code: string) => void;
  fetch?: typeof fetch;
}

export interface CallOptions {
  /** Default POST (GET when body is undefined). */
  method?: string;
  /** Default: one new random key per call(), reused by its retries. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

/** A random id from crypto.getRandomValues (randomUUID needs a secure context; this does not). */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });

/** The bridge to the main thread through window.parent (what Figma gives a plugin UI). */
export function createParentBridge(options: { timeoutMs?: number; target?: Window } = {}): Bridge {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const pending = new Map<string, { resolve(v: unknown): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> }>();
  window.addEventListener('message', (event: MessageEvent) => {
    const reply: unknown = (event.data as { pluginMessage?: unknown } | null)?.pluginMessage;
    if (!isBridgeReply(reply)) return;
    const waiting = pending.get(reply.id); // ids are random: a stray or forged reply matches nothing
    if (!waiting) return;
    pending.delete(reply.id);
    clearTimeout(waiting.timer);
    if (reply.ok) waiting.resolve(reply.value);
    else waiting.reject(new Error(reply.error));
  });
  return {
    request(op) {
      const id = randomId();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error('bridge_timeout'));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
        (options.target ?? window.parent).postMessage({ pluginMessage: { ...op, tag: BRIDGE_TAG, kind: 'request', id } }, '*');
      });
    },
  };
}

type Attempt =
  | { kind: 'response'; response: Response; attempts: number }
  | { kind: 'unavailable'; status: number | null; attempts: number }
  | { kind: 'cancelled' };

async function errorCode(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { error?: unknown };
    return typeof body?.error === 'string' ? body.error : `http_${response.status}`;
  } catch {
    return `http_${response.status}`;
  }
}

export function createPluginClient(options: PluginClientOptions) {
  const base = options.apiBaseUrl.replace(/\/+$/, '');
  const routes = { login: '/plugin/login', poll: '/plugin/login/poll', signOut: '/plugin/sign-out', lease: '/plugin/license/lease', ...options.routes };
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const retry = { attempts: 4, baseDelayMs: 300, maxDelayMs: 4000, ...options.retry };
  const poll = { initialDelayMs: 1000, maxDelayMs: 5000, ...options.poll };
  let bridge = options.bridge;
  const getBridge = () => (bridge ??= createParentBridge());
  let session: StoredSession | null = null;
  let restored = false;
  /** This install's device id, from the last sign-in's answer (also kept by the main thread). */
  let deviceId: string | null = null;

  /** The device id to send back at sign-in: known here, else the main thread's; null for a first sign-in. */
  async function knownDevice(): Promise<string | null> {
    if (deviceId) return deviceId;
    if (isDeviceId(session?.deviceId)) return session.deviceId;
    try {
      const stored = await getBridge().request({ op: 'device.get' });
      return isDeviceId(stored) ? stored : null;
    } catch {
      return null; // a main thread of an earlier release: the server mints a new device
    }
  }

  const backoff = (attempt: number) => Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);

  /** One logical request: the same init (so the same Idempotency-Key) on every attempt; retries network errors and 5xx only. */
  async function send(path: string, init: RequestInit, signal?: AbortSignal): Promise<Attempt> {
    let status: number | null = null;
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) return { kind: 'cancelled' };
      try {
        const response = await doFetch(`${base}${path}`, { ...init, ...(signal ? { signal } : {}) });
        if (clientOutcome(response.status) !== 'retry') return { kind: 'response', response, attempts: attempt };
        status = response.status;
        await response.body?.cancel();
      } catch {
        if (signal?.aborted) return { kind: 'cancelled' };
        status = null; // network error, CORS refusal or dropped connection
      }
      if (attempt >= retry.attempts) return { kind: 'unavailable', status, attempts: attempt };
      await sleep(backoff(attempt), signal);
    }
  }

  async function restore(): Promise<boolean> {
    if (session && Date.parse(session.expiresAt) > Date.now()) return true;
    session = null;
    try {
      const stored = await getBridge().request({ op: 'session.get' });
      session = isStoredSession(stored) && Date.parse(stored.expiresAt) > Date.now() ? stored : null;
    } catch {
      session = null;
    }
    restored = true;
    return session !== null;
  }

  async function forget(): Promise<void> {
    session = null;
    try {
      await getBridge().request({ op: 'session.clear' });
    } catch {
      // The main thread is gone (plugin closing): nothing stored can be cleared from here.
    }
  }

  /** The stored lease, verified offline for this user and install. */
  async function offlineLicense(status: number | null): Promise<LicenseResult> {
    let stored: unknown = null;
    try {
      stored = await getBridge().request({ op: 'lease.get' });
    } catch {
      stored = null;
    }
    const device = await knownDevice();
    if (!isStoredLease(stored) || !device) return { kind: 'unknown', reason: 'no_lease', status };
    const userId = session?.userId ?? stored.userId;
    const check = await verifyLicenseLease(stored.jwt, options.leaseJwks ?? (stored.jwks as JSONWebKeySet), {
      userId, deviceId: device,
      ...(options.leaseClockToleranceSeconds !== undefined ? { clockToleranceSeconds: options.leaseClockToleranceSeconds } : {}),
    });
    if (check.kind === 'expired') return { kind: 'unknown', reason: 'lease_expired', status };
    if (check.kind !== 'ok') return { kind: 'unknown', reason: 'lease_invalid', status };
    const { lease } = check;
    const common = { offline: true, expiresAt: lease.expiresAt, refreshAfter: lease.refreshAfter, heartbeatSeconds: null };
    return lease.licensed
      ? { kind: 'licensed', reason: 'valid', planSlug: lease.planSlug, overage: lease.overage, ...common }
      : { kind: 'unlicensed', reason: lease.reason as Exclude<LicenseReason, 'valid'>, ...common };
  }

  /** The lease route: a heartbeat of this device and a new signed lease, kept by the main thread; offline, the stored lease. */
  async function license(licenseOptions: { signal?: AbortSignal } = {}): Promise<LicenseResult> {
    if (!session || !restored || Date.parse(session.expiresAt) <= Date.now()) await restore();
    if (!session) {
      // No session (expired offline): the stored lease still answers until it ends.
      const offline = await offlineLicense(null);
      return offline.kind === 'unknown' && offline.reason === 'no_lease' ? { kind: 'sign_in_again', code: 'not_signed_in' } : offline;
    }
    const sent = await send(routes.lease, { method: 'POST', headers: { authorization: `Bearer ${session.token}` } }, licenseOptions.signal);
    if (sent.kind === 'cancelled') return sent;
    if (sent.kind === 'unavailable') return offlineLicense(sent.status);
    const { response } = sent;
    const outcome = clientOutcome(response.status);
    if (outcome === 'sign_in_again') {
      const code = await errorCode(response);
      await forget();
      return { kind: 'sign_in_again', code };
    }
    if (outcome !== 'ok') return { kind: 'refused', status: response.status, code: await errorCode(response) };
    const body = (await response.json()) as {
      licensed: boolean; reason: LicenseReason; planSlug: string | null; overage: boolean; deviceId: string; heartbeatSeconds: number | null;
      lease: { jwt: string; expiresAt: string; refreshAfter: string } | null; jwks: JSONWebKeySet | null;
    };
    const userId = session.userId ?? (await sessionUserId());
    if (body.lease && body.jwks && userId && isDeviceId(body.deviceId)) {
      const stored = { jwt: body.lease.jwt, jwks: body.jwks as { keys: Array<Record<string, unknown>> }, userId, deviceId: body.deviceId };
      await getBridge().request({ op: 'lease.set', lease: stored }).catch(() => undefined);
    }
    const common = {
      offline: false,
      expiresAt: body.lease ? new Date(body.lease.expiresAt) : null,
      refreshAfter: body.lease ? new Date(body.lease.refreshAfter) : null,
      heartbeatSeconds: typeof body.heartbeatSeconds === 'number' ? body.heartbeatSeconds : null,
    };
    if (body.licensed && body.reason === 'valid') return { kind: 'licensed', reason: 'valid', planSlug: body.planSlug, overage: body.overage === true, ...common };
    const reason = LICENSE_REASONS.includes(body.reason) && body.reason !== 'valid' ? body.reason : 'no_license';
    return { kind: 'unlicensed', reason: reason as Exclude<LicenseReason, 'valid'>, ...common };
  }

  /** The user id from the session: the sign-in answer's, else the token's own `sub` (read, not verified). */
  async function sessionUserId(): Promise<string | null> {
    if (session?.userId) return session.userId;
    try {
      const part = session?.token.split('.')[1] ?? '';
      const sub = (JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: unknown }).sub;
      return typeof sub === 'string' && sub !== '' ? sub : null;
    } catch {
      return null;
    }
  }

  function open(url: string): Promise<boolean> {
    try {
      if (options.openUrl ? options.openUrl(url) : window.open(url, '_blank') !== null) return Promise.resolve(true);
    } catch {
      // fall through to the main thread
    }
    return getBridge().request({ op: 'open', url }).then(() => true, () => false);
  }

  return {
    /** Loads the stored session from the main thread; true when one is valid. call() does this itself. */
    restore,

    /**
     * Whether this device is licensed: the server's answer (a heartbeat of this device, and a new
     * signed lease kept in figma.clientStorage), or offline the stored lease's, verified here.
     */
    license,

    /**
     * Calls license() now and again: every heartbeatSeconds while a heartbeat window applies, else
     * when the lease asks to be refreshed (refreshAfter), and every minute while offline. Each
     * result goes to onResult. Returns a function that stops it.
     */
    keepLicensed(onResult: (result: LicenseResult) => void, keepOptions: { offlineRetryMs?: number } = {}): () => void {
      const controller = new AbortController();
      const offlineRetryMs = keepOptions.offlineRetryMs ?? 60_000;
      void (async () => {
        while (!controller.signal.aborted) {
          const result = await license({ signal: controller.signal });
          if (controller.signal.aborted || result.kind === 'cancelled') return;
          onResult(result);
          if (result.kind === 'sign_in_again') return;
          let waitMs = offlineRetryMs;
          if ((result.kind === 'licensed' || result.kind === 'unlicensed') && !result.offline) {
            const untilRefresh = result.refreshAfter ? result.refreshAfter.getTime() - Date.now() : offlineRetryMs;
            waitMs = Math.max(1000, Math.min(untilRefresh, result.heartbeatSeconds !== null ? result.heartbeatSeconds * 1000 : untilRefresh));
          }
          await sleep(waitMs, controller.signal);
        }
      })();
      return () => controller.abort();
    },

    /**
     * The signed-in user's id (null when signed out): what verifyEntitlementSnapshot expects. From
     * the sign-in answer, else the plugin token's own `sub` (our token, read, not verified here).
     */
    async userId(): Promise<string | null> {
      if (!session || !restored || Date.parse(session.expiresAt) <= Date.now()) await restore();
      if (!session) return null;
      if (session.userId) return session.userId;
      try {
        const part = session.token.split('.')[1] ?? '';
        const sub = (JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: unknown }).sub;
        return typeof sub === 'string' && sub !== '' ? sub : null;
      } catch {
        return null;
      }
    },

    /** Whether a session is loaded and unexpired (after restore() or signIn()). */
    get signedIn(): boolean {
      return session !== null && Date.parse(session.expiresAt) > Date.now();
    },

    /**
     * Begins a login, opens the system browser, polls until done or expired, and stores the token via the main thread.
     * `method: 'figma'` asks for Sign in with Figma when the server offers the website login too (docs/sign-in.md).
     */
    async signIn(signInOptions: { signal?: AbortSignal; method?: 'figma' | 'website' } = {}): Promise<SignInResult> {
      const { signal, method } = signInOptions;
      const json = { 'content-type': 'application/json' };
      // The device id this install was given before: the server keeps it when it is this user's.
      const device = await knownDevice();
      const begun = await send(method ? `${routes.login}?method=${method === 'figma' ? 'figma' : 'website'}` : routes.login, { method: 'POST', headers: json, body: JSON.stringify(device ? { deviceId: device } : {}) }, signal);
      if (begun.kind !== 'response') return begun;
      if (!begun.response.ok) {
        const code = await errorCode(begun.response);
        return clientOutcome(begun.response.status) === 'start_over' ? { kind: 'start_over', code } : { kind: 'refused', status: begun.response.status, code };
      }
      const { readKey, loginUrl, expiresAt, code } = (await begun.response.json()) as { readKey: string; loginUrl: string; expiresAt: string; code?: string };
      if (typeof code === 'string') options.onLoginCode?.(code);
      options.onLoginUrl?.(loginUrl);
      await open(loginUrl);
      const deadline = Date.parse(expiresAt);
      let delay = poll.initialDelayMs;
      while (Date.now() < deadline) {
        await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), signal);
        if (signal?.aborted) return { kind: 'cancelled' };
        delay = Math.min(poll.maxDelayMs, delay * 1.5);
        const polled = await send(routes.poll, { method: 'POST', headers: json, body: JSON.stringify({ readKey }) }, signal);
        if (polled.kind === 'cancelled') return polled;
        if (polled.kind === 'unavailable') continue; // offline for a moment: keep polling until the deadline
        const { response } = polled;
        if (clientOutcome(response.status) === 'start_over') return { kind: 'start_over', code: await errorCode(response) };
        if (!response.ok) return { kind: 'refused', status: response.status, code: await errorCode(response) };
        const answer = (await response.json()) as { status: string; token?: string; tokenId?: string; userId?: string; expiresAt?: string; deviceId?: string };
        if (answer.status !== 'done' || !answer.token || !answer.expiresAt) continue;
        if (isDeviceId(answer.deviceId)) deviceId = answer.deviceId;
        session = {
          token: answer.token,
          expiresAt: answer.expiresAt,
          ...(answer.tokenId ? { tokenId: answer.tokenId } : {}),
          ...(answer.userId ? { userId: answer.userId } : {}),
          ...(isDeviceId(answer.deviceId) ? { deviceId: answer.deviceId } : {}),
        };
        await getBridge().request({ op: 'session.set', session });
        restored = true;
        return { kind: 'ok', expiresAt: new Date(answer.expiresAt) };
      }
      return { kind: 'start_over', code: 'login_expired' };
    },

    /** An authenticated call: bearer token, one Idempotency-Key for all its retries, typed result. */
    async call<T = unknown>(path: string, body?: unknown, callOptions: CallOptions = {}): Promise<CallResult<T> | { kind: 'cancelled' }> {
      if (!session || !restored || Date.parse(session.expiresAt) <= Date.now()) await restore();
      if (!session) return { kind: 'sign_in_again', code: 'not_signed_in' };
      const headers: Record<string, string> = {
        authorization: `Bearer ${session.token}`,
        'idempotency-key': callOptions.idempotencyKey ?? randomId(),
      };
      const method = callOptions.method ?? (body === undefined ? 'GET' : 'POST');
      if (body !== undefined) headers['content-type'] = 'application/json';
      const sent = await send(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) }, callOptions.signal);
      if (sent.kind !== 'response') return sent;
      const { response } = sent;
      // The status → meaning table is shared with the server (src/core/http-status.ts).
      const outcome = clientOutcome(response.status);
      if (outcome === 'ok') return { kind: 'ok', status: response.status, data: (await response.json()) as T };
      if (outcome === 'upgrade') return { kind: 'upgrade', usage: (await response.json()) as UsageAnswerJson };
      const code = await errorCode(response);
      if (outcome === 'sign_in_again') {
        await forget();
        return { kind: 'sign_in_again', code };
      }
      if (outcome === 'start_over') return { kind: 'start_over', code };
      return { kind: 'refused', status: response.status, code };
    },

    /** Forgets the token here and in figma.clientStorage, and asks the backend to revoke it (routes.signOut; '' to skip). */
    async signOut(): Promise<void> {
      if (routes.signOut && session) {
        await send(routes.signOut, { method: 'POST', headers: { authorization: `Bearer ${session.token}` } }).catch(() => undefined);
      }
      await forget();
    },

    /** Figma's own checkout (main thread, "payments" permission): what figma.payments.status says after it. */
    async checkout(interstitial?: CheckoutInterstitial): Promise<PaymentStatusType | 'unavailable'> {
      try {
        return (await getBridge().request({ op: 'payments.checkout', ...(interstitial ? { interstitial } : {}) })) as PaymentStatusType;
      } catch {
        return 'unavailable';
      }
    },
  };
}

export type PluginClient = ReturnType<typeof createPluginClient>;
