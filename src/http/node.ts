// A tiny adapter between Node's http server and a web-standard handler (Request -> Response), for
// running a backend locally (`npm run example:backend`). Frameworks (Next.js, Hono, Bun, Deno)
// need none of this: they hand the handler a Request directly.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { Handler } from './cors.ts';

/** The web Request for a Node request; the body streams, it is not buffered. */
export function toRequest(req: IncomingMessage, origin: string): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const controller = new AbortController();
  req.socket.once('close', () => controller.abort());
  return new Request(new URL(req.url ?? '/', origin), {
    method,
    headers,
    signal: controller.signal,
    ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream, duplex: 'half' } : {}),
  } as RequestInit);
}

/** Writes a web Response to a Node response. */
export async function writeResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length) headers['set-cookie'] = cookies;
  res.writeHead(response.status, response.statusText, headers);
  if (!response.body) {
    res.end();
    return;
  }
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
  res.end();
}

/** A Node request listener running the handler; a throw becomes a bare 500. */
export function toNodeListener(handler: Handler, options: { onError?: (error: unknown) => void } = {}) {
  const onError = options.onError ?? ((error: unknown) => console.error(error));
  return async (req: IncomingMessage, res: ServerResponse) => {
    const origin = `http://${req.headers.host ?? 'localhost'}`;
    try {
      await writeResponse(await handler(toRequest(req, origin)), res);
    } catch (error) {
      onError(error);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"internal_error"}');
      else res.destroy();
    }
  };
}

export interface Served {
  server: Server;
  /** http://host:port, no trailing slash. */
  url: string;
  close(): Promise<void>;
}

/** Serves the handler on host:port (port 0: any free port). Default host 127.0.0.1. */
export async function serve(handler: Handler, options: { port?: number; host?: string; onError?: (error: unknown) => void } = {}): Promise<Served> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer(toNodeListener(handler, options));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
