// The `dashboard` command's web server: Node's http, the handler, and an access key. The key is
// random per start, printed once in the URL; a GET carrying it (?key=) is answered with a redirect
// to the same page without it and a session cookie, so the key leaves the address bar and history.
//
// The cookie never holds the key: browsers scope cookies by host, not port, so every other server
// on the same host (any port) receives it. It holds a random session id, known only to this
// process (in memory, as a digest), bound to the Host it was issued for, ended after
// sessionSeconds idle or 12 hours, and at close. And by default the server listens on a random
// loopback address (127.x.y.z; Linux routes all of 127/8 to the loopback interface): its cookies
// then reach no server on 127.0.0.1 or localhost at all. Comparisons in constant time.
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Queryable } from '../core/db.ts';
import { createDashboardHandler, CONTENT_SECURITY_POLICY, type DashboardHandler, type DashboardOptions } from './handler.ts';

export interface DashboardServerOptions extends Omit<DashboardOptions, 'authorize' | 'basePath'> {
  /**
   * Default: a random loopback address 127.x.y.z, new at each start (only this machine, and a host
   * no other local server shares); where only 127.0.0.1 can be bound (macOS), 127.0.0.1.
   */
  host?: string;
  /** Default 7300; 0 picks a free port. */
  port?: number;
  /** Default: 32 random bytes, base64url. */
  key?: string;
  /** A session ends after this many seconds without a request (default 1800; at most 12 hours in all). */
  sessionSeconds?: number;
}

export interface DashboardServer {
  /** http://host:port/?key=… : what to open. */
  url: string;
  origin: string;
  /** The address it listens on (the random loopback address by default). */
  host: string;
  key: string;
  cookieName: string;
  /** Ends every session: their cookies are refused from now on (the key still opens a new one). */
  endSessions(): void;
  close(): Promise<void>;
}

const SESSION_MAX_MS = 12 * 3600 * 1000;
const MAX_SESSIONS = 100;

/** A random address of 127.0.0.0/8, avoiding .0 and .255 in the last byte and 127.0.0.1 itself. */
export function randomLoopbackHost(): string {
  for (;;) {
    const host = `127.${randomInt(0, 256)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
    if (host !== '127.0.0.1') return host;
  }
}

const MAX_BODY = 16 * 1024;

/** Is `candidate` the key? Constant time in the candidate's content (both sides hashed first). */
export function keyMatches(candidate: string | null | undefined, key: string): boolean {
  if (typeof candidate !== 'string' || candidate.length === 0 || candidate.length > 512) return false;
  const a = createHash('sha256').update(candidate).digest();
  const b = createHash('sha256').update(key).digest();
  return timingSafeEqual(a, b);
}

export function readCookie(header: string | null, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return null;
}

const digest = (text: string) => createHash('sha256').update(text).digest('base64url');

export async function startDashboardServer(db: Queryable & { description?: string }, options: DashboardServerOptions = {}): Promise<DashboardServer> {
  const key = options.key ?? randomBytes(32).toString('base64url');
  const idleMs = (options.sessionSeconds ?? 1800) * 1000;
  if (!Number.isInteger(options.sessionSeconds ?? 1800) || idleMs < 1000 || idleMs > SESSION_MAX_MS) {
    throw new TypeError('startDashboardServer: sessionSeconds must be a whole number from 1 to 43200');
  }
  let cookieName = 'fpa_dashboard';
  // Session id digest -> the Host it was issued for, and when it ends. Insertion order: oldest first.
  const sessions = new Map<string, { host: string; idleUntil: number; endsAt: number }>();

  function openSession(host: string): string {
    const id = randomBytes(32).toString('base64url');
    const now = Date.now();
    sessions.set(digest(id), { host, idleUntil: now + idleMs, endsAt: now + SESSION_MAX_MS });
    while (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
    return id;
  }

  /** The session of this cookie value, for a request to this Host; slides its idle end. */
  function sessionValid(id: string | null, host: string | null): boolean {
    if (typeof id !== 'string' || id.length !== 43 || !/^[A-Za-z0-9_-]+$/.test(id)) return false;
    const key = digest(id);
    const session = sessions.get(key);
    if (!session) return false;
    const now = Date.now();
    if (now >= session.idleUntil || now >= session.endsAt) {
      sessions.delete(key);
      return false;
    }
    if (!keyMatches(host, session.host)) return false;
    session.idleUntil = now + idleMs;
    return true;
  }

  const handler: DashboardHandler = createDashboardHandler(db, {
    ...options,
    // The session cookie, or the key itself in the query (a POST made with the printed URL, a script).
    authorize: (request) =>
      sessionValid(readCookie(request.headers.get('cookie'), cookieName), request.headers.get('host')) ||
      keyMatches(new URL(request.url).searchParams.get('key'), key),
    // Console forms are bound to the browser's session: a form of one session is refused in another.
    csrfSession: (request) => digest(readCookie(request.headers.get('cookie'), cookieName) ?? ''),
  });

  const server: Server = createServer((req, res) => {
    serve(req, res).catch((error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`500: ${error instanceof Error ? error.message : String(error)}`);
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? `${host}`}`);
    const given = url.searchParams.get('key');
    if (given !== null && req.method === 'GET' && keyMatches(given, key)) {
      const clean = new URL(url);
      clean.searchParams.delete('key');
      res.writeHead(303, {
        location: `${clean.pathname}${clean.search}`,
        'set-cookie': `${cookieName}=${openSession(req.headers.host ?? '')}; HttpOnly; SameSite=Strict; Path=/`,
        'cache-control': 'no-store',
        'referrer-policy': 'no-referrer',
        'content-security-policy': CONTENT_SECURITY_POLICY,
      });
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) {
        res.writeHead(413, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('413: request body too large');
        return;
      }
      chunks.push(chunk as Buffer);
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
    }
    const method = req.method ?? 'GET';
    const request = new Request(url, { method, headers, body: method === 'GET' || method === 'HEAD' || chunks.length === 0 ? undefined : Buffer.concat(chunks) });
    const response = await handler(request);
    const out: Record<string, string> = {};
    response.headers.forEach((value, name) => (out[name] = value));
    res.writeHead(response.status, out);
    res.end(method === 'HEAD' ? undefined : Buffer.from(await response.arrayBuffer()));
  }

  const listen = (on: string) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 7300, on, () => {
        server.off('error', reject);
        resolve();
      });
    });
  let host = options.host ?? randomLoopbackHost();
  try {
    await listen(host);
  } catch (error) {
    // Only 127.0.0.1 is configured on this machine's loopback interface (macOS): use it.
    if (options.host !== undefined || (error as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw error;
    host = '127.0.0.1';
    await listen(host);
  }
  const port = (server.address() as AddressInfo).port;
  // Cookies are per host, not per port: one name per port keeps two dashboards apart.
  cookieName = `fpa_dashboard_${port}`;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const origin = `http://${shownHost}:${port}`;
  return {
    url: `${origin}/?key=${key}`,
    origin,
    host,
    key,
    cookieName,
    endSessions: () => sessions.clear(),
    close: () =>
      new Promise<void>((resolve) => {
        sessions.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
