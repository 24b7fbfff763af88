/*
 * test_frame_split.c - unit tests of frame_split and frame_drop_field, the
 * cuts the output plugin makes for format=json and blocks=false.
 */
#define _GNU_SOURCE				/* memmem */
#include <stdlib.h>

#include "car.h"
#include "cbor.h"
#include "cid.h"
#include "frame.h"
#include "frame_split.h"
#include "tap.h"

#define DID "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
#define TIME "2024-05-06T07:08:09.123Z"

static void
cid_of(const char *text, uint8_t cid[CID_LEN])
{
	RsBuf		b;

	rs_buf_init(&b, 32);
	dcbor_put_cstr(&b, text);
	cid_for_dagcbor(b.data, b.len, cid);
	rs_buf_free(&b);
}

/* A #commit frame with one create op and a small CAR as blocks. */
static void
commit_frame(RsBuf *out, RsBuf *car)
{
	uint8_t		root[CID_LEN];
	FrameOp		op = {0};
	FrameCommit c = {0};

	cid_of("commit", root);
	rs_buf_init(car, 64);
	car_write_header(car, root);
	op.action = FRAME_ACTION_CREATE;
	op.path = "app.bsky.feed.post/3jzfcijpj2z2a";
	op.path_len = strlen(op.path);
	op.has_cid = true;
	cid_of("post", op.cid);
	c.repo = DID;
	c.repo_len = strlen(DID);
	c.rev = "3jzfcijpj2z2c";
	c.rev_len = 13;
	c.since = "3jzfcijpj2z2b";
	c.since_len = 13;
	memcpy(c.commit, root, CID_LEN);
	c.blocks = car->data;
	c.blocks_len = car->len;
	c.ops = &op;
	c.n_ops = 1;
	c.has_prev_data = true;
	cid_of("prev", c.prev_data);
	c.time = TIME;
	c.time_len = strlen(TIME);
	rs_buf_init(out, 256);
	frame_encode_commit(&c, 4242, out);
}

/* Whether the body map of a frame (from body_off) has the key. */
static bool
body_has(const uint8_t *data, size_t len, size_t body_off, const char *key, uint64_t *pairs)
{
	DcborReader r;
	DcborItem	m,
				k;
	bool		found = false;

	dcbor_reader_init(&r, data + body_off, len - body_off);
	dcbor_read(&r, &m);
	*pairs = m.uval;
	for (uint64_t i = 0; i < m.uval; i++)
	{
		dcbor_read(&r, &k);
		if (k.len == strlen(key) && memcmp(k.ptr, key, k.len) == 0)
			found = true;
		dcbor_skip(&r);
	}
	return found;
}

static void
test_split(void)
{
	RsBuf		f,
				car;
	size_t		off = 0;
	Frame		d;
	char		msg[256];

	commit_frame(&f, &car);
	ok(frame_decode(f.data, f.len, &d, msg, sizeof(msg)) == FRAME_OK, "sample #commit decodes (%s)", msg);
	{
		FrameError	e = frame_split(f.data, f.len, &off);

		ok(e == FRAME_OK && off == d.header_len && d.body == f.data + off,
		   "frame_split finds the body where frame_decode does (byte %zu)", off);
	}
	frame_free(&d);

	ok(frame_split(f.data, off, &off) == FRAME_ERR_CBOR, "header alone: no body");
	ok(frame_split(f.data, f.len - 1, &off) == FRAME_ERR_CBOR, "truncated body");
	ok(frame_split(f.data, 0, &off) == FRAME_ERR_CBOR, "empty input");
	{
		uint8_t    *longer = malloc(f.len + 1);

		memcpy(longer, f.data, f.len);
		longer[f.len] = 0xf6;
		ok(frame_split(longer, f.len + 1, &off) == FRAME_ERR_TRAILING, "a byte after the body");
		free(longer);
	}
	{
		/* an array claiming 2^62 elements in 3 bytes must not loop or overflow */
		const uint8_t huge[] = {0xa0, 0x9b, 0x40, 0, 0, 0, 0, 0, 0, 0, 0xf6};
		const uint8_t hmap[] = {0xa0, 0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf6};

		ok(frame_split(huge, sizeof(huge), &off) == FRAME_ERR_CBOR, "array count past the input");
		ok(frame_split(hmap, sizeof(hmap), &off) == FRAME_ERR_CBOR, "map count past the input (2n overflow)");
	}
	{
		/* 4 MB of nested one-element arrays: iterative, no stack overflow */
		size_t		n = 4 << 20;
		uint8_t    *deep = malloc(n + 2);

		deep[0] = 0xa0;
		memset(deep + 1, 0x81, n);
		deep[n + 1] = 0xf6;
		ok(frame_split(deep, n + 2, &off) == FRAME_OK && off == 1, "4M-deep nesting is walked without recursion");
		ok(frame_split(deep, n + 1, &off) == FRAME_ERR_CBOR, "and truncated, rejected");
		free(deep);
	}
	rs_buf_free(&f);
	rs_buf_free(&car);
}

static void
test_drop(void)
{
	RsBuf		f,
				car,
				out;
	size_t		off,
				off2;
	bool		removed = false;
	uint64_t	pairs,
				pairs2;

	commit_frame(&f, &car);
	frame_split(f.data, f.len, &off);
	{
		bool		has = body_has(f.data, f.len, off, "blocks", &pairs);

		ok(has, "the sample body has blocks (%llu fields)", (unsigned long long) pairs);
	}

	rs_buf_init(&out, 16);
	ok(frame_drop_field(f.data, f.len, "blocks", &out, &removed) == FRAME_OK && removed,
	   "blocks dropped");
	ok(frame_split(out.data, out.len, &off2) == FRAME_OK && off2 == off &&
	   memcmp(out.data, f.data, off) == 0, "header unchanged");
	ok(dcbor_validate(out.data + off2, out.len - off2, NULL) == DCBOR_OK,
	   "new body is canonical DAG-CBOR");
	ok(!body_has(out.data, out.len, off2, "blocks", &pairs2) && pairs2 == pairs - 1,
	   "one field fewer, and it is blocks");
	ok(out.len == f.len - (strlen("blocks") + 1) - (car.len + 1 + (car.len >= 24) + (car.len >= 256)),
	   "only the key and the CAR bytes are gone (%zu -> %zu)", f.len, out.len);
	{
		/* every other field is byte-identical, seq included */
		const char *keys[] = {"ops", "rev", "seq", "repo", "time", "blobs", "since", "commit",
		"rebase", "tooBig", "prevData"};
		bool		same = true;

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		{
			const uint8_t *a = memmem(f.data, f.len, keys[i], strlen(keys[i]));
			const uint8_t *b = memmem(out.data, out.len, keys[i], strlen(keys[i]));

			if (a == NULL || b == NULL)
				same = false;
		}
		ok(same, "the other fields are all still there");
	}
	{
		Frame		d;
		char		msg[256];

		/* frame_decode needs blocks on #commit: the stripped frame says which field */
		ok(frame_decode(out.data, out.len, &d, msg, sizeof(msg)) == FRAME_ERR_FIELD &&
		   strstr(msg, "blocks") != NULL, "strict decoder names the missing field: %s", msg);
	}

	out.len = 0;
	ok(frame_drop_field(f.data, f.len, "nope", &out, &removed) == FRAME_OK && !removed &&
	   out.len == f.len && memcmp(out.data, f.data, f.len) == 0, "absent field: frame unchanged");

	out.len = 0;
	ok(frame_drop_field(f.data, f.len - 1, "blocks", &out, &removed) == FRAME_ERR_CBOR &&
	   out.len == 0, "truncated frame rejected, out untouched");
	{
		const uint8_t arr_body[] = {0xa0, 0x81, 0xf6};
		const uint8_t int_key[] = {0xa0, 0xa1, 0x01, 0xf6};

		ok(frame_drop_field(arr_body, sizeof(arr_body), "blocks", &out, &removed) == FRAME_ERR_FIELD,
		   "body not a map");
		ok(frame_drop_field(int_key, sizeof(int_key), "blocks", &out, &removed) == FRAME_ERR_FIELD,
		   "map key not text");
	}
	{
		/* mutations: never crash, never read past the end (ASan) */
		unsigned	seed = 7;
		int			okc = 0,
					bad = 0;

		for (int i = 0; i < 100000; i++)
		{
			uint8_t    *m = malloc(f.len);
			size_t		len = f.len;

			memcpy(m, f.data, f.len);
			m[rand_r(&seed) % f.len] ^= (uint8_t) (1 + rand_r(&seed) % 255);
			if (rand_r(&seed) % 4 == 0)
				len = rand_r(&seed) % (f.len + 1);
			out.len = 0;
			if (frame_drop_field(m, len, "blocks", &out, &removed) == FRAME_OK)
				okc++;
			else
				bad++;
			free(m);
		}
		ok(okc > 0 && bad > 0, "100000 mutations: %d cut, %d rejected, no crash", okc, bad);
	}
	rs_buf_free(&out);
	rs_buf_free(&f);
	rs_buf_free(&car);
}

int
main(void)
{
	test_split();
	test_drop();
	return done_testing();
}
