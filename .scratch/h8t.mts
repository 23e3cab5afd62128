import { openPostgresJs } from '/work/wt/h8-edge/src/core/postgresjs.ts';
import { withTypedErrors } from '/work/wt/h8-edge/src/core/queryable.ts';
const db = withTypedErrors(await openPostgresJs('postgres://postgres@127.0.0.1:5432/fpa_h8_scratch'));
const rows = await db.query("SELECT '2026-01-02'::date AS d, 42::bigint AS b, now() AS t, '{\"a\":1}'::jsonb AS j, 1.5::numeric AS n, $1::int AS p", [7], { prepare: 'x' });
console.log(rows, Object.getPrototypeOf(rows[0]) === Object.prototype, Array.isArray(rows) && rows.constructor === Array);
await db.exec('CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1);');
try { await db.query('INSERT INTO t VALUES ($1::int)', [1]); } catch (e) { console.log(e.constructor.name, e.code, e.message, Object.getOwnPropertyNames(e.cause)); }
try { await db.transaction(async (tx) => { await tx.query('INSERT INTO t VALUES (2)'); throw new Error('mine'); }); } catch (e) { console.log('tx', e.message); }
console.log(await db.query('SELECT count(*)::int AS c FROM t'));
await db.close();
