/*
 * repo_stream.c - module entry point: routes the pure modules' allocations
 * into palloc so an ERROR anywhere releases them with the memory context,
 * defines the GUCs and installs the LOCK TABLE guard (lock_guard_sql.c).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include <malloc.h>
#include <sodium.h>

#include "buf.h"
#include "commit_sql.h"
#include "notify_sql.h"
#include "eventlog_sql.h"
#include "keys_sql.h"
#include "lock_guard_sql.h"
#include "relay_sql.h"
#include "snapshot_sql.h"
#include "views_sql.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static void *
rs_palloc(size_t size)
{
	return palloc_extended(size, MCXT_ALLOC_HUGE);
}

static void *
rs_repalloc(void *ptr, size_t size)
{
	return repalloc_huge(ptr, size);
}

static void
rs_pfree(void *ptr)
{
	pfree(ptr);
}

void
_PG_init(void)
{
	rs_allocator.alloc = rs_palloc;
	rs_allocator.realloc = rs_repalloc;
	rs_allocator.free = rs_pfree;

	/*
	 * Keep freed heap memory instead of handing it back to the kernel after
	 * every commit: on virtual machines the page faults and TLB shootdowns
	 * of that churn cost more than the work itself (measured with perf).
	 */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	rs_commit_init();
	rs_relay_init();
	rs_notify_init();
	rs_eventlog_define_gucs();

	if (sodium_init() < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("repo_stream: libsodium failed to initialize")));

	rs_keys_define_gucs();
	rs_snapshot_define_gucs();
	rs_views_init();
	rs_lock_guard_init();

	/* Last: drops placeholders "repo_stream.*" that no module defined. */
	MarkGUCPrefixReserved("repo_stream");
}
