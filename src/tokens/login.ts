// The Figma login hand-over. A plugin cannot receive a redirect, so (Figma's documented pattern):
// the plugin calls beginLogin, keeps the read key, opens the system browser on a page of yours
// carrying the write key; that page signs the user in and calls completeLogin(writeKey, userId);
// meanwhile the plugin polls with the read key and, once, receives a freshly minted token.
// Keys are random 256-bit values; the database holds only their SHA-256 digests.
import { randomBase64url } from '../core/bytes.ts';
import type { Database } from '../core/queryable.ts';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import { mintToken, type IssuedToken } from './input.ts';
import { sha256Hex, type Signer } from './signer.ts';
import * as input from '../core/validation.ts';
import { MAX_LOGIN_TTL_SECONDS, MIN_LOGIN_TTL_SECONDS } from '../core/limits.ts';

export interface LoginOptions {
  /** How long a login request can wait for the browser (default 600 s, i.e. ten minutes). */
  loginTtlSeconds?: number;
}

export interface BegunLogin {
  /** Stays in the plugin: it polls with it. */
  readKey: string;
  /** Goes to the browser page (e.g. in the URL fragment), which completes the login with it. */
  writeKey: string;
  expiresAt: Date;
}

export const DEFAULT_LOGIN_TTL_SECONDS = 600;
const KEY_BYTES = 32;
// 32 bytes in base64url: exactly 43 characters. Anything else cannot be one of our keys.
const KEY_SHAPE = /^[A-Za-z0-9_-]{43}$/;

const newKey = () => randomBase64url(KEY_BYTES);

/** A string that is not shaped like a key is answered as a key that names no login: no database call. */
function keyDigest(key: unknown, which: 'read' | 'write'): Promise<string> {
  if (typeof key !== 'string' || !KEY_SHAPE.test(key)) {
    throw new NotFoundError('login_not_found', `login_not_found: that is not a ${which} key issued by beginLogin`);
  }
  return sha256Hex(key);
}

export function createLogin(
  db: Database,
  options: LoginOptions,
  signer: () => Signer,
  token: { ttlSeconds: number; maxActive: number | null },
) {
  const loginTtl = options.loginTtlSeconds ?? DEFAULT_LOGIN_TTL_SECONDS;
  if (!Number.isInteger(loginTtl) || loginTtl < MIN_LOGIN_TTL_SECONDS || loginTtl > MAX_LOGIN_TTL_SECONDS) {
    throw new ValidationError('invalid_ttl', `invalid_ttl: loginTtlSeconds must be a whole number from ${MIN_LOGIN_TTL_SECONDS} to ${MAX_LOGIN_TTL_SECONDS}`);
  }

  return {
    /**
     * Starts a login: `{ readKey, writeKey, expiresAt }`. Fails early when no signing key is
     * configured. `deviceId`: the id this install was given at its last sign-in; kept when it is
     * a device of the user who completes the login, else the session gets a new device.
     */
    async beginLogin({ deviceName, deviceId }: { deviceName?: string | null; deviceId?: string | null } = {}): Promise<BegunLogin> {
      signer(); // a login that could never be collected is refused now, not ten minutes later
      const device = input.deviceName(deviceName);
      const keep = input.deviceId(deviceId, false);
      const readKey = newKey();
      const writeKey = newKey();
      const rows = await db.query<{ expires_at: Date }>('SELECT public.begin_plugin_login($1::text, $2::text, $3::integer, $4::varchar, $5::uuid) AS expires_at', [
          await sha256Hex(readKey), await sha256Hex(writeKey), loginTtl, device, keep,
        ]);
      return { readKey, writeKey, expiresAt: rows[0]!.expires_at };
    },

    /**
     * Called by your web page once the user is signed in there. Completing again for the same
     * user is a no-op; for another user it is refused (login_already_completed).
     */
    async completeLogin(writeKey: string, userId: string): Promise<void> {
      const digest = await keyDigest(writeKey, 'write');
      input.userId(userId);
      await db.query('SELECT public.complete_plugin_login($1::text, $2::uuid)', [digest, userId]);
    },

    /**
     * The plugin's poll: null while the browser has not completed the login; then, exactly once,
     * `{ token, tokenId, expiresAt }` minted at this moment (never stored); after that the request
     * is gone (login_not_found). Expired requests: login_expired.
     * One round trip while pending, three on success (the last reads the session's device id).
     */
    async pollLogin(readKey: string): Promise<IssuedToken | null> {
      const digest = await keyDigest(readKey, 'read');
      const sign = signer();
      const rows = await db.query<{ status: 'pending' | 'completed'; user_id: string | null }>(
          'SELECT status, user_id FROM public.poll_plugin_login($1::text)',
          [digest],
        );
      const row = rows[0];
      if (!row || row.status !== 'completed' || !row.user_id) return null;
      // Mint, then claim: the claim deletes the request and records the token in one statement, so
      // of racing pollers exactly one succeeds and the others get login_not_found.
      const minted = await mintToken(sign, row.user_id, token.ttlSeconds);
      await db.query('SELECT public.claim_plugin_login($1::text, $2::uuid, $3::uuid, $4::text, $5::timestamptz, $6::integer)', [
          digest, row.user_id, minted.tokenId, minted.tokenHash, minted.expiresAt, token.maxActive,
        ]);
      const device = await db.query<{ device_id: string }>('SELECT device_id FROM public.plugin_tokens WHERE id = $1::uuid', [minted.tokenId]);
      return { token: minted.token, tokenId: minted.tokenId, expiresAt: minted.expiresAt, deviceId: device[0]!.device_id };
    },
  };
}
