-- 001: the host application's tables.
-- The seed assumes `users` and `api_keys` already exist. On a fresh database we create them; where
-- the host application already has them (with whatever other columns), IF NOT EXISTS leaves them
-- exactly as they are. Setup then only requires what our foreign keys need: users.id uuid primary key.

CREATE TABLE IF NOT EXISTS public.users (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  email VARCHAR(255) UNIQUE NOT NULL,
  figma_user_id VARCHAR(255) UNIQUE,
  name VARCHAR(255),
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS public.api_keys (
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

-- Every foreign key column has an index: deleting a user must not scan api_keys.
CREATE INDEX IF NOT EXISTS idx_api_keys_user_id ON public.api_keys (user_id);
