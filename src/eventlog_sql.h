/*
 * eventlog_sql.h - the bounded event log: gapless sequence numbers taken at
 * commit time, segment rotation for retention, and the cursor API.
 */
#ifndef RS_EVENTLOG_SQL_H
#define RS_EVENTLOG_SQL_H

#include "postgres.h"

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
 * Stamp seqs and append the frames, in order; called at pre-commit.  Holds
 * the sequencing lock in shared mode until the transaction ends.
 */
void		rs_eventlog_append(const RsPendingEvent *events, int n);

void		rs_eventlog_define_gucs(void);

#endif
