\pset pager off
\echo
\echo '== repo_stream demo: a throwaway server, the extension, the main job end to end'
CREATE EXTENSION repo_stream;
\echo '   once per cluster, a superuser makes the master key file that seals repo keys:'
SELECT repo_stream.create_master_key() AS master_key_file;

\echo
\echo '== 1. JSON record in, canonical DAG-CBOR and CID out'
\echo '   (keys come out length-first, as DAG-CBOR requires; $link becomes tag 42)'
SELECT repo_stream.json_to_cbor(r) AS dag_cbor,
       repo_stream.cbor_cid(repo_stream.json_to_cbor(r)) AS cid
FROM (VALUES ('{"$type": "app.bsky.feed.like",
                "subject": {"uri": "at://did:plc:abc/app.bsky.feed.post/3k2a", "cid": {"$link": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}},
                "createdAt": "2026-11-26T04:00:00.000Z"}'::jsonb)) AS t(r);

\echo
\echo '== 2. Round trip back to JSON'
SELECT repo_stream.cbor_to_json(repo_stream.json_to_cbor(
	'{"text": "hello ☃", "n": -7, "blob": {"$bytes": "nFERjvLLiw9qm45JrqH9QTzyC2Lu1Xb4ne6+sBrCzI0"}}')) AS json;

\echo
\echo '== 3. Bad input is a clear ERROR with a specific SQLSTATE'
\set ON_ERROR_STOP 0
\set VERBOSITY sqlstate
SELECT repo_stream.json_to_cbor('{"price": 9.99}');
\set VERBOSITY default
SELECT repo_stream.json_to_cbor('{"price": 9.99}');
SELECT repo_stream.cbor_to_json('\xa2616201616102');
\set ON_ERROR_STOP 1

\echo
\echo '== 4. A repo: its own Ed25519 key, published as a did:key'
SELECT repo_stream.create_repo('did:plc:alice') AS alice_did_key;
SELECT repo_stream.create_repo('did:web:bob.example.com') AS bob_did_key;

\echo
\echo '== 5. Consumers subscribe: logical replication slots with the repo_stream output plugin'
\echo '   one from SQL, one from the shell with pg_recvlogical (left running in the background):'
SELECT slot_name FROM pg_create_logical_replication_slot('firehose', 'repo_stream');
\! bash demo/demo.sh recv-start
SELECT slot_name, plugin, active FROM pg_replication_slots ORDER BY slot_name;

\echo
\echo '== 6. Records go in with SQL: helper functions or plain DML'
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', '3jzfcijpj2z2a',
	'{"$type": "app.bsky.feed.post", "text": "hello from PostgreSQL", "createdAt": "2026-11-26T04:00:00.000Z"}') AS post_cid;
BEGIN;
INSERT INTO repo_stream.records (did, collection, rkey, record) VALUES
	('did:web:bob.example.com', 'app.bsky.feed.like', '3jzfcijpj2z2b',
	 '{"$type": "app.bsky.feed.like", "subject": {"uri": "at://did:plc:alice/app.bsky.feed.post/3jzfcijpj2z2a", "cid": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}, "createdAt": "2026-11-26T04:00:01.000Z"}'),
	('did:web:bob.example.com', 'app.bsky.graph.follow', '3jzfcijpj2z2c',
	 '{"$type": "app.bsky.graph.follow", "subject": "did:plc:alice", "createdAt": "2026-11-26T04:00:02.000Z"}');
COMMIT;
SELECT did, collection, rkey, cid FROM repo_stream.records ORDER BY did, collection;

\echo
\echo '== 7. Every transaction became a signed #commit frame in the event log'
SELECT seq, j->'header'->>'t' AS type, j->'body'->>'repo' AS repo, j->'body'->>'rev' AS rev,
       jsonb_path_query_array(j, '$.body.ops[*].action') AS actions,
       jsonb_path_query_array(j, '$.body.ops[*].path') AS paths
FROM repo_stream.events_since(0) e, repo_stream.frame_to_json(e.frame) j;
\echo '   one frame in full (blocks is a CAR slice: commit, MST nodes, records, proof nodes)'
SELECT jsonb_pretty(repo_stream.frame_to_json(frame) #- '{body,blocks}')
FROM repo_stream.events_since(2, 1) WHERE seq IS NOT NULL;

\echo
\echo '== 8. The consumers receive the frames: one message per event, the bytes the log holds'
SELECT (j->'body'->>'seq')::bigint AS seq, j->'header'->>'t' AS type, j->'body'->>'repo' AS repo,
       length(c.data) AS bytes, c.data = e.frame AS same_bytes_as_the_log
FROM pg_logical_slot_peek_binary_changes('firehose', NULL, NULL) c
CROSS JOIN LATERAL repo_stream.frame_to_json(c.data) j
JOIN repo_stream.events_since(0) e ON e.seq = (j->'body'->>'seq')::bigint;
\echo '   options: JSON for people, one repo only, without the CAR slices (the frames stay in the slot):'
SELECT j->'seq' AS seq, j->'body'->>'repo' AS repo, j->'body' ? 'blocks' AS has_blocks,
       jsonb_path_query_array(j, '$.body.ops[*].path') AS paths
FROM (SELECT data::jsonb AS j FROM pg_logical_slot_peek_changes('firehose', NULL, NULL,
      'format', 'json', 'repos', 'did:web:bob.example.com', 'blocks', 'false')) s;
\echo '   options are checked strictly: a typo is an ERROR, not a silently empty stream'
\set ON_ERROR_STOP 0
SELECT * FROM pg_logical_slot_peek_changes('firehose', NULL, NULL, 'format', 'json', 'kinds', 'commits');
\set ON_ERROR_STOP 1
\echo '   get consumes: the slot moves past what it returned, so the next read starts after it'
SELECT count(*) AS consumed FROM pg_logical_slot_get_binary_changes('firehose', NULL, NULL);
SELECT count(*) AS still_there FROM pg_logical_slot_peek_binary_changes('firehose', NULL, NULL);
SELECT pg_drop_replication_slot('firehose');
\echo '   pg_recvlogical, as teams run it, received the same events into its file:'
\! bash demo/demo.sh recv-stop

\echo
\echo '== 9. Verification: each frame against the repo''s did:key, and whole repos'
SELECT e.seq, repo_stream.verify_frame(e.frame, r.did_key) AS verified
FROM repo_stream.events_since(0) e
JOIN repo_stream.repos r ON r.did = repo_stream.frame_to_json(e.frame)->'body'->>'repo';
SELECT check_name, ok, detail FROM repo_stream.verify_repo('did:plc:alice');
\echo '   a record changed behind the extension''s back is caught'
ALTER TABLE repo_stream.records DISABLE TRIGGER USER;
UPDATE repo_stream.records SET record = '{"text": "forged"}' WHERE did = 'did:plc:alice';
ALTER TABLE repo_stream.records ENABLE TRIGGER USER;
SELECT check_name, ok, detail FROM repo_stream.verify_repo('did:plc:alice') WHERE NOT ok;

\echo
\echo '== 10. Cursors: a reader resumes from the last seq it saw'
SELECT seq FROM repo_stream.events_since(2);
\set ON_ERROR_STOP 0
SELECT * FROM repo_stream.events_since(1000);
\set ON_ERROR_STOP 1

\echo
\echo '== 11. Changes: an update, a delete and a rotated key; every frame still verifies'
SELECT repo_stream.create_repo('did:plc:dave') IS NOT NULL AS dave_created;
SELECT repo_stream.put_record('did:plc:dave', 'app.bsky.feed.post', '3jzfcijpj2z3c',
	'{"text": "first draft", "createdAt": "2026-11-26T04:00:04.000Z"}') IS NOT NULL AS posted;
\echo '   ($type was missing: it was filled in from the collection)'
SELECT record->>'$type' AS type FROM repo_stream.records WHERE did = 'did:plc:dave';
UPDATE repo_stream.records SET record = record || '{"text": "final"}' WHERE did = 'did:plc:dave';
SELECT repo_stream.rotate_key('did:plc:dave') IS NOT NULL AS key_rotated;
SELECT repo_stream.delete_record('did:plc:dave', 'app.bsky.feed.post', '3jzfcijpj2z3c') AS deleted;
SELECT e.seq, e.kind, jsonb_path_query_array(j, '$.body.ops[*].action') AS actions,
       jsonb_path_query_array(j, '$.body.ops[*].prev') <> '[]' AS has_prev,
       repo_stream.verify_frame(e.frame) AS verified_with_the_key_of_its_rev
FROM repo_stream.events_since(0, 100, ARRAY['did:plc:dave']) e, repo_stream.frame_to_json(e.frame) j;
\echo '   the key history a reader uses for that:'
SELECT left(did_key, 20) || '...' AS did_key, since_rev, until_rev FROM repo_stream.repo_keys('did:plc:dave');

\echo
\echo '== 12. Snapshots: a repo as one CAR file (com.atproto.sync.getRepo), in stream order'
SELECT count(*) AS chunks, min(seq) AS reflects_events_up_to_seq, min(rev) AS rev,
       sum(length(chunk)) AS car_bytes
FROM repo_stream.export_repo('did:web:bob.example.com');
\echo '   since a rev, only what changed after it: since the head, the commit alone'
SELECT sum(length(chunk)) AS diff_bytes
FROM repo_stream.export_repo('did:web:bob.example.com',
     (SELECT head_rev FROM repo_stream.repos WHERE did = 'did:web:bob.example.com'));
SELECT did, rev, seq, status FROM repo_stream.list_repos();

\echo
\echo '== 13. A new consumer: a snapshot, then the log from the snapshot''s seq (docs/snapshots.md)'
\echo '   the snapshot holds every one of bob''s events up to its seq, and none after:'
SELECT min(seq) AS snap_seq, min(rev) AS snap_rev, sum(length(chunk)) AS car_bytes
FROM repo_stream.export_repo('did:web:bob.example.com') \gset
SELECT :snap_seq AS snap_seq, :'snap_rev' AS snap_rev, :car_bytes AS car_bytes;
\echo '   meanwhile bob posts, and edits the post:'
SELECT repo_stream.put_record('did:web:bob.example.com', 'app.bsky.feed.post', '3jzfcijpj2z2d',
	'{"$type": "app.bsky.feed.post", "text": "hi alice", "createdAt": "2026-11-26T04:00:03.000Z"}') IS NOT NULL AS posted;
SELECT repo_stream.put_record('did:web:bob.example.com', 'app.bsky.feed.post', '3jzfcijpj2z2d',
	'{"$type": "app.bsky.feed.post", "text": "hi alice!", "createdAt": "2026-11-26T04:00:03.000Z"}') IS NOT NULL AS edited;
\echo '   the consumer reads on from the snapshot''s seq: each commit''s since is the rev before it,'
\echo '   the first one''s the snapshot''s rev, so nothing is missed and nothing comes twice'
SELECT e.seq, j->'body'->>'since' AS since, j->'body'->>'rev' AS rev,
       jsonb_path_query_array(j, '$.body.ops[*].action') AS actions,
       jsonb_path_query_array(j, '$.body.ops[*].path') AS paths
FROM repo_stream.events_since(:snap_seq, 100, ARRAY['did:web:bob.example.com']) e,
     repo_stream.frame_to_json(e.frame) j;
\echo '   (a logical replication consumer gets the same hand-off from a slot created with EXPORT_SNAPSHOT)'

\echo
\echo '== 14. A record proof (com.atproto.sync.getRecord), checked offline'
\echo '   the check below uses only the proof bytes and the did:key: it reads the CAR,'
\echo '   verifies the commit signature, and walks the MST from the root to the key'
CREATE FUNCTION pg_temp.check_proof(car bytea, did_key text, key text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	pos int := 0; len int; b int; shift int; n int := 0;
	blocks jsonb := '{}'; root text; cid text; data bytea;
	c jsonb; node jsonb; link text; prev text; k text; i int; next_link text;
BEGIN
	WHILE pos < length(car) LOOP      -- varint length, then the header or (CID, block)
		len := 0; shift := 0;
		LOOP b := get_byte(car, pos); pos := pos + 1; len := len + ((b & 127) << shift); shift := shift + 7; EXIT WHEN b < 128; END LOOP;
		IF n = 0 THEN
			root := repo_stream.cbor_to_json(substring(car FROM pos + 1 FOR len))->'roots'->0->>'$link';
		ELSE
			cid := repo_stream.cbor_to_json('\xd82a582500'::bytea || substring(car FROM pos + 1 FOR 36))->>'$link';
			data := substring(car FROM pos + 37 FOR len - 36);
			IF repo_stream.cbor_cid(data) <> cid THEN RETURN 'block ' || cid || ' does not hash to its CID'; END IF;
			blocks := blocks || jsonb_build_object(cid, encode(data, 'hex'));
		END IF;
		pos := pos + len; n := n + 1;
	END LOOP;
	c := repo_stream.cbor_to_json(decode(blocks->>root, 'hex'));
	IF NOT repo_stream.verify_signature(did_key, repo_stream.json_to_cbor(c - 'sig'),
			decode(rpad(c->'sig'->>'$bytes', 88, '='), 'base64')) THEN
		RETURN 'the commit signature does not verify';
	END IF;
	link := c->'data'->>'$link';
	WHILE link IS NOT NULL LOOP       -- down the tree: the first key >= ours, or the gap before it
		IF blocks->>link IS NULL THEN RETURN 'signature ok, but the proof lacks node ' || link; END IF;
		node := repo_stream.cbor_to_json(decode(blocks->>link, 'hex'));
		prev := ''; next_link := node->'l'->>'$link'; i := 0;
		FOR i IN 0 .. jsonb_array_length(node->'e') - 1 LOOP
			k := substr(prev, 1, (node->'e'->i->>'p')::int)
				 || convert_from(decode(rpad(node->'e'->i->'k'->>'$bytes', (length(node->'e'->i->'k'->>'$bytes') + 3) / 4 * 4, '='), 'base64'), 'UTF8');
			IF k = key THEN
				RETURN 'signature ok; ' || key || ' is ' || (node->'e'->i->'v'->>'$link');
			ELSIF k > key COLLATE "C" THEN
				EXIT;
			END IF;
			next_link := node->'e'->i->'t'->>'$link';
			prev := k;
		END LOOP;
		link := next_link;
	END LOOP;
	RETURN 'signature ok; ' || key || ' is absent';
END $$;
SELECT pg_temp.check_proof(repo_stream.record_proof('did:web:bob.example.com', 'app.bsky.graph.follow', '3jzfcijpj2z2c'),
       repo_stream.repo_key('did:web:bob.example.com'), 'app.bsky.graph.follow/3jzfcijpj2z2c') AS present;
SELECT cid AS the_records_table_says FROM repo_stream.records WHERE rkey = '3jzfcijpj2z2c';
SELECT pg_temp.check_proof(repo_stream.record_proof('did:web:bob.example.com', 'app.bsky.graph.follow', 'nope'),
       repo_stream.repo_key('did:web:bob.example.com'), 'app.bsky.graph.follow/nope') AS absent;

\echo
\echo '== 15. Moving a repo to a second database (com.atproto.repo.importRepo)'
SELECT string_agg(chunk, ''::bytea ORDER BY n) AS bob_car, repo_stream.repo_key('did:web:bob.example.com') AS bob_key
FROM repo_stream.export_repo('did:web:bob.example.com') WITH ORDINALITY AS e(seq, rev, chunk, n) \gset
SELECT encode(data_cid, 'hex') AS bob_root, current_database() AS home
FROM repo_stream.repos WHERE did = 'did:web:bob.example.com' \gset
CREATE DATABASE demo_two;
\c demo_two
CREATE EXTENSION repo_stream;
\echo '   every check (hashes, signature, canonical MST, records) passes before a row is written'
SELECT repo_stream.import_repo(:'bob_car', :'bob_key') <> :'bob_key' AS imported_with_a_fresh_key;
SELECT did, collection, rkey, cid FROM repo_stream.records ORDER BY collection;
SELECT encode(data_cid, 'hex') = :'bob_root' AS same_mst_root FROM repo_stream.repos;
\echo '   the new home announces the repo with a #sync signed by its new key'
SELECT e.seq, j->'header'->>'t' AS type, j->'body'->>'did' AS did,
       repo_stream.verify_frame(e.frame, repo_stream.repo_key('did:web:bob.example.com')) AS verified
FROM repo_stream.events_since(0) e, repo_stream.frame_to_json(e.frame) j;
\echo '   a tampered CAR is refused before anything is written, naming what is wrong'
\set ON_ERROR_STOP 0
SELECT repo_stream.import_repo(set_byte(:'bob_car'::bytea, length(:'bob_car'::bytea) - 2, 0), :'bob_key');
\set ON_ERROR_STOP 1
\c :home
\echo '   and the old home lets it go'
SELECT repo_stream.delete_repo('did:web:bob.example.com');
SELECT did, status FROM repo_stream.list_repos();
DROP DATABASE demo_two;

\echo
\echo '== 16. A computed view: likes per post, maintained from the event log by cursor'
SELECT repo_stream.create_count_view('like_counts', 'app.bsky.feed.like', 'subject.uri');
\echo '   filled from the current records, with its cursor at the log''s head:'
SELECT key AS post, count FROM like_counts;
SELECT name, cursor, lag_events, lag_seconds FROM repo_stream.view_status;
\echo '   likes keep landing; this demo server runs no background worker, so the view lags:'
SELECT repo_stream.create_repo('did:plc:carol') IS NOT NULL AS carol_created;
SELECT repo_stream.put_record('did:plc:carol', 'app.bsky.feed.like', '3jzfcijpj2z3a',
	'{"$type": "app.bsky.feed.like", "subject": {"uri": "at://did:plc:alice/app.bsky.feed.post/3jzfcijpj2z2a"}, "createdAt": "2026-11-26T04:01:00.000Z"}') IS NOT NULL AS carol_liked;
SELECT name, cursor, lag_events, round(lag_seconds::numeric, 3) AS lag_seconds FROM repo_stream.view_status;
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.like', '3jzfcijpj2z3b',
	'{"$type": "app.bsky.feed.like", "subject": {"uri": "at://did:plc:alice/app.bsky.feed.post/3jzfcijpj2z2a"}, "createdAt": "2026-11-26T04:02:00.000Z"}') IS NOT NULL AS alice_liked;
SELECT pg_sleep(1) IS NOT NULL AS one_second_later;
SELECT name, cursor, lag_events, round(lag_seconds::numeric, 1) AS lag_seconds FROM repo_stream.view_status;
\echo '   the stored count is behind; view_count_live adds the events not applied yet, so it is exact now:'
SELECT (SELECT count FROM like_counts WHERE key = 'at://did:plc:alice/app.bsky.feed.post/3jzfcijpj2z2a') AS stored,
       repo_stream.view_count_live('like_counts', 'at://did:plc:alice/app.bsky.feed.post/3jzfcijpj2z2a') AS live;
\echo '   a refresh applies them (in one transaction with the cursor), and the lag is back to zero:'
SELECT repo_stream.refresh_view('like_counts') AS events_applied;
SELECT key AS post, count FROM like_counts;
SELECT name, cursor, lag_events, lag_seconds FROM repo_stream.view_status;
\echo '   (with repo_stream in shared_preload_libraries a background worker refreshes every view,'
\echo '    woken by each commit; see docs/views.md)'
