/*
 * car_export.h - a repo as one CARv1 stream, cut into bounded chunks (pure
 * C, no backend): com.atproto.sync.getRepo, with and without since.
 *
 * The CAR's single root is the signed commit; its blocks come in the AT
 * repository's stream order (the IETF AT repository draft, "Block
 * Ordering": a preorder traversal): the commit, then the MST depth-first
 * from the root (a node, its left subtree, then each entry's record and the
 * subtree after it; see mst_iter_*).  Every block follows the block that
 * links to it, so a reader can verify while it reads, holding one node per
 * layer.
 *
 * The caller supplies the blocks: MST nodes through an MstStore, records
 * through a callback that may also say "skip" (a record block already
 * written under another key, or one a diff's reader already holds), and,
 * for diffs, a node filter: a node it rejects is left out with its whole
 * subtree.  Memory is the walk (one decoded node per layer) plus one chunk
 * and at most one block beyond it, whatever the size of the repo.
 */
#ifndef RS_CAR_EXPORT_H
#define RS_CAR_EXPORT_H

#include "buf.h"
#include "cid.h"
#include "mst.h"

/* The record block for the leaf key -> cid: MST_OK with *data and *len
 * (valid until the next call), or MST_OK with *skip set to leave it out.
 * Any other result stops the export (the message is the caller's). */
typedef MstError (*CarExportRecordFn) (void *ctx, const char *key, size_t key_len,
									   const uint8_t cid[CID_LEN],
									   const uint8_t **data, size_t *len, bool *skip);

/* Whether the node just fetched (and so its subtree) goes in. */
typedef bool (*CarExportNodeFilterFn) (void *ctx, const uint8_t cid[CID_LEN]);

typedef struct CarExportSource
{
	MstStore	nodes;
	CarExportRecordFn record;
	CarExportNodeFilterFn include_node; /* NULL: every node (a full export) */
	void	   *ctx;
} CarExportSource;

typedef struct CarExport CarExport;

/*
 * An export of the tree under data_root, rooted at the commit block
 * (commit_cid, commit bytes, copied).  Nothing is fetched yet.
 */
CarExport  *car_export_begin(const CarExportSource *src,
							 const uint8_t commit_cid[CID_LEN],
							 const uint8_t *commit, size_t commit_len,
							 const uint8_t data_root[CID_LEN]);

/*
 * Append the next max bytes of the CAR to out (max > 0), fewer only at the
 * end, where *done is set.  Concatenated, the pieces are the CAR.  Errors
 * come from the store, the record callback or the walk's checks
 * (car_export_errmsg names the node or key).
 */
MstError	car_export_next(CarExport *ex, RsBuf *out, size_t max, bool *done);

const char *car_export_errmsg(const CarExport *ex);

typedef struct CarExportStats
{
	size_t		nodes;			/* node blocks written */
	size_t		records;		/* record blocks written */
	size_t		skipped_records;	/* leaves whose block was left out */
	uint64_t	bytes;			/* CAR bytes produced so far */
} CarExportStats;

void		car_export_stats(const CarExport *ex, CarExportStats *stats);
void		car_export_free(CarExport *ex);

#endif
