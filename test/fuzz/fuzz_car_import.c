/*
 * fuzz_car_import.c - libFuzzer harness for the pure CAR import checks
 * (src/car_import.c, with the CAR, CBOR, commit, MST and syntax code under
 * it): any input must be accepted or refused with an error and a message,
 * never crash, hang, leak or read out of bounds.
 *
 * The first byte picks the mode.  0: the rest is a CAR.  1: the rest is
 * blocks, each a 2-byte big-endian length and its bytes; the harness hashes
 * them into a CAR, the first block being the MST root, under a commit it
 * makes and signs, so mutated nodes and records get past the framing and
 * hash checks and reach the commit, MST and record checks.  Either way the
 * CAR is opened (framing, hashes, index, root commit), its signature
 * checked against a fixed key, and its tree walked whatever the signature
 * says.  Build and run (clang, from the top directory):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -iquote src \
 *       test/fuzz/fuzz_car_import.c $(find src -name '*.c' ! -name '*_sql.c' \
 *       ! -name repo_stream.c ! -name decoder.c) -lcbor -lsodium -o fuzz_car_import
 *   ./fuzz_car_import -max_len=65536 corpus
 *
 * A seed corpus: a 0 byte followed by any export (repo_stream_car export
 * DID), and a 1 byte followed by the blocks of one, root node first.
 */
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "car_import.h"
#include "commit.h"
#include "keys.h"

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t pub[32];
static uint8_t seed[32];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	if (sodium_init() < 0)
		return -1;
	memset(seed, 7, sizeof(seed));
	rs_ed25519_pk_from_seed(seed, pub);
	return 0;
}

static bool
count_record(void *ctx, const char *key, size_t key_len, size_t coll_len,
			 const uint8_t cid[CID_LEN], const uint8_t *data, size_t len)
{
	(void) key;
	(void) cid;
	(void) data;
	/* what the visitor is promised */
	if (coll_len >= key_len || key[coll_len] != '/' || len > CAR_IMPORT_MAX_RECORD)
		__builtin_trap();
	(*(size_t *) ctx)++;
	return true;
}

/* Mode 1: blocks (2-byte length, bytes) under a commit made here. */
static void
blocks_to_car(const uint8_t *data, size_t size, RsBuf *car)
{
	RepoCommit	c = {0};
	RsBuf		u,
				signed_commit;
	uint8_t		cid[CID_LEN],
				commit_cid[CID_LEN];
	size_t		pos = 0;
	bool		first = true;
	RsBuf		body;

	rs_buf_init(&body, size + 64);
	memset(c.data, 0, CID_LEN);
	while (pos + 2 <= size)
	{
		size_t		len = ((size_t) data[pos] << 8) | data[pos + 1];

		pos += 2;
		if (len > size - pos)
			len = size - pos;
		cid_for_dagcbor(data + pos, len, cid);
		if (first)
			memcpy(c.data, cid, CID_LEN);
		first = false;
		car_write_block(&body, cid, data + pos, len);
		pos += len;
	}
	c.did = "did:plc:fuzz";
	c.did_len = strlen(c.did);
	c.rev = "3kabcdefghij2";
	c.rev_len = 13;
	rs_buf_init(&u, 256);
	commit_encode_unsigned(&c, &u);
	rs_ed25519_sign(seed, u.data, u.len, c.sig, NULL);
	c.has_sig = true;
	rs_buf_init(&signed_commit, 256);
	commit_encode_signed(&c, &signed_commit);
	cid_for_dagcbor(signed_commit.data, signed_commit.len, commit_cid);
	car_write_header(car, commit_cid);
	car_write_block(car, commit_cid, signed_commit.data, signed_commit.len);
	rs_buf_append(car, body.data, body.len);
	rs_buf_free(&u);
	rs_buf_free(&signed_commit);
	rs_buf_free(&body);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CarImport	ci = {0};
	CarSource	src;
	CarMemSource mem;
	size_t		records = 0;
	CarImportVisitor v = {NULL, count_record, &records};
	RsBuf		built = {0};

	if (size == 0)
		return 0;
	if (data[0] == 1)
	{
		rs_buf_init(&built, size + 512);
		blocks_to_car(data + 1, size - 1, &built);
		car_mem_source(&src, &mem, built.data, built.len);
	}
	else
		car_mem_source(&src, &mem, data + 1, size - 1);
	if (car_import_open(&ci, &src) == CI_OK)
	{
		(void) car_import_verify(&ci, pub);
		if (car_import_walk(&ci, &v) == CI_OK && records != ci.n_records)
			__builtin_trap();
	}
	else if (ci.errmsg[0] == '\0')
		__builtin_trap();		/* every refusal says why */
	car_import_free(&ci);
	if (built.data)
		rs_buf_free(&built);
	return 0;
}
