/*
 * mst_proof.c - covering proofs of a commit (atproto sync 1.1), as
 * @atproto/repo's getCoveringProof.
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

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
