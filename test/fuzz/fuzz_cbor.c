/*
 * fuzz_cbor.c - the strict DAG-CBOR decoder (dcbor_validate, dcbor_read,
 * dcbor_skip).  Property: whatever it accepts is canonical, so writing the
 * items back with the encoder (dcbor_put_*) gives the same bytes, and
 * dcbor_skip ends exactly where validation did.
 */
#include "cbor.h"
#include "fuzz.h"

/* Re-encode one validated item and everything under it, iteratively. */
static void
reencode(DcborReader *r, RsBuf *out)
{
	uint64_t	pending = 1;

	while (pending > 0)
	{
		DcborItem	it;

		FUZZ_CHECK(dcbor_read(r, &it) == DCBOR_OK, "read failed at %zu on validated input", r->pos);
		pending--;
		switch (it.type)
		{
			case DCBOR_UINT:
				dcbor_put_uint(out, it.uval);
				break;
			case DCBOR_NEGINT:
				dcbor_put_int(out, it.ival);
				break;
			case DCBOR_BYTES:
				dcbor_put_bytes(out, it.ptr, it.len);
				break;
			case DCBOR_TEXT:
				FUZZ_CHECK(utf8_valid(it.ptr, it.len), "text at %zu", r->pos);
				dcbor_put_text(out, (const char *) it.ptr, it.len);
				break;
			case DCBOR_ARRAY:
				dcbor_put_array(out, it.uval);
				pending += it.uval;
				break;
			case DCBOR_MAP:
				dcbor_put_map(out, it.uval);
				pending += 2 * it.uval;
				break;
			case DCBOR_LINK:
				dcbor_put_link(out, it.ptr, it.len);
				break;
			case DCBOR_TRUE:
			case DCBOR_FALSE:
				dcbor_put_bool(out, it.type == DCBOR_TRUE);
				break;
			case DCBOR_NULL:
				dcbor_put_null(out);
				break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		off = 0;
	DcborError	err = dcbor_validate(data, size, &off);
	DcborReader r;
	RsBuf		out;

	FUZZ_CHECK(off <= size, "error offset %zu past %zu", off, size);
	FUZZ_CHECK(dcbor_strerror(err) != NULL, "strerror");
	if (err != DCBOR_OK)
		return 0;

	rs_buf_init(&out, size + 16);
	dcbor_reader_init(&r, data, size);
	reencode(&r, &out);
	FUZZ_CHECK(r.pos == size, "re-encoding stopped at %zu of %zu", r.pos, size);
	FUZZ_CHECK(same_bytes(out.data, out.len, data, size), "re-encoding differs (%zu vs %zu bytes)",
			   out.len, size);
	rs_buf_free(&out);

	dcbor_reader_init(&r, data, size);
	FUZZ_CHECK(dcbor_skip(&r) == DCBOR_OK && r.pos == size, "skip ends at %zu of %zu", r.pos, size);
	return 0;
}
