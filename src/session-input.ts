// Input checks and helpers shared by tokens.ts and login.ts. Bad input is refused here, before
// anything is signed or written.
import { randomUUID } from 'node:crypto';
import { ValidationError, fromDatabaseError } from './errors.ts';
import { isUuid, sha256Hex, type Signer } from './token-signer.ts';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export const DEFAULT_TOKEN_TTL_SECONDS = 7 * 24 * 3600;
/** Shorter than a minute risks the token expiring on its way to the plugin. */
export const MIN_TOKEN_TTL_SECONDS = 60;
export const MAX_TOKEN_TTL_SECONDS = 365 * 24 * 3600;

/** Runs a database call, turning driver errors into typed ones. */
export async function run<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw fromDatabaseError(error);
  }
}

export function checkUserId(userId: unknown): asserts userId is string {
  if (!isUuid(userId)) throw new ValidationError('invalid_user_id', 'invalid_user_id: userId must be a uuid');
}

export function checkTtl(ttl: unknown, name: string): number {
  if (!Number.isInteger(ttl) || (ttl as number) < MIN_TOKEN_TTL_SECONDS || (ttl as number) > MAX_TOKEN_TTL_SECONDS) {
    throw new ValidationError(
      'invalid_ttl',
      `invalid_ttl: ${name} must be a whole number of seconds from ${MIN_TOKEN_TTL_SECONDS} to ${MAX_TOKEN_TTL_SECONDS}`,
    );
  }
  return ttl as number;
}

export function checkDeviceName(deviceName: unknown): string | null {
  if (deviceName === undefined || deviceName === null) return null;
  // Control characters (NUL, newlines, escapes) are refused: PostgreSQL cannot store NUL, and the
  // rest would reach logs and terminals (sql/010 has the same CHECK).
  if (typeof deviceName !== 'string' || deviceName.length > 255 || CONTROL.test(deviceName)) {
    throw new ValidationError('invalid_device_name', 'invalid_device_name: deviceName must be a string of at most 255 characters without control characters');
  }
  return deviceName;
}

export function checkReason(reason: unknown): string | null {
  if (reason === undefined || reason === null) return null;
  if (typeof reason !== 'string' || reason.length > 255 || CONTROL.test(reason)) {
    throw new ValidationError('invalid_reason', 'invalid_reason: reason must be a string of at most 255 characters without control characters');
  }
  return reason;
}

/** Signs a token for the user and returns it with what the issue/claim SQL functions record. */
export async function mintToken(signer: Signer, userId: string, ttlSeconds: number) {
  const tokenId = randomUUID();
  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + ttlSeconds;
  const token = await signer.sign({ userId, tokenId, iat, exp });
  return { token, tokenId, expiresAt: new Date(exp * 1000), tokenHash: sha256Hex(token) };
}

