-- Repos, records and signed commits: the write path a DBA and an
-- application developer see.  Frames and their verification are checked
-- here through frame_to_json and verify_frame.
SET client_min_messages = notice;

-- a repo, its key, and the initial empty commit
SELECT repo_stream.create_repo('did:plc:alice') ~ '^did:key:z6Mk' AS alice_key_is_ed25519_did_key;
SELECT repo_stream.create_repo('did:web:bob.example.com') IS NOT NULL AS bob_created;
SELECT repo_stream.repo_key('did:plc:alice') = did_key AS repo_key_matches FROM repo_stream.repos WHERE did = 'did:plc:alice';
SELECT did, status, head_rev IS NOT NULL AS has_head, repo_stream.is_valid_tid(head_rev) AS rev_is_tid
FROM repo_stream.repos ORDER BY did;

SELECT seq, frame_json->'header' AS header, frame_json->'body'->>'repo' AS repo,
       frame_json->'body'->'ops' AS ops, frame_json->'body'->'since' AS since,
       frame_json->'body' ? 'prevData' AS has_prev_data
FROM (SELECT seq, repo_stream.frame_to_json(frame) AS frame_json FROM repo_stream.events_since(0)) e;

-- records through the helper functions: JSON in, CID out, JSON back
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', '3jzfcijpj2z2a',
	'{"$type": "app.bsky.feed.post", "text": "hello", "createdAt": "2026-11-26T04:00:00.000Z"}') AS post_cid;
-- the same JSON always has the same CID
SELECT repo_stream.cbor_cid(repo_stream.json_to_cbor(
	'{"$type": "app.bsky.feed.post", "text": "hello", "createdAt": "2026-11-26T04:00:00.000Z"}')) AS same_cid;
SELECT repo_stream.get_record('did:plc:alice', 'app.bsky.feed.post', '3jzfcijpj2z2a');
SELECT cid = repo_stream.cbor_cid(repo_stream.json_to_cbor(record)) AS cid_is_cbor_cid
FROM repo_stream.records WHERE did = 'did:plc:alice';

-- an update and a create with a fresh TID rkey in one transaction: one commit, two ops
BEGIN;
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', '3jzfcijpj2z2a',
	'{"$type": "app.bsky.feed.post", "text": "hello, edited", "createdAt": "2026-11-26T04:00:00.000Z"}') IS NOT NULL AS updated;
SELECT repo_stream.is_valid_tid(rkey) AS rkey_is_tid, cid IS NOT NULL AS has_cid
FROM repo_stream.create_record('did:plc:alice', 'app.bsky.feed.like',
	'{"$type": "app.bsky.feed.like", "subject": {"uri": "at://did:plc:bob/app.bsky.feed.post/1", "cid": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}}');
COMMIT;

SELECT e.seq, j->'body'->>'repo' AS repo,
       jsonb_path_query_array(j, '$.body.ops[*].action') AS actions,
       jsonb_path_query_array(j, '$.body.ops[*].path') ?| ARRAY['app.bsky.feed.post/3jzfcijpj2z2a'] AS has_post,
       j->'body'->>'since' = lag(j->'body'->>'rev') OVER (ORDER BY e.seq) AS since_chains
FROM repo_stream.events_since(0) e, repo_stream.frame_to_json(e.frame) j
WHERE j->'body'->>'repo' = 'did:plc:alice' ORDER BY e.seq;

-- plain DML works the same way
INSERT INTO repo_stream.records (did, collection, rkey, record)
VALUES ('did:web:bob.example.com', 'app.bsky.graph.follow', 'f1', '{"subject": "did:plc:alice", "createdAt": "2026-11-26T04:00:00.000Z"}'),
       ('did:web:bob.example.com', 'app.bsky.graph.follow', 'f2', '{"subject": "did:plc:carol", "createdAt": "2026-11-26T04:00:00.000Z"}');
UPDATE repo_stream.records SET record = record || '{"note": 1}' WHERE did = 'did:web:bob.example.com' AND rkey = 'f1';
DELETE FROM repo_stream.records WHERE did = 'did:web:bob.example.com' AND rkey = 'f2';
SELECT repo_stream.delete_record('did:web:bob.example.com', 'app.bsky.graph.follow', 'nope') AS deleted_missing;

-- an aborted transaction leaves no event; a savepoint rollback drops its ops
SELECT max(seq) AS seq_before FROM repo_stream.events_since(0) \gset
BEGIN;
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'aborted', '{"text": "never"}') IS NOT NULL;
ROLLBACK;
BEGIN;
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'kept', '{"text": "kept"}') IS NOT NULL;
SAVEPOINT s;
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'rolled-back', '{"text": "gone"}') IS NOT NULL;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT jsonb_path_query_array(repo_stream.frame_to_json(frame), '$.body.ops[*].path') AS paths
FROM repo_stream.events_since(:seq_before);

-- every frame verifies against the repo's did:key
SELECT count(*) AS frames,
       count(*) FILTER (WHERE repo_stream.verify_frame(e.frame, k.did_key)) AS verified
FROM repo_stream.events_since(0) e
JOIN LATERAL (SELECT repo_stream.frame_to_json(e.frame)->'body'->>'repo' AS did) f ON true
JOIN repo_stream.repos k ON k.did = f.did;

-- the repo verifies as a whole (CIDs, revs and keys vary from run to run)
SELECT check_name, ok, regexp_replace(detail, '(bafy|did:key:z|rev )[a-z0-9A-Z]+', '\1…', 'g') AS detail
FROM repo_stream.verify_repo('did:plc:alice');

-- bad input: each is an ERROR with a specific SQLSTATE, and nothing is written
\set SHOW_CONTEXT never
SELECT max(seq) AS seq_before FROM repo_stream.events_since(0) \gset
-- the SQLSTATEs, then the messages
\set VERBOSITY sqlstate
SELECT repo_stream.create_repo('not-a-did');
SELECT repo_stream.create_repo('did:plc:alice');
SELECT repo_stream.put_record('did:plc:nobody', 'app.bsky.feed.post', 'x', '{"a": 1}');
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'big',
	jsonb_build_object('text', repeat('x', 1000001)));
SELECT * FROM repo_stream.events_since(:seq_before + 1000);
\set VERBOSITY default
SELECT repo_stream.create_repo('not-a-did');
SELECT repo_stream.create_repo('did:plc:alice');
SELECT repo_stream.put_record('did:plc:nobody', 'app.bsky.feed.post', 'x', '{"a": 1}');
SELECT repo_stream.put_record('did:plc:alice', 'not an nsid', 'x', '{"a": 1}');
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', '..', '{"a": 1}');
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'x', '{"a": 1.5}');
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'x', '[1]');
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'big',
	jsonb_build_object('text', repeat('x', 1000001)));
INSERT INTO repo_stream.records (did, collection, rkey, record) VALUES
	('did:plc:alice', 'app.bsky.feed.post', 'ok-1', '{"a": 1}'),
	('did:plc:alice', 'app.bsky.feed.post', 'bad-2', '{"a": {"$link": "nope"}}');
TRUNCATE repo_stream.records;
SELECT count(*) AS events_after_errors FROM repo_stream.events_since(:seq_before);
SELECT count(*) AS partial_rows FROM repo_stream.records WHERE rkey IN ('x', 'big', 'ok-1', 'bad-2');

-- cursors: FutureCursor is an ERROR (RS001); bad arguments too
SELECT * FROM repo_stream.events_since(:seq_before + 1000);
SELECT * FROM repo_stream.events_since(0, 0);
SELECT * FROM repo_stream.events_since(-1);
SELECT count(*) FROM repo_stream.events_since(:seq_before);

-- lifecycle: deactivate blocks writes and emits #account; activate again
SELECT repo_stream.deactivate_repo('did:web:bob.example.com');
SELECT repo_stream.put_record('did:web:bob.example.com', 'app.bsky.graph.follow', 'f3', '{"a": 1}');
SELECT repo_stream.deactivate_repo('did:web:bob.example.com');
SELECT repo_stream.activate_repo('did:web:bob.example.com');
SELECT j->'header'->>'t' AS t, j->'body'->>'did' AS did, j->'body'->'active' AS active, j->'body'->>'status' AS status
FROM repo_stream.events_since(:seq_before) e, repo_stream.frame_to_json(e.frame) j;

-- key rotation: #sync with a commit signed by the new key
SELECT repo_stream.repo_key('did:plc:alice') AS old_key \gset
SELECT repo_stream.rotate_key('did:plc:alice') AS new_key \gset
SELECT :'old_key' <> :'new_key' AS key_changed, repo_stream.repo_key('did:plc:alice') = :'new_key' AS repo_key_is_new;
SET client_min_messages = warning;  -- verify_frame says why in a NOTICE
SELECT j->'header'->>'t' AS t, repo_stream.verify_frame(e.frame, :'new_key') AS verifies_with_new,
       repo_stream.verify_frame(e.frame, :'old_key') AS verifies_with_old
FROM repo_stream.events_since(:seq_before) e, repo_stream.frame_to_json(e.frame) j
WHERE j->'header'->>'t' = '#sync';
RESET client_min_messages;
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'after-rotation', '{"text": "x"}') IS NOT NULL;
SELECT bool_and(ok) AS alice_verifies FROM repo_stream.verify_repo('did:plc:alice');

-- tampering behind the extension's back is detected
ALTER TABLE repo_stream.records DISABLE TRIGGER USER;
UPDATE repo_stream.records SET record = '{"text": "forged"}' WHERE did = 'did:plc:alice' AND rkey = 'kept';
ALTER TABLE repo_stream.records ENABLE TRIGGER USER;
SELECT check_name, ok FROM repo_stream.verify_repo('did:plc:alice') WHERE NOT ok;

-- deletion: #account deleted, records gone, no more writes
SELECT repo_stream.delete_repo('did:web:bob.example.com');
SELECT count(*) AS bob_records FROM repo_stream.records WHERE did = 'did:web:bob.example.com';
SELECT repo_stream.put_record('did:web:bob.example.com', 'app.bsky.graph.follow', 'f4', '{"a": 1}');
SELECT j->'body'->'active' AS active, j->'body'->>'status' AS status
FROM repo_stream.events_since(:seq_before) e, repo_stream.frame_to_json(e.frame) j
WHERE j->'header'->>'t' = '#account' ORDER BY e.seq DESC LIMIT 1;

-- privileges: an application role writes records but cannot touch the log or keys
CREATE ROLE app_writer LOGIN IN ROLE repo_stream_writer;
SET ROLE app_writer;
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'from-app', '{"text": "hi"}') IS NOT NULL AS app_can_write;
SELECT * FROM repo_stream.repo_keys;
INSERT INTO repo_stream.event_log (seq, segment, did, kind, frame) VALUES (999999, 0, 'did:plc:alice', 'commit', '\x00');
UPDATE repo_stream.repos SET head_cid = 'forged';
DELETE FROM repo_stream.mst_nodes;
ALTER TABLE repo_stream.records DISABLE TRIGGER USER;
SELECT repo_stream._keys_sign('\x00', '\x00');
SELECT repo_stream.create_repo('did:plc:mallory');
SELECT count(*) FROM repo_stream.events_since(0);
RESET ROLE;
-- every SECURITY DEFINER function pins search_path (there are none in C; SQL ones run as the caller)
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'repo_stream' AND p.prosecdef
  AND NOT coalesce(p.proconfig::text ~ 'search_path', false);
DROP ROLE app_writer;
\set SHOW_CONTEXT errors

-- retention by age: with a 1 second limit, older segments are pruned and an
-- old cursor gets OutdatedCursor, then the (empty) window
SET repo_stream.retention_age = 1;
SELECT pg_sleep(1.2);
SELECT max(seq) AS newest_before FROM repo_stream.event_log \gset
SELECT repo_stream.prune_events() = :newest_before AS pruned_through_newest_old_event;
SELECT seq, repo_stream.frame_to_json(frame)->'body'->>'name' AS info FROM repo_stream.events_since(0);
SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'after-pruning', '{"text": "new"}') IS NOT NULL;
SELECT count(*) AS new_events FROM repo_stream.events_since(0) WHERE seq IS NOT NULL;
RESET repo_stream.retention_age;
