/*
 * test_views_path.c - unit tests of views_path: group_by path parsing, the
 * string at a path in a DAG-CBOR record, and a commit CAR's data root.
 */
#include <stdlib.h>

#include "car.h"
#include "cbor.h"
#include "cid.h"
#include "commit.h"
#include "views_path.h"
#include "tap.h"

static bool
parses(const char *text)
{
	ViewPath	p;
	char		err[200];

	return view_path_parse(text, strlen(text), &p, err, sizeof(err));
}

/* The string at path in rec, or "(missing)"; "(error)" on bad input. */
static const char *
at(const char *path, const RsBuf *rec)
{
	static char out[VIEW_KEY_MAX_LEN + 1];
	ViewPath	p;
	const uint8_t *s;
	size_t		n;
	int			r;

	if (!view_path_parse(path, strlen(path), &p, NULL, 0))
		return "(bad path)";
	if (dcbor_validate(rec->data, rec->len, NULL) != DCBOR_OK)
		return "(invalid record)";
	r = view_path_extract(&p, rec->data, rec->len, &s, &n);
	if (r < 0)
		return "(error)";
	if (r == 0)
		return "(missing)";
	snprintf(out, sizeof(out), "%.*s", (int) n, (const char *) s);
	return out;
}

/*
 * A like, keys in canonical order:
 * {"n": 7, "$type": "app.bsky.feed.like", "langs": ["en"], "subject": {"cid": <link>,
 *  "uri": "at://a/b/c", "blob": h'00', "deep": {"x": "y"}}, "createdAt": "2024"}
 * Canonical order is length first: n, $type, langs, subject, createdAt;
 * inside subject: cid, uri, blob, deep.
 */
static void
like_record(RsBuf *b)
{
	uint8_t		cid[CID_LEN];
	uint8_t		zero = 0;

	cid_for_dagcbor((const uint8_t *) "x", 1, cid);
	rs_buf_init(b, 128);
	dcbor_put_map(b, 5);
	dcbor_put_cstr(b, "n");
	dcbor_put_int(b, 7);
	dcbor_put_cstr(b, "$type");
	dcbor_put_cstr(b, "app.bsky.feed.like");
	dcbor_put_cstr(b, "langs");
	dcbor_put_array(b, 1);
	dcbor_put_cstr(b, "en");
	dcbor_put_cstr(b, "subject");
	dcbor_put_map(b, 4);
	dcbor_put_cstr(b, "cid");
	dcbor_put_link(b, cid, CID_LEN);
	dcbor_put_cstr(b, "uri");
	dcbor_put_cstr(b, "at://a/b/c");
	dcbor_put_cstr(b, "blob");
	dcbor_put_bytes(b, &zero, 1);
	dcbor_put_cstr(b, "deep");
	dcbor_put_map(b, 1);
	dcbor_put_cstr(b, "x");
	dcbor_put_cstr(b, "y");
	dcbor_put_cstr(b, "createdAt");
	dcbor_put_cstr(b, "2024");
}

static void
test_parse(void)
{
	ViewPath	p;
	char		err[200];

	ok(parses("subject.uri"), "subject.uri parses");
	ok(parses("subject"), "a single segment parses");
	ok(parses("reply.parent.uri"), "three segments parse");
	ok(parses("embed.$type"), "$type is an ordinary key");
	ok(view_path_parse("$did", 4, &p, err, sizeof(err)) && p.by_did && p.n_segs == 0,
	   "$did groups by repo");
	ok(view_path_parse("a.bc.d", 6, &p, err, sizeof(err)) && !p.by_did && p.n_segs == 3 &&
	   p.lens[0] == 1 && p.lens[1] == 2 && memcmp(p.segs[1], "bc", 2) == 0,
	   "segments point into the text");
	ok(!parses(""), "empty path refused");
	ok(!parses(".a"), "leading dot refused");
	ok(!parses("a."), "trailing dot refused");
	ok(!view_path_parse("a..b", 4, &p, err, sizeof(err)) && strstr(err, "empty segment") != NULL,
	   "doubled dot refused, and the reason says so");
	ok(!parses("subject.$link"), "$link refused");
	ok(!parses("blob.$bytes"), "$bytes refused");
	ok(!parses("$did.x"), "$did with more segments refused");
	ok(!parses("a\tb"), "control character refused");
	ok(parses("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p"), "16 segments accepted");
	ok(!parses("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q"), "17 segments refused");
	{
		char		longp[600];

		memset(longp, 'a', sizeof(longp) - 1);
		longp[sizeof(longp) - 1] = '\0';
		ok(!parses(longp), "a path over 512 bytes refused");
	}
}

static void
test_extract(void)
{
	RsBuf		rec,
				other;

	like_record(&rec);
	is_str(at("subject.uri", &rec), "at://a/b/c", "nested string");
	is_str(at("$type", &rec), "app.bsky.feed.like", "top-level string");
	is_str(at("subject.deep.x", &rec), "y", "three levels");
	is_str(at("createdAt", &rec), "2024", "the last key of the map");
	is_str(at("n", &rec), "(missing)", "an integer counts under no key");
	is_str(at("subject", &rec), "(missing)", "a map counts under no key");
	is_str(at("subject.cid", &rec), "(missing)", "a link counts under no key");
	is_str(at("subject.blob", &rec), "(missing)", "bytes count under no key");
	is_str(at("langs", &rec), "(missing)", "an array counts under no key");
	is_str(at("langs.0", &rec), "(missing)", "paths do not index arrays");
	is_str(at("subject.cid.x", &rec), "(missing)", "paths do not descend into links");
	is_str(at("subject.uri.x", &rec), "(missing)", "paths do not descend into strings");
	is_str(at("subject.nope", &rec), "(missing)", "absent key");
	is_str(at("aaaaaaaaaaaaaaaaaaaaaaaa", &rec), "(missing)", "key longer than all present keys");
	is_str(at("a", &rec), "(missing)", "key that sorts before the first");

	/* a string holding U+0000 is not a key PostgreSQL text can hold */
	rs_buf_init(&other, 32);
	dcbor_put_map(&other, 1);
	dcbor_put_cstr(&other, "k");
	dcbor_put_text(&other, "a\0b", 3);
	is_str(at("k", &other), "(missing)", "a string with U+0000 counts under no key");
	rs_buf_free(&other);

	/* a string longer than a key may be counts under no key */
	{
		char		big[VIEW_KEY_MAX_LEN + 1];

		memset(big, 'x', sizeof(big));
		rs_buf_init(&other, 4096);
		dcbor_put_map(&other, 1);
		dcbor_put_cstr(&other, "k");
		dcbor_put_text(&other, big, VIEW_KEY_MAX_LEN);
		ok(strlen(at("k", &other)) == VIEW_KEY_MAX_LEN, "a key of VIEW_KEY_MAX_LEN bytes counts");
		other.len = 0;
		dcbor_put_map(&other, 1);
		dcbor_put_cstr(&other, "k");
		dcbor_put_text(&other, big, VIEW_KEY_MAX_LEN + 1);
		is_str(at("k", &other), "(missing)", "one byte longer counts under no key");
		rs_buf_free(&other);
	}

	/* a top-level array or text: not a map */
	rs_buf_init(&other, 32);
	dcbor_put_cstr(&other, "just text");
	is_str(at("k", &other), "(missing)", "a record that is not a map");
	rs_buf_free(&other);

	/* truncated input: -1, not a crash (extract is bounds-checked) */
	{
		ViewPath	p;
		const uint8_t *s;
		size_t		n;

		view_path_parse("subject.uri", 11, &p, NULL, 0);
		ok(view_path_extract(&p, rec.data, 20, &s, &n) == -1, "truncated record is an error");
	}
	rs_buf_free(&rec);
}

static void
test_data_root(void)
{
	RepoCommit	c = {0};
	RsBuf		block,
				car;
	uint8_t		commit_cid[CID_LEN],
				out[CID_LEN],
				other[CID_LEN];

	c.did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
	c.did_len = strlen(c.did);
	c.rev = "3jzfcijpj2z2a";
	c.rev_len = 13;
	cid_for_dagcbor((const uint8_t *) "root", 4, c.data);
	c.has_sig = true;
	memset(c.sig, 7, COMMIT_SIG_LEN);
	rs_buf_init(&block, 256);
	commit_encode_signed(&c, &block);
	cid_for_dagcbor(block.data, block.len, commit_cid);

	/* an unrelated block first: the root is found wherever it is */
	rs_buf_init(&car, 512);
	car_write_header(&car, commit_cid);
	cid_for_dagcbor((const uint8_t *) "\xa0", 1, other);
	car_write_block(&car, other, (const uint8_t *) "\xa0", 1);
	car_write_block(&car, commit_cid, block.data, block.len);
	ok(view_car_data_root(car.data, car.len, out) && memcmp(out, c.data, CID_LEN) == 0,
	   "data root of a commit CAR");

	/* a CAR without its root block */
	car.len = 0;
	car_write_header(&car, commit_cid);
	car_write_block(&car, other, (const uint8_t *) "\xa0", 1);
	ok(!view_car_data_root(car.data, car.len, out), "root block missing: false");

	/* a root that is not a commit */
	car.len = 0;
	car_write_header(&car, other);
	car_write_block(&car, other, (const uint8_t *) "\xa0", 1);
	ok(!view_car_data_root(car.data, car.len, out), "root block not a commit: false");
	ok(!view_car_data_root((const uint8_t *) "\x01", 1, out), "garbage: false");
	rs_buf_free(&car);
	rs_buf_free(&block);
}

static void
test_car_find(void)
{
	RsBuf		car;
	uint8_t		root[CID_LEN],
				a[CID_LEN],
				b[CID_LEN],
				missing[CID_LEN];
	const uint8_t *data;
	size_t		len;

	cid_for_dagcbor((const uint8_t *) "\xa0", 1, root);
	cid_for_dagcbor((const uint8_t *) "\x61\x61", 2, a);
	cid_for_dagcbor((const uint8_t *) "\x61\x62", 2, b);
	cid_for_dagcbor((const uint8_t *) "\x61\x63", 2, missing);
	rs_buf_init(&car, 256);
	car_write_header(&car, root);
	car_write_block(&car, root, (const uint8_t *) "\xa0", 1);
	car_write_block(&car, a, (const uint8_t *) "\x61\x61", 2);
	car_write_block(&car, b, (const uint8_t *) "\x61\x62", 2);

	ok(view_car_find(car.data, car.len, b, &data, &len) && len == 2 && memcmp(data, "\x61\x62", 2) == 0,
	   "finds the last block");
	ok(view_car_find(car.data, car.len, root, &data, &len) && len == 1 && data[0] == 0xa0,
	   "finds the first block");
	ok(!view_car_find(car.data, car.len, missing, &data, &len), "an absent CID: false");
	/* cut anywhere: never a block past the end, never a read past it (ASan) */
	{
		int			bad = 0;

		for (size_t cut = 0; cut < car.len; cut++)
			if (view_car_find(car.data, cut, b, &data, &len) && data + len > car.data + cut)
				bad++;
		ok(bad == 0, "a truncated CAR never yields a block past its end");
	}
	ok(!view_car_find((const uint8_t *) "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10, a, &data, &len),
	   "an over-long varint: false");
	rs_buf_free(&car);
}

int
main(void)
{
	test_car_find();
	test_parse();
	test_extract();
	test_data_root();
	return done_testing();
}
