-- repo_stream 0.1.0 -> 0.2.0 (ALTER EXTENSION repo_stream UPDATE).
-- Every change to src/sql/ since 0.1.0 is repeated here, so that a database
-- on 0.1.0 ends with the same schema as a fresh install of 0.2.0
-- (test/t/090_upgrade.pl compares the two).  The digest line below is the
-- sha256 of src/sql/*.sql that this script brings a database up to; `make
-- check-upgrade` fails when src/sql changes and this file does not.
\echo Use "ALTER EXTENSION repo_stream UPDATE" to load this file. \quit
-- source digest: 59212561cca65f4a989d2276c21d58cbc5a7a8ca57690a591621f15cab72f5d1

-- scale-out security (issue 17: F-H2, F-H4, F-M4, F-L10): the relay's own
-- libpq connections (no dblink), checked against relay_shards.identity;
-- host changes held as claims; replayed frames counted; conninfo masked by
-- parsing
ALTER TABLE relay_shards ADD COLUMN replayed bigint NOT NULL DEFAULT 0;
ALTER TABLE relay_repos ADD COLUMN host_rev text, ADD COLUMN claim_shard text, ADD COLUMN claim_seq bigint;
-- each repo's head was verified from its host
UPDATE relay_repos r SET host_rev = p.head_rev FROM repos p WHERE p.did = r.did AND r.shard_seq > 0;
DROP FUNCTION _relay_query(text, text, text);
DROP FUNCTION _relay_dblink();
-- A statement on a shard through the relay's own connection (made if
-- needed; trusted only if the server is the database recorded in
-- relay_shards.identity, which relay_add_shard reads through it first).
-- The caller names the columns: AS t(...).  Superusers only.
CREATE FUNCTION _relay_query(shard text, query text) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'rs_relay_query' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION _relay_query(text, text) IS
	'Relay mode, internal: a statement on a registered shard through the relay''s own connection (columns given with AS t(...)); superuser';

CREATE FUNCTION _relay_mask_conninfo(conninfo text) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_relay_mask_conninfo_sql' LANGUAGE C STRICT IMMUTABLE;
COMMENT ON FUNCTION _relay_mask_conninfo(text) IS
	'Relay mode: a conninfo as libpq parses it (any form), key=''value'' pairs with every secret (password, sslpassword) shown as ********';

COMMENT ON FUNCTION _relay_ingest(text, bigint, bytea) IS
	'Relay mode, internal: one event of a shard (its seq there), as the replication trigger handles it; returns applied, historical, duplicate, dropped (host), rejected, ignored or replayed';

CREATE OR REPLACE FUNCTION relay_add_shard(name text, conninfo text) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	shard text := relay_add_shard.name;
	ds_other text;
	sub text := 'rs_relay_' || relay_add_shard.name;
	slot text;
	cursor bigint := 0;
	n int;
	r record;
BEGIN
	IF shard IS NULL THEN
		RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF relay_add_shard.conninfo IS NULL THEN
		RAISE EXCEPTION 'conninfo must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF shard !~ '^[a-z][a-z0-9_]{0,29}$' THEN
		RAISE EXCEPTION 'invalid shard name "%"', shard
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'A shard name is 1 to 30 lower-case letters, digits and underscores, starting with a letter.';
	END IF;
	IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		RAISE EXCEPTION 'only a superuser can add a shard'
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'Adding a shard creates a subscription, which needs superuser in PostgreSQL 15.';
	END IF;
	IF EXISTS (SELECT 1 FROM repo_stream.relay_shards s WHERE s.name = shard) THEN
		RAISE EXCEPTION 'shard "%" already exists', shard USING ERRCODE = 'duplicate_object';
	END IF;
	slot := 'rs_relay_' || shard || '_' || (SELECT system_identifier FROM pg_control_system());
	INSERT INTO repo_stream.relay_shards (name, conninfo, subscription, slot)
	VALUES (shard, relay_add_shard.conninfo, sub, slot);

	-- the shard: repo_stream there, a publication of its log
	SELECT * INTO r FROM repo_stream._relay_query(shard,
		$q$SELECT (SELECT extversion FROM pg_extension WHERE extname = 'repo_stream'), current_setting('wal_level'),
				  (SELECT system_identifier FROM pg_control_system())::text || '/' || current_database()$q$)
		AS t(v text, w text, id text);
	IF r.v IS NULL THEN
		RAISE EXCEPTION 'shard "%" has no repo_stream extension', shard
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	-- one subscription per shard database: a second name for the same one
	-- would relay its whole history again
	IF r.id = (SELECT system_identifier FROM pg_control_system())::text || '/' || current_database() THEN
		RAISE EXCEPTION 'shard "%" is this relay''s own database', shard
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT s.name INTO ds_other FROM repo_stream.relay_shards s WHERE s.identity = r.id;
	IF ds_other IS NOT NULL THEN
		RAISE EXCEPTION 'shard "%" is the database of shard "%"', shard, ds_other
			USING ERRCODE = 'duplicate_object',
				  DETAIL = format('Both conninfos lead to database %s; it is relayed once.', r.id);
	END IF;
	UPDATE repo_stream.relay_shards s SET identity = r.id WHERE s.name = shard;
	IF r.w <> 'logical' THEN
		RAISE EXCEPTION 'shard "%" has wal_level %, not logical', shard, r.w
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'ALTER SYSTEM SET wal_level = logical on the shard, and restart it.';
	END IF;
	PERFORM * FROM repo_stream._relay_query(shard, $q$
		SELECT 1 FROM (SELECT 1) x WHERE NOT EXISTS (SELECT FROM pg_publication WHERE pubname = 'repo_stream_relay')
		$q$) AS t(x int);
	IF FOUND THEN
		BEGIN
			PERFORM * FROM repo_stream._relay_query(shard, $q$
				CREATE PUBLICATION repo_stream_relay FOR TABLE repo_stream.event_log
					WITH (publish = 'insert', publish_via_partition_root = true)$q$) AS t(status text);
		EXCEPTION WHEN insufficient_privilege THEN
			RAISE EXCEPTION 'the relay''s role on shard "%" may not create the publication repo_stream_relay', shard
				USING ERRCODE = 'insufficient_privilege',
					  HINT = 'Create it on the shard as a superuser: CREATE PUBLICATION repo_stream_relay FOR TABLE repo_stream.event_log WITH (publish = ''insert'', publish_via_partition_root = true);';
		END;
	END IF;

	-- the slot first: every transaction committing after it reaches the
	-- subscription; what committed before is in the retained window
	PERFORM * FROM repo_stream._relay_query(shard,
		format('SELECT lsn::text FROM pg_create_logical_replication_slot(%L, %L)', slot, 'pgoutput'))
		AS t(lsn text);
	BEGIN
		-- every repo's state from an export (its #sync waits for its place in the window)
		FOR r IN SELECT * FROM repo_stream._relay_query(shard,
				'SELECT did FROM repo_stream.repos WHERE status <> ''deleted'' ORDER BY did') AS t(did text)
		LOOP
			PERFORM repo_stream._relay_sync_repo(shard, r.did, true);
		END LOOP;
		-- the retained window, in seq order: events at or below a repo's
		-- export are re-emitted after verification, later ones applied
		LOOP
			n := 0;
			FOR r IN SELECT * FROM repo_stream._relay_query(shard,
					format('SELECT seq, frame FROM repo_stream.events_since(%s, 500) WHERE seq IS NOT NULL', cursor))
					AS t(seq bigint, frame bytea)
			LOOP
				PERFORM repo_stream._relay_ingest(shard, r.seq, r.frame);
				cursor := r.seq;
				n := n + 1;
			END LOOP;
			EXIT WHEN n < 500;
		END LOOP;
		PERFORM repo_stream._relay_finish_backfill(shard);
		-- copy_data = false: the window above was the initial copy
		EXECUTE format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION repo_stream_relay'
					   ' WITH (create_slot = false, slot_name = %L, copy_data = false)',
					   sub, relay_add_shard.conninfo, slot);
	EXCEPTION WHEN OTHERS THEN
		-- a slot left behind would hold the shard's WAL forever
		BEGIN
			PERFORM * FROM repo_stream._relay_query(shard,
				format('SELECT ''dropped'' FROM pg_drop_replication_slot(%L)', slot)) AS t(x text);
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'could not drop replication slot "%" on shard "%": %', slot, shard, SQLERRM;
		END;
		RAISE;
	END;
END $$;
COMMENT ON FUNCTION relay_add_shard(text, text) IS
	'Relay mode: subscribe to a shard''s event log (logical replication, slot on the shard), backfill its repos from exports and its retained window; superuser';

CREATE OR REPLACE FUNCTION _relay_lag(shard text, OUT lag_events bigint, OUT lag_seconds double precision)
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	since bigint;
BEGIN
	SELECT last_shard_seq INTO since FROM repo_stream.relay_shards WHERE name = shard;
	SELECT t.n, t.s INTO lag_events, lag_seconds FROM repo_stream._relay_query(shard,
		format('SELECT count(*), coalesce(extract(epoch FROM now() - min(logged_at)), 0)::float8'
			   '  FROM repo_stream.event_log WHERE seq > %s', since)) AS t(n bigint, s float8);
EXCEPTION WHEN OTHERS THEN
	lag_events := NULL;
	lag_seconds := NULL;
END $$;

CREATE OR REPLACE VIEW relay_status AS
SELECT s.name AS shard,
	   repo_stream._relay_mask_conninfo(s.conninfo) AS conninfo,
	   s.subscription,
	   st.pid IS NOT NULL AS connected,
	   st.received_lsn,
	   st.last_msg_receipt_time,
	   s.last_shard_seq,
	   s.last_event_at,
	   l.lag_events,
	   l.lag_seconds,
	   (SELECT count(*) FROM repo_stream.relay_repos r JOIN repo_stream.repos p USING (did)
		 WHERE r.shard = s.name AND p.status <> 'deleted') AS repos,
	   coalesce((SELECT array_agg(r.did ORDER BY r.did) FROM repo_stream.relay_repos r
				  WHERE r.shard = s.name AND r.desynchronized), '{}') AS desynchronized,
	   s.events,
	   s.duplicates,
	   s.dropped_host,
	   s.rejected,
	   (SELECT coalesce(sum(r.resyncs), 0) FROM repo_stream.relay_repos r WHERE r.shard = s.name) AS resyncs,
	   s.replayed
  FROM repo_stream.relay_shards s
  LEFT JOIN pg_stat_subscription st ON st.subname = s.subscription AND st.relid IS NULL
  LEFT JOIN LATERAL repo_stream._relay_lag(s.name) l ON true;
COMMENT ON VIEW relay_status IS
	'Relay mode: per shard, its connection (secrets masked), replication lag (events and seconds), the repos it hosts, the desynchronized repos and event counts';

REVOKE EXECUTE ON FUNCTION _relay_query(text, text), _relay_mask_conninfo(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _relay_mask_conninfo(text) TO repo_stream_admin;


-- ---- table privileges and locks (issue 17, F-H3); log rotation status (F-M5)
-- An opt-in role for plain DELETE on records, which needs table-level
-- DELETE (and so allows any LOCK TABLE mode); writers lose table-level
-- UPDATE and DELETE and get UPDATE by column (see 90_privileges.sql).
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'repo_stream_deleter') THEN
		CREATE ROLE repo_stream_deleter NOLOGIN;
	END IF;
END $$;
REVOKE UPDATE, DELETE ON repo_stream.records FROM repo_stream_writer;
GRANT UPDATE (did, collection, rkey, record, cid) ON repo_stream.records TO repo_stream_writer;
GRANT repo_stream_writer TO repo_stream_deleter;
GRANT DELETE ON repo_stream.records TO repo_stream_deleter;

CREATE FUNCTION repo_stream._log_status(OUT current_segment int, OUT pruned_through bigint, OUT newest_seq bigint,
										OUT cap_events bigint, OUT excess_events bigint, OUT rotation_due boolean,
										OUT rotation_blocked_by int[])
	AS 'MODULE_PATHNAME', 'rs_log_status' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION repo_stream._log_status() IS
	'The event log ring''s state, for the log_status view';
CREATE VIEW repo_stream.log_status AS SELECT * FROM repo_stream._log_status();
COMMENT ON VIEW repo_stream.log_status IS
	'The event log ring: current_segment, pruned_through, newest_seq, cap_events (the most it holds while rotation keeps up; NULL without a count limit), excess_events (seqs held beyond it), rotation_due, rotation_blocked_by (pids whose locks keep a due rotation from happening: a transaction left open after a plain SELECT on the log)';
REVOKE ALL ON repo_stream.log_status FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION repo_stream._log_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION repo_stream._log_status() TO repo_stream_reader;
GRANT SELECT ON repo_stream.log_status TO repo_stream_reader;


-- views: handler security (issue 17) -----------------------------------------
-- A handler view records its handler's owner and definition; refresh and
-- drop belong to the view's owner.
ALTER TABLE views ADD COLUMN handler_owner oid, ADD COLUMN handler_digest bytea;

CREATE FUNCTION _view_handler_digest(handler regprocedure) RETURNS bytea
	AS 'MODULE_PATHNAME', 'rs_view_handler_digest_sql' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION _view_handler_digest(regprocedure) IS
	'internal: sha256 of the pg_proc fields that define what a handler does (owner, language, body, settings, security, ...)';
REVOKE EXECUTE ON FUNCTION _view_handler_digest(regprocedure) FROM PUBLIC;

-- Handler views made by 0.1.0 get their handler recorded as it is now only
-- where no other role could have changed it: it belongs to the view's
-- creator, or to a superuser.  The others are refused until re-created.
UPDATE views v SET handler_owner = p.proowner, handler_digest = _view_handler_digest(v.handler)
  FROM pg_catalog.pg_proc p
 WHERE v.kind = 'handler' AND p.oid = v.handler
   AND (p.proowner = v.owner
        OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p.proowner));

COMMENT ON FUNCTION create_handler_view(text, regprocedure, text) IS
	'A view that calls handler(seq bigint, did text, action text, path text, record jsonb) in seq order, as the creating role, in a security-restricted operation within repo_stream.view_handler_timeout: create for every existing record now, then create/update/delete per op, delete_repo, reset before a rebuild; the handler''s owner and definition are recorded, and a changed handler is not run';
COMMENT ON FUNCTION refresh_view(text, int) IS
	'Apply the events after the view''s cursor (at most max_events), in this transaction with the cursor''s advance; rebuilds a view whose cursor left the retained window; returns the number of events applied; only the view''s owner or a superuser';
COMMENT ON FUNCTION drop_view(text) IS 'Drop a view, its count table and its memory; only the view''s owner or a superuser';

-- comments on the functions that had none
COMMENT ON FUNCTION records_trigger() IS
	'The write path''s trigger on records: validates and encodes each row, locks its repo, and at pre-commit turns the transaction''s changes into signed commits in the event log';
COMMENT ON FUNCTION deactivate_repo(text) IS
	'Deactivates a repo: appends an #account (active false, status deactivated); writes are refused (55R01) until activate_repo';
COMMENT ON FUNCTION activate_repo(text) IS
	'Re-activates a deactivated repo: appends an #account (active true); writes are accepted again';
COMMENT ON FUNCTION delete_repo(text) IS
	'Deletes a repo: its records, nodes and key go, an #account (status deleted) is appended; the DID is not reused except by a repo moving back (import_repo of a later rev)';
COMMENT ON FUNCTION relay_event_trigger() IS
	'Relay mode, internal: the replica trigger on event_log that verifies, mirrors and re-sequences each event a shard''s subscription applies';
COMMENT ON FUNCTION _relay_finish_backfill(text) IS
	'Relay mode, internal: ends a new shard''s backfill, emitting the #sync of each repo whose window was verified; returns how many';
COMMENT ON FUNCTION _relay_lag(text) IS
	'Relay mode, internal: events a shard logged past what the relay received, and the age of the oldest (NULLs when the shard cannot be reached)';
COMMENT ON TABLE repo_keys IS 'Each repo''s signing key, sealed under the master key file; the extension owner alone reads it';
COMMENT ON TABLE repo_key_history IS 'Every did:key a repo has signed with and the rev it started at, so old events stay verifiable (repo_keys())';
COMMENT ON TABLE mst_nodes IS 'The MST nodes of each repo''s current tree (DAG-CBOR), keyed by CID; maintained by the write path';
COMMENT ON TABLE event_log IS 'The bounded event log: one signed frame per event, in a ring of 8 segments; read it with events_since()';
COMMENT ON TABLE log_state IS 'The event log ring''s state: current segment, where each began, and the highest pruned seq; read log_status';
COMMENT ON TABLE view_skips IS 'Per view and repo: the seq through which a #sync''s rebuild already reflects the repo''s events (skipped when applied)';
