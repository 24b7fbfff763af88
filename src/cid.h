/*
 * cid.h - CIDv1 (sha2-256) compute, parse and format (pure C, no backend).
 *
 * Only the atproto "blessed" CIDs are accepted: version 1, codec dag-cbor
 * (0x71) or raw (0x55), multihash sha2-256 with a 32-byte digest.  All of
 * them are CID_LEN bytes in binary form and CID_TEXT_LEN characters of
 * base32 text ("b" multibase prefix, lower case, no padding).
 */
#ifndef RS_CID_H
#define RS_CID_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define CID_LEN 36
#define CID_TEXT_LEN 59
#define CID_CODEC_DAG_CBOR 0x71
#define CID_CODEC_RAW 0x55

/* CID of DAG-CBOR bytes: 0x01 0x71 0x12 0x20 + sha256(data). */
void		cid_for_dagcbor(const uint8_t *data, size_t len, uint8_t out[CID_LEN]);
void		cid_for_raw(const uint8_t *data, size_t len, uint8_t out[CID_LEN]);

/* Is this a blessed binary CID? */
bool		cid_valid_binary(const uint8_t *cid, size_t len);

/* Writes CID_TEXT_LEN characters plus a NUL into out. */
void		cid_format(const uint8_t cid[CID_LEN], char out[CID_TEXT_LEN + 1]);

/* Parse base32 text; false if not a blessed CID. */
bool		cid_parse(const char *text, size_t len, uint8_t out[CID_LEN]);

#include "sha256.h"		/* rs_sha256 */

#endif
