/*
 * mst_int.h - the in-memory MST, private to src/mst_*.c: nothing else
 * includes it (the contract is in mst.h).
 *
 * Shape of the tree (all of it follows from the key set): the root sits at
 * the largest key depth; a node at layer L holds, in order, the keys of
 * depth L in its key range, and between two neighbours (and before the
 * first, after the last) a pointer to the layer L-1 node of the keys in that
 * gap, or null when the gap has none.  A node whose range has no key of
 * depth L but lower keys is just {e: [], l: child}.  Every edit (mst_edit.c)
 * keeps exactly this shape, which is why an edited tree hashes like a
 * rebuilt one.
 *
 * Files: mst_key.c (keys, messages), mst_codec.c (a node's bytes),
 * mst_node.c (in-memory nodes, lazy loading, hashing), mst_tree.c
 * (handles), mst_build.c (bulk builds), mst_edit.c (get, put, delete),
 * mst_write.c (root, persist, walks, verify), mst_proof.c, mst_diff.c,
 * mst_cids.c (CID lists and sets).
 */
#ifndef RS_MST_INT_H
#define RS_MST_INT_H

#include <string.h>

#include "cbor.h"
#include "mst.h"

/* The helpers below link across mst_*.c only: not exported by the library. */
#pragma GCC visibility push(hidden)

typedef struct MstNode MstNode;

typedef struct MstEnt
{
	char	   *key;			/* NUL-terminated; owned unless in_arena */
	uint16_t	klen;			/* <= MST_MAX_KEY_LEN */
	uint16_t	in_arena;		/* key lives in the tree's key arena */
	uint8_t		val[CID_LEN];
	MstNode    *right;			/* subtree after this key */
} MstEnt;

/*
 * What mst_build makes (keys, nodes, entry arrays) comes from big blocks
 * freed with the tree, not one allocation each.  Edits later replace those
 * pieces with individually allocated ones as they touch them.
 */
typedef struct Chunk
{
	struct Chunk *next;
	size_t		used;
	size_t		cap;
	char		data[];
} Chunk;

#define CHUNK_MIN (8 * 1024)
#define CHUNK_MAX (1024 * 1024)

struct MstNode
{
	MstNode    *left;			/* subtree before the first key */
	MstEnt	   *e;
	uint32_t	n;
	uint32_t	cap;
	int16_t		layer;			/* -1: root not loaded yet */
	uint8_t		bump;			/* BUMP_NODE, BUMP_ENTRIES: from a chunk */
	bool		loaded;			/* false: a stub knowing only its CID */
	bool		cid_ok;			/* cid matches the current content */
	bool		stored;			/* the store holds this node under cid */
	uint8_t		cid[CID_LEN];
};

struct MstTree
{
	MstStore	store;
	bool		has_store;
	MstNode    *root;
	MstCidList	removed;		/* stored nodes changed or dropped */
	RsBuf		scratch;		/* encoding buffer */
	Chunk	   *chunks;
	MstError	broken;
	char		errmsg[384];
};

#define ERRLEN 384

#define BUMP_NODE 1
#define BUMP_ENTRIES 2

/* Open-addressing set of CIDs (the digest is already uniformly spread). */
typedef struct CidSet
{
	uint8_t		(*slot)[CID_LEN];
	uint8_t    *used;
	size_t		cap;
	size_t		n;
} CidSet;

#define SHOW(buf, k, l) show_key((buf), sizeof(buf), (const uint8_t *) (k), (l))

#define TERR(t, code, ...) set_msg((t)->errmsg, ERRLEN, (code), __VA_ARGS__)

/* mst_cids.c */
/* Append a CID to a list (repeats kept). */
void		cidlist_push(MstCidList *l, const uint8_t cid[CID_LEN]);
/* An empty set with room for about expect CIDs; cidset_free releases it. */
void		cidset_init(CidSet *s, size_t expect);
void		cidset_free(CidSet *s);
/* Add a CID; true when it was not in the set yet. */
bool		cidset_add(CidSet *s, const uint8_t *cid);
/* Whether a CID is in the set. */
bool		cidset_has(const CidSet *s, const uint8_t *cid);

/* mst_key.c */
/* Why a key is not valid, for messages (NULL when it is). */
const char *key_problem(const char *key, size_t len);
/* Printable rendering of an untrusted key into dst (cap bytes); see SHOW. */
const char *show_key(char *dst, size_t cap, const uint8_t *key, size_t len);
/* A CID's text form into dst (CID_TEXT_LEN + 1 bytes). */
const char *show_cid(char *dst, const uint8_t cid[CID_LEN]);
/* Format a message into errmsg (may be NULL) and return code. */
MstError	set_msg(char *errmsg, size_t errlen, MstError code, const char *fmt,...)
			__attribute__((format(printf, 4, 5)));

/* mst_node.c */
/* A fresh, loaded, empty node at a layer. */
MstNode    *node_new(int layer);
/* A node known only by its CID (layer -1: the root), loaded on first use. */
MstNode    *stub_new(const uint8_t cid[CID_LEN], int layer);
/* size bytes from the tree's chunks, freed with the tree. */
void	   *bump_alloc(MstTree *t, size_t size);
/* Free one node whose children and keys went elsewhere or are freed. */
void		node_free_shallow(MstNode *n);
/* Free a node and its whole subtree. */
void		node_free_deep(MstNode *n);
/* Room for extra more entries (a chunk's array moves to one of its own). */
void		ent_reserve(MstNode *n, uint32_t extra);
/* A node leaves the tree; its entries were moved out or are freed here. */
void		drop(MstTree *t, MstNode *n);
/* Index of the first key >= key in a loaded node; *found when equal. */
uint32_t	node_find(const MstNode *n, const char *key, size_t klen, bool *found);
/* A NUL-terminated copy of a key (rs_alloc). */
char	   *key_dup(const char *key, size_t klen);
/* Insert an entry at index i, the key copied. */
void		ent_insert(MstNode *n, uint32_t i, const char *key, size_t klen,
					   const uint8_t val[CID_LEN], MstNode *right);
/* Fetch, check and decode a stub in place (nothing to do when loaded). */
MstError	node_load(MstTree *t, MstNode *node);
/* Encode a loaded node whose children all have current CIDs into b. */
void		node_encode(const MstNode *n, RsBuf *b);
/* Re-hash the changed nodes under n, children first. */
MstError	node_hash(MstTree *t, MstNode *n);

/* mst_tree.c */
/* The tree's sticky error, or MST_OK with errmsg cleared. */
MstError	check_usable(MstTree *t);
/* Mark the tree broken when an edit failed for a reason outside the input. */
MstError	maybe_break(MstTree *t, MstError err);
/* MST_ERR_KEY_SYNTAX, with a message, when key is not a valid MST key. */
MstError	check_key(MstTree *t, const char *key, size_t len);
/* Load the root node. */
MstError	ensure_root(MstTree *t);

/* Byte order of two keys, a prefix first. */
static inline int
key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int			c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

static inline void
key_release(MstEnt *e)
{
	if (!e->in_arena)
		rs_free(e->key);
}

static inline MstNode **
gap_ptr(MstNode *n, uint32_t i)
{
	return i == 0 ? &n->left : &n->e[i - 1].right;
}

static inline bool
node_empty(const MstNode *n)
{
	return n->n == 0 && n->left == NULL;
}

/* A node is about to change: its stored version, if any, goes away. */
static inline void
touch(MstTree *t, MstNode *n)
{
	if (n->stored)
	{
		cidlist_push(&t->removed, n->cid);
		n->stored = false;
	}
	n->cid_ok = false;
}

/* Fixed bytes: a one-character text key is 0x61 and the character. */
static inline void
put_field(RsBuf *b, char name)
{
	rs_buf_reserve(b, 2);
	b->data[b->len++] = 0x61;
	b->data[b->len++] = (uint8_t) name;
}

static inline void
put_link_or_null(RsBuf *b, const uint8_t *cid)
{
	if (cid)
		dcbor_put_link(b, cid, CID_LEN);
	else
		dcbor_put_null(b);
}

/* One entry {k, p, t, v}, keys in DAG-CBOR order. */
static inline void
put_entry(RsBuf *b, const char *prev, size_t prev_len, const char *key,
		  size_t klen, const uint8_t *right, const uint8_t *val)
{
	size_t		p = prev ? mst_common_prefix((const uint8_t *) prev, prev_len,
											 (const uint8_t *) key, klen) : 0;

	rs_buf_append_byte(b, 0xa4);
	put_field(b, 'k');
	dcbor_put_bytes(b, (const uint8_t *) key + p, klen - p);
	put_field(b, 'p');
	dcbor_put_uint(b, p);
	put_field(b, 't');
	put_link_or_null(b, right);
	put_field(b, 'v');
	dcbor_put_link(b, val, CID_LEN);
}

#pragma GCC visibility pop

#endif
