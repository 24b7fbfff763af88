/*
 * mst.c - atproto Merkle Search Tree: node codec, build, edit, diff, proofs.
 *
 * Shape of the tree (all of it follows from the key set): the root sits at
 * the largest key depth; a node at layer L holds, in order, the keys of
 * depth L in its key range, and between two neighbours (and before the
 * first, after the last) a pointer to the layer L-1 node of the keys in that
 * gap, or null when the gap has none.  A node whose range has no key of
 * depth L but lower keys is just {e: [], l: child}.  Every edit below keeps
 * exactly this shape, which is why an edited tree hashes like a rebuilt one.
 *
 * See mst.h for the contract.
 */
#include "mst_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor.h"

/* ---------------------------------------------------------------- edits */

/*
 * Split the subtree n (layer M) around key, which it does not hold:
 * *l gets the keys below, *r those above, each NULL when empty.
 */
static MstError
split(MstTree *t, MstNode *n, const char *key, size_t klen,
	  MstNode **l, MstNode **r)
{
	MstError	err;
	MstNode    *gl = NULL,
			   *gr = NULL,
			   *right;
	MstNode   **g;
	uint32_t	i;
	bool		found;

	if ((err = node_load(t, n)) != MST_OK)
		return err;
	i = node_find(n, key, klen, &found);
	g = gap_ptr(n, i);
	if (*g && (err = split(t, *g, key, klen, &gl, &gr)) != MST_OK)
		return err;
	/* all on one side: the node stays as it is (and stays stored) */
	if (i == n->n && gr == NULL)
	{
		*l = n;
		*r = NULL;
		return MST_OK;
	}
	if (i == 0 && gl == NULL)
	{
		*l = NULL;
		*r = n;
		return MST_OK;
	}
	touch(t, n);
	right = node_new(n->layer);
	right->left = gr;
	if (n->n > i)
	{
		ent_reserve(right, n->n - i);
		memcpy(right->e, n->e + i, (size_t) (n->n - i) * sizeof(MstEnt));
		right->n = n->n - i;
	}
	n->n = i;
	*gap_ptr(n, i) = gl;
	if (node_empty(n))
	{
		drop(t, n);
		n = NULL;
	}
	if (node_empty(right))
	{
		drop(t, right);
		right = NULL;
	}
	*l = n;
	*r = right;
	return MST_OK;
}

/* Join a (all keys lower) and b, both at one layer, either may be NULL. */
static MstError
merge(MstTree *t, MstNode *a, MstNode *b, MstNode **out)
{
	MstError	err;
	MstNode   **ga;
	MstNode    *m;

	if (a == NULL || b == NULL)
	{
		*out = a ? a : b;
		return MST_OK;
	}
	if ((err = node_load(t, a)) != MST_OK || (err = node_load(t, b)) != MST_OK)
		return err;
	ga = gap_ptr(a, a->n);
	if ((err = merge(t, *ga, b->left, &m)) != MST_OK)
		return err;
	touch(t, a);
	*ga = m;
	b->left = NULL;
	if (b->n > 0)
	{
		ent_reserve(a, b->n);
		memcpy(a->e + a->n, b->e, (size_t) b->n * sizeof(MstEnt));
		a->n += b->n;
	}
	b->n = 0;
	drop(t, b);
	*out = a;
	return MST_OK;
}

/* Insert a key known to be absent into n, with n->layer >= depth. */
static MstError
insert_rec(MstTree *t, MstNode *n, const char *key, size_t klen, int depth,
		   const uint8_t val[CID_LEN])
{
	MstError	err;
	bool		found;
	uint32_t	i = node_find(n, key, klen, &found);
	MstNode   **g = gap_ptr(n, i);

	if (depth == n->layer)
	{
		MstNode    *l = NULL,
				   *r = NULL;

		if (*g && (err = split(t, *g, key, klen, &l, &r)) != MST_OK)
			return err;
		touch(t, n);
		*gap_ptr(n, i) = l;
		ent_insert(n, i, key, klen, val, r);
		return MST_OK;
	}
	if (*g == NULL)
		*g = node_new(n->layer - 1);	/* a fresh gap: a chain down to depth */
	else if ((err = node_load(t, *g)) != MST_OK)
		return err;
	if ((err = insert_rec(t, *g, key, klen, depth, val)) != MST_OK)
		return err;
	touch(t, n);
	return MST_OK;
}

/* Find the entry holding key, loading the path; NULL when absent. */
static MstError
lookup(MstTree *t, const char *key, size_t klen, int depth, MstEnt **out)
{
	MstNode    *n = t->root;
	MstError	err;

	*out = NULL;
	for (;;)
	{
		bool		found;
		uint32_t	i;
		MstNode    *c;

		if ((err = node_load(t, n)) != MST_OK)
			return err;
		if (depth > n->layer)
			return MST_OK;
		i = node_find(n, key, klen, &found);
		if (found)
		{
			*out = &n->e[i];
			return MST_OK;
		}
		if (depth == n->layer || (c = *gap_ptr(n, i)) == NULL)
			return MST_OK;
		n = c;
	}
}

/* Re-mark the (loaded) path to key as changed and give it a new value. */
static void
update_path(MstTree *t, const char *key, size_t klen, const uint8_t val[CID_LEN])
{
	MstNode    *n = t->root;

	for (;;)
	{
		bool		found;
		uint32_t	i = node_find(n, key, klen, &found);

		touch(t, n);
		if (found)
		{
			memcpy(n->e[i].val, val, CID_LEN);
			return;
		}
		n = *gap_ptr(n, i);
	}
}

static MstError
do_insert(MstTree *t, const char *key, size_t klen, int depth,
		  const uint8_t val[CID_LEN])
{
	MstNode    *root = t->root;
	MstNode    *l = NULL,
			   *r = NULL,
			   *top;
	MstError	err;
	int			old_layer = root->layer;

	if (depth <= old_layer)
		return insert_rec(t, root, key, klen, depth, val);

	/* a new top layer: split the old tree around key, lift the halves */
	if (node_empty(root))
		drop(t, root);
	else if ((err = split(t, root, key, klen, &l, &r)) != MST_OK)
		return err;
	for (int layer = old_layer + 1; layer < depth; layer++)
	{
		MstNode    *p;

		if (l)
		{
			p = node_new(layer);
			p->left = l;
			l = p;
		}
		if (r)
		{
			p = node_new(layer);
			p->left = r;
			r = p;
		}
	}
	top = node_new(depth);
	top->left = l;
	ent_insert(top, 0, key, klen, val, r);
	t->root = top;
	return MST_OK;
}

MstError
mst_put(MstTree *t, const char *key, size_t len, const uint8_t value[CID_LEN],
		uint8_t prev[CID_LEN], bool *had_prev)
{
	MstError	err;
	MstEnt	   *e;
	int			depth;

	if (had_prev)
		*had_prev = false;
	if ((err = check_usable(t)) != MST_OK || (err = check_key(t, key, len)) != MST_OK)
		return err;
	if ((err = ensure_root(t)) != MST_OK)
		return maybe_break(t, err);
	depth = mst_key_depth((const uint8_t *) key, len);
	if ((err = lookup(t, key, len, depth, &e)) != MST_OK)
		return maybe_break(t, err);
	if (e)
	{
		if (had_prev)
			*had_prev = true;
		if (prev)
			memcpy(prev, e->val, CID_LEN);
		if (memcmp(e->val, value, CID_LEN) != 0)
			update_path(t, key, len, value);
		return MST_OK;
	}
	return maybe_break(t, do_insert(t, key, len, depth, value));
}

MstError
mst_insert(MstTree *t, const char *key, size_t len, const uint8_t value[CID_LEN])
{
	MstError	err;
	MstEnt	   *e;
	char		kb[160];

	if ((err = check_usable(t)) != MST_OK || (err = check_key(t, key, len)) != MST_OK)
		return err;
	if ((err = ensure_root(t)) != MST_OK ||
		(err = lookup(t, key, len, mst_key_depth((const uint8_t *) key, len), &e)) != MST_OK)
		return maybe_break(t, err);
	if (e)
		return TERR(t, MST_ERR_DUPLICATE_KEY, "MST key \"%s\" already exists", SHOW(kb, key, len));
	return mst_put(t, key, len, value, NULL, NULL);
}

MstError
mst_update(MstTree *t, const char *key, size_t len, const uint8_t value[CID_LEN],
		   uint8_t prev[CID_LEN])
{
	MstError	err;
	MstEnt	   *e;
	char		kb[160];

	if ((err = check_usable(t)) != MST_OK || (err = check_key(t, key, len)) != MST_OK)
		return err;
	if ((err = ensure_root(t)) != MST_OK ||
		(err = lookup(t, key, len, mst_key_depth((const uint8_t *) key, len), &e)) != MST_OK)
		return maybe_break(t, err);
	if (!e)
		return TERR(t, MST_ERR_NOT_FOUND, "MST key \"%s\" not found", SHOW(kb, key, len));
	return mst_put(t, key, len, value, prev, NULL);
}

MstError
mst_get(MstTree *t, const char *key, size_t len, uint8_t value[CID_LEN], bool *found)
{
	MstError	err;
	MstEnt	   *e;

	*found = false;
	if ((err = check_usable(t)) != MST_OK || (err = check_key(t, key, len)) != MST_OK)
		return err;
	if ((err = ensure_root(t)) != MST_OK ||
		(err = lookup(t, key, len, mst_key_depth((const uint8_t *) key, len), &e)) != MST_OK)
		return err;
	if (e)
	{
		*found = true;
		if (value)
			memcpy(value, e->val, CID_LEN);
	}
	return MST_OK;
}

/* Remove key from n (loaded); untouched when the key is absent. */
static MstError
delete_rec(MstTree *t, MstNode *n, const char *key, size_t klen, int depth,
		   uint8_t prev[CID_LEN])
{
	MstError	err;
	bool		found;
	uint32_t	i;
	MstNode    *c;

	if (depth > n->layer)
		return MST_ERR_NOT_FOUND;
	i = node_find(n, key, klen, &found);
	if (depth == n->layer)
	{
		MstNode    *merged;

		if (!found)
			return MST_ERR_NOT_FOUND;
		/* the gaps on both sides of the key become one */
		if ((err = merge(t, *gap_ptr(n, i), n->e[i].right, &merged)) != MST_OK)
			return err;
		touch(t, n);
		if (prev)
			memcpy(prev, n->e[i].val, CID_LEN);
		key_release(&n->e[i]);
		memmove(&n->e[i], &n->e[i + 1], (size_t) (n->n - i - 1) * sizeof(MstEnt));
		n->n--;
		*gap_ptr(n, i) = merged;
		return MST_OK;
	}
	c = *gap_ptr(n, i);
	if (c == NULL)
		return MST_ERR_NOT_FOUND;
	if ((err = node_load(t, c)) != MST_OK)
		return err;
	if ((err = delete_rec(t, c, key, klen, depth, prev)) != MST_OK)
		return err;
	if (node_empty(c))
	{
		drop(t, c);
		*gap_ptr(n, i) = NULL;
	}
	touch(t, n);
	return MST_OK;
}

MstError
mst_delete(MstTree *t, const char *key, size_t len, uint8_t prev[CID_LEN])
{
	MstError	err;
	char		kb[160];

	if ((err = check_usable(t)) != MST_OK || (err = check_key(t, key, len)) != MST_OK)
		return err;
	if ((err = ensure_root(t)) != MST_OK)
		return maybe_break(t, err);
	err = delete_rec(t, t->root, key, len, mst_key_depth((const uint8_t *) key, len), prev);
	if (err == MST_ERR_NOT_FOUND)
		return TERR(t, err, "MST key \"%s\" not found", SHOW(kb, key, len));
	if (err != MST_OK)
		return maybe_break(t, err);
	/* a root left with only a left subtree is not a root: trim */
	while (t->root->n == 0 && t->root->left)
	{
		MstNode    *c = t->root->left;

		t->root->left = NULL;
		drop(t, t->root);
		t->root = c;
		if ((err = node_load(t, c)) != MST_OK)
			return maybe_break(t, err);
	}
	if (node_empty(t->root))
		t->root->layer = 0;
	return MST_OK;
}

/* ---------------------------------------------------------------- output */

MstError
mst_root(MstTree *t, uint8_t root[CID_LEN])
{
	MstError	err;

	if ((err = check_usable(t)) != MST_OK)
		return err;
	if ((err = node_hash(t, t->root)) != MST_OK)
		return err;
	if (root)
		memcpy(root, t->root->cid, CID_LEN);
	return MST_OK;
}

MstError
mst_layer(MstTree *t, int *layer)
{
	MstError	err;

	if ((err = check_usable(t)) != MST_OK || (err = ensure_root(t)) != MST_OK)
		return err;
	*layer = t->root->layer;
	return MST_OK;
}

/*
 * Hand over the nodes the store lacks.  A node rebuilt with the content of
 * one it replaced in this round (an edit later undone by another) is
 * already stored: it is neither handed over nor reported removed.
 */
static void
emit_new(MstTree *t, MstNode *n, MstPutFn put, void *ctx, const CidSet *was,
		 CidSet *again)
{
	if (n->stored)
		return;					/* a stored node's subtree is stored too */
	if (n->left)
		emit_new(t, n->left, put, ctx, was, again);
	for (uint32_t i = 0; i < n->n; i++)
		if (n->e[i].right)
			emit_new(t, n->e[i].right, put, ctx, was, again);
	if (cidset_has(was, n->cid))
		cidset_add(again, n->cid);
	else if (put)
	{
		node_encode(n, &t->scratch);
		put(ctx, n->cid, t->scratch.data, t->scratch.len);
	}
	n->stored = true;
}

MstError
mst_write(MstTree *t, MstPutFn put, void *ctx, uint8_t root[CID_LEN],
		  MstCidList *removed)
{
	MstError	err;
	CidSet		was,
				again;

	if ((err = mst_root(t, root)) != MST_OK)
		return err;
	cidset_init(&was, t->removed.n);
	cidset_init(&again, 16);
	for (size_t i = 0; i < t->removed.n; i++)
		cidset_add(&was, t->removed.cids[i]);
	emit_new(t, t->root, put, ctx, &was, &again);
	if (removed)
	{
		/* was is a set already: walk it rather than the list with repeats */
		for (size_t i = 0; i < was.cap; i++)
			if (was.used[i] && !cidset_has(&again, was.slot[i]))
				cidlist_push(removed, was.slot[i]);
	}
	t->removed.n = 0;
	cidset_free(&was);
	cidset_free(&again);
	return MST_OK;
}

static MstError
walk_leaves(MstTree *t, MstNode *n, MstLeafFn fn, void *ctx, bool *stop)
{
	MstError	err;

	if (n == NULL || *stop)
		return MST_OK;
	if ((err = node_load(t, n)) != MST_OK)
		return err;
	if ((err = walk_leaves(t, n->left, fn, ctx, stop)) != MST_OK)
		return err;
	for (uint32_t i = 0; i < n->n && !*stop; i++)
	{
		if (!fn(ctx, n->e[i].key, n->e[i].klen, n->e[i].val))
		{
			*stop = true;
			break;
		}
		if ((err = walk_leaves(t, n->e[i].right, fn, ctx, stop)) != MST_OK)
			return err;
	}
	return MST_OK;
}

MstError
mst_walk_leaves(MstTree *t, MstLeafFn fn, void *ctx)
{
	MstError	err;
	bool		stop = false;

	if ((err = check_usable(t)) != MST_OK)
		return err;
	return walk_leaves(t, t->root, fn, ctx, &stop);
}

static MstError
walk_nodes(MstTree *t, MstNode *n, MstPutFn put, void *ctx)
{
	MstError	err;

	if (n == NULL)
		return MST_OK;
	if ((err = node_load(t, n)) != MST_OK)
		return err;
	node_encode(n, &t->scratch);
	put(ctx, n->cid, t->scratch.data, t->scratch.len);
	if ((err = walk_nodes(t, n->left, put, ctx)) != MST_OK)
		return err;
	for (uint32_t i = 0; i < n->n; i++)
		if ((err = walk_nodes(t, n->e[i].right, put, ctx)) != MST_OK)
			return err;
	return MST_OK;
}

MstError
mst_walk_nodes(MstTree *t, MstPutFn put, void *ctx)
{
	MstError	err;

	if ((err = mst_root(t, NULL)) != MST_OK)
		return err;
	return walk_nodes(t, t->root, put, ctx);
}

typedef struct VerifyCtx
{
	const char *last;
	size_t		last_len;
	size_t		count;
} VerifyCtx;

static MstError
verify_rec(MstTree *t, MstNode *n, int layer, bool is_root, VerifyCtx *v)
{
	MstError	err;
	char		cb[CID_TEXT_LEN + 1],
				kb[160],
				pb[160];

	if ((err = node_load(t, n)) != MST_OK)
		return err;
	if (n->layer != layer)
		return TERR(t, MST_ERR_KEY_DEPTH, "MST node %s sits at layer %d, expected %d",
					show_cid(cb, n->cid), n->layer, layer);
	if (!is_root && node_empty(n))
		return TERR(t, MST_ERR_NONCANONICAL, "MST inner node %s is empty", show_cid(cb, n->cid));
	if (layer == 0 && n->left)
		return TERR(t, MST_ERR_NONCANONICAL, "MST node %s at layer 0 has a subtree",
					show_cid(cb, n->cid));
	if (n->left && (err = verify_rec(t, n->left, layer - 1, false, v)) != MST_OK)
		return err;
	for (uint32_t i = 0; i < n->n; i++)
	{
		MstEnt	   *e = &n->e[i];

		if (v->last && key_cmp(v->last, v->last_len, e->key, e->klen) >= 0)
			return TERR(t, MST_ERR_KEY_ORDER, "MST key \"%s\" in node %s does not sort after \"%s\"",
						SHOW(kb, e->key, e->klen), show_cid(cb, n->cid),
						SHOW(pb, v->last, v->last_len));
		v->last = e->key;
		v->last_len = e->klen;
		v->count++;
		if (e->right)
		{
			if (layer == 0)
				return TERR(t, MST_ERR_NONCANONICAL, "MST node %s at layer 0 has a subtree",
							show_cid(cb, n->cid));
			if ((err = verify_rec(t, e->right, layer - 1, false, v)) != MST_OK)
				return err;
		}
	}
	return MST_OK;
}

MstError
mst_verify(MstTree *t, size_t *count)
{
	MstError	err;
	VerifyCtx	v = {NULL, 0, 0};

	if ((err = check_usable(t)) != MST_OK || (err = ensure_root(t)) != MST_OK)
		return err;
	if (t->root->n == 0 && t->root->left)
		return TERR(t, MST_ERR_NONCANONICAL, "MST root has no entries, only a left subtree");
	if ((err = verify_rec(t, t->root, t->root->layer, true, &v)) != MST_OK)
		return err;
	if (count)
		*count = v.count;
	return MST_OK;
}

/* ---------------------------------------------------------------- proofs */

/*
 * The proof walks mirror @atproto/repo's getCoveringProof, which sees a node
 * as one list of items: [subtree?, leaf, subtree?, leaf, ...].
 */
typedef struct Item
{
	MstNode    *tree;			/* NULL for a leaf */
	MstEnt	   *leaf;
} Item;

typedef struct ProofCtx
{
	MstTree    *t;
	const char *key;
	size_t		klen;
	CidSet		seen;
	MstPutFn	put;
	void	   *ctx;
	MstCidList *out;
} ProofCtx;

static size_t
node_items(MstNode *n, Item *items)
{
	size_t		c = 0;

	if (n->left)
		items[c++] = (Item) {n->left, NULL};
	for (uint32_t i = 0; i < n->n; i++)
	{
		items[c++] = (Item) {NULL, &n->e[i]};
		if (n->e[i].right)
			items[c++] = (Item) {n->e[i].right, NULL};
	}
	return c;
}

/* First leaf item whose key is >= key, or the item count. */
static size_t
items_gteq(const Item *items, size_t c, const char *key, size_t klen)
{
	for (size_t i = 0; i < c; i++)
		if (items[i].leaf && key_cmp(items[i].leaf->key, items[i].leaf->klen, key, klen) >= 0)
			return i;
	return c;
}

static void
proof_add(ProofCtx *p, MstNode *n)
{
	if (!cidset_add(&p->seen, n->cid))
		return;
	if (p->out)
		cidlist_push(p->out, n->cid);
	if (p->put)
	{
		node_encode(n, &p->t->scratch);
		p->put(p->ctx, n->cid, p->t->scratch.data, p->t->scratch.len);
	}
}

typedef enum ProofKind
{
	PROOF_KEY,
	PROOF_LEFT,
	PROOF_RIGHT
} ProofKind;

static MstError
proof_walk(ProofCtx *p, MstNode *n, ProofKind kind)
{
	MstError	err;
	Item	   *items;
	size_t		c,
				idx;
	MstNode    *next = NULL;
	bool		add_self = true;

	if ((err = node_load(p->t, n)) != MST_OK)
		return err;
	items = rs_alloc((2 * (size_t) n->n + 1) * sizeof(Item));
	c = node_items(n, items);
	idx = items_gteq(items, c, p->key, p->klen);

	if (kind == PROOF_KEY)
	{
		Item	   *found = idx < c ? &items[idx] : NULL;

		if (!(found && found->leaf &&
			  key_cmp(found->leaf->key, found->leaf->klen, p->key, p->klen) == 0))
		{
			if (idx == 0 || items[idx - 1].leaf)
				add_self = false;	/* as the reference: no subtree, no proof */
			else
				next = items[idx - 1].tree;
		}
	}
	else if (kind == PROOF_LEFT)
	{
		if (idx > 0 && items[idx - 1].tree)
			next = items[idx - 1].tree;
	}
	else
	{
		Item	   *found = idx < c ? &items[idx] : (idx > 0 ? &items[idx - 1] : NULL);

		if (found && found->tree)
			next = found->tree;
		else if (found)
		{
			Item	   *other;

			if (key_cmp(found->leaf->key, found->leaf->klen, p->key, p->klen) == 0)
				other = idx + 1 < c ? &items[idx + 1] : NULL;
			else
				other = idx > 0 ? &items[idx - 1] : NULL;
			if (other && other->tree)
				next = other->tree;
		}
	}
	rs_free(items);
	if (next && (err = proof_walk(p, next, kind)) != MST_OK)
		return err;
	if (add_self)
		proof_add(p, n);
	return MST_OK;
}

MstError
mst_covering_proof(MstTree *t, const MstKey *keys, size_t n, MstPutFn put,
				   void *ctx, MstCidList *out)
{
	MstError	err;
	ProofCtx	p;

	if ((err = mst_root(t, NULL)) != MST_OK)
		return err;
	memset(&p, 0, sizeof(p));
	p.t = t;
	p.put = put;
	p.ctx = ctx;
	p.out = out;
	cidset_init(&p.seen, 16 + n * 8);
	for (size_t i = 0; i < n && err == MST_OK; i++)
	{
		p.key = keys[i].key;
		p.klen = keys[i].len;
		if ((err = proof_walk(&p, t->root, PROOF_KEY)) == MST_OK &&
			(err = proof_walk(&p, t->root, PROOF_LEFT)) == MST_OK)
			err = proof_walk(&p, t->root, PROOF_RIGHT);
	}
	cidset_free(&p.seen);
	return err;
}

/* ---------------------------------------------------------------- diff */

typedef struct Leaf
{
	const char *key;
	uint32_t	klen;
	const uint8_t *val;
} Leaf;

typedef struct NodeVec
{
	MstNode   **v;
	size_t		n;
	size_t		cap;
} NodeVec;

typedef struct LeafVec
{
	Leaf	   *v;
	size_t		n;
	size_t		cap;
} LeafVec;

static void
nodevec_push(NodeVec *a, MstNode *n)
{
	if (a->n == a->cap)
	{
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = rs_realloc(a->v, a->cap * sizeof(MstNode *));
	}
	a->v[a->n++] = n;
}

static void
leafvec_push(LeafVec *a, const MstEnt *e)
{
	if (a->n == a->cap)
	{
		a->cap = a->cap ? a->cap * 2 : 64;
		a->v = rs_realloc(a->v, a->cap * sizeof(Leaf));
	}
	a->v[a->n++] = (Leaf) {e->key, e->klen, e->val};
}

static int
leaf_cmp(const void *a, const void *b)
{
	const Leaf *x = a;
	const Leaf *y = b;

	return key_cmp(x->key, x->klen, y->key, y->klen);
}

/* A node only one side has: record it, queue its children, keep its leaves. */
static MstError
diff_take(MstTree *t, MstNode *n, NodeVec *next, LeafVec *leaves, MstCidList *list,
		  MstPutFn put, void *ctx)
{
	MstError	err;

	if ((err = node_load(t, n)) != MST_OK)
		return err;
	cidlist_push(list, n->cid);
	if (put)
	{
		node_encode(n, &t->scratch);
		put(ctx, n->cid, t->scratch.data, t->scratch.len);
	}
	if (n->left)
		nodevec_push(next, n->left);
	for (uint32_t i = 0; i < n->n; i++)
	{
		leafvec_push(leaves, &n->e[i]);
		if (n->e[i].right)
			nodevec_push(next, n->e[i].right);
	}
	return MST_OK;
}

static void
diff_op(MstDiff *d, const Leaf *o, const Leaf *nw, size_t *cap)
{
	MstRecordOp *op;
	const Leaf *k = o ? o : nw;

	if (d->n_ops == *cap)
	{
		*cap = *cap ? *cap * 2 : 16;
		d->ops = rs_realloc(d->ops, *cap * sizeof(MstRecordOp));
	}
	op = &d->ops[d->n_ops++];
	memset(op, 0, sizeof(*op));
	op->key = key_dup(k->key, k->klen);
	op->key_len = k->klen;
	if (o)
	{
		op->has_old = true;
		memcpy(op->old_value, o->val, CID_LEN);
	}
	if (nw)
	{
		op->has_new = true;
		memcpy(op->new_value, nw->val, CID_LEN);
	}
}

/*
 * Layer by layer from the top: at each layer, a node both trees reach is a
 * shared subtree and is skipped whole; every other node is added (new side)
 * or removed (old side) and its children are looked at one layer down.  A
 * node's CID fixes its content, so a shared node has the same layer in both
 * trees and the first time it is met it is met on both sides.  Records of
 * the unshared nodes, matched by key, are the record changes.
 */
MstError
mst_diff(MstTree *old, MstTree *new_tree, MstPutFn put, void *ctx, MstDiff *out)
{
	MstError	err;
	NodeVec		ocur = {0},
				ncur = {0},
				onext = {0},
				nnext = {0};
	LeafVec		oleaves = {0},
				nleaves = {0};
	int			olayer = -1,
				nlayer,
				layer;
	size_t		opcap = 0;

	memset(out, 0, sizeof(*out));
	if ((err = mst_root(new_tree, NULL)) != MST_OK)
		return err;
	if (old)
	{
		if ((err = mst_root(old, NULL)) != MST_OK || (err = ensure_root(old)) != MST_OK)
		{
			memcpy(new_tree->errmsg, old->errmsg, ERRLEN);
			return err;
		}
		olayer = old->root->layer;
	}
	if ((err = ensure_root(new_tree)) != MST_OK)
		return err;
	nlayer = new_tree->root->layer;

	for (layer = olayer > nlayer ? olayer : nlayer; layer >= 0; layer--)
	{
		CidSet		oset,
					shared;
		NodeVec		tmp;

		if (layer == olayer)
			nodevec_push(&ocur, old->root);
		if (layer == nlayer)
			nodevec_push(&ncur, new_tree->root);
		cidset_init(&oset, ocur.n);
		cidset_init(&shared, ocur.n);
		for (size_t i = 0; i < ocur.n; i++)
			cidset_add(&oset, ocur.v[i]->cid);
		for (size_t i = 0; i < ncur.n && err == MST_OK; i++)
		{
			if (cidset_has(&oset, ncur.v[i]->cid))
				cidset_add(&shared, ncur.v[i]->cid);
			else
				err = diff_take(new_tree, ncur.v[i], &nnext, &nleaves,
								&out->nodes_added, put, ctx);
		}
		for (size_t i = 0; i < ocur.n && err == MST_OK; i++)
			if (!cidset_has(&shared, ocur.v[i]->cid))
			{
				err = diff_take(old, ocur.v[i], &onext, &oleaves,
								&out->nodes_removed, NULL, NULL);
				if (err != MST_OK)
					memcpy(new_tree->errmsg, old->errmsg, ERRLEN);
			}
		cidset_free(&oset);
		cidset_free(&shared);
		if (err != MST_OK)
			break;
		tmp = ocur;
		ocur = onext;
		onext = tmp;
		onext.n = 0;
		tmp = ncur;
		ncur = nnext;
		nnext = tmp;
		nnext.n = 0;
	}

	if (err == MST_OK)
	{
		size_t		i = 0,
					j = 0;

		if (oleaves.n > 1)
			qsort(oleaves.v, oleaves.n, sizeof(Leaf), leaf_cmp);
		if (nleaves.n > 1)
			qsort(nleaves.v, nleaves.n, sizeof(Leaf), leaf_cmp);
		while (i < oleaves.n || j < nleaves.n)
		{
			int			c = i == oleaves.n ? 1 : j == nleaves.n ? -1 :
				leaf_cmp(&oleaves.v[i], &nleaves.v[j]);

			if (c < 0)
				diff_op(out, &oleaves.v[i++], NULL, &opcap);
			else if (c > 0)
				diff_op(out, NULL, &nleaves.v[j++], &opcap);
			else
			{
				if (memcmp(oleaves.v[i].val, nleaves.v[j].val, CID_LEN) != 0)
					diff_op(out, &oleaves.v[i], &nleaves.v[j], &opcap);
				i++;
				j++;
			}
		}
	}

	rs_free(ocur.v);
	rs_free(ncur.v);
	rs_free(onext.v);
	rs_free(nnext.v);
	rs_free(oleaves.v);
	rs_free(nleaves.v);
	if (err != MST_OK)
		mst_diff_free(out);
	return err;
}

void
mst_diff_free(MstDiff *diff)
{
	for (size_t i = 0; i < diff->n_ops; i++)
		rs_free(diff->ops[i].key);
	rs_free(diff->ops);
	diff->ops = NULL;
	diff->n_ops = 0;
	mst_cid_list_free(&diff->nodes_added);
	mst_cid_list_free(&diff->nodes_removed);
}
