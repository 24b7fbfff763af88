/*
 * cbor_sql.c - SQL surface of the DAG-CBOR codec: jsonb <-> DAG-CBOR under
 * the atproto data model, and the CID of DAG-CBOR bytes.
 *
 * jsonb stores object keys sorted by length, then bytewise: exactly the
 * DAG-CBOR map order, so encoding streams keys in jsonb order with no sort.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "cbor.h"
#include "cbor_sql.h"
#include "cid.h"

PG_FUNCTION_INFO_V1(rs_json_to_cbor);
PG_FUNCTION_INFO_V1(rs_cbor_to_json);
PG_FUNCTION_INFO_V1(rs_cbor_cid);

static const char b64_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ------------------------------------------------------------- helpers */

static void
check_database_encoding(void)
{
	int			enc = GetDatabaseEncoding();

	if (enc != PG_UTF8 && enc != PG_SQL_ASCII)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("repo_stream requires a UTF8 database, not %s",
						GetDatabaseEncodingName()),
				 errhint("DAG-CBOR text is UTF-8; create the database with ENCODING 'UTF8'.")));
}

/* In SQL_ASCII databases the bytes are not checked by the server. */
static void
check_utf8_text(const char *s, int len)
{
	if (GetDatabaseEncoding() != PG_UTF8 && !utf8_valid((const uint8 *) s, len))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("string is not valid UTF-8: \"%.*s\"", Min(len, 64), s)));
}

/* Unpadded (or padded) standard base64, as atproto's "$bytes". */
static bool
base64_decode(const char *in, int len, RsBuf *out)
{
	uint32		acc = 0;
	int			bits = 0;

	while (len > 0 && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return false;
	for (int i = 0; i < len; i++)
	{
		const char *p = memchr(b64_alphabet, in[i], 64);

		if (p == NULL || in[i] == '\0')
			return false;
		acc = (acc << 6) | (uint32) (p - b64_alphabet);
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			rs_buf_append_byte(out, (uint8) (acc >> bits));
		}
	}
	/* non-zero leftover bits mean a second spelling of the same bytes */
	return (acc & ((1u << bits) - 1)) == 0;
}

static char *
base64_encode(const uint8 *data, size_t len)
{
	char	   *out = palloc(len * 4 / 3 + 4);
	size_t		o = 0;
	uint32		acc = 0;
	int			bits = 0;

	for (size_t i = 0; i < len; i++)
	{
		acc = (acc << 8) | data[i];
		bits += 8;
		while (bits >= 6)
		{
			bits -= 6;
			out[o++] = b64_alphabet[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = b64_alphabet[(acc << (6 - bits)) & 63];
	out[o] = '\0';
	return out;
}

void
rs_report_cbor_error(DcborError err, size_t offset, const uint8 *data, size_t len)
{
	if (offset < len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid DAG-CBOR at byte %zu (0x%02x): %s",
						offset, data[offset], dcbor_strerror(err))));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid DAG-CBOR at byte %zu: %s", offset, dcbor_strerror(err))));
}

void
rs_validate_cbor(const uint8 *data, size_t len)
{
	size_t		offset;
	DcborError	err = dcbor_validate(data, len, &offset);

	if (err != DCBOR_OK)
		rs_report_cbor_error(err, offset, data, len);
}

/* ------------------------------------------------------- JSON -> CBOR */

static void encode_container(JsonbContainer *c, RsBuf *buf, int depth);

static const char *
jbv_type_name(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "string";
		case jbvNumeric:
			return "number";
		case jbvBool:
			return "boolean";
		case jbvBinary:
			return JsonContainerIsObject(v->val.binary.data) ? "object" : "array";
		default:
			return "value";
	}
}

static void
encode_numeric(Numeric num, RsBuf *buf)
{
	char	   *str = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num)));
	const char *p = str;
	bool		negative = false;
	uint64		mag = 0;

	if (*p == '-')
	{
		negative = true;
		p++;
	}
	for (; *p >= '0' && *p <= '9'; p++)
	{
		if (mag > (UINT64_MAX - 9) / 10)
			goto out_of_range;
		mag = mag * 10 + (uint64) (*p - '0');
	}
	/* integer-like values such as 123.0 are allowed; 123.5 is a float */
	if (*p == '.')
	{
		for (p++; *p == '0'; p++)
			;
	}
	if (*p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("floats are not allowed in the atproto data model: %s", str),
				 errhint("Store fractional values as strings or scaled integers.")));
	if (negative ? mag > (uint64) INT64_MAX + 1 : mag > (uint64) INT64_MAX)
		goto out_of_range;
	if (negative && mag > 0)
		dcbor_put_int(buf, (int64) -(mag - 1) - 1);
	else
		dcbor_put_uint(buf, mag);
	pfree(str);
	return;

out_of_range:
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("integer out of the signed 64-bit range: %s", str)));
}

static void
encode_string(const char *s, int len, RsBuf *buf)
{
	check_utf8_text(s, len);
	dcbor_put_text(buf, s, len);
}

static void
encode_value(JsonbValue *v, RsBuf *buf, int depth)
{
	switch (v->type)
	{
		case jbvNull:
			dcbor_put_null(buf);
			break;
		case jbvBool:
			dcbor_put_bool(buf, v->val.boolean);
			break;
		case jbvNumeric:
			encode_numeric(v->val.numeric, buf);
			break;
		case jbvString:
			encode_string(v->val.string.val, v->val.string.len, buf);
			break;
		case jbvBinary:
			encode_container(v->val.binary.data, buf, depth + 1);
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

static bool
key_is(JsonbValue *k, const char *name)
{
	size_t		n = strlen(name);

	return k->val.string.len == (int) n && memcmp(k->val.string.val, name, n) == 0;
}

/* {"$link": "<cid>"} -> tag 42; {"$bytes": "<base64>"} -> byte string */
static void
encode_special(JsonbValue *key, JsonbValue *val, RsBuf *buf)
{
	bool		is_link = key_is(key, "$link");

	if (val->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" must be a string, not %s",
						is_link ? "$link" : "$bytes", jbv_type_name(val))));
	if (is_link)
	{
		uint8		cid[CID_LEN];

		if (!cid_parse(val->val.string.val, val->val.string.len, cid))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid CID in \"$link\": \"%.*s\"",
							Min(val->val.string.len, 100), val->val.string.val),
					 errhint("Expected a base32 CIDv1 with codec dag-cbor or raw and sha2-256.")));
		dcbor_put_link(buf, cid, CID_LEN);
	}
	else
	{
		RsBuf		bytes;

		rs_buf_init(&bytes, val->val.string.len);
		if (!base64_decode(val->val.string.val, val->val.string.len, &bytes))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid base64 in \"$bytes\": \"%.*s\"",
							Min(val->val.string.len, 100), val->val.string.val)));
		dcbor_put_bytes(buf, bytes.data, bytes.len);
		rs_buf_free(&bytes);
	}
}

/* A "$type" must be a non-empty string; a blob needs ref, mimeType, size. */
static void
check_typed_object(JsonbContainer *c, JsonbValue *type)
{
	JsonbValue	tmp;
	JsonbValue *f;

	if (type->type != jbvString || type->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"$type\" must be a non-empty string, not %s",
						type->type == jbvString ? "an empty string" : jbv_type_name(type))));
	if (!key_is(type, "blob"))
		return;

	f = getKeyJsonValueFromContainer(c, "ref", 3, &tmp);
	if (f == NULL || f->type != jbvBinary || !JsonContainerIsObject(f->val.binary.data) ||
		JsonContainerSize(f->val.binary.data) != 1 ||
		getKeyJsonValueFromContainer(f->val.binary.data, "$link", 5, &tmp) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("blob \"ref\" must be a {\"$link\": cid} object")));
	f = getKeyJsonValueFromContainer(c, "mimeType", 8, &tmp);
	if (f == NULL || f->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("blob \"mimeType\" must be a string")));
	f = getKeyJsonValueFromContainer(c, "size", 4, &tmp);
	if (f == NULL || f->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("blob \"size\" must be an integer")));
}

static void
encode_container(JsonbContainer *c, RsBuf *buf, int depth)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (depth > DCBOR_MAX_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("JSON nesting exceeds the DAG-CBOR depth limit of %d", DCBOR_MAX_DEPTH)));
	check_stack_depth();

	it = JsonbIteratorInit(c);
	tok = JsonbIteratorNext(&it, &v, true);

	if (tok == WJB_BEGIN_ARRAY)
	{
		dcbor_put_array(buf, v.val.array.nElems);
		while ((tok = JsonbIteratorNext(&it, &v, true)) == WJB_ELEM)
			encode_value(&v, buf, depth);
		return;
	}

	Assert(tok == WJB_BEGIN_OBJECT);
	if (v.val.object.nPairs == 1)
	{
		JsonbValue	key,
					val;

		JsonbIteratorNext(&it, &key, true);
		JsonbIteratorNext(&it, &val, true);
		if (key_is(&key, "$link") || key_is(&key, "$bytes"))
		{
			encode_special(&key, &val, buf);
			return;
		}
		if (key_is(&key, "$type"))
			check_typed_object(c, &val);
		dcbor_put_map(buf, 1);
		encode_string(key.val.string.val, key.val.string.len, buf);
		encode_value(&val, buf, depth);
		return;
	}

	dcbor_put_map(buf, v.val.object.nPairs);
	while ((tok = JsonbIteratorNext(&it, &v, true)) == WJB_KEY)
	{
		JsonbValue	val;

		if (v.val.string.len >= 5 && v.val.string.val[0] == '$')
		{
			if (key_is(&v, "$link") || key_is(&v, "$bytes"))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("an object with \"%s\" must have no other keys",
								key_is(&v, "$link") ? "$link" : "$bytes")));
		}
		encode_string(v.val.string.val, v.val.string.len, buf);
		JsonbIteratorNext(&it, &val, true);
		if (key_is(&v, "$type"))
			check_typed_object(c, &val);
		encode_value(&val, buf, depth);
	}
}

bytea *
rs_jsonb_to_cbor(Jsonb *jb)
{
	RsBuf		buf;
	bytea	   *result;

	check_database_encoding();
	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a DAG-CBOR record must be a JSON object, not %s",
						JB_ROOT_IS_SCALAR(jb) ? "a scalar" : "an array")));

	/* encode straight into the varlena so the result needs no copy */
	rs_buf_init(&buf, VARSIZE_ANY_EXHDR(jb) + VARHDRSZ);
	buf.len = VARHDRSZ;
	encode_container(&jb->root, &buf, 1);
	result = (bytea *) buf.data;
	SET_VARSIZE(result, buf.len);
	return result;
}

Datum
rs_json_to_cbor(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(rs_jsonb_to_cbor(PG_GETARG_JSONB_P(0)));
}

/* ------------------------------------------------------- CBOR -> JSON */

static void push_text(JsonbParseState **st, JsonbIteratorToken tok, const char *s, size_t len);

static JsonbValue *
decode_item(DcborReader *r, JsonbParseState **st, JsonbIteratorToken tok)
{
	DcborItem	item;
	JsonbValue	v;

	/* input was validated, so reads cannot fail */
	if (dcbor_read(r, &item) != DCBOR_OK)
		elog(ERROR, "DAG-CBOR reader failed on validated input");

	switch (item.type)
	{
		case DCBOR_UINT:
		case DCBOR_NEGINT:
			v.type = jbvNumeric;
			v.val.numeric = int64_to_numeric(item.ival);
			break;
		case DCBOR_TEXT:
			push_text(st, tok, (const char *) item.ptr, item.len);
			return NULL;
		case DCBOR_BYTES:
		case DCBOR_LINK:
			{
				char	   *s;

				/* pushJsonbValue keeps the pointer, so the text must outlive us */
				if (item.type == DCBOR_LINK)
				{
					s = palloc(CID_TEXT_LEN + 1);
					cid_format(item.ptr, s);
				}
				else
					s = base64_encode(item.ptr, item.len);
				pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
				push_text(st, WJB_KEY, item.type == DCBOR_LINK ? "$link" : "$bytes",
						  item.type == DCBOR_LINK ? 5 : 6);
				push_text(st, WJB_VALUE, s, strlen(s));
				return pushJsonbValue(st, WJB_END_OBJECT, NULL);
			}
		case DCBOR_ARRAY:
			pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
			for (uint64 i = 0; i < item.uval; i++)
				decode_item(r, st, WJB_ELEM);
			return pushJsonbValue(st, WJB_END_ARRAY, NULL);
		case DCBOR_MAP:
			pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
			for (uint64 i = 0; i < item.uval; i++)
			{
				decode_item(r, st, WJB_KEY);
				decode_item(r, st, WJB_VALUE);
			}
			return pushJsonbValue(st, WJB_END_OBJECT, NULL);
		case DCBOR_TRUE:
		case DCBOR_FALSE:
			v.type = jbvBool;
			v.val.boolean = item.type == DCBOR_TRUE;
			break;
		case DCBOR_NULL:
			v.type = jbvNull;
			break;
	}
	return pushJsonbValue(st, tok, &v);
}

static void
push_text(JsonbParseState **st, JsonbIteratorToken tok, const char *s, size_t len)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = (int) len;
	pushJsonbValue(st, tok, &v);
}

Jsonb *
rs_cbor_to_jsonb(const uint8 *data, size_t len)
{
	DcborReader r;
	JsonbParseState *st = NULL;
	JsonbValue *res;

	check_database_encoding();
	rs_validate_cbor(data, len);
	dcbor_reader_init(&r, data, len);

	/* a top-level scalar travels as a one-element raw-scalar array */
	if ((data[0] >> 5) != 4 && (data[0] >> 5) != 5 &&
		!(data[0] == 0xd8 && len > 1 && data[1] == 42))
	{
		JsonbValue	arr;

		arr.type = jbvArray;
		arr.val.array.rawScalar = true;
		arr.val.array.nElems = 1;
		pushJsonbValue(&st, WJB_BEGIN_ARRAY, &arr);
		decode_item(&r, &st, WJB_ELEM);
		res = pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	}
	else
		res = decode_item(&r, &st, WJB_ELEM);
	return JsonbValueToJsonb(res);
}

Datum
rs_cbor_to_json(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_JSONB_P(rs_cbor_to_jsonb((const uint8 *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)));
}

Datum
rs_cbor_cid(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	const uint8 *data = (const uint8 *) VARDATA_ANY(b);
	size_t		len = VARSIZE_ANY_EXHDR(b);
	uint8		cid[CID_LEN];
	char		text[CID_TEXT_LEN + 1];

	rs_validate_cbor(data, len);
	cid_for_dagcbor(data, len, cid);
	cid_format(cid, text);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(text, CID_TEXT_LEN));
}
