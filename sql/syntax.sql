--
-- Identifier syntax (atproto interop fixtures), tid_now(), did:key.
--

-- Each fixture file, one row per line; blank lines and '#' comments dropped.
-- Lines are kept byte for byte: some invalid ones have leading/trailing spaces.
\set did_valid `cat test/fixtures/atproto-interop/syntax/did_syntax_valid.txt`
\set did_invalid `cat test/fixtures/atproto-interop/syntax/did_syntax_invalid.txt`
\set nsid_valid `cat test/fixtures/atproto-interop/syntax/nsid_syntax_valid.txt`
\set nsid_invalid `cat test/fixtures/atproto-interop/syntax/nsid_syntax_invalid.txt`
\set rkey_valid `cat test/fixtures/atproto-interop/syntax/recordkey_syntax_valid.txt`
\set rkey_invalid `cat test/fixtures/atproto-interop/syntax/recordkey_syntax_invalid.txt`
\set tid_valid `cat test/fixtures/atproto-interop/syntax/tid_syntax_valid.txt`
\set tid_invalid `cat test/fixtures/atproto-interop/syntax/tid_syntax_invalid.txt`

CREATE TEMP TABLE fixture (kind text, expect boolean, line text);
INSERT INTO fixture
SELECT kind, expect, line
FROM (VALUES ('did', true, :'did_valid'), ('did', false, :'did_invalid'),
             ('nsid', true, :'nsid_valid'), ('nsid', false, :'nsid_invalid'),
             ('rkey', true, :'rkey_valid'), ('rkey', false, :'rkey_invalid'),
             ('tid', true, :'tid_valid'), ('tid', false, :'tid_invalid')) AS f(kind, expect, body),
     regexp_split_to_table(body, E'\n') AS line
WHERE line <> '' AND line NOT LIKE '#%';

CREATE TEMP VIEW fixture_result AS
SELECT kind, expect, line,
       CASE kind
           WHEN 'did' THEN repo_stream.is_valid_did(line)
           WHEN 'nsid' THEN repo_stream.is_valid_nsid(line)
           WHEN 'rkey' THEN repo_stream.is_valid_rkey(line)
           WHEN 'tid' THEN repo_stream.is_valid_tid(line)
       END AS got
FROM fixture;

-- Line counts must match the files; misclassified must be 0 everywhere.
SELECT kind, expect AS valid, count(*) AS lines,
       count(*) FILTER (WHERE got IS DISTINCT FROM expect) AS misclassified
FROM fixture_result
GROUP BY kind, expect
ORDER BY kind, expect DESC;

-- Any misclassified line, for diagnosis (expect no rows).
SELECT kind, expect, left(line, 60) AS line, got
FROM fixture_result
WHERE got IS DISTINCT FROM expect;

-- A few by hand.
SELECT repo_stream.is_valid_did('did:plc:7iza6de2dwap2sbkpav7c6c6') AS plc,
       repo_stream.is_valid_did('did:web:example.com') AS web,
       repo_stream.is_valid_did('did:method:val:') AS trailing_colon,
       repo_stream.is_valid_nsid('app.bsky.feed.post') AS nsid,
       repo_stream.is_valid_nsid('bsky.post') AS nsid_two_segments,
       repo_stream.is_valid_nsid('com.example.2post') AS nsid_digit_name,
       repo_stream.is_valid_rkey('self') AS rkey_self,
       repo_stream.is_valid_rkey('..') AS rkey_dotdot,
       repo_stream.is_valid_tid('3jzfcijpj2z2a') AS tid,
       repo_stream.is_valid_tid('kjzfcijpj2z2a') AS tid_65_bits;

-- STRICT: NULL in, NULL out.
SELECT repo_stream.is_valid_did(NULL) IS NULL AS did_null,
       repo_stream.is_valid_nsid(NULL) IS NULL AS nsid_null,
       repo_stream.is_valid_rkey(NULL) IS NULL AS rkey_null,
       repo_stream.is_valid_tid(NULL) IS NULL AS tid_null;

--
-- tid_now()
--

-- Reference decoder in SQL: the TID's 64-bit value as numeric.
CREATE FUNCTION pg_temp.tid_value(t text) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT sum((strpos('234567abcdefghijklmnopqrstuvwxyz', substr(t, i, 1)) - 1)::numeric
               * 32::numeric ^ (13 - i))::numeric(20, 0)
    FROM generate_series(1, 13) AS i
$$;

-- The decoder itself, on the spec's example and the all-zero TID.
SELECT div(pg_temp.tid_value('3jzfcijpj2z2a'), 1024) AS example_us,
       mod(pg_temp.tid_value('3jzfcijpj2z2a'), 1024) AS example_clock,
       pg_temp.tid_value('2222222222222') AS zero;

-- 10000 calls in one backend, in call order.
SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000) AS t0_us \gset
CREATE TABLE syntax_tids AS
SELECT g, repo_stream.tid_now() AS tid, pg_backend_pid() AS pid
FROM generate_series(1, 10000) AS g;

SELECT count(*) AS n,
       count(*) FILTER (WHERE NOT repo_stream.is_valid_tid(tid)) AS invalid,
       count(DISTINCT tid) AS distinct_tids,
       count(DISTINCT mod(pg_temp.tid_value(tid), 1024)) AS clock_ids,
       bool_and(mod(pg_temp.tid_value(tid), 1024) BETWEEN 0 AND 1023) AS clock_in_range,
       -- never ahead of the clock, and not older than the statement that
       -- made them (however slow the server, under valgrind say)
       bool_and(div(pg_temp.tid_value(tid), 1024)
                <= extract(epoch FROM clock_timestamp()) * 1000000) AS not_ahead,
       bool_and(div(pg_temp.tid_value(tid), 1024) >= :t0_us) AS recent
FROM syntax_tids;

-- Strictly increasing, both as strings (C order) and as timestamps.
SELECT count(*) AS not_increasing
FROM (SELECT tid, lag(tid) OVER (ORDER BY g) AS prev FROM syntax_tids) AS s
WHERE tid COLLATE "C" <= prev COLLATE "C"
   OR div(pg_temp.tid_value(tid), 1024) <= div(pg_temp.tid_value(prev), 1024);

-- A new backend: its TIDs collide with none of the old ones, and where it
-- got the same clock id (a reused backend id) they are all later.
\c -
CREATE FUNCTION pg_temp.tid_value(t text) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT sum((strpos('234567abcdefghijklmnopqrstuvwxyz', substr(t, i, 1)) - 1)::numeric
               * 32::numeric ^ (13 - i))::numeric(20, 0)
    FROM generate_series(1, 13) AS i
$$;
INSERT INTO syntax_tids
SELECT 10000 + g, repo_stream.tid_now(), pg_backend_pid()
FROM generate_series(1, 1000) AS g;

SELECT count(DISTINCT pid) AS backends,
       count(*) AS n,
       count(DISTINCT tid) AS distinct_tids
FROM syntax_tids;

SELECT count(*) AS same_clock_not_later
FROM syntax_tids AS new, syntax_tids AS old
WHERE new.pid = pg_backend_pid() AND old.pid <> pg_backend_pid()
  AND mod(pg_temp.tid_value(new.tid), 1024) = mod(pg_temp.tid_value(old.tid), 1024)
  AND new.tid COLLATE "C" <= old.tid COLLATE "C";

DROP TABLE syntax_tids;

--
-- did:key
--

-- W3C did:key spec Ed25519 example; its key is RFC 8032's for the zero seed.
SELECT repo_stream.did_key_from_public(
           '\x3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29')
       = 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp' AS w3c_format,
       encode(repo_stream.did_key_to_public(
           'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'), 'hex') AS w3c_public;

-- 1000 pseudo-random keys round trip; all results are valid 56-char DIDs.
SELECT count(*) AS n,
       count(*) FILTER (WHERE repo_stream.did_key_to_public(did) <> k) AS mismatched,
       count(*) FILTER (WHERE length(did) <> 56 OR did NOT LIKE 'did:key:z6Mk%'
                              OR NOT repo_stream.is_valid_did(did)) AS malformed
FROM (SELECT k, repo_stream.did_key_from_public(k) AS did
      FROM (SELECT sha256(g::text::bytea) AS k FROM generate_series(1, 1000) AS g) AS keys) AS s;

SELECT repo_stream.did_key_from_public(NULL) IS NULL AS from_null,
       repo_stream.did_key_to_public(NULL) IS NULL AS to_null;

-- Errors: the SQLSTATE, message and detail of each bad input.
CREATE FUNCTION pg_temp.error_of(query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    msg text;
    detail text;
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || msg || ' / ' || detail;
END
$$;

SELECT input, pg_temp.error_of(format('SELECT repo_stream.did_key_from_public(%L::bytea)', input)) AS error
FROM (VALUES ('\x'), ('\x0102'),
             ('\x3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da'),
             ('\x3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da2900')) AS t(input);

SELECT input, pg_temp.error_of(format('SELECT repo_stream.did_key_to_public(%L)', input)) AS error
FROM (VALUES (''),
             ('did:web:example.com'),
             ('did:key:'),
             ('did:key:6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'),
             ('did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW0'),
             ('did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp#frag'),
             ('did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N'),
             ('did:key:z2DQVyr4djN6XBfqZHAZWHsrrb6Wtfn7mRbYd1f7izkrSed'),
             ('did:key:zQebyzWxQMq56gnvLXi9dRniofr6yawKi38LgRKZNjMPFJGpy')) AS t(input);

-- As a client sees it.
SELECT repo_stream.did_key_from_public('\x0102');
SELECT repo_stream.did_key_to_public('did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N');

-- atproto datetimes (atproto.com/specs/lexicon#datetime): the format of
-- every frame's time, checked by verify_frame
SELECT t, repo_stream.is_valid_datetime(t) AS valid
FROM (VALUES ('1985-04-12T23:20:50.123Z'), ('1985-04-12T23:20:50Z'), ('1985-04-12T23:20:50.123456+05:45'),
             ('1985-04-12T23:20:50.123-07:00'), ('0000-01-01T00:00:00Z'), ('9999-12-31T23:59:59.999Z'),
             ('2024-02-29T00:00:00Z'),
             ('1985-04-12T23:20:50.123'), ('1985-04-12t23:20:50.123Z'), ('1985-04-12T23:20:50.123z'),
             ('1985-04-12 23:20:50.123Z'), ('1985-04-12T23:20:50.123-00:00'), ('1985-04-12T23:20Z'),
             ('1985-04-12'), ('2023-02-29T00:00:00Z'), ('1985-04-12T23:59:60Z'), ('1985-04-12T23:20:50.Z'),
             ('0000-01-01T00:00:00+01:00'), ('')) AS v(t);
-- 64 characters at most
SELECT length(t) AS len, repo_stream.is_valid_datetime(t) AS valid
FROM (VALUES ('1985-04-12T23:20:50.' || repeat('1', 43) || 'Z'),
             ('1985-04-12T23:20:50.' || repeat('1', 44) || 'Z')) AS v(t);
