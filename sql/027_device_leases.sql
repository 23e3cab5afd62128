-- 027: device leases (issue 27, items 1 to 3). An activation is a lease: a device that does not
-- send a heartbeat within its window stops counting and frees its slot; a floating license gives
-- its N slots to any devices of its owner, a node-locked one to the devices activated on it; an
-- overage allowance lets a few more devices in, flagged in the answer.
--
-- - license_devices.last_seen_at: the device's last heartbeat (activation counts as one); live
--   while it is within the window. leased_at: when its current lease began (activation, or a
--   heartbeat that took a slot again after a lapse), the order in which devices hold their slots,
--   so the devices past the limit (the overage) are the newest ones.
-- - heartbeat_window (seconds, 1 to 30 days), overage_allowance (1.00 to 10.00) and floating,
--   on a product mapping (license_products) and on a plan (subscription_plans): the mapping's value
--   wins, else the plan's; none: no heartbeat (a device counts until deactivated), no overage,
--   node-locked.
--
-- State only (docs/schema.md): the functions are in sql/functions/leases.sql and licenses.sql.
-- Written to run under `SET LOCAL search_path = pg_catalog, pg_temp`; every name is qualified.

ALTER TABLE public.license_devices ADD COLUMN IF NOT EXISTS last_seen_at TIMESTAMP WITH TIME ZONE;
ALTER TABLE public.license_devices ADD COLUMN IF NOT EXISTS leased_at TIMESTAMP WITH TIME ZONE;
UPDATE public.license_devices SET last_seen_at = activated_at WHERE last_seen_at IS NULL;
UPDATE public.license_devices SET leased_at = activated_at WHERE leased_at IS NULL;
ALTER TABLE public.license_devices ALTER COLUMN last_seen_at SET DEFAULT pg_catalog.now();
ALTER TABLE public.license_devices ALTER COLUMN last_seen_at SET NOT NULL;
ALTER TABLE public.license_devices ALTER COLUMN leased_at SET DEFAULT pg_catalog.now();
ALTER TABLE public.license_devices ALTER COLUMN leased_at SET NOT NULL;

ALTER TABLE public.license_products ADD COLUMN IF NOT EXISTS heartbeat_window INTEGER
  CONSTRAINT license_products_heartbeat_window_check CHECK (
    heartbeat_window OPERATOR(pg_catalog.>=) 1 AND heartbeat_window OPERATOR(pg_catalog.<=) 2592000);
ALTER TABLE public.license_products ADD COLUMN IF NOT EXISTS overage_allowance NUMERIC(4,2)
  CONSTRAINT license_products_overage_allowance_check CHECK (
    overage_allowance OPERATOR(pg_catalog.>=) 1 AND overage_allowance OPERATOR(pg_catalog.<=) 10);
ALTER TABLE public.license_products ADD COLUMN IF NOT EXISTS floating BOOLEAN;

ALTER TABLE public.subscription_plans ADD COLUMN IF NOT EXISTS heartbeat_window INTEGER
  CONSTRAINT subscription_plans_heartbeat_window_check CHECK (
    heartbeat_window OPERATOR(pg_catalog.>=) 1 AND heartbeat_window OPERATOR(pg_catalog.<=) 2592000);
ALTER TABLE public.subscription_plans ADD COLUMN IF NOT EXISTS overage_allowance NUMERIC(4,2)
  CONSTRAINT subscription_plans_overage_allowance_check CHECK (
    overage_allowance OPERATOR(pg_catalog.>=) 1 AND overage_allowance OPERATOR(pg_catalog.<=) 10);
ALTER TABLE public.subscription_plans ADD COLUMN IF NOT EXISTS floating BOOLEAN;
