/*
 * frame_sql.h - backend helpers around event frames, shared with the
 * modules that show frames to people (the output plugin's JSON mode).
 */
#ifndef RS_FRAME_SQL_H
#define RS_FRAME_SQL_H

#include "postgres.h"
#include "utils/jsonb.h"

/*
 * {"header": {...}, "body": {...}, "blocks_cids": [...]}: header and body
 * as cbor_to_json shows them (blocks as {"$bytes": ...}); for #commit and
 * #sync frames, blocks_cids lists the CIDs of the CAR's blocks in file
 * order.  ERROR 22P03 naming the problem unless the frame decodes strictly
 * and its CAR is valid.
 */
Jsonb	   *rs_frame_to_jsonb(const uint8 *data, size_t len);

#endif
