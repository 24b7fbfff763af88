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

-- the depth limit is exactly 128
SELECT repo_stream.cbor_to_json(decode(repeat('81', 127) || '01', 'hex')) IS NOT NULL AS depth_128_ok;
