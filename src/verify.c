/*
 * verify.c - #commit / #sync frame verification: CAR, signature, and the
 * sync 1.1 inversion of the ops over the frame's MST blocks.
 */
#include "verify.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "car.h"
#include "cbor.h"
#include "commit.h"
#include "mst.h"

const char *
verify_strerror(VerifyResult r)
{
	switch (r)
	{
		case VERIFY_OK:
			return "frame verifies";
		case VERIFY_BAD_CAR:
			return "blocks is not a valid CAR";
		case VERIFY_BAD_COMMIT:
			return "commit block is not a signed v3 commit";
		case VERIFY_BAD_NODE:
			return "an MST node in blocks is malformed";
		case VERIFY_BAD_KIND:
			return "only #commit and #sync frames can be verified";
		case VERIFY_ROOT_MISMATCH:
			return "CAR root is not the frame's commit";
		case VERIFY_COMMIT_MISSING:
			return "commit block is not in blocks";
		case VERIFY_REPO_MISMATCH:
			return "commit is for another repo";
		case VERIFY_REV_MISMATCH:
			return "commit rev is not the frame's rev";
		case VERIFY_BAD_SIGNATURE:
			return "signature does not verify";
		case VERIFY_TOO_BIG:
			return "tooBig frame does not carry the diff";
		case VERIFY_NO_PREV_DATA:
			return "frame has since but no prevData";
		case VERIFY_OP_WITHOUT_PREV:
			return "update or delete op without prev";
		case VERIFY_DUPLICATE_PATH:
			return "two ops on one path";
		case VERIFY_RECORD_MISSING:
			return "record block is not in blocks";
		case VERIFY_BAD_RECORD:
			return "record block is not a valid DAG-CBOR map";
		case VERIFY_RECORD_TOO_BIG:
			return "record block is over 1000000 bytes";
		case VERIFY_OP_MISMATCH:
			return "op disagrees with the tree";
		case VERIFY_PROOF_MISSING:
			return "MST node needed to invert the ops is not in blocks";
		case VERIFY_PREV_DATA_MISMATCH:
			return "inverted tree root is not prevData";
	}
	return "unknown verification result";
}

bool
verify_is_malformed(VerifyResult r)
{
	return r == VERIFY_BAD_CAR || r == VERIFY_BAD_COMMIT ||
		r == VERIFY_BAD_NODE || r == VERIFY_BAD_KIND;
}

static VerifyResult vfail(char *errmsg, size_t errlen, VerifyResult r, const char *fmt,...)
			__attribute__((format(printf, 4, 5)));

static VerifyResult
vfail(char *errmsg, size_t errlen, VerifyResult r, const char *fmt,...)
{
	va_list		ap;

	if (errmsg == NULL || errlen == 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(errmsg, errlen, fmt, ap);
	va_end(ap);
	return r;
}

static const char *
cidtext(const uint8_t cid[CID_LEN], char buf[CID_TEXT_LEN + 1])
{
	cid_format(cid, buf);
	return buf;
}

static inline int
plen(size_t len)
{
	return (int) (len > 256 ? 256 : len);
}

/*
 * Steps shared by #commit and #sync: CAR, root, commit block, did, rev,
 * signature.  On VERIFY_OK, idx is built (the caller frees it).
 */
static VerifyResult
check_commit_block(const uint8_t *blocks, size_t blocks_len,
				   const uint8_t *commit_cid, const char *did, size_t did_len,
				   const char *rev, size_t rev_len,
				   const uint8_t pub[VERIFY_PUBLIC_KEY_LEN],
				   CarIndex *idx, RepoCommit *commit, char *errmsg, size_t errlen)
{
	size_t		off = 0;
	CarError	cerr;
	const CarBlock *cb;
	CommitError comerr;
	char		c1[CID_TEXT_LEN + 1],
				c2[CID_TEXT_LEN + 1];
	char		why[256];

	VerifyResult r = VERIFY_OK;

	if ((cerr = car_index_build(blocks, blocks_len, idx, &off)) != CAR_OK)
		return vfail(errmsg, errlen, VERIFY_BAD_CAR, "invalid CAR in blocks at byte %zu: %s",
					 off, car_strerror(cerr));
	/* the sync spec: the commit is the first root (a #sync frame names no commit CID) */
	if (commit_cid && memcmp(idx->root, commit_cid, CID_LEN) != 0)
		r = vfail(errmsg, errlen, VERIFY_ROOT_MISMATCH, "CAR root %s is not the frame's commit %s",
				  cidtext(idx->root, c1), cidtext(commit_cid, c2));
	else if ((cb = car_index_get(idx, idx->root)) == NULL)
		r = vfail(errmsg, errlen, VERIFY_COMMIT_MISSING, "commit block %s is not in blocks",
				  cidtext(idx->root, c1));
	else if (cb->cid[1] != CID_CODEC_DAG_CBOR)
		r = vfail(errmsg, errlen, VERIFY_BAD_COMMIT, "commit block %s has the raw codec, not dag-cbor",
				  cidtext(cb->cid, c1));
	else if ((comerr = commit_decode(cb->data, cb->len, true, commit, why, sizeof(why))) != COMMIT_OK)
		r = vfail(errmsg, errlen, VERIFY_BAD_COMMIT, "commit block %s: %s", cidtext(cb->cid, c1), why);
	else if (commit->did_len != did_len || memcmp(commit->did, did, did_len) != 0)
		r = vfail(errmsg, errlen, VERIFY_REPO_MISMATCH, "commit is for %.*s, the frame for %.*s",
				  plen(commit->did_len), commit->did, plen(did_len), did);
	else if (commit->rev_len != rev_len || memcmp(commit->rev, rev, rev_len) != 0)
		r = vfail(errmsg, errlen, VERIFY_REV_MISMATCH, "commit rev %.*s is not the frame's rev %.*s",
				  plen(commit->rev_len), commit->rev, plen(rev_len), rev);
	else if (!commit_verify_sig(commit, pub))
		r = vfail(errmsg, errlen, VERIFY_BAD_SIGNATURE,
				  "signature of commit %s (rev %.*s) does not verify with the given key",
				  cidtext(cb->cid, c1), plen(commit->rev_len), commit->rev);
	if (r != VERIFY_OK)
		car_index_free(idx);
	return r;
}

VerifyResult
frame_verify_sync(const FrameSync *s, const uint8_t pub[VERIFY_PUBLIC_KEY_LEN],
				  char *errmsg, size_t errlen)
{
	return frame_verify_sync_keep(s, pub, NULL, errmsg, errlen);
}

VerifyResult
frame_verify_sync_keep(const FrameSync *s, const uint8_t pub[VERIFY_PUBLIC_KEY_LEN],
					   VerifiedCommit *out, char *errmsg, size_t errlen)
{
	CarIndex	idx;
	RepoCommit	commit;
	VerifyResult r;

	if (errmsg && errlen)
		errmsg[0] = '\0';
	r = check_commit_block(s->blocks, s->blocks_len, NULL, s->did, s->did_len,
						   s->rev, s->rev_len, pub, &idx, &commit, errmsg, errlen);
	if (r == VERIFY_OK && out != NULL)
	{
		memcpy(out->data, commit.data, CID_LEN);
		out->idx = idx;
	}
	else if (r == VERIFY_OK)
		car_index_free(&idx);
	return r;
}

/* The MST node store over the frame's blocks. */
static MstError
car_store_get(void *ctx, const uint8_t cid[CID_LEN], const uint8_t **data, size_t *len)
{
	const CarBlock *b = car_index_get((const CarIndex *) ctx, cid);

	if (b == NULL)
		return MST_ERR_MISSING_NODE;
	*data = b->data;
	*len = b->len;
	return MST_OK;
}

/* An MST failure during the inversion, as a result. */
static VerifyResult
mst_result(MstError err, const char *what, const char *mstmsg, char *errmsg, size_t errlen)
{
	switch (err)
	{
		case MST_ERR_MISSING_NODE:
			return vfail(errmsg, errlen, VERIFY_PROOF_MISSING, "%s: %s", what, mstmsg);
		case MST_ERR_CBOR:
		case MST_ERR_NODE_SHAPE:
		case MST_ERR_KEY_ORDER:
		case MST_ERR_KEY_DEPTH:
		case MST_ERR_PREFIX:
		case MST_ERR_NODE_TOO_BIG:
		case MST_ERR_NONCANONICAL:
		case MST_ERR_CID_MISMATCH:
			return vfail(errmsg, errlen, VERIFY_BAD_NODE, "%s: %s", what, mstmsg);
		default:
			return vfail(errmsg, errlen, VERIFY_OP_MISMATCH, "%s: %s", what, mstmsg);
	}
}

static const char *const action_names[] = {"create", "update", "delete"};

/*
 * Undo c's ops on the tree at data, with the frame's blocks as the node
 * store; root gets the resulting root.
 */
static VerifyResult
invert_ops(const FrameCommit *c, CarIndex *idx, const uint8_t data[CID_LEN],
		   uint8_t root[CID_LEN], char *errmsg, size_t errlen)
{
	VerifyResult r = VERIFY_OK;
	MstStore	store;
	MstTree    *tree = NULL;
	MstError	merr;
	char		mmsg[256],
				what[320],
				c1[CID_TEXT_LEN + 1],
				c2[CID_TEXT_LEN + 1];

	/* the tree after the commit, loaded lazily from the frame's blocks */
	store.get = car_store_get;
	store.ctx = idx;
	if ((merr = mst_open(&store, data, &tree, mmsg, sizeof(mmsg))) != MST_OK)
	{
		snprintf(what, sizeof(what), "MST root %s", cidtext(data, c1));
		r = mst_result(merr, what, mmsg, errmsg, errlen);
		goto out;
	}
	if ((merr = mst_root(tree, root)) != MST_OK || memcmp(root, data, CID_LEN) != 0)
	{
		r = merr != MST_OK ? mst_result(merr, "MST root", mst_errmsg(tree), errmsg, errlen) :
			vfail(errmsg, errlen, VERIFY_BAD_NODE, "MST root node re-encodes to %s, not %s",
				  cidtext(root, c1), cidtext(data, c2));
		goto out;
	}

	/* undo the ops, last first: create -> delete, update/delete -> put prev */
	for (size_t k = c->n_ops; k-- > 0;)
	{
		const FrameOp *op = &c->ops[k];
		uint8_t		old[CID_LEN];
		bool		had = false;

		snprintf(what, sizeof(what), "inverting %s %.*s", action_names[op->action],
				 plen(op->path_len), op->path);
		if (op->action == FRAME_ACTION_CREATE)
		{
			merr = mst_delete(tree, op->path, op->path_len, old);
			had = merr == MST_OK;
			if (merr == MST_ERR_NOT_FOUND)
			{
				r = vfail(errmsg, errlen, VERIFY_OP_MISMATCH, "create %.*s: the path is not in the tree",
						  plen(op->path_len), op->path);
				goto out;
			}
		}
		else
			merr = mst_put(tree, op->path, op->path_len, op->prev, old, &had);
		if (merr != MST_OK)
		{
			r = mst_result(merr, what, mst_errmsg(tree), errmsg, errlen);
			goto out;
		}
		if (op->action == FRAME_ACTION_DELETE ? had : !had)
		{
			r = vfail(errmsg, errlen, VERIFY_OP_MISMATCH, "%s %.*s: the path is %s the tree",
					  action_names[op->action], plen(op->path_len), op->path,
					  had ? "still in" : "not in");
			goto out;
		}
		if (op->action != FRAME_ACTION_DELETE && memcmp(old, op->cid, CID_LEN) != 0)
		{
			r = vfail(errmsg, errlen, VERIFY_OP_MISMATCH, "%s %.*s: the tree holds %s, the op says %s",
					  action_names[op->action], plen(op->path_len), op->path,
					  cidtext(old, c1), cidtext(op->cid, c2));
			goto out;
		}
	}
	if ((merr = mst_root(tree, root)) != MST_OK)
	{
		r = mst_result(merr, "hashing the inverted tree", mst_errmsg(tree), errmsg, errlen);
		goto out;
	}
out:
	mst_free(tree);
	return r;
}

VerifyResult
frame_verify_commit(const FrameCommit *c, const uint8_t pub[VERIFY_PUBLIC_KEY_LEN],
					char *errmsg, size_t errlen)
{
	return frame_verify_commit_keep(c, pub, NULL, errmsg, errlen);
}

VerifyResult
frame_verify_commit_keep(const FrameCommit *c, const uint8_t pub[VERIFY_PUBLIC_KEY_LEN],
						 VerifiedCommit *out, char *errmsg, size_t errlen)
{
	CarIndex	idx;
	RepoCommit	commit;
	VerifyResult r;
	uint8_t		root[CID_LEN];
	char		c1[CID_TEXT_LEN + 1],
				c2[CID_TEXT_LEN + 1];

	if (errmsg && errlen)
		errmsg[0] = '\0';
	r = check_commit_block(c->blocks, c->blocks_len, c->commit, c->repo, c->repo_len,
						   c->rev, c->rev_len, pub, &idx, &commit, errmsg, errlen);
	if (r != VERIFY_OK)
		return r;

	if (c->too_big)
	{
		r = vfail(errmsg, errlen, VERIFY_TOO_BIG, "tooBig frame (rev %.*s) does not carry the diff",
				  plen(c->rev_len), c->rev);
		goto done;
	}
	if (!c->has_prev_data && c->since != NULL)
	{
		r = vfail(errmsg, errlen, VERIFY_NO_PREV_DATA,
				  "frame has since %.*s but no prevData, so the ops cannot be checked",
				  plen(c->since_len), c->since);
		goto done;
	}
	for (size_t i = 0; i < c->n_ops; i++)
	{
		const FrameOp *op = &c->ops[i];

		if (op->action != FRAME_ACTION_CREATE && !op->has_prev)
		{
			r = vfail(errmsg, errlen, VERIFY_OP_WITHOUT_PREV, "%s %.*s has no prev",
					  action_names[op->action], plen(op->path_len), op->path);
			goto done;
		}
		if (op->action != FRAME_ACTION_DELETE)
		{
			const CarBlock *rec = car_index_get(&idx, op->cid);
			size_t		off;
			DcborError	derr = DCBOR_OK;

			if (rec == NULL)
			{
				r = vfail(errmsg, errlen, VERIFY_RECORD_MISSING, "record %s of %s %.*s is not in blocks",
						  cidtext(op->cid, c1), action_names[op->action], plen(op->path_len), op->path);
				goto done;
			}
			if (rec->len > RECORD_MAX_BYTES)
			{
				r = vfail(errmsg, errlen, VERIFY_RECORD_TOO_BIG,
						  "record %s of %s %.*s is %zu bytes, over the limit of %d bytes",
						  cidtext(op->cid, c1), action_names[op->action], plen(op->path_len), op->path,
						  rec->len, RECORD_MAX_BYTES);
				goto done;
			}
			if (op->cid[1] != CID_CODEC_DAG_CBOR ||
				(derr = dcbor_validate(rec->data, rec->len, &off)) != DCBOR_OK ||
				(rec->data[0] >> 5) != 5)
			{
				char		why[128];

				if (op->cid[1] != CID_CODEC_DAG_CBOR)
					snprintf(why, sizeof(why), "the CID has the raw codec, not dag-cbor");
				else if (derr != DCBOR_OK)
					snprintf(why, sizeof(why), "invalid DAG-CBOR at byte %zu: %s", off, dcbor_strerror(derr));
				else
					snprintf(why, sizeof(why), "%s", "not a map");
				r = vfail(errmsg, errlen, VERIFY_BAD_RECORD, "record %s of %s %.*s: %s",
						  cidtext(op->cid, c1), action_names[op->action], plen(op->path_len), op->path, why);
				goto done;
			}
		}
		/* at most 200 ops: quadratic is fine */
		for (size_t j = 0; j < i; j++)
			if (c->ops[j].path_len == op->path_len &&
				memcmp(c->ops[j].path, op->path, op->path_len) == 0)
			{
				r = vfail(errmsg, errlen, VERIFY_DUPLICATE_PATH, "ops[%zu] and ops[%zu] both change %.*s",
						  j, i, plen(op->path_len), op->path);
				goto done;
			}
	}

	/* an empty commit changes no record: nothing to undo, no node needed */
	if (c->n_ops == 0)
		memcpy(root, commit.data, CID_LEN);
	else if ((r = invert_ops(c, &idx, commit.data, root, errmsg, errlen)) != VERIFY_OK)
		goto done;
	if (c->has_prev_data)
	{
		if (memcmp(root, c->prev_data, CID_LEN) != 0)
			r = vfail(errmsg, errlen, VERIFY_PREV_DATA_MISMATCH,
					  "the ops invert to root %s, not prevData %s",
					  cidtext(root, c1), cidtext(c->prev_data, c2));
	}
	else
	{
		/* a first commit starts from the empty tree */
		MstTree    *empty = mst_new(NULL);
		uint8_t		empty_root[CID_LEN];

		mst_root(empty, empty_root);
		mst_free(empty);
		if (memcmp(root, empty_root, CID_LEN) != 0)
			r = vfail(errmsg, errlen, VERIFY_PREV_DATA_MISMATCH,
					  "first commit (no since, no prevData), but the ops invert to root %s, not the empty tree",
					  cidtext(root, c1));
	}

done:
	if (r == VERIFY_OK && out != NULL)
	{
		memcpy(out->data, commit.data, CID_LEN);
		out->idx = idx;
		return r;
	}
	car_index_free(&idx);
	return r;
}

VerifyResult
frame_verify(const Frame *f, const uint8_t pub[VERIFY_PUBLIC_KEY_LEN], char *errmsg, size_t errlen)
{
	if (f->kind == FRAME_COMMIT)
		return frame_verify_commit(&f->commit, pub, errmsg, errlen);
	if (f->kind == FRAME_SYNC)
		return frame_verify_sync(&f->sync, pub, errmsg, errlen);
	return vfail(errmsg, errlen, VERIFY_BAD_KIND, "%s frames cannot be verified, only #commit and #sync",
				 f->kind == FRAME_ERROR ? "error" :
				 f->kind == FRAME_ACCOUNT ? "#account" :
				 f->kind == FRAME_INFO ? "#info" : "these");
}
