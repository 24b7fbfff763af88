/*
 * records_sql.c - records as applications write them: the records trigger
 * (plain DML) and the helpers put_record, create_record, delete_record and
 * get_record.
 *
 * Both ways prepare a record alike (record_prepare): check its key, lock
 * its repo, check or fill in $type, encode it to DAG-CBOR (at most
 * RS_MAX_RECORD_BYTES) and compute its CID, keeping the block for the
 * commit.
 *
 * DML goes through the executor: the BEFORE ROW trigger prepares the row,
 * and the AFTER STATEMENT triggers read the transition tables, so only rows
 * that really changed become ops (an INSERT ... ON CONFLICT DO NOTHING that
 * skipped a row leaves none).
 *
 * The helpers write the row themselves, with direct table access, and log
 * the op: no executor, no triggers (see store_sql.h).  Whenever that could
 * differ from what DML does, they run the same SQL as DML instead, through
 * SPI as the caller: row-level security in force, triggers other than ours
 * or ours disabled, CHECK constraints, indexes that are not plain columns,
 * session_replication_role other than origin, or a privilege that column
 * grants give on some columns only (the SQL then applies or refuses it).
 * delete_record also serves writers without DELETE (see rs_delete_record).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "args_sql.h"
#include "cbor_sql.h"
#include "cid.h"
#include "commit_sql.h"
#include "spi_sql.h"
#include "store_sql.h"
#include "syntax_sql.h"
#include "syntax.h"
#include "tid.h"

PG_FUNCTION_INFO_V1(rs_records_trigger);
PG_FUNCTION_INFO_V1(rs_put_record);
PG_FUNCTION_INFO_V1(rs_create_record);
PG_FUNCTION_INFO_V1(rs_delete_record);
PG_FUNCTION_INFO_V1(rs_get_record);
PG_FUNCTION_INFO_V1(rs_list_records);

/* records columns */
#define ATT_DID 1
#define ATT_COLLECTION 2
#define ATT_RKEY 3
#define ATT_RECORD 4
#define ATT_CID 5
#define RECORDS_NATTS 5

/* our triggers on records: records_write and four statement triggers */
#define OUR_TRIGGERS 5

/* ------------------------------------------------------------ preparing */

/*
 * The record with its $type checked against the collection, as the
 * reference PDS does: a different $type is an ERROR (22023) naming both,
 * a missing one is set to the collection.  A $type that is not a string is
 * left for the encoder to refuse.
 */
static Jsonb *
record_with_type(Jsonb *record, const char *collection, const char *rkey, const char *did)
{
	if (!JB_ROOT_IS_OBJECT(record) || JB_ROOT_IS_SCALAR(record))
		return record;			/* the encoder refuses it, naming the shape */
	if (!rs_record_check_type(record, collection, rkey, did,
							  "A record's $type is its collection's NSID; leave it out and it is filled in."))
	{
		Datum		add = DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(psprintf("{\"$type\": \"%s\"}", collection)));

		return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(record), add));
	}
	return record;
}

/*
 * Everything a record needs before its row is written: the key checked, the
 * repo locked (ERROR for an unknown, deactivated or deleted repo), $type
 * checked or filled in, the DAG-CBOR block kept for the commit.  Returns
 * the record to store and its CID (binary and text).
 */
static Jsonb *
record_prepare(const char *did, const char *collection, const char *rkey, Jsonb *record,
			   uint8 cid[CID_LEN], char cid_text[CID_TEXT_LEN + 1])
{
	bytea	   *cbor;
	size_t		len;

	rs_check_record_key(did, collection, rkey);
	rs_touch_repo(did);
	record = record_with_type(record, collection, rkey, did);
	cbor = rs_record_to_cbor(record);
	len = VARSIZE(cbor) - VARHDRSZ;
	if (len > RS_MAX_RECORD_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("record %s/%s in repo \"%s\" is %zu bytes of DAG-CBOR; the limit is %d",
						collection, rkey, did, len, RS_MAX_RECORD_BYTES)));
	cid_for_dagcbor((uint8 *) VARDATA(cbor), len, cid);
	rs_note_block(cid, (uint8 *) VARDATA(cbor), len);
	pfree(cbor);
	cid_format(cid, cid_text);
	return record;
}

/* ------------------------------------------------------------ trigger */

static char *
get_text_att(HeapTuple tup, TupleDesc desc, int att)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, att, desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Prepare the new row; returns it with record ($type) and cid filled in. */
static HeapTuple
prepare_new_row(TriggerData *td, HeapTuple tup)
{
	TupleDesc	desc = td->tg_relation->rd_att;
	char	   *did = get_text_att(tup, desc, ATT_DID);
	char	   *collection = get_text_att(tup, desc, ATT_COLLECTION);
	char	   *rkey = get_text_att(tup, desc, ATT_RKEY);
	bool		isnull;
	Datum		record = heap_getattr(tup, ATT_RECORD, desc, &isnull);
	uint8		cid[CID_LEN];
	char		cid_text[CID_TEXT_LEN + 1];
	int			cols[2] = {ATT_RECORD, ATT_CID};
	Datum		vals[2];
	bool		nulls[2] = {false, false};

	if (did == NULL || collection == NULL || rkey == NULL || isnull)
		return tup;				/* the NOT NULL constraints report it */
	vals[0] = JsonbPGetDatum(record_prepare(did, collection, rkey, DatumGetJsonbP(record),
											cid, cid_text));
	vals[1] = CStringGetTextDatum(cid_text);
	return heap_modify_tuple_by_cols(tup, desc, 2, cols, vals, nulls);
}

/* Log one op per row of a transition table. */
static void
note_rows(TriggerData *td, Tuplestorestate *rows, bool exists)
{
	TupleDesc	desc = td->tg_relation->rd_att;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);

	tuplestore_rescan(rows);
	while (tuplestore_gettupleslot(rows, true, false, slot))
	{
		bool		isnull;
		char	   *did = TextDatumGetCString(slot_getattr(slot, ATT_DID, &isnull));
		char	   *collection = TextDatumGetCString(slot_getattr(slot, ATT_COLLECTION, &isnull));
		char	   *rkey = TextDatumGetCString(slot_getattr(slot, ATT_RKEY, &isnull));
		uint8		cid[CID_LEN];

		if (exists)
		{
			text	   *t = DatumGetTextPP(slot_getattr(slot, ATT_CID, &isnull));

			if (!cid_parse(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), cid))
				elog(ERROR, "records row has an invalid cid");
		}
		rs_note_op(did, collection, rkey, exists, cid);
		pfree(did);
		pfree(collection);
		pfree(rkey);
	}
	ExecDropSingleTupleTableSlot(slot);
}

Datum
rs_records_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("records_trigger() may only be called as a trigger")));

	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("TRUNCATE on repo_stream.records is not allowed"),
				 errhint("Delete records with DELETE, or a whole repo with repo_stream.delete_repo().")));

	if (TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
	{
		/* AFTER ... REFERENCING: one trigger per event */
		if (!rs_suppress_ops)
		{
			if (td->tg_oldtable)
				note_rows(td, td->tg_oldtable, false);
			if (td->tg_newtable)
				note_rows(td, td->tg_newtable, true);
		}
		return PointerGetDatum(NULL);
	}

	if (rs_suppress_ops)
		return PointerGetDatum(TRIGGER_FIRED_BY_DELETE(td->tg_event) ? td->tg_trigtuple : td->tg_newtuple ? td->tg_newtuple : td->tg_trigtuple);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		return PointerGetDatum(prepare_new_row(td, td->tg_trigtuple));
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		char	   *old_did = get_text_att(td->tg_trigtuple, td->tg_relation->rd_att, ATT_DID);

		rs_touch_repo(old_did);
		return PointerGetDatum(prepare_new_row(td, td->tg_newtuple));
	}
	/* DELETE */
	rs_touch_repo(get_text_att(td->tg_trigtuple, td->tg_relation->rd_att, ATT_DID));
	return PointerGetDatum(td->tg_trigtuple);
}

/* ------------------------------------------------------------ helpers */

/* Whether records has nothing that direct writes would bypass; per relcache entry. */
static Oid	shape_relid = InvalidOid;
static bool shape_ok = false;
static bool shape_callback = false;

static void
forget_shape(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == shape_relid)
		shape_relid = InvalidOid;
}

static bool
records_shape_ok(Relation rel)
{
	TriggerDesc *trig = rel->trigdesc;
	List	   *indexes;
	ListCell   *lc;
	bool		ok = true;

	if (!shape_callback)
	{
		CacheRegisterRelcacheCallback(forget_shape, (Datum) 0);
		shape_callback = true;
	}
	if (shape_relid == RelationGetRelid(rel))
		return shape_ok;

	if (trig == NULL || trig->numtriggers != OUR_TRIGGERS)
		ok = false;
	for (int i = 0; ok && i < trig->numtriggers; i++)
		if (trig->triggers[i].tgenabled != TRIGGER_FIRES_ON_ORIGIN ||
			strncmp(trig->triggers[i].tgname, "records_", 8) != 0)
			ok = false;
	if (rel->rd_att->constr != NULL && rel->rd_att->constr->num_check > 0)
		ok = false;
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);

		if (!index->rd_index->indimmediate || index->rd_index->indisexclusion ||
			RelationGetIndexExpressions(index) != NIL || RelationGetIndexPredicate(index) != NIL)
			ok = false;
		index_close(index, AccessShareLock);
	}
	list_free(indexes);
	shape_relid = RelationGetRelid(rel);
	shape_ok = ok;
	return ok;
}

/*
 * Whether the caller holds priv on records, on the table or on every
 * column: for DML the two are the same right, and repo_stream_writer has
 * UPDATE by column (a table-level UPDATE would also allow any LOCK TABLE
 * mode; see 90_privileges.sql).  DELETE exists only on the table.
 */
static bool
records_priv(Relation rel, AclMode priv)
{
	Oid			relid = RelationGetRelid(rel);

	if (pg_class_aclcheck(relid, GetUserId(), priv) == ACLCHECK_OK)
		return true;
	return priv != ACL_DELETE &&
		pg_attribute_aclcheck_all(relid, GetUserId(), priv, ACLMASK_ALL) == ACLCHECK_OK;
}

/* Whether the helper may write records directly for this caller. */
static bool
direct_ok(Relation rel, AclMode mode)
{
	if (!records_shape_ok(rel) ||
		SessionReplicationRole != SESSION_REPLICATION_ROLE_ORIGIN ||
		(rel->rd_rel->relrowsecurity &&
		 check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED))
		return false;
	for (AclMode bit = 1; mode != 0; bit <<= 1)
	{
		if ((mode & bit) && !records_priv(rel, bit))
			return false;
		mode &= ~bit;
	}
	return true;
}

/*
 * The records row of a path as of now (its repo's lock is held, so nothing
 * changes it under us; SnapshotSelf sees what is committed and what this
 * transaction wrote, even earlier in this statement), or NULL.  Under
 * REPEATABLE READ, a repo changed since the transaction's snapshot was
 * already refused when its lock was taken (rs_touch_repo).
 */
static HeapTuple
current_row(Relation rel, Datum *keys)
{
	return rs_rel_lookup(rel, SnapshotSelf, 3, keys);
}

/* The helpers' SQL, as the caller, for when direct writes may not be used. */
typedef enum HelperPlan
{
	HP_PUT,
	HP_CREATE,
	HP_DELETE,
	HP_LOCK,
	HP_GET,
	HP_COUNT
} HelperPlan;

static const char *const helper_sql[HP_COUNT] = {
	[HP_PUT] = "INSERT INTO repo_stream.records AS r (did, collection, rkey, record, cid)"
	" VALUES ($1, $2, $3, $4, '') ON CONFLICT ON CONSTRAINT records_pkey"
	" DO UPDATE SET record = excluded.record RETURNING r.cid",
	[HP_CREATE] = "INSERT INTO repo_stream.records AS r (did, collection, rkey, record, cid)"
	" VALUES ($1, $2, $3, $4, '') RETURNING r.cid",
	[HP_DELETE] = "DELETE FROM repo_stream.records"
	" WHERE did OPERATOR(pg_catalog.=) $1"
	" AND collection OPERATOR(pg_catalog.=) $2 AND rkey OPERATOR(pg_catalog.=) $3",
	[HP_LOCK] = "SELECT did FROM repo_stream.records"
	" WHERE did OPERATOR(pg_catalog.=) $1"
	" AND collection OPERATOR(pg_catalog.=) $2 AND rkey OPERATOR(pg_catalog.=) $3 FOR UPDATE",
	[HP_GET] = "SELECT record FROM repo_stream.records"
	" WHERE did OPERATOR(pg_catalog.=) $1"
	" AND collection OPERATOR(pg_catalog.=) $2 AND rkey OPERATOR(pg_catalog.=) $3",
};

/*
 * Run a helper's SQL as the caller; returns the first column of the first
 * row (copied out of SPI), or (Datum) 0 with *isnull if there is none.
 */
static Datum
helper_via_sql(HelperPlan which, Datum *args, int nargs, bool *isnull, uint64 *processed)
{
	static SPIPlanPtr plans[HP_COUNT];
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		result = (Datum) 0;

	MemoryContext cxt = CurrentMemoryContext;

	*isnull = true;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plans[which] == NULL)
		plans[which] = rs_prepare_pinned(helper_sql[which], nargs, types);
	PG_TRY();
	{
		/* no row limit: a limit stops a DML statement before its AFTER triggers */
		if (SPI_execute_plan(plans[which], args, NULL, which == HP_GET, 0) < 0)
			elog(ERROR, "repo_stream helper SQL failed");
	}
	PG_CATCH();
	{
		/* the error is the helper's: no CONTEXT quoting our internal SQL */
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->context = NULL;
		ReThrowError(edata);
	}
	PG_END_TRY();
	if (processed != NULL)
		*processed = SPI_processed;
	if (SPI_processed > 0 && SPI_tuptable != NULL)
	{
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
		if (!*isnull)
			result = SPI_datumTransfer(result, false, -1);
	}
	SPI_finish();
	return result;
}

/*
 * Write a record directly: insert, or update the row there is (only_new:
 * an existing row is 23505, as for create_record's fresh key).  Returns the
 * CID text.
 */
static text *
write_direct(Relation rel, const char *did, const char *collection, const char *rkey,
			 Jsonb *record, bool only_new)
{
	uint8		cid[CID_LEN];
	char		cid_text[CID_TEXT_LEN + 1];
	Datum		values[RECORDS_NATTS];
	bool		nulls[RECORDS_NATTS] = {0};
	bool		replace[RECORDS_NATTS] = {0};
	HeapTuple	tup;

	record = record_prepare(did, collection, rkey, record, cid, cid_text);
	values[ATT_DID - 1] = CStringGetTextDatum(did);
	values[ATT_COLLECTION - 1] = CStringGetTextDatum(collection);
	values[ATT_RKEY - 1] = CStringGetTextDatum(rkey);
	values[ATT_RECORD - 1] = JsonbPGetDatum(record);
	values[ATT_CID - 1] = CStringGetTextDatum(cid_text);
	tup = current_row(rel, values);
	if (tup == NULL)
		rs_rel_insert(rel, values, nulls);
	else if (only_new)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("record %s/%s already exists in repo \"%s\"", collection, rkey, did)));
	else
	{
		char	   *old_cid = get_text_att(tup, RelationGetDescr(rel), ATT_CID);

		/* the same value again: nothing to write, and no op */
		if (strcmp(old_cid, cid_text) == 0)
			return cstring_to_text(cid_text);
		replace[ATT_RECORD - 1] = replace[ATT_CID - 1] = true;
		heap_freetuple(rs_rel_update(rel, tup, values, nulls, replace));
	}
	rs_note_op(did, collection, rkey, true, cid);
	return cstring_to_text(cid_text);
}

/*
 * Write a record the way put_record (only_new false) or create_record
 * (true) does: directly when nothing could make that differ from DML,
 * else through the same SQL as DML.  Returns the CID text.
 */
static text *
write_record(const char *did, const char *collection, const char *rkey, Jsonb *record,
			 bool only_new)
{
	Relation	rel = rs_rel_open(RS_REL_RECORDS, RowExclusiveLock);
	text	   *cid;

	if (direct_ok(rel, ACL_SELECT | ACL_INSERT | (only_new ? 0 : ACL_UPDATE)))
		cid = write_direct(rel, did, collection, rkey, record, only_new);
	else
	{
		Datum		args[4];
		bool		isnull;

		args[0] = CStringGetTextDatum(did);
		args[1] = CStringGetTextDatum(collection);
		args[2] = CStringGetTextDatum(rkey);
		args[3] = JsonbPGetDatum(record);
		rs_check_record_key(did, collection, rkey);
		cid = DatumGetTextPP(helper_via_sql(only_new ? HP_CREATE : HP_PUT, args, 4, &isnull, NULL));
	}
	table_close(rel, RowExclusiveLock);
	return cid;
}

/* put_record(did, collection, rkey, record jsonb) -> cid text */
Datum
rs_put_record(PG_FUNCTION_ARGS)
{
	char	   *did = rs_arg_did(fcinfo, 0);
	char	   *collection = rs_arg_text(fcinfo, 1, "collection");
	char	   *rkey = rs_arg_text(fcinfo, 2, "rkey");

	rs_arg_required(fcinfo, 3, "record");
	PG_RETURN_TEXT_P(write_record(did, collection, rkey, PG_GETARG_JSONB_P(3), false));
}

/* create_record(did, collection, record jsonb, OUT rkey text, OUT cid text) */
Datum
rs_create_record(PG_FUNCTION_ARGS)
{
	char	   *did = rs_arg_did(fcinfo, 0);
	char	   *collection = rs_arg_text(fcinfo, 1, "collection");
	char		rkey[TID_LEN + 1];
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	rs_arg_required(fcinfo, 2, "record");
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	rs_tid_next(rkey);
	values[0] = CStringGetTextDatum(rkey);
	values[1] = PointerGetDatum(write_record(did, collection, rkey, PG_GETARG_JSONB_P(2), true));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* delete_record(did, collection, rkey) -> boolean: false if there was none */
Datum
rs_delete_record(PG_FUNCTION_ARGS)
{
	char	   *did = rs_arg_did(fcinfo, 0);
	char	   *collection = rs_arg_text(fcinfo, 1, "collection");
	char	   *rkey = rs_arg_text(fcinfo, 2, "rkey");
	Relation	rel;
	Datum		keys[3];
	bool		deleted;
	bool		may_delete,
				may_update;

	rs_check_record_key(did, collection, rkey);
	/* an unknown, deleted or deactivated repo is an ERROR, as for writes */
	rs_touch_repo(did);
	keys[0] = CStringGetTextDatum(did);
	keys[1] = CStringGetTextDatum(collection);
	keys[2] = CStringGetTextDatum(rkey);
	rel = rs_rel_open(RS_REL_RECORDS, RowExclusiveLock);
	/*
	 * The right to delete through the helper: DELETE on records, or UPDATE
	 * of all of it (repo_stream_writer's grants).  Plain DML DELETE needs
	 * the table-level privilege, which also allows any LOCK TABLE mode.
	 */
	may_delete = records_priv(rel, ACL_DELETE);
	may_update = records_priv(rel, ACL_UPDATE);
	if ((may_delete || may_update) && direct_ok(rel, ACL_SELECT))
	{
		HeapTuple	tup = current_row(rel, keys);

		deleted = tup != NULL;
		if (deleted)
		{
			rs_rel_delete(rel, &tup->t_self);
			rs_note_op(did, collection, rkey, false, NULL);
		}
	}
	else if (may_delete || !may_update)
	{
		/* DML as the caller: its policies, or its 42501 */
		bool		isnull;
		uint64		processed;

		(void) helper_via_sql(HP_DELETE, keys, 3, &isnull, &processed);
		deleted = processed > 0;
	}
	else
	{
		/*
		 * A writer without DELETE, where direct access may not be used: the
		 * caller locks the row FOR UPDATE (so its row-level security policies
		 * for SELECT and UPDATE decide), and the owner deletes it with DML
		 * (other triggers run, our triggers log the op).
		 */
		bool		isnull;
		uint64		processed;
		RsOwnerContext oc;

		(void) helper_via_sql(HP_LOCK, keys, 3, &isnull, &processed);
		deleted = processed > 0;
		if (deleted)
		{
			rs_enter_owner(&oc);
			(void) helper_via_sql(HP_DELETE, keys, 3, &isnull, &processed);
			rs_leave_owner(&oc);
		}
	}
	table_close(rel, RowExclusiveLock);
	PG_RETURN_BOOL(deleted);
}

/* get_record(did, collection, rkey) -> jsonb, NULL if there is no such record */
Datum
rs_get_record(PG_FUNCTION_ARGS)
{
	char	   *did = rs_arg_did(fcinfo, 0);
	char	   *collection = rs_arg_text(fcinfo, 1, "collection");
	char	   *rkey = rs_arg_text(fcinfo, 2, "rkey");
	Relation	rel;
	Datum		keys[3];
	Datum		result = (Datum) 0;
	bool		isnull = true;
	char	   *status;

	rs_check_record_key(did, collection, rkey);
	status = rs_repo_status_seen(did);
	if (status == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did)));
	if (strcmp(status, "deleted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("repo \"%s\" is deleted", did)));
	keys[0] = CStringGetTextDatum(did);
	keys[1] = CStringGetTextDatum(collection);
	keys[2] = CStringGetTextDatum(rkey);
	rel = rs_rel_open(RS_REL_RECORDS, AccessShareLock);
	if (direct_ok(rel, ACL_SELECT))
	{
		/* a read: the statement's snapshot, as SELECT would use */
		HeapTuple	tup = rs_rel_lookup(rel, GetActiveSnapshot(), 3, keys);

		if (tup != NULL)
			result = heap_getattr(tup, ATT_RECORD, RelationGetDescr(rel), &isnull);
	}
	else
		result = helper_via_sql(HP_GET, keys, 3, &isnull, NULL);
	table_close(rel, AccessShareLock);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

#define LIST_RECORDS_MAX 1000

/*
 * list_records(did, collection, cursor text DEFAULT NULL, max_records int
 * DEFAULT 100) -> (rkey, cid, record): a page of a collection, newest rkey
 * first as atproto's listRecords; the next page starts after the last rkey
 * (the cursor).  Run as the caller, so row-level security applies.  42704
 * unknown repo, 55000 deleted repo, 22023 invalid collection or cursor, or
 * max_records outside 1..LIST_RECORDS_MAX.
 */
Datum
rs_list_records(PG_FUNCTION_ARGS)
{
	char	   *did = rs_arg_did(fcinfo, 0);
	char	   *collection = rs_arg_text(fcinfo, 1, "collection");
	int32		max_records;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, INT4OID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	char	   *status;
	MemoryContext per_query;

	rs_arg_required(fcinfo, 3, "max_records");
	max_records = PG_GETARG_INT32(3);
	rs_check_record_key(did, collection, "x");
	if (!PG_ARGISNULL(2))
	{
		char	   *cursor = text_to_cstring(PG_GETARG_TEXT_PP(2));

		if (!rkey_valid(cursor, strlen(cursor)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid cursor: \"%s\"", cursor),
					 errhint("A cursor is the last rkey of the previous page.")));
	}
	if (max_records < 1 || max_records > LIST_RECORDS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_records must be between 1 and %d, not %d", LIST_RECORDS_MAX, max_records)));
	status = rs_repo_status_seen(did);
	if (status == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did)));
	if (strcmp(status, "deleted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("repo \"%s\" is deleted", did)));

	InitMaterializedSRF(fcinfo, 0);
	per_query = rsinfo->econtext->ecxt_per_query_memory;
	args[0] = CStringGetTextDatum(did);
	args[1] = CStringGetTextDatum(collection);
	args[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	args[3] = Int32GetDatum(max_records);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plan == NULL)
		plan = rs_prepare_pinned("SELECT rkey, cid, record FROM repo_stream.records"
								 " WHERE did OPERATOR(pg_catalog.=) $1 AND collection OPERATOR(pg_catalog.=) $2"
								 " AND ($3 IS NULL OR rkey OPERATOR(pg_catalog.<) $3)"
								 " ORDER BY rkey DESC LIMIT $4", 4, types);
	if (SPI_execute_plan(plan, args, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "listing records failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[3];
		bool		isnull[3];
		MemoryContext old = MemoryContextSwitchTo(per_query);

		for (int c = 0; c < 3; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &isnull[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return (Datum) 0;
}
