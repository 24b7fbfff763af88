-- DAG-CBOR codec: atproto data-model fixtures, valid/invalid documents,
-- and random round trips.
\set fixtures `cat test/fixtures/atproto-interop/data-model/data-model-fixtures.json`
\set valid `cat test/fixtures/atproto-interop/data-model/data-model-valid.json`
\set invalid `cat test/fixtures/atproto-interop/data-model/data-model-invalid.json`

CREATE TEMP TABLE fixture AS
SELECT n, f->'json' AS json,
       decode(rpad(f->>'cbor_base64', (length(f->>'cbor_base64') + 3) / 4 * 4, '='), 'base64') AS cbor,
       f->>'cid' AS cid
FROM jsonb_array_elements(:'fixtures'::jsonb) WITH ORDINALITY AS t(f, n);

-- exact bytes, exact CID, and back to the same JSON
SELECT n,
       repo_stream.json_to_cbor(json) = cbor AS bytes_match,
       repo_stream.cbor_cid(cbor) = cid AS cid_match,
       repo_stream.cbor_cid(repo_stream.json_to_cbor(json)) AS cid,
       repo_stream.cbor_to_json(cbor) = json AS json_match
FROM fixture ORDER BY n;

CREATE FUNCTION try_json_to_cbor(j jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM repo_stream.json_to_cbor(j);
	RETURN 'accepted';
EXCEPTION WHEN others THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT d->>'note' AS note, try_json_to_cbor(d->'json') AS result
FROM jsonb_array_elements(:'valid'::jsonb) d;

-- json_to_cbor takes any data-model value; the one invalid fixture about
-- a top-level value that is not an object is a rule for records, which the
-- write path applies (sql/verify.sql)
SELECT d->>'note' AS note, try_json_to_cbor(d->'json') AS result
FROM jsonb_array_elements(:'invalid'::jsonb) d;

-- more JSON rejections, each naming the value
SELECT try_json_to_cbor('{"n": 9223372036854775808}');
SELECT try_json_to_cbor('{"n": -9223372036854775809}');
SELECT try_json_to_cbor('{"n": 1e-3}');
SELECT try_json_to_cbor('{"b": {"$bytes": "not base64!"}}');
SELECT try_json_to_cbor('{"b": {"$bytes": "nFF="}}');  -- non-zero pad bits
SELECT try_json_to_cbor('{"l": {"$link": "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"}}');
SELECT try_json_to_cbor('{"l": {"$link": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2"}}');

-- integer edges and integer-like numbers
SELECT repo_stream.json_to_cbor('{"max": 9223372036854775807, "min": -9223372036854775808, "z": 0, "y": -1, "f": 24.000}');
SELECT repo_stream.cbor_to_json(repo_stream.json_to_cbor('{"max": 9223372036854775807, "min": -9223372036854775808, "f": 24.000}'));

-- cbor_to_json accepts any valid DAG-CBOR item, not only maps
SELECT repo_stream.cbor_to_json('\x83010203'), repo_stream.cbor_to_json('\x6161'),
       repo_stream.cbor_to_json('\xf6'), repo_stream.cbor_to_json('\x20');

-- and json_to_cbor writes any data-model value back: arrays, scalars,
-- links and bytes at the top level too (only records must be objects)
SELECT j AS json, repo_stream.json_to_cbor(j) AS cbor,
       repo_stream.cbor_to_json(repo_stream.json_to_cbor(j)) = j AS round_trips,
       repo_stream.cbor_cid(repo_stream.json_to_cbor(j)) AS cid
FROM (VALUES ('[1, 2]'::jsonb), ('"a string"'), ('""'), ('0'), ('-1'), ('9223372036854775807'),
             ('true'), ('false'), ('null'), ('[]'), ('{}'), ('[[], {}, [null]]'),
             ('{"$bytes": "aGk"}'), ('{"$link": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}'),
             ('[{"$link": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}]')) AS t(j);
SELECT try_json_to_cbor('1.5') AS top_level_float, try_json_to_cbor('[{"$bytes": 1}]') AS bad_bytes_in_array;

-- One depth limit on both sides: 128 arrays and maps, scalars not counted.
-- JSON that json_to_cbor writes, cbor_cid and cbor_to_json read.
CREATE FUNCTION nest(n int, core text, open text DEFAULT '[', close text DEFAULT ']') RETURNS jsonb
LANGUAGE sql AS $$ SELECT (repeat(open, n) || core || repeat(close, n))::jsonb $$;
SELECT what, length(repo_stream.json_to_cbor(j)) AS bytes,
       repo_stream.cbor_cid(repo_stream.json_to_cbor(j)) IS NOT NULL AS cid_ok,
       repo_stream.cbor_to_json(repo_stream.json_to_cbor(j)) = j AS decodes
FROM (VALUES ('128 arrays around a number', nest(128, '1')),
             ('128 arrays, innermost empty', nest(127, '[]')),
             ('128 objects around a string', nest(128, '"x"', '{"a": ', '}')),
             ('a record holding 127 arrays', nest(1, nest(127, '1')::text, '{"a": ', '}')),
             ('127 objects around a link', nest(127, '{"$link": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}', '{"a": ', '}')),
             ('128 arrays around a link', nest(128, '{"$link": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}')),
             ('128 arrays around bytes', nest(128, '{"$bytes": "aGk"}'))
     ) AS t(what, j);
-- one more is refused on both sides, naming the limit
SELECT try_json_to_cbor(nest(129, '1')) AS json_129_arrays,
       try_json_to_cbor(nest(1, nest(128, '1')::text, '{"a": ', '}')) AS record_holding_128_arrays;

-- random documents round-trip JSON -> CBOR -> JSON and CBOR -> JSON -> CBOR
CREATE FUNCTION rand_key() RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(substr('abcXYZ$_-é😀', (random() * 10)::int + 1, 1), '')
	FROM generate_series(1, 1 + (random() * 6)::int)
$$;

CREATE FUNCTION rand_json(depth int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	r float := random();
	acc jsonb;
BEGIN
	IF depth > 0 AND r < 0.25 THEN
		acc := '{}';
		FOR i IN 1 .. (random() * 5)::int LOOP
			acc := acc || jsonb_build_object(rand_key(), rand_json(depth - 1));
		END LOOP;
		RETURN acc;
	ELSIF depth > 0 AND r < 0.45 THEN
		acc := '[]';
		FOR i IN 1 .. (random() * 5)::int LOOP
			acc := acc || jsonb_build_array(rand_json(depth - 1));
		END LOOP;
		RETURN acc;
	END IF;
	r := random();
	RETURN CASE
		WHEN r < 0.15 THEN to_jsonb(((random() - 0.5) * 2e18)::bigint)
		WHEN r < 0.30 THEN to_jsonb((random() * 300)::int - 150)
		WHEN r < 0.50 THEN to_jsonb(rand_key() || ' ' || md5(random()::text))
		WHEN r < 0.60 THEN to_jsonb(random() < 0.5)
		WHEN r < 0.70 THEN 'null'::jsonb
		WHEN r < 0.80 THEN jsonb_build_object('$bytes',
			rtrim(encode(decode(md5(random()::text), 'hex'), 'base64'), '='))
		WHEN r < 0.90 THEN jsonb_build_object('$link', repo_stream.cbor_cid(
			repo_stream.json_to_cbor(jsonb_build_object('k', md5(random()::text)))))
		ELSE to_jsonb(repeat('long string ', (random() * 40)::int))
	END;
END $$;

SELECT setseed(0.42);
CREATE TEMP TABLE docs AS
SELECT jsonb_build_object('$type', 'com.example.doc', 'v', rand_json(4), 'w', rand_json(3)) AS doc
FROM generate_series(1, 1000);

SELECT count(*) AS docs,
       count(*) FILTER (WHERE repo_stream.cbor_to_json(repo_stream.json_to_cbor(doc)) = doc) AS json_round_trips,
       count(*) FILTER (WHERE repo_stream.json_to_cbor(repo_stream.cbor_to_json(repo_stream.json_to_cbor(doc)))
                              = repo_stream.json_to_cbor(doc)) AS cbor_round_trips,
       count(DISTINCT repo_stream.cbor_cid(repo_stream.json_to_cbor(doc))) = count(DISTINCT doc) AS cids_distinct_per_doc
FROM docs;
