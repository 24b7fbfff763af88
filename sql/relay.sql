--
-- Relay mode's SQL surface on one node (the clusters themselves are in
-- test/t/055_relay_cluster.pl, 056_relay_trust.pl, 057_router_moves.pl):
-- argument errors, what needs a superuser, conninfo masking, the
-- replication trigger being inert outside the relay's apply workers, events
-- of a shard that are not frames, and the privileges.
--
SET client_min_messages = warning;

-- arguments
SELECT repo_stream.relay_add_shard(NULL, 'dbname=x');
SELECT repo_stream.relay_add_shard('s1', NULL);
SELECT repo_stream.relay_add_shard('Shard One', 'dbname=x');
SELECT repo_stream.relay_add_shard(repeat('s', 31), 'dbname=x');

-- the relay needs no dblink (its connections are its own): a shard that
-- cannot be reached is 08001, and nothing is left behind
SELECT count(*) FROM pg_extension WHERE extname = 'dblink';
SELECT repo_stream.relay_add_shard('nowhere', 'host=/nonexistent port=1 dbname=x connect_timeout=1') IS NULL;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM repo_stream.relay_shards;

-- only superusers add shards (a subscription needs one in PostgreSQL 15)
CREATE ROLE regress_relay_admin IN ROLE repo_stream_admin;
SET ROLE regress_relay_admin;
SELECT repo_stream.relay_add_shard('s1', 'dbname=x');
SELECT * FROM repo_stream.relay_status;
SELECT repo_stream.relay_resync('did:plc:nobody');
RESET ROLE;

-- conninfo is shown masked, parsed as libpq parses it: every form, every
-- secret option (password in key=value, quoted or not; in a URI's user
-- info or its query; sslpassword); what does not parse is hidden whole
SELECT c AS conninfo, repo_stream._relay_mask_conninfo(c) AS shown
  FROM unnest(ARRAY[
	'host=h dbname=app user=relay password=S3cret',
	E'host=h password = \'S3 cr\\\'et\' dbname=app',
	'password=S3cret',
	'postgresql://relay:S3cret@h:5432/app',
	'postgres://relay:S3%40cret@h1:5432,h2:5433/app?application_name=x',
	'postgresql://relay@h/app?password=S3cret&sslmode=disable',
	'postgresql:///app?host=/tmp&password=S3cret',
	'host=h sslkey=/k sslpassword=S3cret',
	'host=h passfile=/etc/relay.pgpass',
	'this is not a conninfo password=S3cret',
	'postgresql://relay:S3cret@h:notaport/app'
  ]) AS c;
SELECT count(*) AS leaks FROM unnest(ARRAY['password=S3cret', 'postgresql://u:S3cret@h/d',
	'postgresql://u@h/d?password=S3cret', 'sslpassword=S3cret'])
	AS c WHERE repo_stream._relay_mask_conninfo(c) LIKE '%S3cret%';
-- and so does relay_status, to an admin
INSERT INTO repo_stream.relay_shards (name, conninfo, subscription, slot)
VALUES ('masked', 'postgresql://relay:S3cret@127.0.0.1:1/app?password=Other', 'rs_relay_masked', 'unused');
SET ROLE regress_relay_admin;
SELECT shard, conninfo, lag_events FROM repo_stream.relay_status;
RESET ROLE;
-- a registered shard without a recorded identity is never trusted
SELECT repo_stream._relay_sync_repo('masked', 'did:plc:nobody', false);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM repo_stream.relay_shards WHERE name = 'masked';

-- a DID the relay does not mirror
SELECT repo_stream.relay_resync('did:plc:nobody');
SELECT repo_stream.relay_resync();

-- the replication trigger: not callable, and inert outside the relay's
-- apply workers, so a restore with session_replication_role = replica
-- (docs/keys.md, Backup and restore) stores the log's rows as given
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
