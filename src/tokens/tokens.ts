// Plugin sessions: tokens a Figma plugin keeps in figma.clientStorage. The token is a JWT; the
// database keeps its SHA-256 digest (never the token), which makes every token revocable and
// auditable. verify costs one round trip when the JWT is good and none when it is not.
import { withTypedErrors, type Database } from '../core/queryable.ts';
import { AuthError, ValidationError } from '../core/errors.ts';
import { createLogin, type LoginOptions } from './login.ts';
import { mintToken } from './input.ts';
import { createSigner, sha256Hex, type TokenSigningOptions } from './signer.ts';
import * as input from '../core/validation.ts';
import { MIN_MAX_TOKENS } from '../core/limits.ts';
import type { IssuedToken } from './input.ts';

export type { IssuedToken } from './input.ts';

export interface TokenOptions extends TokenSigningOptions, LoginOptions {
  /** Lifetime of an issued token when issue() is not given one (default 7 days). */
  tokenTtlSeconds?: number;
  /** Cap on a user's active tokens (devices); issuing one more revokes the oldest. Default: no cap. */
  maxTokensPerUser?: number;
}

export interface VerifiedToken {
  userId: string;
  tokenId: string;
  expiresAt: Date;
  deviceName: string | null;
  /** The device (a server-minted id, per install): what device limits count. The name is for display. */
  deviceId: string;
}

export interface TokenInfo {
  tokenId: string;
  deviceName: string | null;
  status: 'active' | 'revoked' | 'expired';
  createdAt: Date;
  expiresAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  revokedReason: string | null;
}

const VERIFY_ERRORS: Record<string, () => AuthError> = {
  invalid: () => new AuthError('token_invalid', 'token_invalid: unknown token'),
  revoked: () => new AuthError('token_revoked', 'token_revoked: the token was revoked; sign in again'),
  expired: () => new AuthError('token_expired', 'token_expired: the token has expired; sign in again'),
};

export function createTokens(db: Database, options: TokenOptions = {}) {
  db = withTypedErrors(db);
  const signer = createSigner(options);
  const defaultTtl = input.ttlSeconds(options.tokenTtlSeconds ?? input.DEFAULT_TOKEN_TTL_SECONDS, 'tokenTtlSeconds');
  const maxActive = options.maxTokensPerUser ?? null;
  if (maxActive !== null && (!Number.isInteger(maxActive) || maxActive < MIN_MAX_TOKENS)) {
    throw new ValidationError('invalid_max_tokens', `invalid_max_tokens: maxTokensPerUser must be a whole number of at least ${MIN_MAX_TOKENS}`);
  }

  return {
    /**
     * Issues a token for the user: `{ token, tokenId, expiresAt, deviceId }`. The token is returned
     * once and only its digest is stored. `deviceId`: the id an earlier session of this user was
     * given (the same install signing in again); any other id, or none, gets a new device.
     */
    async issue(
      userId: string,
      { deviceName, deviceId, ttlSeconds }: { deviceName?: string | null; deviceId?: string | null; ttlSeconds?: number } = {},
    ): Promise<IssuedToken> {
      input.userId(userId);
      const device = input.deviceName(deviceName);
      const keep = input.deviceId(deviceId, false);
      const ttl = ttlSeconds === undefined ? defaultTtl : input.ttlSeconds(ttlSeconds, 'ttlSeconds');
      const minted = await mintToken(signer(), userId, ttl);
      const rows = await db.query<{ device_id: string }>(
        'SELECT public.issue_plugin_token($1::uuid, $2::uuid, $3::text, $4::varchar, $5::timestamptz, $6::integer, $7::uuid) AS device_id',
        [minted.tokenId, userId, minted.tokenHash, device, minted.expiresAt, maxActive, keep],
      );
      return { token: minted.token, tokenId: minted.tokenId, expiresAt: minted.expiresAt, deviceId: rows[0]!.device_id };
    },

    /**
     * Checks a token: signature, algorithm, exp/nbf/iss/aud (no database), then one round trip that
     * checks the row (exists, digest, not revoked, not expired, user exists) and touches
     * last_used_at at most once a minute. Throws AuthError token_invalid / token_expired / token_revoked.
     */
    async verify(token: string): Promise<VerifiedToken> {
      const claims = await signer().verify(token);
      const rows = await db.query<{ status: string; user_id: string | null; expires_at: Date | null; device_name: string | null; device_id: string | null }>(
        'SELECT status, user_id, expires_at, device_name, device_id FROM public.verify_plugin_session($1::uuid, $2::text)',
        [claims.tokenId, await sha256Hex(token)],
        { prepare: 'fpa_verify_plugin_token' },
      );
      const row = rows[0];
      if (!row || row.status !== 'ok' || row.user_id !== claims.userId || !row.expires_at || !row.device_id) {
        throw (VERIFY_ERRORS[row?.status ?? 'invalid'] ?? VERIFY_ERRORS.invalid!)();
      }
      return { userId: row.user_id, tokenId: claims.tokenId, expiresAt: row.expires_at, deviceName: row.device_name, deviceId: row.device_id };
    },

    /** Revokes one token. True when this call revoked it, false when it already was revoked. */
    async revoke(tokenId: string, reason?: string): Promise<boolean> {
      input.tokenId(tokenId);
      const why = input.reason(reason);
      const rows = await db.query<{ revoked: boolean }>('SELECT public.revoke_plugin_token($1::uuid, $2::varchar) AS revoked', [tokenId, why]);
      return rows[0]!.revoked;
    },

    /** Sign out everywhere: revokes every active token of the user. Returns how many. */
    async revokeAll(userId: string, reason = 'revoke_all'): Promise<number> {
      input.userId(userId);
      const why = input.reason(reason);
      const rows = await db.query<{ n: number }>('SELECT public.revoke_all_plugin_tokens($1::uuid, $2::varchar) AS n', [userId, why]);
      return rows[0]!.n;
    },

    /** The user's tokens, newest first, including revoked and expired ones not yet purged. No digests. */
    async list(userId: string): Promise<TokenInfo[]> {
      input.userId(userId);
      const rows = await db.query<{
          id: string; device_name: string | null; status: TokenInfo['status']; created_at: Date; expires_at: Date;
          last_used_at: Date | null; revoked_at: Date | null; revoked_reason: string | null;
        }>('SELECT * FROM public.list_plugin_tokens($1::uuid)', [userId]);
      return rows.map((r) => ({
        tokenId: r.id,
        deviceName: r.device_name,
        status: r.status,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        lastUsedAt: r.last_used_at,
        revokedAt: r.revoked_at,
        revokedReason: r.revoked_reason,
      }));
    },

    /**
     * Deletes tokens (revoked or not) and login requests that expired before `olderThan`
     * (default: now). Revoked tokens stay until they expire, so `list` keeps showing them.
     */
    async purgeExpired({ olderThan }: { olderThan?: Date } = {}): Promise<{ tokens: number; loginRequests: number }> {
      const cutoff = input.optionalDate(olderThan, 'invalid_cutoff', 'olderThan must be a valid Date');
      const rows = await db.query<{ tokens: number; login_requests: number }>(
          'SELECT tokens, login_requests FROM public.purge_plugin_sessions(COALESCE($1::timestamptz, now()))',
          [cutoff ?? null],
        );
      return { tokens: rows[0]!.tokens, loginRequests: rows[0]!.login_requests };
    },

    ...createLogin(db, options, signer, { ttlSeconds: defaultTtl, maxActive }),
  };
}

export type Tokens = ReturnType<typeof createTokens>;
