--
-- The record helpers and the repo functions: one rule per case, the same
-- for every function (docs/errors.md, "Unknown, deleted and repeated"), NULL
-- arguments, $type and the collection, the direct path and the SQL path.
--
-- SQLSTATE and message of a statement's error, or ok
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $f$;
SELECT repo_stream.create_repo('did:plc:help') LIKE 'did:key:z6Mk%' AS created;

-- NULL where a value is required: 22004 naming the argument
SELECT try($$SELECT repo_stream.put_record(NULL, 'app.bsky.feed.post', 'a', '{}')$$);
SELECT try($$SELECT repo_stream.put_record('did:plc:help', NULL, 'a', '{}')$$);
SELECT try($$SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.post', NULL, '{}')$$);
SELECT try($$SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.post', 'a', NULL)$$);
SELECT try($$SELECT repo_stream.create_record('did:plc:help', 'app.bsky.feed.post', NULL)$$);
SELECT try($$SELECT repo_stream.delete_record('did:plc:help', NULL, 'a')$$);
SELECT try($$SELECT repo_stream.get_record('did:plc:help', 'app.bsky.feed.post', NULL)$$);
SELECT try($$SELECT * FROM repo_stream.list_records('did:plc:help', NULL)$$);
SELECT try($$SELECT * FROM repo_stream.list_records('did:plc:help', 'app.bsky.feed.post', NULL, NULL)$$);
SELECT try($$SELECT repo_stream.create_repo(NULL)$$);
SELECT try($$SELECT repo_stream.deactivate_repo(NULL)$$);
SELECT try($$SELECT repo_stream.activate_repo(NULL)$$);
SELECT try($$SELECT repo_stream.delete_repo(NULL)$$);
SELECT try($$SELECT repo_stream.rotate_key(NULL)$$);
SELECT try($$SELECT repo_stream.repo_key(NULL)$$);
SELECT try($$SELECT * FROM repo_stream.events_since(NULL)$$);
SELECT try($$SELECT * FROM repo_stream.events_since(0, NULL)$$);

-- an unknown repo: 42704 from every function
SELECT try($$SELECT repo_stream.put_record('did:plc:nobody', 'app.bsky.feed.post', 'a', '{}')$$);
SELECT try($$SELECT repo_stream.create_record('did:plc:nobody', 'app.bsky.feed.post', '{}')$$);
SELECT try($$SELECT repo_stream.delete_record('did:plc:nobody', 'app.bsky.feed.post', 'a')$$);
SELECT try($$SELECT repo_stream.get_record('did:plc:nobody', 'app.bsky.feed.post', 'a')$$);
SELECT try($$SELECT * FROM repo_stream.list_records('did:plc:nobody', 'app.bsky.feed.post')$$);
SELECT try($$INSERT INTO repo_stream.records (did, collection, rkey, record) VALUES ('did:plc:nobody', 'app.bsky.feed.post', 'a', '{}')$$);
SELECT try($$SELECT repo_stream.deactivate_repo('did:plc:nobody')$$);
SELECT try($$SELECT repo_stream.activate_repo('did:plc:nobody')$$);
SELECT try($$SELECT repo_stream.delete_repo('did:plc:nobody')$$);
SELECT try($$SELECT repo_stream.rotate_key('did:plc:nobody')$$);
SELECT try($$SELECT repo_stream.repo_key('did:plc:nobody')$$);

-- $type is the collection: a different one is 22023 naming both, a missing
-- one is filled in, by the helpers and by plain DML
SELECT try($$SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.like', 'x', '{"$type": "app.bsky.feed.post", "text": "hi"}')$$);
INSERT INTO repo_stream.records (did, collection, rkey, record)
VALUES ('did:plc:help', 'app.bsky.feed.like', 'x', '{"$type": "app.bsky.feed.post"}');
SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.post', 'p1', '{"text": "no type"}') IS NOT NULL AS put;
INSERT INTO repo_stream.records (did, collection, rkey, record)
VALUES ('did:plc:help', 'app.bsky.feed.post', 'p2', '{"text": "no type either"}');
SELECT (repo_stream.create_record('did:plc:help', 'app.bsky.feed.like', '{"n": 1}')).cid IS NOT NULL AS created;
SELECT collection, record->>'$type' AS type, cid = repo_stream.cbor_cid(repo_stream.json_to_cbor(record)) AS cid_matches
FROM repo_stream.records WHERE did = 'did:plc:help' ORDER BY collection, rkey;

-- a missing record: get_record is NULL, delete_record is false
SELECT repo_stream.get_record('did:plc:help', 'app.bsky.feed.post', 'absent') IS NULL AS get_absent;
SELECT repo_stream.delete_record('did:plc:help', 'app.bsky.feed.post', 'absent') AS deleted_absent;
SELECT repo_stream.get_record('did:plc:help', 'app.bsky.feed.post', 'p1')->>'text' AS got;
SELECT repo_stream.delete_record('did:plc:help', 'app.bsky.feed.post', 'p1') AS deleted,
       repo_stream.delete_record('did:plc:help', 'app.bsky.feed.post', 'p1') AS deleted_again;

-- the same value again writes nothing and makes no event
SELECT max(seq) AS seq_before FROM repo_stream.event_log \gset
SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.post', 'p2', '{"text": "no type either"}') IS NOT NULL AS rewritten;
SELECT count(*) AS new_events FROM repo_stream.event_log WHERE seq > :seq_before;
-- a change does, with the op the write path logs for it
SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.post', 'p2', '{"text": "changed"}') IS NOT NULL AS changed;
SELECT e.kind, f->'body'->'ops'->0->>'action' AS action, f->'body'->'ops'->0->>'path' AS path
FROM repo_stream.event_log e, repo_stream.frame_to_json(e.frame) f WHERE e.seq > :seq_before;

-- list_records: newest rkey first, pages by cursor
SELECT repo_stream.put_record('did:plc:help', 'app.bsky.graph.follow', 'f' || i, jsonb_build_object('n', i)) IS NOT NULL
FROM generate_series(1, 5) i;
SELECT rkey, record->>'n' AS n FROM repo_stream.list_records('did:plc:help', 'app.bsky.graph.follow', NULL, 2);
SELECT rkey FROM repo_stream.list_records('did:plc:help', 'app.bsky.graph.follow', 'f4', 2);
SELECT rkey FROM repo_stream.list_records('did:plc:help', 'app.bsky.graph.follow', 'f2');
SELECT try($$SELECT * FROM repo_stream.list_records('did:plc:help', 'app.bsky.graph.follow', 'bad/cursor')$$);
SELECT try($$SELECT * FROM repo_stream.list_records('did:plc:help', 'app.bsky.graph.follow', NULL, 0)$$);
SELECT try($$SELECT * FROM repo_stream.list_records('did:plc:help', 'not an nsid')$$);

-- events_since: did and kind columns, repos and kinds filters
SELECT did, kind FROM repo_stream.events_since(:seq_before, 10, ARRAY['did:plc:help'], ARRAY['commit']);
SELECT count(seq) AS events FROM repo_stream.events_since(0, 1000, ARRAY['did:plc:neverseen']);
SELECT try($$SELECT * FROM repo_stream.events_since(0, 10, ARRAY['not a did'])$$);
SELECT try($$SELECT * FROM repo_stream.events_since(0, 10, NULL, ARRAY['commit', 'nope'])$$);
SELECT try($$SELECT * FROM repo_stream.events_since(0, 10, ARRAY[NULL::text])$$);

-- the helpers fall back to plain SQL when something they cannot see to
-- might apply: here a user's trigger, which then fires for them too
CREATE TABLE help_audit (op text, rkey text);
CREATE FUNCTION help_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO help_audit VALUES (TG_OP, coalesce(NEW.rkey, OLD.rkey));
	RETURN coalesce(NEW, OLD);
END $$;
CREATE TRIGGER help_audit AFTER INSERT OR UPDATE OR DELETE ON repo_stream.records
	FOR EACH ROW EXECUTE FUNCTION help_audit();
SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.post', 't1', '{"text": "audited"}') IS NOT NULL AS put;
SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.post', 't1', '{"text": "audited again"}') IS NOT NULL AS updated;
SELECT repo_stream.delete_record('did:plc:help', 'app.bsky.feed.post', 't1') AS deleted;
SELECT * FROM help_audit;
DROP TRIGGER help_audit ON repo_stream.records;
-- a CHECK constraint is honoured too
ALTER TABLE repo_stream.records ADD CONSTRAINT help_short CHECK (length(rkey) < 10) NOT VALID;
SELECT try($$SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.post', 'a-long-record-key', '{}')$$);
ALTER TABLE repo_stream.records DROP CONSTRAINT help_short;
SELECT bool_and(ok) AS verifies FROM repo_stream.verify_repo('did:plc:help');

-- two records of about 1 MB in one transaction: two commits, each within
-- the lexicon's 2,000,000 bytes of blocks (2 MiB would take both)
SELECT repo_stream.create_repo('did:plc:helpbig') IS NOT NULL AS created;
SELECT max(seq) AS seq_big FROM repo_stream.event_log \gset
SELECT count(repo_stream.put_record('did:plc:helpbig', 'app.bsky.feed.post', 'big' || i,
	jsonb_build_object('t', repeat('x', 999000), '$type', 'app.bsky.feed.post'))) AS written
FROM generate_series(1, 2) i;
SELECT count(*) AS commits,
	   bool_and(repo_stream.verify_frame(e.frame, repo_stream.repo_key('did:plc:helpbig'))) AS within_limits,
	   sum(jsonb_array_length(repo_stream.frame_to_json(e.frame)->'body'->'ops')) AS ops
FROM repo_stream.events_since(:seq_big, 10, ARRAY['did:plc:helpbig']) e;
SELECT repo_stream.delete_repo('did:plc:helpbig');

-- a deactivated repo: writes are 55000, reads go on; twice is a NOTICE
SELECT repo_stream.deactivate_repo('did:plc:help');
SELECT repo_stream.deactivate_repo('did:plc:help');
SELECT try($$SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.post', 'd', '{}')$$);
SELECT try($$SELECT repo_stream.delete_record('did:plc:help', 'app.bsky.feed.post', 'p2')$$);
SELECT try($$SELECT repo_stream.rotate_key('did:plc:help')$$);
SELECT repo_stream.get_record('did:plc:help', 'app.bsky.feed.post', 'p2')->>'text' AS still_readable;
SELECT repo_stream.activate_repo('did:plc:help');
SELECT repo_stream.activate_repo('did:plc:help');
SELECT kind, count(*) FROM repo_stream.events_since(:seq_before, 1000, ARRAY['did:plc:help'], ARRAY['account', 'sync'])
GROUP BY kind;

-- a deleted repo: 55000 from every function, create_repo 42710, and
-- deleting again is a NOTICE
SELECT repo_stream.delete_repo('did:plc:help');
SELECT repo_stream.delete_repo('did:plc:help');
SELECT try($$SELECT repo_stream.put_record('did:plc:help', 'app.bsky.feed.post', 'a', '{}')$$);
SELECT try($$SELECT repo_stream.delete_record('did:plc:help', 'app.bsky.feed.post', 'a')$$);
SELECT try($$SELECT repo_stream.get_record('did:plc:help', 'app.bsky.feed.post', 'a')$$);
SELECT try($$SELECT * FROM repo_stream.list_records('did:plc:help', 'app.bsky.feed.post')$$);
SELECT try($$SELECT repo_stream.deactivate_repo('did:plc:help')$$);
SELECT try($$SELECT repo_stream.activate_repo('did:plc:help')$$);
SELECT try($$SELECT repo_stream.rotate_key('did:plc:help')$$);
SELECT try($$SELECT repo_stream.repo_key('did:plc:help')$$);
SELECT try($$SELECT repo_stream.create_repo('did:plc:help')$$);
-- with the detail:
SELECT repo_stream.create_repo('did:plc:help');
