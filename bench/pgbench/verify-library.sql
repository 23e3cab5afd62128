\set n random(1, 10000)
SELECT * FROM public.verify_plugin_session(('70000000-0000-4000-8000-' || pg_catalog.lpad(:n, 12, '0'))::uuid, pg_catalog.md5('a' || :n) || pg_catalog.md5('a' || :n));
