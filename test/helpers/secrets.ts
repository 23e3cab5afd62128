// The secrets the tests configure, defined once and imported everywhere: the plugin-token signing
// secret and the two webhook signing secrets. Random per test process, so no test can depend on a
// value and no output can match one by accident; a subprocess gets them through its environment.
// Values a test sets apart on purpose (a wrong secret, one too short, another store's secret) stay
// in that test, next to what they check.
import { randomBytes } from 'node:crypto';

/** `tokenSecret` / PLUGIN_TOKEN_SECRET: HS256 signing secret for plugin tokens (48 random bytes). */
export const TOKEN_SECRET = randomBytes(48).toString('base64url');

/** Stripe's endpoint signing secret (`whsec_…`), for `stripe.webhookSecret` and signed test deliveries. */
export const STRIPE_WEBHOOK_SECRET = `whsec_${randomBytes(24).toString('hex')}`;

/** Lemon Squeezy's webhook signing secret, for `lemonSqueezy.webhookSecret` and HMAC-signed test deliveries. */
export const LEMON_WEBHOOK_SECRET = `whsec_${randomBytes(16).toString('hex')}`;
