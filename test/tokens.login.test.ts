import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { dumpDatabase } from './helpers/dump.ts';
import { SECRET, assertAbsent, code, counting } from './helpers/tokens.ts';
import { createTokens } from '../src/tokens/tokens.ts';
import { AuthError, NotFoundError } from '../src/core/errors.ts';
import type { Database } from '../src/core/db.ts';

const expire = (db: Database) =>
  db.query("UPDATE public.plugin_login_requests SET created_at = now() - interval '20 minutes', expires_at = now() - interval '10 minutes'");

for (const dialect of DIALECTS) {
  describe(`login hand-over [${dialect}]`, () => {
    test('begin, poll while pending, complete, poll once for a token, then the request is gone', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const login = await tokens.beginLogin({ deviceName: 'Figma desktop' });
        assert.match(login.readKey, /^[A-Za-z0-9_-]{43}$/);
        assert.match(login.writeKey, /^[A-Za-z0-9_-]{43}$/);
        assert.notEqual(login.readKey, login.writeKey);
        const life = login.expiresAt.getTime() - Date.now();
        assert.ok(life > 590_000 && life <= 600_000, `ten minutes, got ${life} ms`);

        assert.equal(await tokens.pollLogin(login.readKey), null);
        assert.equal(await tokens.pollLogin(login.readKey), null);
        await tokens.completeLogin(login.writeKey, userId);
        await tokens.completeLogin(login.writeKey, userId); // idempotent for the same user
        const issued = await tokens.pollLogin(login.readKey);
        assert.ok(issued);
        assert.deepEqual(await tokens.verify(issued.token), {
          userId, tokenId: issued.tokenId, expiresAt: issued.expiresAt, deviceName: 'Figma desktop', deviceId: issued.deviceId,
        });
        await assert.rejects(tokens.pollLogin(login.readKey), (e) => e instanceof NotFoundError && code('login_not_found')(e));
        await assert.rejects(tokens.completeLogin(login.writeKey, userId), code('login_not_found'));
        const left = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_login_requests');
        assert.equal(left[0]!.n, 0);
      }));

    test('no token, read key or write key appears anywhere in a data dump during and after a login', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const done = await tokens.beginLogin();
        const pending = await tokens.beginLogin();
        await tokens.completeLogin(done.writeKey, userId);
        const keys = [done.readKey, done.writeKey, pending.readKey, pending.writeKey];
        assertAbsent(await dumpDatabase(db), keys);
        const issued = (await tokens.pollLogin(done.readKey))!;
        await tokens.verify(issued.token);
        assertAbsent(await dumpDatabase(db), [...keys, issued.token, SECRET]);
      }));

    test('keys are not interchangeable, and unknown or malformed keys are login_not_found', () =>
      withDatabase(dialect, async ({ db: raw }) => {
        const { db, count } = counting(raw);
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(raw);
        const login = await tokens.beginLogin();
        await assert.rejects(tokens.completeLogin(login.readKey, userId), code('login_not_found'));
        await assert.rejects(tokens.pollLogin(login.writeKey), code('login_not_found'));
        const unknown = randomBytes(32).toString('base64url');
        await assert.rejects(tokens.pollLogin(unknown), code('login_not_found'));
        await assert.rejects(tokens.completeLogin(unknown, userId), code('login_not_found'));
        const before = count();
        for (const bad of ['', 'short', `${login.readKey}x`, 'a'.repeat(10_000), 42]) {
          await assert.rejects(tokens.pollLogin(bad as string), code('login_not_found'));
          await assert.rejects(tokens.completeLogin(bad as string, userId), code('login_not_found'));
        }
        assert.equal(count(), before, 'malformed keys never reach the database');
        assert.equal(await tokens.pollLogin(login.readKey), null, 'the request is untouched');
      }));

    test('completeLogin: unknown user, another user after completion, and expiry are refused', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const [alice, mallory] = [await createUser(db), await createUser(db)];
        const login = await tokens.beginLogin();
        await assert.rejects(tokens.completeLogin(login.writeKey, randomUUID()), (e) => e instanceof NotFoundError && code('unknown_user')(e));
        await assert.rejects(tokens.completeLogin(login.writeKey, 'not-a-uuid'), code('invalid_user_id'));
        assert.equal(await tokens.pollLogin(login.readKey), null, 'still pending');
        await tokens.completeLogin(login.writeKey, alice);
        await assert.rejects(tokens.completeLogin(login.writeKey, mallory), (e) => e instanceof AuthError && code('login_already_completed')(e));
        const issued = (await tokens.pollLogin(login.readKey))!;
        assert.equal((await tokens.verify(issued.token)).userId, alice);

        const late = await tokens.beginLogin();
        await expire(db);
        await assert.rejects(tokens.completeLogin(late.writeKey, alice), (e) => e instanceof AuthError && code('login_expired')(e));
        await assert.rejects(tokens.pollLogin(late.readKey), code('login_expired'));
      }));

    test('a completed login that expired before it was collected yields no token', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const login = await tokens.beginLogin();
        await tokens.completeLogin(login.writeKey, userId);
        await expire(db);
        await assert.rejects(tokens.pollLogin(login.readKey), code('login_expired'));
        const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_tokens');
        assert.equal(rows[0]!.n, 0);
      }));

    test('purgeExpired removes expired login requests and keeps live ones', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const old = await tokens.beginLogin();
        await expire(db);
        const live = await tokens.beginLogin();
        assert.deepEqual(await tokens.purgeExpired(), { tokens: 0, loginRequests: 1 });
        await assert.rejects(tokens.pollLogin(old.readKey), code('login_not_found'));
        assert.equal(await tokens.pollLogin(live.readKey), null);
      }));

    test('a deleted user takes their pending login with them', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const login = await tokens.beginLogin();
        await tokens.completeLogin(login.writeKey, userId);
        await db.query('DELETE FROM public.users WHERE id = $1', [userId]);
        await assert.rejects(tokens.pollLogin(login.readKey), code('login_not_found'));
      }));

    test('two pollers on one completed login: exactly one gets the token', () =>
      withDatabase(dialect, async ({ db }) => {
        const tokens = createTokens(db, { tokenSecret: SECRET });
        const userId = await createUser(db);
        const login = await tokens.beginLogin();
        await tokens.completeLogin(login.writeKey, userId);
        const results = await Promise.allSettled([tokens.pollLogin(login.readKey), tokens.pollLogin(login.readKey)]);
        const won = results.filter((r) => r.status === 'fulfilled' && r.value);
        const lost = results.filter((r) => r.status === 'rejected');
        assert.equal(won.length, 1);
        assert.equal(lost.length, 1);
        assert.equal(((lost[0] as PromiseRejectedResult).reason as { code: string }).code, 'login_not_found');
        const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_tokens');
        assert.equal(rows[0]!.n, 1);
      }));
  });
}

describe('login hand-over [postgres only]', () => {
  test('8 pollers on 8 connections racing on each of 25 completed logins: exactly one token per login', () =>
    withDatabase('postgres', async ({ db }) => {
      const tokens = createTokens(db, { tokenSecret: SECRET });
      const userId = await createUser(db);
      let winners = 0;
      let losers = 0;
      for (let round = 0; round < 25; round++) {
        const login = await tokens.beginLogin();
        await tokens.completeLogin(login.writeKey, userId);
        const results = await Promise.allSettled(Array.from({ length: 8 }, () => tokens.pollLogin(login.readKey)));
        const won = results.filter((r) => r.status === 'fulfilled' && r.value !== null);
        assert.equal(won.length, 1, `round ${round}`);
        for (const r of results) {
          if (r.status === 'rejected') assert.equal((r.reason as { code: string }).code, 'login_not_found');
          else assert.notEqual(r.value, null, 'a completed login never answers "pending"');
        }
        winners += won.length;
        losers += results.length - won.length;
      }
      const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_tokens');
      assert.equal(rows[0]!.n, 25);
      assert.equal(winners, 25);
      assert.equal(losers, 25 * 7);
    }, { max: 8 }));

  test('completeLogin racing for two users on 8 connections: exactly one user wins', () =>
    withDatabase('postgres', async ({ db }) => {
      const tokens = createTokens(db, { tokenSecret: SECRET });
      const users = await Promise.all(Array.from({ length: 8 }, () => createUser(db)));
      const login = await tokens.beginLogin();
      const results = await Promise.allSettled(users.map((u) => tokens.completeLogin(login.writeKey, u)));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) {
        if (r.status === 'rejected') assert.equal((r.reason as { code: string }).code, 'login_already_completed');
      }
      const issued = (await tokens.pollLogin(login.readKey))!;
      const winner = users[results.findIndex((r) => r.status === 'fulfilled')];
      assert.equal((await tokens.verify(issued.token)).userId, winner);
    }, { max: 8 }));
});
