// Every input check of the TypeScript API, in one place, run once where a value enters (the method
// a caller calls), before any round trip; inner layers do not repeat them. The limits are stated
// once in limits.ts; the SQL functions enforce the same ones as the last line for supabase.rpc
// callers (test/core.validation.test.ts holds the two sides to one rule). These checks add what only JavaScript can get wrong: NaN, Infinity, 2.5, 2**53, strings where numbers
// belong, objects with toString, lone surrogates. No message ever contains the value refused.
import { ValidationError, type ErrorCode } from './errors.ts';
import {
  ACTION_CHARACTERS_TEXT,
  ACTION_PATTERN,
  MAX_ACTION_LENGTH,
  MAX_EVENT_SKEW_MS,
  MAX_ITEMS,
  MAX_LICENSE_KEY_LENGTH,
  MAX_METADATA_BYTES,
  MAX_TEXT_LENGTH,
  MAX_TOKEN_TTL_SECONDS,
  MIN_TOKEN_TTL_SECONDS,
} from './limits.ts';

/** A canonical uuid: 8-4-4-4-12 hex digits (PostgreSQL also reads braces and undashed forms; we do not). */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** C0 controls (NUL to U+001F), DEL and C1 controls (U+0080 to U+009F, e.g. U+0085 NEXT LINE). */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** A UTF-16 surrogate without its other half: not text, PostgreSQL cannot store it. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const ACTION = new RegExp(ACTION_PATTERN);
const DATE = /^\d{4}-\d{2}-\d{2}$/;

// The limits themselves live in limits.ts (one statement each, read by errors.ts too).
export {
  ACTION_PATTERN,
  MAX_ITEMS,
  MAX_TEXT_LENGTH,
  MAX_METADATA_BYTES,
  MAX_EVENT_SKEW_MS,
  DEFAULT_TOKEN_TTL_SECONDS,
  MIN_TOKEN_TTL_SECONDS,
  MAX_TOKEN_TTL_SECONDS,
  MAX_LICENSE_KEY_LENGTH,
} from './limits.ts';

export const isUuid = (value: unknown): value is string => typeof value === 'string' && UUID.test(value);
export const hasControl = (value: string): boolean => CONTROL.test(value);
export const hasLoneSurrogate = (value: string): boolean => LONE_SURROGATE.test(value);
const isValidDate = (value: unknown): value is Date => value instanceof Date && !Number.isNaN(value.getTime());

/**
 * A user id must be a uuid: anything else is `invalid_user_id`, before the database, and is never
 * echoed (a caller who mixes up arguments may pass a token or an email). A well-formed id that
 * names nobody is the database's answer: `unknown_user`.
 */
export function userId(value: unknown, name = 'userId'): string {
  if (!isUuid(value)) throw new ValidationError('invalid_user_id', `invalid_user_id: ${name} must be a uuid`);
  return value;
}

/**
 * A device id: a uuid the server minted with a plugin session (auth.tokens.verify returns it).
 * Whether it is one of the user's is the database's answer (unknown_device).
 */
export function deviceId(value: unknown, required: boolean): string | null {
  if (!required && (value === undefined || value === null)) return null;
  if (!isUuid(value)) throw new ValidationError('invalid_device_id', 'invalid_device_id: deviceId must be the uuid auth.tokens.verify returned for this device');
  return value;
}

export function tokenId(value: unknown): string {
  if (!isUuid(value)) throw new ValidationError('invalid_token_id', 'invalid_token_id: tokenId must be a uuid');
  return value;
}

export function action(value: unknown): string {
  if (typeof value !== 'string' || !ACTION.test(value)) {
    throw new ValidationError('invalid_action', `invalid_action: action must be 1 to ${MAX_ACTION_LENGTH} characters of ${ACTION_CHARACTERS_TEXT}`);
  }
  return value;
}

export function items(value: unknown): number {
  if (value === undefined) return 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_ITEMS) {
    throw new ValidationError('invalid_items', `invalid_items: items must be an integer from 1 to ${MAX_ITEMS}`);
  }
  return value;
}

/** 1 to 255 characters (code points, as PostgreSQL's length() counts them), no control character. */
export function idempotencyKey(value: unknown, required: boolean): string | null {
  if (value === undefined || value === null) {
    if (!required) return null;
  } else if (typeof value === 'string' && [...value].length >= 1 && [...value].length <= MAX_TEXT_LENGTH && !hasControl(value)) {
    return value;
  }
  throw new ValidationError(
    'invalid_idempotency_key',
    `invalid_idempotency_key: the key must be a string of 1 to ${MAX_TEXT_LENGTH} characters without control characters`,
  );
}

/**
 * Free text that ends up in logs, dashboards and terminals (device names, revocation reasons): at
 * most 255 characters, no control character (C0, DEL or C1). null/undefined = none.
 */
function label(value: unknown, code: ErrorCode, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length > MAX_TEXT_LENGTH || hasControl(value)) {
    throw new ValidationError(code, `${code}: ${name} must be a string of at most ${MAX_TEXT_LENGTH} characters without control characters`);
  }
  return value;
}

export const deviceName = (value: unknown): string | null => label(value, 'invalid_device_name', 'deviceName');
export const reason = (value: unknown): string | null => label(value, 'invalid_reason', 'reason');

/**
 * Usage metadata: a plain JSON object. Returns the JSON text to send (cast to jsonb in SQL), or null.
 *
 * One measure, one code: the 16 kB limit is measured only by consume_usage, on the jsonb text
 * (what is stored and what a reader gets back), and refused there with invalid_metadata (PA005)
 * before anything is written. A second measure here (on compact JSON) would be another limit:
 * jsonb's text has a space after every ':' and ',' and writes 1e21 in full, so the two disagree.
 * What only JavaScript can get wrong is refused here with the same code: not an object, not
 * serializable (cycles, BigInt), and strings PostgreSQL's jsonb cannot hold (NUL, a lone surrogate),
 * in keys or values, at any depth.
 */
export function metadata(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  const fail = () =>
    new ValidationError(
      'invalid_metadata',
      `invalid_metadata: metadata must be a plain JSON object of at most ${MAX_METADATA_BYTES / 1024} kB (as jsonb text), without NUL or unpaired surrogates`,
    );
  if (typeof value !== 'object' || Array.isArray(value)) throw fail();
  let bad = false;
  const check = (s: string) => {
    if (s.includes('\u0000') || hasLoneSurrogate(s)) bad = true;
  };
  let text: string | undefined;
  try {
    text = JSON.stringify(value, (key, v: unknown) => {
      check(key);
      if (typeof v === 'string') check(v);
      return v;
    });
  } catch {
    throw fail(); // cycles, BigInt, a throwing toJSON
  }
  // toJSON may turn the object into something else: what is sent must still be an object.
  if (bad || text === undefined || !text.startsWith('{')) throw fail();
  return text;
}

/** 'YYYY-MM-DD' (a UTC day) or a Date (its UTC day); undefined/null lets SQL pick the default. */
export function day(value: unknown, name: string): string | null {
  if (value === undefined || value === null) return null;
  let text: string | undefined;
  if (isValidDate(value)) text = value.toISOString().slice(0, 10);
  else if (typeof value === 'string' && DATE.test(value)) {
    const parsed = new Date(`${value}T00:00:00Z`);
    if (!Number.isNaN(parsed.getTime()) && parsed.toISOString().startsWith(value)) text = value;
  }
  if (!text || !/^\d{4}-/.test(text)) {
    throw new ValidationError('invalid_date', `invalid_date: ${name} must be a 'YYYY-MM-DD' string or a valid Date`);
  }
  return text;
}

/** A valid Date, or undefined when not given; anything else is refused with `code`. */
export function optionalDate(value: unknown, code: ErrorCode, message: string): Date | undefined {
  if (value === undefined) return undefined;
  if (!isValidDate(value)) throw new ValidationError(code, `${code}: ${message}`);
  return value;
}

export function ttlSeconds(value: unknown, name: string): number {
  if (!Number.isInteger(value) || (value as number) < MIN_TOKEN_TTL_SECONDS || (value as number) > MAX_TOKEN_TTL_SECONDS) {
    throw new ValidationError(
      'invalid_ttl',
      `invalid_ttl: ${name} must be a whole number of seconds from ${MIN_TOKEN_TTL_SECONDS} to ${MAX_TOKEN_TTL_SECONDS}`,
    );
  }
  return value as number;
}

/**
 * A Stripe event's `created`: epoch seconds (event.created) or a Date. Refused: not a finite
 * positive time, or more than MAX_EVENT_SKEW_MS ahead of this clock (sync_stripe_subscription
 * applies the same window to the database's clock). A far-future time would be stored as the
 * row's ordering mark and make every later event 'stale' forever.
 */
export function eventCreated(value: unknown, now = Date.now()): Date {
  const date = typeof value === 'number' && Number.isFinite(value) && value > 0
    ? new Date(value * 1000)
    : value instanceof Date ? value : undefined;
  if (!date || Number.isNaN(date.getTime())) {
    throw new ValidationError('invalid_event_created', 'invalid_event_created: pass { eventCreated: event.created } (epoch seconds) or a Date');
  }
  if (date.getTime() > now + MAX_EVENT_SKEW_MS) {
    // Date.now() is milliseconds: read as seconds it lands tens of thousands of years ahead.
    const hint = typeof value === 'number' && value > now / 100
      ? ' It looks like milliseconds (Date.now()); Stripe\'s event.created is in seconds.'
      : '';
    throw new ValidationError(
      'invalid_event_created',
      `invalid_event_created: the event time is more than ${MAX_EVENT_SKEW_MS / 60_000} minutes in the future; pass event.created (epoch seconds) or a Date.${hint}`,
    );
  }
  return date;
}

/** The stores whose license keys are a plan source (sql/016). */
export type LicenseProvider = 'lemonsqueezy' | 'gumroad';
const LICENSE_KEY = new RegExp(`^[\\x21-\\x7e]{1,${MAX_LICENSE_KEY_LENGTH}}$`);
/** Store product and variant ids as sql/016 accepts them (Gumroad's look like 32-nPAicqbLj8B_WswVlMw==). */
const STORE_ID = /^[A-Za-z0-9_=+/.:-]{1,128}$/;

export function licenseProvider(value: unknown): LicenseProvider {
  if (value !== 'lemonsqueezy' && value !== 'gumroad') {
    throw new ValidationError('invalid_license_provider', "invalid_license_provider: provider must be 'lemonsqueezy' or 'gumroad'");
  }
  return value;
}

/** A license key as the buyer pasted it: printable ASCII, no spaces, at most 255. Never echoed. */
export function licenseKey(value: unknown): string {
  if (typeof value !== 'string' || !LICENSE_KEY.test(value)) {
    throw new ValidationError('invalid_license_key', `invalid_license_key: licenseKey must be 1 to ${MAX_LICENSE_KEY_LENGTH} printable characters without spaces`);
  }
  return value;
}

/** A store's product or variant id; null/undefined only when optional. */
export function storeId(value: unknown, name: string, optional: boolean): string | null {
  if ((value === undefined || value === null) && optional) return null;
  if (typeof value !== 'string' || !STORE_ID.test(value)) {
    throw new ValidationError('invalid_license_product', `invalid_license_product: ${name} must be 1 to 128 characters of A-Z a-z 0-9 _ = + / . : -`);
  }
  return value;
}

/** A device name that must be given (license activations are per device). */
export function requiredDeviceName(value: unknown): string {
  const name = deviceName(value);
  if (name === null || name.length === 0) {
    throw new ValidationError('invalid_device_name', `invalid_device_name: deviceName is required (1 to ${MAX_TEXT_LENGTH} characters without control characters)`);
  }
  return name;
}

/** A whole number in [min, max], or undefined/null for none. */
export function optionalCount(value: unknown, code: ErrorCode, message: string, min: number, max: number): number | null {
  if (value === undefined || value === null) return null;
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) throw new ValidationError(code, `${code}: ${message}`);
  return value as number;
}
