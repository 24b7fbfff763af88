\pset pager off
\echo
\echo '== repo_stream demo: a throwaway server, the extension, the main job end to end'
CREATE EXTENSION repo_stream;

\echo
\echo '== 1. JSON record in, canonical DAG-CBOR and CID out'
\echo '   (keys come out length-first, as DAG-CBOR requires; $link becomes tag 42)'
SELECT repo_stream.json_to_cbor(r) AS dag_cbor,
       repo_stream.cbor_cid(repo_stream.json_to_cbor(r)) AS cid
FROM (VALUES ('{"$type": "app.bsky.feed.like",
                "subject": {"uri": "at://did:plc:abc/app.bsky.feed.post/3k2a", "cid": {"$link": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}},
                "createdAt": "2026-11-26T04:00:00.000Z"}'::jsonb)) AS t(r);

\echo
\echo '== 2. Round trip back to JSON'
SELECT repo_stream.cbor_to_json(repo_stream.json_to_cbor(
	'{"text": "hello ☃", "n": -7, "blob": {"$bytes": "nFERjvLLiw9qm45JrqH9QTzyC2Lu1Xb4ne6+sBrCzI0"}}')) AS json;

\echo
\echo '== 3. Bad input is a clear ERROR with a specific SQLSTATE'
\set ON_ERROR_STOP 0
\set VERBOSITY sqlstate
SELECT repo_stream.json_to_cbor('{"price": 9.99}');
\set VERBOSITY default
SELECT repo_stream.json_to_cbor('{"price": 9.99}');
SELECT repo_stream.cbor_to_json('\xa2616201616102');
\set ON_ERROR_STOP 1
