/*
 * frame_split.h - cut a stored frame into its two CBOR items, or drop one
 * top-level body field, without decoding the rest (pure C, no backend).
 *
 * The output plugin streams frames as stored; these helpers serve its
 * options (format=json needs header and body apart, blocks=false drops the
 * body's CAR slice).  They check structure only: each item's heads are
 * read with the strict reader and lengths stay inside the input, but the
 * payloads are not validated (frame_decode in frame.h does that).
 * Iterative, so deep nesting in a corrupt frame cannot exhaust the stack.
 */
#ifndef RS_FRAME_SPLIT_H
#define RS_FRAME_SPLIT_H

#include "buf.h"
#include "frame.h"

/*
 * Offset where the body starts.  FRAME_ERR_CBOR if the header is not a
 * complete item or no body follows it, FRAME_ERR_TRAILING if bytes follow
 * the body.
 */
FrameError	frame_split(const uint8_t *data, size_t len, size_t *body_off);

/*
 * Append to out the frame with the body's top-level field `name` removed
 * (header and every other byte unchanged; canonical order survives a
 * removal).  *removed says whether the field was there; if not, out gets
 * the frame as is.  FRAME_ERR_FIELD if the body is not a map with text
 * keys.  On error out is left as it was.
 */
FrameError	frame_drop_field(const uint8_t *data, size_t len, const char *name,
							 RsBuf *out, bool *removed);

#endif
