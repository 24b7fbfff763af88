-- Computed views maintained from the event log: count views (by a path in
-- the record, or by repo), handler views, refresh by cursor, live counts,
-- rebuilds, errors and privileges.  Collections are com.example.views.*, so
-- the other tests' records do not show up here.
SET client_min_messages = notice;

CREATE ROLE regress_views_admin IN ROLE repo_stream_admin;
CREATE ROLE regress_views_reader IN ROLE repo_stream_reader;
CREATE ROLE regress_views_writer IN ROLE repo_stream_writer;
CREATE ROLE regress_views_nobody;
CREATE SCHEMA vw AUTHORIZATION regress_views_admin;
GRANT USAGE ON SCHEMA vw TO PUBLIC;

-- The truth a count view must equal: GROUP BY over the current records,
-- with the path read by plain jsonb operators (a string, else no key).
CREATE FUNCTION vw.truth(coll text, path text[]) RETURNS TABLE (key text, count bigint)
LANGUAGE sql STABLE AS $$
	SELECT k, count(*) FROM (
		SELECT CASE WHEN path = '{$did}' THEN did
		            WHEN jsonb_typeof(record #> path) = 'string' AND octet_length(record #>> path) <= 2048
		            THEN record #>> path END AS k
		FROM repo_stream.records WHERE collection = coll) s
	WHERE k IS NOT NULL GROUP BY k
$$;
CREATE FUNCTION vw.exact(counts regclass, coll text, path text[]) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	bad bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM ((SELECT key, count FROM %s EXCEPT SELECT * FROM vw.truth($1, $2))'
	               ' UNION ALL (SELECT * FROM vw.truth($1, $2) EXCEPT SELECT key, count FROM %s)) d',
	               counts, counts) INTO bad USING coll, path;
	RETURN bad = 0;
END $$;

-- What an import does to the log, by hand (superuser): the repo's records
-- are replaced behind the write path, and a #sync whose commit has a new
-- data root is appended, with repos.last_seq pointing at it.
CREATE FUNCTION vw.fake_import(p_did text, p_coll text, p_records jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	s bigint;
	rev text := repo_stream.tid_now();
	commit bytea;
	hdr bytea;
	car bytea;
	n int;
BEGIN
	SET LOCAL session_replication_role = replica;
	DELETE FROM repo_stream.records WHERE did = p_did AND collection = p_coll;
	INSERT INTO repo_stream.records (did, collection, rkey, record, cid)
	SELECT p_did, p_coll, key, value, repo_stream.cbor_cid(repo_stream.json_to_cbor(value))
	FROM jsonb_each(p_records);
	commit := repo_stream.json_to_cbor(jsonb_build_object('did', p_did, 'rev', rev, 'version', 3, 'prev', NULL,
		'data', jsonb_build_object('$link', repo_stream.cbor_cid(repo_stream.json_to_cbor(jsonb_build_object('import', rev))))));
	hdr := repo_stream.json_to_cbor(jsonb_build_object('roots',
		jsonb_build_array(jsonb_build_object('$link', repo_stream.cbor_cid(commit))), 'version', 1));
	n := 36 + length(commit);
	car := set_byte('\x00'::bytea, 0, length(hdr)) || hdr
		|| set_byte(set_byte('\x0000'::bytea, 0, (n & 127) | 128), 1, n >> 7)
		|| '\x01711220'::bytea || sha256(commit) || commit;
	s := nextval('repo_stream.event_seq');
	INSERT INTO repo_stream.event_log (seq, segment, did, kind, frame)
	VALUES (s, coalesce((SELECT current_segment FROM repo_stream.log_state), 0), p_did, 'sync',
		repo_stream.json_to_cbor('{"t": "#sync", "op": 1}') || repo_stream.json_to_cbor(jsonb_build_object(
			'did', p_did, 'rev', rev, 'seq', s, 'time', '2026-11-26T04:00:00.000Z',
			'blocks', jsonb_build_object('$bytes', translate(encode(car, 'base64'), E'\n=', '')))));
	UPDATE repo_stream.repos SET last_seq = s WHERE did = p_did;
END $$;

SELECT repo_stream.create_repo('did:plc:va') IS NOT NULL AS va,
       repo_stream.create_repo('did:plc:vb') IS NOT NULL AS vb,
       repo_stream.create_repo('did:plc:vc') IS NOT NULL AS vc;

-- records before any view: likes of two posts, a like without a subject,
-- one whose uri is not a string, follows
INSERT INTO repo_stream.records (did, collection, rkey, record) VALUES
	('did:plc:va', 'com.example.views.like', 'a1', '{"subject": {"uri": "at://post/1"}}'),
	('did:plc:va', 'com.example.views.like', 'a2', '{"subject": {"uri": "at://post/2"}}'),
	('did:plc:vb', 'com.example.views.like', 'b1', '{"subject": {"uri": "at://post/1"}}'),
	('did:plc:vb', 'com.example.views.like', 'b2', '{"note": "no subject"}'),
	('did:plc:vb', 'com.example.views.like', 'b3', '{"subject": {"uri": 42}}'),
	('did:plc:vc', 'com.example.views.like', 'c1', '{"subject": {"uri": "at://post/1", "cid": {"$link": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}}}'),
	('did:plc:va', 'com.example.views.follow', 'f1', '{"subject": "did:plc:vb"}'),
	('did:plc:vc', 'com.example.views.follow', 'f1', '{"subject": "did:plc:vb"}');

-- ---------------------------------------------------------------- creation
SET ROLE regress_views_admin;
SELECT repo_stream.create_count_view('vw.likes', 'com.example.views.like', 'subject.uri');
SELECT repo_stream.create_count_view('vw.likers', 'com.example.views.like', '$did');
SET search_path = vw, public;
SELECT repo_stream.create_count_view('followers', 'com.example.views.follow', 'subject');
-- a link is not a string: counts under no key
SELECT repo_stream.create_count_view('vw.like_cids', 'com.example.views.like', 'subject.cid');
RESET search_path;
RESET ROLE;
SELECT * FROM vw.likes ORDER BY key;
SELECT * FROM vw.likers ORDER BY key;
SELECT * FROM vw.followers ORDER BY key;
SELECT count(*) AS like_cids_rows FROM vw.like_cids;
\d vw.likes
SELECT name, kind, cursor = (SELECT max(seq) FROM repo_stream.event_log) AS cursor_at_head,
       lag_events, lag_seconds, last_refresh IS NOT NULL AS refreshed, rebuilds, last_error, collection, group_by
FROM repo_stream.view_status ORDER BY name;

-- ---------------------------------------------------------------- errors
SET ROLE regress_views_admin;
SELECT repo_stream.create_count_view('vw.bad', 'not-an-nsid', 'subject.uri');
SELECT repo_stream.create_count_view('vw.bad', 'com.example.views.like', '');
SELECT repo_stream.create_count_view('vw.bad', 'com.example.views.like', 'subject..uri');
SELECT repo_stream.create_count_view('vw.bad', 'com.example.views.like', 'subject.$link');
SELECT repo_stream.create_count_view('vw.bad', 'com.example.views.like', '$did.x');
SELECT repo_stream.create_count_view('vw.likes', 'com.example.views.like', 'subject.uri');
CREATE TABLE vw.taken (x int);
SELECT repo_stream.create_count_view('vw.taken', 'com.example.views.like', 'subject.uri');
SELECT repo_stream.create_count_view('nosuchschema.x', 'com.example.views.like', 'subject.uri');
SELECT repo_stream.create_count_view('a.b.c.d', 'com.example.views.like', 'subject.uri');
SELECT repo_stream.refresh_view('vw.nope');
SELECT repo_stream.drop_view('nope');
SELECT repo_stream.view_count_live('vw.nope', 'k');
SELECT repo_stream.refresh_view('vw.likes', 0);
SELECT repo_stream.refresh_view(NULL);
-- every required argument: 22004 naming it, never a silent NULL
SELECT repo_stream.create_count_view(NULL, 'com.example.views.like', 'subject.uri');
SELECT repo_stream.create_count_view('vw.n', NULL, 'subject.uri');
SELECT repo_stream.create_count_view('vw.n', 'com.example.views.like', NULL);
SELECT repo_stream.drop_view(NULL);
SELECT repo_stream.view_count_live(NULL, 'k');
SELECT repo_stream.view_count_live('vw.likes', NULL);
RESET ROLE;
-- the count table is the extension's: nobody else writes or drops it
SET ROLE regress_views_admin;
INSERT INTO vw.likes VALUES ('x', 1);
DROP TABLE vw.likes;
RESET ROLE;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT repo_stream.refresh_view('vw.likes');
ROLLBACK;

-- ---------------------------------------------------------------- privileges
SET ROLE regress_views_reader;
SELECT * FROM vw.likes WHERE key = 'at://post/1';
SELECT repo_stream.view_count_live('vw.likes', 'at://post/1');
SELECT name, lag_events FROM repo_stream.view_status WHERE name = 'vw.likes';
SELECT repo_stream.create_count_view('vw.mine', 'com.example.views.like', 'subject.uri');
SELECT repo_stream.refresh_view('vw.likes');
SELECT repo_stream.drop_view('vw.likes');
RESET ROLE;
SET ROLE regress_views_writer;
SELECT * FROM vw.likes;
SELECT repo_stream.view_count_live('vw.likes', 'at://post/1');
RESET ROLE;
SET ROLE regress_views_nobody;
SELECT * FROM repo_stream.view_status;
SELECT * FROM repo_stream.views;
RESET ROLE;
-- an admin without CREATE on the schema cannot put a count table there
CREATE SCHEMA vw_closed;
SET ROLE regress_views_admin;
SELECT repo_stream.create_count_view('vw_closed.x', 'com.example.views.like', 'subject.uri');
RESET ROLE;

-- ---------------------------------------------------------------- each kind of change
-- creates: the table waits for a refresh; view_count_live does not
SELECT repo_stream.put_record('did:plc:va', 'com.example.views.like', 'a3', '{"subject": {"uri": "at://post/3"}}') IS NOT NULL AS created;
SELECT repo_stream.put_record('did:plc:vb', 'com.example.views.like', 'b4', '{"subject": {"uri": "at://post/3"}}') IS NOT NULL AS created;
SELECT count AS stored FROM vw.likes WHERE key = 'at://post/3';
SELECT repo_stream.view_count_live('vw.likes', 'at://post/3') AS live_post3,
       repo_stream.view_count_live('vw.likers', 'did:plc:vb') AS live_vb;
SELECT name, lag_events, lag_seconds > 0 AS lagging FROM repo_stream.view_status WHERE name IN ('vw.likes', 'vw.likers') ORDER BY name;
SELECT repo_stream.refresh_view('vw.likes') AS applied, repo_stream.refresh_view('vw.likers') AS applied;
SELECT * FROM vw.likes ORDER BY key;
SELECT name, lag_events, lag_seconds FROM repo_stream.view_status WHERE name IN ('vw.likes', 'vw.likers') ORDER BY name;
-- a second refresh finds nothing
SELECT repo_stream.refresh_view('vw.likes') AS applied;

-- an update moves a like from post 1 to post 2; another loses its uri; one gains one
UPDATE repo_stream.records SET record = '{"subject": {"uri": "at://post/2"}}' WHERE did = 'did:plc:vb' AND rkey = 'b1';
UPDATE repo_stream.records SET record = '{"subject": {}}' WHERE did = 'did:plc:va' AND rkey = 'a1';
UPDATE repo_stream.records SET record = '{"subject": {"uri": "at://post/4"}}' WHERE did = 'did:plc:vb' AND rkey = 'b2';
SELECT repo_stream.view_count_live('vw.likes', 'at://post/1') AS live_post1,
       repo_stream.view_count_live('vw.likes', 'at://post/2') AS live_post2,
       repo_stream.view_count_live('vw.likes', 'at://post/4') AS live_post4;
SELECT repo_stream.refresh_view('vw.likes') AS applied;
SELECT * FROM vw.likes ORDER BY key;

-- a delete takes the key the record had before; the count row goes at zero
SELECT repo_stream.delete_record('did:plc:vb', 'com.example.views.like', 'b2') AS deleted;
SELECT repo_stream.refresh_view('vw.likes') AS applied;
SELECT * FROM vw.likes ORDER BY key;

-- a string longer than 2048 bytes counts under no key: it could not be a
-- key of the count table's index, and a record must not stop the view
SELECT repo_stream.put_record('did:plc:va', 'com.example.views.like', 'long',
	jsonb_build_object('subject', jsonb_build_object('uri', 'at://' || repeat('x', 3000)))) IS NOT NULL AS created;
SELECT repo_stream.refresh_view('vw.likes') AS applied;
SELECT count(*) AS long_keys FROM vw.likes WHERE octet_length(key) > 2048;
SELECT repo_stream.delete_record('did:plc:va', 'com.example.views.like', 'long') AS deleted;

-- rolled back: nothing; a savepoint rolled back: only what was kept
BEGIN;
SELECT repo_stream.put_record('did:plc:vc', 'com.example.views.like', 'c9', '{"subject": {"uri": "at://post/9"}}') IS NOT NULL AS created;
ROLLBACK;
BEGIN;
SELECT repo_stream.put_record('did:plc:vc', 'com.example.views.like', 'c2', '{"subject": {"uri": "at://post/2"}}') IS NOT NULL AS created;
SAVEPOINT s;
SELECT repo_stream.put_record('did:plc:vc', 'com.example.views.like', 'c3', '{"subject": {"uri": "at://post/8"}}') IS NOT NULL AS created;
DELETE FROM repo_stream.records WHERE did = 'did:plc:vc' AND rkey = 'c1';
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT repo_stream.refresh_view('vw.likes') AS applied;
SELECT * FROM vw.likes ORDER BY key;

-- deactivation keeps the records, so the counts stay; so does a key rotation
SELECT repo_stream.deactivate_repo('did:plc:vc');
SELECT repo_stream.refresh_view('vw.likes') AS applied, repo_stream.refresh_view('vw.likers') AS applied;
SELECT * FROM vw.likers ORDER BY key;
SELECT repo_stream.activate_repo('did:plc:vc');
SELECT repo_stream.rotate_key('did:plc:va') IS NOT NULL AS rotated;
SELECT repo_stream.refresh_view('vw.likes') AS applied, repo_stream.refresh_view('vw.likers') AS applied;
SELECT * FROM vw.likes ORDER BY key;

-- a repo deletion takes the repo's whole contribution away
SELECT repo_stream.put_record('did:plc:vb', 'com.example.views.follow', 'f1', '{"subject": "did:plc:va"}') IS NOT NULL AS created;
SELECT repo_stream.delete_repo('did:plc:vb');
SELECT repo_stream.view_count_live('vw.likes', 'at://post/3') AS live_post3,
       repo_stream.view_count_live('vw.likers', 'did:plc:vb') AS live_vb;
SELECT repo_stream.refresh_view('vw.likes') AS a, repo_stream.refresh_view('vw.likers') AS b,
       repo_stream.refresh_view('vw.followers') AS c;
SELECT * FROM vw.likes ORDER BY key;
SELECT * FROM vw.likers ORDER BY key;
SELECT * FROM vw.followers ORDER BY key;

-- an import replaces a repo's records without ops: the view replaces the
-- repo's contribution from its records, read together with repos.last_seq,
-- and skips its events up to there (here a like made after the import)
SELECT repo_stream.put_record('did:plc:vc', 'com.example.views.like', 'c4', '{"subject": {"uri": "at://post/4"}}') IS NOT NULL AS created;
SELECT vw.fake_import('did:plc:vc', 'com.example.views.like',
	'{"i1": {"subject": {"uri": "at://post/7"}}, "i2": {"subject": {"uri": "at://post/7"}}, "i3": {"subject": {"uri": "at://post/1"}}}');
SELECT repo_stream.put_record('did:plc:vc', 'com.example.views.like', 'c5', '{"subject": {"uri": "at://post/7"}}') IS NOT NULL AS created;
SELECT repo_stream.view_count_live('vw.likes', 'at://post/7') AS live_post7,
       repo_stream.view_count_live('vw.likes', 'at://post/2') AS live_post2,
       repo_stream.view_count_live('vw.likers', 'did:plc:vc') AS live_vc;
SELECT repo_stream.refresh_view('vw.likes') AS a, repo_stream.refresh_view('vw.likers') AS b;
SELECT * FROM vw.likes ORDER BY key;
SELECT * FROM vw.likers ORDER BY key;
SELECT count(*) AS skips_left FROM repo_stream.view_skips;

-- the skip survives a refresh that stops right after the import
SELECT repo_stream.create_repo('did:plc:vd') IS NOT NULL AS vd;
SELECT repo_stream.refresh_view('vw.likes') AS applied;
SELECT vw.fake_import('did:plc:vd', 'com.example.views.like', '{"d1": {"subject": {"uri": "at://post/d"}}}');
SELECT repo_stream.put_record('did:plc:vd', 'com.example.views.like', 'd2', '{"subject": {"uri": "at://post/d"}}') IS NOT NULL AS created;
SELECT repo_stream.refresh_view('vw.likes', 1) AS applied;
SELECT count(*) AS skips_kept FROM repo_stream.view_skips;
SELECT * FROM vw.likes WHERE key = 'at://post/d';
SELECT repo_stream.refresh_view('vw.likes') AS applied, repo_stream.refresh_view('vw.likers') AS applied;
SELECT * FROM vw.likes WHERE key = 'at://post/d';
SELECT count(*) AS skips_left FROM repo_stream.view_skips;

-- every view equals its GROUP BY
SELECT vw.exact('vw.likes', 'com.example.views.like', '{subject,uri}') AS likes_exact,
       vw.exact('vw.likers', 'com.example.views.like', '{$did}') AS likers_exact,
       vw.exact('vw.followers', 'com.example.views.follow', '{subject}') AS followers_exact;

-- ---------------------------------------------------------------- partial refreshes
SELECT count(repo_stream.put_record('did:plc:va', 'com.example.views.like', 'p' || i, '{"subject": {"uri": "at://post/5"}}')) AS created
FROM generate_series(1, 3) i;
SELECT repo_stream.put_record('did:plc:va', 'com.example.views.like', 'q1', '{"subject": {"uri": "at://post/5"}}') IS NOT NULL AS created;
SELECT repo_stream.put_record('did:plc:va', 'com.example.views.like', 'q2', '{"subject": {"uri": "at://post/5"}}') IS NOT NULL AS created;
SELECT repo_stream.refresh_view('vw.likes', 1) AS applied;
SELECT name, lag_events FROM repo_stream.view_status WHERE name = 'vw.likes';
SELECT count AS stored, repo_stream.view_count_live('vw.likes', 'at://post/5') AS live FROM vw.likes WHERE key = 'at://post/5';
-- rolled back, it leaves the view as it was
BEGIN;
SELECT repo_stream.refresh_view('vw.likes') AS applied;
ROLLBACK;
SELECT name, lag_events FROM repo_stream.view_status WHERE name = 'vw.likes';
SELECT repo_stream.refresh_view('vw.likes') AS applied;
SELECT count AS stored FROM vw.likes WHERE key = 'at://post/5';

-- a view created in a transaction that wrote records counts them once
BEGIN;
SELECT repo_stream.put_record('did:plc:va', 'com.example.views.like', 't1', '{"subject": {"uri": "at://post/6"}}') IS NOT NULL AS created;
SELECT repo_stream.create_count_view('vw.likes_tx', 'com.example.views.like', 'subject.uri');
SELECT count(*) AS post6_before_commit FROM vw.likes_tx WHERE key = 'at://post/6';
COMMIT;
SELECT repo_stream.refresh_view('vw.likes_tx') AS applied;
SELECT * FROM vw.likes_tx WHERE key = 'at://post/6';
SELECT vw.exact('vw.likes_tx', 'com.example.views.like', '{subject,uri}') AS exact;

-- ---------------------------------------------------------------- paths whose hashes collide
-- The memory finds a path by h, the hashtext bits of its DID above those of
-- its rkey, and a repo's paths by the range of its DID's bits.  These two
-- DIDs hash alike: their records of the same rkey share h, and each repo's
-- range holds the other's rows.  Rows are compared by (did, rkey), so the
-- view stays exact through updates, deletes and a repo deletion.
SELECT hashtext('did:plc:hc126299') = hashtext('did:plc:hc6786') AS dids_collide;
SELECT repo_stream.create_repo('did:plc:hc126299') IS NOT NULL AS h1,
       repo_stream.create_repo('did:plc:hc6786') IS NOT NULL AS h2;
CREATE FUNCTION vw.like_hashed(d text, r text, uri text) RETURNS boolean LANGUAGE sql AS $$
	SELECT repo_stream.put_record(d, 'com.example.views.hashed', r,
		jsonb_build_object('subject', jsonb_build_object('uri', uri))) IS NOT NULL $$;
-- the memory's rows and distinct hashes
CREATE FUNCTION vw.memory_of(view text, OUT memory_rows bigint, OUT hashes bigint) LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('SELECT count(*), count(DISTINCT h) FROM repo_stream.view_memory_%s',
	               (SELECT id FROM repo_stream.views WHERE name = view)) INTO memory_rows, hashes;
END $$;
SELECT bool_and(vw.like_hashed(d, r, 'at://' || d || '/' || r)) AS created
FROM unnest(ARRAY['did:plc:hc126299', 'did:plc:hc6786']) d, unnest(ARRAY['x1', 'x2', 'x3']) r;
SET ROLE regress_views_admin;
SELECT repo_stream.create_count_view('vw.hashed', 'com.example.views.hashed', 'subject.uri');
RESET ROLE;
-- from the fill: six rows, three hashes
SELECT * FROM vw.memory_of('vw.hashed');
-- changes of paths the fill remembered, and creates a refresh remembers
SELECT vw.like_hashed('did:plc:hc6786', 'x1', 'at://moved') AS updated;
SELECT repo_stream.delete_record('did:plc:hc126299', 'com.example.views.hashed', 'x2') AS deleted;
SELECT vw.like_hashed('did:plc:hc126299', 'x4', 'at://x4') AS created;
SELECT vw.like_hashed('did:plc:hc6786', 'x4', 'at://x4') AS created;
SELECT repo_stream.view_count_live('vw.hashed', 'at://moved') AS live_moved,
       repo_stream.view_count_live('vw.hashed', 'at://did:plc:hc6786/x1') AS live_old_x1,
       repo_stream.view_count_live('vw.hashed', 'at://did:plc:hc126299/x1') AS live_other_x1;
SELECT repo_stream.refresh_view('vw.hashed') AS applied;
SELECT * FROM vw.hashed ORDER BY key;
-- changes of paths a refresh remembered
SELECT vw.like_hashed('did:plc:hc126299', 'x4', 'at://moved') AS updated;
SELECT repo_stream.delete_record('did:plc:hc6786', 'com.example.views.hashed', 'x4') AS deleted;
SELECT repo_stream.refresh_view('vw.hashed') AS applied;
SELECT * FROM vw.hashed ORDER BY key;
-- a repo deletion takes its own rows out of the shared range, and no others
SELECT repo_stream.delete_repo('did:plc:hc126299');
SELECT repo_stream.view_count_live('vw.hashed', 'at://moved') AS live_moved,
       repo_stream.view_count_live('vw.hashed', 'at://did:plc:hc6786/x2') AS live_x2;
SELECT repo_stream.refresh_view('vw.hashed') AS applied;
SELECT * FROM vw.hashed ORDER BY key;
SELECT * FROM vw.memory_of('vw.hashed');
SELECT vw.exact('vw.hashed', 'com.example.views.hashed', '{subject,uri}') AS exact;
SELECT repo_stream.drop_view('vw.hashed');

-- ---------------------------------------------------------------- handler views
CREATE TABLE vw.calls (n serial, seq_ok boolean, did text, action text, path text, uri text, who text);
-- uris the handler refuses (a failing handler is repaired by data: a
-- handler whose definition changes is not run any more)
CREATE TABLE vw.refused (uri text);
GRANT ALL ON vw.calls, vw.calls_n_seq, vw.refused TO regress_views_admin;
CREATE FUNCTION vw.on_like(seq bigint, did text, action text, path text, record jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = vw AS $$
BEGIN
	IF EXISTS (SELECT FROM refused r WHERE r.uri = record->'subject'->>'uri') THEN
		RAISE EXCEPTION 'handler refuses %', path;
	END IF;
	INSERT INTO calls (seq_ok, did, action, path, uri, who)
	VALUES (seq > 0, did, action, path, record->'subject'->>'uri', current_user);
END $$;
ALTER FUNCTION vw.on_like(bigint, text, text, text, jsonb) OWNER TO regress_views_admin;
CREATE FUNCTION vw.bad_args(seq int, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION vw.bad_strict(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE sql STRICT AS $$ SELECT $$;
CREATE FUNCTION vw.bad_set(seq bigint, did text, action text, path text, record jsonb) RETURNS SETOF int
	LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION vw.secret(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE sql AS $$ SELECT $$;
REVOKE EXECUTE ON FUNCTION vw.secret(bigint, text, text, text, jsonb) FROM PUBLIC;
SET ROLE regress_views_admin;
SELECT repo_stream.create_handler_view('vw.bad', 'vw.bad_args(int,text,text,text,jsonb)');
SELECT repo_stream.create_handler_view('vw.bad', 'vw.bad_strict(bigint,text,text,text,jsonb)');
SELECT repo_stream.create_handler_view('vw.bad', 'vw.bad_set(bigint,text,text,text,jsonb)');
SELECT repo_stream.create_handler_view('vw.bad', 'vw.secret(bigint,text,text,text,jsonb)');
SELECT repo_stream.create_handler_view('vw.bad', 'vw.on_like(bigint,text,text,text,jsonb)', 'bad collection');
SELECT repo_stream.create_handler_view('vw.likes', 'vw.on_like(bigint,text,text,text,jsonb)');
SELECT repo_stream.create_handler_view('vw.like_log', 'vw.on_like(bigint,text,text,text,jsonb)', 'com.example.views.like');
RESET ROLE;
-- at creation: create for every existing record, as the creating role
SELECT seq_ok, did, action, path, uri, who FROM vw.calls ORDER BY n;
SELECT repo_stream.view_count_live('vw.like_log', 'k');
TRUNCATE vw.calls;
-- then create, update, delete in seq order (a follow is another collection);
-- a key rotation is not an import, so it does not show
SELECT repo_stream.put_record('did:plc:va', 'com.example.views.like', 'h1', '{"subject": {"uri": "at://post/h"}}') IS NOT NULL AS created;
SELECT repo_stream.put_record('did:plc:va', 'com.example.views.like', 'h1', '{"subject": {"uri": "at://post/i"}}') IS NOT NULL AS updated;
SELECT repo_stream.put_record('did:plc:va', 'com.example.views.follow', 'h2', '{"subject": "did:plc:vc"}') IS NOT NULL AS followed;
SELECT repo_stream.delete_record('did:plc:va', 'com.example.views.like', 'h1') AS deleted;
SELECT repo_stream.rotate_key('did:plc:va') IS NOT NULL AS rotated;
SELECT repo_stream.refresh_view('vw.like_log') AS applied;
SELECT seq_ok, did, action, path, uri, who FROM vw.calls ORDER BY n;
TRUNCATE vw.calls;
-- an import: delete_repo, then create for each of the repo's records;
-- then the repo's deletion
SELECT vw.fake_import('did:plc:vc', 'com.example.views.like', '{"j1": {"subject": {"uri": "at://post/j"}}}');
SELECT repo_stream.refresh_view('vw.like_log') AS applied;
SELECT repo_stream.delete_repo('did:plc:vc');
SELECT repo_stream.refresh_view('vw.like_log') AS applied;
SELECT seq_ok, did, action, path, uri, who FROM vw.calls ORDER BY n;
TRUNCATE vw.calls;
-- a handler that fails: the refresh fails and the cursor stays
INSERT INTO vw.refused VALUES ('at://post/boom');
SELECT repo_stream.put_record('did:plc:va', 'com.example.views.like', 'k1', '{"subject": {"uri": "at://post/k"}}') IS NOT NULL AS created;
SELECT repo_stream.put_record('did:plc:va', 'com.example.views.like', 'k2', '{"subject": {"uri": "at://post/boom"}}') IS NOT NULL AS created;
SELECT repo_stream.refresh_view('vw.like_log');
SELECT name, lag_events FROM repo_stream.view_status WHERE name = 'vw.like_log';
SELECT count(*) AS calls FROM vw.calls;
SELECT repo_stream.delete_record('did:plc:va', 'com.example.views.like', 'k2') AS deleted;
SELECT repo_stream.refresh_view('vw.like_log');
-- deleting the record does not help (its create is still in the log): repair the handler
DELETE FROM vw.refused;
SELECT repo_stream.refresh_view('vw.like_log') AS applied;
SELECT seq_ok, did, action, path, uri, who FROM vw.calls ORDER BY n;
TRUNCATE vw.calls;
-- a handler may not refresh, create or drop views
CREATE FUNCTION vw.meddle(seq bigint, did text, action text, path text, record jsonb) RETURNS void
LANGUAGE sql AS $$ SELECT repo_stream.refresh_view('vw.likes') $$;
ALTER FUNCTION vw.meddle(bigint, text, text, text, jsonb) OWNER TO regress_views_admin;
SET ROLE regress_views_admin;
SELECT repo_stream.create_handler_view('vw.meddler', 'vw.meddle(bigint,text,text,text,jsonb)', 'com.example.views.like');
RESET ROLE;
-- a handler runs as its view's creator, in a security-restricted operation
CREATE FUNCTION vw.sneaky(seq bigint, did text, action text, path text, record jsonb) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'SET ROLE regress_views_admin'; END $$;
ALTER FUNCTION vw.sneaky(bigint, text, text, text, jsonb) OWNER TO regress_views_admin;
SET ROLE regress_views_admin;
SELECT repo_stream.create_handler_view('vw.sneaky', 'vw.sneaky(bigint,text,text,text,jsonb)', 'com.example.views.like');
RESET ROLE;

-- ---------------------------------------------------------------- rebuild
-- a stopped view falls out of the retained window: the next refresh
-- rebuilds it from the records (rebuilds + 1), exact; live counts are exact
-- meanwhile (from the records)
SET repo_stream.retention_events = 7;
SELECT count(repo_stream.put_record('did:plc:va', 'com.example.views.like', 'r' || i,
	jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/r' || (i % 3))))) AS created
FROM generate_series(1, 12) i;
DO $$
BEGIN
	FOR i IN 1 .. 12 LOOP
		PERFORM repo_stream.delete_record('did:plc:va', 'com.example.views.like', 'r' || i);
		PERFORM repo_stream.put_record('did:plc:va', 'com.example.views.like', 'r' || i,
			jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/r' || (i % 2))));
		COMMIT;
	END LOOP;
END $$;
SELECT repo_stream.prune_events() > (SELECT cursor FROM repo_stream.views WHERE name = 'vw.likes') AS window_passed_the_cursor;
SELECT repo_stream.view_count_live('vw.likes', 'at://post/r0') AS live_r0,
       (SELECT count FROM vw.truth('com.example.views.like', '{subject,uri}') WHERE key = 'at://post/r0') AS truth_r0;
SELECT repo_stream.refresh_view('vw.likes') AS applied, repo_stream.refresh_view('vw.likers') AS applied,
       repo_stream.refresh_view('vw.like_log') AS applied;
SELECT name, rebuilds, lag_events FROM repo_stream.view_status WHERE name IN ('vw.likes', 'vw.likers', 'vw.like_log') ORDER BY name;
SELECT vw.exact('vw.likes', 'com.example.views.like', '{subject,uri}') AS likes_exact,
       vw.exact('vw.likers', 'com.example.views.like', '{$did}') AS likers_exact;
-- a handler view hears reset, then create for every record
SELECT action, count(*), bool_and(seq_ok) FROM vw.calls GROUP BY action ORDER BY action;
RESET repo_stream.retention_events;

-- ---------------------------------------------------------------- drop
SET ROLE regress_views_admin;
SELECT repo_stream.drop_view('vw.likes');
SELECT repo_stream.drop_view('vw.like_log');
RESET ROLE;
SELECT count(*) AS likes_table FROM pg_class WHERE relname = 'likes' AND relnamespace = 'vw'::regnamespace;
SELECT name FROM repo_stream.view_status ORDER BY name;
SELECT repo_stream.drop_view('vw.likers');
SELECT repo_stream.drop_view('vw.followers');
SELECT repo_stream.drop_view('vw.like_cids');
SELECT repo_stream.drop_view('vw.likes_tx');
SELECT count(*) AS views_left FROM repo_stream.views;
SELECT count(*) AS memory_tables_left FROM pg_class WHERE relname LIKE 'view_memory_%';

DROP SCHEMA vw CASCADE;
DROP SCHEMA vw_closed CASCADE;
DROP ROLE regress_views_admin, regress_views_reader, regress_views_writer, regress_views_nobody;
