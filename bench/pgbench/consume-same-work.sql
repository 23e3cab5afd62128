\set n random(1, :users)
WITH me AS (
  SELECT (:side::text || '0000000-0000-4000-8000-' || pg_catalog.lpad(:n, 12, '0'))::uuid AS id, (pg_catalog.now() AT TIME ZONE 'UTC')::date AS today
), plan AS (
  SELECT p.plan_slug, (p.limits ->> 'resizesPerDay')::integer AS lim,
         (p.limits ->> 'batchSize')::integer AS batch, (p.limits ->> 'isDaily')::boolean AS daily
    FROM me
    JOIN public.subscription_plans AS p ON p.id = COALESCE(
      (SELECT e.plan_id FROM public.user_effective_plans AS e
        WHERE e.user_id = me.id AND (e.valid_until IS NULL OR e.valid_until > pg_catalog.now())),
      (
      SELECT b.id FROM (
        SELECT s.plan_id, CASE WHEN s.status = 'manual' THEN 60 ELSE 10 END, s.current_period_end
          FROM public.user_subscriptions AS s
         WHERE s.user_id = me.id
           AND (s.status = 'manual' OR s.quantity = 1)
           AND CASE WHEN s.status IN ('active', 'trialing') THEN true
                    WHEN s.status = 'past_due' THEN s.current_period_end > pg_catalog.now()
                    WHEN s.status = 'manual' THEN s.current_period_end IS NULL OR s.current_period_end > pg_catalog.now()
                    ELSE false END
        UNION ALL
        SELECT l.plan_id, 20, CASE WHEN l.link = 'FIRST_USE' THEN f.first_seen_at + pg_catalog.make_interval(secs => l.trial_seconds)
                                   ELSE f.grant_until END
          FROM public.figma_users AS f
          JOIN public.figma_plan_links AS l
            ON (l.link = f.payment_status AND f.grant_until > pg_catalog.now())
            OR (l.link = 'FIRST_USE' AND f.first_seen_at + pg_catalog.make_interval(secs => l.trial_seconds) > pg_catalog.now())
         WHERE f.user_id = me.id
        UNION ALL
        SELECT m.plan_id, CASE WHEN k.provider = 'lemonsqueezy' THEN 30 ELSE 40 END, k.expires_at
          FROM public.licenses AS k
         CROSS JOIN LATERAL (SELECT m.plan_id, m.seats FROM public.license_products AS m
                              WHERE m.provider = k.provider AND m.product_id = k.product_id
                                AND m.variant_id IN (COALESCE(k.variant_id, ''), '')
                              ORDER BY m.variant_id = '' LIMIT 1) AS m
         WHERE k.user_id = me.id AND k.status IN ('active', 'inactive')
           AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now()) AND COALESCE(m.seats, k.quantity) = 1
        UNION ALL
        SELECT m.plan_id, 50, k.expires_at
          FROM public.seat_assignments AS a
          JOIN public.licenses AS k ON k.id = a.license_id
         CROSS JOIN LATERAL (SELECT m.plan_id, m.seats FROM public.license_products AS m
                              WHERE m.provider = k.provider AND m.product_id = k.product_id
                                AND m.variant_id IN (COALESCE(k.variant_id, ''), '')
                              ORDER BY m.variant_id = '' LIMIT 1) AS m
         WHERE a.member_user_id = me.id AND k.status IN ('active', 'inactive')
           AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now()) AND COALESCE(m.seats, k.quantity) > 1
           AND (SELECT pg_catalog.count(*) FROM public.seat_assignments AS b
                 WHERE b.license_id = a.license_id AND b.seat_order < a.seat_order) < COALESCE(m.seats, k.quantity)
        UNION ALL
        SELECT s.plan_id, 50, s.current_period_end
          FROM public.seat_assignments AS a
          JOIN public.user_subscriptions AS s ON s.id = a.subscription_id
         WHERE a.member_user_id = me.id AND s.status <> 'manual' AND s.quantity > 1
           AND CASE WHEN s.status IN ('active', 'trialing') THEN true
                    WHEN s.status = 'past_due' THEN s.current_period_end > pg_catalog.now()
                    ELSE false END
           AND (SELECT pg_catalog.count(*) FROM public.seat_assignments AS b
                 WHERE b.subscription_id = a.subscription_id AND b.seat_order < a.seat_order) < s.quantity
      ) AS g(plan_id, precedence, until)
      JOIN public.subscription_plans AS b ON b.id = g.plan_id
     ORDER BY COALESCE(b.price_monthly, 0) DESC,
              CASE WHEN (b.limits ->> 'resizesPerDay')::integer = -1 THEN 2147483647 ELSE (b.limits ->> 'resizesPerDay')::integer END DESC,
              CASE WHEN (b.limits ->> 'batchSize')::integer = -1 THEN 2147483647 ELSE (b.limits ->> 'batchSize')::integer END DESC,
              g.precedence, g.until DESC NULLS FIRST, b.plan_slug
     LIMIT 1), (SELECT f.id FROM public.subscription_plans AS f WHERE f.plan_slug = 'free'))
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
