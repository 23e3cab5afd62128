-- 001: the host application's tables.
-- The seed assumes `users` and `api_keys` already exist. On a fresh database we create them; where
-- the host application already has them (with whatever other columns), IF NOT EXISTS leaves them
-- exactly as they are. Setup then only requires what our foreign keys need: users.id uuid primary key.
--
-- Corrected file (src/migrations.ts, CORRECTED_FILES): the first text asked `age(xmin) = 0` to tell
-- a table created in this run from the host's own, but creating api_keys' foreign key rewrites
-- users' catalog row in the same transaction, so a host `users` table was locked down too. Whether
-- each table existed is now read before anything is created; the tables and the index are the same.
DO $$
DECLARE
  v_created REGCLASS[] := ARRAY[]::REGCLASS[];
  v_table REGCLASS;
  v_role TEXT;
BEGIN
  IF pg_catalog.to_regclass('public.users') IS NULL THEN
    CREATE TABLE public.users (
      id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
      email VARCHAR(255) UNIQUE NOT NULL,
      figma_user_id VARCHAR(255) UNIQUE,
      name VARCHAR(255),
      created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
      updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
    );
    v_created := v_created || 'public.users'::regclass;
    -- New users per day (the dashboard). Only on a users table created here: a host's own table
    -- is never altered, not even by an index.
    CREATE INDEX IF NOT EXISTS idx_users_created_at ON public.users (created_at);
  END IF;

  IF pg_catalog.to_regclass('public.api_keys') IS NULL THEN
    CREATE TABLE public.api_keys (
      id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
      user_id UUID NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
      name VARCHAR(255) NOT NULL,
      -- SHA-256 digest of the key, hex; the raw key is shown to its owner once and never stored.
      key_hash VARCHAR(128) UNIQUE NOT NULL,
      key_prefix VARCHAR(16) NOT NULL,
      last_used_at TIMESTAMP WITH TIME ZONE,
      expires_at TIMESTAMP WITH TIME ZONE,
      revoked_at TIMESTAMP WITH TIME ZONE,
      created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
    );
    v_created := v_created || 'public.api_keys'::regclass;
    -- Every foreign key column has an index: deleting a user must not scan api_keys.
    CREATE INDEX IF NOT EXISTS idx_api_keys_user_id ON public.api_keys (user_id);
  END IF;

  -- Host tables created just now, never ones the application already had, are locked down like our
  -- own tables (009 explains why): on Supabase a public.users table without RLS would be readable
  -- with the anon key.
  FOREACH v_table IN ARRAY v_created LOOP
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_table);
    EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC', v_table);
    FOR v_role IN SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.rolname IN ('anon', 'authenticated') LOOP
      EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM %I', v_table, v_role);
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'service_role') THEN
      -- Exactly these four (Supabase's default privileges also give TRUNCATE, REFERENCES, TRIGGER).
      EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM service_role', v_table);
      EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO service_role', v_table);
    END IF;
  END LOOP;
END
$$;
