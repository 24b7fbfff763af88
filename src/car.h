/*
 * car.h - CARv1 writer and strict reader (pure C, no backend).
 *
 * A CARv1 file (ipld.io/specs/transport/car/carv1) is
 *
 *   varint(len(header)) header   header = DAG-CBOR {roots: [cid...], version: 1}
 *   varint(len(cid) + len(data)) cid data      (repeated, once per block)
 *
 * with varints in unsigned LEB128 (multiformats unsigned-varint: at most 9
 * bytes, shortest form).  The writer produces exactly that, one root.  The
 * reader accepts what atproto produces and nothing looser: shortest-form
 * varints that stay inside the input, a header that is valid DAG-CBOR with
 * exactly the keys roots (one or more links) and version (1), and blocks
 * whose CID is a blessed atproto CID (CIDv1, dag-cbor or raw, sha2-256) and
 * whose bytes hash to that CID.  Block contents are not decoded here.
 *
 * Nothing is copied: blocks and roots point into the caller's input.
 */
#ifndef RS_CAR_H
#define RS_CAR_H

#include "buf.h"
#include "cid.h"

/* Longest unsigned varint the reader accepts (63 bits, as multiformats). */
#define CAR_VARINT_MAX_BYTES 9

typedef enum CarError
{
	CAR_OK = 0,
	CAR_ERR_EMPTY,				/* no input at all */
	CAR_ERR_VARINT_TRUNCATED,	/* input ends inside a varint */
	CAR_ERR_VARINT_NOT_MINIMAL, /* varint has a redundant trailing 0x00 group */
	CAR_ERR_VARINT_TOO_LONG,	/* more than CAR_VARINT_MAX_BYTES bytes */
	CAR_ERR_LENGTH,				/* a section length runs past the input */
	CAR_ERR_HEADER_CBOR,		/* header is not valid DAG-CBOR */
	CAR_ERR_HEADER_SHAPE,		/* header is not exactly {roots, version} */
	CAR_ERR_VERSION,			/* version is not 1 */
	CAR_ERR_ROOTS,				/* roots is not a non-empty array of links */
	CAR_ERR_BLOCK_SHORT,		/* a block section shorter than a CID */
	CAR_ERR_CID,				/* a block CID that is not a blessed CID */
	CAR_ERR_HASH				/* a block's bytes do not hash to its CID */
} CarError;

const char *car_strerror(CarError err);

/* ---- writer ---- */

/* Unsigned LEB128, shortest form. */
void		car_put_varint(RsBuf *out, uint64_t value);

/* varint length + DAG-CBOR {roots: [root], version: 1}. */
void		car_write_header(RsBuf *out, const uint8_t root[CID_LEN]);

/* varint(CID_LEN + len) + cid + data.  The caller vouches for the CID. */
void		car_write_block(RsBuf *out, const uint8_t cid[CID_LEN],
							const uint8_t *data, size_t len);

/* ---- reader ---- */

typedef struct CarBlock
{
	const uint8_t *cid;			/* CID_LEN bytes */
	const uint8_t *data;
	size_t		len;
	size_t		offset;			/* of the block's length varint in the CAR */
} CarBlock;

typedef struct CarReader
{
	const uint8_t *data;
	size_t		len;
	size_t		pos;
	size_t		n_roots;
	const uint8_t *root;		/* first root (CID_LEN bytes), in the header */
	const uint8_t *roots;		/* first root's DAG-CBOR link, in the header */
	const uint8_t *header;		/* header DAG-CBOR bytes */
	size_t		header_len;
	size_t		err_offset;		/* where the last error was found */
	CarError	err;
} CarReader;

/* Parse and check the header; on error r->err_offset says where. */
CarError	car_reader_open(CarReader *r, const uint8_t *data, size_t len);

/*
 * Root i (i < r->n_roots) into out.  The header was validated, so this
 * cannot fail for a valid index.
 */
bool		car_reader_root(const CarReader *r, size_t i, uint8_t out[CID_LEN]);

/*
 * Next block, checked (CID blessed, hash matches).  Returns true with *blk
 * filled; false at the end (r->err == CAR_OK) or on an error (r->err set,
 * r->err_offset where).  After an error every call returns false.
 */
bool		car_reader_next(CarReader *r, CarBlock *blk);

/* Read and check a whole CAR; *err_offset (may be NULL) on error. */
CarError	car_validate(const uint8_t *data, size_t len, size_t *err_offset);

/* ---- lookup by CID ---- */

/*
 * All blocks of a checked CAR, sorted by CID for car_index_get.  A CID that
 * occurs twice (CARv1 allows it) is kept once: its bytes are the same,
 * since both copies hash to it.
 */
typedef struct CarIndex
{
	CarBlock   *blocks;			/* rs_alloc; sorted by CID */
	size_t		n;
	size_t		n_roots;
	uint8_t		root[CID_LEN];	/* first root */
} CarIndex;

CarError	car_index_build(const uint8_t *data, size_t len, CarIndex *out,
							size_t *err_offset);
const CarBlock *car_index_get(const CarIndex *idx, const uint8_t cid[CID_LEN]);
void		car_index_free(CarIndex *idx);

#endif
