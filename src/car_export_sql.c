/*
 * car_export_sql.c - export_repo() and record_proof(): a repo's current
 * state as a CAR (com.atproto.sync.getRepo, with since) and a record's
 * proof (com.atproto.sync.getRecord).
 *
 * export_repo is a value-per-call set-returning function: each call walks
 * the tree a little further (car_export.c) and returns the next 1 MiB of
 * the CAR, so memory stays at one decoded node per layer plus one chunk
 * whatever the size of the repo.  Called in a select list or read through
 * a cursor, rows leave as they are made; in FROM, PostgreSQL first collects
 * them in a tuplestore (which spills to disk past work_mem).
 *
 * One snapshot: the first call registers the active snapshot (the
 * statement's, or the transaction's under REPEATABLE READ or SET
 * TRANSACTION SNAPSHOT) and every read of the export uses it: the repo row
 * (head, last_seq), the MST nodes and the records.  The head row and the
 * nodes are written by the same transaction as the repo's events, so the
 * CAR reflects exactly the repo's events up to its last_seq.
 *
 * Nodes are read by direct scans of mst_nodes' primary key (one lookup per
 * node).  Records come from one cursor sorted by key, which is the order
 * the walk visits leaves in; a diff (since) looks up only the records of
 * the nodes it includes.  A record block is written once, at the smallest
 * key that holds it: the few CIDs held by several keys are found first.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include <stdarg.h>

#include "car.h"
#include "car_export.h"
#include "cbor_sql.h"
#include "cid.h"
#include "commit.h"
#include "commit_sql.h"
#include "mst.h"
#include "snapshot_sql.h"
#include "spi_sql.h"
#include "syntax.h"

PG_FUNCTION_INFO_V1(rs_export_repo);
PG_FUNCTION_INFO_V1(rs_record_proof);

/* Bytes per export_repo row. */
#define EXPORT_CHUNK_BYTES (1024 * 1024)
/* Rows fetched from the records cursor at a time. */
#define EXPORT_BATCH 512
/*
 * CIDs held by more than one key, kept in memory with their smallest key;
 * beyond this many the cursor computes "first key" itself (a window), so
 * memory stays bounded for any repo.
 */
#define EXPORT_DUP_CAP 65536

/* mst_nodes columns */
#define NODE_ATT_REV 3
#define NODE_ATT_NODE 4

/* ------------------------------------------------------------ progress */

static TimestampTz progress_last = 0;
static bool progress_shown = false;

void
rs_progress(bool force, const char *fmt,...)
{
	TimestampTz now = GetCurrentTimestamp();
	char		buf[256];
	va_list		ap;

	if (!force && progress_shown && !TimestampDifferenceExceeds(progress_last, now, 250))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pgstat_report_activity(STATE_RUNNING, buf);
	progress_last = now;
	progress_shown = true;
}

void
rs_progress_end(void)
{
	if (progress_shown && debug_query_string != NULL)
		pgstat_report_activity(STATE_RUNNING, debug_query_string);
	progress_shown = false;
}

/* ---------------------------------------------------------- repo heads */

static char *
arg_cstring(FunctionCallInfo fcinfo, int n)
{
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

void
rs_read_repo_head(const char *did, RsRepoHead *head, MemoryContext cxt)
{
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;
	char	   *status,
			   *head_cid;
	bytea	   *data;
	bool		isnull;
	MemoryContext old;
	CommitError cerr;
	RepoCommit	c;
	char		msg[256];
	MemoryContext keep = CurrentMemoryContext;	/* SPI calls switch away */

	if (!did_valid(did, strlen(did)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid DID: \"%s\"", did)));
	if (SPI_execute_with_args("SELECT status, head_cid, head_rev, last_seq, head_commit, data_cid"
							  "  FROM repo_stream.repos WHERE did = $1",
							  1, &type, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading repo \"%s\" failed", did);
	MemoryContextSwitchTo(keep);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did)));
	status = rs_gettext(0, 1);
	if (strcmp(status, "deleted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("repo \"%s\" does not exist", did),
				 errdetail("It was deleted.")));
	if (strcmp(status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_REPO_DEACTIVATED),
				 errmsg("RepoDeactivated: repo \"%s\" is %s", did, status),
				 errhint("Its records are exported again once repo_stream.activate_repo() has run.")));

	old = MemoryContextSwitchTo(cxt);
	head->did = pstrdup(did);
	head_cid = rs_gettext(0, 2);
	head->rev = rs_gettext(0, 3);
	head->seq = DatumGetInt64(rs_getdatum(0, 4, &isnull));
	if (isnull)
		head->seq = 0;
	head->commit = rs_getbytea(0, 5);
	data = rs_getbytea(0, 6);
	MemoryContextSwitchTo(old);

	if (head_cid == NULL || head->rev == NULL || head->commit == NULL || data == NULL ||
		VARSIZE_ANY_EXHDR(data) != CID_LEN || !cid_parse(head_cid, strlen(head_cid), head->commit_cid))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("repo \"%s\" has no valid head commit", did)));
	memcpy(head->data, VARDATA_ANY(data), CID_LEN);
	cerr = commit_decode((const uint8 *) VARDATA_ANY(head->commit), VARSIZE_ANY_EXHDR(head->commit),
						 true, &c, msg, sizeof(msg));
	if (cerr != COMMIT_OK || memcmp(c.data, head->data, CID_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("repo \"%s\": the stored head commit does not match the repo row", did),
				 errhint("repo_stream.verify_repo() says what was changed.")));
}

/* ------------------------------------------------------------- records */

typedef struct DupEntry
{
	uint8		cid[CID_LEN];	/* hash key */
	bool		written;		/* its block is in the CAR already */
} DupEntry;

/*
 * CIDs held by more than one key (inside rs_enter_owner); NULL when there
 * are none, or past EXPORT_DUP_CAP (*overflow).  The walk meets keys in key
 * order, so the first key it meets with one of these writes the block and
 * the others skip it.
 */
static HTAB *
load_dups(const char *did, MemoryContext cxt, bool *overflow)
{
	Datum		args[2];
	Oid			types[2] = {TEXTOID, INT8OID};
	HASHCTL		ctl = {0};
	HTAB	   *h;
	MemoryContext keep = CurrentMemoryContext;	/* SPI calls switch away */

	args[0] = CStringGetTextDatum(did);
	args[1] = Int64GetDatum(EXPORT_DUP_CAP + 1);
	SPI_execute_with_args("SELECT cid FROM repo_stream.records WHERE did = $1"
						  " GROUP BY cid HAVING count(*) > 1 LIMIT $2",
						  2, types, args, NULL, true, 0);
	MemoryContextSwitchTo(keep);
	*overflow = SPI_processed > EXPORT_DUP_CAP;
	if (*overflow || SPI_processed == 0)
		return NULL;
	ctl.keysize = CID_LEN;
	ctl.entrysize = sizeof(DupEntry);
	ctl.hcxt = cxt;
	h = hash_create("repo_stream export duplicates", SPI_processed, &ctl,
					HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *cid_text = rs_gettext(i, 1);
		uint8		cid[CID_LEN];
		DupEntry   *e;
		bool		found;

		if (!cid_parse(cid_text, strlen(cid_text), cid))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("repo \"%s\": a records row has an invalid cid \"%s\"", did, cid_text)));
		e = hash_search(h, cid, HASH_ENTER, &found);
		e->written = false;
	}
	return h;
}

/*
 * Whether the index on records (did, collection, rkey) returns rkeys in
 * byte order: its collations are C or POSIX, or the database's libc
 * C.UTF-8 (code point order, which is byte order for UTF-8).  Then a
 * collection's records come sorted from the index and the export needs no
 * sort.  Inside rs_enter_owner.
 */
static bool
index_order_is_bytewise(void)
{
	bool		isnull;
	bool		bytewise;
	MemoryContext keep = CurrentMemoryContext;

	SPI_execute("SELECT bool_and(CASE a.attcollation"
				"  WHEN 'pg_catalog.\"C\"'::regcollation THEN true"
				"  WHEN 'pg_catalog.\"POSIX\"'::regcollation THEN true"
				"  WHEN 'pg_catalog.\"default\"'::regcollation THEN"
				"    (SELECT d.datlocprovider = 'c' AND d.datcollate IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8')"
				"       FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())"
				"  ELSE false END)"
				"  FROM pg_catalog.pg_attribute a"
				" WHERE a.attrelid = 'repo_stream.records'::regclass AND a.attname IN ('collection', 'rkey')",
				true, 0);
	bytewise = SPI_processed == 1 && DatumGetBool(rs_getdatum(0, 1, &isnull)) && !isnull;
	MemoryContextSwitchTo(keep);
	return bytewise;
}

/* The repo's collections, in the order of their keys ("<collection>/..."). */
static int
key_order_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *) a;
	const char *y = *(char *const *) b;

	/* compare as if each ended in '/' */
	for (;; x++, y++)
	{
		unsigned char cx = *x ? (unsigned char) *x : '/';
		unsigned char cy = *y ? (unsigned char) *y : '/';

		if (cx != cy)
			return cx < cy ? -1 : 1;
		if (!*x || !*y)
			return (!*x && !*y) ? 0 : (!*x ? -1 : 1);
	}
}

static char **
load_collections(const char *did, MemoryContext cxt, int *n)
{
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;
	char	  **out;
	MemoryContext keep = CurrentMemoryContext;

	/* a loose scan of the primary key: one probe a collection */
	SPI_execute_with_args("WITH RECURSIVE c AS ("
						  "  (SELECT collection FROM repo_stream.records WHERE did = $1 ORDER BY collection LIMIT 1)"
						  "  UNION ALL"
						  "  SELECT (SELECT r.collection FROM repo_stream.records r"
						  "           WHERE r.did = $1 AND r.collection > c.collection ORDER BY r.collection LIMIT 1)"
						  "    FROM c WHERE c.collection IS NOT NULL)"
						  " SELECT collection FROM c WHERE collection IS NOT NULL",
						  1, &type, &arg, NULL, true, 0);
	MemoryContextSwitchTo(keep);
	*n = (int) SPI_processed;
	out = MemoryContextAlloc(cxt, sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		bool		isnull;

		out[i] = MemoryContextStrdup(cxt, TextDatumGetCString(rs_getdatum(i, 1, &isnull)));
	}
	qsort(out, *n, sizeof(char *), key_order_cmp);
	return out;
}

/* --------------------------------------------------------------- export */

typedef struct ExportState
{
	RsRepoHead	head;
	char	   *since;			/* NULL: a full export */
	Datum		did_datum;		/* text */
	Snapshot	snap;
	CarExport  *ex;
	RsBuf		out;
	MemoryContext state_cxt;
	MemoryContext node_cxt;		/* the node being read */
	MemoryContext rec_cxt;		/* the record being encoded */
	MemoryContext batch_cxt;	/* rows from the cursor */

	/* node reads (open during a call) */
	Oid			heap_oid,
				index_oid;
	Relation	heap,
				index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	char		node_rev[16];	/* rev of the node just read */

	/* records: a cursor in key order, or lookups by key (diffs) */
	bool		use_cursor;
	bool		window;			/* the cursor says which key is first */
	char	  **collections;	/* per-collection cursors, in key order */
	int			n_collections;
	int			next_collection;
	char	   *portal_name;	/* the open cursor */
	bool		cursor_done;
	int			n_batch,
				pos_batch;
	char	  **bkey;
	char	  **bcid;
	Jsonb	  **brec;
	bool	   *bfirst;
	HTAB	   *dups;

	bool		finished;
	bool		cleaned;
	TimestampTz started;
} ExportState;

static SPIPlanPtr record_plan = NULL;

/* One record by key, read-only with the active snapshot (inside rs_enter_owner). */
static bool
lookup_record(const char *did, const char *key, size_t klen, char **cid_text, Jsonb **record)
{
	const char *slash = memchr(key, '/', klen);
	Datum		args[3];
	bool		isnull;
	MemoryContext keep = CurrentMemoryContext;	/* SPI calls switch away */

	if (record_plan == NULL)
	{
		Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};

		record_plan = SPI_prepare("SELECT cid, record FROM repo_stream.records"
								  " WHERE did = $1 AND collection = $2 AND rkey = $3",
								  3, types);
		if (record_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(record_plan);
		MemoryContextSwitchTo(keep);
	}
	if (slash == NULL)
		return false;
	args[0] = CStringGetTextDatum(did);
	args[1] = PointerGetDatum(cstring_to_text_with_len(key, slash - key));
	args[2] = PointerGetDatum(cstring_to_text_with_len(slash + 1, klen - (slash - key) - 1));
	if (SPI_execute_plan(record_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading a record failed");
	MemoryContextSwitchTo(keep);
	if (SPI_processed == 0)
		return false;
	*cid_text = rs_gettext(0, 1);
	*record = (Jsonb *) PG_DETOAST_DATUM_COPY(rs_getdatum(0, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/*
 * Open the next records cursor (inside rs_enter_owner): one sorted by key
 * (a sort, and with "first" computed by a window when duplicates are too
 * many to keep), or the next collection's, which the primary key returns
 * in key order.  False when there is none left.
 */
static bool
cursor_open_next(ExportState *st)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	Portal		portal;
	const char *sql;
	MemoryContext keep = CurrentMemoryContext;

	if (st->portal_name != NULL)
	{
		portal = SPI_cursor_find(st->portal_name);
		if (portal != NULL)
			SPI_cursor_close(portal);
		pfree(st->portal_name);
		st->portal_name = NULL;
	}
	args[0] = st->did_datum;
	if (st->collections != NULL)
	{
		if (st->next_collection >= st->n_collections)
			return false;
		args[1] = CStringGetTextDatum(st->collections[st->next_collection++]);
		sql = "SELECT collection || '/' || rkey, cid, record FROM repo_stream.records"
			" WHERE did = $1 AND collection = $2 ORDER BY rkey";
	}
	else
	{
		if (st->next_collection++ > 0)
			return false;
		sql = st->window
			? "SELECT k, cid, record, k = min(k) OVER (PARTITION BY cid)"
			"  FROM (SELECT (collection || '/' || rkey) COLLATE \"C\" AS k, cid, record"
			"          FROM repo_stream.records WHERE did = $1) s ORDER BY k"
			: "SELECT (collection || '/' || rkey) COLLATE \"C\" AS k, cid, record"
			"  FROM repo_stream.records WHERE did = $1 ORDER BY 1";
	}
	portal = SPI_cursor_open_with_args(NULL, sql, st->collections ? 2 : 1, types, args, NULL, true,
									   CURSOR_OPT_NO_SCROLL);
	MemoryContextSwitchTo(keep);
	st->portal_name = MemoryContextStrdup(st->state_cxt, portal->name);
	st->cursor_done = false;
	return true;
}

/* Next row of the records cursors into the batch; false at the end. */
static bool
cursor_next(ExportState *st)
{
	Portal		portal;
	MemoryContext old = CurrentMemoryContext;

	while (st->pos_batch >= st->n_batch)
	{
		if (st->cursor_done && !cursor_open_next(st))
			return false;
		MemoryContextReset(st->batch_cxt);
		portal = SPI_cursor_find(st->portal_name);
		if (portal == NULL)
			elog(ERROR, "export cursor \"%s\" is gone", st->portal_name);
		SPI_cursor_fetch(portal, true, EXPORT_BATCH);
		MemoryContextSwitchTo(st->batch_cxt);
		st->n_batch = (int) SPI_processed;
		st->pos_batch = 0;
		st->bkey = palloc(sizeof(char *) * Max(st->n_batch, 1));
		st->bcid = palloc(sizeof(char *) * Max(st->n_batch, 1));
		st->brec = palloc(sizeof(Jsonb *) * Max(st->n_batch, 1));
		st->bfirst = palloc(sizeof(bool) * Max(st->n_batch, 1));
		for (int i = 0; i < st->n_batch; i++)
		{
			bool		isnull;

			st->bkey[i] = TextDatumGetCString(rs_getdatum(i, 1, &isnull));
			st->bcid[i] = TextDatumGetCString(rs_getdatum(i, 2, &isnull));
			st->brec[i] = (Jsonb *) PG_DETOAST_DATUM_COPY(rs_getdatum(i, 3, &isnull));
			st->bfirst[i] = st->window ? DatumGetBool(rs_getdatum(i, 4, &isnull)) : true;
		}
		SPI_freetuptable(SPI_tuptable);
		MemoryContextSwitchTo(old);
		if (st->n_batch < EXPORT_BATCH)
			st->cursor_done = true;
	}
	return true;
}

static void
records_differ(ExportState *st, const char *fmt, const char *key) pg_attribute_noreturn();

static void
records_differ(ExportState *st, const char *fmt, const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("repo \"%s\": the records table and the MST differ", st->head.did),
			 errdetail(fmt, key),
			 errhint("repo_stream.verify_repo() says what was changed.")));
}

static MstError
export_record(void *ctx, const char *key, size_t key_len, const uint8 cid[CID_LEN],
			  const uint8 **data, size_t *len, bool *skip)
{
	ExportState *st = ctx;
	char		want[CID_TEXT_LEN + 1];
	char	   *cid_text;
	Jsonb	   *record;
	bool		first = true;
	bytea	   *cbor;
	uint8		got[CID_LEN];
	MemoryContext old;

	MemoryContextReset(st->rec_cxt);
	old = MemoryContextSwitchTo(st->rec_cxt);
	if (st->use_cursor)
	{
		for (;;)
		{
			int			c;

			if (!cursor_next(st))
				records_differ(st, "MST key \"%s\" has no records row.", key);
			c = strcmp(st->bkey[st->pos_batch], key);
			if (c == 0)
				break;
			if (c > 0)
				records_differ(st, "MST key \"%s\" has no records row.", key);
			if (st->since == NULL)
				records_differ(st, "The records row \"%s\" has no MST entry.", st->bkey[st->pos_batch]);
			st->pos_batch++;	/* a diff: in a subtree the reader holds */
		}
		cid_text = st->bcid[st->pos_batch];
		record = st->brec[st->pos_batch];
		first = st->bfirst[st->pos_batch];
		st->pos_batch++;
	}
	else if (!lookup_record(st->head.did, key, key_len, &cid_text, &record))
		records_differ(st, "MST key \"%s\" has no records row.", key);

	cid_format(cid, want);
	if (strcmp(cid_text, want) != 0)
		records_differ(st, "The records row \"%s\" has another CID than its MST entry.", key);
	if (st->dups != NULL)
	{
		DupEntry   *e = hash_search(st->dups, cid, HASH_FIND, NULL);

		if (e != NULL)
		{
			first = !e->written;
			e->written = true;
		}
	}
	if (!first)
	{
		/* written at a smaller key (or held by the diff's reader) */
		*skip = true;
		MemoryContextSwitchTo(old);
		return MST_OK;
	}
	cbor = rs_jsonb_to_cbor(record);
	cid_for_dagcbor((const uint8 *) VARDATA(cbor), VARSIZE(cbor) - VARHDRSZ, got);
	if (memcmp(got, cid, CID_LEN) != 0)
		records_differ(st, "The record \"%s\" no longer encodes to its CID.", key);
	*data = (const uint8 *) VARDATA(cbor);
	*len = VARSIZE(cbor) - VARHDRSZ;
	MemoryContextSwitchTo(old);
	return MST_OK;
}

static MstError
export_node(void *ctx, const uint8 cid[CID_LEN], const uint8 **data, size_t *len)
{
	ExportState *st = ctx;
	ScanKeyData keys[2];
	bytea	   *key_cid,
			   *node;
	text	   *rev;
	bool		isnull;
	MemoryContext old;

	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(st->node_cxt);
	old = MemoryContextSwitchTo(st->node_cxt);
	key_cid = rs_bytea(cid, CID_LEN);
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   st->index->rd_indcollation[0], F_TEXTEQ, st->did_datum);
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   st->index->rd_indcollation[1], F_BYTEAEQ, PointerGetDatum(key_cid));
	index_rescan(st->scan, keys, 2, NULL, 0);
	if (!index_getnext_slot(st->scan, ForwardScanDirection, st->slot))
	{
		MemoryContextSwitchTo(old);
		return MST_ERR_MISSING_NODE;
	}
	rev = DatumGetTextPP(slot_getattr(st->slot, NODE_ATT_REV, &isnull));
	snprintf(st->node_rev, sizeof(st->node_rev), "%.*s",
			 (int) VARSIZE_ANY_EXHDR(rev), VARDATA_ANY(rev));
	node = (bytea *) PG_DETOAST_DATUM_COPY(slot_getattr(st->slot, NODE_ATT_NODE, &isnull));
	ExecClearTuple(st->slot);
	MemoryContextSwitchTo(old);
	*data = (const uint8 *) VARDATA_ANY(node);
	*len = VARSIZE_ANY_EXHDR(node);
	return MST_OK;
}

/* A diff keeps the nodes stored after since; the rest the reader holds. */
static bool
export_include(void *ctx, const uint8 cid[CID_LEN])
{
	ExportState *st = ctx;

	return strcmp(st->node_rev, st->since) > 0;
}

static void
nodes_open(ExportState *st)
{
	st->heap = table_open(st->heap_oid, AccessShareLock);
	st->index = index_open(st->index_oid, AccessShareLock);
	st->scan = index_beginscan(st->heap, st->index, st->snap, 2, 0);
	st->slot = table_slot_create(st->heap, NULL);
}

static void
nodes_close(ExportState *st)
{
	index_endscan(st->scan);
	ExecDropSingleTupleTableSlot(st->slot);
	index_close(st->index, AccessShareLock);
	table_close(st->heap, AccessShareLock);
	st->scan = NULL;
}

/* Close the cursor and let the snapshot go; also when a query stops early. */
static void
export_cleanup(ExportState *st)
{
	if (st->cleaned)
		return;
	st->cleaned = true;
	if (st->portal_name != NULL)
	{
		Portal		portal = GetPortalByName(st->portal_name);

		if (PortalIsValid(portal))
			SPI_cursor_close(portal);
	}
	if (st->snap != NULL)
		UnregisterSnapshot(st->snap);
	st->snap = NULL;
	rs_progress_end();
}

static void
export_shutdown(Datum arg)
{
	export_cleanup((ExportState *) DatumGetPointer(arg));
}

static void
export_progress(ExportState *st, bool force)
{
	CarExportStats s;

	car_export_stats(st->ex, &s);
	rs_progress(force, "repo_stream export_repo(%s%s%s): %zu records, %zu MST nodes, %.1f MB sent",
				st->head.did, st->since ? ", since " : "", st->since ? st->since : "",
				s.records + s.skipped_records, s.nodes, s.bytes / 1048576.0);
}

/* First call: the snapshot, the head, the record source, the walk. */
static ExportState *
export_start(FunctionCallInfo fcinfo, FuncCallContext *funcctx)
{
	ExportState *st;
	MemoryContext old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
	RsOwnerContext oc;
	char	   *did = arg_cstring(fcinfo, 0);
	ReturnSetInfo *rsi = (ReturnSetInfo *) fcinfo->resultinfo;
	CarExportSource src;

	st = palloc0(sizeof(ExportState));
	st->state_cxt = funcctx->multi_call_memory_ctx;
	if (!PG_ARGISNULL(1))
	{
		st->since = arg_cstring(fcinfo, 1);
		if (!tid_valid(st->since, strlen(st->since)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("since must be a rev (a TID), not \"%s\"", st->since),
					 errhint("Revs are 13 characters such as 3jzfcijpj2z2a; take one from an export or an event.")));
	}
	st->node_cxt = AllocSetContextCreate(st->state_cxt, "repo_stream export node", ALLOCSET_DEFAULT_SIZES);
	st->rec_cxt = AllocSetContextCreate(st->state_cxt, "repo_stream export record", ALLOCSET_DEFAULT_SIZES);
	st->batch_cxt = AllocSetContextCreate(st->state_cxt, "repo_stream export rows", ALLOCSET_DEFAULT_SIZES);
	st->did_datum = CStringGetTextDatum(did);
	st->started = GetCurrentTimestamp();

	/* every read of this export uses this snapshot */
	st->snap = RegisterSnapshot(GetActiveSnapshot());
	RegisterExprContextCallback(rsi->econtext, export_shutdown, PointerGetDatum(st));

	PushActiveSnapshot(st->snap);
	rs_enter_owner(&oc);
	rs_read_repo_head(did, &st->head, st->state_cxt);
	st->heap_oid = rs_relation_oid("mst_nodes");
	st->index_oid = rs_relation_oid("mst_nodes_pkey");
	{
		bool		overflow;

		st->dups = load_dups(did, st->state_cxt, &overflow);
		st->window = overflow;
	}
	/* a diff looks records up by key, unless duplicates are too many to keep */
	st->use_cursor = st->since == NULL || st->window;
	if (st->use_cursor)
	{
		if (!st->window && index_order_is_bytewise())
			st->collections = load_collections(did, st->state_cxt, &st->n_collections);
		st->cursor_done = true;		/* the first fetch opens the first cursor */
	}
	rs_leave_owner(&oc);
	PopActiveSnapshot();

	MemoryContextSwitchTo(st->state_cxt);
	src.nodes.get = export_node;
	src.nodes.ctx = st;
	src.record = export_record;
	src.include_node = st->since ? export_include : NULL;
	src.ctx = st;
	st->ex = car_export_begin(&src, st->head.commit_cid,
							  (const uint8 *) VARDATA_ANY(st->head.commit),
							  VARSIZE_ANY_EXHDR(st->head.commit), st->head.data);
	rs_buf_init(&st->out, EXPORT_CHUNK_BYTES + 64);
	MemoryContextSwitchTo(old);
	return st;
}

/* The next chunk into st->out; *done at the end. */
static void
export_step(ExportState *st, bool *done)
{
	RsOwnerContext oc;
	MstError	err;
	MemoryContext old;

	PushActiveSnapshot(st->snap);
	rs_enter_owner(&oc);
	old = MemoryContextSwitchTo(st->state_cxt);
	nodes_open(st);
	st->out.len = 0;
	err = car_export_next(st->ex, &st->out, EXPORT_CHUNK_BYTES, done);
	if (err != MST_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("repo \"%s\": its stored MST cannot be exported: %s",
						st->head.did, car_export_errmsg(st->ex)),
				 errhint("repo_stream.verify_repo() says what was changed.")));
	/* every records row must have been an MST leaf */
	if (*done && st->use_cursor && st->since == NULL && cursor_next(st))
		records_differ(st, "The records row \"%s\" has no MST entry.", st->bkey[st->pos_batch]);
	nodes_close(st);
	MemoryContextSwitchTo(old);
	rs_leave_owner(&oc);
	PopActiveSnapshot();
}

/*
 * export_repo(did text, since text DEFAULT NULL)
 *   RETURNS TABLE (seq bigint, rev text, chunk bytea)
 *
 * The repo's current state as one CARv1 file (com.atproto.sync.getRepo):
 * the chunks, concatenated in the order returned, are the CAR; its single
 * root is the signed head commit, followed by the MST and the records in
 * stream order (see car_export.h).  Without since: every node and record
 * once.  With since (a rev): the commit, the nodes stored after since and
 * the records they link to: added to an export at since, the whole new
 * tree.  seq (the repo's last_seq) and rev (the commit's) are the same on
 * every row: the CAR reflects every event of the repo up to seq and none
 * after.  Chunks are at most 1 MiB.
 *
 * Errors: 42704 unknown or deleted repo; 55R01 (RepoDeactivated) a
 * deactivated one; 22023 an invalid DID, or a since that is not a TID;
 * XX001 stored data that no longer agrees (verify_repo finds it).
 */
Datum
rs_export_repo(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	ExportState *st;
	bool		done = false;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	HeapTuple	tuple;

	if (SRF_IS_FIRSTCALL())
	{
		TupleDesc	desc;
		MemoryContext old;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "export_repo must return a row type");
		funcctx->tuple_desc = BlessTupleDesc(desc);
		MemoryContextSwitchTo(old);
		funcctx->user_fctx = export_start(fcinfo, funcctx);
	}
	funcctx = SRF_PERCALL_SETUP();
	st = funcctx->user_fctx;
	if (st->finished)
	{
		export_cleanup(st);
		SRF_RETURN_DONE(funcctx);
	}

	export_step(st, &done);
	export_progress(st, false);
	if (done)
	{
		st->finished = true;
		if (st->out.len == 0)
		{
			export_cleanup(st);
			SRF_RETURN_DONE(funcctx);
		}
	}
	values[0] = Int64GetDatum(st->head.seq);
	values[1] = CStringGetTextDatum(st->head.rev);
	values[2] = PointerGetDatum(rs_bytea(st->out.data, st->out.len));
	tuple = heap_form_tuple(funcctx->tuple_desc, values, nulls);
	SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(tuple));
}

/* ---------------------------------------------------------------- proof */

typedef struct ProofStore
{
	const char *did;
	bytea	   *last;
} ProofStore;

static MstError
proof_get(void *ctx, const uint8 cid[CID_LEN], const uint8 **data, size_t *len)
{
	ProofStore *s = ctx;
	static SPIPlanPtr plan = NULL;
	Datum		args[2];
	bool		isnull;
	MemoryContext keep = CurrentMemoryContext;	/* SPI calls switch away */

	if (plan == NULL)
	{
		Oid			types[2] = {TEXTOID, BYTEAOID};

		plan = SPI_prepare("SELECT node FROM repo_stream.mst_nodes WHERE did = $1 AND cid = $2",
						   2, types);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	args[0] = CStringGetTextDatum(s->did);
	args[1] = PointerGetDatum(rs_bytea(cid, CID_LEN));
	if (SPI_execute_plan(plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading an MST node failed");
	MemoryContextSwitchTo(keep);
	if (SPI_processed == 0)
		return MST_ERR_MISSING_NODE;
	s->last = (bytea *) PG_DETOAST_DATUM_COPY(rs_getdatum(0, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	*data = (const uint8 *) VARDATA_ANY(s->last);
	*len = VARSIZE_ANY_EXHDR(s->last);
	return MST_OK;
}

static void
proof_put(void *ctx, const uint8 cid[CID_LEN], const uint8 *data, size_t len)
{
	car_write_block((RsBuf *) ctx, cid, data, len);
}

/*
 * record_proof(did text, collection text, rkey text) RETURNS bytea
 *
 * A CAR rooted at the repo's head commit holding the MST nodes on the path
 * from the root to the key, root first, and the record's block when there
 * is one (com.atproto.sync.getRecord).  Walking the tree from the commit's
 * data with these blocks alone finds the record's CID, or shows that the
 * key is absent.  Errors as export_repo; 22023 for an invalid collection
 * or record key.
 */
Datum
rs_record_proof(PG_FUNCTION_ARGS)
{
	char	   *did = arg_cstring(fcinfo, 0);
	char	   *collection = arg_cstring(fcinfo, 1);
	char	   *rkey = arg_cstring(fcinfo, 2);
	char	   *key = psprintf("%s/%s", collection, rkey);
	RsOwnerContext oc;
	RsRepoHead	head;
	ProofStore	ps;
	MstStore	store;
	MstTree    *tree;
	RsBuf		blocks,
				car;
	char		errbuf[256];
	uint8		value[CID_LEN];
	bool		found;
	MemoryContext cxt = CurrentMemoryContext;
	bytea	   *result;

	if (!nsid_valid(collection, strlen(collection)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid collection NSID: \"%s\"", collection)));
	if (!rkey_valid(rkey, strlen(rkey)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid record key: \"%s\"", rkey)));

	rs_enter_owner(&oc);
	/* what is made here outlives SPI */
	MemoryContextSwitchTo(cxt);
	rs_read_repo_head(did, &head, cxt);
	ps.did = did;
	ps.last = NULL;
	store.get = proof_get;
	store.ctx = &ps;
	rs_buf_init(&blocks, 4096);
	tree = NULL;
	if (mst_open(&store, head.data, &tree, errbuf, sizeof(errbuf)) != MST_OK ||
		mst_key_path(tree, key, strlen(key), proof_put, &blocks, value, &found) != MST_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("repo \"%s\": its stored MST cannot be read: %s", did,
						tree ? mst_errmsg(tree) : errbuf)));
	mst_free(tree);
	if (found)
	{
		char	   *cid_text;
		Jsonb	   *record;
		bytea	   *cbor;
		uint8		got[CID_LEN];
		char		want[CID_TEXT_LEN + 1];

		cid_format(value, want);
		if (!lookup_record(did, key, strlen(key), &cid_text, &record) || strcmp(cid_text, want) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("repo \"%s\": the records table and the MST differ at \"%s\"", did, key),
					 errhint("repo_stream.verify_repo() says what was changed.")));
		cbor = rs_jsonb_to_cbor(record);
		cid_for_dagcbor((const uint8 *) VARDATA(cbor), VARSIZE(cbor) - VARHDRSZ, got);
		if (memcmp(got, value, CID_LEN) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("repo \"%s\": the record \"%s\" no longer encodes to its CID", did, key)));
		car_write_block(&blocks, value, (const uint8 *) VARDATA(cbor), VARSIZE(cbor) - VARHDRSZ);
	}
	rs_leave_owner(&oc);

	rs_buf_init(&car, blocks.len + VARSIZE_ANY(head.commit) + 128);
	car_write_header(&car, head.commit_cid);
	car_write_block(&car, head.commit_cid, (const uint8 *) VARDATA_ANY(head.commit),
					VARSIZE_ANY_EXHDR(head.commit));
	rs_buf_append(&car, blocks.data, blocks.len);
	result = rs_bytea(car.data, car.len);
	rs_buf_free(&car);
	rs_buf_free(&blocks);
	PG_RETURN_BYTEA_P(result);
}
