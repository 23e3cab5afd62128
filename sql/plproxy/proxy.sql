-- sql/plproxy/proxy.sql: the proxy database of a layout sharded by user with PL/Proxy.
--
-- The application opens this database as it would a single one. Every function the library's hot
-- paths call has here its exact name and signature and runs on the partition that owns the user:
-- partition = hashtext(user_id::text) & (N - 1), N a power of two (PL/Proxy's rule). Each remote
-- call is its own transaction on one partition (PL/Proxy autocommits it): everything a call
-- touches is one user's, so the library's exactness rules (one statement, one transaction, the
-- user's advisory locks) hold unchanged on that partition.
--
-- What is global lives in the directory (schema directory): users by email, plugin tokens by
-- token id (verify carries no user id), Stripe customers and subscriptions (a webhook carries no
-- user id unless metadata.user_id is set), Figma user ids, license-key digests, login requests.
-- What spans users (seats across partitions, logins, the dashboard's aggregates) is named below
-- and either solved (the 30-day report) or refused with not_partitioned (PA090).
CREATE EXTENSION IF NOT EXISTS plproxy;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_data_wrapper WHERE fdwname = 'plproxy') THEN
    CREATE FOREIGN DATA WRAPPER plproxy VALIDATOR plproxy_fdw_validator;
  END IF;
END $$;

CREATE SCHEMA IF NOT EXISTS directory;
CREATE SCHEMA IF NOT EXISTS shard;

CREATE TABLE IF NOT EXISTS directory.users (
  id UUID PRIMARY KEY,
  email VARCHAR(255) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS directory_users_email ON directory.users (lower(email));
CREATE TABLE IF NOT EXISTS directory.tokens (
  token_id UUID PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES directory.users (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS directory.stripe_customers (
  customer_id VARCHAR(255) PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES directory.users (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS directory.stripe_subscriptions (
  subscription_id VARCHAR(255) PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES directory.users (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS directory.figma_users (
  figma_user_id VARCHAR(255) PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES directory.users (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS directory.license_keys (
  key_digest TEXT PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES directory.users (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS directory.login_requests (
  read_key_hash TEXT PRIMARY KEY,
  write_key_hash TEXT NOT NULL UNIQUE,
  user_id UUID REFERENCES directory.users (id) ON DELETE CASCADE,
  expires_at TIMESTAMPTZ NOT NULL
);

-- The cluster, as SQL/MED: a plproxy foreign server whose options p0..pN are the partitions'
-- connection strings, in order. Replaces an earlier definition of the same cluster.
CREATE OR REPLACE FUNCTION directory.configure_partitions(p_cluster text, p_partitions text[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
  n integer := pg_catalog.cardinality(p_partitions);
  v_options text;
BEGIN
  IF n < 1 OR (n & (n - 1)) <> 0 THEN
    RAISE EXCEPTION 'PL/Proxy needs a power-of-two number of partitions (got %)', n;
  END IF;
  SELECT pg_catalog.string_agg(pg_catalog.format('p%s %L', i - 1, p_partitions[i]), ', ' ORDER BY i)
    INTO v_options FROM pg_catalog.generate_subscripts(p_partitions, 1) i;
  EXECUTE pg_catalog.format('DROP SERVER IF EXISTS %I CASCADE', p_cluster);
  EXECUTE pg_catalog.format('CREATE SERVER %I FOREIGN DATA WRAPPER plproxy OPTIONS (connection_lifetime %L, %s)', p_cluster, '1800', v_options);
  EXECUTE pg_catalog.format('CREATE USER MAPPING FOR PUBLIC SERVER %I', p_cluster);
  RETURN n;
END $$;

-- The hash PL/Proxy maps to a partition (hash & (N - 1)); the partition of a user is a function
-- of the user id alone.
CREATE OR REPLACE FUNCTION directory.user_hash(p_user_id uuid)
RETURNS integer LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT pg_catalog.hashtext(p_user_id::text) $$;

-- A token's user, from the directory; an unknown token goes to partition 0, which answers 'invalid'.
CREATE OR REPLACE FUNCTION directory.token_hash(p_token_id uuid)
RETURNS integer LANGUAGE sql STABLE
AS $$
  SELECT COALESCE((SELECT directory.user_hash(t.user_id) FROM directory.tokens t WHERE t.token_id = p_token_id), 0)
$$;

-- ---- users: created through the directory, placed on their partition ----
CREATE OR REPLACE FUNCTION shard.create_user(p_id uuid, p_email varchar, p_name varchar)
RETURNS uuid LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_id);
  TARGET public.shard_create_user;
$$;

CREATE OR REPLACE FUNCTION directory.create_user(p_email varchar, p_name varchar DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
  v_id uuid := gen_random_uuid();
BEGIN
  -- The directory row first: a taken email fails here (unique_violation) before any partition is
  -- written. If the partition's insert then fails, this transaction rolls the directory row back.
  INSERT INTO directory.users (id, email) VALUES (v_id, p_email);
  PERFORM shard.create_user(v_id, p_email, p_name);
  RETURN v_id;
END $$;

-- ---- usage: consume, check, refund, summary ----
CREATE OR REPLACE FUNCTION public.consume_usage(p_user_id uuid, p_action character varying, p_items integer DEFAULT 1,
                                                p_idempotency_key text DEFAULT NULL::text, p_metadata jsonb DEFAULT NULL::jsonb)
RETURNS TABLE(allowed boolean, reason text, plan_slug text, used integer, usage_limit integer, remaining integer,
              batch_limit integer, resets_at timestamp with time zone, replayed boolean)
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_user_id);
$$;

CREATE OR REPLACE FUNCTION public.check_usage(p_user_id uuid, p_action character varying, p_items integer DEFAULT 1)
RETURNS TABLE(allowed boolean, reason text, plan_slug text, used integer, usage_limit integer, remaining integer,
              batch_limit integer, resets_at timestamp with time zone, replayed boolean)
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_user_id);
$$;

CREATE OR REPLACE FUNCTION public.refund_usage(p_user_id uuid, p_idempotency_key text)
RETURNS boolean
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_user_id);
$$;

CREATE OR REPLACE FUNCTION public.usage_summary(p_user_id uuid, p_from date DEFAULT NULL::date, p_to date DEFAULT NULL::date)
RETURNS TABLE(usage_date date, action character varying, used integer, allowed integer, denied integer, refunded integer)
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_user_id);
$$;

CREATE OR REPLACE FUNCTION public.assign_plan(p_user_id uuid, p_plan_slug character varying, p_until timestamp with time zone DEFAULT NULL::timestamp with time zone)
RETURNS TABLE(user_id uuid, plan_slug character varying, status character varying, current_period_end timestamp with time zone)
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_user_id);
$$;

-- ---- plugin tokens: issued with the user id, verified and revoked by token id (the directory) ----
CREATE OR REPLACE FUNCTION shard.issue_plugin_token(p_token_id uuid, p_user_id uuid, p_token_hash text, p_device_name character varying,
                                                    p_expires_at timestamp with time zone, p_max_active integer, p_device_id uuid)
RETURNS uuid LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_user_id);
  TARGET public.issue_plugin_token;
$$;

CREATE OR REPLACE FUNCTION public.issue_plugin_token(p_token_id uuid, p_user_id uuid, p_token_hash text, p_device_name character varying,
                                                     p_expires_at timestamp with time zone, p_max_active integer DEFAULT NULL::integer,
                                                     p_device_id uuid DEFAULT NULL::uuid)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
  v_result uuid; -- the session's device id (the partition keeps one of the user's, or mints one)
BEGIN
  -- The partition first: it raises unknown_user (PA001) and the input errors as the library does.
  -- Should this transaction then fail, the token exists on the partition without a directory row:
  -- verify answers 'invalid' for it (the user signs in again); nothing is granted.
  v_result := shard.issue_plugin_token(p_token_id, p_user_id, p_token_hash, p_device_name, p_expires_at, p_max_active, p_device_id);
  INSERT INTO directory.tokens (token_id, user_id) VALUES (p_token_id, p_user_id) ON CONFLICT (token_id) DO NOTHING;
  RETURN v_result;
END $$;

CREATE OR REPLACE FUNCTION public.verify_plugin_token(p_token_id uuid, p_token_hash text)
RETURNS TABLE(status text, user_id uuid, expires_at timestamp with time zone, device_name character varying)
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.token_hash(p_token_id);
$$;

-- What tokens.verify calls: the session with its device id, routed like verify_plugin_token.
CREATE OR REPLACE FUNCTION public.verify_plugin_session(p_token_id uuid, p_token_hash text)
RETURNS TABLE(status text, user_id uuid, expires_at timestamp with time zone, device_name character varying, device_id uuid)
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.token_hash(p_token_id);
$$;

CREATE OR REPLACE FUNCTION public.revoke_plugin_token(p_token_id uuid, p_reason character varying DEFAULT NULL::character varying)
RETURNS boolean
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.token_hash(p_token_id);
$$;

CREATE OR REPLACE FUNCTION public.revoke_all_plugin_tokens(p_user_id uuid, p_reason character varying DEFAULT 'revoke_all'::character varying)
RETURNS integer
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_user_id);
$$;

CREATE OR REPLACE FUNCTION public.list_plugin_tokens(p_user_id uuid)
RETURNS TABLE(id uuid, device_name character varying, created_at timestamp with time zone, expires_at timestamp with time zone,
              last_used_at timestamp with time zone, revoked_at timestamp with time zone, revoked_reason character varying, status text)
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_user_id);
$$;

-- ---- Stripe webhooks: the user from the directory (subscription, customer, metadata.user_id) ----
CREATE OR REPLACE FUNCTION shard.sync_stripe_subscription(p_user_id uuid, p_subscription jsonb, p_event_created timestamp with time zone)
RETURNS TABLE(applied boolean, reason text, user_id uuid, plan_slug character varying, status character varying)
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_user_id);
  SELECT s.applied, s.reason, s.user_id, s.plan_slug, s.status FROM public.sync_stripe_subscription(p_subscription, p_event_created) s;
$$;

CREATE OR REPLACE FUNCTION public.sync_stripe_subscription(p_subscription jsonb, p_event_created timestamp with time zone)
RETURNS TABLE(applied boolean, reason text, user_id uuid, plan_slug character varying, status character varying)
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
  v_user uuid;
  v_id text;
  v_customer text;
  v_metadata_user text;
BEGIN
  IF pg_catalog.jsonb_typeof(p_subscription) = 'object' THEN
    v_id := CASE WHEN pg_catalog.jsonb_typeof(p_subscription -> 'id') = 'string' THEN p_subscription ->> 'id' END;
    v_customer := CASE pg_catalog.jsonb_typeof(p_subscription -> 'customer')
                    WHEN 'string' THEN p_subscription ->> 'customer'
                    WHEN 'object' THEN p_subscription -> 'customer' ->> 'id' END;
    SELECT s.user_id INTO v_user FROM directory.stripe_subscriptions s WHERE s.subscription_id = v_id;
    IF v_user IS NULL THEN
      SELECT c.user_id INTO v_user FROM directory.stripe_customers c WHERE c.customer_id = v_customer;
    END IF;
    IF v_user IS NULL AND pg_catalog.jsonb_typeof(p_subscription -> 'metadata' -> 'user_id') = 'string' THEN
      v_metadata_user := p_subscription -> 'metadata' ->> 'user_id';
      IF v_metadata_user ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        SELECT u.id INTO v_user FROM directory.users u WHERE u.id = v_metadata_user::uuid;
      END IF;
    END IF;
  END IF;
  IF v_user IS NULL THEN
    -- Malformed input goes to any partition, which raises the library's own input error.
    IF pg_catalog.jsonb_typeof(p_subscription) IS DISTINCT FROM 'object' OR v_id IS NULL OR v_customer IS NULL THEN
      RETURN QUERY SELECT * FROM shard.sync_stripe_subscription('00000000-0000-0000-0000-000000000000'::uuid, p_subscription, p_event_created);
      RETURN;
    END IF;
    RAISE EXCEPTION 'unknown_customer: Stripe customer % is not linked to a user; set metadata.user_id (an existing users.id) on the subscription', v_customer
      USING ERRCODE = 'PA032';
  END IF;
  RETURN QUERY SELECT * FROM shard.sync_stripe_subscription(v_user, p_subscription, p_event_created);
  INSERT INTO directory.stripe_customers (customer_id, user_id) VALUES (v_customer, v_user) ON CONFLICT (customer_id) DO NOTHING;
  INSERT INTO directory.stripe_subscriptions (subscription_id, user_id) VALUES (v_id, v_user) ON CONFLICT (subscription_id) DO NOTHING;
END $$;

-- ---- across partitions ----
-- The 30-day report: every partition's report (its own rollup), summed by day and action.
CREATE OR REPLACE FUNCTION shard.usage_report_all(p_days integer)
RETURNS TABLE(usage_date date, action character varying, allowed bigint, denied bigint)
LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON ALL;
  SELECT r.usage_date, r.action, r.allowed, r.denied FROM public.usage_report(p_days) r;
$$;

CREATE OR REPLACE FUNCTION public.usage_report(p_days integer DEFAULT 30)
RETURNS TABLE(usage_date date, action character varying, allowed bigint, denied bigint)
LANGUAGE sql
SET search_path = pg_catalog
AS $$
  SELECT r.usage_date, r.action, sum(r.allowed)::bigint, sum(r.denied)::bigint
    FROM shard.usage_report_all(p_days) r
   GROUP BY r.usage_date, r.action
   ORDER BY r.usage_date, r.action
$$;

-- Seats: an owner's license and its members' rows must be on one partition. Owner and member on
-- the same partition: routed there; on different partitions: refused (a seat would need a
-- transaction across two partitions, which PL/Proxy does not have).
CREATE OR REPLACE FUNCTION shard.seat_assign(p_owner_id uuid, p_member_id uuid, OUT license_id uuid, OUT seats_used integer, OUT seats integer)
RETURNS record LANGUAGE plproxy AS $$
  CLUSTER 'fpa_partitions';
  RUN ON directory.user_hash(p_owner_id);
  TARGET public.seat_assign;
$$;

CREATE OR REPLACE FUNCTION public.seat_assign(p_owner_id uuid, p_member_id uuid, OUT license_id uuid, OUT seats_used integer, OUT seats integer)
RETURNS record
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
  n integer := (SELECT pg_catalog.count(*)::integer FROM pg_catalog.pg_foreign_server s JOIN pg_catalog.pg_options_to_table(s.srvoptions) o ON o.option_name ~ '^p[0-9]+$' WHERE s.srvname = 'fpa_partitions');
BEGIN
  IF (directory.user_hash(p_owner_id) & (n - 1)) <> (directory.user_hash(p_member_id) & (n - 1)) THEN
    RAISE EXCEPTION 'not_partitioned: seat_assign across partitions (the owner and the member are on different partitions); seats need both users on one partition'
      USING ERRCODE = 'PA090';
  END IF;
  SELECT s.license_id, s.seats_used, s.seats INTO license_id, seats_used, seats FROM shard.seat_assign(p_owner_id, p_member_id) s;
END $$;

-- Refused: sign-in by login request (the request is global and its claim issues a token on the
-- user's partition: to be built on directory.login_requests), and what scans every user
-- (retention, the rollup, the dashboard's queries, which read tables: run them on each partition).
CREATE OR REPLACE FUNCTION directory.refuse(p_what text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'not_partitioned: % is not available through the PL/Proxy proxy; see docs/scale.md', p_what USING ERRCODE = 'PA090';
END $$;

CREATE OR REPLACE FUNCTION public.begin_plugin_login(p_read_key_hash text, p_write_key_hash text, p_ttl_seconds integer DEFAULT 600,
                                                     p_device_name character varying DEFAULT NULL::character varying,
                                                     p_device_id uuid DEFAULT NULL::uuid)
RETURNS timestamp with time zone LANGUAGE plpgsql AS $$ BEGIN PERFORM directory.refuse('begin_plugin_login'); RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION public.poll_plugin_login(p_read_key_hash text)
RETURNS TABLE(status text, user_id uuid, device_name character varying) LANGUAGE plpgsql AS $$ BEGIN PERFORM directory.refuse('poll_plugin_login'); END $$;
CREATE OR REPLACE FUNCTION public.complete_plugin_login(p_write_key_hash text, p_user_id uuid)
RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM directory.refuse('complete_plugin_login'); END $$;
CREATE OR REPLACE FUNCTION public.claim_plugin_login(p_read_key_hash text, p_user_id uuid, p_token_id uuid, p_token_hash text,
                                                     p_expires_at timestamp with time zone, p_max_active integer DEFAULT NULL::integer)
RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM directory.refuse('claim_plugin_login'); END $$;
CREATE OR REPLACE FUNCTION public.purge_usage_batch(p_older_than timestamp with time zone, p_batch_size integer DEFAULT 1000,
                                                    p_after timestamp with time zone DEFAULT NULL::timestamp with time zone)
RETURNS TABLE(deleted integer, last_created_at timestamp with time zone) LANGUAGE plpgsql AS $$ BEGIN PERFORM directory.refuse('purge_usage_batch (retention: run it on each partition)'); END $$;
CREATE OR REPLACE FUNCTION public.usage_rollup()
RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN PERFORM directory.refuse('usage_rollup (each partition rolls up its own calls)'); RETURN NULL; END $$;
