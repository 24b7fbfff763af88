-- Count views across import_repo and the repo lifecycle.  A repo is
-- exported, deleted and imported back (moved as sql/snapshot_import.sql
-- moves one) while count views over its collections are maintained; after
-- every refresh each view's counts equal GROUP BY over repo_stream.records,
-- and before it view_count_live equals that GROUP BY.  Collections are
-- com.example.vimport.*, so the other tests' records do not count.
SET client_min_messages = notice;
CREATE SCHEMA vimp;

-- The truth: GROUP BY over the current records, the path read by plain
-- jsonb operators (a string, else no key).
CREATE FUNCTION vimp.truth(coll text, path text[]) RETURNS TABLE (key text, count bigint)
LANGUAGE sql STABLE AS $$
	SELECT k, count(*) FROM (
		SELECT CASE WHEN path = '{$did}' THEN did
		            WHEN jsonb_typeof(record #> path) = 'string' THEN record #>> path END AS k
		FROM repo_stream.records WHERE collection = coll) s
	WHERE k IS NOT NULL GROUP BY k
$$;

-- The views under test: name, collection, path.
CREATE TABLE vimp.views (name text PRIMARY KEY, coll text, path text[]);
INSERT INTO vimp.views VALUES
	('vimp.likes_eager', 'com.example.vimport.like', '{subject,uri}'),  -- refreshed at every step
	('vimp.likes_lazy',  'com.example.vimport.like', '{subject,uri}'),  -- refreshed only where said
	('vimp.posters',     'com.example.vimport.post', '{$did}');         -- refreshed only where said

-- Every row where a view's table and the truth differ, both ways (EXCEPT):
-- none when the view is exact.
CREATE FUNCTION vimp.diff() RETURNS TABLE (view text, side text, key text, count bigint)
LANGUAGE plpgsql AS $$
DECLARE
	v record;
BEGIN
	FOR v IN SELECT * FROM vimp.views ORDER BY name LOOP
		RETURN QUERY EXECUTE format(
			'SELECT %1$L, * FROM ((SELECT ''only in the view'', key, count FROM %1$s'
			'                      EXCEPT SELECT ''only in the view'', * FROM vimp.truth($1, $2))'
			'           UNION ALL (SELECT ''only in records'', * FROM vimp.truth($1, $2)'
			'                      EXCEPT SELECT ''only in records'', key, count FROM %1$s)) d'
			' ORDER BY 3, 2', v.name) USING v.coll, v.path;
	END LOOP;
END $$;

-- Every key (of the truth or the table) whose view_count_live differs from
-- the truth: none when the live count is exact.
CREATE FUNCTION vimp.live_diff() RETURNS TABLE (view text, key text, live bigint, truth bigint)
LANGUAGE plpgsql AS $$
DECLARE
	v record;
BEGIN
	FOR v IN SELECT * FROM vimp.views ORDER BY name LOOP
		RETURN QUERY EXECUTE format(
			'SELECT %1$L, k.key, repo_stream.view_count_live(%1$L, k.key), coalesce(t.count, 0)'
			'  FROM (SELECT key FROM vimp.truth($1, $2) UNION SELECT key FROM %1$s) k'
			'  LEFT JOIN vimp.truth($1, $2) t USING (key)'
			' WHERE repo_stream.view_count_live(%1$L, k.key) IS DISTINCT FROM coalesce(t.count, 0)'
			' ORDER BY 2', v.name) USING v.coll, v.path;
	END LOOP;
END $$;

-- What the tables hold, to read alongside (the proof is diff() being empty).
CREATE FUNCTION vimp.totals() RETURNS TABLE (view text, keys bigint, total bigint, truth_keys bigint, truth_total bigint)
LANGUAGE plpgsql AS $$
DECLARE
	v record;
BEGIN
	FOR v IN SELECT * FROM vimp.views ORDER BY name LOOP
		RETURN QUERY EXECUTE format(
			'SELECT %1$L, (SELECT count(*) FROM %1$s), (SELECT sum(count)::bigint FROM %1$s),'
			'       (SELECT count(*) FROM vimp.truth($1, $2)), (SELECT sum(count)::bigint FROM vimp.truth($1, $2))',
			v.name) USING v.coll, v.path;
	END LOOP;
END $$;

-- ---------------------------------------------------------------- repos
SELECT repo_stream.create_repo('did:plc:vimsrc') IS NOT NULL AS src,
       repo_stream.create_repo('did:plc:vimone') IS NOT NULL AS one,
       repo_stream.create_repo('did:plc:vimtwo') IS NOT NULL AS two;
-- likes of posts a, b, c (one without a subject, one whose uri is not a
-- string), posts; the repo that moves, vimsrc, has some of each
INSERT INTO repo_stream.records (did, collection, rkey, record) VALUES
	('did:plc:vimsrc', 'com.example.vimport.like', 's1', '{"subject": {"uri": "at://post/a"}}'),
	('did:plc:vimsrc', 'com.example.vimport.like', 's2', '{"subject": {"uri": "at://post/a"}}'),
	('did:plc:vimsrc', 'com.example.vimport.like', 's3', '{"subject": {"uri": "at://post/b"}}'),
	('did:plc:vimsrc', 'com.example.vimport.like', 's4', '{"subject": {"uri": "at://post/s"}}'),
	('did:plc:vimsrc', 'com.example.vimport.like', 's5', '{"note": "no subject"}'),
	('did:plc:vimsrc', 'com.example.vimport.post', 'p1', '{"text": "one"}'),
	('did:plc:vimsrc', 'com.example.vimport.post', 'p2', '{"text": "two"}'),
	('did:plc:vimsrc', 'com.example.vimport.post', 'p3', '{"text": "three"}'),
	('did:plc:vimone', 'com.example.vimport.like', 'o1', '{"subject": {"uri": "at://post/a"}}'),
	('did:plc:vimone', 'com.example.vimport.like', 'o2', '{"subject": {"uri": "at://post/b"}}'),
	('did:plc:vimone', 'com.example.vimport.like', 'o3', '{"subject": {"uri": 42}}'),
	('did:plc:vimone', 'com.example.vimport.post', 'p1', '{"text": "one"}'),
	('did:plc:vimtwo', 'com.example.vimport.like', 't1', '{"subject": {"uri": "at://post/c"}}'),
	('did:plc:vimtwo', 'com.example.vimport.post', 'p1', '{"text": "one"}'),
	('did:plc:vimtwo', 'com.example.vimport.post', 'p2', '{"text": "two"}');

-- ---------------------------------------------------------------- the views
SELECT repo_stream.create_count_view(name, coll, array_to_string(path, '.')) FROM vimp.views ORDER BY name;
SELECT * FROM vimp.diff();
SELECT * FROM vimp.totals();
-- vimsrc changes a like's key before it moves (an update the views apply)
SELECT repo_stream.put_record('did:plc:vimsrc', 'com.example.vimport.like', 's3',
                              '{"subject": {"uri": "at://post/c"}}') IS NOT NULL AS updated;
SELECT repo_stream.refresh_view(name) AS applied FROM vimp.views ORDER BY name;
SELECT * FROM vimp.diff();

-- ---------------------------------------------------------------- the move
-- export vimsrc, delete it, forget the DID (as if the CAR went to another
-- database and came back: DIDs are not reused in one database), import
CREATE TEMP TABLE moved AS
SELECT string_agg(chunk, ''::bytea ORDER BY n) AS car, repo_stream.repo_key('did:plc:vimsrc') AS key
FROM repo_stream.export_repo('did:plc:vimsrc') WITH ORDINALITY AS e(seq, rev, chunk, n);
CREATE TEMP TABLE src_before AS
SELECT collection, rkey, record, cid FROM repo_stream.records WHERE did = 'did:plc:vimsrc';
SELECT repo_stream.delete_repo('did:plc:vimsrc');
-- the deletion: view_count_live counts it before any refresh, the eager
-- view applies it
SELECT * FROM vimp.live_diff();
SELECT repo_stream.refresh_view('vimp.likes_eager') AS applied;
SELECT * FROM vimp.diff() WHERE view = 'vimp.likes_eager';
-- a deleted DID is not imported again (views read a #sync with the data
-- root of the repo's last commit as a key rotation, which relies on it)
\set VERBOSITY sqlstate
SELECT repo_stream.import_repo(car, key) FROM moved;
\set VERBOSITY default
-- so forget it, with its events, as sql/snapshot_import.sql does
DELETE FROM repo_stream.repos WHERE did = 'did:plc:vimsrc';
DELETE FROM repo_stream.event_log WHERE did = 'did:plc:vimsrc';
SELECT repo_stream.import_repo(car, key) <> key AS imported_with_a_fresh_key FROM moved;
SELECT NOT EXISTS (SELECT * FROM src_before EXCEPT SELECT collection, rkey, record, cid
                   FROM repo_stream.records WHERE did = 'did:plc:vimsrc')
   AND NOT EXISTS (SELECT collection, rkey, record, cid FROM repo_stream.records WHERE did = 'did:plc:vimsrc'
                   EXCEPT SELECT * FROM src_before) AS same_records;
-- the #sync: live counts see the records back before a refresh
SELECT * FROM vimp.live_diff();
SELECT repo_stream.refresh_view('vimp.likes_eager') AS applied;
SELECT * FROM vimp.diff() WHERE view = 'vimp.likes_eager';

-- ---------------------------------------------------------------- after the move
-- the imported repo's records change: an update (the old key comes from
-- the import), a delete, a create
SELECT repo_stream.put_record('did:plc:vimsrc', 'com.example.vimport.like', 's1',
                              '{"subject": {"uri": "at://post/b"}}') IS NOT NULL AS updated,
       repo_stream.delete_record('did:plc:vimsrc', 'com.example.vimport.like', 's4') AS deleted,
       repo_stream.put_record('did:plc:vimsrc', 'com.example.vimport.like', 's6',
                              '{"subject": {"uri": "at://post/a"}}') IS NOT NULL AS created,
       repo_stream.delete_record('did:plc:vimsrc', 'com.example.vimport.post', 'p2') AS post_deleted;
SELECT * FROM vimp.live_diff();
-- the lazy views meet the #sync (the deletion went from the log with the
-- DID) and these ops; likes_lazy stops right after the #sync, which reads
-- the records as they are now, so the ops after it must not count again
SELECT repo_stream.refresh_view('vimp.likes_lazy', 1) AS applied;
SELECT * FROM vimp.diff() WHERE view = 'vimp.likes_lazy';
SELECT * FROM vimp.live_diff();
SELECT repo_stream.refresh_view(name) AS applied FROM vimp.views ORDER BY name;
SELECT * FROM vimp.diff();
SELECT * FROM vimp.totals();
SELECT name, lag_events, rebuilds, last_error FROM repo_stream.view_status
WHERE name IN (SELECT name FROM vimp.views) ORDER BY name;

-- a key rotation of the imported repo: a #sync with the import's data root
SELECT repo_stream.rotate_key('did:plc:vimsrc') IS NOT NULL AS rotated;
SELECT * FROM vimp.live_diff();
SELECT repo_stream.refresh_view(name) AS applied FROM vimp.views ORDER BY name;
SELECT * FROM vimp.diff();

-- ---------------------------------------------------------------- deactivate, activate
-- records stay, so counts do; writes resume after activation
SELECT repo_stream.deactivate_repo('did:plc:vimsrc'), repo_stream.deactivate_repo('did:plc:vimone');
SELECT * FROM vimp.live_diff();
SELECT repo_stream.refresh_view('vimp.likes_eager') AS applied;
SELECT * FROM vimp.diff() WHERE view = 'vimp.likes_eager';
SELECT repo_stream.activate_repo('did:plc:vimsrc'), repo_stream.activate_repo('did:plc:vimone');
SELECT repo_stream.put_record('did:plc:vimsrc', 'com.example.vimport.like', 's7',
                              '{"subject": {"uri": "at://post/c"}}') IS NOT NULL AS created,
       repo_stream.put_record('did:plc:vimone', 'com.example.vimport.post', 'p2', '{"text": "two"}') IS NOT NULL AS posted;
SELECT * FROM vimp.live_diff();
SELECT repo_stream.refresh_view(name) AS applied FROM vimp.views ORDER BY name;
SELECT * FROM vimp.diff();
SELECT * FROM vimp.totals();

-- ---------------------------------------------------------------- delete the imported repo
SELECT repo_stream.delete_repo('did:plc:vimsrc');
SELECT count(*) AS src_records FROM repo_stream.records WHERE did = 'did:plc:vimsrc';
SELECT * FROM vimp.live_diff();
SELECT repo_stream.refresh_view(name) AS applied FROM vimp.views ORDER BY name;
SELECT * FROM vimp.diff();
SELECT * FROM vimp.totals();
SELECT count(*) AS src_keys FROM vimp.posters WHERE key = 'did:plc:vimsrc';

SELECT repo_stream.drop_view(name) FROM vimp.views ORDER BY name;
DROP SCHEMA vimp CASCADE;
