/*
 * mst.h - atproto Merkle Search Tree (pure C, no backend).
 *
 * Same key->CID set, same root CID as @atproto/repo: fanout 4 (a key's depth
 * is the number of leading zero bits of SHA-256(key) divided by 2), nodes
 * encoded as DAG-CBOR {e: [{k, p, t, v}], l} with prefix-compressed keys and
 * explicit nulls for absent subtrees.
 *
 * The tree lives in memory and is loaded lazily: a node is fetched from the
 * caller's store (MstStore) the first time an operation needs it, its bytes
 * are checked against its CID and decoded strictly.  Every node caches its
 * CID; an operation re-encodes and re-hashes only the nodes on the paths it
 * changed.  The result of any sequence of puts and deletes is the canonical
 * tree of the final key set, identical to mst_build() of that set.
 *
 * Errors: functions return an MstError; mst_errmsg() has a message naming
 * the offending key or CID.  After MST_ERR_MISSING_NODE, MST_ERR_STORE or a
 * decode error raised while an operation was already changing the tree, the
 * tree is marked broken and every later call returns the same error: free
 * it.  MST_ERR_KEY_SYNTAX, MST_ERR_DUPLICATE_KEY and MST_ERR_NOT_FOUND leave
 * the tree untouched.
 *
 * Memory comes from rs_alloc (palloc in the backend).  Not thread-safe.
 */
#ifndef RS_MST_H
#define RS_MST_H

#include "buf.h"
#include "cid.h"

/* Longest key, as atproto's isValidMstKey. */
#define MST_MAX_KEY_LEN 1024

/*
 * Most entries one node may hold, enforced when decoding and when encoding
 * (mst_root and friends fail with MST_ERR_NODE_TOO_BIG).  In a tree of
 * random keys a node holds 3 entries on average and more than 1024 with
 * probability (3/4)^1024; only keys ground for equal depth get near it.
 * At 1024 entries of at most ~1.1 kB, one node stays under a commit's 2 MB.
 */
#define MST_MAX_NODE_ENTRIES 1024

/* SHA-256 has 256 bits, so depths run 0..128. */
#define MST_MAX_LAYER 128

typedef enum MstError
{
	MST_OK = 0,
	MST_ERR_KEY_SYNTAX,			/* not collection/rkey with [a-zA-Z0-9_~-:.] */
	MST_ERR_DUPLICATE_KEY,		/* mst_build: key given twice; mst_insert: exists */
	MST_ERR_NOT_FOUND,			/* delete/update of an absent key */
	MST_ERR_CBOR,				/* node bytes are not valid DAG-CBOR */
	MST_ERR_NODE_SHAPE,			/* wrong type, missing or extra field */
	MST_ERR_KEY_ORDER,			/* keys not strictly increasing */
	MST_ERR_KEY_DEPTH,			/* key's depth differs from the node's layer */
	MST_ERR_PREFIX,				/* p longer than the previous key, or not the
								 * whole shared prefix */
	MST_ERR_NODE_TOO_BIG,		/* more than MST_MAX_NODE_ENTRIES entries */
	MST_ERR_NONCANONICAL,		/* empty inner node, subtree under layer 0,
								 * root with nothing but a left subtree */
	MST_ERR_CID_MISMATCH,		/* store returned bytes of another CID */
	MST_ERR_MISSING_NODE,		/* store does not have the node */
	MST_ERR_STORE				/* store callback failed */
} MstError;

const char *mst_strerror(MstError err);

/* ---- key helpers ---- */

/* atproto isValidMstKey. */
bool		mst_valid_key(const char *key, size_t len);

/* Leading zero bits of SHA-256(key), divided by two. */
int			mst_key_depth(const uint8_t *key, size_t len);

/* Length of the common prefix of a and b. */
size_t		mst_common_prefix(const uint8_t *a, size_t alen,
							  const uint8_t *b, size_t blen);

/* ---- node format ---- */

typedef struct MstNodeEntry
{
	char	   *key;			/* full key, NUL-terminated (rs_alloc) */
	size_t		key_len;
	uint8_t		value[CID_LEN];
	bool		has_right;		/* "t": subtree after this entry */
	uint8_t		right[CID_LEN];
} MstNodeEntry;

typedef struct MstNodeData
{
	bool		has_left;		/* "l": subtree before the first entry */
	uint8_t		left[CID_LEN];
	size_t		n;
	MstNodeEntry *entries;
	int			layer;			/* depth of the keys; -1 when there are none */
} MstNodeData;

/*
 * Strict decode of one node: exactly one DAG-CBOR map {e, l}, entries with
 * exactly {k: bytes, p: uint, t: link|null, v: link}, p == 0 on the first
 * entry and otherwise the exact shared prefix with the previous key, keys
 * valid and strictly increasing, all of one depth, at most
 * MST_MAX_NODE_ENTRIES.  errmsg (may be NULL) gets a message naming the
 * offending key.  On error *out is left empty.
 */
MstError	mst_node_decode(const uint8_t *data, size_t len, MstNodeData *out,
							char *errmsg, size_t errlen);
void		mst_node_data_free(MstNodeData *node);

/* Canonical encoding of a node (prefix lengths computed here). */
void		mst_node_encode(const MstNodeData *node, RsBuf *out);

/* ---- node store ---- */

/*
 * Fetch a node's bytes by CID.  Return MST_OK with *data and *len pointing at
 * bytes that stay valid until the next call, MST_ERR_MISSING_NODE if the
 * store does not have it, anything else on failure.  The backend may also
 * ereport(ERROR) from here.
 */
typedef MstError (*MstGetFn) (void *ctx, const uint8_t cid[CID_LEN],
							  const uint8_t **data, size_t *len);

/* Receive one block; the bytes are valid only during the call. */
typedef void (*MstPutFn) (void *ctx, const uint8_t cid[CID_LEN],
						  const uint8_t *data, size_t len);

typedef struct MstStore
{
	MstGetFn	get;
	void	   *ctx;
} MstStore;

typedef struct MstCidList
{
	uint8_t		(*cids)[CID_LEN];
	size_t		n;
	size_t		cap;
} MstCidList;

void		mst_cid_list_free(MstCidList *list);

/* ---- trees ---- */

typedef struct MstTree MstTree;

typedef struct MstKV
{
	const char *key;
	size_t		key_len;
	uint8_t		value[CID_LEN];
} MstKV;

/* An empty tree.  store may be NULL for trees that never load nodes. */
MstTree    *mst_new(const MstStore *store);

/* The tree under root, loaded lazily from store (the root node right away). */
MstError	mst_open(const MstStore *store, const uint8_t root[CID_LEN],
					 MstTree **out, char *errmsg, size_t errlen);

void		mst_free(MstTree *t);

const char *mst_errmsg(const MstTree *t);

/*
 * Build an empty tree from entries in any order (the tree must be empty:
 * otherwise MST_ERR_DUPLICATE_KEY).  Fails on an invalid or duplicate key
 * (the message names it) and leaves the tree empty.  Keys are copied.
 */
MstError	mst_build(MstTree *t, const MstKV *entries, size_t n);

/*
 * Root CID of the tree of entries (any order) without keeping the tree:
 * each node is encoded, hashed and handed to put (may be NULL) as soon as it
 * is complete, children before parents.  Memory is the sort plus one node
 * per layer.  Errors as mst_build (message in errmsg), and
 * MST_ERR_NODE_TOO_BIG.
 */
MstError	mst_build_root(const MstKV *entries, size_t n, MstPutFn put, void *ctx,
						   uint8_t root[CID_LEN], char *errmsg, size_t errlen);

/* Look a key up; *found says whether it is there. */
MstError	mst_get(MstTree *t, const char *key, size_t len,
					uint8_t value[CID_LEN], bool *found);

/*
 * Insert or update.  *had_prev (may be NULL) says whether the key was there,
 * prev (may be NULL) gets its old value.  Putting the same value is a no-op.
 */
MstError	mst_put(MstTree *t, const char *key, size_t len,
					const uint8_t value[CID_LEN],
					uint8_t prev[CID_LEN], bool *had_prev);

/* Insert only (MST_ERR_DUPLICATE_KEY if present) / update only (NOT_FOUND). */
MstError	mst_insert(MstTree *t, const char *key, size_t len,
					   const uint8_t value[CID_LEN]);
MstError	mst_update(MstTree *t, const char *key, size_t len,
					   const uint8_t value[CID_LEN], uint8_t prev[CID_LEN]);

/* Remove a key (MST_ERR_NOT_FOUND if absent); prev may be NULL. */
MstError	mst_delete(MstTree *t, const char *key, size_t len,
					   uint8_t prev[CID_LEN]);

/* Root CID, hashing only the nodes changed since the last call. */
MstError	mst_root(MstTree *t, uint8_t root[CID_LEN]);

/* Layer of the root node (0 for the empty tree). */
MstError	mst_layer(MstTree *t, int *layer);

/*
 * Persist: compute the root and hand every node the store does not hold yet
 * (built or changed since mst_open/mst_new or the last mst_write) to put.
 * removed (may be NULL) gets the CIDs of stored nodes that are no longer in
 * the tree, so the caller can garbage-collect them; a CID both dropped and
 * re-created is in neither list.
 */
MstError	mst_write(MstTree *t, MstPutFn put, void *ctx,
					  uint8_t root[CID_LEN], MstCidList *removed);

/* In-order walk of all records; stop early by returning false. */
typedef bool (*MstLeafFn) (void *ctx, const char *key, size_t len,
						   const uint8_t value[CID_LEN]);
MstError	mst_walk_leaves(MstTree *t, MstLeafFn fn, void *ctx);

/* Every node block of the tree, root first (pre-order), for CAR export. */
MstError	mst_walk_nodes(MstTree *t, MstPutFn put, void *ctx);

/*
 * Load every node and check the whole tree: per-node rules plus global key
 * order, subtree layers and canonical shape.  *count (may be NULL) gets the
 * number of records.
 */
MstError	mst_verify(MstTree *t, size_t *count);

/*
 * Covering proof for a commit (atproto sync 1.1): on the tree *after* the
 * commit, the union over every written key (created, updated or deleted) of
 * the nodes on the path to the key and on the inner edges of its left and
 * right neighbouring subtrees, as @atproto/repo's getCoveringProof.  With
 * these blocks a consumer inverts the ops and recomputes the previous root.
 * Each node is handed to put once (put may be NULL); out (may be NULL) gets
 * the CIDs.
 */
typedef struct MstKey
{
	const char *key;
	size_t		len;
} MstKey;

MstError	mst_covering_proof(MstTree *t, const MstKey *keys, size_t n,
							   MstPutFn put, void *ctx, MstCidList *out);

/*
 * The nodes on the path from the root to where key is, or would be, root
 * first, each handed to put (may be NULL): with them a reader that walks
 * the tree from the root (@atproto/repo's MST.get) finds the key's value or
 * proves it absent (com.atproto.sync.getRecord).  *found and value as
 * mst_get.
 */
MstError	mst_key_path(MstTree *t, const char *key, size_t len, MstPutFn put,
						 void *ctx, uint8_t value[CID_LEN], bool *found);

/* ---- streaming walk (mst_iter.c) ---- */

/*
 * A pre-order walk of a stored tree that holds one decoded node per layer,
 * never the whole tree: the AT repository's block order for CAR files.  It
 * yields a node, then its left subtree, then for each entry the entry's
 * leaf (key and record CID) and the subtree after it.  So every node comes
 * after the node that links to it and leaves come in key order.
 *
 * Every node is fetched from the store when the walk reaches it and checked
 * as mst_verify would: its bytes hash to its CID, it decodes strictly, its
 * layer is one below its parent's (the root's is that of its keys), no
 * inner node is empty, no layer-0 node has a subtree, the root is not a
 * lone left link, and keys increase across the whole walk.  Errors name the
 * node's CID or the key; after one, every call returns it.
 */
typedef struct MstIter MstIter;

typedef enum MstIterKind
{
	MST_ITER_NODE,
	MST_ITER_LEAF
} MstIterKind;

typedef struct MstIterItem
{
	MstIterKind kind;
	const uint8_t *cid;			/* NODE: the node's CID; LEAF: the value */
	const uint8_t *data;		/* NODE: the node's bytes */
	size_t		len;
	const char *key;			/* LEAF: the full key, NUL-terminated */
	size_t		key_len;
	int			layer;			/* of the node, or of the leaf's node */
	size_t		n_entries;		/* NODE: its entry count */
} MstIterItem;

/* Walk the tree under root (nothing is fetched until the first next). */
MstIter    *mst_iter_open(const MstStore *store, const uint8_t root[CID_LEN]);

/*
 * The next item; *done at the end.  Pointers in item stay valid until the
 * next call.  The store's get is called only when a NODE item comes next.
 */
MstError	mst_iter_next(MstIter *it, MstIterItem *item, bool *done);

/*
 * Right after a NODE item: skip the rest of that node (its leaves and
 * subtrees), as a diff does for a subtree the reader already holds.
 */
void		mst_iter_skip(MstIter *it);

const char *mst_iter_errmsg(const MstIter *it);
/* Nodes fetched and leaves yielded so far (either may be NULL). */
void		mst_iter_counts(const MstIter *it, size_t *nodes, size_t *leaves);
void		mst_iter_free(MstIter *it);

/* ---- diff ---- */

typedef struct MstRecordOp
{
	char	   *key;			/* NUL-terminated, owned by the diff */
	size_t		key_len;
	bool		has_old;		/* false: created */
	uint8_t		old_value[CID_LEN];
	bool		has_new;		/* false: deleted */
	uint8_t		new_value[CID_LEN];
} MstRecordOp;

typedef struct MstDiff
{
	MstCidList	nodes_added;	/* in new, not in old */
	MstCidList	nodes_removed;	/* in old, not in new */
	MstRecordOp *ops;			/* changed records in key order */
	size_t		n_ops;
} MstDiff;

/*
 * Diff two trees (old may be NULL for "nothing").  Only the nodes that
 * differ are loaded: subtrees with equal CIDs are skipped.  put (may be
 * NULL) receives the bytes of each added node.
 */
MstError	mst_diff(MstTree *old, MstTree *new_tree, MstPutFn put, void *ctx,
					 MstDiff *out);
void		mst_diff_free(MstDiff *diff);

#endif
