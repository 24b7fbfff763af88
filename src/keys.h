/*
 * keys.h - key encodings (pure C, no backend): base58btc and did:key for
 * Ed25519 public keys.
 *
 * A did:key here is "did:key:z" + base58btc(0xed 0x01 || 32-byte key), where
 * "z" is the base58btc multibase prefix and 0xed 0x01 the varint of the
 * ed25519-pub multicodec (see w3c-ccg.github.io/did-method-key).
 */
#ifndef RS_KEYS_H
#define RS_KEYS_H

#include "buf.h"

#define ED25519_PUBLIC_KEY_LEN 32

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

#endif
