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
#include "lib/stringinfo.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
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

/* --------------------------------------------------------------- export */

/* records columns */
#define REC_ATT_COLLECTION 2
#define REC_ATT_RKEY 3
#define REC_ATT_RECORD 4
#define REC_ATT_CID 5

/*
 * Where the records come from, in the walk's key order:
 *   SCAN    the primary key (did, collection, rkey), one collection after
 *           the other, when its collation is byte order: no sort;
 *   SORTED  a cursor sorted by key (other collations; and with each key's
 *           "first holder of its CID" computed by a window, see below);
 *   LOOKUP  one probe of the primary key per leaf (diffs).
 */
typedef enum RecMode
{
	REC_SCAN,
	REC_SORTED,
	REC_LOOKUP
} RecMode;

/*
 * A record block goes into the CAR once, at the first key the walk meets
 * that holds it.  Which CIDs were written is remembered exactly, in memory
 * bounded whatever the size of the repo:
 *   WRITTEN  every CID written so far, up to EXPORT_WRITTEN_CAP of them;
 *   DUPS     past that, only the CIDs more than one key holds (one query),
 *            up to EXPORT_DUP_CAP;
 *   WINDOW   past that too, the sorted cursor says for each key whether it
 *            is the smallest holding its CID.
 */
typedef enum DedupMode
{
	DEDUP_WRITTEN,
	DEDUP_DUPS,
	DEDUP_WINDOW
} DedupMode;

/* repo_stream.export_dedup_cids: CIDs remembered (the duplicates' cap is half) */
static int	export_dedup_cids = 131072;

#define EXPORT_WRITTEN_CAP export_dedup_cids
#define EXPORT_DUP_CAP (export_dedup_cids / 2)

void
rs_snapshot_define_gucs(void)
{
	DefineCustomIntVariable("repo_stream.export_dedup_cids",
							"Record CIDs an export remembers to write each record block once.",
							"Each takes about 64 bytes. Past this many, an export asks the database "
							"for the CIDs held by more than one key (one more scan of the repo's records), "
							"and past half as many of those, it sorts the records.",
							&export_dedup_cids, 131072, 16, 16 * 1024 * 1024,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/*
 * A set of CIDs, as the first 16 bytes of their SHA-256 digests (a false
 * match among a million CIDs has odds of 1 in 10^26): open addressing,
 * linear probing, at most half full.  Each slot also says whether its
 * block was written.
 */
#define CIDSET_KEY 16

typedef struct CidSet
{
	uint8	   *keys;			/* cap * CIDSET_KEY */
	uint8	   *state;			/* 0 empty, 1 present, 2 present and written */
	size_t		cap;			/* a power of two */
	size_t		n;
	MemoryContext cxt;
} CidSet;

static void
cidset_init(CidSet *s, size_t expect, MemoryContext cxt)
{
	s->cap = 64;
	while (s->cap < expect * 2)
		s->cap *= 2;
	s->n = 0;
	s->cxt = cxt;
	s->keys = MemoryContextAllocHuge(cxt, s->cap * CIDSET_KEY);
	s->state = MemoryContextAllocHuge(cxt, s->cap);
	memset(s->state, 0, s->cap);
}

static void
cidset_free(CidSet *s)
{
	if (s->keys)
		pfree(s->keys);
	if (s->state)
		pfree(s->state);
	s->keys = s->state = NULL;
	s->cap = s->n = 0;
}

/* The slot of cid: its own, or the empty one where it would go. */
static size_t
cidset_slot(const CidSet *s, const uint8 cid[CID_LEN])
{
	const uint8 *digest = cid + CID_LEN - 32;
	uint64		h;
	size_t		i;

	memcpy(&h, digest, sizeof(h));
	for (i = (size_t) h & (s->cap - 1);; i = (i + 1) & (s->cap - 1))
		if (s->state[i] == 0 || memcmp(s->keys + i * CIDSET_KEY, digest, CIDSET_KEY) == 0)
			return i;
}

/* Add cid (if absent); returns its state byte. */
static uint8 *
cidset_add(CidSet *s, const uint8 cid[CID_LEN], bool *found)
{
	size_t		i;

	if ((s->n + 1) * 2 > s->cap)
	{
		CidSet		old = *s;

		cidset_init(s, old.cap, old.cxt);
		for (size_t j = 0; j < old.cap; j++)
			if (old.state[j])
			{
				size_t		k = (size_t) 0;
				uint64		h;

				memcpy(&h, old.keys + j * CIDSET_KEY, sizeof(h));
				for (k = (size_t) h & (s->cap - 1); s->state[k]; k = (k + 1) & (s->cap - 1))
					;
				memcpy(s->keys + k * CIDSET_KEY, old.keys + j * CIDSET_KEY, CIDSET_KEY);
				s->state[k] = old.state[j];
				s->n++;
			}
		cidset_free(&old);
	}
	i = cidset_slot(s, cid);
	*found = s->state[i] != 0;
	if (!*found)
	{
		memcpy(s->keys + i * CIDSET_KEY, cid + CID_LEN - 32, CIDSET_KEY);
		s->state[i] = 1;
		s->n++;
	}
	return &s->state[i];
}

static uint8 *
cidset_find(const CidSet *s, const uint8 cid[CID_LEN])
{
	size_t		i = cidset_slot(s, cid);

	return s->state[i] ? &s->state[i] : NULL;
}

typedef struct RecRow
{
	const char *key;
	size_t		key_len;
	const char *cid;			/* text */
	Jsonb	   *record;
	bool		first;			/* DEDUP_WINDOW: smallest key of its CID */
} RecRow;

typedef struct ExportState
{
	RsRepoHead	head;
	char	   *since;			/* NULL: a full export */
	Datum		did_datum;		/* text */
	Snapshot	snap;
	CarExport  *ex;
	MemoryContext state_cxt;
	MemoryContext node_cxt;		/* the node being read */
	MemoryContext rec_cxt;		/* the record being encoded */
	MemoryContext batch_cxt;	/* rows from a cursor */

	/* open from the first call to the end */
	Relation	nodes_heap,
				nodes_index,
				rec_heap,
				rec_index;
	IndexScanDesc node_scan;
	TupleTableSlot *node_slot;
	char		node_rev[16];	/* rev of the node just read */

	RecMode		mode;
	/* REC_SCAN */
	char	  **collections;	/* in key order */
	Datum	   *collection_datums;	/* the same as text */
	int			n_collections;
	int			next_collection;
	IndexScanDesc rec_scan;
	TupleTableSlot *rec_slot;
	bool		rec_scan_live;
	StringInfoData keybuf;
	/* REC_SORTED */
	char	   *portal_name;
	bool		cursor_done;
	int			n_batch,
				pos_batch;
	RecRow	   *batch;
	/* the row read ahead */
	bool		have_row;
	RecRow		row;

	DedupMode	dedup;
	CidSet		cids;			/* DEDUP_WRITTEN: written; DEDUP_DUPS: held twice */
	bool		overflow;		/* DEDUP_WRITTEN is full: change at the next record */
	char	   *overflow_key;	/* the last key written then */

	ExprContext *econtext;		/* where export_shutdown is registered */
	bool		finished;
	bool		cleaned;
} ExportState;

/*
 * Whether the primary key of records returns rkeys in byte order: its
 * collations are C or POSIX, or the database's libc C.UTF-8 (code point
 * order, which is byte order for UTF-8).  Inside rs_enter_owner.
 */
static bool
index_order_is_bytewise(void)
{
	bool		isnull;
	bool		bytewise;
	MemoryContext keep = CurrentMemoryContext;	/* SPI calls switch away */

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

/* Order of collections by their keys: as if each ended in '/'. */
static int
key_order_cmp(const void *a, const void *b)
{
	const unsigned char *x = *(const unsigned char *const *) a;
	const unsigned char *y = *(const unsigned char *const *) b;

	for (;; x++, y++)
	{
		unsigned char cx = *x ? *x : '/';
		unsigned char cy = *y ? *y : '/';

		if (cx != cy)
			return cx < cy ? -1 : 1;
		if (!*x || !*y)
			return (!*x && !*y) ? 0 : (!*x ? -1 : 1);
	}
}

/* The repo's collections in key order (inside rs_enter_owner). */
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

/* The row of the current scan position into st->row (key in keybuf). */
static void
scan_row(ExportState *st)
{
	bool		isnull;
	text	   *coll = DatumGetTextPP(slot_getattr(st->rec_slot, REC_ATT_COLLECTION, &isnull));
	text	   *rkey = DatumGetTextPP(slot_getattr(st->rec_slot, REC_ATT_RKEY, &isnull));
	text	   *cid = DatumGetTextPP(slot_getattr(st->rec_slot, REC_ATT_CID, &isnull));

	resetStringInfo(&st->keybuf);
	appendBinaryStringInfo(&st->keybuf, VARDATA_ANY(coll), VARSIZE_ANY_EXHDR(coll));
	appendStringInfoChar(&st->keybuf, '/');
	appendBinaryStringInfo(&st->keybuf, VARDATA_ANY(rkey), VARSIZE_ANY_EXHDR(rkey));
	appendStringInfoChar(&st->keybuf, '\0');
	appendBinaryStringInfo(&st->keybuf, VARDATA_ANY(cid), VARSIZE_ANY_EXHDR(cid));
	st->row.key = st->keybuf.data;
	st->row.key_len = VARSIZE_ANY_EXHDR(coll) + 1 + VARSIZE_ANY_EXHDR(rkey);
	st->row.cid = st->keybuf.data + st->row.key_len + 1;
	st->row.record = DatumGetJsonbP(slot_getattr(st->rec_slot, REC_ATT_RECORD, &isnull));
	st->row.first = true;
}

static void
rec_scan_start(ExportState *st, int nkeys, ScanKeyData *keys)
{
	/*
	 * The scan allocates as it goes (its dead-item list, say), so it runs
	 * in the export's context, not in a per-record one.  One export scans
	 * by (did, collection) or probes by the whole key, never both.
	 */
	MemoryContext old = MemoryContextSwitchTo(st->state_cxt);

	if (!st->rec_scan_live)
		st->rec_scan = index_beginscan(st->rec_heap, st->rec_index, st->snap, nkeys, 0);
	st->rec_scan_live = true;
	index_rescan(st->rec_scan, keys, nkeys, NULL, 0);
	MemoryContextSwitchTo(old);
}

/* The scan's next row into rec_slot, run in the export's context (see above). */
static bool
rec_scan_next(ExportState *st)
{
	MemoryContext old = MemoryContextSwitchTo(st->state_cxt);
	bool		found = index_getnext_slot(st->rec_scan, ForwardScanDirection, st->rec_slot);

	MemoryContextSwitchTo(old);
	return found;
}

static void
rec_key(ExportState *st, ScanKeyData *k, int att, Datum value)
{
	ScanKeyEntryInitialize(k, 0, att, BTEqualStrategyNumber, InvalidOid,
						   st->rec_index->rd_indcollation[att - 1], F_TEXTEQ, value);
}

/* Open the sorted cursor (inside rs_enter_owner). */
static void
sorted_open(ExportState *st)
{
	Oid			type = TEXTOID;
	Portal		portal;
	MemoryContext keep = CurrentMemoryContext;
	const char *sql = st->dedup == DEDUP_WINDOW
		? "SELECT k, cid, record, k = min(k) OVER (PARTITION BY cid)"
		"  FROM (SELECT (collection || '/' || rkey) COLLATE \"C\" AS k, cid, record"
		"          FROM repo_stream.records WHERE did = $1) s ORDER BY k"
		: "SELECT (collection || '/' || rkey) COLLATE \"C\" AS k, cid, record, true"
		"  FROM repo_stream.records WHERE did = $1 ORDER BY 1";

	portal = SPI_cursor_open_with_args(NULL, sql, 1, &type, &st->did_datum, NULL, true,
									   CURSOR_OPT_NO_SCROLL);
	MemoryContextSwitchTo(keep);
	st->portal_name = MemoryContextStrdup(st->state_cxt, portal->name);
	st->cursor_done = false;
	st->n_batch = st->pos_batch = 0;
}

/* Close whatever reads records (the cursor, the scan). */
static void
records_close(ExportState *st)
{
	if (st->portal_name != NULL)
	{
		Portal		portal = GetPortalByName(st->portal_name);

		if (PortalIsValid(portal))
			SPI_cursor_close(portal);
		pfree(st->portal_name);
		st->portal_name = NULL;
	}
	if (st->rec_scan_live)
		index_endscan(st->rec_scan);
	st->rec_scan_live = false;
	st->have_row = false;
}

/* The next row in key order into st->row; false at the end (SCAN, SORTED). */
static bool
next_row(ExportState *st)
{
	if (st->mode == REC_SCAN)
	{
		for (;;)
		{
			if (st->rec_scan_live && rec_scan_next(st))
			{
				scan_row(st);
				return true;
			}
			if (st->next_collection >= st->n_collections)
				return false;
			{
				ScanKeyData keys[2];

				/* the scan keeps pointing at its keys: they live as long as it */
				rec_key(st, &keys[0], 1, st->did_datum);
				rec_key(st, &keys[1], 2, st->collection_datums[st->next_collection++]);
				rec_scan_start(st, 2, keys);
			}
		}
	}
	/* REC_SORTED: rows come in batches of the cursor */
	while (st->pos_batch >= st->n_batch)
	{
		Portal		portal;
		MemoryContext old = CurrentMemoryContext;

		if (st->cursor_done)
			return false;
		MemoryContextReset(st->batch_cxt);
		portal = SPI_cursor_find(st->portal_name);
		if (portal == NULL)
			elog(ERROR, "export cursor \"%s\" is gone", st->portal_name);
		SPI_cursor_fetch(portal, true, EXPORT_BATCH);
		MemoryContextSwitchTo(st->batch_cxt);
		st->n_batch = (int) SPI_processed;
		st->pos_batch = 0;
		st->batch = palloc(sizeof(RecRow) * Max(st->n_batch, 1));
		for (int i = 0; i < st->n_batch; i++)
		{
			bool		isnull;
			RecRow	   *r = &st->batch[i];

			r->key = TextDatumGetCString(rs_getdatum(i, 1, &isnull));
			r->key_len = strlen(r->key);
			r->cid = TextDatumGetCString(rs_getdatum(i, 2, &isnull));
			r->record = (Jsonb *) PG_DETOAST_DATUM_COPY(rs_getdatum(i, 3, &isnull));
			r->first = DatumGetBool(rs_getdatum(i, 4, &isnull));
		}
		SPI_freetuptable(SPI_tuptable);
		MemoryContextSwitchTo(old);
		if (st->n_batch < EXPORT_BATCH)
			st->cursor_done = true;
	}
	st->row = st->batch[st->pos_batch++];
	return true;
}

/* One record by key into st->row (REC_LOOKUP); false if there is none. */
static bool
lookup_row(ExportState *st, const char *key, size_t klen)
{
	const char *slash = memchr(key, '/', klen);
	ScanKeyData keys[3];

	if (slash == NULL)
		return false;
	rec_key(st, &keys[0], 1, st->did_datum);
	rec_key(st, &keys[1], 2, PointerGetDatum(cstring_to_text_with_len(key, slash - key)));
	rec_key(st, &keys[2], 3, PointerGetDatum(cstring_to_text_with_len(slash + 1, klen - (slash - key) - 1)));
	rec_scan_start(st, 3, keys);
	if (!rec_scan_next(st))
		return false;
	scan_row(st);
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

/*
 * Too many CIDs to remember them all (inside rs_enter_owner): keep only
 * the ones more than one key holds, marked written if they were; or, when
 * even those are too many, let a sorted cursor with a window say which key
 * is first, resuming after the current key.
 */
static void
dedup_overflow(ExportState *st, const char *key)
{
	Datum		args[2];
	Oid			types[2] = {TEXTOID, INT8OID};
	CidSet		written = st->cids;
	CidSet		dups;
	MemoryContext keep = CurrentMemoryContext;	/* SPI calls switch away */

	args[0] = st->did_datum;
	args[1] = Int64GetDatum(EXPORT_DUP_CAP + 1);
	/* a small hash table that spills, so the export's memory stays flat (undone by rs_leave_owner) */
	(void) set_config_option("work_mem", "1MB", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	SPI_execute_with_args("SELECT cid FROM repo_stream.records WHERE did = $1"
						  " GROUP BY cid HAVING count(*) > 1 LIMIT $2",
						  2, types, args, NULL, true, 0);
	MemoryContextSwitchTo(keep);
	if (SPI_processed <= EXPORT_DUP_CAP)
	{
		cidset_init(&dups, SPI_processed, st->state_cxt);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *cid_text = rs_gettext(i, 1);
			uint8		cid[CID_LEN];
			bool		found;
			uint8	   *was;

			if (!cid_parse(cid_text, strlen(cid_text), cid))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("repo \"%s\": a records row has an invalid cid \"%s\"", st->head.did, cid_text)));
			was = cidset_find(&written, cid);
			*cidset_add(&dups, cid, &found) = was ? 2 : 1;
		}
		SPI_freetuptable(SPI_tuptable);
		cidset_free(&written);
		st->cids = dups;
		st->dedup = DEDUP_DUPS;
		elog(DEBUG1, "export of repo \"%s\": past %d record CIDs, remembers the %zu held by several keys",
			 st->head.did, EXPORT_WRITTEN_CAP, dups.n);
		return;
	}
	SPI_freetuptable(SPI_tuptable);
	cidset_free(&written);
	st->cids = written;
	st->dedup = DEDUP_WINDOW;
	elog(DEBUG1, "export of repo \"%s\": over %d CIDs held by several keys, sorts the records from \"%s\" on",
		 st->head.did, EXPORT_DUP_CAP, key);
	/* the window cursor replaces the record source, after the key written last */
	records_close(st);
	st->mode = REC_SORTED;
	sorted_open(st);
	while (next_row(st))
	{
		if (strcmp(st->row.key, key) > 0)
		{
			st->have_row = true;
			break;
		}
	}
}

/* Whether the block of cid is to be written now (first time met). */
static bool
dedup_first(ExportState *st, const uint8 cid[CID_LEN], const char *key)
{
	uint8	   *state;
	bool		found;

	switch (st->dedup)
	{
		case DEDUP_WRITTEN:
			(void) cidset_add(&st->cids, cid, &found);
			if (found)
				return false;
			/* past the cap, the next record changes mode (this one's row is in use) */
			if (st->cids.n >= (size_t) EXPORT_WRITTEN_CAP && !st->overflow)
			{
				st->overflow = true;
				st->overflow_key = MemoryContextStrdup(st->state_cxt, key);
			}
			return true;
		case DEDUP_DUPS:
			state = cidset_find(&st->cids, cid);
			if (state == NULL)
				return true;
			found = *state == 2;
			*state = 2;
			return !found;
		case DEDUP_WINDOW:
			return st->row.first;
	}
	return true;
}

static MstError
export_record(void *ctx, const char *key, size_t key_len, const uint8 cid[CID_LEN],
			  const uint8 **data, size_t *len, bool *skip)
{
	ExportState *st = ctx;
	char		want[CID_TEXT_LEN + 1];
	bytea	   *cbor;
	uint8		got[CID_LEN];
	MemoryContext old;

	CHECK_FOR_INTERRUPTS();
	if (st->overflow && st->dedup == DEDUP_WRITTEN)
		dedup_overflow(st, st->overflow_key);
	MemoryContextReset(st->rec_cxt);
	old = MemoryContextSwitchTo(st->rec_cxt);
	if (st->mode == REC_LOOKUP)
	{
		if (!lookup_row(st, key, key_len))
			records_differ(st, "MST key \"%s\" has no records row.", key);
	}
	else
	{
		/* the rows come in key order; a diff skips those of subtrees it leaves out */
		for (;;)
		{
			int			c;

			if (!st->have_row && !next_row(st))
				records_differ(st, "MST key \"%s\" has no records row.", key);
			st->have_row = true;
			c = strcmp(st->row.key, key);
			if (c == 0)
				break;
			if (c > 0)
				records_differ(st, "MST key \"%s\" has no records row.", key);
			if (st->since == NULL)
				records_differ(st, "The records row \"%s\" has no MST entry.", st->row.key);
			st->have_row = false;
		}
		st->have_row = false;
	}

	if (!dedup_first(st, cid, key))
	{
		/* written at a smaller key (or held by the diff's reader) */
		cid_format(cid, want);
		if (strcmp(st->row.cid, want) != 0)
			records_differ(st, "The records row \"%s\" has another CID than its MST entry.", key);
		*skip = true;
		MemoryContextSwitchTo(old);
		return MST_OK;
	}
	/* the block written is the record's JSON encoded again: it must hash to the leaf */
	cbor = rs_record_to_cbor(st->row.record);
	cid_for_dagcbor((const uint8 *) VARDATA(cbor), VARSIZE(cbor) - VARHDRSZ, got);
	if (memcmp(got, cid, CID_LEN) != 0)
	{
		cid_format(cid, want);
		records_differ(st, strcmp(st->row.cid, want) != 0
					   ? "The records row \"%s\" has another CID than its MST entry."
					   : "The record \"%s\" no longer encodes to its CID.", key);
	}
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
	bool		isnull,
				found;
	MemoryContext old;

	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(st->node_cxt);
	key_cid = (bytea *) MemoryContextAlloc(st->node_cxt, VARHDRSZ + CID_LEN);
	SET_VARSIZE(key_cid, VARHDRSZ + CID_LEN);
	memcpy(VARDATA(key_cid), cid, CID_LEN);
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   st->nodes_index->rd_indcollation[0], F_TEXTEQ, st->did_datum);
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   st->nodes_index->rd_indcollation[1], F_BYTEAEQ, PointerGetDatum(key_cid));
	/* the scan allocates as it goes: in the export's context */
	old = MemoryContextSwitchTo(st->state_cxt);
	index_rescan(st->node_scan, keys, 2, NULL, 0);
	found = index_getnext_slot(st->node_scan, ForwardScanDirection, st->node_slot);
	MemoryContextSwitchTo(st->node_cxt);
	if (found)
	{
		rev = DatumGetTextPP(slot_getattr(st->node_slot, NODE_ATT_REV, &isnull));
		snprintf(st->node_rev, sizeof(st->node_rev), "%.*s",
				 (int) VARSIZE_ANY_EXHDR(rev), VARDATA_ANY(rev));
		/* in the page or detoasted here: valid until the next fetch, as the walk needs */
		node = DatumGetByteaPP(slot_getattr(st->node_slot, NODE_ATT_NODE, &isnull));
		*data = (const uint8 *) VARDATA_ANY(node);
		*len = VARSIZE_ANY_EXHDR(node);
	}
	MemoryContextSwitchTo(old);
	return found ? MST_OK : MST_ERR_MISSING_NODE;
}

/* A diff keeps the nodes stored after since; the rest the reader holds. */
static bool
export_include(void *ctx, const uint8 cid[CID_LEN])
{
	ExportState *st = ctx;

	return strcmp(st->node_rev, st->since) > 0;
}

/* Close the scans and the cursor, let the snapshot go; also when a query stops early. */
static void
export_cleanup(ExportState *st)
{
	if (st->cleaned)
		return;
	st->cleaned = true;
	records_close(st);
	if (st->node_scan != NULL)
	{
		index_endscan(st->node_scan);
		ExecDropSingleTupleTableSlot(st->node_slot);
		ExecDropSingleTupleTableSlot(st->rec_slot);
		index_close(st->nodes_index, AccessShareLock);
		table_close(st->nodes_heap, AccessShareLock);
		index_close(st->rec_index, AccessShareLock);
		table_close(st->rec_heap, AccessShareLock);
		st->node_scan = NULL;
	}
	if (st->snap != NULL)
		UnregisterSnapshot(st->snap);
	st->snap = NULL;
	rs_progress_end();
}

/* The query ends before the export did (a LIMIT, a closed cursor). */
static void
export_shutdown(Datum arg)
{
	export_cleanup((ExportState *) DatumGetPointer(arg));
}

/*
 * The export is over: clean up now and drop the callback, which would
 * otherwise run later on state that SRF_RETURN_DONE frees.
 */
static void
export_finish(ExportState *st)
{
	export_cleanup(st);
	UnregisterExprContextCallback(st->econtext, export_shutdown, PointerGetDatum(st));
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
	initStringInfo(&st->keybuf);

	/* every read of this export uses this snapshot */
	st->snap = RegisterSnapshot(GetActiveSnapshot());
	st->econtext = rsi->econtext;
	RegisterExprContextCallback(rsi->econtext, export_shutdown, PointerGetDatum(st));

	PushActiveSnapshot(st->snap);
	rs_enter_owner(&oc);
	MemoryContextSwitchTo(st->state_cxt);
	rs_read_repo_head(did, &st->head, st->state_cxt);
	st->nodes_heap = table_open(rs_relation_oid("mst_nodes"), AccessShareLock);
	st->nodes_index = index_open(rs_relation_oid("mst_nodes_pkey"), AccessShareLock);
	st->rec_heap = table_open(rs_relation_oid("records"), AccessShareLock);
	st->rec_index = index_open(rs_relation_oid("records_pkey"), AccessShareLock);
	st->node_scan = index_beginscan(st->nodes_heap, st->nodes_index, st->snap, 2, 0);
	st->node_slot = table_slot_create(st->nodes_heap, NULL);
	st->rec_slot = table_slot_create(st->rec_heap, NULL);

	st->dedup = DEDUP_WRITTEN;
	cidset_init(&st->cids, 1024, st->state_cxt);
	if (st->since != NULL)
		st->mode = REC_LOOKUP;
	else if (index_order_is_bytewise())
	{
		st->mode = REC_SCAN;
		st->collections = load_collections(did, st->state_cxt, &st->n_collections);
		st->collection_datums = palloc(sizeof(Datum) * Max(st->n_collections, 1));
		for (int i = 0; i < st->n_collections; i++)
			st->collection_datums[i] = CStringGetTextDatum(st->collections[i]);
	}
	else
	{
		st->mode = REC_SORTED;
		sorted_open(st);
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
	MemoryContextSwitchTo(old);
	return st;
}

/* The next chunk into out (EXPORT_CHUNK_BYTES of room); *done at the end. */
static size_t
export_step(ExportState *st, uint8 *out, bool *done)
{
	RsOwnerContext oc;
	MstError	err;
	MemoryContext old;
	RsBuf		buf;

	PushActiveSnapshot(st->snap);
	rs_enter_owner(&oc);
	old = MemoryContextSwitchTo(st->state_cxt);
	/* the pure core appends into a buffer that is the result's bytes */
	buf.data = out;
	buf.len = 0;
	buf.cap = EXPORT_CHUNK_BYTES;
	err = car_export_next(st->ex, &buf, EXPORT_CHUNK_BYTES, done);
	Assert(buf.data == out);
	if (err != MST_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("repo \"%s\": its stored MST cannot be exported: %s",
						st->head.did, car_export_errmsg(st->ex)),
				 errhint("repo_stream.verify_repo() says what was changed.")));
	/* every records row must have been an MST leaf */
	if (*done && st->since == NULL && (st->have_row || next_row(st)))
		records_differ(st, "The records row \"%s\" has no MST entry.", st->row.key);
	MemoryContextSwitchTo(old);
	rs_leave_owner(&oc);
	PopActiveSnapshot();
	return buf.len;
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
	bytea	   *chunk;
	size_t		n;

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
		export_finish(st);
		SRF_RETURN_DONE(funcctx);
	}

	chunk = palloc(VARHDRSZ + EXPORT_CHUNK_BYTES);
	n = export_step(st, (uint8 *) VARDATA(chunk), &done);
	SET_VARSIZE(chunk, VARHDRSZ + n);
	export_progress(st, false);
	if (done)
	{
		st->finished = true;
		if (n == 0)
		{
			export_finish(st);
			SRF_RETURN_DONE(funcctx);
		}
	}
	values[0] = Int64GetDatum(st->head.seq);
	values[1] = CStringGetTextDatum(st->head.rev);
	values[2] = PointerGetDatum(chunk);
	tuple = heap_form_tuple(funcctx->tuple_desc, values, nulls);
	SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(tuple));
}

/* One record by key, read-only with the active snapshot (inside rs_enter_owner). */
static bool
lookup_record(const char *did, const char *key, size_t klen, char **cid_text, Jsonb **record)
{
	static SPIPlanPtr record_plan = NULL;
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
		cbor = rs_record_to_cbor(record);
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
