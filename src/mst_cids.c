/*
 * mst_cids.c - CID lists (MstCidList, handed to callers) and the CID set the
 * write, proof and diff walks use.
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

void
cidlist_push(MstCidList *l, const uint8_t cid[CID_LEN])
{
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 16;
		l->cids = rs_realloc(l->cids, l->cap * CID_LEN);
	}
	memcpy(l->cids[l->n++], cid, CID_LEN);
}

void
mst_cid_list_free(MstCidList *list)
{
	rs_free(list->cids);
	list->cids = NULL;
	list->n = list->cap = 0;
}

void
cidset_init(CidSet *s, size_t expect)
{
	size_t		cap = 16;

	while (cap < expect * 2)
		cap *= 2;
	s->cap = cap;
	s->n = 0;
	s->slot = rs_alloc(cap * CID_LEN);
	s->used = rs_alloc(cap);
	memset(s->used, 0, cap);
}

void
cidset_free(CidSet *s)
{
	rs_free(s->slot);
	rs_free(s->used);
	s->slot = NULL;
	s->used = NULL;
}

static inline size_t
cid_hash(const uint8_t *cid)
{
	uint64_t	h;

	memcpy(&h, cid + 4, sizeof(h));
	return (size_t) h;
}

static void
cidset_grow(CidSet *s)
{
	CidSet		old = *s;

	cidset_init(s, old.cap);
	for (size_t i = 0; i < old.cap; i++)
		if (old.used[i])
			cidset_add(s, old.slot[i]);
	cidset_free(&old);
}

/* True when cid was not in the set yet. */
bool
cidset_add(CidSet *s, const uint8_t *cid)
{
	size_t		i;

	if ((s->n + 1) * 2 > s->cap)
		cidset_grow(s);
	i = cid_hash(cid) & (s->cap - 1);
	while (s->used[i])
	{
		if (memcmp(s->slot[i], cid, CID_LEN) == 0)
			return false;
		i = (i + 1) & (s->cap - 1);
	}
	s->used[i] = 1;
	memcpy(s->slot[i], cid, CID_LEN);
	s->n++;
	return true;
}

bool
cidset_has(const CidSet *s, const uint8_t *cid)
{
	size_t		i = cid_hash(cid) & (s->cap - 1);

	while (s->used[i])
	{
		if (memcmp(s->slot[i], cid, CID_LEN) == 0)
			return true;
		i = (i + 1) & (s->cap - 1);
	}
	return false;
}
