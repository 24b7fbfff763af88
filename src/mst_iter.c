/*
 * mst_iter.c - streaming pre-order walk of a stored MST, for CAR export and
 * import: each node is fetched, checked and decoded when the walk reaches
 * it and dropped when the walk leaves it, so memory is one decoded node per
 * layer whatever the size of the tree.
 *
 * Order (the AT repository "preorder traversal"): a node, then its left
 * subtree, then for each entry its record and the subtree after it.  Every
 * block thus follows the block that links to it, and records come in key
 * order.
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

#include <stdio.h>

typedef struct IterFrame
{
	MstNodeData node;
	int			layer;
	size_t		pos;			/* next item: 0 left, 2i+1 leaf i, 2i+2 right of i */
} IterFrame;

struct MstIter
{
	MstStore	store;
	IterFrame	stack[MST_MAX_LAYER + 2];
	int			depth;			/* frames in use */
	bool		started;		/* the root was fetched */
	uint8_t		root[CID_LEN];
	bool		have_last;
	char		last[MST_MAX_KEY_LEN + 1];
	size_t		last_len;
	size_t		nodes;
	size_t		leaves;
	MstError	broken;
	char		errmsg[ERRLEN];
};

MstIter *
mst_iter_open(const MstStore *store, const uint8_t root[CID_LEN])
{
	MstIter    *it = rs_alloc(sizeof(MstIter));

	memset(it, 0, sizeof(*it));
	it->store = *store;
	memcpy(it->root, root, CID_LEN);
	return it;
}

void
mst_iter_free(MstIter *it)
{
	if (it == NULL)
		return;
	while (it->depth > 0)
		mst_node_data_free(&it->stack[--it->depth].node);
	rs_free(it);
}

const char *
mst_iter_errmsg(const MstIter *it)
{
	return it->errmsg;
}

void
mst_iter_counts(const MstIter *it, size_t *nodes, size_t *leaves)
{
	if (nodes)
		*nodes = it->nodes;
	if (leaves)
		*leaves = it->leaves;
}

static MstError
iter_fail(MstIter *it, MstError err)
{
	it->broken = err;
	return err;
}

/*
 * Fetch, check and push the node cid, expected at layer (-1 for the root,
 * whose layer its keys give), and describe it in item.
 */
static MstError
push_node(MstIter *it, const uint8_t cid[CID_LEN], int layer, MstIterItem *item)
{
	const uint8_t *data;
	size_t		len;
	uint8_t		digest[32];
	char		cb[CID_TEXT_LEN + 1];
	char		msg[ERRLEN];
	MstError	err;
	IterFrame  *f;
	bool		is_root = layer < 0;

	if (it->depth >= (int) (sizeof(it->stack) / sizeof(it->stack[0])))
		return iter_fail(it, TERR(it, MST_ERR_NONCANONICAL, "MST is deeper than %d layers",
								  MST_MAX_LAYER));
	err = it->store.get(it->store.ctx, cid, &data, &len);
	if (err == MST_ERR_MISSING_NODE)
		return iter_fail(it, TERR(it, err, "MST node %s is missing", show_cid(cb, cid)));
	if (err != MST_OK)
		return iter_fail(it, TERR(it, err, "MST node %s could not be read", show_cid(cb, cid)));
	if (cid[1] != CID_CODEC_DAG_CBOR)
		return iter_fail(it, TERR(it, MST_ERR_NODE_SHAPE, "MST link %s is not a dag-cbor CID",
								  show_cid(cb, cid)));
	rs_sha256(data, len, digest);
	if (memcmp(digest, cid + 4, 32) != 0)
		return iter_fail(it, TERR(it, MST_ERR_CID_MISMATCH, "MST node bytes do not hash to %s",
								  show_cid(cb, cid)));

	f = &it->stack[it->depth];
	if ((err = mst_node_decode(data, len, &f->node, msg, sizeof(msg))) != MST_OK)
		return iter_fail(it, TERR(it, err, "MST node %s: %s", show_cid(cb, cid), msg));
	it->depth++;
	if (is_root)
	{
		if (f->node.n == 0 && f->node.has_left)
			return iter_fail(it, TERR(it, MST_ERR_NONCANONICAL,
									  "MST root %s has no entries, only a left subtree",
									  show_cid(cb, cid)));
		layer = f->node.n == 0 ? 0 : f->node.layer;
	}
	else if (f->node.n == 0 && !f->node.has_left)
		return iter_fail(it, TERR(it, MST_ERR_NONCANONICAL, "MST inner node %s is empty",
								  show_cid(cb, cid)));
	else if (f->node.n > 0 && f->node.layer != layer)
		return iter_fail(it, TERR(it, MST_ERR_KEY_DEPTH, "MST node %s sits at layer %d, expected %d",
								  show_cid(cb, cid), f->node.layer, layer));
	if (layer == 0)
	{
		bool		sub = f->node.has_left;

		for (size_t i = 0; i < f->node.n && !sub; i++)
			sub = f->node.entries[i].has_right;
		if (sub)
			return iter_fail(it, TERR(it, MST_ERR_NONCANONICAL, "MST node %s at layer 0 has a subtree",
									  show_cid(cb, cid)));
	}
	f->layer = layer;
	f->pos = 0;
	it->nodes++;

	memset(item, 0, sizeof(*item));
	item->kind = MST_ITER_NODE;
	item->cid = cid;
	item->data = data;
	item->len = len;
	item->layer = layer;
	item->n_entries = f->node.n;
	return MST_OK;
}

MstError
mst_iter_next(MstIter *it, MstIterItem *item, bool *done)
{
	*done = false;
	if (it->broken != MST_OK)
		return it->broken;
	if (!it->started)
	{
		it->started = true;
		return push_node(it, it->root, -1, item);
	}
	while (it->depth > 0)
	{
		IterFrame  *f = &it->stack[it->depth - 1];
		size_t		pos = f->pos++;

		if (pos == 0)
		{
			if (f->node.has_left)
				return push_node(it, f->node.left, f->layer - 1, item);
			continue;
		}
		if (pos > 2 * f->node.n)
		{
			mst_node_data_free(&f->node);
			it->depth--;
			continue;
		}
		if (pos % 2 == 1)
		{
			MstNodeEntry *e = &f->node.entries[pos / 2];
			char		kb[160],
						pb[160];

			if (it->have_last && key_cmp(it->last, it->last_len, e->key, e->key_len) >= 0)
				return iter_fail(it, TERR(it, MST_ERR_KEY_ORDER,
										  "MST key \"%s\" does not sort after \"%s\"",
										  SHOW(kb, e->key, e->key_len),
										  SHOW(pb, it->last, it->last_len)));
			memcpy(it->last, e->key, e->key_len);
			it->last_len = e->key_len;
			it->have_last = true;
			it->leaves++;
			memset(item, 0, sizeof(*item));
			item->kind = MST_ITER_LEAF;
			item->cid = e->value;
			item->key = e->key;
			item->key_len = e->key_len;
			item->layer = f->layer;
			return MST_OK;
		}
		else
		{
			MstNodeEntry *e = &f->node.entries[pos / 2 - 1];

			if (e->has_right)
				return push_node(it, e->right, f->layer - 1, item);
		}
	}
	*done = true;
	return MST_OK;
}

void
mst_iter_skip(MstIter *it)
{
	if (it->broken == MST_OK && it->depth > 0 && it->stack[it->depth - 1].pos == 0)
	{
		mst_node_data_free(&it->stack[--it->depth].node);
	}
}

/* ------------------------------------------------------------- key paths */

MstError
mst_key_path(MstTree *t, const char *key, size_t len, MstPutFn put, void *ctx,
			 uint8_t value[CID_LEN], bool *found)
{
	MstError	err;
	MstNode    *n;

	*found = false;
	if ((err = check_usable(t)) != MST_OK || (err = check_key(t, key, len)) != MST_OK)
		return err;
	if ((err = mst_root(t, NULL)) != MST_OK)
		return err;
	for (n = t->root; n != NULL;)
	{
		bool		eq;
		uint32_t	i;

		if ((err = node_load(t, n)) != MST_OK)
			return maybe_break(t, err);
		if (put)
		{
			node_encode(n, &t->scratch);
			put(ctx, n->cid, t->scratch.data, t->scratch.len);
		}
		i = node_find(n, key, len, &eq);
		if (eq)
		{
			*found = true;
			if (value)
				memcpy(value, n->e[i].val, CID_LEN);
			return MST_OK;
		}
		n = *gap_ptr(n, i);
	}
	return MST_OK;
}
