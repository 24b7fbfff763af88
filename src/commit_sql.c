/*
 * commit_sql.c - the write path's pre-commit: what a transaction changed
 * becomes signed commits and event frames when it commits.
 *
 * Each repo the transaction touched replays its timeline (see
 * commit_timeline_sql.c): runs of ops are coalesced and committed in chunks
 * (commit_chunk_sql.c), markers become #commit, #account and #sync frames
 * (commit_frames_sql.c).  Then the frames draw their seqs and land in the
 * event log, and the repos' heads, nodes and last seqs are stored
 * (commit_store_sql.c), all inside the same transaction: an aborted
 * transaction leaves nothing, a committed one leaves all.  See commit_int.h
 * for the map of the files.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "commit_int.h"
#include "notify_sql.h"
#include "commit_sql.h"
#include "eventlog_sql.h"

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

	run->repo = &rs_pending.repos[repo_index];
	/*
	 * Read under the row lock we hold since the repo's first write, so
	 * still current; or now, for a repo that only had lifecycle calls
	 * (they locked the row too, and this statement's snapshot is newer).
	 */
	if (!run->repo->have_state && !rs_repo_state_read(run->repo))
		return NULL;
	data_cid = run->repo->data_cid;
	run->rev = run->repo->head_rev;
	run->sealed = run->repo->sealed;
	run->did_key = run->repo->did_key;
	run->store.get = rs_store_get;
	run->store.ctx = run;
	run->node_inserts = rs_cid_set("repo_stream node inserts", sizeof(BlockEntry));
	run->node_deletes = rs_cid_set("repo_stream node deletes", CID_LEN);
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

	batch = palloc(sizeof(TimelineEntry *) * rs_pending.n_entries);
	for (int i = 0; i < rs_pending.n_entries; i++)
	{
		TimelineEntry *t = &rs_pending.entries[i];

		if (t->repo != repo_index)
			continue;
		switch (t->kind)
		{
			case ENTRY_OP:
				batch[n_batch++] = t;
				break;
			case ENTRY_CREATED:
				rs_flush_ops(run, batch, n_batch);
				n_batch = 0;
				rs_emit_empty_commit(run, false);
				rs_record_key(run);
				break;
			case ENTRY_ACCOUNT:
				rs_flush_ops(run, batch, n_batch);
				n_batch = 0;
				rs_emit_account(run, t->active, t->status);
				break;
			case ENTRY_ROTATION:
				rs_flush_ops(run, batch, n_batch);
				n_batch = 0;
				run->sealed = t->sealed;
				run->did_key = t->did_key;
				rs_emit_empty_commit(run, true);
				rs_store_rotated_key(run);
				rs_record_key(run);
				break;
			case ENTRY_IMPORTED:
				/* the imported tree, re-signed by the repo's own key, as #sync */
				rs_flush_ops(run, batch, n_batch);
				n_batch = 0;
				rs_emit_empty_commit(run, true);
				rs_record_key(run);
				break;
			case ENTRY_DELETED:
				/* nothing of the repo survives, so its pending ops do not matter */
				n_batch = 0;
				rs_emit_account(run, false, "deleted");
				run->deleted = true;
				break;
		}
	}
	rs_flush_ops(run, batch, n_batch);
	mst_free(run->tree);
	run->tree = NULL;
	return run;
}

static void
pre_commit(void)
{
	MemoryContext work,
				old;
	RepoRun   **runs;
	int			n_frames;

	if (!rs_pending.active || rs_pending.n_entries == 0)
		return;

	work = AllocSetContextCreate(CurrentMemoryContext, "repo_stream commit",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	rs_frames_start();

	/* COMMIT runs outside any portal: give what runs here a snapshot */
	PushActiveSnapshot(GetTransactionSnapshot());
	runs = palloc(sizeof(RepoRun *) * rs_pending.n_repos);
	for (int i = 0; i < rs_pending.n_repos; i++)
		runs[i] = run_repo(i);
	n_frames = rs_frames_count();
	if (n_frames > 0)
	{
		RsPendingEvent *events = palloc(sizeof(RsPendingEvent) * n_frames);
		int64	   *seqs = palloc(sizeof(int64) * n_frames);

		for (int i = 0; i < n_frames; i++)
			events[i] = rs_frame_at(i)->ev;
		rs_eventlog_append(events, n_frames, seqs);
		for (int i = 0; i < n_frames; i++)
			rs_frame_at(i)->run->last_seq = seqs[i];
	}
	/* heads record the seq of their repo's last event (exports report it) */
	for (int i = 0; i < rs_pending.n_repos; i++)
		if (runs[i] != NULL)
			rs_persist_run(runs[i]);
	rs_eventlog_rotate_if_due();
	PopActiveSnapshot();

	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	rs_pending.n_entries = 0;
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
			if (rs_pending.active && rs_pending.n_entries > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that wrote repo_stream records")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			rs_notify_xact_end(event == XACT_EVENT_COMMIT);
			/* FALLTHROUGH */
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			rs_pending_reset();
			rs_node_cache_trim();
			break;
		default:
			break;
	}
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	rs_pending_subxact(event, mySubid);
}

void
rs_commit_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}
