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

/*
 * The encoder walks jsonb containers directly through their JEntry arrays
 * (the documented on-disk layout in utils/jsonb.h) instead of JsonbIterator,
 * which allocates an iterator per nested container: this is the hot path
 * of every record write.
 */
typedef struct JbChild
{
	JEntry		entry;
	const char *data;			/* start of this child's bytes */
	uint32		len;
} JbChild;

static void encode_container(const JsonbContainer *c, RsBuf *buf, int depth);

/* Child i of container c, given the running offset (advanced here). */
static inline void
jb_child(const JsonbContainer *c, const char *base, int i, uint32 *offset, JbChild *out)
{
	JEntry		je = c->children[i];
	uint32		start = *offset;

	JBE_ADVANCE_OFFSET(*offset, je);
	out->entry = je;
	out->data = base + start;
	out->len = *offset - start;
}

static const char *
jb_type_name(JEntry je, const char *data)
{
	if (JBE_ISSTRING(je))
		return "string";
	if (JBE_ISNUMERIC(je))
		return "number";
	if (JBE_ISBOOL(je))
		return "boolean";
	if (JBE_ISNULL(je))
		return "null";
	data += INTALIGN((uintptr_t) data) - (uintptr_t) data;
	return JsonContainerIsObject((const JsonbContainer *) data) ? "object" : "array";
}

/* Numeric internals, from numeric.c: its on-disk format, fixed per major. */
#define RS_NUMERIC_SIGN_MASK	0xC000
#define RS_NUMERIC_SHORT		0x8000
#define RS_NUMERIC_SHORT_SIGN	0x2000
#define RS_NUMERIC_SHORT_WSIGN	0x0040
#define RS_NUMERIC_SHORT_WMASK	0x003F

/*
 * Exact int64 value of a short-format numeric.  Returns false when the
 * value is not a plain short numeric, so the caller takes the slow path.
 */
static bool
numeric_short_int64(Numeric num, bool *integral, uint64 *mag, bool *negative)
{
	const uint8 *p = (const uint8 *) VARDATA_ANY(num);
	uint16		header;
	int			weight,
				ndigits;
	const int16 *digits;
	uint64		acc = 0;

	if (VARATT_IS_SHORT(num))
		return false;			/* jsonb stores 4-byte headers; be safe */
	memcpy(&header, p, sizeof(uint16));
	if ((header & RS_NUMERIC_SIGN_MASK) != RS_NUMERIC_SHORT)
		return false;
	ndigits = (VARSIZE_ANY_EXHDR(num) - sizeof(uint16)) / sizeof(int16);
	digits = (const int16 *) (p + sizeof(uint16));
	weight = (header & RS_NUMERIC_SHORT_WSIGN ? ~RS_NUMERIC_SHORT_WMASK : 0) |
		(header & RS_NUMERIC_SHORT_WMASK);
	*negative = (header & RS_NUMERIC_SHORT_SIGN) != 0;
	/* trailing zero digits are never stored: any digit past the point is a fraction */
	*integral = ndigits <= weight + 1;
	if (!*integral)
		return true;
	for (int i = 0; i <= weight; i++)
	{
		uint64		d = i < ndigits ? (uint64) digits[i] : 0;

		if (__builtin_mul_overflow(acc, (uint64) 10000, &acc) ||
			__builtin_add_overflow(acc, d, &acc))
		{
			acc = UINT64_MAX;	/* out of range either way */
			break;
		}
	}
	*mag = acc;
	return true;
}

static void
encode_numeric(Numeric num, RsBuf *buf)
{
	char	   *str = NULL;
	bool		integral;
	bool		negative = false;
	uint64		mag = 0;

	if (!numeric_short_int64(num, &integral, &mag, &negative))
	{
		const char *p;

		str = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num)));
		p = str;
		if (*p == '-')
		{
			negative = true;
			p++;
		}
		for (; *p >= '0' && *p <= '9'; p++)
		{
			if (mag > (UINT64_MAX - 9) / 10)
			{
				mag = UINT64_MAX;
				break;
			}
			mag = mag * 10 + (uint64) (*p - '0');
		}
		while (*p >= '0' && *p <= '9')
			p++;
		/* integer-like values such as 123.0 are allowed; 123.5 is a float */
		if (*p == '.')
			for (p++; *p == '0'; p++)
				;
		integral = *p == '\0';
	}
	if (!integral)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("floats are not allowed in the atproto data model: %s",
						str ? str : DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num)))),
				 errhint("Store fractional values as strings or scaled integers.")));
	if (negative ? mag > (uint64) INT64_MAX + 1 : mag > (uint64) INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("integer out of the signed 64-bit range: %s",
						str ? str : DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num))))));
	if (negative && mag > 0)
		dcbor_put_int(buf, (int64) -(mag - 1) - 1);
	else
		dcbor_put_uint(buf, mag);
}

static void
encode_string(const char *s, int len, RsBuf *buf)
{
	check_utf8_text(s, len);
	dcbor_put_text(buf, s, len);
}

static inline const JsonbContainer *
jb_container(const JbChild *ch)
{
	return (const JsonbContainer *) (ch->data + (INTALIGN((uintptr_t) ch->data) - (uintptr_t) ch->data));
}

static void
encode_child(const JbChild *ch, RsBuf *buf, int depth)
{
	JEntry		je = ch->entry;

	if (JBE_ISSTRING(je))
		encode_string(ch->data, ch->len, buf);
	else if (JBE_ISNUMERIC(je))
		encode_numeric((Numeric) jb_container(ch), buf);
	else if (JBE_ISBOOL_TRUE(je))
		dcbor_put_bool(buf, true);
	else if (JBE_ISBOOL_FALSE(je))
		dcbor_put_bool(buf, false);
	else if (JBE_ISNULL(je))
		dcbor_put_null(buf);
	else
		encode_container(jb_container(ch), buf, depth + 1);
}

static inline bool
child_is(const JbChild *ch, const char *name, uint32 len)
{
	return ch->len == len && memcmp(ch->data, name, len) == 0;
}

/* {"$link": "<cid>"} -> tag 42; {"$bytes": "<base64>"} -> byte string */
static void
encode_special(bool is_link, const JbChild *val, RsBuf *buf)
{
	if (!JBE_ISSTRING(val->entry))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" must be a string, not %s",
						is_link ? "$link" : "$bytes", jb_type_name(val->entry, val->data))));
	if (is_link)
	{
		uint8		cid[CID_LEN];

		if (!cid_parse(val->data, val->len, cid))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid CID in \"$link\": \"%.*s\"", (int) Min(val->len, 100), val->data),
					 errhint("Expected a base32 CIDv1 with codec dag-cbor or raw and sha2-256.")));
		dcbor_put_link(buf, cid, CID_LEN);
	}
	else
	{
		RsBuf		bytes;

		rs_buf_init(&bytes, val->len);
		if (!dcbor_base64_decode(val->data, val->len, &bytes))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid base64 in \"$bytes\": \"%.*s\"", (int) Min(val->len, 100), val->data)));
		dcbor_put_bytes(buf, bytes.data, bytes.len);
		rs_buf_free(&bytes);
	}
}

/* A "$type" must be a non-empty string; a blob needs ref, mimeType, size. */
static void
check_typed_object(const JsonbContainer *c, const JbChild *type)
{
	JsonbValue	tmp;
	JsonbValue *f;
	JsonbContainer *obj = unconstify(JsonbContainer *, c);

	if (!JBE_ISSTRING(type->entry) || type->len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"$type\" must be a non-empty string, not %s",
						JBE_ISSTRING(type->entry) ? "an empty string" : jb_type_name(type->entry, type->data))));
	if (!child_is(type, "blob", 4))
		return;

	f = getKeyJsonValueFromContainer(obj, "ref", 3, &tmp);
	if (f == NULL || f->type != jbvBinary || !JsonContainerIsObject(f->val.binary.data) ||
		JsonContainerSize(f->val.binary.data) != 1 ||
		getKeyJsonValueFromContainer(f->val.binary.data, "$link", 5, &tmp) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("blob \"ref\" must be a {\"$link\": cid} object")));
	f = getKeyJsonValueFromContainer(obj, "mimeType", 8, &tmp);
	if (f == NULL || f->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("blob \"mimeType\" must be a string")));
	f = getKeyJsonValueFromContainer(obj, "size", 4, &tmp);
	if (f == NULL || f->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("blob \"size\" must be an integer")));
}

/* depth: this container counted; the decoder counts arrays and maps alike */
static void
check_depth(int depth)
{
	if (depth > DCBOR_MAX_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("JSON has more than %d nested arrays and objects, the DAG-CBOR depth limit",
						DCBOR_MAX_DEPTH)));
}

static void
encode_container(const JsonbContainer *c, RsBuf *buf, int depth)
{
	int			n = JsonContainerSize(c);
	uint32		key_off = 0,
				val_off = 0,
				val_start = 0;
	const char *base;

	check_stack_depth();

	if (JsonContainerIsArray(c))
	{
		check_depth(depth);
		base = (const char *) &c->children[n];
		dcbor_put_array(buf, n);
		for (int i = 0; i < n; i++)
		{
			JbChild		ch;

			jb_child(c, base, i, &key_off, &ch);
			encode_child(&ch, buf, depth);
		}
		return;
	}

	/* object: n keys (sorted length-first, as DAG-CBOR wants), then n values */
	base = (const char *) &c->children[2 * n];
	for (int i = 0; i < n; i++)
		JBE_ADVANCE_OFFSET(val_start, c->children[i]);
	val_off = val_start;

	if (n == 1)
	{
		JbChild		key,
					val;

		jb_child(c, base, 0, &key_off, &key);
		jb_child(c, base, 1, &val_off, &val);
		if (child_is(&key, "$link", 5) || child_is(&key, "$bytes", 6))
		{
			encode_special(key.len == 5, &val, buf);
			return;
		}
	}

	/* only now: a {"$link"} or {"$bytes"} object is a scalar in DAG-CBOR */
	check_depth(depth);
	dcbor_put_map(buf, n);
	key_off = 0;
	val_off = val_start;
	for (int i = 0; i < n; i++)
	{
		JbChild		key,
					val;

		jb_child(c, base, i, &key_off, &key);
		jb_child(c, base, n + i, &val_off, &val);
		if (key.len >= 5 && key.data[0] == '$')
		{
			if (child_is(&key, "$link", 5) || child_is(&key, "$bytes", 6))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("an object with \"%.*s\" must have no other keys", (int) key.len, key.data)));
			if (child_is(&key, "$type", 5))
				check_typed_object(c, &val);
		}
		encode_string(key.data, key.len, buf);
		encode_child(&val, buf, depth);
	}
}

/* Encode any jsonb value; the result is a bytea palloc'd in one piece. */
static bytea *
encode_jsonb(Jsonb *jb)
{
	RsBuf		buf;
	bytea	   *result;

	check_database_encoding();
	/* encode straight into the varlena so the result needs no copy */
	rs_buf_init(&buf, VARSIZE_ANY_EXHDR(jb) + VARHDRSZ);
	buf.len = VARHDRSZ;
	if (JB_ROOT_IS_SCALAR(jb))
	{
		/* a scalar is stored as a one-element raw-scalar array */
		JbChild		ch;
		uint32		off = 0;

		jb_child(&jb->root, (const char *) &jb->root.children[1], 0, &off, &ch);
		encode_child(&ch, &buf, 0);
	}
	else
		encode_container(&jb->root, &buf, 1);
	result = (bytea *) buf.data;
	SET_VARSIZE(result, buf.len);
	return result;
}

bytea *
rs_value_to_cbor(Jsonb *jb)
{
	return encode_jsonb(jb);
}

bytea *
rs_record_to_cbor(Jsonb *record)
{
	if (!JB_ROOT_IS_OBJECT(record))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a DAG-CBOR record must be a JSON object, not %s",
						JB_ROOT_IS_SCALAR(record) ? "a scalar" : "an array")));
	return encode_jsonb(record);
}

bool
rs_record_check_type(Jsonb *record, const char *collection, const char *rkey, const char *did,
					 const char *hint)
{
	JsonbValue *type;

	if (!JB_ROOT_IS_OBJECT(record) || JB_ROOT_IS_SCALAR(record))
		return false;
	type = getKeyJsonValueFromContainer(&record->root, "$type", 5, NULL);
	if (type == NULL)
		return false;
	if (type->type == jbvString &&
		(type->val.string.len != (int) strlen(collection) ||
		 memcmp(type->val.string.val, collection, type->val.string.len) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("record %s/%s in repo \"%s\" has $type \"%s\", not its collection \"%s\"",
						collection, rkey, did,
						pnstrdup(type->val.string.val, type->val.string.len), collection),
				 hint ? errhint("%s", hint) : 0));
	return true;
}

Datum
rs_json_to_cbor(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(rs_value_to_cbor(PG_GETARG_JSONB_P(0)));
}

/* ------------------------------------------------------- CBOR -> JSON */

/*
 * The decoder refuses what jsonb cannot hold or json_to_cbor could not
 * write back, so that cbor_to_json(x) re-encodes to x whenever it succeeds:
 * text with U+0000 (jsonb and text cannot store it), maps with the keys
 * "$link" or "$bytes" (their JSON would read back as a link or bytes), and
 * "$type" values the encoder refuses.
 */
typedef struct Decoder
{
	DcborReader r;
	JsonbParseState *st;
	const char *what;			/* "frame body", ...: prefixes messages; NULL: none */
} Decoder;

#define WHAT_PREFIX(d) ((d)->what ? (d)->what : ""), ((d)->what ? ": " : "")

static void push_text(JsonbParseState **st, JsonbIteratorToken tok, const char *s, size_t len);

static void
check_text(Decoder *d, const DcborItem *item, size_t at, bool is_key,
		   const DcborItem *key)
{
	if (memchr(item->ptr, 0, item->len) == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
			 errmsg("%s%sDAG-CBOR text at byte %zu contains U+0000, which PostgreSQL text and jsonb cannot hold",
					WHAT_PREFIX(d), at),
			 is_key ? errdetail("It is a map key.") :
			 key ? errdetail("It is the value of map key \"%.*s\".", (int) Min(key->len, 64),
							 (const char *) key->ptr) :
			 errdetail("It is an array element or the top-level item.")));
}

/*
 * One pair of a map: refuse the keys "$link" and "$bytes" (their JSON
 * would read back as a link or bytes) and a "$type" the encoder refuses;
 * note what a blob needs.  k and v are the key and the value's head.
 */
typedef struct MapCheck
{
	bool		is_blob,
				ref_ok,
				mime_ok,
				size_ok;
} MapCheck;

static void
check_pair(Decoder *d, MapCheck *mc, const DcborItem *k, size_t kat,
		   const DcborItem *v, size_t vat, size_t map_at)
{
	if (k->len == 0 || k->ptr[0] != '$')
	{
		if (dcbor_text_is(k, "ref"))
			mc->ref_ok = v->type == DCBOR_LINK;
		else if (dcbor_text_is(k, "mimeType"))
			mc->mime_ok = v->type == DCBOR_TEXT;
		else if (dcbor_text_is(k, "size"))
			mc->size_ok = v->type == DCBOR_UINT || v->type == DCBOR_NEGINT;
		return;
	}
	if (dcbor_text_is(k, "$link") || dcbor_text_is(k, "$bytes"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s%sDAG-CBOR map at byte %zu has the key \"%.*s\", which the atproto data model reserves",
						WHAT_PREFIX(d), map_at, (int) k->len, (const char *) k->ptr),
				 errdetail("Its JSON form would read back as a %s (key at byte %zu).",
						   k->len == 5 ? "link" : "byte string", kat)));
	if (dcbor_text_is(k, "$type"))
	{
		if (v->type != DCBOR_TEXT || v->len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s%s\"$type\" at byte %zu must be a non-empty string, not %s",
							WHAT_PREFIX(d), vat,
							v->type == DCBOR_TEXT ? "an empty string" : dcbor_type_name(v->type))));
		mc->is_blob = dcbor_text_is(v, "blob");
	}
}

static JsonbValue *
decode_item(Decoder *d, JsonbIteratorToken tok, const DcborItem *key)
{
	DcborItem	item;
	JsonbValue	v;
	size_t		at = d->r.pos;

	/* input was validated, so reads cannot fail */
	if (dcbor_read(&d->r, &item) != DCBOR_OK)
		elog(ERROR, "DAG-CBOR reader failed on validated input");

	switch (item.type)
	{
		case DCBOR_UINT:
		case DCBOR_NEGINT:
			v.type = jbvNumeric;
			v.val.numeric = int64_to_numeric(item.ival);
			break;
		case DCBOR_TEXT:
			check_text(d, &item, at, tok == WJB_KEY, key);
			push_text(&d->st, tok, (const char *) item.ptr, item.len);
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
				{
					s = palloc(DCBOR_BASE64_LEN(item.len) + 1);
					dcbor_base64_encode(item.ptr, item.len, s);
				}
				pushJsonbValue(&d->st, WJB_BEGIN_OBJECT, NULL);
				push_text(&d->st, WJB_KEY, item.type == DCBOR_LINK ? "$link" : "$bytes",
						  item.type == DCBOR_LINK ? 5 : 6);
				push_text(&d->st, WJB_VALUE, s, strlen(s));
				return pushJsonbValue(&d->st, WJB_END_OBJECT, NULL);
			}
		case DCBOR_ARRAY:
			check_stack_depth();
			pushJsonbValue(&d->st, WJB_BEGIN_ARRAY, NULL);
			for (uint64 i = 0; i < item.uval; i++)
				decode_item(d, WJB_ELEM, NULL);
			return pushJsonbValue(&d->st, WJB_END_ARRAY, NULL);
		case DCBOR_MAP:
			{
				MapCheck	mc = {false, false, false, false};

				check_stack_depth();
				pushJsonbValue(&d->st, WJB_BEGIN_OBJECT, NULL);
				for (uint64 i = 0; i < item.uval; i++)
				{
					DcborItem	k,
								val;
					DcborReader peek = d->r;
					size_t		kat = peek.pos,
								vat;

					dcbor_read(&peek, &k);
					vat = peek.pos;
					dcbor_read(&peek, &val);
					check_pair(d, &mc, &k, kat, &val, vat, at);
					decode_item(d, WJB_KEY, NULL);
					decode_item(d, WJB_VALUE, &k);
				}
				if (mc.is_blob && !(mc.ref_ok && mc.mime_ok && mc.size_ok))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("%s%sblob at byte %zu: %s", WHAT_PREFIX(d), at,
									!mc.ref_ok ? "\"ref\" must be a link" :
									!mc.mime_ok ? "\"mimeType\" must be a string" :
									"\"size\" must be an integer")));
				return pushJsonbValue(&d->st, WJB_END_OBJECT, NULL);
			}
		case DCBOR_TRUE:
		case DCBOR_FALSE:
			v.type = jbvBool;
			v.val.boolean = item.type == DCBOR_TRUE;
			break;
		case DCBOR_NULL:
			v.type = jbvNull;
			break;
	}
	return pushJsonbValue(&d->st, tok, &v);
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
rs_cbor_to_jsonb(const uint8 *data, size_t len, const char *what)
{
	Decoder		d;
	JsonbValue *res;
	size_t		offset;
	DcborError	err;
	bool		is_scalar;

	check_database_encoding();
	err = dcbor_validate(data, len, &offset);
	if (err != DCBOR_OK)
	{
		if (what)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("%s: invalid DAG-CBOR at byte %zu: %s", what, offset, dcbor_strerror(err))));
		rs_report_cbor_error(err, offset, data, len);
	}
	dcbor_reader_init(&d.r, data, len);
	d.st = NULL;
	d.what = what;

	/*
	 * A top-level scalar travels as a one-element raw-scalar array; bytes
	 * and links become objects ({"$bytes"}, {"$link"}), so they do not.
	 */
	{
		DcborReader peek = d.r;
		DcborItem	top;

		dcbor_read(&peek, &top);
		is_scalar = top.type != DCBOR_ARRAY && top.type != DCBOR_MAP &&
			top.type != DCBOR_BYTES && top.type != DCBOR_LINK;
	}
	if (is_scalar)
	{
		JsonbValue	arr;

		arr.type = jbvArray;
		arr.val.array.rawScalar = true;
		arr.val.array.nElems = 1;
		pushJsonbValue(&d.st, WJB_BEGIN_ARRAY, &arr);
		decode_item(&d, WJB_ELEM, NULL);
		res = pushJsonbValue(&d.st, WJB_END_ARRAY, NULL);
	}
	else
		res = decode_item(&d, WJB_ELEM, NULL);
	return JsonbValueToJsonb(res);
}

Datum
rs_cbor_to_json(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_JSONB_P(rs_cbor_to_jsonb((const uint8 *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), NULL));
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
