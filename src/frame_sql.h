/*
 * frame_sql.h - backend helpers around event frames, shared with the
 * modules that show frames to people (the output plugin's JSON mode).
 */
#ifndef RS_FRAME_SQL_H
#define RS_FRAME_SQL_H

#include "postgres.h"
#include "utils/jsonb.h"

#include "frame.h"
#include "keys.h"

/*
 * {"header": {...}, "body": {...}, "blocks_cids": [...]}: header and body
 * as cbor_to_json shows them (blocks as {"$bytes": ...}); for #commit and
 * #sync frames, blocks_cids lists the CIDs of the CAR's blocks in file
 * order.  ERROR 22P03 naming the problem unless the frame decodes strictly
 * and its CAR is valid.
 */
Jsonb	   *rs_frame_to_jsonb(const uint8 *data, size_t len);

/*
 * The steps verify_frame takes before it needs a key.  Decode the frame:
 * ERROR 22P03 if the bytes are not a frame at all (frame_error_is_framing);
 * RS_FRAME_FAILS, after a NOTICE, for a body that does not decode or breaks
 * a lexicon rule (frame_check_lexicon); RS_FRAME_UNSIGNED for a kind with
 * no signature; RS_FRAME_OK for a #commit or #sync, f decoded (then call
 * rs_frame_verify_key, which frees it).
 */
typedef enum RsFrameCheck
{
	RS_FRAME_OK,
	RS_FRAME_FAILS,
	RS_FRAME_UNSIGNED
} RsFrameCheck;

RsFrameCheck rs_frame_open(const uint8 *data, size_t len, Frame *f);

/* frame_verify with the key; false after a NOTICE naming why.  Frees f. */
bool		rs_frame_verify_key(Frame *f, const uint8 pub[ED25519_PUBLIC_KEY_LEN]);

/* NOTICE "<kind> frame seq <n> of <did> does not verify: <why>". */
void		rs_frame_fails(const Frame *f, const char *why);

#endif
