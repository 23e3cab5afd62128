// Input checks for the usage API, run before any round trip. They mirror the checks in
// sql/006_usage_metering.sql (which stay authoritative for rpc callers) and add what only
// JavaScript can get wrong: NaN, Infinity, 2.5, 2**53, strings where numbers belong.
import { NotFoundError, ValidationError } from './errors.ts';

export const MAX_ITEMS = 10_000;
export const MAX_METADATA_BYTES = 16_384;
const ACTION = /^[A-Za-z0-9_.:-]{1,64}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A malformed id cannot name a user: same answer as an id nobody has. */
export function userId(value: unknown): string {
  if (typeof value !== 'string' || !UUID.test(value)) {
    throw new NotFoundError('unknown_user', 'unknown_user: userId must be the UUID of an existing user');
  }
  return value;
}

export function action(value: unknown): string {
  if (typeof value !== 'string' || !ACTION.test(value)) {
    throw new ValidationError('invalid_action', 'invalid_action: action must be 1 to 64 characters of A-Z a-z 0-9 _ . : -');
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

/** Counted in characters (UTF-16 code points would differ only for astral characters; the SQL check decides). */
export function idempotencyKey(value: unknown, required: boolean): string | null {
  if (value === undefined || value === null) {
    if (!required) return null;
  } else if (typeof value === 'string' && [...value].length >= 1 && [...value].length <= 255 && !CONTROL.test(value)) {
    return value;
  }
  throw new ValidationError(
    'invalid_idempotency_key',
    'invalid_idempotency_key: the key must be a string of 1 to 255 characters without control characters',
  );
}

/** Returns the JSON text to send (cast to jsonb in SQL), or null. */
export function metadata(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  const fail = () =>
    new ValidationError('invalid_metadata', `invalid_metadata: metadata must be a plain JSON object of at most ${MAX_METADATA_BYTES / 1024} kB`);
  if (typeof value !== 'object' || Array.isArray(value)) throw fail();
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch {
    throw fail(); // cycles, BigInt
  }
  // PostgreSQL's jsonb cannot hold \u0000; its text form (with spaces) is what the SQL limit measures.
  if (text.includes('\\u0000') || Buffer.byteLength(text) > MAX_METADATA_BYTES) throw fail();
  return text;
}

/** 'YYYY-MM-DD' (a UTC day) or a Date (its UTC day); undefined lets SQL pick the default. */
export function day(value: unknown, name: string): string | null {
  if (value === undefined || value === null) return null;
  let text: string | undefined;
  if (value instanceof Date && !Number.isNaN(value.getTime())) text = value.toISOString().slice(0, 10);
  else if (typeof value === 'string' && DATE.test(value)) {
    const parsed = new Date(`${value}T00:00:00Z`);
    if (!Number.isNaN(parsed.getTime()) && parsed.toISOString().startsWith(value)) text = value;
  }
  if (!text || !/^\d{4}-/.test(text)) {
    throw new ValidationError('invalid_date', `invalid_date: ${name} must be a 'YYYY-MM-DD' string or a valid Date`);
  }
  return text;
}
