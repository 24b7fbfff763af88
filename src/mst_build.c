/*
 * mst_build.c - bulk builds from entries in any order, on one multikey sort:
 * the in-memory tree (mst_build) and the streaming root (mst_build_root).
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

typedef struct SortKey
{
	const char *k;				/* the key: the caller's, then the tree's copy */
	uint64_t	cache;			/* bytes d..d+7 of the key, big-endian, 0-padded */
	uint32_t	idx;			/* position in the caller's entries */
	uint16_t	len;
	uint8_t		depth;
} SortKey;

static inline uint64_t
chunk_at(const char *k, size_t len, size_t d)
{
	uint64_t	v = 0;

	if (d + 8 <= len)
	{
		memcpy(&v, k + d, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		v = __builtin_bswap64(v);	/* big-endian: integer order is byte order */
#endif
		return v;
	}
	for (size_t i = 0; i < 8; i++)
		v = (v << 8) | (d + i < len ? (uint8_t) k[d + i] : 0);
	return v;
}

static inline void
sk_swap(SortKey *a, SortKey *b)
{
	SortKey		t = *a;

	*a = *b;
	*b = t;
}

/* Order of two keys known to agree on their first d bytes. */
static inline int
sk_cmp(const SortKey *a, const SortKey *b, size_t d)
{
	if (a->cache != b->cache)
		return a->cache < b->cache ? -1 : 1;
	if (a->len < d + 8)
		return 0;				/* both ended inside the chunk: equal */
	return key_cmp(a->k + d + 8, a->len - d - 8, b->k + d + 8, b->len - d - 8);
}

/*
 * Multikey quicksort (Bentley & Sedgewick) on 8-byte chunks cached next to
 * the pointers: the long prefixes record keys share ("app.bsky.feed.post/")
 * cost a few sequential passes, and a key's bytes are fetched once per 8 of
 * depth.  Valid keys hold no NUL byte, so the zero padding orders a shorter
 * key first and equal chunks with the key ended before their end mean
 * equal keys:
 * *dup gets one of them.
 */
/* The equal part moves one chunk deeper; false when its keys all ended. */
static bool
sk_deepen(SortKey *a, size_t n, size_t d, const SortKey **dup)
{
	if (a[0].len < d + 8)
	{
		if (n > 1)
			*dup = &a[0];
		return false;
	}
	for (size_t i = 0; i < n; i++)
	{
		/* keys sit in input order: fetch ahead, the loads then overlap */
		if (i + 16 < n)
			__builtin_prefetch(a[i + 16].k + d + 8);
		a[i].cache = chunk_at(a[i].k, a[i].len, d + 8);
	}
	return true;
}

static void
mkqsort(SortKey *a, size_t n, size_t d, const SortKey **dup)
{
	static uint64_t rnd = 0x9e3779b97f4a7c15ULL;

	while (n > 1)
	{
		size_t		lt = 0,
					i = 0,
					gt = n,
					nl,
					ne,
					ng;
		uint64_t	v;

		if (n < 16)
		{
			for (size_t x = 1; x < n; x++)
				for (size_t y = x; y > 0; y--)
				{
					int			c = sk_cmp(&a[y - 1], &a[y], d);

					if (c == 0)
						*dup = &a[y];
					if (c <= 0)
						break;
					sk_swap(&a[y - 1], &a[y]);
				}
			return;
		}
		/* median of three at pseudo-random places: no input is always bad */
		{
			uint64_t	x,
						y,
						z;

			rnd ^= rnd << 13;
			rnd ^= rnd >> 7;
			rnd ^= rnd << 17;
			x = a[rnd % n].cache;
			y = a[(rnd >> 21) % n].cache;
			z = a[(rnd >> 42) % n].cache;
			v = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
		}
		while (i < gt)
		{
			uint64_t	c = a[i].cache;

			if (c < v)
				sk_swap(&a[lt++], &a[i++]);
			else if (c > v)
				sk_swap(&a[i], &a[--gt]);
			else
				i++;
		}
		nl = lt;
		ne = gt - lt;
		ng = n - gt;

		/*
		 * Recurse into the two smaller parts and loop on the largest: each
		 * level down halves n or goes 8 bytes deeper, so the stack stays
		 * within log2(n) + MST_MAX_KEY_LEN / 8 frames.
		 */
		if (ne >= nl && ne >= ng)
		{
			mkqsort(a, nl, d, dup);
			mkqsort(a + gt, ng, d, dup);
			if (!sk_deepen(a + lt, ne, d, dup))
				return;
			a += lt;
			n = ne;
			d += 8;
		}
		else
		{
			if (sk_deepen(a + lt, ne, d, dup))
				mkqsort(a + lt, ne, d + 8, dup);
			if (nl >= ng)
			{
				mkqsort(a + gt, ng, d, dup);
				n = nl;
			}
			else
			{
				mkqsort(a, nl, d, dup);
				a += gt;
				n = ng;
			}
		}
	}
}

typedef struct BuildCtx
{
	MstTree    *t;
	const SortKey *s;
	const MstKV *kv;
} BuildCtx;

/* The canonical subtree of s[lo, hi) at layer L (all depths <= L). */
static MstNode *
build_range(const BuildCtx *b, size_t lo, size_t hi, int layer)
{
	MstNode    *n;
	size_t		here = 0,
				gap = lo;

	if (lo >= hi)
		return NULL;
	for (size_t i = lo; i < hi; i++)
		here += b->s[i].depth == layer;
	n = bump_alloc(b->t, sizeof(MstNode));
	memset(n, 0, sizeof(*n));
	n->layer = (int16_t) layer;
	n->loaded = true;
	n->bump = BUMP_NODE | BUMP_ENTRIES;
	n->cap = (uint32_t) (here ? here : 1);
	n->e = bump_alloc(b->t, (size_t) n->cap * sizeof(MstEnt));
	for (size_t i = lo; i < hi; i++)
	{
		MstEnt	   *e;

		if (b->s[i].depth != layer)
			continue;
		*gap_ptr(n, n->n) = build_range(b, gap, i, layer - 1);
		e = &n->e[n->n++];
		e->key = (char *) b->s[i].k;
		e->klen = b->s[i].len;
		e->in_arena = 1;
		memcpy(e->val, b->kv[b->s[i].idx].value, CID_LEN);
		e->right = NULL;
		gap = i + 1;
	}
	*gap_ptr(n, n->n) = build_range(b, gap, hi, layer - 1);
	return n;
}

/*
 * Check, hash and sort entries: *out gets them in key order with depths,
 * *top the largest depth, *total the bytes of all keys with their NULs.
 */
static MstError
sort_entries(const MstKV *entries, size_t n, SortKey **out, int *top,
			 size_t *total, char *errmsg, size_t errlen)
{
	SortKey    *s = rs_alloc((n ? n : 1) * sizeof(SortKey));
	const SortKey *dup = NULL;
	bool		sorted = true;
	char		kb[160];

	*top = 0;
	*total = 0;
	/* one pass in input order: check, hash, prime the sort */
	for (size_t i = 0; i < n; i++)
	{
		const MstKV *e = &entries[i];

		if (!mst_valid_key(e->key, e->key_len))
		{
			rs_free(s);
			return set_msg(errmsg, errlen, MST_ERR_KEY_SYNTAX, "invalid MST key \"%s\": %s",
						   SHOW(kb, e->key, e->key_len), key_problem(e->key, e->key_len));
		}
		s[i].k = e->key;
		s[i].len = (uint16_t) e->key_len;
		s[i].depth = (uint8_t) mst_key_depth((const uint8_t *) e->key, e->key_len);
		s[i].idx = (uint32_t) i;
		s[i].cache = chunk_at(e->key, e->key_len, 0);
		*total += e->key_len + 1;
		if (s[i].depth > *top)
			*top = s[i].depth;
		if (i > 0 && sorted &&
			key_cmp(entries[i - 1].key, entries[i - 1].key_len, e->key, e->key_len) >= 0)
			sorted = false;
	}
	if (!sorted)
		mkqsort(s, n, 0, &dup);
	if (dup)
	{
		MstError	err = set_msg(errmsg, errlen, MST_ERR_DUPLICATE_KEY,
								  "duplicate MST key \"%s\"", SHOW(kb, dup->k, dup->len));

		rs_free(s);
		return err;
	}
	*out = s;
	return MST_OK;
}

MstError
mst_build(MstTree *t, const MstKV *entries, size_t n)
{
	BuildCtx	b;
	MstError	err;
	SortKey    *s;
	int			top;
	size_t		total;
	char	   *arena;

	if ((err = check_usable(t)) != MST_OK)
		return err;
	if (!t->root->loaded || !node_empty(t->root))
		return TERR(t, MST_ERR_DUPLICATE_KEY, "mst_build needs an empty tree");
	if (n == 0)
		return MST_OK;
	if ((err = sort_entries(entries, n, &s, &top, &total, t->errmsg, ERRLEN)) != MST_OK)
		return err;

	/* the tree's copies, in key order: nodes then read them in sequence */
	arena = bump_alloc(t, total);
	for (size_t i = 0; i < n; i++)
	{
		if (i + 16 < n)
			__builtin_prefetch(s[i + 16].k);
		memcpy(arena, s[i].k, s[i].len);
		arena[s[i].len] = '\0';
		s[i].k = arena;
		arena += s[i].len + 1;
	}

	b.t = t;
	b.s = s;
	b.kv = entries;
	drop(t, t->root);
	t->root = build_range(&b, 0, n, top);
	rs_free(s);
	return MST_OK;
}

/*
 * Streaming build: one open node per layer.  A key of depth d closes every
 * open node below d (each closed node is the subtree of the gap just before
 * the key, one layer up) and joins the open node at layer d.  A closed node
 * is encoded, hashed and handed over at once, so memory stays at one node
 * per layer whatever the entry count.
 */
typedef struct OpenEnt
{
	const char *k;
	size_t		len;
	const uint8_t *val;
	bool		has_right;
	uint8_t		right[CID_LEN];
} OpenEnt;

typedef struct OpenNode
{
	OpenEnt    *e;
	uint32_t	n;
	uint32_t	cap;
	bool		has_left;
	uint8_t		left[CID_LEN];
} OpenNode;

typedef struct Stream
{
	OpenNode	layer[MST_MAX_LAYER + 1];
	RsBuf		buf;
	MstPutFn	put;
	void	   *ctx;
	char	   *errmsg;
	size_t		errlen;
} Stream;

/* Close the open node of a layer; false when it was empty. */
static MstError
stream_close(Stream *st, int layer, uint8_t cid[CID_LEN], bool *made)
{
	OpenNode   *o = &st->layer[layer];
	const char *prev = NULL;
	size_t		prev_len = 0;
	RsBuf	   *b = &st->buf;

	*made = false;
	if (o->n == 0 && !o->has_left)
		return MST_OK;
	if (o->n > MST_MAX_NODE_ENTRIES)
	{
		char		kb[160];

		return set_msg(st->errmsg, st->errlen, MST_ERR_NODE_TOO_BIG,
					   "MST node at layer %d would hold %u entries (from key \"%s\"), at most %d are allowed",
					   layer, o->n, SHOW(kb, o->e[0].k, o->e[0].len), MST_MAX_NODE_ENTRIES);
	}
	b->len = 0;
	rs_buf_append_byte(b, 0xa2);
	put_field(b, 'e');
	dcbor_put_array(b, o->n);
	for (uint32_t i = 0; i < o->n; i++)
	{
		const OpenEnt *e = &o->e[i];

		put_entry(b, prev, prev_len, e->k, e->len, e->has_right ? e->right : NULL, e->val);
		prev = e->k;
		prev_len = e->len;
	}
	put_field(b, 'l');
	put_link_or_null(b, o->has_left ? o->left : NULL);
	cid_for_dagcbor(b->data, b->len, cid);
	if (st->put)
		st->put(st->ctx, cid, b->data, b->len);
	o->n = 0;
	o->has_left = false;
	*made = true;
	return MST_OK;
}

/* The closed subtree goes into the current gap of the layer above. */
static void
stream_gap(OpenNode *o, const uint8_t cid[CID_LEN])
{
	if (o->n == 0)
	{
		o->has_left = true;
		memcpy(o->left, cid, CID_LEN);
	}
	else
	{
		o->e[o->n - 1].has_right = true;
		memcpy(o->e[o->n - 1].right, cid, CID_LEN);
	}
}

static MstError
stream_close_below(Stream *st, int depth)
{
	MstError	err;

	for (int l = 0; l < depth; l++)
	{
		uint8_t		cid[CID_LEN];
		bool		made;

		if ((err = stream_close(st, l, cid, &made)) != MST_OK)
			return err;
		if (made)
			stream_gap(&st->layer[l + 1], cid);
	}
	return MST_OK;
}

MstError
mst_build_root(const MstKV *entries, size_t n, MstPutFn put, void *ctx,
			   uint8_t root[CID_LEN], char *errmsg, size_t errlen)
{
	Stream	   *st;
	SortKey    *s = NULL;
	int			top;
	size_t		total;
	MstError	err;
	bool		made;

	if ((err = sort_entries(entries, n, &s, &top, &total, errmsg, errlen)) != MST_OK)
		return err;
	st = rs_alloc(sizeof(Stream));
	memset(st, 0, sizeof(*st));
	st->put = put;
	st->ctx = ctx;
	st->errmsg = errmsg;
	st->errlen = errlen;
	rs_buf_init(&st->buf, 4096);

	for (size_t i = 0; i < n && err == MST_OK; i++)
	{
		OpenNode   *o = &st->layer[s[i].depth];
		OpenEnt    *e;

		/* keys and values are read in key order, stored in input order */
		if (i + 16 < n)
		{
			__builtin_prefetch(s[i + 16].k);
			__builtin_prefetch(entries[s[i + 16].idx].value);
		}
		if ((err = stream_close_below(st, s[i].depth)) != MST_OK)
			break;
		if (o->n == o->cap)
		{
			o->cap = o->cap ? o->cap * 2 : 8;
			o->e = rs_realloc(o->e, o->cap * sizeof(OpenEnt));
		}
		e = &o->e[o->n++];
		e->k = s[i].k;
		e->len = s[i].len;
		e->val = entries[s[i].idx].value;
		e->has_right = false;
	}
	if (err == MST_OK)
		err = stream_close_below(st, top);
	if (err == MST_OK)
	{
		/* the top layer holds a key, or nothing at all for the empty tree */
		if (n == 0)
		{
			RsBuf	   *b = &st->buf;

			rs_buf_append(b, "\xa2\x61\x65\x80\x61\x6c\xf6", 7);	/* {e: [], l: null} */
			cid_for_dagcbor(b->data, b->len, root);
			if (put)
				put(ctx, root, b->data, b->len);
		}
		else
			err = stream_close(st, top, root, &made);
	}
	for (int l = 0; l <= MST_MAX_LAYER; l++)
		rs_free(st->layer[l].e);
	rs_buf_free(&st->buf);
	rs_free(st);
	rs_free(s);
	return err;
}
