/*
 * notify_sql.c: NOTIFY repo_stream_events, in the writing transaction or
 * from a per-database background worker.
 *
 * A NOTIFY queued in a transaction makes its commit take a database-wide
 * lock until the commit record is flushed, so notifying writers commit one
 * at a time and lose group commit.  When repo_stream is preloaded, writers
 * instead publish their highest seq in shared memory after they commit and
 * wake the database's notify worker, which sends one NOTIFY per batch.
 *
 * What a listener can rely on, either way: after a transaction that wrote
 * events commits, a notification on repo_stream_events follows whose payload
 * is a seq at or above the transaction's highest; every seq up to the
 * payload is committed.  With the worker several commits share one
 * notification.  Aborted transactions notify nothing.
 *
 * The worker exits after NOTIFY_IDLE_MS without commits (so DROP DATABASE,
 * which waits up to 5 s for other sessions, is not refused) and the next
 * commit starts it again; that commit notifies in-transaction meanwhile.
 *
 * The same end-of-transaction hook wakes the computed views' worker.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "notify_sql.h"
#include "views_sql.h"

#define NOTIFY_CHANNEL "repo_stream_events"
#define NOTIFY_SLOTS 16			/* databases with a worker at a time */
#define NOTIFY_IDLE_MS 2000
#define NOTIFY_START_TIMEOUT_MS 10000

typedef enum
{
	SLOT_FREE = 0,
	SLOT_STARTING,				/* registered, not yet running */
	SLOT_RUNNING,
	SLOT_EXITING
} SlotState;

typedef struct NotifySlot
{
	Oid			dboid;
	SlotState	state;
	TimestampTz started_at;		/* when SLOT_STARTING began */
	Latch	   *latch;			/* the worker's, while running */
	int			pending;		/* transactions past pre-commit relying on it */
	int64		published;		/* highest committed seq handed over */
	int64		sent;			/* highest seq notified */
} NotifySlot;

typedef struct NotifyShared
{
	slock_t		mutex;
	NotifySlot	slots[NOTIFY_SLOTS];
} NotifyShared;

static bool notify_on_commit = true;
static NotifyShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* this transaction's hand-over, between pre-commit and its end */
static int	my_slot = -1;
static int64 my_seq = 0;
static bool appended = false;	/* wake the views worker at commit */

PGDLLEXPORT void rs_notify_worker_main(Datum arg);

static void
notify_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(NotifyShared)));
}

static void
notify_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("repo_stream notify", sizeof(NotifyShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(NotifyShared));
		SpinLockInit(&shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
rs_notify_init(void)
{
	DefineCustomBoolVariable("repo_stream.notify",
							 "Send NOTIFY repo_stream_events (payload: the highest committed seq) when events commit.",
							 "Without shared_preload_libraries each writing transaction notifies, and "
							 "PostgreSQL serializes the commits of notifying transactions; preloaded, a "
							 "background worker per database sends one notification per batch of commits.",
							 &notify_on_commit, true, PGC_SUSET, 0, NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = notify_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = notify_shmem_startup;
}

/* Registers a worker for slot i; false when no bgworker slot is free. */
static bool
launch_worker(int i)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	/* restarted after an error or pg_terminate_backend, not after exit(0) */
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "repo_stream");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "rs_notify_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "repo_stream notify worker for database %u", MyDatabaseId);
	snprintf(worker.bgw_type, BGW_MAXLEN, "repo_stream notify");
	worker.bgw_main_arg = Int32GetDatum(i);
	worker.bgw_notify_pid = 0;
	return RegisterDynamicBackgroundWorker(&worker, NULL);
}

/* The slot of this database, claimed if free; -1 when all are taken. */
static int
find_slot(void)
{
	int			free_slot = -1;

	for (int i = 0; i < NOTIFY_SLOTS; i++)
	{
		if (shared->slots[i].state != SLOT_FREE && shared->slots[i].dboid == MyDatabaseId)
			return i;
		if (free_slot < 0 && shared->slots[i].state == SLOT_FREE)
			free_slot = i;
	}
	return free_slot;
}

void
rs_notify_events(int64 seq)
{
	char		payload[32];
	bool		launch = false;
	TimestampTz now;
	int			i;

	appended = true;
	if (!notify_on_commit)
		return;
	if (my_slot >= 0)
	{
		/* appended again in the same transaction */
		my_seq = Max(my_seq, seq);
		return;
	}
	if (shared != NULL)
	{
		now = GetCurrentTimestamp();
		SpinLockAcquire(&shared->mutex);
		i = find_slot();
		if (i >= 0)
		{
			NotifySlot *s = &shared->slots[i];

			if (s->state == SLOT_RUNNING)
			{
				s->pending++;
				my_slot = i;
				my_seq = seq;
			}
			else if (s->state == SLOT_FREE ||
					 (s->state == SLOT_STARTING &&
					  TimestampDifferenceExceeds(s->started_at, now, NOTIFY_START_TIMEOUT_MS)))
			{
				/* a worker that never came up is replaced */
				s->dboid = MyDatabaseId;
				s->state = SLOT_STARTING;
				s->started_at = now;
				s->published = s->sent = 0;
				launch = true;
			}
		}
		SpinLockRelease(&shared->mutex);
		if (my_slot >= 0)
			return;
		if (launch && !launch_worker(i))
		{
			SpinLockAcquire(&shared->mutex);
			shared->slots[i].state = SLOT_FREE;
			SpinLockRelease(&shared->mutex);
		}
	}
	/* no worker (yet): this transaction notifies itself */
	snprintf(payload, sizeof(payload), INT64_FORMAT, seq);
	Async_Notify(NOTIFY_CHANNEL, payload);
}

void
rs_notify_xact_end(bool committed)
{
	Latch	   *latch = NULL;
	NotifySlot *s;

	if (appended && committed)
		rs_views_wake();
	appended = false;
	if (my_slot < 0)
		return;
	s = &shared->slots[my_slot];
	SpinLockAcquire(&shared->mutex);
	if (committed && my_seq > s->published)
		s->published = my_seq;
	s->pending--;
	latch = s->latch;
	SpinLockRelease(&shared->mutex);
	/* the worker cannot exit while pending > 0, so latch is still its own */
	if (committed && latch)
		SetLatch(latch);
	my_slot = -1;
	my_seq = 0;
}

static void
worker_cleanup(int code, Datum arg)
{
	NotifySlot *s = &shared->slots[DatumGetInt32(arg)];

	SpinLockAcquire(&shared->mutex);
	s->latch = NULL;
	/*
	 * Leaving with work to do (an error, pg_terminate_backend): the slot
	 * stays claimed and the postmaster restarts the worker in a second.
	 */
	if (s->state == SLOT_EXITING)
		s->state = SLOT_FREE;
	else
	{
		s->state = SLOT_STARTING;
		s->started_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&shared->mutex);
}

/*
 * Background worker: bgw_main_arg is the slot index.  Sends NOTIFY
 * repo_stream_events with the highest committed seq whenever it grows;
 * exits (code 0, not restarted) after NOTIFY_IDLE_MS with nothing to send.
 */
void
rs_notify_worker_main(Datum arg)
{
	int			i = DatumGetInt32(arg);
	NotifySlot *s;
	Oid			dboid;
	bool		done;
	TimestampTz last_work;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	if (shared == NULL)
		proc_exit(0);			/* not preloaded: cannot happen, nothing to do */
	s = &shared->slots[i];

	SpinLockAcquire(&shared->mutex);
	dboid = s->dboid;
	done = s->state != SLOT_STARTING;
	SpinLockRelease(&shared->mutex);
	/* restarted after a crash reset the slots: nobody waits for this one */
	if (done || !OidIsValid(dboid))
		proc_exit(0);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	before_shmem_exit(worker_cleanup, Int32GetDatum(i));
	SpinLockAcquire(&shared->mutex);
	s->latch = MyLatch;
	s->state = SLOT_RUNNING;
	SpinLockRelease(&shared->mutex);
	last_work = GetCurrentTimestamp();

	for (;;)
	{
		int64		published;
		int64		sent;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		done = false;
		SpinLockAcquire(&shared->mutex);
		published = s->published;
		sent = s->sent;
		if (published <= sent && s->pending == 0 &&
			TimestampDifferenceExceeds(last_work, GetCurrentTimestamp(), NOTIFY_IDLE_MS))
		{
			s->state = SLOT_EXITING;
			done = true;
		}
		SpinLockRelease(&shared->mutex);
		if (done)
			proc_exit(0);

		if (published > sent)
		{
			char		payload[32];

			snprintf(payload, sizeof(payload), INT64_FORMAT, published);
			pgstat_report_activity(STATE_RUNNING, "NOTIFY " NOTIFY_CHANNEL);
			StartTransactionCommand();
			Async_Notify(NOTIFY_CHANNEL, payload);
			CommitTransactionCommand();
			pgstat_report_activity(STATE_IDLE, NULL);
			SpinLockAcquire(&shared->mutex);
			s->sent = published;
			SpinLockRelease(&shared->mutex);
			last_work = GetCurrentTimestamp();
			continue;			/* more may have been published meanwhile */
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 NOTIFY_IDLE_MS / 4, PG_WAIT_EXTENSION);
	}
}
