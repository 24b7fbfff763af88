/*
 * views_sql.h - computed views maintained from the event log (backend).
 *
 *   views_sql.c          SQL entry points, view names, the catalog
 *   views_refresh_sql.c  the engine: fill, refresh, rebuild, live counts
 *   views_worker_sql.c   GUCs, shared memory, the background worker
 *
 * docs/views.md explains the design.
 */
#ifndef RS_VIEWS_SQL_H
#define RS_VIEWS_SQL_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "views_path.h"

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
	Oid			owner;			/* handlers run as this role */
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
 * compute it now.  Returns the number of events applied.  Calls handlers.
 * ERROR 0A000 in a REPEATABLE READ or SERIALIZABLE transaction.
 */
int64		rs_view_refresh(ViewDef *v, int64 horizon, int64 max_events);

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
 * The string at path in a record (jsonb), under the same rules as
 * view_path_extract on its DAG-CBOR; NULL when missing or not a string.
 */
text	   *rs_view_jsonb_key(Jsonb *record, const ViewPath *path);

/* True while a refresh, fill or drop runs in this backend (no nesting). */
extern bool rs_views_busy;

/* ---- views_worker_sql.c ---- */

/* From _PG_init: GUCs; with shared_preload_libraries, shmem and the worker. */
void		rs_views_init(void);

/* Wake the background worker (a transaction that appended events committed). */
void		rs_views_wake(void);

#endif
