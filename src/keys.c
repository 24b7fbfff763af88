/*
 * keys.c - base58btc, Ed25519 did:key, Ed25519 signing and secretbox sealing.
 */
#include "keys.h"

#include <string.h>

#include <sodium.h>

static const char base58_alphabet[] =
"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

#define DID_KEY_PREFIX "did:key:"
#define DID_KEY_PREFIX_LEN 8
#define MULTICODEC_ED25519_PUB_0 0xed
#define MULTICODEC_ED25519_PUB_1 0x01
#define DID_KEY_ED25519_BYTES (2 + ED25519_PUBLIC_KEY_LEN)

/*
 * Longest base58 text a did:key may carry before we call it too long without
 * decoding (decoding is quadratic).  Generous, so that other key types still
 * decode far enough to be reported as the wrong codec.
 */
#define DID_KEY_MAX_BASE58 256

static int
base58_digit(char c)
{
	const char *p;

	if (c == '\0')
		return -1;
	p = strchr(base58_alphabet, c);
	return p ? (int) (p - base58_alphabet) : -1;
}

void
base58_encode(const uint8_t *data, size_t len, RsBuf *out)
{
	size_t		zeros = 0;
	size_t		size;
	size_t		used = 0;		/* digits in use, at the end of digits[] */
	uint8_t    *digits;
	size_t		i;

	/* Each leading zero byte is written as a '1'. */
	while (zeros < len && data[zeros] == 0)
		zeros++;

	/* log(256) / log(58) < 1.38 digits per byte. */
	size = (len - zeros) * 138 / 100 + 1;
	digits = rs_alloc(size);
	memset(digits, 0, size);

	/* digits = digits * 256 + byte, in base 58, most significant first. */
	for (i = zeros; i < len; i++)
	{
		unsigned	carry = data[i];
		size_t		j;

		for (j = 0; j < used || carry != 0; j++)
		{
			size_t		k = size - 1 - j;

			carry += 256u * digits[k];
			digits[k] = carry % 58;
			carry /= 58;
		}
		used = j;
	}

	rs_buf_reserve(out, zeros + used);
	for (i = 0; i < zeros; i++)
		rs_buf_append_byte(out, '1');
	for (i = size - used; i < size; i++)
		rs_buf_append_byte(out, (uint8_t) base58_alphabet[digits[i]]);
	rs_free(digits);
}

bool
base58_decode(const char *text, size_t len, RsBuf *out)
{
	size_t		ones = 0;
	size_t		size;
	size_t		used = 0;		/* bytes in use, at the end of bytes[] */
	uint8_t    *bytes;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (base58_digit(text[i]) < 0)
			return false;
	}

	/* Each leading '1' is a zero byte. */
	while (ones < len && text[ones] == '1')
		ones++;

	/* log(58) / log(256) < 0.733 bytes per digit. */
	size = (len - ones) * 733 / 1000 + 1;
	bytes = rs_alloc(size);
	memset(bytes, 0, size);

	/* bytes = bytes * 58 + digit, in base 256, most significant first. */
	for (i = ones; i < len; i++)
	{
		unsigned	carry = (unsigned) base58_digit(text[i]);
		size_t		j;

		for (j = 0; j < used || carry != 0; j++)
		{
			size_t		k = size - 1 - j;

			carry += 58u * bytes[k];
			bytes[k] = carry & 0xff;
			carry >>= 8;
		}
		used = j;
	}

	rs_buf_reserve(out, ones + used);
	for (i = 0; i < ones; i++)
		rs_buf_append_byte(out, 0);
	rs_buf_append(out, bytes + size - used, used);
	rs_free(bytes);
	return true;
}

void
did_key_format_ed25519(const uint8_t pub[ED25519_PUBLIC_KEY_LEN],
					   char out[DID_KEY_ED25519_LEN + 1])
{
	uint8_t		prefixed[DID_KEY_ED25519_BYTES];
	RsBuf		text;

	prefixed[0] = MULTICODEC_ED25519_PUB_0;
	prefixed[1] = MULTICODEC_ED25519_PUB_1;
	memcpy(prefixed + 2, pub, ED25519_PUBLIC_KEY_LEN);

	rs_buf_init(&text, DID_KEY_ED25519_LEN + 1);
	rs_buf_append(&text, DID_KEY_PREFIX "z", DID_KEY_PREFIX_LEN + 1);
	base58_encode(prefixed, sizeof(prefixed), &text);

	/*
	 * Any 34 bytes starting 0xed 0x01 lie in [58^46, 58^47), so the text is
	 * always exactly DID_KEY_ED25519_LEN long.
	 */
	memcpy(out, text.data, DID_KEY_ED25519_LEN);
	out[DID_KEY_ED25519_LEN] = '\0';
	rs_buf_free(&text);
}

static bool
did_key_fail(DidKeyError *err, DidKeyError code)
{
	if (err)
		*err = code;
	return false;
}

bool
did_key_parse_ed25519(const char *text, size_t len,
					  uint8_t pub[ED25519_PUBLIC_KEY_LEN],
					  DidKeyError *err)
{
	const char *b58;
	size_t		b58_len;
	RsBuf		raw;
	DidKeyError result = DID_KEY_OK;

	if (len < DID_KEY_PREFIX_LEN || memcmp(text, DID_KEY_PREFIX, DID_KEY_PREFIX_LEN) != 0)
		return did_key_fail(err, DID_KEY_ERR_PREFIX);
	if (len == DID_KEY_PREFIX_LEN || text[DID_KEY_PREFIX_LEN] != 'z')
		return did_key_fail(err, DID_KEY_ERR_MULTIBASE);

	b58 = text + DID_KEY_PREFIX_LEN + 1;
	b58_len = len - DID_KEY_PREFIX_LEN - 1;
	if (b58_len > DID_KEY_MAX_BASE58)
		return did_key_fail(err, DID_KEY_ERR_LENGTH);

	rs_buf_init(&raw, DID_KEY_ED25519_BYTES);
	if (!base58_decode(b58, b58_len, &raw))
		result = DID_KEY_ERR_BASE58;
	else if (raw.len < 2 ||
			 raw.data[0] != MULTICODEC_ED25519_PUB_0 ||
			 raw.data[1] != MULTICODEC_ED25519_PUB_1)
		result = DID_KEY_ERR_CODEC;
	else if (raw.len != DID_KEY_ED25519_BYTES)
		result = DID_KEY_ERR_LENGTH;
	else
		memcpy(pub, raw.data + 2, ED25519_PUBLIC_KEY_LEN);
	rs_buf_free(&raw);

	if (result != DID_KEY_OK)
		return did_key_fail(err, result);
	if (err)
		*err = DID_KEY_OK;
	return true;
}

const char *
did_key_strerror(DidKeyError err)
{
	switch (err)
	{
		case DID_KEY_OK:
			return "No error.";
		case DID_KEY_ERR_PREFIX:
			return "The value does not start with \"did:key:\".";
		case DID_KEY_ERR_MULTIBASE:
			return "The key is not multibase base58btc (prefix \"z\").";
		case DID_KEY_ERR_BASE58:
			return "The key contains a character outside the base58btc alphabet.";
		case DID_KEY_ERR_CODEC:
			return "The key is not an ed25519-pub multicodec key (0xed 0x01).";
		case DID_KEY_ERR_LENGTH:
			return "The key is not 32 bytes long.";
	}
	return "Unknown did:key error.";
}

/* ---- Ed25519 ---- */

_Static_assert(crypto_sign_SEEDBYTES == ED25519_SEED_LEN, "seed length");
_Static_assert(crypto_sign_PUBLICKEYBYTES == ED25519_PUBLIC_KEY_LEN, "public key length");
_Static_assert(crypto_sign_BYTES == ED25519_SIGNATURE_LEN, "signature length");

void
rs_ed25519_keypair(uint8_t seed[ED25519_SEED_LEN],
				   uint8_t pk[ED25519_PUBLIC_KEY_LEN])
{
	randombytes_buf(seed, ED25519_SEED_LEN);
	rs_ed25519_pk_from_seed(seed, pk);
}

void
rs_ed25519_pk_from_seed(const uint8_t seed[ED25519_SEED_LEN],
						uint8_t pk[ED25519_PUBLIC_KEY_LEN])
{
	uint8_t		sk[crypto_sign_SECRETKEYBYTES];

	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(sk, sizeof(sk));
}

void
rs_ed25519_sign(const uint8_t seed[ED25519_SEED_LEN],
				const uint8_t *msg, size_t len,
				uint8_t sig[ED25519_SIGNATURE_LEN],
				uint8_t pk_out[ED25519_PUBLIC_KEY_LEN])
{
	uint8_t		pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t		sk[crypto_sign_SECRETKEYBYTES];

	crypto_sign_seed_keypair(pk, sk, seed);
	crypto_sign_detached(sig, NULL, msg, len, sk);
	sodium_memzero(sk, sizeof(sk));
	if (pk_out != NULL)
		memcpy(pk_out, pk, ED25519_PUBLIC_KEY_LEN);
}

void
rs_ed25519_sign_with_public(const uint8_t seed[ED25519_SEED_LEN],
							const uint8_t pk[ED25519_PUBLIC_KEY_LEN],
							const uint8_t *msg, size_t len,
							uint8_t sig[ED25519_SIGNATURE_LEN])
{
	uint8_t		sk[crypto_sign_SECRETKEYBYTES];

	/* libsodium's secret key is seed || public key */
	memcpy(sk, seed, ED25519_SEED_LEN);
	memcpy(sk + ED25519_SEED_LEN, pk, ED25519_PUBLIC_KEY_LEN);
	crypto_sign_detached(sig, NULL, msg, len, sk);
	sodium_memzero(sk, sizeof(sk));
}

bool
rs_ed25519_verify(const uint8_t pk[ED25519_PUBLIC_KEY_LEN],
				  const uint8_t *msg, size_t len,
				  const uint8_t sig[ED25519_SIGNATURE_LEN])
{
	/* libsodium also rejects small-order keys and non-canonical S. */
	return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}

/* ---- sealing (XSalsa20-Poly1305 secretbox) ---- */

_Static_assert(crypto_secretbox_KEYBYTES == RS_MASTER_KEY_LEN, "master key length");
_Static_assert(crypto_secretbox_NONCEBYTES == RS_SEAL_NONCE_LEN, "nonce length");
_Static_assert(crypto_secretbox_MACBYTES == RS_SEAL_MAC_LEN, "MAC length");

void
rs_seal(const uint8_t master[RS_MASTER_KEY_LEN],
		const uint8_t *plain, size_t len, RsBuf *out)
{
	uint8_t    *p;

	/* One reservation: callers that pre-size out see no allocation here. */
	rs_buf_reserve(out, RS_SEALED_LEN(len));
	p = out->data + out->len;
	p[0] = RS_SEAL_VERSION;
	randombytes_buf(p + 1, RS_SEAL_NONCE_LEN);
	crypto_secretbox_easy(p + 1 + RS_SEAL_NONCE_LEN, plain, len, p + 1, master);
	out->len += RS_SEALED_LEN(len);
}

bool
rs_unseal(const uint8_t master[RS_MASTER_KEY_LEN],
		  const uint8_t *sealed, size_t len,
		  uint8_t *plain_out, size_t plain_len)
{
	const uint8_t *nonce = sealed + 1;
	const uint8_t *box = sealed + 1 + RS_SEAL_NONCE_LEN;

	if (len != RS_SEALED_LEN(plain_len) || sealed[0] != RS_SEAL_VERSION ||
		crypto_secretbox_open_easy(plain_out, box, len - 1 - RS_SEAL_NONCE_LEN,
								   nonce, master) != 0)
	{
		sodium_memzero(plain_out, plain_len);
		return false;
	}
	return true;
}
