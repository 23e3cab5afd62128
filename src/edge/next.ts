// Next.js App Router: a route file exports one function per HTTP method, and a method it does not
// export is answered by Next itself. An OPTIONS left to Next answers the plugin's preflight without
// access-control-allow-origin, and the plugin's first call fails; so every method, OPTIONS
// included, goes to the one handler. Put the route at app/<base>/[...path]/route.ts: the handler
// sees the full path (/<base>/plugin/...), so its routes carry the base path.
import type { Handler } from '../http/cors.ts';

export type NextRouteHandlers = Record<'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS', (request: Request) => Promise<Response>>;

/** `export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = toNextRoute(handle);` */
export function toNextRoute(handler: Handler): NextRouteHandlers {
  const handle = async (request: Request) => handler(request);
  return { GET: handle, HEAD: handle, POST: handle, PUT: handle, PATCH: handle, DELETE: handle, OPTIONS: handle };
}
