/*
 * test_car_import.c - the checks a repo CAR passes before import: a good
 * CAR in any block order, and one tampered CAR per check, each refused
 * with its own error and a message naming the offset, CID or key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "car_fixture.h"
#include "car_import.h"

typedef struct Seen
{
	size_t		nodes;
	size_t		records;
	bool		in_order;
	char		last[256];
} Seen;

static bool
on_node(void *ctx, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	((Seen *) ctx)->nodes++;
	return true;
}

static bool
on_record(void *ctx, const char *key, size_t key_len, size_t coll_len,
		  const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	Seen	   *s = ctx;

	if (s->last[0] && strcmp(s->last, key) >= 0)
		s->in_order = false;
	if (coll_len >= key_len || key[coll_len] != '/')
		s->in_order = false;
	snprintf(s->last, sizeof(s->last), "%s", key);
	s->records++;
	return true;
}

/* All three steps over car; errmsg gets the message. */
static CarImportError
check(const RsBuf *car, const uint8_t pub[32], Seen *seen, char *errmsg, CarImport *out)
{
	CarSource	src;
	CarMemSource mem;
	CarImport	ci = {0};
	CarImportError err;
	CarImportVisitor v = {on_node, on_record, seen};

	memset(seen, 0, sizeof(*seen));
	seen->in_order = true;
	car_mem_source(&src, &mem, car->data, car->len);
	err = car_import_open(&ci, &src);
	if (err == CI_OK)
		err = car_import_verify(&ci, pub);
	if (err == CI_OK)
		err = car_import_walk(&ci, &v);
	snprintf(errmsg, 700, "%s", err == CI_OK ? "" : ci.errmsg);
	if (out)
		*out = ci;
	else
		car_import_free(&ci);
	return err;
}

/* The repo's CAR with one block's bytes replaced (CID kept or recomputed). */
static void
car_replacing(RsBuf *car, FxRepo *r, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	fx_car_begin(car, r->commit_cid);
	car_write_block(car, r->commit_cid, r->commit.data, r->commit.len);
	for (size_t i = 0; i < r->nodes.n; i++)
		car_write_block(car, r->nodes.cid[i], r->nodes.data[i], r->nodes.len[i]);
	for (size_t i = 0; i < r->records.n; i++)
		if (memcmp(r->records.cid[i], cid, CID_LEN) == 0)
			car_write_block(car, cid, data, len);
		else
			car_write_block(car, r->records.cid[i], r->records.data[i], r->records.len[i]);
}

/*
 * A repo whose tree maps key to a record with the given bytes (added to
 * the store even if invalid), re-signed: every hash is right, only the
 * record is wrong.
 */
static void
repo_with_record(FxRepo *r, const char *key, const uint8_t *data, size_t len, int codec)
{
	MstStore	store = {fx_get, NULL};
	MstTree    *t;
	uint8_t		cid[CID_LEN];

	if (codec == CID_CODEC_RAW)
		cid_for_raw(data, len, cid);
	else
		cid_for_dagcbor(data, len, cid);
	fx_put(&r->records, cid, data, len);
	store.ctx = &r->nodes;
	mst_open(&store, r->root, &t, NULL, 0);
	mst_put(t, key, strlen(key), cid, NULL, NULL);
	mst_write(t, fx_put, &r->nodes, r->root, NULL);
	mst_free(t);
	fx_sign(r, "did:plc:fixture", "3kabcdefghik2", r->root);
}

static void
test_good(void)
{
	FxRepo		r;
	RsBuf		car;
	Seen		seen;
	char		msg[700];
	CarImport	ci = {0};

	fx_repo(&r, 1500, 50);
	fx_car_repo(&car, &r);
	ok(check(&car, r.pub, &seen, msg, &ci) == CI_OK, "a repo CAR in store order passes: %s", msg);
	ok(seen.nodes == r.nodes.n && seen.records == r.n && seen.in_order,
	   "every node and every key, in key order (%zu nodes, %zu records)", seen.nodes, seen.records);
	ok(strcmp(ci.did, "did:plc:fixture") == 0 && strcmp(ci.rev, "3kabcdefghij2") == 0,
	   "the commit's did and rev");
	ok(memcmp(ci.commit.data, r.root, CID_LEN) == 0 && ci.unreached == 0, "root and nothing left over");
	car_import_free(&ci);

	/* blocks repeated and a stray block: fine, the stray one is counted */
	car_write_block(&car, r.records.cid[0], r.records.data[0], r.records.len[0]);
	{
		uint8_t		cid[CID_LEN];

		cid_for_dagcbor((const uint8_t *) "\xa1\x61\x61\x01", 4, cid);
		car_write_block(&car, cid, (const uint8_t *) "\xa1\x61\x61\x01", 4);
	}
	ok(check(&car, r.pub, &seen, msg, &ci) == CI_OK && ci.unreached == 1,
	   "a repeated block is fine, a stray one is ignored and counted");
	car_import_free(&ci);
	rs_buf_free(&car);
	fx_repo_free(&r);

	fx_repo(&r, 0, 0);
	fx_car_repo(&car, &r);
	ok(check(&car, r.pub, &seen, msg, NULL) == CI_OK && seen.nodes == 1 && seen.records == 0,
	   "an empty repo: %s", msg);
	rs_buf_free(&car);
	fx_repo_free(&r);
}

static void
test_framing(void)
{
	FxRepo		r;
	RsBuf		car,
				bad;
	Seen		seen;
	char		msg[700];
	CarImport	ci = {0};
	CarSource	src;
	CarMemSource mem;

	fx_repo(&r, 200, 0);
	fx_car_repo(&car, &r);

	ok(check(&(RsBuf) {car.data, 0, 0}, r.pub, &seen, msg, NULL) == CI_CAR, "empty input: %s", msg);
	ok(check(&(RsBuf) {car.data, car.len - 3, 0}, r.pub, &seen, msg, NULL) == CI_CAR &&
	   strstr(msg, "at byte") != NULL, "truncated: %s", msg);

	/* flip one byte of the last block's data: its hash no longer matches */
	rs_buf_init(&bad, car.len);
	rs_buf_append(&bad, car.data, car.len);
	bad.data[bad.len - 2] ^= 0x01;
	car_mem_source(&src, &mem, bad.data, bad.len);
	ok(car_import_open(&ci, &src) == CI_CAR && ci.car_err == CAR_ERR_HASH && strstr(ci.errmsg, "bafyrei"),
	   "a block whose bytes do not hash to its CID: %s", ci.errmsg);
	car_import_free(&ci);
	rs_buf_free(&bad);

	/* a varint with a redundant group */
	rs_buf_init(&bad, car.len + 1);
	rs_buf_append_byte(&bad, car.data[0] | 0x80);
	rs_buf_append_byte(&bad, 0x00);
	rs_buf_append(&bad, car.data + 1, car.len - 1);
	ok(check(&bad, r.pub, &seen, msg, NULL) == CI_CAR && strstr(msg, "shortest"), "non-minimal varint: %s", msg);
	rs_buf_free(&bad);

	/* two roots */
	{
		RsBuf		h;

		rs_buf_init(&bad, car.len + 64);
		rs_buf_init(&h, 128);
		dcbor_put_map(&h, 2);
		dcbor_put_cstr(&h, "roots");
		dcbor_put_array(&h, 2);
		dcbor_put_link(&h, r.commit_cid, CID_LEN);
		dcbor_put_link(&h, r.root, CID_LEN);
		dcbor_put_cstr(&h, "version");
		dcbor_put_uint(&h, 1);
		car_put_varint(&bad, h.len);
		rs_buf_append(&bad, h.data, h.len);
		car_write_block(&bad, r.commit_cid, r.commit.data, r.commit.len);
		fx_car_store(&bad, &r.nodes);
		fx_car_store(&bad, &r.records);
		ok(check(&bad, r.pub, &seen, msg, NULL) == CI_ROOTS, "two roots: %s", msg);
		rs_buf_free(&bad);
		rs_buf_free(&h);
	}

	/* a block over the size limit */
	{
		size_t		big = CAR_IMPORT_MAX_BLOCK + 10;
		uint8_t    *blob = calloc(big, 1);
		uint8_t		cid[CID_LEN];

		blob[0] = 0x5a;			/* a byte string of 4-byte length */
		blob[1] = (uint8_t) ((big - 5) >> 24);
		blob[2] = (uint8_t) ((big - 5) >> 16);
		blob[3] = (uint8_t) ((big - 5) >> 8);
		blob[4] = (uint8_t) (big - 5);
		cid_for_dagcbor(blob, big, cid);
		rs_buf_init(&bad, car.len + big + 64);
		rs_buf_append(&bad, car.data, car.len);
		car_write_block(&bad, cid, blob, big);
		ok(check(&bad, r.pub, &seen, msg, NULL) == CI_BLOCK_TOO_BIG, "a block over 2 MiB: %s", msg);
		rs_buf_free(&bad);
		free(blob);
	}
	rs_buf_free(&car);
	fx_repo_free(&r);
}

static void
test_commit(void)
{
	FxRepo		r;
	RsBuf		car;
	Seen		seen;
	char		msg[700];
	uint8_t		other[32];

	fx_repo(&r, 100, 0);

	/* root block missing */
	fx_car_begin(&car, r.commit_cid);
	fx_car_store(&car, &r.nodes);
	fx_car_store(&car, &r.records);
	ok(check(&car, r.pub, &seen, msg, NULL) == CI_MISSING_BLOCK && strstr(msg, "commit"),
	   "no commit block: %s", msg);
	rs_buf_free(&car);

	/* root is an MST node, not a commit */
	fx_car_begin(&car, r.root);
	fx_car_store(&car, &r.nodes);
	ok(check(&car, r.pub, &seen, msg, NULL) == CI_COMMIT, "root is not a commit: %s", msg);
	rs_buf_free(&car);

	/* a v2 commit */
	{
		RsBuf		c;
		uint8_t		cid[CID_LEN];

		rs_buf_init(&c, 256);
		dcbor_put_map(&c, 6);
		dcbor_put_cstr(&c, "did");
		dcbor_put_cstr(&c, "did:plc:fixture");
		dcbor_put_cstr(&c, "rev");
		dcbor_put_cstr(&c, "3kabcdefghij2");
		dcbor_put_cstr(&c, "sig");
		dcbor_put_bytes(&c, (const uint8_t *) "0123456789012345678901234567890123456789012345678901234567890123", 64);
		dcbor_put_cstr(&c, "data");
		dcbor_put_link(&c, r.root, CID_LEN);
		dcbor_put_cstr(&c, "prev");
		dcbor_put_null(&c);
		dcbor_put_cstr(&c, "version");
		dcbor_put_uint(&c, 2);
		cid_for_dagcbor(c.data, c.len, cid);
		fx_car_begin(&car, cid);
		car_write_block(&car, cid, c.data, c.len);
		fx_car_store(&car, &r.nodes);
		fx_car_store(&car, &r.records);
		ok(check(&car, r.pub, &seen, msg, NULL) == CI_COMMIT && strstr(msg, "version"), "version 2: %s", msg);
		rs_buf_free(&car);
		rs_buf_free(&c);
	}

	/* signed by another key */
	fx_car_repo(&car, &r);
	memcpy(other, r.pub, 32);
	other[0] ^= 1;
	{
		uint8_t		seed[32];

		memset(seed, 9, 32);
		rs_ed25519_pk_from_seed(seed, other);
	}
	ok(check(&car, other, &seen, msg, NULL) == CI_SIGNATURE && strstr(msg, "did:plc:fixture"),
	   "another key's signature: %s", msg);
	rs_buf_free(&car);

	/* a commit whose data is not the tree in the CAR */
	{
		uint8_t		saved[CID_LEN];

		memcpy(saved, r.root, CID_LEN);
		r.root[20] ^= 1;
		fx_sign(&r, "did:plc:fixture", "3kabcdefghij2", r.root);
		fx_car_repo(&car, &r);
		ok(check(&car, r.pub, &seen, msg, NULL) == CI_MISSING_BLOCK, "commit data is not the CAR's tree: %s", msg);
		rs_buf_free(&car);
		memcpy(r.root, saved, CID_LEN);
		fx_sign(&r, "did:plc:fixture", "3kabcdefghij2", r.root);
	}
	fx_repo_free(&r);
}

static void
test_tree_and_records(void)
{
	FxRepo		r;
	RsBuf		car;
	Seen		seen;
	char		msg[700];

	/* a missing record block */
	fx_repo(&r, 100, 0);
	fx_car_begin(&car, r.commit_cid);
	car_write_block(&car, r.commit_cid, r.commit.data, r.commit.len);
	fx_car_store(&car, &r.nodes);
	for (size_t i = 1; i < r.records.n; i++)
		car_write_block(&car, r.records.cid[i], r.records.data[i], r.records.len[i]);
	ok(check(&car, r.pub, &seen, msg, NULL) == CI_MISSING_BLOCK && strstr(msg, "record \""),
	   "a missing record: %s", msg);
	rs_buf_free(&car);

	/* a missing node */
	fx_car_begin(&car, r.commit_cid);
	car_write_block(&car, r.commit_cid, r.commit.data, r.commit.len);
	for (size_t i = 0; i < r.nodes.n; i++)
		if (memcmp(r.nodes.cid[i], r.root, CID_LEN) != 0)
			car_write_block(&car, r.nodes.cid[i], r.nodes.data[i], r.nodes.len[i]);
	fx_car_store(&car, &r.records);
	ok(check(&car, r.pub, &seen, msg, NULL) == CI_MISSING_BLOCK && strstr(msg, "MST node"),
	   "a missing MST node: %s", msg);
	rs_buf_free(&car);
	fx_repo_free(&r);

	/* a non-canonical node, correctly hashed and signed: root lone left */
	fx_repo(&r, 100, 0);
	{
		MstNodeData nd = {0};
		RsBuf		b;
		uint8_t		root[CID_LEN];

		nd.has_left = true;
		memcpy(nd.left, r.root, CID_LEN);
		rs_buf_init(&b, 64);
		mst_node_encode(&nd, &b);
		fx_add(&r.nodes, b.data, b.len, root);
		rs_buf_free(&b);
		fx_sign(&r, "did:plc:fixture", "3kabcdefghij2", root);
		fx_car_repo(&car, &r);
		ok(check(&car, r.pub, &seen, msg, NULL) == CI_MST && strstr(msg, "only a left subtree"),
		   "a non-canonical tree: %s", msg);
		rs_buf_free(&car);
	}
	fx_repo_free(&r);

	/* records that are not acceptable */
	{
		struct
		{
			const char *name;
			const char *key;
			const uint8_t *data;
			size_t		len;
			int			codec;
			CarImportError want;
			const char *msg_has;
		}			cases[] = {
			{"a record with a float", "app.bsky.feed.post/float", (const uint8_t *) "\xa1\x61\x61\xf9\x3c\x00", 6,
			CID_CODEC_DAG_CBOR, CI_RECORD_CBOR, "float"},
			{"a record that is an array", "app.bsky.feed.post/arr", (const uint8_t *) "\x81\x01", 2,
			CID_CODEC_DAG_CBOR, CI_RECORD_NOT_MAP, "not a map"},
			{"a key that is not collection/rkey", "nsid/rkey", (const uint8_t *) "\xa0", 1,
			CID_CODEC_DAG_CBOR, CI_RECORD_KEY, "nsid/rkey"},
			{"a raw CID for a record", "app.bsky.feed.post/raw", (const uint8_t *) "hello", 5,
			CID_CODEC_RAW, CI_RECORD_CID, "dag-cbor"},
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		{
			fx_repo(&r, 50, 0);
			repo_with_record(&r, cases[i].key, cases[i].data, cases[i].len, cases[i].codec);
			fx_car_repo(&car, &r);
			ok(check(&car, r.pub, &seen, msg, NULL) == cases[i].want && strstr(msg, cases[i].msg_has),
			   "%s: %s", cases[i].name, msg);
			rs_buf_free(&car);
			fx_repo_free(&r);
		}
	}

	/* a record one byte over the limit */
	{
		size_t		len = CAR_IMPORT_MAX_RECORD + 1;
		uint8_t    *rec = calloc(len, 1);
		size_t		payload = len - 1 - 2 - 5;

		/* {"b": bytes(payload)} */
		rec[0] = 0xa1;
		rec[1] = 0x61;
		rec[2] = 'b';
		rec[3] = 0x5a;
		rec[4] = (uint8_t) (payload >> 24);
		rec[5] = (uint8_t) (payload >> 16);
		rec[6] = (uint8_t) (payload >> 8);
		rec[7] = (uint8_t) payload;
		fx_repo(&r, 50, 0);
		repo_with_record(&r, "app.bsky.feed.post/big", rec, len, CID_CODEC_DAG_CBOR);
		fx_car_repo(&car, &r);
		ok(check(&car, r.pub, &seen, msg, NULL) == CI_RECORD_TOO_BIG && strstr(msg, "app.bsky.feed.post/big"),
		   "a record over 1,000,000 bytes: %s", msg);
		rs_buf_free(&car);
		fx_repo_free(&r);
		free(rec);
	}

	/* tampering with a record's bytes, CID kept: caught by the hash */
	fx_repo(&r, 50, 0);
	{
		uint8_t		copy[256];

		memcpy(copy, r.records.data[3], r.records.len[3]);
		copy[r.records.len[3] - 1] ^= 1;
		car_replacing(&car, &r, r.records.cid[3], copy, r.records.len[3]);
		ok(check(&car, r.pub, &seen, msg, NULL) == CI_CAR && strstr(msg, "hash"), "a changed record: %s", msg);
		rs_buf_free(&car);
	}
	fx_repo_free(&r);
}

int
main(void)
{
	if (sodium_init() < 0)
	{
		printf("Bail out! sodium_init failed\n");
		return 1;
	}
	test_good();
	test_framing();
	test_commit();
	test_tree_and_records();
	return done_testing();
}
