\set n 1
SELECT * FROM public.consume_usage(('50000000-0000-4000-8000-' || pg_catalog.lpad(:n, 12, '0'))::uuid, 'resize'::varchar);
