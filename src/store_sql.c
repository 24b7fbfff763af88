/*
 * store_sql.c - direct access to the extension's tables (see store_sql.h).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "nodes/pg_list.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "store_sql.h"

static const char *const rel_names[RS_REL_EVENT_LOG_0] = {
	[RS_REL_REPOS] = "repos",
	[RS_REL_REPO_KEYS] = "repo_keys",
	[RS_REL_KEY_HISTORY] = "repo_key_history",
	[RS_REL_RECORDS] = "records",
	[RS_REL_MST_NODES] = "mst_nodes",
	[RS_REL_RELAY_REPOS] = "relay_repos",
	[RS_REL_LOG_STATE] = "log_state",
	[RS_REL_EVENT_SEQ] = "event_seq",
};

static Oid	rel_oids[RS_REL_COUNT];
static bool callback_registered = false;

/*
 * The indexes of a table with their IndexInfo, built once per backend.  At
 * any relcache invalidation the OIDs are forgotten at once and the index
 * infos when next asked for (a caller may be using them right then).
 */
typedef struct IndexSet
{
	Oid			relid;
	int			n;
	Oid			oids[8];
	IndexInfo  *infos[8];
} IndexSet;

static MemoryContext index_cxt = NULL;
static IndexSet index_sets[RS_REL_COUNT];
static bool index_sets_stale = false;

static void
forget_oids(Datum arg, Oid relid)
{
	memset(rel_oids, 0, sizeof(rel_oids));
	index_sets_stale = true;
}

static void
register_callback(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_oids, (Datum) 0);
		callback_registered = true;
	}
}

Oid
rs_rel_oid(RsRel rel)
{
	register_callback();
	if (!OidIsValid(rel_oids[rel]))
	{
		char		name[NAMEDATALEN];
		Oid			nsp = get_namespace_oid("repo_stream", false);

		if (rel >= RS_REL_EVENT_LOG_0)
			snprintf(name, sizeof(name), "event_log_%d", (int) (rel - RS_REL_EVENT_LOG_0));
		else
			strlcpy(name, rel_names[rel], sizeof(name));
		rel_oids[rel] = get_relname_relid(name, nsp);
		if (!OidIsValid(rel_oids[rel]))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("repo_stream relation \"%s\" is missing", name),
					 errhint("Reinstall the extension.")));
	}
	return rel_oids[rel];
}

Relation
rs_rel_open(RsRel rel, LOCKMODE lockmode)
{
	return table_open(rs_rel_oid(rel), lockmode);
}

HeapTuple
rs_rel_lookup(Relation rel, Snapshot snapshot, int nkeys, const Datum *keys)
{
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	Relation	index;
	ScanKeyData skey[INDEX_MAX_KEYS];
	SysScanDesc scan;
	HeapTuple	tup;

	if (!OidIsValid(pk))
		elog(ERROR, "relation \"%s\" has no primary key", RelationGetRelationName(rel));
	index = index_open(pk, AccessShareLock);
	Assert(nkeys <= index->rd_index->indnkeyatts);
	for (int i = 0; i < nkeys; i++)
	{
		AttrNumber	attno = index->rd_index->indkey.values[i];
		Oid			type = TupleDescAttr(RelationGetDescr(rel), attno - 1)->atttypid;

		/* the index's own collation: its order is the one the scan descends */
		ScanKeyEntryInitialize(&skey[i], 0, attno, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[i],
							   type == BYTEAOID ? F_BYTEAEQ : F_TEXTEQ, keys[i]);
	}
	scan = systable_beginscan(rel, pk, true, snapshot, nkeys, skey);
	tup = systable_getnext(scan);
	if (tup != NULL)
		tup = heap_copytuple(tup);
	systable_endscan(scan);
	index_close(index, AccessShareLock);
	return tup;
}

static IndexSet *
index_set(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	IndexSet   *set = NULL;
	List	   *indexes;
	ListCell   *lc;
	MemoryContext old;

	/* tables opened without rs_rel_oid (a view's) need it as much */
	register_callback();
	if (index_sets_stale)
	{
		memset(index_sets, 0, sizeof(index_sets));
		if (index_cxt != NULL)
			MemoryContextReset(index_cxt);
		index_sets_stale = false;
	}
	for (int i = 0; i < RS_REL_COUNT; i++)
	{
		if (index_sets[i].relid == relid)
			return &index_sets[i];
		if (set == NULL && !OidIsValid(index_sets[i].relid))
			set = &index_sets[i];
	}
	if (index_cxt == NULL)
		index_cxt = AllocSetContextCreate(TopMemoryContext, "repo_stream index infos",
										  ALLOCSET_SMALL_SIZES);
	/*
	 * Every slot taken (views' tables come on top of the write path's):
	 * start over, as after an invalidation; no caller holds a set between
	 * calls.
	 */
	if (set == NULL)
	{
		memset(index_sets, 0, sizeof(index_sets));
		MemoryContextReset(index_cxt);
		set = &index_sets[0];
	}
	indexes = RelationGetIndexList(rel);
	if (list_length(indexes) > (int) lengthof(set->oids))
		elog(ERROR, "relation \"%s\" has too many indexes", RelationGetRelationName(rel));
	set->n = 0;
	old = MemoryContextSwitchTo(index_cxt);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);

		set->oids[set->n] = lfirst_oid(lc);
		set->infos[set->n] = BuildIndexInfo(index);
		set->n++;
		index_close(index, AccessShareLock);
	}
	MemoryContextSwitchTo(old);
	list_free(indexes);
	set->relid = relid;
	return set;
}

/* Index entries for tup, which is in rel at tup->t_self. */
static void
insert_index_entries(Relation rel, HeapTuple tup)
{
	IndexSet   *set = index_set(rel);
	TupleTableSlot *slot;

	if (set->n == 0)
		return;
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	ExecStoreHeapTuple(tup, slot, false);
	for (int i = 0; i < set->n; i++)
	{
		Relation	index = index_open(set->oids[i], RowExclusiveLock);
		IndexInfo  *info = set->infos[i];
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];

		/* plain column indexes only: no expressions, so no executor state */
		Assert(info->ii_Expressions == NIL && info->ii_Predicate == NIL);
		FormIndexDatum(info, slot, NULL, values, isnull);
		index_insert(index, values, isnull, &tup->t_self, rel,
					 index->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
					 false, info);
		index_close(index, RowExclusiveLock);
	}
	ExecDropSingleTupleTableSlot(slot);
}

void
rs_rel_insert(Relation rel, Datum *values, bool *nulls)
{
	HeapTuple	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);

	simple_heap_insert(rel, tup);
	insert_index_entries(rel, tup);
	heap_freetuple(tup);
}

HeapTuple
rs_rel_update(Relation rel, HeapTuple oldtup, Datum *values, bool *nulls, bool *replace)
{
	HeapTuple	newtup = heap_modify_tuple(oldtup, RelationGetDescr(rel), values, nulls, replace);

	simple_heap_update(rel, &oldtup->t_self, newtup);
	/* a HOT update keeps the old index entries, which lead to the new version */
	if (!HeapTupleIsHeapOnly(newtup))
		insert_index_entries(rel, newtup);
	return newtup;
}

void
rs_rel_delete(Relation rel, ItemPointer tid)
{
	simple_heap_delete(rel, tid);
}

Snapshot
rs_fresh_snapshot(void)
{
	return RegisterSnapshot(GetLatestSnapshot());
}
