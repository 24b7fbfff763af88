-- CAR helpers for the snapshot tests (pg_regress and TAP), in plain SQL on
-- top of the extension's codec: read a CAR into its blocks, check its block
-- order, and build CARs (signed with a key of _keys_generate) to tamper
-- with.  Needs a superuser for _keys_sign.
CREATE SCHEMA IF NOT EXISTS snaptest;

-- unsigned LEB128
CREATE OR REPLACE FUNCTION snaptest.varint(n bigint) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
	b bytea := ''::bytea;
BEGIN
	LOOP
		IF n < 128 THEN
			RETURN b || set_byte('\x00'::bytea, 0, n::int);
		END IF;
		b := b || set_byte('\x00'::bytea, 0, (n % 128 + 128)::int);
		n := n / 128;
	END LOOP;
END $$;

-- binary CID (dag-cbor, sha2-256) of any bytes, and its text form
CREATE OR REPLACE FUNCTION snaptest.cid_bin(data bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT '\x01711220'::bytea || sha256(data) $$;

CREATE OR REPLACE FUNCTION snaptest.cid_text(cid bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT repo_stream.cbor_to_json('\xd82a582500'::bytea || cid) ->> '$link'
$$;

CREATE OR REPLACE FUNCTION snaptest.cid_of(data bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT snaptest.cid_text(snaptest.cid_bin(data)) $$;

CREATE OR REPLACE FUNCTION snaptest.b64(b bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT rtrim(replace(encode(b, 'base64'), E'\n', ''), '=') $$;

-- The header (ord 0: cid is the first root, data the header bytes) and the
-- blocks of a CAR, in file order.
CREATE OR REPLACE FUNCTION snaptest.car_blocks(car bytea)
RETURNS TABLE (ord int, cid text, data bytea)
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
	pos int := 0;
	len bigint;
	shift int;
	b int;
	n int := 0;
	total int := length(car);
BEGIN
	WHILE pos < total LOOP
		len := 0;
		shift := 0;
		LOOP
			b := get_byte(car, pos);
			pos := pos + 1;
			len := len + ((b & 127)::bigint << shift);
			shift := shift + 7;
			EXIT WHEN b < 128;
		END LOOP;
		ord := n;
		IF n = 0 THEN
			data := substring(car FROM pos + 1 FOR len::int);
			cid := repo_stream.cbor_to_json(data) -> 'roots' -> 0 ->> '$link';
		ELSE
			cid := snaptest.cid_text(substring(car FROM pos + 1 FOR 36));
			data := substring(car FROM pos + 37 FOR len::int - 36);
		END IF;
		RETURN NEXT;
		pos := pos + len::int;
		n := n + 1;
	END LOOP;
END $$;

-- The links (text CIDs) a DAG-CBOR block holds.
CREATE OR REPLACE FUNCTION snaptest.links(data bytea) RETURNS SETOF text
LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT m[1] FROM regexp_matches(repo_stream.cbor_to_json(data)::text, '"\$link": "([a-z0-9]+)"', 'g') m
$$;

-- Stream order: block 1 is the root, every later block is linked from a
-- block before it, and no block comes twice.
CREATE OR REPLACE FUNCTION snaptest.in_stream_order(car bytea) RETURNS boolean
LANGUAGE sql STABLE STRICT AS $$
	WITH b AS MATERIALIZED (SELECT * FROM snaptest.car_blocks(car)),
	first_link AS (SELECT l, min(b.ord) AS ord FROM b, snaptest.links(b.data) l WHERE b.ord > 0 GROUP BY l)
	SELECT bool_and(CASE WHEN b.ord = 1 THEN b.cid = (SELECT cid FROM b WHERE ord = 0)
					ELSE coalesce(f.ord < b.ord, false) END)
	   AND count(*) = count(DISTINCT b.cid)
	  FROM b LEFT JOIN first_link f ON f.l = b.cid WHERE b.ord > 0
$$;

-- A whole export as one bytea.
CREATE OR REPLACE FUNCTION snaptest.export(did text, since text DEFAULT NULL) RETURNS bytea
LANGUAGE sql VOLATILE AS $$
	SELECT string_agg(chunk, ''::bytea ORDER BY n)
	  FROM repo_stream.export_repo(did, since) WITH ORDINALITY AS e(seq, rev, chunk, n)
$$;

-- ------------------------------------------------------------ building

-- A CAR rooted at root (a text CID) holding blocks in order.
CREATE OR REPLACE FUNCTION snaptest.car(root text, blocks bytea[]) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
	header bytea := repo_stream.json_to_cbor(jsonb_build_object(
		'roots', jsonb_build_array(jsonb_build_object('$link', root)), 'version', 1));
	out bytea := snaptest.varint(length(header)) || header;
	blk bytea;
BEGIN
	FOREACH blk IN ARRAY blocks LOOP
		out := out || snaptest.varint(36 + length(blk)) || snaptest.cid_bin(blk) || blk;
	END LOOP;
	RETURN out;
END $$;

-- An MST node of entries (key, record CID text, right subtree CID text or NULL),
-- keys given in order, prefix-compressed, with an optional left link.
CREATE OR REPLACE FUNCTION snaptest.node(keys text[], vals text[], rights text[], lft text DEFAULT NULL)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	e jsonb := '[]';
	prev text := '';
	p int;
BEGIN
	FOR i IN 1 .. coalesce(array_length(keys, 1), 0) LOOP
		p := 0;
		WHILE p < least(length(prev), length(keys[i])) AND substr(prev, p + 1, 1) = substr(keys[i], p + 1, 1) LOOP
			p := p + 1;
		END LOOP;
		e := e || jsonb_build_array(jsonb_build_object(
			'k', jsonb_build_object('$bytes', snaptest.b64(convert_to(substr(keys[i], p + 1), 'UTF8'))),
			'p', p,
			't', CASE WHEN rights[i] IS NULL THEN 'null'::jsonb ELSE jsonb_build_object('$link', rights[i]) END,
			'v', jsonb_build_object('$link', vals[i])));
		prev := keys[i];
	END LOOP;
	RETURN repo_stream.json_to_cbor(jsonb_build_object('e', e,
		'l', CASE WHEN lft IS NULL THEN 'null'::jsonb ELSE jsonb_build_object('$link', lft) END));
END $$;

-- A signed v3 commit over root (text CID); sealed from _keys_generate.
CREATE OR REPLACE FUNCTION snaptest.commit(did text, rev text, root text, sealed bytea) RETURNS bytea
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	c jsonb := jsonb_build_object('did', did, 'rev', rev, 'data', jsonb_build_object('$link', root),
								  'prev', null, 'version', 3);
BEGIN
	RETURN repo_stream.json_to_cbor(c || jsonb_build_object('sig', jsonb_build_object('$bytes',
		snaptest.b64(repo_stream._keys_sign(sealed, repo_stream.json_to_cbor(c))))));
END $$;

-- A one-record repo as a CAR: commit, the single MST node, the record
-- (record may be any bytes, so tests can put in what json_to_cbor refuses).
CREATE OR REPLACE FUNCTION snaptest.one_record_car(did text, key text, record bytea, sealed bytea,
												  rev text DEFAULT '3kzzzzzzzzz22')
RETURNS bytea LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	node bytea := snaptest.node(ARRAY[key], ARRAY[snaptest.cid_of(record)], ARRAY[NULL]);
	c bytea := snaptest.commit(did, rev, snaptest.cid_of(node), sealed);
BEGIN
	RETURN snaptest.car(snaptest.cid_of(c), ARRAY[c, node, record]);
END $$;

-- What an import must not leave behind: rows of the DID anywhere, and the seq.
CREATE OR REPLACE FUNCTION snaptest.traces(did text) RETURNS text
LANGUAGE sql VOLATILE AS $$
	SELECT format('repos=%s keys=%s records=%s nodes=%s events=%s',
		(SELECT count(*) FROM repo_stream.repos r WHERE r.did = traces.did),
		(SELECT count(*) FROM repo_stream.repo_keys k WHERE k.did = traces.did),
		(SELECT count(*) FROM repo_stream.records r WHERE r.did = traces.did),
		(SELECT count(*) FROM repo_stream.mst_nodes n WHERE n.did = traces.did),
		(SELECT count(*) FROM repo_stream.event_log e WHERE e.did = traces.did))
$$;

-- import_repo's outcome as text: 'imported' or the SQLSTATE and message,
-- CIDs masked (a commit's CID depends on its signature).
CREATE OR REPLACE FUNCTION snaptest.try_import(car bytea, did_key text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	state text;
	msg text;
BEGIN
	PERFORM repo_stream.import_repo(car, did_key);
	RETURN 'imported';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN state || ': ' || regexp_replace(msg, 'bafyrei[a-z2-7]{52}', 'bafyrei...', 'g');
END $$;
