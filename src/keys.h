/*
 * keys.h - key encodings and key operations (pure C, no backend): base58btc
 * and did:key for Ed25519 public keys, Ed25519 signing over libsodium, and
 * sealing of secrets under a master key (secretbox).
 *
 * A did:key here is "did:key:z" + base58btc(0xed 0x01 || 32-byte key), where
 * "z" is the base58btc multibase prefix and 0xed 0x01 the varint of the
 * ed25519-pub multicodec (see w3c-ccg.github.io/did-method-key).
 */
#ifndef RS_KEYS_H
#define RS_KEYS_H

#include "buf.h"

#define ED25519_PUBLIC_KEY_LEN 32
#define ED25519_SEED_LEN 32
#define ED25519_SIGNATURE_LEN 64

/* 8 ("did:key:") + 1 ("z") + 47 (base58 of the 34 prefixed key bytes). */
#define DID_KEY_ED25519_LEN 56

typedef enum DidKeyError
{
	DID_KEY_OK = 0,
	DID_KEY_ERR_PREFIX,			/* does not start with "did:key:" */
	DID_KEY_ERR_MULTIBASE,		/* multibase prefix is not "z" (base58btc) */
	DID_KEY_ERR_BASE58,			/* a character outside the base58 alphabet */
	DID_KEY_ERR_CODEC,			/* multicodec is not ed25519-pub (0xed 0x01) */
	DID_KEY_ERR_LENGTH			/* key is not ED25519_PUBLIC_KEY_LEN bytes */
} DidKeyError;

/* Appends the base58btc (Bitcoin alphabet) text of data; no NUL. */
void		base58_encode(const uint8_t *data, size_t len, RsBuf *out);

/*
 * Appends the bytes that text decodes to.  False, with out unchanged, if
 * text holds a character outside the alphabet.  Quadratic in len, so
 * callers bound untrusted input first.
 */
bool		base58_decode(const char *text, size_t len, RsBuf *out);

/* Writes DID_KEY_ED25519_LEN characters plus a NUL into out. */
void		did_key_format_ed25519(const uint8_t pub[ED25519_PUBLIC_KEY_LEN],
								   char out[DID_KEY_ED25519_LEN + 1]);

/*
 * Strict parse of an Ed25519 did:key into pub.  False on any deviation; then
 * *err (if not NULL) says which.  The key bytes are not checked to be a
 * valid curve point; signature verification rejects those.
 */
bool		did_key_parse_ed25519(const char *text, size_t len,
								  uint8_t pub[ED25519_PUBLIC_KEY_LEN],
								  DidKeyError *err);

/* One sentence, suitable for errdetail. */
const char *did_key_strerror(DidKeyError err);

/*
 * Ed25519.  A private key is kept as its 32-byte seed (RFC 8032's "secret
 * key"); libsodium's 64-byte secret key is seed || public key and is only
 * derived for the moment of signing.  Callers must have run sodium_init().
 */

/* A fresh random seed and its public key. */
void		rs_ed25519_keypair(uint8_t seed[ED25519_SEED_LEN],
							   uint8_t pk[ED25519_PUBLIC_KEY_LEN]);
void		rs_ed25519_pk_from_seed(const uint8_t seed[ED25519_SEED_LEN],
									uint8_t pk[ED25519_PUBLIC_KEY_LEN]);

/*
 * Detached signature of msg; the derived secret key is wiped before return.
 * pk_out (may be NULL) gets the public key of the seed, which signing
 * derives anyway, so a caller can check it is the key it expects.
 */
void		rs_ed25519_sign(const uint8_t seed[ED25519_SEED_LEN],
							const uint8_t *msg, size_t len,
							uint8_t sig[ED25519_SIGNATURE_LEN],
							uint8_t pk_out[ED25519_PUBLIC_KEY_LEN]);

/*
 * The same signature for a seed whose public key the caller already knows
 * (a wrong pk gives a signature that does not verify): no derivation.
 */
void		rs_ed25519_sign_with_public(const uint8_t seed[ED25519_SEED_LEN],
										const uint8_t pk[ED25519_PUBLIC_KEY_LEN],
										const uint8_t *msg, size_t len,
										uint8_t sig[ED25519_SIGNATURE_LEN]);

/* True only if sig is pk's valid signature of msg. */
bool		rs_ed25519_verify(const uint8_t pk[ED25519_PUBLIC_KEY_LEN],
							  const uint8_t *msg, size_t len,
							  const uint8_t sig[ED25519_SIGNATURE_LEN]);

/*
 * Sealing.  A sealed blob is
 *
 *     version (1 byte, RS_SEAL_VERSION) || nonce (24 bytes, random)
 *         || crypto_secretbox_easy(plain, nonce, master)  (16-byte MAC + plain)
 *
 * so it is exactly RS_SEALED_LEN(plain length) bytes.  The version byte is
 * not covered by the MAC; rs_unseal accepts only RS_SEAL_VERSION, so
 * changing it can only make unsealing fail.
 */
#define RS_MASTER_KEY_LEN 32
#define RS_SEAL_VERSION 1
#define RS_SEAL_NONCE_LEN 24
#define RS_SEAL_MAC_LEN 16
#define RS_SEALED_LEN(plain_len) (1 + RS_SEAL_NONCE_LEN + RS_SEAL_MAC_LEN + (plain_len))

/* Appends the sealed form of plain to out (reserving room first, once). */
void		rs_seal(const uint8_t master[RS_MASTER_KEY_LEN],
					const uint8_t *plain, size_t len, RsBuf *out);

/*
 * Opens a sealed blob into plain_out, which receives exactly plain_len
 * bytes.  False (and plain_out zeroed) if the blob is not RS_SEALED_LEN
 * (plain_len) bytes, has another version, or fails authentication: the
 * wrong master key or modified bytes.
 */
bool		rs_unseal(const uint8_t master[RS_MASTER_KEY_LEN],
					  const uint8_t *sealed, size_t len,
					  uint8_t *plain_out, size_t plain_len);

#endif
