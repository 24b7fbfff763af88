-- Snapshots: export_repo (full and since a rev), record_proof, list_repos.
-- CARs are read back with the helpers in test/snapshot_car.sql (plain SQL
-- over cbor_to_json), so what is checked is the bytes a consumer gets.
\set ECHO none
SET client_min_messages = warning;
\i test/snapshot_car.sql
RESET client_min_messages;
\set ECHO all

-- a repo with records in three collections, where "app.bsky.feed.post.x"
-- sorts before "app.bsky.feed.post/..." byte-wise, and some records share
-- their content (and so their CID) under several keys
SELECT repo_stream.create_repo('did:plc:snapalice') IS NOT NULL AS created;
INSERT INTO repo_stream.records (did, collection, rkey, record)
SELECT 'did:plc:snapalice', c, 'r' || lpad(i::text, 4, '0'),
	   jsonb_build_object('$type', c, 'text', CASE WHEN i % 10 = 0 THEN 'same' ELSE 'post ' || i END)
FROM generate_series(1, 600) i,
	 LATERAL (SELECT (ARRAY['app.bsky.feed.post', 'app.bsky.feed.post.x', 'app.bsky.feed.like'])[i % 3 + 1] AS c) col;

-- one CAR: every row has the head's seq and rev; chunks concatenate
SELECT count(*) AS rows,
       bool_and(e.seq = r.last_seq) AS seq_is_last_seq,
       bool_and(e.rev = r.head_rev) AS rev_is_head_rev,
       bool_and(length(chunk) <= 1048576) AS chunks_bounded
FROM repo_stream.export_repo('did:plc:snapalice') e, repo_stream.repos r WHERE r.did = 'did:plc:snapalice';

CREATE TEMP TABLE alice_car AS SELECT snaptest.export('did:plc:snapalice') AS car;
CREATE TEMP TABLE alice_blocks AS SELECT b.* FROM alice_car, snaptest.car_blocks(car) b;

-- the root is the head commit, which comes first; every block hashes to its CID
SELECT (SELECT cid FROM alice_blocks WHERE ord = 0) = head_cid AS root_is_head,
       (SELECT cid FROM alice_blocks WHERE ord = 1) = head_cid AS commit_first,
       (SELECT bool_and(snaptest.cid_of(data) = cid) FROM alice_blocks WHERE ord > 0) AS blocks_hash_to_cids
FROM repo_stream.repos WHERE did = 'did:plc:snapalice';
-- exactly the commit, every stored MST node and every distinct record, once each
SELECT (SELECT count(*) FROM alice_blocks WHERE ord > 0) AS blocks,
       1 + (SELECT count(*) FROM repo_stream.mst_nodes WHERE did = 'did:plc:snapalice')
         + (SELECT count(DISTINCT cid) FROM repo_stream.records WHERE did = 'did:plc:snapalice') AS expected,
       (SELECT count(*) = count(DISTINCT cid) FROM alice_blocks WHERE ord > 0) AS no_repeats,
       NOT EXISTS (SELECT cid FROM repo_stream.records WHERE did = 'did:plc:snapalice'
                   EXCEPT SELECT cid FROM alice_blocks) AS every_record,
       NOT EXISTS (SELECT snaptest.cid_text(cid) FROM repo_stream.mst_nodes WHERE did = 'did:plc:snapalice'
                   EXCEPT SELECT cid FROM alice_blocks) AS every_node;
-- stream order: every block after the block that links to it
SELECT snaptest.in_stream_order(car) AS stream_order FROM alice_car;
-- (the check can fail: the same blocks in reverse are not in stream order)
SELECT snaptest.in_stream_order(snaptest.car((SELECT cid FROM alice_blocks WHERE ord = 0),
       ARRAY(SELECT data FROM alice_blocks WHERE ord > 0 ORDER BY ord DESC))) AS reversed_in_stream_order;
-- records come in key order: byte-wise, so post.x before post/...
SELECT array_agg(r.collection ORDER BY b.ord) FILTER (WHERE r.rkey IN ('r0001', 'r0002', 'r0003')) AS first_keys_in_order
FROM alice_blocks b JOIN repo_stream.records r ON r.cid = b.cid AND r.did = 'did:plc:snapalice'
WHERE r.record->>'text' <> 'same';

-- the same export in the select list streams (value per call) and is equal
SELECT string_agg((x).chunk, ''::bytea) = (SELECT car FROM alice_car) AS same_in_select_list
FROM (SELECT repo_stream.export_repo('did:plc:snapalice') AS x) s;

-- a record block goes in once: with few CIDs remembered
-- (repo_stream.export_dedup_cids), an export asks for the CIDs held twice,
-- and with many of those, lets a window say which key holds one first;
-- the CAR is the same byte for byte
SELECT repo_stream.create_repo('did:plc:snapdups') IS NOT NULL AS created;
INSERT INTO repo_stream.records (did, collection, rkey, record)
SELECT 'did:plc:snapdups', 'app.bsky.feed.like', 'd' || i, jsonb_build_object('n', i % 20) FROM generate_series(1, 200) i;
CREATE TEMP TABLE dedup AS
SELECT snaptest.export('did:plc:snapalice') AS alice, snaptest.export('did:plc:snapdups') AS dups;
SET repo_stream.export_dedup_cids = 16;
SET client_min_messages = debug1;
SELECT snaptest.export('did:plc:snapalice') = alice AS one_duplicate_cid_same_car,
       snaptest.export('did:plc:snapdups') = dups AS twenty_duplicate_cids_same_car,
       (SELECT count(*) FROM snaptest.car_blocks(dups) WHERE ord > 0)
       = 1 + (SELECT count(*) FROM repo_stream.mst_nodes WHERE did = 'did:plc:snapdups') + 20 AS twenty_record_blocks
FROM dedup;
RESET client_min_messages;
RESET repo_stream.export_dedup_cids;

-- ---- since: a diff ----
-- since the head rev: the commit alone
SELECT count(*) AS blocks, bool_and(b.cid = r.head_cid) AS only_the_commit
FROM snaptest.car_blocks(snaptest.export('did:plc:snapalice', (SELECT head_rev FROM repo_stream.repos WHERE did = 'did:plc:snapalice'))) b,
     repo_stream.repos r
WHERE b.ord > 0 AND r.did = 'did:plc:snapalice';
-- since a rev older than every block: the full export
SELECT snaptest.export('did:plc:snapalice', '2222222222222') = (SELECT car FROM alice_car) AS old_since_is_full;

-- change one record, add one, delete one: the diff since the old head
SELECT head_rev AS old_rev FROM repo_stream.repos WHERE did = 'did:plc:snapalice' \gset
BEGIN;
UPDATE repo_stream.records SET record = record || '{"edited": true}' WHERE did = 'did:plc:snapalice' AND rkey = 'r0300';
INSERT INTO repo_stream.records (did, collection, rkey, record)
VALUES ('did:plc:snapalice', 'app.bsky.feed.like', 'r9999', '{"$type": "app.bsky.feed.like", "text": "new"}');
DELETE FROM repo_stream.records WHERE did = 'did:plc:snapalice' AND rkey = 'r0450';
COMMIT;
CREATE TEMP TABLE diff_blocks AS SELECT b.* FROM snaptest.car_blocks(snaptest.export('did:plc:snapalice', :'old_rev')) b;
CREATE TEMP TABLE new_blocks AS SELECT b.* FROM snaptest.car_blocks(snaptest.export('did:plc:snapalice')) b;
SELECT (SELECT count(*) FROM diff_blocks WHERE ord > 0) < (SELECT count(*) FROM new_blocks WHERE ord > 0) / 5 AS diff_is_small,
       (SELECT cid FROM diff_blocks WHERE ord = 1) = (SELECT cid FROM new_blocks WHERE ord = 1) AS diff_has_new_commit,
       EXISTS (SELECT 1 FROM diff_blocks d JOIN repo_stream.records r ON r.cid = d.cid
               WHERE r.did = 'did:plc:snapalice' AND r.rkey = 'r0300') AS has_updated_record,
       EXISTS (SELECT 1 FROM diff_blocks d JOIN repo_stream.records r ON r.cid = d.cid
               WHERE r.did = 'did:plc:snapalice' AND r.rkey = 'r9999') AS has_created_record,
       (SELECT snaptest.in_stream_order(snaptest.export('did:plc:snapalice', :'old_rev'))) AS diff_in_stream_order;
-- the old export plus the diff holds every block of the new tree
SELECT NOT EXISTS (SELECT cid FROM new_blocks WHERE ord > 0
                   EXCEPT (SELECT cid FROM alice_blocks UNION SELECT cid FROM diff_blocks)) AS old_plus_diff_is_whole;
-- the diff holds exactly the nodes stored after old_rev, and the records they link to
SELECT (SELECT count(*) FROM diff_blocks d JOIN repo_stream.mst_nodes n
          ON snaptest.cid_text(n.cid) = d.cid AND n.did = 'did:plc:snapalice') AS diff_nodes,
       (SELECT count(*) FROM repo_stream.mst_nodes WHERE did = 'did:plc:snapalice' AND rev > :'old_rev') AS nodes_after_old_rev,
       (SELECT array_agg(DISTINCT d.cid ORDER BY d.cid) FROM diff_blocks d
         WHERE d.ord > 1 AND d.cid IN (SELECT cid FROM repo_stream.records WHERE did = 'did:plc:snapalice'))
       = (SELECT array_agg(DISTINCT l ORDER BY l) FROM diff_blocks d, snaptest.links(d.data) l
           WHERE d.ord > 1 AND l IN (SELECT cid FROM repo_stream.records WHERE did = 'did:plc:snapalice'))
       AS records_are_those_the_new_nodes_link;

-- ---- chunks: a repo over 1 MiB comes in several rows of exactly 1 MiB ----
SELECT repo_stream.create_repo('did:plc:snapbig') IS NOT NULL AS created;
INSERT INTO repo_stream.records (did, collection, rkey, record)
SELECT 'did:plc:snapbig', 'app.bsky.feed.post', 'b' || i, jsonb_build_object('text', repeat(md5(i::text), 160))
FROM generate_series(1, 500) i;
SELECT count(*) AS rows, count(*) FILTER (WHERE length(chunk) = 1048576) AS full_rows,
       count(DISTINCT seq) AS seqs, count(DISTINCT rev) AS revs
FROM repo_stream.export_repo('did:plc:snapbig');
SELECT snaptest.in_stream_order(snaptest.export('did:plc:snapbig')) AS big_in_stream_order,
       (SELECT count(*) FROM snaptest.car_blocks(snaptest.export('did:plc:snapbig')) WHERE ord > 0)
       = 1 + (SELECT count(*) FROM repo_stream.mst_nodes WHERE did = 'did:plc:snapbig') + 500 AS big_all_blocks;

-- ---- an empty repo: its commit and the empty MST node ----
SELECT repo_stream.create_repo('did:plc:snapempty') IS NOT NULL AS created;
SELECT b.ord, repo_stream.cbor_to_json(b.data) - 'sig' - 'rev' - 'data' AS block
FROM snaptest.car_blocks(snaptest.export('did:plc:snapempty')) b WHERE b.ord > 0 ORDER BY b.ord;

-- ---- record_proof ----
CREATE TEMP TABLE proof AS
SELECT b.* FROM snaptest.car_blocks(repo_stream.record_proof('did:plc:snapalice', 'app.bsky.feed.post', 'r0300')) b;
SELECT (SELECT cid FROM proof WHERE ord = 0) = r.head_cid AS root_is_head,
       (SELECT cid FROM proof WHERE ord = 1) = r.head_cid AS commit_first,
       (SELECT cid FROM proof ORDER BY ord DESC LIMIT 1) = (SELECT cid FROM repo_stream.records
         WHERE did = 'did:plc:snapalice' AND rkey = 'r0300') AS record_last,
       (SELECT count(*) FROM proof p JOIN repo_stream.mst_nodes n ON snaptest.cid_text(n.cid) = p.cid
         AND n.did = 'did:plc:snapalice') AS path_nodes,
       (SELECT bool_and(snaptest.cid_of(data) = cid) FROM proof WHERE ord > 0) AS blocks_hash_to_cids,
       snaptest.in_stream_order(repo_stream.record_proof('did:plc:snapalice', 'app.bsky.feed.post', 'r0300')) AS stream_order
FROM repo_stream.repos r WHERE r.did = 'did:plc:snapalice';
-- the path nodes: the root first, each linking to the next, the last holding the key
SELECT bool_and(EXISTS (SELECT 1 FROM snaptest.links(p.data) l WHERE l = n.cid)) AS each_links_the_next
FROM proof p JOIN proof n ON n.ord = p.ord + 1 WHERE p.ord > 0;
-- an absent key: the path, and no record block
SELECT count(*) FILTER (WHERE b.ord > 1) AS path_nodes,
       bool_and(b.ord < 2 OR EXISTS (SELECT 1 FROM repo_stream.mst_nodes n
         WHERE n.did = 'did:plc:snapalice' AND snaptest.cid_text(n.cid) = b.cid)) AS only_nodes
FROM snaptest.car_blocks(repo_stream.record_proof('did:plc:snapalice', 'app.bsky.feed.post', 'r0450')) b;
SELECT count(*) AS blocks FROM snaptest.car_blocks(repo_stream.record_proof('did:plc:snapempty', 'app.bsky.feed.post', 'x')) WHERE ord > 0;

-- ---- list_repos: pages in DID order ----
SELECT did, head_cid IS NOT NULL AS has_head, repo_stream.is_valid_tid(rev) AS rev_is_tid, seq > 0 AS has_seq, status
FROM repo_stream.list_repos() WHERE did LIKE 'did:plc:snap%';
SELECT did FROM repo_stream.list_repos('did:plc:snapbig', 1);
SELECT count(*) AS after_the_last FROM repo_stream.list_repos((SELECT max(did) FROM repo_stream.repos));

-- ---- deactivated and deleted repos ----
SELECT repo_stream.create_repo('did:plc:snapoff') IS NOT NULL AS created;
SELECT repo_stream.deactivate_repo('did:plc:snapoff');
SELECT repo_stream.create_repo('did:plc:snapgone') IS NOT NULL AS created;
SELECT repo_stream.delete_repo('did:plc:snapgone');
SELECT did, status FROM repo_stream.list_repos() WHERE did IN ('did:plc:snapoff', 'did:plc:snapgone');

-- ---- errors, each with its SQLSTATE ----
\set VERBOSITY sqlstate
SELECT * FROM repo_stream.export_repo('did:plc:nobody');
SELECT * FROM repo_stream.export_repo('did:plc:snapgone');
SELECT * FROM repo_stream.export_repo('did:plc:snapoff');
SELECT * FROM repo_stream.export_repo('did:plc:snapalice', 'not-a-tid');
SELECT * FROM repo_stream.export_repo('not a did');
SELECT repo_stream.record_proof('did:plc:snapoff', 'app.bsky.feed.post', 'x');
SELECT repo_stream.record_proof('did:plc:nobody', 'app.bsky.feed.post', 'x');
SELECT repo_stream.record_proof('did:plc:snapalice', 'not-an-nsid', 'x');
SELECT repo_stream.record_proof('did:plc:snapalice', 'app.bsky.feed.post', 'bad/key');
SELECT * FROM repo_stream.list_repos(NULL, 0);
\set VERBOSITY default
SELECT * FROM repo_stream.export_repo('did:plc:snapoff');
SELECT * FROM repo_stream.export_repo('did:plc:snapgone');
SELECT * FROM repo_stream.export_repo('did:plc:snapalice', 'not-a-tid');

-- ---- privileges: a reader exports, proves and lists ----
CREATE ROLE snap_reader IN ROLE repo_stream_reader;
SET ROLE snap_reader;
SELECT count(*) > 0 AS reader_exports FROM repo_stream.export_repo('did:plc:snapalice');
SELECT length(repo_stream.record_proof('did:plc:snapalice', 'app.bsky.feed.post', 'r0300')) > 0 AS reader_proves;
SELECT count(*) > 0 AS reader_lists FROM repo_stream.list_repos();
\set VERBOSITY sqlstate
SELECT repo_stream.import_repo('\x00', 'did:key:z6Mkfoo');
\set VERBOSITY default
RESET ROLE;
DROP ROLE snap_reader;
