/*
 * cbor.h - DAG-CBOR encoder and strict decoder (pure C, no backend).
 *
 * The encoder writes only canonical DAG-CBOR heads (via libcbor's shortest
 * form encoders); map ordering is the caller's job (length-first, then
 * bytewise), checked by dcbor_key_less().
 *
 * The decoder accepts exactly the atproto data model subset of DAG-CBOR and
 * rejects everything else; see DcborError for the rules.  libcbor's own
 * decoder accepts non-canonical input, so the strict reader is ours.
 */
#ifndef RS_CBOR_H
#define RS_CBOR_H

#include <string.h>

#include "buf.h"

/*
 * Most arrays and maps nested in one another, on both sides: the decoder
 * rejects a 129th container, the JSON encoder refuses to write one.
 * Scalars do not count (README "Limits").
 */
#define DCBOR_MAX_DEPTH 128

/*
 * Largest record, in bytes of DAG-CBOR, that the write path stores and
 * frame verification accepts in a #commit's blocks (README "Limits").
 */
#define RECORD_MAX_BYTES 1000000

/* A CID inside tag 42: 0x00 multibase prefix followed by a binary CID. */
#define DCBOR_CID_LEN 36

typedef enum DcborType
{
	DCBOR_UINT,					/* uval holds the value (<= INT64_MAX) */
	DCBOR_NEGINT,				/* ival holds the (negative) value */
	DCBOR_BYTES,				/* ptr/len: payload */
	DCBOR_TEXT,					/* ptr/len: UTF-8 payload, not NUL-terminated */
	DCBOR_ARRAY,				/* uval: element count */
	DCBOR_MAP,					/* uval: pair count */
	DCBOR_LINK,					/* ptr/len: binary CID (DCBOR_CID_LEN bytes) */
	DCBOR_FALSE,
	DCBOR_TRUE,
	DCBOR_NULL
} DcborType;

typedef struct DcborItem
{
	DcborType	type;
	uint64_t	uval;
	int64_t		ival;
	const uint8_t *ptr;
	size_t		len;
} DcborItem;

typedef enum DcborError
{
	DCBOR_OK = 0,
	DCBOR_ERR_EMPTY,			/* no input at all */
	DCBOR_ERR_TRUNCATED,		/* a head or length runs past the input */
	DCBOR_ERR_INDEFINITE,		/* indefinite-length item or break code */
	DCBOR_ERR_RESERVED,			/* additional info 28..30 */
	DCBOR_ERR_NOT_SHORTEST,		/* integer or length not in shortest form */
	DCBOR_ERR_INT_RANGE,		/* integer outside signed 64-bit range */
	DCBOR_ERR_FLOAT,			/* any float (atproto forbids them) */
	DCBOR_ERR_SIMPLE,			/* undefined or other simple value */
	DCBOR_ERR_TAG,				/* any tag other than 42 */
	DCBOR_ERR_BAD_LINK,			/* tag 42 not wrapping 0x00 + valid CID */
	DCBOR_ERR_UTF8,				/* text string is not valid UTF-8 */
	DCBOR_ERR_MAP_KEY_TYPE,		/* map key is not a text string */
	DCBOR_ERR_MAP_KEY_ORDER,	/* map keys not length-first sorted */
	DCBOR_ERR_MAP_KEY_DUP,		/* duplicate map key */
	DCBOR_ERR_DEPTH,			/* nesting deeper than DCBOR_MAX_DEPTH */
	DCBOR_ERR_TRAILING			/* bytes after the top-level item */
} DcborError;

typedef struct DcborReader
{
	const uint8_t *data;
	size_t		len;
	size_t		pos;
} DcborReader;

/* ---- encoder ---- */
void		dcbor_put_uint(RsBuf *buf, uint64_t value);
void		dcbor_put_int(RsBuf *buf, int64_t value);
void		dcbor_put_bytes(RsBuf *buf, const uint8_t *data, size_t len);
void		dcbor_put_text(RsBuf *buf, const char *text, size_t len);
void		dcbor_put_cstr(RsBuf *buf, const char *text);
void		dcbor_put_array(RsBuf *buf, size_t count);
void		dcbor_put_map(RsBuf *buf, size_t count);
void		dcbor_put_link(RsBuf *buf, const uint8_t *cid, size_t cid_len);
void		dcbor_put_bool(RsBuf *buf, bool value);
void		dcbor_put_null(RsBuf *buf);

/* DAG-CBOR map key order: shorter first, then bytewise. */
int			dcbor_key_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* ---- decoder ---- */
static inline void
dcbor_reader_init(DcborReader *r, const uint8_t *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->pos = 0;
}

/*
 * Read one item head (with its payload for bytes, text and links).  For
 * arrays and maps only the count is read; the caller reads the children.
 * On error r->pos is the offset of the offending item.
 */
DcborError	dcbor_read(DcborReader *r, DcborItem *item);

/* Skip one complete item, children included (input already validated). */
DcborError	dcbor_skip(DcborReader *r);

/*
 * Check that data[0..len) is exactly one valid DAG-CBOR item.  On error,
 * *err_offset (if not NULL) is the byte offset of the problem.
 */
DcborError	dcbor_validate(const uint8_t *data, size_t len, size_t *err_offset);

const char *dcbor_strerror(DcborError err);

/* "an integer", "a map", ...: for messages about a field's type. */
const char *dcbor_type_name(DcborType type);

/* Is this item the text string name (a map key, say)? */
static inline bool
dcbor_text_is(const DcborItem *item, const char *name)
{
	size_t		n = strlen(name);

	return item->type == DCBOR_TEXT && item->len == n && memcmp(item->ptr, name, n) == 0;
}

bool		utf8_valid(const uint8_t *s, size_t len);

/* ---- base64, as atproto JSON's {"$bytes": ...} ---- */

/*
 * Standard alphabet, padding optional; false on any other character or on
 * non-zero bits left over at the end (so each byte string has exactly one
 * spelling).  Appends the bytes to out.
 */
bool		dcbor_base64_decode(const char *in, size_t len, RsBuf *out);

/* Unpadded standard base64 of data; out needs DCBOR_BASE64_LEN(len) + 1 bytes. */
#define DCBOR_BASE64_LEN(n) (((n) * 4 + 2) / 3)
size_t		dcbor_base64_encode(const uint8_t *data, size_t len, char *out);

#endif
