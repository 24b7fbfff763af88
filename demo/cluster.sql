-- make demo-cluster: psql switches between the four clusters with \connect.
\set ECHO all
\pset footer off

-- ---------------------------------------------------------------- shards
-- Each shard is a repo_stream database as on a single node.
\connect :shard1
CREATE EXTENSION repo_stream;
SELECT repo_stream.create_master_key() IS NOT NULL AS master_key;
\connect :shard2
CREATE EXTENSION repo_stream;
SELECT repo_stream.create_master_key() IS NOT NULL AS master_key;

-- ---------------------------------------------------------------- router
-- PL/Proxy functions with the names of a single node, routed by DID.
\connect :router
CREATE EXTENSION repo_stream_router CASCADE;
SELECT repo_stream.router_add_shard('s1', :'shard1');
SELECT repo_stream.router_add_shard('s2', :'shard2');

-- ----------------------------------------------------------------- relay
-- The relay subscribes to both shards' logs (native logical replication).
\connect :relay
CREATE EXTENSION repo_stream;
CREATE EXTENSION dblink;
SELECT repo_stream.relay_add_shard('s1', :'shard1');
SELECT repo_stream.relay_add_shard('s2', :'shard2');
SELECT repo_stream.create_count_view('public.like_counts', 'app.bsky.feed.like', 'subject.uri');

-- ---------------------------------------------------------------- writes
-- The application talks to the router only.
\connect :router
SELECT did, repo_stream.create_repo(did) AS did_key
  FROM unnest(ARRAY['did:plc:alice', 'did:plc:bob', 'did:plc:carol', 'did:plc:dave']) did;
SELECT did, shard FROM repo_stream.directory ORDER BY did;
SELECT repo_stream.put_record(did, 'app.bsky.feed.like', 'like' || n,
	jsonb_build_object('subject', jsonb_build_object('uri', 'at://did:plc:alice/app.bsky.feed.post/' || (n % 2)),
					   'createdAt', '2026-11-30T00:00:00.000Z')) IS NOT NULL AS liked
  FROM unnest(ARRAY['did:plc:alice', 'did:plc:bob', 'did:plc:carol', 'did:plc:dave']) did, generate_series(1, 3) n;
SELECT repo_stream.delete_record('did:plc:bob', 'app.bsky.feed.like', 'like1');
-- a move: writes to the repo are refused meanwhile (55R02, retry)
CALL repo_stream.move_repo('did:plc:carol', 's2');
SELECT did, shard FROM repo_stream.directory WHERE did = 'did:plc:carol';
SELECT repo_stream.put_record('did:plc:carol', 'app.bsky.feed.like', 'after-move',
	'{"subject": {"uri": "at://did:plc:alice/app.bsky.feed.post/0"}, "createdAt": "2026-11-30T00:00:00.000Z"}') IS NOT NULL AS liked;

-- ----------------------------------------------------- the merged stream
\connect :relay
-- (wait until the relay has caught up with both shards)
DO $$
BEGIN
	FOR i IN 1 .. 300 LOOP
		EXIT WHEN (SELECT bool_and(lag_events = 0) FROM repo_stream.relay_status);
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT e.seq, e.kind, e.did, j->'body'->>'rev' AS rev, j->'body'->>'status' AS status,
       repo_stream.verify_frame(e.frame) AS verified
  FROM repo_stream.events_since(0) e, repo_stream.frame_to_json(e.frame) j
 ORDER BY e.seq;
SELECT shard, connected, lag_events, lag_seconds, repos, desynchronized, events, dropped_host
  FROM repo_stream.relay_status;
SELECT did, shard FROM repo_stream.relay_repos ORDER BY did;

-- ------------------------------------------------- a view over all shards
SELECT repo_stream.refresh_view('public.like_counts');
SELECT key, count FROM public.like_counts ORDER BY key;
