/*
 * fuzz_json.c - the pure layer under json_to_cbor / cbor_to_json.
 *
 * The SQL encoder (src/cbor_sql.c) walks jsonb, which needs a server, so
 * it cannot be linked here.  Everything it calls below jsonb is pure: the
 * head encoders (dcbor_put_*), the key order (dcbor_key_cmp), CID text
 * (cid_parse, cid_format), base64 (dcbor_base64_*), UTF-8 (utf8_valid) and
 * the strict decoder.  This harness parses the input as JSON with jansson
 * (what jsonb would hold: no U+0000, no duplicate keys) and drives those
 * functions under the same data-model rules as cbor_sql.c.  Properties:
 *  - what the encoder writes, the decoder accepts, and the depth limit is
 *    the same on both sides: JSON one container deeper than
 *    DCBOR_MAX_DEPTH, written anyway, is refused with DCBOR_ERR_DEPTH;
 *  - CBOR -> JSON -> CBOR gives the same bytes;
 *  - $link and $bytes text round-trips exactly.
 */
#include <jansson.h>

#include "cbor.h"
#include "cid.h"
#include "fuzz.h"

typedef enum
{
	ENC_OK,
	ENC_REFUSED,				/* outside the data model */
	ENC_TOO_DEEP				/* past DCBOR_MAX_DEPTH */
} EncResult;

static int
key_order(const void *a, const void *b)
{
	const char *x = *(const char *const *) a;
	const char *y = *(const char *const *) b;

	return dcbor_key_cmp(x, strlen(x), y, strlen(y));
}

static EncResult encode(json_t *v, RsBuf *out, int depth, bool limit);

static EncResult
encode_object(json_t *v, RsBuf *out, int depth, bool limit)
{
	size_t		n = json_object_size(v);
	const char **keys;
	const char *k;
	json_t	   *val;
	size_t		i = 0;
	json_t	   *type = json_object_get(v, "$type");
	EncResult	r = ENC_OK;

	if (n == 1 && (val = json_object_get(v, "$link")) != NULL)
	{
		uint8_t		cid[CID_LEN];
		char		text[CID_TEXT_LEN + 1];

		if (!json_is_string(val) || !cid_parse(json_string_value(val), json_string_length(val), cid))
			return ENC_REFUSED;
		cid_format(cid, text);
		FUZZ_CHECK(strcmp(text, json_string_value(val)) == 0, "CID text does not round-trip");
		dcbor_put_link(out, cid, CID_LEN);
		return ENC_OK;
	}
	if (n == 1 && (val = json_object_get(v, "$bytes")) != NULL)
	{
		RsBuf		bytes;
		char	   *back;

		if (!json_is_string(val))
			return ENC_REFUSED;
		rs_buf_init(&bytes, json_string_length(val) + 1);
		if (!dcbor_base64_decode(json_string_value(val), json_string_length(val), &bytes))
		{
			rs_buf_free(&bytes);
			return ENC_REFUSED;
		}
		back = malloc(DCBOR_BASE64_LEN(bytes.len) + 1);
		dcbor_base64_encode(bytes.data, bytes.len, back);
		FUZZ_CHECK(strncmp(back, json_string_value(val), strlen(back)) == 0, "base64 does not round-trip");
		free(back);
		dcbor_put_bytes(out, bytes.data, bytes.len);
		rs_buf_free(&bytes);
		return ENC_OK;
	}
	if (json_object_get(v, "$link") || json_object_get(v, "$bytes"))
		return ENC_REFUSED;
	if (type != NULL)
	{
		if (!json_is_string(type) || json_string_length(type) == 0)
			return ENC_REFUSED;
		if (strcmp(json_string_value(type), "blob") == 0)
		{
			json_t	   *ref = json_object_get(v, "ref");

			if (!json_is_object(ref) || json_object_size(ref) != 1 || !json_object_get(ref, "$link") ||
				!json_is_string(json_object_get(v, "mimeType")) ||
				!json_is_integer(json_object_get(v, "size")))
				return ENC_REFUSED;
		}
	}

	keys = malloc((n ? n : 1) * sizeof(char *));
	json_object_foreach(v, k, val)
		keys[i++] = k;
	qsort(keys, n, sizeof(char *), key_order);
	dcbor_put_map(out, n);
	for (i = 0; i < n && r == ENC_OK; i++)
	{
		dcbor_put_text(out, keys[i], strlen(keys[i]));
		r = encode(json_object_get(v, keys[i]), out, depth, limit);
	}
	free(keys);
	return r;
}

/* depth: containers around v */
static EncResult
encode(json_t *v, RsBuf *out, int depth, bool limit)
{
	switch (json_typeof(v))
	{
		case JSON_OBJECT:
			/* {"$link"} and {"$bytes"} are scalars in DAG-CBOR: no depth of their own */
			if (limit && depth >= DCBOR_MAX_DEPTH && !(json_object_size(v) == 1 &&
				(json_object_get(v, "$link") || json_object_get(v, "$bytes"))))
				return ENC_TOO_DEEP;
			return encode_object(v, out, depth + 1, limit);
		case JSON_ARRAY:
			{
				EncResult	r = ENC_OK;

				if (limit && depth >= DCBOR_MAX_DEPTH)
					return ENC_TOO_DEEP;
				dcbor_put_array(out, json_array_size(v));
				for (size_t i = 0; i < json_array_size(v) && r == ENC_OK; i++)
					r = encode(json_array_get(v, i), out, depth + 1, limit);
				return r;
			}
		case JSON_STRING:
			/* jansson guarantees UTF-8; U+0000 was refused at parse time, as jsonb does */
			FUZZ_CHECK(utf8_valid((const uint8_t *) json_string_value(v), json_string_length(v)), "UTF-8");
			dcbor_put_text(out, json_string_value(v), json_string_length(v));
			return ENC_OK;
		case JSON_INTEGER:
			dcbor_put_int(out, (int64_t) json_integer_value(v));
			return ENC_OK;
		case JSON_REAL:
			return ENC_REFUSED;	/* floats are outside the data model */
		case JSON_TRUE:
		case JSON_FALSE:
			dcbor_put_bool(out, json_is_true(v));
			return ENC_OK;
		case JSON_NULL:
			dcbor_put_null(out);
			return ENC_OK;
	}
	return ENC_REFUSED;
}

/* Validated DAG-CBOR -> JSON, as rs_cbor_to_jsonb writes it. */
static json_t *
decode(DcborReader *r)
{
	DcborItem	it;
	json_t	   *v = NULL;

	FUZZ_CHECK(dcbor_read(r, &it) == DCBOR_OK, "read");
	switch (it.type)
	{
		case DCBOR_UINT:
		case DCBOR_NEGINT:
			return json_integer(it.ival);
		case DCBOR_TEXT:
			return json_stringn((const char *) it.ptr, it.len);
		case DCBOR_BYTES:
			{
				char	   *s = malloc(DCBOR_BASE64_LEN(it.len) + 1);

				dcbor_base64_encode(it.ptr, it.len, s);
				v = json_pack("{s:s}", "$bytes", s);
				free(s);
				return v;
			}
		case DCBOR_LINK:
			{
				char		s[CID_TEXT_LEN + 1];

				cid_format(it.ptr, s);
				return json_pack("{s:s}", "$link", s);
			}
		case DCBOR_ARRAY:
			v = json_array();
			for (uint64_t i = 0; i < it.uval; i++)
				json_array_append_new(v, decode(r));
			return v;
		case DCBOR_MAP:
			v = json_object();
			for (uint64_t i = 0; i < it.uval; i++)
			{
				DcborItem	k;

				FUZZ_CHECK(dcbor_read(r, &k) == DCBOR_OK && k.type == DCBOR_TEXT, "key");
				json_object_setn_new_nocheck(v, (const char *) k.ptr, k.len, decode(r));
			}
			return v;
		case DCBOR_TRUE:
			return json_true();
		case DCBOR_FALSE:
			return json_false();
		case DCBOR_NULL:
			return json_null();
	}
	return json_null();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t	   *doc = json_loadb((const char *) data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	RsBuf		out,
				again;
	EncResult	r;
	size_t		off;

	if (doc == NULL)
		return 0;
	rs_buf_init(&out, size + 16);
	r = encode(doc, &out, 0, true);
	if (r == ENC_TOO_DEEP)
	{
		/* write it anyway: the decoder must refuse exactly this */
		out.len = 0;
		if (encode(doc, &out, 0, false) == ENC_OK)
			FUZZ_CHECK(dcbor_validate(out.data, out.len, &off) == DCBOR_ERR_DEPTH,
					   "JSON over the depth limit, encoded anyway, is not refused for depth");
	}
	else if (r == ENC_OK)
	{
		DcborReader rd;
		json_t	   *back;
		DcborError	e = dcbor_validate(out.data, out.len, &off);

		FUZZ_CHECK(e == DCBOR_OK, "encoder output refused at byte %zu: %s", off, dcbor_strerror(e));
		dcbor_reader_init(&rd, out.data, out.len);
		back = decode(&rd);
		rs_buf_init(&again, out.len + 16);
		FUZZ_CHECK(encode(back, &again, 0, true) == ENC_OK, "decoded JSON does not encode");
		FUZZ_CHECK(same_bytes(again.data, again.len, out.data, out.len), "CBOR -> JSON -> CBOR differs");
		rs_buf_free(&again);
		json_decref(back);
	}
	rs_buf_free(&out);
	json_decref(doc);
	return 0;
}
