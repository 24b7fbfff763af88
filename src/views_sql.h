/*
 * views_sql.h - computed views maintained from the event log (backend).
 *
 *   views_sql.c          SQL entry points, view names, the catalog
 *   views_refresh_sql.c  the engine: fill, refresh, rebuild, live counts
 *   views_store_sql.c    a count view's tables: memory and counts by heap and index calls
 *   views_worker_sql.c   GUCs, shared memory, the background worker
 *
 * docs/views.md explains the design.
 */
#ifndef RS_VIEWS_SQL_H
#define RS_VIEWS_SQL_H

#include "postgres.h"

#include "access/htup.h"
#include "storage/lockdefs.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"
#include "utils/timestamp.h"

#include "views_path.h"

/* sha256 of what defines a handler's behaviour (rs_view_handler_digest) */
#define VIEW_HANDLER_DIGEST_LEN 32

/* A handler changed since its view was created (owner or definition). */
#define ERRCODE_VIEW_HANDLER_CHANGED MAKE_SQLSTATE('5','5','R','1','0')

/* A view as its catalog row (repo_stream.views) describes it. */
typedef struct ViewDef
{
	int32		id;
	char	   *name;			/* canonical: schema-qualified, quoted as SQL needs */
	bool		is_count;		/* count view; else handler view */
	char	   *collection;		/* NULL: every collection (handler views) */
	char	   *group_by;
	ViewPath	path;			/* parsed group_by; segs point into group_by */
	Oid			count_table;
	char	   *count_rel;		/* quoted qualified name of the count table */
	char	   *memory_rel;		/* memory table; NULL for $did and handler views */
	Oid			handler;
	Oid			owner;			/* the creator: handlers run as it; refreshes and drops are its */
	Oid			handler_owner;	/* the handler's owner at creation (InvalidOid: not recorded) */
	bool		has_digest;		/* handler_digest was recorded */
	uint8		handler_digest[VIEW_HANDLER_DIGEST_LEN];	/* rs_view_handler_digest at creation */
	int64		cursor;
} ViewDef;

/* How rs_view_load locks the row. */
typedef enum ViewLock
{
	VIEW_LOCK_NONE,
	VIEW_LOCK_WAIT,				/* FOR UPDATE: serializes refreshes of a view */
	VIEW_LOCK_SKIP				/* FOR UPDATE SKIP LOCKED (the worker) */
} ViewLock;

/* Events read and applied per round trip (and per flush of a count view). */
#define VIEW_CHUNK_EVENTS 1000

/* ---- views_sql.c (inside rs_enter_owner) ---- */

/*
 * Load a view by id into out (palloc'd in the caller's context); false if
 * there is none, or with VIEW_LOCK_SKIP if another transaction holds it.
 */
bool		rs_view_load_id(int32 id, ViewLock lock, ViewDef *out);

/* Set the view's last error (the worker, after a failed refresh). */
void		rs_view_set_error(int32 id, const char *message);

/* ---- views_refresh_sql.c (inside rs_enter_owner, view row locked) ---- */

/*
 * Apply the events in (cursor, horizon], at most max_events of them
 * (0: no limit), and advance the cursor in the view row; a view whose
 * cursor predates the retained window is rebuilt instead.  horizon 0:
 * compute it now.  deadline (0: none): stop at the first event boundary
 * after it (the worker's share of a round per view).  Returns the number
 * of events applied; v->cursor gets the new cursor.  Calls handlers.
 * ERROR 0A000 in a REPEATABLE READ or SERIALIZABLE transaction.
 */
int64		rs_view_refresh(ViewDef *v, int64 horizon, int64 max_events, TimestampTz deadline);

/*
 * Fill a new view from the records with an exact handoff to the log
 * (rs_seq_horizon): count tables and memory from the records its snapshot
 * sees, or handler calls with "create"; sets the cursor to the horizon.
 */
void		rs_view_fill(ViewDef *v);

/* The count of key as of now (stored count + unapplied events). */
int64		rs_view_live(ViewDef *v, const char *key);

/* The handler view checks: ERROR 42P13 naming the function. */
void		rs_view_check_handler(Oid handler);

/*
 * The sha256 of the pg_proc fields that define what handler does (owner,
 * language, body, binary, settings, security, volatility, ...) into out;
 * *owner gets its owner.  A handler view records both at creation and
 * refuses to call a handler whose digest or owner differs.
 */
void		rs_view_handler_digest(Oid handler, Oid *owner, uint8 out[VIEW_HANDLER_DIGEST_LEN]);

/*
 * repo_stream.view_handler_timeout: each handler call's budget in ms
 * (0: none); views_worker_sql.c defines it.
 */
extern int	rs_view_handler_timeout_ms;

/*
 * Called (in a signal handler: flags only) when a handler keeps running
 * seconds past its budget, catching every cancel.  The worker sets it to
 * end itself; elsewhere NULL (the cancels go on).
 */
extern void (*rs_view_handler_stuck_hook) (void);

/*
 * The string at path in a record (jsonb), under the same rules as
 * view_path_extract on its DAG-CBOR; NULL when missing or not a string.
 */
text	   *rs_view_jsonb_key(Jsonb *record, const ViewPath *path);

/* True while a refresh, fill or drop runs in this backend (no nesting). */
extern bool rs_views_busy;

/* ---- views_store_sql.c (inside rs_enter_owner) ---- */

/* A count view's tables, open for one refresh or live count. */
typedef struct ViewTables
{
	Relation	count;
	Relation	memory;			/* NULL for $did views */
	Oid			memory_index;	/* its btree on h */
	LOCKMODE	lockmode;
} ViewTables;

/*
 * The memory's h of a path: the 32-bit hash_bytes of the DID above that of
 * the rkey (as the bits of an int8), so a repo's paths share the top half.
 * Equal for equal paths; a different path may collide, so rows are always
 * compared by (did, rkey) too.
 */
int64		rs_view_path_hash(const char *did, size_t did_len, const char *rkey, size_t rkey_len);

/* pg_class OID of view id's memory table (InvalidOid if there is none). */
Oid			rs_view_memory_oid(int32 id);

/*
 * Open the count table and the memory (RowExclusiveLock to write, else
 * AccessShareLock, held to the end of the transaction).  ERROR 42P01 if the
 * memory is missing, 55000 if it is not (h, did, rkey, key) with one index.
 */
void		rs_view_tables_open(ViewTables *t, const ViewDef *v, bool write);
void		rs_view_tables_close(ViewTables *t);

/* A memory row: rkey, key (palloc'd) and a copy of the row (its t_self is its TID). */
typedef void (*ViewMemoryFn) (void *arg, const char *rkey, const char *key, HeapTuple row);

/* The memory row of path (did, rkey) as snap sees it, if any, to fn. */
void		rs_view_memory_find(ViewTables *t, Snapshot snap, const char *did, const char *rkey,
								ViewMemoryFn fn, void *arg);

/* Every memory row of repo did as snap sees it, to fn. */
void		rs_view_memory_repo(ViewTables *t, Snapshot snap, const char *did, ViewMemoryFn fn, void *arg);

/* Add the row of a path counted under key (the path has none). */
void		rs_view_memory_insert(ViewTables *t, const char *did, const char *rkey, const char *key);

/* Change the key of a row found above; key NULL deletes it. */
void		rs_view_memory_set(ViewTables *t, HeapTuple row, const char *key);

/* The stored count of key as snap sees it (0 without a row). */
int64		rs_view_count_get(ViewTables *t, Snapshot snap, const char *key);

/*
 * Add deltas[i] to the count of keys[i], for i < n: insert the row, update
 * it, or delete it when the count reaches zero.  Keys in the count table's
 * order ("C", bytewise) share the pages their probes descend through.
 * ERROR XX001 (naming the view and key) if a count would go below zero:
 * the memory no longer matches the table.
 */
void		rs_view_count_add(ViewTables *t, Snapshot snap, const ViewDef *v, int n,
							  const char *const *keys, const int64 *deltas);

/* ---- views_worker_sql.c ---- */

/* From _PG_init: GUCs; with shared_preload_libraries, shmem and the worker. */
void		rs_views_init(void);

/* Wake the background worker (a transaction that appended events committed). */
void		rs_views_wake(void);

#endif
