/*
 * snapshot_sql.h - what the snapshot functions (car_export_sql.c,
 * car_import_sql.c) share: their SQLSTATE, the repo row they start from,
 * and progress shown in pg_stat_activity.
 */
#ifndef RS_SNAPSHOT_SQL_H
#define RS_SNAPSHOT_SQL_H

#include "postgres.h"

#include "cid.h"

/*
 * RepoDeactivated (atproto's error name): export_repo or record_proof of a
 * deactivated repo.  Class 55, object not in prerequisite state.
 */
#define ERRCODE_REPO_DEACTIVATED MAKE_SQLSTATE('5','5','R','0','1')

/* A repo's head as one snapshot sees it. */
typedef struct RsRepoHead
{
	char	   *did;
	char	   *rev;			/* head_rev */
	int64		seq;			/* last_seq: its latest event */
	uint8		commit_cid[CID_LEN];
	bytea	   *commit;			/* the signed commit block */
	uint8		data[CID_LEN];	/* the MST root */
} RsRepoHead;

/*
 * The head of an active repo, read with the active snapshot (inside
 * rs_enter_owner; results in the caller's context).  ERROR 42704 for an
 * unknown or deleted repo, ERRCODE_REPO_DEACTIVATED for a deactivated one,
 * XX001 for a head that does not parse.
 */
void		rs_read_repo_head(const char *did, RsRepoHead *head, MemoryContext cxt);

/*
 * Show progress in pg_stat_activity.query for this backend (PostgreSQL 15
 * has no progress view for extensions): "repo_stream <what>: ...".  At most
 * a few times a second; rs_progress_end puts the query text back.
 */
void		rs_progress(bool force, const char *fmt,...) pg_attribute_printf(2, 3);
void		rs_progress_end(void);

/* Defines repo_stream.export_dedup_cids; _PG_init calls it. */
void		rs_snapshot_define_gucs(void);

#endif
