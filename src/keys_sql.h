/*
 * keys_sql.h - repo signing keys in the backend: the master key file, sealed
 * key generation and signing (see keys_sql.c for the rules).
 */
#ifndef RS_KEYS_SQL_H
#define RS_KEYS_SQL_H

#include "postgres.h"

#include "keys.h"

/* Defines repo_stream.master_key_file; _PG_init calls it. */
void		rs_keys_define_gucs(void);

/*
 * The 32-byte master key from repo_stream.master_key_file, cached per
 * backend and re-read when the setting changes.  ERROR (F0000) if the file
 * is missing (it is only ever created by repo_stream.create_master_key()),
 * unusable, or placed inside the data directory.  The pointer is valid
 * until the next call.
 */
const uint8 *rs_master_key(void);

/*
 * A fresh Ed25519 key pair: appends its sealed seed (RS_SEALED_LEN(
 * ED25519_SEED_LEN) = 73 bytes) to the initialized buffer sealed_out, and
 * writes the public key's did:key (DID_KEY_ED25519_LEN characters + NUL)
 * into did_key_out.  Always re-reads the key file, so the seed is sealed
 * under the key on disk.  Errors as rs_master_key.
 */
void		rs_keys_generate(RsBuf *sealed_out, char did_key_out[DID_KEY_ED25519_LEN + 1]);

/*
 * Signs msg with the sealed key into sig (64 bytes).  With
 * expected_did_key (may be NULL), the key must be that did:key's, or ERROR
 * XX001 and nothing is signed: a commit is only ever signed by the key its
 * repo names.  ERROR (F0000) if the master key file is missing, unusable
 * or did not seal this key (after re-reading it once, in case it was
 * restored since it was cached); ERROR (XX001) if the sealed bytes are
 * malformed.
 */
void		rs_keys_sign(const uint8 *sealed, size_t sealed_len,
						 const uint8 *msg, size_t len, const char *expected_did_key,
						 uint8 sig[ED25519_SIGNATURE_LEN]);

/* Parses an Ed25519 did:key into pub, or ERROR 22P02 naming it. */
void		rs_did_key_parse_or_error(const char *text, size_t len,
									  uint8 pub[ED25519_PUBLIC_KEY_LEN]);

#endif
