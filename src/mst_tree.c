/*
 * mst_tree.c - tree handles: new, open, free, the error state, and the checks
 * each public call starts with.
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

MstTree *
mst_new(const MstStore *store)
{
	MstTree    *t = rs_alloc(sizeof(MstTree));

	memset(t, 0, sizeof(*t));
	if (store && store->get)
	{
		t->store = *store;
		t->has_store = true;
	}
	t->root = node_new(0);
	rs_buf_init(&t->scratch, 1024);
	return t;
}

MstError
mst_open(const MstStore *store, const uint8_t root[CID_LEN], MstTree **out,
		 char *errmsg, size_t errlen)
{
	MstTree    *t = mst_new(store);
	MstError	err;

	node_free_shallow(t->root);
	t->root = stub_new(root, -1);
	err = node_load(t, t->root);
	if (err != MST_OK)
	{
		set_msg(errmsg, errlen, err, "%s", t->errmsg);
		mst_free(t);
		*out = NULL;
		return err;
	}
	*out = t;
	return MST_OK;
}

void
mst_free(MstTree *t)
{
	if (t == NULL)
		return;
	node_free_deep(t->root);
	while (t->chunks)
	{
		Chunk	   *next = t->chunks->next;

		rs_free(t->chunks);
		t->chunks = next;
	}
	mst_cid_list_free(&t->removed);
	rs_buf_free(&t->scratch);
	rs_free(t);
}

const char *
mst_errmsg(const MstTree *t)
{
	return t->errmsg;
}

MstError
check_usable(MstTree *t)
{
	if (t->broken != MST_OK)
		return t->broken;			/* message kept from the failure */
	t->errmsg[0] = '\0';
	return MST_OK;
}

/* An edit failed half-way for a reason outside the caller's input. */
MstError
maybe_break(MstTree *t, MstError err)
{
	if (err != MST_OK && err != MST_ERR_NOT_FOUND &&
		err != MST_ERR_DUPLICATE_KEY && err != MST_ERR_KEY_SYNTAX)
		t->broken = err;
	return err;
}

MstError
check_key(MstTree *t, const char *key, size_t len)
{
	char		kb[160];

	if (!mst_valid_key(key, len))
		return TERR(t, MST_ERR_KEY_SYNTAX, "invalid MST key \"%s\": %s", SHOW(kb, key, len),
					key_problem(key, len));
	return MST_OK;
}

MstError
ensure_root(MstTree *t)
{
	return node_load(t, t->root);
}
