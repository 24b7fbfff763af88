/*
 * relay_sync_sql.c - relay mode: what the relay asks a shard, through its
 * own connections (relay_conn_sql.c).
 *
 * Keys: a shard's repo_keys(did) is the repo's key history (each did:key
 * with the rev from which it signs), the relay's equivalent of resolving
 * a DID document.  It is checked against what the relay already verified
 * before anything of it is used: a rev the relay knows keeps its key, and
 * the host that signed the relay's head must still name that key for it.
 * A key new to the relay enters repo_key_history only once a commit signed
 * with it verifies (a rotation's #sync, a move's #sync, an export's head),
 * and only for revs after the relay's head: a resync cannot re-key what
 * the relay verified, nor make a key current that signed nothing it saw.
 * verify_frame(frame) and repo_keys() work on the relay as on the shard.
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
#include "syntax.h"

PG_FUNCTION_INFO_V1(rs_relay_sync_repo);

#define SYNC_BATCH_ROWS 1000

/* One query on the shard with the DID as $1; ERROR if it fails. */
static RelayRows *
remote(const char *shard, const char *sql, const char *did, int ncols, const Oid *types)
{
	const char *params[1] = {did};

	return rs_relay_remote(shard, sql, 1, params, ncols, types);
}

/* The key of a history (keys, revs, n, ascending) whose range holds rev; NULL before the first. */
static int
history_index(char **revs, int n, const char *rev)
{
	int			found = -1;

	for (int i = 0; i < n; i++)
		if (strcmp(revs[i], rev) <= 0)
			found = i;
	return found;
}

void
rs_relay_fetch_keys(RelayRepo *st, const char *shard)
{
	static const Oid types[2] = {TEXTOID, TEXTOID};
	MemoryContext state_cxt = rs_relay_cxt();
	RelayRows  *rows;
	RsOwnerContext oc;
	char	  **known_keys = NULL;
	char	  **known_revs = NULL;
	int			n_known = 0;
	int			n;
	char	  **keys;
	char	  **revs;

	rows = remote(shard, "SELECT did_key, since_rev FROM repo_stream.repo_keys($1) ORDER BY since_rev",
				  st->did, 2, types);
	n = rows->nrows;
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("shard %s reports no key for repo %s", shard, st->did)));
	keys = MemoryContextAlloc(state_cxt, sizeof(char *) * n);
	revs = MemoryContextAlloc(state_cxt, sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		const char *k = rs_rows_text(rows, i, 0);
		const char *r = rs_rows_text(rows, i, 1);
		uint8		pub[ED25519_PUBLIC_KEY_LEN];

		if (k == NULL || r == NULL || !did_key_parse_ed25519(k, strlen(k), pub, NULL) ||
			!tid_valid(r, strlen(r)) || (i > 0 && strcmp(revs[i - 1], r) >= 0))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("shard %s reports a malformed key history for repo %s (entry %d)",
							shard, st->did, i + 1)));
		keys[i] = MemoryContextStrdup(state_cxt, k);
		revs[i] = MemoryContextStrdup(state_cxt, r);
	}

	/* what the relay holds */
	if (st->exists)
	{
		Datum		arg = CStringGetTextDatum(st->did);
		Oid			type = TEXTOID;
		MemoryContext cxt = CurrentMemoryContext;

		rs_enter_owner(&oc);
		SPI_execute_with_args("SELECT did_key, since_rev FROM repo_stream.repo_key_history WHERE did = $1"
							  " ORDER BY since_rev", 1, &type, &arg, NULL, true, 0);
		n_known = (int) SPI_processed;
		known_keys = MemoryContextAlloc(cxt, sizeof(char *) * Max(1, n_known));
		known_revs = MemoryContextAlloc(cxt, sizeof(char *) * Max(1, n_known));
		for (int i = 0; i < n_known; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			known_keys[i] = rs_gettext(i, 1);
			known_revs[i] = rs_gettext(i, 2);
			MemoryContextSwitchTo(old);
		}
		rs_leave_owner(&oc);
		MemoryContextSwitchTo(cxt);
	}

	/* a rev the relay knows keeps its key */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n_known; j++)
			if (strcmp(revs[i], known_revs[j]) == 0 && strcmp(keys[i], known_keys[j]) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("shard %s's key history of %s contradicts the relay's: rev %s is signed by %s, not %s",
								shard, st->did, revs[i], known_keys[j], keys[i]),
						 errdetail("Nothing of it was taken.")));

	/*
	 * The host that signed the relay's head must still name its key for it
	 * (a history that starts later, or names another key, is not the
	 * history of this repo on this host).  Not for a new host, whose
	 * history starts after the move.
	 */
	if (st->exists && st->shard != NULL && strcmp(st->shard, shard) == 0 &&
		st->host_rev != NULL && st->rev != NULL && n_known > 0)
	{
		int			f = history_index(revs, n, st->rev);
		int			k = history_index(known_revs, n_known, st->rev);
		const char *mine = k >= 0 ? known_keys[k] : known_keys[0];

		if (f < 0 || strcmp(keys[f], mine) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("shard %s's key history of %s does not name the key that signed rev %s (%s), which the relay verified from it",
							shard, st->did, st->rev, mine),
					 errdetail("Nothing of it was taken.")));
	}

	st->keys_shard = MemoryContextStrdup(state_cxt, shard);
	st->n_keys = n;
	st->keys = keys;
	st->key_revs = revs;
	st->keys_floor = st->rev ? MemoryContextStrdup(state_cxt, st->rev) : NULL;

	if (n_known > 0)
		return;
	/* a repo the relay has no key of: its host's history, whole */
	st->did_key = keys[n - 1];
	if (!st->exists)
		rs_relay_repo_create(st, shard, "active");
	{
		Datum		args[3];
		Oid			atypes[3] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
		Datum	   *kd = palloc(sizeof(Datum) * n);
		Datum	   *rd = palloc(sizeof(Datum) * n);

		for (int i = 0; i < n; i++)
		{
			kd[i] = CStringGetTextDatum(keys[i]);
			rd[i] = CStringGetTextDatum(revs[i]);
		}
		args[0] = CStringGetTextDatum(st->did);
		args[1] = PointerGetDatum(construct_array(kd, n, TEXTOID, -1, false, TYPALIGN_INT));
		args[2] = PointerGetDatum(construct_array(rd, n, TEXTOID, -1, false, TYPALIGN_INT));
		rs_enter_owner(&oc);
		SPI_execute_with_args("WITH h AS (INSERT INTO repo_stream.repo_key_history (did, did_key, since_rev)"
							  "   SELECT $1, k, r FROM unnest($2::text[], $3::text[]) AS u(k, r)"
							  "   ON CONFLICT (did, since_rev) DO NOTHING)"
							  " UPDATE repo_stream.repos SET did_key = $2[array_upper($2, 1)] WHERE did = $1",
							  3, atypes, args, NULL, false, 0);
		rs_leave_owner(&oc);
	}
	st->dirty = true;
}

char *
rs_relay_new_key_for_rev(RelayRepo *st, const char *shard, const char *rev, char **since)
{
	int			i;
	char	   *known;

	if (st->keys_shard == NULL || strcmp(st->keys_shard, shard) != 0)
		return NULL;
	i = history_index(st->key_revs, st->n_keys, rev);
	if (i < 0)
		return NULL;
	/* nothing at or before the relay's head when the history came */
	if (st->keys_floor != NULL && strcmp(st->key_revs[i], st->keys_floor) <= 0)
		return NULL;
	known = rs_relay_key_for_rev(st->did, rev);
	if (known != NULL && strcmp(known, st->keys[i]) == 0)
		return NULL;
	*since = st->key_revs[i];
	return st->keys[i];
}

void
rs_relay_take_key(RelayRepo *st, const char *key, const char *since)
{
	RsOwnerContext oc;
	Datum		args[3];
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};

	args[0] = CStringGetTextDatum(st->did);
	args[1] = CStringGetTextDatum(key);
	args[2] = CStringGetTextDatum(since);
	rs_enter_owner(&oc);
	SPI_execute_with_args("INSERT INTO repo_stream.repo_key_history (did, did_key, since_rev) VALUES ($1, $2, $3)"
						  " ON CONFLICT (did, since_rev) DO NOTHING", 3, types, args, NULL, false, 0);
	rs_leave_owner(&oc);
	ereport(LOG,
			(errmsg("relay: repo %s signs with %s from rev %s", st->did, key, since)));
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
	static const Oid types[1] = {TEXTOID};
	RelayRows  *rows = remote(shard, "SELECT status FROM repo_stream.repos WHERE did = $1", did, 1, types);

	return rows->nrows == 1 ? rs_rows_text(rows, 0, 0) : NULL;
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
	static const Oid types[2] = {INT8OID, BYTEAOID};
	char	   *q;
	RelayRows  *rows;
	int			n;
	int64	   *seqs;
	bytea	  **frames;
	bool		isnull;

	q = psprintf("SELECT seq, frame FROM repo_stream.events_since(" INT64_FORMAT ", 100000, ARRAY[$1])"
				 " WHERE seq IS NULL OR seq <= " INT64_FORMAT, after, upto);
	rows = remote(shard, q, st->did, 2, types);
	n = rows->nrows;
	seqs = palloc(sizeof(int64) * (n + 1));
	frames = palloc(sizeof(bytea *) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		seqs[i] = rs_rows_int8(rows, i, 0, &isnull);
		if (isnull)
			seqs[i] = 0;		/* OutdatedCursor: the shard no longer has some of them */
		frames[i] = rs_rows_bytea(rows, i, 1);
		if (frames[i] == NULL)
			frames[i] = rs_bytea("", 0);
	}
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

	{
		static const Oid types[3] = {INT8OID, TEXTOID, BYTEAOID};
		RelayRows  *rows = remote(shard, "SELECT min(seq), min(rev), string_agg(chunk, ''::bytea ORDER BY n)"
								  "  FROM repo_stream.export_repo($1) WITH ORDINALITY AS e(seq, rev, chunk, n)",
								  st->did, 3, types);

		if (rows->nrows != 1)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("shard %s returned no export of %s", shard, st->did)));
		seq = rs_rows_int8(rows, 0, 0, &isnull);
		rev = rs_rows_text(rows, 0, 1);
		car = rs_rows_bytea(rows, 0, 2);
	}
	if (car == NULL || rev == NULL || isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("shard %s returned an empty export of %s", shard, st->did)));

	ss = palloc0(sizeof(SyncState));
	car_mem_source(&src, &mem, (const uint8_t *) VARDATA_ANY(car), VARSIZE_ANY_EXHDR(car));
	err = car_import_open(&ss->ci, &src);
	if (err == CI_OK && strcmp(ss->ci.did, st->did) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the export of %s from shard %s is of repo %s", st->did, shard, ss->ci.did)));
	if (err == CI_OK)
	{
		/* the key the relay holds for the export's rev; else a new one of the host's history */
		char	   *since = NULL;
		char	   *fresh = NULL;

		key = rs_relay_key_for_rev(st->did, ss->ci.rev);
		err = CI_SIGNATURE;
		if (key != NULL && did_key_parse_ed25519(key, strlen(key), pub, NULL))
			err = car_import_verify(&ss->ci, pub);
		if (err == CI_SIGNATURE &&
			(fresh = rs_relay_new_key_for_rev(st, shard, ss->ci.rev, &since)) != NULL &&
			did_key_parse_ed25519(fresh, strlen(fresh), pub, NULL) &&
			(err = car_import_verify(&ss->ci, pub)) == CI_OK)
		{
			rs_relay_take_key(st, fresh, since);
			key = fresh;
		}
		if (err == CI_SIGNATURE && key == NULL && fresh == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("no key of repo %s signs rev %s", st->did, ss->ci.rev)));
	}
	if (err != CI_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the export of %s from shard %s does not verify: %s", st->did, shard, ss->ci.errmsg)));
	if (strcmp(ss->ci.rev, rev) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the export of %s from shard %s says rev %s but its commit is rev %s",
						st->did, shard, rev, ss->ci.rev)));

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
	st->did_key = MemoryContextStrdup(state_cxt, key);
	st->shard = MemoryContextStrdup(state_cxt, shard);
	st->shard_seq = seq;
	if (st->host_rev == NULL)
		st->host_rev = st->rev;
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
 * repo (which cannot be exported) keeps the records it had; "elsewhere"
 * for a repo another shard hosts (left alone).  ERROR if the shard cannot
 * be asked or the export does not verify.
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
	if (st->exists && st->shard != NULL && strcmp(st->shard, shard) != 0)
	{
		/* another shard hosts it: only its deletion there hands it over (a move) */
		ereport(WARNING,
				(errmsg("relay: repo %s is hosted by shard %s, not mirrored from shard %s", did, st->shard, shard)));
		PG_RETURN_TEXT_P(cstring_to_text("elsewhere"));
	}
	status = rs_relay_sync_from_export(st, shard, pending);
	PG_RETURN_TEXT_P(cstring_to_text(status ? status : "unknown"));
}
