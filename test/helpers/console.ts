// The operator's console's seed (test/dashboard.console.browser.test.ts, scripts/dashboard-screenshot.ts):
// users with a story each (past due; canceling; at the limit with a license, a device and a team
// seat; a hostile one whose email and name are markup and a CSV formula), and failures the plugin
// server records itself (webhook deliveries accepted, duplicate, ignored and refused; a refused session).
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import type { Database } from '../../src/core/db.ts';
import { createPluginAuth } from '../../src/auth.ts';
import { createPluginServer } from '../../src/server/server.ts';
import { createUser, device } from './databases.ts';
import { PRICES, linkPrices, subscription, event } from './stripe.ts';
import { STRIPE_WEBHOOK_SECRET, TOKEN_SECRET } from './secrets.ts';

export const XSS = `<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>`;
export const FORMULA = `=HYPERLINK("http://evil.test","x")`;
const DAY = 86_400;

export interface Seeded {
  ada: string;
  bea: string;
  cy: string;
  eve: string;
  evil: string;
  cyTokenId: string;
  licenseId: string;
  deviceId: string;
}

/** domain: of the users' emails (the screenshot seeds them next to the dashboard's history, which has its own ada@example.com). */
export async function seedConsole(db: Database, { domain = 'example.com' }: { domain?: string } = {}): Promise<Seeded> {
  const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
  await linkPrices(db);
  const ada = await createUser(db, `ada@${domain}`);
  const bea = await createUser(db, `bea@${domain}`);
  const cy = await createUser(db, `cy@${domain}`);
  const eve = await createUser(db, `eve@${domain}`);
  const evil = await createUser(db, `evil${XSS}@evil.test`);
  await db.query('UPDATE public.users SET name = $2::varchar, figma_user_id = $3::varchar WHERE id = $1::uuid', [evil, `${FORMULA}${XSS}`, 'figma-evil-1']);
  const now = Math.floor(Date.now() / 1000);
  // ada: past due on pro; bea: active, canceling at the period's end.
  await auth.subscriptions.syncFromStripe(subscription({ id: 'sub_ADA', customer: 'cus_ADA123', status: 'past_due', priceId: PRICES.pro, userId: ada, periodStart: now - 20 * DAY, periodEnd: now + 10 * DAY }) as never, { eventCreated: now - 60 });
  await auth.subscriptions.syncFromStripe(subscription({ id: 'sub_BEA', customer: 'cus_BEA456', status: 'active', priceId: PRICES.basic, userId: bea, cancelAtPeriodEnd: true, periodStart: now - 5 * DAY, periodEnd: now + 25 * DAY }) as never, { eventCreated: now - 60 });
  // cy: on free, two calls counted today and a third refused at the limit; a session; a license on that device; eve holds a seat of it.
  for (let i = 0; i < 3; i++) await auth.usage.consume(cy, 'resize', { idempotencyKey: `cy-${i}` });
  const issued = await auth.tokens.issue(cy, { deviceName: `Cy's Mac ${XSS}` });
  const { deviceId } = await device(db, cy, 'Cy laptop');
  const [lic] = await db.query<{ id: string }>(
    `INSERT INTO public.licenses (provider, key_hash, key_prefix, user_id, product_id, status, checked_at, state_at, quantity)
     VALUES ('lemonsqueezy', $1::char(64), 'CYKEY123', $2::uuid, 'prod_team', 'active', now(), now(), 3) RETURNING id`,
    [createHash('sha256').update('CYKEY123-SECRET-REST').digest('hex'), cy],
  );
  await db.query('INSERT INTO public.license_devices (license_id, device_name, device_id) VALUES ($1::uuid, $2::varchar, $3::uuid)', [lic!.id, 'Cy laptop', deviceId]);
  await db.query('INSERT INTO public.seat_assignments (license_id, owner_user_id, member_user_id) VALUES ($1::uuid, $2::uuid, $3::uuid)', [lic!.id, cy, eve]);
  return { ada, bea, cy, eve, evil, cyTokenId: issued.tokenId, licenseId: lic!.id, deviceId };
}

/** Failures the plugin server records itself: webhook deliveries and a refused session. */
export async function serverFailures(db: Database, ada: string): Promise<void> {
  const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
  const handle = createPluginServer(auth, { stripe: { webhookSecret: STRIPE_WEBHOOK_SECRET }, log: () => {} });
  const sign = (payload: string) => {
    const t = Math.floor(Date.now() / 1000);
    return `t=${t},v1=${createHmac('sha256', STRIPE_WEBHOOK_SECRET).update(`${t}.${payload}`).digest('hex')}`;
  };
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    handle(new Request(`http://127.0.0.1${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } }));
  const now = Math.floor(Date.now() / 1000);
  const updated = JSON.stringify(event('customer.subscription.updated', subscription({ id: 'sub_ADA', customer: 'cus_ADA123', status: 'past_due', priceId: PRICES.pro, userId: ada, periodStart: now - 20 * DAY, periodEnd: now + 10 * DAY }), now - 30, 'evt_ADA_1'));
  assert.equal((await post('/webhooks/stripe', updated, { 'stripe-signature': sign(updated) })).status, 200);
  assert.equal((await post('/webhooks/stripe', updated, { 'stripe-signature': sign(updated) })).status, 200);
  assert.equal((await post('/webhooks/stripe', updated, { 'stripe-signature': 't=1,v1=00' })).status, 401);
  const invoice = JSON.stringify({ ...event('invoice.paid', {}, now, 'evt_INV_1'), data: { object: { id: 'in_1' } } });
  assert.equal((await post('/webhooks/stripe', invoice, { 'stripe-signature': sign(invoice) })).status, 200);
  // A plugin session refused: a token that is not one.
  assert.equal((await post('/plugin/sign-out', '{}', { authorization: 'Bearer not.a.token' })).status, 401);
}

