-- 025: what a second probe accepted in the database layer (issue 22, item 3). Four fixes:
--
-- 1. Idempotency keys grant without counting. A key answered its first answer forever, even after
--    the operation was refunded: consume, refund, retry with the key = allowed, never counted. A
--    key now replays only the same operation (action and items), only within the retry window of
--    10 minutes after its first use, and never once refunded; otherwise idempotency_key_reused
--    (PA009). The advisory lock per (user, key) is unchanged: of concurrent calls with one new key
--    exactly one counts and the others replay its answer. (sql/templates/hot-paths.sql: consume_usage)
-- 2. Device limits counted names. A device is now an id the server mints with a plugin session
--    (plugin_tokens.device_id), kept across sign-ins only when the plugin sends back an id that a
--    token of the same user carries; the name stays for display. License activations count
--    device ids (license_devices.device_id); an id that no session of the user carries is
--    unknown_device (PA100). verify_plugin_session returns the device id; verify_plugin_token keeps
--    its answer (without it) for callers of the SQL function.
--    (plugin_tokens, plugin_login_requests, license_devices; sql/functions/login.sql, tokens.sql,
--    licenses.sql: begin_plugin_login, claim_plugin_login, issue_plugin_token, verify_plugin_session,
--    verify_plugin_token, license_begin_activation, license_record_activation, license_remove_device)
-- 3. Gumroad pings are unsigned, yet were de-duplicated and stored before anything was verified: a
--    ping sent first with the bytes of a coming one made the real one a "duplicate", and pings for
--    unknown keys were stored for ever. Gumroad pings are no longer stored nor de-duplicated (each
--    is re-verified with Gumroad's API, which is idempotent); the stored ones are dropped; stored
--    deliveries (Lemon Squeezy's, signed) are purged by purge_license_webhook_events.
--    (sql/functions/licenses.sql: license_apply_webhook, purge_license_webhook_events)
-- 4. Seat squatting: a seat of a team no longer in force kept its member (seat_taken), so a
--    stranger who seated someone and was refunded blocked them from their employer's team. Such a
--    seat is given up when another team assigns the member. (sql/functions/seats.sql: seat_assign_member)
--
-- State only (docs/schema.md): the new text of every function named above is in its file under
-- sql/functions/ (consume_usage in sql/templates/hot-paths.sql, rendered by `npm run generate`),
-- which setup applies after the numbered files. A changed signature cannot be replaced in place:
-- the old one is dropped here, so the function files create the new one. Written to run under
-- `SET LOCAL search_path = pg_catalog, pg_temp`; every name is schema-qualified.

-------------------------------------------------------------------------------------------------
-- State
-------------------------------------------------------------------------------------------------

-- A device per session, minted by the server. Tokens issued before this file each get their own.
ALTER TABLE public.plugin_tokens ADD COLUMN IF NOT EXISTS device_id UUID;
UPDATE public.plugin_tokens SET device_id = pg_catalog.gen_random_uuid() WHERE device_id IS NULL;
ALTER TABLE public.plugin_tokens ALTER COLUMN device_id SET DEFAULT pg_catalog.gen_random_uuid();
ALTER TABLE public.plugin_tokens ALTER COLUMN device_id SET NOT NULL;
-- "Is this a device of this user?" at sign-in and activation.
CREATE INDEX IF NOT EXISTS idx_plugin_tokens_user_device ON public.plugin_tokens (user_id, device_id);

-- The device id a plugin sends back when it begins a login; checked against the user at claim.
ALTER TABLE public.plugin_login_requests ADD COLUMN IF NOT EXISTS device_id UUID;

-- License devices by id. Existing rows take the device of the owner's newest session of that
-- name (so the plugin that activated keeps its activation), else a device of their own.
ALTER TABLE public.license_devices ADD COLUMN IF NOT EXISTS device_id UUID;
UPDATE public.license_devices AS d
   SET device_id = COALESCE(
     (SELECT t.device_id FROM public.plugin_tokens AS t
        JOIN public.licenses AS k ON k.user_id = t.user_id
       WHERE k.id = d.license_id AND t.device_name = d.device_name
         AND NOT EXISTS (SELECT 1 FROM public.license_devices AS o
                          WHERE o.license_id = d.license_id AND o.device_id = t.device_id)
       ORDER BY t.created_at DESC LIMIT 1),
     pg_catalog.gen_random_uuid())
 WHERE d.device_id IS NULL;
ALTER TABLE public.license_devices ALTER COLUMN device_id SET NOT NULL;
DO $license_devices_key$
BEGIN
  -- The key was (license_id, device_name): one row per name. Now one row per device.
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_constraint AS c
              WHERE c.conrelid OPERATOR(pg_catalog.=) 'public.license_devices'::pg_catalog.regclass
                AND c.conname OPERATOR(pg_catalog.=) 'license_devices_pkey'
                AND pg_catalog.pg_get_constraintdef(c.oid) OPERATOR(pg_catalog.<>) 'PRIMARY KEY (license_id, device_id)') THEN
    ALTER TABLE public.license_devices DROP CONSTRAINT license_devices_pkey;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint AS c
                  WHERE c.conrelid OPERATOR(pg_catalog.=) 'public.license_devices'::pg_catalog.regclass
                    AND c.conname OPERATOR(pg_catalog.=) 'license_devices_pkey') THEN
    ALTER TABLE public.license_devices ADD CONSTRAINT license_devices_pkey PRIMARY KEY (license_id, device_id);
  END IF;
END
$license_devices_key$;

COMMENT ON TABLE public.license_devices IS 'devices a license is activated on (plugin session device ids; names for display)';
COMMENT ON TABLE public.license_webhook_events IS 'applied signed store webhook deliveries (SHA-256 of the body), for de-duplication; never Gumroad pings';

-- Gumroad pings were stored unverified; none is read again.
DELETE FROM public.license_webhook_events WHERE provider = 'gumroad';
-- Retention of the stored (signed) deliveries reads by age.
CREATE INDEX IF NOT EXISTS idx_license_webhook_events_received_at ON public.license_webhook_events (received_at);

-- Retired signatures; the function files define the new ones (begin_plugin_login and
-- issue_plugin_token take p_device_id, the license functions count devices by id).
DROP FUNCTION IF EXISTS public.issue_plugin_token(uuid, uuid, text, character varying, timestamp with time zone, integer);
DROP FUNCTION IF EXISTS public.begin_plugin_login(text, text, integer, character varying);
DROP FUNCTION IF EXISTS public.license_record_activation(character varying, text, character varying, uuid, character varying,
  character varying, character varying, character varying, character varying, character varying, integer, integer,
  timestamp with time zone, character varying);
DROP FUNCTION IF EXISTS public.license_begin_activation(character varying, text, uuid, character varying);
DROP FUNCTION IF EXISTS public.license_remove_device(character varying, text, uuid, character varying);
