// Each input rule has one statement in TypeScript (src/core/limits.ts, SOURCE_PRECEDENCE) and the
// installed SQL functions enforce it again as the last line for supabase.rpc callers. These tests
// hold the two sides to one rule: the same inputs are accepted and refused by both, at the same
// boundary, on both engines. A change to either side alone fails here.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, createUser, withDatabase } from './helpers/databases.ts';
import * as validate from '../src/core/validation.ts';
import { ACTION_PATTERN, MAX_ITEMS, MAX_TEXT_LENGTH } from '../src/core/limits.ts';
import { SOURCE_PRECEDENCE } from '../src/billing/sources.ts';
import { sqlState } from '../src/core/errors.ts';
import type { Database } from '../src/core/db.ts';

/** The SQLSTATE a statement fails with, or null when it succeeds. */
async function outcome(db: Database, sql: string, params: unknown[]): Promise<string | null> {
  try {
    await db.query(sql, params);
    return null;
  } catch (error) {
    const state = sqlState(error);
    assert.ok(state, `a typed SQL error, not ${String(error)}`);
    return state;
  }
}

const accepts = (check: () => unknown): boolean => {
  try {
    check();
    return true;
  } catch {
    return false;
  }
};

const ACTIONS = ['resize', 'a', 'a'.repeat(64), 'a'.repeat(65), '', 'a b', 'é', 'x\n', 'a:b.c-d_e', 'a/b', 'A9', 'resize;', '-'];

for (const dialect of DIALECTS) {
  describe(`one rule per input, TypeScript and the installed SQL [${dialect}]`, () => {
    test('the action pattern: validate.action and every metering function accept and refuse the same actions', () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        for (const action of ACTIONS) {
          const ts = accepts(() => validate.action(action));
          assert.equal(ts, new RegExp(ACTION_PATTERN).test(action));
          const expected = ts ? null : 'PA003';
          assert.equal(await outcome(db, 'SELECT * FROM public.check_usage($1::uuid, $2::varchar, 1)', [user, action]), expected, `check_usage ${JSON.stringify(action)}`);
          assert.equal(await outcome(db, 'SELECT * FROM public.consume_usage($1::uuid, $2::varchar, 1)', [user, action]), expected, `consume_usage ${JSON.stringify(action)}`);
          assert.equal(await outcome(db, 'SELECT public.increment_daily_usage($1::uuid, $2::varchar)', [user, action]), expected, `increment_daily_usage ${JSON.stringify(action)}`);
        }
      }));

    test(`the items limit: 1 to MAX_ITEMS (${MAX_ITEMS}) on both sides, and in the table's CHECK`, () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        for (const items of [0, 1, MAX_ITEMS, MAX_ITEMS + 1]) {
          const ts = accepts(() => validate.items(items));
          const expected = ts ? null : 'PA002';
          assert.equal(await outcome(db, "SELECT * FROM public.check_usage($1::uuid, 'resize', $2::integer)", [user, items]), expected, `check_usage items=${items}`);
          assert.equal(await outcome(db, "SELECT * FROM public.consume_usage($1::uuid, 'other', $2::integer)", [user, items]), expected, `consume_usage items=${items}`);
        }
        assert.equal(accepts(() => validate.items(MAX_ITEMS)), true);
        assert.equal(accepts(() => validate.items(MAX_ITEMS + 1)), false);
        // The column's CHECK is the same bound (a row written past the functions).
        const write = (items: number) => outcome(db, "INSERT INTO public.plugin_usage (user_id, action, items, allowed, reason) VALUES ($1::uuid, 'x', $2::integer, true, 'ok')", [user, items]);
        assert.equal(await write(MAX_ITEMS), null);
        assert.equal(await write(MAX_ITEMS + 1), '23514');
      }));

    test(`the idempotency key: 1 to MAX_TEXT_LENGTH (${MAX_TEXT_LENGTH}) characters on both sides`, () =>
      withDatabase(dialect, async ({ db }) => {
        const user = await createUser(db);
        for (const key of ['k', 'é'.repeat(MAX_TEXT_LENGTH), 'k'.repeat(MAX_TEXT_LENGTH + 1), '', 'a\u0085b']) {
          const ts = accepts(() => validate.idempotencyKey(key, true));
          assert.equal(
            await outcome(db, "SELECT * FROM public.consume_usage($1::uuid, 'other', 1, $2::text)", [user, key]),
            ts ? null : 'PA004',
            `key of ${[...key].length} characters`,
          );
        }
      }));

    test('source precedence: SOURCE_PRECEDENCE is the precedence each branch of the installed plugin_auth_grants uses', () =>
      withDatabase(dialect, async ({ db }) => {
        const [row] = await db.query<{ def: string }>(
          "SELECT pg_catalog.pg_get_functiondef('public.plugin_auth_grants(uuid, timestamp with time zone)'::pg_catalog.regprocedure) AS def",
        );
        const def = row!.def;
        const found: Record<string, number[]> = {};
        const add = (source: string, n: string) => (found[source] ??= []).push(Number(n));
        for (const m of def.matchAll(/CASE\s+WHEN\s+s\.status\s*=\s*'manual'\s+THEN\s+(\d+)\s+ELSE\s+(\d+)\s+END\s+AS\s+precedence/g)) {
          add('manual', m[1]!);
          add('stripe', m[2]!);
        }
        for (const m of def.matchAll(/CASE\s+WHEN\s+k\.provider\s*=\s*'lemonsqueezy'\s+THEN\s+(\d+)\s+ELSE\s+(\d+)\s+END/g)) {
          add('lemonsqueezy', m[1]!);
          add('gumroad', m[2]!);
        }
        for (const m of def.matchAll(/SELECT\s+'(figma|seat)'\s*,\s*(\d+)/g)) add(m[1]!, m[2]!);
        const installed = Object.fromEntries(Object.entries(found).map(([source, ns]) => {
          assert.equal(new Set(ns).size, 1, `${source}: one precedence in every branch (${ns.join(', ')})`);
          return [source, ns[0]!];
        }));
        assert.deepEqual(installed, { ...SOURCE_PRECEDENCE }, 'update src/billing/sources.ts and the SQL together');
      }));
  });
}
