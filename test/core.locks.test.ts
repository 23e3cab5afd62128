// One advisory-lock scheme (src/core/locks.ts): every lock an installed function takes is the
// two-key form with a namespace from LOCKS, every TypeScript lock goes through lock(), and
// setup's own lock is the one one-key exception.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIALECTS, createUser, functionSources, withDatabase } from './helpers/databases.ts';
import { LOCKS, SETUP_LOCK_KEY, lock } from '../src/core/locks.ts';
import { buildSetupScript } from '../src/schema/migrations.ts';

const NAMESPACES = new Set<number>(Object.values(LOCKS));

test('namespaces are unique', () => {
  assert.equal(NAMESPACES.size, Object.keys(LOCKS).length);
});

test('TypeScript takes advisory locks only through lock() (and setup its one key)', () => {
  const SRC = new URL('../src/', import.meta.url);
  for (const file of readdirSync(SRC, { recursive: true }) as string[]) {
    if (!file.endsWith('.ts') || file === join('core', 'locks.ts')) continue;
    const text = readFileSync(new URL(file, SRC), 'utf8').replace(/^\s*(\/\/|\*).*$/gm, '');
    const calls = text.match(/pg_(try_)?advisory(_xact)?_lock(_shared)?\(/g) ?? [];
    if (file === join('schema', 'migrations.ts')) assert.equal(calls.length, 1, 'setup takes exactly its own lock');
    else assert.deepEqual(calls, [], `${file} takes an advisory lock without lock()`);
  }
  assert.match(buildSetupScript(), new RegExp(`pg_advisory_xact_lock\\(pg_catalog\\.hashtext\\('${SETUP_LOCK_KEY}'\\)\\)`));
});

for (const dialect of DIALECTS) {
  describe(`installed functions [${dialect}]`, () => {
    test('every advisory lock is transaction-scoped and two-keyed, in a namespace of LOCKS', async () => {
      await withDatabase(dialect, async ({ db }) => {
        const rows = await functionSources(db, 'advisory');
        const used = new Set<number>();
        for (const { name, src } of rows) {
          const code = src.replace(/--[^\n]*/g, '');
          for (const m of code.matchAll(/pg_(?:try_)?advisory(_xact)?_lock(?:_shared)?\(\s*([^,)]*)[,)]/g)) {
            assert.equal(m[1], '_xact', `${name}(): a session-level lock`);
            const ns = Number(m[2]);
            assert.ok(NAMESPACES.has(ns), `${name}(): lock namespace ${m[2]} is not in LOCKS`);
            used.add(ns);
          }
        }
        // Every namespace is taken by an installed function.
        for (const [key, ns] of Object.entries(LOCKS)) assert.ok(used.has(ns), `${key} (${ns}) is taken by no installed function`);
      });
    });

    test('lock() takes the two-key lock: the namespace as classid, hashtext(key) as objid', async () => {
      await withDatabase(dialect, async ({ db }) => {
        const userId = await createUser(db);
        // pg_locks shows one advisory lock: the namespace as classid, the key's hash as objid.
        const seen = await db.transaction(async (tx) => {
          await lock(tx, 'tokensPerUser', userId);
          return tx.query<{ classid: number; objid: number; want: number }>(
            `SELECT l.classid::integer AS classid, l.objid::bigint AS objid,
                    (pg_catalog.hashtext($1::text)::bigint & 4294967295) AS want
               FROM pg_catalog.pg_locks AS l WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid()`,
            [userId],
          );
        });
        assert.equal(seen.length, 1);
        assert.equal(seen[0]!.classid, LOCKS.tokensPerUser);
        assert.equal(Number(seen[0]!.objid), Number(seen[0]!.want));
      });
    });
  });
}
