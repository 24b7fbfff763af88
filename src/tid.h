/*
 * tid.h - atproto Timestamp Identifiers (pure C, no backend).
 *
 * A TID is a 64-bit integer, top bit 0, then 53 bits of microseconds since
 * the UNIX epoch, then a 10-bit clock id; written as 13 base32-sortable
 * digits ("234567abcdefghijklmnopqrstuvwxyz"), most significant first, so
 * that string order is numeric order.  See atproto.com/specs/tid.
 */
#ifndef RS_TID_H
#define RS_TID_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "syntax.h"				/* TID_LEN, tid_valid() */

#define TID_TIMESTAMP_MAX ((UINT64_C(1) << 53) - 1)
#define TID_CLOCK_ID_MAX 1023

/*
 * Writes TID_LEN characters plus a NUL into out.  False (out untouched) if
 * the timestamp needs more than 53 bits or the clock id more than 10.
 */
bool		tid_encode(uint64_t timestamp_us, uint32_t clock_id, char out[TID_LEN + 1]);

/*
 * Splits a TID into its timestamp and clock id; false if !tid_valid().
 * Like the reference parser, this accepts a set top bit (first digit 'b'..'j'),
 * which yields a timestamp above TID_TIMESTAMP_MAX that tid_encode refuses.
 */
bool		tid_decode(const char *text, size_t len, uint64_t *timestamp_us, uint32_t *clock_id);

#endif
