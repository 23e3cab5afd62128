import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { DIALECTS, SERVER_DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { SECRET, assertAbsent, code, counting, signBy } from './helpers/tokens.ts';
import { createPluginAuth } from '../src/auth.ts';
import { createTokens } from '../src/tokens/tokens.ts';
import { AuthError, NotFoundError, SetupError, ValidationError } from '../src/core/errors.ts';
import type { Database } from '../src/core/db.ts';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

async function tokenRow(db: Database, tokenId: string) {
  const rows = await db.query<{ last_used_at: Date | null; version: string; revoked_reason: string | null }>(
    'SELECT last_used_at, xmin::text AS version, revoked_reason FROM public.plugin_tokens WHERE id = $1',
    [tokenId],
  );
  return rows[0];
}

for (const dialect of DIALECTS) {
  describe(`tokens [${dialect}]`, () => {
    test('issue returns a JWT with the agreed claims; verify returns who and what', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const issued = await tokens.issue(userId, { deviceName: 'Figma desktop', ttlSeconds: 3600 });
        const header = decodeProtectedHeader(issued.token);
        const claims = decodeJwt(issued.token);
        assert.equal(header.alg, 'HS256');
        assert.equal(claims.sub, userId);
        assert.equal(claims.jti, issued.tokenId);
        assert.equal(claims.iss, 'figma-plugin-auth-db');
        assert.equal(claims.aud, 'figma-plugin');
        assert.equal(claims.exp! - claims.iat!, 3600);
        assert.equal(issued.expiresAt.getTime(), claims.exp! * 1000);

        const verified = await tokens.verify(issued.token);
        assert.deepEqual(verified, { userId, tokenId: issued.tokenId, expiresAt: issued.expiresAt, deviceName: 'Figma desktop', deviceId: issued.deviceId });
        const stored = await db.query<{ token_hash: string }>('SELECT token_hash FROM public.plugin_tokens WHERE id = $1', [issued.tokenId]);
        assert.equal(stored[0]!.token_hash, sha256(issued.token));
      }));

    test('a device is a server-minted id per install, never the name: kept only when a session of the same user had it (issue 22)', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const [alice, bob] = [await createUser(db), await createUser(db)];
        // Five installs all named "Figma": five devices.
        const five = await Promise.all(Array.from({ length: 5 }, () => tokens.issue(alice, { deviceName: 'Figma' })));
        assert.equal(new Set(five.map((t) => t.deviceId)).size, 5);
        for (const t of five) assert.deepEqual(await tokens.verify(t.token).then((v) => [v.deviceId, v.deviceName]), [t.deviceId, 'Figma']);
        // The same install signing in again sends back its id: the same device, under any name.
        const again = await tokens.issue(alice, { deviceName: 'Renamed', deviceId: five[0]!.deviceId });
        assert.equal(again.deviceId, five[0]!.deviceId);
        // Kept after that device's sessions were revoked (the id is still one the server gave alice).
        await tokens.revokeAll(alice);
        assert.equal((await tokens.issue(alice, { deviceId: five[1]!.deviceId })).deviceId, five[1]!.deviceId);
        // Another user's device id, or one the server never minted: a new device, never theirs.
        const stolen = await tokens.issue(bob, { deviceName: 'Figma', deviceId: five[2]!.deviceId });
        assert.ok(!five.some((t) => t.deviceId === stolen.deviceId));
        const madeUp = await tokens.issue(bob, { deviceId: randomUUID() });
        assert.notEqual(madeUp.deviceId, stolen.deviceId);
        // The login hand-over keeps the device the same way (checked once the user is known).
        for (const [keep, same] of [[five[3]!.deviceId, true], [stolen.deviceId, false]] as const) {
          const login = await tokens.beginLogin({ deviceName: 'Figma', deviceId: keep });
          await tokens.completeLogin(login.writeKey, alice);
          const issued = (await tokens.pollLogin(login.readKey))!;
          assert.equal(issued.deviceId === keep, same);
          assert.equal((await tokens.verify(issued.token)).deviceId, issued.deviceId);
        }
        await assert.rejects(tokens.issue(alice, { deviceId: 'Figma' }), (e) => e instanceof ValidationError && e.code === 'invalid_device_id');
        await assert.rejects(tokens.beginLogin({ deviceId: 42 as never }), (e) => e instanceof ValidationError && e.code === 'invalid_device_id');
        // Issued before sql/025: each token got a device of its own (the column's default).
        const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_tokens WHERE device_id IS NULL');
        assert.equal(rows[0]!.n, 0);
      }));

    test('no raw token appears anywhere in a full data dump after issue and verify', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const issued = await Promise.all([1, 2, 3].map(() => tokens.issue(userId, { deviceName: 'laptop' })));
        for (const t of issued) await tokens.verify(t.token);
        await tokens.revoke(issued[0]!.tokenId, 'lost laptop');
        const dump = await dumpDatabase(db);
        assert.equal(dump.rows.plugin_tokens!.length, 3);
        assertAbsent(dump, [...issued.map((t) => t.token), SECRET]);
      }));

    test('bad JWTs are token_invalid (or token_expired) without a database round trip', () =>
      withDatabase(dialect, async ({ db: raw }) => {
        const { db, count } = counting(raw);
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(raw);
        const good = await tokens.issue(userId, {});
        const before = count();
        const [h, p, s] = good.token.split('.') as [string, string, string];
        const now = Math.floor(Date.now() / 1000);
        const flipped = s.slice(0, 10) + (s[10] === 'A' ? 'B' : 'A') + s.slice(11);
        const invalid: [string, unknown][] = [
          ['tampered signature', `${h}.${p}.${flipped}`],
          ['tampered payload', `${h}.${b64({ ...decodeJwt(good.token), sub: randomUUID() })}.${s}`],
          ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`],
          ['alg none with a signature', `${b64({ alg: 'none', typ: 'JWT' })}.${p}.${s}`],
          ['swapped alg (HS512)', await signBy(SECRET, { sub: userId, jti: good.tokenId }, 'HS512')],
          ['wrong key', await signBy(randomBytes(48).toString('hex'), { sub: userId, jti: good.tokenId })],
          ['wrong audience', await signBy(SECRET, { sub: userId, jti: good.tokenId, aud: 'someone-else' })],
          ['wrong issuer', await signBy(SECRET, { sub: userId, jti: good.tokenId, iss: 'evil' })],
          ['not yet valid', await signBy(SECRET, { sub: userId, jti: good.tokenId, nbf: now + 600 })],
          ['jti not a uuid', await signBy(SECRET, { sub: userId, jti: 'x' })],
          ['truncated', good.token.slice(0, -5)],
          ['10 kB garbage', randomBytes(7500).toString('base64url')],
          ['10 kB dotted garbage', `${'a'.repeat(5000)}.${'b'.repeat(5000)}.c`],
          ['empty', ''],
          ['not a string', 42],
        ];
        for (const [why, token] of invalid) {
          await assert.rejects(tokens.verify(token as string), (e) => e instanceof AuthError && code('token_invalid')(e), why);
        }
        const expired = await signBy(SECRET, { sub: userId, jti: good.tokenId, iat: now - 7200, exp: now - 3600 });
        await assert.rejects(tokens.verify(expired), code('token_expired'));
        assert.equal(count(), before, 'no query was sent for a bad JWT');
        // And the good one still works, in exactly one round trip.
        await tokens.verify(good.token);
        assert.equal(count(), before + 1);
      }));

    test('a well-signed token that was never issued, or whose row differs, is token_invalid', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        await assert.rejects(tokens.verify(await signBy(SECRET, { sub: userId })), code('token_invalid'));
        // Same jti as a real token but different bytes (another iat): the digest does not match.
        const real = await tokens.issue(userId, {});
        const twin = await signBy(SECRET, { sub: userId, jti: real.tokenId, iat: Math.floor(Date.now() / 1000) - 5 });
        await assert.rejects(tokens.verify(twin), code('token_invalid'));
      }));

    test('expired in the database, revoked, and deleted user are refused with their codes', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const a = await tokens.issue(userId, {});
        const b = await tokens.issue(userId, {});
        await db.query(
          "UPDATE public.plugin_tokens SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' WHERE id = $1",
          [a.tokenId],
        );
        await assert.rejects(tokens.verify(a.token), code('token_expired'));

        assert.equal(await tokens.revoke(b.tokenId, 'lost laptop'), true);
        assert.equal(await tokens.revoke(b.tokenId, 'again'), false, 'second revoke reports already revoked');
        assert.equal((await tokenRow(db, b.tokenId))!.revoked_reason, 'lost laptop', 'first reason kept');
        await assert.rejects(tokens.verify(b.token), (e) => e instanceof AuthError && code('token_revoked')(e));
        await assert.rejects(tokens.revoke(randomUUID(), 'x'), (e) => e instanceof NotFoundError && code('token_not_found')(e));
        await assert.rejects(tokens.revoke('nope', 'x'), code('invalid_token_id'));

        const other = await createUser(db);
        const c = await tokens.issue(other, {});
        await tokens.verify(c.token);
        await db.query('DELETE FROM public.users WHERE id = $1', [other]);
        await assert.rejects(tokens.verify(c.token), code('token_invalid'));
      }));

    test('last_used_at moves on first use, then at most once a minute under a burst of 50 verifies', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const t = await tokens.issue(userId, {});
        assert.equal((await tokenRow(db, t.tokenId))!.last_used_at, null);
        await tokens.verify(t.token);
        const first = (await tokenRow(db, t.tokenId))!;
        assert.ok(first.last_used_at instanceof Date);

        const results = await Promise.all(Array.from({ length: 50 }, () => tokens.verify(t.token)));
        assert.equal(results.length, 50);
        const afterBurst = (await tokenRow(db, t.tokenId))!;
        assert.equal(afterBurst.last_used_at!.getTime(), first.last_used_at!.getTime());
        assert.equal(afterBurst.version, first.version, 'the row was not written at all during the burst');

        await db.query("UPDATE public.plugin_tokens SET last_used_at = now() - interval '2 minutes' WHERE id = $1", [t.tokenId]);
        const setBack = (await tokenRow(db, t.tokenId))!;
        await Promise.all(Array.from({ length: 50 }, () => tokens.verify(t.token)));
        const moved = (await tokenRow(db, t.tokenId))!;
        assert.ok(moved.last_used_at!.getTime() > setBack.last_used_at!.getTime() + 60_000, 'moved forward');
        // Exactly one write: the row version changed once (xmin is the writing transaction).
        await Promise.all(Array.from({ length: 10 }, () => tokens.verify(t.token)));
        assert.equal((await tokenRow(db, t.tokenId))!.version, moved.version);
      }));

    test('revokeAll signs a user out everywhere and leaves other users alone', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const [alice, bob] = [await createUser(db), await createUser(db)];
        const mine = await Promise.all([1, 2, 3].map((i) => tokens.issue(alice, { deviceName: `device ${i}` })));
        await tokens.revoke(mine[0]!.tokenId, 'one already revoked');
        const theirs = await tokens.issue(bob, {});
        assert.equal(await tokens.revokeAll(alice), 2);
        assert.equal(await tokens.revokeAll(alice), 0);
        for (const t of mine) await assert.rejects(tokens.verify(t.token), code('token_revoked'));
        assert.equal((await tokens.verify(theirs.token)).userId, bob);
        await assert.rejects(tokens.revokeAll(randomUUID()), (e) => e instanceof NotFoundError && code('unknown_user')(e));
      }));

    test('list shows devices and states, newest first, with no digest or token', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const a = await tokens.issue(userId, { deviceName: 'desktop' });
        const b = await tokens.issue(userId, { deviceName: 'browser' });
        await db.query("UPDATE public.plugin_tokens SET created_at = created_at - interval '1 day' WHERE id = $1", [a.tokenId]);
        await tokens.revoke(a.tokenId, 'lost');
        const list = await tokens.list(userId);
        assert.deepEqual(list.map((t) => [t.tokenId, t.deviceName, t.status, t.revokedReason]), [
          [b.tokenId, 'browser', 'active', null],
          [a.tokenId, 'desktop', 'revoked', 'lost'],
        ]);
        assert.deepEqual(Object.keys(list[0]!).sort(), ['createdAt', 'deviceName', 'expiresAt', 'lastUsedAt', 'revokedAt', 'revokedReason', 'status', 'tokenId']);
        const text = JSON.stringify(list);
        for (const t of [a, b]) {
          assert.ok(!text.includes(sha256(t.token)) && !text.includes(t.token));
        }
        assert.deepEqual(await tokens.list(await createUser(db)), []);
        await assert.rejects(tokens.list(randomUUID()), code('unknown_user'));
      }));

    test('maxTokensPerUser revokes the oldest active tokens', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET, maxTokensPerUser: 2 });
        const userId = await createUser(db);
        const first = await tokens.issue(userId, { deviceName: 'first' });
        await db.query("UPDATE public.plugin_tokens SET created_at = created_at - interval '2 minutes' WHERE id = $1", [first.tokenId]);
        const second = await tokens.issue(userId, { deviceName: 'second' });
        await db.query("UPDATE public.plugin_tokens SET created_at = created_at - interval '1 minute' WHERE id = $1", [second.tokenId]);
        const third = await tokens.issue(userId, { deviceName: 'third' });
        await assert.rejects(tokens.verify(first.token), code('token_revoked'));
        await tokens.verify(second.token);
        await tokens.verify(third.token);
        assert.equal((await tokenRow(db, first.tokenId))!.revoked_reason, 'max_tokens_per_user');
        const active = (await tokens.list(userId)).filter((t) => t.status === 'active').map((t) => t.deviceName);
        assert.deepEqual(active, ['third', 'second']);
      }));

    test('purgeExpired deletes what expired before the cutoff, keeps the rest, refuses a future cutoff', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const [old, recent, live] = await Promise.all([1, 2, 3].map(() => tokens.issue(userId, {})));
        await db.query(
          "UPDATE public.plugin_tokens SET created_at = now() - interval '60 days', expires_at = now() - interval '40 days' WHERE id = $1",
          [old!.tokenId],
        );
        await db.query(
          "UPDATE public.plugin_tokens SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE id = $1",
          [recent!.tokenId],
        );
        const monthAgo = new Date(Date.now() - 30 * 24 * 3600 * 1000);
        assert.deepEqual(await tokens.purgeExpired({ olderThan: monthAgo }), { tokens: 1, loginRequests: 0 });
        assert.deepEqual((await tokens.list(userId)).map((t) => t.tokenId).sort(), [recent!.tokenId, live!.tokenId].sort());
        assert.deepEqual(await tokens.purgeExpired(), { tokens: 1, loginRequests: 0 });
        assert.deepEqual((await tokens.list(userId)).map((t) => t.tokenId), [live!.tokenId]);
        await assert.rejects(tokens.purgeExpired({ olderThan: new Date(Date.now() + 3_600_000) }), code('invalid_cutoff'));
        await tokens.verify(live!.token);
      }));

    test('bad input is refused with a typed error and nothing is written', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        await assert.rejects(tokens.issue(randomUUID(), {}), (e) => e instanceof NotFoundError && code('unknown_user')(e));
        await assert.rejects(tokens.issue('not-a-uuid', {}), (e) => e instanceof ValidationError && code('invalid_user_id')(e));
        await assert.rejects(tokens.issue(userId, { ttlSeconds: 0 }), code('invalid_ttl'));
        await assert.rejects(tokens.issue(userId, { ttlSeconds: 1.5 }), code('invalid_ttl'));
        await assert.rejects(tokens.issue(userId, { deviceName: 'x'.repeat(256) }), code('invalid_device_name'));
        await assert.rejects(tokens.revoke(randomUUID(), 'x'.repeat(256)), code('invalid_reason'));
        const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_tokens');
        assert.equal(rows[0]!.n, 0);
        // The SQL functions refuse raw values where digests belong, for callers that skip the library.
        await assert.rejects(
          db.query('SELECT public.issue_plugin_token($1, $2, $3, NULL, now() + interval \'1 day\')', [randomUUID(), userId, 'eyJraw.token.value']),
          (e: { code?: string }) => e.code === 'PA029',
        );
      }));

    test('configuration: no secret is fine until a token is needed; short secrets and mixed keys are refused', () =>
      withDatabase(dialect, async ({ db }) => {
        const userId = await createUser(db);
        const usageOnly = createPluginAuth(db, {});
        const fromEmptyEnv = createPluginAuth(db, { tokenSecret: '' });
        for (const auth of [usageOnly, fromEmptyEnv]) {
          await assert.rejects(auth.tokens.issue(userId, {}), (e) => e instanceof SetupError && code('token_secret_missing')(e));
          await assert.rejects(auth.tokens.verify('a.b.c'), code('token_secret_missing'));
          await assert.rejects(auth.tokens.beginLogin(), code('token_secret_missing'));
          assert.deepEqual(await auth.tokens.list(userId), [], 'methods that sign nothing still work');
        }
        const short = 'x'.repeat(31);
        assert.throws(() => createPluginAuth(db, { tokenSecret: short }), (e) => {
          assert.ok(e instanceof SetupError && (e as SetupError).code === 'token_secret_too_short');
          assert.ok(!(e as Error).message.includes(short), 'the secret is not echoed');
          return true;
        });
        const { publicKey, privateKey } = generateKeyPairSync('ed25519');
        assert.throws(() => createTokens(db, { tokenSecret: SECRET, tokenKeyPair: { publicKey, privateKey } }), code('token_key_conflict'));
        const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
        assert.throws(() => createTokens(db, { tokenKeyPair: rsa }), code('token_key_invalid'));
        assert.throws(() => createTokens(db, { tokenSecret: SECRET, maxTokensPerUser: 0 }), code('invalid_max_tokens'));
      }));

    test('EdDSA key pair: tokens sign and verify; HS256 tokens are refused; a public-only instance verifies', () =>
      withDatabase(dialect, async ({ db }) => {
        const { publicKey, privateKey } = generateKeyPairSync('ed25519');
        const tokens = createTokens(db, {
          tokenKeyPair: { privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, publicKey },
          tokenIssuer: 'https://api.example.com',
          tokenAudience: 'my-plugin',
        });
        const userId = await createUser(db);
        const issued = await tokens.issue(userId, { deviceName: 'ed' });
        assert.equal(decodeProtectedHeader(issued.token).alg, 'EdDSA');
        assert.equal((await tokens.verify(issued.token)).tokenId, issued.tokenId);

        const verifier = createTokens(db, { tokenKeyPair: { publicKey }, tokenIssuer: 'https://api.example.com', tokenAudience: 'my-plugin' });
        assert.equal((await verifier.verify(issued.token)).userId, userId);
        await assert.rejects(verifier.issue(userId, {}), code('token_private_key_missing'));
        // An HS256 token "signed" with the public key's bytes: the classic algorithm swap.
        const pem = publicKey.export({ format: 'pem', type: 'spki' }) as string;
        const swapped = await signBy(pem, { sub: userId, jti: issued.tokenId, iss: 'https://api.example.com', aud: 'my-plugin' });
        await assert.rejects(verifier.verify(swapped), code('token_invalid'));
        // The default issuer/audience do not match this instance's.
        const hs = createTokens(db, { tokenSecret: SECRET });
        await assert.rejects(hs.verify(issued.token), code('token_invalid'));
      }));
  });
}

for (const dialect of SERVER_DIALECTS) {
  describe(`tokens [${dialect}, real server only]`, () => {
    test('20 concurrent issues with maxTokensPerUser 3 leave exactly 3 active tokens', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET, maxTokensPerUser: 3 });
        const userId = await createUser(db);
        const issued = await Promise.all(Array.from({ length: 20 }, (_, i) => tokens.issue(userId, { deviceName: `d${i}` })));
        assert.equal(new Set(issued.map((t) => t.tokenId)).size, 20);
        const active = (await tokens.list(userId)).filter((t) => t.status === 'active');
        assert.equal(active.length, 3);
        let ok = 0;
        for (const t of issued) ok += await tokens.verify(t.token).then(() => 1, () => 0);
        assert.equal(ok, 3);
      }, { max: 8 }));

    test('a burst of 200 verifies on 8 connections writes last_used_at exactly once', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const t = await tokens.issue(userId, {});
        // Test-only: count every row update of plugin_tokens, whichever connection makes it.
        await db.exec(`
          CREATE TABLE public.test_token_writes (n INTEGER NOT NULL);
          CREATE FUNCTION public.test_count_token_write() RETURNS trigger LANGUAGE plpgsql AS
            $f$ BEGIN INSERT INTO public.test_token_writes VALUES (1); RETURN NEW; END $f$;
          CREATE TRIGGER test_count_token_write AFTER UPDATE ON public.plugin_tokens
            FOR EACH ROW EXECUTE FUNCTION public.test_count_token_write();`);
        const results = await Promise.allSettled(Array.from({ length: 200 }, () => tokens.verify(t.token)));
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 200);
        const writes = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.test_token_writes');
        assert.equal(writes[0]!.n, 1);
      }, { max: 8 }));
  });
}
