/*
 * eventlog_sql.h - the bounded event log: gapless sequence numbers taken at
 * commit time, segment rotation for retention, and the cursor API.
 */
#ifndef RS_EVENTLOG_SQL_H
#define RS_EVENTLOG_SQL_H

#include "postgres.h"

#include "utils/snapshot.h"

#include "buf.h"

/* One frame waiting for its seq; encode() writes the whole frame. */
typedef struct RsPendingEvent
{
	const char *did;
	const char *kind;			/* "commit", "account" or "sync" */
	void		(*encode) (const void *payload, int64 seq, RsBuf *out);
	const void *payload;
} RsPendingEvent;

/*
 * Stamp seqs and append the frames, in order; called at pre-commit, inside
 * rs_enter_owner.  seqs[i] gets event i's seq.  Holds the sequencing lock in
 * shared mode until the transaction ends.  ERROR 55000 if the first seq is
 * not above every seq the log has held (event_seq was moved backwards).
 * Never waits on another transaction, except for the sequencing lock while
 * a reader computes its horizon (an instant).
 */
void		rs_eventlog_append(const RsPendingEvent *events, int n, int64 *seqs);

/*
 * After rs_eventlog_append, as the last step of pre-commit: rotate the ring
 * if the current segment is due (skipping, never waiting, if it cannot).
 */
void		rs_eventlog_rotate_if_due(void);

/*
 * The seq horizon: every seq at or below it belongs to a transaction that
 * has ended, and every seq drawn later is higher.  Takes the sequencing
 * lock in exclusive mode for an instant (waiting for commits in flight).
 * With snapshot non-NULL, also returns a registered snapshot taken while
 * no writer is in flight: it sees exactly the record changes whose events
 * have seqs <= horizon, which is how an initial copy (a view's fill, an
 * export) hands off exactly to the log.  Unregister it when done.  Runs
 * inside rs_enter_owner.
 */
int64		rs_seq_horizon(Snapshot *snapshot);

/*
 * A read of the log whose relation locks end with it instead of with the
 * transaction, so that an idle transaction that read the log does not hold
 * back the ring's rotation (events_since; the views' refresh may use it).
 * Between begin and end, take locks and nothing else that outlives the end:
 * close what you open, register snapshots before begin, and copy out (and
 * detoast) every value you keep, since a rotation may truncate a segment
 * right after end.  Locks the transaction held before begin stay held.
 */
typedef struct RsLogRead
{
	struct ResourceOwnerData *saved;
	struct ResourceOwnerData *owner;
} RsLogRead;

void		rs_log_read_begin(RsLogRead *read);
void		rs_log_read_end(RsLogRead *read);

void		rs_eventlog_define_gucs(void);

#endif
