\set n random(1, 100000)
SELECT * FROM public.consume_usage(('10000000-0000-4000-8000-' || pg_catalog.lpad(:n, 12, '0'))::uuid, 'resize'::varchar);
