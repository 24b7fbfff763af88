--
-- Relay mode's SQL surface on one node (the clusters themselves are in
-- test/t/055_relay_cluster.pl): argument errors, what needs dblink and
-- superuser, the replication trigger being inert outside the relay's apply
-- workers, events of a shard that are not frames, and the privileges.
--
SET client_min_messages = warning;

-- arguments
SELECT repo_stream.relay_add_shard(NULL, 'dbname=x');
SELECT repo_stream.relay_add_shard('s1', NULL);
SELECT repo_stream.relay_add_shard('Shard One', 'dbname=x');
SELECT repo_stream.relay_add_shard(repeat('s', 31), 'dbname=x');

-- dblink is needed (and named in the hint)
SELECT repo_stream.relay_add_shard('s1', 'dbname=x');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE EXTENSION IF NOT EXISTS dblink;

-- a shard that cannot be reached: nothing is left behind
SELECT repo_stream.relay_add_shard('nowhere', 'host=/nonexistent port=1 dbname=x connect_timeout=1') IS NULL;
SELECT count(*) FROM repo_stream.relay_shards;

-- only superusers add shards (a subscription needs one in PostgreSQL 15)
CREATE ROLE regress_relay_admin IN ROLE repo_stream_admin;
SET ROLE regress_relay_admin;
SELECT repo_stream.relay_add_shard('s1', 'dbname=x');
SELECT * FROM repo_stream.relay_status;
SELECT repo_stream.relay_resync('did:plc:nobody');
RESET ROLE;

-- a DID the relay does not mirror
SELECT repo_stream.relay_resync('did:plc:nobody');
SELECT repo_stream.relay_resync();

-- the replication trigger: not callable, and inert outside the relay's
-- apply workers, so a restore with session_replication_role = replica
-- (README, Backup and restore) stores the log's rows as given
SELECT repo_stream.relay_event_trigger();
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'repo_stream.event_log'::regclass AND NOT tgisinternal;
SET session_replication_role = replica;
INSERT INTO repo_stream.event_log (seq, segment, did, kind, frame)
VALUES (900000001, 0, 'did:plc:restored', 'account', '\xa2'::bytea);
RESET session_replication_role;
SELECT seq, did, kind FROM repo_stream.event_log WHERE seq = 900000001;
DELETE FROM repo_stream.event_log WHERE seq = 900000001;

-- events of a shard that are not frames, or that the relay does not carry:
-- rejected or ignored (logged), never an error, never relayed
INSERT INTO repo_stream.relay_shards (name, conninfo, subscription, slot)
VALUES ('regress', 'dbname=unused', 'rs_relay_regress', 'unused');
SET client_min_messages = error;
SELECT repo_stream._relay_ingest('regress', 1, '\x00'::bytea);
SELECT repo_stream._relay_ingest('regress', 2, '\xa261746523696e666f626f7001a1646e616d656154'::bytea);
-- an #account of a repo of this database itself (not a mirror): dropped
-- (the repo row alone, so that this file leaves no event for later files)
INSERT INTO repo_stream.repos (did, did_key) VALUES ('did:plc:relaylocal', 'did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH');
SELECT repo_stream.frame_to_json(f)->'body' AS frame,
       repo_stream._relay_ingest('regress', 3, f) AS outcome
  FROM (SELECT '\xa2617468236163636f756e74626f7001a463646964726469643a706c633a72656c61796c6f63616c63736571016474696d657818323032362d31312d33305430303a30303a30302e3030305a66616374697665f5'::bytea AS f) x;
DELETE FROM repo_stream.repos WHERE did = 'did:plc:relaylocal';
SET client_min_messages = warning;
SELECT name, last_shard_seq, events, dropped_host, rejected FROM repo_stream.relay_shards;
SELECT count(*) FROM repo_stream.event_log WHERE seq > 0 AND did = 'did:plc:restored';
DELETE FROM repo_stream.relay_shards WHERE name = 'regress';

-- who may do what
SELECT p.oid::regprocedure AS function,
       has_function_privilege('regress_relay_admin', p.oid, 'EXECUTE') AS admin,
       has_function_privilege('repo_stream_reader', p.oid, 'EXECUTE') AS reader
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'repo_stream' AND (p.proname LIKE '%relay%')
ORDER BY 1;
SELECT has_table_privilege('regress_relay_admin', 'repo_stream.relay_status', 'SELECT') AS admin_status,
       has_table_privilege('repo_stream_reader', 'repo_stream.relay_status', 'SELECT') AS reader_status,
       has_table_privilege('regress_relay_admin', 'repo_stream.relay_shards', 'SELECT') AS admin_shards;
DROP ROLE regress_relay_admin;
