// An end-to-end plugin backend: Figma login hand-over, token verification, metered resizes, the
// Stripe webhook, sign-in with Figma's own checkout, Lemon Squeezy and Gumroad license keys and their webhooks, as one web-standard handler (Request -> Response) that fits Next.js route
// handlers, Hono, Bun, Deno or Node (see README). In your app, import from 'figma-plugin-auth-db'.
// withPluginCors opens the /plugin/ routes to the plugin UI's "null" origin (the login page's
// /plugin/login/complete and the webhooks stay closed); `npm run example:backend` serves it locally.
import Stripe from 'stripe';
import { AuthError, DatabaseError, PluginAuthError, ServiceError, SetupError, withPluginCors, type PluginAuth } from '../src/index.ts';
import { createStripeWebhookHandler } from './stripe-webhook.ts';

export interface BackendOptions {
  /** Who is signed in on your website (your session cookie); null when nobody is. */
  webUserId(request: Request): Promise<string | null>;
  stripe: Stripe;
  stripeWebhookSecret: string;
  /** Where the system browser finishes the login, e.g. https://app.example.com/plugin-login */
  loginPageUrl: string;
}

export function createPluginBackend(auth: PluginAuth, options: BackendOptions) {
  const stripeWebhook = createStripeWebhookHandler(auth, { stripe: options.stripe, webhookSecret: options.stripeWebhookSecret });
  const json = (body: unknown, status = 200) => Response.json(body, { status });
  const bearer = (request: Request) => (request.headers.get('authorization') ?? '').replace(/^Bearer /, '');

  const routes: Record<string, (request: Request) => Promise<Response>> = {
    // 1. The plugin starts a login and opens the system browser on loginUrl.
    'POST /plugin/login': async () => {
      const { readKey, writeKey, expiresAt } = await auth.tokens.beginLogin({ deviceName: 'Figma' });
      // The write key travels in the URL fragment, which browsers never send to a server.
      return json({ readKey, loginUrl: `${options.loginPageUrl}#${writeKey}`, expiresAt });
    },
    // 2. The login page, signed in to your website, confirms with the write key from the fragment.
    'POST /plugin/login/complete': async (request) => {
      const userId = await options.webUserId(request);
      if (!userId) return json({ error: 'not_signed_in' }, 401);
      const { writeKey } = (await request.json()) as { writeKey: string };
      await auth.tokens.completeLogin(writeKey, userId);
      return json({ ok: true });
    },
    // 3. The plugin polls with the read key; the token is minted once, on the first poll after 2.
    'POST /plugin/login/poll': async (request) => {
      const { readKey } = (await request.json()) as { readKey: string };
      const session = await auth.tokens.pollLogin(readKey);
      return json(session ? { status: 'done', ...session } : { status: 'pending' });
    },
    // 4. Every plugin call: verify the token, then ask the meter, in one round trip each.
    'POST /plugin/resize': async (request) => {
      const { userId } = await auth.tokens.verify(bearer(request));
      const { layers } = (await request.json()) as { layers: number };
      const answer = await auth.usage.consume(userId, 'resize', {
        items: layers,
        idempotencyKey: request.headers.get('idempotency-key') ?? undefined, // a retried request counts once
      });
      // 402: the plugin shows the upgrade screen, with answer.reason, answer.remaining, answer.resetsAt.
      return json(answer, answer.allowed ? 200 : 402);
    },
    // 5. A signed snapshot of the plan for the UI to verify offline (needs entitlementSigningKey),
    //    and the public keys it verifies with.
    'GET /plugin/entitlements': async (request) => {
      const { userId } = await auth.tokens.verify(bearer(request));
      return json(await auth.entitlements.snapshot(userId));
    },
    'GET /plugin/jwks': async () => json(await auth.entitlements.jwks()),
    // 6. Stripe tells us what the user pays for.
    'POST /stripe/webhook': (request) => stripeWebhook(request),
    // 6. Sign in with Figma alone (needs createPluginAuth(db, { figma: { personalAccessToken } })):
    // the plugin sends `await figma.payments.getPluginPaymentTokenAsync()`; Figma says who the user
    // is and what they bought. Figma checkout: on a 402 from /plugin/resize the plugin calls
    // figma.payments.initiateCheckoutAsync(), then signs in here again to re-check the purchase.
    'POST /plugin/figma/sign-in': async (request) => {
      const { paymentToken } = (await request.json()) as { paymentToken: string };
      const { token, tokenId, expiresAt, userId, figmaUserId, planSlug } = await auth.figma.signIn(paymentToken, { deviceName: 'Figma' });
      return json({ token, tokenId, expiresAt, userId, figmaUserId, planSlug });
    },
    // 7. License keys bought on Lemon Squeezy or Gumroad (needs createPluginAuth(db, { lemonSqueezy,
    // gumroad })): the signed-in plugin sends the key its user pasted; the device is the plugin
    // token's. 401 license_in_use (another user's key), device_limit_reached (names the devices).
    'POST /plugin/license/activate': async (request) => {
      const { userId, deviceName } = await auth.tokens.verify(bearer(request));
      const { provider, licenseKey } = (await request.json()) as { provider: 'lemonsqueezy' | 'gumroad'; licenseKey: string };
      return json(await auth.licenses.activate(userId, { provider, licenseKey, deviceName: deviceName ?? 'Figma' }));
    },
    // 8. The stores' webhooks: the raw body, exactly as received (the signature covers its bytes).
    //    Not under /plugin/: withPluginCors keeps them closed to browsers.
    'POST /webhooks/lemonsqueezy': async (request) =>
      json(await auth.licenses.handleWebhook('lemonsqueezy', new Uint8Array(await request.arrayBuffer()), request.headers)),
    'POST /webhooks/gumroad': async (request) =>
      json(await auth.licenses.handleWebhook('gumroad', new Uint8Array(await request.arrayBuffer()), request.headers)),
  };

  return withPluginCors(async function handle(request: Request): Promise<Response> {
    const route = routes[`${request.method} ${new URL(request.url).pathname}`];
    if (!route) return json({ error: 'not_found' }, 404);
    try {
      return await route(request);
    } catch (error) {
      // Server-side trouble (database down, misconfiguration): let the framework answer 500.
      if (!(error instanceof PluginAuthError) || error instanceof DatabaseError || error instanceof SetupError) throw error;
      if (error instanceof ServiceError) return json({ error: error.code }, 503); // Figma or a store down (Gumroad retries its ping), or our access token bad
      if (error.code.startsWith('login_')) return json({ error: error.code }, 410); // start the login again
      if (error instanceof AuthError) return json({ error: error.code }, 401); // sign in again
      return json({ error: error.code }, 400);
    }
  });
}
