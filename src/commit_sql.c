/*
 * commit_sql.c - the write path.
 *
 * During a transaction the records trigger logs what changed ("ops") and
 * the repo functions log markers (created, account change, key rotation,
 * deletion) on one timeline.  At pre-commit each touched repo replays its
 * timeline: ops are coalesced per path, applied to the repo's MST in chunks
 * of at most RS_MAX_COMMIT_OPS ops and about RS_MAX_COMMIT_BYTES of blocks,
 * and every chunk becomes a signed commit and a #commit frame.  The frames
 * get their seqs and land in the event log inside the same transaction, so
 * an aborted transaction leaves nothing and a committed one leaves all.
 *
 * Subtransactions: the timeline only grows at its tail, so rolling back to
 * a savepoint truncates it to the length it had when the savepoint began.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "car.h"
#include "cbor.h"
#include "commit.h"
#include "commit_sql.h"
#include "eventlog_sql.h"
#include "frame.h"
#include "keys.h"
#include "keys_sql.h"
#include "mst.h"
#include "spi_sql.h"
#include "syntax_sql.h"
#include "tid.h"
#include "views_sql.h"

bool		rs_suppress_ops = false;

/* This transaction appended events: wake the views worker at COMMIT. */
static bool events_appended = false;

typedef enum EntryKind
{
	ENTRY_OP,
	ENTRY_CREATED,
	ENTRY_ACCOUNT,
	ENTRY_ROTATION,
	ENTRY_DELETED
} EntryKind;

typedef struct TimelineEntry
{
	EntryKind	kind;
	int			repo;			/* index into pending.repos */
	/* ENTRY_OP */
	char	   *path;
	bool		exists;
	uint8		cid[CID_LEN];
	/* ENTRY_ACCOUNT */
	bool		active;
	const char *status;
	/* ENTRY_ROTATION */
	bytea	   *sealed;
	char	   *did_key;
} TimelineEntry;

typedef struct PendingRepo
{
	char	   *did;
	bool		locked;
	SubTransactionId lock_subid;
	/* the repo row as the lock read it, in TopTransactionContext */
	bool		have_state;
	bytea	   *data_cid;
	char	   *head_rev;
	bytea	   *sealed;
	char	   *did_key;
} PendingRepo;

typedef struct SavePoint
{
	SubTransactionId subid;
	int			n_entries;
} SavePoint;

typedef struct BlockEntry
{
	uint8		cid[CID_LEN];	/* hash key */
	uint8	   *data;
	size_t		len;
} BlockEntry;

/* All of it lives in TopTransactionContext and dies with the transaction. */
static struct
{
	bool		active;
	PendingRepo *repos;
	int			n_repos,
				cap_repos;
	HTAB	   *repo_index;		/* did -> index */
	TimelineEntry *entries;
	int			n_entries,
				cap_entries;
	HTAB	   *blocks;			/* record CID -> DAG-CBOR bytes */
	SavePoint  *savepoints;
	int			n_savepoints,
				cap_savepoints;
}			pending;

typedef struct RepoIndexEntry
{
	char		did[2049];		/* DIDs are at most 2048 characters */
	int			index;
} RepoIndexEntry;

/* ------------------------------------------------------------ node cache */

/*
 * MST nodes are content-addressed, so a node read once is valid forever:
 * cache them per backend and skip the SQL round trip on the next commit.
 */
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
	if (node_cache_cxt)
		MemoryContextReset(node_cache_cxt);
	else
		node_cache_cxt = AllocSetContextCreate(TopMemoryContext, "repo_stream node cache",
											   ALLOCSET_DEFAULT_SIZES);
	{
		HASHCTL		ctl = {0};

		ctl.keysize = CID_LEN;
		ctl.entrysize = sizeof(NodeCacheEntry);
		ctl.hcxt = node_cache_cxt;
		node_cache = hash_create("repo_stream node cache", 1024, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	node_cache_bytes = 0;
}

static void
node_cache_put(const uint8 cid[CID_LEN], const uint8 *data, size_t len)
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

static NodeCacheEntry *
node_cache_get(const uint8 cid[CID_LEN])
{
	if (node_cache == NULL)
		return NULL;
	return hash_search(node_cache, cid, HASH_FIND, NULL);
}

/* ------------------------------------------------------ timeline upkeep */

static void
pending_start(void)
{
	MemoryContext old;
	HASHCTL		ctl = {0};

	if (pending.active)
		return;
	old = MemoryContextSwitchTo(TopTransactionContext);
	pending.cap_repos = 8;
	pending.repos = palloc(sizeof(PendingRepo) * pending.cap_repos);
	pending.cap_entries = 64;
	pending.entries = palloc(sizeof(TimelineEntry) * pending.cap_entries);
	ctl.keysize = sizeof(((RepoIndexEntry *) 0)->did);
	ctl.entrysize = sizeof(RepoIndexEntry);
	ctl.hcxt = TopTransactionContext;
	pending.repo_index = hash_create("repo_stream pending repos", 16, &ctl,
									 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	ctl.keysize = CID_LEN;
	ctl.entrysize = sizeof(BlockEntry);
	pending.blocks = hash_create("repo_stream pending blocks", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	pending.n_repos = pending.n_entries = 0;
	pending.active = true;
	MemoryContextSwitchTo(old);
}

static void
pending_reset(void)
{
	/* the memory itself goes with TopTransactionContext */
	memset(&pending, 0, sizeof(pending));
	rs_suppress_ops = false;
	if (node_cache_bytes > NODE_CACHE_BUDGET)
		node_cache_reset();
}

static int
repo_slot(const char *did)
{
	RepoIndexEntry *e;
	bool		found;

	pending_start();
	if (strlen(did) > 2048)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("DID is longer than 2048 characters")));
	e = hash_search(pending.repo_index, did, HASH_ENTER, &found);
	if (!found)
	{
		PendingRepo *r;

		if (pending.n_repos == pending.cap_repos)
		{
			pending.cap_repos *= 2;
			pending.repos = repalloc(pending.repos, sizeof(PendingRepo) * pending.cap_repos);
		}
		r = &pending.repos[pending.n_repos];
		r->did = MemoryContextStrdup(TopTransactionContext, did);
		r->locked = false;
		r->have_state = false;
		e->index = pending.n_repos++;
	}
	return e->index;
}

static TimelineEntry *
timeline_append(EntryKind kind, const char *did)
{
	int			repo = repo_slot(did);
	TimelineEntry *t;

	if (pending.n_entries == pending.cap_entries)
	{
		pending.cap_entries *= 2;
		pending.entries = repalloc_huge(pending.entries, sizeof(TimelineEntry) * pending.cap_entries);
	}
	t = &pending.entries[pending.n_entries++];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->repo = repo;
	return t;
}

/*
 * Reads the repo's state into r and caches its root node.  Runs inside
 * rs_enter_owner; the values live in the memory context that was current
 * when it was entered.  False if there is no such repo.
 */
static bool
read_repo_state(PendingRepo *r, char **status)
{
	Datum		arg = CStringGetTextDatum(r->did);
	bytea	   *root;

	if (rs_exec(PLAN_REPO_STATE, &arg, NULL) == 0)
		return false;
	*status = rs_gettext(0, 1);
	r->data_cid = rs_getbytea(0, 2);
	r->head_rev = rs_gettext(0, 3);
	r->sealed = rs_getbytea(0, 4);
	r->did_key = rs_gettext(0, 5);
	/* the root changes with every commit: save the next one a lookup */
	root = rs_getbytea(0, 6);
	if (root != NULL && r->data_cid != NULL)
		node_cache_put((uint8 *) VARDATA_ANY(r->data_cid),
					   (uint8 *) VARDATA_ANY(root), VARSIZE_ANY_EXHDR(root));
	r->have_state = true;
	return true;
}

void
rs_touch_repo(const char *did)
{
	int			i = repo_slot(did);
	PendingRepo *r = &pending.repos[i];
	RsOwnerContext oc;
	Datum		arg;
	char	   *status = NULL;
	MemoryContext old;

	if (r->locked)
		return;

	arg = CStringGetTextDatum(did);
	/* the state must last until pre-commit */
	old = MemoryContextSwitchTo(TopTransactionContext);
	rs_enter_owner(&oc);
	if (rs_exec(PLAN_REPO_LOCK, &arg, NULL) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did),
				 errhint("Create it with repo_stream.create_repo().")));
	/*
	 * Read the state only now that the lock is ours: a key rotation we
	 * waited for is committed, and this statement's snapshot sees it.
	 */
	(void) read_repo_state(r, &status);
	rs_leave_owner(&oc);
	MemoryContextSwitchTo(old);

	if (strcmp(status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("repo \"%s\" is %s", did, status),
				 strcmp(status, "deactivated") == 0 ?
				 errhint("Reactivate it with repo_stream.activate_repo().") : 0));
	r->locked = true;
	r->lock_subid = GetCurrentSubTransactionId();
}

void
rs_note_block(const uint8 cid[CID_LEN], const uint8 *data, size_t len)
{
	BlockEntry *b;
	bool		found;

	pending_start();
	b = hash_search(pending.blocks, cid, HASH_ENTER, &found);
	if (!found)
	{
		b->data = MemoryContextAlloc(TopTransactionContext, len);
		memcpy(b->data, data, len);
		b->len = len;
	}
}

void
rs_note_op(const char *did, const char *collection, const char *rkey,
		   bool exists, const uint8 cid[CID_LEN])
{
	TimelineEntry *t = timeline_append(ENTRY_OP, did);

	t->path = MemoryContextAlloc(TopTransactionContext, strlen(collection) + strlen(rkey) + 2);
	sprintf(t->path, "%s/%s", collection, rkey);
	t->exists = exists;
	if (exists)
		memcpy(t->cid, cid, CID_LEN);
}

void
rs_note_created(const char *did)
{
	timeline_append(ENTRY_CREATED, did);
}

void
rs_note_account(const char *did, bool active, const char *status)
{
	TimelineEntry *t = timeline_append(ENTRY_ACCOUNT, did);

	t->active = active;
	t->status = status;			/* a string literal */
}

void
rs_note_rotation(const char *did, const bytea *sealed, const char *did_key)
{
	TimelineEntry *t = timeline_append(ENTRY_ROTATION, did);
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

	t->sealed = (bytea *) pg_detoast_datum_copy((struct varlena *) sealed);
	t->did_key = pstrdup(did_key);
	MemoryContextSwitchTo(old);
}

void
rs_note_deleted(const char *did)
{
	timeline_append(ENTRY_DELETED, did);
}

/* ------------------------------------------------------------ pipeline */

/* A frame waiting for its seq (in the pre-commit work context). */
typedef struct QueuedFrame
{
	struct RepoRun *run;		/* gets the seq of its last event */
	RsPendingEvent ev;
	FrameCommit commit;
	FrameAccount account;
	FrameSync sync;
} QueuedFrame;

typedef struct RepoRun
{
	PendingRepo *repo;
	MstTree    *tree;
	MstStore	store;
	bool		has_root;
	uint8		root[CID_LEN];
	char	   *rev;			/* head rev, NULL before the first commit */
	bytea	   *sealed;
	char	   *did_key;
	char	   *head_cid;
	bytea	   *head_commit;
	/* node bookkeeping across chunks: net inserts and deletes */
	HTAB	   *node_inserts;	/* cid -> bytes */
	HTAB	   *node_deletes;	/* cid */
	/* blocks of the chunk being built */
	HTAB	   *chunk_seen;
	RsBuf		car;
	bool		deleted;
	int64		last_seq;		/* of the run's last event; 0 if none */
} RepoRun;

static QueuedFrame **queue;
static int	n_queue,
			cap_queue;
static char now_iso[FRAME_TIME_LEN + 1];

static void
queue_frame(QueuedFrame *f)
{
	if (n_queue == cap_queue)
	{
		cap_queue = cap_queue ? cap_queue * 2 : 16;
		queue = queue ? repalloc(queue, sizeof(QueuedFrame *) * cap_queue)
			: palloc(sizeof(QueuedFrame *) * cap_queue);
	}
	queue[n_queue++] = f;
}

static MstError
store_get(void *ctx, const uint8 cid[CID_LEN], const uint8 **data, size_t *len)
{
	RepoRun    *run = ctx;
	NodeCacheEntry *e = node_cache_get(cid);
	bytea	   *node;

	if (e == NULL && run->node_inserts)
	{
		BlockEntry *b = hash_search(run->node_inserts, cid, HASH_FIND, NULL);

		if (b)
		{
			*data = b->data;
			*len = b->len;
			return MST_OK;
		}
	}
	if (e == NULL)
	{
		node = rs_fetch_node(run->repo->did, cid);
		if (node == NULL)
			return MST_ERR_MISSING_NODE;
		node_cache_put(cid, (uint8 *) VARDATA_ANY(node), VARSIZE_ANY_EXHDR(node));
		pfree(node);
		e = node_cache_get(cid);
	}
	*data = e->data;
	*len = e->len;
	return MST_OK;
}

static void
mst_check(MstError err, RepoRun *run, const char *what)
{
	if (err != MST_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("repo \"%s\": MST %s failed: %s", run->repo->did, what,
						run->tree ? mst_errmsg(run->tree) : mst_strerror(err))));
}

static HTAB *
cid_set(const char *name, Size entrysize)
{
	HASHCTL		ctl = {0};

	ctl.keysize = CID_LEN;
	ctl.entrysize = entrysize;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Add a block to the chunk's CAR once. */
static void
car_add(RepoRun *run, const uint8 cid[CID_LEN], const uint8 *data, size_t len)
{
	bool		found;

	hash_search(run->chunk_seen, cid, HASH_ENTER, &found);
	if (!found)
		car_write_block(&run->car, cid, data, len);
}

/* mst_write callback: a new node is stored, cached and sent in the CAR. */
static void
node_written(void *ctx, const uint8 cid[CID_LEN], const uint8 *data, size_t len)
{
	RepoRun    *run = ctx;
	BlockEntry *b;
	bool		found;

	car_add(run, cid, data, len);
	/* dropped earlier in this transaction and back again: its row stays */
	hash_search(run->node_deletes, cid, HASH_REMOVE, &found);
	if (found)
		return;
	b = hash_search(run->node_inserts, cid, HASH_ENTER, &found);
	if (!found)
	{
		b->data = palloc(len);
		memcpy(b->data, data, len);
		b->len = len;
	}
}

static void
proof_node(void *ctx, const uint8 cid[CID_LEN], const uint8 *data, size_t len)
{
	car_add((RepoRun *) ctx, cid, data, len);
}

/* A rev greater than the previous one, normally just a fresh TID. */
static char *
next_rev(const char *prev)
{
	char	   *rev = palloc(TID_LEN + 1);

	rs_tid_next(rev);
	if (prev != NULL && strcmp(rev, prev) <= 0)
	{
		uint64		us;
		uint32		clock_id;

		/* another backend's rev is ahead of our clock: step just past it */
		if (!tid_decode(prev, strlen(prev), &us, &clock_id))
			elog(ERROR, "stored rev \"%s\" is not a TID", prev);
		if (clock_id == TID_CLOCK_ID_MAX)
		{
			us++;
			clock_id = 0;
		}
		else
			clock_id++;
		if (!tid_encode(us, clock_id, rev))
			elog(ERROR, "rev overflow after \"%s\"", prev);
	}
	return rev;
}

static char *
cid_text(const uint8 cid[CID_LEN])
{
	char	   *s = palloc(CID_TEXT_LEN + 1);

	cid_format(cid, s);
	return s;
}

/* Sign a commit over the current tree root; sets the run's head. */
static void
make_commit(RepoRun *run, const uint8 root[CID_LEN], uint8 commit_cid[CID_LEN], RsBuf *signed_out)
{
	RepoCommit	c = {0};
	RsBuf		unsigned_bytes;
	char	   *rev = next_rev(run->rev);

	c.did = run->repo->did;
	c.did_len = strlen(run->repo->did);
	c.rev = rev;
	c.rev_len = TID_LEN;
	memcpy(c.data, root, CID_LEN);
	rs_buf_init(&unsigned_bytes, 256);
	commit_encode_unsigned(&c, &unsigned_bytes);
	/* a commit is signed by the key the repo row names, or not at all */
	rs_keys_sign((const uint8 *) VARDATA_ANY(run->sealed), VARSIZE_ANY_EXHDR(run->sealed),
				 unsigned_bytes.data, unsigned_bytes.len, run->did_key, c.sig);
	c.has_sig = true;
	rs_buf_free(&unsigned_bytes);
	rs_buf_init(signed_out, 256);
	commit_encode_signed(&c, signed_out);
	cid_for_dagcbor(signed_out->data, signed_out->len, commit_cid);

	run->rev = rev;
	run->head_cid = cid_text(commit_cid);
	run->head_commit = rs_bytea(signed_out->data, signed_out->len);
	memcpy(run->root, root, CID_LEN);
	run->has_root = true;
}

static void
encode_commit_frame(const void *payload, int64 seq, RsBuf *out)
{
	frame_encode_commit(&((const QueuedFrame *) payload)->commit, seq, out);
}

static void
encode_account_frame(const void *payload, int64 seq, RsBuf *out)
{
	frame_encode_account(&((const QueuedFrame *) payload)->account, seq, out);
}

static void
encode_sync_frame(const void *payload, int64 seq, RsBuf *out)
{
	frame_encode_sync(&((const QueuedFrame *) payload)->sync, seq, out);
}

static QueuedFrame *
new_frame(RepoRun *run, const char *kind, void (*encode) (const void *, int64, RsBuf *))
{
	QueuedFrame *f = palloc0(sizeof(QueuedFrame));

	f->run = run;
	f->ev.did = pstrdup(run->repo->did);
	f->ev.kind = kind;
	f->ev.encode = encode;
	f->ev.payload = f;
	return f;
}

static void *
palloc_copy(const void *data, size_t len)
{
	void	   *p = palloc(len ? len : 1);

	memcpy(p, data, len);
	return p;
}

/* One coalesced op: the path's state before the commit and after. */
typedef struct EffectiveOp
{
	const char *path;
	bool		exists;
	uint8		cid[CID_LEN];
	bool		had;
	uint8		prev[CID_LEN];
	size_t		block_len;
} EffectiveOp;

static int
op_entry_cmp(const void *a, const void *b)
{
	const TimelineEntry *x = *(const TimelineEntry *const *) a;
	const TimelineEntry *y = *(const TimelineEntry *const *) b;
	int			c = strcmp(x->path, y->path);

	if (c != 0)
		return c;
	return x < y ? -1 : (x > y ? 1 : 0);	/* timeline order */
}

/*
 * Emit one #commit for ops[0..n): apply them, sign, and build the frame
 * with the CAR slice (commit, new nodes, new records, proof nodes).
 */
static void
emit_commit_chunk(RepoRun *run, EffectiveOp *ops, int n)
{
	QueuedFrame *f = new_frame(run, "commit", encode_commit_frame);
	FrameCommit *fc = &f->commit;
	MstKey	   *keys = palloc(sizeof(MstKey) * Max(n, 1));
	MstCidList	removed = {0};
	uint8		new_root[CID_LEN],
				commit_cid[CID_LEN];
	RsBuf		signed_commit,
				blocks_tail;
	FrameOp    *fops = palloc0(sizeof(FrameOp) * Max(n, 1));

	fc->has_prev_data = run->has_root;
	if (run->has_root)
		memcpy(fc->prev_data, run->root, CID_LEN);
	fc->since = run->rev ? pstrdup(run->rev) : NULL;
	fc->since_len = run->rev ? strlen(run->rev) : 0;

	for (int i = 0; i < n; i++)
	{
		EffectiveOp *op = &ops[i];
		size_t		plen = strlen(op->path);

		if (op->exists)
			mst_check(mst_put(run->tree, op->path, plen, op->cid, NULL, NULL), run, "put");
		else
			mst_check(mst_delete(run->tree, op->path, plen, NULL), run, "delete");
		keys[i].key = op->path;
		keys[i].len = plen;
		fops[i].action = !op->exists ? FRAME_ACTION_DELETE
			: (op->had ? FRAME_ACTION_UPDATE : FRAME_ACTION_CREATE);
		fops[i].path = op->path;
		fops[i].path_len = plen;
		fops[i].has_cid = op->exists;
		if (op->exists)
			memcpy(fops[i].cid, op->cid, CID_LEN);
		fops[i].has_prev = op->had;
		if (op->had)
			memcpy(fops[i].prev, op->prev, CID_LEN);
	}

	/* blocks other than the commit go to a tail buffer, the commit first */
	run->chunk_seen = cid_set("repo_stream chunk blocks", CID_LEN);
	rs_buf_init(&run->car, 4096);
	mst_check(mst_write(run->tree, node_written, run, new_root, &removed), run, "write");
	for (size_t i = 0; i < removed.n; i++)
	{
		bool		found;

		if (hash_search(run->node_inserts, removed.cids[i], HASH_FIND, NULL))
			hash_search(run->node_inserts, removed.cids[i], HASH_REMOVE, NULL);
		else
			hash_search(run->node_deletes, removed.cids[i], HASH_ENTER, &found);
	}
	mst_cid_list_free(&removed);
	for (int i = 0; i < n; i++)
	{
		if (ops[i].exists)
		{
			BlockEntry *b = hash_search(pending.blocks, ops[i].cid, HASH_FIND, NULL);

			if (b == NULL)
				elog(ERROR, "repo \"%s\": record block for \"%s\" is missing",
					 run->repo->did, ops[i].path);
			car_add(run, ops[i].cid, b->data, b->len);
		}
	}
	if (n > 0)
		mst_check(mst_covering_proof(run->tree, keys, n, proof_node, run, NULL), run, "proof");
	blocks_tail = run->car;

	make_commit(run, new_root, commit_cid, &signed_commit);
	rs_buf_init(&run->car, blocks_tail.len + signed_commit.len + 128);
	car_write_header(&run->car, commit_cid);
	car_write_block(&run->car, commit_cid, signed_commit.data, signed_commit.len);
	rs_buf_append(&run->car, blocks_tail.data, blocks_tail.len);

	fc->repo = f->ev.did;
	fc->repo_len = strlen(fc->repo);
	fc->rev = pstrdup(run->rev);
	fc->rev_len = TID_LEN;
	memcpy(fc->commit, commit_cid, CID_LEN);
	fc->blocks = palloc_copy(run->car.data, run->car.len);
	fc->blocks_len = run->car.len;
	fc->ops = fops;
	fc->n_ops = n;
	fc->time = now_iso;
	fc->time_len = FRAME_TIME_LEN;
	queue_frame(f);

	rs_buf_free(&run->car);
	rs_buf_free(&blocks_tail);
	rs_buf_free(&signed_commit);
	hash_destroy(run->chunk_seen);
	run->chunk_seen = NULL;
}

/* Coalesce the ops logged since the last flush and commit them in chunks. */
static void
flush_ops(RepoRun *run, TimelineEntry **batch, int n)
{
	EffectiveOp *ops;
	int			n_ops = 0,
				start;
	size_t		bytes;

	if (n == 0)
		return;
	qsort(batch, n, sizeof(TimelineEntry *), op_entry_cmp);
	ops = palloc(sizeof(EffectiveOp) * n);
	for (int i = 0; i < n; i++)
	{
		TimelineEntry *last = batch[i];
		EffectiveOp *op;
		bool		had;
		uint8		prev[CID_LEN];

		/* the last entry for a path is its final state */
		if (i + 1 < n && strcmp(batch[i + 1]->path, last->path) == 0)
			continue;
		mst_check(mst_get(run->tree, last->path, strlen(last->path), prev, &had), run, "get");
		if (!had && !last->exists)
			continue;			/* created and deleted again */
		if (had && last->exists && memcmp(prev, last->cid, CID_LEN) == 0)
			continue;			/* rewritten with the same value */
		op = &ops[n_ops++];
		op->path = last->path;
		op->exists = last->exists;
		memcpy(op->cid, last->cid, CID_LEN);
		op->had = had;
		memcpy(op->prev, prev, CID_LEN);
		op->block_len = 0;
		if (last->exists)
		{
			BlockEntry *b = hash_search(pending.blocks, last->cid, HASH_FIND, NULL);

			op->block_len = b ? b->len : 0;
		}
	}

	/* chunks: at most RS_MAX_COMMIT_OPS ops; records + ~2 KB of nodes per op */
	start = 0;
	bytes = 0;
	for (int i = 0; i < n_ops; i++)
	{
		size_t		cost = ops[i].block_len + 2048;

		if (i > start && (i - start == RS_MAX_COMMIT_OPS ||
						  bytes + cost > RS_MAX_COMMIT_BYTES - 64 * 1024))
		{
			emit_commit_chunk(run, ops + start, i - start);
			start = i;
			bytes = 0;
		}
		bytes += cost;
	}
	if (n_ops > start)
		emit_commit_chunk(run, ops + start, n_ops - start);
	pfree(ops);
}

static void
emit_account(RepoRun *run, bool active, const char *status)
{
	QueuedFrame *f = new_frame(run, "account", encode_account_frame);

	f->account.did = f->ev.did;
	f->account.did_len = strlen(f->ev.did);
	f->account.active = active;
	f->account.status = status;
	f->account.status_len = status ? strlen(status) : 0;
	f->account.time = now_iso;
	f->account.time_len = FRAME_TIME_LEN;
	queue_frame(f);
}

/* A commit with no ops; as #sync after a key rotation. */
static void
emit_empty_commit(RepoRun *run, bool as_sync)
{
	uint8		root[CID_LEN],
				commit_cid[CID_LEN];
	RsBuf		signed_commit,
				car;
	MstCidList	removed = {0};

	bool		had_root = run->has_root;
	uint8		prev_root[CID_LEN];
	char	   *since = run->rev ? pstrdup(run->rev) : NULL;

	memcpy(prev_root, run->root, CID_LEN);
	run->chunk_seen = cid_set("repo_stream chunk blocks", CID_LEN);
	rs_buf_init(&run->car, 256);
	mst_check(mst_write(run->tree, node_written, run, root, &removed), run, "write");
	mst_cid_list_free(&removed);
	make_commit(run, root, commit_cid, &signed_commit);

	rs_buf_init(&car, run->car.len + signed_commit.len + 128);
	car_write_header(&car, commit_cid);
	car_write_block(&car, commit_cid, signed_commit.data, signed_commit.len);
	rs_buf_append(&car, run->car.data, run->car.len);

	if (as_sync)
	{
		QueuedFrame *f = new_frame(run, "sync", encode_sync_frame);

		f->sync.did = f->ev.did;
		f->sync.did_len = strlen(f->ev.did);
		f->sync.rev = pstrdup(run->rev);
		f->sync.rev_len = TID_LEN;
		f->sync.blocks = palloc_copy(car.data, car.len);
		f->sync.blocks_len = car.len;
		f->sync.time = now_iso;
		f->sync.time_len = FRAME_TIME_LEN;
		queue_frame(f);
	}
	else
	{
		QueuedFrame *f = new_frame(run, "commit", encode_commit_frame);

		f->commit.repo = f->ev.did;
		f->commit.repo_len = strlen(f->ev.did);
		f->commit.rev = pstrdup(run->rev);
		f->commit.rev_len = TID_LEN;
		f->commit.time_len = FRAME_TIME_LEN;
		memcpy(f->commit.commit, commit_cid, CID_LEN);
		f->commit.blocks = palloc_copy(car.data, car.len);
		f->commit.blocks_len = car.len;
		f->commit.ops = NULL;
		f->commit.n_ops = 0;
		f->commit.since = since;
		f->commit.since_len = since ? strlen(since) : 0;
		f->commit.has_prev_data = had_root;
		memcpy(f->commit.prev_data, prev_root, CID_LEN);
		f->commit.time = now_iso;
		queue_frame(f);
	}
	rs_buf_free(&car);
	rs_buf_free(&run->car);
	rs_buf_free(&signed_commit);
	hash_destroy(run->chunk_seen);
	run->chunk_seen = NULL;
}

static Datum
bytea_array(HTAB *set, bool values)
{
	HASH_SEQ_STATUS st;
	BlockEntry *b;
	long		n = hash_get_num_entries(set);
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			i = 0;

	hash_seq_init(&st, set);
	while ((b = hash_seq_search(&st)) != NULL)
		elems[i++] = PointerGetDatum(values ? rs_bytea(b->data, b->len)
									 : rs_bytea(b->cid, CID_LEN));
	return PointerGetDatum(construct_array(elems, i, BYTEAOID, -1, false, TYPALIGN_INT));
}

/* Store the run's new head, nodes and last seq (after its seqs are drawn). */
static void
persist_run(RepoRun *run)
{
	Datum		args[9];

	if (run->last_seq == 0)
		return;					/* no event: created and dropped again */
	if (run->head_cid == NULL || run->deleted)
	{
		args[0] = CStringGetTextDatum(run->repo->did);
		args[1] = Int64GetDatum(run->last_seq);
		rs_exec(PLAN_REPO_LAST_SEQ, args, NULL);
		return;
	}
	args[0] = CStringGetTextDatum(run->repo->did);
	args[1] = CStringGetTextDatum(run->head_cid);
	args[2] = CStringGetTextDatum(run->rev);
	args[3] = PointerGetDatum(rs_bytea(run->root, CID_LEN));
	args[4] = PointerGetDatum(run->head_commit);
	/* cids and bytes come out of one hash walk each, in the same order */
	args[5] = bytea_array(run->node_inserts, false);
	args[6] = bytea_array(run->node_inserts, true);
	args[7] = bytea_array(run->node_deletes, false);
	args[8] = Int64GetDatum(run->last_seq);
	rs_exec(PLAN_REPO_PERSIST, args, NULL);

	/*
	 * Cache the nodes of the final tree only: a big transaction rewrites the
	 * same paths chunk after chunk, and the intermediate versions are dead.
	 */
	{
		HASH_SEQ_STATUS st;
		BlockEntry *b;

		hash_seq_init(&st, run->node_inserts);
		while ((b = hash_seq_search(&st)) != NULL)
			node_cache_put(b->cid, b->data, b->len);
	}
}

/* The key that signs from this rev on, for verifying old events. */
static void
record_key(RepoRun *run)
{
	Datum		args[3];

	args[0] = CStringGetTextDatum(run->repo->did);
	args[1] = CStringGetTextDatum(run->did_key);
	args[2] = CStringGetTextDatum(run->rev);
	rs_exec(PLAN_KEY_HISTORY, args, NULL);
}

/*
 * Replay one repo's timeline into frames (queued) and return its run, whose
 * head and nodes persist_run stores once the seqs are drawn; NULL if the
 * repo is gone (created and dropped in this transaction).
 */
static RepoRun *
run_repo(int repo_index)
{
	RepoRun    *run = palloc0(sizeof(RepoRun));
	bytea	   *data_cid;
	TimelineEntry **batch;
	int			n_batch = 0;
	char		errbuf[256];
	char	   *status;

	run->repo = &pending.repos[repo_index];
	/*
	 * Read under the row lock we hold since the repo's first write, so
	 * still current; or now, for a repo that only had lifecycle calls
	 * (they locked the row too, and this statement's snapshot is newer).
	 */
	if (!run->repo->have_state && !read_repo_state(run->repo, &status))
		return NULL;
	data_cid = run->repo->data_cid;
	run->rev = run->repo->head_rev;
	run->sealed = run->repo->sealed;
	run->did_key = run->repo->did_key;
	run->store.get = store_get;
	run->store.ctx = run;
	run->node_inserts = cid_set("repo_stream node inserts", sizeof(BlockEntry));
	run->node_deletes = cid_set("repo_stream node deletes", CID_LEN);
	if (data_cid)
	{
		memcpy(run->root, VARDATA_ANY(data_cid), CID_LEN);
		run->has_root = true;
		if (mst_open(&run->store, run->root, &run->tree, errbuf, sizeof(errbuf)) != MST_OK)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("repo \"%s\": cannot load its MST: %s", run->repo->did, errbuf)));
	}
	else
		run->tree = mst_new(&run->store);

	batch = palloc(sizeof(TimelineEntry *) * pending.n_entries);
	for (int i = 0; i < pending.n_entries; i++)
	{
		TimelineEntry *t = &pending.entries[i];

		if (t->repo != repo_index)
			continue;
		switch (t->kind)
		{
			case ENTRY_OP:
				batch[n_batch++] = t;
				break;
			case ENTRY_CREATED:
				flush_ops(run, batch, n_batch);
				n_batch = 0;
				emit_empty_commit(run, false);
				record_key(run);
				break;
			case ENTRY_ACCOUNT:
				flush_ops(run, batch, n_batch);
				n_batch = 0;
				emit_account(run, t->active, t->status);
				break;
			case ENTRY_ROTATION:
				{
					Datum		args[3];

					flush_ops(run, batch, n_batch);
					n_batch = 0;
					run->sealed = t->sealed;
					run->did_key = t->did_key;
					emit_empty_commit(run, true);
					args[0] = CStringGetTextDatum(run->repo->did);
					args[1] = PointerGetDatum(t->sealed);
					args[2] = CStringGetTextDatum(t->did_key);
					rs_exec(PLAN_KEY_ROTATE, args, NULL);
					record_key(run);
				}
				break;
			case ENTRY_DELETED:
				/* nothing of the repo survives, so its pending ops do not matter */
				n_batch = 0;
				emit_account(run, false, "deleted");
				run->deleted = true;
				break;
		}
	}
	flush_ops(run, batch, n_batch);
	mst_free(run->tree);
	run->tree = NULL;
	return run;
}

static void
format_now(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		unix_us = now + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	if (!frame_format_time(unix_us, now_iso))
		elog(ERROR, "current time does not fit a frame timestamp");
}

static void
pre_commit(void)
{
	RsOwnerContext oc;
	MemoryContext work,
				old;
	RsPendingEvent *events;
	RepoRun   **runs;

	if (!pending.active || pending.n_entries == 0)
		return;

	work = AllocSetContextCreate(CurrentMemoryContext, "repo_stream commit",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	queue = NULL;
	n_queue = cap_queue = 0;
	format_now();

	/* COMMIT runs outside any portal: give SPI a snapshot to work with */
	PushActiveSnapshot(GetTransactionSnapshot());
	rs_enter_owner(&oc);
	runs = palloc(sizeof(RepoRun *) * pending.n_repos);
	for (int i = 0; i < pending.n_repos; i++)
		runs[i] = run_repo(i);
	if (n_queue > 0)
	{
		int64	   *seqs = palloc(sizeof(int64) * n_queue);

		events = palloc(sizeof(RsPendingEvent) * n_queue);
		for (int i = 0; i < n_queue; i++)
			events[i] = queue[i]->ev;
		rs_eventlog_append(events, n_queue, seqs);
		events_appended = true;
		for (int i = 0; i < n_queue; i++)
			queue[i]->run->last_seq = seqs[i];
	}
	/* heads record the seq of their repo's last event (exports report it) */
	for (int i = 0; i < pending.n_repos; i++)
		if (runs[i] != NULL)
			persist_run(runs[i]);
	rs_leave_owner(&oc);
	PopActiveSnapshot();

	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	pending.n_entries = 0;
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			pre_commit();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (pending.active && pending.n_entries > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that wrote repo_stream records")));
			break;
		case XACT_EVENT_COMMIT:
			if (events_appended)
				rs_views_wake();
			events_appended = false;
			pending_reset();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			events_appended = false;
			pending_reset();
			break;
		default:
			break;
	}
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			if (pending.n_savepoints == pending.cap_savepoints)
			{
				pending.cap_savepoints = pending.cap_savepoints ? pending.cap_savepoints * 2 : 8;
				pending.savepoints = pending.savepoints
					? repalloc(pending.savepoints, sizeof(SavePoint) * pending.cap_savepoints)
					: MemoryContextAlloc(TopTransactionContext, sizeof(SavePoint) * pending.cap_savepoints);
			}
			pending.savepoints[pending.n_savepoints].subid = mySubid;
			pending.savepoints[pending.n_savepoints].n_entries = pending.n_entries;
			pending.n_savepoints++;
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			if (pending.n_savepoints > 0 &&
				pending.savepoints[pending.n_savepoints - 1].subid == mySubid)
				pending.n_savepoints--;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			if (pending.n_savepoints > 0 &&
				pending.savepoints[pending.n_savepoints - 1].subid == mySubid)
			{
				pending.n_entries = pending.savepoints[pending.n_savepoints - 1].n_entries;
				pending.n_savepoints--;
			}
			/* row locks taken in the aborted subtransaction are gone */
			for (int i = 0; i < pending.n_repos; i++)
				if (pending.repos[i].locked && pending.repos[i].lock_subid >= mySubid)
					pending.repos[i].locked = false;
			rs_suppress_ops = false;
			break;
		default:
			break;
	}
}

void
rs_commit_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}
