-- repo_stream 0.1.0 -> 0.2.0 (ALTER EXTENSION repo_stream UPDATE).
-- Every change to src/sql/ since 0.1.0 is repeated here, so that a database
-- on 0.1.0 ends with the same schema as a fresh install of 0.2.0
-- (test/t/090_upgrade.pl compares the two).  The digest line below is the
-- sha256 of src/sql/*.sql that this script brings a database up to; `make
-- check-upgrade` fails when src/sql changes and this file does not.
\echo Use "ALTER EXTENSION repo_stream UPDATE" to load this file. \quit
-- source digest: 50ece53851cadc3ecd374e05b49b09b828c5d484992fc8e07aa8e1b29a53b14d

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
