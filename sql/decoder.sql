-- Logical decoding output plugin repo_stream: one message per event, the
-- stored frame bytes; options format, repos, kinds, blocks.  Keys, times
-- and revs differ per run, so frames are compared with the event log
-- rather than printed, and seqs are shown relative to a baseline.
-- Needs wal_level = logical, max_replication_slots > 0 and repo_stream in
-- output_plugin_libraries (test/run.sh sets them).
SELECT 'slot' FROM pg_create_logical_replication_slot('regress_decoder', 'repo_stream');

SELECT coalesce(max(seq), 0) AS base FROM repo_stream.event_log \gset

-- decoys the plugin must skip: a plain table, and an event_log look-alike
-- (a partition of a table called event_log) outside schema repo_stream
CREATE TABLE decoder_plain (x int);
CREATE TABLE public.event_log (seq bigint, segment int, did text, kind text, frame bytea)
	PARTITION BY LIST (segment);
CREATE TABLE public.event_log_0 PARTITION OF public.event_log FOR VALUES IN (0);

SELECT repo_stream.create_repo('did:plc:decoder1') IS NOT NULL AS created;
SELECT repo_stream.create_repo('did:web:decoder2.example.com') IS NOT NULL AS created;
BEGIN;
SELECT repo_stream.put_record('did:plc:decoder1', 'app.bsky.feed.post', 'p1',
	'{"$type": "app.bsky.feed.post", "text": "one", "createdAt": "2026-01-01T00:00:00.000Z"}') IS NOT NULL AS put;
INSERT INTO decoder_plain VALUES (1);
INSERT INTO public.event_log VALUES (1, 0, 'did:plc:decoder1', 'commit', '\xa0a0');
SELECT repo_stream.put_record('did:web:decoder2.example.com', 'app.bsky.feed.post', 'p1',
	'{"$type": "app.bsky.feed.post", "text": "two", "createdAt": "2026-01-01T00:00:00.000Z"}') IS NOT NULL AS put;
COMMIT;
SELECT repo_stream.deactivate_repo('did:web:decoder2.example.com');
SELECT repo_stream.activate_repo('did:web:decoder2.example.com');
SELECT repo_stream.rotate_key('did:web:decoder2.example.com') IS NOT NULL AS rotated;
SELECT repo_stream.delete_record('did:plc:decoder1', 'app.bsky.feed.post', 'p1');

-- an aborted transaction leaves no event and streams nothing
BEGIN;
SELECT repo_stream.put_record('did:plc:decoder1', 'app.bsky.feed.post', 'aborted',
	'{"$type": "app.bsky.feed.post", "text": "never", "createdAt": "2026-01-01T00:00:00.000Z"}') IS NOT NULL AS put;
ROLLBACK;

-- default output: binary CBOR, exactly the stored frames, in order
SELECT count(*) AS messages,
       array_agg(data ORDER BY n) = (SELECT array_agg(frame ORDER BY seq) FROM repo_stream.event_log
                                     WHERE seq > :base) AS identical_to_event_log,
       bool_and(get_byte(data, 0) = 162) AS header_is_a_2_map
  FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL) WITH ORDINALITY AS c(lsn, xid, data, n);

-- format json: one object per event, seq from the row, header and body decoded
SELECT (d->>'seq')::int8 - :base AS seq,
       (d->'body'->>'seq')::int8 = (d->>'seq')::int8 AS body_seq,
       d->'header' AS header,
       coalesce(d->'body'->>'repo', d->'body'->>'did') AS repo,
       jsonb_path_query_array(d, '$.body.ops[*].action') AS ops,
       d->'body'->>'active' AS active, d->'body'->>'status' AS status,
       d->'body' ? 'blocks' AS has_blocks
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL,
                                                                   'format', 'json')) j;

-- the JSON body is the stored frame's body
SELECT bool_and(d->'body' = repo_stream.cbor_to_json(substr(e.frame, 16))) AS json_body_matches
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json')) j
  JOIN repo_stream.event_log e ON e.seq = (d->>'seq')::int8
 WHERE d->'header'->>'t' = '#commit';

-- explicit format cbor is the default
SELECT count(*) AS messages FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'format', 'cbor');

-- repos: only the listed DIDs (spaces around commas are ignored)
SELECT (data::jsonb->>'seq')::int8 - :base AS seq, data::jsonb->'header'->>'t' AS t
  FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json',
                                    'repos', 'did:web:decoder2.example.com');
SELECT count(*) AS messages
  FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json',
                                    'repos', 'did:plc:decoder1 , did:web:decoder2.example.com');
SELECT count(*) AS messages
  FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'repos', 'did:plc:nobody');

-- kinds
SELECT (data::jsonb->>'seq')::int8 - :base AS seq, data::jsonb->'header'->>'t' AS t
  FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json', 'kinds', 'account');
SELECT count(*) AS messages
  FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json', 'kinds', 'commit,sync');
SELECT (data::jsonb->>'seq')::int8 - :base AS seq, data::jsonb->'header'->>'t' AS t,
       data::jsonb->'body'->>'did' AS did, data::jsonb->'body' ? 'blocks' AS has_blocks
  FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json', 'kinds', 'sync');
SELECT count(*) AS messages
  FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json',
                                    'kinds', 'account', 'repos', 'did:plc:decoder1');

-- blocks false: #commit/#sync bodies lose blocks and nothing else (seq unchanged)
SELECT count(*) AS messages,
       bool_and(NOT (d2->'body' ? 'blocks')) AS no_blocks,
       bool_and(d1 #- '{body,blocks}' = d2) AS otherwise_equal
  FROM (SELECT n, data::jsonb AS d1 FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json')
        WITH ORDINALITY AS c(lsn, xid, data, n)) a
  JOIN (SELECT n, data::jsonb AS d2 FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json',
                                                                       'blocks', 'false')
        WITH ORDINALITY AS c(lsn, xid, data, n)) b USING (n);
SELECT count(*) AS messages,
       bool_and(length(b.data) < length(a.data)) FILTER (WHERE a.t <> 'account') AS commit_sync_shorter,
       bool_and(b.data = a.data) FILTER (WHERE a.t = 'account') AS accounts_unchanged,
       bool_and(repo_stream.cbor_to_json(substr(b.data, 16)) = repo_stream.cbor_to_json(substr(a.data, 16)) - 'blocks')
         FILTER (WHERE a.t = 'commit') AS commit_bodies_minus_blocks,
       count(*) FILTER (WHERE a.t = 'sync') AS syncs
  FROM (SELECT n, data, CASE get_byte(data, 5) WHEN 99 THEN 'commit' WHEN 115 THEN 'sync' ELSE 'account' END AS t
          FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL)
          WITH ORDINALITY AS c(lsn, xid, data, n)) a
  JOIN (SELECT n, data FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'blocks', 'false')
          WITH ORDINALITY AS c(lsn, xid, data, n)) b USING (n);
SELECT count(*) AS messages FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'blocks', 'true');
SELECT count(*) AS messages FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'blocks', 'off');

-- binary output through the text function fails, as PostgreSQL makes it
SELECT count(*) FROM pg_logical_slot_get_changes('regress_decoder', NULL, NULL);

-- get (consume) in json mode, then nothing is left
SELECT count(*) AS consumed FROM pg_logical_slot_get_changes('regress_decoder', NULL, NULL, 'format', 'json');
SELECT count(*) AS left FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL);

-- one transaction of 450 records: three chained commits (200 + 200 + 50
-- ops), one message each, increasing seq, one xid
SELECT max(seq) AS base FROM repo_stream.event_log \gset
SELECT count(repo_stream.put_record('did:plc:decoder1', 'app.bsky.feed.like', 'l' || i,
	jsonb_build_object('$type', 'app.bsky.feed.like', 'i', i))) AS put
  FROM generate_series(1, 450) i;
SELECT n, (d->>'seq')::int8 - :base AS seq, jsonb_array_length(d->'body'->'ops') AS ops,
       count(*) OVER (PARTITION BY xid::text) = count(*) OVER () AS one_xid
  FROM (SELECT n, xid, data::jsonb AS d
          FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json')
          WITH ORDINALITY AS c(lsn, xid, data, n)) j
 ORDER BY n;

-- a rolled-back savepoint streams nothing of what it did
BEGIN;
SELECT repo_stream.put_record('did:plc:decoder1', 'app.bsky.feed.post', 'kept',
	'{"$type": "app.bsky.feed.post", "text": "kept", "createdAt": "2026-01-01T00:00:00.000Z"}') IS NOT NULL AS put;
SAVEPOINT s;
SELECT repo_stream.put_record('did:plc:decoder1', 'app.bsky.feed.post', 'undone',
	'{"$type": "app.bsky.feed.post", "text": "undone", "createdAt": "2026-01-01T00:00:00.000Z"}') IS NOT NULL AS put;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT jsonb_path_query_array(data::jsonb, '$.body.ops[*].path') AS paths
  FROM pg_logical_slot_get_changes('regress_decoder', NULL, NULL, 'format', 'json', 'kinds', 'commit')
 WHERE (data::jsonb->>'seq')::int8 > :base + 3;

-- TOAST: frames > 2 kB; frames over ~8 kB are stored out of line
-- (toast_tuple_target) and arrive whole, 12 kB and > 1 MB
CREATE TEMP VIEW toast_bytes AS
SELECT sum(pg_relation_size(c.reltoastrelid)) AS bytes
  FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
 WHERE i.inhparent = 'repo_stream.event_log'::regclass;
SELECT max(seq) AS base FROM repo_stream.event_log \gset
SELECT bytes AS toast0 FROM toast_bytes \gset
SELECT repo_stream.put_record('did:plc:decoder1', 'app.bsky.feed.post', 'mid',
	jsonb_build_object('$type', 'app.bsky.feed.post', 'text', repeat('m', 3000),
	                   'createdAt', '2026-01-01T00:00:00.000Z')) IS NOT NULL AS put;
SELECT bytes = :toast0 AS mid_frame_stays_in_the_row FROM toast_bytes;
SELECT repo_stream.put_record('did:plc:decoder1', 'app.bsky.feed.post', 'toasted',
	jsonb_build_object('$type', 'app.bsky.feed.post', 'text', repeat('t', 12000),
	                   'createdAt', '2026-01-01T00:00:00.000Z')) IS NOT NULL AS put;
SELECT bytes > :toast0 AS frame_goes_to_toast FROM toast_bytes;
BEGIN;
SELECT repo_stream.put_record('did:plc:decoder1', 'app.bsky.feed.post', 'big' || i,
	jsonb_build_object('$type', 'app.bsky.feed.post', 'text', repeat(i::text, 600000),
	                   'createdAt', '2026-01-01T00:00:00.000Z')) IS NOT NULL AS put
  FROM generate_series(1, 2) i;
COMMIT;
SELECT bytes > :toast0 + 1048576 AS big_frame_in_toast FROM toast_bytes;
SELECT seq - :base AS seq, length(frame) > 2048 AS over_2kb, length(frame) > 10000 AS over_10kb,
       length(frame) > 1048576 AS over_1mb
  FROM repo_stream.event_log e WHERE seq > :base ORDER BY seq;
SELECT count(*) AS messages,
       array_agg(length(data) ORDER BY n) = (SELECT array_agg(length(frame) ORDER BY seq)
                                               FROM repo_stream.event_log WHERE seq > :base) AS same_lengths,
       array_agg(data ORDER BY n) = (SELECT array_agg(frame ORDER BY seq) FROM repo_stream.event_log
                                     WHERE seq > :base) AS identical
  FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL) WITH ORDINALITY AS c(lsn, xid, data, n);
SELECT (d->>'seq')::int8 - :base AS seq, length(d->'body'->'blocks'->>'$bytes') > 1400000 AS big_blocks,
       d->'body'->'ops'->0->>'path' AS path
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_peek_changes('regress_decoder', NULL, NULL, 'format', 'json')) j;
SELECT (d->>'seq')::int8 - :base AS seq, length(d::text) < 1000 AS small_without_blocks
  FROM (SELECT data::jsonb AS d FROM pg_logical_slot_get_changes('regress_decoder', NULL, NULL, 'format', 'json',
                                                                  'blocks', 'false')) j;

-- DDL: a partition of repo_stream.event_log streams (even one attached
-- later); moved under another parent, it no longer does: the relcache
-- invalidation drops what the plugin had cached about it
SELECT max(seq) AS base FROM repo_stream.event_log \gset
CREATE TABLE public.other_log (LIKE repo_stream.event_log) PARTITION BY LIST (segment);
CREATE TABLE repo_stream.event_log_extra (LIKE repo_stream.event_log INCLUDING CONSTRAINTS);
ALTER TABLE repo_stream.event_log ATTACH PARTITION repo_stream.event_log_extra FOR VALUES IN (8);
INSERT INTO repo_stream.event_log_extra SELECT seq, 8, did, kind, logged_at, frame
  FROM repo_stream.event_log WHERE seq = :base;
ALTER TABLE repo_stream.event_log DETACH PARTITION repo_stream.event_log_extra;
ALTER TABLE public.other_log ATTACH PARTITION repo_stream.event_log_extra FOR VALUES IN (8);
INSERT INTO repo_stream.event_log_extra SELECT seq, 8, did, kind, logged_at, frame
  FROM repo_stream.event_log WHERE seq = :base;
SELECT count(*) AS messages, bool_and(data = (SELECT frame FROM repo_stream.event_log WHERE seq = :base)) AS the_frame
  FROM pg_logical_slot_get_binary_changes('regress_decoder', NULL, NULL);
DROP TABLE public.other_log;

-- a stored frame with text PostgreSQL cannot hold (U+0000, which DAG-CBOR
-- allows): format=json refuses it (22P05) naming the seq and where; the
-- default mode passes the bytes through
SELECT 'slot' FROM pg_create_logical_replication_slot('regress_nul', 'repo_stream');
INSERT INTO repo_stream.event_log (seq, segment, did, kind, frame)
SELECT 9000000001, 0, 'did:plc:decoder1', 'account',
       overlay(f PLACING '\x00' FROM position('\x615862'::bytea IN f) + 1 FOR 1)
FROM (SELECT repo_stream.json_to_cbor('{"t": "#account", "op": 1}') ||
             repo_stream.json_to_cbor('{"did": "did:plc:decoder1", "seq": 9000000001, "active": false,
                                        "time": "2026-01-01T00:00:00.000Z", "status": "aXb"}') AS f) t;
DO $$
DECLARE
	msg text;
	detail text;
	ctx text;
BEGIN
	PERFORM count(*) FROM pg_logical_slot_peek_changes('regress_nul', NULL, NULL, 'format', 'json');
EXCEPTION WHEN untranslatable_character THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, ctx = PG_EXCEPTION_CONTEXT;
	RAISE NOTICE '%: % / % / %', SQLSTATE, msg, detail, substring(ctx FROM 'repo_stream event seq [0-9]+');
END $$;
SELECT count(*) AS passed_through FROM pg_logical_slot_peek_binary_changes('regress_nul', NULL, NULL);
SELECT pg_drop_replication_slot('regress_nul');
DELETE FROM repo_stream.event_log WHERE seq = 9000000001;

-- bad options: one shape for every error, SQLSTATE 22023, a message
-- naming the option and value, and a hint saying what is accepted
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT count(*) FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'colour', 'red');
SELECT count(*) FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'format', 'xml');
SELECT count(*) FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'format', 'JSON');
SELECT count(*) FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'repos', 'did:plc:decoder1,not-a-did');
SELECT count(*) FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'repos', '');
SELECT count(*) FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'repos', 'did:plc:decoder1,');
SELECT count(*) FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'kinds', 'commit,identity');
SELECT count(*) FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'kinds', 'commit,,sync');
SELECT count(*) FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'blocks', 'maybe');
SELECT count(*) FROM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'kinds', 'commit', 'kinds', 'sync');
\set VERBOSITY terse
DO $$
BEGIN
	PERFORM pg_logical_slot_peek_binary_changes('regress_decoder', NULL, NULL, 'colour', 'red');
EXCEPTION WHEN invalid_parameter_value THEN
	RAISE NOTICE 'SQLSTATE %', SQLSTATE;
END $$;
\set VERBOSITY default

SELECT pg_drop_replication_slot('regress_decoder');
DROP TABLE decoder_plain, public.event_log;

-- leave the database as pg_regress made it: later tests count repos and seqs from 1
DROP VIEW toast_bytes;
DROP EXTENSION repo_stream;
CREATE EXTENSION repo_stream;
