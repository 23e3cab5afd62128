// auth.entitlements: signed snapshots whose numbers are check_usage's (so they agree with consume),
// their expiry cap, key rotation in the JWKS, and a bad key refused when createPluginAuth runs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, createLocalJWKSet, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { runScript } from './helpers/run.ts';
import { createPluginAuth } from '../src/auth.ts';
import { NotFoundError, SetupError, ValidationError } from '../src/core/errors.ts';
import { generateEntitlementKey, type EntitlementJwk } from '../src/entitlements/index.ts';
import { verifyEntitlementSnapshot, verifyEntitlementSnapshot as verify, type VerifyEntitlementOptions } from '../src/plugin/index.ts';
import type { Database } from '../src/core/db.ts';

const noDb = {} as Database; // key checks happen before any query
const keyA = await generateEntitlementKey();
const keyB = await generateEntitlementKey();
const publicOf = ({ d: _d, ...rest }: EntitlementJwk) => rest;
/** A snapshot signed directly with `key` (as a holder of that private key could), iat and exp in seconds. */
const signWith = (key: EntitlementJwk, sub: string, iat: number, exp: number) =>
  importJWK(key as never, 'ES256').then((k) =>
    new SignJWT({ plan: 'pro', action: 'resize', used: 0, usageLimit: 6, remaining: 6, batchLimit: 20, resetsAt: null })
      .setProtectedHeader({ alg: 'ES256', kid: String(key.kid), typ: 'entitlement+jwt' })
      .setSubject(sub).setIssuer('figma-plugin-auth-db').setAudience('figma-plugin-entitlements').setIssuedAt(iat).setExpirationTime(exp).sign(k));
const nextUtcMidnight = () => {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)).toISOString();
};

for (const dialect of DIALECTS) {
  describe(`entitlements [${dialect}]`, () => {
    test('a snapshot carries check_usage numbers, agrees with consume, verifies offline, lives 15 minutes', () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { entitlementSigningKey: JSON.stringify(keyA) });
        const userId = await createUser(db);
        const jwks = await auth.entitlements.jwks();

        const before = Date.now();
        let snap = await auth.entitlements.snapshot(userId);
        const after = Date.now();
        const { payload, protectedHeader } = await jwtVerify(snap.jwt, createLocalJWKSet(jwks as never), {
          issuer: 'figma-plugin-auth-db', audience: 'figma-plugin-entitlements', typ: 'entitlement+jwt',
        });
        assert.equal(protectedHeader.alg, 'ES256');
        assert.equal(protectedHeader.kid, jwks.keys[0]!.kid);
        assert.equal(payload.sub, userId);
        assert.deepEqual(
          [payload.plan, payload.action, payload.used, payload.usageLimit, payload.remaining, payload.batchLimit, payload.resetsAt],
          ['free', 'resize', 0, 2, 2, 1, null],
        );
        assert.equal(payload.exp! - payload.iat!, 900);
        assert.equal(snap.expiresAt.getTime(), payload.exp! * 1000);
        // 15 minutes from when it was signed (between before and after, to the second): no speed assumed.
        assert.ok(snap.expiresAt.getTime() <= after + 900_000 && snap.expiresAt.getTime() >= before - 1000 + 900_000);

        const consumed = await auth.usage.consume(userId, 'resize');
        snap = await auth.entitlements.snapshot(userId);
        let checked = await verifyEntitlementSnapshot(snap.jwt, jwks as never, { userId });
        assert.equal(checked.kind, 'ok');
        if (checked.kind !== 'ok') return;
        assert.equal(checked.entitlement.remaining, consumed.remaining);
        assert.equal(checked.entitlement.used, consumed.used);
        assert.equal(checked.entitlement.userId, userId);

        await auth.subscriptions.assignPlan(userId, 'pro');
        snap = await auth.entitlements.snapshot(userId);
        checked = await verifyEntitlementSnapshot(snap.jwt, jwks as never, { userId });
        assert.equal(checked.kind, 'ok');
        if (checked.kind !== 'ok') return;
        const check = await auth.usage.check(userId, 'resize');
        // check answers for one more call; the snapshot states now (today's one resize counted).
        assert.deepEqual(
          [checked.entitlement.plan, checked.entitlement.usageLimit, checked.entitlement.batchLimit, checked.entitlement.remaining],
          [check.planSlug, check.usageLimit, check.batchLimit, check.remaining! + 1],
        );
        assert.deepEqual([checked.entitlement.plan, checked.entitlement.usageLimit, checked.entitlement.remaining, checked.entitlement.batchLimit],
          ['pro', 6, 5, 20]);
        assert.equal((await auth.usage.consume(userId, 'resize')).remaining, checked.entitlement.remaining! - 1);
        assert.equal(checked.entitlement.resetsAt?.toISOString(), nextUtcMidnight());

        await assert.rejects(auth.entitlements.snapshot('not-a-uuid'), (e) => e instanceof ValidationError && e.code === 'invalid_user_id');
        await assert.rejects(auth.entitlements.snapshot('00000000-0000-4000-8000-000000000000'),
          (e) => e instanceof NotFoundError && e.code === 'unknown_user');
      }));

    test('a lower validity, an EdDSA key, and a snapshot signed before a rotation still verifying after it', () =>
      withDatabase(dialect, async ({ db }) => {
        const userId = await createUser(db);
        const ed = await generateEntitlementKey('EdDSA');
        const old = createPluginAuth(db, { entitlementSigningKey: ed, entitlementTtlSeconds: 60 });
        const oldSnap = await old.entitlements.snapshot(userId);
        const header = decodeProtectedHeader(oldSnap.jwt);
        assert.equal(header.alg, 'EdDSA');
        const claims = JSON.parse(Buffer.from(oldSnap.jwt.split('.')[1]!, 'base64url').toString()) as { iat: number; exp: number };
        assert.equal(claims.exp - claims.iat, 60);

        const rotated = createPluginAuth(db, { entitlementSigningKey: keyB, entitlementPreviousKeys: [publicOf(ed)] });
        const jwks = await rotated.entitlements.jwks();
        assert.deepEqual(jwks.keys.map((k) => k.kid), [keyB.kid, ed.kid]);
        for (const k of jwks.keys) assert.equal('d' in k, false, 'the JWKS holds public keys only');
        assert.equal((await verifyEntitlementSnapshot(oldSnap.jwt, jwks as never, { userId })).kind, 'ok', 'the previous key still verifies');
        const newSnap = await rotated.entitlements.snapshot(userId);
        assert.equal(decodeProtectedHeader(newSnap.jwt).kid, keyB.kid, 'new snapshots are signed with the current key');
        assert.equal((await verifyEntitlementSnapshot(newSnap.jwt, { keys: [publicOf(ed)] } as never, { userId })).kind, 'invalid');
        // The earlier form, a bare JWK, ends 15 minutes after start-up.
        const bareEnd = jwks.keys[1]!.exp!;
        assert.ok(Math.abs(bareEnd - (Date.now() / 1000 + 900)) < 60, `bare previous key ends ~15 min after start (${bareEnd})`);
        assert.equal(jwks.keys[0]!.exp, undefined, 'the current key has no end');
      }));

    test("user A's snapshot is wrong_user in user B's session; the expected user is required", () =>
      withDatabase(dialect, async ({ db }) => {
        const auth = createPluginAuth(db, { entitlementSigningKey: keyA });
        const [a, b] = [await createUser(db), await createUser(db)];
        const jwks = await auth.entitlements.jwks();
        const snapA = await auth.entitlements.snapshot(a);
        assert.equal((await verifyEntitlementSnapshot(snapA.jwt, jwks as never, { userId: a })).kind, 'ok');
        assert.equal((await verifyEntitlementSnapshot(snapA.jwt, jwks as never, { userId: a.toUpperCase() })).kind, 'ok', 'a uuid in capitals is the same user');
        assert.deepEqual(await verifyEntitlementSnapshot(snapA.jwt, jwks as never, { userId: b }), { kind: 'wrong_user' });
        for (const options of [undefined, {}, { userId: '' }, { userId: 42 }]) {
          await assert.rejects(verifyEntitlementSnapshot(snapA.jwt, jwks as never, options as never), (e) => e instanceof TypeError && /userId/.test(e.message));
        }
      }));

    test('a previous key ends at its until: jwks() drops it then, clients refuse it, and a snapshot newly signed with it is refused before that', () =>
      withDatabase(dialect, async ({ db }) => {
        const userId = await createUser(db);
        const now = Date.now();
        // Rotated from keyA to keyB a while ago; keyA's until is the rotation time + 15 minutes, a minute from now.
        const until = new Date(now + 60_000);
        const auth = createPluginAuth(db, { entitlementSigningKey: keyB, entitlementPreviousKeys: [{ jwk: keyA, until }] });
        const jwks = await auth.entitlements.jwks();
        assert.deepEqual(jwks.keys.map((k) => [k.kid, k.exp]), [[keyB.kid, undefined], [keyA.kid, Math.floor(until.getTime() / 1000)]]);
        assert.ok(jwks.keys.every((k) => !('d' in k)));
        const snap = await auth.entitlements.snapshot(userId);
        assert.equal(decodeProtectedHeader(snap.jwt).kid, keyB.kid, 'the server signs with the current key only');
        // Signed with keyA before the rotation, ending before keyA does: good until then.
        const sec = Math.floor(now / 1000);
        const before = await signWith(keyA, userId, sec - 800, sec + 30);
        assert.equal((await verifyEntitlementSnapshot(before, jwks as never, { userId })).kind, 'ok');
        // At or past keyA's end it verifies nothing, even within the clock tolerance of the snapshot's exp.
        assert.deepEqual(
          await verifyEntitlementSnapshot(before, jwks as never, { userId, currentDate: new Date(until.getTime() + 1000), clockToleranceSeconds: 120 }),
          { kind: 'invalid', reason: 'key_retired' },
        );
        // Newly signed with the retired key (its private part leaked, say): it would outlive the key. Refused.
        const forged = await signWith(keyA, userId, sec, sec + 900);
        assert.deepEqual(await verifyEntitlementSnapshot(forged, jwks as never, { userId }), { kind: 'invalid', reason: 'key_retired' });
        // After until, jwks() (no restart) no longer lists it: nothing it signed verifies against the new set.
        const soon = createPluginAuth(db, { entitlementSigningKey: keyB, entitlementPreviousKeys: [{ jwk: keyA, until: new Date(Date.now() + 1500) }] });
        assert.deepEqual((await soon.entitlements.jwks()).keys.map((k) => k.kid), [keyB.kid, keyA.kid]);
        await new Promise((r) => setTimeout(r, 1600));
        const later = await soon.entitlements.jwks();
        assert.deepEqual(later.keys.map((k) => k.kid), [keyB.kid]);
        assert.equal((await verifyEntitlementSnapshot(before, later as never, { userId })).kind, 'invalid');
        assert.equal((await verifyEntitlementSnapshot((await soon.entitlements.snapshot(userId)).jwt, later as never, { userId })).kind, 'ok');
        // An until already past at start-up: never listed.
        const expired = createPluginAuth(db, { entitlementSigningKey: keyB, entitlementPreviousKeys: [{ jwk: publicOf(keyA), until: '2026-01-01T00:00:00Z' }] });
        assert.deepEqual((await expired.entitlements.jwks()).keys.map((k) => k.kid), [keyB.kid]);
      }));
  });
}

describe('entitlements: configuration', () => {
  const startUp = (options: Parameters<typeof createPluginAuth>[1]) => () => createPluginAuth(noDb, options);
  const refused = (code: string) => (e: unknown) => {
    assert.ok(e instanceof SetupError, String(e));
    assert.equal(e.code, code);
    assert.ok(!e.message.includes(String(keyA.d)), 'never the key');
    return true;
  };

  test('a malformed key is refused at start-up, one whose "x"/"y" do not match its "d" by the first call; with a reason and never the key', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'jwk' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const bad: Array<[unknown, RegExp]> = [
      [`${JSON.stringify(keyA).slice(0, -1)}`, /is not JSON/],
      ['[1,2]', /must be a JWK object/],
      [publicOf(keyA), /must be a private key/],
      [p384, /Ed25519 .* or P-256/],
      [rsa, /Ed25519 .* or P-256/],
      [{ ...keyA, alg: 'EdDSA' }, /"alg" "EdDSA", expected ES256/],
      [{ ...keyA, d: 'AAAA' }, /is not a valid key/],
      [{ ...keyA, x: 42 }, /is not a valid key/],
      [{ ...keyA, kid: '' }, /"kid"/],
    ];
    for (const [key, reason] of bad) {
      assert.throws(startUp({ entitlementSigningKey: key as EntitlementJwk }), (e: unknown) =>
        refused('entitlement_key_invalid')(e) && reason.test((e as Error).message), JSON.stringify(key).slice(0, 40));
    }
    // Web Crypto is async: these are found by the checks createPluginAuth starts, and every call says so.
    const mismatched: Array<[unknown, RegExp]> = [
      [{ ...keyA, x: keyB.x }, /do not match its "d"|is not a valid key/],
      [{ ...keyA, x: keyB.x, y: keyB.y }, /do not match its "d"/],
      [{ ...keyA, d: keyB.d }, /do not match its "d"/],
      [{ ...keyA, x: 'A'.repeat(43) }, /is not a valid key/],
    ];
    for (const [key, reason] of mismatched) {
      const auth = startUp({ entitlementSigningKey: key as EntitlementJwk })();
      for (const call of [() => auth.entitlements.jwks(), () => auth.entitlements.snapshot('00000000-0000-4000-8000-000000000000')]) {
        await assert.rejects(call(), (e: unknown) => refused('entitlement_key_invalid')(e) && reason.test((e as Error).message), JSON.stringify(key).slice(0, 40));
      }
    }
    assert.throws(startUp({ entitlementPreviousKeys: [publicOf(keyA)] }), refused('entitlement_key_invalid'));
    for (const until of ['tomorrow', 1767225600000, null, undefined, new Date('x')]) {
      assert.throws(startUp({ entitlementSigningKey: keyA, entitlementPreviousKeys: [{ jwk: publicOf(keyB), until } as never] }),
        (e: unknown) => refused('entitlement_key_invalid')(e) && /needs "until"/.test((e as Error).message), String(until));
    }
    assert.throws(startUp({ entitlementSigningKey: keyA, entitlementPreviousKeys: [{ until: new Date() } as never] }), /needs "jwk"/);
    assert.throws(startUp({ entitlementSigningKey: keyA, entitlementPreviousKeys: [keyA] }), /repeat the kid/);
    assert.throws(startUp({ entitlementSigningKey: keyA, entitlementPreviousKeys: [{ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' }] }),
      /entitlementPreviousKeys\[0\] is not a valid key/);
    const { kid: _kid, ...unnamed } = keyA;
    await assert.rejects(startUp({ entitlementSigningKey: unnamed, entitlementPreviousKeys: [publicOf(unnamed as EntitlementJwk)] })().entitlements.jwks(), /repeat the kid/);
    for (const ttl of [0, 901, 1.5, Number.NaN, '60' as unknown as number]) {
      assert.throws(startUp({ entitlementSigningKey: keyA, entitlementTtlSeconds: ttl }), refused('invalid_entitlement_ttl'));
    }
  });

  test('no key: createPluginAuth works, snapshot and jwks say entitlement_key_missing', async () => {
    for (const entitlementSigningKey of [undefined, '']) {
      const auth = createPluginAuth(noDb, { entitlementSigningKey });
      await assert.rejects(auth.entitlements.snapshot('00000000-0000-4000-8000-000000000000'), refused('entitlement_key_missing'));
      await assert.rejects(auth.entitlements.jwks(), refused('entitlement_key_missing'));
    }
  });

  test('the client refuses expired, tampered, foreign and over-long snapshots', async () => {
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>, iat: number, exp: number, key: EntitlementJwk = keyA) =>
      importJWK(key as never, 'ES256').then((k) =>
        new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: String(key.kid), typ: 'entitlement+jwt' })
          .setSubject('00000000-0000-4000-8000-000000000000').setIssuer('figma-plugin-auth-db')
          .setAudience('figma-plugin-entitlements').setIssuedAt(iat).setExpirationTime(exp).sign(k));
    const good = { plan: 'free', action: 'resize', used: 0, usageLimit: 2, remaining: 2, batchLimit: 1, resetsAt: null };
    const jwks = { keys: [publicOf(keyA)] } as never;
    const verifyEntitlementSnapshot = (jwt: string, keys: never, o: Partial<VerifyEntitlementOptions> = {}) =>
      verify(jwt, keys, { userId: '00000000-0000-4000-8000-000000000000', ...o });
    assert.equal((await verifyEntitlementSnapshot(await sign(good, now, now + 900), jwks)).kind, 'ok');
    assert.deepEqual(await verifyEntitlementSnapshot(await sign(good, now - 1000, now - 100), jwks), { kind: 'expired' });
    assert.deepEqual(await verifyEntitlementSnapshot(await sign(good, now, now + 901), jwks), { kind: 'invalid', reason: 'lifetime_too_long' });
    assert.equal((await verifyEntitlementSnapshot(await sign(good, now, now + 60, keyB), jwks)).kind, 'invalid');
    assert.equal((await verifyEntitlementSnapshot(await sign({ ...good, remaining: 'many' }, now, now + 60), jwks)).kind, 'invalid');
    const [h, p, s] = (await sign(good, now, now + 60)).split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), remaining: 999 })).toString('base64url');
    assert.equal((await verifyEntitlementSnapshot(`${h}.${forged}.${s}`, jwks)).kind, 'invalid');
    const future = new Date((now + 2000) * 1000);
    assert.deepEqual(await verifyEntitlementSnapshot(await sign(good, now, now + 900), jwks, { currentDate: future }), { kind: 'expired' });
  });

  test('figma-plugin-auth-db keygen prints a private JWK that createPluginAuth takes, and its public JWKS', async () => {
    for (const alg of ['ES256', 'EdDSA']) {
      const result = await runScript('src/cli/main.ts', ['keygen', '--alg', alg]);
      assert.equal(result.code, 0, result.all);
      const jwk = JSON.parse(result.stdout.trim()) as EntitlementJwk;
      assert.equal(jwk.alg, alg);
      assert.equal(typeof jwk.d, 'string');
      const jwks = await createPluginAuth(noDb, { entitlementSigningKey: result.stdout.trim() }).entitlements.jwks();
      assert.equal(jwks.keys[0]!.kid, jwk.kid);
      assert.match(result.stderr, /public JWKS/);
      assert.ok(!result.stderr.includes(String(jwk.d)), 'the public part only on stderr');
    }
    assert.equal((await runScript('src/cli/main.ts', ['keygen', '--alg', 'RS256'])).code, 2);
  });
});
