/*
 * sha256.c - SHA-256 over libsodium, plus an Intel SHA extensions path.
 *
 * libsodium's SHA-256 is portable C; on CPUs with SHA-NI the instructions
 * below hash a ~300-byte record about four times faster, which decides
 * whether hashing a record costs more than reading it.  Unit tests check
 * both paths agree on every length.
 */
#include "sha256.h"

#include <string.h>
#include <sodium.h>

void
rs_sha256_portable(const uint8_t *data, size_t len, uint8_t out[32])
{
	crypto_hash_sha256(out, data, len);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

#define RS_HAVE_SHANI_CODE 1

static const uint32_t K256[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

__attribute__((target("sha,sse4.1,ssse3")))
static void
sha256_ni_blocks(uint32_t state[8], const uint8_t *data, size_t nblocks)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i		st0,
				st1,
				tmp;

	/* state words a..h -> the ABEF / CDGH lane order the instructions use */
	tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *) &state[0]), 0xB1);
	st1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *) &state[4]), 0x1B);
	st0 = _mm_alignr_epi8(tmp, st1, 8);
	st1 = _mm_blend_epi16(st1, tmp, 0xF0);

	for (; nblocks > 0; nblocks--, data += 64)
	{
		__m128i		abef = st0,
					cdgh = st1,
					w[4];

#pragma GCC unroll 16
		for (int i = 0; i < 16; i++)
		{
			__m128i		msg;

			if (i < 4)
				w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *) (data + 16 * i)), bswap);
			else
				w[i & 3] = _mm_sha256msg2_epu32(
												_mm_add_epi32(_mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]),
															  _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4)),
												w[(i + 3) & 3]);
			msg = _mm_add_epi32(w[i & 3], _mm_loadu_si128((const __m128i *) &K256[4 * i]));
			st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
			st0 = _mm_sha256rnds2_epu32(st0, st1, _mm_shuffle_epi32(msg, 0x0E));
		}
		st0 = _mm_add_epi32(st0, abef);
		st1 = _mm_add_epi32(st1, cdgh);
	}

	tmp = _mm_shuffle_epi32(st0, 0x1B);
	st1 = _mm_shuffle_epi32(st1, 0xB1);
	_mm_storeu_si128((__m128i *) &state[0], _mm_blend_epi16(tmp, st1, 0xF0));
	_mm_storeu_si128((__m128i *) &state[4], _mm_alignr_epi8(st1, tmp, 8));
}

static void
sha256_ni(const uint8_t *data, size_t len, uint8_t out[32])
{
	uint32_t	state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	uint8_t		tail[128];
	size_t		full = len / 64,
				rest = len % 64,
				tail_len = rest < 56 ? 64 : 128;
	uint64_t	bits = (uint64_t) len * 8;

	sha256_ni_blocks(state, data, full);
	memset(tail, 0, sizeof(tail));
	memcpy(tail, data + full * 64, rest);
	tail[rest] = 0x80;
	for (int i = 0; i < 8; i++)
		tail[tail_len - 1 - i] = (uint8_t) (bits >> (8 * i));
	sha256_ni_blocks(state, tail, tail_len / 64);
	for (int i = 0; i < 8; i++)
	{
		out[4 * i] = (uint8_t) (state[i] >> 24);
		out[4 * i + 1] = (uint8_t) (state[i] >> 16);
		out[4 * i + 2] = (uint8_t) (state[i] >> 8);
		out[4 * i + 3] = (uint8_t) state[i];
	}
}
#endif

bool
rs_sha256_accelerated(void)
{
#ifdef RS_HAVE_SHANI_CODE
	static int	have = -1;

	if (have < 0)
	{
		unsigned	a,
					b,
					c,
					d;

		/* leaf 7 EBX bit 29: SHA extensions; leaf 1 ECX bit 19: SSE4.1 */
		have = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)) &&
			__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 19));
	}
	return have;
#else
	return false;
#endif
}

void
rs_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
#ifdef RS_HAVE_SHANI_CODE
	if (rs_sha256_accelerated())
	{
		sha256_ni(data, len, out);
		return;
	}
#endif
	rs_sha256_portable(data, len, out);
}
