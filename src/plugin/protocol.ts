// The postMessage protocol between the plugin UI (iframe) and the plugin's main thread. The iframe
// cannot reach figma.clientStorage, figma.openExternal or figma.payments; the main thread can.
// UI -> main: parent.postMessage({ pluginMessage: request }, '*'), received by figma.ui.on('message').
// main -> UI: figma.ui.postMessage(reply), received by the iframe as event.data.pluginMessage.
// Every message carries BRIDGE_TAG, so a plugin's own messages pass by untouched.

export const BRIDGE_TAG = 'figma-plugin-auth-db/bridge@1';

/** What the main thread keeps in figma.clientStorage. Plain JSON: clientStorage stores structured values. */
export interface StoredSession {
  token: string;
  /** ISO 8601. */
  expiresAt: string;
  tokenId?: string;
  userId?: string;
  /**
   * The device id the server minted for this install (the poll's answer). Sent back at the next
   * sign-in, so one install stays one device (licenses count devices). Kept by the main thread
   * beside the session, also after sign-out.
   */
  deviceId?: string;
}

/** The last offline lease the server signed for this install (docs/plugin.md#licenses-and-offline-leases). */
export interface StoredLease {
  /** Compact JWS (typ license-lease+jwt). */
  jwt: string;
  /** The public keys the server answered with (used unless the plugin pins its own, leaseJwks). */
  jwks: { keys: Array<Record<string, unknown>> };
  /** Whom and which device it is about (checked again against the signature's claims). */
  userId: string;
  deviceId: string;
}

export type CheckoutInterstitial = 'PAID_FEATURE' | 'TRIAL_ENDED' | 'SKIP';
/** figma.payments.status.type after the checkout; 'NOT_SUPPORTED' grants nothing. */
export type PaymentStatusType = 'UNPAID' | 'PAID' | 'NOT_SUPPORTED';

export type BridgeOp =
  | { op: 'session.get' }
  | { op: 'session.set'; session: StoredSession }
  | { op: 'session.clear' }
  /** This install's device id (StoredSession.deviceId, kept after sign-out), or null. */
  | { op: 'device.get' }
  /** The stored offline lease, or null. */
  | { op: 'lease.get' }
  | { op: 'lease.set'; lease: StoredLease }
  | { op: 'open'; url: string }
  | { op: 'payments.checkout'; interstitial?: CheckoutInterstitial }
  | { op: 'payments.status' };

export type BridgeRequest = BridgeOp & { tag: typeof BRIDGE_TAG; kind: 'request'; id: string };

export type BridgeReply =
  | { tag: typeof BRIDGE_TAG; kind: 'reply'; id: string; ok: true; value: unknown }
  | { tag: typeof BRIDGE_TAG; kind: 'reply'; id: string; ok: false; error: string };

export const isBridgeRequest = (m: unknown): m is BridgeRequest =>
  typeof m === 'object' && m !== null && (m as BridgeRequest).tag === BRIDGE_TAG && (m as BridgeRequest).kind === 'request' &&
  typeof (m as BridgeRequest).id === 'string';

export const isBridgeReply = (m: unknown): m is BridgeReply =>
  typeof m === 'object' && m !== null && (m as BridgeReply).tag === BRIDGE_TAG && (m as BridgeReply).kind === 'reply' &&
  typeof (m as BridgeReply).id === 'string';

/** A device id as the server mints it (a UUID); anything else is never sent back. */
export const isDeviceId = (v: unknown): v is string =>
  typeof v === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v);

export const isStoredSession = (v: unknown): v is StoredSession =>
  typeof v === 'object' && v !== null && typeof (v as StoredSession).token === 'string' && typeof (v as StoredSession).expiresAt === 'string';

export const isStoredLease = (v: unknown): v is StoredLease =>
  typeof v === 'object' && v !== null && typeof (v as StoredLease).jwt === 'string' && (v as StoredLease).jwt.length < 16384 &&
  typeof (v as StoredLease).jwks === 'object' && (v as StoredLease).jwks !== null && Array.isArray((v as StoredLease).jwks.keys) &&
  typeof (v as StoredLease).userId === 'string' && isDeviceId((v as StoredLease).deviceId);
