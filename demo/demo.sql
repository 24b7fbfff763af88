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
\echo '== 5. Records go in with SQL: helper functions or plain DML'
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
\echo '== 6. Every transaction became a signed #commit frame in the event log'
SELECT seq, j->'header'->>'t' AS type, j->'body'->>'repo' AS repo, j->'body'->>'rev' AS rev,
       jsonb_path_query_array(j, '$.body.ops[*].action') AS actions,
       jsonb_path_query_array(j, '$.body.ops[*].path') AS paths
FROM repo_stream.events_since(0) e, repo_stream.frame_to_json(e.frame) j;
\echo '   one frame in full (blocks is a CAR slice: commit, MST nodes, records, proof nodes)'
SELECT jsonb_pretty(repo_stream.frame_to_json(frame) #- '{body,blocks}')
FROM repo_stream.events_since(2, 1) WHERE seq IS NOT NULL;

\echo
\echo '== 7. Verification: each frame against the repo''s did:key, and whole repos'
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
\echo '== 8. Cursors: a reader resumes from the last seq it saw'
SELECT seq FROM repo_stream.events_since(2);
\set ON_ERROR_STOP 0
SELECT * FROM repo_stream.events_since(1000);
\set ON_ERROR_STOP 1

\echo
\echo '== 9. A computed view: likes per post, maintained from the event log by cursor'
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
