/*
 * commit_chunk_sql.c - a repo's ops, coalesced per path and committed in
 * chunks within the subscribeRepos lexicon's limits.
 *
 * The ops of a run of the timeline are sorted by path; the last state of a
 * path wins and is compared with the MST, so a record created and deleted
 * again, or rewritten with the same value, makes no op.  The remaining ops
 * are cut into chunks of at most RS_MAX_COMMIT_OPS ops whose blocks stay
 * under RS_MAX_COMMIT_BYTES; each chunk is applied to the MST and becomes a
 * signed #commit whose CAR slice holds the commit, the new nodes, the new
 * records and the proof nodes a consumer needs to invert the ops.
 */
#include "postgres.h"

#include "car.h"
#include "commit_int.h"
#include "commit_sql.h"
#include "tid.h"

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

void
rs_mst_check(MstError err, RepoRun *run, const char *what)
{
	if (err != MST_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("repo \"%s\": MST %s failed: %s", run->repo->did, what,
						run->tree ? mst_errmsg(run->tree) : mst_strerror(err))));
}

HTAB *
rs_cid_set(const char *name, Size entrysize)
{
	HASHCTL		ctl = {0};

	ctl.keysize = CID_LEN;
	ctl.entrysize = entrysize;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

void
rs_car_add(RepoRun *run, const uint8 cid[CID_LEN], const uint8 *data, size_t len)
{
	bool		found;

	hash_search(run->chunk_seen, cid, HASH_ENTER, &found);
	if (!found)
		car_write_block(&run->car, cid, data, len);
}

void
rs_node_written(void *ctx, const uint8 cid[CID_LEN], const uint8 *data, size_t len)
{
	RepoRun    *run = ctx;
	BlockEntry *b;
	bool		found;

	rs_car_add(run, cid, data, len);
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
	rs_car_add((RepoRun *) ctx, cid, data, len);
}

void *
rs_palloc_copy(const void *data, size_t len)
{
	void	   *p = palloc(len ? len : 1);

	memcpy(p, data, len);
	return p;
}

/*
 * Emit one #commit for ops[0..n): apply them, sign, and build the frame
 * with the CAR slice (commit, new nodes, new records, proof nodes).
 */
static void
emit_commit_chunk(RepoRun *run, EffectiveOp *ops, int n)
{
	QueuedFrame *f = rs_new_frame(run, "commit", rs_encode_commit_frame);
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
			rs_mst_check(mst_put(run->tree, op->path, plen, op->cid, NULL, NULL), run, "put");
		else
			rs_mst_check(mst_delete(run->tree, op->path, plen, NULL), run, "delete");
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
	run->chunk_seen = rs_cid_set("repo_stream chunk blocks", CID_LEN);
	rs_buf_init(&run->car, 4096);
	rs_mst_check(mst_write(run->tree, rs_node_written, run, new_root, &removed), run, "write");
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
			BlockEntry *b = hash_search(rs_pending.blocks, ops[i].cid, HASH_FIND, NULL);

			if (b == NULL)
				elog(ERROR, "repo \"%s\": record block for \"%s\" is missing",
					 run->repo->did, ops[i].path);
			rs_car_add(run, ops[i].cid, b->data, b->len);
		}
	}
	if (n > 0)
		rs_mst_check(mst_covering_proof(run->tree, keys, n, proof_node, run, NULL), run, "proof");
	blocks_tail = run->car;

	rs_make_commit(run, new_root, commit_cid, &signed_commit);
	rs_buf_init(&run->car, blocks_tail.len + signed_commit.len + 128);
	car_write_header(&run->car, commit_cid);
	car_write_block(&run->car, commit_cid, signed_commit.data, signed_commit.len);
	rs_buf_append(&run->car, blocks_tail.data, blocks_tail.len);
	/* the estimate below keeps clear of this unless MST nodes are huge */
	if (run->car.len > RS_MAX_COMMIT_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("repo \"%s\": a commit of %d ops would carry %zu bytes of blocks; the limit is %d",
						run->repo->did, n, run->car.len, RS_MAX_COMMIT_BYTES),
				 errdetail("subscribeRepos caps #commit.blocks at %d bytes.", RS_MAX_COMMIT_BYTES),
				 errhint("Write fewer records per transaction.")));

	fc->repo = f->ev.did;
	fc->repo_len = strlen(fc->repo);
	fc->rev = pstrdup(run->rev);
	fc->rev_len = TID_LEN;
	memcpy(fc->commit, commit_cid, CID_LEN);
	fc->blocks = rs_palloc_copy(run->car.data, run->car.len);
	fc->blocks_len = run->car.len;
	fc->ops = fops;
	fc->n_ops = n;
	fc->time = rs_frame_time();
	fc->time_len = FRAME_TIME_LEN;
	rs_queue_frame(f);

	rs_buf_free(&run->car);
	rs_buf_free(&blocks_tail);
	rs_buf_free(&signed_commit);
	hash_destroy(run->chunk_seen);
	run->chunk_seen = NULL;
}

/* Coalesce the ops logged since the last flush and commit them in chunks. */
void
rs_flush_ops(RepoRun *run, TimelineEntry **batch, int n)
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
		rs_mst_check(mst_get(run->tree, last->path, strlen(last->path), prev, &had), run, "get");
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
			BlockEntry *b = hash_search(rs_pending.blocks, last->cid, HASH_FIND, NULL);

			op->block_len = b ? b->len : 0;
		}
	}

	/*
	 * Chunks: at most RS_MAX_COMMIT_OPS ops, and blocks under the limit: the
	 * records, about 2 KB of nodes and proof per op, and 64 KiB to spare
	 * for the commit and the top of the tree.
	 */
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

