/*
 * cbor.c - DAG-CBOR encoder (canonical heads via libcbor) and strict decoder.
 */
#include "cbor.h"

#include <string.h>
#include <cbor.h>				/* libcbor: shortest-form head encoders */

#include "cid.h"

#define RS_STR_(x) #x
#define RS_STR(x) RS_STR_(x)

/* ---------------------------------------------------------------- encoder */

#define HEAD_MAX 9

static inline void
put_head(RsBuf *buf, size_t (*enc) (size_t, unsigned char *, size_t), size_t n)
{
	rs_buf_reserve(buf, HEAD_MAX);
	buf->len += enc(n, buf->data + buf->len, HEAD_MAX);
}

void
dcbor_put_uint(RsBuf *buf, uint64_t value)
{
	rs_buf_reserve(buf, HEAD_MAX);
	buf->len += cbor_encode_uint(value, buf->data + buf->len, HEAD_MAX);
}

void
dcbor_put_int(RsBuf *buf, int64_t value)
{
	rs_buf_reserve(buf, HEAD_MAX);
	if (value >= 0)
		buf->len += cbor_encode_uint((uint64_t) value, buf->data + buf->len, HEAD_MAX);
	else
		buf->len += cbor_encode_negint((uint64_t) (-(value + 1)), buf->data + buf->len, HEAD_MAX);
}

void
dcbor_put_bytes(RsBuf *buf, const uint8_t *data, size_t len)
{
	put_head(buf, cbor_encode_bytestring_start, len);
	rs_buf_append(buf, data, len);
}

void
dcbor_put_text(RsBuf *buf, const char *text, size_t len)
{
	put_head(buf, cbor_encode_string_start, len);
	rs_buf_append(buf, text, len);
}

void
dcbor_put_cstr(RsBuf *buf, const char *text)
{
	dcbor_put_text(buf, text, strlen(text));
}

void
dcbor_put_array(RsBuf *buf, size_t count)
{
	put_head(buf, cbor_encode_array_start, count);
}

void
dcbor_put_map(RsBuf *buf, size_t count)
{
	put_head(buf, cbor_encode_map_start, count);
}

void
dcbor_put_link(RsBuf *buf, const uint8_t *cid, size_t cid_len)
{
	rs_buf_reserve(buf, 2 * HEAD_MAX + 1 + cid_len);
	buf->len += cbor_encode_tag(42, buf->data + buf->len, HEAD_MAX);
	buf->len += cbor_encode_bytestring_start(cid_len + 1, buf->data + buf->len, HEAD_MAX);
	buf->data[buf->len++] = 0x00;	/* identity multibase prefix */
	memcpy(buf->data + buf->len, cid, cid_len);
	buf->len += cid_len;
}

void
dcbor_put_bool(RsBuf *buf, bool value)
{
	rs_buf_append_byte(buf, value ? 0xf5 : 0xf4);
}

void
dcbor_put_null(RsBuf *buf)
{
	rs_buf_append_byte(buf, 0xf6);
}

int
dcbor_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

/* ---------------------------------------------------------------- decoder */

bool
utf8_valid(const uint8_t *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		uint8_t		c;
		size_t		n;
		uint32_t	cp;

		/* ASCII runs, eight bytes at a time */
		while (len - i >= 8)
		{
			uint64_t	w;

			memcpy(&w, s + i, 8);
			if (w & 0x8080808080808080ULL)
				break;
			i += 8;
		}
		if (i >= len)
			break;
		c = s[i];
		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
		{
			n = 1;
			cp = c & 0x1f;
		}
		else if (c >= 0xe0 && c <= 0xef)
		{
			n = 2;
			cp = c & 0x0f;
		}
		else if (c >= 0xf0 && c <= 0xf4)
		{
			n = 3;
			cp = c & 0x07;
		}
		else
			return false;
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++)
		{
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* overlong, surrogate and out-of-range code points */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
			(cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

/* Read a head's argument, enforcing shortest form. */
static DcborError
read_arg(DcborReader *r, uint8_t info, uint64_t *arg)
{
	size_t		n;
	uint64_t	v = 0;

	if (info < 24)
	{
		*arg = info;
		return DCBOR_OK;
	}
	if (info == 31)
		return DCBOR_ERR_INDEFINITE;
	if (info > 27)
		return DCBOR_ERR_RESERVED;
	n = (size_t) 1 << (info - 24);
	if (r->len - r->pos < n)
		return DCBOR_ERR_TRUNCATED;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | r->data[r->pos + i];
	/* each width must be needed: 24..255 in one byte, and so on */
	if ((n == 1 && v < 24) || (n == 2 && v <= 0xff) ||
		(n == 4 && v <= 0xffff) || (n == 8 && v <= 0xffffffffULL))
		return DCBOR_ERR_NOT_SHORTEST;
	r->pos += n;
	*arg = v;
	return DCBOR_OK;
}

DcborError
dcbor_read(DcborReader *r, DcborItem *item)
{
	size_t		start = r->pos;
	uint8_t		ib,
				major,
				info;
	uint64_t	arg;
	DcborError	err;

	if (r->pos >= r->len)
		return r->len == 0 ? DCBOR_ERR_EMPTY : DCBOR_ERR_TRUNCATED;
	ib = r->data[r->pos++];
	major = ib >> 5;
	info = ib & 0x1f;

	if (major == 7)
	{
		switch (info)
		{
			case 20:
				item->type = DCBOR_FALSE;
				return DCBOR_OK;
			case 21:
				item->type = DCBOR_TRUE;
				return DCBOR_OK;
			case 22:
				item->type = DCBOR_NULL;
				return DCBOR_OK;
			case 25:
			case 26:
			case 27:
				err = DCBOR_ERR_FLOAT;
				break;
			case 31:
				err = DCBOR_ERR_INDEFINITE;
				break;
			case 28:
			case 29:
			case 30:
				err = DCBOR_ERR_RESERVED;
				break;
			default:
				err = DCBOR_ERR_SIMPLE;	/* undefined, 0..19, 24 */
				break;
		}
		r->pos = start;
		return err;
	}

	err = read_arg(r, info, &arg);
	if (err != DCBOR_OK)
	{
		r->pos = start;
		return err;
	}

	switch (major)
	{
		case 0:
			if (arg > (uint64_t) INT64_MAX)
				err = DCBOR_ERR_INT_RANGE;
			item->type = DCBOR_UINT;
			item->uval = arg;
			item->ival = (int64_t) arg;
			break;
		case 1:
			if (arg > (uint64_t) INT64_MAX)
				err = DCBOR_ERR_INT_RANGE;
			item->type = DCBOR_NEGINT;
			item->uval = arg;
			item->ival = -1 - (int64_t) arg;
			break;
		case 2:
		case 3:
			if (arg > r->len - r->pos)
			{
				err = DCBOR_ERR_TRUNCATED;
				break;
			}
			item->type = major == 2 ? DCBOR_BYTES : DCBOR_TEXT;
			item->ptr = r->data + r->pos;
			item->len = (size_t) arg;
			if (major == 3 && !utf8_valid(item->ptr, item->len))
			{
				err = DCBOR_ERR_UTF8;
				break;
			}
			r->pos += item->len;
			break;
		case 4:
		case 5:
			/* each element takes at least one byte: cheap truncation check */
			if (arg > r->len - r->pos)
			{
				err = DCBOR_ERR_TRUNCATED;
				break;
			}
			item->type = major == 4 ? DCBOR_ARRAY : DCBOR_MAP;
			item->uval = arg;
			break;
		case 6:
			{
				DcborItem	inner;

				if (arg != 42)
				{
					err = DCBOR_ERR_TAG;
					break;
				}
				if (r->pos >= r->len)
				{
					err = DCBOR_ERR_TRUNCATED;
					break;
				}
				/* only a byte string may follow; never recurse into tags */
				if ((r->data[r->pos] >> 5) != 2)
				{
					err = DCBOR_ERR_BAD_LINK;
					break;
				}
				err = dcbor_read(r, &inner);
				if (err == DCBOR_ERR_TRUNCATED)
					break;
				if (err != DCBOR_OK || inner.type != DCBOR_BYTES ||
					inner.len != DCBOR_CID_LEN + 1 || inner.ptr[0] != 0x00 ||
					!cid_valid_binary(inner.ptr + 1, DCBOR_CID_LEN))
				{
					err = DCBOR_ERR_BAD_LINK;
					break;
				}
				item->type = DCBOR_LINK;
				item->ptr = inner.ptr + 1;
				item->len = DCBOR_CID_LEN;
			}
			break;
	}
	if (err != DCBOR_OK)
		r->pos = start;
	return err;
}

/*
 * depth: arrays and maps around this item.  Only containers count, so a
 * scalar inside DCBOR_MAX_DEPTH nested arrays is fine, as the encoder
 * (which counts containers too) writes it.
 */
static DcborError
validate_item(DcborReader *r, int depth)
{
	DcborItem	item;
	DcborError	err;
	size_t		start = r->pos;

	err = dcbor_read(r, &item);
	if (err != DCBOR_OK)
		return err;
	if ((item.type == DCBOR_ARRAY || item.type == DCBOR_MAP) && depth >= DCBOR_MAX_DEPTH)
	{
		r->pos = start;
		return DCBOR_ERR_DEPTH;
	}

	if (item.type == DCBOR_ARRAY)
	{
		for (uint64_t i = 0; i < item.uval; i++)
			if ((err = validate_item(r, depth + 1)) != DCBOR_OK)
				return err;
	}
	else if (item.type == DCBOR_MAP)
	{
		const uint8_t *prev = NULL;
		size_t		prev_len = 0;

		for (uint64_t i = 0; i < item.uval; i++)
		{
			DcborItem	key;
			size_t		key_pos = r->pos;

			err = dcbor_read(r, &key);
			if (err != DCBOR_OK)
				return err;
			if (key.type != DCBOR_TEXT)
			{
				r->pos = key_pos;
				return DCBOR_ERR_MAP_KEY_TYPE;
			}
			if (prev != NULL)
			{
				int			c = dcbor_key_cmp((const char *) prev, prev_len,
											  (const char *) key.ptr, key.len);

				if (c >= 0)
				{
					r->pos = key_pos;
					return c == 0 ? DCBOR_ERR_MAP_KEY_DUP : DCBOR_ERR_MAP_KEY_ORDER;
				}
			}
			prev = key.ptr;
			prev_len = key.len;
			if ((err = validate_item(r, depth + 1)) != DCBOR_OK)
				return err;
		}
	}
	return DCBOR_OK;
}

DcborError
dcbor_validate(const uint8_t *data, size_t len, size_t *err_offset)
{
	DcborReader r;
	DcborError	err;

	dcbor_reader_init(&r, data, len);
	err = validate_item(&r, 0);
	if (err == DCBOR_OK && r.pos != len)
		err = DCBOR_ERR_TRAILING;
	if (err_offset)
		*err_offset = r.pos;
	return err;
}

DcborError
dcbor_skip(DcborReader *r)
{
	DcborItem	item;
	DcborError	err = dcbor_read(r, &item);

	if (err != DCBOR_OK)
		return err;
	if (item.type == DCBOR_ARRAY || item.type == DCBOR_MAP)
	{
		uint64_t	n = item.type == DCBOR_MAP ? item.uval * 2 : item.uval;

		for (uint64_t i = 0; i < n; i++)
			if ((err = dcbor_skip(r)) != DCBOR_OK)
				return err;
	}
	return DCBOR_OK;
}

const char *
dcbor_strerror(DcborError err)
{
	switch (err)
	{
		case DCBOR_OK:
			return "no error";
		case DCBOR_ERR_EMPTY:
			return "empty input";
		case DCBOR_ERR_TRUNCATED:
			return "truncated input: a length runs past the end";
		case DCBOR_ERR_INDEFINITE:
			return "indefinite-length items are not allowed";
		case DCBOR_ERR_RESERVED:
			return "reserved additional information value";
		case DCBOR_ERR_NOT_SHORTEST:
			return "integer or length not in shortest form";
		case DCBOR_ERR_INT_RANGE:
			return "integer outside the signed 64-bit range";
		case DCBOR_ERR_FLOAT:
			return "floats are not allowed";
		case DCBOR_ERR_SIMPLE:
			return "simple values other than true, false and null are not allowed";
		case DCBOR_ERR_TAG:
			return "tags other than 42 are not allowed";
		case DCBOR_ERR_BAD_LINK:
			return "tag 42 must wrap a byte string of 0x00 and a valid CID";
		case DCBOR_ERR_UTF8:
			return "text string is not valid UTF-8";
		case DCBOR_ERR_MAP_KEY_TYPE:
			return "map key is not a text string";
		case DCBOR_ERR_MAP_KEY_ORDER:
			return "map keys are not in canonical order";
		case DCBOR_ERR_MAP_KEY_DUP:
			return "duplicate map key";
		case DCBOR_ERR_DEPTH:
			return "more than " RS_STR(DCBOR_MAX_DEPTH) " nested arrays and maps";
		case DCBOR_ERR_TRAILING:
			return "trailing bytes after the item";
	}
	return "unknown error";
}

const char *
dcbor_type_name(DcborType type)
{
	switch (type)
	{
		case DCBOR_UINT:
			return "an integer";
		case DCBOR_NEGINT:
			return "a negative integer";
		case DCBOR_BYTES:
			return "a byte string";
		case DCBOR_TEXT:
			return "a text string";
		case DCBOR_ARRAY:
			return "an array";
		case DCBOR_MAP:
			return "a map";
		case DCBOR_LINK:
			return "a link";
		case DCBOR_FALSE:
		case DCBOR_TRUE:
			return "a boolean";
		case DCBOR_NULL:
			return "null";
	}
	return "an item";
}

/* ---------------------------------------------------------------- base64 */

static const char b64_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool
dcbor_base64_decode(const char *in, size_t len, RsBuf *out)
{
	uint32_t	acc = 0;
	int			bits = 0;

	while (len > 0 && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		const char *p = in[i] == '\0' ? NULL : memchr(b64_alphabet, in[i], 64);

		if (p == NULL)
			return false;
		acc = (acc << 6) | (uint32_t) (p - b64_alphabet);
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			rs_buf_append_byte(out, (uint8_t) (acc >> bits));
		}
	}
	/* non-zero leftover bits would be a second spelling of the same bytes */
	return (acc & ((1u << bits) - 1)) == 0;
}

size_t
dcbor_base64_encode(const uint8_t *data, size_t len, char *out)
{
	size_t		o = 0;
	uint32_t	acc = 0;
	int			bits = 0;

	for (size_t i = 0; i < len; i++)
	{
		acc = (acc << 8) | data[i];
		bits += 8;
		while (bits >= 6)
		{
			bits -= 6;
			out[o++] = b64_alphabet[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = b64_alphabet[(acc << (6 - bits)) & 63];
	out[o] = '\0';
	return o;
}
