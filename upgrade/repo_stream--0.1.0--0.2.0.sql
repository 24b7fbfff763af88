-- repo_stream 0.1.0 -> 0.2.0 (ALTER EXTENSION repo_stream UPDATE).
-- Every change to src/sql/ since 0.1.0 is repeated here, so that a database
-- on 0.1.0 ends with the same schema as a fresh install of 0.2.0
-- (test/t/090_upgrade.pl compares the two).  The digest line below is the
-- sha256 of src/sql/*.sql that this script brings a database up to; `make
-- check-upgrade` fails when src/sql changes and this file does not.
\echo Use "ALTER EXTENSION repo_stream UPDATE" to load this file. \quit
-- source digest: a5befbc9d6e1b3118adc155aadc780ec38077bbcdac6751e5caff5076384dffb

-- search_path pinning (issue 17, F-H5 and its kind) ----------------------------
-- The DO blocks of the install script qualify every name (nothing to redo
-- here: they made roles and partitions a 0.1.0 database has).  The relay's
-- session on a shard pins its search_path, as the queries sent there name
-- pg_catalog's objects unqualified.
CREATE OR REPLACE FUNCTION _relay_query(shard text, query text, coldefs text) RETURNS SETOF record
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ds text := repo_stream._relay_dblink();
	conn text := 'rs_relay_' || shard;
	info text;
	open text[];
BEGIN
	SELECT conninfo INTO info FROM repo_stream.relay_shards WHERE name = shard;
	IF info IS NULL THEN
		RAISE EXCEPTION 'shard "%" is not known to this relay', shard
			USING ERRCODE = 'undefined_object';
	END IF;
	FOR attempt IN 1 .. 2 LOOP
		EXECUTE format('SELECT %I.dblink_get_connections()', ds) INTO open;
		IF open IS NULL OR NOT conn = ANY (open) THEN
			EXECUTE format('SELECT %I.dblink_connect(%L, %L)', ds, conn, info);
			-- the queries name pg_catalog's objects unqualified: the shard's
			-- session must not find look-alikes first (public on the shard)
			EXECUTE format('SELECT %I.dblink_exec(%L, %L)', ds, conn, 'SET search_path = pg_catalog, pg_temp');
		END IF;
		BEGIN
			RETURN QUERY EXECUTE format('SELECT * FROM %I.dblink(%L, %L) AS t(%s)', ds, conn, query, coldefs);
			RETURN;
		EXCEPTION WHEN OTHERS THEN
			IF attempt = 2 THEN
				RAISE;
			END IF;
			EXECUTE format('SELECT %I.dblink_disconnect(%L)', ds, conn);
		END;
	END LOOP;
END $$;
