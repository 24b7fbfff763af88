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
