/*
 * test_frame.c - unit tests of the CARv1, commit and frame modules.
 */
#define _GNU_SOURCE				/* memmem */
#include <stdlib.h>
#include <sodium.h>

#include "car.h"
#include "cbor.h"
#include "cid.h"
#include "commit.h"
#include "frame.h"
#include "keys.h"
#include "mst.h"
#include "tid.h"
#include "verify.h"
#include "tap.h"

/* hex of a DAG-CBOR text string (short ones only: < 256 bytes) */
static void
hex_text(char *out, const char *s)
{
	size_t		n = strlen(s);

	if (n < 24)
		sprintf(out, "%02x", 0x60 + (unsigned) n);
	else
		sprintf(out, "78%02x", (unsigned) n);
	for (size_t i = 0; i < n; i++)
		sprintf(out + strlen(out), "%02x", (uint8_t) s[i]);
}

static void
dagcbor_cid_of(const char *text, uint8_t cid[CID_LEN])
{
	RsBuf		b;

	rs_buf_init(&b, 32);
	dcbor_put_map(&b, 1);
	dcbor_put_cstr(&b, "text");
	dcbor_put_cstr(&b, text);
	cid_for_dagcbor(b.data, b.len, cid);
	rs_buf_free(&b);
}

/* ------------------------------------------------------------------ CAR */

static void
test_car_round_trip(void)
{
	RsBuf		car,
				rec1,
				rec2;
	uint8_t		c1[CID_LEN],
				c2[CID_LEN],
				c3[CID_LEN],
				root[CID_LEN];
	const uint8_t raw[] = "raw bytes, not CBOR";
	CarReader	r;
	CarBlock	b;
	CarIndex	idx;
	char	   *hex;
	int			n = 0;

	rs_buf_init(&rec1, 16);
	rs_buf_init(&rec2, 16);
	dcbor_put_map(&rec1, 1);
	dcbor_put_cstr(&rec1, "a");
	dcbor_put_uint(&rec1, 1);
	dcbor_put_array(&rec2, 2);
	dcbor_put_cstr(&rec2, "x");
	dcbor_put_null(&rec2);
	cid_for_dagcbor(rec1.data, rec1.len, c1);
	cid_for_dagcbor(rec2.data, rec2.len, c2);
	cid_for_raw(raw, sizeof(raw) - 1, c3);

	rs_buf_init(&car, 64);
	car_write_header(&car, c1);
	hex = tohex(car.data, car.len);
	ok(strncmp(hex, "3aa265726f6f747381d82a58250001711220", 36) == 0 &&
	   strcmp(hex + strlen(hex) - 18, "6776657273696f6e01") == 0 && car.len == 59,
	   "CAR header: varint 58, {roots: [link], version: 1} in canonical order");
	free(hex);
	car_write_block(&car, c1, rec1.data, rec1.len);
	car_write_block(&car, c2, rec2.data, rec2.len);
	car_write_block(&car, c3, raw, sizeof(raw) - 1);
	car_write_block(&car, c1, rec1.data, rec1.len);	/* a repeat is legal */
	ok(car.data[59] == CID_LEN + rec1.len, "block length varint = len(cid) + len(data)");

	ok(car_reader_open(&r, car.data, car.len) == CAR_OK, "CAR reader opens what the writer wrote");
	ok(r.n_roots == 1 && memcmp(r.root, c1, CID_LEN) == 0, "one root, the one written");
	ok(car_reader_root(&r, 0, root) && memcmp(root, c1, CID_LEN) == 0, "car_reader_root(0)");
	ok(!car_reader_root(&r, 1, root), "car_reader_root past the end is false");
	while (car_reader_next(&r, &b))
	{
		const uint8_t *want_cid = n == 1 ? c2 : n == 2 ? c3 : c1;
		const uint8_t *want = n == 1 ? rec2.data : n == 2 ? raw : rec1.data;
		size_t		want_len = n == 1 ? rec2.len : n == 2 ? sizeof(raw) - 1 : rec1.len;

		ok(memcmp(b.cid, want_cid, CID_LEN) == 0 && b.len == want_len &&
		   memcmp(b.data, want, want_len) == 0, "block %d reads back", n);
		n++;
	}
	ok(n == 4 && r.err == CAR_OK && r.pos == car.len, "four blocks, clean end");
	ok(car_validate(car.data, car.len, NULL) == CAR_OK, "car_validate accepts it");

	ok(car_index_build(car.data, car.len, &idx, NULL) == CAR_OK && idx.n == 3,
	   "index holds three distinct blocks");
	ok(car_index_get(&idx, c2) != NULL && car_index_get(&idx, c2)->len == rec2.len &&
	   car_index_get(&idx, c3) != NULL && car_index_get(&idx, c1) != NULL,
	   "index finds every block by CID");
	c3[10] ^= 1;
	ok(car_index_get(&idx, c3) == NULL, "index misses an absent CID");
	ok(memcmp(idx.root, c1, CID_LEN) == 0, "index records the root");
	car_index_free(&idx);

	/* header with no blocks is a valid CAR */
	car.len = 59;
	ok(car_validate(car.data, car.len, NULL) == CAR_OK, "header-only CAR is valid");
	rs_buf_free(&car);
	rs_buf_free(&rec1);
	rs_buf_free(&rec2);
}

static void
test_car_varint(void)
{
	static const uint64_t values[] = {0, 1, 127, 128, 255, 300, 16383, 16384,
	(UINT64_C(1) << 35) + 5, (UINT64_C(1) << 63) - 1};

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
	{
		RsBuf		b;
		uint64_t	v = 0;
		int			shift = 0;
		size_t		k;

		rs_buf_init(&b, 4);
		car_put_varint(&b, values[i]);
		for (k = 0; k < b.len; k++, shift += 7)
			v |= (uint64_t) (b.data[k] & 0x7f) << shift;
		ok(v == values[i] && !(b.data[b.len - 1] & 0x80) &&
		   (b.len == 1 || b.data[b.len - 1] != 0), "varint %llu: %zu bytes, shortest",
		   (unsigned long long) values[i], b.len);
		rs_buf_free(&b);
	}
}

/* A valid CAR (root + 1 dag-cbor block) as hex-editable bytes. */
static size_t
sample_car(uint8_t *out, size_t *block_at)
{
	RsBuf		car,
				rec;
	uint8_t		cid[CID_LEN];
	size_t		n;

	rs_buf_init(&rec, 16);
	dcbor_put_map(&rec, 1);
	dcbor_put_cstr(&rec, "a");
	dcbor_put_uint(&rec, 1);
	cid_for_dagcbor(rec.data, rec.len, cid);
	rs_buf_init(&car, 128);
	car_write_header(&car, cid);
	*block_at = car.len;
	car_write_block(&car, cid, rec.data, rec.len);
	memcpy(out, car.data, car.len);
	n = car.len;
	rs_buf_free(&car);
	rs_buf_free(&rec);
	return n;
}

static void
expect_car(const uint8_t *data, size_t len, CarError want, const char *what)
{
	size_t		off = 0;
	CarError	got = car_validate(data, len, &off);

	ok(got == want, "CAR %s -> %s (got %s at %zu)", what, car_strerror(want), car_strerror(got), off);
}

static void
test_car_rejections(void)
{
	uint8_t		good[256],
				b[300];
	size_t		at;
	size_t		n = sample_car(good, &at);
	CarIndex	idx;

	expect_car(good, n, CAR_OK, "sample");
	expect_car(good, 0, CAR_ERR_EMPTY, "empty input");
	expect_car((const uint8_t *) "\x80", 1, CAR_ERR_VARINT_TRUNCATED, "truncated header varint");
	expect_car((const uint8_t *) "\xba\x00", 2, CAR_ERR_VARINT_NOT_MINIMAL, "non-minimal header varint (0xba 0x00)");
	expect_car((const uint8_t *) "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10,
			   CAR_ERR_VARINT_TOO_LONG, "10-byte varint");
	expect_car(good, 40, CAR_ERR_LENGTH, "header length past the end");
	expect_car((const uint8_t *) "\x00", 1, CAR_ERR_HEADER_CBOR, "zero-length header");

	/* non-minimal header length: same CAR with 0x3a written as 0xba 0x00 */
	b[0] = 0xba;
	b[1] = 0x00;
	memcpy(b + 2, good + 1, n - 1);
	expect_car(b, n + 1, CAR_ERR_VARINT_NOT_MINIMAL, "whole CAR with a padded header varint");

	/* header not DAG-CBOR: make the version a float */
	memcpy(b, good, n);
	b[58] = 0xf9;
	expect_car(b, n, CAR_ERR_HEADER_CBOR, "header with a float");

	/* {roots, version: 2} */
	memcpy(b, good, n);
	b[58] = 0x02;
	expect_car(b, n, CAR_ERR_VERSION, "version 2");

	/* {roots: []} etc. built by hand */
	{
		uint8_t		h[80];
		size_t		k;

		k = unhex("00a265726f6f7473806776657273696f6e01", h);
		h[0] = (uint8_t) (k - 1);
		expect_car(h, k, CAR_ERR_ROOTS, "empty roots");
		k = unhex("0fa265726f6f7473816161" "6776657273696f6e01", h);
		h[0] = (uint8_t) (k - 1);
		expect_car(h, k, CAR_ERR_ROOTS, "roots with a string");
		k = unhex("0aa16776657273696f6e01", h);
		h[0] = (uint8_t) (k - 1);
		expect_car(h, k, CAR_ERR_ROOTS, "no roots");
		k = unhex("a16776657273696f6e02", h + 1);
		h[0] = (uint8_t) k;
		expect_car(h, k + 1, CAR_ERR_VERSION, "CARv2-style {version: 2}");
		k = unhex("a3617801" "65726f6f747381d82a58250001711220" "0000000000000000000000000000000000000000000000000000000000000000" "6776657273696f6e01", h + 1);
		h[0] = (uint8_t) k;
		expect_car(h, k + 1, CAR_ERR_HEADER_SHAPE, "extra header key");
		k = unhex("8101", h + 1);
		h[0] = (uint8_t) k;
		expect_car(h, k + 1, CAR_ERR_HEADER_SHAPE, "header is an array");
	}

	/* block: length past the end, truncated varint, short, bad CID, bad hash */
	expect_car(good, n - 1, CAR_ERR_LENGTH, "block cut short by one byte");
	expect_car(good, at + 0, CAR_OK, "CAR cut at a block boundary");
	memcpy(b, good, n);
	b[n] = 0x80;
	expect_car(b, n + 1, CAR_ERR_VARINT_TRUNCATED, "truncated block varint");
	memcpy(b, good, n);
	b[n] = 0x85;
	b[n + 1] = 0x00;
	expect_car(b, n + 2, CAR_ERR_VARINT_NOT_MINIMAL, "non-minimal block varint");
	memcpy(b, good, n);
	b[n] = 0x03;
	memcpy(b + n + 1, "\x01\x71\x12", 3);
	expect_car(b, n + 4, CAR_ERR_BLOCK_SHORT, "3-byte block");
	memcpy(b, good, n);
	b[at + 2] = 0x70;			/* dag-pb codec */
	expect_car(b, n, CAR_ERR_CID, "dag-pb CID");
	memcpy(b, good, n);
	b[at + 1] = 0x00;			/* CIDv0-looking version byte */
	expect_car(b, n, CAR_ERR_CID, "CID version 0");
	memcpy(b, good, n);
	b[n - 1] ^= 0x01;
	expect_car(b, n, CAR_ERR_HASH, "block bytes changed");
	memcpy(b, good, n);
	b[at + 20] ^= 0x01;
	expect_car(b, n, CAR_ERR_HASH, "CID digest changed");
	ok(car_index_build(b, n, &idx, NULL) == CAR_ERR_HASH && idx.blocks == NULL,
	   "index build fails cleanly on a bad block");
}

static void
test_car_mutations(void)
{
	uint8_t		good[256],
				b[256];
	size_t		at;
	size_t		n = sample_car(good, &at);
	unsigned	seed = 11;
	int			valid = 0,
				invalid = 0;

	for (int round = 0; round < 100000; round++)
	{
		size_t		len = n;
		CarIndex	idx;

		memcpy(b, good, n);
		for (int k = 0; k < 1 + round % 3; k++)
			b[rand_r(&seed) % n] = (uint8_t) rand_r(&seed);
		if (round % 5 == 0)
			len = rand_r(&seed) % (n + 1);
		if (car_validate(b, len, NULL) == CAR_OK)
			valid++;
		else
			invalid++;
		if (car_index_build(b, len, &idx, NULL) == CAR_OK)
			car_index_free(&idx);
	}
	ok(invalid > 0 && valid + invalid == 100000, "100000 CAR mutations: %d valid, %d rejected, no crash",
	   valid, invalid);
}

/* --------------------------------------------------------------- commit */

static const char *TEST_DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
static const char *TEST_REV = "3jzfcijpj2z2a";

static void
sample_commit(RepoCommit *c)
{
	memset(c, 0, sizeof(*c));
	c->did = TEST_DID;
	c->did_len = strlen(TEST_DID);
	c->rev = TEST_REV;
	c->rev_len = strlen(TEST_REV);
	dagcbor_cid_of("root", c->data);
}

static void
test_commit(void)
{
	RepoCommit	c,
				d;
	RsBuf		u,
				s;
	char		want[1024],
				t[256],
			   *got;
	uint8_t		pk[crypto_sign_PUBLICKEYBYTES],
				sk[crypto_sign_SECRETKEYBYTES];
	char		msg[256];
	char	   *link;

	sample_commit(&c);
	rs_buf_init(&u, 128);
	commit_encode_unsigned(&c, &u);
	/* {did, rev, data, prev: null, version: 3} */
	link = tohex(c.data, CID_LEN);
	strcpy(want, "a5" "63646964");
	hex_text(t, TEST_DID);
	strcat(want, t);
	strcat(want, "63726576");
	hex_text(t, TEST_REV);
	strcat(want, t);
	strcat(want, "6464617461" "d82a582500");
	strcat(want, link);
	strcat(want, "6470726576" "f6" "6776657273696f6e" "03");
	got = tohex(u.data, u.len);
	is_str(got, want, "unsigned commit bytes: did, rev, data, prev null, version 3");
	free(got);
	ok(memmem(u.data, u.len, "sig", 3) == NULL, "unsigned bytes have no sig key");

	crypto_sign_keypair(pk, sk);
	crypto_sign_detached(c.sig, NULL, u.data, u.len, sk);
	c.has_sig = true;
	rs_buf_init(&s, 256);
	commit_encode_signed(&c, &s);
	{
		char		sigpart[200];
		char	   *sighex = tohex(c.sig, 64);

		strcpy(want, "a6" "63646964");
		hex_text(t, TEST_DID);
		strcat(want, t);
		strcat(want, "63726576");
		hex_text(t, TEST_REV);
		strcat(want, t);
		sprintf(sigpart, "63736967" "5840%s", sighex);
		strcat(want, sigpart);
		strcat(want, "6464617461" "d82a582500");
		strcat(want, link);
		strcat(want, "6470726576" "f6" "6776657273696f6e" "03");
		free(sighex);
	}
	got = tohex(s.data, s.len);
	is_str(got, want, "signed commit bytes: sig (64 bytes) between rev and data");
	free(got);
	free(link);
	ok(dcbor_validate(s.data, s.len, NULL) == DCBOR_OK, "signed commit is canonical DAG-CBOR");

	ok(commit_decode(s.data, s.len, true, &d, msg, sizeof(msg)) == COMMIT_OK, "signed commit decodes");
	ok(d.did_len == c.did_len && memcmp(d.did, c.did, c.did_len) == 0 &&
	   d.rev_len == c.rev_len && memcmp(d.rev, c.rev, c.rev_len) == 0 &&
	   memcmp(d.data, c.data, CID_LEN) == 0 && !d.has_prev && d.has_sig &&
	   memcmp(d.sig, c.sig, 64) == 0, "decoded fields match");
	ok(commit_verify_sig(&d, pk), "signature verifies over the re-encoded unsigned bytes");
	d.sig[5] ^= 1;
	ok(!commit_verify_sig(&d, pk), "flipped signature byte fails");
	d.sig[5] ^= 1;
	pk[0] ^= 1;
	ok(!commit_verify_sig(&d, pk), "wrong key fails");
	ok(commit_decode(u.data, u.len, false, &d, NULL, 0) == COMMIT_OK && !d.has_sig,
	   "unsigned commit decodes with require_sig false");
	ok(commit_decode(u.data, u.len, true, &d, msg, sizeof(msg)) == COMMIT_ERR_SIG,
	   "unsigned commit fails with require_sig: %s", msg);

	/* rejections, each built by hand */
	{
		RsBuf		b;
		RepoCommit	x;

#define REJECT(WANT, WHAT, ...) do { \
		rs_buf_init(&b, 128); __VA_ARGS__; \
		CommitError e_ = commit_decode(b.data, b.len, true, &x, msg, sizeof(msg)); \
		ok(e_ == (WANT), "commit %s -> %s (%s)", WHAT, commit_strerror(WANT), msg); \
		rs_buf_free(&b); } while (0)

#define PUT_STD(VERSION, PREV) \
		dcbor_put_cstr(&b, "did"); dcbor_put_cstr(&b, TEST_DID); \
		dcbor_put_cstr(&b, "rev"); dcbor_put_cstr(&b, TEST_REV); \
		dcbor_put_cstr(&b, "sig"); dcbor_put_bytes(&b, c.sig, 64); \
		dcbor_put_cstr(&b, "data"); dcbor_put_link(&b, c.data, CID_LEN); \
		if (PREV) { dcbor_put_cstr(&b, "prev"); dcbor_put_null(&b); } \
		dcbor_put_cstr(&b, "version"); dcbor_put_uint(&b, VERSION)

		REJECT(COMMIT_ERR_VERSION, "version 2", dcbor_put_map(&b, 6); PUT_STD(2, 1));
		REJECT(COMMIT_ERR_SHAPE, "without prev", dcbor_put_map(&b, 5); PUT_STD(3, 0));
		REJECT(COMMIT_ERR_SHAPE, "with an extra field",
			   dcbor_put_map(&b, 7); dcbor_put_cstr(&b, "x"); dcbor_put_uint(&b, 1); PUT_STD(3, 1));
		REJECT(COMMIT_ERR_SHAPE, "that is an array", dcbor_put_array(&b, 0));
		REJECT(COMMIT_ERR_CBOR, "with a trailing byte", dcbor_put_map(&b, 6); PUT_STD(3, 1); dcbor_put_null(&b));
		REJECT(COMMIT_ERR_SIG, "with a 63-byte sig",
			   dcbor_put_map(&b, 6);
			   dcbor_put_cstr(&b, "did"); dcbor_put_cstr(&b, TEST_DID);
			   dcbor_put_cstr(&b, "rev"); dcbor_put_cstr(&b, TEST_REV);
			   dcbor_put_cstr(&b, "sig"); dcbor_put_bytes(&b, c.sig, 63);
			   dcbor_put_cstr(&b, "data"); dcbor_put_link(&b, c.data, CID_LEN);
			   dcbor_put_cstr(&b, "prev"); dcbor_put_null(&b);
			   dcbor_put_cstr(&b, "version"); dcbor_put_uint(&b, 3));
		REJECT(COMMIT_ERR_DID, "with did \"plc:abc\"",
			   dcbor_put_map(&b, 6);
			   dcbor_put_cstr(&b, "did"); dcbor_put_cstr(&b, "plc:abc");
			   dcbor_put_cstr(&b, "rev"); dcbor_put_cstr(&b, TEST_REV);
			   dcbor_put_cstr(&b, "sig"); dcbor_put_bytes(&b, c.sig, 64);
			   dcbor_put_cstr(&b, "data"); dcbor_put_link(&b, c.data, CID_LEN);
			   dcbor_put_cstr(&b, "prev"); dcbor_put_null(&b);
			   dcbor_put_cstr(&b, "version"); dcbor_put_uint(&b, 3));
		REJECT(COMMIT_ERR_REV, "with rev \"notatid\"",
			   dcbor_put_map(&b, 6);
			   dcbor_put_cstr(&b, "did"); dcbor_put_cstr(&b, TEST_DID);
			   dcbor_put_cstr(&b, "rev"); dcbor_put_cstr(&b, "notatid");
			   dcbor_put_cstr(&b, "sig"); dcbor_put_bytes(&b, c.sig, 64);
			   dcbor_put_cstr(&b, "data"); dcbor_put_link(&b, c.data, CID_LEN);
			   dcbor_put_cstr(&b, "prev"); dcbor_put_null(&b);
			   dcbor_put_cstr(&b, "version"); dcbor_put_uint(&b, 3));
		REJECT(COMMIT_ERR_SHAPE, "with data as text",
			   dcbor_put_map(&b, 6);
			   dcbor_put_cstr(&b, "did"); dcbor_put_cstr(&b, TEST_DID);
			   dcbor_put_cstr(&b, "rev"); dcbor_put_cstr(&b, TEST_REV);
			   dcbor_put_cstr(&b, "sig"); dcbor_put_bytes(&b, c.sig, 64);
			   dcbor_put_cstr(&b, "data"); dcbor_put_cstr(&b, "bafy");
			   dcbor_put_cstr(&b, "prev"); dcbor_put_null(&b);
			   dcbor_put_cstr(&b, "version"); dcbor_put_uint(&b, 3));
		{
			RepoCommit	p;

			/* v3 allows a prev link: decoded, and re-encoded as given */
			rs_buf_init(&b, 128);
			dcbor_put_map(&b, 6);
			dcbor_put_cstr(&b, "did");
			dcbor_put_cstr(&b, TEST_DID);
			dcbor_put_cstr(&b, "rev");
			dcbor_put_cstr(&b, TEST_REV);
			dcbor_put_cstr(&b, "sig");
			dcbor_put_bytes(&b, c.sig, 64);
			dcbor_put_cstr(&b, "data");
			dcbor_put_link(&b, c.data, CID_LEN);
			dcbor_put_cstr(&b, "prev");
			dcbor_put_link(&b, c.data, CID_LEN);
			dcbor_put_cstr(&b, "version");
			dcbor_put_uint(&b, 3);
			ok(commit_decode(b.data, b.len, true, &p, NULL, 0) == COMMIT_OK && p.has_prev &&
			   memcmp(p.prev, c.data, CID_LEN) == 0, "commit with a prev link decodes");
			{
				RsBuf		re;

				rs_buf_init(&re, 128);
				commit_encode_signed(&p, &re);
				ok(re.len == b.len && memcmp(re.data, b.data, b.len) == 0,
				   "and re-encodes to the same bytes");
				rs_buf_free(&re);
			}
			rs_buf_free(&b);
		}
	}
	rs_buf_free(&u);
	rs_buf_free(&s);
}

/* --------------------------------------------------------------- frames */

typedef struct SampleCommit
{
	FrameOp		ops[3];
	RsBuf		car;
	FrameCommit c;
} SampleCommit;

static void
sample_frame_commit(SampleCommit *s, bool first)
{
	uint8_t		root[CID_LEN];
	const char *time = "2024-05-06T07:08:09.123Z";

	memset(s, 0, sizeof(*s));
	dagcbor_cid_of("commit", root);
	rs_buf_init(&s->car, 64);
	car_write_header(&s->car, root);
	s->ops[0].action = FRAME_ACTION_CREATE;
	s->ops[0].path = "app.bsky.feed.post/3jzfcijpj2z2a";
	s->ops[0].path_len = strlen(s->ops[0].path);
	s->ops[0].has_cid = true;
	dagcbor_cid_of("new post", s->ops[0].cid);
	s->ops[1].action = FRAME_ACTION_UPDATE;
	s->ops[1].path = "app.bsky.actor.profile/self";
	s->ops[1].path_len = strlen(s->ops[1].path);
	s->ops[1].has_cid = true;
	dagcbor_cid_of("profile v2", s->ops[1].cid);
	s->ops[1].has_prev = true;
	dagcbor_cid_of("profile v1", s->ops[1].prev);
	s->ops[2].action = FRAME_ACTION_DELETE;
	s->ops[2].path = "app.bsky.feed.like/3jzfcijpj2z2b";
	s->ops[2].path_len = strlen(s->ops[2].path);
	s->ops[2].has_prev = true;
	dagcbor_cid_of("like", s->ops[2].prev);

	s->c.repo = TEST_DID;
	s->c.repo_len = strlen(TEST_DID);
	s->c.rev = "3jzfcijpj2z2c";
	s->c.rev_len = 13;
	if (!first)
	{
		s->c.since = TEST_REV;
		s->c.since_len = 13;
		s->c.has_prev_data = true;
		dagcbor_cid_of("prev root", s->c.prev_data);
	}
	memcpy(s->c.commit, root, CID_LEN);
	s->c.blocks = s->car.data;
	s->c.blocks_len = s->car.len;
	s->c.ops = s->ops;
	s->c.n_ops = first ? 1 : 3;
	s->c.time = time;
	s->c.time_len = strlen(time);
}

static bool
text_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (a == NULL || b == NULL)
		return a == b;
	return alen == blen && memcmp(a, b, alen) == 0;
}

static void
test_frame_commit_round_trip(void)
{
	for (int first = 0; first < 2; first++)
	{
		SampleCommit s;
		RsBuf		out;
		Frame		f;
		char		msg[256];
		bool		same = true;
		char	   *hex;

		sample_frame_commit(&s, first);
		rs_buf_init(&out, 256);
		frame_encode_commit(&s.c, 42, &out);
		hex = tohex(out.data, out.len);
		ok(strncmp(hex, "a261746723636f6d6d6974626f7001", 30) == 0,
		   "%s: header is {t: \"#commit\", op: 1}", first ? "first commit" : "commit");
		free(hex);
		ok(frame_decode(out.data, out.len, &f, msg, sizeof(msg)) == FRAME_OK,
		   "commit frame decodes (%s)", msg);
		ok(f.kind == FRAME_COMMIT && f.op == 1 && f.has_seq && f.seq == 42, "kind #commit, seq 42");
		ok(dcbor_validate(f.header, f.header_len, NULL) == DCBOR_OK &&
		   dcbor_validate(f.body, f.body_len, NULL) == DCBOR_OK,
		   "header and body are each canonical DAG-CBOR (keys in order)");
		ok(text_eq(f.commit.repo, f.commit.repo_len, s.c.repo, s.c.repo_len) &&
		   text_eq(f.commit.rev, f.commit.rev_len, s.c.rev, s.c.rev_len) &&
		   text_eq(f.commit.since, f.commit.since_len, s.c.since, s.c.since_len) &&
		   text_eq(f.commit.time, f.commit.time_len, s.c.time, s.c.time_len) &&
		   memcmp(f.commit.commit, s.c.commit, CID_LEN) == 0 &&
		   f.commit.blocks_len == s.c.blocks_len &&
		   memcmp(f.commit.blocks, s.c.blocks, s.c.blocks_len) == 0,
		   "repo, rev, since, time, commit, blocks round-trip");
		ok(f.commit.has_prev_data == s.c.has_prev_data &&
		   (!first ? memcmp(f.commit.prev_data, s.c.prev_data, CID_LEN) == 0 : true),
		   "prevData round-trips (%s)", first ? "absent" : "present");
		ok(!f.commit.rebase && !f.commit.too_big && f.commit.n_blobs == 0,
		   "rebase false, tooBig false, blobs []");
		ok(f.commit.n_ops == s.c.n_ops, "op count");
		for (size_t i = 0; i < f.commit.n_ops && i < s.c.n_ops; i++)
		{
			const FrameOp *a = &f.commit.ops[i],
					   *b = &s.c.ops[i];

			same &= a->action == b->action &&
				text_eq(a->path, a->path_len, b->path, b->path_len) &&
				a->has_cid == b->has_cid && a->has_prev == b->has_prev &&
				(!a->has_cid || memcmp(a->cid, b->cid, CID_LEN) == 0) &&
				(!a->has_prev || memcmp(a->prev, b->prev, CID_LEN) == 0);
		}
		ok(same, "ops round-trip");
		/* the lexicon's "should not be defined": no prevData key, no prev on a create */
		ok((memmem(out.data, out.len, "prevData", 8) == NULL) == (bool) first,
		   "prevData key %s", first ? "omitted on a first commit" : "present");
		{
			/* the create op: a3 63 cid ... 64 path ... 66 action ... (3 keys) */
			const uint8_t *p = memmem(f.body, f.body_len, "\x63ops", 4);

			ok(p && p[4] == (0x80 | s.c.n_ops) && p[5] == 0xa3,
			   "create op is a 3-key map {cid, path, action}");
		}
		if (!first)
		{
			const uint8_t *del = memmem(f.body, f.body_len, "\x63" "cid" "\xf6", 5);

			ok(del != NULL, "delete op has cid null");
		}
		frame_free(&f);
		rs_buf_free(&out);
		rs_buf_free(&s.car);
	}
}

static void
test_frame_other_kinds(void)
{
	RsBuf		out;
	Frame		f;
	char		msg[256];
	uint8_t		commit_cid[CID_LEN];
	RsBuf		car;
	char	   *hex;

	dagcbor_cid_of("commit", commit_cid);
	rs_buf_init(&car, 64);
	car_write_header(&car, commit_cid);

	{
		FrameSync	s = {TEST_DID, strlen(TEST_DID), TEST_REV, 13, car.data, car.len,
		"2024-01-01T00:00:00.000Z", 24};

		rs_buf_init(&out, 128);
		frame_encode_sync(&s, 7, &out);
		ok(frame_decode(out.data, out.len, &f, msg, sizeof(msg)) == FRAME_OK && f.kind == FRAME_SYNC &&
		   f.seq == 7 && text_eq(f.sync.did, f.sync.did_len, s.did, s.did_len) &&
		   text_eq(f.sync.rev, f.sync.rev_len, s.rev, s.rev_len) &&
		   f.sync.blocks_len == car.len && text_eq(f.sync.time, f.sync.time_len, s.time, s.time_len),
		   "#sync round-trips (%s)", msg);
		ok(dcbor_validate(f.body, f.body_len, NULL) == DCBOR_OK, "#sync body is canonical");
		frame_free(&f);
		rs_buf_free(&out);
	}
	for (int active = 0; active < 2; active++)
	{
		FrameAccount a = {TEST_DID, strlen(TEST_DID), "2024-01-01T00:00:00.000Z", 24, active,
		active ? NULL : "deactivated", active ? 0 : 11};

		rs_buf_init(&out, 128);
		frame_encode_account(&a, 8, &out);
		hex = tohex(out.data, out.len);
		ok(strncmp(hex, "a2617468236163636f756e74626f7001", 32) == 0, "#account header");
		free(hex);
		ok(frame_decode(out.data, out.len, &f, msg, sizeof(msg)) == FRAME_OK && f.kind == FRAME_ACCOUNT &&
		   f.seq == 8 && f.account.active == (bool) active &&
		   text_eq(f.account.status, f.account.status_len, a.status, a.status_len),
		   "#account (active %d) round-trips (%s)", active, msg);
		ok(active ? memmem(out.data, out.len, "status", 6) == NULL : true,
		   "#account: status omitted when active");
		frame_free(&f);
		rs_buf_free(&out);
	}
	for (int with_msg = 0; with_msg < 2; with_msg++)
	{
		FrameInfo	i = {"OutdatedCursor", 14, with_msg ? "cursor 5 is older than the window" : NULL,
		with_msg ? 33 : 0};

		rs_buf_init(&out, 128);
		frame_encode_info(&i, &out);
		ok(frame_decode(out.data, out.len, &f, msg, sizeof(msg)) == FRAME_OK && f.kind == FRAME_INFO &&
		   !f.has_seq && text_eq(f.info.name, f.info.name_len, i.name, i.name_len) &&
		   text_eq(f.info.message, f.info.message_len, i.message, i.message_len),
		   "#info (message %d) round-trips (%s)", with_msg, msg);
		frame_free(&f);
		rs_buf_free(&out);
	}
	{
		FrameErrorBody e = {"FutureCursor", 12, "cursor 99 is past the newest seq 10", 35};

		rs_buf_init(&out, 128);
		frame_encode_error(&e, &out);
		hex = tohex(out.data, out.len);
		ok(strncmp(hex, "a1626f7020a2656572726f72", 24) == 0, "error frame: {op: -1} then {error, message}");
		free(hex);
		ok(frame_decode(out.data, out.len, &f, msg, sizeof(msg)) == FRAME_OK && f.kind == FRAME_ERROR &&
		   f.op == -1 && f.type == NULL &&
		   text_eq(f.error.error, f.error.error_len, e.error, e.error_len) &&
		   text_eq(f.error.message, f.error.message_len, e.message, e.message_len),
		   "error frame round-trips (%s)", msg);
		frame_free(&f);
		rs_buf_free(&out);
	}
	{
		/* an unknown kind decodes as OTHER, seq picked up */
		rs_buf_init(&out, 64);
		dcbor_put_map(&out, 2);
		dcbor_put_cstr(&out, "t");
		dcbor_put_cstr(&out, "#identity");
		dcbor_put_cstr(&out, "op");
		dcbor_put_int(&out, 1);
		dcbor_put_map(&out, 3);
		dcbor_put_cstr(&out, "did");
		dcbor_put_cstr(&out, TEST_DID);
		dcbor_put_cstr(&out, "seq");
		dcbor_put_int(&out, 9);
		dcbor_put_cstr(&out, "time");
		dcbor_put_cstr(&out, "2024-01-01T00:00:00.000Z");
		ok(frame_decode(out.data, out.len, &f, msg, sizeof(msg)) == FRAME_OK && f.kind == FRAME_OTHER &&
		   f.has_seq && f.seq == 9 && text_eq(f.type, f.type_len, "#identity", 9),
		   "#identity decodes as another kind with its seq");
		frame_free(&f);
		rs_buf_free(&out);
	}
	rs_buf_free(&car);
}

static void
test_frame_seq_and_time(void)
{
	SampleCommit s;
	RsBuf		a,
				b,
				c;
	char		t[FRAME_TIME_LEN + 1];

	sample_frame_commit(&s, false);
	rs_buf_init(&a, 256);
	rs_buf_init(&b, 256);
	rs_buf_init(&c, 256);
	frame_encode_commit(&s.c, 0, &a);
	frame_encode_commit(&s.c, FRAME_SEQ_MAX, &b);
	ok(frame_set_seq(a.data, a.len, FRAME_SEQ_MAX, &c) == FRAME_OK &&
	   c.len == b.len && memcmp(c.data, b.data, b.len) == 0,
	   "frame_set_seq(placeholder 0 -> 2^53-1) equals encoding with that seq");
	c.len = 0;
	ok(frame_set_seq(b.data, b.len, 23, &c) == FRAME_OK && c.len == a.len,
	   "re-stamping to a shorter seq shrinks the frame");
	{
		Frame		f;

		ok(frame_decode(c.data, c.len, &f, NULL, 0) == FRAME_OK && f.seq == 23, "re-stamped frame decodes, seq 23");
		frame_free(&f);
	}
	c.len = 0;
	ok(frame_set_seq(a.data, a.len - 1, 5, &c) == FRAME_ERR_CBOR, "frame_set_seq rejects a truncated frame");
	{
		FrameInfo	i = {"OutdatedCursor", 14, NULL, 0};

		a.len = 0;
		frame_encode_info(&i, &a);
		ok(frame_set_seq(a.data, a.len, 5, &c) == FRAME_ERR_FIELD, "frame_set_seq: #info has no seq");
	}
	rs_buf_free(&a);
	rs_buf_free(&b);
	rs_buf_free(&c);
	rs_buf_free(&s.car);

	ok(frame_format_time(0, t) && strcmp(t, "1970-01-01T00:00:00.000Z") == 0, "time 0");
	ok(frame_format_time(INT64_C(1700000000123456), t) && strcmp(t, "2023-11-14T22:13:20.123Z") == 0,
	   "time with milliseconds, microseconds truncated: %s", t);
	ok(frame_format_time(-1, t) && strcmp(t, "1969-12-31T23:59:59.999Z") == 0, "time -1us: %s", t);
	ok(frame_format_time(INT64_C(253402300799999999), t) && strcmp(t, "9999-12-31T23:59:59.999Z") == 0,
	   "last millisecond of 9999");
	ok(!frame_format_time(INT64_C(253402300800000000), t), "year 10000 refused");
}

/* ---- decoder rejections: rewrite one body field of a valid frame ---- */

/* Copy frame with body key `key` dropped (val NULL) or its value replaced. */
static void
edit_field(const uint8_t *frame, size_t len, const char *key, const uint8_t *val, size_t vlen,
		   RsBuf *out)
{
	DcborReader r;
	DcborItem	it;
	size_t		hend;
	uint64_t	n;
	RsBuf		body;
	bool		found = false;

	dcbor_reader_init(&r, frame, len);
	dcbor_skip(&r);
	hend = r.pos;
	dcbor_read(&r, &it);
	n = it.uval;
	rs_buf_init(&body, len);
	for (uint64_t i = 0; i < n; i++)
	{
		DcborItem	k;
		size_t		kstart = r.pos,
					vstart,
					vend;

		dcbor_read(&r, &k);
		vstart = r.pos;
		dcbor_skip(&r);
		vend = r.pos;
		if (k.len == strlen(key) && memcmp(k.ptr, key, k.len) == 0)
		{
			found = true;
			if (val)
			{
				rs_buf_append(&body, frame + kstart, vstart - kstart);
				rs_buf_append(&body, val, vlen);
			}
			continue;
		}
		rs_buf_append(&body, frame + kstart, vend - kstart);
	}
	rs_buf_append(out, frame, hend);
	dcbor_put_map(out, n - (found && !val ? 1 : 0));
	rs_buf_append(out, body.data, body.len);
	rs_buf_free(&body);
}

static void
expect_frame(const uint8_t *data, size_t len, FrameError want, const char *what)
{
	Frame		f;
	char		msg[256] = "";
	FrameError	got = frame_decode(data, len, &f, msg, sizeof(msg));

	ok(got == want, "frame %s -> %s (got %s: %s)", what, frame_strerror(want), frame_strerror(got), msg);
	if (got == FRAME_OK)
		frame_free(&f);
}

static void
test_frame_rejections(void)
{
	SampleCommit s;
	RsBuf		good,
				b,
				v;
	static const char *required[] = {"seq", "repo", "rev", "since", "commit", "blocks", "ops",
	"time", "rebase", "tooBig", "blobs"};

	sample_frame_commit(&s, false);
	rs_buf_init(&good, 256);
	frame_encode_commit(&s.c, 42, &good);
	rs_buf_init(&b, 256);
	rs_buf_init(&v, 64);

	expect_frame(good.data, good.len, FRAME_OK, "sample");
	expect_frame(good.data, 0, FRAME_ERR_CBOR, "empty");
	expect_frame(good.data, 15, FRAME_ERR_CBOR, "header only");
	expect_frame(good.data, 30, FRAME_ERR_CBOR, "header and half a body");
	expect_frame(good.data, good.len - 1, FRAME_ERR_CBOR, "truncated body");
	rs_buf_reserve(&b, good.len + 1);
	memcpy(b.data, good.data, good.len);
	b.data[good.len] = 0xf6;
	expect_frame(b.data, good.len + 1, FRAME_ERR_TRAILING, "with a trailing null");
	expect_frame((const uint8_t *) "\xa1\x62op\x02\xa0", 6, FRAME_ERR_HEADER, "header op 2");
	expect_frame((const uint8_t *) "\xa1\x62op\x01\xa0", 6, FRAME_ERR_HEADER, "header op 1 without t");
	expect_frame((const uint8_t *) "\xa1\x61t\x61x\xa0", 6, FRAME_ERR_HEADER, "header without op");
	expect_frame((const uint8_t *) "\x80\xa0", 2, FRAME_ERR_HEADER, "header is an array");
	expect_frame((const uint8_t *) "\xa2\x61t\x01\x62op\x01\xa0", 9, FRAME_ERR_HEADER, "header t is an integer");
	expect_frame((const uint8_t *) "\xa1\x62op\x20\x80", 6, FRAME_ERR_FIELD, "error frame body is an array");
	expect_frame((const uint8_t *) "\xa1\x62op\x20\xa0", 6, FRAME_ERR_FIELD, "error frame without error");
	expect_frame((const uint8_t *) "\xa1\x62op\x20\xa1\x65" "error" "\x60", 13, FRAME_ERR_VALUE,
				 "error frame with an empty error");
	expect_frame((const uint8_t *) "\xa2\x62op\x01\x61t\x61x\xa0", 10, FRAME_ERR_CBOR,
				 "header keys out of order");

	/* depth bomb: 100000 nested arrays as a header */
	{
		size_t		n = 100000;
		uint8_t    *deep = malloc(n + 1);

		memset(deep, 0x81, n);
		deep[n] = 0x00;
		expect_frame(deep, n + 1, FRAME_ERR_CBOR, "header nested 100000 deep");
		free(deep);
	}

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
	{
		char		what[64];

		b.len = 0;
		edit_field(good.data, good.len, required[i], NULL, 0, &b);
		snprintf(what, sizeof(what), "#commit without %s", required[i]);
		expect_frame(b.data, b.len, FRAME_ERR_FIELD, what);
	}
	b.len = 0;
	edit_field(good.data, good.len, "prevData", NULL, 0, &b);
	expect_frame(b.data, b.len, FRAME_OK, "#commit without prevData");
	b.len = 0;
	edit_field(good.data, good.len, "prevData", (const uint8_t *) "\xf6", 1, &b);
	expect_frame(b.data, b.len, FRAME_OK, "#commit with prevData null");

#define EDIT(KEY, HEXVAL, WANT, WHAT) do { \
		uint8_t vb_[512]; size_t vn_ = unhex(HEXVAL, vb_); \
		b.len = 0; edit_field(good.data, good.len, KEY, vb_, vn_, &b); \
		expect_frame(b.data, b.len, WANT, WHAT); } while (0)

	EDIT("seq", "00", FRAME_ERR_VALUE, "seq 0");
	EDIT("seq", "20", FRAME_ERR_VALUE, "seq -1");
	EDIT("seq", "1b0020000000000000", FRAME_ERR_VALUE, "seq 2^53");
	EDIT("seq", "1b001fffffffffffff", FRAME_OK, "seq 2^53-1");
	EDIT("seq", "6131", FRAME_ERR_FIELD, "seq as text");
	EDIT("repo", "67706c633a616263", FRAME_ERR_VALUE, "repo \"plc:abc\"");
	EDIT("repo", "f6", FRAME_ERR_FIELD, "repo null");
	EDIT("rev", "6131", FRAME_ERR_VALUE, "rev \"1\"");
	EDIT("since", "f6", FRAME_OK, "since null");
	EDIT("since", "6131", FRAME_ERR_VALUE, "since \"1\"");
	EDIT("commit", "f6", FRAME_ERR_FIELD, "commit null");
	EDIT("blocks", "6131", FRAME_ERR_FIELD, "blocks as text");
	EDIT("time", "60", FRAME_ERR_VALUE, "empty time");
	EDIT("rebase", "f6", FRAME_ERR_FIELD, "rebase null");
	EDIT("tooBig", "f5", FRAME_OK, "tooBig true (decodes; verify refuses)");
	EDIT("blobs", "8101", FRAME_ERR_FIELD, "blobs [1]");
	EDIT("prevData", "6131", FRAME_ERR_FIELD, "prevData as text");
	EDIT("ops", "a0", FRAME_ERR_FIELD, "ops as a map");
	EDIT("ops", "8101", FRAME_ERR_FIELD, "ops [1]");
	EDIT("ops", "80", FRAME_OK, "ops [] (an empty commit)");

	/* ops built one field at a time */
	{
		char		hex[4096];
		char		cid[200],
					path[200];
		char	   *ch;

		ch = tohex(s.ops[0].cid, CID_LEN);
		sprintf(cid, "d82a582500%s", ch);
		free(ch);
		hex_text(path, "app.bsky.feed.post/abc");

#define OP(FIELDS_HEX, WANT, WHAT) do { sprintf(hex, "81%s", FIELDS_HEX); EDIT("ops", hex, WANT, WHAT); } while (0)
		char		f[2048];

		sprintf(f, "a363636964%s6470617468%s66616374696f6e66637265617465", cid, path);
		OP(f, FRAME_OK, "op create");
		sprintf(f, "a363636964f66470617468%s66616374696f6e66637265617465", path);
		OP(f, FRAME_ERR_VALUE, "op create with cid null");
		sprintf(f, "a463636964%s6470617468%s6470726576%s66616374696f6e66637265617465", cid, path, cid);
		OP(f, FRAME_ERR_VALUE, "op create with a prev");
		sprintf(f, "a463636964%s6470617468%s6470726576f666616374696f6e66637265617465", cid, path);
		OP(f, FRAME_OK, "op create with prev null");
		sprintf(f, "a363636964%s6470617468%s66616374696f6e6664656c657465", cid, path);
		OP(f, FRAME_ERR_VALUE, "op delete with a cid");
		sprintf(f, "a363636964f66470617468%s66616374696f6e6664656c657465", path);
		OP(f, FRAME_OK, "op delete without prev (sync 1.0; verify refuses)");
		sprintf(f, "a363636964%s6470617468%s66616374696f6e6775707365727421", cid, path);
		OP(f, FRAME_ERR_VALUE, "op action \"upsert!\"");
		sprintf(f, "a26470617468%s66616374696f6e66637265617465", path);
		OP(f, FRAME_ERR_FIELD, "op without cid");
		sprintf(f, "a263636964%s66616374696f6e66637265617465", cid);
		OP(f, FRAME_ERR_FIELD, "op without path");
		sprintf(f, "a363636964%s64706174686a6e6f2d736c617368657366616374696f6e66637265617465", cid);
		OP(f, FRAME_ERR_VALUE, "op path \"no-slashes\"");
		sprintf(f, "a463636964%s6470617468%s66616374696f6e6663726561746566657874726131f5", cid, path);
		OP(f, FRAME_OK, "op with an unknown field (ignored)");
	}
	rs_buf_free(&good);
	rs_buf_free(&b);
	rs_buf_free(&v);
	rs_buf_free(&s.car);
}

/* Replace body field key of frame with a byte string of n bytes (0x2a each). */
static void
frame_with_bytes(const uint8_t *frame, size_t len, const char *key, size_t n, RsBuf *out)
{
	RsBuf		v;
	uint8_t    *fill = malloc(n ? n : 1);

	memset(fill, 0x2a, n);
	rs_buf_init(&v, n + 9);
	dcbor_put_bytes(&v, fill, n);
	out->len = 0;
	edit_field(frame, len, key, v.data, v.len, out);
	rs_buf_free(&v);
	free(fill);
}

/* frame_decode, then frame_check_lexicon: what the second says. */
static void
expect_lexicon(const uint8_t *data, size_t len, FrameError want, const char *what, const char *msg_part)
{
	Frame		f;
	char		msg[256] = "";
	FrameError	got = frame_decode(data, len, &f, msg, sizeof(msg));

	if (got == FRAME_OK)
	{
		got = frame_check_lexicon(&f, msg, sizeof(msg));
		frame_free(&f);
	}
	ok(got == want && (msg_part == NULL || strstr(msg, msg_part) != NULL),
	   "lexicon: %s -> %s (got %s: %s)", what, frame_strerror(want), frame_strerror(got), msg);
}

static void
ops_array(int n, RsBuf *out)
{
	out->len = 0;
	dcbor_put_array(out, n);
	for (int i = 0; i < n; i++)
	{
		char		path[64];

		snprintf(path, sizeof(path), "app.bsky.feed.like/k%d", i);
		dcbor_put_map(out, 3);
		dcbor_put_cstr(out, "cid");
		dcbor_put_null(out);
		dcbor_put_cstr(out, "path");
		dcbor_put_cstr(out, path);
		dcbor_put_cstr(out, "action");
		dcbor_put_cstr(out, "delete");
	}
}

/*
 * The subscribeRepos lexicon's limits, at the limit and one past it: the
 * decoder reads both, frame_check_lexicon refuses the second.
 */
static void
test_frame_lexicon(void)
{
	SampleCommit s;
	RsBuf		good,
				b,
				v;
	static const struct
	{
		const char *time;
		bool		valid;
	}			times[] = {
		{"2024-05-06T07:08:09.123Z", true},
		{"2024-05-06T07:08:09Z", true},
		{"2024-05-06T07:08:09.123456789+05:30", true},
		{"2024-05-06t07:08:09.123Z", false},
		{"2024-05-06T07:08:09.123", false},
		{"2024-05-06T07:08:09.123-00:00", false},
		{"2024-05-06 07:08:09.123Z", false},
		{"yesterday", false},
	};

	sample_frame_commit(&s, false);
	rs_buf_init(&good, 512);
	frame_encode_commit(&s.c, 1000, &good);
	rs_buf_init(&b, 4096);
	rs_buf_init(&v, 8192);

	expect_lexicon(good.data, good.len, FRAME_OK, "the sample #commit", NULL);
	{
		Frame		f;
		size_t		dl,
					rl,
					bl;

		const char *did,
				   *rev;
		const uint8_t *blocks;

		frame_decode(good.data, good.len, &f, NULL, 0);
		did = frame_did(&f, &dl);
		rev = frame_rev(&f, &rl);
		blocks = frame_blocks(&f, &bl);
		ok(text_eq(did, dl, TEST_DID, strlen(TEST_DID)) && text_eq(rev, rl, s.c.rev, s.c.rev_len) &&
		   blocks == f.commit.blocks && bl == s.car.len,
		   "frame_did, frame_rev, frame_blocks of a #commit");
		frame_free(&f);
		b.len = 0;
		{
			FrameAccount a = {TEST_DID, strlen(TEST_DID), "2024-01-01T00:00:00.000Z", 24, true, NULL, 0};
			FrameInfo	i = {"OutdatedCursor", 14, NULL, 0};

			frame_encode_account(&a, 9, &b);
			frame_decode(b.data, b.len, &f, NULL, 0);
			did = frame_did(&f, &dl);
			rev = frame_rev(&f, &rl);
			blocks = frame_blocks(&f, &bl);
			ok(text_eq(did, dl, TEST_DID, strlen(TEST_DID)) && rev == NULL && rl == 0 && blocks == NULL && bl == 0,
			   "an #account has a DID, no rev, no blocks");
			frame_free(&f);
			b.len = 0;
			frame_encode_info(&i, &b);
			frame_decode(b.data, b.len, &f, NULL, 0);
			ok(frame_did(&f, &dl) == NULL && frame_rev(&f, &rl) == NULL && frame_blocks(&f, &bl) == NULL,
			   "an #info has none of them");
			frame_free(&f);
		}
	}
	ops_array(FRAME_MAX_OPS, &v);
	b.len = 0;
	edit_field(good.data, good.len, "ops", v.data, v.len, &b);
	expect_lexicon(b.data, b.len, FRAME_OK, "#commit with 200 ops", NULL);
	ops_array(FRAME_MAX_OPS + 1, &v);
	b.len = 0;
	edit_field(good.data, good.len, "ops", v.data, v.len, &b);
	expect_lexicon(b.data, b.len, FRAME_ERR_LEXICON, "#commit with 201 ops",
				   "field \"ops\" has 201 ops, over the lexicon limit of 200");

	frame_with_bytes(good.data, good.len, "blocks", FRAME_COMMIT_BLOCKS_MAX, &b);
	expect_lexicon(b.data, b.len, FRAME_OK, "#commit blocks of 2,000,000 bytes", NULL);
	frame_with_bytes(good.data, good.len, "blocks", FRAME_COMMIT_BLOCKS_MAX + 1, &b);
	expect_lexicon(b.data, b.len, FRAME_ERR_LEXICON, "#commit blocks of 2,000,001 bytes",
				   "field \"blocks\" is 2000001 bytes, over the lexicon limit of 2000000 bytes");
	frame_with_bytes(good.data, good.len, "blocks", 4 * 1000 * 1000, &b);
	expect_lexicon(b.data, b.len, FRAME_ERR_LEXICON, "#commit blocks of 4 MB", "4000000 bytes");

	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
	{
		v.len = 0;
		dcbor_put_cstr(&v, times[i].time);
		b.len = 0;
		edit_field(good.data, good.len, "time", v.data, v.len, &b);
		expect_lexicon(b.data, b.len, times[i].valid ? FRAME_OK : FRAME_ERR_LEXICON, times[i].time,
					   times[i].valid ? NULL : "field \"time\" is not an atproto datetime");
	}

	{
		uint8_t		root[CID_LEN];
		FrameSync	sy = {TEST_DID, strlen(TEST_DID), TEST_REV, 13, NULL, 0,
		"2024-01-01T00:00:00.000Z", 24};
		FrameAccount a = {TEST_DID, strlen(TEST_DID), "2024-01-01T00:00:00", 19, true, NULL, 0};
		RsBuf		car,
					sync;

		dagcbor_cid_of("commit", root);
		rs_buf_init(&car, 64);
		car_write_header(&car, root);
		sy.blocks = car.data;
		sy.blocks_len = car.len;
		rs_buf_init(&sync, 256);
		frame_encode_sync(&sy, 7, &sync);
		frame_with_bytes(sync.data, sync.len, "blocks", FRAME_SYNC_BLOCKS_MAX, &b);
		expect_lexicon(b.data, b.len, FRAME_OK, "#sync blocks of 10,000 bytes", NULL);
		frame_with_bytes(sync.data, sync.len, "blocks", FRAME_SYNC_BLOCKS_MAX + 1, &b);
		expect_lexicon(b.data, b.len, FRAME_ERR_LEXICON, "#sync blocks of 10,001 bytes",
					   "field \"blocks\" is 10001 bytes, over the lexicon limit of 10000 bytes");
		v.len = 0;
		dcbor_put_cstr(&v, "2024-01-01");
		b.len = 0;
		edit_field(sync.data, sync.len, "time", v.data, v.len, &b);
		expect_lexicon(b.data, b.len, FRAME_ERR_LEXICON, "#sync with time 2024-01-01", "\"time\"");

		b.len = 0;
		frame_encode_account(&a, 9, &b);
		expect_lexicon(b.data, b.len, FRAME_ERR_LEXICON, "#account without a timezone", "\"time\"");
		rs_buf_free(&car);
		rs_buf_free(&sync);
	}
	rs_buf_free(&good);
	rs_buf_free(&b);
	rs_buf_free(&v);
	rs_buf_free(&s.car);
}

static void
test_frame_mutations(void)
{
	SampleCommit s;
	RsBuf		good,
				out;
	uint8_t    *b;
	unsigned	seed = 5;
	int			valid = 0,
				invalid = 0;

	sample_frame_commit(&s, false);
	rs_buf_init(&good, 256);
	rs_buf_init(&out, 256);
	frame_encode_commit(&s.c, 42, &good);
	b = malloc(good.len);
	for (int round = 0; round < 200000; round++)
	{
		size_t		len = good.len;
		Frame		f;
		char		msg[128];

		memcpy(b, good.data, good.len);
		for (int k = 0; k < 1 + round % 3; k++)
			b[rand_r(&seed) % good.len] = (uint8_t) rand_r(&seed);
		if (round % 5 == 0)
			len = rand_r(&seed) % (good.len + 1);
		if (frame_decode(b, len, &f, msg, sizeof(msg)) == FRAME_OK)
		{
			valid++;
			frame_free(&f);
		}
		else
			invalid++;
		out.len = 0;
		frame_set_seq(b, len, 7, &out);
	}
	ok(invalid > 0 && valid > 0, "200000 frame mutations: %d decode, %d rejected, no crash", valid, invalid);
	free(b);
	rs_buf_free(&good);
	rs_buf_free(&out);
	rs_buf_free(&s.car);
}

/* ---------------------------------------------------------- verification */

typedef struct Blk
{
	uint8_t		cid[CID_LEN];
	uint8_t    *data;
	size_t		len;
} Blk;

typedef struct BlockList
{
	Blk		   *b;
	size_t		n;
	size_t		cap;
} BlockList;

static Blk *
bl_find(const BlockList *l, const uint8_t cid[CID_LEN])
{
	for (size_t i = 0; i < l->n; i++)
		if (memcmp(l->b[i].cid, cid, CID_LEN) == 0)
			return &l->b[i];
	return NULL;
}

static void
bl_add(BlockList *l, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	if (bl_find(l, cid))
		return;
	if (l->n == l->cap)
	{
		l->cap = l->cap ? 2 * l->cap : 32;
		l->b = realloc(l->b, l->cap * sizeof(Blk));
	}
	memcpy(l->b[l->n].cid, cid, CID_LEN);
	l->b[l->n].data = malloc(len ? len : 1);
	memcpy(l->b[l->n].data, data, len);
	l->b[l->n].len = len;
	l->n++;
}

static void
bl_free(BlockList *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->b[i].data);
	free(l->b);
	memset(l, 0, sizeof(*l));
}

static MstError
bl_get(void *ctx, const uint8_t cid[CID_LEN], const uint8_t **data, size_t *len)
{
	Blk		   *b = bl_find(ctx, cid);

	if (!b)
		return MST_ERR_MISSING_NODE;
	*data = b->data;
	*len = b->len;
	return MST_OK;
}

static void
bl_put(void *ctx, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	bl_add(ctx, cid, data, len);
}

typedef struct TwoLists
{
	BlockList  *a,
			   *b;
} TwoLists;

static void
bl_put2(void *ctx, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	bl_add(((TwoLists *) ctx)->a, cid, data, len);
	bl_add(((TwoLists *) ctx)->b, cid, data, len);
}

static const char *const collections[] = {"app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.graph.follow"};

static void
key_of(int i, char *out)
{
	char		tid[TID_LEN + 1];

	tid_encode(UINT64_C(1700000000000000) + (uint64_t) i * 7919, (uint32_t) i % 1024, tid);
	sprintf(out, "%s/%s", collections[i % 3], tid);
}

/* A record block for key i, version v; its CID into cid. */
static void
record_of(int i, int v, BlockList *records, uint8_t cid[CID_LEN])
{
	RsBuf		b;

	rs_buf_init(&b, 64);
	dcbor_put_map(&b, 3);
	dcbor_put_cstr(&b, "n");
	dcbor_put_int(&b, i);
	dcbor_put_cstr(&b, "v");
	dcbor_put_int(&b, v);
	dcbor_put_cstr(&b, "$type");
	dcbor_put_cstr(&b, collections[i % 3]);
	cid_for_dagcbor(b.data, b.len, cid);
	if (records)
		bl_add(records, cid, b.data, b.len);
	rs_buf_free(&b);
}

/* Everything a #commit frame is made of, before assembly. */
typedef struct Parts
{
	RepoCommit	commit;			/* unsigned fields */
	uint8_t		sk[crypto_sign_SECRETKEYBYTES];
	uint8_t		pk[crypto_sign_PUBLICKEYBYTES];
	BlockList	new_nodes,
				proof,
				records;
	FrameOp		ops[64];
	char		paths[64][64];
	size_t		n_ops;
	const char *since;
	bool		has_prev_data;
	uint8_t		prev_data[CID_LEN];
	/* tweaks for the failure cases */
	bool		flip_sig;
	bool		too_big;
	bool		skip_proof;		/* new nodes and records only */
	const uint8_t *omit;		/* leave this block out of the CAR */
	const uint8_t *car_root;	/* another CAR root */
	const char *frame_repo;		/* another repo in the frame */
	const char *frame_rev;
} Parts;

static char parts_rev[TID_LEN + 1];
static char parts_since[TID_LEN + 1];

/*
 * A repo of n_keys records, then one commit: creates of keys
 * n_keys..n_keys+n_create-1, updates and deletes of the given keys.
 * n_keys 0 makes a first commit.
 */
static void
make_parts(Parts *p, int n_keys, int n_create, const int *upd, int n_upd, const int *del, int n_del)
{
	BlockList	store = {0};
	MstStore	s = {bl_get, &store};
	MstTree    *old,
			   *t;
	MstKV	   *kv = calloc(n_keys + 1, sizeof(MstKV));
	char	  (*keys)[64] = calloc(n_keys + n_create + 1, 64);
	uint8_t		old_root[CID_LEN],
				new_root[CID_LEN];
	MstKey		written[64];
	TwoLists	both;

	memset(p, 0, sizeof(*p));
	/* a fixed key: Ed25519 signatures are deterministic, so are the frames */
	{
		uint8_t		seed[crypto_sign_SEEDBYTES];

		for (size_t i = 0; i < sizeof(seed); i++)
			seed[i] = (uint8_t) (i * 7 + 1);
		crypto_sign_seed_keypair(p->pk, p->sk, seed);
	}
	for (int i = 0; i < n_keys + n_create; i++)
		key_of(i, keys[i]);
	for (int i = 0; i < n_keys; i++)
	{
		kv[i].key = keys[i];
		kv[i].key_len = strlen(keys[i]);
		record_of(i, 1, NULL, kv[i].value);
	}
	old = mst_new(&s);
	if (mst_build(old, kv, n_keys) != MST_OK ||
		mst_write(old, bl_put, &store, old_root, NULL) != MST_OK)
		printf("# building the old tree failed: %s\n", mst_errmsg(old));
	mst_free(old);

	if (mst_open(&s, old_root, &t, NULL, 0) != MST_OK)
		printf("# reopening the old tree failed\n");
	for (int i = 0; i < n_create; i++)
	{
		FrameOp    *op = &p->ops[p->n_ops];

		strcpy(p->paths[p->n_ops], keys[n_keys + i]);
		op->action = FRAME_ACTION_CREATE;
		op->has_cid = true;
		record_of(n_keys + i, 1, &p->records, op->cid);
		mst_put(t, keys[n_keys + i], strlen(keys[n_keys + i]), op->cid, NULL, NULL);
		p->n_ops++;
	}
	for (int i = 0; i < n_upd; i++)
	{
		FrameOp    *op = &p->ops[p->n_ops];

		strcpy(p->paths[p->n_ops], keys[upd[i]]);
		op->action = FRAME_ACTION_UPDATE;
		op->has_cid = op->has_prev = true;
		record_of(upd[i], 2, &p->records, op->cid);
		mst_put(t, keys[upd[i]], strlen(keys[upd[i]]), op->cid, op->prev, NULL);
		p->n_ops++;
	}
	for (int i = 0; i < n_del; i++)
	{
		FrameOp    *op = &p->ops[p->n_ops];

		strcpy(p->paths[p->n_ops], keys[del[i]]);
		op->action = FRAME_ACTION_DELETE;
		op->has_prev = true;
		mst_delete(t, keys[del[i]], strlen(keys[del[i]]), op->prev);
		p->n_ops++;
	}
	for (size_t i = 0; i < p->n_ops; i++)
	{
		p->ops[i].path = p->paths[i];
		p->ops[i].path_len = strlen(p->paths[i]);
		written[i].key = p->paths[i];
		written[i].len = p->ops[i].path_len;
	}
	both.a = &store;
	both.b = &p->new_nodes;
	if (mst_write(t, bl_put2, &both, new_root, NULL) != MST_OK ||
		mst_covering_proof(t, written, p->n_ops, bl_put, &p->proof, NULL) != MST_OK)
		printf("# writing the new tree or its proof failed: %s\n", mst_errmsg(t));
	mst_free(t);

	tid_encode(UINT64_C(1700000001000000), 1, parts_rev);
	tid_encode(UINT64_C(1700000000500000), 1, parts_since);
	p->commit.did = TEST_DID;
	p->commit.did_len = strlen(TEST_DID);
	p->commit.rev = parts_rev;
	p->commit.rev_len = TID_LEN;
	memcpy(p->commit.data, new_root, CID_LEN);
	if (n_keys > 0)
	{
		p->since = parts_since;
		p->has_prev_data = true;
		memcpy(p->prev_data, old_root, CID_LEN);
	}
	bl_free(&store);
	free(kv);
	free(keys);
}

static void
free_parts(Parts *p)
{
	bl_free(&p->new_nodes);
	bl_free(&p->proof);
	bl_free(&p->records);
}

static void
car_add(RsBuf *car, BlockList *seen, const Parts *p, const uint8_t *cid, const uint8_t *data, size_t len)
{
	if (bl_find(seen, cid) || (p->omit && memcmp(p->omit, cid, CID_LEN) == 0))
		return;
	bl_add(seen, cid, data, len);
	car_write_block(car, cid, data, len);
}

/* Sign, build the CAR and encode the frame. */
static void
assemble(const Parts *p, RsBuf *frame)
{
	RepoCommit	c = p->commit;
	RsBuf		unsig,
				block,
				car;
	uint8_t		ccid[CID_LEN];
	BlockList	seen = {0};
	FrameCommit fc;

	rs_buf_init(&unsig, 128);
	commit_encode_unsigned(&c, &unsig);
	crypto_sign_detached(c.sig, NULL, unsig.data, unsig.len, p->sk);
	c.has_sig = true;
	if (p->flip_sig)
		c.sig[17] ^= 0x40;
	rs_buf_init(&block, 256);
	commit_encode_signed(&c, &block);
	cid_for_dagcbor(block.data, block.len, ccid);

	rs_buf_init(&car, 4096);
	car_write_header(&car, p->car_root ? p->car_root : ccid);
	car_add(&car, &seen, p, ccid, block.data, block.len);
	for (size_t i = 0; i < p->new_nodes.n; i++)
		car_add(&car, &seen, p, p->new_nodes.b[i].cid, p->new_nodes.b[i].data, p->new_nodes.b[i].len);
	for (size_t i = 0; i < p->records.n; i++)
		car_add(&car, &seen, p, p->records.b[i].cid, p->records.b[i].data, p->records.b[i].len);
	for (size_t i = 0; i < p->proof.n && !p->skip_proof; i++)
		car_add(&car, &seen, p, p->proof.b[i].cid, p->proof.b[i].data, p->proof.b[i].len);

	memset(&fc, 0, sizeof(fc));
	fc.repo = p->frame_repo ? p->frame_repo : TEST_DID;
	fc.repo_len = strlen(fc.repo);
	fc.rev = p->frame_rev ? p->frame_rev : parts_rev;
	fc.rev_len = strlen(fc.rev);
	fc.since = p->since;
	fc.since_len = p->since ? TID_LEN : 0;
	memcpy(fc.commit, ccid, CID_LEN);
	fc.blocks = car.data;
	fc.blocks_len = car.len;
	fc.ops = p->ops;
	fc.n_ops = p->n_ops;
	fc.has_prev_data = p->has_prev_data;
	memcpy(fc.prev_data, p->prev_data, CID_LEN);
	fc.time = "2024-05-06T07:08:09.123Z";
	fc.time_len = FRAME_TIME_LEN;
	frame_encode_commit(&fc, 1000, frame);
	if (p->too_big)
	{
		/* flip tooBig: false (0xf4) -> true (0xf5) */
		uint8_t    *tb = memmem(frame->data, frame->len, "\x66tooBig\xf4", 8);

		if (tb)
			tb[7] = 0xf5;
	}
	rs_buf_free(&unsig);
	rs_buf_free(&block);
	rs_buf_free(&car);
	bl_free(&seen);
}

static VerifyResult
verify_parts(const Parts *p, const uint8_t *pk, char *msg, size_t msglen)
{
	RsBuf		frame;
	Frame		f;
	VerifyResult r;
	char		dmsg[256];

	rs_buf_init(&frame, 8192);
	assemble(p, &frame);
	if (frame_decode(frame.data, frame.len, &f, dmsg, sizeof(dmsg)) != FRAME_OK)
	{
		snprintf(msg, msglen, "frame did not decode: %s", dmsg);
		rs_buf_free(&frame);
		return (VerifyResult) -1;
	}
	r = frame_verify(&f, pk ? pk : p->pk, msg, msglen);
	frame_free(&f);
	rs_buf_free(&frame);
	return r;
}

static void
expect_verify(const Parts *p, const uint8_t *pk, VerifyResult want, const char *what)
{
	char		msg[512] = "";
	VerifyResult got = verify_parts(p, pk, msg, sizeof(msg));

	ok(got == want, "verify %s -> %s (got: %s)", what, verify_strerror(want), msg[0] ? msg : verify_strerror(got));
}

static void
test_verify(void)
{
	static const int upd[] = {5, 17, 30};
	static const int del[] = {2, 11, 40};
	Parts		good,
				p;
	uint8_t		other_pk[crypto_sign_PUBLICKEYBYTES],
				other_sk[crypto_sign_SECRETKEYBYTES];

	make_parts(&good, 50, 3, upd, 3, del, 3);
	ok(good.n_ops == 9 && good.new_nodes.n > 0 && good.proof.n > 0,
	   "50-key repo, commit with 3 creates, 3 updates, 3 deletes: %zu new nodes, %zu proof nodes",
	   good.new_nodes.n, good.proof.n);
	expect_verify(&good, NULL, VERIFY_OK, "the honest frame");
	{
		/* what a relay keeps of a verified frame: the data root, the blocks by CID */
		RsBuf		frame;
		Frame		f;
		VerifiedCommit vc;
		bool		records_found = true;
		uint8_t		wrong[crypto_sign_PUBLICKEYBYTES];

		rs_buf_init(&frame, 8192);
		assemble(&good, &frame);
		frame_decode(frame.data, frame.len, &f, NULL, 0);
		ok(frame_verify_commit_keep(&f.commit, good.pk, &vc, NULL, 0) == VERIFY_OK &&
		   memcmp(vc.data, good.commit.data, CID_LEN) == 0,
		   "frame_verify_commit_keep gives the commit's data root");
		for (size_t i = 0; i < f.commit.n_ops; i++)
			if (f.commit.ops[i].has_cid && car_index_get(&vc.idx, f.commit.ops[i].cid) == NULL)
				records_found = false;
		ok(records_found && car_index_get(&vc.idx, vc.idx.root) != NULL,
		   "and the index of its blocks: every op's record and the commit block");
		car_index_free(&vc.idx);
		memcpy(wrong, good.pk, sizeof(wrong));
		wrong[0] ^= 1;
		memset(&vc, 0, sizeof(vc));
		ok(frame_verify_commit_keep(&f.commit, wrong, &vc, NULL, 0) == VERIFY_BAD_SIGNATURE &&
		   vc.idx.blocks == NULL, "a frame that does not verify keeps nothing");
		frame_free(&f);
		rs_buf_free(&frame);
	}

	crypto_sign_keypair(other_pk, other_sk);
	expect_verify(&good, other_pk, VERIFY_BAD_SIGNATURE, "with another key");

	p = good;
	p.flip_sig = true;
	expect_verify(&p, NULL, VERIFY_BAD_SIGNATURE, "with a flipped signature bit");

	p = good;
	p.omit = good.commit.data;
	expect_verify(&p, NULL, VERIFY_PROOF_MISSING, "without the new MST root node");

	p = good;
	p.prev_data[9] ^= 1;
	expect_verify(&p, NULL, VERIFY_PREV_DATA_MISMATCH, "with a wrong prevData");
	p = good;
	p.ops[8].prev[9] ^= 1;		/* a delete's prev: the re-inserted value differs */
	expect_verify(&p, NULL, VERIFY_PREV_DATA_MISMATCH, "with a wrong prev on a delete");
	p = good;
	p.ops[4].prev[9] ^= 1;		/* an update's prev */
	expect_verify(&p, NULL, VERIFY_PREV_DATA_MISMATCH, "with a wrong prev on an update");
	p = good;
	p.n_ops = 8;				/* a delete the frame does not mention */
	expect_verify(&p, NULL, VERIFY_PREV_DATA_MISMATCH, "with one op left out");

	p = good;
	p.omit = good.ops[0].cid;
	expect_verify(&p, NULL, VERIFY_RECORD_MISSING, "without a created record's block");
	p = good;
	memcpy(p.ops[3].cid, good.ops[0].cid, CID_LEN);	/* present, but not what the tree holds */
	expect_verify(&p, NULL, VERIFY_OP_MISMATCH, "with an update naming another record");
	p = good;
	p.ops[0].action = FRAME_ACTION_UPDATE;	/* a create claimed as an update */
	p.ops[0].has_prev = true;
	memcpy(p.ops[0].prev, good.ops[3].prev, CID_LEN);
	expect_verify(&p, NULL, VERIFY_PREV_DATA_MISMATCH, "with a create claimed as an update");
	p = good;
	p.ops[6].action = FRAME_ACTION_CREATE;	/* a delete claimed as a create */
	p.ops[6].has_cid = true;
	p.ops[6].has_prev = false;
	memcpy(p.ops[6].cid, good.ops[0].cid, CID_LEN);
	expect_verify(&p, NULL, VERIFY_OP_MISMATCH, "with a delete claimed as a create");
	p = good;
	p.ops[3].has_prev = false;
	expect_verify(&p, NULL, VERIFY_OP_WITHOUT_PREV, "with an update without prev (sync 1.0)");
	p = good;
	p.ops[1] = p.ops[0];
	expect_verify(&p, NULL, VERIFY_DUPLICATE_PATH, "with two ops on one path");

	p = good;
	p.frame_repo = "did:plc:someoneelse";
	expect_verify(&p, NULL, VERIFY_REPO_MISMATCH, "naming another repo");
	p = good;
	p.frame_rev = parts_since;
	expect_verify(&p, NULL, VERIFY_REV_MISMATCH, "naming another rev");
	p = good;
	p.car_root = good.commit.data;
	expect_verify(&p, NULL, VERIFY_ROOT_MISMATCH, "whose CAR root is not the commit");
	p = good;
	p.too_big = true;
	expect_verify(&p, NULL, VERIFY_TOO_BIG, "marked tooBig");
	p = good;
	p.has_prev_data = false;
	expect_verify(&p, NULL, VERIFY_NO_PREV_DATA, "with since but no prevData");
	p = good;
	p.since = NULL;
	p.has_prev_data = false;
	expect_verify(&p, NULL, VERIFY_PREV_DATA_MISMATCH, "claiming to be a first commit");

	{
		/* the commit block replaced by a non-commit block under its own CID */
		Parts		q = good;
		RsBuf		frame;
		Frame		f;
		char		msg[512];
		VerifyResult r;
		uint8_t    *blocks;

		rs_buf_init(&frame, 8192);
		assemble(&q, &frame);
		frame_decode(frame.data, frame.len, &f, NULL, 0);
		/* corrupt one byte inside blocks: a hash mismatch */
		blocks = (uint8_t *) f.commit.blocks;
		blocks[f.commit.blocks_len - 3] ^= 1;
		r = frame_verify(&f, q.pk, msg, sizeof(msg));
		ok(r == VERIFY_BAD_CAR && verify_is_malformed(r), "verify a frame with a corrupted block -> %s (%s)",
		   verify_strerror(VERIFY_BAD_CAR), msg);
		frame_free(&f);
		rs_buf_free(&frame);
	}
	free_parts(&good);

	/* an empty commit (no ops): the blocks hold the commit alone */
	make_parts(&good, 10, 0, NULL, 0, NULL, 0);
	ok(good.new_nodes.n == 0 && good.proof.n == 0, "an empty commit has no new nodes and no proof");
	expect_verify(&good, NULL, VERIFY_OK, "an empty commit (data = prevData, no MST block)");
	p = good;
	p.prev_data[30] ^= 1;
	expect_verify(&p, NULL, VERIFY_PREV_DATA_MISMATCH, "an empty commit whose prevData differs from data");
	free_parts(&good);

	/* a repo's first commit: 5 creates on the empty tree */
	make_parts(&good, 0, 5, NULL, 0, NULL, 0);
	expect_verify(&good, NULL, VERIFY_OK, "a first commit (no since, no prevData)");
	p = good;
	p.n_ops = 4;
	expect_verify(&p, NULL, VERIFY_PREV_DATA_MISMATCH, "a first commit with an op left out");
	free_parts(&good);

	/*
	 * Bigger: 1000 keys.  The deletes are of keys above layer 0: undoing
	 * one splits a subtree the commit did not change, which needs the
	 * covering proof.
	 */
	{
		int			u[20],
					d[20],
					nd = 0;

		for (int i = 0; i < 20; i++)
			u[i] = 7 + 49 * i;
		for (int i = 3; i < 1000 && nd < 16; i += 37)
		{
			char		k[64];

			key_of(i, k);
			if (mst_key_depth((const uint8_t *) k, strlen(k)) >= 1 && (i - 7) % 49 != 0)
				d[nd++] = i;
		}
		make_parts(&good, 1000, 20, u, 16, d, nd);
		expect_verify(&good, NULL, VERIFY_OK, "1000 keys, 20 creates, 16 updates, 16 deletes above layer 0");
		/*
		 * Proof nodes that are not new: only the covering proof brings
		 * them.  It is conservative (neighbours on both sides of every
		 * key), so leaving one out need not break the inversion; but it
		 * must never make a wrong verdict, and some must be needed.
		 */
		{
			int			n_only = 0,
						n_needed = 0,
						n_wrong = 0;

			for (size_t i = 0; i < good.proof.n; i++)
			{
				char		msg[512];
				VerifyResult r;

				if (bl_find(&good.new_nodes, good.proof.b[i].cid))
					continue;
				n_only++;
				p = good;
				p.omit = good.proof.b[i].cid;
				r = verify_parts(&p, NULL, msg, sizeof(msg));
				if (r == VERIFY_PROOF_MISSING)
					n_needed++;
				else if (r != VERIFY_OK)
					n_wrong++;
			}
			ok(n_only > 0 && n_needed > 0 && n_wrong == 0,
			   "leaving out one of %d proof-only nodes: %d times the proof is missing, else it verifies",
			   n_only, n_needed);
		}
		p = good;
		p.skip_proof = true;
		expect_verify(&p, NULL, VERIFY_PROOF_MISSING, "without the covering proof (new nodes only)");
		free_parts(&good);
	}
}

/* Garbage in a frame's blocks: decode and verify fail cleanly, never crash. */
/*
 * A signed first commit creating one record whose block is rec (hashed as
 * dag-cbor, or raw): checks of the record blocks themselves.
 */
static VerifyResult
verify_one_record(const uint8_t *rec, size_t len, bool raw, char *msg, size_t msglen, size_t *frame_len)
{
	static const char path[] = "app.bsky.feed.post/3jzfcijpj2z2a";
	uint8_t		pk[crypto_sign_PUBLICKEYBYTES],
				sk[crypto_sign_SECRETKEYBYTES],
				root[CID_LEN],
				ccid[CID_LEN];
	BlockList	nodes = {0};
	MstKV		kv;
	RepoCommit	c = {0};
	RsBuf		unsig,
				block,
				car,
				frame;
	FrameOp		op = {0};
	FrameCommit fc = {0};
	Frame		f;
	VerifyResult r = (VerifyResult) -1;

	crypto_sign_keypair(pk, sk);
	kv.key = path;
	kv.key_len = strlen(path);
	if (raw)
		cid_for_raw(rec, len, kv.value);
	else
		cid_for_dagcbor(rec, len, kv.value);
	mst_build_root(&kv, 1, bl_put, &nodes, root, NULL, 0);

	c.did = TEST_DID;
	c.did_len = strlen(TEST_DID);
	c.rev = "3jzfcijpj2z2c";
	c.rev_len = 13;
	memcpy(c.data, root, CID_LEN);
	rs_buf_init(&unsig, 128);
	commit_encode_unsigned(&c, &unsig);
	crypto_sign_detached(c.sig, NULL, unsig.data, unsig.len, sk);
	c.has_sig = true;
	rs_buf_init(&block, 256);
	commit_encode_signed(&c, &block);
	cid_for_dagcbor(block.data, block.len, ccid);

	rs_buf_init(&car, len + 4096);
	car_write_header(&car, ccid);
	car_write_block(&car, ccid, block.data, block.len);
	for (size_t i = 0; i < nodes.n; i++)
		car_write_block(&car, nodes.b[i].cid, nodes.b[i].data, nodes.b[i].len);
	car_write_block(&car, kv.value, rec, len);

	op.action = FRAME_ACTION_CREATE;
	op.path = path;
	op.path_len = strlen(path);
	op.has_cid = true;
	memcpy(op.cid, kv.value, CID_LEN);
	fc.repo = TEST_DID;
	fc.repo_len = strlen(TEST_DID);
	fc.rev = c.rev;
	fc.rev_len = 13;
	memcpy(fc.commit, ccid, CID_LEN);
	fc.blocks = car.data;
	fc.blocks_len = car.len;
	fc.ops = &op;
	fc.n_ops = 1;
	fc.time = "2024-05-06T07:08:09.123Z";
	fc.time_len = FRAME_TIME_LEN;
	rs_buf_init(&frame, car.len + 512);
	frame_encode_commit(&fc, 1, &frame);
	*frame_len = frame.len;
	if (frame_decode(frame.data, frame.len, &f, msg, msglen) == FRAME_OK)
	{
		if (frame_check_lexicon(&f, msg, msglen) == FRAME_OK)
			r = frame_verify(&f, pk, msg, msglen);
		frame_free(&f);
	}
	rs_buf_free(&unsig);
	rs_buf_free(&block);
	rs_buf_free(&car);
	rs_buf_free(&frame);
	bl_free(&nodes);
	return r;
}

/* A record of exactly len bytes: {"t": <byte string>}. */
static uint8_t *
record_of_size(size_t len)
{
	uint8_t    *rec = calloc(1, len);
	RsBuf		b;
	size_t		payload = len - 8;	/* a1 6174 5a xxxxxxxx */

	rs_buf_init(&b, len);
	dcbor_put_map(&b, 1);
	dcbor_put_cstr(&b, "t");
	dcbor_put_bytes(&b, rec, payload);
	memcpy(rec, b.data, b.len);
	rs_buf_free(&b);
	return rec;
}

static void
test_verify_records(void)
{
	char		msg[512];
	size_t		flen;
	uint8_t    *rec;
	VerifyResult r;
	static const uint8_t small[] = {0xa1, 0x61, 0x61, 0x01};	/* {"a": 1} */
	static const uint8_t array[] = {0x81, 0x01};
	static const uint8_t fl[] = {0xa1, 0x61, 0x61, 0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0};

	r = verify_one_record(small, sizeof(small), false, msg, sizeof(msg), &flen);
	ok(r == VERIFY_OK, "a small record verifies (%s)", msg);

	rec = record_of_size(RECORD_MAX_BYTES);
	r = verify_one_record(rec, RECORD_MAX_BYTES, false, msg, sizeof(msg), &flen);
	ok(r == VERIFY_OK && flen < FRAME_COMMIT_BLOCKS_MAX,
	   "a record of exactly 1,000,000 bytes verifies, in a %zu-byte frame (%s)", flen, msg);
	free(rec);
	rec = record_of_size(RECORD_MAX_BYTES + 1);
	r = verify_one_record(rec, RECORD_MAX_BYTES + 1, false, msg, sizeof(msg), &flen);
	ok(r == VERIFY_RECORD_TOO_BIG && strstr(msg, "is 1000001 bytes, over the limit of 1000000 bytes"),
	   "a record of 1,000,001 bytes does not (%s)", msg);
	free(rec);

	r = verify_one_record(array, sizeof(array), false, msg, sizeof(msg), &flen);
	ok(r == VERIFY_BAD_RECORD && strstr(msg, "not a map"), "a record that is an array does not (%s)", msg);
	r = verify_one_record(fl, sizeof(fl), false, msg, sizeof(msg), &flen);
	ok(r == VERIFY_BAD_RECORD && strstr(msg, "floats"), "a record with a float does not (%s)", msg);
	r = verify_one_record(small, sizeof(small), true, msg, sizeof(msg), &flen);
	ok(r == VERIFY_BAD_RECORD && strstr(msg, "raw codec"), "a record with a raw CID does not (%s)", msg);
}

/*
 * The MST key limit on the reading side: a node holding a 1,024-byte key
 * decodes, one holding a 1,025-byte key does not (mst_root refuses such a
 * key on the writing side: sql/mst.sql).  Repo paths stop at 830 bytes.
 */
static void
test_mst_key_limit(void)
{
	for (size_t len = MST_MAX_KEY_LEN; len <= MST_MAX_KEY_LEN + 1; len++)
	{
		char	   *key = malloc(len + 1);
		MstNodeEntry e = {0};
		MstNodeData node = {0},
					back;
		RsBuf		b;
		char		msg[256] = "";
		MstError	err;

		memcpy(key, "app.bsky.feed.post/", 19);
		memset(key + 19, 'x', len - 19);
		key[len] = '\0';
		e.key = key;
		e.key_len = len;
		dagcbor_cid_of("record", e.value);
		node.n = 1;
		node.entries = &e;
		node.layer = mst_key_depth((const uint8_t *) key, len);
		rs_buf_init(&b, len + 128);
		mst_node_encode(&node, &b);
		err = mst_node_decode(b.data, b.len, &back, msg, sizeof(msg));
		if (len == MST_MAX_KEY_LEN)
			ok(err == MST_OK && back.n == 1 && back.entries[0].key_len == len,
			   "an MST node with a 1024-byte key decodes (%s)", msg);
		else
			ok(err == MST_ERR_KEY_SYNTAX, "an MST node with a 1025-byte key does not (%s)", msg);
		if (err == MST_OK)
			mst_node_data_free(&back);
		rs_buf_free(&b);
		free(key);
	}
}

static void
test_verify_mutations(void)
{
	static const int upd[] = {1, 9};
	static const int del[] = {4, 12};
	Parts		p;
	RsBuf		good;
	uint8_t    *b;
	unsigned	seed = 3;
	int			counts[VERIFY_PREV_DATA_MISMATCH + 1] = {0};
	int			undecodable = 0,
				verified = 0;

	make_parts(&p, 20, 2, upd, 2, del, 2);
	rs_buf_init(&good, 8192);
	assemble(&p, &good);
	b = malloc(good.len);
	for (int round = 0; round < 20000; round++)
	{
		Frame		f;
		char		msg[512];
		size_t		len = good.len;

		memcpy(b, good.data, good.len);
		for (int k = 0; k < 1 + round % 4; k++)
			b[rand_r(&seed) % good.len] = (uint8_t) rand_r(&seed);
		if (round % 7 == 0)
			len = rand_r(&seed) % (good.len + 1);
		if (frame_decode(b, len, &f, msg, sizeof(msg)) != FRAME_OK)
		{
			undecodable++;
			continue;
		}
		{
			VerifyResult r = frame_verify(&f, p.pk, msg, sizeof(msg));

			if (r >= 0 && r <= VERIFY_PREV_DATA_MISMATCH)
				counts[r]++;
			verified += r == VERIFY_OK;
		}
		frame_free(&f);
	}
	ok(undecodable > 0 && counts[VERIFY_BAD_CAR] > 0,
	   "20000 mutated frames: %d undecodable, %d bad CAR, %d bad signature, %d still verify, no crash",
	   undecodable, counts[VERIFY_BAD_CAR], counts[VERIFY_BAD_SIGNATURE], verified);
	free(b);
	rs_buf_free(&good);
	free_parts(&p);
}

static void
test_verify_sync(void)
{
	Parts		p;
	RepoCommit	c;
	RsBuf		unsig,
				block,
				car,
				frame;
	uint8_t		ccid[CID_LEN];
	FrameSync	s;
	Frame		f;
	char		msg[256];

	make_parts(&p, 10, 1, NULL, 0, NULL, 0);
	c = p.commit;
	rs_buf_init(&unsig, 128);
	commit_encode_unsigned(&c, &unsig);
	crypto_sign_detached(c.sig, NULL, unsig.data, unsig.len, p.sk);
	c.has_sig = true;
	rs_buf_init(&block, 256);
	commit_encode_signed(&c, &block);
	cid_for_dagcbor(block.data, block.len, ccid);
	rs_buf_init(&car, 256);
	car_write_header(&car, ccid);
	car_write_block(&car, ccid, block.data, block.len);
	s.did = TEST_DID;
	s.did_len = strlen(TEST_DID);
	s.rev = parts_rev;
	s.rev_len = TID_LEN;
	s.blocks = car.data;
	s.blocks_len = car.len;
	s.time = "2024-05-06T07:08:09.123Z";
	s.time_len = FRAME_TIME_LEN;
	rs_buf_init(&frame, 512);
	frame_encode_sync(&s, 3, &frame);
	ok(frame_decode(frame.data, frame.len, &f, NULL, 0) == FRAME_OK &&
	   frame_verify(&f, p.pk, msg, sizeof(msg)) == VERIFY_OK, "#sync frame verifies");
	{
		VerifiedCommit vc;

		ok(frame_verify_sync_keep(&f.sync, p.pk, &vc, msg, sizeof(msg)) == VERIFY_OK &&
		   memcmp(vc.data, c.data, CID_LEN) == 0 && memcmp(vc.idx.root, ccid, CID_LEN) == 0,
		   "frame_verify_sync_keep gives the commit's data root and CID");
		car_index_free(&vc.idx);
	}
	p.pk[3] ^= 1;
	ok(frame_verify(&f, p.pk, msg, sizeof(msg)) == VERIFY_BAD_SIGNATURE, "#sync with another key: %s", msg);
	frame_free(&f);
	{
		FrameAccount a = {TEST_DID, strlen(TEST_DID), "2024-05-06T07:08:09.123Z", 24, true, NULL, 0};

		frame.len = 0;
		frame_encode_account(&a, 4, &frame);
		frame_decode(frame.data, frame.len, &f, NULL, 0);
		ok(frame_verify(&f, p.pk, msg, sizeof(msg)) == VERIFY_BAD_KIND, "#account cannot be verified: %s", msg);
		frame_free(&f);
	}
	rs_buf_free(&unsig);
	rs_buf_free(&block);
	rs_buf_free(&car);
	rs_buf_free(&frame);
	free_parts(&p);
}

/*
 * FRAME_FIXTURES=dir: write the signed frames that sql/frames.sql embeds
 * (dir/frames.sql) and test/interop/car.test.mjs reads (dir/frames.json).
 * Deterministic (fixed key and times): re-running gives the same files.
 */
typedef struct Fixture
{
	const char *name;
	const char *expect;			/* verify_frame: "true" or "false" */
	RsBuf		frame;
} Fixture;

static void
write_fixtures(const char *dir)
{
	static const int upd[] = {1};
	static const int del[] = {2};
	Fixture		fx[8];
	int			n = 0;
	Parts		good,
				p;
	char		did_key[DID_KEY_ED25519_LEN + 1];
	char		path[1024];
	FILE	   *sql,
			   *json;

#define FIXTURE(NAME, EXPECT, PARTS) do { \
		fx[n].name = NAME; fx[n].expect = EXPECT; rs_buf_init(&fx[n].frame, 4096); \
		assemble(PARTS, &fx[n].frame); n++; } while (0)

	make_parts(&good, 4, 1, upd, 1, del, 1);
	did_key_format_ed25519(good.pk, did_key);
	FIXTURE("commit", "true", &good);
	p = good;
	p.flip_sig = true;
	FIXTURE("bad signature", "false", &p);
	p = good;
	p.prev_data[20] ^= 1;
	FIXTURE("wrong prevData", "false", &p);
	p = good;
	p.omit = good.ops[0].cid;
	FIXTURE("record missing", "false", &p);
	p = good;
	p.too_big = true;
	FIXTURE("tooBig", "false", &p);
	{
		/* a byte of the last block flipped: its hash no longer matches */
		Frame		f;

		FIXTURE("corrupt block", "false", &good);
		frame_decode(fx[n - 1].frame.data, fx[n - 1].frame.len, &f, NULL, 0);
		((uint8_t *) f.commit.blocks)[f.commit.blocks_len - 2] ^= 1;
		frame_free(&f);
	}
	{
		/* #sync: the signed commit alone */
		RepoCommit	c = good.commit;
		RsBuf		unsig,
					block,
					car;
		uint8_t		ccid[CID_LEN];
		FrameSync	s;

		rs_buf_init(&unsig, 128);
		commit_encode_unsigned(&c, &unsig);
		crypto_sign_detached(c.sig, NULL, unsig.data, unsig.len, good.sk);
		c.has_sig = true;
		rs_buf_init(&block, 256);
		commit_encode_signed(&c, &block);
		cid_for_dagcbor(block.data, block.len, ccid);
		rs_buf_init(&car, 256);
		car_write_header(&car, ccid);
		car_write_block(&car, ccid, block.data, block.len);
		s.did = TEST_DID;
		s.did_len = strlen(TEST_DID);
		s.rev = parts_rev;
		s.rev_len = TID_LEN;
		s.blocks = car.data;
		s.blocks_len = car.len;
		s.time = "2024-05-06T07:08:09.123Z";
		s.time_len = FRAME_TIME_LEN;
		fx[n].name = "sync";
		fx[n].expect = "true";
		rs_buf_init(&fx[n].frame, 512);
		frame_encode_sync(&s, 1001, &fx[n].frame);
		n++;
		rs_buf_free(&unsig);
		rs_buf_free(&block);
		rs_buf_free(&car);
	}
	free_parts(&good);
	make_parts(&good, 0, 2, NULL, 0, NULL, 0);
	FIXTURE("first commit", "true", &good);
	free_parts(&good);

	snprintf(path, sizeof(path), "%s/frames.sql", dir);
	sql = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/frames.json", dir);
	json = fopen(path, "w");
	if (!sql || !json)
	{
		printf("# cannot write fixtures in %s\n", dir);
		exit(1);
	}
	fprintf(sql, "-- key %s\nINSERT INTO frames VALUES\n", did_key);
	fprintf(json, "{\n  \"comment\": \"generated by FRAME_FIXTURES=<dir> test/unit/build/test_frame\",\n"
			"  \"did_key\": \"%s\",\n  \"frames\": [\n", did_key);
	for (int i = 0; i < n; i++)
	{
		char	   *hex = tohex(fx[i].frame.data, fx[i].frame.len);

		fprintf(sql, "  ('%s', '\\x%s')%s\n", fx[i].name, hex, i == n - 1 ? ";" : ",");
		fprintf(json, "    {\"name\": \"%s\", \"verify\": \"%s\",\n     \"hex\": \"%s\"}%s\n",
				fx[i].name, fx[i].expect, hex, i == n - 1 ? "" : ",");
		free(hex);
		rs_buf_free(&fx[i].frame);
	}
	fprintf(json, "  ]\n}\n");
	fclose(sql);
	fclose(json);
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	if (getenv("FRAME_FIXTURES"))
	{
		write_fixtures(getenv("FRAME_FIXTURES"));
		return 0;
	}
	test_car_round_trip();
	test_car_varint();
	test_car_rejections();
	test_car_mutations();
	test_commit();
	test_frame_commit_round_trip();
	test_frame_other_kinds();
	test_frame_seq_and_time();
	test_frame_rejections();
	test_frame_lexicon();
	test_frame_mutations();
	test_verify();
	test_verify_records();
	test_mst_key_limit();
	test_verify_mutations();
	test_verify_sync();
	return done_testing();
}
