--
-- The router's privilege matrix: every function, procedure and table of
-- repo_stream_router against every role docs/security.md describes, plus a role
-- with no grants, in a database of its own (as the router is deployed),
-- with one shard: this test's database.  Then every call tried as each
-- role: as installed (the schema is not granted: the router is the
-- superusers'), and again after a DBA grants USAGE on the schema, to show
-- what the grants inside it still refuse.
--
\set regress_db :DBNAME
CREATE ROLE regress_rt_nogrant;
CREATE ROLE regress_rt_writer IN ROLE repo_stream_writer;
CREATE ROLE regress_rt_deleter IN ROLE repo_stream_deleter;
CREATE ROLE regress_rt_reader IN ROLE repo_stream_reader;
CREATE ROLE regress_rt_admin IN ROLE repo_stream_admin;
SELECT format('host=%s port=%s dbname=%s', split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), :'regress_db') AS shard_conninfo \gset
CREATE DATABASE regress_router;
\c regress_router
SET client_min_messages = warning;
CREATE EXTENSION repo_stream_router CASCADE;
RESET client_min_messages;
SELECT repo_stream.router_add_shard('s1', :'shard_conninfo');

-- t: may execute (PUBLIC: every role, regress_rt_nogrant too)
SELECT p.oid::regprocedure AS function, p.prokind AS kind,
       has_function_privilege('regress_rt_writer', p.oid, 'EXECUTE') AS writer,
       has_function_privilege('regress_rt_deleter', p.oid, 'EXECUTE') AS deleter,
       has_function_privilege('regress_rt_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('regress_rt_admin', p.oid, 'EXECUTE') AS admin,
       has_function_privilege('regress_rt_nogrant', p.oid, 'EXECUTE') AS nogrant
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'repo_stream_router'
ORDER BY p.oid::regprocedure::text;

-- tables: any privilege at all; the schema
SELECT c.oid::regclass AS relation,
       r AS role,
       (SELECT string_agg(priv, ',') FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
               'REFERENCES', 'TRIGGER']) priv WHERE has_table_privilege(r, c.oid, priv)) AS privileges
FROM pg_class c, unnest(ARRAY['regress_rt_writer', 'regress_rt_deleter', 'regress_rt_reader', 'regress_rt_admin',
                              'regress_rt_nogrant']) r
WHERE c.relnamespace = 'repo_stream'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'S')
  AND (SELECT bool_or(has_table_privilege(r, c.oid, priv)) FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE',
       'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) priv)
ORDER BY 1, 2;
SELECT count(*) AS tables FROM pg_class WHERE relnamespace = 'repo_stream'::regnamespace AND relkind = 'r';
SELECT r AS role, has_schema_privilege(r, 'repo_stream', 'USAGE') AS usage,
       has_schema_privilege(r, 'repo_stream', 'CREATE') AS create
FROM unnest(ARRAY['regress_rt_writer', 'regress_rt_deleter', 'regress_rt_reader', 'regress_rt_admin',
                  'regress_rt_nogrant']) r;

-- No SECURITY DEFINER function, and every one but move_repo (a procedure
-- that commits) pins search_path.
SELECT p.oid::regprocedure AS function, p.prosecdef AS security_definer, p.proconfig
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'repo_stream_router'
WHERE p.prosecdef OR (p.prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
                      AND NOT coalesce(p.proconfig::text LIKE '%search_path%', false))
ORDER BY 1;

-- Every call, as each role: ok, or the SQLSTATE it fails with (42501:
-- denied).  Each try runs in a subtransaction that is rolled back.
CREATE FUNCTION pg_temp.try_as(r text, call text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		EXECUTE format('SET LOCAL ROLE %I', r);
		EXECUTE call;
		RAISE SQLSTATE 'RSOK0';		-- undo what it did
	EXCEPTION WHEN OTHERS THEN
		RETURN CASE SQLSTATE WHEN 'RSOK0' THEN 'ok' ELSE SQLSTATE END;
	END;
END $$;
CREATE TEMP TABLE calls (n serial, call text);
INSERT INTO calls (call) VALUES
	($$SELECT repo_stream.create_repo('did:plc:rtpriv')$$),
	($$SELECT repo_stream.put_record('did:plc:rtpriv', 'app.bsky.feed.post', 'p1', '{"text": "x"}')$$),
	($$SELECT * FROM repo_stream.create_record('did:plc:rtpriv', 'app.bsky.feed.post', '{"text": "x"}')$$),
	($$SELECT repo_stream.delete_record('did:plc:rtpriv', 'app.bsky.feed.post', 'p1')$$),
	($$SELECT repo_stream.get_record('did:plc:rtpriv', 'app.bsky.feed.post', 'p1')$$),
	($$SELECT repo_stream.repo_key('did:plc:rtpriv')$$),
	($$SELECT repo_stream._route('did:plc:rtpriv', false)$$),
	($$SELECT repo_stream._route_new('did:plc:rtpriv')$$),
	($$SELECT repo_stream.router_add_shard('s2', 'dbname=postgres')$$),
	($$SELECT repo_stream.router_remove_shard('s1')$$),
	($$SELECT repo_stream._router_configure()$$),
	($$CALL repo_stream.move_repo('did:plc:rtpriv', 's1')$$),
	($$SELECT * FROM repo_stream.router_recover_moves()$$),
	($$SELECT repo_stream._move_begin('did:plc:rtpriv', 's1')$$),
	($$SELECT repo_stream._move_settle('did:plc:rtpriv')$$),
	($$SELECT repo_stream._move_settle_locked('did:plc:rtpriv')$$),
	($$SELECT repo_stream._move_copy('did:plc:rtpriv')$$),
	($$SELECT repo_stream._move_end('did:plc:rtpriv', 's1', NULL)$$),
	($$SELECT repo_stream._move_query('dbname=postgres', 'SELECT 1')$$),
	($$SELECT repo_stream._move_connect('dbname=postgres', NULL)$$),
	($$SELECT repo_stream._move_disconnect('x')$$),
	($$SELECT repo_stream._move_fence('did:plc:rtpriv', 'dbname=postgres', 's1')$$),
	($$SELECT repo_stream._move_unlock('did:plc:rtpriv')$$),
	($$SELECT repo_stream._move_app('did:plc:rtpriv')$$),
	($$SELECT * FROM repo_stream._move_lock_key('did:plc:rtpriv')$$),
	($$SELECT repo_stream._router_dblink()$$),
	($$SELECT repo_stream._router_connections('public')$$),
	($$SELECT * FROM repo_stream.shards$$),
	($$SELECT * FROM repo_stream.directory$$);
SELECT regexp_replace(call, '^(SELECT (\* FROM )?|CALL )repo_stream\.([a-z_]+).*$', '\3') AS call,
       pg_temp.try_as('regress_rt_writer', call) AS writer, pg_temp.try_as('regress_rt_deleter', call) AS deleter,
       pg_temp.try_as('regress_rt_reader', call) AS reader, pg_temp.try_as('regress_rt_admin', call) AS admin,
       pg_temp.try_as('regress_rt_nogrant', call) AS nogrant
  FROM calls ORDER BY n;

-- a DBA grants USAGE on the schema: the grants inside it still refuse
-- every call but the pure helpers (the directory and the shards stay
-- unreadable, so no routed call reaches a shard)
GRANT USAGE ON SCHEMA repo_stream TO PUBLIC;
SELECT regexp_replace(call, '^(SELECT (\* FROM )?|CALL )repo_stream\.([a-z_]+).*$', '\3') AS call,
       pg_temp.try_as('regress_rt_writer', call) AS writer, pg_temp.try_as('regress_rt_deleter', call) AS deleter,
       pg_temp.try_as('regress_rt_reader', call) AS reader, pg_temp.try_as('regress_rt_admin', call) AS admin,
       pg_temp.try_as('regress_rt_nogrant', call) AS nogrant
  FROM calls ORDER BY n;

-- every function and table of the router is documented (COMMENT ON)
SELECT p.oid::regprocedure AS function_without_comment FROM pg_proc p
 WHERE p.pronamespace = 'repo_stream'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL ORDER BY 1;
SELECT c.oid::regclass AS relation_without_comment FROM pg_class c
 WHERE c.relnamespace = 'repo_stream'::regnamespace AND c.relkind IN ('r', 'p', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL ORDER BY 1;

\c :regress_db
DROP DATABASE regress_router;
DROP ROLE regress_rt_nogrant, regress_rt_writer, regress_rt_deleter, regress_rt_reader, regress_rt_admin;
