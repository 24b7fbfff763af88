/*
 * notify_sql.h: NOTIFY repo_stream_events for committed events.
 *
 * Without shared_preload_libraries, each transaction that appends events
 * sends its own NOTIFY before it commits.  PostgreSQL serializes the
 * commits of notifying transactions (a database-wide lock held through the
 * WAL flush), so with repo_stream preloaded a per-database background
 * worker sends them instead: one NOTIFY for every batch of commits, with the
 * highest committed seq as the payload.
 */
#ifndef RS_NOTIFY_SQL_H
#define RS_NOTIFY_SQL_H

#include "postgres.h"

/* _PG_init: GUC repo_stream.notify; shared memory when preloaded. */
void		rs_notify_init(void);

/*
 * Pre-commit: this transaction appended events up to seq.  Either queues
 * NOTIFY in the transaction or leaves it to the database's worker after
 * the commit.  Nothing when repo_stream.notify is off.
 */
void		rs_notify_events(int64 seq);

/*
 * End of the top transaction: hands a committed seq to the notify worker
 * and wakes the views worker.
 */
void		rs_notify_xact_end(bool committed);

#endif
