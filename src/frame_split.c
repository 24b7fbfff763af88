/*
 * frame_split.c - structural cuts of a frame; see frame_split.h.
 */
#include <string.h>

#include "cbor.h"
#include "frame_split.h"

/*
 * End offset of the item starting at r->pos.  Counts the items still owed
 * instead of recursing; a count larger than the bytes left is truncation
 * (every item takes at least one byte), which also keeps the count small.
 */
static DcborError
skip_item(DcborReader *r)
{
	uint64_t	pending = 1;

	while (pending > 0)
	{
		DcborItem	it;
		DcborError	err = dcbor_read(r, &it);

		if (err != DCBOR_OK)
			return err;
		pending--;
		if (it.type == DCBOR_ARRAY || it.type == DCBOR_MAP)
		{
			uint64_t	n = it.uval;

			if (n > r->len - r->pos || (it.type == DCBOR_MAP && 2 * n > r->len - r->pos))
				return DCBOR_ERR_TRUNCATED;
			pending += it.type == DCBOR_MAP ? 2 * n : n;
			if (pending > r->len - r->pos)
				return DCBOR_ERR_TRUNCATED;
		}
	}
	return DCBOR_OK;
}

FrameError
frame_split(const uint8_t *data, size_t len, size_t *body_off)
{
	DcborReader r;

	dcbor_reader_init(&r, data, len);
	if (skip_item(&r) != DCBOR_OK || r.pos == len)
		return FRAME_ERR_CBOR;
	*body_off = r.pos;
	if (skip_item(&r) != DCBOR_OK)
		return FRAME_ERR_CBOR;
	if (r.pos != len)
		return FRAME_ERR_TRAILING;
	return FRAME_OK;
}

FrameError
frame_drop_field(const uint8_t *data, size_t len, const char *name,
				 RsBuf *out, bool *removed)
{
	size_t		body,
				name_len = strlen(name),
				field_start = 0,
				field_end = 0,
				pairs_start;
	DcborReader r;
	DcborItem	m;
	FrameError	ferr;
	bool		found = false;

	if ((ferr = frame_split(data, len, &body)) != FRAME_OK)
		return ferr;
	dcbor_reader_init(&r, data, len);
	r.pos = body;
	if (dcbor_read(&r, &m) != DCBOR_OK || m.type != DCBOR_MAP)
		return FRAME_ERR_FIELD;
	pairs_start = r.pos;
	for (uint64_t i = 0; i < m.uval; i++)
	{
		DcborItem	k;
		size_t		start = r.pos;

		if (dcbor_read(&r, &k) != DCBOR_OK || k.type != DCBOR_TEXT)
			return FRAME_ERR_FIELD;
		if (skip_item(&r) != DCBOR_OK)
			return FRAME_ERR_CBOR;
		if (!found && k.len == name_len && memcmp(k.ptr, name, name_len) == 0)
		{
			found = true;
			field_start = start;
			field_end = r.pos;
		}
	}

	*removed = found;
	if (!found)
	{
		rs_buf_append(out, data, len);
		return FRAME_OK;
	}
	/* header, the map head one pair shorter, the pairs around the field */
	rs_buf_reserve(out, len);
	rs_buf_append(out, data, body);
	dcbor_put_map(out, m.uval - 1);
	rs_buf_append(out, data + pairs_start, field_start - pairs_start);
	rs_buf_append(out, data + field_end, len - field_end);
	return FRAME_OK;
}
