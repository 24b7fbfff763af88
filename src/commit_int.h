/*
 * commit_int.h - what the write path's files share; private to
 * commit_*_sql.c.  The pipeline, in the order a transaction meets it:
 *
 *   commit_timeline_sql.c  what the transaction changed, in order
 *                          (ops, lifecycle markers, savepoints)
 *   commit_store_sql.c     repo locks, repo state, and storing heads,
 *                          nodes and keys (direct table access)
 *   commit_nodecache_sql.c MST nodes by CID, per backend
 *   commit_chunk_sql.c     ops coalesced per path, applied in chunks
 *                          within the protocol's limits
 *   commit_frames_sql.c    signed commits and the frames that carry them
 *   commit_sql.c           pre-commit: each repo's run, then seqs and rows
 */
#ifndef RS_COMMIT_INT_H
#define RS_COMMIT_INT_H

#include "postgres.h"

#include "access/htup.h"
#include "access/xact.h"
#include "utils/hsearch.h"

#include "buf.h"
#include "cid.h"
#include "eventlog_sql.h"
#include "frame.h"
#include "mst.h"

/* ---- timeline (commit_timeline_sql.c) ---- */

typedef enum EntryKind
{
	ENTRY_OP,
	ENTRY_CREATED,
	ENTRY_ACCOUNT,
	ENTRY_ROTATION,
	ENTRY_IMPORTED,
	ENTRY_DELETED
} EntryKind;

typedef struct TimelineEntry
{
	EntryKind	kind;
	int			repo;			/* index into rs_pending.repos */
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
	bool		locked;			/* its repo lock is ours until the end */
	/* the repo row as read after the lock, in TopTransactionContext */
	bool		have_state;
	HeapTuple	row;			/* its latest version, read or written by us */
	char	   *status;
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
typedef struct PendingState
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
} PendingState;

extern PendingState rs_pending;

/* The repo's slot in rs_pending (added if new); ERROR 22023 for a DID over 2048. */
int			rs_pending_repo(const char *did);

/* Forget the transaction's timeline (its memory goes with the transaction). */
void		rs_pending_reset(void);

/* Savepoints: a rolled-back subtransaction's entries are dropped. */
void		rs_pending_subxact(SubXactEvent event, SubTransactionId subid);

/* ---- node cache (commit_nodecache_sql.c) ---- */

/* The node's bytes if cached (valid until the next put or trim), else NULL. */
const uint8 *rs_node_cache_get(const uint8 cid[CID_LEN], size_t *len);
void		rs_node_cache_put(const uint8 cid[CID_LEN], const uint8 *data, size_t len);
/* At transaction end: drop everything once the cache is over its budget. */
void		rs_node_cache_trim(void);

/* ---- a repo's run at pre-commit ---- */

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

/* A frame waiting for its seq (in the pre-commit work context). */
typedef struct QueuedFrame
{
	RepoRun    *run;			/* gets the seq of its last event */
	RsPendingEvent ev;
	FrameCommit commit;
	FrameAccount account;
	FrameSync sync;
} QueuedFrame;

/* ---- frames (commit_frames_sql.c) ---- */

/* Start a pre-commit: empty queue, and the time every frame will carry. */
void		rs_frames_start(void);
int			rs_frames_count(void);
QueuedFrame *rs_frame_at(int i);

/* A new frame of the run's repo, queued by rs_queue_frame when complete. */
QueuedFrame *rs_new_frame(RepoRun *run, const char *kind,
						  void (*encode) (const void *payload, int64 seq, RsBuf *out));
void		rs_queue_frame(QueuedFrame *f);
const char *rs_frame_time(void);	/* FRAME_TIME_LEN characters */
void		rs_encode_commit_frame(const void *payload, int64 seq, RsBuf *out);

/* Sign a commit over root with the run's key; sets the run's head. */
void		rs_make_commit(RepoRun *run, const uint8 root[CID_LEN],
						   uint8 commit_cid[CID_LEN], RsBuf *signed_out);
void		rs_emit_account(RepoRun *run, bool active, const char *status);
/* A commit with no ops; as #sync after a key rotation or an import. */
void		rs_emit_empty_commit(RepoRun *run, bool as_sync);

/* ---- chunks (commit_chunk_sql.c) ---- */

/* Coalesce the ops logged since the last flush and commit them in chunks. */
void		rs_flush_ops(RepoRun *run, TimelineEntry **batch, int n);

/* Shared by chunks and frames. */
void		rs_mst_check(MstError err, RepoRun *run, const char *what);
HTAB	   *rs_cid_set(const char *name, Size entrysize);
void		rs_car_add(RepoRun *run, const uint8 cid[CID_LEN], const uint8 *data, size_t len);
/* mst_write callback: a new node is stored, cached and sent in the CAR. */
void		rs_node_written(void *ctx, const uint8 cid[CID_LEN], const uint8 *data, size_t len);
void	   *rs_palloc_copy(const void *data, size_t len);

/* ---- storage (commit_store_sql.c) ---- */

/*
 * Read the repo's state into r after its lock is held, with a fresh
 * snapshot (so a rotation or commit we waited for is seen), and cache its
 * root node.  False if there is no such repo.
 */
bool		rs_repo_state_read(PendingRepo *r);

/* MstStore get callback (ctx is the RepoRun): cache, then the run's new
 * nodes, then mst_nodes. */
MstError	rs_store_get(void *ctx, const uint8 cid[CID_LEN], const uint8 **data, size_t *len);

/* After the seqs are drawn: the run's new head, nodes and last seq. */
void		rs_persist_run(RepoRun *run);
/* The key that signs from the run's rev on, for verifying old events. */
void		rs_record_key(RepoRun *run);
/* The run's new key replaces the repo's (after a rotation). */
void		rs_store_rotated_key(RepoRun *run);

#endif
