/*
 * views_store_sql.c - a count view's own tables, read and written through
 * heap and index calls (store_sql.h) rather than SQL statements: a refresh
 * does a few index probes and row writes per op, where a statement's
 * executor start-up, unnest and ON CONFLICT machinery cost as much again.
 * Only a refresh writes these tables, with its view's catalog row locked,
 * so no other transaction updates a row under it.
 *
 * The memory (repo_stream.view_memory_<id>) is (h bigint, did, rkey, key):
 * h is the path's hash, the DID's 32-bit hash above the rkey's, indexed by
 * a plain (not unique) btree on h.  A path is found by h and then compared
 * (did, rkey), so a collision costs a comparison, never a wrong answer; a
 * repo's paths are the range of h under its DID's hash (a repo deletion or
 * an import reads them), filtered by DID.  Eight bytes per index entry,
 * compared as integers, make the index a third of the (did, rkey) text
 * key's size and its probes cheaper.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "spi_sql.h"
#include "store_sql.h"
#include "views_sql.h"

#define MEM_H		1
#define MEM_DID		2
#define MEM_RKEY	3
#define MEM_KEY		4
#define MEM_NATTS	4

#define CNT_KEY		1
#define CNT_COUNT	2

int64
rs_view_path_hash(const char *did, size_t did_len, const char *rkey, size_t rkey_len)
{
	uint64		h = ((uint64) hash_bytes((const unsigned char *) did, (int) did_len) << 32) |
		hash_bytes((const unsigned char *) rkey, (int) rkey_len);

	return (int64) h;
}

Oid
rs_view_memory_oid(int32 id)
{
	char		name[NAMEDATALEN];

	snprintf(name, sizeof(name), "view_memory_%d", id);
	return get_relname_relid(name, rs_schema_oid());
}

void
rs_view_tables_open(ViewTables *t, const ViewDef *v, bool write)
{
	LOCKMODE	mode = write ? RowExclusiveLock : AccessShareLock;

	memset(t, 0, sizeof(*t));
	t->lockmode = mode;
	t->count = table_open(v->count_table, mode);
	if (v->memory_rel)
	{
		Oid			mem = rs_view_memory_oid(v->id);
		List	   *indexes;

		if (!OidIsValid(mem))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("the memory table of view \"%s\" is missing", v->name),
					 errhint("Drop the view with repo_stream.drop_view and create it again.")));
		t->memory = table_open(mem, mode);
		/* a table from before the memory was keyed by hash: not readable here */
		if (RelationGetDescr(t->memory)->natts != MEM_NATTS ||
			TupleDescAttr(RelationGetDescr(t->memory), MEM_H - 1)->atttypid != INT8OID)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the memory table of view \"%s\" has an old layout", v->name),
					 errhint("Drop the view with repo_stream.drop_view and create it again.")));
		indexes = RelationGetIndexList(t->memory);
		if (list_length(indexes) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the memory table of view \"%s\" has %d indexes, not its index on h",
							v->name, list_length(indexes)),
					 errhint("Drop the view with repo_stream.drop_view and create it again.")));
		t->memory_index = linitial_oid(indexes);
		list_free(indexes);
	}
}

void
rs_view_tables_close(ViewTables *t)
{
	/* the locks stay until the end of the transaction, as a statement's */
	if (t->memory)
		table_close(t->memory, NoLock);
	if (t->count)
		table_close(t->count, NoLock);
	t->memory = t->count = NULL;
}

/* ------------------------------------------------------------ memory */

static bool
text_equals(Datum d, const char *s, size_t len)
{
	text	   *t = DatumGetTextPP(d);
	bool		eq = VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), s, len) == 0;

	if ((Pointer) t != DatumGetPointer(d))
		pfree(t);
	return eq;
}

/* Call fn for every row of the memory with lo <= h <= hi whose DID is did (and rkey, if not NULL). */
static void
memory_scan(ViewTables *t, Snapshot snap, int64 lo, int64 hi, const char *did, const char *rkey,
			ViewMemoryFn fn, void *arg)
{
	Relation	index = index_open(t->memory_index, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(t->memory, NULL);
	IndexScanDesc scan;
	ScanKeyData keys[2];
	size_t		did_len = strlen(did),
				rkey_len = rkey ? strlen(rkey) : 0;
	int			nkeys;

	if (lo == hi)
	{
		ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(lo));
		nkeys = 1;
	}
	else
	{
		ScanKeyInit(&keys[0], 1, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(lo));
		ScanKeyInit(&keys[1], 1, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(hi));
		nkeys = 2;
	}
	scan = index_beginscan(t->memory, index, snap, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		HeapTuple	tup;

		if (!text_equals(slot_getattr(slot, MEM_DID, &isnull), did, did_len))
			continue;			/* another repo's path with the same hash */
		if (rkey && !text_equals(slot_getattr(slot, MEM_RKEY, &isnull), rkey, rkey_len))
			continue;
		tup = ExecCopySlotHeapTuple(slot);
		fn(arg, TextDatumGetCString(slot_getattr(slot, MEM_RKEY, &isnull)),
		   TextDatumGetCString(slot_getattr(slot, MEM_KEY, &isnull)), tup);
		if (rkey)
			break;				/* a path has at most one row */
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
}

void
rs_view_memory_find(ViewTables *t, Snapshot snap, const char *did, const char *rkey,
					ViewMemoryFn fn, void *arg)
{
	int64		h = rs_view_path_hash(did, strlen(did), rkey, strlen(rkey));

	memory_scan(t, snap, h, h, did, rkey, fn, arg);
}

void
rs_view_memory_repo(ViewTables *t, Snapshot snap, const char *did, ViewMemoryFn fn, void *arg)
{
	int64		lo = rs_view_path_hash(did, strlen(did), "", 0) & ~(int64) UINT64CONST(0xFFFFFFFF);

	/* the top 32 bits fixed: a contiguous range in signed order too */
	memory_scan(t, snap, lo, lo | (int64) UINT64CONST(0xFFFFFFFF), did, NULL, fn, arg);
}

void
rs_view_memory_insert(ViewTables *t, const char *did, const char *rkey, const char *key)
{
	Datum		values[MEM_NATTS];
	bool		nulls[MEM_NATTS] = {false, false, false, false};

	values[MEM_H - 1] = Int64GetDatum(rs_view_path_hash(did, strlen(did), rkey, strlen(rkey)));
	values[MEM_DID - 1] = CStringGetTextDatum(did);
	values[MEM_RKEY - 1] = CStringGetTextDatum(rkey);
	values[MEM_KEY - 1] = CStringGetTextDatum(key);
	rs_rel_insert(t->memory, values, nulls);
}

void
rs_view_memory_set(ViewTables *t, HeapTuple row, const char *key)
{
	Datum		values[MEM_NATTS];
	bool		nulls[MEM_NATTS] = {false, false, false, false};
	bool		replace[MEM_NATTS] = {false, false, false, false};

	if (key == NULL)
	{
		rs_rel_delete(t->memory, &row->t_self);
		return;
	}
	values[MEM_KEY - 1] = CStringGetTextDatum(key);
	replace[MEM_KEY - 1] = true;
	heap_freetuple(rs_rel_update(t->memory, row, values, nulls, replace));
}

/* ------------------------------------------------------------ counts */

int64
rs_view_count_get(ViewTables *t, Snapshot snap, const char *key)
{
	Datum		k = CStringGetTextDatum(key);
	HeapTuple	tup = rs_rel_lookup(t->count, snap, 1, &k);
	int64		n = 0;

	if (tup)
	{
		bool		isnull;

		n = DatumGetInt64(heap_getattr(tup, CNT_COUNT, RelationGetDescr(t->count), &isnull));
		heap_freetuple(tup);
	}
	return n;
}

void
rs_view_count_add(ViewTables *t, Snapshot snap, const ViewDef *v, int n, const char *const *keys,
				  const int64 *deltas)
{
	Oid			pk = RelationGetPrimaryKeyIndex(t->count);
	Relation	index = index_open(pk, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(t->count, NULL);
	IndexScanDesc scan = index_beginscan(t->count, index, snap, 1, 0);
	ScanKeyData skey;

	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		bool		replace[2] = {false, true};
		Datum		k = CStringGetTextDatum(keys[i]);
		int64		c = deltas[i];
		bool		found;

		/* the index's own collation ("C"): its order is the one the scan descends */
		ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[0], F_TEXTEQ, k);
		index_rescan(scan, &skey, 1, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, slot);
		if (found)
		{
			bool		isnull;

			c += DatumGetInt64(slot_getattr(slot, CNT_COUNT, &isnull));
		}
		if (c < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("view \"%s\": the count of key \"%s\" would be " INT64_FORMAT, v->name, keys[i], c),
					 errhint("Its memory no longer matches its table; drop the view and create it again.")));
		if (!found)
		{
			values[CNT_KEY - 1] = k;
			values[CNT_COUNT - 1] = Int64GetDatum(c);
			rs_rel_insert(t->count, values, nulls);
		}
		else if (c == 0)
			rs_rel_delete(t->count, &slot->tts_tid);
		else
		{
			bool		should_free;
			HeapTuple	old = ExecFetchSlotHeapTuple(slot, false, &should_free);

			values[CNT_COUNT - 1] = Int64GetDatum(c);
			heap_freetuple(rs_rel_update(t->count, old, values, nulls, replace));
			if (should_free)
				heap_freetuple(old);
		}
		ExecClearTuple(slot);
		pfree(DatumGetPointer(k));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
}
