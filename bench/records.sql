-- 100k atproto-like records: posts (with facets, reply refs, langs), likes
-- and follows, in the proportions a social app sees.
DROP TABLE IF EXISTS bench_records;
CREATE TABLE bench_records AS
SELECT i, x, repo_stream.json_to_cbor(x) AS c
FROM (
	SELECT i, CASE i % 4
		WHEN 0 THEN jsonb_build_object(
			'$type', 'app.bsky.feed.post',
			'text', 'post number ' || i || ' about ' || md5(i::text) || ' #tag',
			'langs', jsonb_build_array('en'),
			'createdAt', '2026-11-26T04:00:00.000Z',
			'facets', jsonb_build_array(jsonb_build_object(
				'index', jsonb_build_object('byteStart', 50, 'byteEnd', 54),
				'features', jsonb_build_array(jsonb_build_object('$type', 'app.bsky.richtext.facet#tag', 'tag', 'tag')))),
			'reply', jsonb_build_object(
				'root', jsonb_build_object('uri', 'at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3k' || i,
					'cid', 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a'),
				'parent', jsonb_build_object('uri', 'at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3k' || i,
					'cid', 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a')))
		WHEN 3 THEN jsonb_build_object(
			'$type', 'app.bsky.graph.follow',
			'subject', 'did:plc:' || substr(md5(i::text), 1, 24),
			'createdAt', '2026-11-26T04:00:00.000Z')
		ELSE jsonb_build_object(
			'$type', 'app.bsky.feed.like',
			'subject', jsonb_build_object('uri', 'at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3k' || (i / 7),
				'cid', 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a'),
			'createdAt', '2026-11-26T04:00:00.000Z')
		END AS x
	FROM generate_series(1, 100000) i) s;
VACUUM ANALYZE bench_records;
