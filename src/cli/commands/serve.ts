// The serve command: the plugin server (src/server/) on Node, configured from environment
// variables (serve-env.ts), with GET /health, and a graceful stop on SIGTERM/SIGINT: no new
// connections, the requests in flight finish, then the pool closes and the command returns 0.
// Start-up (BENCHMARKS.md, the cold starts): the database is opened and its schema checked while
// the library and the server's modules load (imported here, not by the CLI); the server listens
// only once both are done, so no request is ever answered against a database without the schema.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Database } from '../../core/db.ts';
import { loadDevelopmentEnv } from '../../core/env.ts';
import { PluginAuthError, SetupError } from '../../core/errors.ts';
import type { LogEntry } from '../../server/index.ts';
import { BIN, type Command, type Context } from '../context.ts';
import { readServeSettings } from '../serve-env.ts';

/** How long a stop waits for requests in flight before closing their connections. */
const DRAIN_MS = 10_000;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'the plugin backend (login, metered routes, webhooks) on Node, configured from the environment; see docs/deploy.md',
  options: ['production'],
  examples: [
    `DATABASE_URL=postgres://… PLUGIN_TOKEN_SECRET=… METER=/plugin/resize=resize:layers ${BIN} serve`,
    `PORT=8080 HOST=0.0.0.0 BASE_PATH=/api ${BIN} serve --production`,
  ],
  run: serve,
};

async function serve(ctx: Context): Promise<number> {
  const env = ctx.values.production ? ctx.io.env : loadDevelopmentEnv(ctx.io.cwd, ctx.io.env);
  let settings;
  let db: Database | undefined;
  try {
    settings = readServeSettings(env);
    // The driver first, then the connection and the check are on their way while the rest loads.
    const { openDatabase } = await import('../../core/db.ts');
    const opening = openDatabase(settings.databaseUrl);
    const checked = opening.then((open) => {
      db = open;
      return open.query<{ ready: boolean }>(`SELECT pg_catalog.to_regclass('public.users') IS NOT NULL AS ready`);
    });
    checked.catch(() => {}); // awaited below; never an unhandled rejection
    const modules = Promise.all([import('../../auth.ts'), import('../../server/index.ts'), import('../../http/node.ts')]);
    modules.catch(() => {}); // awaited below, after the database's check
    const [row] = await checked;
    const open = await opening;
    if (!row?.ready) throw new SetupError('not_set_up', `not_set_up: the database has no schema yet: run \`${BIN} setup\` first`);
    const [{ createPluginAuth }, { createPluginServer }, { toNodeListener }] = await modules;
    const auth = createPluginAuth(open, settings.auth);
    // The key's cryptographic checks (Web Crypto, async): a key that fails them stops the start too.
    if (settings.auth.entitlementSigningKey) await auth.entitlements.jwks();
    const website = settings.website;
    const handle = createPluginServer(auth, {
      basePath: settings.basePath,
      meter: settings.meter,
      log: (e: LogEntry) => ctx.io.stderr(`${BIN} serve: ${e.requestId} ${e.method} ${e.route} ${e.status} ${e.error} ${e.code}\n`),
      ...(settings.stripeWebhookSecret ? { stripe: { webhookSecret: settings.stripeWebhookSecret } } : {}),
      ...(settings.billing ? { billing: settings.billing } : {}),
      ...(website ? { website: { origin: website.origin, userId: sessionUser(website.sessionUrl), ...(website.loginUrl ? { loginUrl: website.loginUrl } : {}) } } : {}),
      ...(settings.figmaOAuth ? { figmaOAuth: settings.figmaOAuth } : {}),
    });
    const listener = toNodeListener(handle, {
      onError: (error) => ctx.io.stderr(`${BIN} serve: unexpected ${error instanceof Error ? error.name : typeof error}\n`),
    });
    // GET /health is the command's own (not a plugin route: no CORS, no body), answered from Node's
    // request without the web Request/Response of the plugin routes.
    const server = createServer((req, res) => (isHealth(req) ? health(open, res) : listener(req, res)));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(settings!.port, settings!.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
    ctx.out(`${BIN} serve: listening on http://${host}:${port}${settings.basePath} (database: ${open.description}; features: ${['tokens', ...settings.features].join(', ')})`);
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    ctx.out(`${BIN} serve: ${signal}: stopping (requests in flight finish first)`);
    await drain(server);
    ctx.out(`${BIN} serve: stopped`);
    return 0;
  } catch (error) {
    if (error instanceof PluginAuthError && (error.code === 'server_env_invalid' || error instanceof SetupError)) {
      // Settings: exit 2, like any other mistake in how the command was called. Values never printed.
      ctx.io.stderr(`${BIN} serve: error [${error.code}]: ${error.message.replace(/^[a-z_]+: /, '')}\n`);
      return error.code === 'server_env_invalid' || /_key_invalid|_config_invalid|_secret_/.test(error.code) ? 2 : 1;
    }
    throw error;
  } finally {
    await db?.close().catch(() => {});
  }
}

function isHealth(req: IncomingMessage): boolean {
  if (req.method !== 'GET') return false;
  try {
    return new URL(req.url ?? '/', 'http://localhost').pathname === '/health';
  } catch {
    return false;
  }
}

/** 200 {"status":"ok"} when the database answers, else 503 {"status":"database_unavailable"}. */
async function health(database: Database, res: ServerResponse): Promise<void> {
  let ok = true;
  try {
    await database.query('SELECT 1');
  } catch {
    ok = false;
  }
  const body = ok ? '{"status":"ok"}' : '{"status":"database_unavailable"}';
  res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }).end(body);
}

/** The website's session, asked of the website: WEBSITE_SESSION_URL with the request's cookies answers {"userId"}. */
function sessionUser(sessionUrl: string) {
  return async (request: Request): Promise<string | null> => {
    const cookie = request.headers.get('cookie');
    if (!cookie) return null;
    const response = await fetch(sessionUrl, { headers: { cookie, accept: 'application/json' }, redirect: 'manual', signal: AbortSignal.timeout(5000) });
    if (!response.ok) {
      await response.body?.cancel();
      return null;
    }
    const body = (await response.json().catch(() => null)) as { userId?: unknown } | null;
    return typeof body?.userId === 'string' ? body.userId : null;
  };
}

/** Stops accepting, lets requests in flight finish (idle keep-alive connections are closed as they become idle), then closes. */
async function drain(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const idle = setInterval(() => server.closeIdleConnections(), 50);
  const deadline = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
  await closed;
  clearInterval(idle);
  clearTimeout(deadline);
}
