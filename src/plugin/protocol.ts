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
}

export type CheckoutInterstitial = 'PAID_FEATURE' | 'TRIAL_ENDED' | 'SKIP';
/** figma.payments.status.type after the checkout; 'NOT_SUPPORTED' grants nothing. */
export type PaymentStatusType = 'UNPAID' | 'PAID' | 'NOT_SUPPORTED';

export type BridgeOp =
  | { op: 'session.get' }
  | { op: 'session.set'; session: StoredSession }
  | { op: 'session.clear' }
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

export const isStoredSession = (v: unknown): v is StoredSession =>
  typeof v === 'object' && v !== null && typeof (v as StoredSession).token === 'string' && typeof (v as StoredSession).expiresAt === 'string';
