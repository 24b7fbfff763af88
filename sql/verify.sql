-- Verification that reads repo state (repo_keys, verify_frame(frame)), and
-- the limits the write path and every reader must agree on.  Keys, revs
-- and CIDs differ per run, so results are compared, not printed.
SET client_min_messages = notice;
\set SHOW_CONTEXT never

SELECT repo_stream.create_repo('did:plc:verify1') IS NOT NULL AS created;
SELECT repo_stream.put_record('did:plc:verify1', 'app.bsky.feed.post', 'a', '{"text": "before"}') IS NOT NULL AS put;
SELECT repo_stream.repo_key('did:plc:verify1') AS key1 \gset
SELECT repo_stream.rotate_key('did:plc:verify1') AS key2 \gset
SELECT repo_stream.put_record('did:plc:verify1', 'app.bsky.feed.post', 'b', '{"text": "after"}') IS NOT NULL AS put;
SELECT repo_stream.deactivate_repo('did:plc:verify1');
SELECT repo_stream.activate_repo('did:plc:verify1');

-- repo_keys: every key, oldest first; each one's until_rev is the next
-- one's since_rev, and the current key has none
SELECT n, did_key = :'key1' AS is_key1, did_key = :'key2' AS is_key2,
       repo_stream.is_valid_tid(since_rev) AS since_is_tid,
       until_rev IS NOT DISTINCT FROM lead(since_rev) OVER (ORDER BY n) AS until_is_next_since
FROM repo_stream.repo_keys('did:plc:verify1') WITH ORDINALITY AS k(did_key, since_rev, until_rev, n)
ORDER BY n;

-- verify_frame(frame) over the whole log: no ERROR; the #account events
-- give NULL; every #commit and #sync verifies with the key of its rev
CREATE TEMP TABLE log AS
SELECT e.seq, e.frame, repo_stream.frame_to_json(e.frame)->'header'->>'t' AS kind,
       coalesce(repo_stream.frame_to_json(e.frame)->'body'->>'repo',
                repo_stream.frame_to_json(e.frame)->'body'->>'did') AS did
FROM repo_stream.events_since(0) e;
SELECT kind, count(*) AS frames,
       count(*) FILTER (WHERE repo_stream.verify_frame(frame)) AS verify,
       count(*) FILTER (WHERE repo_stream.verify_frame(frame) IS NULL) AS null_result
FROM log WHERE did = 'did:plc:verify1' GROUP BY kind ORDER BY kind;

-- with a fixed key, the frames signed by the other key do not verify
SET client_min_messages = warning;
SELECT count(*) FILTER (WHERE repo_stream.verify_frame(frame, :'key1')) AS verify_with_key1,
       count(*) FILTER (WHERE repo_stream.verify_frame(frame, :'key2')) AS verify_with_key2
FROM log WHERE did = 'did:plc:verify1' AND kind <> '#account';
SET client_min_messages = notice;

-- an unknown repo is an ERROR (42704) for both
SELECT * FROM repo_stream.repo_keys('did:plc:nobody');
SELECT repo_stream.verify_frame(overlay(frame PLACING convert_to('did:plc:verifyx', 'UTF8')
                                FROM position(convert_to('did:plc:verify1', 'UTF8') IN frame) FOR 15))
FROM log WHERE did = 'did:plc:verify1' AND kind = '#commit' ORDER BY seq LIMIT 1;

-- they read the key history, so they are for repo_stream_reader, not PUBLIC
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('repo_stream_reader', p.oid, 'EXECUTE') AS reader
FROM pg_proc p WHERE p.pronamespace = 'repo_stream'::regnamespace
  AND p.proname IN ('repo_keys', 'verify_frame') ORDER BY 1::text;
CREATE ROLE regress_verify_reader IN ROLE repo_stream_reader;
CREATE ROLE regress_verify_nobody;
GRANT SELECT ON log TO regress_verify_reader, regress_verify_nobody;
SET ROLE regress_verify_reader;
SELECT count(*) AS keys FROM repo_stream.repo_keys('did:plc:verify1');
SELECT repo_stream.verify_frame(frame) AS verifies FROM log WHERE did = 'did:plc:verify1' AND kind = '#sync';
SET ROLE regress_verify_nobody;
SELECT count(*) FROM repo_stream.repo_keys('did:plc:verify1');
RESET ROLE;
REVOKE SELECT ON log FROM regress_verify_reader, regress_verify_nobody;
DROP ROLE regress_verify_reader, regress_verify_nobody;

-- Limits: each at the limit and one past it, on the write side and the
-- read side.  Record size: 1,000,000 bytes of DAG-CBOR.  {"t": text,
-- "$type": "app.bsky.feed.post"} is 33 bytes of overhead around the text
-- (the write path fills in a missing $type, so the records carry it).
SELECT length(repo_stream.json_to_cbor(jsonb_build_object('t', repeat('x', 999967), '$type', 'app.bsky.feed.post'))) AS record_bytes;
SELECT repo_stream.put_record('did:plc:verify1', 'app.bsky.feed.post', 'big',
       jsonb_build_object('t', repeat('x', 999967), '$type', 'app.bsky.feed.post')) IS NOT NULL AS put_1000000;
SELECT repo_stream.put_record('did:plc:verify1', 'app.bsky.feed.post', 'big',
       jsonb_build_object('t', repeat('x', 999968), '$type', 'app.bsky.feed.post')) IS NOT NULL AS put_1000001;
SELECT repo_stream.verify_frame(e.frame) AS verifies, length(e.frame) > 1000000 AS over_1mb
FROM repo_stream.events_since((SELECT max(seq) - 1 FROM repo_stream.events_since(0))) e;
SELECT length(repo_stream.json_to_cbor(r.record)) AS stored_bytes, r.cid = repo_stream.cbor_cid(repo_stream.json_to_cbor(r.record)) AS cid_ok,
       repo_stream.cbor_to_json(repo_stream.json_to_cbor(r.record)) = r.record AS reads_back
FROM repo_stream.records r WHERE did = 'did:plc:verify1' AND rkey = 'big';

-- DID: 2048 characters; collection NSID: 317; rkey: 512.  Errors are
-- shown as SQLSTATE and the start of the message.
CREATE FUNCTION pg_temp.err(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || left(SQLERRM, 40) || '...';
END $$;
SELECT 'slot' FROM pg_create_logical_replication_slot('regress_verify', 'repo_stream');
SELECT 'did:plc:' || repeat('d', 2040) AS long_did,
       repeat('a', 63) || '.' || repeat('a', 63) || '.' || repeat('a', 63) || '.' || repeat('a', 63) || '.b.' || repeat('x', 59) AS long_nsid,
       repeat('k', 512) AS long_rkey \gset
SELECT length(:'long_did') AS did_len, length(:'long_nsid') AS nsid_len, length(:'long_rkey') AS rkey_len,
       repo_stream.is_valid_did(:'long_did') AS did_ok, repo_stream.is_valid_nsid(:'long_nsid') AS nsid_ok,
       repo_stream.is_valid_rkey(:'long_rkey') AS rkey_ok,
       repo_stream.is_valid_did(:'long_did' || 'd') AS did_2049, repo_stream.is_valid_nsid(:'long_nsid' || 'x') AS nsid_318,
       repo_stream.is_valid_rkey(:'long_rkey' || 'k') AS rkey_513;
SELECT repo_stream.create_repo(:'long_did') IS NOT NULL AS created_2048;
SELECT repo_stream.put_record(:'long_did', :'long_nsid', :'long_rkey', '{"text": "longest path"}') IS NOT NULL AS put_longest;
SELECT j->'body'->'ops'->0->>'path' = :'long_nsid' || '/' || :'long_rkey' AS path_830,
       repo_stream.verify_frame(e.frame) AS verifies
FROM repo_stream.events_since(0) e, repo_stream.frame_to_json(e.frame) j
WHERE j->'body'->>'repo' = :'long_did' AND jsonb_array_length(j->'body'->'ops') > 0;
SELECT check_name, ok FROM repo_stream.verify_repo(:'long_did');
SELECT pg_temp.err(format('SELECT repo_stream.create_repo(%L)', :'long_did' || 'd')) AS did_2049,
       pg_temp.err(format('SELECT repo_stream.put_record(%L, %L, %L, %L)', :'long_did', :'long_nsid' || 'x', 'k', '{}')) AS nsid_318,
       pg_temp.err(format('SELECT repo_stream.put_record(%L, %L, %L, %L)', :'long_did', :'long_nsid', :'long_rkey' || 'k', '{}')) AS rkey_513;
-- the output plugin's repos option takes the same DIDs, and streams them
SELECT count(*) AS frames_of_long_did,
       bool_and(data = (SELECT frame FROM repo_stream.event_log e WHERE e.seq = (repo_stream.frame_to_json(c.data)->'body'->>'seq')::int8)) AS as_stored
FROM pg_logical_slot_peek_binary_changes('regress_verify', NULL, NULL, 'repos', :'long_did') c;
SELECT pg_temp.err(format('SELECT count(*) FROM pg_logical_slot_peek_binary_changes(%L, NULL, NULL, %L, %L)',
                          'regress_verify', 'repos', :'long_did' || 'd')) AS repos_2049;
SELECT pg_drop_replication_slot('regress_verify');

-- records must be JSON objects (json_to_cbor takes any value)
SELECT repo_stream.put_record('did:plc:verify1', 'app.bsky.feed.post', 'arr', '[1, 2]');
SELECT repo_stream.put_record('did:plc:verify1', 'app.bsky.feed.post', 'str', '"text"');
SELECT length(repo_stream.json_to_cbor('[1, 2]')) AS array_ok;
