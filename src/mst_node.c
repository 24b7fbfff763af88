/*
 * mst_node.c - in-memory nodes: allocation (one each, or from the chunks
 * mst_build fills), lazy loading from the store checked against the CID,
 * encoding, and re-hashing of the nodes an edit changed.
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

MstNode *
node_new(int layer)
{
	MstNode    *n = rs_alloc(sizeof(MstNode));

	memset(n, 0, sizeof(*n));
	n->layer = (int16_t) layer;
	n->loaded = true;
	return n;
}

MstNode *
stub_new(const uint8_t cid[CID_LEN], int layer)
{
	MstNode    *n = rs_alloc(sizeof(MstNode));

	memset(n, 0, sizeof(*n));
	n->layer = (int16_t) layer;
	n->cid_ok = true;
	n->stored = true;
	memcpy(n->cid, cid, CID_LEN);
	return n;
}

void *
bump_alloc(MstTree *t, size_t size)
{
	Chunk	   *c = t->chunks;
	void	   *p;

	size = (size + 7) & ~(size_t) 7;
	if (c == NULL || c->cap - c->used < size)
	{
		/* chunks double from small, so small trees stay small */
		size_t		cap = c ? c->cap * 2 : CHUNK_MIN;

		if (cap > CHUNK_MAX)
			cap = CHUNK_MAX;
		if (cap < size)
			cap = size;

		c = rs_alloc(sizeof(Chunk) + cap);
		c->cap = cap;
		c->used = 0;
		c->next = t->chunks;
		t->chunks = c;
	}
	p = c->data + c->used;
	c->used += size;
	return p;
}

/* Free one node whose children and keys went elsewhere or are freed. */
void
node_free_shallow(MstNode *n)
{
	for (uint32_t i = 0; i < n->n; i++)
		key_release(&n->e[i]);
	if (!(n->bump & BUMP_ENTRIES))
		rs_free(n->e);
	if (!(n->bump & BUMP_NODE))
		rs_free(n);
}

void
node_free_deep(MstNode *n)
{
	if (n == NULL)
		return;
	node_free_deep(n->left);
	for (uint32_t i = 0; i < n->n; i++)
		node_free_deep(n->e[i].right);
	node_free_shallow(n);
}

void
ent_reserve(MstNode *n, uint32_t extra)
{
	uint32_t	need = n->n + extra;

	if (need <= n->cap)
		return;
	n->cap = n->cap ? n->cap : 4;
	while (n->cap < need)
		n->cap *= 2;
	if (n->bump & BUMP_ENTRIES)
	{
		/* a chunk's array cannot grow: move to one of our own */
		MstEnt	   *e = rs_alloc((size_t) n->cap * sizeof(MstEnt));

		memcpy(e, n->e, (size_t) n->n * sizeof(MstEnt));
		n->e = e;
		n->bump &= ~BUMP_ENTRIES;
	}
	else
		n->e = rs_realloc(n->e, (size_t) n->cap * sizeof(MstEnt));
}

/* A node leaves the tree; its entries were moved out or are freed here. */
void
drop(MstTree *t, MstNode *n)
{
	if (n->stored)
		cidlist_push(&t->removed, n->cid);
	node_free_shallow(n);
}

/* Index of the first key >= key; *found when equal. */
uint32_t
node_find(const MstNode *n, const char *key, size_t klen, bool *found)
{
	uint32_t	lo = 0,
				hi = n->n;

	*found = false;
	while (lo < hi)
	{
		uint32_t	mid = lo + (hi - lo) / 2;
		int			c = key_cmp(n->e[mid].key, n->e[mid].klen, key, klen);

		if (c < 0)
			lo = mid + 1;
		else
		{
			if (c == 0)
				*found = true;
			hi = mid;
		}
	}
	return lo;
}

char *
key_dup(const char *key, size_t klen)
{
	char	   *k = rs_alloc(klen + 1);

	memcpy(k, key, klen);
	k[klen] = '\0';
	return k;
}

void
ent_insert(MstNode *n, uint32_t i, const char *key, size_t klen,
		   const uint8_t val[CID_LEN], MstNode *right)
{
	MstEnt	   *e;

	ent_reserve(n, 1);
	memmove(&n->e[i + 1], &n->e[i], (size_t) (n->n - i) * sizeof(MstEnt));
	e = &n->e[i];
	e->key = key_dup(key, klen);
	e->klen = (uint16_t) klen;
	e->in_arena = 0;
	memcpy(e->val, val, CID_LEN);
	e->right = right;
	n->n++;
}

/* Fetch, check and decode a stub in place. */
MstError
node_load(MstTree *t, MstNode *node)
{
	const uint8_t *data = NULL;
	size_t		len = 0;
	uint8_t		cid[CID_LEN];
	char		cb[CID_TEXT_LEN + 1];
	char		msg[ERRLEN - 80];
	MstNodeData nd;
	MstError	err;

	if (node->loaded)
		return MST_OK;
	if (!t->has_store)
		return TERR(t, MST_ERR_MISSING_NODE, "MST node %s is not available: the tree has no store",
					show_cid(cb, node->cid));
	err = t->store.get(t->store.ctx, node->cid, &data, &len);
	if (err == MST_ERR_MISSING_NODE)
		return TERR(t, err, "MST node %s is missing from the store", show_cid(cb, node->cid));
	if (err != MST_OK)
		return TERR(t, MST_ERR_STORE, "MST node store failed to fetch %s", show_cid(cb, node->cid));
	cid_for_dagcbor(data, len, cid);
	if (memcmp(cid, node->cid, CID_LEN) != 0)
		return TERR(t, MST_ERR_CID_MISMATCH, "MST node store returned bytes that do not hash to %s",
					show_cid(cb, node->cid));
	err = mst_node_decode(data, len, &nd, msg, sizeof(msg));
	if (err != MST_OK)
		return TERR(t, err, "%s (node %s)", msg, show_cid(cb, node->cid));

	if (node->layer < 0)
	{
		/* the root: its keys say its layer */
		if (nd.n == 0 && nd.has_left)
		{
			mst_node_data_free(&nd);
			return TERR(t, MST_ERR_NONCANONICAL,
						"MST root %s has no entries, only a left subtree", show_cid(cb, node->cid));
		}
		node->layer = (int16_t) (nd.n ? nd.layer : 0);
	}
	else if (nd.n == 0)
	{
		if (!nd.has_left)
		{
			mst_node_data_free(&nd);
			return TERR(t, MST_ERR_NONCANONICAL, "MST inner node %s is empty",
						show_cid(cb, node->cid));
		}
	}
	else if (nd.layer != node->layer)
	{
		char		kb[160];
		int			depth = nd.layer;

		SHOW(kb, nd.entries[0].key, nd.entries[0].key_len);
		mst_node_data_free(&nd);
		return TERR(t, MST_ERR_KEY_DEPTH, "MST key \"%s\" has depth %d but node %s sits at layer %d",
					kb, depth, show_cid(cb, node->cid), node->layer);
	}
	if (node->layer == 0)
	{
		bool		sub = nd.has_left;

		for (size_t i = 0; i < nd.n && !sub; i++)
			sub = nd.entries[i].has_right;
		if (sub)
		{
			mst_node_data_free(&nd);
			return TERR(t, MST_ERR_NONCANONICAL, "MST node %s at layer 0 has a subtree",
						show_cid(cb, node->cid));
		}
	}

	node->e = rs_alloc((nd.n ? nd.n : 1) * sizeof(MstEnt));
	node->cap = (uint32_t) (nd.n ? nd.n : 1);
	node->n = (uint32_t) nd.n;
	node->left = nd.has_left ? stub_new(nd.left, node->layer - 1) : NULL;
	for (size_t i = 0; i < nd.n; i++)
	{
		MstEnt	   *e = &node->e[i];

		e->key = nd.entries[i].key;
		e->klen = (uint16_t) nd.entries[i].key_len;
		e->in_arena = 0;
		memcpy(e->val, nd.entries[i].value, CID_LEN);
		e->right = nd.entries[i].has_right ?
			stub_new(nd.entries[i].right, node->layer - 1) : NULL;
	}
	rs_free(nd.entries);
	node->loaded = true;
	return MST_OK;
}

/* Encode a loaded node whose children all have current CIDs. */
void
node_encode(const MstNode *n, RsBuf *b)
{
	const char *prev = NULL;
	size_t		prev_len = 0;

	b->len = 0;
	rs_buf_reserve(b, 8 + (size_t) n->n * 96);
	rs_buf_append_byte(b, 0xa2);
	put_field(b, 'e');
	dcbor_put_array(b, n->n);
	for (uint32_t i = 0; i < n->n; i++)
	{
		const MstEnt *e = &n->e[i];

		put_entry(b, prev, prev_len, e->key, e->klen,
				  e->right ? e->right->cid : NULL, e->val);
		prev = e->key;
		prev_len = e->klen;
	}
	put_field(b, 'l');
	put_link_or_null(b, n->left ? n->left->cid : NULL);
}

/* Re-hash the changed nodes under n, children first. */
MstError
node_hash(MstTree *t, MstNode *n)
{
	MstError	err;

	if (n->cid_ok)
		return MST_OK;
	if (n->left && !n->left->cid_ok && (err = node_hash(t, n->left)) != MST_OK)
		return err;
	for (uint32_t i = 0; i < n->n; i++)
		if (n->e[i].right && !n->e[i].right->cid_ok &&
			(err = node_hash(t, n->e[i].right)) != MST_OK)
			return err;
	if (n->n > MST_MAX_NODE_ENTRIES)
	{
		char		kb[160];

		return TERR(t, MST_ERR_NODE_TOO_BIG,
					"MST node at layer %d would hold %u entries (from key \"%s\"), at most %d are allowed",
					n->layer, n->n, SHOW(kb, n->e[0].key, n->e[0].klen), MST_MAX_NODE_ENTRIES);
	}
	node_encode(n, &t->scratch);
	cid_for_dagcbor(t->scratch.data, t->scratch.len, n->cid);
	n->cid_ok = true;
	return MST_OK;
}
