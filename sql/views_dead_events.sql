-- A refresh reads the event log through its index.  Entries that lead to
-- dead rows (a relay's apply transaction that aborted after appending, a
-- crash) are marked dead by the scan, which then keeps a list of them
-- until the scan ends; a handler view frees its per-event memory after
-- every event, so that list must not live there.  Here the dead rows are
-- made by hand (superuser): the refresh skips them, applies the rest, and
-- the server survives.
SET client_min_messages = warning;
CREATE SCHEMA vdead;
CREATE TABLE vdead.seen (seq bigint, action text, path text);
CREATE FUNCTION vdead.h(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO vdead.seen VALUES (seq, action, path) $$;
SELECT repo_stream.create_repo('did:plc:vdead') IS NOT NULL AS created;
SELECT repo_stream.create_handler_view('vdead.log', 'vdead.h(bigint,text,text,text,jsonb)', 'com.example.vdead.like');
SELECT repo_stream.create_count_view('vdead.counts', 'com.example.vdead.like', '$did');
-- 300 single-record commits, one event each
DO $$
BEGIN
	FOR i IN 1..300 LOOP
		PERFORM repo_stream.put_record('did:plc:vdead', 'com.example.vdead.like', 'k' || i,
			jsonb_build_object('subject', jsonb_build_object('uri', 'at://did:plc:x/app.bsky.feed.post/p' || i)));
		COMMIT;
	END LOOP;
END $$;
-- every other event of the 300 gone: 150 index entries to dead rows
DELETE FROM repo_stream.event_log e
 WHERE did = 'did:plc:vdead' AND kind = 'commit'
   AND seq > (SELECT cursor FROM repo_stream.views WHERE name = 'vdead.log') AND seq % 2 = 0;
SELECT repo_stream.refresh_view('vdead.log') AS applied_handler,
       repo_stream.refresh_view('vdead.counts') AS applied_count;
-- and once more, now that the scans have marked them
SELECT repo_stream.refresh_view('vdead.log') AS applied_again;
SELECT count(*) AS handler_calls, count(DISTINCT path) AS paths, bool_and(action = 'create') AS creates FROM vdead.seen;
SELECT count FROM vdead.counts;
SELECT repo_stream.drop_view('vdead.log');
SELECT repo_stream.drop_view('vdead.counts');
SELECT repo_stream.delete_repo('did:plc:vdead');
DROP SCHEMA vdead CASCADE;
