/*
 * car_fixture.h - repos built in memory for the CAR export/import tests: a
 * block store, records, an MST over them, a signed commit, and CAR
 * assembly from any list of blocks (so tests can tamper with anything).
 */
#ifndef RS_CAR_FIXTURE_H
#define RS_CAR_FIXTURE_H

#include <sodium.h>

#include "buf.h"
#include "car.h"
#include "cbor.h"
#include "cid.h"
#include "commit.h"
#include "keys.h"
#include "mst.h"

/* --------------------------------------------------------- block store */

typedef struct FxStore
{
	uint8_t		(*cid)[CID_LEN];
	uint8_t   **data;
	size_t	   *len;
	size_t		n;
	size_t		cap;
	size_t		gets;
} FxStore;

static inline void
fx_store_init(FxStore *s)
{
	memset(s, 0, sizeof(*s));
}

static inline long
fx_find(const FxStore *s, const uint8_t cid[CID_LEN])
{
	for (size_t i = 0; i < s->n; i++)
		if (memcmp(s->cid[i], cid, CID_LEN) == 0)
			return (long) i;
	return -1;
}

static inline void
fx_put(void *ctx, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	FxStore    *s = ctx;

	if (fx_find(s, cid) >= 0)
		return;
	if (s->n == s->cap)
	{
		s->cap = s->cap ? s->cap * 2 : 64;
		s->cid = realloc(s->cid, s->cap * CID_LEN);
		s->data = realloc(s->data, s->cap * sizeof(uint8_t *));
		s->len = realloc(s->len, s->cap * sizeof(size_t));
	}
	memcpy(s->cid[s->n], cid, CID_LEN);
	s->data[s->n] = malloc(len ? len : 1);
	memcpy(s->data[s->n], data, len);
	s->len[s->n] = len;
	s->n++;
}

static inline MstError
fx_get(void *ctx, const uint8_t cid[CID_LEN], const uint8_t **data, size_t *len)
{
	FxStore    *s = ctx;
	long		i = fx_find(s, cid);

	s->gets++;
	if (i < 0)
		return MST_ERR_MISSING_NODE;
	*data = s->data[i];
	*len = s->len[i];
	return MST_OK;
}

static inline void
fx_store_free(FxStore *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->data[i]);
	free(s->cid);
	free(s->data);
	free(s->len);
	memset(s, 0, sizeof(*s));
}

/* Add DAG-CBOR bytes under their CID. */
static inline void
fx_add(FxStore *s, const uint8_t *data, size_t len, uint8_t cid[CID_LEN])
{
	cid_for_dagcbor(data, len, cid);
	fx_put(s, cid, data, len);
}

/* ------------------------------------------------------------------ repo */

typedef struct FxRepo
{
	FxStore		nodes;
	FxStore		records;
	char	  **keys;			/* sorted */
	uint8_t		(*vals)[CID_LEN];
	size_t		n;
	uint8_t		root[CID_LEN];
	uint8_t		commit_cid[CID_LEN];
	RsBuf		commit;
	uint8_t		seed[ED25519_SEED_LEN];
	uint8_t		pub[ED25519_PUBLIC_KEY_LEN];
} FxRepo;

static int
fx_key_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* A record {"$type": collection, "text": text} as DAG-CBOR. */
static inline void
fx_record(RsBuf *b, const char *collection, const char *text)
{
	dcbor_put_map(b, 2);
	dcbor_put_cstr(b, "text");
	dcbor_put_cstr(b, text);
	dcbor_put_cstr(b, "$type");
	dcbor_put_cstr(b, collection);
}

/* Sign a commit over root for did, rev, with the repo's seed. */
static inline void
fx_sign(FxRepo *r, const char *did, const char *rev, const uint8_t root[CID_LEN])
{
	RepoCommit	c = {0};
	RsBuf		u;

	c.did = did;
	c.did_len = strlen(did);
	c.rev = rev;
	c.rev_len = strlen(rev);
	memcpy(c.data, root, CID_LEN);
	rs_buf_init(&u, 256);
	commit_encode_unsigned(&c, &u);
	rs_ed25519_sign(r->seed, u.data, u.len, c.sig, NULL);
	c.has_sig = true;
	rs_buf_free(&u);
	r->commit.len = 0;
	commit_encode_signed(&c, &r->commit);
	cid_for_dagcbor(r->commit.data, r->commit.len, r->commit_cid);
}

/*
 * A repo of n records with keys "<collection>/k<i>" over a few
 * collections; every dup-th record has the same content as record 0
 * (dup 0: all distinct).  Signed by a fixed seed.
 */
static inline void
fx_repo(FxRepo *r, size_t n, size_t dup)
{
	static const char *colls[] = {"app.bsky.feed.like", "app.bsky.feed.post", "app.bsky.feed.post.x",
	"com.example.thing"};
	MstKV	   *kv = calloc(n + 1, sizeof(MstKV));
	char		err[256];

	memset(r, 0, sizeof(*r));
	fx_store_init(&r->nodes);
	fx_store_init(&r->records);
	r->keys = calloc(n + 1, sizeof(char *));
	r->vals = calloc(n + 1, CID_LEN);
	r->n = n;
	for (size_t i = 0; i < n; i++)
	{
		char		key[96];
		const char *c = colls[i % 4];

		snprintf(key, sizeof(key), "%s/k%06zu", c, i * 7919 % 1000003);
		r->keys[i] = strdup(key);
	}
	qsort(r->keys, n, sizeof(char *), fx_key_cmp);
	for (size_t i = 0; i < n; i++)
	{
		RsBuf		b;
		char		text[64];

		rs_buf_init(&b, 64);
		snprintf(text, sizeof(text), "record %zu", (dup && i % dup == 0) ? (size_t) 0 : i);
		fx_record(&b, "app.bsky.feed.post", text);
		fx_add(&r->records, b.data, b.len, r->vals[i]);
		rs_buf_free(&b);
		kv[i].key = r->keys[i];
		kv[i].key_len = strlen(r->keys[i]);
		memcpy(kv[i].value, r->vals[i], CID_LEN);
	}
	if (mst_build_root(kv, n, fx_put, &r->nodes, r->root, err, sizeof(err)) != MST_OK)
	{
		printf("Bail out! mst_build_root: %s\n", err);
		exit(1);
	}
	free(kv);
	for (int i = 0; i < ED25519_SEED_LEN; i++)
		r->seed[i] = (uint8_t) (i * 7 + 1);
	rs_ed25519_pk_from_seed(r->seed, r->pub);
	rs_buf_init(&r->commit, 256);
	fx_sign(r, "did:plc:fixture", "3kabcdefghij2", r->root);
}

static inline void
fx_repo_free(FxRepo *r)
{
	fx_store_free(&r->nodes);
	fx_store_free(&r->records);
	for (size_t i = 0; i < r->n; i++)
		free(r->keys[i]);
	free(r->keys);
	free(r->vals);
	rs_buf_free(&r->commit);
}

/* ------------------------------------------------------------------- CAR */

/* A CAR rooted at root: the given blocks in order. */
static inline void
fx_car_begin(RsBuf *car, const uint8_t root[CID_LEN])
{
	rs_buf_init(car, 4096);
	car_write_header(car, root);
}

/* Every block of a store. */
static inline void
fx_car_store(RsBuf *car, const FxStore *s)
{
	for (size_t i = 0; i < s->n; i++)
		car_write_block(car, s->cid[i], s->data[i], s->len[i]);
}

/* The repo as a CAR in store order (not the stream order). */
static inline void
fx_car_repo(RsBuf *car, const FxRepo *r)
{
	fx_car_begin(car, r->commit_cid);
	car_write_block(car, r->commit_cid, r->commit.data, r->commit.len);
	fx_car_store(car, &r->nodes);
	fx_car_store(car, &r->records);
}

#endif
