/*
 * mst_diff.c - diff of two trees: nodes added and removed, record ops,
 * loading only the nodes that differ.
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

#include <stdlib.h>

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
