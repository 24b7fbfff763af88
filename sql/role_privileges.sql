--
-- The privilege matrix: every function, table, sequence and column of the
-- extension against every role docs/security.md describes, plus a role with no
-- grants.  A change to the grants changes this output, so it cannot widen
-- them silently.  Then the denials, tried for real: the write path's, and
-- every call of the views, the relay, the log's status and the client
-- (repo_stream_car) as each role.  The router's matrix is in
-- router_privileges (its own database).
--
CREATE ROLE regress_nogrant;
CREATE ROLE regress_writer IN ROLE repo_stream_writer;
CREATE ROLE regress_reader IN ROLE repo_stream_reader;
CREATE ROLE regress_admin IN ROLE repo_stream_admin;
CREATE ROLE regress_deleter IN ROLE repo_stream_deleter;

-- t: may execute.  PUBLIC is what every role, regress_nogrant too, gets.
SELECT p.oid::regprocedure AS function,
       has_function_privilege('regress_writer', p.oid, 'EXECUTE') AS writer,
       has_function_privilege('regress_deleter', p.oid, 'EXECUTE') AS deleter,
       has_function_privilege('regress_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('regress_admin', p.oid, 'EXECUTE') AS admin,
       has_function_privilege('regress_nogrant', p.oid, 'EXECUTE') AS nogrant
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'repo_stream'
ORDER BY p.oid::regprocedure::text;

-- Table privileges as aclitem letters: r SELECT, a INSERT, w UPDATE,
-- d DELETE, D TRUNCATE, x REFERENCES, t TRIGGER; for sequences U USAGE.
CREATE FUNCTION pg_temp.privs(role text, rel regclass) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(l, '' ORDER BY n), '-')
	FROM (VALUES (1, 'r', 'SELECT'), (2, 'a', 'INSERT'), (3, 'w', 'UPDATE'), (4, 'd', 'DELETE'),
	             (5, 'D', 'TRUNCATE'), (6, 'x', 'REFERENCES'), (7, 't', 'TRIGGER'),
	             (8, 'U', 'USAGE')) AS p(n, l, priv)
	WHERE CASE WHEN (SELECT relkind FROM pg_class WHERE oid = rel) = 'S'
	           THEN priv IN ('SELECT', 'UPDATE', 'USAGE') AND has_sequence_privilege(role, rel, priv)
	           ELSE priv <> 'USAGE' AND has_table_privilege(role, rel, priv) END
$$;
SELECT c.oid::regclass AS relation, c.relkind AS kind,
       pg_temp.privs('regress_writer', c.oid) AS writer,
       pg_temp.privs('regress_deleter', c.oid) AS deleter,
       pg_temp.privs('regress_reader', c.oid) AS reader,
       pg_temp.privs('regress_admin', c.oid) AS admin,
       pg_temp.privs('regress_nogrant', c.oid) AS nogrant
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'repo_stream' AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')
ORDER BY c.oid::regclass::text;

-- Column-level grants (SELECT on some columns only).
SELECT a.attrelid::regclass AS relation, a.attname AS column,
       has_column_privilege('regress_writer', a.attrelid, a.attnum, 'SELECT') AS writer,
       has_column_privilege('regress_deleter', a.attrelid, a.attnum, 'SELECT') AS deleter,
       has_column_privilege('regress_reader', a.attrelid, a.attnum, 'SELECT') AS reader,
       has_column_privilege('regress_admin', a.attrelid, a.attnum, 'SELECT') AS admin,
       has_column_privilege('regress_nogrant', a.attrelid, a.attnum, 'SELECT') AS nogrant
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'repo_stream' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = a.attrelid AND b.attnum > 0
              AND has_column_privilege('regress_reader', b.attrelid, b.attnum, 'SELECT')
                  <> has_table_privilege('regress_reader', b.attrelid, 'SELECT'))
ORDER BY a.attrelid::regclass::text, a.attnum;

-- UPDATE on records comes by column: LOCK TABLE looks only at table-level
-- privileges, where UPDATE (or DELETE) would allow every lock mode on the
-- table every repo shares.
SELECT a.attname AS column,
       has_column_privilege('regress_writer', a.attrelid, a.attnum, 'UPDATE') AS writer,
       has_column_privilege('regress_deleter', a.attrelid, a.attnum, 'UPDATE') AS deleter,
       has_column_privilege('regress_reader', a.attrelid, a.attnum, 'UPDATE') AS reader,
       has_column_privilege('regress_admin', a.attrelid, a.attnum, 'UPDATE') AS admin,
       has_column_privilege('regress_nogrant', a.attrelid, a.attnum, 'UPDATE') AS nogrant
FROM pg_attribute a WHERE a.attrelid = 'repo_stream.records'::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;

-- Schema and the roles' own attributes: the group roles cannot log in.
SELECT r AS role, has_schema_privilege(r, 'repo_stream', 'USAGE') AS usage,
       has_schema_privilege(r, 'repo_stream', 'CREATE') AS create,
       (SELECT rolcanlogin OR rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls
        FROM pg_roles WHERE rolname = r) AS any_attribute
FROM unnest(ARRAY['repo_stream_writer', 'repo_stream_reader', 'repo_stream_admin', 'repo_stream_deleter',
                   'regress_nogrant']) r;

-- No SECURITY DEFINER function, and every PL function pins search_path.
SELECT p.oid::regprocedure AS function, p.prosecdef AS security_definer, p.proconfig
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'repo_stream'
WHERE p.prosecdef OR (p.prolang <> (SELECT oid FROM pg_language WHERE lanname = 'c')
                      AND NOT coalesce(p.proconfig::text LIKE '%search_path%', false))
ORDER BY p.oid::regprocedure::text;

-- The denials, for real.
SELECT repo_stream.create_repo('did:plc:privs') LIKE 'did:key:z6Mk%' AS created;
SELECT max(seq) AS seq_dml FROM repo_stream.event_log \gset
\set VERBOSITY terse
SET ROLE regress_writer;
SELECT repo_stream.put_record('did:plc:privs', 'app.bsky.feed.post', 'ok', '{"text": "writer"}') IS NOT NULL AS writer_writes;
INSERT INTO repo_stream.event_log (seq, segment, did, kind, frame) VALUES (1, 0, 'did:plc:privs', 'commit', '\x');
UPDATE repo_stream.repos SET head_cid = 'x';
SELECT sealed FROM repo_stream.repo_keys;
SELECT nextval('repo_stream.event_seq');
SELECT * FROM repo_stream.events_since(0);
SELECT repo_stream.create_repo('did:plc:bywriter');
SELECT repo_stream.rotate_key('did:plc:privs');
-- DML but DELETE (UPDATE, MERGE, a writable CTE, COPY); deleting through the helper
UPDATE repo_stream.records SET record = '{"text": "writer, edited"}' WHERE did = 'did:plc:privs' AND rkey = 'ok';
MERGE INTO repo_stream.records r
USING (VALUES ('did:plc:privs', 'app.bsky.feed.post', 'ok', '{"text": "merged"}'::jsonb),
              ('did:plc:privs', 'app.bsky.feed.post', 'm1', '{"text": "merged in"}'::jsonb)) v(did, c, k, rec)
ON r.did = v.did AND r.collection = v.c AND r.rkey = v.k
WHEN MATCHED THEN UPDATE SET record = v.rec
WHEN NOT MATCHED THEN INSERT (did, collection, rkey, record) VALUES (v.did, v.c, v.k, v.rec);
WITH u AS (UPDATE repo_stream.records SET record = '{"text": "via cte"}' WHERE did = 'did:plc:privs' AND rkey = 'm1'
           RETURNING did, collection)
INSERT INTO repo_stream.records (did, collection, rkey, record) SELECT did, collection, 'c1', '{"text": "cte"}' FROM u;
COPY repo_stream.records (did, collection, rkey, record) FROM STDIN;
did:plc:privs	app.bsky.feed.post	copied	{"text": "copied"}
\.
MERGE INTO repo_stream.records r USING (VALUES ('did:plc:privs', 'm1')) v(did, k) ON r.did = v.did AND r.rkey = v.k
WHEN MATCHED THEN DELETE;
DELETE FROM repo_stream.records WHERE did = 'did:plc:privs';
SELECT repo_stream.put_record('did:plc:privs', 'app.bsky.feed.post', 'gone', '{}') IS NOT NULL AS put;
SELECT repo_stream.delete_record('did:plc:privs', 'app.bsky.feed.post', 'gone') AS writer_deletes;
-- no lock mode that stalls writers
BEGIN;
LOCK TABLE repo_stream.records IN ACCESS EXCLUSIVE MODE;
ROLLBACK;
SET ROLE regress_deleter;
DELETE FROM repo_stream.records WHERE did = 'did:plc:privs' AND rkey = 'ok';
MERGE INTO repo_stream.records r USING (VALUES ('did:plc:privs', 'm1')) v(did, k) ON r.did = v.did AND r.rkey = v.k
WHEN MATCHED THEN DELETE;
BEGIN;
LOCK TABLE repo_stream.records IN SHARE MODE;
ROLLBACK;
RESET ROLE;
-- each became its op, in order
SELECT dense_rank() OVER (ORDER BY e.seq) AS commit, o.op->>'action' AS action, o.op->>'path' AS path
FROM repo_stream.event_log e, repo_stream.frame_to_json(e.frame) f,
     jsonb_array_elements(f->'body'->'ops') WITH ORDINALITY AS o(op, n)
WHERE e.seq > :seq_dml ORDER BY e.seq, o.n;
SET ROLE regress_reader;
SELECT count(*) > 0 AS reader_reads FROM repo_stream.events_since(0);
SELECT repo_stream.put_record('did:plc:privs', 'app.bsky.feed.post', 'no', '{}');
DELETE FROM repo_stream.records;
SELECT head_commit FROM repo_stream.repos;
SELECT repo_stream.prune_events();
SET ROLE regress_nogrant;
SELECT repo_stream.cbor_cid('\xa0') AS pure_functions_work;
SELECT count(*) FROM repo_stream.records;
SELECT * FROM repo_stream.events_since(0);
SELECT repo_stream.get_record('did:plc:privs', 'app.bsky.feed.post', 'ok');
SELECT repo_stream._keys_generate();
SET ROLE regress_admin;
SELECT bool_and(ok) AS admin_verifies FROM repo_stream.verify_repo('did:plc:privs');
SELECT repo_stream.create_master_key();
TRUNCATE repo_stream.event_log_0;
RESET ROLE;
\set VERBOSITY default

-- Every call of the views, the relay, the log's status and the client, as
-- each role: ok, or the SQLSTATE it fails with (42501: denied).  Each try
-- runs in a subtransaction that is rolled back, so none sees another's.
CREATE FUNCTION pg_temp.try_as(r text, calls text[]) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	c text;
BEGIN
	BEGIN
		EXECUTE format('SET LOCAL ROLE %I', r);
		FOREACH c IN ARRAY calls LOOP
			EXECUTE c;
		END LOOP;
		RAISE SQLSTATE 'RSOK0';		-- undo what it did
	EXCEPTION WHEN OTHERS THEN
		RETURN CASE SQLSTATE WHEN 'RSOK0' THEN 'ok' ELSE SQLSTATE END;
	END;
END $$;
CREATE SCHEMA regress_try;
GRANT USAGE, CREATE ON SCHEMA regress_try TO PUBLIC;
CREATE FUNCTION regress_try.h(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$ SELECT $$;
-- a superuser's view
SELECT repo_stream.create_count_view('regress_try.su_counts', 'app.bsky.feed.post', '$did');
-- a CAR for the client's import: a repo exported, then forgotten here
SELECT repo_stream.create_repo('did:plc:privcar') IS NOT NULL AS created;
SELECT repo_stream.put_record('did:plc:privcar', 'app.bsky.feed.post', 'c1', '{"text": "car"}') IS NOT NULL AS put;
SELECT encode(string_agg(chunk, '' ORDER BY n), 'hex') AS car, repo_stream.repo_key('did:plc:privcar') AS car_key
  FROM repo_stream.export_repo('did:plc:privcar') WITH ORDINALITY AS e(seq, rev, chunk, n) \gset
SELECT repo_stream.delete_repo('did:plc:privcar');
DELETE FROM repo_stream.repos WHERE did = 'did:plc:privcar';
DELETE FROM repo_stream.event_log WHERE did = 'did:plc:privcar';
-- the master key file (setup.sql made it; empty setting: next to postgresql.conf)
SELECT CASE WHEN current_setting('repo_stream.master_key_file') = ''
            THEN regexp_replace(current_setting('config_file'), '[^/]*$', '') || 'repo_stream_master.key'
            ELSE current_setting('repo_stream.master_key_file') END AS keyfile \gset
SELECT length(pg_read_binary_file(:'keyfile')) AS key_file_bytes;
CREATE ROLE regress_files IN ROLE pg_read_server_files;
CREATE ROLE regress_programs IN ROLE pg_execute_server_program;
CREATE TEMP TABLE sink (line text);
GRANT INSERT ON sink TO PUBLIC;
CREATE TEMP TABLE calls (n serial, what text, calls text[]);
INSERT INTO calls (what, calls) VALUES
-- keys
('sealed keys', ARRAY[$$SELECT sealed FROM repo_stream.repo_keys$$]),
('_keys_sign', ARRAY[$$SELECT repo_stream._keys_sign(sealed, '\x01') FROM repo_stream.repo_keys$$]),
('the master key file', ARRAY[format($$SELECT pg_catalog.pg_read_binary_file(%L)$$, :'keyfile')]),
('master_key_file setting', ARRAY[$$SELECT pg_catalog.current_setting('repo_stream.master_key_file')$$]),
('create_master_key', ARRAY[$$SELECT repo_stream.create_master_key()$$]),
('COPY FROM the master key file', ARRAY[format($$COPY pg_temp.sink FROM %L$$, :'keyfile')]),
('COPY FROM PROGRAM base64 of it', ARRAY[format($$COPY pg_temp.sink FROM PROGRAM %L$$, 'base64 ' || :'keyfile')]),
-- views
('create_count_view', ARRAY[$$SELECT repo_stream.create_count_view('regress_try.c', 'app.bsky.feed.post', '$did')$$]),
('create_handler_view', ARRAY[$$SELECT repo_stream.create_handler_view('regress_try.hv', 'regress_try.h(bigint,text,text,text,jsonb)')$$]),
('refresh_view of its own view', ARRAY[$$SELECT repo_stream.create_count_view('regress_try.c', 'app.bsky.feed.post', '$did')$$,
	$$SELECT repo_stream.refresh_view('regress_try.c')$$]),
('drop_view of its own view', ARRAY[$$SELECT repo_stream.create_count_view('regress_try.c', 'app.bsky.feed.post', '$did')$$,
	$$SELECT repo_stream.drop_view('regress_try.c')$$]),
('refresh_view of a superuser''s view', ARRAY[$$SELECT repo_stream.refresh_view('regress_try.su_counts')$$]),
('drop_view of a superuser''s view', ARRAY[$$SELECT repo_stream.drop_view('regress_try.su_counts')$$]),
('view_count_live', ARRAY[$$SELECT repo_stream.view_count_live('regress_try.su_counts', 'did:plc:privs')$$]),
('a count table', ARRAY[$$SELECT * FROM regress_try.su_counts$$]),
('view_status', ARRAY[$$SELECT * FROM repo_stream.view_status$$]),
('_view_key', ARRAY[$$SELECT repo_stream._view_key('{"a": 1}', ARRAY['a'])$$]),
('_view_handler_digest', ARRAY[$$SELECT repo_stream._view_handler_digest('regress_try.h(bigint,text,text,text,jsonb)')$$]),
-- the log
('log_status', ARRAY[$$SELECT * FROM repo_stream.log_status$$]),
('prune_events', ARRAY[$$SELECT repo_stream.prune_events()$$]),
-- the relay (this database relays no shard)
('relay_status', ARRAY[$$SELECT * FROM repo_stream.relay_status$$]),
('relay_resync()', ARRAY[$$SELECT repo_stream.relay_resync()$$]),
('relay_resync(did)', ARRAY[$$SELECT repo_stream.relay_resync('did:plc:privs')$$]),
('relay_add_shard', ARRAY[$$SELECT repo_stream.relay_add_shard('s9', 'dbname=postgres')$$]),
('_relay_query', ARRAY[$$SELECT * FROM repo_stream._relay_query('s9', 'SELECT 1') AS t(x int)$$]),
('_relay_ingest', ARRAY[$$SELECT repo_stream._relay_ingest('s9', 1, '\x')$$]),
('_relay_sync_repo', ARRAY[$$SELECT repo_stream._relay_sync_repo('s9', 'did:plc:privs', false)$$]),
('_relay_finish_backfill', ARRAY[$$SELECT repo_stream._relay_finish_backfill('s9')$$]),
('_relay_lag', ARRAY[$$SELECT * FROM repo_stream._relay_lag('s9')$$]),
('_relay_mask_conninfo', ARRAY[$$SELECT repo_stream._relay_mask_conninfo('postgresql://u:pw@h/db')$$]),
-- the client, repo_stream_car: each command's calls as it makes them
('car list', ARRAY[$$SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)$$,
	$$SELECT did, rev, seq, status FROM repo_stream.list_repos(NULL, 1000)$$]),
('car export', ARRAY[$$SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)$$,
	$$SELECT (x).seq, (x).rev, (x).chunk FROM (SELECT repo_stream.export_repo('did:plc:privs', NULL) AS x) s$$]),
('car backup', ARRAY[$$SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)$$,
	$$SELECT l.did, l.status, r.did_key FROM repo_stream.list_repos(NULL, 1000) WITH ORDINALITY
	    AS l(did, head_cid, rev, seq, status, n) JOIN repo_stream.repos r ON r.did OPERATOR(pg_catalog.=) l.did ORDER BY l.n$$,
	$$SELECT (x).seq, (x).rev, (x).chunk FROM (SELECT repo_stream.export_repo('did:plc:privs', NULL) AS x) s$$]),
('car import, restore', ARRAY[$$SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)$$,
	-- libpq's lo_creat, lo_open, lo_write, lo_close call these
	$$SELECT pg_catalog.set_config('regress.lo', pg_catalog.lo_creat(393216)::text, true)$$,
	$$SELECT pg_catalog.set_config('regress.fd', pg_catalog.lo_open(pg_catalog.current_setting('regress.lo')::oid, 131072)::text, true)$$,
	format($$SELECT pg_catalog.lowrite(pg_catalog.current_setting('regress.fd')::int, pg_catalog.decode(%L, 'hex'))$$, :'car'),
	$$SELECT pg_catalog.lo_close(pg_catalog.current_setting('regress.fd')::int)$$,
	format($$SELECT repo_stream.import_repo_lo(pg_catalog.current_setting('regress.lo')::oid, %L)$$, :'car_key'),
	$$SELECT pg_catalog.lo_unlink(pg_catalog.current_setting('regress.lo')::oid)$$]);
SELECT what, pg_temp.try_as('regress_writer', calls) AS writer, pg_temp.try_as('regress_deleter', calls) AS deleter,
       pg_temp.try_as('regress_reader', calls) AS reader, pg_temp.try_as('regress_admin', calls) AS admin,
       pg_temp.try_as('regress_nogrant', calls) AS nogrant
  FROM calls ORDER BY n;
-- the keys and the client's calls as a superuser (that they work at all),
-- and the keys as members of pg_read_server_files and
-- pg_execute_server_program (read: the key file was opened, whatever its bytes
-- made of the COPY)
SELECT what, CASE WHEN what = 'COPY FROM the master key file' AND t.su <> '42501' THEN 'read' ELSE t.su END AS superuser,
       CASE WHEN what = 'COPY FROM the master key file' AND t.rf <> '42501' THEN 'read' ELSE t.rf END AS read_server_files,
       CASE WHEN what = 'COPY FROM the master key file' AND t.ep <> '42501' THEN 'read' ELSE t.ep END AS execute_server_program
  FROM calls, LATERAL (SELECT pg_temp.try_as(current_user, calls) AS su, pg_temp.try_as('regress_files', calls) AS rf,
                              pg_temp.try_as('regress_programs', calls) AS ep) t
 WHERE n <= 7 OR what LIKE 'car %' ORDER BY n;
SELECT repo_stream.drop_view('regress_try.su_counts');
DROP SCHEMA regress_try CASCADE;
SELECT repo_stream.delete_repo('did:plc:privs');

DROP ROLE regress_nogrant, regress_writer, regress_reader, regress_admin, regress_deleter, regress_files, regress_programs;
