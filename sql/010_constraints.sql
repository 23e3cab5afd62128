-- 010: constraints that keep bad data out at the database level, whoever writes: our functions,
-- an rpc caller, a hand-written UPDATE, an admin tool. The functions already refuse bad arguments
-- with a stable code; these CHECKs are the backstop underneath them (a violation is SQLSTATE 23514,
-- which the TypeScript layer reports as ValidationError `check_violation`, naming the constraint).
--
-- Host tables (users, api_keys) get none: they may be the application's own, with its own data.
--
-- Added guarded by name (pg_constraint), so a re-run changes nothing and takes no lock.
-- Why plain ADD CONSTRAINT (validating at once) and not NOT VALID + VALIDATE: setup applies every
-- file inside one transaction (src/migrations.ts), so the ACCESS EXCLUSIVE lock taken by ADD would
-- be held until COMMIT anyway and VALIDATE's weaker lock would buy nothing. On a fresh install the
-- tables are empty; on an upgrade each table is scanned once. An operator with a very large
-- plugin_usage can create any of these constraints beforehand, by the same name, with NOT VALID and
-- then VALIDATE CONSTRAINT outside setup (writes keep flowing): the guard then leaves them alone.
--
-- Hot path: consume_usage inserts a plugin_usage row and upserts a daily_usage_summary row on every
-- call, so the CHECKs on those two tables are integer comparisons, a short IN list, jsonb_typeof
-- and pg_column_size (the datum's size, no serialization); no regular expression. The action's
-- character set stays the functions' job (consume_usage, increment_daily_usage).
-- Elsewhere (plans, tokens, login requests, subscriptions: written rarely) text checks use regular
-- expressions: [[:cntrl:]] keeps control characters (newlines, escapes, DEL) out of names that end up
-- in logs, dashboards and terminals.
DO $$
DECLARE
  v_check RECORD;
BEGIN
  FOR v_check IN
    SELECT * FROM (VALUES
      -- subscription_plans (limits: subscription_plans_limits_check in 002)
      ('public.subscription_plans', 'subscription_plans_name_check',
       $c$pg_catalog.length(pg_catalog.btrim(name)) >= 1 AND name !~ '[[:cntrl:]]'$c$),
      ('public.subscription_plans', 'subscription_plans_description_check',
       $c$pg_catalog.length(description) <= 2000$c$),
      -- At most 50 features, each 1 to 200 characters without control characters, no NULL element.
      -- No subquery is allowed in a CHECK: the elements are joined with \x01 (a control character,
      -- so never inside an element), and no part may be empty or longer than 200.
      ('public.subscription_plans', 'subscription_plans_features_check',
       $c$pg_catalog.cardinality(features) = 0
          OR (pg_catalog.cardinality(features) <= 50
              AND pg_catalog.array_position(features, NULL) IS NULL
              AND pg_catalog.array_to_string(features, E'\x01') !~ '[\x02-\x1f\x7f]'
              AND pg_catalog.array_to_string(features, E'\x01') !~ '(^|\x01)(\x01|$)'
              AND pg_catalog.array_to_string(features, E'\x01') !~ '[^\x01]{201}')$c$),
      ('public.subscription_plans', 'subscription_plans_stripe_product_id_check',
       $c$stripe_product_id ~ '^\S{1,255}$'$c$),
      ('public.subscription_plans', 'subscription_plans_stripe_price_id_check',
       $c$stripe_price_id ~ '^\S{1,255}$'$c$),
      -- plugin_tokens
      ('public.plugin_tokens', 'plugin_tokens_device_name_check',
       $c$device_name !~ '[[:cntrl:]]'$c$),
      ('public.plugin_tokens', 'plugin_tokens_revoked_reason_check',
       $c$revoked_reason IS NULL OR (revoked_at IS NOT NULL AND revoked_reason !~ '[[:cntrl:]]')$c$),
      -- plugin_login_requests
      ('public.plugin_login_requests', 'plugin_login_requests_device_name_check',
       $c$device_name !~ '[[:cntrl:]]'$c$),
      -- plugin_usage (hot path: see above). items <= 10000 and metadata an object are what
      -- consume_usage admits; 128 kB of jsonb is far above what its 16 kB text limit can produce
      -- (measured: 16 kB of nested arrays, the most contrived case, is 96 kB as jsonb).
      ('public.plugin_usage', 'plugin_usage_items_max_check', $c$items <= 10000$c$),
      ('public.plugin_usage', 'plugin_usage_reason_check',
       $c$reason IN ('ok', 'limit_reached', 'batch_too_large') AND allowed = (reason = 'ok')$c$),
      ('public.plugin_usage', 'plugin_usage_counts_check',
       $c$used >= 0 AND usage_limit >= 0 AND batch_limit >= 1$c$),
      ('public.plugin_usage', 'plugin_usage_idempotency_key_check',
       $c$pg_catalog.length(idempotency_key) >= 1$c$),
      ('public.plugin_usage', 'plugin_usage_metadata_check',
       $c$pg_catalog.jsonb_typeof(metadata) = 'object' AND pg_catalog.pg_column_size(metadata) <= 131072$c$),
      -- user_subscriptions (status: user_subscriptions_status_check in 002)
      ('public.user_subscriptions', 'user_subscriptions_stripe_customer_id_check',
       $c$stripe_customer_id ~ '^\S{1,255}$'$c$),
      ('public.user_subscriptions', 'user_subscriptions_stripe_subscription_id_check',
       $c$stripe_subscription_id ~ '^\S{1,255}$'$c$),
      ('public.user_subscriptions', 'user_subscriptions_stripe_price_id_check',
       $c$stripe_price_id ~ '^\S{1,255}$'$c$)
    ) AS c (table_name, constraint_name, expression)
  LOOP
    -- A CHECK whose expression is NULL passes: every expression above is about non-null values, and
    -- NOT NULL stays the columns' own business.
    IF NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_constraint k
       WHERE k.conrelid = v_check.table_name::regclass AND k.conname = v_check.constraint_name
    ) THEN
      EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%s)',
                                v_check.table_name::regclass, v_check.constraint_name, v_check.expression);
    END IF;
  END LOOP;
END
$$;
