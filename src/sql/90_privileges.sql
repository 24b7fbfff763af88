
-- Privileges -------------------------------------------------------------------
-- The group roles (made in 00_base.sql):
--   repo_stream_writer   writes records (INSERT, UPDATE, MERGE, COPY on records;
--                        put/create/delete_record)
--   repo_stream_reader   reads the log (events_since) and verifies frames
--   repo_stream_admin    both, plus the repo lifecycle and maintenance functions
--   repo_stream_deleter  opt-in: a writer that may also DELETE records with DML
-- Nobody but the extension owner can read sealed keys, write the event log,
-- the MST nodes or the repo heads: commits are only made by the write path.
--
-- No default grant lets a role stall writers with LOCK TABLE: PostgreSQL
-- allows every lock mode to a role with table-level UPDATE, DELETE or
-- TRUNCATE, and records is shared by every repo.  So writers get UPDATE by
-- column (LOCK TABLE looks only at table-level privileges) and table-level
-- INSERT (ROW EXCLUSIVE at most, which writers take anyway).  DELETE has no
-- column form: writers delete with delete_record(), and DML DELETE is the
-- opt-in role's, whose members can take any lock unless the library is
-- loaded in their session (lock_guard_sql.c then refuses it).

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

GRANT SELECT, INSERT ON records TO repo_stream_writer;
GRANT UPDATE (did, collection, rkey, record, cid) ON records TO repo_stream_writer;
GRANT repo_stream_writer TO repo_stream_deleter;
GRANT DELETE ON records TO repo_stream_deleter;
GRANT SELECT (did, did_key, status, head_cid, head_rev, last_seq, created_at) ON repos
	TO repo_stream_writer, repo_stream_reader;
GRANT SELECT ON records TO repo_stream_reader;
-- a relay's role (a reader) measures its lag on a shard: how many events
-- are past its position, and how old; the frames stay behind events_since
GRANT SELECT (seq, logged_at) ON event_log TO repo_stream_reader;
-- the ring's state, and who holds back its rotation
REVOKE EXECUTE ON FUNCTION _log_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _log_status() TO repo_stream_reader;
GRANT SELECT ON log_status TO repo_stream_reader;
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
