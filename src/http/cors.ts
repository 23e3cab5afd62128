// withPluginCors: opens a web-standard handler (Request -> Response) to a Figma plugin's UI iframe,
// whose origin is the opaque "null". Bearer tokens only: no cookies, so no credentials mode and
// `Access-Control-Allow-Origin: *`. Only the plugin routes are opened; the website-only login
// confirmation and the webhook never answer another origin. Web-standard only: runs on Node,
// Bun, Deno, edge runtimes.

export type Handler = (request: Request) => Response | Promise<Response>;

export interface PluginCorsOptions {
  /**
   * Which paths the plugin may call: a list of exact pathnames, or a predicate. Default: every path
   * under /plugin/ except /plugin/login/complete (the website's confirmation, which carries its
   * session cookie and must never be reachable from another origin).
   */
  routes?: readonly string[] | ((pathname: string, request: Request) => boolean);
  /** Methods allowed in a preflight (default GET, POST). */
  methods?: readonly string[];
  /** Request headers allowed in a preflight, besides authorization, content-type, idempotency-key. */
  allowHeaders?: readonly string[];
  /** Response headers the plugin may read, besides the CORS-safelisted ones (default retry-after). */
  exposeHeaders?: readonly string[];
  /** How long the browser may cache a preflight, in seconds (default 600). */
  maxAgeSeconds?: number;
  /**
   * Called when the handler throws on a plugin route; the plugin then gets a readable 500
   * `{ "error": "internal_error" }` instead of an opaque network failure. Default: console.error.
   */
  onError?: (error: unknown, request: Request) => void;
}

export const PLUGIN_ALLOW_HEADERS = ['authorization', 'content-type', 'idempotency-key'] as const;
/** Paths the default predicate keeps closed although they start with /plugin/. */
export const WEBSITE_ONLY_ROUTES = ['/plugin/login/complete'] as const;

export const defaultPluginRoute = (pathname: string): boolean =>
  pathname.startsWith('/plugin/') && !(WEBSITE_ONLY_ROUTES as readonly string[]).includes(pathname);

export function withPluginCors(handler: Handler, options: PluginCorsOptions = {}): (request: Request) => Promise<Response> {
  const routes = options.routes;
  const isPluginRoute: (pathname: string, request: Request) => boolean =
    routes === undefined ? defaultPluginRoute : typeof routes === 'function' ? routes : (pathname) => routes.includes(pathname);
  const methods = (options.methods ?? ['GET', 'POST']).map((m) => m.toUpperCase());
  const allowHeaders = [...new Set([...PLUGIN_ALLOW_HEADERS, ...(options.allowHeaders ?? []).map((h) => h.toLowerCase())])];
  const exposeHeaders = options.exposeHeaders ?? ['retry-after'];
  const maxAge = options.maxAgeSeconds ?? 600;
  const onError = options.onError ?? ((error: unknown) => console.error(error));

  const corsHeaders = (headers: Headers) => {
    headers.set('access-control-allow-origin', '*');
    if (exposeHeaders.length) headers.set('access-control-expose-headers', exposeHeaders.join(', '));
    // Never Access-Control-Allow-Credentials: the plugin sends a bearer token, not cookies.
    headers.delete('access-control-allow-credentials');
  };

  return async function handle(request: Request): Promise<Response> {
    const pathname = new URL(request.url).pathname;
    if (!isPluginRoute(pathname, request)) return handler(request);

    if (request.method === 'OPTIONS') {
      const headers = new Headers({
        'access-control-allow-methods': methods.join(', '),
        'access-control-allow-headers': allowHeaders.join(', '),
        'access-control-max-age': String(maxAge),
        'content-length': '0',
      });
      corsHeaders(headers);
      return new Response(null, { status: 204, headers });
    }

    let response: Response;
    try {
      response = await handler(request);
    } catch (error) {
      onError(error, request);
      response = Response.json({ error: 'internal_error' }, { status: 500 });
    }
    // A copy: a Response from fetch() (a proxied upstream) has immutable headers.
    const headers = new Headers(response.headers);
    corsHeaders(headers);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  };
}
