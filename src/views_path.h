/*
 * views_path.h - the pure parts of computed views (no backend): group_by
 * paths, reading a path's string out of a DAG-CBOR record, and the data
 * root of a #commit or #sync frame's commit.
 *
 * A group_by path is a dotted list of map keys ("subject.uri"), or "$did"
 * for the repo that holds the record.  It descends through maps only: a
 * segment met on anything but a map (an array, a link, bytes) means the
 * path is missing.  The value at the end must be a text string; anything
 * else counts under no key.  The backend's jsonb walker (views_sql.c)
 * follows the same rules on the records table, so the fill from records
 * and the log agree: "$link" and "$bytes" (the JSON forms of links and
 * bytes, which are not maps in DAG-CBOR) are refused as segments.
 */
#ifndef RS_VIEWS_PATH_H
#define RS_VIEWS_PATH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "cid.h"

/* Limits on a group_by path (bytes of text, segments). */
#define VIEW_PATH_MAX_LEN 512
#define VIEW_PATH_MAX_SEGS 16

/*
 * Longest key, in bytes: as long as a DID may be.  A longer string counts
 * under no key, so that a record's content cannot make a key too large
 * for the count table's primary key (about 2,700 bytes) and stop the view.
 */
#define VIEW_KEY_MAX_LEN 2048

typedef struct ViewPath
{
	bool		by_did;			/* "$did" */
	int			n_segs;
	const char *segs[VIEW_PATH_MAX_SEGS];	/* point into the parsed text */
	size_t		lens[VIEW_PATH_MAX_SEGS];
} ViewPath;

/*
 * Parse text[0..len) (which must outlive out).  false with a reason in
 * errmsg when it is empty, too long, has an empty segment (leading,
 * trailing or doubled dot), a control character, a "$link" or "$bytes"
 * segment, or "$did" with other segments.
 */
bool		view_path_parse(const char *text, size_t len, ViewPath *out,
							char *errmsg, size_t errlen);

/*
 * The string at path p in data[0..len), which must be valid DAG-CBOR
 * (dcbor_validate): 1 with *out, *out_len pointing into data; 0 when the
 * path is missing or ends on something other than a text string (or a
 * string holding U+0000, which PostgreSQL text cannot hold, or one longer
 * than VIEW_KEY_MAX_LEN); -1 on
 * malformed input.  p must not be by_did.
 */
int			view_path_extract(const ViewPath *p, const uint8_t *data, size_t len,
							  const uint8_t **out, size_t *out_len);

/*
 * The block with this CID in a CAR: *data and *data_len point into car.
 * Hashes nothing, so it is for CARs the extension wrote itself (its event
 * log), where car_index_build's check of every block would cost more than
 * the rest of reading a small frame.  Bounds-checked: false when the block
 * is absent or the CAR malformed.
 */
bool		view_car_find(const uint8_t *car, size_t len, const uint8_t cid[CID_LEN],
						  const uint8_t **data, size_t *data_len);

/*
 * The MST root (the commit's "data") of a #commit or #sync frame's blocks:
 * the CAR's root block decoded as a commit.  false if the CAR or the
 * commit is malformed or the root block is missing.
 */
bool		view_car_data_root(const uint8_t *car, size_t len, uint8_t out[CID_LEN]);

#endif
