-- Lemon Squeezy's money from its webhooks (sql/032): orders, subscriptions, subscription invoices.
-- Called by the library's webhook handler in the transaction that first records the delivery
-- (license_apply_webhook: a delivery seen before is a duplicate and never gets here).
-- The current text of these functions: edit here, then `npm run generate` and setup (docs/schema.md).

CREATE OR REPLACE FUNCTION public.store_check_money(p_provider character varying, p_id character varying, p_amount bigint, p_currency character varying, p_at timestamp with time zone)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
BEGIN
  IF p_provider IS DISTINCT FROM 'lemonsqueezy' OR p_id IS NULL OR p_id !~ '^[A-Za-z0-9_=+/.:-]{1,128}$'
     OR (p_amount IS NULL) <> (p_currency IS NULL)
     OR (p_amount IS NOT NULL AND (p_amount NOT BETWEEN 0 AND 100000000000 OR p_currency !~ '^[A-Za-z]{3}$'))
     OR p_at IS NULL OR p_at > pg_catalog.clock_timestamp() + INTERVAL '5 minutes' THEN
    RAISE EXCEPTION 'invalid_store_order: an order, subscription or invoice needs the store''s id, whole minor units from 0 with a three-letter currency, and a time not in the future'
      USING ERRCODE = 'PA150';
  END IF;
END;
$function$;

-- An Order object (order_created, order_refunded). Returns recorded, or stale (older than the
-- event last applied to this order: nothing changed). A refund is never lifted.
CREATE OR REPLACE FUNCTION public.store_record_order(p_provider character varying, p_order_id character varying, p_product_id character varying, p_variant_id character varying, p_status character varying, p_total_minor bigint, p_refunded_minor bigint, p_currency character varying, p_refunded boolean, p_ordered_at timestamp with time zone, p_event_at timestamp with time zone)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_done BOOLEAN;
BEGIN
  PERFORM public.store_check_money(p_provider, p_order_id, p_total_minor, p_currency, p_event_at);
  IF p_total_minor IS NULL OR p_ordered_at IS NULL OR p_ordered_at > p_event_at + INTERVAL '5 minutes'
     OR p_status IS NULL OR p_status NOT IN ('pending', 'failed', 'paid', 'refunded', 'partial_refund', 'fraudulent')
     OR p_refunded_minor IS NULL OR p_refunded_minor NOT BETWEEN 0 AND p_total_minor
     OR (p_product_id IS NOT NULL AND p_product_id !~ '^[A-Za-z0-9_=+/.:-]{1,128}$')
     OR (p_variant_id IS NOT NULL AND p_variant_id !~ '^[A-Za-z0-9_=+/.:-]{1,128}$') THEN
    RAISE EXCEPTION 'invalid_store_order: an order needs its total, a refunded amount within it, a status of pending, failed, paid, refunded, partial_refund or fraudulent, and created_at'
      USING ERRCODE = 'PA150';
  END IF;
  INSERT INTO public.store_orders AS o (provider, order_id, product_id, variant_id, status, total_minor, refunded_minor, currency,
                                       refunded, ordered_at, state_at)
  VALUES (p_provider, p_order_id, p_product_id, p_variant_id, p_status, p_total_minor, p_refunded_minor, p_currency,
          COALESCE(p_refunded, false) OR p_status = 'refunded', p_ordered_at, p_event_at)
  ON CONFLICT (provider, order_id) DO UPDATE SET
    product_id = COALESCE(EXCLUDED.product_id, o.product_id),
    variant_id = COALESCE(EXCLUDED.variant_id, o.variant_id),
    status = CASE WHEN o.refunded AND EXCLUDED.status <> 'refunded' THEN o.status ELSE EXCLUDED.status END,
    total_minor = EXCLUDED.total_minor,
    refunded_minor = LEAST(GREATEST(o.refunded_minor, EXCLUDED.refunded_minor), EXCLUDED.total_minor),
    currency = EXCLUDED.currency,
    refunded = o.refunded OR EXCLUDED.refunded,
    ordered_at = EXCLUDED.ordered_at,
    state_at = EXCLUDED.state_at,
    updated_at = pg_catalog.now()
  WHERE o.state_at <= EXCLUDED.state_at
  RETURNING true INTO v_done;
  RETURN CASE WHEN v_done THEN 'recorded' ELSE 'stale' END;
END;
$function$;

-- A Subscription object (subscription_created, subscription_updated): its order, variant, status
-- and seats. The recurring amount is the invoices' (store_record_invoice).
CREATE OR REPLACE FUNCTION public.store_record_subscription(p_provider character varying, p_subscription_id character varying, p_order_id character varying, p_product_id character varying, p_variant_id character varying, p_status character varying, p_quantity integer, p_event_at timestamp with time zone)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_done BOOLEAN;
BEGIN
  PERFORM public.store_check_money(p_provider, p_subscription_id, NULL, NULL, p_event_at);
  IF p_status IS NULL OR p_status NOT IN ('on_trial', 'active', 'paused', 'past_due', 'unpaid', 'cancelled', 'expired')
     OR (p_quantity IS NOT NULL AND p_quantity NOT BETWEEN 0 AND 100000)
     OR p_order_id IS NULL OR p_order_id !~ '^[A-Za-z0-9_=+/.:-]{1,128}$'
     OR (p_product_id IS NOT NULL AND p_product_id !~ '^[A-Za-z0-9_=+/.:-]{1,128}$')
     OR (p_variant_id IS NOT NULL AND p_variant_id !~ '^[A-Za-z0-9_=+/.:-]{1,128}$') THEN
    RAISE EXCEPTION 'invalid_store_order: a subscription needs its order_id and a status of on_trial, active, paused, past_due, unpaid, cancelled or expired'
      USING ERRCODE = 'PA150';
  END IF;
  INSERT INTO public.store_subscriptions AS s (provider, subscription_id, order_id, product_id, variant_id, status, quantity, state_at)
  VALUES (p_provider, p_subscription_id, p_order_id, p_product_id, p_variant_id, p_status, p_quantity, p_event_at)
  ON CONFLICT (provider, subscription_id) DO UPDATE SET
    order_id = EXCLUDED.order_id,
    product_id = COALESCE(EXCLUDED.product_id, s.product_id),
    variant_id = COALESCE(EXCLUDED.variant_id, s.variant_id),
    status = EXCLUDED.status,
    quantity = COALESCE(EXCLUDED.quantity, s.quantity),
    state_at = EXCLUDED.state_at,
    updated_at = pg_catalog.now()
  WHERE s.state_at <= EXCLUDED.state_at
  RETURNING true INTO v_done;
  RETURN CASE WHEN v_done THEN 'recorded' ELSE 'stale' END;
END;
$function$;

-- A Subscription invoice object (subscription_payment_success): a paid invoice billed for a
-- period (billing_reason initial or renewal) sets the recurring amount, the newest (by the
-- invoice's created_at) winning. An "updated" invoice is a proration and a pending, void or
-- refunded one was not a payment of the price: ignored. The subscription's row may not exist yet.
CREATE OR REPLACE FUNCTION public.store_record_invoice(p_provider character varying, p_subscription_id character varying, p_billing_reason character varying, p_status character varying, p_total_minor bigint, p_currency character varying, p_invoiced_at timestamp with time zone)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
DECLARE
  v_done BOOLEAN;
BEGIN
  PERFORM public.store_check_money(p_provider, p_subscription_id, p_total_minor, p_currency, p_invoiced_at);
  IF p_total_minor IS NULL OR p_billing_reason IS NULL OR p_billing_reason NOT IN ('initial', 'renewal', 'updated')
     OR p_status IS NULL OR p_status NOT IN ('pending', 'paid', 'void', 'refunded', 'partial_refund') THEN
    RAISE EXCEPTION 'invalid_store_order: an invoice needs its total, a billing_reason of initial, renewal or updated, and a status of pending, paid, void, refunded or partial_refund'
      USING ERRCODE = 'PA150';
  END IF;
  IF p_billing_reason = 'updated' OR p_status <> 'paid' THEN
    RETURN 'ignored';
  END IF;
  INSERT INTO public.store_subscriptions AS s (provider, subscription_id, recurring_minor, currency, invoice_at)
  VALUES (p_provider, p_subscription_id, p_total_minor, p_currency, p_invoiced_at)
  ON CONFLICT (provider, subscription_id) DO UPDATE SET
    recurring_minor = EXCLUDED.recurring_minor,
    currency = EXCLUDED.currency,
    invoice_at = EXCLUDED.invoice_at,
    updated_at = pg_catalog.now()
  WHERE s.invoice_at <= EXCLUDED.invoice_at
  RETURNING true INTO v_done;
  RETURN CASE WHEN v_done THEN 'recorded' ELSE 'stale' END;
END;
$function$;
