// What the plugin server records for the operator's console (docs/dashboard.md#what-failed): one
// row per webhook delivery (its outcome and reason code) and one per refused sign-in or plugin
// session (the route and the error code). Never a body, a signature, a token, a key or a code:
// only the fields below, each checked against its column before it is written. Recording never
// fails the request it describes: a write that fails is dropped.
import type { Queryable } from './queryable.ts';

export type WebhookProvider = 'stripe' | 'lemonsqueezy' | 'gumroad' | 'figma';
export type DeliveryOutcome = 'accepted' | 'duplicate' | 'ignored' | 'refused';

const CODE = /^[a-z0-9_]{1,64}$/;
const EVENT_ID = /^[A-Za-z0-9_.:-]{1,255}$/;
const ROUTE = /^[a-z0-9_./-]{1,64}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PROVIDERS = new Set<string>(['stripe', 'lemonsqueezy', 'gumroad', 'figma']);
const OUTCOMES = new Set<string>(['accepted', 'duplicate', 'ignored', 'refused']);

/** A code as stored: the library's error codes and the webhook reasons fit; anything else is 'other'. */
const code = (value: unknown) => (typeof value === 'string' && CODE.test(value) ? value : 'other');

export function createEvents(db: Pick<Queryable, 'query'>) {
  return {
    /** One webhook delivery answered: accepted, duplicate, ignored, or refused with the error code. */
    async webhookDelivery(provider: WebhookProvider, outcome: DeliveryOutcome, reasonCode: string, eventId?: string | null): Promise<void> {
      if (!PROVIDERS.has(provider) || !OUTCOMES.has(outcome)) return;
      const id = typeof eventId === 'string' && EVENT_ID.test(eventId) ? eventId : null;
      try {
        await db.query(
          'INSERT INTO public.webhook_deliveries (provider, event_id, outcome, reason_code) VALUES ($1::varchar, $2::varchar, $3::varchar, $4::varchar)',
          [provider, id, outcome, code(reasonCode)],
        );
      } catch {
        // The delivery's answer does not depend on its record.
      }
    },
    /** One refused sign-in or plugin session: the route and the error code (the user, when known). */
    async signInRefused(route: string, reasonCode: string, userId?: string | null): Promise<void> {
      const r = route.toLowerCase().slice(0, 64);
      if (!ROUTE.test(r)) return;
      const user = typeof userId === 'string' && UUID.test(userId) ? userId : null;
      try {
        await db.query(
          'INSERT INTO public.sign_in_refusals (route, reason_code, user_id) VALUES ($1::varchar, $2::varchar, $3::uuid)',
          [r, code(reasonCode), user],
        );
      } catch {
        // As above.
      }
    },
  };
}

export type Events = ReturnType<typeof createEvents>;
