// The dashboard command: serves the local web dashboard (src/dashboard/) on the target until
// Ctrl+C, and optionally opens it in the browser. Without --host it listens on a random loopback
// address (127.x.y.z), new at each start, so its session cookie reaches no other local server.
import { spawn } from 'node:child_process';
import { loadDevelopmentEnv } from '../../core/env.ts';
import { BIN, UsageError, type Command, type Context } from '../context.ts';

export const dashboardCommand: Command = {
  name: 'dashboard',
  summary: 'a local web dashboard and operator console (usage, limits hit, conversions, plans, devices; search, audited actions; Re-sync from Stripe with STRIPE_SECRET_KEY); prints its URL with an access key',
  options: ['port', 'host', 'open'],
  connects: true,
  examples: [`${BIN} dashboard`, `${BIN} dashboard --port 8080 --open`, `DATABASE_URL=postgres://… ${BIN} dashboard --port 0`],
  run: dashboard,
};

async function dashboard(ctx: Context): Promise<number> {
  const port = ctx.values.port === undefined ? 7300 : Number(ctx.values.port);
  if (!/^\d{1,5}$/.test(ctx.values.port ?? '7300') || port > 65535) throw new UsageError('dashboard: --port must be a whole number from 0 to 65535');
  const host = ctx.values.host;
  if (host !== undefined && !/^[A-Za-z0-9.:[\]-]{1,255}$/.test(host)) throw new UsageError('dashboard: --host must be a host name or an IP address');
  const connection = await ctx.connect();
  const db = connection.database();
  // With STRIPE_SECRET_KEY (and SQL access), the console's "Re-sync from Stripe" runs the reconcile
  // of `stripe reconcile` for the user; without it the action is shown as not configured.
  const env = ctx.values.production ? ctx.io.env : loadDevelopmentEnv(ctx.io.cwd, ctx.io.env);
  const secretKey = env.STRIPE_SECRET_KEY;
  const apiBaseUrl = env.STRIPE_API_BASE_URL || undefined;
  const { createPluginAuth } = await import('../../auth.ts');
  const stripe = secretKey && connection.kind !== 'supabase' ? createPluginAuth(db, { stripe: { secretKey, ...(apiBaseUrl ? { apiBaseUrl } : {}) } }) : undefined;
  const { startDashboardServer } = await import('../../dashboard/server.ts');
  const server = await startDashboardServer(db, {
    port,
    host,
    label: connection.description,
    ...(stripe ? { reconcileStripe: (userId: string) => stripe.subscriptions.reconcileStripe({ userId }) } : {}),
  });
  ctx.out(`Dashboard on ${connection.description}:\n\n  ${server.url}\n\nThe key in the URL is the access key (a new one each start): opening the URL exchanges it for a session cookie. Press Ctrl+C to stop.`);
  if (ctx.values.open) openInBrowser(server.url);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return 0;
}

/** Best effort: the URL is printed either way. */
function openInBrowser(url: string): void {
  const [command, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  try {
    spawn(command, args as string[], { stdio: 'ignore', detached: true }).on('error', () => {}).unref();
  } catch {
    // no opener on this machine
  }
}
