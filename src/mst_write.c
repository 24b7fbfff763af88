/*
 * mst_write.c - output: root CID, root layer, persisting what changed
 * (mst_write), walks over records and node blocks, whole-tree verification.
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

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
