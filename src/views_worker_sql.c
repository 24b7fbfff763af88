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
 * A view whose refresh fails (an error in its handler, say) keeps its
 * cursor; the error goes to view_status.last_error and to the server log
 * (once per distinct message), the worker retries it with a backoff of 1 s
 * doubling to 60 s, and the other views go on.
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

static int	views_refresh_interval_ms = 1000;
static char *views_database = NULL;

typedef struct ViewsShmem
{
	volatile int worker_procno; /* -1: no worker */
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
		views_shmem->worker_procno = -1;
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

static void
record_failure(int32 id, ErrorData *edata)
{
	Backoff    *b = backoff_of(id);
	RsOwnerContext oc;
	int64		delay = Min((int64) 1000 << Min(b->failures, 6), BACKOFF_MAX_MS);

	if (b->last_message == NULL || strcmp(b->last_message, edata->message) != 0)
	{
		ereport(WARNING,
				(errmsg("repo_stream view %d: refresh failed: %s", id, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 errhint("The view keeps its cursor and is retried; repo_stream.view_status shows the error.")));
		if (b->last_message)
			pfree(b->last_message);
		b->last_message = MemoryContextStrdup(worker_ctx, edata->message);
	}
	b->failures++;
	b->next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);

	start_xact("repo_stream: recording a view's error");
	rs_enter_owner(&oc);
	rs_view_set_error(id, edata->message);
	rs_leave_owner(&oc);
	end_xact();
}

/* Bring one view up to the horizon, a batch per transaction. */
static void
refresh_one(int32 id, int64 horizon)
{
	Backoff    *b = backoff_of(id);

	if (b->failures > 0 && GetCurrentTimestamp() < b->next_try)
		return;
	for (;;)
	{
		int64		applied = 0;
		volatile bool found = false;

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
				applied = rs_view_refresh(&v, horizon, WORKER_BATCH);
				rs_views_busy = false;
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
			AbortCurrentTransaction();
			RESUME_INTERRUPTS();
			record_failure(id, edata);
			FreeErrorData(edata);
			return;
		}
		PG_END_TRY();
		if (found && b->failures > 0)
		{
			b->failures = 0;
			if (b->last_message)
				pfree(b->last_message);
			b->last_message = NULL;
		}
		if (!found || applied < WORKER_BATCH)
			return;
		CHECK_FOR_INTERRUPTS();
	}
}

static void
refresh_round(void)
{
	int64		horizon = 0;
	List	   *ids = round_views(&horizon);
	ListCell   *lc;

	foreach(lc, ids)
	{
		refresh_one(lfirst_int(lc), horizon);
		CHECK_FOR_INTERRUPTS();
	}
	list_free(ids);
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
	on_shmem_exit(worker_detach, (Datum) 0);
	ereport(LOG,
			(errmsg("repo_stream views worker started in database \"%s\"", views_database)));

	for (;;)
	{
		TimestampTz round_start = GetCurrentTimestamp();
		long		remaining;

		if (views_refresh_interval_ms > 0)
			refresh_round();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 views_refresh_interval_ms > 0 ? views_refresh_interval_ms : 60000L,
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
