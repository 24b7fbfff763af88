
-- Repos, records, MST nodes and the event log --------------------------------

CREATE TABLE repos (
	did			text PRIMARY KEY,
	did_key		text NOT NULL,
	status		text NOT NULL DEFAULT 'active'
				CHECK (status IN ('active', 'deactivated', 'deleted')),
	head_cid	text,				-- CID of the current signed commit
	head_rev	text,				-- its rev (a TID)
	data_cid	bytea,				-- MST root the commit signs
	head_commit bytea,			-- the signed commit's DAG-CBOR bytes
	last_seq	bigint,				-- seq of the repo's latest event
	created_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE repos IS 'One row per repo (DID); heads are maintained by repo_stream';

-- Sealed with the master key file; no role but the extension owner reads it.
CREATE TABLE repo_keys (
	did			text PRIMARY KEY REFERENCES repos ON DELETE CASCADE,
	sealed		bytea NOT NULL
);
COMMENT ON TABLE repo_keys IS 'Each repo''s signing key, sealed under the master key file; the extension owner alone reads it';

-- Every signing key a repo has used, so old events stay verifiable.
CREATE TABLE repo_key_history (
	did			text NOT NULL REFERENCES repos ON DELETE CASCADE,
	did_key		text NOT NULL,
	since_rev	text NOT NULL,
	PRIMARY KEY (did, since_rev)
);
COMMENT ON TABLE repo_key_history IS 'Every did:key a repo has signed with and the rev it started at, so old events stay verifiable (repo_keys())';

CREATE TABLE records (
	did			text NOT NULL,
	collection	text NOT NULL,
	rkey		text NOT NULL,
	record		jsonb NOT NULL,
	cid			text NOT NULL,		-- computed by the trigger; any given value is replaced
	PRIMARY KEY (did, collection, rkey)
);
COMMENT ON TABLE records IS
	'Current records. Write with plain DML or put_record/create_record/delete_record; each transaction becomes signed commits';

CREATE TABLE mst_nodes (
	did			text NOT NULL,
	cid			bytea NOT NULL,
	rev			text NOT NULL,		-- rev of the commit that stored it (diff exports)
	node		bytea NOT NULL,
	PRIMARY KEY (did, cid)
);
ALTER TABLE mst_nodes ALTER COLUMN node SET STORAGE EXTERNAL;
ALTER TABLE mst_nodes SET (toast_tuple_target = 8160);
COMMENT ON TABLE mst_nodes IS 'The MST nodes of each repo''s current tree (DAG-CBOR), keyed by CID; maintained by the write path';

-- Sequence numbers are taken at commit time under the sequencing lock;
-- see docs/log.md, "No gaps", for why readers never skip one.
CREATE SEQUENCE event_seq MAXVALUE 9007199254740991;

-- A ring of segments: pruning truncates the oldest segment, so the log
-- never accumulates dead tuples.
CREATE TABLE event_log (
	seq			bigint NOT NULL,
	segment		int NOT NULL,
	did			text NOT NULL,
	kind		text NOT NULL CHECK (kind IN ('commit', 'account', 'sync')),
	logged_at	timestamptz NOT NULL DEFAULT now(),
	frame		bytea NOT NULL
) PARTITION BY LIST (segment);
CREATE INDEX event_log_seq ON event_log (seq);
COMMENT ON TABLE event_log IS 'The bounded event log: one signed frame per event, in a ring of 8 segments; read it with events_since()';

DO $$
BEGIN
	FOR i IN 0 .. 7 LOOP
		EXECUTE pg_catalog.format('CREATE TABLE repo_stream.event_log_%s PARTITION OF repo_stream.event_log FOR VALUES IN (%s)', i, i);
		-- frames up to ~8 kB stay in the row; larger ones go to TOAST uncompressed
		EXECUTE pg_catalog.format('ALTER TABLE repo_stream.event_log_%s ALTER COLUMN frame SET STORAGE EXTERNAL', i);
		EXECUTE pg_catalog.format('ALTER TABLE repo_stream.event_log_%s SET (toast_tuple_target = 8160)', i);
	END LOOP;
END $$;

CREATE TABLE log_state (
	id			boolean PRIMARY KEY DEFAULT true CHECK (id),
	current_segment int NOT NULL DEFAULT 0,
	segment_start bigint[] NOT NULL DEFAULT array_fill(0::bigint, ARRAY[8]),
	segment_started_at timestamptz[] NOT NULL DEFAULT array_fill(now(), ARRAY[8]),
	pruned_through bigint NOT NULL DEFAULT 0	-- every seq <= this is gone
);
COMMENT ON TABLE log_state IS 'The event log ring''s state: current segment, where each began, and the highest pruned seq; read log_status';
-- No row yet: the first rotation inserts it.  So a pg_dump restore, which
-- copies the dumped row in, does not collide with one made here.

-- pg_dump keeps the data (sealed keys are useless without the key file).
SELECT pg_catalog.pg_extension_config_dump('repos', '');
SELECT pg_catalog.pg_extension_config_dump('repo_keys', '');
SELECT pg_catalog.pg_extension_config_dump('repo_key_history', '');
SELECT pg_catalog.pg_extension_config_dump('records', '');
SELECT pg_catalog.pg_extension_config_dump('mst_nodes', '');
SELECT pg_catalog.pg_extension_config_dump('log_state', '');
SELECT pg_catalog.pg_extension_config_dump('event_seq', '');
SELECT pg_catalog.pg_extension_config_dump('event_log_0', '');
SELECT pg_catalog.pg_extension_config_dump('event_log_1', '');
SELECT pg_catalog.pg_extension_config_dump('event_log_2', '');
SELECT pg_catalog.pg_extension_config_dump('event_log_3', '');
SELECT pg_catalog.pg_extension_config_dump('event_log_4', '');
SELECT pg_catalog.pg_extension_config_dump('event_log_5', '');
SELECT pg_catalog.pg_extension_config_dump('event_log_6', '');
SELECT pg_catalog.pg_extension_config_dump('event_log_7', '');

-- The write path -------------------------------------------------------------

CREATE FUNCTION records_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'rs_records_trigger' LANGUAGE C;
COMMENT ON FUNCTION records_trigger() IS
	'The write path''s trigger on records: validates and encodes each row, locks its repo, and at pre-commit turns the transaction''s changes into signed commits in the event log';
-- BEFORE ROW: validate, lock the repo, encode, fill in cid.
CREATE TRIGGER records_write BEFORE INSERT OR UPDATE OR DELETE ON records
	FOR EACH ROW EXECUTE FUNCTION records_trigger();
-- AFTER STATEMENT with transition tables: log exactly the rows that changed.
CREATE TRIGGER records_log_insert AFTER INSERT ON records
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION records_trigger();
CREATE TRIGGER records_log_update AFTER UPDATE ON records
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION records_trigger();
CREATE TRIGGER records_log_delete AFTER DELETE ON records
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION records_trigger();
CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON records
	FOR EACH STATEMENT EXECUTE FUNCTION records_trigger();

CREATE FUNCTION create_repo(did text) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_create_repo' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION create_repo(text) IS 'Create a repo with a fresh Ed25519 key; returns its did:key';

CREATE FUNCTION repo_key(did text) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_repo_key' LANGUAGE C STABLE;
COMMENT ON FUNCTION repo_key(text) IS 'The did:key that verifies the repo''s current commits';

CREATE FUNCTION deactivate_repo(did text) RETURNS void
	AS 'MODULE_PATHNAME', 'rs_deactivate_repo' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION deactivate_repo(text) IS
	'Deactivates a repo: appends an #account (active false, status deactivated); writes are refused (55R01) until activate_repo';
CREATE FUNCTION activate_repo(did text) RETURNS void
	AS 'MODULE_PATHNAME', 'rs_activate_repo' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION activate_repo(text) IS
	'Re-activates a deactivated repo: appends an #account (active true); writes are accepted again';
CREATE FUNCTION delete_repo(did text) RETURNS void
	AS 'MODULE_PATHNAME', 'rs_delete_repo' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION delete_repo(text) IS
	'Deletes a repo: its records, nodes and key go, an #account (status deleted) is appended; the DID is not reused except by a repo moving back (import_repo of a later rev)';
CREATE FUNCTION rotate_key(did text) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_rotate_key' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rotate_key(text) IS 'New signing key; emits #sync with a commit signed by it; returns the new did:key';

-- The record helpers are C: they write the row and log the op directly, or,
-- when row-level security, other triggers or constraints are in force, run
-- the same SQL as DML as the caller.  They run as the caller, who needs the
-- privileges of repo_stream_writer (get_record: repo_stream_reader).  A NULL
-- argument is an ERROR (22004).
CREATE FUNCTION put_record(did text, collection text, rkey text, record jsonb) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_put_record' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION put_record(text, text, text, jsonb) IS
	'Create or update the record at collection/rkey (its $type is the collection; a missing one is filled in); returns its CID. 42704 unknown repo, 55000 deactivated or deleted repo, 22023 bad key or $type, 54000 over 1,000,000 bytes';

CREATE FUNCTION create_record(did text, collection text, record jsonb,
							  OUT rkey text, OUT cid text)
	AS 'MODULE_PATHNAME', 'rs_create_record' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION create_record(text, text, jsonb) IS
	'Create a record under a fresh TID rkey; returns (rkey, cid). Errors as put_record';

CREATE FUNCTION delete_record(did text, collection text, rkey text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'rs_delete_record' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION delete_record(text, text, text) IS
	'Delete a record; false if there was none. 42704 unknown repo, 55000 deactivated or deleted repo';

CREATE FUNCTION get_record(did text, collection text, rkey text) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'rs_get_record' LANGUAGE C STABLE;
COMMENT ON FUNCTION get_record(text, text, text) IS
	'The record as JSON, or NULL if the repo has no such record. 42704 unknown repo, 55000 deleted repo';

CREATE FUNCTION list_records(did text, collection text, cursor text DEFAULT NULL,
							 max_records int DEFAULT 100)
	RETURNS TABLE (rkey text, cid text, record jsonb)
	AS 'MODULE_PATHNAME', 'rs_list_records' LANGUAGE C STABLE;
COMMENT ON FUNCTION list_records(text, text, text, int) IS
	'A page of a collection, newest rkey first (atproto listRecords); pass the last rkey as cursor for the next page. 42704 unknown repo, 55000 deleted repo, 22023 bad collection, cursor or max_records (1..1000)';

-- Reading the log ------------------------------------------------------------

CREATE FUNCTION events_since(cursor bigint, max_events int DEFAULT 1000,
							 repos text[] DEFAULT NULL, kinds text[] DEFAULT NULL)
	RETURNS TABLE (seq bigint, frame bytea, did text, kind text)
	AS 'MODULE_PATHNAME', 'rs_events_since' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION events_since(bigint, int, text[], text[]) IS
	'Frames with seq > cursor in seq order (at most max_events; only the repos DIDs and event kinds commit/account/sync given, NULL for all); an OutdatedCursor #info row (seq NULL, kind info) first when the cursor predates the window; FutureCursor is an ERROR (RS001); NULL cursor or max_events 22004';

CREATE FUNCTION prune_events() RETURNS bigint
	AS 'MODULE_PATHNAME', 'rs_prune_events' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION prune_events() IS
	'Apply the retention settings now; returns the seq through which events are gone';

CREATE FUNCTION _log_status(OUT current_segment int, OUT pruned_through bigint, OUT newest_seq bigint,
							OUT cap_events bigint, OUT excess_events bigint, OUT rotation_due boolean,
							OUT rotation_blocked_by int[])
	AS 'MODULE_PATHNAME', 'rs_log_status' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION _log_status() IS
	'The event log ring''s state, for the log_status view';
CREATE VIEW log_status AS SELECT * FROM _log_status();
COMMENT ON VIEW log_status IS
	'The event log ring: current_segment, pruned_through, newest_seq, cap_events (the most it holds while rotation keeps up; NULL without a count limit), excess_events (seqs held beyond it), rotation_due, rotation_blocked_by (pids whose locks keep a due rotation from happening: a transaction left open after a plain SELECT on the log)';

CREATE FUNCTION verify_repo(did text)
	RETURNS TABLE (check_name text, ok boolean, detail text)
	AS 'MODULE_PATHNAME', 'rs_verify_repo' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION verify_repo(text) IS
	'Recompute CIDs and the MST from the records, check the head commit and every retained event';
