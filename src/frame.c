/*
 * frame.c - subscribeRepos frames: encoders, strict decoder, seq re-stamping.
 */
#include "frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cbor.h"
#include "syntax.h"

/* ---------------------------------------------------------------- encoders */

static void
put_header(RsBuf *out, const char *t)
{
	/* {t, op}: "t" is the shorter key */
	dcbor_put_map(out, 2);
	dcbor_put_cstr(out, "t");
	dcbor_put_cstr(out, t);
	dcbor_put_cstr(out, "op");
	dcbor_put_int(out, 1);
}

static void
put_key_text(RsBuf *out, const char *key, const char *s, size_t len)
{
	dcbor_put_cstr(out, key);
	dcbor_put_text(out, s, len);
}

static void
put_op(RsBuf *out, const FrameOp *op)
{
	static const char *const names[] = {"create", "update", "delete"};
	bool		with_prev = op->has_prev && op->action != FRAME_ACTION_CREATE;

	/* {cid, path, prev, action}; prev only where sync 1.1 defines it */
	dcbor_put_map(out, with_prev ? 4 : 3);
	dcbor_put_cstr(out, "cid");
	if (op->has_cid && op->action != FRAME_ACTION_DELETE)
		dcbor_put_link(out, op->cid, CID_LEN);
	else
		dcbor_put_null(out);
	put_key_text(out, "path", op->path, op->path_len);
	if (with_prev)
	{
		dcbor_put_cstr(out, "prev");
		dcbor_put_link(out, op->prev, CID_LEN);
	}
	dcbor_put_cstr(out, "action");
	dcbor_put_cstr(out, names[op->action]);
}

void
frame_encode_commit(const FrameCommit *c, int64_t seq, RsBuf *out)
{
	rs_buf_reserve(out, c->blocks_len + 256 + c->n_ops * 120);
	put_header(out, "#commit");
	dcbor_put_map(out, c->has_prev_data ? 12 : 11);
	dcbor_put_cstr(out, "ops");
	dcbor_put_array(out, c->n_ops);
	for (size_t i = 0; i < c->n_ops; i++)
		put_op(out, &c->ops[i]);
	put_key_text(out, "rev", c->rev, c->rev_len);
	dcbor_put_cstr(out, "seq");
	dcbor_put_int(out, seq);
	put_key_text(out, "repo", c->repo, c->repo_len);
	put_key_text(out, "time", c->time, c->time_len);
	dcbor_put_cstr(out, "blobs");
	dcbor_put_array(out, 0);
	dcbor_put_cstr(out, "since");
	if (c->since)
		dcbor_put_text(out, c->since, c->since_len);
	else
		dcbor_put_null(out);
	dcbor_put_cstr(out, "blocks");
	dcbor_put_bytes(out, c->blocks, c->blocks_len);
	dcbor_put_cstr(out, "commit");
	dcbor_put_link(out, c->commit, CID_LEN);
	dcbor_put_cstr(out, "rebase");
	dcbor_put_bool(out, false);
	dcbor_put_cstr(out, "tooBig");
	dcbor_put_bool(out, false);
	if (c->has_prev_data)
	{
		dcbor_put_cstr(out, "prevData");
		dcbor_put_link(out, c->prev_data, CID_LEN);
	}
}

void
frame_encode_sync(const FrameSync *s, int64_t seq, RsBuf *out)
{
	rs_buf_reserve(out, s->blocks_len + 128);
	put_header(out, "#sync");
	dcbor_put_map(out, 5);
	put_key_text(out, "did", s->did, s->did_len);
	put_key_text(out, "rev", s->rev, s->rev_len);
	dcbor_put_cstr(out, "seq");
	dcbor_put_int(out, seq);
	put_key_text(out, "time", s->time, s->time_len);
	dcbor_put_cstr(out, "blocks");
	dcbor_put_bytes(out, s->blocks, s->blocks_len);
}

void
frame_encode_account(const FrameAccount *a, int64_t seq, RsBuf *out)
{
	put_header(out, "#account");
	dcbor_put_map(out, a->status ? 5 : 4);
	put_key_text(out, "did", a->did, a->did_len);
	dcbor_put_cstr(out, "seq");
	dcbor_put_int(out, seq);
	put_key_text(out, "time", a->time, a->time_len);
	dcbor_put_cstr(out, "active");
	dcbor_put_bool(out, a->active);
	if (a->status)
		put_key_text(out, "status", a->status, a->status_len);
}

void
frame_encode_info(const FrameInfo *i, RsBuf *out)
{
	put_header(out, "#info");
	dcbor_put_map(out, i->message ? 2 : 1);
	put_key_text(out, "name", i->name, i->name_len);
	if (i->message)
		put_key_text(out, "message", i->message, i->message_len);
}

void
frame_encode_error(const FrameErrorBody *e, RsBuf *out)
{
	dcbor_put_map(out, 1);
	dcbor_put_cstr(out, "op");
	dcbor_put_int(out, -1);
	dcbor_put_map(out, e->message ? 2 : 1);
	put_key_text(out, "error", e->error, e->error_len);
	if (e->message)
		put_key_text(out, "message", e->message, e->message_len);
}

bool
frame_format_time(int64_t unix_usec, char out[FRAME_TIME_LEN + 1])
{
	/* floor division, so times before 1970 still count forwards */
	int64_t		ms = unix_usec / 1000 - (unix_usec % 1000 < 0);
	int64_t		secs = ms / 1000 - (ms % 1000 < 0);
	int			msec = (int) (ms - secs * 1000);
	time_t		t = (time_t) secs;
	struct tm	tm;
	char		tmp[64];

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return false;
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, msec);
	memcpy(out, tmp, FRAME_TIME_LEN + 1);
	return true;
}

/* ---------------------------------------------------------------- decoder */

const char *
frame_strerror(FrameError err)
{
	switch (err)
	{
		case FRAME_OK:
			return "no error";
		case FRAME_ERR_CBOR:
			return "frame is not two valid DAG-CBOR items";
		case FRAME_ERR_TRAILING:
			return "bytes after the frame body";
		case FRAME_ERR_HEADER:
			return "frame header is not {t, op} with op 1 or -1";
		case FRAME_ERR_FIELD:
			return "frame body field missing or of the wrong type";
		case FRAME_ERR_VALUE:
			return "frame body field has an invalid value";
		case FRAME_ERR_LEXICON:
			return "frame breaks a lexicon rule (a size limit or the datetime format)";
	}
	return "unknown frame error";
}

typedef struct Dec
{
	char	   *errmsg;
	size_t		errlen;
	const char *kind;			/* "#commit", for messages */
} Dec;

static FrameError dfail(Dec *d, FrameError err, const char *fmt,...) __attribute__((format(printf, 3, 4)));

static FrameError
dfail(Dec *d, FrameError err, const char *fmt,...)
{
	va_list		ap;
	int			n;

	if (d->errmsg == NULL || d->errlen == 0)
		return err;
	/* the kind is known once the header is read */
	n = d->kind ? snprintf(d->errmsg, d->errlen, "%s: ", d->kind) : 0;
	if (n < 0 || (size_t) n >= d->errlen)
		return err;
	va_start(ap, fmt);
	vsnprintf(d->errmsg + n, d->errlen - n, fmt, ap);
	va_end(ap);
	return err;
}

/* At most 64 bytes of a value for a message, non-printable bytes as '?'. */
static const char *
show(const void *p, size_t len, char buf[80])
{
	const uint8_t *s = p;
	size_t		n = len > 64 ? 64 : len,
				o = 0;

	for (size_t i = 0; i < n; i++)
		buf[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char) s[i] : '?';
	if (len > n)
	{
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/*
 * End of the first DAG-CBOR item in data, without recursion (garbage can
 * nest arbitrarily deep).  Every count was checked against the remaining
 * bytes by dcbor_read, so pending stays far below 2^64.
 */
static DcborError
first_item_end(const uint8_t *data, size_t len, size_t *end)
{
	DcborReader r;
	uint64_t	pending = 1;

	dcbor_reader_init(&r, data, len);
	while (pending > 0)
	{
		DcborItem	it;
		DcborError	err = dcbor_read(&r, &it);

		if (err != DCBOR_OK)
		{
			*end = r.pos;
			return err;
		}
		pending--;
		if (it.type == DCBOR_ARRAY)
			pending += it.uval;
		else if (it.type == DCBOR_MAP)
			pending += 2 * it.uval;
	}
	*end = r.pos;
	return DCBOR_OK;
}

/* Split data into header and body, both validated; fill op/type/kind. */
static FrameError
decode_header(const uint8_t *data, size_t len, Frame *f, Dec *d)
{
	size_t		hend,
				off;
	DcborError	err;
	DcborReader r;
	DcborItem	m;
	bool		have_op = false;

	if ((err = first_item_end(data, len, &hend)) != DCBOR_OK)
		return dfail(d, FRAME_ERR_CBOR, "header is not valid DAG-CBOR at byte %zu: %s",
					 hend, dcbor_strerror(err));
	if ((err = dcbor_validate(data, hend, &off)) != DCBOR_OK)
		return dfail(d, FRAME_ERR_CBOR, "header is not valid DAG-CBOR at byte %zu: %s",
					 off, dcbor_strerror(err));
	if (hend == len)
		return dfail(d, FRAME_ERR_CBOR, "no body after the %zu-byte header", len);
	f->header = data;
	f->header_len = hend;
	f->body = data + hend;
	f->body_len = len - hend;

	dcbor_reader_init(&r, f->header, f->header_len);
	dcbor_read(&r, &m);
	if (m.type != DCBOR_MAP)
		return dfail(d, FRAME_ERR_HEADER, "header is %s, not a map", dcbor_type_name(m.type));
	for (uint64_t i = 0; i < m.uval; i++)
	{
		DcborItem	k,
					v;

		dcbor_read(&r, &k);
		if (dcbor_text_is(&k, "op"))
		{
			dcbor_read(&r, &v);
			if ((v.type != DCBOR_UINT && v.type != DCBOR_NEGINT) || (v.ival != 1 && v.ival != -1))
				return dfail(d, FRAME_ERR_HEADER, "header op must be 1 or -1");
			f->op = (int) v.ival;
			have_op = true;
		}
		else if (dcbor_text_is(&k, "t"))
		{
			dcbor_read(&r, &v);
			if (v.type != DCBOR_TEXT)
				return dfail(d, FRAME_ERR_HEADER, "header t is %s, not text", dcbor_type_name(v.type));
			f->type = (const char *) v.ptr;
			f->type_len = v.len;
		}
		else
			dcbor_skip(&r);		/* validated above, depth bounded */
	}
	if (!have_op)
		return dfail(d, FRAME_ERR_HEADER, "header has no op");
	if (f->op == -1)
	{
		f->kind = FRAME_ERROR;
		f->type = NULL;
		f->type_len = 0;
	}
	else if (f->type == NULL)
		return dfail(d, FRAME_ERR_HEADER, "header with op 1 has no t");
	else if (f->type_len == 7 && memcmp(f->type, "#commit", 7) == 0)
		f->kind = FRAME_COMMIT;
	else if (f->type_len == 5 && memcmp(f->type, "#sync", 5) == 0)
		f->kind = FRAME_SYNC;
	else if (f->type_len == 8 && memcmp(f->type, "#account", 8) == 0)
		f->kind = FRAME_ACCOUNT;
	else if (f->type_len == 5 && memcmp(f->type, "#info", 5) == 0)
		f->kind = FRAME_INFO;
	else
		f->kind = FRAME_OTHER;

	/* the body: exactly one item, nothing after it */
	if ((err = first_item_end(f->body, f->body_len, &off)) != DCBOR_OK)
		return dfail(d, FRAME_ERR_CBOR, "body is not valid DAG-CBOR at byte %zu: %s",
					 hend + off, dcbor_strerror(err));
	if (off != f->body_len)
		return dfail(d, FRAME_ERR_TRAILING, "%zu trailing %s after the body, at byte %zu",
					 f->body_len - off, f->body_len - off == 1 ? "byte" : "bytes", hend + off);
	if ((err = dcbor_validate(f->body, f->body_len, &off)) != DCBOR_OK)
		return dfail(d, FRAME_ERR_CBOR, "body is not valid DAG-CBOR at byte %zu: %s",
					 hend + off, dcbor_strerror(err));
	return FRAME_OK;
}

/* ---- body fields ---- */

enum
{
	F_SEQ = 1 << 0,
	F_REPO = 1 << 1,
	F_DID = 1 << 2,
	F_REV = 1 << 3,
	F_SINCE = 1 << 4,
	F_COMMIT = 1 << 5,
	F_BLOCKS = 1 << 6,
	F_OPS = 1 << 7,
	F_TIME = 1 << 8,
	F_REBASE = 1 << 9,
	F_TOOBIG = 1 << 10,
	F_BLOBS = 1 << 11,
	F_ACTIVE = 1 << 12,
	F_NAME = 1 << 13,
	F_ERROR = 1 << 14
};

static const char *const field_names[] = {
	"seq", "repo", "did", "rev", "since", "commit", "blocks", "ops", "time",
	"rebase", "tooBig", "blobs", "active", "name", "error"
};

static FrameError
want_type(Dec *d, const char *field, const DcborItem *v, DcborType t)
{
	if (v->type == t || (t == DCBOR_TRUE && v->type == DCBOR_FALSE))
		return FRAME_OK;
	return dfail(d, FRAME_ERR_FIELD, "field \"%s\" is %s, not %s", field,
				 dcbor_type_name(v->type), dcbor_type_name(t));
}

static FrameError
want_did(Dec *d, const char *field, const DcborItem *v)
{
	char		b[80];
	FrameError	e = want_type(d, field, v, DCBOR_TEXT);

	if (e == FRAME_OK && !did_valid((const char *) v->ptr, v->len))
		return dfail(d, FRAME_ERR_VALUE, "field \"%s\" is not a valid DID: \"%s\"", field,
					 show(v->ptr, v->len, b));
	return e;
}

static FrameError
want_tid(Dec *d, const char *field, const DcborItem *v)
{
	char		b[80];
	FrameError	e = want_type(d, field, v, DCBOR_TEXT);

	if (e == FRAME_OK && !tid_valid((const char *) v->ptr, v->len))
		return dfail(d, FRAME_ERR_VALUE, "field \"%s\" is not a valid TID: \"%s\"", field,
					 show(v->ptr, v->len, b));
	return e;
}

static FrameError
want_nonempty_text(Dec *d, const char *field, const DcborItem *v)
{
	FrameError	e = want_type(d, field, v, DCBOR_TEXT);

	if (e == FRAME_OK && v->len == 0)
		return dfail(d, FRAME_ERR_VALUE, "field \"%s\" is empty", field);
	return e;
}

static FrameError
want_seq(Dec *d, const DcborItem *v, Frame *f)
{
	if (v->type != DCBOR_UINT && v->type != DCBOR_NEGINT)
		return dfail(d, FRAME_ERR_FIELD, "field \"seq\" is %s, not an integer", dcbor_type_name(v->type));
	if (v->ival < 1 || v->ival > FRAME_SEQ_MAX)
		return dfail(d, FRAME_ERR_VALUE, "seq %lld is outside 1..2^53-1", (long long) v->ival);
	f->seq = v->ival;
	f->has_seq = true;
	return FRAME_OK;
}

static FrameError
decode_op(Dec *d, DcborReader *r, size_t index, FrameOp *op)
{
	DcborItem	m;
	bool		have_action = false,
				have_path = false,
				have_cid = false;
	char		b[80];

	memset(op, 0, sizeof(*op));
	dcbor_read(r, &m);
	if (m.type != DCBOR_MAP)
		return dfail(d, FRAME_ERR_FIELD, "ops[%zu] is %s, not a map", index, dcbor_type_name(m.type));
	for (uint64_t i = 0; i < m.uval; i++)
	{
		DcborItem	k,
					v;
		size_t		at;

		dcbor_read(r, &k);
		at = r->pos;
		dcbor_read(r, &v);
		if (dcbor_text_is(&k, "action"))
		{
			if (v.type != DCBOR_TEXT)
				return dfail(d, FRAME_ERR_FIELD, "ops[%zu].action is %s, not text", index, dcbor_type_name(v.type));
			if (dcbor_text_is(&v, "create"))
				op->action = FRAME_ACTION_CREATE;
			else if (dcbor_text_is(&v, "update"))
				op->action = FRAME_ACTION_UPDATE;
			else if (dcbor_text_is(&v, "delete"))
				op->action = FRAME_ACTION_DELETE;
			else
				return dfail(d, FRAME_ERR_VALUE, "ops[%zu].action \"%s\" is not create, update or delete",
							 index, show(v.ptr, v.len, b));
			have_action = true;
		}
		else if (dcbor_text_is(&k, "path"))
		{
			if (v.type != DCBOR_TEXT)
				return dfail(d, FRAME_ERR_FIELD, "ops[%zu].path is %s, not text", index, dcbor_type_name(v.type));
			if (!repo_path_valid((const char *) v.ptr, v.len))
				return dfail(d, FRAME_ERR_VALUE, "ops[%zu].path is not a valid collection/rkey: \"%s\"",
							 index, show(v.ptr, v.len, b));
			op->path = (const char *) v.ptr;
			op->path_len = v.len;
			have_path = true;
		}
		else if (dcbor_text_is(&k, "cid") || dcbor_text_is(&k, "prev"))
		{
			bool		is_cid = k.len == 3;

			if (v.type == DCBOR_LINK)
			{
				memcpy(is_cid ? op->cid : op->prev, v.ptr, CID_LEN);
				*(is_cid ? &op->has_cid : &op->has_prev) = true;
			}
			else if (v.type != DCBOR_NULL)
				return dfail(d, FRAME_ERR_FIELD, "ops[%zu].%s is %s, not a link or null",
							 index, is_cid ? "cid" : "prev", dcbor_type_name(v.type));
			if (is_cid)
				have_cid = true;
		}
		else
		{
			r->pos = at;
			dcbor_skip(r);
		}
	}
	if (!have_action || !have_path || !have_cid)
		return dfail(d, FRAME_ERR_FIELD, "ops[%zu] has no %s", index,
					 !have_action ? "action" : !have_path ? "path" : "cid");
	if (op->action == FRAME_ACTION_DELETE ? op->has_cid : !op->has_cid)
		return dfail(d, FRAME_ERR_VALUE, "ops[%zu] (%s %.*s): cid must be %s", index,
					 op->action == FRAME_ACTION_DELETE ? "delete" :
					 op->action == FRAME_ACTION_CREATE ? "create" : "update",
					 (int) (op->path_len > 64 ? 64 : op->path_len), op->path,
					 op->action == FRAME_ACTION_DELETE ? "null for a delete" : "a link");
	if (op->action == FRAME_ACTION_CREATE && op->has_prev)
		return dfail(d, FRAME_ERR_VALUE, "ops[%zu] (create %.*s) has a prev", index,
					 (int) (op->path_len > 64 ? 64 : op->path_len), op->path);
	return FRAME_OK;
}

static FrameError
decode_ops(Dec *d, DcborReader *r, const DcborItem *arr, FrameCommit *c)
{
	FrameOp    *ops;
	size_t		cap = arr->uval < 16 ? 16 : arr->uval > FRAME_MAX_OPS ? FRAME_MAX_OPS : arr->uval;

	/* more ops than the lexicon allows still decode (frame_check_lexicon says no) */
	ops = rs_alloc(cap * sizeof(FrameOp));
	c->ops = ops;
	c->n_ops = 0;
	for (size_t i = 0; i < arr->uval; i++)
	{
		FrameError	e;

		if (i == cap)
		{
			cap *= 2;
			ops = rs_realloc(ops, cap * sizeof(FrameOp));
			c->ops = ops;
		}
		if ((e = decode_op(d, r, i, &ops[i])) != FRAME_OK)
			return e;
		c->n_ops++;
	}
	return FRAME_OK;
}

/* Walk the body map; each kind picks its fields. */
static FrameError
decode_body(Frame *f, Dec *d)
{
	DcborReader r;
	DcborItem	m;
	unsigned	seen = 0,
				required = 0;
	FrameError	e = FRAME_OK;

	switch (f->kind)
	{
		case FRAME_COMMIT:
			required = F_SEQ | F_REPO | F_REV | F_SINCE | F_COMMIT | F_BLOCKS | F_OPS |
				F_TIME | F_REBASE | F_TOOBIG | F_BLOBS;
			break;
		case FRAME_SYNC:
			required = F_SEQ | F_DID | F_REV | F_BLOCKS | F_TIME;
			break;
		case FRAME_ACCOUNT:
			required = F_SEQ | F_DID | F_TIME | F_ACTIVE;
			break;
		case FRAME_INFO:
			required = F_NAME;
			break;
		case FRAME_ERROR:
			required = F_ERROR;
			break;
		case FRAME_OTHER:
			required = 0;
			break;
	}

	dcbor_reader_init(&r, f->body, f->body_len);
	dcbor_read(&r, &m);
	if (m.type != DCBOR_MAP)
		return dfail(d, FRAME_ERR_FIELD, "body is %s, not a map", dcbor_type_name(m.type));

	for (uint64_t i = 0; i < m.uval && e == FRAME_OK; i++)
	{
		DcborItem	k,
					v;
		size_t		at;
		FrameKind	kind = f->kind;

		dcbor_read(&r, &k);
		at = r.pos;
		dcbor_read(&r, &v);

		if (dcbor_text_is(&k, "seq") && kind != FRAME_INFO && kind != FRAME_ERROR)
		{
			/* OTHER kinds: take an integer seq, skip anything else */
			if (kind == FRAME_OTHER && v.type != DCBOR_UINT && v.type != DCBOR_NEGINT)
			{
				r.pos = at;
				dcbor_skip(&r);
			}
			else
				e = want_seq(d, &v, f);
			seen |= F_SEQ;
		}
		else if (kind == FRAME_COMMIT)
		{
			FrameCommit *c = &f->commit;

			if (dcbor_text_is(&k, "repo"))
			{
				if ((e = want_did(d, "repo", &v)) == FRAME_OK)
				{
					c->repo = (const char *) v.ptr;
					c->repo_len = v.len;
				}
				seen |= F_REPO;
			}
			else if (dcbor_text_is(&k, "rev"))
			{
				if ((e = want_tid(d, "rev", &v)) == FRAME_OK)
				{
					c->rev = (const char *) v.ptr;
					c->rev_len = v.len;
				}
				seen |= F_REV;
			}
			else if (dcbor_text_is(&k, "since"))
			{
				if (v.type != DCBOR_NULL && (e = want_tid(d, "since", &v)) == FRAME_OK)
				{
					c->since = (const char *) v.ptr;
					c->since_len = v.len;
				}
				seen |= F_SINCE;
			}
			else if (dcbor_text_is(&k, "commit"))
			{
				if ((e = want_type(d, "commit", &v, DCBOR_LINK)) == FRAME_OK)
					memcpy(c->commit, v.ptr, CID_LEN);
				seen |= F_COMMIT;
			}
			else if (dcbor_text_is(&k, "blocks"))
			{
				if ((e = want_type(d, "blocks", &v, DCBOR_BYTES)) == FRAME_OK)
				{
					c->blocks = v.ptr;
					c->blocks_len = v.len;
				}
				seen |= F_BLOCKS;
			}
			else if (dcbor_text_is(&k, "ops"))
			{
				if ((e = want_type(d, "ops", &v, DCBOR_ARRAY)) == FRAME_OK)
					e = decode_ops(d, &r, &v, c);
				seen |= F_OPS;
			}
			else if (dcbor_text_is(&k, "prevData"))
			{
				if (v.type == DCBOR_LINK)
				{
					memcpy(c->prev_data, v.ptr, CID_LEN);
					c->has_prev_data = true;
				}
				else if (v.type != DCBOR_NULL)
					e = dfail(d, FRAME_ERR_FIELD, "field \"prevData\" is %s, not a link", dcbor_type_name(v.type));
			}
			else if (dcbor_text_is(&k, "time"))
			{
				if ((e = want_nonempty_text(d, "time", &v)) == FRAME_OK)
				{
					c->time = (const char *) v.ptr;
					c->time_len = v.len;
				}
				seen |= F_TIME;
			}
			else if (dcbor_text_is(&k, "rebase") || dcbor_text_is(&k, "tooBig"))
			{
				bool		rebase = k.len == 6 && k.ptr[0] == 'r';

				if ((e = want_type(d, rebase ? "rebase" : "tooBig", &v, DCBOR_TRUE)) == FRAME_OK)
					*(rebase ? &c->rebase : &c->too_big) = v.type == DCBOR_TRUE;
				seen |= rebase ? F_REBASE : F_TOOBIG;
			}
			else if (dcbor_text_is(&k, "blobs"))
			{
				if ((e = want_type(d, "blobs", &v, DCBOR_ARRAY)) == FRAME_OK)
				{
					for (uint64_t j = 0; j < v.uval && e == FRAME_OK; j++)
					{
						DcborItem	l;

						dcbor_read(&r, &l);
						if (l.type != DCBOR_LINK)
						{
							e = dfail(d, FRAME_ERR_FIELD, "blobs[%llu] is %s, not a link",
									  (unsigned long long) j, dcbor_type_name(l.type));
							break;
						}
					}
					c->n_blobs = v.uval;
				}
				seen |= F_BLOBS;
			}
			else
			{
				r.pos = at;
				dcbor_skip(&r);
			}
		}
		else if (kind == FRAME_SYNC || kind == FRAME_ACCOUNT)
		{
			const char **did = kind == FRAME_SYNC ? &f->sync.did : &f->account.did;
			size_t	   *did_len = kind == FRAME_SYNC ? &f->sync.did_len : &f->account.did_len;
			const char **time = kind == FRAME_SYNC ? &f->sync.time : &f->account.time;
			size_t	   *time_len = kind == FRAME_SYNC ? &f->sync.time_len : &f->account.time_len;

			if (dcbor_text_is(&k, "did"))
			{
				if ((e = want_did(d, "did", &v)) == FRAME_OK)
				{
					*did = (const char *) v.ptr;
					*did_len = v.len;
				}
				seen |= F_DID;
			}
			else if (dcbor_text_is(&k, "time"))
			{
				if ((e = want_nonempty_text(d, "time", &v)) == FRAME_OK)
				{
					*time = (const char *) v.ptr;
					*time_len = v.len;
				}
				seen |= F_TIME;
			}
			else if (kind == FRAME_SYNC && dcbor_text_is(&k, "rev"))
			{
				if ((e = want_tid(d, "rev", &v)) == FRAME_OK)
				{
					f->sync.rev = (const char *) v.ptr;
					f->sync.rev_len = v.len;
				}
				seen |= F_REV;
			}
			else if (kind == FRAME_SYNC && dcbor_text_is(&k, "blocks"))
			{
				if ((e = want_type(d, "blocks", &v, DCBOR_BYTES)) == FRAME_OK)
				{
					f->sync.blocks = v.ptr;
					f->sync.blocks_len = v.len;
				}
				seen |= F_BLOCKS;
			}
			else if (kind == FRAME_ACCOUNT && dcbor_text_is(&k, "active"))
			{
				if ((e = want_type(d, "active", &v, DCBOR_TRUE)) == FRAME_OK)
					f->account.active = v.type == DCBOR_TRUE;
				seen |= F_ACTIVE;
			}
			else if (kind == FRAME_ACCOUNT && dcbor_text_is(&k, "status"))
			{
				if (v.type == DCBOR_TEXT)
				{
					f->account.status = (const char *) v.ptr;
					f->account.status_len = v.len;
				}
				else if (v.type != DCBOR_NULL)
					e = dfail(d, FRAME_ERR_FIELD, "field \"status\" is %s, not text", dcbor_type_name(v.type));
			}
			else
			{
				r.pos = at;
				dcbor_skip(&r);
			}
		}
		else if (kind == FRAME_INFO || kind == FRAME_ERROR)
		{
			const char *main_key = kind == FRAME_INFO ? "name" : "error";
			const char **msg = kind == FRAME_INFO ? &f->info.message : &f->error.message;
			size_t	   *msg_len = kind == FRAME_INFO ? &f->info.message_len : &f->error.message_len;

			if (dcbor_text_is(&k, main_key))
			{
				if ((e = want_nonempty_text(d, main_key, &v)) == FRAME_OK)
				{
					*(kind == FRAME_INFO ? &f->info.name : &f->error.error) = (const char *) v.ptr;
					*(kind == FRAME_INFO ? &f->info.name_len : &f->error.error_len) = v.len;
				}
				seen |= kind == FRAME_INFO ? F_NAME : F_ERROR;
			}
			else if (dcbor_text_is(&k, "message"))
			{
				if (v.type == DCBOR_TEXT)
				{
					*msg = (const char *) v.ptr;
					*msg_len = v.len;
				}
				else if (v.type != DCBOR_NULL)
					e = dfail(d, FRAME_ERR_FIELD, "field \"message\" is %s, not text", dcbor_type_name(v.type));
			}
			else
			{
				r.pos = at;
				dcbor_skip(&r);
			}
		}
		else
		{
			r.pos = at;
			dcbor_skip(&r);
		}
	}
	if (e != FRAME_OK)
		return e;
	if ((seen & required) != required)
	{
		unsigned	missing = required & ~seen;

		for (int bit = 0; bit < (int) (sizeof(field_names) / sizeof(field_names[0])); bit++)
			if (missing & (1u << bit))
				return dfail(d, FRAME_ERR_FIELD, "body has no \"%s\" field", field_names[bit]);
	}
	return FRAME_OK;
}

FrameError
frame_decode(const uint8_t *data, size_t len, Frame *out, char *errmsg, size_t errlen)
{
	Dec			d = {errmsg, errlen, NULL};
	FrameError	e;
	char		kind[24];

	memset(out, 0, sizeof(*out));
	if (errmsg && errlen)
		errmsg[0] = '\0';
	if ((e = decode_header(data, len, out, &d)) != FRAME_OK)
		return e;
	if (out->kind == FRAME_ERROR)
		d.kind = "error frame";
	else
	{
		snprintf(kind, sizeof(kind), "%.*s frame", (int) (out->type_len > 16 ? 16 : out->type_len),
				 out->type);
		d.kind = kind;
	}
	if ((e = decode_body(out, &d)) != FRAME_OK)
	{
		frame_free(out);
		return e;
	}
	return FRAME_OK;
}

const char *
frame_did(const Frame *f, size_t *len)
{
	*len = f->kind == FRAME_COMMIT ? f->commit.repo_len : f->kind == FRAME_SYNC ? f->sync.did_len :
		f->kind == FRAME_ACCOUNT ? f->account.did_len : 0;
	return f->kind == FRAME_COMMIT ? f->commit.repo : f->kind == FRAME_SYNC ? f->sync.did :
		f->kind == FRAME_ACCOUNT ? f->account.did : NULL;
}

const char *
frame_rev(const Frame *f, size_t *len)
{
	*len = f->kind == FRAME_COMMIT ? f->commit.rev_len : f->kind == FRAME_SYNC ? f->sync.rev_len : 0;
	return f->kind == FRAME_COMMIT ? f->commit.rev : f->kind == FRAME_SYNC ? f->sync.rev : NULL;
}

const uint8_t *
frame_blocks(const Frame *f, size_t *len)
{
	*len = f->kind == FRAME_COMMIT ? f->commit.blocks_len : f->kind == FRAME_SYNC ? f->sync.blocks_len : 0;
	return f->kind == FRAME_COMMIT ? f->commit.blocks : f->kind == FRAME_SYNC ? f->sync.blocks : NULL;
}

bool
frame_error_is_framing(FrameError err)
{
	return err == FRAME_ERR_CBOR || err == FRAME_ERR_TRAILING || err == FRAME_ERR_HEADER;
}

static FrameError
check_time(Dec *d, const char *time, size_t len)
{
	char		b[80];

	if (datetime_valid(time, len))
		return FRAME_OK;
	return dfail(d, FRAME_ERR_LEXICON, "field \"time\" is not an atproto datetime: \"%s\"",
				 show(time, len, b));
}

static FrameError
check_bytes(Dec *d, const char *field, size_t len, size_t max)
{
	if (len <= max)
		return FRAME_OK;
	return dfail(d, FRAME_ERR_LEXICON, "field \"%s\" is %zu bytes, over the lexicon limit of %zu bytes",
				 field, len, max);
}

FrameError
frame_check_lexicon(const Frame *f, char *errmsg, size_t errlen)
{
	char		kind[24];
	Dec			d = {errmsg, errlen, kind};
	FrameError	e = FRAME_OK;

	if (errmsg && errlen)
		errmsg[0] = '\0';
	snprintf(kind, sizeof(kind), "%.*s frame", (int) (f->type_len > 16 ? 16 : f->type_len),
			 f->type ? f->type : "");
	switch (f->kind)
	{
		case FRAME_COMMIT:
			if (f->commit.n_ops > FRAME_MAX_OPS)
				e = dfail(&d, FRAME_ERR_LEXICON, "field \"ops\" has %zu ops, over the lexicon limit of %d",
						  f->commit.n_ops, FRAME_MAX_OPS);
			if (e == FRAME_OK)
				e = check_bytes(&d, "blocks", f->commit.blocks_len, FRAME_COMMIT_BLOCKS_MAX);
			if (e == FRAME_OK)
				e = check_time(&d, f->commit.time, f->commit.time_len);
			break;
		case FRAME_SYNC:
			e = check_bytes(&d, "blocks", f->sync.blocks_len, FRAME_SYNC_BLOCKS_MAX);
			if (e == FRAME_OK)
				e = check_time(&d, f->sync.time, f->sync.time_len);
			break;
		case FRAME_ACCOUNT:
			e = check_time(&d, f->account.time, f->account.time_len);
			break;
		default:
			break;
	}
	return e;
}

void
frame_free(Frame *f)
{
	rs_free((void *) f->commit.ops);
	f->commit.ops = NULL;
	f->commit.n_ops = 0;
}

/* ---------------------------------------------------------------- seq */

FrameError
frame_set_seq(const uint8_t *data, size_t len, int64_t seq, RsBuf *out)
{
	size_t		hend;
	DcborReader r;
	DcborItem	m;

	if (first_item_end(data, len, &hend) != DCBOR_OK ||
		dcbor_validate(data, hend, NULL) != DCBOR_OK || hend == len ||
		dcbor_validate(data + hend, len - hend, NULL) != DCBOR_OK)
		return FRAME_ERR_CBOR;
	dcbor_reader_init(&r, data + hend, len - hend);
	dcbor_read(&r, &m);
	if (m.type != DCBOR_MAP)
		return FRAME_ERR_FIELD;
	for (uint64_t i = 0; i < m.uval; i++)
	{
		DcborItem	k,
					v;
		size_t		vstart;

		dcbor_read(&r, &k);
		vstart = r.pos;
		if (dcbor_text_is(&k, "seq"))
		{
			dcbor_read(&r, &v);
			if (v.type != DCBOR_UINT && v.type != DCBOR_NEGINT)
				return FRAME_ERR_FIELD;
			rs_buf_reserve(out, len + 9);
			rs_buf_append(out, data, hend + vstart);
			dcbor_put_int(out, seq);
			rs_buf_append(out, data + hend + r.pos, len - hend - r.pos);
			return FRAME_OK;
		}
		dcbor_skip(&r);
	}
	return FRAME_ERR_FIELD;
}
