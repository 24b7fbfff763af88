/*
 * relay_ingest_sql.c - relay mode: one shard event in, checked, mirrored
 * and queued; the queue out into this database's own log.
 *
 * The events arrive through native logical replication: the shard
 * publishes repo_stream.event_log (via its partition root), the relay's
 * subscription applies each row to the relay's own repo_stream.event_log,
 * and the BEFORE ROW trigger relay_ingest (ENABLE REPLICA, so it fires only
 * in apply workers) hands the frame to relay_ingest() and returns NULL: the
 * shard's row is never stored.  What the relay appends to its log goes in
 * with direct inserts (eventlog_sql.c), which fire no trigger, so there is
 * no recursion.  The apply worker commits the relay's append together with
 * the subscription's replication origin position, so after a crash or a
 * restart of either side each shard transaction is applied exactly once.
 *
 * Checks, per event, under the repo's lock (as the write path takes it):
 *  - host: the event comes from the shard that hosts the repo; a #sync from
 *    another shard is a move, accepted once the old host has deactivated
 *    (or no longer has) the repo;
 *  - seq: per repo, a shard's seqs rise in commit order (the repo's lock is
 *    held from the seq draw to the commit), so an event at or below the
 *    repo's last applied seq is a duplicate (relay_add_shard's window and
 *    the subscription overlap);
 *  - #commit: signature by the key current at its rev (the key history the
 *    shard reports, fetched again when a rotation is new), the inversion
 *    of its ops onto prevData (verify.c), and the chain: since is the rev
 *    and prevData the MST root the relay holds for the repo;
 *  - #sync: signature; a new MST root means the records changed without
 *    ops, so the repo is synced from a fresh export.
 * A repo whose event fails is marked desynchronized and synced from a
 * fresh export at once (relay_sync_sql.c); the event is never re-emitted.
 *
 * Mirror: the ops' records (from the frame's blocks) go into the relay's
 * records table, #account statuses and heads into repos, through SPI with
 * rs_suppress_ops set, so the write path makes no commit of its own.
 *
 * Re-sequence: accepted frames are queued and, at pre-commit (or every
 * RELAY_FLUSH_EVENTS during a backfill), appended to the event log with
 * rs_eventlog_append, each re-stamped with its relay seq (frame_set_seq):
 * the same gapless, bounded log, events_since and output plugin as on a
 * single node.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "replication/worker_internal.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "car.h"
#include "cbor_sql.h"
#include "commit.h"
#include "commit_sql.h"
#include "eventlog_sql.h"
#include "frame.h"
#include "keys_sql.h"
#include "relay_sql.h"
#include "spi_sql.h"
#include "store_sql.h"
#include "syntax.h"
#include "verify.h"

PG_FUNCTION_INFO_V1(rs_relay_event_trigger);
PG_FUNCTION_INFO_V1(rs_relay_ingest);
PG_FUNCTION_INFO_V1(rs_relay_finish_backfill);
PG_FUNCTION_INFO_V1(rs_relay_resync);

/* A backfill appends what it has queued every so often, not all at the end. */
#define RELAY_FLUSH_EVENTS 1000
#define RELAY_FLUSH_BYTES (32 * 1024 * 1024)

#define RELAY_SUB_PREFIX "rs_relay_"

static const char *const outcome_names[] = {
	"applied", "historical", "duplicate", "dropped", "rejected", "ignored", "replayed"
};

typedef struct QueuedEvent
{
	char	   *did;
	const char *kind;
	bytea	   *frame;			/* seq re-stamped at append */
} QueuedEvent;

typedef struct ShardStats
{
	char	   *shard;
	int64		max_seq;
	TimestampTz last_event_at;
	int64		events;
	int64		duplicates;
	int64		dropped;
	int64		rejected;
	int64		replayed;
} ShardStats;

/* repos columns (src/sql/00_base.sql) */
#define REPOS_DID_KEY 2
#define REPOS_STATUS 3
#define REPOS_HEAD_CID 4
#define REPOS_HEAD_REV 5
#define REPOS_DATA_CID 6
#define REPOS_HEAD_COMMIT 7
#define REPOS_LAST_SEQ 8
/* relay_repos columns (src/sql/80_relay.sql) */
#define RR_SHARD 2
#define RR_SHARD_SEQ 3
#define RR_DESYNC 4
#define RR_DESYNC_REASON 5
#define RR_DESYNC_AT 6
#define RR_RESYNCS 7
#define RR_SYNC_PENDING_SEQ 8
#define RR_HIST_REV 9
#define RR_HIST_DATA 10
#define RR_HIST_COMPLETE 11
#define RR_HOST_REV 12
#define RR_CLAIM_SHARD 13
#define RR_CLAIM_SEQ 14
#define RR_NATTS 14

typedef struct RepoEntry
{
	char		key[DID_MAX_LEN + 1];
	RelayRepo	repo;
} RepoEntry;

/* This transaction's relay work; all of it in cxt, a child of TopTransactionContext. */
static struct
{
	MemoryContext cxt;
	HTAB	   *repos;
	QueuedEvent *queue;
	int			n_queue;
	int			cap_queue;
	size_t		queue_bytes;
	ShardStats *stats;
	int			n_stats;
}			relay;

static void relay_flush(void);
static RelayOutcome relay_ingest(const char *shard, int64 seq, const uint8 *data, size_t len,
								 TimestampTz logged_at);

/* relay_ingest calls nest during a catch-up: only the outermost may flush */
static int	ingest_depth = 0;

/* ---------------------------------------------------------------- state */

static void
relay_begin(void)
{
	HASHCTL		ctl;

	if (relay.cxt != NULL)
		return;
	relay.cxt = AllocSetContextCreate(TopTransactionContext, "repo_stream relay",
									  ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = DID_MAX_LEN + 1;
	ctl.entrysize = sizeof(RepoEntry);
	ctl.hcxt = relay.cxt;
	relay.repos = hash_create("repo_stream relay repos", 64, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	relay.cap_queue = 64;
	relay.queue = MemoryContextAlloc(relay.cxt, sizeof(QueuedEvent) * relay.cap_queue);
	relay.n_queue = 0;
	relay.queue_bytes = 0;
	relay.stats = MemoryContextAlloc(relay.cxt, sizeof(ShardStats) * 8);
	relay.n_stats = 0;
}

static void
relay_forget(void)
{
	relay.cxt = NULL;
	relay.repos = NULL;
	relay.queue = NULL;
	relay.n_queue = 0;
	relay.stats = NULL;
	relay.n_stats = 0;
}

SPIPlanPtr
rs_relay_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *types)
{
	if (*cache == NULL)
	{
		/* lookups by primary key: the generic plan is the plan */
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*cache = plan;
	}
	return *cache;
}

MemoryContext
rs_relay_cxt(void)
{
	relay_begin();
	return relay.cxt;
}

static char *
cxt_strdup(const char *s)
{
	return s ? MemoryContextStrdup(relay.cxt, s) : NULL;
}

static ShardStats *
shard_stats(const char *shard)
{
	for (int i = 0; i < relay.n_stats; i++)
		if (strcmp(relay.stats[i].shard, shard) == 0)
			return &relay.stats[i];
	if (relay.n_stats == 8)
		relay_flush();
	relay_begin();
	memset(&relay.stats[relay.n_stats], 0, sizeof(ShardStats));
	relay.stats[relay.n_stats].shard = cxt_strdup(shard);
	return &relay.stats[relay.n_stats++];
}

/*
 * The relay's state of a repo: from this transaction's table, else from
 * relay_repos and repos.  exists false (and local false) for a DID the
 * relay has never seen; local for a repo of this database itself.
 */
RelayRepo *
rs_relay_repo(const char *did)
{
	RepoEntry  *e;
	bool		found;
	RelayRepo  *st;
	Datum		key;
	Relation	rel;
	HeapTuple	tup;
	MemoryContext old;

	relay_begin();
	if (strlen(did) > DID_MAX_LEN)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("DID longer than %d characters", DID_MAX_LEN)));
	e = hash_search(relay.repos, did, HASH_ENTER, &found);
	st = &e->repo;
	if (found)
		return st;
	memset(st, 0, sizeof(*st));
	st->did = e->key;
	strlcpy(st->status, "active", RELAY_STATUS_LEN);

	/*
	 * Two primary-key probes, without the executor (this runs for every
	 * event).  We hold the repo's lock: only we change these rows now, and
	 * SnapshotSelf also sees what this transaction wrote.
	 */
	old = MemoryContextSwitchTo(relay.cxt);
	key = CStringGetTextDatum(did);
	rel = rs_rel_open(RS_REL_REPOS, AccessShareLock);
	tup = rs_rel_lookup(rel, SnapshotSelf, 1, &key);
	if (tup != NULL)
	{
		TupleDesc	desc = RelationGetDescr(rel);
		bool		isnull;
		Datum		d;

		strlcpy(st->status, TextDatumGetCString(heap_getattr(tup, REPOS_STATUS, desc, &isnull)), RELAY_STATUS_LEN);
		d = heap_getattr(tup, REPOS_HEAD_REV, desc, &isnull);
		st->rev = isnull ? NULL : TextDatumGetCString(d);
		d = heap_getattr(tup, REPOS_DATA_CID, desc, &isnull);
		if (!isnull && VARSIZE_ANY_EXHDR(DatumGetByteaPP(d)) == CID_LEN)
		{
			memcpy(st->data, VARDATA_ANY(DatumGetByteaPP(d)), CID_LEN);
			st->has_data = true;
		}
		d = heap_getattr(tup, REPOS_HEAD_CID, desc, &isnull);
		if (!isnull)
		{
			char	   *s = TextDatumGetCString(d);

			st->has_head = cid_parse(s, strlen(s), st->head_cid);
		}
		d = heap_getattr(tup, REPOS_HEAD_COMMIT, desc, &isnull);
		st->head_commit = isnull ? NULL : DatumGetByteaPCopy(d);
		st->did_key = TextDatumGetCString(heap_getattr(tup, REPOS_DID_KEY, desc, &isnull));
	}
	table_close(rel, AccessShareLock);
	if (tup != NULL)
	{
		rel = rs_rel_open(RS_REL_RELAY_REPOS, AccessShareLock);
		tup = rs_rel_lookup(rel, SnapshotSelf, 1, &key);
		st->exists = tup != NULL;
		st->local = !st->exists;
		if (tup != NULL)
		{
			TupleDesc	desc = RelationGetDescr(rel);
			bool		isnull;
			Datum		d;

			st->shard = TextDatumGetCString(heap_getattr(tup, RR_SHARD, desc, &isnull));
			st->shard_seq = DatumGetInt64(heap_getattr(tup, RR_SHARD_SEQ, desc, &isnull));
			st->desync = DatumGetBool(heap_getattr(tup, RR_DESYNC, desc, &isnull));
			d = heap_getattr(tup, RR_DESYNC_REASON, desc, &isnull);
			st->desync_reason = isnull ? NULL : TextDatumGetCString(d);
			st->resyncs = DatumGetInt32(heap_getattr(tup, RR_RESYNCS, desc, &isnull));
			d = heap_getattr(tup, RR_SYNC_PENDING_SEQ, desc, &isnull);
			st->sync_pending = !isnull;
			st->sync_pending_seq = isnull ? 0 : DatumGetInt64(d);
			d = heap_getattr(tup, RR_HIST_REV, desc, &isnull);
			st->hist_rev = isnull ? NULL : TextDatumGetCString(d);
			d = heap_getattr(tup, RR_HIST_DATA, desc, &isnull);
			if (!isnull && VARSIZE_ANY_EXHDR(DatumGetByteaPP(d)) == CID_LEN)
				memcpy(st->hist_data, VARDATA_ANY(DatumGetByteaPP(d)), CID_LEN);
			st->hist_complete = DatumGetBool(heap_getattr(tup, RR_HIST_COMPLETE, desc, &isnull));
			d = heap_getattr(tup, RR_HOST_REV, desc, &isnull);
			st->host_rev = isnull ? NULL : TextDatumGetCString(d);
			d = heap_getattr(tup, RR_CLAIM_SHARD, desc, &isnull);
			st->claim_shard = isnull ? NULL : TextDatumGetCString(d);
			d = heap_getattr(tup, RR_CLAIM_SEQ, desc, &isnull);
			st->claim_seq = isnull ? 0 : DatumGetInt64(d);
		}
		table_close(rel, AccessShareLock);
	}
	MemoryContextSwitchTo(old);
	return st;
}

/* Rows for a repo new to the relay (repos: its key, no head yet). */
void
rs_relay_repo_create(RelayRepo *st, const char *shard, const char *status)
{
	RsOwnerContext oc;
	Datum		args[4];
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};

	rs_enter_owner(&oc);
	args[0] = CStringGetTextDatum(st->did);
	args[1] = CStringGetTextDatum(st->did_key ? st->did_key : "");
	args[2] = CStringGetTextDatum(status);
	args[3] = CStringGetTextDatum(shard);
	SPI_execute_with_args("WITH p AS (INSERT INTO repo_stream.repos (did, did_key, status) VALUES ($1, $2, $3))"
						  " INSERT INTO repo_stream.relay_repos (did, shard) VALUES ($1, $4)",
						  4, types, args, NULL, false, 0);
	rs_leave_owner(&oc);
	st->exists = true;
	st->shard = cxt_strdup(shard);
	strlcpy(st->status, status, RELAY_STATUS_LEN);
}

/* ---------------------------------------------------------------- queue */

static void
encode_queued(const void *payload, int64 seq, RsBuf *out)
{
	const QueuedEvent *q = payload;

	if (frame_set_seq((const uint8 *) VARDATA(q->frame), VARSIZE(q->frame) - VARHDRSZ, seq, out) != FRAME_OK)
		elog(ERROR, "relay: a queued frame of %s has no seq", q->did);
}

/* Queue a frame (any seq: it is re-stamped) for the relay's log. */
void
rs_relay_queue(RelayRepo *st, const char *kind, const uint8 *frame, size_t len)
{
	QueuedEvent *q;

	relay_begin();
	if (relay.n_queue == relay.cap_queue)
	{
		relay.cap_queue *= 2;
		relay.queue = repalloc(relay.queue, sizeof(QueuedEvent) * relay.cap_queue);
	}
	q = &relay.queue[relay.n_queue++];
	q->did = st->did;
	q->kind = kind;
	q->frame = MemoryContextAlloc(relay.cxt, len + VARHDRSZ);
	SET_VARSIZE(q->frame, len + VARHDRSZ);
	memcpy(VARDATA(q->frame), frame, len);
	relay.queue_bytes += len;
	st->dirty = true;
}

/* A #sync of the repo's head (its signed commit alone in the CAR), queued. */
void
rs_relay_queue_sync(RelayRepo *st)
{
	FrameSync	s = {0};
	RsBuf		car,
				out;
	char		now_iso[FRAME_TIME_LEN + 1];
	TimestampTz now = GetCurrentTimestamp();

	if (!st->has_head || st->head_commit == NULL || st->rev == NULL)
		elog(ERROR, "relay: repo %s has no head to announce", st->did);
	rs_buf_init(&car, VARSIZE_ANY_EXHDR(st->head_commit) + 128);
	car_write_header(&car, st->head_cid);
	car_write_block(&car, st->head_cid, (const uint8 *) VARDATA_ANY(st->head_commit),
					VARSIZE_ANY_EXHDR(st->head_commit));
	frame_format_time(now + ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY), now_iso);
	s.did = st->did;
	s.did_len = strlen(st->did);
	s.rev = st->rev;
	s.rev_len = strlen(st->rev);
	s.blocks = car.data;
	s.blocks_len = car.len;
	s.time = now_iso;
	s.time_len = FRAME_TIME_LEN;
	rs_buf_init(&out, car.len + 256);
	frame_encode_sync(&s, 1, &out);
	rs_relay_queue(st, "sync", out.data, out.len);
	rs_buf_free(&out);
	rs_buf_free(&car);
}

void
rs_relay_mark_desync(RelayRepo *st, const char *shard, const char *reason)
{
	ereport(WARNING,
			(errmsg("relay: repo %s from shard %s is desynchronized: %s", st->did, shard, reason),
			 errdetail("The event is dropped; the repo is synced again from a fresh export.")));
	st->desync = true;
	st->desync_changed = true;
	st->desync_reason = cxt_strdup(reason);
	st->dirty = true;
	shard_stats(shard)->rejected++;
}

/*
 * Write back a repo's state into its repos and relay_repos rows, with
 * direct updates (extension-owned tables; we hold the repo's lock).
 */
static void
write_back(RelayRepo *st)
{
	Datum		key = CStringGetTextDatum(st->did);
	Datum		v[RR_NATTS];
	bool		n[RR_NATTS];
	bool		r[RR_NATTS];
	char		cid_text[CID_TEXT_LEN + 1];
	Relation	rel;
	HeapTuple	tup;

	memset(n, 0, sizeof(n));
	memset(r, 0, sizeof(r));
	rel = rs_rel_open(RS_REL_REPOS, RowExclusiveLock);
	tup = rs_rel_lookup(rel, SnapshotSelf, 1, &key);
	if (tup == NULL)
		elog(ERROR, "relay: repo %s has no repos row", st->did);
	if (st->did_key != NULL && st->did_key[0] != '\0')
	{
		v[REPOS_DID_KEY - 1] = CStringGetTextDatum(st->did_key);
		r[REPOS_DID_KEY - 1] = true;
	}
	v[REPOS_STATUS - 1] = CStringGetTextDatum(st->status);
	r[REPOS_STATUS - 1] = true;
	if (st->has_head)
	{
		cid_format(st->head_cid, cid_text);
		v[REPOS_HEAD_CID - 1] = CStringGetTextDatum(cid_text);
	}
	n[REPOS_HEAD_CID - 1] = !st->has_head;
	r[REPOS_HEAD_CID - 1] = true;
	v[REPOS_HEAD_REV - 1] = st->rev ? CStringGetTextDatum(st->rev) : (Datum) 0;
	n[REPOS_HEAD_REV - 1] = st->rev == NULL;
	r[REPOS_HEAD_REV - 1] = true;
	v[REPOS_DATA_CID - 1] = st->has_data ? PointerGetDatum(rs_bytea(st->data, CID_LEN)) : (Datum) 0;
	n[REPOS_DATA_CID - 1] = !st->has_data;
	r[REPOS_DATA_CID - 1] = true;
	v[REPOS_HEAD_COMMIT - 1] = st->head_commit ? PointerGetDatum(st->head_commit) : (Datum) 0;
	n[REPOS_HEAD_COMMIT - 1] = st->head_commit == NULL;
	r[REPOS_HEAD_COMMIT - 1] = true;
	if (st->last_seq > 0)
	{
		v[REPOS_LAST_SEQ - 1] = Int64GetDatum(st->last_seq);
		r[REPOS_LAST_SEQ - 1] = true;
	}
	(void) rs_rel_update(rel, tup, v, n, r);
	table_close(rel, RowExclusiveLock);

	memset(n, 0, sizeof(n));
	memset(r, 0, sizeof(r));
	rel = rs_rel_open(RS_REL_RELAY_REPOS, RowExclusiveLock);
	tup = rs_rel_lookup(rel, SnapshotSelf, 1, &key);
	if (tup == NULL)
		elog(ERROR, "relay: repo %s has no relay_repos row", st->did);
	v[RR_SHARD - 1] = CStringGetTextDatum(st->shard);
	v[RR_SHARD_SEQ - 1] = Int64GetDatum(st->shard_seq);
	v[RR_DESYNC - 1] = BoolGetDatum(st->desync);
	v[RR_DESYNC_REASON - 1] = st->desync && st->desync_reason ? CStringGetTextDatum(st->desync_reason) : (Datum) 0;
	n[RR_DESYNC_REASON - 1] = !(st->desync && st->desync_reason);
	v[RR_RESYNCS - 1] = Int32GetDatum(st->resyncs);
	v[RR_SYNC_PENDING_SEQ - 1] = Int64GetDatum(st->sync_pending_seq);
	n[RR_SYNC_PENDING_SEQ - 1] = !st->sync_pending;
	/* the window's chain is kept only while a #sync waits */
	v[RR_HIST_REV - 1] = st->sync_pending && st->hist_rev ? CStringGetTextDatum(st->hist_rev) : (Datum) 0;
	n[RR_HIST_REV - 1] = !(st->sync_pending && st->hist_rev);
	v[RR_HIST_DATA - 1] = st->sync_pending && st->hist_rev ? PointerGetDatum(rs_bytea(st->hist_data, CID_LEN)) : (Datum) 0;
	n[RR_HIST_DATA - 1] = !(st->sync_pending && st->hist_rev);
	v[RR_HIST_COMPLETE - 1] = BoolGetDatum(st->sync_pending && st->hist_complete);
	v[RR_HOST_REV - 1] = st->host_rev ? CStringGetTextDatum(st->host_rev) : (Datum) 0;
	n[RR_HOST_REV - 1] = st->host_rev == NULL;
	v[RR_CLAIM_SHARD - 1] = st->claim_shard ? CStringGetTextDatum(st->claim_shard) : (Datum) 0;
	n[RR_CLAIM_SHARD - 1] = st->claim_shard == NULL;
	v[RR_CLAIM_SEQ - 1] = Int64GetDatum(st->claim_seq);
	n[RR_CLAIM_SEQ - 1] = st->claim_shard == NULL;
	for (int i = RR_SHARD; i <= RR_NATTS; i++)
		r[i - 1] = i != RR_DESYNC_AT;
	if (st->desync_changed && st->desync)
	{
		v[RR_DESYNC_AT - 1] = TimestampTzGetDatum(GetCurrentTimestamp());
		r[RR_DESYNC_AT - 1] = true;
	}
	(void) rs_rel_update(rel, tup, v, n, r);
	table_close(rel, RowExclusiveLock);
	CommandCounterIncrement();
	st->dirty = false;
	st->desync_changed = false;
}

static void
write_stats(void)
{
	static SPIPlanPtr plan = NULL;

	if (plan == NULL)
	{
		Oid			types[8] = {TEXTOID, INT8OID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID};

		rs_relay_plan(&plan, "UPDATE repo_stream.relay_shards SET last_shard_seq = greatest(last_shard_seq, $2),"
					  "   last_event_at = coalesce($3, last_event_at), last_received_at = now(),"
					  "   events = events + $4, duplicates = duplicates + $5,"
					  "   dropped_host = dropped_host + $6, rejected = rejected + $7, replayed = replayed + $8"
					  " WHERE name = $1", 8, types);
	}
	for (int i = 0; i < relay.n_stats; i++)
	{
		ShardStats *s = &relay.stats[i];
		Datum		args[8];
		char		nulls[8] = "        ";

		args[0] = CStringGetTextDatum(s->shard);
		args[1] = Int64GetDatum(s->max_seq);
		args[2] = TimestampTzGetDatum(s->last_event_at);
		if (s->last_event_at == 0)
			nulls[2] = 'n';
		args[3] = Int64GetDatum(s->events);
		args[4] = Int64GetDatum(s->duplicates);
		args[5] = Int64GetDatum(s->dropped);
		args[6] = Int64GetDatum(s->rejected);
		args[7] = Int64GetDatum(s->replayed);
		SPI_execute_plan(plan, args, nulls, false, 0);
	}
}

/*
 * Append the queue to the event log (relay seqs), then write back every
 * repo's state and the shards' counters.  The state table is dropped after:
 * later events reload what was written.
 */
static void
relay_flush(void)
{
	RsOwnerContext oc;
	HASH_SEQ_STATUS hs;
	RepoEntry  *e;
	bool		pushed = false;

	if (relay.cxt == NULL)
		return;
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	if (relay.n_queue > 0)
	{
		RsPendingEvent *events = palloc(sizeof(RsPendingEvent) * relay.n_queue);
		int64	   *seqs = palloc(sizeof(int64) * relay.n_queue);

		for (int i = 0; i < relay.n_queue; i++)
		{
			events[i].did = relay.queue[i].did;
			events[i].kind = relay.queue[i].kind;
			events[i].encode = encode_queued;
			events[i].payload = &relay.queue[i];
		}
		rs_enter_owner(&oc);
		rs_eventlog_append(events, relay.n_queue, seqs);
		rs_leave_owner(&oc);
		for (int i = 0; i < relay.n_queue; i++)
		{
			RepoEntry  *r = hash_search(relay.repos, relay.queue[i].did, HASH_FIND, NULL);

			if (r != NULL)
			{
				r->repo.last_seq = seqs[i];
				r->repo.dirty = true;
			}
		}
		pfree(events);
		pfree(seqs);
	}
	rs_enter_owner(&oc);
	hash_seq_init(&hs, relay.repos);
	while ((e = hash_seq_search(&hs)) != NULL)
		if (e->repo.dirty && e->repo.exists)
			write_back(&e->repo);
	write_stats();
	rs_leave_owner(&oc);
	if (relay.n_queue > 0)
		rs_eventlog_rotate_if_due();
	if (pushed)
		PopActiveSnapshot();
	MemoryContextDelete(relay.cxt);
	relay_forget();
}

static void
relay_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			relay_flush();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (relay.cxt != NULL && relay.n_queue > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that relayed events")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			relay_forget();		/* its memory went with the transaction */
			break;
		default:
			break;
	}
}

void
rs_relay_init(void)
{
	RegisterXactCallback(relay_xact_callback, NULL);
}

/* ---------------------------------------------------------------- mirror */

/* Upsert or delete one record of the mirror; inside rs_enter_owner. */
static void
mirror_op(const char *did, const FrameOp *op, const CarIndex *idx)
{
	static SPIPlanPtr put = NULL,
				del = NULL;
	const char *slash = memchr(op->path, '/', op->path_len);
	Datum		args[5];
	char		cid_text[CID_TEXT_LEN + 1];
	int			rc;

	if (put == NULL)
	{
		Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID};

		rs_relay_plan(&put, "INSERT INTO repo_stream.records (did, collection, rkey, record, cid)"
					  " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (did, collection, rkey)"
					  " DO UPDATE SET record = EXCLUDED.record, cid = EXCLUDED.cid", 5, types);
		rs_relay_plan(&del, "DELETE FROM repo_stream.records WHERE did = $1 AND collection = $2 AND rkey = $3",
					  3, types);
	}
	if (slash == NULL)
		elog(ERROR, "relay: op path without a collection");	/* frame_decode checked it */
	args[0] = CStringGetTextDatum(did);
	args[1] = PointerGetDatum(cstring_to_text_with_len(op->path, slash - op->path));
	args[2] = PointerGetDatum(cstring_to_text_with_len(slash + 1, op->path_len - (slash - op->path) - 1));
	if (op->action == FRAME_ACTION_DELETE)
		rc = SPI_execute_plan(del, args, NULL, false, 0);
	else
	{
		const CarBlock *b = car_index_get(idx, op->cid);

		/* verification found every record block */
		args[3] = JsonbPGetDatum(rs_cbor_to_jsonb(b->data, b->len, "record"));
		cid_format(op->cid, cid_text);
		args[4] = CStringGetTextDatum(cid_text);
		rc = SPI_execute_plan(put, args, NULL, false, 0);
	}
	if (rc < 0)
		elog(ERROR, "relay: mirroring %.*s of %s failed", (int) op->path_len, op->path, did);
}

/* ---------------------------------------------------------------- checks */

static char *
pnstr(const char *s, size_t len)
{
	return s ? pnstrdup(s, len) : NULL;
}

/*
 * Verify a #commit or #sync with the key that signed its rev: the repo's
 * current key, else the key the relay holds for the rev, else a key of the
 * shard's history, fetched again and checked (rs_relay_fetch_keys), that
 * the relay does not hold yet (a rotation, a move).  Such a key is taken
 * into repo_key_history when the frame verifies with it and take is set.
 * On VERIFY_OK out holds the data and block index and *used the key.
 */
static VerifyResult
verify_signed(RelayRepo *st, const char *shard, const Frame *f, VerifiedCommit *out,
			  char *errmsg, size_t errlen, bool take, char **used)
{
	char	   *rev = pnstr(f->kind == FRAME_COMMIT ? f->commit.rev : f->sync.rev,
							f->kind == FRAME_COMMIT ? f->commit.rev_len : f->sync.rev_len);
	char	   *tried[4] = {NULL, NULL, NULL, NULL};
	VerifyResult r = VERIFY_BAD_SIGNATURE;
	char	   *since = NULL;

	for (int step = 0; step < 4; step++)
	{
		char	   *key;
		uint8		pub[ED25519_PUBLIC_KEY_LEN];
		bool		again = false;

		since = NULL;
		if (step == 0)
			key = st->did_key;
		else if (step == 1)
			key = rs_relay_key_for_rev(st->did, rev);
		else if (step == 2)
		{
			if (!rs_relay_try_fetch_keys(st, shard))
				break;
			key = rs_relay_new_key_for_rev(st, shard, rev, &since);
		}
		else
			key = rs_relay_key_for_rev(st->did, rev);	/* a first fetch may have taken the history */
		for (int i = 0; i < step; i++)
			if (key != NULL && tried[i] != NULL && strcmp(key, tried[i]) == 0)
				again = true;
		tried[step] = key;
		if (key == NULL || again || !did_key_parse_ed25519(key, strlen(key), pub, NULL))
			continue;
		r = f->kind == FRAME_COMMIT
			? frame_verify_commit_keep(&f->commit, pub, out, errmsg, errlen)
			: frame_verify_sync_keep(&f->sync, pub, out, errmsg, errlen);
		if (r != VERIFY_BAD_SIGNATURE)
		{
			if (r == VERIFY_OK)
			{
				if (since != NULL && take)
					rs_relay_take_key(st, key, since);
				if (used != NULL)
					*used = MemoryContextStrdup(relay.cxt, key);
			}
			return r;
		}
	}
	if (r == VERIFY_BAD_SIGNATURE && tried[0] == NULL && tried[1] == NULL && tried[2] == NULL && tried[3] == NULL)
		snprintf(errmsg, errlen, "no key of the repo is known for rev %s", rev);
	return r;
}

/* rev (len bytes) is after cur: TIDs sort as strings */
static bool
rev_after(const char *rev, size_t len, const char *cur)
{
	size_t		cur_len = strlen(cur);
	int			c = memcmp(rev, cur, Min(len, cur_len));

	return c > 0 || (c == 0 && len > cur_len);
}

/*
 * A frame of the repo's host whose rev is not after the last one the relay
 * took (a replay of an old frame under a new seq): dropped and counted,
 * without a resync.
 */
static bool
replayed(RelayRepo *st, const char *shard, int64 seq, const char *rev, size_t rev_len)
{
	if (st->rev == NULL || rev_after(rev, rev_len, st->rev))
		return false;
	ereport(WARNING,
			(errmsg("relay: event seq " INT64_FORMAT " of shard %s for %s has rev %.*s, not after the relay's rev %s: a replay, not relayed",
					seq, shard, st->did, (int) rev_len, rev, st->rev)));
	shard_stats(shard)->replayed++;
	st->shard_seq = seq;		/* seen: a resync's catch-up need not read it again */
	st->dirty = true;
	return true;
}

/* The commit block of a verified frame (the CAR's root). */
static void
take_head(RelayRepo *st, const VerifiedCommit *vc, const char *rev, size_t rev_len)
{
	const CarBlock *b = car_index_get(&vc->idx, vc->idx.root);
	MemoryContext old = MemoryContextSwitchTo(relay.cxt);

	memcpy(st->head_cid, vc->idx.root, CID_LEN);
	st->has_head = true;
	st->head_commit = rs_bytea(b->data, b->len);
	memcpy(st->data, vc->data, CID_LEN);
	st->has_data = true;
	st->rev = pnstrdup(rev, rev_len);
	MemoryContextSwitchTo(old);
	st->dirty = true;
}

static bool
same_text(const char *a, const char *b, size_t b_len)
{
	return a != NULL && b != NULL && strlen(a) == b_len && memcmp(a, b, b_len) == 0;
}

/*
 * An event at or below the export the repo's state was taken from (a
 * backfill's window, a resync's catch-up): the records already reflect it,
 * so it is only verified and re-emitted.  The chain is checked from the
 * anchor: the relay's last good state (a resync), or the first such event
 * (a backfill; complete when that is the repo's first commit).  A frame
 * that does not verify or does not chain is never re-emitted.
 */
static RelayOutcome
historical(RelayRepo *st, const char *shard, int64 seq, const Frame *f, const uint8 *raw, size_t len)
{
	char		vmsg[512];

	if (f->kind == FRAME_COMMIT || f->kind == FRAME_SYNC)
	{
		VerifiedCommit vc;
		VerifyResult r = verify_signed(st, shard, f, &vc, vmsg, sizeof(vmsg), true, NULL);
		const char *rev = f->kind == FRAME_COMMIT ? f->commit.rev : f->sync.rev;
		size_t		rev_len = f->kind == FRAME_COMMIT ? f->commit.rev_len : f->sync.rev_len;

		if (r == VERIFY_OK && f->kind == FRAME_COMMIT && st->hist_rev != NULL)
		{
			const FrameCommit *c = &f->commit;

			if (!(same_text(st->hist_rev, c->since, c->since_len) && c->has_prev_data &&
				  memcmp(st->hist_data, c->prev_data, CID_LEN) == 0))
			{
				snprintf(vmsg, sizeof(vmsg), "since %.*s does not follow rev %s",
						 c->since ? (int) c->since_len : 4, c->since ? c->since : "null", st->hist_rev);
				car_index_free(&vc.idx);
				r = VERIFY_PREV_DATA_MISMATCH;
			}
		}
		if (r != VERIFY_OK)
		{
			ereport(WARNING,
					(errmsg("relay: event seq " INT64_FORMAT " of shard %s (repo %s) does not verify, not relayed: %s",
							seq, shard, st->did, vmsg)));
			shard_stats(shard)->rejected++;
			return RELAY_REJECTED;
		}
		if (st->hist_rev == NULL)
			st->hist_complete = f->kind == FRAME_COMMIT && f->commit.since == NULL && !f->commit.has_prev_data;
		st->hist_rev = MemoryContextStrdup(relay.cxt, pnstrdup(rev, rev_len));
		memcpy(st->hist_data, vc.data, CID_LEN);
		car_index_free(&vc.idx);
	}
	rs_relay_queue(st, f->kind == FRAME_COMMIT ? "commit" : f->kind == FRAME_SYNC ? "sync" : "account", raw, len);
	shard_stats(shard)->events++;
	return RELAY_HISTORICAL;
}

/* historical() for a frame given as bytes (a resync's catch-up). */
RelayOutcome
rs_relay_historical(RelayRepo *st, const char *shard, int64 seq, const uint8 *raw, size_t len)
{
	Frame		f;
	char		msg[512];
	RelayOutcome out;
	size_t		did_len;
	const char *did;

	if (frame_decode(raw, len, &f, msg, sizeof(msg)) != FRAME_OK)
		return RELAY_REJECTED;
	did = frame_did(&f, &did_len);
	if (frame_check_lexicon(&f, msg, sizeof(msg)) != FRAME_OK || !same_text(st->did, did, did_len))
		out = RELAY_REJECTED;
	else
		out = historical(st, shard, seq, &f, raw, len);
	frame_free(&f);
	return out;
}

/*
 * The #sync that announces a state taken from an export, unless the
 * verified chain of events already re-emitted leads from a known start to
 * exactly that state (then consumers have it in full).
 */
void
rs_relay_announce(RelayRepo *st)
{
	if (!(st->hist_complete && st->hist_rev != NULL && st->rev != NULL &&
		  strcmp(st->hist_rev, st->rev) == 0 && st->has_data &&
		  memcmp(st->hist_data, st->data, CID_LEN) == 0))
		rs_relay_queue_sync(st);
	st->hist_rev = NULL;
	st->hist_complete = false;
	st->dirty = true;
}

/* A backfill's #sync goes out before the repo's first event past the export. */
static void
emit_pending_sync(RelayRepo *st)
{
	if (!st->sync_pending)
		return;
	rs_relay_announce(st);
	st->sync_pending = false;
}


/*
 * Whether an event of the repo's host at shard seq `seq` goes on to the
 * checks: a desynchronized repo tries one resync first and is rejected if
 * still out of sync; a seq already applied is a duplicate.  Else a pending
 * #sync of a backfill goes out first, and true.
 */
static bool
admit(RelayRepo *st, const char *shard, int64 seq, RelayOutcome *outcome)
{
	if (st->desync && !st->resync_tried)
		(void) rs_relay_try_resync(st, st->shard, st->desync_reason);
	if (st->desync)
	{
		shard_stats(shard)->rejected++;
		*outcome = RELAY_REJECTED;
		return false;
	}
	if (seq <= st->shard_seq)
	{
		shard_stats(shard)->duplicates++;
		*outcome = RELAY_DUPLICATE;
		return false;
	}
	emit_pending_sync(st);
	return true;
}

/*
 * The repo's events in the shard's log after the last one the relay
 * applied, applied now as if they had arrived (a move overtook them: the
 * new host's #sync came first).  Later arrivals of the same events are
 * dropped by the host check.  Nothing if the shard cannot be asked.
 */
static void
catch_up(RelayRepo *st, const char *shard)
{
	int64	   *seqs;
	bytea	  **frames;
	int			n = rs_relay_try_fetch_events(st, shard, st->shard_seq, PG_INT64_MAX, &seqs, &frames);

	for (int i = 0; i < n; i++)
		if (seqs[i] > 0)
			(void) relay_ingest(shard, seqs[i], (const uint8 *) VARDATA_ANY(frames[i]),
								VARSIZE_ANY_EXHDR(frames[i]), 0);
}

/* The relay's shards other than these two (either may be NULL). */
static List *
other_shards(const char *a, const char *b)
{
	RsOwnerContext oc;
	List	   *others = NIL;
	MemoryContext cxt = CurrentMemoryContext;

	rs_enter_owner(&oc);
	SPI_execute("SELECT name FROM repo_stream.relay_shards ORDER BY name", true, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		char	   *name = TextDatumGetCString(rs_getdatum(i, 1, &(bool){false}));

		if ((a == NULL || strcmp(name, a) != 0) && (b == NULL || strcmp(name, b) != 0))
			others = lappend(others, name);
		MemoryContextSwitchTo(old);
	}
	rs_leave_owner(&oc);
	return others;
}

/*
 * Whether shard `other` took the repo over in a move: the repo is active
 * there, and its first event there after its last deletion there (a move
 * back) is a #sync that verifies with other's keys and carries the MST
 * root the relay holds (a move carries the tree over).  *from gets the seq
 * before that #sync.  Nothing is taken from other here.
 */
static bool
move_target(RelayRepo *st, const char *other, int64 *from)
{
	char	   *status = rs_relay_try_remote_status(other, st->did);
	int64	   *seqs;
	bytea	  **frames;
	int			n;
	int			first = 0;
	bool		ok = false;

	if (status == NULL || strcmp(status, "active") != 0)
		return false;
	n = rs_relay_try_fetch_events(st, other, 0, PG_INT64_MAX, &seqs, &frames);
	for (int pass = 0; pass < 2; pass++)
		for (int i = first; i < n; i++)
		{
			Frame		f;
			char		msg[512];
			size_t		did_len;
			const char *did;

			if (seqs[i] == 0)
				continue;
			if (frame_decode((const uint8 *) VARDATA_ANY(frames[i]), VARSIZE_ANY_EXHDR(frames[i]),
							 &f, msg, sizeof(msg)) != FRAME_OK)
				continue;
			did = frame_did(&f, &did_len);
			if (did == NULL || !same_text(st->did, did, did_len) ||
				frame_check_lexicon(&f, msg, sizeof(msg)) != FRAME_OK)
			{
				frame_free(&f);
				continue;
			}
			if (pass == 0)
			{
				/* the start of its current tenure: after its last deletion of the repo */
				if (f.kind == FRAME_ACCOUNT && !f.account.active &&
					same_text("deleted", f.account.status, f.account.status_len))
					first = i + 1;
				frame_free(&f);
				continue;
			}
			if (f.kind == FRAME_SYNC)
			{
				VerifiedCommit vc;
				VerifyResult r = verify_signed(st, other, &f, &vc, msg, sizeof(msg), false, NULL);

				if (r == VERIFY_OK)
				{
					ok = !st->has_data || memcmp(vc.data, st->data, CID_LEN) == 0;
					car_index_free(&vc.idx);
				}
				if (!ok)
					ereport(WARNING,
							(errmsg("relay: shard %s holds %s, but its #sync (seq " INT64_FORMAT ") %s: not a move",
									other, st->did, seqs[i],
									r != VERIFY_OK ? "does not verify" : "carries another MST root than the relay's")));
				*from = seqs[i] - 1;
			}
			frame_free(&f);
			goto done;			/* only the first event counts */
		}
done:
	return ok;
}

/*
 * The repo's host deleted it: if exactly one other shard took it over in a
 * move (move_target; a pending claim is asked first), that shard becomes
 * the host and its events from the move on are applied now (its seqs
 * start over).  true if so; false when no shard did, or when several
 * claim it (then none is followed: WARNING).
 */
static bool
release(RelayRepo *st, const char *host)
{
	List	   *candidates = other_shards(host, st->claim_shard);
	ListCell   *lc;
	char	   *target = NULL;
	int64		target_from = 0;
	int			found = 0;
	StringInfoData names;

	if (st->claim_shard != NULL && strcmp(st->claim_shard, host) != 0)
		candidates = lcons(pstrdup(st->claim_shard), candidates);
	initStringInfo(&names);
	foreach(lc, candidates)
	{
		char	   *other = lfirst(lc);
		int64		from = 0;

		if (!move_target(st, other, &from))
			continue;
		found++;
		appendStringInfo(&names, "%s%s", names.len ? ", " : "", other);
		target = other;
		target_from = from;
	}
	if (found > 1)
		ereport(WARNING,
				(errmsg("relay: repo %s was deleted by its host %s and shards %s each hold it: none is followed",
						st->did, host, names.data),
				 errhint("Delete the copies that are not the repo's, then the next #sync of the one left hands it over.")));
	if (found != 1)
		return false;
	ereport(LOG,
			(errmsg("relay: repo %s moved from shard %s to shard %s", st->did, host, target)));
	st->shard = MemoryContextStrdup(relay.cxt, target);
	st->shard_seq = target_from;
	st->host_rev = NULL;
	st->claim_shard = NULL;
	st->claim_seq = 0;
	st->dirty = true;
	catch_up(st, target);
	return true;
}

/*
 * An event of a repo from a shard that is not its host.  Only a move
 * changes the host, and only the host's deletion of the repo makes one: a
 * #sync of another shard is held as a claim (relay_repos.claim_shard), and
 * followed once the host has deleted the repo (release); a deactivation is
 * not a move.  Everything else from another shard is dropped.
 */
static RelayOutcome
from_other_shard(RelayRepo *st, const char *shard, int64 seq, const Frame *f)
{
	char	   *there;

	if (f->kind == FRAME_SYNC)
	{
		if (st->claim_shard == NULL)
		{
			st->claim_shard = MemoryContextStrdup(relay.cxt, shard);
			st->claim_seq = seq;
			st->dirty = true;
		}
		else if (strcmp(st->claim_shard, shard) != 0)
			ereport(WARNING,
					(errmsg("relay: shard %s claims repo %s too, while shard %s's claim waits", shard, st->did,
							st->claim_shard)));
		/* the host may have let go already, its events not arrived yet */
		there = strcmp(st->status, "deleted") == 0 ? pstrdup("deleted")
			: rs_relay_try_remote_status(st->shard, st->did);
		if (there != NULL && strcmp(there, "deleted") == 0)
		{
			char	   *host = st->shard;

			/* what it logged before letting go, in its order, first (its deletion releases) */
			if (strcmp(st->status, "deleted") != 0)
				catch_up(st, host);
			if (strcmp(st->shard, host) == 0)
				(void) release(st, host);
			if (strcmp(st->shard, shard) == 0)
			{
				/* the claim's events, this one included, were applied by the hand-over */
				shard_stats(shard)->duplicates++;
				return RELAY_DUPLICATE;
			}
		}
		else
			ereport(LOG,
					(errmsg("relay: #sync of %s from shard %s held: its host %s has it %s", st->did, shard,
							st->shard, there ? there : "not at all")));
	}
	shard_stats(shard)->dropped++;
	return RELAY_DROPPED;
}

static RelayOutcome
ingest_commit(RelayRepo *st, const char *shard, int64 seq, const Frame *f, const uint8 *raw, size_t len)
{
	const FrameCommit *c = &f->commit;
	VerifiedCommit vc;
	char		vmsg[512];
	char		why[700];
	VerifyResult r;
	RelayOutcome outcome;
	RsOwnerContext oc;
	char	   *key = NULL;

	if (strcmp(st->status, "deleted") == 0)
	{
		shard_stats(shard)->rejected++;
		return RELAY_REJECTED;
	}
	if (!admit(st, shard, seq, &outcome))
		return outcome;
	if (replayed(st, shard, seq, c->rev, c->rev_len))
		return RELAY_REPLAYED;

	r = verify_signed(st, shard, f, &vc, vmsg, sizeof(vmsg), true, &key);
	if (r == VERIFY_OK)
	{
		bool		first = c->since == NULL && !c->has_prev_data;

		if (st->rev == NULL ? !first
			: !(same_text(st->rev, c->since, c->since_len) && c->has_prev_data && st->has_data &&
				memcmp(st->data, c->prev_data, CID_LEN) == 0))
		{
			char		prev_text[CID_TEXT_LEN + 1] = "none";

			if (st->has_data)
				cid_format(st->data, prev_text);
			snprintf(why, sizeof(why), "broken chain at rev %.*s: since %.*s, the relay holds rev %s (data %s)",
					 (int) c->rev_len, c->rev, c->since ? (int) c->since_len : 4, c->since ? c->since : "null",
					 st->rev ? st->rev : "none", prev_text);
			car_index_free(&vc.idx);
			r = VERIFY_PREV_DATA_MISMATCH;
		}
	}
	else
		snprintf(why, sizeof(why), "commit rev %.*s (shard seq " INT64_FORMAT ") does not verify: %s",
				 (int) c->rev_len, c->rev, seq, vmsg);
	if (r != VERIFY_OK)
	{
		rs_relay_mark_desync(st, shard, why);
		/* the export covers what the shard really committed; this frame is never relayed */
		(void) rs_relay_try_resync(st, shard, why);
		return RELAY_REJECTED;
	}

	rs_enter_owner(&oc);
	rs_suppress_ops = true;
	for (size_t i = 0; i < c->n_ops; i++)
		mirror_op(st->did, &c->ops[i], &vc.idx);
	rs_suppress_ops = false;
	rs_leave_owner(&oc);
	take_head(st, &vc, c->rev, c->rev_len);
	car_index_free(&vc.idx);
	st->did_key = key;
	if (st->host_rev == NULL)
		st->host_rev = st->rev;
	st->shard_seq = seq;
	rs_relay_queue(st, "commit", raw, len);
	shard_stats(shard)->events++;
	return RELAY_APPLIED;
}

static RelayOutcome
ingest_sync(RelayRepo *st, const char *shard, int64 seq, const Frame *f, const uint8 *raw, size_t len)
{
	const FrameSync *s = &f->sync;
	VerifiedCommit vc;
	char		vmsg[512];
	char		why[700];
	VerifyResult r;
	RelayOutcome outcome;
	char	   *key = NULL;

	if (!admit(st, shard, seq, &outcome))
		return outcome;
	if (replayed(st, shard, seq, s->rev, s->rev_len))
		return RELAY_REPLAYED;
	r = verify_signed(st, shard, f, &vc, vmsg, sizeof(vmsg), true, &key);
	if (r != VERIFY_OK)
	{
		snprintf(why, sizeof(why), "#sync rev %.*s (shard seq " INT64_FORMAT ") does not verify: %s",
				 (int) s->rev_len, s->rev, seq, vmsg);
		rs_relay_mark_desync(st, shard, why);
		(void) rs_relay_try_resync(st, shard, why);
		return RELAY_REJECTED;
	}
	st->shard_seq = seq;
	st->dirty = true;
	strlcpy(st->status, "active", RELAY_STATUS_LEN);	/* served by its host */
	if (st->has_data && memcmp(st->data, vc.data, CID_LEN) == 0)
	{
		/* same records: a key rotation, or a move that carried the tree over */
		take_head(st, &vc, s->rev, s->rev_len);
		car_index_free(&vc.idx);
		st->did_key = key;
		if (st->host_rev == NULL)
			st->host_rev = st->rev;
		rs_relay_queue(st, "sync", raw, len);
		shard_stats(shard)->events++;
		return RELAY_APPLIED;
	}
	car_index_free(&vc.idx);
	/* new records without ops: take them from a fresh export, which announces itself */
	snprintf(why, sizeof(why), "#sync rev %.*s replaces the repo's records", (int) s->rev_len, s->rev);
	st->resync_tried = false;
	if (!rs_relay_try_resync(st, shard, why))
		return RELAY_REJECTED;
	shard_stats(shard)->events++;
	return RELAY_APPLIED;
}

static RelayOutcome
ingest_account(RelayRepo *st, const char *shard, int64 seq, const Frame *f, const uint8 *raw, size_t len)
{
	const FrameAccount *a = &f->account;

	if (seq <= st->shard_seq)
	{
		shard_stats(shard)->duplicates++;
		return RELAY_DUPLICATE;
	}
	emit_pending_sync(st);
	if (!a->active && same_text("deleted", a->status, a->status_len))
	{
		/*
		 * The host let the repo go: a move, if another shard holds it (its
		 * #sync carrying the relay's state).  Then that shard is the host
		 * from now on and this deletion is not the repo's.
		 */
		if (release(st, shard))
		{
			shard_stats(shard)->dropped++;
			return RELAY_DROPPED;
		}
	}
	else if (st->claim_shard != NULL)
	{
		/* the host changed the repo's status again without letting it go */
		ereport(LOG,
				(errmsg("relay: claim of shard %s on %s dropped: its host %s has it %s", st->claim_shard,
						st->did, shard, a->active ? "active" : "deactivated")));
		st->claim_shard = NULL;
		st->claim_seq = 0;
	}
	if (a->active)
		strlcpy(st->status, "active", RELAY_STATUS_LEN);
	else if (same_text("deleted", a->status, a->status_len))
	{
		RsOwnerContext oc;
		Datum		arg = CStringGetTextDatum(st->did);
		Oid			type = TEXTOID;

		strlcpy(st->status, "deleted", RELAY_STATUS_LEN);
		rs_enter_owner(&oc);
		rs_suppress_ops = true;
		SPI_execute_with_args("DELETE FROM repo_stream.records WHERE did = $1", 1, &type, &arg, NULL, false, 0);
		rs_suppress_ops = false;
		rs_leave_owner(&oc);
		st->desync = false;
	}
	else
		strlcpy(st->status, "deactivated", RELAY_STATUS_LEN);
	st->shard_seq = seq;
	st->dirty = true;
	rs_relay_queue(st, "account", raw, len);
	shard_stats(shard)->events++;
	return RELAY_APPLIED;
}

/*
 * One event of a shard: seq is its seq there (the row's), frame its bytes.
 * Never an ERROR for what the shard sent (that is counted, logged and
 * dropped, or the repo desynchronized); ERRORs are the relay's own
 * failures, which roll the event back to be applied again.
 */
static RelayOutcome
relay_ingest(const char *shard, int64 seq, const uint8 *data, size_t len, TimestampTz logged_at)
{
	Frame		f;
	char		vmsg[512];
	FrameError	err;
	RelayRepo  *st;
	const char *did_p;
	size_t		did_len;
	char	   *did;
	ShardStats *stats;
	RelayOutcome out;

	stats = shard_stats(shard);
	stats->max_seq = Max(stats->max_seq, seq);
	if (logged_at != 0)
		stats->last_event_at = logged_at;

	err = frame_decode(data, len, &f, vmsg, sizeof(vmsg));
	if (err == FRAME_OK && (err = frame_check_lexicon(&f, vmsg, sizeof(vmsg))) != FRAME_OK)
		frame_free(&f);
	if (err != FRAME_OK)
	{
		ereport(WARNING,
				(errmsg("relay: event seq " INT64_FORMAT " of shard %s is not a valid frame, not relayed: %s",
						seq, shard, vmsg)));
		stats->rejected++;
		return RELAY_REJECTED;
	}
	did_p = frame_did(&f, &did_len);
	if (did_p == NULL || (f.kind != FRAME_COMMIT && f.kind != FRAME_SYNC && f.kind != FRAME_ACCOUNT))
	{
		frame_free(&f);
		return RELAY_IGNORED;
	}
	did = pnstrdup(did_p, did_len);
	rs_repo_lock(did);
	st = rs_relay_repo(did);
	ingest_depth++;

	if (st->local)
	{
		ereport(WARNING,
				(errmsg("relay: shard %s sent an event of %s, a repo of the relay itself; dropped", shard, did)));
		stats->dropped++;
		out = RELAY_DROPPED;
	}
	else if (!st->exists)
	{
		/* a repo new to the relay: its first commit, or its state from an export */
		if (f.kind == FRAME_ACCOUNT)
			out = RELAY_IGNORED;
		else
		{
			if (f.kind == FRAME_COMMIT && f.commit.since == NULL && !f.commit.has_prev_data)
			{
				if (rs_relay_try_fetch_keys(st, shard))
					out = ingest_commit(st, shard, seq, &f, data, len);
				else
				{
					stats->rejected++;
					out = RELAY_REJECTED;
				}
			}
			else
			{
				char		why[256];

				snprintf(why, sizeof(why), "first event seen (shard seq " INT64_FORMAT ") is not a first commit",
						 seq);
				if (rs_relay_try_resync(st, shard, why) && seq > st->shard_seq)
					out = f.kind == FRAME_COMMIT ? ingest_commit(st, shard, seq, &f, data, len)
						: ingest_sync(st, shard, seq, &f, data, len);
				else if (st->exists)
				{
					stats->duplicates++;
					out = RELAY_DUPLICATE;	/* the export reflects it */
				}
				else
				{
					stats->rejected++;
					out = RELAY_REJECTED;
				}
			}
		}
	}
	else if (st->sync_pending && seq <= st->sync_pending_seq && strcmp(st->shard, shard) == 0)
		out = historical(st, shard, seq, &f, data, len);
	else if (strcmp(st->shard, shard) != 0)
		out = from_other_shard(st, shard, seq, &f);
	else if (f.kind == FRAME_COMMIT)
		out = ingest_commit(st, shard, seq, &f, data, len);
	else if (f.kind == FRAME_SYNC)
		out = ingest_sync(st, shard, seq, &f, data, len);
	else
		out = ingest_account(st, shard, seq, &f, data, len);
	ingest_depth--;
	frame_free(&f);

	if (relay.cxt != NULL && ingest_depth == 0 &&
		(relay.n_queue >= RELAY_FLUSH_EVENTS || relay.queue_bytes >= RELAY_FLUSH_BYTES))
		relay_flush();
	return out;
}

/* ---------------------------------------------------------------- SQL */

/* The shard a relay subscription (rs_relay_<name>) replicates; cached per backend. */
static char *
subscription_shard(const char *subname)
{
	static char *cached_sub = NULL;
	static char *cached_shard = NULL;
	RsOwnerContext oc;
	Datum		arg;
	Oid			type = NAMEOID;
	char	   *shard;

	if (cached_sub != NULL && strcmp(cached_sub, subname) == 0)
		return cached_shard;
	rs_enter_owner(&oc);
	arg = CStringGetDatum(subname);
	SPI_execute_with_args("SELECT name FROM repo_stream.relay_shards WHERE subscription = $1",
						  1, &type, &arg, NULL, true, 1);
	shard = SPI_processed == 1 ? rs_gettext(0, 1) : NULL;
	rs_leave_owner(&oc);
	if (shard == NULL)
		return NULL;
	cached_sub = MemoryContextStrdup(TopMemoryContext, subname);
	cached_shard = MemoryContextStrdup(TopMemoryContext, shard);
	return cached_shard;
}

/*
 * relay_event_trigger() - BEFORE INSERT ROW on event_log, ENABLE REPLICA.
 * In an apply worker of one of the relay's subscriptions: the shard's row
 * is ingested and not stored (NULL).  Anywhere else (a restore with
 * session_replication_role = replica, another subscription): the row is
 * stored as given.
 */
Datum
rs_relay_event_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tup;
	char	   *shard;
	bool		isnull;
	int64		seq;
	bytea	   *frame;
	TimestampTz logged_at;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("relay_event_trigger() may only be called as a row trigger on insert")));
	tup = td->tg_trigtuple;
	if (MyLogicalRepWorker == NULL || MySubscription == NULL ||
		strncmp(MySubscription->name, RELAY_SUB_PREFIX, strlen(RELAY_SUB_PREFIX)) != 0 ||
		(shard = subscription_shard(MySubscription->name)) == NULL)
		return PointerGetDatum(tup);

	desc = td->tg_relation->rd_att;
	/* event_log (seq, segment, did, kind, logged_at, frame) */
	seq = DatumGetInt64(heap_getattr(tup, 1, desc, &isnull));
	logged_at = DatumGetTimestampTz(heap_getattr(tup, 5, desc, &isnull));
	if (isnull)
		logged_at = 0;
	frame = DatumGetByteaPP(heap_getattr(tup, 6, desc, &isnull));
	(void) relay_ingest(shard, seq, (const uint8 *) VARDATA_ANY(frame), VARSIZE_ANY_EXHDR(frame), logged_at);
	return PointerGetDatum(NULL);
}

/*
 * _relay_ingest(shard text, seq bigint, frame bytea) RETURNS text
 *
 * What the trigger does with one event, for relay_add_shard's backfill of
 * the retained window.  Returns applied, historical (at or below the
 * export the backfill started from: verified and re-emitted), duplicate,
 * dropped (a shard that does not host the repo), rejected (not a frame, or
 * it does not verify: logged, never relayed) or ignored (kinds the relay
 * does not carry).  42704 for an unknown shard.
 */
Datum
rs_relay_ingest(PG_FUNCTION_ARGS)
{
	char	   *shard = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		seq = PG_GETARG_INT64(1);
	bytea	   *frame = PG_GETARG_BYTEA_PP(2);
	RelayOutcome out;

	out = relay_ingest(shard, seq, (const uint8 *) VARDATA_ANY(frame), VARSIZE_ANY_EXHDR(frame), 0);
	PG_RETURN_TEXT_P(cstring_to_text(outcome_names[out]));
}

/*
 * _relay_finish_backfill(shard text) RETURNS int
 *
 * The #sync of every repo of the shard whose backfill export has not been
 * announced yet (no event past it in the window), in DID order; returns
 * how many.
 */
Datum
rs_relay_finish_backfill(PG_FUNCTION_ARGS)
{
	char	   *shard = text_to_cstring(PG_GETARG_TEXT_PP(0));
	RsOwnerContext oc;
	Datum		arg = CStringGetTextDatum(shard);
	Oid			type = TEXTOID;
	char	  **dids;
	uint64		n;
	MemoryContext cxt = CurrentMemoryContext;

	relay_flush();				/* the states, with their pending marks, into relay_repos */
	rs_enter_owner(&oc);
	SPI_execute_with_args("SELECT did FROM repo_stream.relay_repos WHERE shard = $1 AND sync_pending_seq IS NOT NULL"
						  " ORDER BY did", 1, &type, &arg, NULL, false, 0);
	n = SPI_processed;
	dids = MemoryContextAlloc(cxt, sizeof(char *) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		dids[i] = TextDatumGetCString(rs_getdatum(i, 1, &(bool){false}));
		MemoryContextSwitchTo(old);
	}
	rs_leave_owner(&oc);
	for (uint64 i = 0; i < n; i++)
	{
		RelayRepo  *st;

		rs_repo_lock(dids[i]);
		st = rs_relay_repo(dids[i]);
		emit_pending_sync(st);
	}
	relay_flush();
	PG_RETURN_INT32((int32) n);
}

/*
 * relay_resync(did text DEFAULT NULL) RETURNS int
 *
 * Sync a mirrored repo again from a fresh export of the shard hosting it
 * (NULL: every desynchronized repo), announcing it with a #sync if the
 * state changed; returns how many were synced.  The source is always the
 * host, through the relay's own connection: the caller chooses nothing.  A
 * repo in sync whose resync fails (the shard unreachable, its answer not
 * fitting what the relay verified) stays as it was.  42704 for a DID the
 * relay does not mirror.
 */
Datum
rs_relay_resync(PG_FUNCTION_ARGS)
{
	List	   *dids = NIL;
	ListCell   *lc;
	int			ok = 0;

	if (!PG_ARGISNULL(0))
		dids = list_make1(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	else
	{
		RsOwnerContext oc;
		MemoryContext cxt = CurrentMemoryContext;

		rs_enter_owner(&oc);
		SPI_execute("SELECT did FROM repo_stream.relay_repos WHERE desynchronized ORDER BY did", true, 0);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			dids = lappend(dids, rs_gettext(i, 1));
			MemoryContextSwitchTo(old);
		}
		rs_leave_owner(&oc);
	}
	foreach(lc, dids)
	{
		char	   *did = lfirst(lc);
		RelayRepo  *st;
		bool		was_desync;

		rs_repo_lock(did);
		st = rs_relay_repo(did);
		if (!st->exists)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("repo \"%s\" is not mirrored by this relay", did)));
		st->resync_tried = false;
		was_desync = st->desync;
		if (rs_relay_try_resync(st, st->shard, st->desync ? st->desync_reason : "relay_resync()"))
			ok++;
		else if (!was_desync && st->desync)
		{
			/* a repo in sync keeps its verified state when a resync fails */
			st->desync = false;
			st->desync_reason = NULL;
			st->desync_changed = false;
			st->dirty = true;
		}
	}
	relay_flush();
	PG_RETURN_INT32(ok);
}
