/*
 * frame.h - atproto event stream frames for com.atproto.sync.subscribeRepos
 * (pure C, no backend).
 *
 * A frame is two DAG-CBOR items back to back: a header and a body
 * (atproto.com/specs/event-stream).
 *
 *   header {t: "#commit", op: 1}        body: the message, by kind
 *   header {op: -1}                     body {error, message?}
 *
 * Bodies are written with keys in canonical order (shorter first, then
 * bytewise):
 *
 *   #commit  {ops, rev, seq, repo, time, blobs: [], since, blocks, commit,
 *             rebase: false, tooBig: false, prevData}
 *            each op {cid, path, prev, action}
 *   #sync    {did, rev, seq, time, blocks}
 *   #account {did, seq, time, active, status}
 *   #info    {name, message}
 *
 * Optional fields follow the lexicon (lexicons/com/atproto/sync/
 * subscribeRepos.json), which says "not defined" rather than null: an op's
 * prev is omitted for a create, prevData is omitted for a repo's first
 * commit, status is omitted when absent, message likewise.  since is
 * nullable and written as null for a first commit.  The decoder accepts
 * both an absent field and null wherever the encoder omits one.
 *
 * The seq is an argument of the encoders, not a struct field, because the
 * write path stamps it last; frame_set_seq() re-stamps an encoded frame.
 *
 * Strings are (pointer, length) pairs, not NUL-terminated; decoded ones
 * point into the frame.  The encoders trust their input (the write path
 * built it); the decoder trusts nothing.
 */
#ifndef RS_FRAME_H
#define RS_FRAME_H

#include "buf.h"
#include "cid.h"

/*
 * Limits the subscribeRepos lexicon states, exactly (decimal bytes, not
 * MiB).  frame_decode reads frames past them; frame_check_lexicon (and so
 * verification) refuses them.
 */
#define FRAME_MAX_OPS 200				/* #commit.ops maxLength */
#define FRAME_COMMIT_BLOCKS_MAX 2000000	/* #commit.blocks maxLength, bytes */
#define FRAME_SYNC_BLOCKS_MAX 10000		/* #sync.blocks maxLength, bytes */

/* seq is positive and below 2^53 (SPEC), so JavaScript consumers hold it exactly. */
#define FRAME_SEQ_MAX ((INT64_C(1) << 53) - 1)

/* "2024-01-02T03:04:05.678Z" */
#define FRAME_TIME_LEN 24

typedef enum FrameKind
{
	FRAME_COMMIT,
	FRAME_SYNC,
	FRAME_ACCOUNT,
	FRAME_INFO,
	FRAME_ERROR,				/* header op -1 */
	FRAME_OTHER					/* op 1 with another t (#identity, ...): body not decoded */
} FrameKind;

typedef enum FrameAction
{
	FRAME_ACTION_CREATE,
	FRAME_ACTION_UPDATE,
	FRAME_ACTION_DELETE
} FrameAction;

typedef struct FrameOp
{
	FrameAction action;
	const char *path;			/* collection/rkey */
	size_t		path_len;
	bool		has_cid;		/* create, update: the new record */
	uint8_t		cid[CID_LEN];
	bool		has_prev;		/* update, delete: the old record (sync 1.1) */
	uint8_t		prev[CID_LEN];
} FrameOp;

typedef struct FrameCommit
{
	const char *repo;			/* DID */
	size_t		repo_len;
	const char *rev;			/* TID */
	size_t		rev_len;
	const char *since;			/* TID of the previous commit; NULL: null */
	size_t		since_len;
	uint8_t		commit[CID_LEN];
	const uint8_t *blocks;		/* CARv1, root = commit */
	size_t		blocks_len;
	const FrameOp *ops;
	size_t		n_ops;
	bool		has_prev_data;	/* MST root before this commit */
	uint8_t		prev_data[CID_LEN];
	const char *time;			/* see frame_format_time */
	size_t		time_len;
	/* decoded only; the encoder always writes false, false, [] */
	bool		rebase;
	bool		too_big;
	size_t		n_blobs;
} FrameCommit;

typedef struct FrameSync
{
	const char *did;
	size_t		did_len;
	const char *rev;
	size_t		rev_len;
	const uint8_t *blocks;		/* CARv1 holding the signed commit, its root */
	size_t		blocks_len;
	const char *time;
	size_t		time_len;
} FrameSync;

typedef struct FrameAccount
{
	const char *did;
	size_t		did_len;
	const char *time;
	size_t		time_len;
	bool		active;
	const char *status;			/* "deactivated", "deleted", ...; NULL: omitted */
	size_t		status_len;
} FrameAccount;

typedef struct FrameInfo
{
	const char *name;			/* "OutdatedCursor" */
	size_t		name_len;
	const char *message;		/* NULL: omitted */
	size_t		message_len;
} FrameInfo;

typedef struct FrameErrorBody
{
	const char *error;			/* "FutureCursor", "ConsumerTooSlow" */
	size_t		error_len;
	const char *message;		/* NULL: omitted */
	size_t		message_len;
} FrameErrorBody;

/* ---- encoders (append one whole frame to out) ---- */

void		frame_encode_commit(const FrameCommit *c, int64_t seq, RsBuf *out);
void		frame_encode_sync(const FrameSync *s, int64_t seq, RsBuf *out);
void		frame_encode_account(const FrameAccount *a, int64_t seq, RsBuf *out);
void		frame_encode_info(const FrameInfo *i, RsBuf *out);
void		frame_encode_error(const FrameErrorBody *e, RsBuf *out);

/*
 * ISO 8601 UTC with milliseconds and Z, from microseconds since 1970
 * (truncated to the millisecond).  Writes FRAME_TIME_LEN characters and a
 * NUL; false (out untouched) outside years 0000..9999.
 */
bool		frame_format_time(int64_t unix_usec, char out[FRAME_TIME_LEN + 1]);

/* ---- decoder ---- */

typedef enum FrameError
{
	FRAME_OK = 0,
	FRAME_ERR_CBOR,				/* header or body is not valid DAG-CBOR, or no body */
	FRAME_ERR_TRAILING,			/* bytes after the body */
	FRAME_ERR_HEADER,			/* header is not {t, op} with op 1 (t text) or -1 */
	FRAME_ERR_FIELD,			/* body is not a map, or a field is missing or mistyped */
	FRAME_ERR_VALUE,			/* a field's value is invalid (DID, TID, path, seq, action...) */
	FRAME_ERR_LEXICON			/* over a lexicon limit, or time not a datetime (frame_check_lexicon) */
} FrameError;

const char *frame_strerror(FrameError err);

typedef struct Frame
{
	FrameKind	kind;
	int			op;				/* 1 or -1 */
	const char *type;			/* header t, e.g. "#commit"; NULL for errors */
	size_t		type_len;
	const uint8_t *header;
	size_t		header_len;
	const uint8_t *body;
	size_t		body_len;
	bool		has_seq;		/* #commit, #sync, #account; OTHER if present */
	int64_t		seq;
	/* the member for kind is filled in */
	FrameCommit commit;			/* ops: rs_alloc'd, freed by frame_free */
	FrameSync	sync;
	FrameAccount account;
	FrameInfo	info;
	FrameErrorBody error;
} Frame;

/*
 * Strict decode: header and body each valid DAG-CBOR, nothing after them;
 * known kinds need their lexicon's required fields with the right types,
 * DIDs, TIDs and record paths valid, seq in 1..FRAME_SEQ_MAX, cid present
 * exactly for create/update, no prev on a create.  Unknown fields are
 * ignored, as lexicon evolution adds fields.  The lexicon's size limits
 * and the datetime format are left to frame_check_lexicon, so a frame
 * over them can still be shown.  blocks is not parsed here (see car.h,
 * verify.h).  errmsg (may be NULL) gets a message naming the field and
 * value.  Never reads past len.  On error nothing needs freeing; on
 * success call frame_free.
 *
 * FRAME_ERR_CBOR, FRAME_ERR_TRAILING and FRAME_ERR_HEADER mean the bytes
 * are not a frame at all (not exactly two valid DAG-CBOR items, or the
 * first is not a header); FRAME_ERR_FIELD and FRAME_ERR_VALUE are about
 * a frame's body.
 */
FrameError	frame_decode(const uint8_t *data, size_t len, Frame *out,
						 char *errmsg, size_t errlen);
void		frame_free(Frame *f);

/*
 * Fields several kinds share, for a decoded frame: the DID (#commit repo,
 * #sync and #account did), the rev (#commit, #sync) and the CAR (#commit,
 * #sync).  NULL (and *len 0) for a kind without it.
 */
const char *frame_did(const Frame *f, size_t *len);
const char *frame_rev(const Frame *f, size_t *len);
const uint8_t *frame_blocks(const Frame *f, size_t *len);

/* True for the errors that mean "not a frame at all" (see frame_decode). */
bool		frame_error_is_framing(FrameError err);

/*
 * The lexicon rules frame_decode leaves out, for a decoded frame:
 * #commit blocks <= FRAME_COMMIT_BLOCKS_MAX bytes and ops <= FRAME_MAX_OPS,
 * #sync blocks <= FRAME_SYNC_BLOCKS_MAX bytes, and time an atproto
 * datetime (syntax.h) in #commit, #sync and #account.  FRAME_ERR_LEXICON
 * with errmsg naming the field, its size and the limit; else FRAME_OK.
 */
FrameError	frame_check_lexicon(const Frame *f, char *errmsg, size_t errlen);

/*
 * Copy of a frame with the body's top-level seq replaced; nothing else
 * changes.  FRAME_ERR_FIELD if the body has no integer seq.  Checks only
 * that the frame is two valid DAG-CBOR items with a map body.
 */
FrameError	frame_set_seq(const uint8_t *data, size_t len, int64_t seq, RsBuf *out);

#endif
