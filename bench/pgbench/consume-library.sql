\set n random(1, :users)
SELECT * FROM public.consume_usage((:side::text || '0000000-0000-4000-8000-' || pg_catalog.lpad(:n, 12, '0'))::uuid, 'resize'::varchar);
