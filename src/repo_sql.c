/*
 * repo_sql.c - repos and records as the application sees them: the records
 * trigger and the repo lifecycle functions.
 *
 * The BEFORE ROW trigger validates a row, locks its repo, encodes the record
 * to DAG-CBOR and fills in its CID.  The AFTER STATEMENT triggers read the
 * transition tables, so only rows that really changed become ops (an
 * INSERT ... ON CONFLICT DO NOTHING that skipped a row leaves none).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "cbor_sql.h"
#include "cid.h"
#include "commit_sql.h"
#include "keys.h"
#include "keys_sql.h"
#include "spi_sql.h"
#include "syntax.h"

PG_FUNCTION_INFO_V1(rs_records_trigger);
PG_FUNCTION_INFO_V1(rs_create_repo);
PG_FUNCTION_INFO_V1(rs_repo_key);
PG_FUNCTION_INFO_V1(rs_deactivate_repo);
PG_FUNCTION_INFO_V1(rs_activate_repo);
PG_FUNCTION_INFO_V1(rs_delete_repo);
PG_FUNCTION_INFO_V1(rs_rotate_key);

/* records columns */
#define ATT_DID 1
#define ATT_COLLECTION 2
#define ATT_RKEY 3
#define ATT_RECORD 4
#define ATT_CID 5

static char *
get_text_att(HeapTuple tup, TupleDesc desc, int att)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, att, desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static void
check_key_columns(const char *did, const char *collection, const char *rkey)
{
	if (!did_valid(did, strlen(did)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid DID: \"%s\"", did),
				 errhint("DIDs look like did:plc:ewvi7nxzyoun6zhxrhs64oiz or did:web:example.com.")));
	if (!nsid_valid(collection, strlen(collection)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid collection NSID: \"%s\"", collection),
				 errhint("Collections are NSIDs such as app.bsky.feed.post.")));
	if (!rkey_valid(rkey, strlen(rkey)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid record key: \"%s\"", rkey),
				 errhint("Record keys are 1 to 512 characters of A-Za-z0-9._:~- and not \".\" or \"..\".")));
}

/* Validate and encode the new row; returns it with cid filled in. */
static HeapTuple
prepare_new_row(TriggerData *td, HeapTuple tup)
{
	TupleDesc	desc = td->tg_relation->rd_att;
	char	   *did = get_text_att(tup, desc, ATT_DID);
	char	   *collection = get_text_att(tup, desc, ATT_COLLECTION);
	char	   *rkey = get_text_att(tup, desc, ATT_RKEY);
	bool		isnull;
	Datum		record = heap_getattr(tup, ATT_RECORD, desc, &isnull);
	bytea	   *cbor;
	size_t		len;
	uint8		cid[CID_LEN];
	char		cid_text[CID_TEXT_LEN + 1];
	int			cols[1] = {ATT_CID};
	Datum		vals[1];
	bool		nulls[1] = {false};

	if (did == NULL || collection == NULL || rkey == NULL || isnull)
		return tup;				/* the NOT NULL constraints report it */
	check_key_columns(did, collection, rkey);
	rs_touch_repo(did);

	cbor = rs_record_to_cbor(DatumGetJsonbP(record));
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
	vals[0] = CStringGetTextDatum(cid_text);
	return heap_modify_tuple_by_cols(tup, desc, 1, cols, vals, nulls);
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

/* ------------------------------------------------------------ lifecycle */

static char *
arg_did(FunctionCallInfo fcinfo)
{
	char	   *did = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (!did_valid(did, strlen(did)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid DID: \"%s\"", did),
				 errhint("DIDs look like did:plc:ewvi7nxzyoun6zhxrhs64oiz or did:web:example.com.")));
	return did;
}

/* Lock the repo row and return its status; ERROR if there is none. */
static char *
lock_repo(const char *did)
{
	Datum		arg = CStringGetTextDatum(did);

	if (rs_exec(PLAN_REPO_LOCK, &arg, NULL) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did)));
	return rs_gettext(0, 1);
}

static bool
any_sealed_key(void)
{
	bool		isnull;

	SPI_execute("SELECT EXISTS (SELECT 1 FROM repo_stream.repo_keys)"
				"    OR EXISTS (SELECT 1 FROM repo_stream.repo_key_history)", true, 0);
	return DatumGetBool(rs_getdatum(0, 1, &isnull));
}

Datum
rs_create_repo(PG_FUNCTION_ARGS)
{
	char	   *did = arg_did(fcinfo);
	RsOwnerContext oc;
	RsBuf		sealed;
	char		did_key[128];
	Datum		args[3];
	Oid			types[3] = {TEXTOID, TEXTOID, BYTEAOID};
	bytea	   *sealed_b;
	int			rc;

	/* before rs_enter_owner: SPI's memory goes away at rs_leave_owner */
	rs_buf_init(&sealed, 128);
	args[0] = CStringGetTextDatum(did);
	rs_enter_owner(&oc);
	rc = SPI_execute_with_args("SELECT status FROM repo_stream.repos WHERE did = $1",
							   1, types, args, NULL, true, 0);
	if (rc == SPI_OK_SELECT && SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("repo \"%s\" already exists", did)));

	/* a master key file is created only while no sealed key exists */
	rs_keys_generate(!any_sealed_key(), &sealed, did_key);
	sealed_b = rs_bytea(sealed.data, sealed.len);
	rs_buf_free(&sealed);

	args[1] = CStringGetTextDatum(did_key);
	args[2] = PointerGetDatum(sealed_b);
	SPI_execute_with_args("WITH r AS (INSERT INTO repo_stream.repos (did, did_key) VALUES ($1, $2))"
						  " INSERT INTO repo_stream.repo_keys (did, sealed) VALUES ($1, $3)",
						  3, types, args, NULL, false, 0);
	rs_leave_owner(&oc);

	rs_note_created(did);
	PG_RETURN_TEXT_P(cstring_to_text(did_key));
}

Datum
rs_repo_key(PG_FUNCTION_ARGS)
{
	char	   *did = text_to_cstring(PG_GETARG_TEXT_PP(0));
	RsOwnerContext oc;
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;
	char	   *key;

	rs_enter_owner(&oc);
	SPI_execute_with_args("SELECT did_key FROM repo_stream.repos WHERE did = $1 AND status <> 'deleted'",
						  1, &type, &arg, NULL, true, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did)));
	key = rs_gettext(0, 1);
	rs_leave_owner(&oc);
	PG_RETURN_TEXT_P(cstring_to_text(key));
}

static void
set_status(const char *did, const char *from_required, const char *to, bool active)
{
	RsOwnerContext oc;
	char	   *status;
	Datum		args[2];
	Oid			types[2] = {TEXTOID, TEXTOID};

	rs_enter_owner(&oc);
	status = lock_repo(did);
	if (strcmp(status, "deleted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("repo \"%s\" is deleted", did)));
	if (strcmp(status, from_required) != 0)
	{
		/* already there: nothing changes and no event is emitted */
		rs_leave_owner(&oc);
		ereport(NOTICE,
				(errmsg("repo \"%s\" is already %s", did, status)));
		return;
	}
	args[0] = CStringGetTextDatum(did);
	args[1] = CStringGetTextDatum(to);
	SPI_execute_with_args("UPDATE repo_stream.repos SET status = $2 WHERE did = $1",
						  2, types, args, NULL, false, 0);
	rs_leave_owner(&oc);
	rs_note_account(did, active, active ? NULL : to);
}

Datum
rs_deactivate_repo(PG_FUNCTION_ARGS)
{
	set_status(arg_did(fcinfo), "active", "deactivated", false);
	PG_RETURN_VOID();
}

Datum
rs_activate_repo(PG_FUNCTION_ARGS)
{
	set_status(arg_did(fcinfo), "deactivated", "active", true);
	PG_RETURN_VOID();
}

Datum
rs_delete_repo(PG_FUNCTION_ARGS)
{
	char	   *did = arg_did(fcinfo);
	RsOwnerContext oc;
	char	   *status;
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;

	rs_enter_owner(&oc);
	status = lock_repo(did);
	if (strcmp(status, "deleted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("repo \"%s\" is already deleted", did)));
	/* the records go without commits: the #account event says why */
	rs_suppress_ops = true;
	SPI_execute_with_args("DELETE FROM repo_stream.records WHERE did = $1", 1, &type, &arg, NULL, false, 0);
	rs_suppress_ops = false;
	SPI_execute_with_args("DELETE FROM repo_stream.mst_nodes WHERE did = $1", 1, &type, &arg, NULL, false, 0);
	SPI_execute_with_args("DELETE FROM repo_stream.repo_keys WHERE did = $1", 1, &type, &arg, NULL, false, 0);
	SPI_execute_with_args("UPDATE repo_stream.repos SET status = 'deleted', data_cid = NULL WHERE did = $1",
						  1, &type, &arg, NULL, false, 0);
	rs_leave_owner(&oc);
	rs_note_deleted(did);
	PG_RETURN_VOID();
}

Datum
rs_rotate_key(PG_FUNCTION_ARGS)
{
	char	   *did = arg_did(fcinfo);
	RsOwnerContext oc;
	char	   *status;
	RsBuf		sealed;
	char		did_key[128];
	bytea	   *sealed_b;

	rs_buf_init(&sealed, 128);
	rs_enter_owner(&oc);
	status = lock_repo(did);
	if (strcmp(status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("repo \"%s\" is %s", did, status)));
	rs_keys_generate(false, &sealed, did_key);
	rs_leave_owner(&oc);

	sealed_b = rs_bytea(sealed.data, sealed.len);
	rs_buf_free(&sealed);
	rs_note_rotation(did, sealed_b, did_key);
	PG_RETURN_TEXT_P(cstring_to_text(did_key));
}
