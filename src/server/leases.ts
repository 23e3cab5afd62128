// The plugin's lease routes (docs/licenses.md#device-leases, docs/plugin.md#licenses-and-offline-leases):
// POST /plugin/license/lease, the heartbeat of the calling session's device, answering its reasons
// and (with an entitlement signing key) a signed offline lease and the keys that verify it;
// GET /plugin/license/devices, the devices of the caller's licenses, live and expired.
// The device is always the session's (a server-minted id), never one from the body.
import type { PluginAuth } from '../auth.ts';
import type { VerifiedToken } from '../tokens/tokens.ts';
import { cancelBody } from './body.ts';

type Route = { plugin: boolean; handle: (request: Request, id: string) => Promise<Response> };

export interface LeaseRouteContext {
  auth: Pick<PluginAuth, 'leases' | 'configured'>;
  add: (method: string, path: string, route: Route) => void;
  bearer: (request: Request) => Promise<VerifiedToken>;
}

export function addLeaseRoutes({ auth, add, bearer }: LeaseRouteContext): void {
  add('POST', '/plugin/license/lease', {
    plugin: true,
    handle: async (request) => {
      const session = await bearer(request);
      await cancelBody(request); // no body is read: the device is the session's
      if (!auth.configured.entitlements) return Response.json({ ...(await auth.leases.heartbeat(session.userId, session.deviceId)), lease: null, jwks: null });
      const answer = await auth.leases.offlineLease(session.userId, session.deviceId);
      return Response.json({ ...answer, jwks: await auth.leases.jwks() });
    },
  });
  add('GET', '/plugin/license/devices', {
    plugin: true,
    handle: async (request) => {
      const session = await bearer(request);
      const devices = await auth.leases.devices(session.userId);
      return Response.json({ devices: devices.map((d) => ({ ...d, current: d.deviceId === session.deviceId })) });
    },
  });
}
