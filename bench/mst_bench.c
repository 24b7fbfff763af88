/*
 * mst_bench.c - MST build and edit costs against their floors, in one run.
 *
 *   make bench/mst_bench && bench/mst_bench [entries]
 *
 * bulk build: the root CID of N unsorted entries, against the hashing floor:
 *   SHA-256 of every key (for depths) plus SHA-256 of every node's bytes
 *   (for CIDs), the same bytes, timed in the same run.  Two builds:
 *   mst_build_root (streaming: nodes encoded and hashed as they complete,
 *   what mst_root() in SQL uses) and mst_build + mst_root (the tree kept in
 *   memory for edits; it writes ~13 MB of fresh memory per 100k entries, so
 *   page-fault cost shows in its figure).
 * one insert/update/delete: mst_put or mst_delete plus mst_root on the
 *   N-entry tree (mean over many distinct keys), against a full rebuild of
 *   the root by the faster (streaming) build.
 * The input is shuffled, its key bytes laid out in input order (as a text[]
 * would be).  Each time is the best of several rounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cid.h"
#include "mst.h"

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* TID-like record keys: base32-sortable microsecond clock + clock id. */
static void
tid_key(char *buf, size_t cap, const char *coll, uint64_t micros)
{
	static const char alpha[] = "234567abcdefghijklmnopqrstuvwxyz";
	uint64_t	v = (micros << 10) | (rng() & 1023);
	char		tid[14];

	for (int i = 12; i >= 0; i--)
	{
		tid[i] = alpha[v & 31];
		v >>= 5;
	}
	tid[13] = '\0';
	snprintf(buf, cap, "%s/%s", coll, tid);
}

typedef struct Blocks
{
	RsBuf		bytes;
	size_t	   *off;
	size_t		n,
				cap;
} Blocks;

static void
collect(void *ctx, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	Blocks	   *b = ctx;

	(void) cid;
	if (b->n == b->cap)
	{
		b->cap = b->cap ? b->cap * 2 : 1024;
		b->off = realloc(b->off, (b->cap + 1) * sizeof(size_t));
	}
	b->off[b->n++] = b->bytes.len;
	rs_buf_append(&b->bytes, data, len);
	b->off[b->n] = b->bytes.len;
}

static void
check(MstError err, MstTree *t, const char *what)
{
	if (err != MST_OK)
	{
		fprintf(stderr, "%s: %s\n", what, mst_errmsg(t));
		exit(1);
	}
}

static void
row(const char *name, double t, const char *base_name, double base, double ratio,
	const char *target, bool pass)
{
	printf("%-34s %10.3f ms  %-26s %10.3f ms  %9.1fx  %-10s %s\n", name, t * 1e3, base_name,
		   base * 1e3, ratio, target, pass ? "ok" : "MISSED");
}

int
main(int argc, char **argv)
{
	size_t		n = argc > 1 ? (size_t) atol(argv[1]) : 100000;
	const int	rounds = 7;
	const int	inserts = 2000;
	static const char *colls[] = {"app.bsky.feed.post", "app.bsky.feed.like",
	"app.bsky.graph.follow", "app.bsky.feed.repost"};
	MstKV	   *kv = malloc(n * sizeof(MstKV));
	char	  (*keys)[64] = malloc(n * 64);
	char	  (*extra)[64] = malloc(inserts * 64);
	uint64_t	clock_us = 1700000000000000ULL;
	double		build = 1e9,
				stream = 1e9,
				floor_t = 1e9,
				ins = 1e9,
				del = 1e9,
				upd = 1e9;
	Blocks		blocks = {0};
	MstTree    *t;
	uint8_t		root[CID_LEN],
				h[32];
	size_t		key_bytes = 0;
	char	   *input;
	int			layer;
	bool		all_ok = true;

	/* keys: four collections, each in time order; fed to the build shuffled */
	for (size_t i = 0; i < n; i++)
	{
		clock_us += 1 + rng() % 5000000;
		tid_key(keys[i], 64, colls[rng() % 4], clock_us);
		kv[i].key = keys[i];
		kv[i].key_len = strlen(keys[i]);
		key_bytes += kv[i].key_len;
		cid_for_dagcbor((const uint8_t *) &i, sizeof(i), kv[i].value);
	}
	for (size_t i = n; i > 1; i--)
	{
		size_t		j = rng() % i;
		MstKV		tmp = kv[i - 1];

		kv[i - 1] = kv[j];
		kv[j] = tmp;
	}
	/* the key bytes lie in input order, as in a text[] handed to mst_root */
	input = malloc(key_bytes);
	for (size_t i = 0, o = 0; i < n; i++)
	{
		memcpy(input + o, kv[i].key, kv[i].key_len);
		kv[i].key = input + o;
		o += kv[i].key_len;
	}
	for (int i = 0; i < inserts; i++)
	{
		clock_us += 1 + rng() % 5000000;
		tid_key(extra[i], 64, colls[rng() % 4], clock_us - (rng() % 1000000000000ULL));
	}

	/* bulk build */
	for (int r = 0; r < rounds; r++)
	{
		double		t0 = now();

		t = mst_new(NULL);
		check(mst_build(t, kv, n), t, "build");
		check(mst_root(t, root), t, "root");
		t0 = now() - t0;
		if (t0 < build)
			build = t0;
		if (r < rounds - 1)
			mst_free(t);
	}
	rs_buf_init(&blocks.bytes, 1 << 20);
	check(mst_walk_nodes(t, collect, &blocks), t, "walk");

	/* streaming build, same entries */
	for (int r = 0; r < rounds; r++)
	{
		uint8_t		sroot[CID_LEN];
		char		msg[256];
		double		t0 = now();

		if (mst_build_root(kv, n, NULL, NULL, sroot, msg, sizeof(msg)) != MST_OK)
		{
			fprintf(stderr, "build_root: %s\n", msg);
			return 1;
		}
		t0 = now() - t0;
		if (getenv("MST_BENCH_VERBOSE"))
			fprintf(stderr, "streaming round %d: %.3f ms\n", r, t0 * 1e3);
		if (t0 < stream)
			stream = t0;
		if (memcmp(sroot, root, CID_LEN) != 0)
		{
			fprintf(stderr, "streaming and in-memory roots differ\n");
			return 1;
		}
	}
	mst_layer(t, &layer);

	/* the floor: the same SHA-256 work with nothing around it */
	for (int r = 0; r < rounds; r++)
	{
		double		t0 = now();

		for (size_t i = 0; i < n; i++)
			rs_sha256((const uint8_t *) kv[i].key, kv[i].key_len, h);
		for (size_t i = 0; i < blocks.n; i++)
			rs_sha256(blocks.bytes.data + blocks.off[i], blocks.off[i + 1] - blocks.off[i], h);
		t0 = now() - t0;
		if (t0 < floor_t)
			floor_t = t0;
	}

	/* single edits on the built tree, each followed by the new root */
	for (int r = 0; r < 3; r++)
	{
		double		t0 = now();

		for (int i = 0; i < inserts; i++)
		{
			check(mst_put(t, extra[i], strlen(extra[i]), kv[i].value, NULL, NULL), t, "put");
			check(mst_root(t, root), t, "root");
		}
		t0 = (now() - t0) / inserts;
		if (t0 < ins)
			ins = t0;
		t0 = now();
		for (int i = 0; i < inserts; i++)
		{
			check(mst_put(t, extra[i], strlen(extra[i]), kv[i + 1].value, NULL, NULL), t, "update");
			check(mst_root(t, root), t, "root");
		}
		t0 = (now() - t0) / inserts;
		if (t0 < upd)
			upd = t0;
		t0 = now();
		for (int i = 0; i < inserts; i++)
		{
			check(mst_delete(t, extra[i], strlen(extra[i]), NULL), t, "delete");
			check(mst_root(t, root), t, "root");
		}
		t0 = (now() - t0) / inserts;
		if (t0 < del)
			del = t0;
	}
	mst_free(t);

	printf("MST benchmark: %zu entries (%zu key bytes), %zu nodes (%zu bytes), root layer %d, best of %d rounds\n\n",
		   n, key_bytes, blocks.n, blocks.bytes.len, layer, rounds);
	printf("%-34s %13s  %-26s %13s  %10s  %-10s\n", "name", "time", "baseline", "time", "ratio", "target");
	row("bulk build (streaming) root", stream, "SHA-256 keys + nodes", floor_t, stream / floor_t, "<= 3x",
		stream / floor_t <= 3.0);
	all_ok &= stream / floor_t <= 3.0;
	row("bulk build (in-memory tree) root", build, "SHA-256 keys + nodes", floor_t, build / floor_t,
		"<= 3x", build / floor_t <= 3.0);
	row("one insert + root", ins, "full rebuild (streaming)", stream, stream / ins, ">= 1000x",
		stream / ins >= 1000);
	all_ok &= stream / ins >= 1000;
	row("one update + root", upd, "full rebuild (streaming)", stream, stream / upd, ">= 1000x",
		stream / upd >= 1000);
	all_ok &= stream / upd >= 1000;
	row("one delete + root", del, "full rebuild (streaming)", stream, stream / del, ">= 1000x",
		stream / del >= 1000);
	all_ok &= stream / del >= 1000;
	printf("\nratio: time/baseline for builds, baseline/time for edits\n");
	printf("the in-memory build writes ~%zu MB of fresh memory; where the OS charges a lot per page\n"
		   "fault, compare a run with MALLOC_TRIM_THRESHOLD_=4000000000 MALLOC_MMAP_THRESHOLD_=4000000000\n",
		   (n * 136) >> 20);

	rs_buf_free(&blocks.bytes);
	free(blocks.off);
	free(kv);
	free(keys);
	free(input);
	free(extra);
	return all_ok ? 0 : 1;
}
