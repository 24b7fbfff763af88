-- repo_stream_router 0.1.0 -> 0.2.0 (ALTER EXTENSION repo_stream_router UPDATE).
-- Every change to router/repo_stream_router.sql since 0.1.0 is repeated
-- here; the digest line is the sha256 of that file as this script leaves it
-- (`make check-upgrade`).
\echo Use "ALTER EXTENSION repo_stream_router UPDATE" to load this file. \quit
-- source digest: d30cdf61573da752040c21c354b57ecb7b3d14809f55a38b9b9b0e4ef871fb62

-- search_path pinning (issue 17, F-H5) ----------------------------------------
-- move_repo (a procedure: no SET search_path) qualifies every name, and so
-- do the queries move_repo and router_add_shard send to a shard.
CREATE OR REPLACE FUNCTION router_add_shard(name text, conninfo text) RETURNS void
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

CREATE OR REPLACE PROCEDURE move_repo(did text, to_shard text)
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
