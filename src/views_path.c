/*
 * views_path.c - group_by paths and commit data roots for computed views
 * (pure C, no backend).  See views_path.h.
 */
#include "views_path.h"

#include <stdio.h>
#include <string.h>

#include "car.h"
#include "cbor.h"
#include "commit.h"

static bool
fail(char *errmsg, size_t errlen, const char *msg)
{
	if (errmsg && errlen)
		snprintf(errmsg, errlen, "%s", msg);
	return false;
}

bool
view_path_parse(const char *text, size_t len, ViewPath *out, char *errmsg, size_t errlen)
{
	size_t		start = 0;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return fail(errmsg, errlen, "the path is empty");
	if (len > VIEW_PATH_MAX_LEN)
		return fail(errmsg, errlen, "the path is longer than 512 bytes");
	if (len == 4 && memcmp(text, "$did", 4) == 0)
	{
		out->by_did = true;
		return true;
	}
	for (size_t i = 0; i <= len; i++)
	{
		size_t		seg_len;

		if (i < len && (unsigned char) text[i] < 0x20)
			return fail(errmsg, errlen, "the path contains a control character");
		if (i < len && text[i] != '.')
			continue;
		seg_len = i - start;
		if (seg_len == 0)
			return fail(errmsg, errlen, "the path has an empty segment (a leading, trailing or doubled dot)");
		if (out->n_segs == VIEW_PATH_MAX_SEGS)
			return fail(errmsg, errlen, "the path has more than 16 segments");
		if ((seg_len == 5 && memcmp(text + start, "$link", 5) == 0) ||
			(seg_len == 6 && memcmp(text + start, "$bytes", 6) == 0))
			return fail(errmsg, errlen, "\"$link\" and \"$bytes\" are not map keys in DAG-CBOR (links and bytes are not maps)");
		if (seg_len == 4 && memcmp(text + start, "$did", 4) == 0)
			return fail(errmsg, errlen, "\"$did\" stands alone: it groups by the repo's DID");
		out->segs[out->n_segs] = text + start;
		out->lens[out->n_segs] = seg_len;
		out->n_segs++;
		start = i + 1;
	}
	return true;
}

int
view_path_extract(const ViewPath *p, const uint8_t *data, size_t len,
				  const uint8_t **out, size_t *out_len)
{
	DcborReader r;
	DcborItem	it;

	dcbor_reader_init(&r, data, len);
	for (int s = 0; s < p->n_segs; s++)
	{
		bool		found = false;

		if (dcbor_read(&r, &it) != DCBOR_OK)
			return -1;
		if (it.type != DCBOR_MAP)
			return 0;
		for (uint64_t i = 0; i < it.uval; i++)
		{
			DcborItem	key;
			int			c;

			if (dcbor_read(&r, &key) != DCBOR_OK || key.type != DCBOR_TEXT)
				return -1;
			c = dcbor_key_cmp((const char *) key.ptr, key.len, p->segs[s], p->lens[s]);
			if (c == 0)
			{
				found = true;
				break;
			}
			if (c > 0)
				return 0;		/* keys are in canonical order: it is not there */
			if (dcbor_skip(&r) != DCBOR_OK)
				return -1;
		}
		if (!found)
			return 0;
	}
	/* the reader is at the value of the last segment */
	if (dcbor_read(&r, &it) != DCBOR_OK)
		return -1;
	if (it.type != DCBOR_TEXT || it.len > VIEW_KEY_MAX_LEN || memchr(it.ptr, 0, it.len) != NULL)
		return 0;
	*out = it.ptr;
	*out_len = it.len;
	return 1;
}

/* An unsigned LEB128 varint at *pos (at most 9 bytes, as car.c reads them). */
static bool
read_varint(const uint8_t *data, size_t len, size_t *pos, uint64_t *out)
{
	uint64_t	v = 0;

	for (int i = 0; i < CAR_VARINT_MAX_BYTES; i++)
	{
		uint8_t		b;

		if (*pos >= len)
			return false;
		b = data[(*pos)++];
		v |= (uint64_t) (b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0)
		{
			*out = v;
			return true;
		}
	}
	return false;
}

bool
view_car_find(const uint8_t *car, size_t len, const uint8_t cid[CID_LEN],
			  const uint8_t **data, size_t *data_len)
{
	size_t		pos = 0;
	uint64_t	n;

	/* the header */
	if (!read_varint(car, len, &pos, &n) || n > len - pos)
		return false;
	pos += n;
	/* sections: varint(len) cid data */
	while (pos < len)
	{
		if (!read_varint(car, len, &pos, &n) || n > len - pos || n < CID_LEN)
			return false;
		if (memcmp(car + pos, cid, CID_LEN) == 0)
		{
			*data = car + pos + CID_LEN;
			*data_len = n - CID_LEN;
			return true;
		}
		pos += n;
	}
	return false;
}

bool
view_car_data_root(const uint8_t *car, size_t len, uint8_t out[CID_LEN])
{
	CarReader	r;
	CarBlock	blk;
	RepoCommit	c;

	if (car_reader_open(&r, car, len) != CAR_OK)
		return false;
	/* the write path puts the commit first; look further for other writers */
	while (car_reader_next(&r, &blk))
	{
		if (memcmp(blk.cid, r.root, CID_LEN) != 0)
			continue;
		if (commit_decode(blk.data, blk.len, false, &c, NULL, 0) != COMMIT_OK)
			return false;
		memcpy(out, c.data, CID_LEN);
		return true;
	}
	return false;
}
