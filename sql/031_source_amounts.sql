-- 031: money from every source at the price the source reports (issue 28).
--
-- Amounts are integers in the currency's minor unit (cents for usd/eur, yen for jpy: as the
-- source reports them), with the ISO 4217 code as the source spells it (Stripe lower-case "usd",
-- Lemon Squeezy and Gumroad upper-case "USD"; the console groups by the upper-cased code and never
-- adds two currencies together). All nullable: a row recorded before this file, or by a source
-- that did not say, has no amount, and the console counts it as paying with an unknown amount.
--
-- 1. user_subscriptions (Stripe): the subscription item's price (price.unit_amount,
--    price.currency, price.recurring.interval and interval_count). The seat count is the
--    existing quantity column.
-- 2. licenses (Lemon Squeezy, Gumroad): what the buyer paid for the order (Lemon Squeezy's order
--    total; Gumroad's purchase.price) and its currency; price_interval is the billing period when
--    the purchase is a subscription (Gumroad's purchase.recurrence, Lemon Squeezy's subscription
--    variant), NULL for a one-time sale.
--    Gumroad's recurrence monthly / quarterly / biannually / yearly / every_two_years is stored as
--    month / quarter / half_year / year / two_years.
-- 3. figma_plan_links (Figma checkout): Figma's plugin payments API reports a payment status and a
--    purchase date, never a price. The operator sets the price a linked status is sold at here
--    (what the plugin's Figma listing charges); NULL means not set.
--
-- State only (docs/schema.md). Written to run under `SET LOCAL search_path = pg_catalog, pg_temp`;
-- every name is schema-qualified.

ALTER TABLE public.user_subscriptions ADD COLUMN IF NOT EXISTS unit_amount BIGINT
  CONSTRAINT user_subscriptions_unit_amount_check CHECK (
    unit_amount OPERATOR(pg_catalog.>=) 0 AND unit_amount OPERATOR(pg_catalog.<=) 100000000000);
ALTER TABLE public.user_subscriptions ADD COLUMN IF NOT EXISTS price_interval VARCHAR(16)
  CONSTRAINT user_subscriptions_price_interval_check CHECK (
    price_interval IN ('day', 'week', 'month', 'year'));
ALTER TABLE public.user_subscriptions ADD COLUMN IF NOT EXISTS price_interval_count INTEGER
  CONSTRAINT user_subscriptions_price_interval_count_check CHECK (
    price_interval_count OPERATOR(pg_catalog.>=) 1 AND price_interval_count OPERATOR(pg_catalog.<=) 365);
ALTER TABLE public.user_subscriptions ADD COLUMN IF NOT EXISTS currency CHAR(3)
  CONSTRAINT user_subscriptions_amount_check CHECK (
    currency OPERATOR(pg_catalog.~) '^[A-Za-z]{3}$'
    AND (unit_amount IS NULL) OPERATOR(pg_catalog.=) (currency IS NULL)
    AND (unit_amount IS NULL) OPERATOR(pg_catalog.=) (price_interval IS NULL)
    AND (price_interval IS NULL) OPERATOR(pg_catalog.=) (price_interval_count IS NULL));

ALTER TABLE public.licenses ADD COLUMN IF NOT EXISTS price_minor BIGINT
  CONSTRAINT licenses_price_minor_check CHECK (
    price_minor OPERATOR(pg_catalog.>=) 0 AND price_minor OPERATOR(pg_catalog.<=) 100000000000);
ALTER TABLE public.licenses ADD COLUMN IF NOT EXISTS price_interval VARCHAR(16)
  CONSTRAINT licenses_price_interval_check CHECK (
    price_interval IN ('month', 'quarter', 'half_year', 'year', 'two_years'));
ALTER TABLE public.licenses ADD COLUMN IF NOT EXISTS currency CHAR(3)
  CONSTRAINT licenses_amount_check CHECK (
    currency OPERATOR(pg_catalog.~) '^[A-Za-z]{3}$'
    AND (price_minor IS NULL) OPERATOR(pg_catalog.=) (currency IS NULL)
    AND (price_interval IS NULL OR price_minor IS NOT NULL));

ALTER TABLE public.figma_plan_links ADD COLUMN IF NOT EXISTS price_minor BIGINT
  CONSTRAINT figma_plan_links_price_minor_check CHECK (
    price_minor OPERATOR(pg_catalog.>=) 0 AND price_minor OPERATOR(pg_catalog.<=) 100000000000);
ALTER TABLE public.figma_plan_links ADD COLUMN IF NOT EXISTS price_interval VARCHAR(16)
  CONSTRAINT figma_plan_links_price_interval_check CHECK (
    price_interval IN ('month', 'year'));
ALTER TABLE public.figma_plan_links ADD COLUMN IF NOT EXISTS currency CHAR(3)
  CONSTRAINT figma_plan_links_amount_check CHECK (
    currency OPERATOR(pg_catalog.~) '^[A-Za-z]{3}$'
    AND (price_minor IS NULL) OPERATOR(pg_catalog.=) (currency IS NULL)
    AND (price_interval IS NULL OR price_minor IS NOT NULL));

-- license_record_activation takes the store's price (sql/functions/licenses.sql): the old
-- signature goes.
DROP FUNCTION IF EXISTS public.license_record_activation(character varying, text, character varying, uuid, uuid,
  character varying, character varying, character varying, character varying, character varying, character varying,
  integer, integer, timestamp with time zone, character varying);
-- link_figma_plan takes the price the operator sells a Figma status at (sql/functions/figma.sql).
DROP FUNCTION IF EXISTS public.link_figma_plan(character varying, character varying, integer);
