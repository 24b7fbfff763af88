/*
 * relay_sync_sql.c - relay mode: what the relay asks a shard, through the
 * dblink helper repo_stream._relay_query (src/sql/80_relay.sql).
 *
 * Keys: a shard's repo_keys(did) is the repo's key history (each did:key
 * with the rev from which it signs), the relay's equivalent of resolving
 * a DID document.  It is merged into the relay's repo_key_history, so
 * verify_frame(frame) and repo_keys() work on the relay as on the shard,
 * and fetched again whenever a frame's signature does not verify with the
 * keys the relay holds (a rotation, a move to a shard that gave the repo a
 * new key).
 *
 * Sync: a repo's state from a fresh export_repo of the shard, checked like
 * an import (car_import.c: every block hashed, the commit signed by the key
 * of its rev, a canonical MST, every record present), replaces the
 * mirror's records and head; the export's seq becomes the repo's position
 * in the shard's log, so the events it already reflects are duplicates.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "car_import.h"
#include "cbor_sql.h"
#include "commit_sql.h"
#include "relay_sql.h"
#include "spi_sql.h"

PG_FUNCTION_INFO_V1(rs_relay_sync_repo);

#define SYNC_BATCH_ROWS 1000

/*
 * Run a query through _relay_query on the shard, inside rs_enter_owner;
 * results in SPI_tuptable.  query_fmt's %s is the DID, quoted as a literal.
 */
static void
remote(const char *shard, const char *query_fmt, const char *did, const char *coldefs)
{
	char	   *sql;
	Datum		args[2];
	Oid			types[2] = {TEXTOID, TEXTOID};

	sql = psprintf("SELECT * FROM repo_stream._relay_query($1, $2, '%s') AS t(%s)", coldefs, coldefs);
	args[0] = CStringGetTextDatum(shard);
	args[1] = CStringGetTextDatum(psprintf(query_fmt, quote_literal_cstr(did)));
	if (SPI_execute_with_args(sql, 2, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "relay: query on shard %s failed", shard);
}

void
rs_relay_fetch_keys(RelayRepo *st, const char *shard)
{
	RsOwnerContext oc;
	Datum		args[3];
	Oid			types[3] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum	   *keys,
			   *revs;
	uint64		n;
	char	   *newest;
	MemoryContext cxt = CurrentMemoryContext;

	rs_enter_owner(&oc);
	remote(shard, "SELECT did_key, since_rev FROM repo_stream.repo_keys(%s) ORDER BY since_rev",
		   st->did, "did_key text, since_rev text");
	n = SPI_processed;
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("shard %s reports no key for repo %s", shard, st->did)));
	keys = MemoryContextAlloc(cxt, sizeof(Datum) * n);
	revs = MemoryContextAlloc(cxt, sizeof(Datum) * n);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		keys[i] = PointerGetDatum(DatumGetTextPCopy(rs_getdatum(i, 1, &isnull)));
		revs[i] = PointerGetDatum(DatumGetTextPCopy(rs_getdatum(i, 2, &isnull)));
		MemoryContextSwitchTo(old);
	}
	newest = MemoryContextStrdup(rs_relay_cxt(), TextDatumGetCString(keys[n - 1]));
	st->did_key = newest;
	if (!st->exists)
		rs_relay_repo_create(st, shard, "active");
	args[0] = CStringGetTextDatum(st->did);
	args[1] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(revs, n, TEXTOID, -1, false, TYPALIGN_INT));
	SPI_execute_with_args("WITH h AS (INSERT INTO repo_stream.repo_key_history (did, did_key, since_rev)"
						  "   SELECT $1, k, r FROM unnest($2::text[], $3::text[]) AS u(k, r)"
						  "   ON CONFLICT (did, since_rev) DO NOTHING)"
						  " UPDATE repo_stream.repos SET did_key = $2[array_upper($2, 1)] WHERE did = $1",
						  3, types, args, NULL, false, 0);
	rs_leave_owner(&oc);
	st->dirty = true;
}

char *
rs_relay_key_for_rev(const char *did, const char *rev)
{
	static SPIPlanPtr plan = NULL;
	RsOwnerContext oc;
	Datum		args[2];
	Oid			types[2] = {TEXTOID, TEXTOID};
	char	   *key = NULL;

	rs_enter_owner(&oc);
	args[0] = CStringGetTextDatum(did);
	args[1] = CStringGetTextDatum(rev);
	/* the key whose range holds rev; before the first, the first */
	SPI_execute_plan(rs_relay_plan(&plan,
								   "SELECT did_key FROM repo_stream.repo_key_history WHERE did = $1"
								   " ORDER BY since_rev <= $2 DESC, CASE WHEN since_rev <= $2 THEN since_rev END DESC,"
								   "          since_rev LIMIT 1", 2, types),
					 args, NULL, false, 1);
	if (SPI_processed == 1)
		key = rs_gettext(0, 1);
	rs_leave_owner(&oc);
	return key;
}

char *
rs_relay_remote_status(const char *shard, const char *did)
{
	RsOwnerContext oc;
	char	   *status = NULL;

	rs_enter_owner(&oc);
	remote(shard, "SELECT status FROM repo_stream.repos WHERE did = %s", did, "status text");
	if (SPI_processed == 1)
		status = rs_gettext(0, 1);
	rs_leave_owner(&oc);
	return status;
}

/*
 * fn(arg) in a subtransaction: true if it succeeded; else the error is
 * caught and its message returned in *msg (palloc'd in the caller's
 * context).  What a shard sent or did must not stop the apply worker,
 * which would retry the same transaction forever.
 */
static bool
relay_try(void (*fn) (void *), void *arg, char **msg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	bool		ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		*msg = pstrdup(edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

typedef struct RemoteStatusCall
{
	const char *shard;
	const char *did;
	char	   *status;
} RemoteStatusCall;

static void
remote_status_fn(void *arg)
{
	RemoteStatusCall *c = arg;

	c->status = rs_relay_remote_status(c->shard, c->did);
}

char *
rs_relay_try_remote_status(const char *shard, const char *did)
{
	RemoteStatusCall c = {shard, did, NULL};
	char	   *msg;

	if (relay_try(remote_status_fn, &c, &msg))
		return c.status;
	ereport(WARNING,
			(errmsg("relay: cannot ask shard %s about %s: %s", shard, did, msg)));
	return pstrdup("unreachable");
}

int
rs_relay_fetch_events(RelayRepo *st, const char *shard, int64 after, int64 upto,
					  int64 **seqs_out, bytea ***frames_out)
{
	RsOwnerContext oc;
	MemoryContext cxt = CurrentMemoryContext;
	char	   *q;
	int			n;
	int64	   *seqs;
	bytea	  **frames;
	bool		isnull;

	q = psprintf("SELECT seq, frame FROM repo_stream.events_since(" INT64_FORMAT ", 100000, ARRAY[%%s])"
				 " WHERE seq IS NULL OR seq <= " INT64_FORMAT, after, upto);
	rs_enter_owner(&oc);
	remote(shard, q, st->did, "seq bigint, frame bytea");
	n = (int) SPI_processed;
	seqs = MemoryContextAlloc(cxt, sizeof(int64) * (n + 1));
	frames = MemoryContextAlloc(cxt, sizeof(bytea *) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		seqs[i] = DatumGetInt64(rs_getdatum(i, 1, &isnull));
		if (isnull)
			seqs[i] = 0;		/* OutdatedCursor: the shard no longer has some of them */
		frames[i] = rs_getbytea(i, 2);
	}
	rs_leave_owner(&oc);
	MemoryContextSwitchTo(cxt);
	*seqs_out = seqs;
	*frames_out = frames;
	return n;
}

typedef struct FetchEventsCall
{
	RelayRepo  *st;
	const char *shard;
	int64		after;
	int64		upto;
	int64	   *seqs;
	bytea	  **frames;
	int			n;
} FetchEventsCall;

static void
fetch_events_fn(void *arg)
{
	FetchEventsCall *c = arg;

	c->n = rs_relay_fetch_events(c->st, c->shard, c->after, c->upto, &c->seqs, &c->frames);
}

int
rs_relay_try_fetch_events(RelayRepo *st, const char *shard, int64 after, int64 upto,
						  int64 **seqs_out, bytea ***frames_out)
{
	FetchEventsCall c = {st, shard, after, upto, NULL, NULL, -1};
	char	   *msg;

	if (!relay_try(fetch_events_fn, &c, &msg))
	{
		ereport(WARNING,
				(errmsg("relay: cannot read the log of shard %s for %s: %s", shard, st->did, msg)));
		return -1;
	}
	*seqs_out = c.seqs;
	*frames_out = c.frames;
	return c.n;
}

/* ---------------------------------------------------------------- sync */

typedef struct SyncState
{
	CarImport	ci;
	Datum		did;
	Datum		coll[SYNC_BATCH_ROWS];
	Datum		rkey[SYNC_BATCH_ROWS];
	Datum		json[SYNC_BATCH_ROWS];
	Datum		cid[SYNC_BATCH_ROWS];
	int			n;
	MemoryContext batch_cxt;
	SPIPlanPtr	plan;
} SyncState;

static void
sync_flush(SyncState *ss)
{
	Datum		args[5];
	MemoryContext keep = CurrentMemoryContext;

	if (ss->n == 0)
		return;
	args[0] = ss->did;
	args[1] = PointerGetDatum(construct_array(ss->coll, ss->n, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(ss->rkey, ss->n, TEXTOID, -1, false, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(ss->json, ss->n, JSONBOID, -1, false, TYPALIGN_INT));
	args[4] = PointerGetDatum(construct_array(ss->cid, ss->n, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_plan(ss->plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "relay: inserting mirrored records failed");
	MemoryContextSwitchTo(keep);
	MemoryContextReset(ss->batch_cxt);
	ss->n = 0;
}

static bool
sync_record(void *ctx, const char *key, size_t key_len, size_t coll_len,
			const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	SyncState  *ss = ctx;
	MemoryContext old = MemoryContextSwitchTo(ss->batch_cxt);
	char		cid_text[CID_TEXT_LEN + 1];

	CHECK_FOR_INTERRUPTS();
	cid_format(cid, cid_text);
	ss->coll[ss->n] = PointerGetDatum(cstring_to_text_with_len(key, coll_len));
	ss->rkey[ss->n] = PointerGetDatum(cstring_to_text_with_len(key + coll_len + 1, key_len - coll_len - 1));
	ss->json[ss->n] = PointerGetDatum(rs_cbor_to_jsonb(data, len, "record"));
	ss->cid[ss->n] = CStringGetTextDatum(cid_text);
	ss->n++;
	MemoryContextSwitchTo(old);
	if (ss->n == SYNC_BATCH_ROWS)
		sync_flush(ss);
	return true;
}

char *
rs_relay_sync_from_export(RelayRepo *st, const char *shard, bool pending)
{
	RsOwnerContext oc;
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext state_cxt = rs_relay_cxt();
	char	   *status;
	int64		seq;
	char	   *rev;
	bytea	   *car;
	char	   *key;
	uint8		pub[ED25519_PUBLIC_KEY_LEN];
	CarSource	src;
	CarMemSource mem;
	SyncState  *ss;
	CarImportVisitor visit = {NULL, sync_record, NULL};
	CarImportError err;
	bool		isnull;
	Datum		arg;
	Oid			type = TEXTOID;
	/* the relay's last good state, where a resync's catch-up starts */
	bool		anchored = st->exists && !pending && st->rev != NULL && st->has_data &&
		st->shard != NULL && strcmp(st->shard, shard) == 0;
	char	   *old_rev = st->rev;
	uint8		old_data[CID_LEN];
	int64		old_seq = st->shard_seq;

	memcpy(old_data, st->data, CID_LEN);
	status = rs_relay_remote_status(shard, st->did);
	if (status == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("shard %s has no repo %s", shard, st->did)));
	if (strcmp(status, "deleted") == 0)
	{
		if (!st->exists)
			return status;		/* nothing to mirror */
		rs_enter_owner(&oc);
		arg = CStringGetTextDatum(st->did);
		rs_suppress_ops = true;
		SPI_execute_with_args("DELETE FROM repo_stream.records WHERE did = $1", 1, &type, &arg, NULL, false, 0);
		rs_suppress_ops = false;
		rs_leave_owner(&oc);
		strlcpy(st->status, "deleted", RELAY_STATUS_LEN);
		st->desync = false;
		st->shard = MemoryContextStrdup(state_cxt, shard);
		st->dirty = true;
		return status;
	}
	rs_relay_fetch_keys(st, shard);
	if (strcmp(status, "active") != 0)
	{
		/* a deactivated repo cannot be exported: its records come when it is activated */
		strlcpy(st->status, "deactivated", RELAY_STATUS_LEN);
		st->shard = MemoryContextStrdup(state_cxt, shard);
		st->dirty = true;
		if (!st->has_data)
		{
			st->desync = true;
			st->desync_changed = true;
			st->desync_reason = MemoryContextStrdup(state_cxt, "deactivated on its shard: synced when activated");
		}
		return status;
	}

	rs_enter_owner(&oc);
	remote(shard, "SELECT min(seq), min(rev), string_agg(chunk, ''::bytea ORDER BY n)"
		   "  FROM repo_stream.export_repo(%s) WITH ORDINALITY AS e(seq, rev, chunk, n)",
		   st->did, "seq bigint, rev text, car bytea");
	seq = DatumGetInt64(rs_getdatum(0, 1, &isnull));
	rev = rs_gettext(0, 2);
	car = rs_getbytea(0, 3);
	rs_leave_owner(&oc);
	MemoryContextSwitchTo(cxt);
	if (car == NULL || rev == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("shard %s returned an empty export of %s", shard, st->did)));

	key = rs_relay_key_for_rev(st->did, rev);
	if (key == NULL || !did_key_parse_ed25519(key, strlen(key), pub, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("no key of repo %s signs rev %s", st->did, rev)));

	ss = palloc0(sizeof(SyncState));
	car_mem_source(&src, &mem, (const uint8_t *) VARDATA_ANY(car), VARSIZE_ANY_EXHDR(car));
	if ((err = car_import_open(&ss->ci, &src)) == CI_OK)
		err = car_import_verify(&ss->ci, pub);
	if (err == CI_OK && strcmp(ss->ci.did, st->did) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the export of %s from shard %s is of repo %s", st->did, shard, ss->ci.did)));
	if (err != CI_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the export of %s from shard %s does not verify: %s", st->did, shard, ss->ci.errmsg)));

	/* the mirror's records become the export's */
	rs_enter_owner(&oc);
	MemoryContextSwitchTo(cxt);
	ss->did = CStringGetTextDatum(st->did);
	ss->batch_cxt = AllocSetContextCreate(cxt, "repo_stream relay sync", ALLOCSET_DEFAULT_SIZES);
	{
		Oid			types[5] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TEXTARRAYOID};

		ss->plan = SPI_prepare("INSERT INTO repo_stream.records (did, collection, rkey, record, cid)"
							   " SELECT $1, c, r, j, i FROM unnest($2::text[], $3::text[], $4::jsonb[], $5::text[])"
							   " AS u(c, r, j, i)", 5, types);
		if (ss->plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	}
	rs_suppress_ops = true;
	SPI_execute_with_args("DELETE FROM repo_stream.records WHERE did = $1", 1, &type, &ss->did, NULL, false, 0);
	MemoryContextSwitchTo(cxt);
	visit.ctx = ss;
	err = car_import_walk(&ss->ci, &visit);
	if (err != CI_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the export of %s from shard %s does not verify: %s", st->did, shard, ss->ci.errmsg)));
	sync_flush(ss);
	rs_suppress_ops = false;
	rs_leave_owner(&oc);
	MemoryContextSwitchTo(cxt);

	/* the new state, all at once */
	memcpy(st->head_cid, ss->ci.root, CID_LEN);
	st->has_head = true;
	st->head_commit = MemoryContextAlloc(state_cxt, ss->ci.commit_len + VARHDRSZ);
	SET_VARSIZE(st->head_commit, ss->ci.commit_len + VARHDRSZ);
	memcpy(VARDATA(st->head_commit), ss->ci.commit_bytes, ss->ci.commit_len);
	memcpy(st->data, ss->ci.commit.data, CID_LEN);
	st->has_data = true;
	st->rev = MemoryContextStrdup(state_cxt, ss->ci.rev);
	st->shard = MemoryContextStrdup(state_cxt, shard);
	st->shard_seq = seq;
	strlcpy(st->status, "active", RELAY_STATUS_LEN);
	st->desync = false;
	st->dirty = true;
	car_import_free(&ss->ci);
	st->hist_rev = NULL;
	st->hist_complete = false;
	if (pending)
	{
		st->sync_pending = true;
		st->sync_pending_seq = seq;
		return status;
	}
	st->sync_pending = false;

	/*
	 * Catch up: the repo's events in the shard's log after the last one the
	 * relay applied, up to the export, re-emitted when they verify and chain
	 * on from the relay's last good state (a forged or replayed frame does
	 * not); then a #sync only if they do not lead to the export's state.
	 */
	if (anchored)
	{
		int64	   *seqs;
		bytea	  **frames;
		int			n = rs_relay_fetch_events(st, shard, old_seq, seq, &seqs, &frames);

		st->hist_rev = MemoryContextStrdup(state_cxt, old_rev);
		memcpy(st->hist_data, old_data, CID_LEN);
		st->hist_complete = true;
		for (int i = 0; i < n; i++)
			if (seqs[i] == 0)
			{
				/* events the shard no longer has: the chain has a gap */
				st->hist_rev = NULL;
				st->hist_complete = false;
			}
		for (int i = 0; i < n; i++)
			if (seqs[i] > 0)
				(void) rs_relay_historical(st, shard, seqs[i], (const uint8 *) VARDATA_ANY(frames[i]),
										   VARSIZE_ANY_EXHDR(frames[i]));
	}
	rs_relay_announce(st);
	return status;
}

typedef struct WithShardCall
{
	void		(*fn) (RelayRepo *, const char *);
	RelayRepo  *st;
	const char *shard;
} WithShardCall;

static void
with_shard_fn(void *arg)
{
	WithShardCall *c = arg;

	c->fn(c->st, c->shard);
}

/*
 * fn(st, shard) in a subtransaction: true if it succeeded; else st is as
 * it was, the error is logged as a WARNING and *msg (if not NULL) gets its
 * message.
 */
static bool
try_with_shard(void (*fn) (RelayRepo *, const char *), RelayRepo *st, const char *shard,
			   const char *what, char **msg)
{
	RelayRepo	saved = *st;
	WithShardCall c = {fn, st, shard};
	char	   *err;

	if (relay_try(with_shard_fn, &c, &err))
		return true;
	rs_suppress_ops = false;
	*st = saved;
	ereport(WARNING,
			(errmsg("relay: %s of %s from shard %s failed: %s", what, st->did, shard, err)));
	if (msg != NULL)
		*msg = MemoryContextStrdup(rs_relay_cxt(), err);
	return false;
}

static void
resync_fn(RelayRepo *st, const char *shard)
{
	(void) rs_relay_sync_from_export(st, shard, false);
}

bool
rs_relay_try_fetch_keys(RelayRepo *st, const char *shard)
{
	return try_with_shard(rs_relay_fetch_keys, st, shard, "fetching the keys", NULL);
}

bool
rs_relay_try_resync(RelayRepo *st, const char *shard, const char *why)
{
	char	   *msg = NULL;

	st->resync_tried = true;
	if (!try_with_shard(resync_fn, st, shard, "resync", &msg))
	{
		if (st->exists)
		{
			st->desync = true;
			st->desync_changed = true;
			st->desync_reason = MemoryContextStrdup(rs_relay_cxt(),
													psprintf("%s; resync from shard %s failed: %s",
															 why ? why : "resync", shard, msg));
			st->dirty = true;
		}
		return false;
	}
	if (st->desync)
		return false;			/* deactivated there: in sync once activated */
	st->resyncs++;
	st->dirty = true;
	ereport(LOG,
			(errmsg("relay: repo %s synced from a fresh export of shard %s, rev %s", st->did, shard, st->rev)));
	return true;
}

/*
 * _relay_sync_repo(shard text, did text, pending boolean) RETURNS text
 *
 * Mirror a repo of the shard from a fresh export: its key history, its
 * records (replacing any), its head and its position in the shard's log
 * (the export's seq).  With pending, the #sync that announces the state
 * waits for relay_add_shard's window (see _relay_finish_backfill); else it
 * is queued now.  Returns the repo's status on the shard; a deactivated
 * repo (which cannot be exported) keeps the records it had.  ERROR if the
 * shard cannot be asked or the export does not verify.
 */
Datum
rs_relay_sync_repo(PG_FUNCTION_ARGS)
{
	char	   *shard = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *did = text_to_cstring(PG_GETARG_TEXT_PP(1));
	bool		pending = PG_GETARG_BOOL(2);
	RelayRepo  *st;
	char	   *status;

	rs_repo_lock(did);
	st = rs_relay_repo(did);
	if (st->local)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("repo \"%s\" is a repo of this database, not a mirror", did)));
	status = rs_relay_sync_from_export(st, shard, pending);
	PG_RETURN_TEXT_P(cstring_to_text(status ? status : "unknown"));
}
