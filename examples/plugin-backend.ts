// An end-to-end plugin backend over the library's own server (figma-plugin-auth-db/server): the
// Figma login hand-over, metered resizes, snapshots, sign-in with Figma's checkout, license keys,
// and the Stripe, Lemon Squeezy and Gumroad webhooks, as one web-standard handler (Request ->
// Response) for Next.js, Hono, Bun, Deno or Node (docs/server.md, docs/deploy.md). Which routes
// exist follows what createPluginAuth was given. In your app, import from 'figma-plugin-auth-db/server'.
import { createPluginServer, type PluginServerOptions } from '../src/server/index.ts';
import type { PluginAuth } from '../src/index.ts';

export interface BackendOptions {
  /** Who is signed in on your website (your session cookie); null when nobody is. */
  webUserId(request: Request): Promise<string | null>;
  /** Your website's origin; its login page (default `${origin}/plugin-login`) completes the login. */
  websiteOrigin: string;
  loginPageUrl?: string;
  /** The Stripe endpoint's signing secret (whsec_…); without it there is no Stripe route. */
  stripeWebhookSecret?: string;
  log?: PluginServerOptions['log'];
}

export function createPluginBackend(auth: PluginAuth, options: BackendOptions) {
  return createPluginServer(auth, {
    website: { origin: options.websiteOrigin, userId: options.webUserId, ...(options.loginPageUrl ? { loginUrl: options.loginPageUrl } : {}) },
    // Every resize: verify the token, then count `layers` items of 'resize' (402 past the plan).
    meter: { '/plugin/resize': { action: 'resize', items: (body) => body.layers } },
    ...(options.stripeWebhookSecret ? { stripe: { webhookSecret: options.stripeWebhookSecret } } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
}
