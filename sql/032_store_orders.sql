-- 032: Lemon Squeezy's money (issue 28). Its License API (activate / validate) carries no price;
-- its webhooks do: order_created and order_refunded send an Order object (total, currency,
-- status, refunded, refunded_amount, first_order_item, created_at, updated_at),
-- subscription_created and subscription_updated a Subscription object (order_id, product_id,
-- variant_id, status, first_subscription_item.quantity, updated_at), subscription_payment_success
-- a Subscription invoice object (subscription_id, billing_reason, status, total, currency,
-- created_at, updated_at). None of them carries the renewal interval (the Price object's
-- renewal_interval_unit / renewal_interval_quantity and the Variant's interval / interval_count
-- are only in the store's API, behind an API key): the operator sets it on the variant's plan link
-- (3. below), as the Figma link carries the price Figma never reports.
--
-- 1. store_orders: one row per order (provider, order_id): what the buyer paid (total, tax
--    included, in the currency's minor units), the currency as the store spells it, the order's
--    status, how much was refunded, and when it was placed. Never a name, an email, a key nor a
--    body. state_at is the store's updated_at of the last event applied: an older delivery
--    changes nothing (out-of-order safe). A license refers to its order by licenses.order_id; an
--    order may be recorded before or after its key is activated.
-- 2. store_subscriptions: one row per subscription (provider, subscription_id): its order (NULL
--    until the Subscription object is seen; an invoice can arrive first), product and variant,
--    status, seats (first_subscription_item.quantity), and the recurring amount: the total of the
--    latest paid invoice billed for a period (billing_reason initial or renewal; an "updated"
--    invoice is a proration, not the price). state_at orders Subscription objects, invoice_at
--    the invoices (by their created_at).
-- 3. license_products: price_interval / price_interval_count, the renewal interval of a
--    subscription variant (Lemon Squeezy's variant interval and interval_count), set with
--    plans.linkLicense(…, { interval, intervalCount }). NULL: not a subscription, or not set.
--
-- State only (docs/schema.md). Written to run under `SET LOCAL search_path = pg_catalog, pg_temp`;
-- every name is schema-qualified.
-- SQLSTATEs PA150-PA159:
--   PA150 invalid_store_order: an order, subscription or invoice with an id, amount, currency,
--         status or time out of range (nothing written).

CREATE TABLE IF NOT EXISTS public.store_orders (
  provider VARCHAR(16) NOT NULL,
  order_id VARCHAR(128) NOT NULL,
  product_id VARCHAR(128),
  variant_id VARCHAR(128),
  status VARCHAR(16) NOT NULL,
  total_minor BIGINT NOT NULL,
  refunded_minor BIGINT NOT NULL DEFAULT 0,
  currency CHAR(3) NOT NULL,
  refunded BOOLEAN NOT NULL DEFAULT false,
  ordered_at TIMESTAMP WITH TIME ZONE NOT NULL,
  state_at TIMESTAMP WITH TIME ZONE NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT pg_catalog.now(),
  updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT pg_catalog.now(),
  CONSTRAINT store_orders_pkey PRIMARY KEY (provider, order_id),
  CONSTRAINT store_orders_provider_check CHECK (provider OPERATOR(pg_catalog.=) 'lemonsqueezy'),
  CONSTRAINT store_orders_ids_check CHECK (
    order_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$'
    AND (product_id IS NULL OR product_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$')
    AND (variant_id IS NULL OR variant_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$')),
  CONSTRAINT store_orders_status_check CHECK (
    status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'failed', 'paid', 'refunded', 'partial_refund', 'fraudulent']::VARCHAR[])),
  CONSTRAINT store_orders_amount_check CHECK (
    total_minor OPERATOR(pg_catalog.>=) 0 AND total_minor OPERATOR(pg_catalog.<=) 100000000000
    AND refunded_minor OPERATOR(pg_catalog.>=) 0 AND refunded_minor OPERATOR(pg_catalog.<=) total_minor
    AND currency OPERATOR(pg_catalog.~) '^[A-Za-z]{3}$')
);
COMMENT ON TABLE public.store_orders IS 'store orders (Lemon Squeezy webhooks): amount, currency, status and refunds; never a name, email, key or body';
-- The money page's one-time sales of the last 30 days.
CREATE INDEX IF NOT EXISTS idx_store_orders_ordered_at ON public.store_orders (ordered_at);

CREATE TABLE IF NOT EXISTS public.store_subscriptions (
  provider VARCHAR(16) NOT NULL,
  subscription_id VARCHAR(128) NOT NULL,
  order_id VARCHAR(128),
  product_id VARCHAR(128),
  variant_id VARCHAR(128),
  status VARCHAR(16),
  quantity INTEGER,
  recurring_minor BIGINT,
  currency CHAR(3),
  state_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT '-infinity',
  invoice_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT '-infinity',
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT pg_catalog.now(),
  updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT pg_catalog.now(),
  CONSTRAINT store_subscriptions_pkey PRIMARY KEY (provider, subscription_id),
  CONSTRAINT store_subscriptions_provider_check CHECK (provider OPERATOR(pg_catalog.=) 'lemonsqueezy'),
  CONSTRAINT store_subscriptions_ids_check CHECK (
    subscription_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$'
    AND (order_id IS NULL OR order_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$')
    AND (product_id IS NULL OR product_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$')
    AND (variant_id IS NULL OR variant_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_=+/.:-]{1,128}$')),
  CONSTRAINT store_subscriptions_status_check CHECK (
    status IS NULL OR status OPERATOR(pg_catalog.=) ANY (ARRAY['on_trial', 'active', 'paused', 'past_due', 'unpaid', 'cancelled', 'expired']::VARCHAR[])),
  CONSTRAINT store_subscriptions_amount_check CHECK (
    (quantity IS NULL OR quantity OPERATOR(pg_catalog.>=) 0 AND quantity OPERATOR(pg_catalog.<=) 100000)
    AND (recurring_minor IS NULL) OPERATOR(pg_catalog.=) (currency IS NULL)
    AND (recurring_minor IS NULL OR recurring_minor OPERATOR(pg_catalog.>=) 0 AND recurring_minor OPERATOR(pg_catalog.<=) 100000000000)
    AND (currency IS NULL OR currency OPERATOR(pg_catalog.~) '^[A-Za-z]{3}$'))
);
COMMENT ON TABLE public.store_subscriptions IS 'store subscriptions (Lemon Squeezy webhooks): order, status, seats and the recurring amount of the latest paid period invoice';
-- A license finds its subscription by its order.
CREATE INDEX IF NOT EXISTS idx_store_subscriptions_order_id ON public.store_subscriptions (provider, order_id);

ALTER TABLE public.license_products ADD COLUMN IF NOT EXISTS price_interval VARCHAR(16)
  CONSTRAINT license_products_price_interval_check CHECK (price_interval IN ('day', 'week', 'month', 'year'));
ALTER TABLE public.license_products ADD COLUMN IF NOT EXISTS price_interval_count INTEGER
  CONSTRAINT license_products_price_interval_count_check CHECK (
    price_interval_count OPERATOR(pg_catalog.>=) 1 AND price_interval_count OPERATOR(pg_catalog.<=) 365
    AND (price_interval IS NULL) OPERATOR(pg_catalog.=) (price_interval_count IS NULL));

-- link_license_plan takes the variant's renewal interval (sql/functions/licenses.sql): the old
-- signature goes.
DROP FUNCTION IF EXISTS public.link_license_plan(character varying, character varying, character varying, character varying, integer, integer);
