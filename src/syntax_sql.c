/*
 * syntax_sql.c - SQL functions over the identifier checks, TID generation
 * and did:key encoding.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "keys.h"
#include "syntax.h"
#include "tid.h"
#include "syntax_sql.h"

PG_FUNCTION_INFO_V1(is_valid_did);
PG_FUNCTION_INFO_V1(is_valid_nsid);
PG_FUNCTION_INFO_V1(is_valid_rkey);
PG_FUNCTION_INFO_V1(is_valid_tid);
PG_FUNCTION_INFO_V1(is_valid_datetime);
PG_FUNCTION_INFO_V1(tid_now);
PG_FUNCTION_INFO_V1(did_key_from_public);
PG_FUNCTION_INFO_V1(did_key_to_public);

Datum
is_valid_did(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(did_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

Datum
is_valid_nsid(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(nsid_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

Datum
is_valid_rkey(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(rkey_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

Datum
is_valid_tid(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(tid_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

Datum
is_valid_datetime(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(datetime_valid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

/* ---- TID generation ---- */

/* Timestamp of the last TID this backend issued (microseconds since 1970). */
static uint64 last_tid_us = 0;

static uint64
wall_clock_unix_us(void)
{
	TimestampTz now = GetCurrentTimestamp();

	return (uint64) (now + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
}

/*
 * tid_now: a TID for the current time that is
 *
 *  - strictly greater than every TID this backend issued before, and
 *  - different from every TID any other backend of this cluster issues.
 *
 * The clock id is MyBackendId % 1024.  Backend ids run from 1 to
 * MaxBackends and are unique among live backends, so two live backends
 * never share a clock id as long as MaxBackends <= 1024 (MaxBackends is
 * max_connections + autovacuum_max_workers + 1 + max_worker_processes +
 * max_wal_senders; with more than 1024, backends whose ids differ by a
 * multiple of 1024 share a clock id and may collide).
 *
 * The timestamp is the first wall-clock reading greater than the last one
 * this backend used; we wait for the clock rather than run ahead of it.
 * So every TID is at or behind the wall clock at the moment it is issued.
 * A backend id is reused only after its previous holder exited, and the new
 * holder's clock readings come after that exit, hence after every timestamp
 * the previous holder issued: (timestamp, clock id) never repeats.  This
 * assumes the wall clock does not step backwards across backend lifetimes;
 * within one backend a backwards step only makes tid_now() wait.
 *
 * The wait is normally under a microsecond (one clock tick).  After the
 * clock steps backwards it lasts until the clock catches up again, so it
 * sleeps instead of spinning and stays interruptible.
 */
void
rs_tid_next(char out[TID_LEN + 1])
{
	uint64		now_us;

	if (MyBackendId == InvalidBackendId)
		elog(ERROR, "tid_now() needs a backend id");

	for (;;)
	{
		now_us = wall_clock_unix_us();
		if (now_us > last_tid_us)
			break;
		if (last_tid_us - now_us > 1000)
			pg_usleep(Min(last_tid_us - now_us, 100000));
		CHECK_FOR_INTERRUPTS();
	}
	last_tid_us = now_us;

	if (!tid_encode(now_us, (uint32) MyBackendId % (TID_CLOCK_ID_MAX + 1), out))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("current time %llu us does not fit in a TID",
						(unsigned long long) now_us)));
}

Datum
tid_now(PG_FUNCTION_ARGS)
{
	char		tid[TID_LEN + 1];

	rs_tid_next(tid);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(tid, TID_LEN));
}

/* ---- did:key ---- */

Datum
did_key_from_public(PG_FUNCTION_ARGS)
{
	bytea	   *key = PG_GETARG_BYTEA_PP(0);
	char		did[DID_KEY_ED25519_LEN + 1];

	if (VARSIZE_ANY_EXHDR(key) != ED25519_PUBLIC_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_plural("invalid Ed25519 public key length: %d byte",
							   "invalid Ed25519 public key length: %d bytes",
							   (int) VARSIZE_ANY_EXHDR(key), (int) VARSIZE_ANY_EXHDR(key)),
				 errdetail("An Ed25519 public key is exactly %d bytes.",
						   ED25519_PUBLIC_KEY_LEN)));

	did_key_format_ed25519((const uint8_t *) VARDATA_ANY(key), did);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(did, DID_KEY_ED25519_LEN));
}

Datum
did_key_to_public(PG_FUNCTION_ARGS)
{
	text	   *did = PG_GETARG_TEXT_PP(0);
	bytea	   *result = palloc(VARHDRSZ + ED25519_PUBLIC_KEY_LEN);
	DidKeyError err;

	if (!did_key_parse_ed25519(VARDATA_ANY(did), VARSIZE_ANY_EXHDR(did),
							   (uint8_t *) VARDATA(result), &err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid Ed25519 did:key: \"%s\"", text_to_cstring(did)),
				 errdetail("%s", did_key_strerror(err))));

	SET_VARSIZE(result, VARHDRSZ + ED25519_PUBLIC_KEY_LEN);
	PG_RETURN_BYTEA_P(result);
}
