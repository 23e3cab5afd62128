// Hostile input over the public surface, on both databases: the TypeScript API, the SQL functions
// called directly (as a supabase.rpc caller would), setup's configuration, and the CLI. Every case
// ends in a PluginAuthError with an expected stable code, or a correct answer; where it errs the
// database is unchanged (row counts and checksums of every table, per case; the full catalog and
// rows by dumpDatabase per group). Cases are generated: inputs x functions x argument positions.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID, generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { DIALECTS, createUser, device, withDatabase } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { runScript } from './helpers/run.ts';
import { subscription, linkPrices, PRICES, T0 } from './helpers/stripe.ts';
import {
  HOSTILE_NUMBERS, HOSTILE_STRINGS, HOSTILE_UUIDS, HOSTILE_WEBHOOK_BODIES, WRONG_TYPES, digestOf, isWellFormed, runCases, userIdCodes, type Case,
} from './helpers/hostile.ts';
import { MAX_EVENT_SKEW_MS, isUuid } from '../src/core/validation.ts';
import { createPluginAuth } from '../src/auth.ts';
import type { Database } from '../src/core/db.ts';
import { PluginAuthError } from '../src/core/errors.ts';
import { startGumroadStandIn, startLemonSqueezyStandIn } from './helpers/license-standins.ts';
import { resolveTarget } from '../src/schema/setup.ts';
import { runSetupCommand } from '../src/cli/setup-command.ts';
import { TOKEN_SECRET as SECRET } from './helpers/secrets.ts';

let total = 0;
after(() => process.stdout.write(`# hostile cases tried: ${total}\n`));

const entries = <T>(o: Record<string, T>) => Object.entries(o);
const ALL_TEXT: Record<string, unknown> = { ...HOSTILE_STRINGS, ...WRONG_TYPES };
const validUuid = (v: unknown) => typeof v === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v);
const hasControl = (s: string) => /[\u0000-\u001f\u007f-\u009f]/.test(s);

/** Runs the cases and checks that the whole database (catalog and rows) is as before when nothing may have changed. */
async function run(db: Database, cases: Case[], options: { unchanged?: boolean } = {}) {
  total += cases.length;
  const before = options.unchanged ? await dumpDatabase(db) : undefined;
  const outcomes = await runCases(db, cases);
  if (before) assert.deepEqual(await dumpDatabase(db), before);
  return outcomes;
}

/** JWTs that must all be refused: forged, malformed, mis-signed, oversized. */
async function forgedTokens(userId: string, goodToken: string): Promise<Record<string, unknown>> {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: userId, jti: randomUUID(), iat: now, exp: now + 3600, iss: 'figma-plugin-auth-db', aud: 'figma-plugin' };
  const [h, p, s] = goodToken.split('.') as [string, string, string];
  const sign = (alg: string, key: Uint8Array | ReturnType<typeof generateKeyPairSync>['privateKey'], c: object = claims) =>
    new SignJWT({ ...c }).setProtectedHeader({ alg, typ: 'JWT' }).sign(key as Uint8Array);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ed = generateKeyPairSync('ed25519').privateKey;
  const secret = new TextEncoder().encode(SECRET);
  return {
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
    'alg none with a signature part': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.${s}`,
    'alg None (case)': `${b64({ alg: 'None' })}.${b64(claims)}.${s}`,
    'HS512 with the right secret': await sign('HS512', secret),
    'HS384 with the right secret': await sign('HS384', secret),
    'RS256 with some RSA key': await sign('RS256', rsa),
    'EdDSA with some Ed25519 key': await sign('EdDSA', ed),
    'header says RS256, HS256 signature': `${b64({ alg: 'RS256', typ: 'JWT' })}.${p}.${s}`,
    'header says HS512, same signature': `${b64({ alg: 'HS512', typ: 'JWT' })}.${p}.${s}`,
    'wrong key': await sign('HS256', new TextEncoder().encode('x'.repeat(48))),
    'right key, forged sub': await sign('HS256', secret, { ...claims, sub: randomUUID() }),
    'right key, sub is injection': await sign('HS256', secret, { ...claims, sub: "'; DROP TABLE users; --" }),
    'right key, jti is injection': await sign('HS256', secret, { ...claims, jti: "' OR '1'='1" }),
    'right key, unknown jti': await sign('HS256', secret, { ...claims }),
    'right key, no exp': `${h}.${b64({ ...claims, exp: undefined })}.${s}`,
    'payload swapped, old signature': `${h}.${b64({ ...claims, sub: randomUUID() })}.${s}`,
    'signature dropped': `${h}.${p}.`,
    'signature of another token': `${h}.${p}.${(await sign('HS256', secret)).split('.')[2]}`,
    truncated: goodToken.slice(0, goodToken.length - 5),
    'truncated to two parts': `${h}.${p}`,
    'one extra part': `${goodToken}.${s}`,
    'a.b.c': 'a.b.c',
    'dots only': '..',
    empty: '',
    '10 kB': `${h}.${'A'.repeat(10 * 1024)}.${s}`,
    '1 MB': `${h}.${'A'.repeat(1024 * 1024)}.${s}`,
    'header not JSON': `${Buffer.from('{not json').toString('base64url')}.${p}.${s}`,
    'payload not JSON': `${h}.${Buffer.from('[1,2').toString('base64url')}.${s}`,
    'payload a JSON array': `${h}.${b64([1, 2])}.${s}`,
    'crit header': `${b64({ alg: 'HS256', crit: ['exp'] })}.${p}.${s}`,
    'jku/kid header games': await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256', kid: '../../etc/passwd', jku: 'http://evil' }).sign(new TextEncoder().encode('y'.repeat(48))),
    'whitespace around': ` ${goodToken} `,
    'NUL appended': `${goodToken}\u0000`,
    'Bearer prefix': `Bearer ${goodToken}`,
    ...entries(HOSTILE_STRINGS).reduce((o, [k, v]) => ({ ...o, [`string: ${k}`]: v }), {}),
    ...WRONG_TYPES,
    undefined,
  };
}

for (const dialect of DIALECTS) {
  describe(`hostile input [${dialect}]`, () => {
    test('usage: consume, check, refund, summary', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        await auth.usage.consume(user, 'export', { idempotencyKey: 'known-key' });
        const cases: Case[] = [];
        for (const [k, v] of entries(HOSTILE_UUIDS)) {
          const userCodes = userIdCodes(v);
          cases.push({ name: `consume userId ${k}`, run: () => auth.usage.consume(v as string, 'resize'), codes: userCodes });
          cases.push({ name: `check userId ${k}`, run: () => auth.usage.check(v as string, 'resize'), codes: userCodes });
          cases.push({ name: `refund userId ${k}`, run: () => auth.usage.refund(v as string, 'known-key'), codes: userCodes });
          cases.push({ name: `summary userId ${k}`, run: () => auth.usage.summary(v as string), codes: userCodes });
        }
        for (const [k, v] of entries(ALL_TEXT)) {
          const accepted = typeof v === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(v);
          const answered = (r: unknown) => assert.equal((r as { reason: string }).reason, 'ok');
          cases.push({ name: `consume action ${k}`, run: () => auth.usage.consume(user, v as string), codes: ['invalid_action'], ok: accepted ? answered : undefined });
          cases.push({ name: `check action ${k}`, run: () => auth.usage.check(user, v as string), codes: ['invalid_action'], ok: accepted ? answered : undefined });
          // Idempotency keys: any 1-255 characters without control characters are fine, stored as given.
          const keyOk = typeof v === 'string' && [...v].length >= 1 && [...v].length <= 255 && !hasControl(v);
          cases.push({
            name: `consume idempotencyKey ${k}`,
            run: async () => [await auth.usage.consume(user, 'export', { idempotencyKey: v as string }), await auth.usage.consume(user, 'export', { idempotencyKey: v as string })],
            codes: ['invalid_idempotency_key'],
            ok: keyOk ? (r) => assert.deepEqual((r as { replayed: boolean }[]).map((a) => a.replayed), [false, true]) : v === null ? () => {} : undefined,
          });
          cases.push({
            name: `refund idempotencyKey ${k}`,
            run: () => auth.usage.refund(user, v as string),
            codes: keyOk ? ['unknown_idempotency_key'] : ['invalid_idempotency_key'],
            // Keys the consume cases above used are refunded once: an answer.
            ok: keyOk ? (r) => assert.equal((r as { refunded: boolean }).refunded, true) : undefined,
          });
          cases.push({ name: `summary from ${k}`, run: () => auth.usage.summary(user, { from: v as string }), codes: ['invalid_date'], ok: v === null ? (r) => assert.ok(Array.isArray(r)) : undefined });
          // Text inside metadata is data: stored and returned verbatim, except NUL and lone surrogates,
          // which jsonb cannot hold. The limit is 16 kB of jsonb text: compact JSON plus a space after
          // each of the two ':' and the ','.
          const metaOk = typeof v === 'string' && !v.includes('\u0000') && isWellFormed(v) && Buffer.byteLength(JSON.stringify({ v, [v]: 1 })) + 3 <= 16384;
          cases.push({
            name: `consume metadata value ${k}`,
            run: async () => {
              const key = `meta-${randomUUID()}`;
              await auth.usage.consume(user, 'export', { idempotencyKey: key, metadata: { v, [String(v)]: 1 } });
              const [row] = await db.query<{ metadata: { v: unknown } }>('SELECT metadata FROM public.plugin_usage WHERE idempotency_key = $1', [key]);
              return row!.metadata;
            },
            // A lone surrogate is refused by TypeScript as invalid_metadata (PostgreSQL would say invalid_input).
            codes: ['invalid_metadata'],
            ok: metaOk
              ? (m) => assert.deepEqual((m as { v: unknown }).v, v)
              : typeof v !== 'string' ? () => {} : undefined,
          });
        }
        for (const [k, v] of entries(HOSTILE_NUMBERS)) {
          cases.push({ name: `consume items ${k}`, run: () => auth.usage.consume(user, 'resize', { items: v as number }), codes: ['invalid_items'] });
          cases.push({ name: `check items ${k}`, run: () => auth.usage.check(user, 'resize', { items: v as number }), codes: ['invalid_items'] });
        }
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        const metadata: Record<string, unknown> = {
          '1 MB object': { blob: 'z'.repeat(1024 * 1024) },
          '16 kB + 1': { blob: 'z'.repeat(16384) },
          array: [1, 2],
          string: 'a string',
          number: 5,
          boolean: true,
          'a Date': new Date(),
          'cyclic': cyclic,
          'BigInt inside': { n: 1n },
          'NUL in a value': { a: '\u0000' },
          'NUL in a key': { 'a\u0000': 1 },
          'toJSON giving an array': { toJSON: () => [1] },
          'deeply nested': JSON.parse('['.repeat(5000) + ']'.repeat(5000)),
          'deep object': JSON.parse('{"a":'.repeat(3000) + '1' + '}'.repeat(3000)),
          'lone surrogate in a key': { 'k\ud800': 1 },
          'lone surrogate deep inside': { a: { b: ['ok', '\udfff'] } },
          '16,384 bytes compact, 16,385 as jsonb text': { blob: 'z'.repeat(16_373) },
          '1,700 keys: under 16 kB compact, over it as jsonb text': Object.fromEntries(Array.from({ length: 1700 }, (_, i) => [`k${i}`, 1])),
        };
        for (const [k, v] of entries(metadata)) {
          cases.push({ name: `consume metadata ${k}`, run: () => auth.usage.consume(user, 'export', { metadata: v as Record<string, unknown> }), codes: ['invalid_metadata'] });
        }
        for (const [k, v] of entries({ 'Invalid Date': new Date(Number.NaN), 'Feb 30': '2026-02-30', 'year 0': '0000-01-01', 'to before from': '2000-01-01', 'year 99999': '99999-01-01', 'ISO with time': '2026-01-01T00:00:00Z', 'infinity': 'infinity' })) {
          cases.push({ name: `summary from/to ${k}`, run: () => auth.usage.summary(user, { from: '2026-06-01', to: v as string }), codes: ['invalid_date', 'invalid_input'] });
        }
        await run(db, cases);
      }));

    test('tokens: issue, verify (forged and malformed JWTs), revoke, revokeAll, list', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        const good = await auth.tokens.issue(user, { deviceName: 'Figma desktop' });
        const pool = await Promise.all(Array.from({ length: 40 }, () => auth.tokens.issue(user)));
        const cases: Case[] = [];
        for (const [k, v] of entries(HOSTILE_UUIDS)) {
          const userCodes = userIdCodes(v);
          cases.push({ name: `issue userId ${k}`, run: () => auth.tokens.issue(v as string), codes: userCodes });
          cases.push({ name: `revokeAll userId ${k}`, run: () => auth.tokens.revokeAll(v as string), codes: userCodes });
          cases.push({ name: `list userId ${k}`, run: () => auth.tokens.list(v as string), codes: userCodes });
          cases.push({ name: `revoke tokenId ${k}`, run: () => auth.tokens.revoke(v as string), codes: ['invalid_token_id', 'token_not_found'] });
        }
        let reasons = 0;
        for (const [k, v] of entries(ALL_TEXT)) {
          const textOk = typeof v === 'string' && v.length <= 255 && !hasControl(v);
          cases.push({
            name: `issue deviceName ${k}`,
            run: async () => {
              const issued = await auth.tokens.issue(user, { deviceName: v as string });
              return (await auth.tokens.list(user)).find((t) => t.tokenId === issued.tokenId);
            },
            codes: ['invalid_device_name'],
            ok: textOk || v === null ? (t) => { if (isWellFormed(String(v))) assert.equal(String((t as { deviceName: unknown }).deviceName).replace(/^\ufeff/, ''), v === null ? 'null' : String(v).replace(/^\ufeff/, '')); } : undefined,
          });
          const tokenId = pool[reasons++ % pool.length]!.tokenId;
          cases.push({
            name: `revoke reason ${k}`,
            run: () => auth.tokens.revoke(tokenId, v as string),
            codes: ['invalid_reason'],
            ok: textOk || v === null ? (r) => assert.equal(typeof r, 'boolean') : undefined,
          });
          cases.push({
            name: `revokeAll reason ${k} (a stranger)`,
            run: () => auth.tokens.revokeAll(randomUUID(), v as string),
            codes: textOk || v === null ? ['unknown_user'] : ['invalid_reason'],
          });
        }
        for (const [k, v] of entries(HOSTILE_NUMBERS)) {
          cases.push({ name: `issue ttlSeconds ${k}`, run: () => auth.tokens.issue(user, { ttlSeconds: v as number }), codes: ['invalid_ttl'] });
        }
        for (const [k, v] of entries(await forgedTokens(user, good.token))) {
          cases.push({ name: `verify ${k}`, run: () => auth.tokens.verify(v as string), codes: ['token_invalid'] });
        }
        for (const [k, v] of entries({ 'Invalid Date': new Date(Number.NaN), future: new Date(Date.now() + 86_400_000), string: 'yesterday', number: 0 })) {
          cases.push({ name: `purgeExpired olderThan ${k}`, run: () => auth.tokens.purgeExpired({ olderThan: v as Date }), codes: ['invalid_cutoff'] });
        }
        await run(db, cases);
        // The good token still verifies: nothing above disturbed it.
        assert.equal((await auth.tokens.verify(good.token)).userId, user);
      }));

    test('login hand-over: beginLogin, completeLogin, pollLogin', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        const begun = await auth.tokens.beginLogin();
        const cases: Case[] = [];
        const keys: Record<string, unknown> = {
          ...ALL_TEXT,
          'the read key as write key': begun.readKey,
          'a key-shaped stranger': randomBytes(32).toString('base64url'),
          'the digest instead of the key': digestOf(begun.writeKey),
          'key plus a character': `${begun.writeKey}A`,
          'key with NUL': `${begun.writeKey.slice(0, 42)}\u0000`,
          undefined,
        };
        for (const [k, v] of entries(keys)) {
          cases.push({ name: `completeLogin writeKey ${k}`, run: () => auth.tokens.completeLogin(v as string, user), codes: ['login_not_found'] });
          cases.push({ name: `pollLogin readKey ${k}`, run: () => auth.tokens.pollLogin(v as string), codes: ['login_not_found'], ok: v === begun.readKey ? (r) => assert.equal(r, null) : undefined });
        }
        for (const [k, v] of entries(HOSTILE_UUIDS)) {
          cases.push({ name: `completeLogin userId ${k}`, run: () => auth.tokens.completeLogin(begun.writeKey, v as string), codes: userIdCodes(v) });
        }
        for (const [k, v] of entries(ALL_TEXT)) {
          const textOk = (typeof v === 'string' && v.length <= 255 && !hasControl(v)) || v === null;
          cases.push({
            name: `beginLogin deviceName ${k}`,
            run: () => auth.tokens.beginLogin({ deviceName: v as string }),
            codes: ['invalid_device_name'],
            ok: textOk ? (r) => assert.match((r as { readKey: string }).readKey, /^[A-Za-z0-9_-]{43}$/) : undefined,
          });
        }
        const unsigned = createPluginAuth(db);
        cases.push({ name: 'beginLogin without a secret', run: () => unsigned.tokens.beginLogin(), codes: ['token_secret_missing'] });
        cases.push({ name: 'verify without a secret', run: () => unsigned.tokens.verify('a.b.c'), codes: ['token_secret_missing'] });
        await run(db, cases);
        // The real login still completes.
        await auth.tokens.completeLogin(begun.writeKey, user);
        const issued = await auth.tokens.pollLogin(begun.readKey);
        assert.equal((await auth.tokens.verify(issued!.token)).userId, user);
      }));

    test('subscriptions and plans: syncFromStripe, assignPlan, effectivePlan, plans.list, plans.linkStripe', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { tokenSecret: SECRET });
        const user = await createUser(db);
        await linkPrices(db);
        const base = () => subscription({ userId: user, priceId: PRICES.pro, customer: `cus_${user.slice(0, 8)}`, id: `sub_${user.slice(0, 8)}` });
        // Quantities on a user of their own: assignPlan's cases move the first user's row to manual.
        const buyer = await createUser(db);
        const team = () => subscription({ userId: buyer, priceId: PRICES.pro, customer: `cus_${buyer.slice(0, 8)}`, id: `sub_${buyer.slice(0, 8)}` });
        const cases: Case[] = [];
        // A NUL is refused by PostgreSQL's JSON (invalid_input); ids with spaces or control characters by
        // sql/010's CHECKs (check_violation); other odd ids are opaque data and are applied as given.
        const syncCodes = ['invalid_subscription', 'unknown_customer', 'unknown_price', 'invalid_input', 'check_violation'];
        for (const [k, v] of entries(ALL_TEXT)) {
          for (const field of ['id', 'customer', 'status', 'object'] as const) {
            cases.push({
              name: `syncFromStripe ${field} ${k}`,
              run: () => auth.subscriptions.syncFromStripe({ ...base(), [field]: v } as never, { eventCreated: T0 }),
              codes: syncCodes,
              ok: ((field === 'id' || field === 'customer') && typeof v === 'string') || (field === 'object' && v === null) ? (r) => assert.equal((r as { planSlug: string }).planSlug, 'pro') : undefined,
            });
          }
          cases.push({
            name: `syncFromStripe price ${k}`,
            run: () => { const s = base(); s.items.data[0].price = { ...s.items.data[0].price, id: v }; return auth.subscriptions.syncFromStripe(s as never, { eventCreated: T0 }); },
            codes: syncCodes,
          });
          cases.push({
            name: `syncFromStripe metadata.user_id ${k} (new customer)`,
            run: () => auth.subscriptions.syncFromStripe({ ...base(), customer: 'cus_nobody', id: 'sub_nobody', metadata: { user_id: v } } as never, { eventCreated: T0 }),
            codes: ['unknown_customer', 'invalid_input'],
          });
          const slugOk = false;
          cases.push({ name: `assignPlan planSlug ${k}`, run: () => auth.subscriptions.assignPlan(user, v as string), codes: ['unknown_plan', 'invalid_input'], ok: slugOk ? () => {} : undefined });
          cases.push({ name: `linkStripe planSlug ${k}`, run: () => auth.plans.linkStripe(v as string, { productId: 'prod_x', priceId: 'price_x' }), codes: ['unknown_plan', 'invalid_input', 'invalid_stripe_id'] });
          const idOk = typeof v === 'string' && /^\S{1,255}$/.test(v.replace(/\ufeff/g, 'x')); // BOM: \s in JS, not in PostgreSQL
          for (const field of ['productId', 'priceId'] as const) {
            cases.push({
              name: `linkStripe ${field} ${k}`,
              run: () => auth.plans.linkStripe('enterprise', { productId: 'prod_e', priceId: 'price_e', [field]: v } as never),
              codes: ['invalid_stripe_id', 'invalid_input'],
              ok: idOk || v === null ? (p) => { if (typeof v === 'string' && isWellFormed(v)) assert.equal(String((p as Record<string, unknown>)[field === 'productId' ? 'stripeProductId' : 'stripePriceId']).replace(/^\ufeff/, ''), v.replace(/^\ufeff/, '')); } : undefined,
            });
          }
        }
        for (const [k, v] of entries(HOSTILE_UUIDS)) {
          cases.push({ name: `assignPlan userId ${k}`, run: () => auth.subscriptions.assignPlan(v as string, 'pro'), codes: userIdCodes(v) });
          cases.push({ name: `effectivePlan userId ${k}`, run: () => auth.subscriptions.effectivePlan(v as string), codes: userIdCodes(v) });
        }
        for (const [k, v] of entries(HOSTILE_NUMBERS)) {
          // Any finite positive number of seconds up to 5 minutes ahead is a time (fractions too): an answer.
          const time = typeof v === 'number' && v > 0 && v * 1000 <= Date.now() + MAX_EVENT_SKEW_MS;
          cases.push({ name: `syncFromStripe eventCreated ${k}`, run: () => auth.subscriptions.syncFromStripe(base() as never, { eventCreated: v as number }), codes: ['invalid_event_created'], ok: time ? (r) => assert.equal((r as { planSlug: string }).planSlug, 'pro') : undefined });
          cases.push({ name: `assignPlan until ${k}`, run: () => auth.subscriptions.assignPlan(user, 'pro', { until: v as unknown as Date }), codes: ['invalid_until'], ok: v === null ? (r) => assert.equal((r as { until: unknown }).until, null) : undefined });
          cases.push({ name: `syncFromStripe current_period_end ${k}`, run: () => auth.subscriptions.syncFromStripe({ ...base(), status: 'bogus', current_period_end: v } as never, { eventCreated: T0 }), codes: ['invalid_subscription'] });
          // Seats bought: a whole number from 0 to 100000, or none (1); anything else writes nothing.
          const quantityOk = v === null || (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 100_000);
          const checkQuantity = (expected: number) => async () =>
            assert.equal((await auth.subscriptions.effectivePlan(buyer)).subscription?.quantity, expected);
          cases.push({
            name: `syncFromStripe items.data[0].quantity ${k}`,
            run: () => { const s = team(); s.items.data[0].quantity = v; return auth.subscriptions.syncFromStripe(s as never, { eventCreated: T0 }); },
            codes: ['invalid_subscription'],
            ok: quantityOk ? checkQuantity(v === null ? 1 : Math.abs(v as number)) : undefined,
          });
          cases.push({
            name: `syncFromStripe subscription quantity (older API versions) ${k}`,
            run: () => { const s = team(); delete s.items.data[0].quantity; s.quantity = v; return auth.subscriptions.syncFromStripe(s as never, { eventCreated: T0 }); },
            codes: ['invalid_subscription'],
            ok: quantityOk ? checkQuantity(v === null ? 1 : Math.abs(v as number)) : undefined,
          });
        }
        // The SQL function itself (supabase.rpc callers): JSON that TypeScript would not send.
        for (const [k, q] of entries({ 'string "5"': '"5"', '-1': '-1', '1.5': '1.5', '100001': '100001', '1e400': '1e400', true: 'true', object: '{"n": 5}', array: '[5]' })) {
          cases.push({
            name: `sync_stripe_subscription quantity ${k}`,
            run: () => db.query('SELECT * FROM public.sync_stripe_subscription($1::jsonb, $2::timestamptz)',
              [JSON.stringify(team()).replace('"quantity":1', `"quantity":${q}`), new Date(T0 * 1000)]),
            codes: ['invalid_subscription'],
          });
        }
        const wholes: Record<string, unknown> = {
          null: null, string: 'sub_123', array: [base()], number: 1, 'an event, not its object': { object: 'event', data: { object: base() } },
          'empty object': {}, '1 MB metadata, bogus status': { ...base(), status: 'x', metadata: { blob: 'm'.repeat(1024 * 1024) } },
          'items not an array': { ...base(), items: { data: 'x' } }, 'customer object without id': { ...base(), customer: { name: 'x' } },
        };
        for (const [k, v] of entries(wholes)) {
          cases.push({ name: `syncFromStripe subscription ${k}`, run: () => auth.subscriptions.syncFromStripe(v as never, { eventCreated: T0 }), codes: syncCodes });
        }
        // Event times that would freeze the row: milliseconds for seconds, far-future Dates.
        for (const [k, v] of entries({ 'Date.now() (milliseconds)': Date.now(), 'a Date an hour ahead': new Date(Date.now() + 3_600_000), 'the last Date': new Date(8.64e15), 'a string': '2026-01-01' })) {
          cases.push({ name: `syncFromStripe eventCreated ${k}`, run: () => auth.subscriptions.syncFromStripe(base() as never, { eventCreated: v as number }), codes: ['invalid_event_created'] });
        }
        {
          const s = base();
          delete s.cancel_at_period_end;
          cases.push({ name: 'syncFromStripe without cancel_at_period_end', run: () => auth.subscriptions.syncFromStripe(s as never, { eventCreated: T0 }), codes: [], ok: (r) => assert.equal((r as { planSlug: string }).planSlug, 'pro') });
        }
        for (const [k, v] of entries({ 'Invalid Date': new Date(Number.NaN), past: new Date(Date.now() - 1000), string: '2099-01-01' })) {
          cases.push({ name: `assignPlan until ${k}`, run: () => auth.subscriptions.assignPlan(user, 'pro', { until: v as Date }), codes: ['invalid_until'] });
        }
        for (const [k, v] of entries({ 'Invalid Date': new Date(Number.NaN), 'injection string': "'; DROP TABLE users; --" })) {
          cases.push({ name: `effectivePlan at ${k}`, run: () => auth.subscriptions.effectivePlan(user, { at: v as Date }), codes: ['invalid_date'] });
        }
        for (const [k, v] of entries({ undefined, null: null, string: 'price_x', number: 1 })) {
          cases.push({ name: `linkStripe link ${k}`, run: () => auth.plans.linkStripe('pro', v as never), codes: ['invalid_stripe_id'] });
        }
        for (const [k, v] of entries<unknown>({ ...HOSTILE_NUMBERS, undefined })) {
          const limitOk = v === null || (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1000);
          cases.push({
            name: `plans.setDeviceLimit deviceLimit ${k}`,
            run: () => auth.plans.setDeviceLimit('pro', v as number),
            codes: ['invalid_license_link'],
            ok: limitOk ? (p) => assert.equal((p as { deviceLimit: unknown }).deviceLimit, v) : undefined,
          });
        }
        for (const [k, v] of entries(ALL_TEXT)) {
          cases.push({ name: `plans.setDeviceLimit planSlug ${k}`, run: () => auth.plans.setDeviceLimit(v as string, 2), codes: ['unknown_plan', 'invalid_input'] });
        }
        for (const [k, v] of entries({ ...WRONG_TYPES, 'string "true"': 'true', injection: "true OR 1=1" })) {
          cases.push({
            name: `plans.list includeInactive ${k}`,
            run: () => auth.plans.list({ includeInactive: v as never }),
            codes: [],
            ok: (plans) => assert.deepEqual((plans as { slug: string }[]).map((p) => p.slug).sort(), ['basic', 'enterprise', 'free', 'pro']),
          });
        }
        await run(db, cases);
      }));

    test('licenses and seats: activate, validate, deactivate, handleWebhook, linkLicense, seats.assign/remove/list', async () => {
      const lemon = await startLemonSqueezyStandIn();
      const gumroad = await startGumroadStandIn();
      try {
        await withDatabase(dialect, async ({ db }) => {
          const auth = createPluginAuth(db, { lemonSqueezy: { apiBaseUrl: lemon.url, webhookSecret: 'hostile-secret' }, gumroad: { apiBaseUrl: gumroad.url } });
          await auth.plans.linkLicense('pro', { provider: 'gumroad', productId: 'plug-pro_Wsw==' });
          const user = await createUser(db);
          const { key } = lemon.sell();
          lemon.ratePerMinute = 1e9;
          const keyShaped = (v: unknown) => typeof v === 'string' && /^[\x21-\x7e]{1,255}$/.test(v);
          const deviceOk = (v: unknown) => typeof v === 'string' && v.length >= 1 && v.length <= 255 && !hasControl(v);
          const d = await device(db, user, 'd');
          const cases: Case[] = [];
          for (const [k, v] of entries(ALL_TEXT)) {
            for (const provider of ['lemonsqueezy', 'gumroad'] as const) {
              cases.push({
                name: `activate ${provider} licenseKey ${k}`,
                run: () => auth.licenses.activate(user, { provider, licenseKey: v as string, ...d }),
                codes: keyShaped(v) ? ['license_key_rejected'] : ['invalid_license_key'],
              });
              cases.push({ name: `validate ${provider} licenseKey ${k}`, run: () => auth.licenses.validate(user, { provider, licenseKey: v as string }), codes: keyShaped(v) ? ['license_not_found'] : ['invalid_license_key'] });
            }
            cases.push({
              name: `activate deviceName ${k}`,
              run: () => auth.licenses.activate(user, { provider: 'gumroad', licenseKey: 'NOPE-1', deviceId: d.deviceId, deviceName: v as string }),
              codes: deviceOk(v) || v === null || v === undefined ? ['license_key_rejected'] : ['invalid_device_name'],
            });
            // The device is an id minted with a session of this user: anything else is refused before the store is asked.
            cases.push({
              name: `activate deviceId ${k}`,
              run: () => auth.licenses.activate(user, { provider: 'gumroad', licenseKey: 'NOPE-1', deviceId: v as string }),
              codes: isUuid(v) ? ['unknown_device'] : ['invalid_device_id'],
            });
            cases.push({ name: `activate provider ${k}`, run: () => auth.licenses.activate(user, { provider: v as never, licenseKey: key, ...d }), codes: ['invalid_license_provider'] });
            cases.push({ name: `activate productId ${k}`, run: () => auth.licenses.activate(user, { provider: 'gumroad', licenseKey: 'NOPE-1', ...d, productId: v as string }),
              codes: v === null ? ['license_key_rejected'] : typeof v === 'string' && /^[A-Za-z0-9_=+/.:-]{1,128}$/.test(v) ? ['license_key_rejected'] : ['invalid_license_product'] });
            cases.push({ name: `deactivate deviceId ${k}`, run: () => auth.licenses.deactivate(user, { provider: 'lemonsqueezy', licenseKey: key, deviceId: v as string }), codes: isUuid(v) ? ['license_not_found'] : ['invalid_device_id'] });
            cases.push({ name: `linkLicense productId ${k}`, run: () => auth.plans.linkLicense('pro', { provider: 'lemonsqueezy', productId: v as string }),
              codes: ['invalid_license_product'], ok: typeof v === 'string' && /^[A-Za-z0-9_=+/.:-]{1,128}$/.test(v) ? () => {} : undefined });
            cases.push({ name: `linkLicense plan ${k}`, run: () => auth.plans.linkLicense(v as string, { provider: 'gumroad', productId: 'x' }), codes: ['unknown_plan', 'invalid_input'], ok: v === null ? (r) => assert.equal(r, null) : undefined });
            cases.push({ name: `handleWebhook provider ${k}`, run: () => auth.licenses.handleWebhook(v as never, '{}', {}), codes: ['invalid_license_provider'] });
            cases.push({ name: `handleWebhook lemonsqueezy signature ${k}`, run: () => auth.licenses.handleWebhook('lemonsqueezy', '{}', { 'x-signature': v as string }), codes: ['invalid_signature'] });
          }
          for (const [k, v] of entries(HOSTILE_NUMBERS)) {
            cases.push({ name: `linkLicense deviceLimit ${k}`, run: () => auth.plans.linkLicense('pro', { provider: 'gumroad', productId: 'x', deviceLimit: v as number }), codes: ['invalid_license_link'],
              ok: v === null || v === undefined || (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1000) ? () => {} : undefined });
            cases.push({ name: `linkLicense seats ${k}`, run: () => auth.plans.linkLicense('pro', { provider: 'gumroad', productId: 'x', seats: v as number }), codes: ['invalid_license_link'],
              ok: v === null || v === undefined || (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 100000) ? () => {} : undefined });
          }
          for (const [k, v] of entries(HOSTILE_WEBHOOK_BODIES)) {
            cases.push({ name: `handleWebhook lemonsqueezy body ${k}`, run: () => auth.licenses.handleWebhook('lemonsqueezy', v as string, {}), codes: ['invalid_signature', 'invalid_webhook'] });
            cases.push({ name: `handleWebhook gumroad body ${k}`, run: () => auth.licenses.handleWebhook('gumroad', v as string, {}), codes: ['invalid_webhook'],
              ok: typeof v === 'string' && v.length <= 1024 * 1024 ? (r) => assert.equal((r as { reason: string }).reason, 'unknown_license') : undefined });
          }
          for (const [k, v] of entries(HOSTILE_UUIDS)) {
            cases.push({ name: `activate userId ${k}`, run: () => auth.licenses.activate(v as string, { provider: 'lemonsqueezy', licenseKey: key, ...d }), codes: userIdCodes(v) });
            cases.push({ name: `seats.assign owner ${k}`, run: () => auth.seats.assign(v as string, user), codes: [...userIdCodes(v), 'no_seats_left'] });
            cases.push({ name: `seats.assign member ${k}`, run: () => auth.seats.assign(user, v as string), codes: [...userIdCodes(v), 'no_seats_left'] });
            cases.push({ name: `seats.remove ${k}`, run: () => auth.seats.remove(user, v as string), codes: [...userIdCodes(v), 'seat_not_found'] });
            cases.push({ name: `seats.list ${k}`, run: () => auth.seats.list(v as string), codes: userIdCodes(v), ok: validUuid(v) ? (r) => assert.equal((r as { seats: number }).seats, 0) : undefined });
          }
          await run(db, cases);
          assert.equal(await db.query('SELECT 1 FROM public.licenses').then((r) => r.length), 0, 'no license was stored');
        });
      } finally {
        await lemon.close();
        await gumroad.close();
      }
    });

    test('SQL functions called directly with hostile parameters (as supabase.rpc would)', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        await linkPrices(db);
        const future = new Date(Date.now() + 3_600_000).toISOString();
        const d = () => randomBytes(32).toString('hex');
        // name, argument kinds, valid arguments, the codes each argument may be refused with, and
        // which arguments are free text (stored as given: an answer is fine when the text is clean).
        type Kind = 'uuid' | 'text' | 'int' | 'jsonb' | 'ts' | 'date';
        interface Fn { name: string; kinds: Kind[]; valid: () => unknown[]; codes: string[]; free?: number[] }
        const fns: Fn[] = [
          { name: 'consume_usage', kinds: ['uuid', 'text', 'int', 'text', 'jsonb'], valid: () => [user, 'export', 1, null, null], codes: ['unknown_user', 'invalid_action', 'invalid_items', 'invalid_idempotency_key', 'invalid_metadata', 'invalid_input'], free: [3] },
          { name: 'check_usage', kinds: ['uuid', 'text', 'int'], valid: () => [user, 'export', 1], codes: ['unknown_user', 'invalid_action', 'invalid_items', 'invalid_input'] },
          { name: 'refund_usage', kinds: ['uuid', 'text'], valid: () => [user, 'k'], codes: ['unknown_user', 'invalid_idempotency_key', 'unknown_idempotency_key', 'invalid_input'], free: [1] },
          { name: 'usage_summary', kinds: ['uuid', 'date', 'date'], valid: () => [user, null, null], codes: ['unknown_user', 'invalid_date', 'invalid_input'], free: [1, 2] },
          { name: 'increment_daily_usage', kinds: ['uuid', 'text', 'date'], valid: () => [user, 'export', '2026-01-01'], codes: ['unknown_user', 'invalid_action', 'invalid_date', 'invalid_input'] },
          { name: 'issue_plugin_token', kinds: ['uuid', 'uuid', 'text', 'text', 'ts', 'int'], valid: () => [randomUUID(), user, d(), 'dev', future, null], codes: ['unknown_user', 'invalid_digest', 'invalid_device_name', 'invalid_ttl', 'invalid_max_tokens', 'invalid_input', 'check_violation', 'unique_violation'], free: [0, 3] },
          // Anything but a digest (NULL included) is refused: invalid_digest, never compared.
          { name: 'verify_plugin_token', kinds: ['uuid', 'text'], valid: () => [randomUUID(), d()], codes: ['invalid_input', 'invalid_digest'], free: [0] },
          { name: 'revoke_plugin_token', kinds: ['uuid', 'text'], valid: () => [randomUUID(), null], codes: ['token_not_found', 'invalid_reason', 'invalid_input'], free: [0] },
          { name: 'revoke_all_plugin_tokens', kinds: ['uuid', 'text'], valid: () => [user, 'r'], codes: ['unknown_user', 'invalid_reason', 'invalid_input', 'check_violation'], free: [1] },
          { name: 'list_plugin_tokens', kinds: ['uuid'], valid: () => [user], codes: ['unknown_user', 'invalid_input'] },
          { name: 'purge_plugin_sessions', kinds: ['ts'], valid: () => ['2000-01-01'], codes: ['invalid_cutoff', 'invalid_input'] },
          { name: 'begin_plugin_login', kinds: ['text', 'text', 'int', 'text'], valid: () => [d(), d(), 600, null], codes: ['invalid_digest', 'invalid_ttl', 'invalid_device_name', 'invalid_input', 'check_violation'], free: [3] },
          { name: 'complete_plugin_login', kinds: ['text', 'uuid'], valid: () => [d(), user], codes: ['invalid_digest', 'unknown_user', 'login_not_found', 'invalid_input'] },
          { name: 'poll_plugin_login', kinds: ['text'], valid: () => [d()], codes: ['invalid_digest', 'login_not_found', 'invalid_input'] },
          { name: 'claim_plugin_login', kinds: ['text', 'uuid', 'uuid', 'text', 'ts', 'int'], valid: () => [d(), user, randomUUID(), d(), future, null], codes: ['invalid_digest', 'login_not_found', 'invalid_input'] },
          { name: 'sync_stripe_subscription', kinds: ['jsonb', 'ts'], valid: () => [JSON.stringify(subscription({ userId: user, priceId: 'price_unknown' })), new Date(T0 * 1000).toISOString()], codes: ['invalid_subscription', 'invalid_event_created', 'unknown_price', 'unknown_customer', 'invalid_input'] },
          { name: 'assign_plan', kinds: ['uuid', 'text', 'ts'], valid: () => [user, 'no-such-plan', null], codes: ['unknown_user', 'unknown_plan', 'invalid_until', 'invalid_input'] },
          { name: 'link_stripe_plan', kinds: ['text', 'text', 'text'], valid: () => ['no-such-plan', 'prod_x', 'price_x'], codes: ['unknown_plan', 'invalid_stripe_id', 'price_already_linked', 'invalid_input'] },
          { name: 'set_plan_device_limit', kinds: ['text', 'int'], valid: () => ['no-such-plan', 2], codes: ['unknown_plan', 'invalid_license_link', 'invalid_input'] },
          { name: 'seat_assign_member', kinds: ['uuid', 'uuid'], valid: () => [user, user], codes: ['unknown_user', 'no_seats_left', 'invalid_input'] },
          { name: 'effective_plan', kinds: ['uuid', 'ts'], valid: () => [user, null], codes: ['invalid_input'], free: [0, 1] },
          { name: 'subscription_grants_access', kinds: ['text', 'ts', 'ts'], valid: () => ['active', null, null], codes: ['invalid_input'], free: [0, 1, 2] },
        ];
        const hostile: Record<Kind, Record<string, unknown>> = {
          uuid: Object.fromEntries(entries(HOSTILE_UUIDS).filter(([, v]) => typeof v === 'string' || v === null)),
          text: HOSTILE_STRINGS,
          int: Object.fromEntries(entries(HOSTILE_NUMBERS).filter(([, v]) => typeof v !== 'bigint').map(([k, v]) => [k, v])),
          jsonb: { 'not JSON': "{'a': 1}", 'injection': "'; DROP TABLE users; --", array: '[1]', string: '"s"', number: '1', 'null JSON': 'null', '1 MB object': JSON.stringify({ b: 'q'.repeat(1024 * 1024) }), 'NUL escape': '{"a":"\\u0000"}', 'deep': '['.repeat(5000) + ']'.repeat(5000) },
          ts: { 'not a time': 'soon', injection: "now()'; DROP TABLE users; --", infinity: 'infinity', '-infinity': '-infinity', 'year 300000': '300000-01-01', 'epoch 1e300': '1e300', empty: '' },
          date: { 'not a date': 'today', injection: "'; DROP TABLE users; --", 'Feb 30': '2026-02-30', infinity: 'infinity', '-infinity': '-infinity', 'year 300000': '300000-01-01', empty: '' },
        };
        const cases: Case[] = [];
        for (const fn of fns) {
          const placeholders = fn.kinds.map((kind, i) => `$${i + 1}::${{ uuid: 'uuid', text: 'text', int: 'integer', jsonb: 'jsonb', ts: 'timestamptz', date: 'date' }[kind]}`);
          for (const [i, kind] of fn.kinds.entries()) {
            for (const [k, v] of entries(hostile[kind])) {
              // Values PostgreSQL reads as valid ones ('today', 'infinity', '1', the action "null", a null
              // for an optional argument) get an answer; 'infinity' expiries are noted in docs/security.md.
              const valid = ['the word null', 'string "1"', 'null', 'not a date', 'infinity', '-infinity', 'year 300000'].includes(k);
              const free = (fn.free?.includes(i) || valid) && (typeof v !== 'string' || !v.includes('\u0000'));
              cases.push({
                name: `${fn.name} arg ${i + 1} (${kind}) ${k}`,
                run: () => {
                  const args = fn.valid();
                  args[i] = v;
                  return db.query(`SELECT * FROM public.${fn.name}(${placeholders.join(', ')})`, args);
                },
                codes: fn.codes,
                ok: free ? (rows) => assert.ok(Array.isArray(rows)) : undefined,
              });
            }
          }
        }
        // NULL where a value is required: the digest of verify, the event time of the Stripe sync.
        cases.push({ name: 'verify_plugin_token digest NULL', run: () => db.query('SELECT * FROM public.verify_plugin_token($1::uuid, NULL::text)', [randomUUID()]), codes: ['invalid_digest'] });
        cases.push({ name: 'sync_stripe_subscription event time NULL', run: () => db.query('SELECT * FROM public.sync_stripe_subscription($1::jsonb, NULL::timestamptz)', [fns.find((f) => f.name === 'sync_stripe_subscription')!.valid()[0]]), codes: ['invalid_event_created'] });
        await run(db, cases);
        // And nothing was dropped: every table still there, the user intact.
        assert.equal((await db.query('SELECT 1 FROM public.users WHERE id = $1', [user])).length, 1);
      }));
  });
}

describe('hostile configuration: setup targets and the setup command', () => {
  const key = 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.aG9zdGlsZS1zZWNyZXQ';
  test('resolveTarget refuses malformed values with a stable code', () => {
    const cases: [Record<string, string>, string][] = [
      [{ DATABASE_URL: 'mysql://root:pw@db/app' }, 'invalid_database_url'],
      [{ DATABASE_URL: 'postgres://' }, 'invalid_database_url'],
      [{ DATABASE_URL: "'; DROP TABLE users; --" }, 'invalid_database_url'],
      [{ DATABASE_URL: 'http://x' }, 'invalid_database_url'],
      [{ DATABASE_URL: 'file:///etc/passwd' }, 'invalid_database_url'],
      [{ DATABASE_URL: 'postgres:x' }, 'invalid_database_url'],
      [{ DATABASE_URL: '\u0000postgres://x/y' }, 'invalid_database_url'],
      [{ SUPABASE_URL: 'https://x.supabase.co' }, 'incomplete_supabase_config'],
      [{ SUPABASE_SERVICE_ROLE_KEY: key }, 'incomplete_supabase_config'],
      [{ SUPABASE_URL: 'not a url', SUPABASE_SERVICE_ROLE_KEY: key }, 'invalid_supabase_url'],
      [{ SUPABASE_URL: 'javascript:alert(1)', SUPABASE_SERVICE_ROLE_KEY: key }, 'invalid_supabase_url'],
      [{ SUPABASE_URL: 'ftp://x.supabase.co', SUPABASE_SERVICE_ROLE_KEY: key }, 'invalid_supabase_url'],
      [{ SUPABASE_URL: 'https://x .supabase.co', SUPABASE_SERVICE_ROLE_KEY: key }, 'invalid_supabase_url'],
      [{ SUPABASE_URL: 'https://x.supabase.co\n', SUPABASE_SERVICE_ROLE_KEY: '   ' }, 'incomplete_supabase_config'],
      [{}, 'no_database_configured'],
      [{ DATABASE_URL: '   ' }, 'no_database_configured'],
    ];
    for (const [env, code] of cases) {
      total++;
      assert.throws(() => resolveTarget(env, 'production'), (e: unknown) => e instanceof PluginAuthError && e.code === code, JSON.stringify(env));
    }
  });

  test('runSetupCommand with malformed and unreachable targets: exit 1, an error block, nothing thrown', async () => {
    const envs: Record<string, string>[] = [
      { DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db' },
      { DATABASE_URL: 'postgres://u:p%zz@127.0.0.1:1/db' },
      { DATABASE_URL: 'postgres://u:p@[::1:1/db' },
      { DATABASE_URL: 'postgres://u:p@127.0.0.1:99999/db' },
      { DATABASE_URL: "postgres://u:p@127.0.0.1:1/'; DROP TABLE users; --" },
      { DATABASE_URL: `postgres://u:p@127.0.0.1:1/${'d'.repeat(10_000)}` },
      { DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db?sslmode=bogus&options=-c%20search_path%3Devil' },
      { SUPABASE_URL: 'http://127.0.0.1:1', SUPABASE_SERVICE_ROLE_KEY: key },
      { SUPABASE_URL: 'https://%zz', SUPABASE_SERVICE_ROLE_KEY: key },
      { SUPABASE_URL: 'http://127.0.0.1:1/\u0000', SUPABASE_SERVICE_ROLE_KEY: key },
    ];
    for (const env of envs) {
      total++;
      let out = '';
      let err = '';
      const code = await runSetupCommand({ mode: 'production', env, out: (t) => (out += t), err: (t) => (err += t) });
      assert.equal(code, 1, `${JSON.stringify(env).slice(0, 120)}\n${out}${err}`);
      assert.match(err, /^Status: ERROR$/m);
      assert.equal(out, '');
      assert.ok(!err.includes(key) && !/u:p@/.test(err), 'no credential echoed');
    }
  });
});

describe('hostile input through the CLI [subprocess]', () => {
  test('malformed arguments and URLs: a non-zero exit with a message, never a stack trace', async () => {
    const argvs: string[][] = [
      ['status', '--database-url', "'; DROP TABLE users; --"],
      ['status', '--database-url', 'mysql://x:y@h/d'],
      ['status', '--database-url', 'postgres://u:p@127.0.0.1:1/db'],
      ['plans', 'link', "'; DROP TABLE users; --", '--price', 'price_x', '--database-url', 'postgres://u:p@127.0.0.1:1/db'],
      ["--'; DROP TABLE users; --"],
      ['a'.repeat(10_000)],
      ['status', '--database-url'],
    ];
    for (const args of argvs) {
      total++;
      const result = await runScript('src/cli/main.ts', args);
      assert.notEqual(result.code, 0, `${args.join(' ').slice(0, 80)}: ${result.all}`);
      assert.ok(result.all.trim().length > 0, 'says something');
      assert.doesNotMatch(result.all, /^\s+at .+\(.+:\d+:\d+\)$/m, `no stack trace for ${args.join(' ').slice(0, 80)}:\n${result.all}`);
      assert.ok(!result.all.includes('u:p@'), 'no password echoed');
    }
  });
});
