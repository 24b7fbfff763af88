/*
 * commit_sql.h - the write path: what a transaction changed, turned into
 * signed commits and event frames when it commits.
 */
#ifndef RS_COMMIT_SQL_H
#define RS_COMMIT_SQL_H

#include "postgres.h"

#include "cid.h"

/* Largest record value, in DAG-CBOR bytes (SPEC: at most 1,000,000). */
#define RS_MAX_RECORD_BYTES 1000000
/*
 * A commit carries at most this many ops and block bytes: the limits of the
 * subscribeRepos lexicon (#commit.ops, #commit.blocks), decimal and exact.
 */
#define RS_MAX_COMMIT_OPS 200
#define RS_MAX_COMMIT_BYTES 2000000

void		rs_commit_init(void);

/*
 * Take the repo's lock for the rest of the transaction (writes and lifecycle
 * changes of one repo serialize; other repos do not wait).  A lock tag of
 * our own, keyed by the DID's hash, held by the top transaction.
 */
void		rs_repo_lock(const char *did);

/* The repo's status read with a fresh snapshot (after rs_repo_lock), or NULL. */
char	   *rs_repo_status(const char *did);

/* The repo's status as the statement's snapshot sees it (for reads), or NULL. */
char	   *rs_repo_status_seen(const char *did);

/* Set the repo's status (its lock held); "deleted" also drops its tree root. */
void		rs_repo_set_status(const char *did, const char *status);

/*
 * Lock the repo for the rest of the transaction (rs_repo_lock), read its
 * state, and check it may be written; ERROR 42704 for an unknown repo, 55000
 * for a deactivated or deleted one.  Cheap after the first call per repo and
 * transaction.
 */
void		rs_touch_repo(const char *did);

/* Remember a record's bytes by CID for the commit's blocks. */
void		rs_note_block(const uint8 cid[CID_LEN], const uint8 *data, size_t len);

/* A row of records changed: exists says whether the path now has a record. */
void		rs_note_op(const char *did, const char *collection, const char *rkey,
					   bool exists, const uint8 cid[CID_LEN]);

/* Markers the pipeline turns into events at commit, in order with the ops. */
void		rs_note_created(const char *did);
void		rs_note_account(const char *did, bool active, const char *status);
void		rs_note_rotation(const char *did, const bytea *sealed, const char *did_key);
void		rs_note_deleted(const char *did);

/*
 * A repo row written by an import (status active, its new key in
 * repo_keys, data_cid the imported MST root whose nodes are in mst_nodes,
 * head_rev the imported commit's rev): at commit the tree is re-signed by
 * the repo's key with a rev past head_rev, and announced as #sync.
 */
void		rs_note_imported(const char *did);

/* While true, the records trigger records no ops (delete_repo clears rows). */
extern bool rs_suppress_ops;

#endif
