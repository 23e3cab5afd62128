// A complete Stripe webhook handler for the subscription sync (the library itself has no routes).
// Next.js App Router: save as app/api/stripe/webhook/route.ts. Any framework that gives you a
// web-standard Request works the same (Hono, Remix, Bun, Deno; Express: see docs/subscriptions.md).
// In your app, import from 'figma-plugin-auth-db' instead of '../src/index.ts'.
//
// Environment: DATABASE_URL, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET (whsec_..., from the
// dashboard's webhook endpoint, or printed by `stripe listen --forward-to localhost:3000/api/stripe/webhook`).
// Subscribe the endpoint to customer.subscription.created, .updated and .deleted.
import Stripe from 'stripe';
import { createPluginAuth, openDatabase, PluginAuthError, type PluginAuth } from '../src/index.ts';

export interface WebhookOptions {
  stripe: Stripe;
  /** The endpoint's signing secret (whsec_...). */
  webhookSecret: string;
}

/** Builds the handler: verify the signature on the raw body, then hand subscriptions to syncFromStripe. */
export function createStripeWebhookHandler(auth: Pick<PluginAuth, 'subscriptions'>, options: WebhookOptions) {
  return async function handleStripeWebhook(request: Request): Promise<Response> {
    const signature = request.headers.get('stripe-signature');
    if (!signature) return Response.json({ error: 'missing_signature' }, { status: 400 });

    // The exact bytes Stripe signed: parsing and re-serializing the JSON would break the signature.
    const rawBody = await request.text();
    let event: Stripe.Event;
    try {
      event = options.stripe.webhooks.constructEvent(rawBody, signature, options.webhookSecret);
    } catch {
      return Response.json({ error: 'invalid_signature' }, { status: 400 });
    }

    switch (event.type) {
      case 'customer.subscription.created':
      case 'customer.subscription.updated':
      case 'customer.subscription.deleted': {
        try {
          // event.created orders deliveries: a late or repeated event changes nothing.
          const result = await auth.subscriptions.syncFromStripe(event.data.object, { eventCreated: event.created });
          return Response.json({ received: true, ...result });
        } catch (error) {
          if (error instanceof PluginAuthError && ['unknown_price', 'unknown_customer'].includes(error.code)) {
            // Fixable on our side (link the price with plans.linkStripe, or set metadata.user_id at
            // checkout). A non-2xx answer makes Stripe retry the event for up to three days, so it is
            // applied once fixed. The message names only Stripe ids, never a secret.
            console.error(`stripe webhook ${event.id}: ${error.message}`);
            return Response.json({ error: error.code }, { status: 422 });
          }
          if (error instanceof PluginAuthError && error.code.startsWith('invalid_')) {
            return Response.json({ error: error.code }, { status: 400 });
          }
          throw error; // database down: the framework answers 500 and Stripe retries.
        }
      }
      default:
        // Acknowledge everything else, or Stripe keeps retrying events this endpoint does not use.
        return Response.json({ received: true, ignored: event.type });
    }
  };
}

// The route itself: one database pool and one Stripe client per server process, created on first use.
let handler: ((request: Request) => Promise<Response>) | undefined;

export async function POST(request: Request): Promise<Response> {
  if (!handler) {
    const db = await openDatabase(process.env.DATABASE_URL);
    handler = createStripeWebhookHandler(createPluginAuth(db), {
      stripe: new Stripe(process.env.STRIPE_SECRET_KEY ?? ''),
      webhookSecret: process.env.STRIPE_WEBHOOK_SECRET ?? '',
    });
  }
  return handler(request);
}
