/*
 * verify.h - offline verification of #commit and #sync frames (pure C).
 *
 * A consumer that holds a repo's Ed25519 public key checks a #commit frame
 * with nothing but the frame (atproto sync 1.1, "inductive firehose"):
 *
 *  1. blocks is a valid CARv1 whose root is the frame's commit CID, and the
 *     commit block is there (every block's bytes hash to its CID);
 *  2. the commit block is a signed v3 commit for the frame's repo and rev,
 *     and its signature verifies over the unsigned commit bytes;
 *  3. each create/update op's record block is in blocks, is a DAG-CBOR map
 *     and at most RECORD_MAX_BYTES (cbor.h);
 *  4. the ops, inverted on the tree at the commit's data root with blocks as
 *     the node store (create -> delete, update -> put prev, delete -> put
 *     prev), give prevData: the MST root before the commit.  A first commit
 *     (since and prevData absent) must invert to the empty tree.
 *
 * A #sync frame gets steps 1 and 2.  tooBig frames do not carry the diff
 * and fail with VERIFY_TOO_BIG.
 *
 * Results split in two: VERIFY_BAD_CAR, _COMMIT, _NODE and _KIND mean the
 * blocks are malformed (the frame cannot be checked at all); the others
 * mean they are well-formed but do not verify.  Either way the frame does
 * not verify.  errmsg (may be NULL) gets a message naming the op path or
 * CID.
 */
#ifndef RS_VERIFY_H
#define RS_VERIFY_H

#include "car.h"
#include "frame.h"

#define VERIFY_PUBLIC_KEY_LEN 32

typedef enum VerifyResult
{
	VERIFY_OK = 0,
	/* malformed */
	VERIFY_BAD_CAR,				/* blocks is not a valid CARv1 */
	VERIFY_BAD_COMMIT,			/* the commit block is not a signed v3 commit */
	VERIFY_BAD_NODE,			/* an MST node in blocks does not decode */
	VERIFY_BAD_KIND,			/* neither #commit nor #sync */
	/* well-formed, does not verify */
	VERIFY_ROOT_MISMATCH,		/* CAR root is not the frame's commit CID */
	VERIFY_COMMIT_MISSING,		/* no block for the commit CID */
	VERIFY_REPO_MISMATCH,		/* commit did is not the frame's repo (did) */
	VERIFY_REV_MISMATCH,		/* commit rev is not the frame's rev */
	VERIFY_BAD_SIGNATURE,		/* signature does not verify with the key */
	VERIFY_TOO_BIG,				/* tooBig: the frame does not carry the diff */
	VERIFY_NO_PREV_DATA,		/* since set but no prevData: not sync 1.1 */
	VERIFY_OP_WITHOUT_PREV,		/* update/delete without prev: not invertible */
	VERIFY_DUPLICATE_PATH,		/* two ops on one path */
	VERIFY_RECORD_MISSING,		/* create/update record block not in blocks */
	VERIFY_BAD_RECORD,			/* a record block is not a valid DAG-CBOR map */
	VERIFY_RECORD_TOO_BIG,		/* a record block over RECORD_MAX_BYTES */
	VERIFY_OP_MISMATCH,			/* an op disagrees with the tree */
	VERIFY_PROOF_MISSING,		/* an MST node the inversion needs is absent */
	VERIFY_PREV_DATA_MISMATCH	/* the inverted tree's root is not prevData */
} VerifyResult;

const char *verify_strerror(VerifyResult r);

/* True for the VERIFY_BAD_* results. */
bool		verify_is_malformed(VerifyResult r);

VerifyResult frame_verify_commit(const FrameCommit *c,
								 const uint8_t pub[VERIFY_PUBLIC_KEY_LEN],
								 char *errmsg, size_t errlen);
VerifyResult frame_verify_sync(const FrameSync *s,
							   const uint8_t pub[VERIFY_PUBLIC_KEY_LEN],
							   char *errmsg, size_t errlen);

/*
 * The same, keeping for the caller what a consumer applying the frame needs
 * next: the commit's data (its MST root) and the index of blocks (to find
 * record blocks by CID without parsing the CAR again).  Only on VERIFY_OK
 * is out filled in; the caller frees out->idx with car_index_free.
 */
typedef struct VerifiedCommit
{
	uint8_t		data[CID_LEN];
	CarIndex	idx;
} VerifiedCommit;

VerifyResult frame_verify_commit_keep(const FrameCommit *c,
									  const uint8_t pub[VERIFY_PUBLIC_KEY_LEN],
									  VerifiedCommit *out, char *errmsg, size_t errlen);
VerifyResult frame_verify_sync_keep(const FrameSync *s,
									const uint8_t pub[VERIFY_PUBLIC_KEY_LEN],
									VerifiedCommit *out, char *errmsg, size_t errlen);

/* A decoded frame of either kind; VERIFY_BAD_KIND for others. */
VerifyResult frame_verify(const Frame *f, const uint8_t pub[VERIFY_PUBLIC_KEY_LEN],
						  char *errmsg, size_t errlen);

#endif
