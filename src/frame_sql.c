/*
 * frame_sql.c - SQL surface of event frames: frame_to_json() for people,
 * verify_frame() for consumers holding a repo's did:key.  The one-argument
 * verify_frame(), which looks the key up, lives in verify_sql.c and shares
 * the steps here (frame_sql.h).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "car.h"
#include "cbor_sql.h"
#include "frame.h"
#include "frame_sql.h"
#include "keys.h"
#include "verify.h"

PG_FUNCTION_INFO_V1(rs_frame_to_json);
PG_FUNCTION_INFO_V1(rs_verify_frame);

static void
decode_or_error(const uint8 *data, size_t len, Frame *f)
{
	char		msg[512];

	if (frame_decode(data, len, f, msg, sizeof(msg)) != FRAME_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid event frame: %s", msg)));
}

static const char *
kind_name(const Frame *f, char *buf, size_t buflen)
{
	if (f->kind == FRAME_ERROR)
		return "error";
	snprintf(buf, buflen, "%.*s", (int) Min(f->type_len, 64), f->type);
	return buf;
}

static void
push_key(JsonbParseState **st, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(st, WJB_KEY, &v);
}

/* A Jsonb as the value of the current key; pushJsonbValue unpacks it. */
static void
push_jsonb(JsonbParseState **st, Jsonb *jb)
{
	JsonbValue	v;

	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	pushJsonbValue(st, WJB_VALUE, &v);
}

Jsonb *
rs_frame_to_jsonb(const uint8 *data, size_t len)
{
	Frame		f;
	JsonbParseState *st = NULL;
	JsonbValue *res;
	Jsonb	   *header,
			   *body;
	const uint8 *blocks;
	size_t		blocks_len;

	decode_or_error(data, len, &f);
	header = rs_cbor_to_jsonb(f.header, f.header_len, "frame header");
	body = rs_cbor_to_jsonb(f.body, f.body_len, "frame body");
	blocks = frame_blocks(&f, &blocks_len);

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_key(&st, "header");
	push_jsonb(&st, header);
	push_key(&st, "body");
	push_jsonb(&st, body);
	if (blocks)
	{
		CarReader	r;
		CarBlock	b;
		char		kind[80];

		push_key(&st, "blocks_cids");
		pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
		if (car_reader_open(&r, blocks, blocks_len) == CAR_OK)
		{
			while (car_reader_next(&r, &b))
			{
				JsonbValue	v;
				char	   *text = palloc(CID_TEXT_LEN + 1);

				cid_format(b.cid, text);
				v.type = jbvString;
				v.val.string.val = text;
				v.val.string.len = CID_TEXT_LEN;
				pushJsonbValue(&st, WJB_ELEM, &v);
			}
		}
		if (r.err != CAR_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid CAR in the blocks of %s frame seq %lld at byte %zu: %s",
							kind_name(&f, kind, sizeof(kind)), (long long) f.seq,
							r.err_offset, car_strerror(r.err))));
		pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	}
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	frame_free(&f);
	return JsonbValueToJsonb(res);
}

Datum
rs_frame_to_json(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_JSONB_P(rs_frame_to_jsonb((const uint8 *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)));
}

/* ---------------------------------------------------------------- verify */

/* The frame's reason without the "<kind> frame: " prefix frame.c adds. */
static const char *
reason(const Frame *f, const char *msg)
{
	char		prefix[32];
	size_t		n;

	if (f->kind == FRAME_ERROR)
		snprintf(prefix, sizeof(prefix), "error frame: ");
	else
		snprintf(prefix, sizeof(prefix), "%.*s frame: ", (int) Min(f->type_len, 16), f->type);
	n = strlen(prefix);
	return strncmp(msg, prefix, n) == 0 ? msg + n : msg;
}

void
rs_frame_fails(const Frame *f, const char *why)
{
	char		kbuf[80];
	const char *kind = kind_name(f, kbuf, sizeof(kbuf));
	size_t		did_len;
	const char *did = frame_did(f, &did_len);

	if (f->has_seq && did != NULL)
		ereport(NOTICE,
				(errmsg("%s frame seq %lld of %.*s does not verify: %s", kind, (long long) f->seq,
						(int) Min(did_len, 256), did, reason(f, why))));
	else if (f->has_seq)
		ereport(NOTICE,
				(errmsg("%s frame seq %lld does not verify: %s", kind, (long long) f->seq, reason(f, why))));
	else
		ereport(NOTICE,
				(errmsg("%s frame does not verify: %s", kind, reason(f, why))));
}

RsFrameCheck
rs_frame_open(const uint8 *data, size_t len, Frame *f)
{
	char		msg[512];
	FrameError	err = frame_decode(data, len, f, msg, sizeof(msg));

	if (frame_error_is_framing(err))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid event frame: %s", msg),
				 errdetail("A frame is two DAG-CBOR items, a header {t, op} and a body.")));
	if (err != FRAME_OK || frame_check_lexicon(f, msg, sizeof(msg)) != FRAME_OK)
	{
		rs_frame_fails(f, msg);
		frame_free(f);
		return RS_FRAME_FAILS;
	}
	if (f->kind != FRAME_COMMIT && f->kind != FRAME_SYNC)
	{
		frame_free(f);
		return RS_FRAME_UNSIGNED;
	}
	return RS_FRAME_OK;
}

bool
rs_frame_verify_key(Frame *f, const uint8 pub[ED25519_PUBLIC_KEY_LEN])
{
	char		msg[1024];
	VerifyResult r = frame_verify(f, pub, msg, sizeof(msg));

	if (r != VERIFY_OK)
		rs_frame_fails(f, msg[0] ? msg : verify_strerror(r));
	frame_free(f);
	return r == VERIFY_OK;
}

/*
 * verify_frame(frame, did_key): true if the frame verifies with the key;
 * false with a NOTICE saying why (a body field missing or invalid, over a
 * lexicon limit, a bad CAR, block, record, signature or MST inversion);
 * NULL for a kind that carries no signature (#account, #identity, #info,
 * error frames) once it passes those checks.  ERROR 22P02 if did_key is
 * not an Ed25519 did:key, 22P03 if the bytes are not a frame at all.
 */
Datum
rs_verify_frame(PG_FUNCTION_ARGS)
{
	bytea	   *frame = PG_GETARG_BYTEA_PP(0);
	text	   *did_key = PG_GETARG_TEXT_PP(1);
	uint8		pub[ED25519_PUBLIC_KEY_LEN];
	DidKeyError kerr;
	Frame		f;

	if (!did_key_parse_ed25519(VARDATA_ANY(did_key), VARSIZE_ANY_EXHDR(did_key), pub, &kerr))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid Ed25519 did:key: \"%s\"", text_to_cstring(did_key)),
				 errdetail("%s", did_key_strerror(kerr))));
	switch (rs_frame_open((const uint8 *) VARDATA_ANY(frame), VARSIZE_ANY_EXHDR(frame), &f))
	{
		case RS_FRAME_FAILS:
			PG_RETURN_BOOL(false);
		case RS_FRAME_UNSIGNED:
			PG_RETURN_NULL();
		case RS_FRAME_OK:
			break;
	}
	PG_RETURN_BOOL(rs_frame_verify_key(&f, pub));
}
