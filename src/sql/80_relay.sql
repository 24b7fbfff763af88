-- Relay mode: this database merges the event logs of several shards (each
-- a repo_stream database holding its own repos) into its own log, as
-- atproto's relay does for PDSs.  See docs/scale-out.md.
--
-- Transport: PostgreSQL's logical replication.  Each shard publishes
-- repo_stream.event_log (via its partition root); the relay subscribes, and
-- the replicated rows land on the relay's own repo_stream.event_log, where
-- the trigger relay_ingest (ENABLE REPLICA: it fires only in the apply
-- workers) verifies each frame, mirrors its ops into the relay's records,
-- appends it to the relay's log under a relay seq and drops the raw row.
-- The relay's append and the subscription's progress commit together.
-- Remote calls (keys, exports, status) go through the relay's own libpq
-- connections (src/relay_conn_sql.c), which nothing in SQL can open,
-- name or replace, each checked to reach the registered shard database.

CREATE TABLE relay_shards (
	name		text PRIMARY KEY,
	conninfo	text NOT NULL,
	subscription name NOT NULL UNIQUE,	-- rs_relay_<name>
	slot		name NOT NULL,			-- on the shard
	added_at	timestamptz NOT NULL DEFAULT now(),
	last_shard_seq bigint NOT NULL DEFAULT 0,	-- highest shard seq received
	last_event_at timestamptz,			-- the shard's logged_at of the last event received
	last_received_at timestamptz,		-- when the relay received it
	events		bigint NOT NULL DEFAULT 0,	-- re-sequenced into the relay's log
	duplicates	bigint NOT NULL DEFAULT 0,	-- already applied (the backfill's overlap)
	dropped_host bigint NOT NULL DEFAULT 0,	-- for a repo the shard does not host
	rejected	bigint NOT NULL DEFAULT 0,	-- failed verification or broke a chain
	identity	text UNIQUE,			-- <system identifier>/<database> of the shard
	replayed	bigint NOT NULL DEFAULT 0	-- a frame whose rev is not after its repo's (dropped)
);
COMMENT ON TABLE relay_shards IS 'Relay mode: the shards whose event logs this relay merges (relay_add_shard)';

-- The relay's view of each mirrored repo; its head, key and status are in
-- repos (did_key, head_rev, data_cid, head_commit, status, last_seq), its
-- keys in repo_key_history, as for a local repo.
CREATE TABLE relay_repos (
	did			text PRIMARY KEY REFERENCES repos ON DELETE CASCADE,
	shard		text NOT NULL REFERENCES relay_shards,	-- the shard that hosts it
	shard_seq	bigint NOT NULL DEFAULT 0,	-- its last event applied, in the shard's seq
	desynchronized boolean NOT NULL DEFAULT false,
	desync_reason text,
	desync_at	timestamptz,
	resyncs		int NOT NULL DEFAULT 0,
	-- while a shard is being added: the export seq whose #sync is still to be
	-- emitted, and the verified chain of the window's events so far
	sync_pending_seq bigint,
	hist_rev	text,
	hist_data	bytea,
	hist_complete boolean NOT NULL DEFAULT false,
	host_rev	text,					-- the first rev verified from the host (NULL: none yet)
	claim_shard	text,					-- another shard's #sync, held until the host deletes the repo
	claim_seq	bigint					-- that #sync's seq there
);
CREATE INDEX relay_repos_shard ON relay_repos (shard);
COMMENT ON TABLE relay_repos IS 'Relay mode: the shard hosting each mirrored repo, its chain position and whether it is desynchronized';

SELECT pg_catalog.pg_extension_config_dump('relay_shards', '');
SELECT pg_catalog.pg_extension_config_dump('relay_repos', '');

CREATE FUNCTION relay_event_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'rs_relay_event_trigger' LANGUAGE C;
COMMENT ON FUNCTION relay_event_trigger() IS
	'Relay mode, internal: the replica trigger on event_log that verifies, mirrors and re-sequences each event a shard''s subscription applies';
-- Inert outside the apply workers of the relay's own subscriptions (then the
-- row is stored as given, as in a pg_dump restore).
CREATE TRIGGER relay_ingest BEFORE INSERT ON event_log
	FOR EACH ROW EXECUTE FUNCTION relay_event_trigger();
ALTER TABLE event_log ENABLE REPLICA TRIGGER relay_ingest;

-- ------------------------------------------------------------ connections

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

-- --------------------------------------------------------------- ingest

CREATE FUNCTION _relay_ingest(shard text, seq bigint, frame bytea) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_relay_ingest' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION _relay_ingest(text, bigint, bytea) IS
	'Relay mode, internal: one event of a shard (its seq there), as the replication trigger handles it; returns applied, historical, duplicate, dropped (host), rejected, ignored or replayed';

CREATE FUNCTION _relay_sync_repo(shard text, did text, pending boolean) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_relay_sync_repo' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION _relay_sync_repo(text, text, boolean) IS
	'Relay mode, internal: mirror a repo of a shard from a fresh export (its keys, records and head); returns its status there';

CREATE FUNCTION _relay_finish_backfill(shard text) RETURNS int
	AS 'MODULE_PATHNAME', 'rs_relay_finish_backfill' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION _relay_finish_backfill(text) IS
	'Relay mode, internal: ends a new shard''s backfill, emitting the #sync of each repo whose window was verified; returns how many';

CREATE FUNCTION relay_resync(did text DEFAULT NULL) RETURNS int
	AS 'MODULE_PATHNAME', 'rs_relay_resync' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION relay_resync(text) IS
	'Relay mode: resync a repo (NULL: every desynchronized repo) from a fresh export of the shard that hosts it; returns how many are in sync afterwards';

-- ------------------------------------------------------------ add a shard

CREATE FUNCTION relay_add_shard(name text, conninfo text) RETURNS void
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

-- -------------------------------------------------------------- status

-- Events the shard has logged above what the relay received, and the age
-- of the oldest of them; NULLs when the shard cannot be reached (or the
-- caller may not read relay_shards: the lag needs a superuser).
CREATE FUNCTION _relay_lag(shard text, OUT lag_events bigint, OUT lag_seconds double precision)
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
COMMENT ON FUNCTION _relay_lag(text) IS
	'Relay mode, internal: events a shard logged past what the relay received, and the age of the oldest (NULLs when the shard cannot be reached)';

CREATE VIEW relay_status AS
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

REVOKE EXECUTE ON FUNCTION
	relay_event_trigger(), _relay_query(text, text), _relay_mask_conninfo(text),
	_relay_ingest(text, bigint, bytea), _relay_sync_repo(text, text, boolean),
	_relay_finish_backfill(text), relay_resync(text), relay_add_shard(text, text),
	_relay_lag(text)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION relay_resync(text), _relay_lag(text), _relay_mask_conninfo(text) TO repo_stream_admin;
GRANT SELECT ON relay_status TO repo_stream_admin;
