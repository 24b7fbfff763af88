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
/* A commit carries at most this many ops and about this many block bytes. */
#define RS_MAX_COMMIT_OPS 200
#define RS_MAX_COMMIT_BYTES (2 * 1024 * 1024)

void		rs_commit_init(void);

/*
 * Lock the repo row for the rest of the transaction (writes to one repo
 * serialize) and check it may be written; ERROR for an unknown, deactivated
 * or deleted repo.  Cheap after the first call per repo and transaction.
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
