/*
 * relay_sql.h - relay mode: the events of several shards, each a
 * repo_stream database, verified, mirrored and re-sequenced into this
 * database's own log (docs/scale-out.md).
 *
 * relay_ingest_sql.c   the replication trigger and _relay_ingest: one shard
 *                      event checked against what the relay last saw of its
 *                      repo (host, seq, signature, since/prevData chain, sync
 *                      1.1 inversion), its ops applied to the mirror of the
 *                      records, the frame queued; the queue appended to the
 *                      event log under relay seqs at pre-commit.
 * relay_sync_sql.c     what needs the shard: its key history for a repo
 *                      (checked against what the relay verified), a fresh
 *                      export to (re)sync a repo, the host's view of a
 *                      repo's status, its events.
 * relay_conn_sql.c     the relay's own libpq connections to its shards, each
 *                      checked to reach the registered shard database, and
 *                      conninfo masking.
 */
#ifndef RS_RELAY_SQL_H
#define RS_RELAY_SQL_H

#include "postgres.h"

#include "executor/spi.h"

#include "cid.h"
#include "keys.h"

/* repos.status values, as in src/sql/50_repo.sql */
#define RELAY_STATUS_LEN 16

/*
 * What the relay knows of one mirrored repo during a transaction: its
 * relay_repos and repos rows, loaded on first use, written back when the
 * queue is flushed.
 */
typedef struct RelayRepo
{
	char	   *did;
	bool		exists;			/* relay_repos has a row */
	bool		local;			/* a repo of this database, not a mirror */
	char	   *shard;
	int64		shard_seq;
	bool		desync;
	char	   *desync_reason;
	bool		desync_changed;
	int			resyncs;
	bool		resync_tried;	/* in this transaction */
	bool		sync_pending;
	int64		sync_pending_seq;
	char		status[RELAY_STATUS_LEN];
	char	   *rev;			/* head_rev; NULL: none yet */
	bool		has_data;
	uint8		data[CID_LEN];	/* data_cid: the MST root of rev */
	bool		has_head;
	uint8		head_cid[CID_LEN];
	bytea	   *head_commit;	/* the signed commit block of rev */
	char	   *did_key;		/* current key */
	bool		dirty;
	int64		last_seq;		/* relay seq of its last event, 0: none yet */
	/* the chain of events re-emitted from the shard's log (see historical()) */
	char	   *hist_rev;		/* NULL: no anchor yet */
	uint8		hist_data[CID_LEN];
	bool		hist_complete;	/* anchored at a first commit or the relay's own state */
	/* the first rev the relay verified from its current host (NULL: none yet) */
	char	   *host_rev;
	/* a #sync from another shard, held until the host deletes the repo */
	char	   *claim_shard;
	int64		claim_seq;
	/* the key history a shard reported in this transaction (rs_relay_fetch_keys) */
	char	   *keys_shard;		/* NULL: none fetched */
	int			n_keys;
	char	  **keys;
	char	  **key_revs;
	char	   *keys_floor;		/* the relay's head when fetched: nothing at or before it is taken */
} RelayRepo;

typedef enum RelayOutcome
{
	RELAY_APPLIED,
	RELAY_HISTORICAL,
	RELAY_DUPLICATE,
	RELAY_DROPPED,
	RELAY_REJECTED,
	RELAY_IGNORED,
	RELAY_REPLAYED
} RelayOutcome;

/* relay_ingest_sql.c */
RelayRepo  *rs_relay_repo(const char *did);
void		rs_relay_repo_create(RelayRepo *st, const char *shard, const char *status);
void		rs_relay_queue(RelayRepo *st, const char *kind, const uint8 *frame, size_t len);
void		rs_relay_queue_sync(RelayRepo *st);
void		rs_relay_announce(RelayRepo *st);
RelayOutcome rs_relay_historical(RelayRepo *st, const char *shard, int64 seq,
								 const uint8 *raw, size_t len);
void		rs_relay_mark_desync(RelayRepo *st, const char *shard, const char *reason);
void		rs_relay_init(void);
/* A saved plan with a generic plan, made on first use into *cache (inside SPI). */
SPIPlanPtr	rs_relay_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *types);

/* The memory context of this transaction's relay state. */
MemoryContext rs_relay_cxt(void);

/* relay_conn_sql.c */

/* A remote result: values as sent in binary (NUL-terminated copies), NULL for SQL NULL. */
typedef struct RelayRows
{
	int			nrows;
	int			ncols;
	char	  **values;			/* nrows * ncols */
	int		   *lengths;
} RelayRows;

/*
 * sql on the shard through the relay's own connection (made if needed, and
 * trusted only if the server is the registered shard database), with text
 * parameters $1...; results in binary, each column's type checked against
 * types (InvalidOid: any).  ERROR (with the remote SQLSTATE) on failure.
 */
RelayRows  *rs_relay_remote(const char *shard, const char *sql, int nparams,
							const char *const *params, int ncols, const Oid *types);
char	   *rs_rows_text(const RelayRows *r, int row, int col);	/* NULL for NULL */
int64		rs_rows_int8(const RelayRows *r, int row, int col, bool *isnull);
bytea	   *rs_rows_bytea(const RelayRows *r, int row, int col);	/* NULL for NULL */

/* The conninfo with every secret option masked, parsed as libpq does. */
char	   *rs_relay_mask_conninfo(const char *conninfo);

/* relay_sync_sql.c */

/*
 * The shard's key history of the repo, checked against what the relay
 * holds: it may not give a rev the relay knows another key, nor (from the
 * repo's host, once the relay verified a rev of it) another key for the
 * relay's head.  Kept in st for this transaction; written to
 * repo_key_history only for a repo the relay has no key of yet (creating
 * its rows if needed).  A key new to the relay is written once something
 * signed with it verifies (rs_relay_take_key).  ERROR if the shard cannot
 * be asked or the history does not fit.
 */
void		rs_relay_fetch_keys(RelayRepo *st, const char *shard);

/*
 * A key of the fetched history (from shard) for rev that the relay does
 * not hold yet and may take (its range starts after the relay's head when
 * fetched), or NULL; *since its first rev.
 */
char	   *rs_relay_new_key_for_rev(RelayRepo *st, const char *shard, const char *rev, char **since);

/* Record a key that verified a commit (repo_key_history). */
void		rs_relay_take_key(RelayRepo *st, const char *key, const char *since);

/* The did:key that signed rev (repo_key_history), or NULL. */
char	   *rs_relay_key_for_rev(const char *did, const char *rev);

/*
 * The repo's status on the shard ("active", "deactivated", "deleted"),
 * or NULL if the shard has no such repo.  ERROR if it cannot be asked.
 */
char	   *rs_relay_remote_status(const char *shard, const char *did);

/* rs_relay_remote_status, "unreachable" (after a WARNING) if the shard cannot be asked. */
char	   *rs_relay_try_remote_status(const char *shard, const char *did);

/*
 * The repo's events in the shard's log with after < seq <= upto, in seq
 * order: *seqs_out (0 for an OutdatedCursor row: the log no longer goes
 * back that far) and *frames_out.  Returns how many.  ERROR if the shard
 * cannot be asked.
 */
int			rs_relay_fetch_events(RelayRepo *st, const char *shard, int64 after, int64 upto,
								  int64 **seqs_out, bytea ***frames_out);

/* The same in a subtransaction: -1 (after a WARNING) if it failed. */
int			rs_relay_try_fetch_events(RelayRepo *st, const char *shard, int64 after, int64 upto,
									  int64 **seqs_out, bytea ***frames_out);

/*
 * Mirror the repo from a fresh export of the shard: keys, records (all
 * replaced), head, shard seq; verified like an import.  With pending, the
 * #sync announcing it waits (relay_add_shard puts it in its place in the
 * window); else it is queued now.  Returns the repo's status on the shard
 * (NULL: unknown there).  ERROR on any failure, leaving st untouched.
 */
char	   *rs_relay_sync_from_export(RelayRepo *st, const char *shard, bool pending);

/*
 * rs_relay_sync_from_export in a subtransaction: on failure st stays (or
 * becomes) desynchronized with the error as reason.  true if in sync.
 */
bool		rs_relay_try_resync(RelayRepo *st, const char *shard, const char *why);

/* rs_relay_fetch_keys in a subtransaction: false (logged) if it failed. */
bool		rs_relay_try_fetch_keys(RelayRepo *st, const char *shard);

#endif
