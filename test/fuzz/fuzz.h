/*
 * fuzz.h - shared bits of the libFuzzer harnesses in test/fuzz/.
 *
 * Each harness feeds arbitrary bytes to one pure decoder and checks a
 * property that must hold for every input the decoder accepts (usually:
 * the encoder writes exactly the bytes back).  A broken property aborts,
 * which libFuzzer reports as a crash with the input saved.
 */
#ifndef RS_FUZZ_H
#define RS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "property failed: %s: ", #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fprintf(stderr, "\n"); \
			abort(); \
		} \
	} while (0)

static inline int
same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

#endif
