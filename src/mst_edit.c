/*
 * mst_edit.c - point edits and lookups: get, put, insert, update, delete.
 * Each keeps the canonical shape described in mst_int.h.
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

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
