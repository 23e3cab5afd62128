// openDatabase with a multi-host URL (src/core/db.ts): `postgres://user@h1:p1,h2:p2/db?
// target_session_attrs=read-write`, which node-postgres does not read itself. The hosts are tried
// in turn, a host that is down or read-only is passed over, and after the serving host goes away
// the next call finds the next one. Real server only (it needs hosts to take away); the full
// failover on pg_auto_failover is `npm run test:failover`.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import { setPlan } from './helpers/usage.ts';
import { openDatabase, parseMultiHostUrl } from '../src/core/db.ts';
import { PluginAuthError } from '../src/core/errors.ts';
import { createPluginAuth } from '../src/auth.ts';
import { freePort } from '../scripts/throwaway-postgres.ts';

test('parseMultiHostUrl: one URL per host, default port, target_session_attrs read and removed; one host is not multi-host', () => {
  const parsed = parseMultiHostUrl('postgres://u:secret@a:5433,b,[::1]:6000/app?sslmode=disable&target_session_attrs=read-write');
  assert.deepEqual(parsed, {
    hosts: ['a:5433', 'b:5432', '[::1]:6000'],
    urls: ['postgres://u:secret@a:5433/app?sslmode=disable', 'postgres://u:secret@b:5432/app?sslmode=disable', 'postgres://u:secret@[::1]:6000/app?sslmode=disable'],
    targetSessionAttrs: 'read-write',
  });
  assert.equal(parseMultiHostUrl('postgres://u@a:5432/app?target_session_attrs=read-write'), undefined);
  assert.equal(parseMultiHostUrl('postgresql://a:1,b:2/x')?.targetSessionAttrs, 'any');
  assert.throws(() => parseMultiHostUrl('postgres://a:1,b:2/x?target_session_attrs=standby'), TypeError);
  assert.throws(() => parseMultiHostUrl('postgres://a:1,,b:2/x'), TypeError);
});

/** A TCP relay to the real server, standing for a host that can be taken away. */
async function relay(target: URL): Promise<{ port: number; connections: () => number; kill: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server: Server = createServer((client) => {
    count++;
    const upstream = connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => count,
    kill: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) {
  describe(`multi-host URLs [${dialect}]`, () => {
    test('a host that is down is passed over; when the serving host goes away the next call runs on the next host', () =>
      withDatabase(dialect, async ({ db, url }) => {
        const user = await createUser(db);
        await setPlan(db, user, 'pro');
        const real = new URL(url!);
        // The server's user with its password, if it has one (the throwaway server of `npm test` does).
        const who = real.password ? `${real.username}:${real.password}` : real.username;
        const dead = await freePort();
        const first = await relay(real);
        const multi = await openDatabase(`postgres://${who}@127.0.0.1:${dead},127.0.0.1:${first.port},${real.hostname}:${real.port}${real.pathname}?target_session_attrs=read-write`, { max: 2 });
        try {
          assert.match(multi.description, /127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,.*read-write/);
          const auth = createPluginAuth(multi);
          assert.equal((await auth.usage.consume(user, 'resize', { idempotencyKey: 'a' })).allowed, true);
          assert.ok(first.connections() >= 1, 'the call went through the second host (the first is down)');
          await first.kill();
          // The call that draws a connection through the removed host gets connection_lost; its retry
          // with the same key runs on the third host and is counted once.
          let answer;
          for (let attempt = 0; ; attempt++) {
            try {
              answer = await auth.usage.consume(user, 'resize', { idempotencyKey: 'b' });
              break;
            } catch (error) {
              assert.ok(error instanceof PluginAuthError && error.code === 'connection_lost' && error.retryable, String(error));
              assert.ok(attempt < 3);
            }
          }
          assert.equal(answer.allowed, true);
          assert.equal((await auth.usage.consume(user, 'resize', { idempotencyKey: 'b' })).replayed, true);
          const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM public.plugin_usage WHERE user_id = $1::uuid', [user]);
          assert.equal(rows[0]!.n, 2);
        } finally {
          await multi.close();
        }
      }));

    test('read-write passes over read-only hosts: none left is the retryable connection_lost; any accepts them; a missing database is not retryable', () =>
      withDatabase(dialect, async ({ db, url, name }) => {
        const real = new URL(url!);
        // The server's user with its password, if it has one (the throwaway server of `npm test` does).
        const who = real.password ? `${real.username}:${real.password}` : real.username;
        await db.query(`ALTER DATABASE ${name} SET default_transaction_read_only = on`);
        const hosts = `127.0.0.1:${real.port},localhost:${real.port}`;
        const rw = await openDatabase(`postgres://${who}@${hosts}${real.pathname}?target_session_attrs=read-write`, { max: 1 });
        const any = await openDatabase(`postgres://${who}@${hosts}${real.pathname}`, { max: 1 });
        const missing = await openDatabase(`postgres://${who}@${hosts}/no_such_database_here?target_session_attrs=read-write`, { max: 1 });
        const dead = await openDatabase(`postgres://${who}@127.0.0.1:${await freePort()},127.0.0.1:${await freePort()}/x?target_session_attrs=read-write`, { max: 1 });
        try {
          await assert.rejects(rw.query('SELECT 1'), (e: unknown) => e instanceof PluginAuthError && e.code === 'connection_lost' && e.retryable && /read-only/.test(e.message));
          assert.deepEqual(await any.query('SELECT 1 AS one'), [{ one: 1 }]);
          await assert.rejects(missing.query('SELECT 1'), (e: unknown) => !(e instanceof PluginAuthError) && (e as { code?: string }).code === '3D000');
          await assert.rejects(dead.query('SELECT 1'), (e: unknown) => e instanceof PluginAuthError && e.code === 'connection_lost' && e.retryable);
          await db.query(`ALTER DATABASE ${name} RESET default_transaction_read_only`);
          assert.deepEqual(await rw.query('SELECT 1 AS one'), [{ one: 1 }], 'a host that became writable is taken');
        } finally {
          await Promise.all([rw.close(), any.close(), missing.close(), dead.close()]);
        }
      }));
  });
}
