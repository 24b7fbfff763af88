/*
 * car.c - CARv1 writer and strict reader.
 */
#include "car.h"

#include <stdlib.h>
#include <string.h>

#include "cbor.h"

const char *
car_strerror(CarError err)
{
	switch (err)
	{
		case CAR_OK:
			return "no error";
		case CAR_ERR_EMPTY:
			return "empty input";
		case CAR_ERR_VARINT_TRUNCATED:
			return "input ends inside a length varint";
		case CAR_ERR_VARINT_NOT_MINIMAL:
			return "length varint is not in shortest form";
		case CAR_ERR_VARINT_TOO_LONG:
			return "length varint is longer than 9 bytes";
		case CAR_ERR_LENGTH:
			return "section length runs past the end of the input";
		case CAR_ERR_HEADER_CBOR:
			return "header is not valid DAG-CBOR";
		case CAR_ERR_HEADER_SHAPE:
			return "header is not a map of exactly \"roots\" and \"version\"";
		case CAR_ERR_VERSION:
			return "header version is not 1";
		case CAR_ERR_ROOTS:
			return "header roots is not a non-empty array of CIDs";
		case CAR_ERR_BLOCK_SHORT:
			return "block section is shorter than a CID";
		case CAR_ERR_CID:
			return "block CID is not a CIDv1 dag-cbor/raw sha2-256 CID";
		case CAR_ERR_HASH:
			return "block bytes do not hash to the block CID";
	}
	return "unknown CAR error";
}

/* ---------------------------------------------------------------- writer */

void
car_put_varint(RsBuf *out, uint64_t value)
{
	rs_buf_reserve(out, 10);
	while (value >= 0x80)
	{
		out->data[out->len++] = (uint8_t) (value | 0x80);
		value >>= 7;
	}
	out->data[out->len++] = (uint8_t) value;
}

void
car_write_header(RsBuf *out, const uint8_t root[CID_LEN])
{
	RsBuf		h;

	/* {roots, version}: canonical order, "roots" is the shorter key */
	rs_buf_init(&h, 64);
	dcbor_put_map(&h, 2);
	dcbor_put_cstr(&h, "roots");
	dcbor_put_array(&h, 1);
	dcbor_put_link(&h, root, CID_LEN);
	dcbor_put_cstr(&h, "version");
	dcbor_put_uint(&h, 1);
	car_put_varint(out, h.len);
	rs_buf_append(out, h.data, h.len);
	rs_buf_free(&h);
}

void
car_write_block(RsBuf *out, const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	car_put_varint(out, (uint64_t) CID_LEN + len);
	rs_buf_reserve(out, CID_LEN + len);
	rs_buf_append(out, cid, CID_LEN);
	rs_buf_append(out, data, len);
}

/* ---------------------------------------------------------------- reader */

static CarError
read_varint(const uint8_t *data, size_t len, size_t *pos, uint64_t *value)
{
	uint64_t	v = 0;
	size_t		p = *pos;

	for (int i = 0; i < CAR_VARINT_MAX_BYTES; i++)
	{
		uint8_t		b;

		if (p >= len)
			return CAR_ERR_VARINT_TRUNCATED;
		b = data[p++];
		v |= (uint64_t) (b & 0x7f) << (7 * i);
		if (!(b & 0x80))
		{
			/* a last group of 0 after other groups adds nothing */
			if (b == 0 && i > 0)
				return CAR_ERR_VARINT_NOT_MINIMAL;
			*pos = p;
			*value = v;
			return CAR_OK;
		}
	}
	return CAR_ERR_VARINT_TOO_LONG;
}

static CarError
fail(CarReader *r, CarError err, size_t offset)
{
	r->err = err;
	r->err_offset = offset;
	return err;
}

/* {roots: [link, ...], version: 1}, exactly; header already validated. */
static CarError
check_header(CarReader *r, size_t base)
{
	DcborReader cr;
	DcborItem	it;
	bool		have_roots = false,
				have_version = false;

	dcbor_reader_init(&cr, r->header, r->header_len);
	if (dcbor_read(&cr, &it) != DCBOR_OK || it.type != DCBOR_MAP)
		return fail(r, CAR_ERR_HEADER_SHAPE, base);
	for (uint64_t i = 0; i < it.uval; i++)
	{
		DcborItem	key,
					val;
		size_t		at = cr.pos;

		dcbor_read(&cr, &key);
		if (key.len == 5 && memcmp(key.ptr, "roots", 5) == 0)
		{
			have_roots = true;
			dcbor_read(&cr, &val);
			if (val.type != DCBOR_ARRAY || val.uval == 0)
				return fail(r, CAR_ERR_ROOTS, base + at);
			r->n_roots = val.uval;
			r->roots = r->header + cr.pos;
			for (uint64_t k = 0; k < val.uval; k++)
			{
				DcborItem	link;
				size_t		lat = cr.pos;

				dcbor_read(&cr, &link);
				if (link.type != DCBOR_LINK)
					return fail(r, CAR_ERR_ROOTS, base + lat);
				if (k == 0)
					r->root = link.ptr;
			}
		}
		else if (key.len == 7 && memcmp(key.ptr, "version", 7) == 0)
		{
			have_version = true;
			at = cr.pos;
			dcbor_read(&cr, &val);
			if (val.type != DCBOR_UINT || val.uval != 1)
				return fail(r, CAR_ERR_VERSION, base + at);
		}
		else
			return fail(r, CAR_ERR_HEADER_SHAPE, base + at);
	}
	if (!have_version)
		return fail(r, CAR_ERR_VERSION, base);
	if (!have_roots)
		return fail(r, CAR_ERR_ROOTS, base);
	return CAR_OK;
}

CarError
car_reader_open(CarReader *r, const uint8_t *data, size_t len)
{
	uint64_t	hlen;
	size_t		pos = 0;
	size_t		off;
	CarError	err;

	memset(r, 0, sizeof(*r));
	r->data = data;
	r->len = len;
	if (len == 0)
		return fail(r, CAR_ERR_EMPTY, 0);
	if ((err = read_varint(data, len, &pos, &hlen)) != CAR_OK)
		return fail(r, err, 0);
	if (hlen > len - pos)
		return fail(r, CAR_ERR_LENGTH, 0);
	r->header = data + pos;
	r->header_len = (size_t) hlen;
	if (hlen == 0 || dcbor_validate(r->header, r->header_len, &off) != DCBOR_OK)
		return fail(r, CAR_ERR_HEADER_CBOR, pos + (hlen == 0 ? 0 : off));
	if ((err = check_header(r, pos)) != CAR_OK)
		return err;
	r->pos = pos + r->header_len;
	return CAR_OK;
}

bool
car_reader_root(const CarReader *r, size_t i, uint8_t out[CID_LEN])
{
	DcborReader cr;
	DcborItem	it;

	if (r->root == NULL || i >= r->n_roots)
		return false;
	dcbor_reader_init(&cr, r->roots, r->header_len - (size_t) (r->roots - r->header));
	for (size_t k = 0; k <= i; k++)
		if (dcbor_read(&cr, &it) != DCBOR_OK || it.type != DCBOR_LINK)
			return false;
	memcpy(out, it.ptr, CID_LEN);
	return true;
}

bool
car_reader_next(CarReader *r, CarBlock *blk)
{
	uint64_t	blen;
	size_t		start = r->pos;
	size_t		pos = r->pos;
	CarError	err;
	uint8_t		digest[32];

	if (r->err != CAR_OK || r->pos >= r->len)
		return false;
	if ((err = read_varint(r->data, r->len, &pos, &blen)) != CAR_OK)
	{
		fail(r, err, start);
		return false;
	}
	if (blen > r->len - pos)
	{
		fail(r, CAR_ERR_LENGTH, start);
		return false;
	}
	if (blen < CID_LEN)
	{
		fail(r, CAR_ERR_BLOCK_SHORT, start);
		return false;
	}
	if (!cid_valid_binary(r->data + pos, CID_LEN))
	{
		fail(r, CAR_ERR_CID, pos);
		return false;
	}
	rs_sha256(r->data + pos + CID_LEN, (size_t) blen - CID_LEN, digest);
	if (memcmp(digest, r->data + pos + 4, 32) != 0)
	{
		fail(r, CAR_ERR_HASH, start);
		return false;
	}
	blk->cid = r->data + pos;
	blk->data = r->data + pos + CID_LEN;
	blk->len = (size_t) blen - CID_LEN;
	blk->offset = start;
	r->pos = pos + (size_t) blen;
	return true;
}

CarError
car_validate(const uint8_t *data, size_t len, size_t *err_offset)
{
	CarReader	r;
	CarBlock	b;

	if (car_reader_open(&r, data, len) == CAR_OK)
		while (car_reader_next(&r, &b))
			;
	if (err_offset)
		*err_offset = r.err_offset;
	return r.err;
}

/* ---------------------------------------------------------------- index */

static int
block_cmp(const void *a, const void *b)
{
	return memcmp(((const CarBlock *) a)->cid, ((const CarBlock *) b)->cid, CID_LEN);
}

CarError
car_index_build(const uint8_t *data, size_t len, CarIndex *out, size_t *err_offset)
{
	CarReader	r;
	CarBlock	b;
	size_t		cap = 16;

	memset(out, 0, sizeof(*out));
	if (car_reader_open(&r, data, len) != CAR_OK)
	{
		if (err_offset)
			*err_offset = r.err_offset;
		return r.err;
	}
	out->n_roots = r.n_roots;
	memcpy(out->root, r.root, CID_LEN);
	out->blocks = rs_alloc(cap * sizeof(CarBlock));
	while (car_reader_next(&r, &b))
	{
		if (out->n == cap)
		{
			cap *= 2;
			out->blocks = rs_realloc(out->blocks, cap * sizeof(CarBlock));
		}
		out->blocks[out->n++] = b;
	}
	if (r.err != CAR_OK)
	{
		if (err_offset)
			*err_offset = r.err_offset;
		car_index_free(out);
		return r.err;
	}
	qsort(out->blocks, out->n, sizeof(CarBlock), block_cmp);
	/* drop repeats of a CID: equal CIDs carry equal bytes */
	if (out->n > 1)
	{
		size_t		w = 1;

		for (size_t i = 1; i < out->n; i++)
			if (memcmp(out->blocks[i].cid, out->blocks[w - 1].cid, CID_LEN) != 0)
				out->blocks[w++] = out->blocks[i];
		out->n = w;
	}
	return CAR_OK;
}

const CarBlock *
car_index_get(const CarIndex *idx, const uint8_t cid[CID_LEN])
{
	size_t		lo = 0,
				hi = idx->n;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;
		int			c = memcmp(idx->blocks[mid].cid, cid, CID_LEN);

		if (c == 0)
			return &idx->blocks[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void
car_index_free(CarIndex *idx)
{
	rs_free(idx->blocks);
	memset(idx, 0, sizeof(*idx));
}
