/*
 * fuzz_car.c - the CARv1 reader and its index (car_reader_*, car_validate,
 * car_index_build/get).  Properties: the streaming reader and the index
 * agree on accept/reject; every block the reader returns is found by CID
 * in the index with the same bytes, and hashes to its CID; every root
 * reads back.
 */
#include "car.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		off = 0,
				ioff = 0;
	CarError	err = car_validate(data, size, &off);
	CarIndex	idx;
	CarError	ierr = car_index_build(data, size, &idx, &ioff);
	CarReader	r;
	CarBlock	b;
	size_t		n = 0;

	FUZZ_CHECK(car_strerror(err) != NULL, "strerror");
	FUZZ_CHECK(err == ierr, "car_validate says %d, car_index_build %d", err, ierr);
	if (err != CAR_OK)
	{
		FUZZ_CHECK(off == ioff && off <= size, "offsets %zu and %zu", off, ioff);
		return 0;
	}

	FUZZ_CHECK(car_reader_open(&r, data, size) == CAR_OK, "reopen");
	FUZZ_CHECK(r.n_roots == idx.n_roots && r.n_roots > 0, "roots");
	for (size_t i = 0; i < r.n_roots; i++)
	{
		uint8_t		root[CID_LEN];

		FUZZ_CHECK(car_reader_root(&r, i, root), "root %zu", i);
		FUZZ_CHECK(cid_valid_binary(root, CID_LEN), "root %zu not a CID", i);
		if (i == 0)
			FUZZ_CHECK(memcmp(root, idx.root, CID_LEN) == 0, "first root");
	}
	while (car_reader_next(&r, &b))
	{
		const CarBlock *found = car_index_get(&idx, b.cid);
		uint8_t		cid[CID_LEN];

		n++;
		FUZZ_CHECK(found != NULL, "block %zu not in the index", n);
		FUZZ_CHECK(same_bytes(found->data, found->len, b.data, b.len), "block %zu bytes", n);
		if (b.cid[1] == CID_CODEC_RAW)
			cid_for_raw(b.data, b.len, cid);
		else
			cid_for_dagcbor(b.data, b.len, cid);
		FUZZ_CHECK(memcmp(cid, b.cid, CID_LEN) == 0, "block %zu hash", n);
	}
	FUZZ_CHECK(r.err == CAR_OK, "reader error on a valid CAR");
	FUZZ_CHECK(idx.n <= n, "index holds %zu of %zu blocks", idx.n, n);
	for (size_t i = 1; i < idx.n; i++)
		FUZZ_CHECK(memcmp(idx.blocks[i - 1].cid, idx.blocks[i].cid, CID_LEN) < 0, "index order");
	car_index_free(&idx);
	return 0;
}
