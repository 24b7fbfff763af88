/*
 * commit_timeline_sql.c - what a transaction changed, in order.
 *
 * The records trigger logs ops (a path now has this record, or none) and
 * the repo functions log markers (created, account change, key rotation,
 * import, deletion) on one timeline, which pre-commit replays per repo.
 * The timeline only grows at its tail, so rolling back to a savepoint
 * truncates it to the length it had when the savepoint began.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/memutils.h"

#include "commit_int.h"
#include "commit_sql.h"

bool		rs_suppress_ops = false;
PendingState rs_pending;

typedef struct RepoIndexEntry
{
	char		did[2049];		/* DIDs are at most 2048 characters */
	int			index;
} RepoIndexEntry;

static void
pending_start(void)
{
	MemoryContext old;
	HASHCTL		ctl = {0};

	if (rs_pending.active)
		return;
	old = MemoryContextSwitchTo(TopTransactionContext);
	rs_pending.cap_repos = 8;
	rs_pending.repos = palloc(sizeof(PendingRepo) * rs_pending.cap_repos);
	rs_pending.cap_entries = 64;
	rs_pending.entries = palloc(sizeof(TimelineEntry) * rs_pending.cap_entries);
	ctl.keysize = sizeof(((RepoIndexEntry *) 0)->did);
	ctl.entrysize = sizeof(RepoIndexEntry);
	ctl.hcxt = TopTransactionContext;
	rs_pending.repo_index = hash_create("repo_stream pending repos", 16, &ctl,
										HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	ctl.keysize = CID_LEN;
	ctl.entrysize = sizeof(BlockEntry);
	rs_pending.blocks = hash_create("repo_stream pending blocks", 64, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	rs_pending.n_repos = rs_pending.n_entries = 0;
	rs_pending.active = true;
	MemoryContextSwitchTo(old);
}

void
rs_pending_reset(void)
{
	/* the memory itself goes with TopTransactionContext */
	memset(&rs_pending, 0, sizeof(rs_pending));
	rs_suppress_ops = false;
}

int
rs_pending_repo(const char *did)
{
	RepoIndexEntry *e;
	bool		found;

	pending_start();
	if (strlen(did) > 2048)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("DID is longer than 2048 characters")));
	e = hash_search(rs_pending.repo_index, did, HASH_ENTER, &found);
	if (!found)
	{
		PendingRepo *r;

		if (rs_pending.n_repos == rs_pending.cap_repos)
		{
			rs_pending.cap_repos *= 2;
			rs_pending.repos = repalloc(rs_pending.repos, sizeof(PendingRepo) * rs_pending.cap_repos);
		}
		r = &rs_pending.repos[rs_pending.n_repos];
		memset(r, 0, sizeof(*r));
		r->did = MemoryContextStrdup(TopTransactionContext, did);
		e->index = rs_pending.n_repos++;
	}
	return e->index;
}

static TimelineEntry *
timeline_append(EntryKind kind, const char *did)
{
	int			repo = rs_pending_repo(did);
	TimelineEntry *t;

	if (rs_pending.n_entries == rs_pending.cap_entries)
	{
		rs_pending.cap_entries *= 2;
		rs_pending.entries = repalloc_huge(rs_pending.entries,
										   sizeof(TimelineEntry) * rs_pending.cap_entries);
	}
	t = &rs_pending.entries[rs_pending.n_entries++];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->repo = repo;
	return t;
}

/*
 * The repo's status changes within this transaction (deactivation,
 * deletion): the next write must check it again.  The state already read
 * stays, for the ops logged before the change.
 */
static void
recheck_status(const char *did)
{
	int			i = rs_pending_repo(did);	/* may allocate rs_pending.repos */

	rs_pending.repos[i].locked = false;
}

void
rs_touch_repo(const char *did)
{
	int			i = rs_pending_repo(did);	/* may allocate rs_pending.repos */
	PendingRepo *r = &rs_pending.repos[i];

	if (r->locked)
		return;
	rs_repo_lock(did);
	/* read only now that the lock is ours: what we waited for is committed */
	if (!rs_repo_state_read(r))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did),
				 errhint("Create it with repo_stream.create_repo().")));
	if (strcmp(r->status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("repo \"%s\" is %s", did, r->status),
				 strcmp(r->status, "deactivated") == 0 ?
				 errhint("Reactivate it with repo_stream.activate_repo().") : 0));
	r->locked = true;
}

void
rs_note_block(const uint8 cid[CID_LEN], const uint8 *data, size_t len)
{
	BlockEntry *b;
	bool		found;

	pending_start();
	b = hash_search(rs_pending.blocks, cid, HASH_ENTER, &found);
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
	size_t		clen = strlen(collection),
				rlen = strlen(rkey);

	t->path = MemoryContextAlloc(TopTransactionContext, clen + rlen + 2);
	memcpy(t->path, collection, clen);
	t->path[clen] = '/';
	memcpy(t->path + clen + 1, rkey, rlen + 1);
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
	recheck_status(did);
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
	recheck_status(did);
}

void
rs_note_imported(const char *did)
{
	timeline_append(ENTRY_IMPORTED, did);
}

void
rs_pending_subxact(SubXactEvent event, SubTransactionId subid)
{
	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			if (rs_pending.n_savepoints == rs_pending.cap_savepoints)
			{
				rs_pending.cap_savepoints = rs_pending.cap_savepoints ? rs_pending.cap_savepoints * 2 : 8;
				rs_pending.savepoints = rs_pending.savepoints
					? repalloc(rs_pending.savepoints, sizeof(SavePoint) * rs_pending.cap_savepoints)
					: MemoryContextAlloc(TopTransactionContext, sizeof(SavePoint) * rs_pending.cap_savepoints);
			}
			rs_pending.savepoints[rs_pending.n_savepoints].subid = subid;
			rs_pending.savepoints[rs_pending.n_savepoints].n_entries = rs_pending.n_entries;
			rs_pending.n_savepoints++;
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			if (rs_pending.n_savepoints > 0 &&
				rs_pending.savepoints[rs_pending.n_savepoints - 1].subid == subid)
				rs_pending.n_savepoints--;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			if (rs_pending.n_savepoints > 0 &&
				rs_pending.savepoints[rs_pending.n_savepoints - 1].subid == subid)
			{
				rs_pending.n_entries = rs_pending.savepoints[rs_pending.n_savepoints - 1].n_entries;
				rs_pending.n_savepoints--;
			}
			/*
			 * Repo locks are held by the top transaction and outlive the
			 * subtransaction; states read in it are still current, but a
			 * repo row it updated is back to its version before.
			 */
			for (int i = 0; i < rs_pending.n_repos; i++)
				rs_pending.repos[i].row = NULL;
			rs_suppress_ops = false;
			break;
		default:
			break;
	}
}
