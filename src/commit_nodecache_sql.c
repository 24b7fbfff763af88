/*
 * commit_nodecache_sql.c - MST nodes by CID, cached per backend.
 *
 * Nodes are content-addressed, so a node read once is valid forever: the
 * next commit to the same repo finds its root and path nodes here instead
 * of in mst_nodes.  Past a budget the cache is dropped whole, at the end of
 * a transaction (never during one: callers hold pointers into it).
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "commit_int.h"

#define NODE_CACHE_BUDGET (64 * 1024 * 1024)

typedef struct NodeCacheEntry
{
	uint8		cid[CID_LEN];
	uint8	   *data;
	size_t		len;
} NodeCacheEntry;

static MemoryContext node_cache_cxt = NULL;
static HTAB *node_cache = NULL;
static size_t node_cache_bytes = 0;

static void
node_cache_reset(void)
{
	HASHCTL		ctl = {0};

	if (node_cache_cxt)
		MemoryContextReset(node_cache_cxt);
	else
		node_cache_cxt = AllocSetContextCreate(TopMemoryContext, "repo_stream node cache",
											   ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = CID_LEN;
	ctl.entrysize = sizeof(NodeCacheEntry);
	ctl.hcxt = node_cache_cxt;
	node_cache = hash_create("repo_stream node cache", 1024, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	node_cache_bytes = 0;
}

void
rs_node_cache_put(const uint8 cid[CID_LEN], const uint8 *data, size_t len)
{
	NodeCacheEntry *e;
	bool		found;

	if (node_cache == NULL)
		node_cache_reset();
	e = hash_search(node_cache, cid, HASH_ENTER, &found);
	if (!found)
	{
		e->data = MemoryContextAlloc(node_cache_cxt, len);
		memcpy(e->data, data, len);
		e->len = len;
		node_cache_bytes += len + sizeof(NodeCacheEntry);
	}
}

const uint8 *
rs_node_cache_get(const uint8 cid[CID_LEN], size_t *len)
{
	NodeCacheEntry *e;

	if (node_cache == NULL)
		return NULL;
	e = hash_search(node_cache, cid, HASH_FIND, NULL);
	if (e == NULL)
		return NULL;
	*len = e->len;
	return e->data;
}

void
rs_node_cache_trim(void)
{
	if (node_cache_bytes > NODE_CACHE_BUDGET)
		node_cache_reset();
}
