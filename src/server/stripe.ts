// Stripe's webhook signature, checked with Web Crypto (no `stripe` package): the Stripe-Signature
// header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`; v1 is HMAC-SHA256, keyed with the endpoint's
// signing secret (whsec_…, used as is), over `${t}.${raw body}`. A timestamp further than the
// tolerance from now is refused too, so a captured delivery cannot be replayed later.
import { AuthError } from '../core/errors.ts';

export const DEFAULT_STRIPE_TOLERANCE_SECONDS = 300;

const encoder = new TextEncoder();
const refuse = (why: string) => new AuthError('invalid_signature', `invalid_signature: ${why}`);

export async function verifyStripeSignature(
  body: Uint8Array,
  header: string | null,
  secret: string,
  { toleranceSeconds = DEFAULT_STRIPE_TOLERANCE_SECONDS, now = Date.now() }: { toleranceSeconds?: number; now?: number } = {},
): Promise<void> {
  if (!header || header.length > 4096) throw refuse('no Stripe-Signature header');
  let timestamp: string | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const [name, value] = [part.slice(0, eq).trim(), part.slice(eq + 1).trim()];
    if (name === 't') timestamp = value;
    else if (name === 'v1' && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (!timestamp || !/^\d{1,12}$/.test(timestamp)) throw refuse('no timestamp in Stripe-Signature');
  if (signatures.length === 0) throw refuse('no v1 signature in Stripe-Signature');
  if (Math.abs(now / 1000 - Number(timestamp)) > toleranceSeconds) throw refuse('the timestamp is outside the tolerance');
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const prefix = encoder.encode(`${timestamp}.`);
  const signed = new Uint8Array(prefix.byteLength + body.byteLength);
  signed.set(prefix);
  signed.set(body, prefix.byteLength);
  const expected = new Uint8Array(await crypto.subtle.sign('HMAC', key, signed));
  if (!signatures.some((hex) => equalBytes(expected, hexBytes(hex)))) throw refuse('no signature matches the signing secret');
}

const hexBytes = (hex: string) => Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));

/** Constant time for equal lengths. */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
