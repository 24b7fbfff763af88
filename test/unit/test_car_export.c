/*
 * test_car_export.c - the streaming MST walk (mst_iter), key paths for
 * record proofs (mst_key_path) and the chunked CAR export: stream order,
 * each block once, chunk bounds, diffs by node filter, and the walk's
 * checks against trees that are not canonical.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "car_fixture.h"
#include "car_export.h"

/* ------------------------------------------------------------- helpers */

typedef struct ExportCtx
{
	FxRepo	   *repo;
	FxStore		emitted;		/* record CIDs written: a record block goes once */
	FxStore	   *include;		/* diff: only these nodes; NULL: all */
	size_t		record_calls;
	char		last_key[256];
	bool		keys_in_order;
} ExportCtx;

static MstError
ex_record(void *ctx, const char *key, size_t key_len, const uint8_t cid[CID_LEN],
		  const uint8_t **data, size_t *len, bool *skip)
{
	ExportCtx  *e = ctx;
	long		i = fx_find(&e->repo->records, cid);

	e->record_calls++;
	if (e->last_key[0] && strcmp(e->last_key, key) >= 0)
		e->keys_in_order = false;
	snprintf(e->last_key, sizeof(e->last_key), "%.*s", (int) key_len, key);
	if (i < 0)
		return MST_ERR_STORE;
	if (fx_find(&e->emitted, cid) >= 0)
	{
		*skip = true;
		return MST_OK;
	}
	fx_put(&e->emitted, cid, (const uint8_t *) "", 0);
	*data = e->repo->records.data[i];
	*len = e->repo->records.len[i];
	return MST_OK;
}

static bool
ex_filter(void *ctx, const uint8_t cid[CID_LEN])
{
	ExportCtx  *e = ctx;

	return fx_find(e->include, cid) >= 0;
}

/* Export r in chunks of max bytes; chunk sizes are checked. */
static MstError
export_all(FxRepo *r, ExportCtx *e, size_t max, RsBuf *car, size_t *chunks, bool *sizes_ok,
		   CarExportStats *stats, char *errmsg)
{
	CarExportSource src;
	CarExport  *ex;
	bool		done = false;
	MstError	err = MST_OK;

	FxStore    *include = e->include;

	memset(e, 0, sizeof(*e));
	e->include = include;
	e->repo = r;
	e->keys_in_order = true;
	fx_store_init(&e->emitted);
	src.nodes.get = fx_get;
	src.nodes.ctx = &r->nodes;
	src.record = ex_record;
	src.include_node = e->include ? ex_filter : NULL;
	src.ctx = e;
	ex = car_export_begin(&src, r->commit_cid, r->commit.data, r->commit.len, r->root);
	rs_buf_init(car, 4096);
	*chunks = 0;
	*sizes_ok = true;
	while (!done)
	{
		size_t		before = car->len;

		err = car_export_next(ex, car, max, &done);
		if (err != MST_OK)
		{
			snprintf(errmsg, 512, "%s", car_export_errmsg(ex));
			break;
		}
		if (car->len - before != max && !done)
			*sizes_ok = false;
		if (car->len - before > max)
			*sizes_ok = false;
		(*chunks)++;
	}
	car_export_stats(ex, stats);
	car_export_free(ex);
	fx_store_free(&e->emitted);
	return err;
}

/*
 * Read a CAR strictly and check the stream order: the first block is the
 * root, and every later block is linked from a block before it.  Counts
 * blocks and repeats.
 */
static bool
stream_order_ok(const RsBuf *car, const uint8_t root[CID_LEN], size_t *n_blocks, size_t *repeats)
{
	CarReader	r;
	CarBlock	b;
	FxStore		linked,
				seen;
	bool		good = true;

	fx_store_init(&linked);
	fx_store_init(&seen);
	*n_blocks = *repeats = 0;
	if (car_reader_open(&r, car->data, car->len) != CAR_OK)
		return false;
	fx_put(&linked, root, (const uint8_t *) "", 0);
	while (car_reader_next(&r, &b))
	{
		DcborReader cr;
		DcborItem	it;

		(*n_blocks)++;
		if (fx_find(&seen, b.cid) >= 0)
			(*repeats)++;
		fx_put(&seen, b.cid, (const uint8_t *) "", 0);
		if (fx_find(&linked, b.cid) < 0)
			good = false;
		/* every link in the block's bytes may come later */
		dcbor_reader_init(&cr, b.data, b.len);
		while (cr.pos < cr.len && dcbor_read(&cr, &it) == DCBOR_OK)
			if (it.type == DCBOR_LINK)
				fx_put(&linked, it.ptr, (const uint8_t *) "", 0);
	}
	if (r.err != CAR_OK)
		good = false;
	fx_store_free(&linked);
	fx_store_free(&seen);
	return good;
}

/* --------------------------------------------------------------- tests */

static void
test_full_export(void)
{
	FxRepo		r;
	ExportCtx	e = {0};
	RsBuf		car;
	size_t		chunks,
				n_blocks,
				repeats;
	bool		sizes_ok;
	CarExportStats st;
	char		err[512] = "";
	size_t		max = 1000;

	fx_repo(&r, 2000, 97);
	ok(export_all(&r, &e, max, &car, &chunks, &sizes_ok, &st, err) == MST_OK, "export of 2000 records: %s", err);
	ok(sizes_ok, "every chunk but the last is exactly %zu bytes", max);
	ok(chunks == (car.len + max - 1) / max, "%zu chunks for %zu bytes", chunks, car.len);
	ok(car_validate(car.data, car.len, NULL) == CAR_OK, "the chunks concatenate to a valid CAR");
	ok(stream_order_ok(&car, r.commit_cid, &n_blocks, &repeats),
	   "commit first, every block after the block that links to it");
	ok(repeats == 0, "no block twice (%zu repeats)", repeats);
	ok(st.nodes == r.nodes.n, "every MST node once (%zu of %zu)", st.nodes, r.nodes.n);
	ok(st.records == r.records.n, "every distinct record once (%zu of %zu)", st.records, r.records.n);
	ok(st.skipped_records == r.n - r.records.n, "records sharing a CID written once (%zu skipped)",
	   st.skipped_records);
	ok(n_blocks == 1 + r.nodes.n + r.records.n, "blocks: commit + nodes + records");
	ok(e.keys_in_order && e.record_calls == r.n, "records asked for in key order, each key once");
	ok(st.bytes == car.len, "stats count the bytes");

	/* one chunk bigger than the CAR */
	rs_buf_free(&car);
	ok(export_all(&r, &e, 64 * 1024 * 1024, &car, &chunks, &sizes_ok, &st, err) == MST_OK && chunks == 1,
	   "a chunk size over the CAR's size gives one chunk");
	rs_buf_free(&car);
	fx_repo_free(&r);
}

static void
test_diff_export(void)
{
	FxRepo		r;
	ExportCtx	e = {0};
	RsBuf		car;
	size_t		chunks,
				n_blocks,
				repeats;
	bool		sizes_ok;
	CarExportStats st;
	char		err[512] = "";
	FxStore		include;
	MstTree    *t;
	MstStore	store = {fx_get, NULL};
	uint8_t		cid[CID_LEN],
				root2[CID_LEN];
	RsBuf		b;
	FxStore		nodes2;

	fx_repo(&r, 500, 0);
	/* change one record: the new nodes are the path to it */
	store.ctx = &r.nodes;
	mst_open(&store, r.root, &t, NULL, 0);
	rs_buf_init(&b, 64);
	fx_record(&b, "app.bsky.feed.post", "changed");
	fx_add(&r.records, b.data, b.len, cid);
	rs_buf_free(&b);
	mst_put(t, r.keys[250], strlen(r.keys[250]), cid, NULL, NULL);
	fx_store_init(&nodes2);
	mst_write(t, fx_put, &nodes2, root2, NULL);
	mst_free(t);
	for (size_t i = 0; i < nodes2.n; i++)
		fx_put(&r.nodes, nodes2.cid[i], nodes2.data[i], nodes2.len[i]);
	memcpy(r.root, root2, CID_LEN);
	fx_sign(&r, "did:plc:fixture", "3kabcdefghik2", r.root);

	e.include = &nodes2;
	ok(export_all(&r, &e, 4096, &car, &chunks, &sizes_ok, &st, err) == MST_OK, "diff export: %s", err);
	ok(st.nodes == nodes2.n && nodes2.n > 1, "a diff holds exactly the new nodes (%zu)", st.nodes);
	ok(stream_order_ok(&car, r.commit_cid, &n_blocks, &repeats) && repeats == 0,
	   "a diff is in stream order too");
	{
		CarReader	cr;
		CarBlock	blk;
		bool		has_new = false;

		car_reader_open(&cr, car.data, car.len);
		while (car_reader_next(&cr, &blk))
			if (memcmp(blk.cid, cid, CID_LEN) == 0)
				has_new = true;
		ok(has_new, "the changed record is in the diff");
	}
	ok(st.records + st.skipped_records < r.n / 4, "records of old nodes are not visited (%zu)",
	   st.records + st.skipped_records);
	rs_buf_free(&car);

	/* nothing new: the commit alone */
	fx_store_init(&include);
	e.include = &include;
	ok(export_all(&r, &e, 4096, &car, &chunks, &sizes_ok, &st, err) == MST_OK &&
	   st.nodes == 0 && st.records == 0, "a diff since the head is the commit alone");
	ok(stream_order_ok(&car, r.commit_cid, &n_blocks, &repeats) && n_blocks == 1, "one block");
	rs_buf_free(&car);
	fx_store_free(&include);
	fx_store_free(&nodes2);
	fx_repo_free(&r);
}

static void
test_empty_tree(void)
{
	FxRepo		r;
	ExportCtx	e = {0};
	RsBuf		car;
	size_t		chunks,
				n_blocks,
				repeats;
	bool		sizes_ok;
	CarExportStats st;
	char		err[512] = "";

	fx_repo(&r, 0, 0);
	ok(export_all(&r, &e, 100, &car, &chunks, &sizes_ok, &st, err) == MST_OK, "empty repo exports: %s", err);
	ok(st.nodes == 1 && st.records == 0, "the empty repo is its commit and one empty node");
	ok(stream_order_ok(&car, r.commit_cid, &n_blocks, &repeats) && n_blocks == 2, "two blocks in order");
	rs_buf_free(&car);
	fx_repo_free(&r);
}

static void
test_key_path(void)
{
	FxRepo		r;
	MstStore	store = {fx_get, NULL};
	MstTree    *t,
			   *pt;
	FxStore		path;
	uint8_t		v[CID_LEN],
				v2[CID_LEN];
	bool		found,
				found2;
	int			bad = 0;
	const char *absent[] = {"app.bsky.feed.like/a", "app.bsky.feed.post/k000000x", "zzz.zzz.zzz/z",
	"aaa.aaa.aaa/a"};

	fx_repo(&r, 3000, 0);
	store.ctx = &r.nodes;
	mst_open(&store, r.root, &t, NULL, 0);
	for (size_t i = 0; i < r.n; i += 37)
	{
		fx_store_init(&path);
		if (mst_key_path(t, r.keys[i], strlen(r.keys[i]), fx_put, &path, v, &found) != MST_OK ||
			!found || memcmp(v, r.vals[i], CID_LEN) != 0)
			bad++;
		/* a reader holding only the path finds the key */
		store.ctx = &path;
		if (mst_open(&store, r.root, &pt, NULL, 0) != MST_OK ||
			mst_get(pt, r.keys[i], strlen(r.keys[i]), v2, &found2) != MST_OK ||
			!found2 || memcmp(v2, r.vals[i], CID_LEN) != 0)
			bad++;
		mst_free(pt);
		store.ctx = &r.nodes;
		fx_store_free(&path);
	}
	ok(bad == 0, "present keys: the path proves the value (%d failures)", bad);
	bad = 0;
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
	{
		fx_store_init(&path);
		if (mst_key_path(t, absent[i], strlen(absent[i]), fx_put, &path, v, &found) != MST_OK || found ||
			path.n == 0)
			bad++;
		store.ctx = &path;
		if (mst_open(&store, r.root, &pt, NULL, 0) != MST_OK ||
			mst_get(pt, absent[i], strlen(absent[i]), v2, &found2) != MST_OK || found2)
			bad++;
		mst_free(pt);
		store.ctx = &r.nodes;
		fx_store_free(&path);
	}
	ok(bad == 0, "absent keys: the path proves absence (%d failures)", bad);
	ok(mst_key_path(t, "no slash", 8, NULL, NULL, v, &found) == MST_ERR_KEY_SYNTAX, "invalid key refused");
	mst_free(t);
	fx_repo_free(&r);
}

/* ------------------------------------------------- non-canonical trees */

/* A node of the given keys (with values v) and links, stored in s. */
static void
node_of(FxStore *s, const char **keys, size_t n, const uint8_t *left, const uint8_t (*rights)[CID_LEN],
		uint8_t cid[CID_LEN])
{
	MstNodeData nd = {0};
	RsBuf		b;
	uint8_t		v[CID_LEN];

	cid_for_dagcbor((const uint8_t *) "\xa0", 1, v);
	nd.n = n;
	nd.entries = calloc(n + 1, sizeof(MstNodeEntry));
	for (size_t i = 0; i < n; i++)
	{
		nd.entries[i].key = (char *) keys[i];
		nd.entries[i].key_len = strlen(keys[i]);
		memcpy(nd.entries[i].value, v, CID_LEN);
		if (rights && rights[i][0])
		{
			nd.entries[i].has_right = true;
			memcpy(nd.entries[i].right, rights[i], CID_LEN);
		}
	}
	if (left)
	{
		nd.has_left = true;
		memcpy(nd.left, left, CID_LEN);
	}
	rs_buf_init(&b, 256);
	mst_node_encode(&nd, &b);
	fx_add(s, b.data, b.len, cid);
	rs_buf_free(&b);
	free(nd.entries);
}

static MstError
walk(FxStore *s, const uint8_t root[CID_LEN], char *msg, size_t *leaves)
{
	MstStore	store = {fx_get, s};
	MstIter    *it = mst_iter_open(&store, root);
	MstIterItem item;
	bool		done = false;
	MstError	err = MST_OK;

	*leaves = 0;
	while (!done && (err = mst_iter_next(it, &item, &done)) == MST_OK)
		if (!done && item.kind == MST_ITER_LEAF)
			(*leaves)++;
	snprintf(msg, 512, "%s", mst_iter_errmsg(it));
	mst_iter_free(it);
	return err;
}

/* Keys by depth: found by search, so the test holds for any hash. */
static const char *
key_at_depth(int depth, int nth, char *buf)
{
	int			seen = 0;

	for (int i = 0;; i++)
	{
		snprintf(buf, 64, "app.bsky.feed.post/d%d", i);
		if (mst_key_depth((const uint8_t *) buf, strlen(buf)) == depth && seen++ == nth)
			return buf;
	}
}

static void
test_noncanonical(void)
{
	FxStore		s;
	uint8_t		a[CID_LEN],
				b[CID_LEN],
				root[CID_LEN],
				empty[CID_LEN];
	char		msg[512];
	size_t		leaves;
	char		k0a[64],
				k0b[64],
				k1a[64],
				k1b[64];
	const char *keys[2];
	uint8_t		rights[2][CID_LEN];

	key_at_depth(0, 0, k0a);
	key_at_depth(0, 1, k0b);
	key_at_depth(1, 0, k1a);
	key_at_depth(1, 1, k1b);
	if (strcmp(k0a, k0b) > 0)
	{
		char		t[64];

		strcpy(t, k0a), strcpy(k0a, k0b), strcpy(k0b, t);
	}

	/* canonical: layer-1 root with a layer-0 child */
	fx_store_init(&s);
	keys[0] = k0a;
	node_of(&s, keys, 1, NULL, NULL, a);
	keys[0] = k1a;
	memset(rights, 0, sizeof(rights));
	if (strcmp(k0a, k1a) < 0)
		node_of(&s, keys, 1, a, NULL, root);
	else
	{
		memcpy(rights[0], a, CID_LEN);
		node_of(&s, keys, 1, NULL, (const uint8_t (*)[CID_LEN]) rights, root);
	}
	ok(walk(&s, root, msg, &leaves) == MST_OK && leaves == 2, "a canonical two-layer tree walks: %s", msg);
	fx_store_free(&s);

	/* a layer-0 key in the root next to a layer-1 key */
	fx_store_init(&s);
	keys[0] = strcmp(k0a, k1a) < 0 ? k0a : k1a;
	keys[1] = strcmp(k0a, k1a) < 0 ? k1a : k0a;
	{
		MstNodeData nd;
		RsBuf		bb;

		/* mst_node_encode writes what it is given; decode must refuse it */
		rs_buf_init(&bb, 256);
		memset(&nd, 0, sizeof(nd));
		nd.n = 2;
		nd.entries = calloc(2, sizeof(MstNodeEntry));
		for (int i = 0; i < 2; i++)
		{
			nd.entries[i].key = (char *) keys[i];
			nd.entries[i].key_len = strlen(keys[i]);
			cid_for_dagcbor((const uint8_t *) "\xa0", 1, nd.entries[i].value);
		}
		mst_node_encode(&nd, &bb);
		fx_add(&s, bb.data, bb.len, root);
		free(nd.entries);
		rs_buf_free(&bb);
	}
	ok(walk(&s, root, msg, &leaves) == MST_ERR_KEY_DEPTH, "keys of two depths in one node: %s", msg);
	fx_store_free(&s);

	/* a layer-0 root with a subtree */
	fx_store_init(&s);
	keys[0] = k0b;
	node_of(&s, keys, 1, NULL, NULL, a);
	keys[0] = k0a;
	memset(rights, 0, sizeof(rights));
	memcpy(rights[0], a, CID_LEN);
	node_of(&s, keys, 1, NULL, (const uint8_t (*)[CID_LEN]) rights, root);
	ok(walk(&s, root, msg, &leaves) == MST_ERR_NONCANONICAL && strstr(msg, "layer 0") != NULL,
	   "a layer-0 node with a subtree: %s", msg);
	fx_store_free(&s);

	/* a root that is a lone left link */
	fx_store_init(&s);
	keys[0] = k0a;
	node_of(&s, keys, 1, NULL, NULL, a);
	node_of(&s, keys, 0, a, NULL, root);
	ok(walk(&s, root, msg, &leaves) == MST_ERR_NONCANONICAL, "a root with only a left link: %s", msg);
	fx_store_free(&s);

	/* an empty inner node */
	fx_store_init(&s);
	node_of(&s, keys, 0, NULL, NULL, empty);
	keys[0] = k1a;
	node_of(&s, keys, 1, empty, NULL, root);
	ok(walk(&s, root, msg, &leaves) == MST_ERR_NONCANONICAL && strstr(msg, "empty") != NULL,
	   "an empty inner node: %s", msg);
	fx_store_free(&s);

	/* a child two layers down (layer 0 under layer 2) */
	{
		char		k2[64];

		key_at_depth(2, 0, k2);
		fx_store_init(&s);
		keys[0] = k0a;
		node_of(&s, keys, 1, NULL, NULL, a);
		keys[0] = k2;
		memset(rights, 0, sizeof(rights));
		if (strcmp(k0a, k2) < 0)
			node_of(&s, keys, 1, a, NULL, root);
		else
		{
			memcpy(rights[0], a, CID_LEN);
			node_of(&s, keys, 1, NULL, (const uint8_t (*)[CID_LEN]) rights, root);
		}
		ok(walk(&s, root, msg, &leaves) == MST_ERR_KEY_DEPTH, "a subtree that skips a layer: %s", msg);
		fx_store_free(&s);
	}

	/* keys out of order across nodes: a left subtree holding a larger key */
	fx_store_init(&s);
	{
		const char *lo = strcmp(k1a, k1b) < 0 ? k1a : k1b;
		const char *hi = strcmp(k1a, k1b) < 0 ? k1b : k1a;
		char		k0[64];
		int			j = 0;

		/* a layer-0 key sorting after hi */
		for (;; j++)
		{
			key_at_depth(0, j, k0);
			if (strcmp(k0, hi) > 0)
				break;
		}
		keys[0] = k0;
		node_of(&s, keys, 1, NULL, NULL, a);
		keys[0] = lo;
		node_of(&s, keys, 1, a, NULL, root);	/* k0 > lo, yet left of it */
		ok(walk(&s, root, msg, &leaves) == MST_ERR_KEY_ORDER, "a key on the wrong side of its parent: %s", msg);
	}
	fx_store_free(&s);

	/* bytes that do not hash to the link, and a missing node */
	fx_store_init(&s);
	keys[0] = k0a;
	node_of(&s, keys, 1, NULL, NULL, a);
	memcpy(b, a, CID_LEN);
	b[10] ^= 1;
	fx_put(&s, b, s.data[0], s.len[0]);
	ok(walk(&s, b, msg, &leaves) == MST_ERR_CID_MISMATCH, "bytes under the wrong CID: %s", msg);
	b[11] ^= 1;
	ok(walk(&s, b, msg, &leaves) == MST_ERR_MISSING_NODE && strstr(msg, "missing") != NULL,
	   "a missing node: %s", msg);
	fx_store_free(&s);
}

static void
test_skip(void)
{
	FxRepo		r;
	MstStore	store = {fx_get, NULL};
	MstIter    *it;
	MstIterItem item;
	bool		done = false;
	size_t		nodes = 0,
				leaves = 0;

	fx_repo(&r, 1000, 0);
	store.ctx = &r.nodes;
	it = mst_iter_open(&store, r.root);
	/* skip every node below the root: only the root's own leaves remain */
	while (mst_iter_next(it, &item, &done) == MST_OK && !done)
	{
		if (item.kind == MST_ITER_NODE)
		{
			nodes++;
			if (nodes > 1)
				mst_iter_skip(it);
		}
		else
			leaves++;
	}
	{
		MstNodeData nd;
		long		i = fx_find(&r.nodes, r.root);

		mst_node_decode(r.nodes.data[i], r.nodes.len[i], &nd, NULL, 0);
		ok(done && leaves == nd.n, "skipping subtrees leaves the root's %zu leaves (got %zu)", nd.n, leaves);
		mst_node_data_free(&nd);
	}
	mst_iter_free(it);
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
	test_full_export();
	test_diff_export();
	test_empty_tree();
	test_key_path();
	test_noncanonical();
	test_skip();
	return done_testing();
}
