// A tiny adapter between Node's http server and a web-standard handler (Request -> Response), for
// running a backend locally (`npm run example:backend`). Frameworks (Next.js, Hono, Bun, Deno)
// need none of this: they hand the handler a Request directly.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { Handler } from './cors.ts';
import { jsonBytes } from './json-bytes.ts';
import { directHandlers, directRequests, type BodySource } from './direct.ts';

/**
 * The web Request for a Node request; the body streams, it is not buffered. Cancelling the body
 * (a handler that stopped reading past a byte cap) stops reading the socket; toNodeListener then
 * closes the connection once the answer is written, so the rest of the upload is never read.
 * The request's signal aborts when the client goes away before the answer is written: pass the
 * ServerResponse (toNodeListener does) so that this is watched on the response, which ends with
 * it; without it the socket is watched, which on a keep-alive connection outlives the request.
 * The signal is made the first time `request.signal` is read (most handlers never read it): one
 * 'close' listener per request until then, no AbortController. A signal read after the client left
 * is already aborted.
 */
export function toRequest(req: IncomingMessage, origin: string, res?: ServerResponse): Request {
  return makeRequest(req, origin, res, false);
}

/**
 * toRequest, or for a direct handler (direct.ts: createPluginServer's, served as it is) a Request
 * without a body stream whose body is read from `req` by the server (server/body.ts).
 */
function makeRequest(req: IncomingMessage, origin: string, res: ServerResponse | undefined, direct: boolean): Request {
  // Name/value pairs, not a Headers object: the Request copies them into its own Headers anyway.
  const headers: [string, string][] = [];
  const given = req.headers;
  for (const name in given) {
    const value = given[name];
    if (value === undefined) continue;
    if (typeof value === 'string') headers.push([name, value]);
    else for (const v of value) headers.push([name, v]);
  }
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const request = new Request(new URL(req.url ?? '/', origin), {
    method,
    headers,
    ...(hasBody && !direct ? { body: bodyStream(req), duplex: 'half' } : {}),
  } as RequestInit);
  if (direct) directRequests.set(request, hasBody ? bodySource(req) : null);
  let left = false;
  let controller: AbortController | null = null;
  const onClose = () => {
    if (res && res.writableFinished) return;
    left = true;
    controller?.abort();
  };
  if (res) res.once('close', onClose);
  else req.socket.once('close', onClose);
  Object.defineProperty(request, 'signal', {
    configurable: true,
    enumerable: false,
    get(): AbortSignal {
      if (!controller) {
        controller = new AbortController();
        if (left) controller.abort();
      }
      return controller.signal;
    },
  });
  return request;
}

/** A pull stream over the request: one chunk read per pull, so nothing piles up unread. */
function bodyStream(req: IncomingMessage): ReadableStream<Uint8Array> {
  let done = false;
  const finish = () => {
    done = true;
    req.removeAllListeners('data');
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      req.pause();
      req.on('data', (chunk: Uint8Array) => {
        req.pause();
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      });
      req.once('end', () => {
        if (!done) controller.close();
        finish();
      });
      req.once('error', (error) => {
        if (!done) controller.error(error);
        finish();
      });
    },
    pull() {
      if (!done) req.resume();
    },
    cancel() {
      finish();
      req.pause();
    },
  }, { highWaterMark: 0 });
}

/**
 * The body of a direct handler's request: read once, whole, chunk by chunk under the cap; past it,
 * reading stops (toNodeListener then closes the connection after the answer, as for a cancelled
 * stream). A client that goes away mid-upload rejects the read, as it errors the stream.
 */
function bodySource(req: IncomingMessage): BodySource {
  let used = false;
  return {
    read(cap) {
      if (used) return Promise.reject(new TypeError('the request body was already read'));
      used = true;
      return new Promise<Uint8Array | null>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const stop = () => {
          req.off('data', onData);
          req.off('end', onEnd);
          req.off('error', onError);
        };
        const onData = (chunk: Buffer) => {
          size += chunk.byteLength;
          if (size > cap) {
            stop();
            req.pause();
            resolve(null);
            return;
          }
          chunks.push(chunk);
        };
        const onEnd = () => {
          stop();
          // A fresh copy, as the stream reader's was: never a view into Node's pooled buffers.
          const body = new Uint8Array(size);
          let offset = 0;
          for (const chunk of chunks) {
            body.set(chunk, offset);
            offset += chunk.byteLength;
          }
          resolve(body);
        };
        const onError = (error: Error) => {
          stop();
          reject(error);
        };
        req.on('data', onData);
        req.once('end', onEnd);
        req.once('error', onError);
      });
    },
    cancel() {
      used = true;
      req.pause();
    },
  };
}

/** Writes a web Response to a Node response. */
export async function writeResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length) headers['set-cookie'] = cookies;
  // A small body of declared length (the plugin server's JSON answers) is written with the headers
  // in one piece; any other body streams chunk by chunk as it comes.
  const bytes = jsonBytes.get(response);
  if (bytes && !response.bodyUsed) {
    // A JSON answer of the plugin server: its bytes are known, the body stream is never read.
    res.writeHead(response.status, response.statusText, headers);
    res.end(bytes);
    return;
  }
  const length = response.headers.get('content-length');
  if (response.body && length !== null && /^\d{1,6}$/.test(length) && Number(length) <= SMALL_BODY_BYTES) {
    const body = new Uint8Array(await response.arrayBuffer());
    res.writeHead(response.status, response.statusText, headers);
    res.end(body);
    return;
  }
  res.writeHead(response.status, response.statusText, headers);
  if (!response.body) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    res.write(value);
  }
  res.end();
}

/** Bodies up to this many declared bytes are buffered and written in one piece. */
const SMALL_BODY_BYTES = 64 * 1024;

/** A Node request listener running the handler; a throw becomes a bare 500. */
export function toNodeListener(handler: Handler, options: { onError?: (error: unknown) => void } = {}) {
  const onError = options.onError ?? ((error: unknown) => console.error(error));
  const direct = directHandlers.has(handler);
  return async (req: IncomingMessage, res: ServerResponse) => {
    const origin = `http://${req.headers.host ?? 'localhost'}`;
    try {
      await writeResponse(await handler(makeRequest(req, origin, res, direct)), res);
    } catch (error) {
      onError(error);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"internal_error"}');
      else res.destroy();
    }
    // Answered before the whole body arrived (a byte cap, a refusal before reading): close the
    // connection instead of reading (or keeping alive behind) the rest of an upload of any size.
    if (!req.complete) {
      if (res.writableFinished) closeUnread(req);
      else res.once('finish', () => closeUnread(req));
    }
  };
}

/**
 * Half-closes the connection after the answer (FIN, so the client reads it in full rather than
 * meeting a reset), reads nothing more, and destroys the socket a second later at the latest.
 */
function closeUnread(req: IncomingMessage): void {
  const socket = req.socket;
  req.pause();
  socket.pause();
  socket.end();
  setTimeout(() => socket.destroy(), 1000).unref();
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
