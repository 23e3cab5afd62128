// The main-thread half of the plugin client (code.ts): answers the UI's bridge requests with
// figma.clientStorage, figma.openExternal and figma.payments. No DOM, no Node: it runs in Figma's
// plugin sandbox. Import it from 'figma-plugin-auth-db/plugin/main' (or '/plugin').
import { BRIDGE_TAG, isBridgeRequest, isDeviceId, isStoredLease, isStoredSession, type BridgeReply, type BridgeRequest, type CheckoutInterstitial, type PaymentStatusType } from './protocol.ts';

export { BRIDGE_TAG, type StoredSession, type CheckoutInterstitial, type PaymentStatusType } from './protocol.ts';

/**
 * The parts of `figma` the bridge uses (the real global satisfies it; tests pass a stand-in).
 * Written out rather than picked from @figma/plugin-typings (an optional peer), so that these
 * declarations type-check in a project without it; examples/figma-plugin/ checks the real global
 * against it.
 */
export interface BridgeFigma {
  clientStorage: {
    getAsync(key: string): Promise<any>;
    setAsync(key: string, value: any): Promise<void>;
    deleteAsync(key: string): Promise<void>;
  };
  ui: {
    postMessage(pluginMessage: any, options?: any): void;
    on(type: 'message', callback: (pluginMessage: any, props: any) => void): void;
    off(type: 'message', callback: (pluginMessage: any, props: any) => void): void;
  };
  openExternal(url: string): void;
  /** Present when the manifest has the "payments" permission. */
  payments?: {
    readonly status: { readonly type: PaymentStatusType };
    initiateCheckoutAsync(options?: { interstitial?: CheckoutInterstitial }): Promise<void>;
  };
}

export interface BridgeOptions {
  /** clientStorage key of the session (default 'figma-plugin-auth-db.session'). */
  storageKey?: string;
  /** Let the UI start Figma's checkout (figma.payments.initiateCheckoutAsync). Default false. */
  payments?: boolean;
  /** Which URLs the UI may open in the system browser. Default: https:, and http: on localhost / 127.0.0.1. */
  allowOpen?: (url: string) => boolean;
  /** Called after the session is cleared (sign-out, or a 401 seen by the UI). */
  onSignOut?: () => void;
}

export const DEFAULT_STORAGE_KEY = 'figma-plugin-auth-db.session';

// No URL class here: Figma's main-thread sandbox does not promise one.
const defaultAllowOpen = (url: string) =>
  /^https:\/\/[^\s/?#@]+([/?#][^\s]*)?$/i.test(url) || /^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?([/?#][^\s]*)?$/i.test(url);

/** Installs the bridge on figma.ui (alongside the plugin's own handlers). Returns an uninstall function. */
export function installPluginBridge(figma: BridgeFigma, options: BridgeOptions = {}): () => void {
  const key = options.storageKey ?? DEFAULT_STORAGE_KEY;
  // The install's device id outlives a session (sign-out, expiry): its own key beside it.
  const deviceKey = `${key}.device`;
  // The last offline lease: outlives a network failure, not a sign-out.
  const leaseKey = `${key}.lease`;
  const allowOpen = options.allowOpen ?? defaultAllowOpen;

  async function answer(request: BridgeRequest): Promise<unknown> {
    switch (request.op) {
      case 'session.get': {
        const stored: unknown = await figma.clientStorage.getAsync(key);
        if (!isStoredSession(stored)) return null;
        if (!(Date.parse(stored.expiresAt) > Date.now())) {
          await figma.clientStorage.deleteAsync(key);
          return null;
        }
        return stored;
      }
      case 'session.set': {
        if (!isStoredSession(request.session)) throw new Error('bad_session');
        const { token, expiresAt, tokenId, userId, deviceId } = request.session;
        const device = isDeviceId(deviceId) ? deviceId : undefined;
        await figma.clientStorage.setAsync(key, { token, expiresAt, ...(tokenId ? { tokenId } : {}), ...(userId ? { userId } : {}), ...(device ? { deviceId: device } : {}) });
        if (device) await figma.clientStorage.setAsync(deviceKey, device);
        return null;
      }
      case 'device.get': {
        const stored: unknown = await figma.clientStorage.getAsync(deviceKey);
        return isDeviceId(stored) ? stored : null;
      }
      case 'lease.get': {
        const stored: unknown = await figma.clientStorage.getAsync(leaseKey);
        return isStoredLease(stored) ? stored : null;
      }
      case 'lease.set': {
        if (!isStoredLease(request.lease)) throw new Error('bad_lease');
        const { jwt, jwks, userId, deviceId } = request.lease;
        await figma.clientStorage.setAsync(leaseKey, { jwt, jwks, userId, deviceId });
        return null;
      }
      case 'session.clear':
        await figma.clientStorage.deleteAsync(key);
        await figma.clientStorage.deleteAsync(leaseKey);
        options.onSignOut?.();
        return null;
      case 'open': {
        if (typeof request.url !== 'string' || !allowOpen(request.url)) throw new Error('url_not_allowed');
        figma.openExternal(request.url);
        return null;
      }
      case 'payments.checkout': {
        const payments = paymentsOrThrow();
        await payments.initiateCheckoutAsync(request.interstitial ? { interstitial: request.interstitial } : undefined);
        return payments.status.type satisfies PaymentStatusType;
      }
      case 'payments.status':
        return paymentsOrThrow().status.type satisfies PaymentStatusType;
      default:
        throw new Error('unknown_op');
    }
  }

  function paymentsOrThrow() {
    if (!options.payments || !figma.payments) throw new Error('payments_disabled');
    return figma.payments;
  }

  const listener = (message: unknown) => {
    if (!isBridgeRequest(message)) return;
    const { id } = message;
    answer(message).then(
      (value) => figma.ui.postMessage({ tag: BRIDGE_TAG, kind: 'reply', id, ok: true, value } satisfies BridgeReply),
      (error: unknown) => {
        const code = error instanceof Error && /^[a-z_]+$/.test(error.message) ? error.message : 'bridge_failed';
        figma.ui.postMessage({ tag: BRIDGE_TAG, kind: 'reply', id, ok: false, error: code } satisfies BridgeReply);
      },
    );
  };
  figma.ui.on('message', listener);
  return () => figma.ui.off('message', listener);
}
