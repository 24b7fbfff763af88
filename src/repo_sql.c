/*
 * repo_sql.c - the repo lifecycle: create, deactivate, activate, delete,
 * rotate the key.  Each takes the repo's lock (commit_sql.h), changes the
 * repo row, and logs a marker that pre-commit turns into its event.  The
 * records side is records_sql.c.
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
#include "args_sql.h"
#include "syntax.h"

PG_FUNCTION_INFO_V1(rs_create_repo);
PG_FUNCTION_INFO_V1(rs_repo_key);
PG_FUNCTION_INFO_V1(rs_deactivate_repo);
PG_FUNCTION_INFO_V1(rs_activate_repo);
PG_FUNCTION_INFO_V1(rs_delete_repo);
PG_FUNCTION_INFO_V1(rs_rotate_key);

/* ------------------------------------------------------------ lifecycle */

/* Lock the repo and return its status; ERROR if there is none. */
static char *
lock_repo(const char *did)
{
	char	   *status;

	rs_repo_lock(did);
	status = rs_repo_status(did);
	if (status == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did)));
	return status;
}

/* ERROR 42710 if the repo row exists (deleted ones too: DIDs are not reused). */
static void
check_no_repo(Datum did)
{
	Oid			type = TEXTOID;
	char	   *status;

	if (SPI_execute_with_args("SELECT status FROM repo_stream.repos WHERE did = $1",
							  1, &type, &did, NULL, false, 0) != SPI_OK_SELECT ||
		SPI_processed == 0)
		return;
	status = rs_gettext(0, 1);
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT),
			 errmsg("repo \"%s\" already exists", TextDatumGetCString(did)),
			 strcmp(status, "deleted") == 0 ?
			 errdetail("It was deleted; a deleted repo's DID is not reused in this database.") : 0));
}

Datum
rs_create_repo(PG_FUNCTION_ARGS)
{
	char	   *did = rs_arg_did(fcinfo, 0);
	RsOwnerContext oc;
	RsBuf		sealed;
	char		did_key[128];
	Datum		args[3];
	Oid			types[3] = {TEXTOID, TEXTOID, BYTEAOID};
	bytea	   *sealed_b;

	/* before rs_enter_owner: SPI's memory goes away at rs_leave_owner */
	rs_buf_init(&sealed, 128);
	args[0] = CStringGetTextDatum(did);
	rs_repo_lock(did);
	rs_enter_owner(&oc);
	check_no_repo(args[0]);
	rs_keys_generate(&sealed, did_key);
	sealed_b = rs_bytea(sealed.data, sealed.len);
	rs_buf_free(&sealed);

	/* ON CONFLICT: a concurrent create of the same DID waits, then gets 42710 */
	args[1] = CStringGetTextDatum(did_key);
	args[2] = PointerGetDatum(sealed_b);
	SPI_execute_with_args("WITH r AS (INSERT INTO repo_stream.repos (did, did_key) VALUES ($1, $2)"
						  "           ON CONFLICT (did) DO NOTHING RETURNING did)"
						  " INSERT INTO repo_stream.repo_keys (did, sealed) SELECT did, $3 FROM r",
						  3, types, args, NULL, false, 0);
	if (SPI_processed == 0)
		check_no_repo(args[0]);
	rs_leave_owner(&oc);

	rs_note_created(did);
	PG_RETURN_TEXT_P(cstring_to_text(did_key));
}

Datum
rs_repo_key(PG_FUNCTION_ARGS)
{
	char	   *did = rs_arg_did(fcinfo, 0);
	RsOwnerContext oc;
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;
	char	   *key;
	char	   *status;

	rs_enter_owner(&oc);
	SPI_execute_with_args("SELECT did_key, status FROM repo_stream.repos WHERE did = $1",
						  1, &type, &arg, NULL, true, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did)));
	key = rs_gettext(0, 1);
	status = rs_gettext(0, 2);
	rs_leave_owner(&oc);
	if (strcmp(status, "deleted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("repo \"%s\" is deleted", did)));
	PG_RETURN_TEXT_P(cstring_to_text(key));
}

static void
set_status(const char *did, const char *from_required, const char *to, bool active)
{
	char	   *status = lock_repo(did);

	if (strcmp(status, "deleted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("repo \"%s\" is deleted", did)));
	if (strcmp(status, from_required) != 0)
	{
		/* already there: nothing changes and no event is emitted */
		ereport(NOTICE,
				(errmsg("repo \"%s\" is already %s", did, status)));
		return;
	}
	rs_repo_set_status(did, to);
	rs_note_account(did, active, active ? NULL : to);
}

Datum
rs_deactivate_repo(PG_FUNCTION_ARGS)
{
	set_status(rs_arg_did(fcinfo, 0), "active", "deactivated", false);
	PG_RETURN_VOID();
}

Datum
rs_activate_repo(PG_FUNCTION_ARGS)
{
	set_status(rs_arg_did(fcinfo, 0), "deactivated", "active", true);
	PG_RETURN_VOID();
}

Datum
rs_delete_repo(PG_FUNCTION_ARGS)
{
	char	   *did = rs_arg_did(fcinfo, 0);
	RsOwnerContext oc;
	char	   *status;
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;

	status = lock_repo(did);
	if (strcmp(status, "deleted") == 0)
	{
		/* as for the other lifecycle changes: nothing changes, no event */
		ereport(NOTICE,
				(errmsg("repo \"%s\" is already deleted", did)));
		PG_RETURN_VOID();
	}
	rs_enter_owner(&oc);
	/* the records go without commits: the #account event says why */
	rs_suppress_ops = true;
	SPI_execute_with_args("DELETE FROM repo_stream.records WHERE did = $1", 1, &type, &arg, NULL, false, 0);
	rs_suppress_ops = false;
	SPI_execute_with_args("DELETE FROM repo_stream.mst_nodes WHERE did = $1", 1, &type, &arg, NULL, false, 0);
	SPI_execute_with_args("DELETE FROM repo_stream.repo_keys WHERE did = $1", 1, &type, &arg, NULL, false, 0);
	rs_leave_owner(&oc);
	rs_repo_set_status(did, "deleted");
	rs_note_deleted(did);
	PG_RETURN_VOID();
}

Datum
rs_rotate_key(PG_FUNCTION_ARGS)
{
	char	   *did = rs_arg_did(fcinfo, 0);
	char	   *status;
	RsBuf		sealed;
	char		did_key[128];
	bytea	   *sealed_b;

	rs_buf_init(&sealed, 128);
	status = lock_repo(did);
	if (strcmp(status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("repo \"%s\" is %s", did, status)));
	rs_keys_generate(&sealed, did_key);

	sealed_b = rs_bytea(sealed.data, sealed.len);
	rs_buf_free(&sealed);
	rs_note_rotation(did, sealed_b, did_key);
	PG_RETURN_TEXT_P(cstring_to_text(did_key));
}
