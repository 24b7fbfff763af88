/*
 * eventlog_sql.c - the bounded event log and its cursor API.
 *
 * No gaps: a writer takes the sequencing lock in SHARE mode before it draws
 * its seqs (nextval) and keeps it until its transaction has ended, i.e.
 * after its commit is visible.  The lock is a lock tag of our own, which no
 * SQL function can name (so no role can take it to stall commits), and it
 * is transaction-scoped (so an error or a cancel always releases it).  A reader takes the same lock in EXCLUSIVE
 * mode for an instant: once it has it, no writer is between nextval and the
 * end of its transaction, so every seq up to the sequence's last value
 * belongs to a transaction that is over.  The reader reads that last value
 * (the horizon), releases the lock, and only then takes its snapshot: every
 * committed seq up to the horizon is visible to it, and it never returns a
 * seq above the horizon.  A later transaction can only take a higher seq.
 * Writers never wait for each other; a reader waits at most for commits
 * already in flight.
 *
 * Bounded: the log is a ring of EVENT_SEGMENTS partitions.  When the
 * current segment has its share of the retention budget (by count or by
 * age), the oldest segment is TRUNCATEd and becomes current.  TRUNCATE
 * leaves no dead tuples, so the on-disk size stays bounded.  log_state
 * remembers the highest pruned seq; readers never return seqs at or below
 * it, so the window is always a contiguous range.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/detoast.h"
#include "executor/tuptable.h"
#include "utils/array.h"
#include "utils/rel.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "eventlog_sql.h"
#include "frame.h"
#include "args_sql.h"
#include "spi_sql.h"
#include "store_sql.h"
#include "syntax.h"
#include "notify_sql.h"

#define EVENT_SEGMENTS RS_EVENT_SEGMENTS
#define SEQ_LOCK_KEY INT64CONST(0x52535f5345510001)	/* "RS_SEQ" */
/* pg_advisory_* locks use field4 1 and 2: SQL cannot make this tag */
#define SEQ_LOCK_FIELD4 0x5253	/* "RS" */
#define ERRCODE_FUTURE_CURSOR MAKE_SQLSTATE('R','S','0','0','1')

static int	retention_events = 1000000;
static int	retention_age_s = 7 * 24 * 3600;

PG_FUNCTION_INFO_V1(rs_events_since);
PG_FUNCTION_INFO_V1(rs_prune_events);
PG_FUNCTION_INFO_V1(rs_log_status);

void
rs_eventlog_define_gucs(void)
{
	DefineCustomIntVariable("repo_stream.retention_events",
							"Events the log keeps at least; older ones are pruned (0: no count limit).",
							"The log keeps between this many and 8/7 of this many events.",
							&retention_events, 1000000, 0, INT_MAX,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("repo_stream.retention_age",
							"Age after which events are pruned (0: no age limit).",
							NULL,
							&retention_age_s, 7 * 24 * 3600, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
}

static void
seq_lock_tag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (SEQ_LOCK_KEY >> 32),
						 (uint32) SEQ_LOCK_KEY, SEQ_LOCK_FIELD4);
}

static int64
segment_capacity(void)
{
	return retention_events > 0
		? ((int64) retention_events + EVENT_SEGMENTS - 2) / (EVENT_SEGMENTS - 1)
		: PG_INT64_MAX;
}

/* Has the current segment had its share, by count or by age? */
static bool
segment_due(int64 events_in_segment, int64 age_s)
{
	return events_in_segment >= segment_capacity() ||
		(retention_age_s > 0 && age_s >= retention_age_s / (EVENT_SEGMENTS - 1));
}

static Oid
segment_oid(int segment)
{
	char		name[NAMEDATALEN];

	snprintf(name, sizeof(name), "event_log_%d", segment);
	return rs_relation_oid(name);
}

/*
 * Take the right to change log_state without waiting: false when another
 * transaction is rotating or pruning, or left such a change uncommitted
 * (an admin's open transaction).  Pre-commit must never wait on another
 * transaction, so the caller skips and the ring rotates later.  Makes the
 * log_state row on first use (see the install script for why it is lazy).
 * Runs inside rs_enter_owner.
 */
static bool
log_state_lock(void)
{
	if (!ConditionalLockRelationOid(rs_relation_oid("log_state"), ShareRowExclusiveLock))
		return false;
	/* with that lock held, no one else has an uncommitted log_state row */
	SPI_execute("INSERT INTO repo_stream.log_state DEFAULT VALUES ON CONFLICT DO NOTHING", false, 0);
	return true;
}

/*
 * If the current segment is due (full, or old), truncate the oldest segment
 * and make it current.  The check is made again on the locked log_state row,
 * because a writer that saw the old state may arrive right after another
 * rotated.  Skips (returns false), never waiting, when someone else is
 * rotating, or still uses the oldest segment (a straggling writer or a
 * reader).  Runs inside rs_enter_owner.
 */
static bool
rotate_segments(void)
{
	int			current,
				next;
	int64		start,
				age,
				newest,
				pruned;
	Oid			next_oid;
	char		sql[512];
	bool		isnull;

	if (!log_state_lock())
		return false;
	if (SPI_execute("SELECT current_segment, segment_start[current_segment + 1],"
					"       extract(epoch FROM now() - segment_started_at[current_segment + 1])::int8,"
					"       (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM repo_stream.event_seq)"
					"  FROM repo_stream.log_state FOR UPDATE SKIP LOCKED",
					false, 0) != SPI_OK_SELECT || SPI_processed == 0)
		return false;
	current = DatumGetInt32(rs_getdatum(0, 1, &isnull));
	start = DatumGetInt64(rs_getdatum(0, 2, &isnull));
	age = DatumGetInt64(rs_getdatum(0, 3, &isnull));
	newest = DatumGetInt64(rs_getdatum(0, 4, &isnull));
	if (!segment_due(newest - start, age))
		return false;

	next = (current + 1) % EVENT_SEGMENTS;
	next_oid = segment_oid(next);
	if (!ConditionalLockRelationOid(next_oid, AccessExclusiveLock))
		return false;

	snprintf(sql, sizeof(sql), "SELECT max(seq) FROM repo_stream.event_log_%d", next);
	SPI_execute(sql, true, 0);
	pruned = DatumGetInt64(rs_getdatum(0, 1, &isnull));
	if (isnull)
		pruned = 0;
	snprintf(sql, sizeof(sql), "TRUNCATE repo_stream.event_log_%d", next);
	SPI_execute(sql, false, 0);
	snprintf(sql, sizeof(sql),
			 "UPDATE repo_stream.log_state SET current_segment = %d,"
			 " segment_start[%d] = " INT64_FORMAT ", segment_started_at[%d] = now(),"
			 " pruned_through = greatest(pruned_through, " INT64_FORMAT ")",
			 next, next + 1, newest, next + 1, pruned);
	SPI_execute(sql, false, 0);
	return true;
}

/* The log state, read once per appending transaction. */
static struct
{
	int			segment;
	int64		start;
	TimestampTz started_at;
	int64		pruned_through;
}			log_state;

/* The last seq this transaction appended, until its rotation check. */
static int64 last_appended = 0;

static int64
segment_age_s(TimestampTz started_at)
{
	return (GetCurrentTimestamp() - started_at) / USECS_PER_SEC;
}

/* log_state columns, in the order of src/sql/50_repo.sql */
#define LOG_STATE_CURRENT 2
#define LOG_STATE_START 3
#define LOG_STATE_STARTED_AT 4
#define LOG_STATE_PRUNED 5

/* Element i (0-based) of an 8-byte pass-by-value array column. */
static Datum
array_elem8(HeapTuple tup, TupleDesc desc, int att, int i)
{
	bool		isnull;
	ArrayType  *arr = DatumGetArrayTypeP(heap_getattr(tup, att, desc, &isnull));

	if (ARR_NDIM(arr) != 1 || ARR_HASNULL(arr) || i >= ARR_DIMS(arr)[0])
		elog(ERROR, "repo_stream.log_state is malformed");
	return ((Datum *) ARR_DATA_PTR(arr))[i];
}

/*
 * The log state, with snapshot.  No row yet (it is made lazily: see the
 * install script) reads as a fresh log.
 */
static void
log_state_read(Snapshot snapshot)
{
	Relation	rel = rs_rel_open(RS_REL_LOG_STATE, AccessShareLock);
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	HeapTuple	tup = heap_getnext(scan, ForwardScanDirection);

	log_state.segment = 0;
	log_state.start = 0;
	log_state.started_at = GetCurrentTransactionStartTimestamp();
	log_state.pruned_through = 0;
	if (tup != NULL)
	{
		TupleDesc	desc = RelationGetDescr(rel);
		bool		isnull;

		log_state.segment = DatumGetInt32(heap_getattr(tup, LOG_STATE_CURRENT, desc, &isnull));
		if (log_state.segment < 0 || log_state.segment >= EVENT_SEGMENTS)
			elog(ERROR, "repo_stream.log_state names segment %d", log_state.segment);
		log_state.start = DatumGetInt64(array_elem8(tup, desc, LOG_STATE_START, log_state.segment));
		log_state.started_at = DatumGetTimestampTz(array_elem8(tup, desc, LOG_STATE_STARTED_AT,
															   log_state.segment));
		log_state.pruned_through = DatumGetInt64(heap_getattr(tup, LOG_STATE_PRUNED, desc, &isnull));
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* Highest seq of one segment as snapshot sees it, or 0 (its seq index, backwards). */
static int64
segment_max_seq(int segment, Snapshot snapshot)
{
	Relation	rel = rs_rel_open(RS_REL_EVENT_LOG_0 + segment, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int64		seq = 0;
	bool		isnull;

	if (list_length(indexes) != 1)
		elog(ERROR, "event log segment %d has %d indexes, not its seq index", segment, list_length(indexes));
	index = index_open(linitial_oid(indexes), AccessShareLock);
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, index, snapshot, 0, 0);
	index_rescan(scan, NULL, 0, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
		seq = DatumGetInt64(slot_getattr(slot, 1, &isnull));
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	/* a read: nothing needs the lock afterwards, and a rotation might */
	table_close(rel, AccessShareLock);
	list_free(indexes);
	return seq;
}

/*
 * The highest seq the log holds, as far as snapshot sees: the current
 * segment's and the one before's (a rotation truncates the oldest, never
 * these two, and only they can hold seqs above the current segment's
 * start), the start and pruned_through.
 */
static int64
log_highest_seq(Snapshot snapshot)
{
	int			c = log_state.segment;
	int64		highest = Max(log_state.start, log_state.pruned_through);

	highest = Max(highest, segment_max_seq(c, snapshot));
	return Max(highest, segment_max_seq((c + EVENT_SEGMENTS - 1) % EVENT_SEGMENTS, snapshot));
}

void
rs_eventlog_append(const RsPendingEvent *events, int n, int64 *seqs)
{
	Oid			seq_oid = rs_rel_oid(RS_REL_EVENT_SEQ);
	int64		seq = 0;
	int64		highest;
	RsBuf		frame;
	LOCKTAG		tag;
	Snapshot	before;
	Relation	segment;
	Datum		values[6];
	bool		nulls[6] = {0};

	/* from here to the end of the transaction our seqs are "in flight" */
	seq_lock_tag(&tag);
	(void) LockAcquire(&tag, ShareLock, false, false);

	/*
	 * Before drawing a seq: what this snapshot sees was committed before, so
	 * its seqs are lower than ours unless the sequence went backwards.  (Read
	 * as late as this, a rotation that finished is seen and our events go to
	 * the current segment.)
	 */
	before = rs_fresh_snapshot();
	log_state_read(before);
	highest = log_highest_seq(before);
	UnregisterSnapshot(before);

	segment = rs_rel_open(RS_REL_EVENT_LOG_0 + log_state.segment, RowExclusiveLock);
	values[1] = Int32GetDatum(log_state.segment);
	values[4] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());	/* now() */
	rs_buf_init(&frame, 1024);
	for (int i = 0; i < n; i++)
	{
		bytea	   *b;

		seq = nextval_internal(seq_oid, false);
		if (i == 0 && seq <= highest)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("event seq " INT64_FORMAT " is not above the highest seq in the log, " INT64_FORMAT,
							seq, highest),
					 errdetail("The sequence repo_stream.event_seq was moved backwards (setval is not "
							   "rolled back with a transaction); appending would reuse or skip seqs "
							   "that consumers have seen."),
					 errhint("A superuser moves it forward with SELECT setval('repo_stream.event_seq', " INT64_FORMAT ").",
							 highest)));
		seqs[i] = seq;
		frame.len = 0;
		events[i].encode(events[i].payload, seq, &frame);
		b = rs_bytea(frame.data, frame.len);
		/* event_log (seq, segment, did, kind, logged_at, frame) */
		values[0] = Int64GetDatum(seq);
		values[2] = CStringGetTextDatum(events[i].did);
		values[3] = CStringGetTextDatum(events[i].kind);
		values[5] = PointerGetDatum(b);
		rs_rel_insert(segment, values, nulls);
		pfree(DatumGetPointer(values[2]));
		pfree(DatumGetPointer(values[3]));
		pfree(b);
	}
	table_close(segment, RowExclusiveLock);
	CommandCounterIncrement();
	rs_buf_free(&frame);
	last_appended = seq;

	rs_notify_events(seq);
}

void
rs_eventlog_rotate_if_due(void)
{
	/*
	 * Retention, amortized on the write path.  Last thing before COMMIT:
	 * writers that append meanwhile still see the old current segment, so
	 * the shorter the time to our commit, the fewer land in it late.
	 */
	if (last_appended > 0 &&
		segment_due(last_appended - log_state.start, segment_age_s(log_state.started_at)))
	{
		RsOwnerContext oc;

		rs_enter_owner(&oc);
		(void) rotate_segments();
		rs_leave_owner(&oc);
	}
	last_appended = 0;
}

int64
rs_seq_horizon(Snapshot *snapshot)
{
	int64		horizon;
	bool		isnull;
	LOCKTAG		tag;

	seq_lock_tag(&tag);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	rs_exec(PLAN_SEQ_HORIZON, NULL, NULL);
	horizon = DatumGetInt64(rs_getdatum(0, 1, &isnull));
	/* no writer is in flight: this snapshot sees exactly the seqs <= horizon */
	if (snapshot != NULL)
		*snapshot = RegisterSnapshot(GetLatestSnapshot());
	LockRelease(&tag, ExclusiveLock, false);
	return horizon;
}

void
rs_log_read_begin(RsLogRead *r)
{
	r->saved = CurrentResourceOwner;
	r->owner = ResourceOwnerCreate(CurrentResourceOwner, "repo_stream log read");
	CurrentResourceOwner = r->owner;
}

void
rs_log_read_end(RsLogRead *r)
{
	Assert(CurrentResourceOwner == r->owner);
	/*
	 * Everything but the locks must have been let go already (the leak
	 * warnings of a commit say otherwise); the locks go, except those the
	 * transaction held before the read, which stay with their owners.
	 */
	ResourceOwnerRelease(r->owner, RESOURCE_RELEASE_BEFORE_LOCKS, true, false);
	ResourceOwnerRelease(r->owner, RESOURCE_RELEASE_LOCKS, false, false);
	ResourceOwnerRelease(r->owner, RESOURCE_RELEASE_AFTER_LOCKS, true, false);
	CurrentResourceOwner = r->saved;
	ResourceOwnerDelete(r->owner);
}

/*
 * ERROR 22023 naming the element unless every element of a filter is a
 * valid DID (repos) or an event kind (kinds): the output plugin's rules.
 */
static void
check_filter(ArrayType *arr, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	bool		repos = strcmp(what, "repos") == 0;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *v;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
		v = TextDatumGetCString(elems[i]);
		if (repos ? !did_valid(v, strlen(v))
			: (strcmp(v, "commit") != 0 && strcmp(v, "account") != 0 && strcmp(v, "sync") != 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg(repos ? "invalid DID in repos: \"%s\"" : "invalid event kind in kinds: \"%s\"", v),
					 repos ? 0 : errhint("Event kinds are commit, account and sync.")));
	}
}

static Datum
info_frame(const char *name, const char *message)
{
	RsBuf		buf;
	bytea	   *b;
	FrameInfo	info = {0};

	info.name = name;
	info.name_len = strlen(name);
	info.message = message;
	info.message_len = strlen(message);
	rs_buf_init(&buf, 128);
	frame_encode_info(&info, &buf);
	b = rs_bytea(buf.data, buf.len);
	rs_buf_free(&buf);
	return PointerGetDatum(b);
}

Datum
rs_events_since(PG_FUNCTION_ARGS)
{
	int64		cursor;
	int32		max_events;
	Datum		filters[2];
	char		nulls_filters[2];
	Oid			filter_types[2] = {TEXTARRAYOID, TEXTARRAYOID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RsOwnerContext oc;
	int64		horizon,
				pruned,
				newest,
				highest;
	Snapshot	snapshot;
	bool		isnull;
	char		sql[512];
	MemoryContext per_query;
	RsLogRead	read;

	rs_arg_required(fcinfo, 0, "cursor");
	rs_arg_required(fcinfo, 1, "max_events");
	cursor = PG_GETARG_INT64(0);
	max_events = PG_GETARG_INT32(1);
	if (max_events <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must be positive, not %d", max_events)));
	/* repos and kinds filter like the output plugin's options; NULL: all */
	for (int i = 0; i < 2; i++)
	{
		nulls_filters[i] = PG_ARGISNULL(2 + i) ? 'n' : ' ';
		filters[i] = nulls_filters[i] == 'n' ? (Datum) 0 : PG_GETARG_DATUM(2 + i);
	}
	if (!PG_ARGISNULL(2))
		check_filter(PG_GETARG_ARRAYTYPE_P(2), "repos");
	if (!PG_ARGISNULL(3))
		check_filter(PG_GETARG_ARRAYTYPE_P(3), "kinds");
	if (cursor < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cursor must not be negative, not " INT64_FORMAT, cursor)));

	InitMaterializedSRF(fcinfo, 0);
	per_query = rsinfo->econtext->ecxt_per_query_memory;

	rs_enter_owner(&oc);
	/*
	 * A snapshot taken with the horizon sees every seq up to it and none
	 * above, unless the sequence went backwards.
	 */
	horizon = rs_seq_horizon(&snapshot);
	PushActiveSnapshot(snapshot);
	/* the segments stay locked for this call only: see rs_log_read_begin */
	rs_log_read_begin(&read);
	snprintf(sql, sizeof(sql),
			 "SELECT coalesce(s.pruned_through, 0),"
			 "       (SELECT max(seq) FROM repo_stream.event_log WHERE seq <= " INT64_FORMAT "),"
			 "       (SELECT max(seq) FROM repo_stream.event_log)"
			 "  FROM (SELECT) AS one LEFT JOIN repo_stream.log_state s ON true", horizon);
	SPI_execute(sql, true, 0);
	pruned = DatumGetInt64(rs_getdatum(0, 1, &isnull));
	highest = DatumGetInt64(rs_getdatum(0, 3, &isnull));
	/* our snapshot sees no seq above the horizon, unless seqs were reused */
	if (!isnull && highest > horizon)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the event sequence is behind the log: it stands at " INT64_FORMAT ", the log holds seq " INT64_FORMAT,
						horizon, highest),
				 errdetail("repo_stream.event_seq was moved backwards (setval is not rolled back with a "
						   "transaction); no read can tell which events are complete."),
				 errhint("A superuser moves it forward with SELECT setval('repo_stream.event_seq', " INT64_FORMAT ").",
						 highest)));
	newest = DatumGetInt64(rs_getdatum(0, 2, &isnull));
	if (isnull)
		newest = 0;

	/*
	 * Pruning TRUNCATEs segments, which no snapshot hides: a prune that
	 * committed after our snapshot, before the statement above locked the
	 * segments, left them empty while our snapshot still shows the old
	 * pruned_through.  The segment locks we now hold keep later prunes out,
	 * so a fresh read of pruned_through is final.
	 */
	PushActiveSnapshot(GetLatestSnapshot());
	SPI_execute("SELECT coalesce(max(pruned_through), 0) FROM repo_stream.log_state", true, 0);
	pruned = Max(pruned, DatumGetInt64(rs_getdatum(0, 1, &isnull)));
	PopActiveSnapshot();
	if (newest < pruned)
		newest = pruned;

	if (cursor > newest)
		ereport(ERROR,
				(errcode(ERRCODE_FUTURE_CURSOR),
				 errmsg("FutureCursor: cursor " INT64_FORMAT " is past the newest event " INT64_FORMAT,
						cursor, newest),
				 errhint("Cursors come from the seq of an event this log returned.")));

	if (cursor < pruned)
	{
		Datum		values[4];
		bool		nulls[4] = {true, false, true, false};
		char		msg[128];
		MemoryContext old = MemoryContextSwitchTo(per_query);

		snprintf(msg, sizeof(msg), "cursor " INT64_FORMAT " is older than the window, which starts after " INT64_FORMAT,
				 cursor, pruned);
		values[1] = info_frame("OutdatedCursor", msg);
		values[3] = CStringGetTextDatum("info");
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
	}

	snprintf(sql, sizeof(sql),
			 "SELECT seq, frame, did, kind FROM repo_stream.event_log"
			 " WHERE seq > " INT64_FORMAT " AND seq <= " INT64_FORMAT
			 "   AND ($1 IS NULL OR did = ANY ($1)) AND ($2 IS NULL OR kind = ANY ($2))"
			 " ORDER BY seq LIMIT %d", Max(cursor, pruned), horizon, max_events);
	SPI_execute_with_args(sql, 2, filter_types, filters, nulls_filters, true, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		bool		fetched[4] = {false, false, false, false};
		MemoryContext old;

		for (int c = 0; c < 4; c++)
		{
			values[c] = rs_getdatum(i, c + 1, &isnull);
			/* no TOAST pointer into a segment a rotation may truncate once we let go */
			if (c > 0 && VARATT_IS_EXTERNAL(DatumGetPointer(values[c])))
			{
				values[c] = PointerGetDatum(detoast_external_attr((struct varlena *) DatumGetPointer(values[c])));
				fetched[c] = true;
			}
		}
		old = MemoryContextSwitchTo(per_query);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
		for (int c = 0; c < 4; c++)
			if (fetched[c])
				pfree(DatumGetPointer(values[c]));
	}
	rs_log_read_end(&read);
	PopActiveSnapshot();
	UnregisterSnapshot(snapshot);
	rs_leave_owner(&oc);
	return (Datum) 0;
}

/*
 * Apply the retention settings now: rotate if the current segment is due,
 * and truncate, oldest first, segments whose newest event is past the age
 * limit.  Returns the seq through which events are gone.
 *
 * Refused inside a transaction block: a TRUNCATEd segment stays locked
 * until the end of the transaction, and an admin's session left open
 * would stall every reader.  Never waits: when another transaction is
 * rotating, it does nothing (the NOTICE says so).
 */
Datum
rs_prune_events(PG_FUNCTION_ARGS)
{
	RsOwnerContext oc;
	int64		pruned;
	bool		isnull;
	int			current;

	PreventInTransactionBlock(true, "repo_stream.prune_events()");
	rs_enter_owner(&oc);
	(void) rotate_segments();
	rs_exec(PLAN_LOG_STATE, NULL, NULL);
	current = DatumGetInt32(rs_getdatum(0, 1, &isnull));

	if (retention_age_s > 0 && !log_state_lock())
		ereport(NOTICE,
				(errmsg("another transaction is rotating the event log; nothing was pruned by age"),
				 errhint("Run repo_stream.prune_events() again later.")));
	else if (retention_age_s > 0)
	{
		/* whole segments past the age limit, oldest first */
		for (int k = 1; k < EVENT_SEGMENTS; k++)
		{
			char		sql[256];
			int			seg = (current + k) % EVENT_SEGMENTS;
			int64		seg_newest;

			snprintf(sql, sizeof(sql),
					 "SELECT max(seq), max(logged_at) < now() - make_interval(secs => %d)"
					 "  FROM repo_stream.event_log_%d", retention_age_s, seg);
			SPI_execute(sql, true, 0);
			seg_newest = DatumGetInt64(rs_getdatum(0, 1, &isnull));
			if (isnull)
				continue;		/* empty */
			if (!DatumGetBool(rs_getdatum(0, 2, &isnull)))
				break;			/* this one and all newer are young enough */
			if (!ConditionalLockRelationOid(segment_oid(seg), AccessExclusiveLock))
				break;
			snprintf(sql, sizeof(sql), "TRUNCATE repo_stream.event_log_%d", seg);
			SPI_execute(sql, false, 0);
			snprintf(sql, sizeof(sql),
					 "UPDATE repo_stream.log_state SET pruned_through = greatest(pruned_through, " INT64_FORMAT ")",
					 seg_newest);
			SPI_execute(sql, false, 0);
		}
	}
	/* not read-only: see the UPDATEs above, not the snapshot of our caller */
	SPI_execute("SELECT coalesce(max(pruned_through), 0) FROM repo_stream.log_state", false, 0);
	pruned = DatumGetInt64(rs_getdatum(0, 1, &isnull));
	rs_leave_owner(&oc);
	PG_RETURN_INT64(pruned);
}

/*
 * _log_status() -> one row: the ring's state and, when its rotation is due
 * but cannot happen, who keeps it from happening (read by the log_status
 * view).  Rotation never waits (see rotate_segments): a session that keeps
 * the oldest segment locked (a plain SELECT on event_log, or view_status,
 * in a transaction left open) or holds an uncommitted change to log_state
 * postpones it, and the log grows past its cap meanwhile.  events_since
 * keeps no lock past its call, so it never shows here once it returned.
 */
Datum
rs_log_status(PG_FUNCTION_ARGS)
{
	RsOwnerContext oc;
	TupleDesc	desc;
	Datum		values[7];
	bool		nulls[7] = {0};
	bool		isnull;
	int			current;
	int64		pruned,
				start,
				age,
				newest;
	bool		due;
	Datum		args[3];
	Oid			types[3] = {OIDOID, OIDOID, BOOLOID};
	MemoryContext cxt = CurrentMemoryContext;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	rs_enter_owner(&oc);
	SPI_execute("SELECT coalesce(s.current_segment, 0), coalesce(s.pruned_through, 0),"
				"       coalesce(s.segment_start[s.current_segment + 1], 0),"
				"       coalesce(extract(epoch FROM now() - s.segment_started_at[s.current_segment + 1])::int8, 0),"
				"       (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM repo_stream.event_seq)"
				"  FROM (SELECT) AS one LEFT JOIN repo_stream.log_state s ON true", true, 0);
	current = DatumGetInt32(rs_getdatum(0, 1, &isnull));
	pruned = DatumGetInt64(rs_getdatum(0, 2, &isnull));
	start = DatumGetInt64(rs_getdatum(0, 3, &isnull));
	age = DatumGetInt64(rs_getdatum(0, 4, &isnull));
	newest = DatumGetInt64(rs_getdatum(0, 5, &isnull));
	due = segment_due(newest - start, age);

	values[0] = Int32GetDatum(current);
	values[1] = Int64GetDatum(pruned);
	values[2] = Int64GetDatum(newest);
	/* the most the ring holds while it keeps up: every segment at its share */
	if (retention_events > 0)
	{
		int64		cap = segment_capacity() * EVENT_SEGMENTS;

		values[3] = Int64GetDatum(cap);
		values[4] = Int64GetDatum(Max(0, newest - pruned - cap));
	}
	else
		nulls[3] = nulls[4] = true;
	values[5] = BoolGetDatum(due);

	/*
	 * What a due rotation cannot get: any lock on the segment it truncates,
	 * or a lock on log_state that conflicts with its SHARE ROW EXCLUSIVE.
	 */
	args[0] = ObjectIdGetDatum(segment_oid((current + 1) % EVENT_SEGMENTS));
	args[1] = ObjectIdGetDatum(rs_relation_oid("log_state"));
	args[2] = BoolGetDatum(due);
	SPI_execute_with_args("SELECT coalesce(array_agg(DISTINCT l.pid ORDER BY l.pid), '{}')"
						  "  FROM pg_catalog.pg_locks l"
						  " WHERE $3 AND l.granted AND l.pid IS NOT NULL"
						  "   AND l.database = (SELECT oid FROM pg_catalog.pg_database"
						  "                      WHERE datname = pg_catalog.current_database())"
						  "   AND (l.relation = $1 OR (l.relation = $2"
						  "        AND l.mode NOT IN ('AccessShareLock', 'RowShareLock')))",
						  3, types, args, NULL, true, 0);
	MemoryContextSwitchTo(cxt);
	values[6] = PointerGetDatum(PG_DETOAST_DATUM_COPY(rs_getdatum(0, 1, &isnull)));
	rs_leave_owner(&oc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
