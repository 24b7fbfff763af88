-- repo_stream_router 0.1.0 -> 0.2.0 (ALTER EXTENSION repo_stream_router UPDATE).
-- Every change to router/repo_stream_router.sql since 0.1.0 is repeated
-- here; the digest line is the sha256 of that file as this script leaves it
-- (`make check-upgrade`).
\echo Use "ALTER EXTENSION repo_stream_router UPDATE" to load this file. \quit
-- source digest: d51bdf50a1cddc00aba1f952f1f72cbb6ec06385aa93b25b499dcb7701fbe703

-- scale-out security (issue 17, F-M3, F-L11): moves recovered after a crash
-- (router_recover_moves, moved_from), a move's own dblink connections
ALTER TABLE directory ADD COLUMN moved_from text REFERENCES shards;
CREATE OR REPLACE FUNCTION router_remove_shard(name text) RETURNS void
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
	 WHERE d.shard = router_remove_shard.name OR d.moving_to = router_remove_shard.name
		OR d.moved_from = router_remove_shard.name;
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

-- A move's connections: opened by the move alone, under a fresh name, and
-- closed after; never a connection of the session (whatever its name).
-- app names the move's sessions on the shards (application_name), so that
-- recovery can wait until none is left.
CREATE FUNCTION _move_connect(conninfo text, app text) RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ds text := repo_stream._router_dblink();
	conn text := 'rs_move_' || pg_backend_pid() || '_' || md5(random()::text || clock_timestamp()::text);
BEGIN
	-- dblink_connect refuses a name that is taken: a fresh one is never reused
	EXECUTE format('SELECT %I.dblink_connect(%L, %L)', ds, conn, conninfo);
	IF app IS NOT NULL THEN
		EXECUTE format('SELECT %I.dblink_exec(%L, %L)', ds, conn, format('SET application_name = %L', app));
	END IF;
	RETURN conn;
END $$;

CREATE FUNCTION _move_disconnect(conn text) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ds text := repo_stream._router_dblink();
BEGIN
	IF conn IS NOT NULL AND conn = ANY (coalesce(repo_stream._router_connections(ds), '{}')) THEN
		EXECUTE format('SELECT %I.dblink_disconnect(%L)', ds, conn);
	END IF;
END $$;

-- One statement with one text column on a shard, on a connection of its own.
CREATE FUNCTION _move_query(conninfo text, query text) RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ds text := repo_stream._router_dblink();
	conn text := repo_stream._move_connect(conninfo, NULL);
	v text;
BEGIN
	BEGIN
		EXECUTE format('SELECT x FROM %I.dblink(%L, %L) AS t(x text)', ds, conn, query) INTO v;
	EXCEPTION WHEN OTHERS THEN
		PERFORM repo_stream._move_disconnect(conn);
		RAISE;
	END;
	PERFORM repo_stream._move_disconnect(conn);
	RETURN v;
END $$;

-- The application_name of a move's sessions on the shards.
CREATE FUNCTION _move_app(did text) RETURNS text
	LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT 'repo_stream move ' || md5(did) $$;

-- The move lock of a DID (an advisory lock: two int4 keys).
CREATE FUNCTION _move_lock_key(did text, OUT k1 int, OUT k2 int)
	LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT 1920167286, hashtext(did) $$;

-- Until the move's sessions on a shard are gone (a router backend that died
-- mid-move leaves its shard sessions running their statement; what they do
-- is committed only by a COMMIT the router sends, so once they are gone,
-- what the shard holds is final).  55R02 after a minute.
CREATE FUNCTION _move_fence(did text, conninfo text, shard text) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n int;
BEGIN
	FOR i IN 1 .. 600 LOOP
		n := repo_stream._move_query(conninfo, format(
			'SELECT count(*)::text FROM pg_catalog.pg_stat_activity WHERE application_name = %L',
			repo_stream._move_app(did)))::int;
		IF n = 0 THEN
			RETURN;
		END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RAISE EXCEPTION 'a move of repo "%" is still running on shard %', did, shard
		USING ERRCODE = '55R02', HINT = 'Retry in a moment.';
END $$;

/*
 * Settle the move of did the directory records, if any: the caller holds
 * the DID's move lock.  A move whose import committed on the new shard is
 * finished (the directory points there, the old copy is deleted); one
 * whose import did not is rolled back (the old shard's copy activated
 * again, writes go there).  Every step can be repeated: a settle cut short
 * is completed by the next.  Returns none, finished or rolled back.
 */
CREATE FUNCTION _move_settle(did text) RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	d record;
	src_info text;
	dst_info text;
	old_info text;
	st text;
	outcome text := 'none';
BEGIN
	SELECT * INTO d FROM repo_stream.directory dir WHERE dir.did = _move_settle.did FOR UPDATE;
	IF NOT FOUND THEN
		RETURN outcome;
	END IF;
	IF d.moving_to IS NOT NULL THEN
		SELECT conninfo INTO src_info FROM repo_stream.shards WHERE name = d.shard;
		SELECT conninfo INTO dst_info FROM repo_stream.shards WHERE name = d.moving_to;
		PERFORM repo_stream._move_fence(did, src_info, d.shard);
		PERFORM repo_stream._move_fence(did, dst_info, d.moving_to);
		st := repo_stream._move_query(dst_info,
			format('SELECT status FROM repo_stream.repos WHERE did = %L', did));
		IF st IN ('active', 'deactivated') THEN
			-- the import committed: the repo lives there now
			UPDATE repo_stream.directory dir SET shard = d.moving_to, moving_to = NULL, moved_from = d.shard
			 WHERE dir.did = _move_settle.did;
			d.moved_from := d.shard;
			outcome := 'finished';
		ELSE
			-- it did not: back where it was, active (a move starts only from an active repo)
			st := repo_stream._move_query(src_info,
				format('SELECT status FROM repo_stream.repos WHERE did = %L', did));
			IF st = 'deactivated' THEN
				PERFORM repo_stream._move_query(src_info, format('SELECT repo_stream.activate_repo(%L)::text', did));
			ELSIF st IS DISTINCT FROM 'active' THEN
				RAISE EXCEPTION 'repo "%" is on neither shard: % has it %, % not at all', did,
					d.shard, coalesce(st, 'not at all'), d.moving_to
					USING ERRCODE = 'object_not_in_prerequisite_state';
			END IF;
			UPDATE repo_stream.directory dir SET moving_to = NULL WHERE dir.did = _move_settle.did;
			RETURN 'rolled back';
		END IF;
	END IF;
	IF d.moved_from IS NOT NULL THEN
		-- the old copy goes (its #account deleted hands the repo over on a relay)
		BEGIN
			SELECT conninfo INTO old_info FROM repo_stream.shards WHERE name = d.moved_from;
			st := repo_stream._move_query(old_info,
				format('SELECT status FROM repo_stream.repos WHERE did = %L', did));
			IF st IS DISTINCT FROM 'deleted' AND st IS NOT NULL THEN
				PERFORM repo_stream._move_query(old_info, format('SELECT repo_stream.delete_repo(%L)::text', did));
			END IF;
			UPDATE repo_stream.directory dir SET moved_from = NULL WHERE dir.did = _move_settle.did;
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'repo "%" moved to shard %, but its old copy on shard % is not deleted yet: %',
				did, d.shard, d.moved_from, SQLERRM
				USING HINT = 'SELECT * FROM repo_stream.router_recover_moves() deletes it once that shard answers.';
		END;
		outcome := 'finished';
	END IF;
	RETURN outcome;
END $$;

-- move_repo, step 0: the lock, what an earlier move left, the checks, and
-- the mark (55R02 for writes).  false: nothing to do (an interrupted move
-- to the same shard was finished).
CREATE FUNCTION _move_begin(did text, to_shard text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	k record;
	src text;
	src_info text;
	st text;
	settled text;
BEGIN
	IF did IS NULL OR to_shard IS NULL THEN
		RAISE EXCEPTION '% must not be NULL', CASE WHEN did IS NULL THEN 'did' ELSE 'to_shard' END
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	k := repo_stream._move_lock_key(did);
	IF NOT pg_try_advisory_lock(k.k1, k.k2) THEN
		RAISE EXCEPTION 'repo "%" is already moving', did
			USING ERRCODE = '55R02', HINT = 'move_repo runs in another session; retry when it is done.';
	END IF;
	BEGIN
		settled := repo_stream._move_settle(did);
		IF settled <> 'none' THEN
			RAISE NOTICE 'an interrupted move of repo "%" was %', did, settled;
		END IF;
		SELECT d.shard, s.conninfo INTO src, src_info
		  FROM repo_stream.directory d JOIN repo_stream.shards s ON s.name = d.shard
		 WHERE d.did = _move_begin.did FOR UPDATE OF d;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'repo "%" does not exist', did USING ERRCODE = 'undefined_object';
		END IF;
		IF NOT EXISTS (SELECT 1 FROM repo_stream.shards WHERE name = to_shard) THEN
			RAISE EXCEPTION 'shard "%" does not exist', to_shard USING ERRCODE = 'undefined_object';
		END IF;
		IF src = to_shard THEN
			IF settled = 'finished' THEN
				PERFORM repo_stream._move_unlock(did);
				RETURN false;
			END IF;
			RAISE EXCEPTION 'repo "%" is already on shard "%"', did, to_shard USING ERRCODE = 'invalid_parameter_value';
		END IF;
		st := repo_stream._move_query(src_info, format('SELECT status FROM repo_stream.repos WHERE did = %L', did));
		IF st IS DISTINCT FROM 'active' THEN
			RAISE EXCEPTION 'repo "%" is % on shard "%"', did, coalesce(st, 'missing'), src
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  HINT = 'Only an active repo moves.';
		END IF;
		UPDATE repo_stream.directory d SET moving_to = to_shard WHERE d.did = _move_begin.did;
	EXCEPTION WHEN OTHERS THEN
		PERFORM repo_stream._move_unlock(did);
		RAISE;
	END;
	RETURN true;
END $$;

-- Every hold of the DID's move lock by this session (a cancelled call may
-- have left one).
CREATE FUNCTION _move_unlock(did text) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp SET client_min_messages = error AS $$
DECLARE
	k record := repo_stream._move_lock_key(did);
BEGIN
	WHILE pg_advisory_unlock(k.k1, k.k2) LOOP
	END LOOP;
END $$;

/*
 * move_repo, steps 1 and 2: on the old shard, in one transaction, export
 * the repo, deactivate it (which waits for its lock) and check under that
 * lock that no write committed after the export (else roll back and export
 * again); then import it into the new shard in a transaction the router
 * commits.  A router session that dies before that COMMIT leaves nothing
 * on the new shard.  Returns NULL, or the error (sqlstate, message,
 * detail): never raises, so that the caller settles either way.
 */
CREATE FUNCTION _move_copy(did text) RETURNS text[]
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ds text := repo_stream._router_dblink();
	app text := repo_stream._move_app(did);
	d record;
	src text;
	dst text;
	car bytea;
	key text;
	export_seq bigint;
	last bigint;
	done boolean := false;
	err_state text;
	err_msg text;
	err_detail text;
BEGIN
	SELECT s.conninfo AS src_info, t.conninfo AS dst_info INTO d
	  FROM repo_stream.directory dir JOIN repo_stream.shards s ON s.name = dir.shard
	  JOIN repo_stream.shards t ON t.name = dir.moving_to
	 WHERE dir.did = _move_copy.did;
	BEGIN
		src := repo_stream._move_connect(d.src_info, app);
		dst := repo_stream._move_connect(d.dst_info, app);
		WHILE NOT done LOOP
			EXECUTE format('SELECT %I.dblink_exec(%L, %L)', ds, src, 'BEGIN');
			EXECUTE format('SELECT * FROM %I.dblink(%L, %L) AS t(seq bigint, car bytea, key text)', ds, src,
				format('SELECT min(seq), string_agg(chunk, %L::bytea ORDER BY n), repo_stream.repo_key(%L)'
					   '  FROM repo_stream.export_repo(%L) WITH ORDINALITY AS e(seq, rev, chunk, n)', '', did, did))
				INTO export_seq, car, key;
			EXECUTE format('SELECT * FROM %I.dblink(%L, %L) AS t(x text)', ds, src,
				format('SELECT repo_stream.deactivate_repo(%L)::text', did));
			EXECUTE format('SELECT * FROM %I.dblink(%L, %L) AS t(s bigint)', ds, src,
				format('SELECT last_seq FROM repo_stream.repos WHERE did = %L', did)) INTO last;
			IF last = export_seq THEN
				EXECUTE format('SELECT %I.dblink_exec(%L, %L)', ds, src, 'COMMIT');
				done := true;
			ELSE
				-- a write committed between the export and the lock: again
				EXECUTE format('SELECT %I.dblink_exec(%L, %L)', ds, src, 'ROLLBACK');
			END IF;
		END LOOP;
		EXECUTE format('SELECT %I.dblink_exec(%L, %L)', ds, dst, 'BEGIN');
		EXECUTE format('SELECT * FROM %I.dblink(%L, %L) AS t(k text)', ds, dst,
			format('SELECT repo_stream.import_repo(%L::bytea, %L)', car, key));
		EXECUTE format('SELECT %I.dblink_exec(%L, %L)', ds, dst, 'COMMIT');
	EXCEPTION WHEN OTHERS OR query_canceled THEN
		GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_msg = MESSAGE_TEXT, err_detail = PG_EXCEPTION_DETAIL;
	END;
	PERFORM repo_stream._move_disconnect(src);
	PERFORM repo_stream._move_disconnect(dst);
	IF err_state IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN ARRAY[err_state, err_msg, coalesce(err_detail, '')];
END $$;

-- move_repo, step 3: settle (finish or roll back), then let the DID go.
CREATE FUNCTION _move_settle_locked(did text) RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN repo_stream._move_settle(did);
EXCEPTION WHEN OTHERS THEN
	PERFORM repo_stream._move_unlock(did);
	RAISE;
END $$;

-- move_repo, the end: the lock goes; the copy's error, if the move did not happen.
CREATE FUNCTION _move_end(did text, to_shard text, failure text[]) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	now_on text;
BEGIN
	PERFORM repo_stream._move_unlock(did);
	SELECT shard INTO now_on FROM repo_stream.directory d WHERE d.did = _move_end.did;
	IF failure IS NOT NULL AND now_on IS DISTINCT FROM to_shard THEN
		RAISE EXCEPTION 'moving repo "%" to shard "%" failed: %', did, to_shard, failure[2]
			USING ERRCODE = failure[1], DETAIL = failure[3],
				  HINT = 'The repo stays where it was, active; writes go there again.';
	END IF;
END $$;

/*
 * move_repo(did, to_shard): the repo moves to another shard, no write lost.
 *  0. the directory marks it moving: the router refuses writes (55R02, retry);
 *  1+2. _move_copy: export and deactivate on the old shard (checked under the
 *     repo's lock), import on the new one (a #sync there, a fresh key);
 *  3. _move_settle: the directory points at the new shard (writes resume),
 *     and the old copy is deleted (#account deleted there); or, if the
 *     import did not commit, the old copy is activated again.
 * A move cut short (the router crashed, the session was killed) is settled
 * the same way by the next move_repo of the DID or by router_recover_moves().
 * A relay follows the move through the #account and #sync events.  A
 * procedure, as it commits between the steps: CALL, outside a transaction.
 */
-- No SET search_path (a procedure with one cannot COMMIT) and no operator
-- or unqualified name: every step is a function of this schema that pins it.
CREATE OR REPLACE PROCEDURE move_repo(did text, to_shard text)
	LANGUAGE plpgsql AS $$
DECLARE
	failure pg_catalog.text[];
BEGIN
	COMMIT;		-- 2D000 inside a transaction block, before anything happens
	IF NOT repo_stream._move_begin(did, to_shard) THEN
		RETURN;
	END IF;
	COMMIT;
	failure := repo_stream._move_copy(did);
	PERFORM repo_stream._move_settle_locked(did);
	COMMIT;
	PERFORM repo_stream._move_end(did, to_shard, failure);
END $$;
COMMENT ON PROCEDURE move_repo(text, text) IS
	'Move a repo to another shard: refuse writes (55R02), export and deactivate on the old shard, import on the new one, switch the directory, delete on the old one; settles an earlier interrupted move first';

CREATE FUNCTION router_recover_moves() RETURNS TABLE (did text, from_shard text, to_shard text, outcome text)
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	k record;
BEGIN
	FOR r IN SELECT d.did, d.shard, d.moving_to, d.moved_from FROM repo_stream.directory d
			  WHERE d.moving_to IS NOT NULL OR d.moved_from IS NOT NULL ORDER BY d.did
	LOOP
		did := r.did;
		from_shard := coalesce(r.moved_from, r.shard);
		to_shard := coalesce(r.moving_to, r.shard);
		k := repo_stream._move_lock_key(r.did);
		IF NOT pg_try_advisory_xact_lock(k.k1, k.k2) THEN
			outcome := 'running';
		ELSE
			BEGIN
				outcome := repo_stream._move_settle(r.did);
			EXCEPTION WHEN OTHERS THEN
				outcome := 'failed: ' || SQLERRM;
			END;
		END IF;
		RETURN NEXT;
	END LOOP;
END $$;
COMMENT ON FUNCTION router_recover_moves() IS
	'Settle every move cut short (a crash of the router or of its session): finished where the new shard committed the import, else rolled back with the old copy active again; running for one in progress';

COMMENT ON FUNCTION _move_connect(text, text) IS 'move_repo, internal: a dblink connection of its own, under a fresh name';
COMMENT ON FUNCTION _move_disconnect(text) IS 'move_repo, internal: close a connection _move_connect opened';
COMMENT ON FUNCTION _move_query(text, text) IS 'move_repo, internal: one statement (one text column) on a shard, on a connection of its own';
COMMENT ON FUNCTION _move_app(text) IS 'move_repo, internal: the application_name of a move''s sessions on the shards';
COMMENT ON FUNCTION _move_lock_key(text) IS 'move_repo, internal: the advisory lock keys of a DID''s move';
COMMENT ON FUNCTION _move_fence(text, text, text) IS 'move_repo, internal: wait until no session of the DID''s move is left on a shard (55R02 after a minute)';
COMMENT ON FUNCTION _move_settle(text) IS 'move_repo, internal: finish or roll back the move of a DID the directory records; repeatable';
COMMENT ON FUNCTION _move_begin(text, text) IS 'move_repo, internal: lock, settle an earlier move, check, mark moving';
COMMENT ON FUNCTION _move_unlock(text) IS 'move_repo, internal: release every hold of the DID''s move lock';
COMMENT ON FUNCTION _move_copy(text) IS 'move_repo, internal: export and deactivate on the old shard, import on the new one; returns the error instead of raising';
COMMENT ON FUNCTION _move_settle_locked(text) IS 'move_repo, internal: _move_settle, releasing the move lock if it fails';
COMMENT ON FUNCTION _move_end(text, text, text[]) IS 'move_repo, internal: release the move lock and raise the copy''s error if the repo did not move';

REVOKE EXECUTE ON FUNCTION _move_connect(text, text), _move_disconnect(text), _move_query(text, text),
	_move_fence(text, text, text), _move_settle(text), _move_begin(text, text), _move_unlock(text),
	_move_copy(text), _move_settle_locked(text), _move_end(text, text, text[]), router_recover_moves()
	FROM PUBLIC;

-- search_path pinning (issue 17, F-H5): router_add_shard's query to a shard
-- is qualified; a move's sessions on the shards pin their search_path.
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
CREATE OR REPLACE FUNCTION _move_connect(conninfo text, app text) RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ds text := repo_stream._router_dblink();
	conn text := 'rs_move_' || pg_backend_pid() || '_' || md5(random()::text || clock_timestamp()::text);
BEGIN
	-- dblink_connect refuses a name that is taken: a fresh one is never reused
	EXECUTE format('SELECT %I.dblink_connect(%L, %L)', ds, conn, conninfo);
	-- the queries sent there name pg_catalog's objects unqualified: the
	-- shard's session must not find look-alikes first
	EXECUTE format('SELECT %I.dblink_exec(%L, %L)', ds, conn, 'SET search_path = pg_catalog, pg_temp');
	IF app IS NOT NULL THEN
		EXECUTE format('SELECT %I.dblink_exec(%L, %L)', ds, conn, format('SET application_name = %L', app));
	END IF;
	RETURN conn;
END $$;

-- integration (issue 17): a move never takes over a repo of the DID on the
-- new shard (refused up front; settle finishes only on the old copy's tree)
CREATE OR REPLACE FUNCTION _move_settle(did text) RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	d record;
	src_info text;
	dst_info text;
	old_info text;
	st text;
	outcome text := 'none';
BEGIN
	SELECT * INTO d FROM repo_stream.directory dir WHERE dir.did = _move_settle.did FOR UPDATE;
	IF NOT FOUND THEN
		RETURN outcome;
	END IF;
	IF d.moving_to IS NOT NULL THEN
		SELECT conninfo INTO src_info FROM repo_stream.shards WHERE name = d.shard;
		SELECT conninfo INTO dst_info FROM repo_stream.shards WHERE name = d.moving_to;
		PERFORM repo_stream._move_fence(did, src_info, d.shard);
		PERFORM repo_stream._move_fence(did, dst_info, d.moving_to);
		st := repo_stream._move_query(dst_info,
			format('SELECT status || '' '' || encode(data_cid, ''hex'') FROM repo_stream.repos WHERE did = %L', did));
		IF split_part(st, ' ', 1) IN ('active', 'deactivated') AND split_part(st, ' ', 2) = repo_stream._move_query(src_info,
				format('SELECT encode(data_cid, ''hex'') FROM repo_stream.repos WHERE did = %L', did)) THEN
			-- the import committed: the repo lives there now
			UPDATE repo_stream.directory dir SET shard = d.moving_to, moving_to = NULL, moved_from = d.shard
			 WHERE dir.did = _move_settle.did;
			d.moved_from := d.shard;
			outcome := 'finished';
		ELSE
			-- it did not: back where it was, active (a move starts only from an active repo)
			st := repo_stream._move_query(src_info,
				format('SELECT status FROM repo_stream.repos WHERE did = %L', did));
			IF st = 'deactivated' THEN
				PERFORM repo_stream._move_query(src_info, format('SELECT repo_stream.activate_repo(%L)::text', did));
			ELSIF st IS DISTINCT FROM 'active' THEN
				RAISE EXCEPTION 'repo "%" is on neither shard: % has it %, % not at all', did,
					d.shard, coalesce(st, 'not at all'), d.moving_to
					USING ERRCODE = 'object_not_in_prerequisite_state';
			END IF;
			UPDATE repo_stream.directory dir SET moving_to = NULL WHERE dir.did = _move_settle.did;
			RETURN 'rolled back';
		END IF;
	END IF;
	IF d.moved_from IS NOT NULL THEN
		-- the old copy goes (its #account deleted hands the repo over on a relay)
		BEGIN
			SELECT conninfo INTO old_info FROM repo_stream.shards WHERE name = d.moved_from;
			st := repo_stream._move_query(old_info,
				format('SELECT status FROM repo_stream.repos WHERE did = %L', did));
			IF st IS DISTINCT FROM 'deleted' AND st IS NOT NULL THEN
				PERFORM repo_stream._move_query(old_info, format('SELECT repo_stream.delete_repo(%L)::text', did));
			END IF;
			UPDATE repo_stream.directory dir SET moved_from = NULL WHERE dir.did = _move_settle.did;
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'repo "%" moved to shard %, but its old copy on shard % is not deleted yet: %',
				did, d.shard, d.moved_from, SQLERRM
				USING HINT = 'SELECT * FROM repo_stream.router_recover_moves() deletes it once that shard answers.';
		END;
		outcome := 'finished';
	END IF;
	RETURN outcome;
END $$;
CREATE OR REPLACE FUNCTION _move_begin(did text, to_shard text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	k record;
	src text;
	src_info text;
	st text;
	settled text;
BEGIN
	IF did IS NULL OR to_shard IS NULL THEN
		RAISE EXCEPTION '% must not be NULL', CASE WHEN did IS NULL THEN 'did' ELSE 'to_shard' END
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	k := repo_stream._move_lock_key(did);
	IF NOT pg_try_advisory_lock(k.k1, k.k2) THEN
		RAISE EXCEPTION 'repo "%" is already moving', did
			USING ERRCODE = '55R02', HINT = 'move_repo runs in another session; retry when it is done.';
	END IF;
	BEGIN
		settled := repo_stream._move_settle(did);
		IF settled <> 'none' THEN
			RAISE NOTICE 'an interrupted move of repo "%" was %', did, settled;
		END IF;
		SELECT d.shard, s.conninfo INTO src, src_info
		  FROM repo_stream.directory d JOIN repo_stream.shards s ON s.name = d.shard
		 WHERE d.did = _move_begin.did FOR UPDATE OF d;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'repo "%" does not exist', did USING ERRCODE = 'undefined_object';
		END IF;
		IF NOT EXISTS (SELECT 1 FROM repo_stream.shards WHERE name = to_shard) THEN
			RAISE EXCEPTION 'shard "%" does not exist', to_shard USING ERRCODE = 'undefined_object';
		END IF;
		IF src = to_shard THEN
			IF settled = 'finished' THEN
				PERFORM repo_stream._move_unlock(did);
				RETURN false;
			END IF;
			RAISE EXCEPTION 'repo "%" is already on shard "%"', did, to_shard USING ERRCODE = 'invalid_parameter_value';
		END IF;
		st := repo_stream._move_query(src_info, format('SELECT status FROM repo_stream.repos WHERE did = %L', did));
		IF st IS DISTINCT FROM 'active' THEN
			RAISE EXCEPTION 'repo "%" is % on shard "%"', did, coalesce(st, 'missing'), src
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  HINT = 'Only an active repo moves.';
		END IF;
		-- a repo of the DID on the new shard (not one it left, deleted) is
		-- another repo: refused before the old copy is touched
		st := repo_stream._move_query((SELECT conninfo FROM repo_stream.shards WHERE name = to_shard),
			format('SELECT status FROM repo_stream.repos WHERE did = %L', did));
		IF st IN ('active', 'deactivated') THEN
			RAISE EXCEPTION 'repo "%" already exists on shard "%" (%)', did, to_shard, st
				USING ERRCODE = 'duplicate_object',
					  HINT = 'A move never replaces a repo; delete that one on its shard first if it is not wanted.';
		END IF;
		UPDATE repo_stream.directory d SET moving_to = to_shard WHERE d.did = _move_begin.did;
	EXCEPTION WHEN OTHERS THEN
		PERFORM repo_stream._move_unlock(did);
		RAISE;
	END;
	RETURN true;
END $$;

-- comments on the functions that had none
COMMENT ON FUNCTION _router_configure() IS
	'Internal: rewrites the PL/Proxy cluster (foreign server repo_stream_shards) from the shards table';
COMMENT ON FUNCTION _route(text, boolean) IS
	'Internal: the PL/Proxy partition of the shard hosting a DID (write: refuses a repo being moved, 55R02)';
COMMENT ON FUNCTION _route_new(text) IS
	'Internal: the partition a new repo is created on (the shard with the fewest repos), recorded in the directory';
COMMENT ON FUNCTION _router_dblink() IS
	'Internal: the schema dblink is installed in (55000 with a hint when it is not)';
COMMENT ON FUNCTION _router_connections(text) IS
	'Internal: the names of this session''s dblink connections';
