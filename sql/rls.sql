--
-- Per-DID write scoping: row-level security on repo_stream.records lets an
-- application role (or a role per user) write only its own DIDs.  The
-- write path's internal statements run as the extension's owner, so commits,
-- nodes and events are made as usual for the rows a policy lets through.
--
CREATE ROLE regress_alice_app IN ROLE repo_stream_writer;
CREATE ROLE regress_bob_app IN ROLE repo_stream_writer;
CREATE ROLE regress_bob_del IN ROLE repo_stream_deleter;
CREATE ROLE regress_feed IN ROLE repo_stream_reader;
SELECT repo_stream.create_repo('did:plc:rlsalice') IS NOT NULL AS alice,
       repo_stream.create_repo('did:plc:rlsbob') IS NOT NULL AS bob;
SELECT repo_stream.put_record('did:plc:rlsbob', 'app.bsky.feed.post', 'b1', '{"text": "bob"}') IS NOT NULL AS bob_post;

-- which role may write which DID: any table or expression will do
CREATE TABLE did_owner (did text, role name, PRIMARY KEY (did, role));
INSERT INTO did_owner VALUES ('did:plc:rlsalice', 'regress_alice_app'), ('did:plc:rlsbob', 'regress_bob_app'),
	('did:plc:rlsbob', 'regress_bob_del');
GRANT SELECT ON did_owner TO repo_stream_writer;

ALTER TABLE repo_stream.records ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_dids ON repo_stream.records TO repo_stream_writer
	USING (did IN (SELECT did FROM did_owner WHERE role = current_user))
	WITH CHECK (did IN (SELECT did FROM did_owner WHERE role = current_user));
-- readers keep seeing every record
CREATE POLICY readers ON repo_stream.records FOR SELECT TO repo_stream_reader USING (true);

SELECT max(seq) AS seq_before FROM repo_stream.event_log \gset
SET ROLE regress_alice_app;
-- her own repo, through the helpers and through plain DML
SELECT repo_stream.put_record('did:plc:rlsalice', 'app.bsky.feed.post', 'a1', '{"text": "alice"}') IS NOT NULL AS put_own;
INSERT INTO repo_stream.records (did, collection, rkey, record)
VALUES ('did:plc:rlsalice', 'app.bsky.feed.post', 'a2', '{"text": "alice again"}');
UPDATE repo_stream.records SET record = '{"text": "alice, edited"}' WHERE did = 'did:plc:rlsalice' AND rkey = 'a2';
SELECT (repo_stream.create_record('did:plc:rlsalice', 'app.bsky.feed.like', '{"n": 1}')).rkey IS NOT NULL AS created_own;
-- someone else's: refused (42501), or invisible
SELECT repo_stream.put_record('did:plc:rlsbob', 'app.bsky.feed.post', 'x', '{"text": "forged"}');
INSERT INTO repo_stream.records (did, collection, rkey, record)
VALUES ('did:plc:rlsbob', 'app.bsky.feed.post', 'x', '{"text": "forged"}');
UPDATE repo_stream.records SET did = 'did:plc:rlsbob' WHERE did = 'did:plc:rlsalice' AND rkey = 'a1';
UPDATE repo_stream.records SET record = '{"text": "defaced"}' WHERE did = 'did:plc:rlsbob';
-- plain DELETE is not a writer's (its table-level privilege would also
-- allow LOCK TABLE in every mode); delete_record is, and cannot see Bob's
DELETE FROM repo_stream.records WHERE did = 'did:plc:rlsbob';
SELECT repo_stream.delete_record('did:plc:rlsbob', 'app.bsky.feed.post', 'b1') AS deleted_bobs;
SELECT did, collection, regexp_replace(rkey, '^[2-7a-z]{13}$', '<tid>') AS rkey
FROM repo_stream.records ORDER BY did, collection, rkey;
RESET ROLE;

-- exactly Alice's three writes became commits; Bob's post is untouched
SELECT e.did, f->'body'->'ops'->0->>'action' AS action,
       regexp_replace(f->'body'->'ops'->0->>'path', '/[2-7a-z]{13}$', '/<tid>') AS path
FROM repo_stream.event_log e, repo_stream.frame_to_json(e.frame) f
WHERE e.seq > :seq_before ORDER BY e.seq;
SELECT record->>'text' AS bobs_post FROM repo_stream.records WHERE did = 'did:plc:rlsbob';
SELECT did, bool_and(ok) AS verifies FROM (
	SELECT 'did:plc:rlsalice' AS did, ok FROM repo_stream.verify_repo('did:plc:rlsalice')
	UNION ALL SELECT 'did:plc:rlsbob', ok FROM repo_stream.verify_repo('did:plc:rlsbob')) v
GROUP BY did ORDER BY did;

-- Bob writes his own; a reader sees both
SET ROLE regress_bob_app;
SELECT repo_stream.put_record('did:plc:rlsbob', 'app.bsky.feed.post', 'b2', '{"text": "bob again"}') IS NOT NULL AS put_own;
SET ROLE regress_feed;
SELECT did, count(*) FROM repo_stream.records WHERE did LIKE 'did:plc:rls%' GROUP BY did ORDER BY did;
RESET ROLE;

-- Deleting under the policies: a writer with delete_record, a member of
-- repo_stream_deleter also with plain DELETE; other DIDs' rows stay out of reach
SELECT max(seq) AS seq_mid FROM repo_stream.event_log \gset
SET ROLE regress_alice_app;
SELECT repo_stream.delete_record('did:plc:rlsalice', 'app.bsky.feed.post', 'a2') AS deleted_own,
       repo_stream.delete_record('did:plc:rlsbob', 'app.bsky.feed.post', 'b2') AS deleted_bobs;
SET ROLE regress_bob_del;
DELETE FROM repo_stream.records WHERE did = 'did:plc:rlsalice';
DELETE FROM repo_stream.records WHERE did = 'did:plc:rlsbob' AND rkey = 'b2';
RESET ROLE;
SELECT e.did, f->'body'->'ops'->0->>'action' AS action, f->'body'->'ops'->0->>'path' AS path
FROM repo_stream.event_log e, repo_stream.frame_to_json(e.frame) f
WHERE e.seq > :seq_mid ORDER BY e.seq;
SELECT did, count(*) FROM repo_stream.records WHERE did LIKE 'did:plc:rls%' GROUP BY did ORDER BY did;
SELECT did, bool_and(ok) AS verifies FROM (
	SELECT 'did:plc:rlsalice' AS did, ok FROM repo_stream.verify_repo('did:plc:rlsalice')
	UNION ALL SELECT 'did:plc:rlsbob', ok FROM repo_stream.verify_repo('did:plc:rlsbob')) v
GROUP BY did ORDER BY did;

DROP POLICY own_dids ON repo_stream.records;
DROP POLICY readers ON repo_stream.records;
ALTER TABLE repo_stream.records DISABLE ROW LEVEL SECURITY;
SELECT repo_stream.delete_repo('did:plc:rlsalice'), repo_stream.delete_repo('did:plc:rlsbob');
DROP TABLE did_owner;
DROP ROLE regress_alice_app, regress_bob_app, regress_bob_del, regress_feed;
