\set n random(1, :users)
WITH me AS (
  SELECT (:side::text || '0000000-0000-4000-8000-' || pg_catalog.lpad(:n, 12, '0'))::uuid AS id, (pg_catalog.now() AT TIME ZONE 'UTC')::date AS today
), plan AS (
  SELECT p.plan_slug, (p.limits ->> 'resizesPerDay')::integer AS lim,
         (p.limits ->> 'batchSize')::integer AS batch, (p.limits ->> 'isDaily')::boolean AS daily
    FROM me
    JOIN public.users AS w ON w.id = me.id
    LEFT JOIN public.user_subscriptions AS s
      ON s.user_id = w.id
     AND (s.status IN ('active', 'trialing') OR (s.status = 'past_due' AND s.current_period_end > pg_catalog.now()))
    JOIN public.subscription_plans AS p
      ON p.id = COALESCE(s.plan_id, (SELECT f.id FROM public.subscription_plans AS f WHERE f.plan_slug = 'free'))
), counted AS (
  INSERT INTO public.daily_usage_summary AS d (user_id, action, usage_date, count)
  SELECT me.id, 'resize', me.today, 1 FROM me, plan WHERE plan.lim <> 0
  ON CONFLICT (user_id, action, usage_date) DO UPDATE SET count = d.count + 1, updated_at = pg_catalog.now()
  WHERE (SELECT plan.lim FROM plan) = -1 OR d.count + 1 <= (SELECT plan.lim FROM plan)
  RETURNING d.count
), answer AS (
  SELECT c.count IS NOT NULL AS allowed,
         COALESCE(c.count, (SELECT d.count FROM public.daily_usage_summary AS d, me
                             WHERE d.user_id = me.id AND d.action = 'resize' AND d.usage_date = me.today), 0) AS used
    FROM (SELECT (SELECT counted.count FROM counted) AS count) AS c
)
INSERT INTO public.plugin_usage (user_id, action, items, allowed, reason, plan_slug, used, usage_limit, batch_limit, resets_at)
SELECT me.id, 'resize', 1, a.allowed, CASE WHEN a.allowed THEN 'ok' ELSE 'limit_reached' END, plan.plan_slug, a.used,
       NULLIF(plan.lim, -1), NULLIF(plan.batch, -1), (me.today + 1)::timestamp AT TIME ZONE 'UTC'
  FROM me, plan, answer AS a
RETURNING allowed, reason, plan_slug, used, usage_limit, batch_limit, resets_at;
