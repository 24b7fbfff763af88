/*
 * car_import_sql.c - import_repo(): a repo CAR (an export_repo file, or any
 * atproto getRepo CAR signed with Ed25519) becomes a local repo, for
 * restores and moves between databases (com.atproto.repo.importRepo).
 *
 * Every check runs before the first row is written: the pure checks of
 * car_import.c (framing, hashes, commit and signature, a canonical MST,
 * records present and valid), then, per record, what only the backend can
 * check: that it converts to jsonb (the shared CBOR->jsonb code) and that
 * the jsonb encodes back to the very same bytes, since records are stored
 * as jsonb and their CIDs recomputed from it.  Only then the rows go in:
 * the repo row with a fresh signing key, the MST nodes, the records (with
 * rs_suppress_ops, as delete_repo, and their cid set); rs_note_imported
 * makes the write path re-sign the tree with the new key at COMMIT and
 * announce it as #sync.  Bad input is an ERROR before any of that, so
 * nothing is left behind and no seq is drawn.
 *
 * The CAR is read through a CarSource: the bytea argument, or a large
 * object (import_repo_lo) for repos bigger than one value can be.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "libpq/libpq-fs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "car_import.h"
#include "cbor_sql.h"
#include "commit_sql.h"
#include "keys.h"
#include "keys_sql.h"
#include "snapshot_sql.h"
#include "spi_sql.h"

PG_FUNCTION_INFO_V1(rs_import_repo);
PG_FUNCTION_INFO_V1(rs_import_repo_lo);

/* Rows per INSERT while writing. */
#define IMPORT_BATCH_ROWS 1000
#define IMPORT_BATCH_BYTES (8 * 1024 * 1024)

/* ---------------------------------------------------- large object source */

#define LO_WINDOW (4 * 1024 * 1024)

typedef struct LoSource
{
	int32		fd;				/* from lo_open, so the server closes it at the end */
	Oid			oid;
	char	   *buf;			/* bytes [start, start + len) of the object */
	size_t		cap;
	uint64		start;
	size_t		len;
} LoSource;

/*
 * Reads go through a window.  A read just past it (the CAR read in order)
 * refills it with the LO_WINDOW bytes that follow, a read just before it
 * (blocks in reverse order) with the LO_WINDOW bytes that end there, and any
 * other read fetches only 64 kB from where it starts, so a CAR in random
 * block order is not read 4 MB at a time.
 */
static bool
lo_read(void *ctx, uint64_t offset, size_t len, const uint8_t **out)
{
	LoSource   *s = ctx;
	uint64		from;
	size_t		want;
	size_t		got = 0;

	if (offset >= s->start && offset + len <= s->start + s->len)
	{
		*out = (const uint8_t *) s->buf + (offset - s->start);
		return true;
	}
	if (s->len > 0 && offset >= s->start && offset <= s->start + s->len + 64 * 1024)
		from = offset, want = Max(len, LO_WINDOW);
	else if (s->len > 0 && offset < s->start && offset + len + 64 * 1024 >= s->start)
	{
		want = Max(len, LO_WINDOW);
		from = offset + len > want ? offset + len - want : 0;
	}
	else
		from = offset, want = Max(len, 64 * 1024);
	if (want > s->cap)
	{
		s->buf = repalloc_huge(s->buf, want);
		s->cap = want;
	}
	DirectFunctionCall3(be_lo_lseek64, Int32GetDatum(s->fd), Int64GetDatum((int64) from),
						Int32GetDatum(SEEK_SET));
	while (got < want)
	{
		bytea	   *piece = DatumGetByteaPP(DirectFunctionCall2(be_loread, Int32GetDatum(s->fd),
																Int32GetDatum((int32) Min(want - got, 1024 * 1024))));
		size_t		n = VARSIZE_ANY_EXHDR(piece);

		memcpy(s->buf + got, VARDATA_ANY(piece), n);
		pfree(piece);
		if (n == 0)
			break;
		got += n;
	}
	s->start = from;
	s->len = got;
	if (offset + len > from + got)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("large object %u ended at byte %llu while reading %zu bytes at %llu",
						s->oid, (unsigned long long) (from + got), len, (unsigned long long) offset)));
	*out = (const uint8_t *) s->buf + (offset - from);
	return true;
}

/* ------------------------------------------------------------- import */

typedef struct ImportState
{
	CarImport	ci;
	MemoryContext tmp;			/* one record's conversions */
	MemoryContext batch_cxt;	/* rows waiting for their INSERT */
	const char *key;			/* record being handled, for errcontext */
	size_t		key_len;
	const uint8_t *cid;
	bool		writing;
	uint64		done_records;

	/* batches */
	Datum	   *node_cids;
	Datum	   *node_bytes;
	int			n_nodes;
	Datum	   *rec_coll;
	Datum	   *rec_rkey;
	Datum	   *rec_json;
	Datum	   *rec_cid;
	int			n_recs;
	size_t		batch_bytes;
	Datum		did_datum;
	Datum		rev_datum;
} ImportState;

static void
import_errcontext(void *arg)
{
	ImportState *st = arg;
	char		cid[CID_TEXT_LEN + 1];

	if (st->key == NULL)
		return;
	cid_format(st->cid, cid);
	errcontext("record \"%.*s\" (%s) of the CAR for repo \"%s\"",
			   (int) st->key_len, st->key, cid, st->ci.did);
}

static void
report(ImportState *st, CarImportError err)
{
	int			code;

	switch (err)
	{
		case CI_OK:
			return;
		case CI_CAR:
		case CI_RECORD_CBOR:
			code = ERRCODE_INVALID_BINARY_REPRESENTATION;
			break;
		case CI_BLOCK_TOO_BIG:
		case CI_RECORD_TOO_BIG:
			code = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			break;
		case CI_IO:
			code = ERRCODE_DATA_CORRUPTED;
			break;
		default:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
	}
	ereport(ERROR,
			(errcode(code),
			 errmsg("cannot import the CAR: %s", st->ci.errmsg),
			 err == CI_SIGNATURE ?
			 errhint("The did_key argument is the key that signed the export: repo_stream.repo_key() of the repo where it was made.") : 0));
}

static void
import_progress_read(void *ctx, uint64_t done, uint64_t total)
{
	CHECK_FOR_INTERRUPTS();
	rs_progress(done == total, "repo_stream import_repo: reading the CAR, %.0f%% (%.1f of %.1f MB)",
				total ? 100.0 * done / total : 100.0, done / 1048576.0, total / 1048576.0);
}

/*
 * Pass 1: the record converts to jsonb, keeps the write path's $type rule,
 * and its jsonb encodes back to these bytes.  The walk checks the tree and
 * the record's CID before it hands the record here, so a bad $type is
 * reported in the same walk as a bad node, before anything is written.
 *
 * A record without $type is imported as it is: the write path would fill it
 * in, but that changes the record's bytes, so its CID, the MST root and the
 * commit the CAR's key signed; the import would no longer be that repo.
 * (The next write of such a record through the write path adds it.)
 */
static bool
check_record(void *ctx, const char *key, size_t key_len, size_t coll_len,
			 const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	ImportState *st = ctx;
	MemoryContext old;
	Jsonb	   *jb;
	bytea	   *again;

	CHECK_FOR_INTERRUPTS();
	st->key = key;
	st->key_len = key_len;
	st->cid = cid;
	MemoryContextReset(st->tmp);
	old = MemoryContextSwitchTo(st->tmp);
	jb = rs_cbor_to_jsonb(data, len, "record");
	(void) rs_record_check_type(jb, pnstrdup(key, coll_len), pnstrdup(key + coll_len + 1, key_len - coll_len - 1),
								st->ci.did, "An imported record keeps its bytes; correct it in the repo the CAR was exported from.");
	again = rs_record_to_cbor(jb);
	if (VARSIZE(again) - VARHDRSZ != len || memcmp(VARDATA(again), data, len) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot import the CAR: record \"%.*s\" does not survive the JSON round trip",
						(int) key_len, key),
				 errdetail("Records are stored as jsonb; this one's jsonb encodes to other DAG-CBOR "
						   "(a map with a \"$link\" or \"$bytes\" key that is not a link or bytes, say).")));
	MemoryContextSwitchTo(old);
	st->done_records++;
	rs_progress(st->done_records == 1, "repo_stream import_repo(%s): checking records, %llu done",
				st->ci.did, (unsigned long long) st->done_records);
	st->key = NULL;
	return true;
}

static void
flush_nodes(ImportState *st)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[4];
	MemoryContext keep = CurrentMemoryContext;	/* SPI calls switch away */

	if (st->n_nodes == 0)
		return;
	if (plan == NULL)
	{
		Oid			types[4] = {TEXTOID, TEXTOID, BYTEAARRAYOID, BYTEAARRAYOID};

		plan = SPI_prepare("INSERT INTO repo_stream.mst_nodes (did, cid, rev, node)"
						   " SELECT $1, c, $2, n FROM unnest($3::bytea[], $4::bytea[]) AS u(c, n)",
						   4, types);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	args[0] = st->did_datum;
	args[1] = st->rev_datum;
	args[2] = PointerGetDatum(construct_array(st->node_cids, st->n_nodes, BYTEAOID, -1, false, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(st->node_bytes, st->n_nodes, BYTEAOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "inserting MST nodes failed");
	MemoryContextSwitchTo(keep);
	st->n_nodes = 0;
}

static void
flush_records(ImportState *st)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[5];
	int			rc;
	MemoryContext keep = CurrentMemoryContext;	/* SPI calls switch away */

	if (st->n_recs == 0)
		return;
	if (plan == NULL)
	{
		Oid			types[5] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TEXTARRAYOID};

		plan = SPI_prepare("INSERT INTO repo_stream.records (did, collection, rkey, record, cid)"
						   " SELECT $1, c, r, j, i FROM unnest($2::text[], $3::text[], $4::jsonb[], $5::text[])"
						   " AS u(c, r, j, i)",
						   5, types);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
	}
	args[0] = st->did_datum;
	args[1] = PointerGetDatum(construct_array(st->rec_coll, st->n_recs, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(st->rec_rkey, st->n_recs, TEXTOID, -1, false, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(st->rec_json, st->n_recs, JSONBOID, -1, false, TYPALIGN_INT));
	args[4] = PointerGetDatum(construct_array(st->rec_cid, st->n_recs, TEXTOID, -1, false, TYPALIGN_INT));
	/* as delete_repo: rows without ops; the #sync at COMMIT announces them */
	rs_suppress_ops = true;
	rc = SPI_execute_plan(plan, args, NULL, false, 0);
	rs_suppress_ops = false;
	MemoryContextSwitchTo(keep);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "inserting records failed");
	st->n_recs = 0;
}

static void
flush(ImportState *st, bool force)
{
	if (!force && st->n_nodes < IMPORT_BATCH_ROWS && st->n_recs < IMPORT_BATCH_ROWS &&
		st->batch_bytes < IMPORT_BATCH_BYTES)
		return;
	flush_nodes(st);
	flush_records(st);
	MemoryContextReset(st->batch_cxt);
	st->batch_bytes = 0;
}

/* Pass 2: rows into the batches. */
static bool
write_node(void *ctx, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	ImportState *st = ctx;
	MemoryContext old = MemoryContextSwitchTo(st->batch_cxt);

	st->node_cids[st->n_nodes] = PointerGetDatum(rs_bytea(cid, CID_LEN));
	st->node_bytes[st->n_nodes] = PointerGetDatum(rs_bytea(data, len));
	st->n_nodes++;
	st->batch_bytes += len;
	MemoryContextSwitchTo(old);
	flush(st, false);
	return true;
}

static bool
write_record(void *ctx, const char *key, size_t key_len, size_t coll_len,
			 const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	ImportState *st = ctx;
	MemoryContext old = MemoryContextSwitchTo(st->batch_cxt);
	char		cid_text[CID_TEXT_LEN + 1];

	CHECK_FOR_INTERRUPTS();
	cid_format(cid, cid_text);
	st->rec_coll[st->n_recs] = PointerGetDatum(cstring_to_text_with_len(key, coll_len));
	st->rec_rkey[st->n_recs] = PointerGetDatum(cstring_to_text_with_len(key + coll_len + 1,
																		  key_len - coll_len - 1));
	st->rec_json[st->n_recs] = PointerGetDatum(rs_cbor_to_jsonb(data, len, "record"));
	st->rec_cid[st->n_recs] = CStringGetTextDatum(cid_text);
	st->n_recs++;
	st->batch_bytes += len;
	MemoryContextSwitchTo(old);
	st->done_records++;
	rs_progress(st->done_records == 1, "repo_stream import_repo(%s): writing records, %llu of %zu",
				st->ci.did, (unsigned long long) st->done_records, st->ci.n_records);
	flush(st, false);
	return true;
}

/*
 * ERROR 42710 if the DID has a repo row, unless it is a deleted repo whose
 * last rev is before rev (a repo moving back to a database it left: the
 * import takes its DID again); then true.  Inside rs_enter_owner.
 */
static bool
check_did_free(const char *did, const char *rev)
{
	Datum		arg = CStringGetTextDatum(did);
	Oid			type = TEXTOID;
	char	   *status;
	char	   *head_rev;
	MemoryContext keep = CurrentMemoryContext;	/* SPI calls switch away */

	SPI_execute_with_args("SELECT status, head_rev FROM repo_stream.repos WHERE did = $1",
						  1, &type, &arg, NULL, false, 1);
	MemoryContextSwitchTo(keep);
	if (SPI_processed == 0)
		return false;
	status = rs_gettext(0, 1);
	head_rev = rs_gettext(0, 2);
	if (strcmp(status, "deleted") == 0 && (head_rev == NULL || strcmp(head_rev, rev) < 0))
		return true;
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT),
			 errmsg("repo \"%s\" already exists", did),
			 strcmp(status, "deleted") == 0 ?
			 errdetail("It was deleted at rev %s; only a later rev (the repo moving back) takes its DID again.",
					   head_rev) :
			 errhint("Delete it with repo_stream.delete_repo() in the database it moves away from, not here.")));
	return false;
}

static text *
import_car(const CarSource *src, const char *did_key)
{
	ImportState *st = palloc0(sizeof(ImportState));
	uint8		pub[ED25519_PUBLIC_KEY_LEN];
	CarImportVisitor check = {NULL, check_record, st};
	CarImportVisitor write = {write_node, write_record, st};
	ErrorContextCallback errcb;
	RsOwnerContext oc;
	RsBuf		sealed;
	char		new_key[DID_KEY_ED25519_LEN + 1];
	Datum		args[5];
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, BYTEAOID, BYTEAOID};
	MemoryContext cxt = CurrentMemoryContext;

	rs_did_key_parse_or_error(did_key, strlen(did_key), pub);
	st->tmp = AllocSetContextCreate(cxt, "repo_stream import record", ALLOCSET_DEFAULT_SIZES);
	st->batch_cxt = AllocSetContextCreate(cxt, "repo_stream import batch", ALLOCSET_DEFAULT_SIZES);

	/* ---- checks: nothing is written until every one has passed ---- */
	memset(&st->ci, 0, sizeof(st->ci));
	st->ci.progress = import_progress_read;
	report(st, car_import_open(&st->ci, src));
	report(st, car_import_verify(&st->ci, pub));

	rs_enter_owner(&oc);
	MemoryContextSwitchTo(cxt);
	(void) check_did_free(st->ci.did, st->ci.rev);
	rs_leave_owner(&oc);

	errcb.callback = import_errcontext;
	errcb.arg = st;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	report(st, car_import_walk(&st->ci, &check));
	st->key = NULL;

	/* ---- writes ---- */
	rs_buf_init(&sealed, 128);
	rs_keys_generate(&sealed, new_key);
	st->did_datum = CStringGetTextDatum(st->ci.did);
	st->rev_datum = CStringGetTextDatum(st->ci.rev);
	st->node_cids = palloc(sizeof(Datum) * IMPORT_BATCH_ROWS);
	st->node_bytes = palloc(sizeof(Datum) * IMPORT_BATCH_ROWS);
	st->rec_coll = palloc(sizeof(Datum) * IMPORT_BATCH_ROWS);
	st->rec_rkey = palloc(sizeof(Datum) * IMPORT_BATCH_ROWS);
	st->rec_json = palloc(sizeof(Datum) * IMPORT_BATCH_ROWS);
	st->rec_cid = palloc(sizeof(Datum) * IMPORT_BATCH_ROWS);
	st->done_records = 0;
	st->writing = true;

	rs_enter_owner(&oc);
	MemoryContextSwitchTo(cxt);
	args[0] = st->did_datum;
	args[1] = CStringGetTextDatum(new_key);
	args[2] = st->rev_datum;
	args[3] = PointerGetDatum(rs_bytea(st->ci.commit.data, CID_LEN));
	args[4] = PointerGetDatum(rs_bytea(sealed.data, sealed.len));
	/*
	 * ON CONFLICT: a concurrent import or create of the DID waits, then gets
	 * 42710.  A deleted repo's row (its DID moving back here) is taken over:
	 * delete_repo left no records, nodes or key, only the row and the key
	 * history, which keeps the old events verifiable.
	 */
	SPI_execute_with_args("WITH r AS (INSERT INTO repo_stream.repos (did, did_key, status, head_rev, data_cid)"
						  "           VALUES ($1, $2, 'active', $3, $4)"
						  "           ON CONFLICT (did) DO UPDATE SET did_key = EXCLUDED.did_key, status = 'active',"
						  "             head_rev = EXCLUDED.head_rev, data_cid = EXCLUDED.data_cid, head_cid = NULL,"
						  "             head_commit = NULL, last_seq = NULL"
						  "           WHERE repos.status = 'deleted' AND (repos.head_rev IS NULL OR repos.head_rev < EXCLUDED.head_rev)"
						  "           RETURNING did)"
						  " INSERT INTO repo_stream.repo_keys (did, sealed) SELECT did, $5 FROM r",
						  5, types, args, NULL, false, 0);
	MemoryContextSwitchTo(cxt);
	if (SPI_processed == 0)
		(void) check_did_free(st->ci.did, st->ci.rev);
	report(st, car_import_walk(&st->ci, &write));
	flush(st, true);
	rs_leave_owner(&oc);
	error_context_stack = errcb.previous;

	/* at COMMIT: a commit over the imported tree, signed by the new key, as #sync */
	rs_note_imported(st->ci.did);
	rs_progress_end();
	rs_buf_free(&sealed);
	car_import_free(&st->ci);
	return cstring_to_text(new_key);
}

/*
 * import_repo(car bytea, did_key text) RETURNS text
 *
 * The inverse of export_repo (com.atproto.repo.importRepo): the repo of the
 * CAR, whose root commit did_key (Ed25519 did:key) must have signed,
 * becomes a local repo with a fresh signing key, the same records and the
 * same MST root; at COMMIT a #sync event announces it with a commit signed
 * by the new key.  Returns the new did:key.
 *
 * Errors, all raised before anything is written: 22P03 malformed CAR or
 * DAG-CBOR, or a block whose bytes do not hash to its CID (the message
 * names the byte offset or the CID); 22023 a CAR that is not a valid repo:
 * not exactly one root, a root that is not a v3 commit, a signature that
 * does not verify with did_key, a missing block, an MST node that is not
 * canonical or a tree whose root is not the commit's data, a record that
 * is not a map, under an invalid key, or that does not survive the jsonb
 * round trip (naming the block or key), or whose $type is not its
 * collection (the write path's rule; a missing $type is kept, see
 * check_record); 54000 a block over 2 MiB or a
 * record over 1,000,000 bytes; 22P05 a record string holding a NUL
 * (from the shared CBOR->jsonb code); 22P02 a malformed did_key; 42710 a
 * DID that already has a repo here (a deleted one too, unless the CAR's rev
 * is after its last: a repo moving back to a database it left).
 */
Datum
rs_import_repo(PG_FUNCTION_ARGS)
{
	bytea	   *car = PG_GETARG_BYTEA_PP(0);
	char	   *did_key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	CarSource	src;
	CarMemSource mem;

	car_mem_source(&src, &mem, (const uint8_t *) VARDATA_ANY(car), VARSIZE_ANY_EXHDR(car));
	PG_RETURN_TEXT_P(import_car(&src, did_key));
}

/*
 * import_repo_lo(car oid, did_key text) RETURNS text
 *
 * import_repo reading the CAR from a large object, for CARs of any size
 * (a bytea stops at 1 GB): the client writes the file with lo_import or
 * lo_creat/lo_write and calls this in the same transaction.  The caller
 * needs SELECT on the large object.  Same checks, errors and result.
 */
Datum
rs_import_repo_lo(PG_FUNCTION_ARGS)
{
	Oid			oid = PG_GETARG_OID(0);
	char	   *did_key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	LoSource	lo = {0};
	CarSource	src;
	text	   *result;

	/* opened as the caller: the large object's privileges are checked here */
	lo.oid = oid;
	lo.fd = DatumGetInt32(DirectFunctionCall2(be_lo_open, ObjectIdGetDatum(oid), Int32GetDatum(INV_READ)));
	lo.cap = LO_WINDOW;
	lo.buf = palloc(lo.cap);
	lo.len = 0;
	src.read = lo_read;
	src.ctx = &lo;
	src.size = (uint64) DatumGetInt64(DirectFunctionCall3(be_lo_lseek64, Int32GetDatum(lo.fd),
														  Int64GetDatum(0), Int32GetDatum(SEEK_END)));
	result = import_car(&src, did_key);
	DirectFunctionCall1(be_lo_close, Int32GetDatum(lo.fd));
	PG_RETURN_TEXT_P(result);
}
