/*
 * test_keys.c - Ed25519 signing against RFC 8032 and sealing under a master
 * key: round trips, and rejection of every kind of damaged input.
 */
#define _GNU_SOURCE				/* memmem */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keys.h"
#include "tap.h"

/* RFC 8032 section 7.1; "secret key" there is the 32-byte seed. */
typedef struct Rfc8032Vector
{
	const char *name;
	const char *seed;
	const char *pk;
	const char *msg;
	const char *sig;
} Rfc8032Vector;

static const Rfc8032Vector rfc8032[] = {
	{"TEST 1",
		"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
		"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
		"",
		"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	"5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
	{"TEST 2",
		"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
		"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
		"72",
		"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
	"085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
	{"TEST 3",
		"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
		"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
		"af82",
		"6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
	"18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
	{"TEST SHA(abc)",
		"833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
		"ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
		"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
	"2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
		"dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
	"09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
};

/* Decodes hex into out (at most max bytes); returns the byte count. */
static size_t
from_hex(const char *hex, uint8_t *out, size_t max)
{
	size_t		n = strlen(hex) / 2;

	if (n > max)
		abort();
	for (size_t i = 0; i < n; i++)
	{
		unsigned	b;

		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			abort();
		out[i] = (uint8_t) b;
	}
	return n;
}

static void
test_rfc8032(void)
{
	for (size_t v = 0; v < sizeof(rfc8032) / sizeof(rfc8032[0]); v++)
	{
		const Rfc8032Vector *t = &rfc8032[v];
		uint8_t		seed[ED25519_SEED_LEN],
					pk[ED25519_PUBLIC_KEY_LEN],
					want_pk[ED25519_PUBLIC_KEY_LEN],
					sig[ED25519_SIGNATURE_LEN],
					want_sig[ED25519_SIGNATURE_LEN],
					msg[65];	/* one spare byte for the extension test */
		size_t		len;
		int			accepted = 0;

		from_hex(t->seed, seed, sizeof(seed));
		from_hex(t->pk, want_pk, sizeof(want_pk));
		from_hex(t->sig, want_sig, sizeof(want_sig));
		len = from_hex(t->msg, msg, sizeof(msg) - 1);

		memset(pk, 0, sizeof(pk));
		rs_ed25519_pk_from_seed(seed, pk);
		ok(memcmp(pk, want_pk, sizeof(pk)) == 0, "RFC 8032 %s: public key from seed", t->name);

		memset(sig, 0, sizeof(sig));
		rs_ed25519_sign(seed, msg, len, sig, NULL);
		ok(memcmp(sig, want_sig, sizeof(sig)) == 0, "RFC 8032 %s: signature", t->name);
		ok(rs_ed25519_verify(want_pk, msg, len, want_sig), "RFC 8032 %s: signature verifies", t->name);

		/* Every single-bit change of the signature or key is rejected. */
		for (int bit = 0; bit < ED25519_SIGNATURE_LEN * 8; bit++)
		{
			want_sig[bit / 8] ^= 1 << (bit % 8);
			accepted += rs_ed25519_verify(want_pk, msg, len, want_sig);
			want_sig[bit / 8] ^= 1 << (bit % 8);
		}
		ok(accepted == 0, "RFC 8032 %s: all 512 one-bit changes of the signature rejected (%d accepted)",
		   t->name, accepted);
		accepted = 0;
		for (int bit = 0; bit < ED25519_PUBLIC_KEY_LEN * 8; bit++)
		{
			want_pk[bit / 8] ^= 1 << (bit % 8);
			accepted += rs_ed25519_verify(want_pk, msg, len, want_sig);
			want_pk[bit / 8] ^= 1 << (bit % 8);
		}
		ok(accepted == 0, "RFC 8032 %s: all 256 one-bit changes of the public key rejected (%d accepted)",
		   t->name, accepted);
		accepted = 0;
		for (size_t bit = 0; bit < len * 8; bit++)
		{
			msg[bit / 8] ^= 1 << (bit % 8);
			accepted += rs_ed25519_verify(want_pk, msg, len, want_sig);
			msg[bit / 8] ^= 1 << (bit % 8);
		}
		msg[len] = 0;
		accepted += rs_ed25519_verify(want_pk, msg, len + 1, want_sig);
		if (len > 0)
			accepted += rs_ed25519_verify(want_pk, msg, len - 1, want_sig);
		ok(accepted == 0, "RFC 8032 %s: every one-bit change, extension and truncation of the message rejected (%d accepted)",
		   t->name, accepted);
	}
}

static void
test_round_trips(void)
{
	uint8_t		seed[ED25519_SEED_LEN],
				pk[ED25519_PUBLIC_KEY_LEN],
				pk2[ED25519_PUBLIC_KEY_LEN],
				other_pk[ED25519_PUBLIC_KEY_LEN],
				sig[ED25519_SIGNATURE_LEN],
				sig2[ED25519_SIGNATURE_LEN],
				msg[1000];
	int			bad_pk = 0,
				bad_verify = 0,
				nondeterministic = 0,
				bad_sign_pk = 0,
				cross = 0;

	for (int i = 0; i < 200; i++)
	{
		size_t		len = (size_t) i * 5;

		rs_ed25519_keypair(seed, pk);
		rs_ed25519_pk_from_seed(seed, pk2);
		if (memcmp(pk, pk2, sizeof(pk)) != 0)
			bad_pk++;
		randombytes_buf(msg, len);
		rs_ed25519_sign(seed, msg, len, sig, NULL);
		memset(pk2, 0, sizeof(pk2));
		rs_ed25519_sign(seed, msg, len, sig2, pk2);
		if (memcmp(sig, sig2, sizeof(sig)) != 0)
			nondeterministic++;
		if (memcmp(pk, pk2, sizeof(pk)) != 0)
			bad_sign_pk++;
		if (!rs_ed25519_verify(pk, msg, len, sig))
			bad_verify++;
		/* The previous iteration's key must not verify this signature. */
		if (i > 0 && rs_ed25519_verify(other_pk, msg, len, sig))
			cross++;
		memcpy(other_pk, pk, sizeof(pk));
	}
	ok(bad_pk == 0, "200 fresh key pairs: public key matches the one derived from the seed (%d bad)", bad_pk);
	ok(bad_verify == 0, "200 sign/verify round trips, messages of 0..995 bytes (%d failed)", bad_verify);
	ok(nondeterministic == 0, "signing the same message twice gives the same signature (%d differ)",
	   nondeterministic);
	ok(cross == 0, "another key never verifies the signature (%d accepted)", cross);
	ok(bad_sign_pk == 0, "signing reports the seed's public key (%d differ)", bad_sign_pk);

	{
		/* signing with the known public key: the same signature, no derivation */
		int			differ = 0,
					wrong_verifies = 0;

		for (int i = 0; i < 50; i++)
		{
			rs_ed25519_keypair(seed, pk);
			randombytes_buf(msg, 100);
			rs_ed25519_sign(seed, msg, 100, sig, NULL);
			rs_ed25519_sign_with_public(seed, pk, msg, 100, sig2);
			if (memcmp(sig, sig2, sizeof(sig)) != 0)
				differ++;
			/* with another key's public half the signature is no good */
			rs_ed25519_sign_with_public(seed, other_pk, msg, 100, sig2);
			if (rs_ed25519_verify(pk, msg, 100, sig2) || rs_ed25519_verify(other_pk, msg, 100, sig2))
				wrong_verifies++;
			memcpy(other_pk, pk, sizeof(pk));
		}
		ok(differ == 0, "signing with the known public key gives the same signature (%d differ)", differ);
		ok(wrong_verifies == 0, "signing with a wrong public key gives a signature no key verifies (%d did)",
		   wrong_verifies);
	}

	{
		uint8_t		s1[ED25519_SEED_LEN],
					s2[ED25519_SEED_LEN];

		rs_ed25519_keypair(s1, pk);
		rs_ed25519_keypair(s2, pk2);
		ok(memcmp(s1, s2, sizeof(s1)) != 0 && memcmp(pk, pk2, sizeof(pk)) != 0,
		   "two fresh key pairs differ");
	}
}

static int
count_unseal_ok(const uint8_t *master, const uint8_t *sealed, size_t len, size_t plain_len)
{
	uint8_t		out[64];

	return rs_unseal(master, sealed, len, out, plain_len) ? 1 : 0;
}

static void
test_seal(void)
{
	uint8_t		master[RS_MASTER_KEY_LEN],
				wrong[RS_MASTER_KEY_LEN],
				seed[ED25519_SEED_LEN],
				pk[ED25519_PUBLIC_KEY_LEN],
				back[ED25519_SEED_LEN],
				sk[crypto_sign_SECRETKEYBYTES];
	RsBuf		sealed,
				again,
				prefixed;
	int			accepted = 0,
				leaks = 0;
	bool		zeroed = true;

	randombytes_buf(master, sizeof(master));
	rs_ed25519_keypair(seed, pk);

	rs_buf_init(&sealed, 0);
	rs_seal(master, seed, sizeof(seed), &sealed);
	ok(sealed.len == RS_SEALED_LEN(ED25519_SEED_LEN) && sealed.len == 73,
	   "sealed seed is 1 + 24 + 16 + 32 = 73 bytes (got %zu)", sealed.len);
	ok(sealed.data[0] == RS_SEAL_VERSION, "sealed blob starts with format version %d", RS_SEAL_VERSION);

	memset(back, 0, sizeof(back));
	ok(rs_unseal(master, sealed.data, sealed.len, back, sizeof(back)) &&
	   memcmp(back, seed, sizeof(seed)) == 0, "seal/unseal round trip gives the seed back");

	/*
	 * The sealed bytes hold no 8-byte run of the seed, nor of the 64-byte
	 * secret key (seed || public key) libsodium derives from it.
	 */
	crypto_sign_seed_keypair(pk, sk, seed);
	for (size_t i = 0; i + 8 <= sizeof(sk); i++)
		if (memmem(sealed.data, sealed.len, sk + i, 8) != NULL)
			leaks++;
	ok(leaks == 0 && memmem(sealed.data, sealed.len, seed, sizeof(seed)) == NULL,
	   "sealed blob contains no 8-byte run of the seed or secret key (%d found)", leaks);

	rs_buf_init(&again, 0);
	rs_seal(master, seed, sizeof(seed), &again);
	ok(again.len == sealed.len && memcmp(again.data + 1, sealed.data + 1, RS_SEAL_NONCE_LEN) != 0 &&
	   memcmp(again.data, sealed.data, sealed.len) != 0,
	   "sealing the same seed twice uses a fresh nonce and gives different bytes");
	rs_buf_free(&again);

	/* rs_seal appends. */
	rs_buf_init(&prefixed, 0);
	rs_buf_append(&prefixed, "abc", 3);
	rs_seal(master, seed, sizeof(seed), &prefixed);
	ok(prefixed.len == 3 + sealed.len && memcmp(prefixed.data, "abc", 3) == 0 &&
	   rs_unseal(master, prefixed.data + 3, prefixed.len - 3, back, sizeof(back)) &&
	   memcmp(back, seed, sizeof(seed)) == 0, "rs_seal appends to what the buffer holds");
	rs_buf_free(&prefixed);

	/* Wrong master key: any single-bit difference. */
	for (int bit = 0; bit < RS_MASTER_KEY_LEN * 8; bit++)
	{
		memcpy(wrong, master, sizeof(master));
		wrong[bit / 8] ^= 1 << (bit % 8);
		accepted += count_unseal_ok(wrong, sealed.data, sealed.len, sizeof(seed));
	}
	ok(accepted == 0, "all 256 one-bit-different master keys are rejected (%d accepted)", accepted);

	randombytes_buf(wrong, sizeof(wrong));
	memset(back, 0xaa, sizeof(back));
	ok(!rs_unseal(wrong, sealed.data, sealed.len, back, sizeof(back)), "a random master key is rejected");
	for (size_t i = 0; i < sizeof(back); i++)
		zeroed &= back[i] == 0;
	ok(zeroed, "a failed unseal leaves the output zeroed");

	/* Truncated, extended, wrong expected length. */
	accepted = 0;
	for (size_t len = 0; len < sealed.len; len++)
		accepted += count_unseal_ok(master, sealed.data, len, sizeof(seed));
	ok(accepted == 0, "every truncation (0..72 bytes) is rejected (%d accepted)", accepted);
	{
		uint8_t		longer[74];

		memcpy(longer, sealed.data, sealed.len);
		longer[73] = 0;
		ok(!count_unseal_ok(master, longer, sizeof(longer), sizeof(seed)), "one trailing byte is rejected");
	}
	ok(!count_unseal_ok(master, sealed.data, sealed.len, 31) &&
	   !count_unseal_ok(master, sealed.data, sealed.len, 33),
	   "a blob of the wrong length for the expected plaintext is rejected");

	/* Wrong version byte: every other value. */
	accepted = 0;
	for (int v = 0; v < 256; v++)
	{
		if (v == RS_SEAL_VERSION)
			continue;
		sealed.data[0] = (uint8_t) v;
		accepted += count_unseal_ok(master, sealed.data, sealed.len, sizeof(seed));
	}
	sealed.data[0] = RS_SEAL_VERSION;
	ok(accepted == 0, "all 255 other version bytes are rejected (%d accepted)", accepted);

	/* Tampering: any bit of nonce, MAC or ciphertext. */
	accepted = 0;
	for (size_t bit = 8; bit < sealed.len * 8; bit++)
	{
		sealed.data[bit / 8] ^= 1 << (bit % 8);
		accepted += count_unseal_ok(master, sealed.data, sealed.len, sizeof(seed));
		sealed.data[bit / 8] ^= 1 << (bit % 8);
	}
	ok(accepted == 0, "all 576 one-bit changes of nonce, MAC and ciphertext are rejected (%d accepted)",
	   accepted);

	/* After all that, the untouched blob still opens. */
	ok(rs_unseal(master, sealed.data, sealed.len, back, sizeof(back)) &&
	   memcmp(back, seed, sizeof(seed)) == 0, "the original blob still opens after the negative tests");
	rs_buf_free(&sealed);

	/* Empty plaintext is just version, nonce and MAC. */
	rs_buf_init(&sealed, 0);
	rs_seal(master, NULL, 0, &sealed);
	ok(sealed.len == RS_SEALED_LEN(0) && rs_unseal(master, sealed.data, sealed.len, back, 0),
	   "an empty plaintext seals to 41 bytes and opens");
	rs_buf_free(&sealed);
}

int
main(void)
{
	if (sodium_init() < 0)
	{
		printf("Bail out! sodium_init failed\n");
		return 1;
	}

	test_rfc8032();
	test_round_trips();
	test_seal();

	return done_testing();
}
