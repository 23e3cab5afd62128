// The `dashboard` command's web server: Node's http, the handler, and an access key. The key is
// random per start, printed once in the URL; a request carrying it (?key=) is answered with a
// redirect to the same page without it and an HttpOnly SameSite=Strict cookie, so the key leaves
// the address bar and history and every link works. Comparison in constant time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Queryable } from '../core/db.ts';
import { createDashboardHandler, CONTENT_SECURITY_POLICY, type DashboardHandler, type DashboardOptions } from './handler.ts';

export interface DashboardServerOptions extends Omit<DashboardOptions, 'authorize' | 'basePath'> {
  /** Default 127.0.0.1: only this machine. */
  host?: string;
  /** Default 7300; 0 picks a free port. */
  port?: number;
  /** Default: 32 random bytes, base64url. */
  key?: string;
}

export interface DashboardServer {
  /** http://host:port/?key=… : what to open. */
  url: string;
  origin: string;
  key: string;
  cookieName: string;
  close(): Promise<void>;
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

export async function startDashboardServer(db: Queryable & { description?: string }, options: DashboardServerOptions = {}): Promise<DashboardServer> {
  const host = options.host ?? '127.0.0.1';
  const key = options.key ?? randomBytes(32).toString('base64url');
  let cookieName = 'fpa_dashboard';
  const handler: DashboardHandler = createDashboardHandler(db, {
    ...options,
    // The cookie, or the key itself in the query (a POST made with the printed URL, a script).
    authorize: (request) =>
      keyMatches(readCookie(request.headers.get('cookie'), cookieName), key) || keyMatches(new URL(request.url).searchParams.get('key'), key),
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
        'set-cookie': `${cookieName}=${key}; HttpOnly; SameSite=Strict; Path=/`,
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

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7300, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  // Cookies are per host, not per port: one name per port keeps two dashboards apart.
  cookieName = `fpa_dashboard_${port}`;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const origin = `http://${shownHost}:${port}`;
  return {
    url: `${origin}/?key=${key}`,
    origin,
    key,
    cookieName,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
