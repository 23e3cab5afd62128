// A test database handed to the next test of the process instead of made again (a PGlite instance:
// helpers/pglite.ts; a real-server database and its connections: helpers/databases.ts), only once it
// is back to its state after setup, and only when that can be vouched for:
// - the catalog: any change since the last reset (a table, a function, a type, a grant, a comment,
//   a temporary table...) moves the newest xmin or a row count of the catalogs (`catalogMark`), and
//   then the database is not reused;
// - the data (`resetData`): every table of public that holds a row, was ever written (its file is
//   not empty) or has statistics is truncated, with what references it; the sequences are set back,
//   the rows setup seeds put back as they were, the statistics and the counters cleared.
// The session is the caller's to reset (DISCARD ALL on PGlite's one session; on the server, each
// pooled connection).

/** The query interface of a PGlite instance, and of a pg client through `rawClient`. */
export interface Raw {
  query<T>(text: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(script: string): Promise<unknown>;
}

/** What setup leaves in a database: read once per process, from the first fresh one. */
export interface Pristine {
  /** The tables setup seeds, with their rows as JSON. */
  seeds: { table: string; json: string }[];
  /** The sequences of public and their state after setup. */
  sequences: { name: string; value: string; called: boolean }[];
  /**
   * What the planner reads of public's relations (their toast tables and indexes included), by oid
   * (a copy of the template, or of the snapshot, has the same): a truncation sets an index's
   * reltuples to -1 and its relpages to 0, where a freshly built one has 0 and 1, and a plan may
   * differ with them (and with it the order of ties a query leaves open).
   */
  sizes: { oid: string; pages: number; tuples: number; visible: number }[];
}

/** The catalogs that describe one database's schema and privileges (pg_statistic is reset, not compared). */
const CATALOGS = [
  'pg_class', 'pg_attribute', 'pg_attrdef', 'pg_constraint', 'pg_index', 'pg_inherits', 'pg_type', 'pg_proc', 'pg_namespace',
  'pg_trigger', 'pg_event_trigger', 'pg_rewrite', 'pg_policy', 'pg_sequence', 'pg_depend', 'pg_description', 'pg_default_acl',
  'pg_init_privs', 'pg_extension', 'pg_language', 'pg_operator', 'pg_cast', 'pg_collation', 'pg_conversion', 'pg_aggregate',
  'pg_am', 'pg_opclass', 'pg_opfamily', 'pg_foreign_data_wrapper', 'pg_foreign_server', 'pg_user_mapping', 'pg_foreign_table',
  'pg_publication', 'pg_subscription', 'pg_largeobject_metadata', 'pg_statistic_ext', 'pg_transform', 'pg_ts_config', 'pg_ts_dict',
];
/**
 * The catalogs shared by the cluster's databases (roles, databases). PGlite's cluster is its
 * own; on the shared server the other test processes change them all the time (their databases,
 * their roles), so there they are not part of a database's mark.
 */
const SHARED = ['pg_authid', 'pg_auth_members', 'pg_db_role_setting', 'pg_database', 'pg_shdepend', 'pg_shdescription', 'pg_tablespace'];

const markSql = (catalogs: string[]) =>
  `SELECT (SELECT pg_catalog.max(x)::text FROM (${catalogs.map((c) => `SELECT pg_catalog.max(xmin::text::bigint) AS x FROM pg_catalog.${c}`).join(' UNION ALL ')}) m)
     || ':' || ${catalogs.map((c) => `(SELECT pg_catalog.count(*) FROM pg_catalog.${c})::text`).join(` || ',' || `)} AS mark`;
const MARK = { own: markSql([...CATALOGS, ...SHARED]), shared: markSql(CATALOGS) };

/** The newest xmin over the catalogs and each one's row count: any DDL, grant or role change moves one of them. */
export async function catalogMark(db: Raw, clusterShared: boolean): Promise<string> {
  return (await db.query<{ mark: string }>(clusterShared ? MARK.shared : MARK.own)).rows[0]!.mark;
}

/** What setup left in this (fresh) database; throws when a reset could not restore it (statistics on public). */
export async function readPristine(db: Raw): Promise<Pristine> {
  const tables = (await db.query<{ t: string }>(
    `SELECT c.relname::text AS t FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1`,
  )).rows.map((r) => r.t);
  const seeds: Pristine['seeds'] = [];
  for (const table of tables) {
    const [row] = (await db.query<{ json: string | null }>(`SELECT pg_catalog.json_agg(t)::text AS json FROM public.${table} t`)).rows;
    if (row?.json) seeds.push({ table, json: row.json });
  }
  const sequences = (await db.query<{ name: string; value: string; called: boolean }>(
    `SELECT 'public.' || s.sequencename AS name, COALESCE(s.last_value, s.start_value)::text AS value, s.last_value IS NOT NULL AS called
       FROM pg_catalog.pg_sequences s WHERE s.schemaname = 'public' ORDER BY 1`,
  )).rows;
  const [stats] = (await db.query<{ n: number }>(
    `SELECT pg_catalog.count(*)::integer AS n FROM pg_catalog.pg_statistic s JOIN pg_catalog.pg_class c ON c.oid = s.starelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`,
  )).rows;
  // A reset clears the statistics of public's tables: that must be their state after setup.
  if (stats!.n !== 0) throw new Error('the set-up database has statistics on public tables: a reset would not restore them');
  const sizes = (await db.query<Pristine['sizes'][number]>(
    `SELECT c.oid::bigint::text AS oid, c.relpages AS pages, c.reltuples AS tuples, c.relallvisible AS visible
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r', 'p', 'i', 't') AND c.oid >= 16384 ORDER BY c.oid`,
  )).rows;
  return { seeds, sequences, sizes };
}

/**
 * Puts the data back as setup left it, in one transaction (see the top of this file). Returns the
 * catalogs' mark after it: the truncation rewrote the tables' pg_class rows, so the newest xmin is
 * this transaction's; the counts are unchanged.
 */
export async function resetData(db: Raw, pristine: Pristine, before: string): Promise<string> {
  const seeded = pristine.seeds.map((s) => s.table);
  const touched = (await db.query<{ t: string }>(
    `SELECT c.relname::text AS t FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
        AND (c.relname = ANY ($1::text[]) OR pg_catalog.pg_relation_size(c.oid) > 0 OR c.reltuples <> -1
             OR EXISTS (SELECT 1 FROM pg_catalog.pg_statistic s WHERE s.starelid = c.oid))`,
    [seeded],
  )).rows.map((row) => `public.${row.t}`);
  // Replica: no trigger of the schema runs for the truncation and the seeds (they are put back as
  // they were, not written anew).
  await db.exec(`BEGIN; SET LOCAL session_replication_role = replica; TRUNCATE ${touched.join(', ')} RESTART IDENTITY CASCADE;`);
  let after: { xid: string } | undefined;
  try {
    const n = pristine.seeds.length;
    [after] = (await db.query<{ xid: string }>(
      `WITH ${pristine.seeds.map((s, i) => `s${i} AS (INSERT INTO public.${s.table} OVERRIDING SYSTEM VALUE SELECT * FROM pg_catalog.json_populate_recordset(NULL::public.${s.table}, $${i + 1}::json))`).join(', ')},
            q AS (SELECT pg_catalog.setval(x.n::regclass, x.v, x.c) FROM unnest($${n + 1}::text[], $${n + 2}::bigint[], $${n + 3}::boolean[]) AS x(n, v, c))
       SELECT (SELECT pg_catalog.count(*) FROM q)::text AS n, (pg_catalog.pg_current_xact_id()::text::bigint % 4294967296)::text AS xid`,
      [...pristine.seeds.map((s) => s.json), pristine.sequences.map((s) => s.name), pristine.sequences.map((s) => s.value), pristine.sequences.map((s) => s.called)],
    )).rows;
    await db.query(
      `UPDATE pg_catalog.pg_class AS c SET relpages = x.p, reltuples = x.t, relallvisible = x.v
         FROM unnest($1::bigint[], $2::integer[], $3::real[], $4::integer[]) AS x(o, p, t, v)
        WHERE c.oid = x.o::oid AND (c.relpages, c.reltuples, c.relallvisible) IS DISTINCT FROM (x.p, x.t, x.v)`,
      [pristine.sizes.map((z) => z.oid), pristine.sizes.map((z) => z.pages), pristine.sizes.map((z) => z.tuples), pristine.sizes.map((z) => z.visible)],
    );
    await db.exec(`DELETE FROM pg_catalog.pg_statistic s USING pg_catalog.pg_class c, pg_catalog.pg_namespace n
                    WHERE c.oid = s.starelid AND n.oid = c.relnamespace AND n.nspname = 'public'; COMMIT;`);
  } catch (error) {
    await db.exec('ROLLBACK').catch(() => {});
    throw error;
  }
  // The counters last: a session hands its counters (this reset's own writes among them) to the
  // shared statistics when it goes idle, at most once a second unless forced; cleared before that,
  // they would come back after the reset. So they are flushed first, then cleared.
  await db.query('SELECT pg_catalog.pg_stat_force_next_flush()');
  await db.query('SELECT 1');
  await db.query('SELECT pg_catalog.pg_stat_reset()');
  return `${after!.xid}:${before.split(':')[1]}`;
}

/**
 * The reset databases waiting for the next test of the process. One not taken within `idleMs` is
 * closed (`close`), and so is every one still idle when the process has nothing left to do
 * ('beforeExit'): the idle timers never keep the process alive (nor do the idle connections of a
 * reused server database: its pool allows exit on idle), so a test process exits when its tests
 * end, closing what it kept, and ends nothing it could reuse between two of its tests. The idle time
 * spans a file's tests on the other engine (a file runs its tests on PGlite, then on the server)
 * and the start of the next file of a group; at 250 ms, each such gap cost a new database.
 */
export class IdleShelf<T> {
  private readonly timers = new Map<T, ReturnType<typeof setTimeout>>();

  constructor(private readonly close: (item: T) => Promise<void>, private readonly idleMs = 10_000) {
    process.on('beforeExit', () => {
      for (const item of [...this.timers.keys()]) this.closeNow(item);
    });
  }

  /** The newest idle item that `fits`, taken off the shelf; undefined when none does. */
  take(fits: (item: T) => boolean = () => true): T | undefined {
    const item = [...this.timers.keys()].reverse().find(fits);
    if (item === undefined) return undefined;
    clearTimeout(this.timers.get(item));
    this.timers.delete(item);
    return item;
  }

  put(item: T): void {
    const timer = setTimeout(() => this.closeNow(item), this.idleMs);
    timer.unref();
    this.timers.set(item, timer);
  }

  private closeNow(item: T): void {
    clearTimeout(this.timers.get(item));
    this.timers.delete(item);
    void this.close(item).catch(() => {});
  }
}
