/*
 * views_worker_sql.c - the background worker that refreshes every view,
 * its GUCs, and the shared latch commits use to wake it.
 *
 * With repo_stream in shared_preload_libraries, one worker connects to
 * repo_stream.views_database and, every repo_stream.views_refresh_interval,
 * refreshes each view in its own transactions (at most WORKER_BATCH events
 * per transaction, until the view reaches the round's horizon).  A
 * transaction that appended events sets the worker's latch when it
 * commits, so new events are applied right away; rounds start at most
 * every VIEWS_MIN_GAP_MS, because each round takes the sequencing lock
 * once (rs_seq_horizon), which makes committing writers wait an instant.
 *
 * A view whose refresh fails (an error in its handler, a handler past
 * repo_stream.view_handler_timeout) keeps its cursor; the error goes to
 * view_status.last_error and to the server log (once per distinct
 * message), the worker retries it with a backoff of 1 s doubling to 60 s,
 * and the other views go on.  A view gets at most WORKER_SLICE_MS of a
 * round (checked between events); the next round, right after, resumes it.
 * A handler that keeps catching the budget's cancel makes the worker end
 * itself (there is no other way to stop it); the next worker records that
 * for the view and retries it only after a penalty, 60 s doubling to 1 h.
 *
 * Without preloading nothing here runs: refresh_view does the same work
 * when called (pg_cron, docs/views.md).
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "eventlog_sql.h"
#include "spi_sql.h"
#include "views_sql.h"

PGDLLEXPORT void rs_views_worker_main(Datum main_arg);

/* Events per transaction in the worker. */
#define WORKER_BATCH 10000
/* Rounds start at most this often (ms), however often commits wake it. */
#define VIEWS_MIN_GAP_MS 100
/* Backoff after a failed refresh: from 1 s, doubling, at most 60 s. */
#define BACKOFF_MAX_MS 60000
/* After the worker ended itself in a view's handler: from 60 s, doubling, at most 1 h. */
#define STUCK_PENALTY_MAX_MS (3600 * 1000)
/* A view's share of a round (ms): a slow handler delays the others this much at most. */
#define WORKER_SLICE_MS 1000

static int	views_refresh_interval_ms = 1000;
static char *views_database = NULL;

typedef struct ViewsShmem
{
	volatile int worker_procno; /* -1: no worker */
	volatile int32 refreshing;	/* the view the worker is refreshing (0: none) */
	volatile int32 stopped_in;	/* the worker ended itself in this view's handler */
	int32		stuck_view;		/* the last view it ended itself in, and how often in a row */
	int			stuck_times;
} ViewsShmem;

static ViewsShmem *views_shmem = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
views_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ViewsShmem)));
}

static void
views_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	views_shmem = ShmemInitStruct("repo_stream views", sizeof(ViewsShmem), &found);
	if (!found)
	{
		memset(views_shmem, 0, sizeof(*views_shmem));
		views_shmem->worker_procno = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
rs_views_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("repo_stream.views_refresh_interval",
							"How often the background worker refreshes every view (0: never).",
							"Commits that append events wake it sooner. Needs repo_stream in "
							"shared_preload_libraries.",
							&views_refresh_interval_ms, 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	/* SIGHUP, not POSTMASTER: sessions define it too, after startup */
	DefineCustomStringVariable("repo_stream.views_database",
							   "The database whose views the background worker refreshes.",
							   "The worker restarts (after 10 s) to follow a change.",
							   &views_database, "postgres",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("repo_stream.view_handler_timeout",
							"Time budget of each call of a view handler (0: none).",
							"A call that runs longer is cancelled and its refresh fails; the "
							"background worker records the error and goes on with the other views.",
							&rs_view_handler_timeout_ms, 5000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = views_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = views_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "repo_stream");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "rs_views_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "repo_stream views worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "repo_stream views");
	RegisterBackgroundWorker(&worker);
}

void
rs_views_wake(void)
{
	int			procno;

	if (views_shmem == NULL)
		return;
	procno = views_shmem->worker_procno;
	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

static void
worker_detach(int code, Datum arg)
{
	if (views_shmem && views_shmem->worker_procno == MyProc->pgprocno)
		views_shmem->worker_procno = -1;
}

/* ------------------------------------------------------------ rounds */

typedef struct Backoff
{
	int32		id;
	int			failures;
	TimestampTz next_try;
	char	   *last_message;
} Backoff;

static MemoryContext worker_ctx;
static List *backoffs = NIL;

static Backoff *
backoff_of(int32 id)
{
	ListCell   *lc;
	Backoff    *b;

	foreach(lc, backoffs)
	{
		b = lfirst(lc);
		if (b->id == id)
			return b;
	}
	b = MemoryContextAllocZero(worker_ctx, sizeof(Backoff));
	b->id = id;
	backoffs = lappend(backoffs, b);
	return b;
}

static void
start_xact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* refreshes need READ COMMITTED, whatever default_transaction_isolation says */
	XactIsoLevel = XACT_READ_COMMITTED;
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_xact(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* The views to refresh now and the round's horizon; NIL without the extension. */
static List *
round_views(int64 *horizon)
{
	List	   *ids = NIL;
	RsOwnerContext oc;

	start_xact("repo_stream: listing views");
	if (OidIsValid(get_extension_oid("repo_stream", true)))
	{
		rs_enter_owner(&oc);
		SPI_execute("SELECT id FROM repo_stream.views ORDER BY id", true, 0);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			MemoryContext old = MemoryContextSwitchTo(worker_ctx);

			ids = lappend_int(ids, DatumGetInt32(rs_getdatum(i, 1, &isnull)));
			MemoryContextSwitchTo(old);
		}
		/* one horizon for the round: still a valid bound in later transactions */
		if (ids != NIL)
			*horizon = rs_seq_horizon(NULL);
		rs_leave_owner(&oc);
	}
	end_xact();
	return ids;
}

/* Retry view id after delay_ms (0: the backoff); log and record message. */
static void
record_failure_msg(int32 id, const char *message, const char *detail, int64 delay_ms)
{
	Backoff    *b = backoff_of(id);
	int64		delay = delay_ms > 0 ? delay_ms : Min((int64) 1000 << Min(b->failures, 6), BACKOFF_MAX_MS);

	if (b->last_message == NULL || strcmp(b->last_message, message) != 0)
	{
		ereport(WARNING,
				(errmsg("repo_stream view %d: refresh failed: %s", id, message),
				 detail ? errdetail_internal("%s", detail) : 0,
				 errhint("The view keeps its cursor and is retried; repo_stream.view_status shows the error.")));
		if (b->last_message)
			pfree(b->last_message);
		b->last_message = MemoryContextStrdup(worker_ctx, message);
	}
	b->failures++;
	b->next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);

	/* recording it must not stop the worker either: the backoff stands regardless */
	PG_TRY();
	{
		RsOwnerContext oc;

		start_xact("repo_stream: recording a view's error");
		rs_enter_owner(&oc);
		rs_view_set_error(id, message);
		rs_leave_owner(&oc);
		end_xact();
	}
	PG_CATCH();
	{
		ErrorData  *rec;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(worker_ctx);
		rec = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		RESUME_INTERRUPTS();
		ereport(WARNING,
				(errmsg("repo_stream view %d: recording its error failed: %s", id, rec->message)));
		FreeErrorData(rec);
	}
	PG_END_TRY();
}

static void
record_failure(int32 id, ErrorData *edata)
{
	record_failure_msg(id, edata->message, edata->detail, 0);
}

/*
 * A handler ran past its budget catching every cancel: end the worker (in
 * the SIGALRM handler: flags only).  The next worker reads stopped_in.
 */
static void
worker_handler_stuck(void)
{
	views_shmem->stopped_in = views_shmem->refreshing;
	ProcDiePending = true;
	InterruptPending = true;
}

/* At start: did the last worker end itself in a handler?  Then that view waits. */
static void
penalize_stuck_view(void)
{
	int32		id = views_shmem->stopped_in;
	int64		penalty;

	if (id == 0)
		return;
	views_shmem->stopped_in = 0;
	if (views_shmem->stuck_view == id)
		views_shmem->stuck_times++;
	else
	{
		views_shmem->stuck_view = id;
		views_shmem->stuck_times = 1;
	}
	penalty = Min((int64) 60000 << Min(views_shmem->stuck_times - 1, 6), STUCK_PENALTY_MAX_MS);
	record_failure_msg(id,
					   psprintf("its handler ran past repo_stream.view_handler_timeout and caught every cancel: "
								"the views worker ended itself to stop it; retried in " INT64_FORMAT " s",
								penalty / 1000),
					   NULL, penalty);
}

/*
 * A handler may take session-level advisory locks, which would outlive its
 * transaction in the worker's session; the worker itself takes none.
 */
static void
release_session_locks(void)
{
	LockReleaseSession(USER_LOCKMETHOD);
}

/*
 * Bring one view up to the horizon, a batch per transaction, for at most
 * WORKER_SLICE_MS.  True if it stopped there with work left.
 */
static bool
refresh_one(int32 id, int64 horizon)
{
	Backoff    *b = backoff_of(id);
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), WORKER_SLICE_MS);

	if (b->failures > 0 && GetCurrentTimestamp() < b->next_try)
		return false;
	for (;;)
	{
		volatile bool found = false;
		volatile int64 cursor = 0;

		views_shmem->refreshing = id;
		PG_TRY();
		{
			RsOwnerContext oc;
			ViewDef		v;

			start_xact("repo_stream: refreshing a view");
			rs_enter_owner(&oc);
			/* SKIP LOCKED: a refresh_view call holds it; it will do the work */
			if (rs_view_load_id(id, VIEW_LOCK_SKIP, &v))
			{
				found = true;
				rs_views_busy = true;
				(void) rs_view_refresh(&v, horizon, WORKER_BATCH, deadline);
				rs_views_busy = false;
				cursor = v.cursor;
			}
			rs_leave_owner(&oc);
			end_xact();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			HOLD_INTERRUPTS();
			MemoryContextSwitchTo(worker_ctx);
			edata = CopyErrorData();
			FlushErrorState();
			rs_views_busy = false;
			views_shmem->refreshing = 0;
			AbortCurrentTransaction();
			RESUME_INTERRUPTS();
			release_session_locks();
			record_failure(id, edata);
			FreeErrorData(edata);
			return false;
		}
		PG_END_TRY();
		views_shmem->refreshing = 0;
		release_session_locks();
		if (found && views_shmem->stuck_view == id)
			views_shmem->stuck_view = 0;
		if (found && b->failures > 0)
		{
			b->failures = 0;
			if (b->last_message)
				pfree(b->last_message);
			b->last_message = NULL;
		}
		if (!found || cursor >= horizon)
			return false;
		if (GetCurrentTimestamp() >= deadline)
			return true;
		CHECK_FOR_INTERRUPTS();
	}
}

/* One round over every view; true if a view was left with work (its slice ended). */
static bool
refresh_round(void)
{
	int64		horizon = 0;
	List	   *ids = round_views(&horizon);
	ListCell   *lc;
	bool		more = false;

	foreach(lc, ids)
	{
		if (refresh_one(lfirst_int(lc), horizon))
			more = true;
		CHECK_FOR_INTERRUPTS();
	}
	list_free(ids);
	return more;
}

void
rs_views_worker_main(Datum main_arg)
{
	char	   *database;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(views_database, NULL, 0);
	pgstat_report_appname("repo_stream views worker");
	database = pstrdup(views_database);

	worker_ctx = AllocSetContextCreate(TopMemoryContext, "repo_stream views worker",
									   ALLOCSET_DEFAULT_SIZES);
	views_shmem->worker_procno = MyProc->pgprocno;
	views_shmem->refreshing = 0;
	on_shmem_exit(worker_detach, (Datum) 0);
	rs_view_handler_stuck_hook = worker_handler_stuck;
	ereport(LOG,
			(errmsg("repo_stream views worker started in database \"%s\"", views_database)));
	penalize_stuck_view();

	for (;;)
	{
		TimestampTz round_start = GetCurrentTimestamp();
		long		remaining;
		bool		more = false;

		if (views_refresh_interval_ms > 0)
			more = refresh_round();
		/* a view whose slice ended: the next round at once, after the gap below */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 more ? 0L : views_refresh_interval_ms > 0 ? views_refresh_interval_ms : 60000L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (strcmp(database, views_database) != 0)
			{
				ereport(LOG,
						(errmsg("repo_stream views worker: repo_stream.views_database changed; restarting")));
				proc_exit(1);
			}
		}
		/* woken by a commit: coalesce with the commits that follow */
		remaining = VIEWS_MIN_GAP_MS -
			(long) ((GetCurrentTimestamp() - round_start) / 1000);
		if (remaining > 0)
		{
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, remaining, PG_WAIT_EXTENSION);
			CHECK_FOR_INTERRUPTS();
		}
	}
}
