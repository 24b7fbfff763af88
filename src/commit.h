/*
 * commit.h - the atproto v3 repo commit object (pure C, no backend).
 *
 *   {did, rev, sig, data, prev: null, version: 3}
 *
 * (keys in DAG-CBOR canonical order).  sig is the 64-byte Ed25519 signature
 * over the DAG-CBOR bytes of the same map without sig: {did, rev, data,
 * prev, version}.  See atproto.com/specs/repository#commit-objects; the one
 * difference from atproto is the signature algorithm (SPEC: Ed25519).
 */
#ifndef RS_COMMIT_H
#define RS_COMMIT_H

#include "buf.h"
#include "cid.h"

#define COMMIT_VERSION 3
#define COMMIT_SIG_LEN 64
#define COMMIT_PUBLIC_KEY_LEN 32

typedef struct RepoCommit
{
	const char *did;			/* not NUL-terminated; decode points into input */
	size_t		did_len;
	const char *rev;			/* a TID */
	size_t		rev_len;
	uint8_t		data[CID_LEN];	/* MST root */
	bool		has_prev;		/* v3 allows a link here; we always write null */
	uint8_t		prev[CID_LEN];
	bool		has_sig;
	uint8_t		sig[COMMIT_SIG_LEN];
} RepoCommit;

typedef enum CommitError
{
	COMMIT_OK = 0,
	COMMIT_ERR_CBOR,			/* not valid DAG-CBOR */
	COMMIT_ERR_SHAPE,			/* not a map, or a missing, unknown or mistyped field */
	COMMIT_ERR_VERSION,			/* version is not 3 */
	COMMIT_ERR_DID,				/* did is not a valid DID */
	COMMIT_ERR_REV,				/* rev is not a valid TID */
	COMMIT_ERR_SIG				/* sig missing (signed decode) or not 64 bytes */
} CommitError;

const char *commit_strerror(CommitError err);

/* The bytes that get signed: {did, rev, data, prev, version}. */
void		commit_encode_unsigned(const RepoCommit *c, RsBuf *out);

/* The signed commit block; c->has_sig must be true. */
void		commit_encode_signed(const RepoCommit *c, RsBuf *out);

/*
 * Strict decode of a signed commit block (unsigned with require_sig false):
 * valid DAG-CBOR, exactly the fields above with the right types, version 3,
 * did and rev valid.  Strings point into data.  errmsg (may be NULL) gets a
 * message naming the field.
 */
CommitError commit_decode(const uint8_t *data, size_t len, bool require_sig,
						  RepoCommit *out, char *errmsg, size_t errlen);

/* Ed25519 (libsodium) check of c->sig over the unsigned encoding of c. */
bool		commit_verify_sig(const RepoCommit *c,
							  const uint8_t pub[COMMIT_PUBLIC_KEY_LEN]);

#endif
