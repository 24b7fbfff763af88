/*
 * commit_store_sql.c - repo locks, repo state, and storing what commits
 * made (heads, MST nodes, keys), through direct table access.
 *
 * Writes to one repo serialize on the repo's lock, a lock tag of our own
 * keyed by a 64-bit hash of the DID (two DIDs share a lock with odds of
 * 2^-64, which only makes them wait for each other).  It is held by the top
 * transaction until it ends.  Unlike a row lock it writes no WAL and
 * dirties no page, and no SQL can take it.  Everything read under it is read
 * with SnapshotSelf (what is committed, and what this transaction wrote), so
 * a transaction we waited for is seen whatever our isolation level: a commit
 * always chains from the repo's latest head and is signed with its current
 * key.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "commit_int.h"
#include "commit_sql.h"
#include "spi_sql.h"
#include "store_sql.h"

/* advisory tags from SQL have field4 1 or 2: SQL cannot make this one */
#define REPO_LOCK_FIELD4 0x5252	/* "RR" */

/* columns, in the order of src/sql/50_repo.sql */
#define REPOS_DID 1
#define REPOS_DID_KEY 2
#define REPOS_STATUS 3
#define REPOS_HEAD_CID 4
#define REPOS_HEAD_REV 5
#define REPOS_DATA_CID 6
#define REPOS_HEAD_COMMIT 7
#define REPOS_LAST_SEQ 8
#define REPOS_NATTS 9
#define REPO_KEYS_SEALED 2
#define NODES_NODE 4

void
rs_repo_lock(const char *did)
{
	LOCKTAG		tag;
	uint64		h = hash_bytes_extended((const unsigned char *) did, strlen(did), 0);
	ResourceOwner save = CurrentResourceOwner;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h, REPO_LOCK_FIELD4);
	/* owned by the top transaction: rolling back a savepoint keeps it */
	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save;
	}
	PG_END_TRY();
}

static char *
text_att(HeapTuple tup, TupleDesc desc, int att)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, att, desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static bytea *
bytea_att(HeapTuple tup, TupleDesc desc, int att)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, att, desc, &isnull);

	return isnull ? NULL : DatumGetByteaPCopy(d);
}

/*
 * Under REPEATABLE READ and SERIALIZABLE, a repo that another transaction
 * changed after ours took its snapshot is a serialization failure, as an
 * UPDATE of its row would be: our transaction read its records as they
 * were before.  tup is the repo row's latest version.
 */
static void
check_repo_serializable(Relation rel, HeapTuple tup, Datum key)
{
	HeapTuple	seen;

	if (!IsolationUsesXactSnapshot() ||
		TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tup->t_data)))
		return;
	seen = rs_rel_lookup(rel, GetTransactionSnapshot(), 1, &key);
	if (seen == NULL || !ItemPointerEquals(&seen->t_self, &tup->t_self))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to concurrent update")));
	heap_freetuple(seen);
}

/* A stored node of the repo (looked up with snapshot), or NULL. */
static bytea *
fetch_node(const char *did, const uint8 cid[CID_LEN], Snapshot snapshot)
{
	Relation	rel = rs_rel_open(RS_REL_MST_NODES, AccessShareLock);
	Datum		keys[2];
	HeapTuple	tup;
	bytea	   *node = NULL;

	keys[0] = CStringGetTextDatum(did);
	keys[1] = PointerGetDatum(rs_bytea(cid, CID_LEN));
	tup = rs_rel_lookup(rel, snapshot, 2, keys);
	if (tup != NULL)
	{
		node = bytea_att(tup, RelationGetDescr(rel), NODES_NODE);
		heap_freetuple(tup);
	}
	table_close(rel, AccessShareLock);
	return node;
}

/*
 * Repo keys by DID, per backend, as (did_key, sealed): a repo's row names
 * its did:key, so an entry with the same did:key is the repo's current
 * sealed key and the repo_keys lookup can be skipped.  Sealed keys are no
 * secret without the master key.  Direct-mapped; a collision just misses.
 */
#define KEY_CACHE_SIZE 1024

typedef struct KeyCacheEntry
{
	char	   *did;
	char	   *did_key;
	bytea	   *sealed;
} KeyCacheEntry;

static KeyCacheEntry key_cache[KEY_CACHE_SIZE];

static KeyCacheEntry *
key_cache_slot(const char *did)
{
	return &key_cache[hash_bytes((const unsigned char *) did, strlen(did)) % KEY_CACHE_SIZE];
}

static bytea *
key_cache_get(const char *did, const char *did_key)
{
	KeyCacheEntry *e = key_cache_slot(did);

	if (e->did != NULL && strcmp(e->did, did) == 0 && strcmp(e->did_key, did_key) == 0)
		return e->sealed;
	return NULL;
}

static void
key_cache_put(const char *did, const char *did_key, const bytea *sealed)
{
	KeyCacheEntry *e = key_cache_slot(did);

	if (e->did != NULL)
	{
		pfree(e->did);
		pfree(e->did_key);
		pfree(e->sealed);
	}
	e->did = MemoryContextStrdup(TopMemoryContext, did);
	e->did_key = MemoryContextStrdup(TopMemoryContext, did_key);
	e->sealed = MemoryContextAlloc(TopMemoryContext, VARSIZE_ANY(sealed));
	memcpy(e->sealed, sealed, VARSIZE_ANY(sealed));
}

bool
rs_repo_state_read(PendingRepo *r)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	Snapshot	snapshot = SnapshotSelf;
	Relation	rel = rs_rel_open(RS_REL_REPOS, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	Datum		key = CStringGetTextDatum(r->did);
	HeapTuple	tup = rs_rel_lookup(rel, snapshot, 1, &key);
	size_t		len;

	r->have_state = false;
	r->row = tup;
	if (tup != NULL)
		check_repo_serializable(rel, tup, key);
	if (tup != NULL)
	{
		r->status = text_att(tup, desc, REPOS_STATUS);
		r->data_cid = bytea_att(tup, desc, REPOS_DATA_CID);
		r->head_rev = text_att(tup, desc, REPOS_HEAD_REV);
		r->did_key = text_att(tup, desc, REPOS_DID_KEY);
	}
	table_close(rel, AccessShareLock);
	if (tup != NULL)
	{
		r->sealed = r->did_key ? key_cache_get(r->did, r->did_key) : NULL;
		if (r->sealed == NULL)
		{
			rel = rs_rel_open(RS_REL_REPO_KEYS, AccessShareLock);
			tup = rs_rel_lookup(rel, snapshot, 1, &key);
			r->sealed = tup ? bytea_att(tup, RelationGetDescr(rel), REPO_KEYS_SEALED) : NULL;
			table_close(rel, AccessShareLock);
			if (r->sealed != NULL && r->did_key != NULL)
				key_cache_put(r->did, r->did_key, r->sealed);
		}
		/* the root changes with every commit: fetch it with the state */
		if (r->data_cid != NULL &&
			rs_node_cache_get((uint8 *) VARDATA_ANY(r->data_cid), &len) == NULL)
		{
			bytea	   *root = fetch_node(r->did, (uint8 *) VARDATA_ANY(r->data_cid), snapshot);

			if (root != NULL)
				rs_node_cache_put((uint8 *) VARDATA_ANY(r->data_cid),
								  (uint8 *) VARDATA_ANY(root), VARSIZE_ANY_EXHDR(root));
		}
		r->have_state = true;
	}
	MemoryContextSwitchTo(old);
	return r->have_state;
}

MstError
rs_store_get(void *ctx, const uint8 cid[CID_LEN], const uint8 **data, size_t *len)
{
	RepoRun    *run = ctx;
	const uint8 *cached = rs_node_cache_get(cid, len);
	BlockEntry *b;
	Snapshot	snapshot;
	bytea	   *node;

	if (cached != NULL)
	{
		*data = cached;
		return MST_OK;
	}
	if (run->node_inserts != NULL &&
		(b = hash_search(run->node_inserts, cid, HASH_FIND, NULL)) != NULL)
	{
		*data = b->data;
		*len = b->len;
		return MST_OK;
	}
	snapshot = SnapshotSelf;
	node = fetch_node(run->repo->did, cid, snapshot);
	if (node == NULL)
		return MST_ERR_MISSING_NODE;
	rs_node_cache_put(cid, (uint8 *) VARDATA_ANY(node), VARSIZE_ANY_EXHDR(node));
	pfree(node);
	*data = rs_node_cache_get(cid, len);
	return MST_OK;
}

/*
 * Update the repo's row: the columns set in values/replace.  Its latest
 * version is the one the state read or our last update left in the
 * pending repo (nobody else updates it while we hold its lock), else it is
 * looked up.
 */
static void
update_repo(const char *did, Datum *values, bool *nulls, bool *replace)
{
	int			i = rs_pending_repo(did);
	PendingRepo *r = &rs_pending.repos[i];
	Relation	rel = rs_rel_open(RS_REL_REPOS, RowExclusiveLock);
	HeapTuple	tup = r->row;
	HeapTuple	newtup;
	MemoryContext old;

	if (tup == NULL)
	{
		Snapshot	snapshot = SnapshotSelf;
		Datum		key = CStringGetTextDatum(did);

		tup = rs_rel_lookup(rel, snapshot, 1, &key);
		if (tup == NULL)
			elog(ERROR, "repo \"%s\" vanished while its lock was held", did);
	}
	newtup = rs_rel_update(rel, tup, values, nulls, replace);
	table_close(rel, RowExclusiveLock);
	old = MemoryContextSwitchTo(TopTransactionContext);
	r->row = heap_copytuple(newtup);
	MemoryContextSwitchTo(old);
	heap_freetuple(newtup);
	/* later lookups in this transaction see the new version */
	CommandCounterIncrement();
}

void
rs_persist_run(RepoRun *run)
{
	Datum		values[REPOS_NATTS];
	bool		nulls[REPOS_NATTS] = {0};
	bool		replace[REPOS_NATTS] = {0};
	HASH_SEQ_STATUS st;
	BlockEntry *b;
	Relation	rel;

	if (run->last_seq == 0)
		return;					/* no event: created and dropped again */
	values[REPOS_LAST_SEQ - 1] = Int64GetDatum(run->last_seq);
	replace[REPOS_LAST_SEQ - 1] = true;
	if (run->head_cid == NULL || run->deleted)
	{
		update_repo(run->repo->did, values, nulls, replace);
		return;
	}
	values[REPOS_HEAD_CID - 1] = CStringGetTextDatum(run->head_cid);
	values[REPOS_HEAD_REV - 1] = CStringGetTextDatum(run->rev);
	values[REPOS_DATA_CID - 1] = PointerGetDatum(rs_bytea(run->root, CID_LEN));
	values[REPOS_HEAD_COMMIT - 1] = PointerGetDatum(run->head_commit);
	replace[REPOS_HEAD_CID - 1] = replace[REPOS_HEAD_REV - 1] = true;
	replace[REPOS_DATA_CID - 1] = replace[REPOS_HEAD_COMMIT - 1] = true;
	update_repo(run->repo->did, values, nulls, replace);

	rel = rs_rel_open(RS_REL_MST_NODES, RowExclusiveLock);
	hash_seq_init(&st, run->node_inserts);
	while ((b = hash_seq_search(&st)) != NULL)
	{
		Datum		row[4];
		bool		rnulls[4] = {0};

		row[0] = CStringGetTextDatum(run->repo->did);
		row[1] = PointerGetDatum(rs_bytea(b->cid, CID_LEN));
		row[2] = CStringGetTextDatum(run->rev);
		row[3] = PointerGetDatum(rs_bytea(b->data, b->len));
		rs_rel_insert(rel, row, rnulls);
		/*
		 * Cache the nodes of the final tree only: a big transaction rewrites
		 * the same paths chunk after chunk, and the intermediate versions
		 * are dead.
		 */
		rs_node_cache_put(b->cid, b->data, b->len);
	}
	if (hash_get_num_entries(run->node_deletes) > 0)
	{
		Snapshot	snapshot = SnapshotSelf;

		hash_seq_init(&st, run->node_deletes);
		while ((b = hash_seq_search(&st)) != NULL)
		{
			Datum		keys[2];
			HeapTuple	tup;

			keys[0] = CStringGetTextDatum(run->repo->did);
			keys[1] = PointerGetDatum(rs_bytea(b->cid, CID_LEN));
			tup = rs_rel_lookup(rel, snapshot, 2, keys);
			if (tup != NULL)
			{
				rs_rel_delete(rel, &tup->t_self);
				heap_freetuple(tup);
			}
		}
	}
	table_close(rel, RowExclusiveLock);
	CommandCounterIncrement();
}

void
rs_record_key(RepoRun *run)
{
	Relation	rel = rs_rel_open(RS_REL_KEY_HISTORY, RowExclusiveLock);
	Datum		row[3];
	bool		nulls[3] = {0};

	row[0] = CStringGetTextDatum(run->repo->did);
	row[1] = CStringGetTextDatum(run->did_key);
	row[2] = CStringGetTextDatum(run->rev);
	rs_rel_insert(rel, row, nulls);
	table_close(rel, RowExclusiveLock);
	CommandCounterIncrement();
}

void
rs_store_rotated_key(RepoRun *run)
{
	Snapshot	snapshot = SnapshotSelf;
	Relation	rel = rs_rel_open(RS_REL_REPO_KEYS, RowExclusiveLock);
	Datum		key = CStringGetTextDatum(run->repo->did);
	HeapTuple	tup = rs_rel_lookup(rel, snapshot, 1, &key);
	Datum		values[REPOS_NATTS];
	bool		nulls[REPOS_NATTS] = {0};
	bool		replace[REPOS_NATTS] = {0};

	if (tup == NULL)
		elog(ERROR, "repo \"%s\" has no key to rotate", run->repo->did);
	values[REPO_KEYS_SEALED - 1] = PointerGetDatum(run->sealed);
	replace[REPO_KEYS_SEALED - 1] = true;
	heap_freetuple(rs_rel_update(rel, tup, values, nulls, replace));
	heap_freetuple(tup);
	table_close(rel, RowExclusiveLock);

	memset(replace, 0, sizeof(replace));
	values[REPOS_DID_KEY - 1] = CStringGetTextDatum(run->did_key);
	replace[REPOS_DID_KEY - 1] = true;
	update_repo(run->repo->did, values, nulls, replace);
}

static char *
repo_status(const char *did, Snapshot snapshot)
{
	Relation	rel = rs_rel_open(RS_REL_REPOS, AccessShareLock);
	Datum		key = CStringGetTextDatum(did);
	HeapTuple	tup = rs_rel_lookup(rel, snapshot, 1, &key);
	char	   *status = NULL;

	if (tup != NULL && snapshot == SnapshotSelf)
		check_repo_serializable(rel, tup, key);
	if (tup != NULL)
		status = text_att(tup, RelationGetDescr(rel), REPOS_STATUS);
	table_close(rel, AccessShareLock);
	return status;
}

char *
rs_repo_status(const char *did)
{
	Snapshot	snapshot = SnapshotSelf;
	char	   *status = repo_status(did, snapshot);

	return status;
}

char *
rs_repo_status_seen(const char *did)
{
	return repo_status(did, GetActiveSnapshot());
}

void
rs_repo_set_status(const char *did, const char *status)
{
	Datum		values[REPOS_NATTS];
	bool		nulls[REPOS_NATTS] = {0};
	bool		replace[REPOS_NATTS] = {0};

	values[REPOS_STATUS - 1] = CStringGetTextDatum(status);
	replace[REPOS_STATUS - 1] = true;
	if (strcmp(status, "deleted") == 0)
	{
		/* a deleted repo has no tree */
		nulls[REPOS_DATA_CID - 1] = true;
		replace[REPOS_DATA_CID - 1] = true;
	}
	update_repo(did, values, nulls, replace);
}
