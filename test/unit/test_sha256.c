/*
 * test_sha256.c - the SHA-NI path agrees with libsodium on every length.
 */
#include <stdlib.h>

#include "sha256.h"
#include "tap.h"

int
main(void)
{
	uint8_t		buf[4096],
				a[32],
				b[32];
	unsigned	seed = 1;
	int			mismatches = 0;
	static const uint8_t abc_digest[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad
	};

	printf("# SHA-NI available: %s\n", rs_sha256_accelerated() ? "yes" : "no");
	rs_sha256((const uint8_t *) "abc", 3, a);
	ok(memcmp(a, abc_digest, 32) == 0, "sha256(\"abc\") is the FIPS 180-2 test vector");

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t) rand_r(&seed);
	for (size_t len = 0; len <= sizeof(buf); len++)
	{
		rs_sha256(buf, len, a);
		rs_sha256_portable(buf, len, b);
		if (memcmp(a, b, 32) != 0)
			mismatches++;
	}
	ok(mismatches == 0, "rs_sha256 equals libsodium for all 4097 lengths 0..4096 (%d mismatches)", mismatches);
	return done_testing();
}
