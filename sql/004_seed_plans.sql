-- 004: the four plans. ON CONFLICT (plan_slug) DO NOTHING: a plan an operator has since edited
-- (price, Stripe ids, limits) is never overwritten by a re-run. price_monthly is in cents.
INSERT INTO public.subscription_plans (plan_slug, name, description, price_monthly, limits, features)
VALUES
  ('free', 'Free', 'Try the plugin: two resizes, once.', 0,
   '{"resizesPerDay": 2, "batchSize": 1, "isDaily": false}'::jsonb,
   ARRAY['2 resizes in total', '1 layer per resize']),
  ('basic', 'Basic', 'For occasional use.', 499,
   '{"resizesPerDay": 4, "batchSize": 5, "isDaily": true}'::jsonb,
   ARRAY['4 resizes per day', 'Up to 5 layers per resize', 'Email support']),
  ('pro', 'Pro', 'For daily design work.', 1299,
   '{"resizesPerDay": 6, "batchSize": 20, "isDaily": true}'::jsonb,
   ARRAY['6 resizes per day', 'Up to 20 layers per resize', 'Priority support']),
  ('enterprise', 'Enterprise', 'For teams: no limits.', 4999,
   '{"resizesPerDay": -1, "batchSize": -1, "isDaily": true}'::jsonb,
   ARRAY['Unlimited resizes', 'Unlimited layers per resize', 'Dedicated support', 'Invoice billing'])
ON CONFLICT (plan_slug) DO NOTHING;
