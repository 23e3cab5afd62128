// The common case of consume as one plain statement: what consume_usage
// (sql/templates/hot-paths.sql) does for a call without an idempotency key, on a daily or
// unlimited plan, while the user's effective plan row is valid. usageCalls.consume sends it on a
// connection that keeps prepared statements, and calls consume_usage when it answers no row.
//
// Why: the function call itself costs what the work does not: its `SET search_path = ''` (which
// Supabase's advisor requires of every function) is saved, set and restored on every call, and a
// PL/pgSQL set-returning call runs each statement through SPI. Measured (BENCHMARKS.md, "consume's
// common case as one statement"): against bench/pgbench's single-source statement, the function
// is 0.82-0.87 on PGlite and 0.90-0.93 of its server CPU on PostgreSQL; this statement 0.94-0.95 and 0.97-0.98.
//
// It answers a row only when its answer is the function's, and writes nothing otherwise:
// - fits: the effective plan row valid now (as the function's first read), a daily plan for
//   'resize' (a lifetime plan sums other days under a lock: the function's), a limit not 0 (the
//   insert arm of the upsert would ignore its WHERE), a batch within the plan's, and inputs the
//   function accepts (otherwise it raises their typed error): items from 1 to 10000, an action of
//   1 to 64 bytes, metadata an object of at most 16 kB of jsonb text. The action's characters are
//   not tested again (a regular expression a call, measured): its one caller, createUsage's
//   consume, has refused any other (src/core/validation.ts, the function's rule).
// - counted: the function's upsert, the same WHERE against the latest committed count under the
//   row's lock, so the same decision.
// - on a denial only (COALESCE evaluates its second argument only then): today's count as the
//   function reads it after a denial, the latest committed one. The upsert has locked the row,
//   and FOR UPDATE reads its latest version. No row (it was inserted after this statement's
//   snapshot) = no answer, nothing written.
// - each of those evaluated once: OFFSET 0 keeps the planner from pulling the two subqueries up
//   into the outer query, where each use of their columns (the WHERE and three in the target list)
//   would be a copy of the expression, counted's row read four times and the denial's locking
//   read run twice (seen in EXPLAIN ANALYZE).
// - the log row, as the function writes it; RETURNING gives the function's answer columns.
export const COMMON_CONSUME = `WITH plan AS (
  SELECT p.plan_slug,
         CASE WHEN $2::varchar = 'resize' THEN (p.limits ->> 'resizesPerDay')::integer ELSE -1 END AS lim,
         CASE WHEN $2::varchar = 'resize' THEN (p.limits ->> 'batchSize')::integer ELSE -1 END AS batch,
         (pg_catalog.now() AT TIME ZONE 'UTC')::date AS today
    FROM public.user_effective_plans AS e
    JOIN public.subscription_plans AS p ON p.id = e.plan_id
   WHERE e.user_id = $1::uuid AND (e.valid_until IS NULL OR e.valid_until > pg_catalog.now())
     AND ($2::varchar <> 'resize' OR (p.limits ->> 'isDaily')::boolean)
), fits AS (
  SELECT f.* FROM plan AS f
   WHERE f.lim <> 0 AND (f.batch = -1 OR $3::integer <= f.batch) AND $3::integer BETWEEN 1 AND 10000
     AND pg_catalog.octet_length($2::varchar) BETWEEN 1 AND 64
     AND ($4::jsonb IS NULL OR (pg_catalog.jsonb_typeof($4::jsonb) = 'object'
          AND pg_catalog.octet_length($4::jsonb::text) <= 16384))
), counted AS (
  INSERT INTO public.daily_usage_summary AS d (user_id, action, usage_date, count)
  SELECT $1::uuid, $2::varchar, f.today, 1 FROM fits AS f
  ON CONFLICT (user_id, action, usage_date)
  DO UPDATE SET count = d.count + 1, updated_at = pg_catalog.now()
  WHERE (SELECT f.lim FROM fits AS f) = -1 OR d.count + 1 <= (SELECT f.lim FROM fits AS f)
  RETURNING d.count
)
INSERT INTO public.plugin_usage AS u (user_id, action, items, allowed, reason, plan_slug, metadata,
                                      used, usage_limit, batch_limit, resets_at)
SELECT $1::uuid, $2::varchar, $3::integer, a.c IS NOT NULL,
       CASE WHEN a.c IS NOT NULL THEN 'ok' ELSE 'limit_reached' END, f.plan_slug, $4::jsonb,
       a.s, NULLIF(f.lim, -1), NULLIF(f.batch, -1), (f.today + 1)::timestamp AT TIME ZONE 'UTC'
  FROM fits AS f,
       LATERAL (SELECT c0.c, COALESCE(c0.c, (SELECT d.count FROM public.daily_usage_summary AS d
                 WHERE d.user_id = $1::uuid AND d.action = $2::varchar AND d.usage_date = f.today FOR UPDATE)) AS s
                  FROM (SELECT (SELECT c.count FROM counted AS c) AS c OFFSET 0) AS c0 OFFSET 0) AS a
 WHERE a.s IS NOT NULL
RETURNING u.allowed, u.reason, u.plan_slug, u.used, u.usage_limit,
          CASE WHEN u.usage_limit IS NOT NULL THEN GREATEST(u.usage_limit - u.used, 0) END AS remaining,
          u.batch_limit, u.resets_at, false AS replayed`;
