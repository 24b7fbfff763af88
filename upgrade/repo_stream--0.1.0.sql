-- repo_stream install script, assembled from src/sql/*.sql by the Makefile.
\echo Use "CREATE EXTENSION repo_stream" to load this file. \quit

-- DAG-CBOR text is UTF-8: refuse here rather than at the first write.
DO $$
BEGIN
	IF pg_catalog.getdatabaseencoding() NOT IN ('UTF8', 'SQL_ASCII') THEN
		RAISE EXCEPTION 'repo_stream needs a UTF8 (or SQL_ASCII) database, not %',
			pg_catalog.getdatabaseencoding()
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'DAG-CBOR text is UTF-8: create the database with ENCODING ''UTF8''.';
	END IF;
END $$;

-- The three group roles (cluster-wide, made once), before any piece grants
-- to them; what each may do is in 90_privileges.sql.
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['repo_stream_writer', 'repo_stream_reader', 'repo_stream_admin'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END $$;

-- DAG-CBOR codec (atproto data model) -------------------------------------

CREATE FUNCTION json_to_cbor(jsonb) RETURNS bytea
	AS 'MODULE_PATHNAME', 'rs_json_to_cbor'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION json_to_cbor(jsonb) IS
	'Canonical DAG-CBOR bytes of any JSON value under the atproto data model';

CREATE FUNCTION cbor_to_json(bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'rs_cbor_to_json'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cbor_to_json(bytea) IS
	'JSON form of strictly validated DAG-CBOR, any value ($link, $bytes for links and bytes); refuses text with U+0000 (22P05)';

CREATE FUNCTION cbor_cid(bytea) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_cbor_cid'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cbor_cid(bytea) IS
	'CIDv1 (dag-cbor, sha2-256, base32) of valid DAG-CBOR bytes';

-- Identifier syntax (atproto.com/specs/{did,nsid,record-key,tid}), TIDs, did:key.

CREATE FUNCTION repo_stream.is_valid_did(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'is_valid_did'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.is_valid_did(text) IS
'true if the text is a syntactically valid DID (did:method:id, at most 2048 characters)';

CREATE FUNCTION repo_stream.is_valid_nsid(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'is_valid_nsid'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.is_valid_nsid(text) IS
'true if the text is a syntactically valid NSID (reversed domain + name, e.g. app.bsky.feed.post)';

CREATE FUNCTION repo_stream.is_valid_rkey(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'is_valid_rkey'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.is_valid_rkey(text) IS
'true if the text is a valid record key (1..512 of A-Za-z0-9._:~-, not "." or "..")';

CREATE FUNCTION repo_stream.is_valid_tid(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'is_valid_tid'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.is_valid_tid(text) IS
'true if the text is a syntactically valid TID (13 base32-sortable characters)';

CREATE FUNCTION repo_stream.is_valid_datetime(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'is_valid_datetime'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.is_valid_datetime(text) IS
'true if the text is an atproto datetime (RFC 3339 with a timezone, uppercase T and Z, not -00:00, at most 64 characters)';

-- PARALLEL RESTRICTED: run in the leader, so one session's TIDs stay increasing.
CREATE FUNCTION repo_stream.tid_now() RETURNS text
AS 'MODULE_PATHNAME', 'tid_now'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION repo_stream.tid_now() IS
'a TID for the current time, strictly increasing within the backend and unique across backends';

CREATE FUNCTION repo_stream.did_key_from_public(bytea) RETURNS text
AS 'MODULE_PATHNAME', 'did_key_from_public'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.did_key_from_public(bytea) IS
'did:key:z... for a 32-byte Ed25519 public key';

CREATE FUNCTION repo_stream.did_key_to_public(text) RETURNS bytea
AS 'MODULE_PATHNAME', 'did_key_to_public'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.did_key_to_public(text) IS
'the 32-byte Ed25519 public key of a did:key:z6Mk... identifier';

-- Merkle Search Tree (atproto) ---------------------------------------------

CREATE FUNCTION mst_root(keys text[], cids text[]) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_mst_root'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mst_root(text[], text[]) IS
	'Root CID of the atproto Merkle Search Tree mapping keys[i] to cids[i]';

-- Repo signing keys (Ed25519).  Private keys exist in the database only
-- sealed under the master key file (repo_stream.master_key_file).

CREATE FUNCTION repo_stream.verify_signature(did_key text, message bytea, signature bytea)
RETURNS boolean
AS 'MODULE_PATHNAME', 'rs_verify_signature'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.verify_signature(text, bytea, bytea) IS
'true if signature is a valid Ed25519 signature of message by the key of did_key (did:key:z6Mk...)';

-- Once per cluster, by a superuser: never implicitly, because a database of
-- the cluster may hold keys sealed under a file that was not brought along.
CREATE FUNCTION repo_stream.create_master_key() RETURNS text
AS 'MODULE_PATHNAME', 'rs_create_master_key'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION repo_stream.create_master_key() IS
'Create the master key file (32 random bytes, mode 0600) that seals repo signing keys, where repo_stream.master_key_file says (default: next to postgresql.conf, never in the data directory); returns its path. Superusers only; 42710 if it exists';
REVOKE ALL ON FUNCTION repo_stream.create_master_key() FROM PUBLIC;

-- Internal: the write path calls the same C code directly.  Revoked from
-- PUBLIC because _keys_sign signs anything with any sealed key it is given.
CREATE FUNCTION repo_stream._keys_generate(OUT sealed bytea, OUT did_key text)
AS 'MODULE_PATHNAME', 'rs_keys_generate_sql'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION repo_stream._keys_generate() IS
'internal: a fresh Ed25519 key pair, its seed sealed under the master key, and its did:key';
REVOKE ALL ON FUNCTION repo_stream._keys_generate() FROM PUBLIC;

CREATE FUNCTION repo_stream._keys_sign(sealed bytea, msg bytea) RETURNS bytea
AS 'MODULE_PATHNAME', 'rs_keys_sign_sql'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION repo_stream._keys_sign(bytea, bytea) IS
'internal: Ed25519 signature of msg by a sealed key; never creates a master key';
REVOKE ALL ON FUNCTION repo_stream._keys_sign(bytea, bytea) FROM PUBLIC;

-- Event frames (com.atproto.sync.subscribeRepos framing) ------------------

CREATE FUNCTION repo_stream.frame_to_json(frame bytea) RETURNS jsonb
AS 'MODULE_PATHNAME', 'rs_frame_to_json'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.frame_to_json(bytea) IS
'{"header", "body", "blocks_cids"} of an event frame; blocks_cids lists the CAR blocks of #commit and #sync frames';

-- false comes with a NOTICE saying why; NULL for kinds without a signature;
-- only bytes that are not a frame at all are an ERROR (docs/frames.md).
CREATE FUNCTION repo_stream.verify_frame(frame bytea, did_key text) RETURNS boolean
AS 'MODULE_PATHNAME', 'rs_verify_frame'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION repo_stream.verify_frame(bytea, text) IS
'true if a #commit or #sync frame verifies with the repo''s Ed25519 did:key (lexicon limits, CAR, signature, records, MST inversion to prevData); false with a NOTICE if not; NULL for kinds without a signature';

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

-- Every signing key a repo has used, so old events stay verifiable.
CREATE TABLE repo_key_history (
	did			text NOT NULL REFERENCES repos ON DELETE CASCADE,
	did_key		text NOT NULL,
	since_rev	text NOT NULL,
	PRIMARY KEY (did, since_rev)
);

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

-- Sequence numbers are taken at commit time under the sequencing lock;
-- see the README section "No gaps" for why readers never skip one.
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

DO $$
BEGIN
	FOR i IN 0 .. 7 LOOP
		EXECUTE format('CREATE TABLE repo_stream.event_log_%s PARTITION OF repo_stream.event_log FOR VALUES IN (%s)', i, i);
		-- frames up to ~8 kB stay in the row; larger ones go to TOAST uncompressed
		EXECUTE format('ALTER TABLE repo_stream.event_log_%s ALTER COLUMN frame SET STORAGE EXTERNAL', i);
		EXECUTE format('ALTER TABLE repo_stream.event_log_%s SET (toast_tuple_target = 8160)', i);
	END LOOP;
END $$;

CREATE TABLE log_state (
	id			boolean PRIMARY KEY DEFAULT true CHECK (id),
	current_segment int NOT NULL DEFAULT 0,
	segment_start bigint[] NOT NULL DEFAULT array_fill(0::bigint, ARRAY[8]),
	segment_started_at timestamptz[] NOT NULL DEFAULT array_fill(now(), ARRAY[8]),
	pruned_through bigint NOT NULL DEFAULT 0	-- every seq <= this is gone
);
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
CREATE FUNCTION activate_repo(did text) RETURNS void
	AS 'MODULE_PATHNAME', 'rs_activate_repo' LANGUAGE C VOLATILE;
CREATE FUNCTION delete_repo(did text) RETURNS void
	AS 'MODULE_PATHNAME', 'rs_delete_repo' LANGUAGE C VOLATILE;
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

CREATE FUNCTION verify_repo(did text)
	RETURNS TABLE (check_name text, ok boolean, detail text)
	AS 'MODULE_PATHNAME', 'rs_verify_repo' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION verify_repo(text) IS
	'Recompute CIDs and the MST from the records, check the head commit and every retained event';
-- Verification that reads repo state: the key history, for readers.
-- (verify_frame(frame, did_key) and frame_to_json are pure: 40_frames.sql.)

CREATE FUNCTION repo_keys(did text)
	RETURNS TABLE (did_key text, since_rev text, until_rev text)
	AS 'MODULE_PATHNAME', 'rs_repo_keys' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION repo_keys(text) IS
	'Every did:key the repo has signed with, oldest first: it signs revs from since_rev up to (not including) until_rev; until_rev is NULL for the current key';

CREATE FUNCTION verify_frame(frame bytea) RETURNS boolean
	AS 'MODULE_PATHNAME', 'rs_verify_frame_by_history' LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION verify_frame(bytea) IS
	'verify_frame(frame, did_key) with the key that was current at the frame''s rev, from the repo''s key history; NULL for kinds without a signature';

-- They read the key history as the extension owner: readers only.
REVOKE EXECUTE ON FUNCTION repo_keys(text), verify_frame(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION repo_keys(text), verify_frame(bytea) TO repo_stream_reader;
-- Snapshots: a repo's current state as a CAR (com.atproto.sync.getRepo,
-- with since), a record's proof (com.atproto.sync.getRecord), the list of
-- repos (com.atproto.sync.listRepos) and the verified import of a CAR
-- (com.atproto.repo.importRepo).  See docs/snapshots.md.

CREATE FUNCTION export_repo(did text, since text DEFAULT NULL)
	RETURNS TABLE (seq bigint, rev text, chunk bytea)
	AS 'MODULE_PATHNAME', 'rs_export_repo' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION export_repo(text, text) IS
	'The repo as one CARv1 file rooted at its head commit, in 1 MiB chunks in stream order; with since (a rev), only what was stored after it. seq: the repo''s last event reflected. 42704 unknown or deleted repo, 55R01 RepoDeactivated, 22023 a since that is not a TID';

CREATE FUNCTION record_proof(did text, collection text, rkey text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'rs_record_proof' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION record_proof(text, text, text) IS
	'A CAR rooted at the head commit with the MST nodes on the path to the key and the record block: proves the record''s CID, or its absence';

CREATE FUNCTION list_repos(after text DEFAULT NULL, max_repos int DEFAULT 1000)
	RETURNS TABLE (did text, head_cid text, rev text, seq bigint, status text)
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF max_repos IS NULL OR max_repos < 1 OR max_repos > 100000 THEN
		RAISE EXCEPTION 'max_repos must be between 1 and 100000, not %', coalesce(max_repos::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
		SELECT r.did, r.head_cid, r.head_rev, r.last_seq, r.status
		  FROM repo_stream.repos r
		 WHERE list_repos.after IS NULL OR r.did > list_repos.after
		 ORDER BY r.did
		 LIMIT list_repos.max_repos;
END $$;
COMMENT ON FUNCTION list_repos(text, int) IS
	'Repos in DID order after the given DID (a page of at most max_repos): head commit, rev, seq of the last event, status';

CREATE FUNCTION import_repo(car bytea, did_key text) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_import_repo' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION import_repo(bytea, text) IS
	'Import a repo CAR signed by did_key (checked in full before anything is written) as a local repo with a fresh key; a #sync announces it at COMMIT; returns the new did:key';

CREATE FUNCTION import_repo_lo(car oid, did_key text) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_import_repo_lo' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION import_repo_lo(oid, text) IS
	'import_repo reading the CAR from a large object, for CARs of any size';

REVOKE EXECUTE ON FUNCTION
	export_repo(text, text), record_proof(text, text, text), list_repos(text, int),
	import_repo(bytea, text), import_repo_lo(oid, text)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	export_repo(text, text), record_proof(text, text, text), list_repos(text, int)
	TO repo_stream_reader;
GRANT EXECUTE ON FUNCTION import_repo(bytea, text), import_repo_lo(oid, text)
	TO repo_stream_admin;
-- Computed views maintained from the event log (docs/views.md) ---------------

-- One row per view.  The count table (count views) and the memory table
-- (count views grouped by a path) are made by create_count_view, owned by
-- the extension's owner and members of the extension.
CREATE TABLE views (
	id			int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name		text NOT NULL UNIQUE,	-- schema-qualified, quoted where SQL needs it
	kind		text NOT NULL CHECK (kind IN ('count', 'handler')),
	collection	text,					-- NULL: every collection (handler views)
	group_by	text,					-- count views: a dotted path or $did
	count_table oid,					-- count views: pg_class oid of the table
	handler		oid,					-- handler views: pg_proc oid
	owner		oid NOT NULL,			-- the creating role; handlers run as it
	cursor		bigint NOT NULL,		-- seq of the last event applied
	last_refresh timestamptz,
	rebuilds	bigint NOT NULL DEFAULT 0,
	last_error	text,					-- the background worker's last failure
	last_error_at timestamptz,
	created_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE views IS 'Computed views maintained from the event log; read repo_stream.view_status';

-- After a #sync that replaced a repo's records, the view read the repo's
-- records together with repos.last_seq: its events up to that seq are
-- already reflected and are skipped.
CREATE TABLE view_skips (
	view_id		int NOT NULL REFERENCES views ON DELETE CASCADE,
	did			text NOT NULL,
	through_seq bigint NOT NULL,
	PRIMARY KEY (view_id, did)
);

CREATE VIEW view_status AS
SELECT v.name, v.kind, v.cursor,
	   (SELECT count(*) FROM repo_stream.event_log e WHERE e.seq > v.cursor) AS lag_events,
	   coalesce(greatest(0, extract(epoch FROM clock_timestamp() -
			(SELECT e.logged_at FROM repo_stream.event_log e WHERE e.seq > v.cursor ORDER BY e.seq LIMIT 1))),
			0)::float8 AS lag_seconds,
	   v.last_refresh, v.rebuilds, v.last_error, v.last_error_at,
	   v.collection, v.group_by, v.handler::regprocedure AS handler
FROM repo_stream.views v;
COMMENT ON VIEW view_status IS
	'One row per view: cursor, lag_events (retained events after the cursor), lag_seconds (age of the oldest unapplied event), last_refresh, rebuilds, last_error';

CREATE FUNCTION create_count_view(name text, collection text, group_by text) RETURNS void
	AS 'MODULE_PATHNAME', 'rs_create_count_view' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION create_count_view(text, text, text) IS
	'Create table name (key text PRIMARY KEY, count bigint NOT NULL) counting the records of collection by group_by (a dotted path, or $did), filled from the records with an exact handoff to the log';

CREATE FUNCTION create_handler_view(name text, handler regprocedure, collection text DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'rs_create_handler_view' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION create_handler_view(text, regprocedure, text) IS
	'A view that calls handler(seq bigint, did text, action text, path text, record jsonb) in seq order, as the creating role: create for every existing record now, then create/update/delete per op, delete_repo, reset before a rebuild';

CREATE FUNCTION refresh_view(name text, max_events int DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'rs_refresh_view' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION refresh_view(text, int) IS
	'Apply the events after the view''s cursor (at most max_events), in this transaction with the cursor''s advance; rebuilds a view whose cursor left the retained window; returns the number of events applied';

CREATE FUNCTION drop_view(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'rs_drop_view' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION drop_view(text) IS 'Drop a view, its count table and its memory';

CREATE FUNCTION view_count_live(name text, key text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'rs_view_count_live' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION view_count_live(text, text) IS
	'The count of key as of now: the stored count plus the effect of the events the view has not applied yet (cost grows with the lag)';

-- Internal: the group_by key of a records row (same rules as on DAG-CBOR).
CREATE FUNCTION _view_key(record jsonb, path text[]) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_view_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION _view_key(jsonb, text[]) IS
	'internal: the string at path (map keys only) in a record, NULL when missing or not a string';


REVOKE ALL ON views, view_skips, view_status FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
	create_count_view(text, text, text), create_handler_view(text, regprocedure, text),
	refresh_view(text, int), drop_view(text), view_count_live(text, text), _view_key(jsonb, text[])
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	create_count_view(text, text, text), create_handler_view(text, regprocedure, text),
	refresh_view(text, int), drop_view(text)
	TO repo_stream_admin;
GRANT EXECUTE ON FUNCTION view_count_live(text, text) TO repo_stream_reader;
GRANT SELECT ON view_status TO repo_stream_reader;
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
-- Remote calls (keys, exports, status) go through dblink.

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
	identity	text UNIQUE				-- <system identifier>/<database> of the shard
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
	hist_complete boolean NOT NULL DEFAULT false
);
CREATE INDEX relay_repos_shard ON relay_repos (shard);
COMMENT ON TABLE relay_repos IS 'Relay mode: the shard hosting each mirrored repo, its chain position and whether it is desynchronized';

SELECT pg_catalog.pg_extension_config_dump('relay_shards', '');
SELECT pg_catalog.pg_extension_config_dump('relay_repos', '');

CREATE FUNCTION relay_event_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'rs_relay_event_trigger' LANGUAGE C;
-- Inert outside the apply workers of the relay's own subscriptions (then the
-- row is stored as given, as in a pg_dump restore).
CREATE TRIGGER relay_ingest BEFORE INSERT ON event_log
	FOR EACH ROW EXECUTE FUNCTION relay_event_trigger();
ALTER TABLE event_log ENABLE REPLICA TRIGGER relay_ingest;

-- ---------------------------------------------------------------- dblink

-- The schema dblink is installed in; 55000 with a hint when it is not.
CREATE FUNCTION _relay_dblink() RETURNS text
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s text;
BEGIN
	SELECT n.nspname INTO s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
	 WHERE e.extname = 'dblink';
	IF s IS NULL THEN
		RAISE EXCEPTION 'relay mode needs the dblink extension'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'CREATE EXTENSION dblink; (PostgreSQL contrib) in this database.';
	END IF;
	RETURN s;
END $$;

-- A query on a shard through a dblink connection kept per session (named
-- rs_relay_<shard>); a connection that broke (the shard restarted) is made
-- again once.  coldefs is the result's column definition list.
CREATE FUNCTION _relay_query(shard text, query text, coldefs text) RETURNS SETOF record
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

-- --------------------------------------------------------------- ingest

CREATE FUNCTION _relay_ingest(shard text, seq bigint, frame bytea) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_relay_ingest' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION _relay_ingest(text, bigint, bytea) IS
	'Relay mode, internal: one event of a shard (its seq there), as the replication trigger handles it; returns applied, historical, duplicate, dropped (host), rejected or ignored';

CREATE FUNCTION _relay_sync_repo(shard text, did text, pending boolean) RETURNS text
	AS 'MODULE_PATHNAME', 'rs_relay_sync_repo' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION _relay_sync_repo(text, text, boolean) IS
	'Relay mode, internal: mirror a repo of a shard from a fresh export (its keys, records and head); returns its status there';

CREATE FUNCTION _relay_finish_backfill(shard text) RETURNS int
	AS 'MODULE_PATHNAME', 'rs_relay_finish_backfill' LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION relay_resync(did text DEFAULT NULL) RETURNS int
	AS 'MODULE_PATHNAME', 'rs_relay_resync' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION relay_resync(text) IS
	'Relay mode: resync a repo (NULL: every desynchronized repo) from a fresh export of the shard that hosts it; returns how many are in sync afterwards';

-- ------------------------------------------------------------ add a shard

CREATE FUNCTION relay_add_shard(name text, conninfo text) RETURNS void
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	shard text := relay_add_shard.name;
	ds text;
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
	ds := repo_stream._relay_dblink();
	IF EXISTS (SELECT 1 FROM repo_stream.relay_shards s WHERE s.name = shard) THEN
		RAISE EXCEPTION 'shard "%" already exists', shard USING ERRCODE = 'duplicate_object';
	END IF;
	slot := 'rs_relay_' || shard || '_' || (SELECT system_identifier FROM pg_control_system());
	INSERT INTO repo_stream.relay_shards (name, conninfo, subscription, slot)
	VALUES (shard, relay_add_shard.conninfo, sub, slot);

	-- the shard: repo_stream there, a publication of its log
	SELECT * INTO r FROM repo_stream._relay_query(shard,
		$q$SELECT (SELECT extversion FROM pg_extension WHERE extname = 'repo_stream'), current_setting('wal_level'),
				  (SELECT system_identifier FROM pg_control_system())::text || '/' || current_database()$q$,
		'v text, w text, id text') AS t(v text, w text, id text);
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
		$q$, 'x int') AS t(x int);
	IF FOUND THEN
		BEGIN
			PERFORM * FROM repo_stream._relay_query(shard, $q$
				CREATE PUBLICATION repo_stream_relay FOR TABLE repo_stream.event_log
					WITH (publish = 'insert', publish_via_partition_root = true)$q$, 'status text') AS t(status text);
		EXCEPTION WHEN insufficient_privilege THEN
			RAISE EXCEPTION 'the relay''s role on shard "%" may not create the publication repo_stream_relay', shard
				USING ERRCODE = 'insufficient_privilege',
					  HINT = 'Create it on the shard as a superuser: CREATE PUBLICATION repo_stream_relay FOR TABLE repo_stream.event_log WITH (publish = ''insert'', publish_via_partition_root = true);';
		END;
	END IF;

	-- the slot first: every transaction committing after it reaches the
	-- subscription; what committed before is in the retained window
	PERFORM * FROM repo_stream._relay_query(shard,
		format('SELECT lsn::text FROM pg_create_logical_replication_slot(%L, %L)', slot, 'pgoutput'),
		'lsn text') AS t(lsn text);
	BEGIN
		-- every repo's state from an export (its #sync waits for its place in the window)
		FOR r IN SELECT * FROM repo_stream._relay_query(shard,
				'SELECT did FROM repo_stream.repos WHERE status <> ''deleted'' ORDER BY did', 'did text') AS t(did text)
		LOOP
			PERFORM repo_stream._relay_sync_repo(shard, r.did, true);
		END LOOP;
		-- the retained window, in seq order: events at or below a repo's
		-- export are re-emitted after verification, later ones applied
		LOOP
			n := 0;
			FOR r IN SELECT * FROM repo_stream._relay_query(shard,
					format('SELECT seq, frame FROM repo_stream.events_since(%s, 500) WHERE seq IS NOT NULL', cursor),
					'seq bigint, frame bytea') AS t(seq bigint, frame bytea)
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
				format('SELECT ''dropped'' FROM pg_drop_replication_slot(%L)', slot), 'x text') AS t(x text);
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
			   '  FROM repo_stream.event_log WHERE seq > %s', since),
		'n bigint, s float8') AS t(n bigint, s float8);
EXCEPTION WHEN OTHERS THEN
	lag_events := NULL;
	lag_seconds := NULL;
END $$;

CREATE VIEW relay_status AS
SELECT s.name AS shard,
	   regexp_replace(s.conninfo, '(password\s*=\s*)(''[^'']*''|\S+)', '\1********', 'g') AS conninfo,
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
	   (SELECT coalesce(sum(r.resyncs), 0) FROM repo_stream.relay_repos r WHERE r.shard = s.name) AS resyncs
  FROM repo_stream.relay_shards s
  LEFT JOIN pg_stat_subscription st ON st.subname = s.subscription AND st.relid IS NULL
  LEFT JOIN LATERAL repo_stream._relay_lag(s.name) l ON true;
COMMENT ON VIEW relay_status IS
	'Relay mode: per shard, its connection, replication lag (events and seconds), the repos it hosts, the desynchronized repos and event counts';

REVOKE EXECUTE ON FUNCTION
	relay_event_trigger(), _relay_dblink(), _relay_query(text, text, text),
	_relay_ingest(text, bigint, bytea), _relay_sync_repo(text, text, boolean),
	_relay_finish_backfill(text), relay_resync(text), relay_add_shard(text, text),
	_relay_lag(text)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION relay_resync(text), _relay_lag(text) TO repo_stream_admin;
GRANT SELECT ON relay_status TO repo_stream_admin;

-- Privileges -------------------------------------------------------------------
-- The three group roles (made in 00_base.sql):
--   repo_stream_writer  writes records (DML on records, put/create/delete_record)
--   repo_stream_reader  reads the log (events_since) and verifies frames
--   repo_stream_admin   both, plus the repo lifecycle and maintenance functions
-- Nobody but the extension owner can read sealed keys, write the event log,
-- the MST nodes or the repo heads: commits are only made by the write path.

GRANT USAGE ON SCHEMA repo_stream TO PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA repo_stream FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA repo_stream FROM PUBLIC;

-- pure functions (codec, syntax, MST, verification) stay open to PUBLIC;
-- the ones that read or change repo state do not
REVOKE EXECUTE ON FUNCTION
	records_trigger(), create_repo(text), deactivate_repo(text), activate_repo(text),
	delete_repo(text), rotate_key(text), prune_events(), verify_repo(text),
	put_record(text, text, text, jsonb), create_record(text, text, jsonb),
	delete_record(text, text, text), get_record(text, text, text),
	list_records(text, text, text, int),
	events_since(bigint, int, text[], text[]), repo_key(text)
	FROM PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON records TO repo_stream_writer;
GRANT SELECT (did, did_key, status, head_cid, head_rev, last_seq, created_at) ON repos
	TO repo_stream_writer, repo_stream_reader;
GRANT SELECT ON records TO repo_stream_reader;
-- a relay's role (a reader) measures its lag on a shard: how many events
-- are past its position, and how old; the frames stay behind events_since
GRANT SELECT (seq, logged_at) ON event_log TO repo_stream_reader;
GRANT EXECUTE ON FUNCTION
	put_record(text, text, text, jsonb), create_record(text, text, jsonb),
	delete_record(text, text, text), get_record(text, text, text),
	list_records(text, text, text, int), repo_key(text)
	TO repo_stream_writer;
GRANT EXECUTE ON FUNCTION events_since(bigint, int, text[], text[]), get_record(text, text, text),
	list_records(text, text, text, int), repo_key(text)
	TO repo_stream_reader;
GRANT repo_stream_writer, repo_stream_reader TO repo_stream_admin;
GRANT EXECUTE ON FUNCTION
	create_repo(text), deactivate_repo(text), activate_repo(text), delete_repo(text),
	rotate_key(text), prune_events(), verify_repo(text)
	TO repo_stream_admin;
