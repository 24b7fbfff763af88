/*
 * store_sql.h - direct access to the extension's tables for the write path.
 *
 * The write path runs per commit, where SPI's parse-analysis, executor
 * start-up and permission checks cost more than the row operations they
 * wrap.  These helpers do what PostgreSQL's catalog code does instead:
 * heap_insert/update/delete plus index maintenance, and lookups through a
 * table's primary key.  They check no privileges and fire no triggers, so
 * they are only for the extension's own tables, which no application role
 * may write (the records table keeps going through the executor, so
 * triggers, constraints and row-level security apply to it).
 */
#ifndef RS_STORE_SQL_H
#define RS_STORE_SQL_H

#include "postgres.h"

#include "access/htup.h"
#include "storage/itemptr.h"
#include "storage/lockdefs.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

#define RS_EVENT_SEGMENTS 8

/* The tables, by name in schema repo_stream. */
typedef enum RsRel
{
	RS_REL_REPOS,
	RS_REL_REPO_KEYS,
	RS_REL_KEY_HISTORY,
	RS_REL_RECORDS,
	RS_REL_MST_NODES,
	RS_REL_RELAY_REPOS,
	RS_REL_LOG_STATE,
	RS_REL_EVENT_SEQ,
	RS_REL_EVENT_LOG_0,			/* event_log_<n> is RS_REL_EVENT_LOG_0 + n */
	RS_REL_COUNT = RS_REL_EVENT_LOG_0 + RS_EVENT_SEGMENTS
} RsRel;

/*
 * OID of the table, cached per backend until any relcache invalidation
 * (the extension may be dropped and created again).  ERROR 42P01 naming it
 * if it is missing.
 */
Oid			rs_rel_oid(RsRel rel);

/* table_open of the table with lockmode. */
Relation	rs_rel_open(RsRel rel, LOCKMODE lockmode);

/*
 * The tuple whose primary key equals keys[0..nkeys) (in the key's column
 * order; text and bytea columns), as snapshot sees it: a palloc'd copy, or
 * NULL.  Its t_self is the tuple's TID.
 */
HeapTuple	rs_rel_lookup(Relation rel, Snapshot snapshot, int nkeys, const Datum *keys);

/* Insert a tuple into the table and every index of it (unique checks on). */
void		rs_rel_insert(Relation rel, Datum *values, bool *nulls);

/*
 * Replace the columns marked in replace of the tuple oldtup (from
 * rs_rel_lookup), maintaining indexes when the update is not HOT; returns
 * the new version (palloc'd; its t_self is its TID).  The caller holds the
 * lock that keeps others from updating it.
 */
HeapTuple	rs_rel_update(Relation rel, HeapTuple oldtup,
						  Datum *values, bool *nulls, bool *replace);

/* Delete the tuple at tid (index entries go with VACUUM). */
void		rs_rel_delete(Relation rel, ItemPointer tid);

/*
 * A fresh snapshot, registered: it sees every transaction committed before
 * now, whatever the isolation level.  The write path reads its own tables
 * with it after taking a repo's lock.  Unregister it when done.
 */
Snapshot	rs_fresh_snapshot(void);

#endif
