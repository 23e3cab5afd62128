// What tokens.ts and login.ts share (both issue tokens). Their input checks live in core/validation.ts.
import { sha256Hex, type Signer } from './signer.ts';

/** Signs a token for the user and returns it with what the issue/claim SQL functions record. */
export async function mintToken(signer: Signer, userId: string, ttlSeconds: number) {
  const tokenId = crypto.randomUUID();
  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + ttlSeconds;
  const token = await signer.sign({ userId, tokenId, iat, exp });
  return { token, tokenId, expiresAt: new Date(exp * 1000), tokenHash: await sha256Hex(token) };
}

export interface IssuedToken {
  /** The JWT. Shown once: hand it to the plugin; it is not stored anywhere. */
  token: string;
  tokenId: string;
  expiresAt: Date;
  /**
   * The device this session belongs to, minted by the server (per install). The plugin keeps it
   * and sends it back at its next sign-in (`deviceId`), so the same install stays one device.
   */
  deviceId: string;
}
