-- sql/plproxy/partition.sql: on each partition database, after the library's setup.
-- A user is created through the directory (proxy.sql, directory.create_user), which picks the
-- id and calls this on the one partition that owns it.
CREATE OR REPLACE FUNCTION public.shard_create_user(p_id uuid, p_email varchar, p_name varchar)
RETURNS uuid
LANGUAGE sql
SET search_path = pg_catalog, public
AS $$
  INSERT INTO public.users (id, email, name) VALUES (p_id, p_email, p_name) RETURNING id;
$$;
REVOKE ALL ON FUNCTION public.shard_create_user(uuid, varchar, varchar) FROM PUBLIC;
