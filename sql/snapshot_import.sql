-- import_repo: an export comes back as the same repo (records, MST root)
-- under a fresh key, announced by #sync; and every check refuses its
-- tampered CAR with its SQLSTATE, leaving nothing behind and drawing no seq.
\set ECHO none
SET client_min_messages = warning;
\i test/snapshot_car.sql
RESET client_min_messages;
\set ECHO all

-- ---- a round trip through export and import ----
SELECT repo_stream.create_repo('did:plc:snapmover') IS NOT NULL AS created;
INSERT INTO repo_stream.records (did, collection, rkey, record)
SELECT 'did:plc:snapmover', c, 'm' || i,
	   jsonb_build_object('$type', c, 'text', 'moving ' || (i % 40), 'n', i % 7,
						  'blob', jsonb_build_object('$bytes', 'AAEC'),
						  'ref', jsonb_build_object('$link', 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a'))
FROM generate_series(1, 300) i,
	 LATERAL (SELECT (ARRAY['app.bsky.feed.post', 'app.bsky.graph.follow'])[i % 2 + 1] AS c) col;
CREATE TEMP TABLE mover AS
SELECT snaptest.export('did:plc:snapmover') AS car, repo_stream.repo_key('did:plc:snapmover') AS key,
	   (SELECT data_cid FROM repo_stream.repos WHERE did = 'did:plc:snapmover') AS root;
CREATE TEMP TABLE mover_records AS
SELECT collection, rkey, record, cid FROM repo_stream.records WHERE did = 'did:plc:snapmover';

-- while the repo is here, importing it again is 42710
\set VERBOSITY sqlstate
SELECT repo_stream.import_repo(car, key) FROM mover;
\set VERBOSITY default

-- it moves away: delete it here and forget the DID (as if this were
-- another database), then import the CAR
SELECT repo_stream.delete_repo('did:plc:snapmover');
\set VERBOSITY sqlstate
SELECT repo_stream.import_repo(car, key) FROM mover;
\set VERBOSITY default
DELETE FROM repo_stream.repos WHERE did = 'did:plc:snapmover';
DELETE FROM repo_stream.event_log WHERE did = 'did:plc:snapmover';
SELECT CASE WHEN is_called THEN last_value END AS seq_before FROM repo_stream.event_seq \gset

SELECT repo_stream.import_repo(car, key) AS new_key FROM mover \gset
SELECT :'new_key' ~ '^did:key:z6Mk' AS is_did_key, :'new_key' <> (SELECT key FROM mover) AS fresh_key,
       repo_stream.repo_key('did:plc:snapmover') = :'new_key' AS is_the_repo_key;
-- same records, same CIDs, same MST root
SELECT (SELECT count(*) FROM repo_stream.records WHERE did = 'did:plc:snapmover') AS records,
       NOT EXISTS (SELECT collection, rkey, record, cid FROM mover_records
                   EXCEPT SELECT collection, rkey, record, cid FROM repo_stream.records WHERE did = 'did:plc:snapmover')
       AS same_records,
       (SELECT data_cid FROM repo_stream.repos WHERE did = 'did:plc:snapmover') = (SELECT root FROM mover) AS same_root;
-- one #sync, seq after the old ones, signed by the new key; the head is that commit
SELECT e.seq > :seq_before AS seq_after, j->'header'->>'t' AS type, j->'body'->>'did' AS did,
       repo_stream.verify_frame(e.frame, :'new_key') AS verifies,
       r.last_seq = e.seq AS is_last_seq, r.head_rev = j->'body'->>'rev' AS is_head
FROM repo_stream.events_since(:seq_before) e, repo_stream.frame_to_json(e.frame) j, repo_stream.repos r
WHERE e.seq IS NOT NULL AND r.did = 'did:plc:snapmover';
SELECT check_name, ok FROM repo_stream.verify_repo('did:plc:snapmover');
-- it exports again: same tree, the new commit
SELECT (SELECT count(*) FROM snaptest.car_blocks(snaptest.export('did:plc:snapmover')))
     = (SELECT count(*) FROM snaptest.car_blocks(car)) AS same_block_count,
       NOT EXISTS (SELECT cid FROM snaptest.car_blocks(car) WHERE ord > 1
                   EXCEPT SELECT cid FROM snaptest.car_blocks(snaptest.export('did:plc:snapmover'))) AS same_tree
FROM mover;
-- and takes writes
SELECT repo_stream.put_record('did:plc:snapmover', 'app.bsky.feed.post', 'after', '{"text": "after the move"}') IS NOT NULL AS writable;

-- an empty repo imports
SELECT * FROM repo_stream._keys_generate() \gset k_
SELECT repo_stream.import_repo(snaptest.car(snaptest.cid_of(c), ARRAY[c, n]), :'k_did_key') ~ '^did:key:' AS empty_imported
FROM (SELECT repo_stream.json_to_cbor('{"e": [], "l": null}') AS n) node,
     LATERAL (SELECT snaptest.commit('did:plc:snapemptyimport', '3kzzzzzzzzz22', snaptest.cid_of(n), :'k_sealed') AS c) cm;
SELECT count(*) AS records, (SELECT status FROM repo_stream.repos WHERE did = 'did:plc:snapemptyimport') AS status
FROM repo_stream.records WHERE did = 'did:plc:snapemptyimport';

-- a one-record CAR built here (test/snapshot_car.sql) imports
SELECT repo_stream.import_repo(snaptest.one_record_car('did:plc:snapone', 'app.bsky.feed.post/one',
		repo_stream.json_to_cbor('{"text": "one"}'), :'k_sealed'), :'k_did_key') ~ '^did:key:' AS built_imported;
-- its record has no $type, and keeps none: filling it in, as the write path
-- does, would change the record's CID, the MST root and the signed commit
SELECT record, cid = snaptest.cid_of(repo_stream.json_to_cbor('{"text": "one"}')) AS same_cid
FROM repo_stream.records WHERE did = 'did:plc:snapone';

-- ---- every check refuses its tampered CAR, leaving nothing ----
-- (snaptest.try_import gives the SQLSTATE and the message, CIDs masked)
SELECT CASE WHEN is_called THEN last_value END AS seq_before FROM repo_stream.event_seq \gset
CREATE TEMP TABLE good AS
SELECT snaptest.one_record_car('did:plc:snapbad', 'app.bsky.feed.post/a', repo_stream.json_to_cbor('{"text": "a"}'),
							   :'k_sealed') AS car;
-- malformed CAR: empty, garbage, truncated, a byte of a block flipped
SELECT snaptest.try_import('', :'k_did_key') AS empty;
SELECT snaptest.try_import('\xdeadbeef', :'k_did_key') AS garbage;
SELECT snaptest.try_import(substring(car FROM 1 FOR 200), :'k_did_key') AS truncated FROM good;
SELECT snaptest.try_import(set_byte(car, length(car) - 2, get_byte(car, length(car) - 2) # 1), :'k_did_key') AS flipped
FROM good;
-- not a repo CAR: two roots; a root that is not a commit; a missing record block
SELECT snaptest.try_import(snaptest.varint(length(h)) || h || substring(car FROM 2 + get_byte(car, 0)), :'k_did_key') AS two_roots
FROM good, repo_stream.json_to_cbor(jsonb_build_object('roots', jsonb_build_array(
	jsonb_build_object('$link', snaptest.cid_of('\xa0')), jsonb_build_object('$link', snaptest.cid_of('\xa0'))), 'version', 1)) h;
SELECT snaptest.try_import(snaptest.car(snaptest.cid_of('\xa0'), ARRAY['\xa0'::bytea]), :'k_did_key') AS not_a_commit;
SELECT snaptest.try_import(snaptest.car(snaptest.cid_of(c), ARRAY[c, n]), :'k_did_key') AS missing_record
FROM (SELECT snaptest.node(ARRAY['app.bsky.feed.post/a'], ARRAY[snaptest.cid_of('\xa0')], ARRAY[NULL]) AS n) node,
     LATERAL (SELECT snaptest.commit('did:plc:snapbad', '3kzzzzzzzzz22', snaptest.cid_of(n), :'k_sealed') AS c) cm;
-- signed by another key; a malformed did:key
SELECT snaptest.try_import(car, repo_stream.repo_key('did:plc:snapmover')) AS other_key FROM good;
SELECT snaptest.try_import(car, 'did:key:nope') AS bad_did_key FROM good;
-- an MST that is not canonical: the root is only a left link
SELECT snaptest.try_import(snaptest.car(snaptest.cid_of(c), ARRAY[c, root, leaf, r]), :'k_did_key') AS noncanonical
FROM (SELECT repo_stream.json_to_cbor('{"text": "a"}') AS r) rec,
     LATERAL (SELECT snaptest.node(ARRAY['app.bsky.feed.post/a'], ARRAY[snaptest.cid_of(r)], ARRAY[NULL]) AS leaf) l,
     LATERAL (SELECT snaptest.node(ARRAY[]::text[], ARRAY[]::text[], ARRAY[]::text[], snaptest.cid_of(leaf)) AS root) rt,
     LATERAL (SELECT snaptest.commit('did:plc:snapbad', '3kzzzzzzzzz22', snaptest.cid_of(root), :'k_sealed') AS c) cm;
-- records: invalid DAG-CBOR (a float), not a map, under an invalid key, over
-- 1,000,000 bytes, not surviving the jsonb round trip (a NUL in a string,
-- 22P05, is in test/t/043_snapshot_tamper.pl: that check of the shared
-- CBOR->jsonb code lands separately)
SELECT snaptest.try_import(snaptest.one_record_car('did:plc:snapbad', 'app.bsky.feed.post/a',
	'\xa16161f93c00', :'k_sealed'), :'k_did_key') AS float_record;
SELECT snaptest.try_import(snaptest.one_record_car('did:plc:snapbad', 'app.bsky.feed.post/a',
	'\x8101', :'k_sealed'), :'k_did_key') AS array_record;
SELECT snaptest.try_import(snaptest.one_record_car('did:plc:snapbad', 'nocollection/a',
	repo_stream.json_to_cbor('{"text": "a"}'), :'k_sealed'), :'k_did_key') AS bad_key;
SELECT snaptest.try_import(snaptest.one_record_car('did:plc:snapbad', 'app.bsky.feed.post/a',
	'\xa16162' || '\x5a000f4239'::bytea || decode(repeat('00', 1000001 - 8), 'hex'), :'k_sealed'), :'k_did_key') AS too_big;
SELECT snaptest.try_import(snaptest.one_record_car('did:plc:snapbad', 'app.bsky.feed.post/a',
	'\xa165246c696e6b783b'::bytea || convert_to('bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a', 'UTF8'),
	:'k_sealed'), :'k_did_key') AS no_round_trip;
-- the write path's record rules: a $type other than the record's collection
-- is refused, also after a good record (keys b and d: one node at layer 0;
-- nothing of the CAR is written)
SELECT snaptest.try_import(snaptest.one_record_car('did:plc:snapbad', 'app.bsky.feed.post/a',
	repo_stream.json_to_cbor('{"$type": "app.bsky.feed.like", "text": "a"}'), :'k_sealed'), :'k_did_key') AS wrong_type;
SELECT snaptest.try_import(snaptest.car(snaptest.cid_of(c), ARRAY[c, n, r1, r2]), :'k_did_key') AS wrong_type_second
FROM (SELECT repo_stream.json_to_cbor('{"$type": "app.bsky.feed.post", "text": "fine"}') AS r1,
             repo_stream.json_to_cbor('{"$type": "app.bsky.feed.post.x", "text": "not a post"}') AS r2) rec,
     LATERAL (SELECT snaptest.node(ARRAY['app.bsky.feed.post/b', 'app.bsky.feed.post/d'],
                                   ARRAY[snaptest.cid_of(r1), snaptest.cid_of(r2)], ARRAY[NULL, NULL]) AS n) node,
     LATERAL (SELECT snaptest.commit('did:plc:snapbad', '3kzzzzzzzzz22', snaptest.cid_of(n), :'k_sealed') AS c) cm;
-- the block checks come first: the same bad record, one byte flipped, fails its hash
SELECT snaptest.try_import(set_byte(car, length(car) - 2, get_byte(car, length(car) - 2) # 1), :'k_did_key')
	AS wrong_type_flipped
FROM snaptest.one_record_car('did:plc:snapbad', 'app.bsky.feed.post/a',
	repo_stream.json_to_cbor('{"$type": "app.bsky.feed.like", "text": "a"}'), :'k_sealed') car;
-- nothing of did:plc:snapbad anywhere, and no seq was drawn
SELECT snaptest.traces('did:plc:snapbad');
SELECT (SELECT CASE WHEN is_called THEN last_value END FROM repo_stream.event_seq) IS NOT DISTINCT FROM :seq_before::bigint AS no_seq_drawn;
-- the CAR they were made from imports
SELECT snaptest.try_import(car, :'k_did_key') AS untampered FROM good;

-- ---- a large object: the same import for CARs of any size ----
SELECT lo_from_bytea(0, snaptest.one_record_car('did:plc:snaplo', 'app.bsky.feed.post/lo',
	repo_stream.json_to_cbor('{"text": "from a large object"}'), :'k_sealed')) AS lo \gset
SELECT repo_stream.import_repo_lo(:lo, :'k_did_key') ~ '^did:key:' AS lo_imported;
SELECT record FROM repo_stream.records WHERE did = 'did:plc:snaplo';
SELECT lo_unlink(:lo);
-- and the same record rules
SELECT lo_from_bytea(0, snaptest.one_record_car('did:plc:snapbadlo', 'app.bsky.feed.post/lo',
	repo_stream.json_to_cbor('{"$type": "app.bsky.feed.like"}'), :'k_sealed')) AS lo \gset
\set VERBOSITY terse
SELECT repo_stream.import_repo_lo(:lo, :'k_did_key');
\set VERBOSITY default
SELECT snaptest.traces('did:plc:snapbadlo');
SELECT lo_unlink(:lo);
