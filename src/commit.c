/*
 * commit.c - atproto v3 commit object: encode, strict decode, signature check.
 */
#include "commit.h"

#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "cbor.h"
#include "syntax.h"

const char *
commit_strerror(CommitError err)
{
	switch (err)
	{
		case COMMIT_OK:
			return "no error";
		case COMMIT_ERR_CBOR:
			return "commit is not valid DAG-CBOR";
		case COMMIT_ERR_SHAPE:
			return "commit does not have the v3 fields";
		case COMMIT_ERR_VERSION:
			return "commit version is not 3";
		case COMMIT_ERR_DID:
			return "commit did is not a valid DID";
		case COMMIT_ERR_REV:
			return "commit rev is not a valid TID";
		case COMMIT_ERR_SIG:
			return "commit sig is missing or not 64 bytes";
	}
	return "unknown commit error";
}

static void
encode(const RepoCommit *c, bool with_sig, RsBuf *out)
{
	/* canonical order: did, rev, sig, data, prev, version */
	dcbor_put_map(out, with_sig ? 6 : 5);
	dcbor_put_cstr(out, "did");
	dcbor_put_text(out, c->did, c->did_len);
	dcbor_put_cstr(out, "rev");
	dcbor_put_text(out, c->rev, c->rev_len);
	if (with_sig)
	{
		dcbor_put_cstr(out, "sig");
		dcbor_put_bytes(out, c->sig, COMMIT_SIG_LEN);
	}
	dcbor_put_cstr(out, "data");
	dcbor_put_link(out, c->data, CID_LEN);
	dcbor_put_cstr(out, "prev");
	if (c->has_prev)
		dcbor_put_link(out, c->prev, CID_LEN);
	else
		dcbor_put_null(out);
	dcbor_put_cstr(out, "version");
	dcbor_put_uint(out, COMMIT_VERSION);
}

void
commit_encode_unsigned(const RepoCommit *c, RsBuf *out)
{
	encode(c, false, out);
}

void
commit_encode_signed(const RepoCommit *c, RsBuf *out)
{
	encode(c, c->has_sig, out);
}

static CommitError
bad(CommitError err, char *errmsg, size_t errlen, const char *fmt, const char *field)
{
	if (errmsg && errlen)
		snprintf(errmsg, errlen, fmt, field);
	return err;
}

CommitError
commit_decode(const uint8_t *data, size_t len, bool require_sig,
			  RepoCommit *out, char *errmsg, size_t errlen)
{
	DcborReader r;
	DcborItem	it;
	size_t		off;
	DcborError	derr;
	bool		seen_did = false,
				seen_rev = false,
				seen_data = false,
				seen_prev = false,
				seen_version = false;

	memset(out, 0, sizeof(*out));
	if ((derr = dcbor_validate(data, len, &off)) != DCBOR_OK)
	{
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "commit is not valid DAG-CBOR at byte %zu: %s",
					 off, dcbor_strerror(derr));
		return COMMIT_ERR_CBOR;
	}
	dcbor_reader_init(&r, data, len);
	dcbor_read(&r, &it);
	if (it.type != DCBOR_MAP)
		return bad(COMMIT_ERR_SHAPE, errmsg, errlen, "commit is not a map%s", "");

	for (uint64_t i = 0; i < it.uval; i++)
	{
		DcborItem	key,
					val;
		char		name[40];

		dcbor_read(&r, &key);
		/* for messages; the comparisons below use the exact key bytes */
		snprintf(name, sizeof(name), "%.*s", (int) (key.len < 32 ? key.len : 32),
				 (const char *) key.ptr);
		/* a map or array is never a valid value here: its head alone says so */
		dcbor_read(&r, &val);
		if (dcbor_text_is(&key, "did"))
		{
			if (val.type != DCBOR_TEXT)
				return bad(COMMIT_ERR_SHAPE, errmsg, errlen, "commit field \"%s\" is not text", name);
			if (!did_valid((const char *) val.ptr, val.len))
				return bad(COMMIT_ERR_DID, errmsg, errlen, "commit did is not a valid DID%s", "");
			out->did = (const char *) val.ptr;
			out->did_len = val.len;
			seen_did = true;
		}
		else if (dcbor_text_is(&key, "rev"))
		{
			if (val.type != DCBOR_TEXT)
				return bad(COMMIT_ERR_SHAPE, errmsg, errlen, "commit field \"%s\" is not text", name);
			if (!tid_valid((const char *) val.ptr, val.len))
				return bad(COMMIT_ERR_REV, errmsg, errlen, "commit rev is not a valid TID%s", "");
			out->rev = (const char *) val.ptr;
			out->rev_len = val.len;
			seen_rev = true;
		}
		else if (dcbor_text_is(&key, "sig"))
		{
			if (val.type != DCBOR_BYTES || val.len != COMMIT_SIG_LEN)
				return bad(COMMIT_ERR_SIG, errmsg, errlen, "commit sig is not a 64-byte byte string%s", "");
			memcpy(out->sig, val.ptr, COMMIT_SIG_LEN);
			out->has_sig = true;
		}
		else if (dcbor_text_is(&key, "data"))
		{
			if (val.type != DCBOR_LINK)
				return bad(COMMIT_ERR_SHAPE, errmsg, errlen, "commit field \"%s\" is not a link", name);
			memcpy(out->data, val.ptr, CID_LEN);
			seen_data = true;
		}
		else if (dcbor_text_is(&key, "prev"))
		{
			if (val.type == DCBOR_LINK)
			{
				memcpy(out->prev, val.ptr, CID_LEN);
				out->has_prev = true;
			}
			else if (val.type != DCBOR_NULL)
				return bad(COMMIT_ERR_SHAPE, errmsg, errlen, "commit field \"%s\" is not a link or null", name);
			seen_prev = true;
		}
		else if (dcbor_text_is(&key, "version"))
		{
			if (val.type != DCBOR_UINT || val.uval != COMMIT_VERSION)
				return bad(COMMIT_ERR_VERSION, errmsg, errlen, "commit version is not 3%s", "");
			seen_version = true;
		}
		else
			return bad(COMMIT_ERR_SHAPE, errmsg, errlen, "commit has an unknown field \"%s\"", name);
	}
	if (!seen_did)
		return bad(COMMIT_ERR_SHAPE, errmsg, errlen, "commit has no \"%s\" field", "did");
	if (!seen_rev)
		return bad(COMMIT_ERR_SHAPE, errmsg, errlen, "commit has no \"%s\" field", "rev");
	if (!seen_data)
		return bad(COMMIT_ERR_SHAPE, errmsg, errlen, "commit has no \"%s\" field", "data");
	if (!seen_prev)
		return bad(COMMIT_ERR_SHAPE, errmsg, errlen, "commit has no \"%s\" field", "prev");
	if (!seen_version)
		return bad(COMMIT_ERR_VERSION, errmsg, errlen, "commit has no \"%s\" field", "version");
	if (require_sig && !out->has_sig)
		return bad(COMMIT_ERR_SIG, errmsg, errlen, "commit has no \"%s\" field", "sig");
	return COMMIT_OK;
}

bool
commit_verify_sig(const RepoCommit *c, const uint8_t pub[COMMIT_PUBLIC_KEY_LEN])
{
	RsBuf		b;
	bool		good;

	if (!c->has_sig)
		return false;
	rs_buf_init(&b, 128 + c->did_len);
	commit_encode_unsigned(c, &b);
	good = crypto_sign_verify_detached(c->sig, b.data, b.len, pub) == 0;
	rs_buf_free(&b);
	return good;
}
