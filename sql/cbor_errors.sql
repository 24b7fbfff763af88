-- Strict DAG-CBOR decoding: every malformed input gets ERROR 22P03 naming
-- the byte offset, the byte, and the rule it breaks.
CREATE FUNCTION try_cbor(b bytea) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM repo_stream.cbor_to_json(b);
	RETURN 'accepted';
EXCEPTION WHEN others THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TEMP TABLE malformed (rule text, input bytea);
INSERT INTO malformed VALUES
	('empty input',                      '\x'),
	('indefinite array',                 '\x9f01ff'),
	('indefinite map',                   '\xbf616101ff'),
	('indefinite text',                  '\x7f616161ff'),
	('indefinite bytes',                 '\x5f4101ff'),
	('lone break code',                  '\xff'),
	('uint 1 in one extra byte',         '\x1801'),
	('uint 1 in two bytes',              '\x190001'),
	('uint 65535 in four bytes',         '\x1a0000ffff'),
	('uint 2^32-1 in eight bytes',       '\x1b00000000ffffffff'),
	('negint -1 in one extra byte',      '\x3800'),
	('text length not shortest',         '\x780161'),
	('array length not shortest',        '\x9800'),
	('map length not shortest',          '\xb800'),
	('map keys unsorted',                '\xa2616201616102'),
	('map keys bytewise but not length-first', '\xa262616101616202'),
	('duplicate map key',                '\xa2616101616102'),
	('integer map key',                  '\xa10102'),
	('byte string map key',              '\xa1416101'),
	('half float',                       '\xf93c00'),
	('single float',                     '\xfa3f800000'),
	('double float',                     '\xfb3ff0000000000000'),
	('float inside a map',               '\xa16166fb3ff8000000000000'),
	('tag 0 (date string)',              '\xc074323031332d30332d32315432303a30343a30305a'),
	('tag 2 (bignum)',                   '\xc2420100'),
	('tag 42 wrapping text',             '\xd82a6161'),
	('tag 42 without 0x00 prefix',       '\xd82a58240171122065062a5a5a00fc16d73c6944237ccbc15b1c4a7234489336891d091741a239d0'),
	('tag 42 with CID version 2',        '\xd82a5825000271122065062a5a5a00fc16d73c6944237ccbc15b1c4a7234489336891d091741a239d0'),
	('tag 42 with short digest',         '\xd82a581600017112106162636465666768696a6b6c6d6e6f70'),
	('tag 42 nested in tag 42',          '\xd82ad82a4100'),
	('undefined',                        '\xf7'),
	('simple value 16',                  '\xf0'),
	('two-byte simple value',            '\xf818'),
	('uint above int64 max',             '\x1b8000000000000000'),
	('negint below int64 min',           '\x3b8000000000000000'),
	('invalid UTF-8',                    '\x62c328'),
	('overlong UTF-8',                   '\x62c0af'),
	('UTF-8 surrogate',                  '\x63eda080'),
	('trailing bytes',                   '\x0000'),
	('text longer than input',           '\x65616263'),
	('bytes length far past input',      '\x5affffffff00'),
	('array longer than input',          '\x830102'),
	('truncated head',                   '\x1901'),
	('reserved additional info 28',      '\x1c'),
	('nesting deeper than 128',          decode(repeat('81', 129) || '01', 'hex'));

SELECT rule, try_cbor(input) AS result FROM malformed;

-- the same rules hold for cbor_cid, which must not hash invalid bytes
SELECT count(*) AS cases,
       count(*) FILTER (WHERE try_cbor(input) LIKE '22P03: invalid DAG-CBOR%') AS rejected_22p03
FROM malformed;
SELECT repo_stream.cbor_cid('\xf93c00');

-- the depth limit is exactly 128 arrays and maps; the innermost scalar does
-- not count (the JSON encoder counts the same way)
SELECT repo_stream.cbor_to_json(decode(repeat('81', 128) || '01', 'hex')) IS NOT NULL AS arrays_128_ok,
       repo_stream.cbor_cid(decode(repeat('81', 128) || '01', 'hex')) IS NOT NULL AS cid_128_ok,
       repo_stream.cbor_to_json(decode(repeat('a16161', 128) || 'f6', 'hex')) IS NOT NULL AS maps_128_ok;
SELECT try_cbor(decode(repeat('81', 128) || '80', 'hex')) AS arrays_129,
       try_cbor(decode(repeat('a16161', 128) || 'a0', 'hex')) AS maps_129;
CREATE FUNCTION try_cid(b bytea) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN repo_stream.cbor_cid(b);
EXCEPTION WHEN others THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT try_cid(decode(repeat('81', 129) || '01', 'hex')) AS cid_129;

-- Text PostgreSQL cannot hold: U+0000 is valid DAG-CBOR, but text and
-- jsonb cannot store it, so cbor_to_json refuses it (22P05) wherever it is.
-- cbor_cid hashes bytes, not text, and accepts it.
CREATE FUNCTION try_cbor_detail(b bytea) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	detail text;
BEGIN
	PERFORM repo_stream.cbor_to_json(b);
	RETURN 'accepted';
EXCEPTION WHEN others THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' / ' || nullif(detail, ''), '');
END $$;
SELECT what, try_cbor_detail(input) AS result
FROM (VALUES
	('"a", NUL, "b"',            '\x63610062'::bytea),
	('only a NUL',               '\x6100'),
	('NUL at the end',           '\x626100'),
	('in a map key',             '\xa162610001'),
	('in a map value',           '\xa16474657874636100 62'::bytea),
	('in an array',              '\x8261786100'),
	('deep inside',              '\xa1616181a161626100')
) AS t(what, input);
SELECT repo_stream.cbor_cid('\x63610062') AS cid_of_nul_text;

-- Maps json_to_cbor could not write back are refused too (22023): their
-- JSON would read back as different bytes, or not at all.
SELECT what, try_cbor_detail(repo_stream.json_to_cbor(j::jsonb) ) AS control,
       try_cbor_detail(input) AS result
FROM (VALUES
	('{"$link": text}',    '{"l": "x"}',          '\xa165246c696e6b6178'::bytea),
	('{"$bytes": text}',   '{"b": "x"}',          '\xa166246279746573 6178'::bytea),
	('$link and another', '{"a": 1}',            '\xa2616101 65246c696e6b 6178'::bytea),
	('$type not a string', '{"$type": "a"}',     '\xa165247479706501'::bytea),
	('$type empty',        '{"$type": "a"}',     '\xa1652474797065 60'::bytea),
	('blob without ref',   '{"$type": "blob", "size": 1, "ref": {"$link": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}, "mimeType": "a"}',
	                       '\xa36473697a6501652474797065 64626c6f62686d696d65547970656161'::bytea)
) AS t(what, j, input);
