/*
 * views_refresh_sql.c - the view engine: fill, refresh, rebuild and live
 * counts, all driven by the event log.
 *
 * Events are read by cursor, gaplessly: only seqs in (cursor, horizon],
 * where the horizon comes from rs_seq_horizon (every seq at or below it
 * belongs to a transaction that has ended).  Each #commit op of the view's
 * collection is applied in seq order; #account "deleted" drops the repo's
 * contribution; a #sync whose data root differs from the repo's previous
 * event replaces the repo's contribution with its current records (read
 * in one snapshot with repos.last_seq; its events up to that seq are then
 * skipped, as already reflected).
 *
 * Count views keep, per counted record, the key it was counted under (the
 * "memory", table repo_stream.view_memory_<id>, (h, did, rkey) -> key, see
 * views_store_sql.c): an update or delete carries only the previous CID,
 * so the old key comes from there.  Views grouped by $did need no memory
 * (the key is the repo).
 *
 * A count view's chunk of events is applied in four steps: decode the ops
 * and their new keys; look up the old keys of the paths the chunk updates
 * or deletes (an index probe of the memory each); simulate the ops in
 * order in memory (net count deltas per key, final key per path); write
 * the memory changes and the deltas through heap and index calls, sorted
 * in index order.  view_count_live runs the same steps read-only over the
 * events the view has not applied, under one snapshot.
 *
 * Reads of the records table use a snapshot that hides this transaction's
 * own uncommitted changes (curcid 0): those become events above the
 * horizon and are applied when they commit, never twice.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "cbor.h"
#include "cbor_sql.h"
#include "eventlog_sql.h"
#include "frame.h"
#include "sha256.h"
#include "spi_sql.h"
#include "store_sql.h"
#include "views_sql.h"

bool		rs_views_busy = false;

/* Ops decoded per chunk of a count view before it is applied (memory bound). */
#define CHUNK_MAX_ITEMS 50000
/* Rows per fetch when filling from the records table. */
#define FILL_FETCH 10000

/* ------------------------------------------------------------ plans */

typedef struct ViewPlan
{
	const char *sql;
	int			nargs;
	Oid			types[4];
	SPIPlanPtr	plan;
} ViewPlan;

enum
{
	VP_PRUNED,
	VP_SKIPS_LOAD,
	VP_SKIP_SAVE,
	VP_SKIPS_TRIM,
	VP_SKIPS_CLEAR,
	VP_CURSOR_SAVE,
	VP_REBUILT,
	VP_CURSOR_READ,
	VP_COUNT
};

static ViewPlan vplans[VP_COUNT] = {
	[VP_PRUNED] = {
		"SELECT coalesce(max(pruned_through), 0) FROM repo_stream.log_state",
		0, {0}
	},
	[VP_SKIPS_LOAD] = {
		"SELECT did, through_seq FROM repo_stream.view_skips WHERE view_id = $1 AND through_seq > $2",
		2, {INT4OID, INT8OID}
	},
	[VP_SKIP_SAVE] = {
		"INSERT INTO repo_stream.view_skips AS s (view_id, did, through_seq) VALUES ($1, $2, $3)"
		" ON CONFLICT (view_id, did) DO UPDATE SET through_seq = greatest(s.through_seq, excluded.through_seq)",
		3, {INT4OID, TEXTOID, INT8OID}
	},
	[VP_SKIPS_TRIM] = {
		"DELETE FROM repo_stream.view_skips WHERE view_id = $1 AND through_seq <= $2",
		2, {INT4OID, INT8OID}
	},
	[VP_SKIPS_CLEAR] = {
		"DELETE FROM repo_stream.view_skips WHERE view_id = $1",
		1, {INT4OID}
	},
	[VP_CURSOR_SAVE] = {
		"UPDATE repo_stream.views SET cursor = $2, last_refresh = now(),"
		" last_error = NULL, last_error_at = NULL WHERE id = $1",
		2, {INT4OID, INT8OID}
	},
	[VP_REBUILT] = {
		"UPDATE repo_stream.views SET cursor = $2, last_refresh = now(), rebuilds = rebuilds + $3,"
		" last_error = NULL, last_error_at = NULL WHERE id = $1",
		3, {INT4OID, INT8OID, INT4OID}
	},
	[VP_CURSOR_READ] = {
		"SELECT cursor FROM repo_stream.views WHERE id = $1",
		1, {INT4OID}
	},
};

/*
 * Run one of the plans above.  read_only: under the active snapshot (live
 * counts); otherwise with a fresh snapshot per statement (READ COMMITTED).
 */
static uint64
vexec(int id, Datum *args, const char *nulls, bool read_only)
{
	ViewPlan   *p = &vplans[id];
	int			rc;

	if (p->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(p->sql, p->nargs, p->types);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", p->sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		p->plan = plan;
	}
	rc = SPI_execute_plan(p->plan, args, nulls, read_only, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s", p->sql, SPI_result_code_string(rc));
	return SPI_processed;
}

/* A statement on the view's own tables, prepared per call (names differ). */
static SPIPlanPtr
prepare_fmt(int nargs, Oid *types, const char *fmt, ...) pg_attribute_printf(3, 4);

static SPIPlanPtr
prepare_fmt(int nargs, Oid *types, const char *fmt, ...)
{
	StringInfoData sql;
	va_list		ap;
	SPIPlanPtr	plan;

	initStringInfo(&sql);
	for (;;)
	{
		int			needed;

		va_start(ap, fmt);
		needed = appendStringInfoVA(&sql, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&sql, needed);
	}
	plan = SPI_prepare(sql.data, nargs, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql.data, SPI_result_code_string(SPI_result));
	return plan;
}

static uint64
run_plan(SPIPlanPtr plan, Datum *args, bool read_only)
{
	int			rc = SPI_execute_plan(plan, args, NULL, read_only, 0);

	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

static int64
pruned_through(Snapshot snap)
{
	bool		isnull;

	if (snap)
	{
		vexec(VP_PRUNED, NULL, NULL, true);	/* prepares the plan */
		if (SPI_execute_snapshot(vplans[VP_PRUNED].plan, NULL, NULL, snap,
								 InvalidSnapshot, true, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "reading log_state failed");
	}
	else
		vexec(VP_PRUNED, NULL, NULL, false);
	return DatumGetInt64(rs_getdatum(0, 1, &isnull));
}

/*
 * Push a copy of snap (a new latest snapshot if NULL) that does not see
 * this transaction's own changes, for reads of the records table.  Pop it
 * with PopActiveSnapshot.
 */
static void
push_records_snapshot(Snapshot snap)
{
	PushCopiedSnapshot(snap ? snap : GetLatestSnapshot());
	GetActiveSnapshot()->curcid = FirstCommandId;
}

/* ------------------------------------------------------------ hashing strings */

static uint32
strptr_hash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return hash_bytes((const unsigned char *) s, strlen(s));
}

static int
strptr_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* A hash keyed by a char * (first field of entry) that the caller fills in. */
static HTAB *
strptr_hash_create(const char *name, Size entrysize, MemoryContext ctx)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(char *);
	ctl.entrysize = entrysize;
	ctl.hash = strptr_hash;
	ctl.match = strptr_match;
	ctl.hcxt = ctx;
	return hash_create(name, 256, &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* Find or add the entry for s; a new entry's key is a copy of s in ctx. */
static void *
strptr_enter(HTAB *h, const char *s, MemoryContext ctx, bool *found)
{
	char	  **entry = hash_search(h, &s, HASH_ENTER, found);

	if (!*found)
		*entry = MemoryContextStrdup(ctx, s);
	return entry;
}

static void *
strptr_find(HTAB *h, const char *s)
{
	return hash_search(h, &s, HASH_FIND, NULL);
}

/* ------------------------------------------------------------ engine state */

/* Reads the log (below): every segment locked while it is open, never while user code runs. */
typedef struct EventReader EventReader;

/* A copy of repo did's newest #commit or #sync frame before seq, or NULL. */
static bytea *reader_prev_frame(EventReader *r, const char *did, int64 before);

/* A record path of a count view: the key it counts under as applied so far. */
typedef struct PathEntry
{
	char	   *pk;				/* hash key: did, '\1', rkey */
	size_t		did_len;
	char	   *key;			/* NULL: counted under no key */
	bool		known;			/* key and in_table are the truth */
	bool		in_table;		/* the memory table has a row for it */
	bool		dirty;
	uint32		mark;
	HeapTuple	row;			/* in_table: its memory row (t_self: where) */
} PathEntry;

typedef struct DeltaEntry
{
	char	   *key;
	int64		delta;
} DeltaEntry;

typedef struct SkipEntry
{
	char	   *did;
	int64		through;
	bool		is_new;
} SkipEntry;

typedef enum ViewItemKind
{
	ITEM_OP,
	ITEM_REPO_DELETED,
	ITEM_REPO_SYNC				/* a #sync that replaced the repo's records */
} ViewItemKind;

typedef struct ViewItem
{
	ViewItemKind	kind;
	int64		seq;
	char	   *did;
	char	   *path;			/* collection/rkey */
	char	   *rkey;			/* points into path */
	FrameAction action;
	char	   *key;			/* count views by path: the new key (NULL: none) */
	Jsonb	   *record;			/* handler views: the new record */
} ViewItem;

typedef struct Engine
{
	ViewDef    *v;
	bool		live;			/* read-only, under the active snapshot */
	Snapshot	snap;			/* live: the horizon's snapshot */
	int64		horizon;
	MemoryContext ctx;			/* the whole call */
	MemoryContext state_ctx;	/* paths and deltas: until flushed (all of a live count) */
	MemoryContext chunk_ctx;	/* one chunk (count views) or event (handlers) */
	HTAB	   *paths;			/* pk -> PathEntry (count views by path) */
	HTAB	   *deltas;			/* key -> DeltaEntry (count views) */
	HTAB	   *skips;			/* did -> SkipEntry */
	uint32		mark;
	size_t		coll_len;
	ViewTables	tables;			/* count views: the count table and memory */
	Snapshot	read_snap;		/* refresh: reads since the last flush (registered) */
	FmgrInfo	handler_fn;
	char	   *handler_name;	/* for messages (no catalog reads in error paths) */
	MemoryContext call_ctx;		/* handlers: one event's calls */
	bool		proc_verified;	/* the handler's pg_proc row below matched the record */
	TransactionId proc_xmin;
	ItemPointerData proc_tid;
	TimestampTz deadline;		/* refresh: stop at an event boundary after it (0: never) */
	ViewItem   *items;
	int			n_items,
				cap_items;
	int64	   *ev_seqs;		/* the seqs of the chunk's events, in order */
	int			n_evs;
} Engine;

/* Forget the paths and deltas (after they were written). */
static void
state_reset(Engine *e)
{
	MemoryContextReset(e->state_ctx);
	e->paths = e->v->memory_rel
		? strptr_hash_create("repo_stream view paths", sizeof(PathEntry), e->state_ctx) : NULL;
	e->deltas = e->v->is_count
		? strptr_hash_create("repo_stream view deltas", sizeof(DeltaEntry), e->state_ctx) : NULL;
}

static void
engine_init(Engine *e, ViewDef *v, bool live, Snapshot snap, int64 horizon)
{
	memset(e, 0, sizeof(*e));
	e->v = v;
	e->live = live;
	e->snap = snap;
	e->horizon = horizon;
	e->ctx = AllocSetContextCreate(CurrentMemoryContext, "repo_stream view", ALLOCSET_DEFAULT_SIZES);
	e->state_ctx = AllocSetContextCreate(e->ctx, "repo_stream view state", ALLOCSET_DEFAULT_SIZES);
	e->chunk_ctx = AllocSetContextCreate(e->ctx, "repo_stream view chunk", ALLOCSET_DEFAULT_SIZES);
	e->call_ctx = AllocSetContextCreate(e->ctx, "repo_stream view handler call", ALLOCSET_DEFAULT_SIZES);
	e->skips = strptr_hash_create("repo_stream view skips", sizeof(SkipEntry), e->ctx);
	e->coll_len = v->collection ? strlen(v->collection) : 0;
	state_reset(e);
	if (v->is_count)
	{
		if (v->count_rel == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("the count table of view \"%s\" is missing", v->name),
					 errhint("Drop the view with repo_stream.drop_view and create it again.")));
		rs_view_tables_open(&e->tables, v, !live);
	}
	if (!v->is_count)
	{
		fmgr_info_cxt(v->handler, &e->handler_fn, e->ctx);
		e->handler_name = MemoryContextStrdup(e->ctx, format_procedure(v->handler));
	}
}

static void
engine_free(Engine *e)
{
	if (e->read_snap)
		UnregisterSnapshot(e->read_snap);
	if (e->v->is_count)
		rs_view_tables_close(&e->tables);
	MemoryContextDelete(e->ctx);
}

/*
 * The snapshot for reading the view's tables: a live count's; else one
 * taken after the last flush (which ends with CommandCounterIncrement), so
 * it sees what this refresh and this transaction wrote.
 */
static Snapshot
read_snapshot(Engine *e)
{
	if (e->live)
		return GetActiveSnapshot();
	if (e->read_snap == NULL)
		e->read_snap = RegisterSnapshot(GetLatestSnapshot());
	return e->read_snap;
}

static void
load_skips(Engine *e)
{
	Datum		args[2];
	SPITupleTable *tt;

	args[0] = Int32GetDatum(e->v->id);
	args[1] = Int64GetDatum(e->v->cursor);
	vexec(VP_SKIPS_LOAD, args, NULL, e->live);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull,
					found;
		char	   *did = TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		SkipEntry  *s = strptr_enter(e->skips, did, e->ctx, &found);

		s->through = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		s->is_new = false;
	}
	SPI_freetuptable(tt);
}

static void
add_skip(Engine *e, const char *did, int64 through)
{
	bool		found;
	SkipEntry  *s = strptr_enter(e->skips, did, e->ctx, &found);

	if (!found || through > s->through)
	{
		s->through = through;
		s->is_new = true;
	}
}

static bool
skipped(Engine *e, const char *did, int64 seq)
{
	SkipEntry  *s;

	if (hash_get_num_entries(e->skips) == 0)
		return false;
	s = strptr_find(e->skips, did);
	return s != NULL && seq <= s->through;
}

static void
save_skips(Engine *e, int64 cursor)
{
	HASH_SEQ_STATUS st;
	SkipEntry  *s;
	Datum		args[3];

	hash_seq_init(&st, e->skips);
	while ((s = hash_seq_search(&st)) != NULL)
	{
		if (!s->is_new || s->through <= cursor)
			continue;
		args[0] = Int32GetDatum(e->v->id);
		args[1] = CStringGetTextDatum(s->did);
		args[2] = Int64GetDatum(s->through);
		vexec(VP_SKIP_SAVE, args, NULL, false);
	}
	args[0] = Int32GetDatum(e->v->id);
	args[1] = Int64GetDatum(cursor);
	vexec(VP_SKIPS_TRIM, args, NULL, false);
}

static void
add_delta(Engine *e, const char *key, int64 d)
{
	bool		found;
	DeltaEntry *de = strptr_enter(e->deltas, key, e->state_ctx, &found);

	if (!found)
		de->delta = 0;
	de->delta += d;
}

static int64
delta_of(Engine *e, const char *key)
{
	DeltaEntry *de = strptr_find(e->deltas, key);

	return de ? de->delta : 0;
}

/* The stored count of key (0 if it has no row). */
static int64
stored_count(Engine *e, const char *key)
{
	return rs_view_count_get(&e->tables, read_snapshot(e), key);
}

static char *
path_key(const char *did, const char *rkey)
{
	return psprintf("%s\001%s", did, rkey);
}

/* ------------------------------------------------------------ handlers */

int			rs_view_handler_timeout_ms = 5000;

void		(*rs_view_handler_stuck_hook) (void) = NULL;

/*
 * The time budget of a handler call: a timeout of our own that cancels the
 * call (as statement_timeout would) when it fires, and again every second
 * after, should the handler catch the cancel.  budget_spent says it fired:
 * the call then fails with our message, whatever the handler did.  A
 * handler still running VIEW_HANDLER_GRACE_FIRINGS firings later keeps
 * catching the cancel: rs_view_handler_stuck_hook (the worker's) is called.
 */
#define VIEW_HANDLER_GRACE_FIRINGS 5

static TimeoutId budget_timeout = MAX_TIMEOUTS;	/* registered on first use */
static volatile sig_atomic_t budget_spent = false;
static volatile sig_atomic_t budget_firings = 0;

/* in the SIGALRM handler: only flags */
static void
budget_fired(void)
{
	budget_spent = true;
	QueryCancelPending = true;
	InterruptPending = true;
	if (++budget_firings > VIEW_HANDLER_GRACE_FIRINGS && rs_view_handler_stuck_hook)
		rs_view_handler_stuck_hook();
}

static void
budget_start(void)
{
	int			ms = rs_view_handler_timeout_ms;

	budget_spent = false;
	budget_firings = 0;
	if (ms <= 0)
		return;
	if (budget_timeout == MAX_TIMEOUTS)
		budget_timeout = RegisterTimeout(USER_TIMEOUT, budget_fired);
	/* then every second: a short budget does not shorten the grace */
	enable_timeout_every(budget_timeout, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms), 1000);
}

/* Stop the timer; true if the budget was spent. */
static bool
budget_stop(void)
{
	bool		spent;

	if (budget_timeout != MAX_TIMEOUTS && get_timeout_active(budget_timeout))
		disable_timeout(budget_timeout, false);
	spent = budget_spent;
	budget_spent = false;
	/* our cancel: reported as the budget's error below, not as a cancel later */
	if (spent)
		QueryCancelPending = false;
	return spent;
}

static void
budget_error(Engine *e, int ms) pg_attribute_noreturn();

static void
budget_error(Engine *e, int ms)
{
	ereport(ERROR,
			(errcode(ERRCODE_QUERY_CANCELED),
			 errmsg("handler %s of view \"%s\" ran longer than repo_stream.view_handler_timeout (%d ms)",
					e->handler_name, e->v->name, ms),
			 errhint("Make the handler faster; a superuser may raise repo_stream.view_handler_timeout.")));
}

/* the handler's pg_proc row still has the owner and digest its view recorded */
static void
verify_handler(Engine *e);

/*
 * Call the view's handler as the role that created the view, in a
 * security-restricted operation (like REFRESH MATERIALIZED VIEW), inside a
 * GUC nest level of its own that ends as if aborted: nothing the handler
 * sets (SET, SET LOCAL, set_config, a function's SET clause) outlives the
 * call, so the search_path pinned around it (rs_enter_owner) is back for
 * the extension's next statement, and the session of whoever refreshes
 * (or the worker) is as it was.  Within repo_stream.view_handler_timeout.
 */
static void
call_handler(Engine *e, int64 seq, const char *did, const char *action,
			 const char *path, Jsonb *record)
{
	LOCAL_FCINFO(fcinfo, 5);
	Oid			save_uid;
	int			save_sec;
	int			nest;
	int			budget_ms = rs_view_handler_timeout_ms;
	MemoryContext old;

	verify_handler(e);
	old = MemoryContextSwitchTo(e->call_ctx);
	InitFunctionCallInfoData(*fcinfo, &e->handler_fn, 5, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = Int64GetDatum(seq);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = did ? CStringGetTextDatum(did) : (Datum) 0;
	fcinfo->args[1].isnull = did == NULL;
	fcinfo->args[2].value = CStringGetTextDatum(action);
	fcinfo->args[2].isnull = false;
	fcinfo->args[3].value = path ? CStringGetTextDatum(path) : (Datum) 0;
	fcinfo->args[3].isnull = path == NULL;
	fcinfo->args[4].value = record ? JsonbPGetDatum(record) : (Datum) 0;
	fcinfo->args[4].isnull = record == NULL;

	GetUserIdAndSecContext(&save_uid, &save_sec);
	nest = NewGUCNestLevel();
	SetUserIdAndSecContext(e->v->owner,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	budget_start();
	PG_TRY();
	{
		(void) FunctionCallInvoke(fcinfo);
	}
	PG_CATCH();
	{
		/* an error ends the (sub)transaction, which undoes the rest */
		if (budget_stop())
		{
			/* the cancel, or whatever the handler raised on catching it */
			MemoryContextSwitchTo(e->ctx);
			FlushErrorState();
			budget_error(e, budget_ms);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (budget_stop())
		budget_error(e, budget_ms);	/* it caught the cancel and returned */
	AtEOXact_GUC(false, nest);
	SetUserIdAndSecContext(save_uid, save_sec);
	MemoryContextSwitchTo(old);
	MemoryContextReset(e->call_ctx);
	CommandCounterIncrement();
}

/* pg_proc column attno of tup (of type typid) as text into s, length first (NULL: -1). */
static void
digest_text(StringInfo s, HeapTuple tup, AttrNumber attno, Oid typid, const char *label)
{
	bool		isnull;
	Datum		d = SysCacheGetAttr(PROCOID, tup, attno, &isnull);
	char	   *t = NULL;

	if (!isnull)
	{
		Oid			typoutput;
		bool		varlena;

		getTypeOutputInfo(typid, &typoutput, &varlena);
		t = OidOutputFunctionCall(typoutput, d);
	}
	appendStringInfo(s, "%s:%d:%s\n", label, t ? (int) strlen(t) : -1, t ? t : "");
}

static void
digest_tuple(HeapTuple tup, Oid *owner, uint8 out[VIEW_HANDLER_DIGEST_LEN])
{
	Form_pg_proc p = (Form_pg_proc) GETSTRUCT(tup);
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "owner:%u\nlang:%u\nkind:%c\nsecdef:%d\nleakproof:%d\nstrict:%d\nretset:%d\n"
					 "volatile:%c\nparallel:%c\nrettype:%u\nsupport:%u\nnargs:%d\n",
					 p->proowner, p->prolang, p->prokind, p->prosecdef, p->proleakproof, p->proisstrict,
					 p->proretset, p->provolatile, p->proparallel, p->prorettype, p->prosupport, p->pronargs);
	for (int i = 0; i < p->pronargs; i++)
		appendStringInfo(&s, "arg:%u\n", p->proargtypes.values[i]);
	digest_text(&s, tup, Anum_pg_proc_proargnames, TEXTARRAYOID, "argnames");
	digest_text(&s, tup, Anum_pg_proc_protrftypes, OIDARRAYOID, "trftypes");
	digest_text(&s, tup, Anum_pg_proc_prosrc, TEXTOID, "src");
	digest_text(&s, tup, Anum_pg_proc_probin, TEXTOID, "bin");
	digest_text(&s, tup, Anum_pg_proc_prosqlbody, PG_NODE_TREEOID, "sqlbody");
	digest_text(&s, tup, Anum_pg_proc_proconfig, TEXTARRAYOID, "config");
	rs_sha256((const uint8_t *) s.data, s.len, out);
	*owner = p->proowner;
	pfree(s.data);
}

void
rs_view_handler_digest(Oid handler, Oid *owner, uint8 out[VIEW_HANDLER_DIGEST_LEN])
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", handler)));
	digest_tuple(tup, owner, out);
	ReleaseSysCache(tup);
}

/* A role's name, quoted; its OID if it was dropped. */
static const char *
role_name(Oid role)
{
	const char *name = GetUserNameFromId(role, true);

	return name ? quote_identifier(name) : psprintf("%u (dropped)", role);
}

/* The handler's row (tup) against what its view recorded: 55R10 if it changed. */
static void
check_handler_record(ViewDef *v, HeapTuple tup)
{
	Oid			owner;
	uint8		digest[VIEW_HANDLER_DIGEST_LEN];

	if (!v->has_digest || !OidIsValid(v->handler_owner))
		ereport(ERROR,
				(errcode(ERRCODE_VIEW_HANDLER_CHANGED),
				 errmsg("view \"%s\" has no record of the owner and definition of its handler %s",
						v->name, format_procedure(v->handler)),
				 errdetail("It was created by repo_stream 0.1.0, and the handler does not belong to its creator or to a superuser (or the extension is not updated yet)."),
				 errhint("Update the extension (ALTER EXTENSION repo_stream UPDATE), then drop the view with repo_stream.drop_view and create it again.")));
	digest_tuple(tup, &owner, digest);
	if (owner != v->handler_owner)
		ereport(ERROR,
				(errcode(ERRCODE_VIEW_HANDLER_CHANGED),
				 errmsg("the owner of %s, the handler of view \"%s\", changed since the view was created",
						format_procedure(v->handler), v->name),
				 errdetail("It belongs to role %s now, not to role %s.", role_name(owner), role_name(v->handler_owner)),
				 errhint("Drop the view with repo_stream.drop_view and create it again to run the handler as it is now.")));
	if (memcmp(digest, v->handler_digest, VIEW_HANDLER_DIGEST_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_VIEW_HANDLER_CHANGED),
				 errmsg("%s, the handler of view \"%s\", was changed since the view was created",
						format_procedure(v->handler), v->name),
				 errdetail("Its body, language, settings, security or other properties differ from those recorded."),
				 errhint("Drop the view with repo_stream.drop_view and create it again to run the handler as it is now.")));
}

/*
 * The creating role must still exist and may still execute the handler,
 * and the handler must be as it was when the view was created.
 */
static void
check_handler_access(ViewDef *v)
{
	HeapTuple	tup;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(v->owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that created view \"%s\" no longer exists", v->name)));
	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(v->handler)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the handler of view \"%s\" no longer exists", v->name)));
	rs_view_check_handler(v->handler);
	if (pg_proc_aclcheck(v->handler, v->owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not execute %s, the handler of view \"%s\"",
						GetUserNameFromId(v->owner, false),
						format_procedure(v->handler), v->name)));
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(v->handler));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the handler of view \"%s\" no longer exists", v->name)));
	check_handler_record(v, tup);
	ReleaseSysCache(tup);
}

/*
 * Before each call: the handler's pg_proc row is the one verified last
 * (same xmin and TID: no CREATE OR REPLACE or ALTER since), or it is
 * verified again.  Checked right before the call, from the same syscache
 * entry the function manager and PL/pgSQL look up, so a replacement that
 * commits during a refresh is never run.
 */
static void
verify_handler(Engine *e)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(e->v->handler));

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the handler of view \"%s\" no longer exists", e->v->name)));
	if (!e->proc_verified || HeapTupleHeaderGetRawXmin(tup->t_data) != e->proc_xmin ||
		!ItemPointerEquals(&tup->t_self, &e->proc_tid))
	{
		check_handler_record(e->v, tup);
		e->proc_xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
		e->proc_tid = tup->t_self;
		e->proc_verified = true;
	}
	ReleaseSysCache(tup);
}

void
rs_view_check_handler(Oid handler)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));
	Form_pg_proc p;
	static const Oid want[5] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, JSONBOID};
	const char *why = NULL;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", handler)));
	p = (Form_pg_proc) GETSTRUCT(tup);
	if (p->prokind != PROKIND_FUNCTION)
		why = "it is not a plain function";
	else if (p->pronargs != 5 || memcmp(p->proargtypes.values, want, sizeof(want)) != 0)
		why = "its arguments must be (seq bigint, did text, action text, path text, record jsonb)";
	else if (p->proretset)
		why = "it returns a set";
	else if (p->proisstrict)
		why = "it is STRICT, so it would never see a delete (record is NULL) or delete_repo (path is NULL)";
	ReleaseSysCache(tup);
	if (why)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("function %s cannot be a view handler: %s", format_procedure(handler), why)));
}

/* ------------------------------------------------------------ decoding */

static ViewItem *
new_item(Engine *e, ViewItemKind kind, int64 seq, const char *did, size_t did_len)
{
	ViewItem   *it;

	if (e->n_items == e->cap_items)
	{
		int			cap = e->cap_items ? e->cap_items * 2 : 1024;
		ViewItem   *items = MemoryContextAlloc(e->chunk_ctx, sizeof(ViewItem) * cap);

		if (e->n_items)
			memcpy(items, e->items, sizeof(ViewItem) * e->n_items);
		e->items = items;
		e->cap_items = cap;
	}
	it = &e->items[e->n_items++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	it->seq = seq;
	it->did = pnstrdup(did, did_len);
	return it;
}

static void
corrupt_event(int64 seq, const char *why) pg_attribute_noreturn();

static void
corrupt_event(int64 seq, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("event " INT64_FORMAT " of the log cannot be applied: %s", seq, why)));
}

/*
 * Did this #sync change the repo's data root?  Compared with the repo's
 * previous event in the log; when that is gone (pruned) or an #account (a
 * deletion, then the repo moving back with the same tree, removed what the
 * #sync brings again), treat it as changed: replacing the repo's
 * contribution is always exact, only slower.
 */
static bool
sync_changed(EventReader *r, const char *did, int64 seq, const FrameSync *s)
{
	uint8		root[CID_LEN],
				prev_root[CID_LEN];
	Frame		prev;
	bytea	   *b;
	bool		same = false;
	char		err[256];

	if (!view_car_data_root(s->blocks, s->blocks_len, root))
		corrupt_event(seq, "the #sync's blocks do not hold a readable commit");
	if ((b = reader_prev_frame(r, did, seq)) == NULL)
		return true;
	if (frame_decode((const uint8 *) VARDATA(b), VARSIZE(b) - VARHDRSZ, &prev, err, sizeof(err)) != FRAME_OK)
		return true;
	if (prev.kind == FRAME_COMMIT)
		same = view_car_data_root(prev.commit.blocks, prev.commit.blocks_len, prev_root) &&
			memcmp(root, prev_root, CID_LEN) == 0;
	else if (prev.kind == FRAME_SYNC)
		same = view_car_data_root(prev.sync.blocks, prev.sync.blocks_len, prev_root) &&
			memcmp(root, prev_root, CID_LEN) == 0;
	frame_free(&prev);
	return !same;
}

/*
 * The block of an op's new record, validated: the log is the extension's
 * own (so its blocks are found without hashing them), but a view must not
 * walk bytes it has not validated.
 */
static void
op_block(int64 seq, const FrameCommit *c, const FrameOp *op, const uint8 **data, size_t *len)
{
	size_t		off;
	DcborError	derr;

	if (!view_car_find(c->blocks, c->blocks_len, op->cid, data, len))
		corrupt_event(seq, psprintf("the block of %.*s is not in its CAR", (int) op->path_len, op->path));
	if ((derr = dcbor_validate(*data, *len, &off)) != DCBOR_OK)
		corrupt_event(seq, psprintf("the record %.*s is not valid DAG-CBOR at byte %zu: %s",
									(int) op->path_len, op->path, off, dcbor_strerror(derr)));
}

/*
 * Turn one event into items (in chunk_ctx); skipped events give none.
 * Runs while r holds the log's segments (no user code).
 */
static void
decode_event(Engine *e, EventReader *r, int64 seq, const char *did, const uint8 *data, size_t len)
{
	ViewDef    *v = e->v;
	Frame		f;
	char		err[256];

	if (skipped(e, did, seq))
		return;
	if (frame_decode(data, len, &f, err, sizeof(err)) != FRAME_OK)
		corrupt_event(seq, err);
	if (f.kind == FRAME_COMMIT)
	{
		for (size_t i = 0; i < f.commit.n_ops; i++)
		{
			const FrameOp *op = &f.commit.ops[i];
			ViewItem   *it;

			if (v->collection &&
				!(op->path_len > e->coll_len && op->path[e->coll_len] == '/' &&
				  memcmp(op->path, v->collection, e->coll_len) == 0))
				continue;
			it = new_item(e, ITEM_OP, seq, f.commit.repo, f.commit.repo_len);
			it->path = pnstrdup(op->path, op->path_len);
			it->rkey = strchr(it->path, '/') + 1;
			it->action = op->action;
			if (op->action == FRAME_ACTION_DELETE)
				continue;
			if (!v->is_count)
			{
				const uint8 *data;
				size_t		len;

				op_block(seq, &f.commit, op, &data, &len);
				it->record = rs_cbor_to_jsonb(data, len, "record");
			}
			else if (!v->path.by_did)
			{
				const uint8 *data,
						   *s;
				size_t		len,
							n;
				int			r;

				op_block(seq, &f.commit, op, &data, &len);
				r = view_path_extract(&v->path, data, len, &s, &n);

				if (r < 0)
					corrupt_event(seq, "a record could not be read");
				if (r > 0)
					it->key = pnstrdup((const char *) s, n);
			}
		}
	}
	else if (f.kind == FRAME_ACCOUNT)
	{
		if (!f.account.active && f.account.status &&
			f.account.status_len == 7 && memcmp(f.account.status, "deleted", 7) == 0)
			new_item(e, ITEM_REPO_DELETED, seq, f.account.did, f.account.did_len);
	}
	else if (f.kind == FRAME_SYNC)
	{
		char	   *sdid = pnstrdup(f.sync.did, f.sync.did_len);

		if (sync_changed(r, sdid, seq, &f.sync))
			new_item(e, ITEM_REPO_SYNC, seq, f.sync.did, f.sync.did_len);
	}
	frame_free(&f);
}

/* ------------------------------------------------------------ count views by path */

static PathEntry *
path_entry(Engine *e, const char *did, const char *rkey, bool *found)
{
	char	   *pk = path_key(did, rkey);
	PathEntry  *pe = strptr_enter(e->paths, pk, e->state_ctx, found);

	if (!*found)
	{
		pe->did_len = strlen(did);
		pe->key = NULL;
		pe->known = false;
		pe->in_table = false;
		pe->dirty = false;
		pe->mark = 0;
		pe->row = NULL;
	}
	pfree(pk);
	return pe;
}

static Datum
text_array(const char **vals, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(vals[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* A memory row read for a path: the path's key as the table has it. */
typedef struct FoundRow
{
	Engine	   *e;
	PathEntry  *pe;				/* NULL: look the entry up by (did, rkey) */
	const char *did;
	bool		keep_known;		/* an entry this call knows better keeps its key */
} FoundRow;

static void
found_row(void *arg, const char *rkey, const char *key, HeapTuple row)
{
	FoundRow   *fr = arg;
	Engine	   *e = fr->e;
	PathEntry  *pe = fr->pe;
	MemoryContext old;

	if (pe == NULL)
	{
		bool		found;

		pe = path_entry(e, fr->did, rkey, &found);
		if (found && pe->known && fr->keep_known)
			return;
	}
	old = MemoryContextSwitchTo(e->state_ctx);
	pe->key = pstrdup(key);
	pe->row = e->live ? NULL : heap_copytuple(row);
	MemoryContextSwitchTo(old);
	pe->in_table = true;
	pe->known = true;
}

/* The old keys of the paths this chunk updates or deletes, from the memory. */
static void
lookup_old_keys(Engine *e)
{
	for (int i = 0; i < e->n_items; i++)
	{
		ViewItem   *it = &e->items[i];
		bool		found;
		PathEntry  *pe;

		if (it->kind != ITEM_OP)
			continue;
		pe = path_entry(e, it->did, it->rkey, &found);
		if (found)
			continue;
		/* a create is of a path that had no record, so no row */
		if (it->action != FRAME_ACTION_CREATE)
		{
			FoundRow	fr = {e, pe, NULL, false};

			rs_view_memory_find(&e->tables, read_snapshot(e), it->did, it->rkey, found_row, &fr);
		}
		/* without a row, it was counted under no key */
		pe->known = true;
	}
}

static void
set_path_key(Engine *e, PathEntry *pe, const char *key)
{
	if (pe->key)
		add_delta(e, pe->key, -1);
	if (key)
		add_delta(e, key, 1);
	if (pe->key == NULL ? key == NULL : (key != NULL && strcmp(pe->key, key) == 0))
		return;
	pe->key = key ? MemoryContextStrdup(e->state_ctx, key) : NULL;
	pe->dirty = true;
}

/* All the paths of a repo the memory table holds, merged into e->paths. */
static void
load_repo_paths(Engine *e, const char *did)
{
	FoundRow	fr = {e, NULL, did, true};

	rs_view_memory_repo(&e->tables, read_snapshot(e), did, found_row, &fr);
}

static bool
entry_of_repo(const PathEntry *pe, const char *did, size_t did_len)
{
	return pe->did_len == did_len && memcmp(pe->pk, did, did_len) == 0;
}

/*
 * A repo was deleted (records NULL) or its records replaced: set every path
 * of the repo to its key in records (rows of rkey, key), the others to none.
 */
static void
replace_repo_paths(Engine *e, const char *did, SPITupleTable *records, uint64 n)
{
	size_t		did_len = strlen(did);
	HASH_SEQ_STATUS st;
	PathEntry  *pe;

	load_repo_paths(e, did);
	e->mark++;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull,
					found;
		Datum		rk = SPI_getbinval(records->vals[i], records->tupdesc, 2, &isnull);
		Datum		k;
		char	   *rkey;

		if (isnull)
			continue;			/* the repo has no records (LEFT JOIN row) */
		rkey = TextDatumGetCString(rk);
		k = SPI_getbinval(records->vals[i], records->tupdesc, 3, &isnull);
		pe = path_entry(e, did, rkey, &found);
		if (!found || !pe->known)
		{
			pe->known = true;	/* loaded above: no row */
			pe->key = NULL;
		}
		set_path_key(e, pe, isnull ? NULL : TextDatumGetCString(k));
		pe->mark = e->mark;
	}
	hash_seq_init(&st, e->paths);
	while ((pe = hash_seq_search(&st)) != NULL)
		if (entry_of_repo(pe, did, did_len) && pe->mark != e->mark)
			set_path_key(e, pe, NULL);
}

typedef struct SortedPath
{
	int64		h;
	PathEntry  *pe;
} SortedPath;

static int
sorted_path_cmp(const void *a, const void *b)
{
	int64		x = ((const SortedPath *) a)->h,
				y = ((const SortedPath *) b)->h;

	return x < y ? -1 : x > y;
}

static int
delta_cmp(const void *a, const void *b)
{
	return strcmp((*(DeltaEntry *const *) a)->key, (*(DeltaEntry *const *) b)->key);
}

/*
 * Write the chunk's memory changes and count deltas; then forget them.
 * Each in index order (h; keys bytewise, the count table's "C" order), so
 * that successive probes share the pages they descend through.
 */
static void
flush_count(Engine *e)
{
	HASH_SEQ_STATUS st;
	Snapshot	snap = read_snapshot(e);
	long		n;

	if (e->paths && (n = hash_get_num_entries(e->paths)) > 0)
	{
		SortedPath *sorted = palloc(sizeof(SortedPath) * n);
		PathEntry  *pe;
		long		k = 0;

		hash_seq_init(&st, e->paths);
		while ((pe = hash_seq_search(&st)) != NULL)
		{
			if (!pe->dirty || (!pe->in_table && pe->key == NULL))
				continue;
			sorted[k].pe = pe;
			sorted[k++].h = rs_view_path_hash(pe->pk, pe->did_len, pe->pk + pe->did_len + 1,
											  strlen(pe->pk + pe->did_len + 1));
		}
		qsort(sorted, k, sizeof(SortedPath), sorted_path_cmp);
		for (long i = 0; i < k; i++)
		{
			pe = sorted[i].pe;
			if (pe->in_table)
				rs_view_memory_set(&e->tables, pe->row, pe->key);
			else
			{
				/*
				 * No conflict check: a create is of a path with no record,
				 * and the memory mirrors the records counted.
				 */
				char	   *did = pnstrdup(pe->pk, pe->did_len);

				rs_view_memory_insert(&e->tables, did, pe->pk + pe->did_len + 1, pe->key);
				pfree(did);
			}
		}
		pfree(sorted);
	}
	if ((n = hash_get_num_entries(e->deltas)) > 0)
	{
		DeltaEntry **sorted = palloc(sizeof(DeltaEntry *) * n);
		DeltaEntry *de;
		long		k = 0;
		const char **keys = palloc(sizeof(char *) * n);
		int64	   *deltas = palloc(sizeof(int64) * n);

		hash_seq_init(&st, e->deltas);
		while ((de = hash_seq_search(&st)) != NULL)
			if (de->delta != 0)
				sorted[k++] = de;
		qsort(sorted, k, sizeof(DeltaEntry *), delta_cmp);
		for (long i = 0; i < k; i++)
		{
			keys[i] = sorted[i]->key;
			deltas[i] = sorted[i]->delta;
		}
		rs_view_count_add(&e->tables, snap, e->v, (int) k, keys, deltas);
		pfree(sorted);
		pfree(keys);
		pfree(deltas);
	}
	/* the next reads see these writes */
	CommandCounterIncrement();
	UnregisterSnapshot(e->read_snap);
	e->read_snap = NULL;
	state_reset(e);
}

/* ------------------------------------------------------------ repo replacement */

/*
 * The repo's records now (a snapshot blind to this transaction's own
 * changes) with repos.last_seq, in one statement, so one snapshot.  Rows:
 * (last_seq, rkey or path, key or record) for count views by path and
 * handler views; (last_seq, count) for $did views.  Returns the row count
 * (0 if the repo row is gone); *last_seq gets repos.last_seq.
 */
static uint64
read_repo_records(Engine *e, const char *did, int64 seq, int64 *last_seq)
{
	ViewDef    *v = e->v;
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTARRAYOID};
	const char *sql;
	int			nargs = 2;
	uint64		n;
	bool		isnull;

	args[0] = CStringGetTextDatum(did);
	args[1] = v->collection ? CStringGetTextDatum(v->collection) : (Datum) 0;
	nulls[1] = v->collection ? ' ' : 'n';
	if (!v->is_count)
		sql = "SELECT r.last_seq, x.path, x.rec FROM repo_stream.repos r LEFT JOIN LATERAL"
			" (SELECT collection || '/' || rkey AS path,"
			"         repo_stream.cbor_to_json(repo_stream.json_to_cbor(record)) AS rec"
			"    FROM repo_stream.records WHERE did = r.did AND ($2::text IS NULL OR collection = $2)"
			"   ORDER BY collection, rkey) x ON true WHERE r.did = $1";
	else if (v->path.by_did)
		sql = "SELECT r.last_seq, (SELECT count(*) FROM repo_stream.records"
			"  WHERE did = r.did AND collection = $2) FROM repo_stream.repos r WHERE r.did = $1";
	else
	{
		const char **segs = palloc(sizeof(char *) * v->path.n_segs);

		for (int i = 0; i < v->path.n_segs; i++)
			segs[i] = pnstrdup(v->path.segs[i], v->path.lens[i]);
		args[2] = text_array(segs, v->path.n_segs);
		nargs = 3;
		sql = "SELECT r.last_seq, x.rkey, x.k FROM repo_stream.repos r LEFT JOIN LATERAL"
			" (SELECT rkey, repo_stream._view_key(record, $3) AS k FROM repo_stream.records"
			"   WHERE did = r.did AND collection = $2) x ON true WHERE r.did = $1";
	}
	push_records_snapshot(e->snap);
	if (SPI_execute_with_args(sql, nargs, types, args, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading the records of repo \"%s\" failed", did);
	PopActiveSnapshot();
	n = SPI_processed;
	*last_seq = seq;
	if (n > 0)
	{
		Datum		d = rs_getdatum(0, 1, &isnull);

		if (!isnull && DatumGetInt64(d) > seq)
			*last_seq = DatumGetInt64(d);
	}
	return n;
}

static void
apply_repo_count(Engine *e, ViewItem *it)
{
	ViewDef    *v = e->v;
	bool		sync = it->kind == ITEM_REPO_SYNC;

	if (v->path.by_did)
	{
		int64		now = stored_count(e, it->did) + delta_of(e, it->did);
		int64		want = 0;

		if (sync)
		{
			int64		last_seq;
			bool		isnull;

			if (read_repo_records(e, it->did, it->seq, &last_seq) > 0)
				want = DatumGetInt64(rs_getdatum(0, 2, &isnull));
			SPI_freetuptable(SPI_tuptable);
			add_skip(e, it->did, last_seq);
		}
		add_delta(e, it->did, want - now);
		return;
	}
	if (sync)
	{
		int64		last_seq;
		uint64		n = read_repo_records(e, it->did, it->seq, &last_seq);
		SPITupleTable *tt = SPI_tuptable;

		replace_repo_paths(e, it->did, tt, n);
		SPI_freetuptable(tt);
		add_skip(e, it->did, last_seq);
	}
	else
		replace_repo_paths(e, it->did, NULL, 0);
}

static void
apply_repo_handler(Engine *e, ViewItem *it)
{
	int64		last_seq;
	uint64		n;
	SPITupleTable *tt;

	call_handler(e, it->seq, it->did, "delete_repo", NULL, NULL);
	if (it->kind != ITEM_REPO_SYNC)
		return;
	n = read_repo_records(e, it->did, it->seq, &last_seq);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		p = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
		Datum		r;

		if (isnull)
			continue;
		r = SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull);
		call_handler(e, it->seq, it->did, "create", TextDatumGetCString(p), DatumGetJsonbP(r));
	}
	SPI_freetuptable(tt);
	add_skip(e, it->did, last_seq);
}

/* ------------------------------------------------------------ chunks */

/* Apply the decoded items of a count view's chunk in seq order. */
static void
simulate(Engine *e)
{
	ViewDef    *v = e->v;

	if (v->memory_rel)
		lookup_old_keys(e);
	for (int i = 0; i < e->n_items; i++)
	{
		ViewItem   *it = &e->items[i];

		/* a repo replaced earlier in this chunk: its later events are in */
		if (skipped(e, it->did, it->seq))
			continue;
		if (it->kind != ITEM_OP)
		{
			apply_repo_count(e, it);
			continue;
		}
		if (v->path.by_did)
		{
			if (it->action == FRAME_ACTION_CREATE)
				add_delta(e, it->did, 1);
			else if (it->action == FRAME_ACTION_DELETE)
				add_delta(e, it->did, -1);
		}
		else
		{
			bool		found;
			PathEntry  *pe = path_entry(e, it->did, it->rkey, &found);

			set_path_key(e, pe, it->action == FRAME_ACTION_DELETE ? NULL : it->key);
		}
	}
}

/* ------------------------------------------------------------ reading the log */

/*
 * The events in (from, horizon], in seq order, read straight from the
 * segments' seq indexes (merged: a transaction that commits while the ring
 * rotates can land in the segment before the current one).  A frame is
 * decoded where it lies in its page, without the copy a statement's result
 * would make.  Every segment is locked (AccessShareLock) before anything is
 * read, so none is pruned under the reader; reader_close releases those
 * locks, so a refresh holds none while it applies what it read (handlers
 * run) or after it returns, and the ring rotates meanwhile.
 */
struct EventReader
{
	Relation	heaps[RS_EVENT_SEGMENTS];
	Oid			heap_oids[RS_EVENT_SEGMENTS];
	Relation	indexes[RS_EVENT_SEGMENTS];
	IndexScanDesc scans[RS_EVENT_SEGMENTS];
	TupleTableSlot *slots[RS_EVENT_SEGMENTS];
	int64		seqs[RS_EVENT_SEGMENTS];
	bool		ready[RS_EVENT_SEGMENTS];	/* slots[i] holds segment i's next event */
	bool		done[RS_EVENT_SEGMENTS];
	Snapshot	snap;			/* registered by the reader, or the live count's */
	bool		own_snap;
	const char *only_did;
	size_t		only_did_len;
	MemoryContext cxt;			/* the scans' own: outlives every chunk */
};

/* event_log's columns, as every segment has them (PARTITION OF) */
#define EV_SEQ		1
#define EV_DID		3
#define EV_KIND		4
#define EV_FRAME	6

static void
reader_lock(EventReader *r)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < RS_EVENT_SEGMENTS; i++)
	{
		TupleDesc	desc;

		r->heaps[i] = rs_rel_open(RS_REL_EVENT_LOG_0 + i, AccessShareLock);
		r->heap_oids[i] = RelationGetRelid(r->heaps[i]);
		desc = RelationGetDescr(r->heaps[i]);
		if (desc->natts < EV_FRAME ||
			strcmp(NameStr(TupleDescAttr(desc, EV_SEQ - 1)->attname), "seq") != 0 ||
			strcmp(NameStr(TupleDescAttr(desc, EV_DID - 1)->attname), "did") != 0 ||
			strcmp(NameStr(TupleDescAttr(desc, EV_KIND - 1)->attname), "kind") != 0 ||
			strcmp(NameStr(TupleDescAttr(desc, EV_FRAME - 1)->attname), "frame") != 0)
			elog(ERROR, "event log segment %d does not have the columns of event_log", i);
	}
}

/* The seq index of segment i (the segments are locked). */
static Relation
segment_index(EventReader *r, int i)
{
	List	   *indexes = RelationGetIndexList(r->heaps[i]);
	Relation	index;

	if (list_length(indexes) != 1)
		elog(ERROR, "event log segment %d has %d indexes, not its seq index", i, list_length(indexes));
	index = index_open(linitial_oid(indexes), AccessShareLock);
	list_free(indexes);
	return index;
}

/*
 * Start reading after from (the segments are locked): with snap (a live
 * count's), else with a new snapshot, which sees every event up to the
 * horizon (their transactions have ended).  only_did: that repo's events.
 */
static void
reader_start(EventReader *r, int64 from, int64 horizon, Snapshot snap, const char *only_did)
{
	r->own_snap = snap == NULL;
	r->cxt = CurrentMemoryContext;
	r->snap = snap ? snap : RegisterSnapshot(GetLatestSnapshot());
	r->only_did = only_did;
	r->only_did_len = only_did ? strlen(only_did) : 0;
	for (int i = 0; i < RS_EVENT_SEGMENTS; i++)
	{
		ScanKeyData keys[2];

		r->indexes[i] = segment_index(r, i);
		r->slots[i] = table_slot_create(r->heaps[i], NULL);
		ScanKeyInit(&keys[0], 1, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(from));
		ScanKeyInit(&keys[1], 1, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(horizon));
		r->scans[i] = index_beginscan(r->heaps[i], r->indexes[i], r->snap, 2, 0);
		index_rescan(r->scans[i], keys, 2, NULL, 0);
	}
}

/*
 * The next event: its seq, DID (palloc'd) and frame, which stays valid
 * until the next call.  False at the end.
 */
static bool
reader_next(EventReader *r, int64 *seq, char **did, const uint8 **frame, size_t *len)
{
	for (;;)
	{
		int			best = -1;
		bool		isnull;
		text	   *d;
		bytea	   *f;

		for (int i = 0; i < RS_EVENT_SEGMENTS; i++)
		{
			if (!r->ready[i] && !r->done[i])
			{
				/*
				 * In the scans' context: a btree scan allocates its list of
				 * dead entries to mark (killedItems) on first need, in the
				 * current context, and frees it at index_endscan; the
				 * caller's chunk context is reset long before that.
				 */
				MemoryContext old = MemoryContextSwitchTo(r->cxt);
				bool		got = index_getnext_slot(r->scans[i], ForwardScanDirection, r->slots[i]);

				MemoryContextSwitchTo(old);
				if (got)
				{
					r->seqs[i] = DatumGetInt64(slot_getattr(r->slots[i], EV_SEQ, &isnull));
					r->ready[i] = true;
				}
				else
					r->done[i] = true;
			}
			if (r->ready[i] && (best < 0 || r->seqs[i] < r->seqs[best]))
				best = i;
		}
		if (best < 0)
			return false;
		r->ready[best] = false;
		d = DatumGetTextPP(slot_getattr(r->slots[best], EV_DID, &isnull));
		if (r->only_did &&
			!(VARSIZE_ANY_EXHDR(d) == r->only_did_len &&
			  memcmp(VARDATA_ANY(d), r->only_did, r->only_did_len) == 0))
			continue;
		f = DatumGetByteaPP(slot_getattr(r->slots[best], EV_FRAME, &isnull));
		*seq = r->seqs[best];
		*did = text_to_cstring(d);
		*frame = (const uint8 *) VARDATA_ANY(f);
		*len = VARSIZE_ANY_EXHDR(f);
		return true;
	}
}

static bool
text_is(Datum d, const char *s, size_t len)
{
	text	   *t = DatumGetTextPP(d);

	return VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

/*
 * Walk the segments backwards from before (merged, newest first) to repo
 * did's newest event (an #account too: see sync_changed), with the reader's snapshot and under its
 * locks (not a statement: its locks would last to the end of the
 * transaction).
 */
static bytea *
reader_prev_frame(EventReader *r, const char *did, int64 before)
{
	IndexScanDesc scans[RS_EVENT_SEGMENTS];
	TupleTableSlot *slots[RS_EVENT_SEGMENTS];
	int64		seqs[RS_EVENT_SEGMENTS];
	bool		ready[RS_EVENT_SEGMENTS] = {0},
				done[RS_EVENT_SEGMENTS] = {0};
	size_t		did_len = strlen(did);
	bytea	   *result = NULL;

	for (int i = 0; i < RS_EVENT_SEGMENTS; i++)
	{
		ScanKeyData key;

		slots[i] = table_slot_create(r->heaps[i], NULL);
		ScanKeyInit(&key, 1, BTLessStrategyNumber, F_INT8LT, Int64GetDatum(before));
		scans[i] = index_beginscan(r->heaps[i], r->indexes[i], r->snap, 1, 0);
		index_rescan(scans[i], &key, 1, NULL, 0);
	}
	for (;;)
	{
		int			best = -1;
		bool		isnull;
		TupleTableSlot *slot;

		for (int i = 0; i < RS_EVENT_SEGMENTS; i++)
		{
			if (!ready[i] && !done[i])
			{
				if (index_getnext_slot(scans[i], BackwardScanDirection, slots[i]))
				{
					seqs[i] = DatumGetInt64(slot_getattr(slots[i], EV_SEQ, &isnull));
					ready[i] = true;
				}
				else
					done[i] = true;
			}
			if (ready[i] && (best < 0 || seqs[i] > seqs[best]))
				best = i;
		}
		if (best < 0)
			break;
		ready[best] = false;
		slot = slots[best];
		if (!text_is(slot_getattr(slot, EV_DID, &isnull), did, did_len))
			continue;
		result = DatumGetByteaPCopy(slot_getattr(slot, EV_FRAME, &isnull));
		break;
	}
	for (int i = 0; i < RS_EVENT_SEGMENTS; i++)
	{
		index_endscan(scans[i]);
		ExecDropSingleTupleTableSlot(slots[i]);
	}
	return result;
}

/*
 * End the scans and release the segments' locks: what was read is copied
 * (decoded into items), and nothing read later relies on a segment staying.
 */
static void
reader_close(EventReader *r)
{
	for (int i = 0; i < RS_EVENT_SEGMENTS; i++)
	{
		if (r->scans[i])
			index_endscan(r->scans[i]);
		if (r->slots[i])
			ExecDropSingleTupleTableSlot(r->slots[i]);
		if (r->indexes[i])
			index_close(r->indexes[i], AccessShareLock);
		if (r->heaps[i])
		{
			table_close(r->heaps[i], NoLock);
			UnlockRelationOid(r->heap_oids[i], AccessShareLock);
		}
	}
	if (r->own_snap && r->snap)
		UnregisterSnapshot(r->snap);
	memset(r, 0, sizeof(*r));
}

/*
 * A handler view's items of the chunk, event by event, in order; at most
 * up to the deadline, checked between events.  Returns the seq of the last
 * event applied (0: none).
 */
static int64
call_handlers(Engine *e)
{
	int			i = 0;
	int64		last = 0;

	for (int ev = 0; ev < e->n_evs; ev++)
	{
		int64		seq = e->ev_seqs[ev];

		for (; i < e->n_items && e->items[i].seq == seq; i++)
		{
			ViewItem   *it = &e->items[i];

			/* a repo replaced earlier in this chunk: its later events are in */
			if (skipped(e, it->did, it->seq))
				continue;
			if (it->kind == ITEM_OP)
				call_handler(e, it->seq, it->did,
							 it->action == FRAME_ACTION_CREATE ? "create" :
							 it->action == FRAME_ACTION_UPDATE ? "update" : "delete",
							 it->path, it->record);
			else
				apply_repo_handler(e, it);
		}
		last = seq;
		if (e->deadline != 0 && ev + 1 < e->n_evs && GetCurrentTimestamp() >= e->deadline)
			break;
	}
	return last;
}

/* Frames read per chunk at most (bytes): bounds a handler view's decoded records. */
#define CHUNK_MAX_FRAME_BYTES (16 * 1024 * 1024)

/*
 * Read and apply the events in (cursor, horizon], at most max (0: all), in
 * chunks of VIEW_CHUNK_EVENTS (and at most CHUNK_MAX_ITEMS ops: a count
 * view writes each chunk's changes at its end).  Each chunk is read and
 * decoded with the log's segments locked, then applied with them released
 * (handlers run then).  Returns the number applied, or -1 if events the
 * view needed were pruned before it could read them (it must rebuild, or
 * count from the records).  *pos gets the seq it got to.
 */
static int64
apply_events(Engine *e, int64 cursor, int64 max, const char *only_did, int64 *pos)
{
	int64		applied = 0;
	bool		end = false,
				stop = false;

	*pos = cursor;
	while (!end && !stop && (max == 0 || applied < max))
	{
		EventReader r;
		MemoryContext old = MemoryContextSwitchTo(e->chunk_ctx);
		size_t		bytes = 0;
		int64		last;

		/*
		 * Segments are truncated (pruned) without MVCC.  Once every segment
		 * is locked none goes away any more; but one may have gone since
		 * the window was checked (or since the last chunk), so check again
		 * with a fresh snapshot.
		 */
		reader_lock(&r);
		if (*pos < pruned_through(GetLatestSnapshot()))
		{
			reader_close(&r);
			MemoryContextSwitchTo(old);
			return -1;
		}
		reader_start(&r, *pos, e->horizon, e->live ? e->snap : NULL, only_did);
		e->ev_seqs = palloc(sizeof(int64) * VIEW_CHUNK_EVENTS);
		e->n_evs = 0;
		while (e->n_evs < VIEW_CHUNK_EVENTS && (max == 0 || applied + e->n_evs < max) &&
			   bytes < CHUNK_MAX_FRAME_BYTES &&
			   !(e->v->is_count && e->n_items >= CHUNK_MAX_ITEMS))
		{
			int64		seq;
			char	   *did;
			const uint8 *frame;
			size_t		len;

			if (!reader_next(&r, &seq, &did, &frame, &len))
			{
				end = true;
				break;
			}
			decode_event(e, &r, seq, did, frame, len);
			e->ev_seqs[e->n_evs++] = seq;
			bytes += len;
		}
		reader_close(&r);

		/* the log's locks are released: apply */
		last = e->n_evs > 0 ? e->ev_seqs[e->n_evs - 1] : 0;
		if (e->v->is_count)
		{
			simulate(e);
			if (!e->live)
				flush_count(e);
			applied += e->n_evs;
		}
		else if (e->n_evs > 0)
		{
			int64		done = call_handlers(e);

			for (int i = 0; i < e->n_evs && e->ev_seqs[i] <= done; i++)
				applied++;
			if (done < last)
			{
				/* the deadline: stop after the last event applied */
				last = done;
				end = false;
				stop = true;
			}
		}
		if (last > 0)
			*pos = last;
		e->n_items = e->cap_items = 0;
		e->items = NULL;
		e->n_evs = 0;
		MemoryContextSwitchTo(old);
		MemoryContextReset(e->chunk_ctx);
		CHECK_FOR_INTERRUPTS();
		if (e->deadline != 0 && GetCurrentTimestamp() >= e->deadline)
			stop = true;
	}
	/* every seq up to the horizon is applied (the last ones may be unused) */
	if (end)
		*pos = Max(*pos, e->horizon);
	return applied;
}

/* ------------------------------------------------------------ fill and rebuild */

static void
check_read_committed(void)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("repo_stream.refresh_view runs only in READ COMMITTED transactions"),
				 errdetail("A refresh reads the log up to a horizon newer than a REPEATABLE READ snapshot.")));
}

/* Write a hash of key -> count (DeltaEntry) into the count table. */
static void
insert_counts(ViewDef *v, HTAB *counts)
{
	HASH_SEQ_STATUS st;
	DeltaEntry *de;
	long		n = hash_get_num_entries(counts);
	const char **keys = palloc(sizeof(char *) * Max(n, 1));
	Datum	   *vals = palloc(sizeof(Datum) * Max(n, 1));
	int			k = 0;
	Oid			types[2] = {TEXTARRAYOID, INT8ARRAYOID};
	SPIPlanPtr	ins = prepare_fmt(2, types, "INSERT INTO %s (key, count) SELECT * FROM unnest($1, $2)",
								  v->count_rel);

	hash_seq_init(&st, counts);
	while ((de = hash_seq_search(&st)) != NULL)
	{
		keys[k] = de->key;
		vals[k++] = Int64GetDatum(de->delta);
		if (k == FILL_FETCH)
		{
			Datum		args[2] = {text_array(keys, k),
			PointerGetDatum(construct_array(vals, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE))};

			run_plan(ins, args, false);
			k = 0;
		}
	}
	if (k > 0)
	{
		Datum		args[2] = {text_array(keys, k),
		PointerGetDatum(construct_array(vals, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE))};

		run_plan(ins, args, false);
	}
	SPI_freeplan(ins);
}

static Datum
path_segments(const ViewPath *p)
{
	const char **segs = palloc(sizeof(char *) * Max(p->n_segs, 1));

	for (int i = 0; i < p->n_segs; i++)
		segs[i] = pnstrdup(p->segs[i], p->lens[i]);
	return text_array(segs, p->n_segs);
}

/*
 * Fill the view from the records as of a new horizon (rebuild: after
 * emptying it); returns the horizon, which becomes the cursor.
 */
static int64
fill(ViewDef *v, bool rebuild)
{
	Snapshot	snap;
	int64		horizon = rs_seq_horizon(&snap);
	MemoryContext ctx = AllocSetContextCreate(CurrentMemoryContext, "repo_stream view fill",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext batch = AllocSetContextCreate(ctx, "repo_stream view fill batch",
												ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(ctx);
	Portal		portal;
	Datum		args[2];
	char		nulls[2] = {' ', ' '};
	Oid			types[2] = {TEXTOID, TEXTARRAYOID};

	args[0] = v->collection ? CStringGetTextDatum(v->collection) : (Datum) 0;
	nulls[0] = v->collection ? ' ' : 'n';
	if (v->is_count)
	{
		HTAB	   *counts = strptr_hash_create("repo_stream view fill", sizeof(DeltaEntry), ctx);
		SPIPlanPtr	mem_ins = NULL;

		if (rebuild)
		{
			SPI_execute(psprintf("DELETE FROM %s", v->count_rel), false, 0);
			if (v->memory_rel)
			{
				SPI_execute(psprintf("TRUNCATE %s", v->memory_rel), false, 0);
				SPI_execute(psprintf("DROP INDEX IF EXISTS repo_stream.view_memory_%d_h", v->id), false, 0);
			}
		}
		push_records_snapshot(snap);
		if (v->path.by_did)
			portal = SPI_cursor_open_with_args(NULL,
											   "SELECT did, count(*) FROM repo_stream.records"
											   " WHERE collection = $1 GROUP BY did",
											   1, types, args, nulls, true, 0);
		else
		{
			Oid			mtypes[4] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};

			args[1] = path_segments(&v->path);
			portal = SPI_cursor_open_with_args(NULL,
											   "SELECT did, rkey, k FROM (SELECT did, rkey,"
											   " repo_stream._view_key(record, $2) AS k FROM repo_stream.records"
											   " WHERE collection = $1) s WHERE k IS NOT NULL",
											   2, types, args, nulls, true, 0);
			mem_ins = prepare_fmt(4, mtypes, "INSERT INTO %s (h, did, rkey, key) SELECT * FROM unnest($1, $2, $3, $4)",
								  v->memory_rel);
		}
		PopActiveSnapshot();
		for (;;)
		{
			SPITupleTable *tt;
			uint64		n;
			const char **dids,
					  **rkeys,
					  **keys;
			Datum	   *hs;

			SPI_cursor_fetch(portal, true, FILL_FETCH);
			tt = SPI_tuptable;
			n = SPI_processed;
			if (n == 0)
				break;
			MemoryContextSwitchTo(batch);
			dids = palloc(sizeof(char *) * n);
			rkeys = palloc(sizeof(char *) * n);
			keys = palloc(sizeof(char *) * n);
			hs = palloc(sizeof(Datum) * n);
			for (uint64 i = 0; i < n; i++)
			{
				bool		isnull,
							found;
				DeltaEntry *de;

				if (v->path.by_did)
				{
					de = strptr_enter(counts, TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)),
									  ctx, &found);
					de->delta = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
					continue;
				}
				dids[i] = TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
				rkeys[i] = TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
				keys[i] = TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
				hs[i] = Int64GetDatum(rs_view_path_hash(dids[i], strlen(dids[i]), rkeys[i], strlen(rkeys[i])));
				de = strptr_enter(counts, keys[i], ctx, &found);
				de->delta = found ? de->delta + 1 : 1;
			}
			SPI_freetuptable(tt);
			if (mem_ins)
			{
				Datum		margs[4] = {
					PointerGetDatum(construct_array(hs, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
					text_array(dids, n), text_array(rkeys, n), text_array(keys, n)
				};

				run_plan(mem_ins, margs, false);
			}
			MemoryContextSwitchTo(ctx);
			MemoryContextReset(batch);
			CHECK_FOR_INTERRUPTS();
		}
		SPI_cursor_close(portal);
		insert_counts(v, counts);
		/* one sorted build: faster than as many inserts, and a compact index */
		if (v->memory_rel)
			SPI_execute(psprintf("CREATE INDEX view_memory_%d_h ON %s (h)", v->id, v->memory_rel), false, 0);
	}
	else
	{
		Engine		e;

		engine_init(&e, v, false, NULL, horizon);
		if (rebuild)
			call_handler(&e, horizon, NULL, "reset", NULL, NULL);
		push_records_snapshot(snap);
		portal = SPI_cursor_open_with_args(NULL,
										   "SELECT did, collection || '/' || rkey,"
										   " repo_stream.cbor_to_json(repo_stream.json_to_cbor(record))"
										   " FROM repo_stream.records WHERE ($1::text IS NULL OR collection = $1)"
										   " ORDER BY did, collection, rkey",
										   1, types, args, nulls, true, 0);
		PopActiveSnapshot();
		for (;;)
		{
			SPITupleTable *tt;
			uint64		n;

			SPI_cursor_fetch(portal, true, VIEW_CHUNK_EVENTS);
			tt = SPI_tuptable;
			n = SPI_processed;
			if (n == 0)
				break;
			MemoryContextSwitchTo(batch);
			for (uint64 i = 0; i < n; i++)
			{
				bool		isnull;

				call_handler(&e, horizon,
							 TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)),
							 "create",
							 TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull)),
							 DatumGetJsonbP(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull)));
			}
			SPI_freetuptable(tt);
			MemoryContextSwitchTo(ctx);
			MemoryContextReset(batch);
			CHECK_FOR_INTERRUPTS();
		}
		SPI_cursor_close(portal);
		engine_free(&e);
	}
	UnregisterSnapshot(snap);

	args[0] = Int32GetDatum(v->id);
	if (rebuild)
		vexec(VP_SKIPS_CLEAR, args, NULL, false);
	{
		Datum		uargs[3] = {Int32GetDatum(v->id), Int64GetDatum(horizon), Int32GetDatum(rebuild ? 1 : 0)};

		vexec(VP_REBUILT, uargs, NULL, false);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(ctx);
	v->cursor = horizon;
	return horizon;
}

void
rs_view_fill(ViewDef *v)
{
	if (!v->is_count)
		check_handler_access(v);
	(void) fill(v, false);
}

int64
rs_view_refresh(ViewDef *v, int64 horizon, int64 max_events, TimestampTz deadline)
{
	Engine		e;
	int64		applied,
				pos;

	check_read_committed();
	if (!v->is_count)
		check_handler_access(v);
	if (horizon == 0)
		horizon = rs_seq_horizon(NULL);
	if (v->cursor < pruned_through(NULL))
	{
		ereport(LOG,
				(errmsg("repo_stream view \"%s\": its cursor " INT64_FORMAT " predates the retained log; rebuilding it",
						v->name, v->cursor)));
		fill(v, true);
		return 0;
	}
	engine_init(&e, v, false, NULL, Max(horizon, v->cursor));
	e.deadline = deadline;
	load_skips(&e);
	applied = apply_events(&e, v->cursor, max_events, NULL, &pos);
	if (applied < 0)
	{
		engine_free(&e);
		ereport(LOG,
				(errmsg("repo_stream view \"%s\": events after its cursor " INT64_FORMAT " were pruned; rebuilding it",
						v->name, v->cursor)));
		fill(v, true);
		return 0;
	}
	save_skips(&e, pos);
	{
		Datum		args[2] = {Int32GetDatum(v->id), Int64GetDatum(pos)};

		vexec(VP_CURSOR_SAVE, args, NULL, false);
	}
	engine_free(&e);
	v->cursor = pos;
	return applied;
}

/* ------------------------------------------------------------ live counts */

/* The count of key over the records the snapshot sees (the slow, exact way). */
static int64
count_from_records(ViewDef *v, Snapshot snap, const char *key)
{
	Datum		args[3];
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTARRAYOID};
	bool		isnull;
	int64		n;

	args[0] = CStringGetTextDatum(v->collection);
	args[1] = CStringGetTextDatum(key);
	push_records_snapshot(snap);
	if (v->path.by_did)
		SPI_execute_with_args("SELECT count(*) FROM repo_stream.records WHERE did = $2 AND collection = $1",
							  2, types, args, NULL, true, 0);
	else
	{
		args[2] = path_segments(&v->path);
		SPI_execute_with_args("SELECT count(*) FROM repo_stream.records"
							  " WHERE collection = $1 AND repo_stream._view_key(record, $3) = $2",
							  3, types, args, NULL, true, 0);
	}
	PopActiveSnapshot();
	n = DatumGetInt64(rs_getdatum(0, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return n;
}

int64
rs_view_live(ViewDef *v, const char *key)
{
	Snapshot	snap;
	int64		horizon = rs_seq_horizon(&snap);
	int64		result;
	Datum		arg = Int32GetDatum(v->id);
	bool		isnull;

	/* everything below reads under the horizon's snapshot */
	PushActiveSnapshot(snap);
	if (vexec(VP_CURSOR_READ, &arg, NULL, true) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("view \"%s\" does not exist", v->name)));
	v->cursor = DatumGetInt64(rs_getdatum(0, 1, &isnull));
	if (v->cursor < pruned_through(snap))
		result = count_from_records(v, snap, key);
	else
	{
		Engine		e;
		int64		pos;

		engine_init(&e, v, true, snap, horizon);
		result = stored_count(&e, key);
		load_skips(&e);
		if (apply_events(&e, v->cursor, 0, v->path.by_did ? key : NULL, &pos) < 0)
			result = count_from_records(v, snap, key);
		else
			result += delta_of(&e, key);
		engine_free(&e);
	}
	PopActiveSnapshot();
	UnregisterSnapshot(snap);
	return result;
}
