-- repo_stream_router: a router database for repo_stream shards.  The
-- application calls the same functions as on a single node
-- (repo_stream.create_repo, put_record, create_record, delete_record,
-- get_record, repo_key); each is a PL/Proxy function that runs on the shard
-- hosting the DID, found in repo_stream.directory.  See docs/scale-out.md.
\echo Use "CREATE EXTENSION repo_stream_router CASCADE" to load this file. \quit

CREATE TABLE shards (
	name		text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,29}$'),
	conninfo	text NOT NULL,
	partition	int NOT NULL UNIQUE,		-- its index in the PL/Proxy cluster
	identity	text UNIQUE				-- <system identifier>/<database> of the shard
);
COMMENT ON TABLE shards IS 'The shards this router writes to (router_add_shard)';

CREATE TABLE directory (
	did			text PRIMARY KEY,
	shard		text NOT NULL REFERENCES shards,
	moving_to	text REFERENCES shards		-- set while move_repo runs: writes are refused
);
CREATE INDEX directory_shard ON directory (shard);
COMMENT ON TABLE directory IS 'DID -> shard: where each repo lives';

SELECT pg_catalog.pg_extension_config_dump('shards', '');
SELECT pg_catalog.pg_extension_config_dump('directory', '');

-- RepoMoving: a write to a repo that move_repo is moving.  Retry it.
-- (class 55, object not in prerequisite state, like RepoDeactivated 55R01)

-- The PL/Proxy cluster is the foreign server repo_stream_shards, one
-- partition per shard, padded to a power of two as PL/Proxy requires
-- (padding partitions repeat the first shard and are never routed to).
CREATE FUNCTION _router_configure() RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
	n int;
	size int := 1;
	opts text := '';
	first text;
	info text;
BEGIN
	-- partitions are never renumbered (a removed shard leaves a gap)
	SELECT coalesce(max(partition) + 1, 0) INTO n FROM repo_stream.shards;
	WHILE size < n LOOP
		size := size * 2;
	END LOOP;
	SELECT conninfo INTO first FROM repo_stream.shards ORDER BY partition LIMIT 1;
	FOR i IN 0 .. size - 1 LOOP
		SELECT conninfo INTO info FROM repo_stream.shards WHERE partition = i;
		opts := opts || CASE WHEN i > 0 THEN ', ' ELSE '' END || format('p%s %L', i, coalesce(info, first));
	END LOOP;
	EXECUTE 'DROP SERVER IF EXISTS repo_stream_shards CASCADE';
	EXECUTE format('CREATE SERVER repo_stream_shards FOREIGN DATA WRAPPER plproxy OPTIONS (%s)', opts);
	EXECUTE 'CREATE USER MAPPING FOR PUBLIC SERVER repo_stream_shards';
END $$;

CREATE FUNCTION router_add_shard(name text, conninfo text) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	shard record;
	other text;
	msg text;
	detail text;
BEGIN
	IF router_add_shard.name IS NULL OR router_add_shard.conninfo IS NULL THEN
		RAISE EXCEPTION '% must not be NULL', CASE WHEN router_add_shard.name IS NULL THEN 'name' ELSE 'conninfo' END
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF router_add_shard.name !~ '^[a-z][a-z0-9_]{0,29}$' THEN
		RAISE EXCEPTION 'invalid shard name "%"', router_add_shard.name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A shard name is 1 to 30 lower-case letters, digits and underscores, starting with a letter.';
	END IF;
	IF EXISTS (SELECT 1 FROM repo_stream.shards s WHERE s.name = router_add_shard.name) THEN
		RAISE EXCEPTION 'shard "%" already exists', router_add_shard.name USING ERRCODE = 'duplicate_object';
	END IF;
	-- the shard must answer, hold repo_stream, and be a database no other
	-- shard name points at: every new repo may be routed to it
	BEGIN
		EXECUTE format('SELECT * FROM %I.dblink(%L, %L) AS t(v text, id text)', repo_stream._router_dblink(),
					   router_add_shard.conninfo,
					   -- qualified: the shard's session may have look-alikes on its search_path
					   $q$SELECT (SELECT extversion FROM pg_catalog.pg_extension
								 WHERE extname OPERATOR(pg_catalog.=) 'repo_stream'),
							  (SELECT system_identifier FROM pg_catalog.pg_control_system())::pg_catalog.text
							  OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) pg_catalog.current_database()$q$)
			INTO shard;
	EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection THEN
		GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
		RAISE EXCEPTION 'cannot connect to shard "%": %', router_add_shard.name, msg
			USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection', DETAIL = detail,
				  HINT = 'Check the conninfo; the shard was not added.';
	END;
	IF shard.v IS NULL THEN
		RAISE EXCEPTION 'shard "%" has no repo_stream extension', router_add_shard.name
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'CREATE EXTENSION repo_stream; in that database first.';
	END IF;
	SELECT s.name INTO other FROM repo_stream.shards s WHERE s.identity = shard.id;
	IF other IS NOT NULL THEN
		RAISE EXCEPTION 'shard "%" is the database of shard "%"', router_add_shard.name, other
			USING ERRCODE = 'duplicate_object',
				  DETAIL = format('Both conninfos lead to database %s.', shard.id);
	END IF;
	INSERT INTO repo_stream.shards (name, conninfo, partition, identity)
	SELECT router_add_shard.name, router_add_shard.conninfo, coalesce(max(partition) + 1, 0), shard.id
	  FROM repo_stream.shards;
	PERFORM repo_stream._router_configure();
END $$;
COMMENT ON FUNCTION router_add_shard(text, text) IS
	'Add a shard (a repo_stream database) to the router''s PL/Proxy cluster, after checking that it answers, has repo_stream and is not already a shard (08001, 55000, 42710); new repos go to the shard with the fewest';

CREATE FUNCTION router_remove_shard(name text) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n bigint;
BEGIN
	IF router_remove_shard.name IS NULL THEN
		RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM FROM repo_stream.shards s WHERE s.name = router_remove_shard.name FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'shard "%" does not exist', router_remove_shard.name USING ERRCODE = 'undefined_object';
	END IF;
	SELECT count(*) INTO n FROM repo_stream.directory d
	 WHERE d.shard = router_remove_shard.name OR d.moving_to = router_remove_shard.name;
	IF n > 0 THEN
		RAISE EXCEPTION 'shard "%" hosts % repos', router_remove_shard.name, n
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Move them to other shards with repo_stream.move_repo first.';
	END IF;
	DELETE FROM repo_stream.shards s WHERE s.name = router_remove_shard.name;
	PERFORM repo_stream._router_configure();
END $$;
COMMENT ON FUNCTION router_remove_shard(text) IS
	'Take a shard that hosts no repo out of the router (42704 unknown, 55000 while it hosts repos)';

-- The partition of the shard hosting did: 42704 if none, RepoMoving (55R02)
-- while it moves and write is true.
CREATE FUNCTION _route(did text, write boolean) RETURNS int
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	d record;
BEGIN
	IF did IS NULL THEN
		RAISE EXCEPTION 'did must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT s.partition, dir.shard, dir.moving_to INTO d
	  FROM repo_stream.directory dir JOIN repo_stream.shards s ON s.name = dir.shard
	 WHERE dir.did = _route.did;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'repo "%" does not exist', did USING ERRCODE = 'undefined_object';
	END IF;
	IF write AND d.moving_to IS NOT NULL THEN
		RAISE EXCEPTION 'repo "%" is moving from shard % to shard %', did, d.shard, d.moving_to
			USING ERRCODE = '55R02',
				  HINT = 'Retry in a moment: writes resume where the repo lands.';
	END IF;
	RETURN d.partition;
END $$;

-- A new DID goes to the shard with the fewest repos; 42710 if it exists.
CREATE FUNCTION _route_new(did text) RETURNS int
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	target record;
BEGIN
	IF did IS NULL THEN
		RAISE EXCEPTION 'did must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT s.name, s.partition INTO target FROM repo_stream.shards s
	  LEFT JOIN repo_stream.directory d ON d.shard = s.name
	 GROUP BY s.name, s.partition ORDER BY count(d.did), s.partition LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'the router has no shard' USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Add one with repo_stream.router_add_shard(name, conninfo).';
	END IF;
	INSERT INTO repo_stream.directory (did, shard) VALUES (_route_new.did, target.name)
	ON CONFLICT ON CONSTRAINT directory_pkey DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'repo "%" already exists', did USING ERRCODE = 'duplicate_object';
	END IF;
	RETURN target.partition;
END $$;

-- The functions of a single node, each run on the shard hosting the DID.

CREATE FUNCTION create_repo(did text) RETURNS text
	LANGUAGE plproxy AS $$ CLUSTER 'repo_stream_shards'; RUN ON repo_stream._route_new(did); $$;
COMMENT ON FUNCTION create_repo(text) IS 'create_repo on the shard with the fewest repos, recorded in the directory';

CREATE FUNCTION put_record(did text, collection text, rkey text, record jsonb) RETURNS text
	LANGUAGE plproxy AS $$ CLUSTER 'repo_stream_shards'; RUN ON repo_stream._route(did, true); $$;
COMMENT ON FUNCTION put_record(text, text, text, jsonb) IS 'put_record on the shard hosting did; 55R02 while it moves';

CREATE FUNCTION create_record(did text, collection text, record jsonb, OUT rkey text, OUT cid text)
	LANGUAGE plproxy AS $$ CLUSTER 'repo_stream_shards'; RUN ON repo_stream._route(did, true); $$;
COMMENT ON FUNCTION create_record(text, text, jsonb) IS 'create_record on the shard hosting did; 55R02 while it moves';

CREATE FUNCTION delete_record(did text, collection text, rkey text) RETURNS boolean
	LANGUAGE plproxy AS $$ CLUSTER 'repo_stream_shards'; RUN ON repo_stream._route(did, true); $$;
COMMENT ON FUNCTION delete_record(text, text, text) IS 'delete_record on the shard hosting did; 55R02 while it moves';

CREATE FUNCTION get_record(did text, collection text, rkey text) RETURNS jsonb
	LANGUAGE plproxy AS $$ CLUSTER 'repo_stream_shards'; RUN ON repo_stream._route(did, false); $$;
COMMENT ON FUNCTION get_record(text, text, text) IS 'get_record on the shard hosting did (also while it moves)';

CREATE FUNCTION repo_key(did text) RETURNS text
	LANGUAGE plproxy AS $$ CLUSTER 'repo_stream_shards'; RUN ON repo_stream._route(did, false); $$;
COMMENT ON FUNCTION repo_key(text) IS 'repo_key on the shard hosting did';

-- ------------------------------------------------------------------ moves

CREATE FUNCTION _router_dblink() RETURNS text
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
	 WHERE e.extname = 'dblink' $$;

CREATE FUNCTION _router_connections(ds text) RETURNS text[]
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c text[];
BEGIN
	EXECUTE format('SELECT %I.dblink_get_connections()', ds) INTO c;
	RETURN c;
END $$;

/*
 * move_repo(did, to_shard): the repo moves to another shard, no write lost.
 *  0. the directory marks it moving: the router refuses writes (55R02, retry);
 *  1+2. on the old shard, in one transaction: export it, deactivate it, and
 *     check under the repo's lock (which deactivate_repo holds) that no write
 *     committed after the export (else roll back and export again): writes
 *     routed before step 0 are either in the export or refused (55000);
 *  3. import into the new shard (a #sync there, a fresh key);
 *  4. the directory points at the new shard: writes resume;
 *  5. delete it on the old shard (#account deleted there).
 * A relay follows the move through the #account and #sync events.  A
 * procedure, as it commits between the steps: CALL, outside a transaction.
 */
-- No SET search_path: a procedure with one cannot COMMIT.  So every name is
-- qualified, pg_catalog's functions, operators and types too (the caller's
-- search_path may hold look-alikes), and so are the queries sent to shards.
CREATE PROCEDURE move_repo(did text, to_shard text)
	LANGUAGE plpgsql AS $$
DECLARE
	ds pg_catalog.text := repo_stream._router_dblink();
	src pg_catalog.text;
	src_info pg_catalog.text;
	dst_info pg_catalog.text;
	conn pg_catalog.text := 'rs_router_move';
	car pg_catalog.bytea;
	key pg_catalog.text;
	export_seq bigint;
	last bigint;
	done boolean := false;
	failed boolean := false;
	err_state pg_catalog.text;
	err_msg pg_catalog.text;
	err_detail pg_catalog.text;
BEGIN
	IF did IS NULL OR to_shard IS NULL THEN
		RAISE EXCEPTION '% must not be NULL', CASE WHEN did IS NULL THEN 'did' ELSE 'to_shard' END
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT d.shard, s.conninfo INTO src, src_info
	  FROM repo_stream.directory d JOIN repo_stream.shards s ON s.name OPERATOR(pg_catalog.=) d.shard
	 WHERE d.did OPERATOR(pg_catalog.=) move_repo.did AND d.moving_to IS NULL FOR UPDATE OF d;
	IF NOT FOUND THEN
		IF EXISTS (SELECT 1 FROM repo_stream.directory d WHERE d.did OPERATOR(pg_catalog.=) move_repo.did) THEN
			RAISE EXCEPTION 'repo "%" is already moving', did USING ERRCODE = '55R02';
		END IF;
		RAISE EXCEPTION 'repo "%" does not exist', did USING ERRCODE = 'undefined_object';
	END IF;
	SELECT conninfo INTO dst_info FROM repo_stream.shards WHERE name OPERATOR(pg_catalog.=) to_shard;
	IF dst_info IS NULL THEN
		RAISE EXCEPTION 'shard "%" does not exist', to_shard USING ERRCODE = 'undefined_object';
	END IF;
	IF src OPERATOR(pg_catalog.=) to_shard THEN
		RAISE EXCEPTION 'repo "%" is already on shard "%"', did, to_shard USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE repo_stream.directory d SET moving_to = to_shard WHERE d.did OPERATOR(pg_catalog.=) move_repo.did;
	COMMIT;

	BEGIN
		EXECUTE pg_catalog.format('SELECT %I.dblink_connect(%L, %L)', ds, conn, src_info);
		WHILE NOT done LOOP
			EXECUTE pg_catalog.format('SELECT %I.dblink_exec(%L, %L)', ds, conn, 'BEGIN');
			EXECUTE pg_catalog.format('SELECT * FROM %I.dblink(%L, %L) AS t(seq bigint, car pg_catalog.bytea, key pg_catalog.text)', ds, conn,
				pg_catalog.format('SELECT pg_catalog.min(seq), pg_catalog.string_agg(chunk, %L::pg_catalog.bytea ORDER BY n), repo_stream.repo_key(%L)'
					   '  FROM repo_stream.export_repo(%L) WITH ORDINALITY AS e(seq, rev, chunk, n)', '', did, did))
				INTO export_seq, car, key;
			EXECUTE pg_catalog.format('SELECT * FROM %I.dblink(%L, %L) AS t(x pg_catalog.text)', ds, conn,
				pg_catalog.format('SELECT repo_stream.deactivate_repo(%L)::pg_catalog.text', did));
			EXECUTE pg_catalog.format('SELECT * FROM %I.dblink(%L, %L) AS t(s bigint)', ds, conn,
				pg_catalog.format('SELECT last_seq FROM repo_stream.repos WHERE did OPERATOR(pg_catalog.=) %L', did)) INTO last;
			IF last OPERATOR(pg_catalog.=) export_seq THEN
				EXECUTE pg_catalog.format('SELECT %I.dblink_exec(%L, %L)', ds, conn, 'COMMIT');
				done := true;
			ELSE
				-- a write committed between the export and the lock: again
				EXECUTE pg_catalog.format('SELECT %I.dblink_exec(%L, %L)', ds, conn, 'ROLLBACK');
			END IF;
		END LOOP;
		EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect(%L)', ds, conn);
		EXECUTE pg_catalog.format('SELECT * FROM %I.dblink(%L, %L) AS t(k pg_catalog.text)', ds, dst_info,
			pg_catalog.format('SELECT repo_stream.import_repo(%L::pg_catalog.bytea, %L)', car, key));
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_msg = MESSAGE_TEXT, err_detail = PG_EXCEPTION_DETAIL;
		failed := true;
	END;
	IF failed THEN
		-- back where it was: active on the old shard, writes routed there
		IF conn OPERATOR(pg_catalog.=) ANY (coalesce(repo_stream._router_connections(ds), '{}')) THEN
			EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect(%L)', ds, conn);
		END IF;
		IF done THEN
			EXECUTE pg_catalog.format('SELECT * FROM %I.dblink(%L, %L) AS t(x pg_catalog.text)', ds, src_info,
				pg_catalog.format('SELECT repo_stream.activate_repo(%L)::pg_catalog.text', did));
		END IF;
		UPDATE repo_stream.directory d SET moving_to = NULL WHERE d.did OPERATOR(pg_catalog.=) move_repo.did;
		COMMIT;
		RAISE EXCEPTION 'moving repo "%" to shard "%" failed: %', did, to_shard, err_msg
			USING ERRCODE = err_state, DETAIL = coalesce(err_detail, ''),
				  HINT = 'The repo stays where it was, active; writes go there again.';
	END IF;
	UPDATE repo_stream.directory d SET shard = to_shard, moving_to = NULL WHERE d.did OPERATOR(pg_catalog.=) move_repo.did;
	COMMIT;
	EXECUTE pg_catalog.format('SELECT * FROM %I.dblink(%L, %L) AS t(x pg_catalog.text)', ds, src_info,
		pg_catalog.format('SELECT repo_stream.delete_repo(%L)::pg_catalog.text', did));
END $$;
COMMENT ON PROCEDURE move_repo(text, text) IS
	'Move a repo to another shard: refuse writes (55R02), export and deactivate on the old shard, import on the new one, switch the directory, delete on the old one';

REVOKE ALL ON ALL TABLES IN SCHEMA repo_stream FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION _router_configure(), router_add_shard(text, text), router_remove_shard(text), _route_new(text) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE move_repo(text, text) FROM PUBLIC;
