// The plugin's billing routes: a Stripe Checkout session for the signed-in user (their id in
// client_reference_id and in the subscription's metadata, so the webhook that follows finds them
// at once) and a link to Stripe's customer portal. Authenticated by the plugin session; the return
// URLs are the server's configuration, never the request's (no open redirect through Stripe).
import { SetupError } from '../core/errors.ts';
import type { PluginAuth } from '../auth.ts';

export interface BillingRouteOptions {
  /** Where Stripe sends the buyer after paying (https; may hold {CHECKOUT_SESSION_ID}). */
  successUrl: string;
  /** Where Stripe sends a buyer who goes back (default: successUrl's origin). */
  cancelUrl?: string;
  /** Where the customer portal's "return" link leads. */
  returnUrl: string;
}

type BillingAuth = Pick<PluginAuth, 'subscriptions' | 'configured'>;
type Add = (method: string, path: string, route: { plugin: boolean; handle: (request: Request) => Promise<Response> }) => void;

export function addBillingRoutes(
  add: Add,
  auth: BillingAuth,
  options: BillingRouteOptions,
  session: (request: Request) => Promise<{ userId: string }>,
  readJson: (request: Request) => Promise<Record<string, unknown>>,
): void {
  if (!auth.configured.stripe) {
    throw new SetupError('server_config_invalid', 'server_config_invalid: billing routes need Stripe\'s API: createPluginAuth(db, { stripe: { secretKey } })');
  }
  for (const name of ['successUrl', 'returnUrl', 'cancelUrl'] as const) {
    const value = options[name];
    if (value === undefined && name === 'cancelUrl') continue;
    if (!isHttpUrl(value)) throw new SetupError('server_config_invalid', `server_config_invalid: billing.${name} must be an http(s) URL`);
  }
  const cancelUrl = options.cancelUrl ?? new URL(options.successUrl).origin;

  add('POST', '/plugin/billing/checkout', {
    plugin: true,
    handle: async (request) => {
      const { userId } = await session(request);
      const { plan, quantity } = await readJson(request);
      // Passed as they came: the library checks their type and shape (unknown_plan, invalid_quantity).
      const checkout = await auth.subscriptions.createCheckoutSession(userId, {
        plan: plan as string,
        ...(quantity !== undefined ? { quantity: quantity as number } : {}),
        successUrl: options.successUrl,
        cancelUrl,
      });
      return Response.json(checkout);
    },
  });
  add('POST', '/plugin/billing/portal', {
    plugin: true,
    handle: async (request) => {
      const { userId } = await session(request);
      return Response.json(await auth.subscriptions.createPortalSession(userId, { returnUrl: options.returnUrl }));
    },
  });
}

function isHttpUrl(value: unknown): boolean {
  try {
    const url = new URL(value as string);
    return typeof value === 'string' && (url.protocol === 'https:' || url.protocol === 'http:');
  } catch {
    return false;
  }
}
