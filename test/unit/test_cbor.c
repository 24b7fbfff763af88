/*
 * test_cbor.c - unit tests of the pure DAG-CBOR and CID modules.
 */
#include <jansson.h>
#include <stdlib.h>

#include "cbor.h"
#include "cid.h"
#include "tap.h"

static size_t
b64dec(const char *in, uint8_t *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		o = 0;

	for (; *in && *in != '='; in++)
	{
		acc = (acc << 6) | (uint32_t) (strchr(a, *in) - a);
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[o++] = (uint8_t) (acc >> bits);
		}
	}
	return o;
}

static void
check_encoding(void (*put) (RsBuf *, int64_t), int64_t v, const char *want)
{
	RsBuf		b;
	char	   *got;

	rs_buf_init(&b, 4);
	put(&b, v);
	got = tohex(b.data, b.len);
	ok(strcmp(got, want) == 0, "encode %lld -> %s (got %s)", (long long) v, want, got);
	ok(dcbor_validate(b.data, b.len, NULL) == DCBOR_OK, "encoded %lld validates", (long long) v);
	free(got);
	rs_buf_free(&b);
}

static void
put_int(RsBuf *b, int64_t v)
{
	dcbor_put_int(b, v);
}

static void
test_integer_heads(void)
{
	check_encoding(put_int, 0, "00");
	check_encoding(put_int, 23, "17");
	check_encoding(put_int, 24, "1818");
	check_encoding(put_int, 255, "18ff");
	check_encoding(put_int, 256, "190100");
	check_encoding(put_int, 65535, "19ffff");
	check_encoding(put_int, 65536, "1a00010000");
	check_encoding(put_int, 4294967295LL, "1affffffff");
	check_encoding(put_int, 4294967296LL, "1b0000000100000000");
	check_encoding(put_int, INT64_MAX, "1b7fffffffffffffff");
	check_encoding(put_int, -1, "20");
	check_encoding(put_int, -24, "37");
	check_encoding(put_int, -25, "3818");
	check_encoding(put_int, INT64_MIN, "3b7fffffffffffffff");
}

static void
test_fixtures(void)
{
	json_error_t jerr;
	json_t	   *arr = json_load_file("test/fixtures/atproto-interop/data-model/data-model-fixtures.json", 0, &jerr);
	size_t		i;
	json_t	   *f;

	if (!ok(arr != NULL, "data-model fixtures load"))
		return;
	json_array_foreach(arr, i, f)
	{
		uint8_t		bytes[4096];
		size_t		n = b64dec(json_string_value(json_object_get(f, "cbor_base64")), bytes);
		uint8_t		cid[CID_LEN];
		char		text[CID_TEXT_LEN + 1];
		DcborReader r;

		ok(dcbor_validate(bytes, n, NULL) == DCBOR_OK, "fixture %zu validates", i);
		cid_for_dagcbor(bytes, n, cid);
		cid_format(cid, text);
		is_str(text, json_string_value(json_object_get(f, "cid")), "fixture CID matches");
		dcbor_reader_init(&r, bytes, n);
		ok(dcbor_skip(&r) == DCBOR_OK && r.pos == n, "fixture %zu skips as one item", i);
	}
	json_decref(arr);
}

static void
test_cid_text(void)
{
	const char *good = "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a";
	const char *raw = "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity";
	uint8_t		cid[CID_LEN];
	char		text[CID_TEXT_LEN + 1];

	ok(cid_parse(good, strlen(good), cid), "dag-cbor CID parses");
	cid_format(cid, text);
	is_str(text, good, "dag-cbor CID formats back identically");
	ok(cid_parse(raw, strlen(raw), cid) && cid[1] == CID_CODEC_RAW, "raw-codec CID parses");
	ok(!cid_parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", 46, cid), "CIDv0 rejected");
	ok(!cid_parse(good, strlen(good) - 1, cid), "short CID rejected");
	ok(!cid_parse("Bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a", 59, cid),
	   "upper-case multibase prefix rejected");
	ok(!cid_parse("bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2b", 59, cid),
	   "non-zero padding bits rejected");
	ok(!cid_parse("bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludir!2a", 59, cid),
	   "non-base32 character rejected");
	/* sha256("") */
	cid_for_raw((const uint8_t *) "", 0, cid);
	cid_format(cid, text);
	is_str(text, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "raw CID of empty input");
}

static void
test_utf8(void)
{
	ok(utf8_valid((const uint8_t *) "a\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80", 10), "valid multi-byte UTF-8");
	ok(!utf8_valid((const uint8_t *) "\xc3", 1), "truncated sequence");
	ok(!utf8_valid((const uint8_t *) "\xc0\xaf", 2), "overlong 2-byte");
	ok(!utf8_valid((const uint8_t *) "\xe0\x80\xaf", 3), "overlong 3-byte");
	ok(!utf8_valid((const uint8_t *) "\xed\xa0\x80", 3), "surrogate");
	ok(!utf8_valid((const uint8_t *) "\xf4\x90\x80\x80", 4), "above U+10FFFF");
	ok(!utf8_valid((const uint8_t *) "\x80", 1), "lone continuation byte");
}

static void
test_malformed(void)
{
	static const struct
	{
		const char *hex;
		DcborError	want;
	}			cases[] = {
		{"", DCBOR_ERR_EMPTY},
		{"9f01ff", DCBOR_ERR_INDEFINITE},
		{"1801", DCBOR_ERR_NOT_SHORTEST},
		{"3b8000000000000000", DCBOR_ERR_INT_RANGE},
		{"fb3ff0000000000000", DCBOR_ERR_FLOAT},
		{"f7", DCBOR_ERR_SIMPLE},
		{"c0", DCBOR_ERR_TAG},
		{"d82a6161", DCBOR_ERR_BAD_LINK},
		{"62c328", DCBOR_ERR_UTF8},
		{"a10102", DCBOR_ERR_MAP_KEY_TYPE},
		{"a2616201616102", DCBOR_ERR_MAP_KEY_ORDER},
		{"a2616101616102", DCBOR_ERR_MAP_KEY_DUP},
		{"0000", DCBOR_ERR_TRAILING},
		{"65616263", DCBOR_ERR_TRUNCATED},
		{"1c", DCBOR_ERR_RESERVED},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		uint8_t		b[64];
		size_t		n = unhex(cases[i].hex, b);
		DcborError	got = dcbor_validate(b, n, NULL);

		ok(got == cases[i].want, "'%s' -> %s (got %s)", cases[i].hex,
		   dcbor_strerror(cases[i].want), dcbor_strerror(got));
	}
}

/* Every mutation of a valid document either validates or fails cleanly. */
static void
test_mutations(void)
{
	const char *hex = "a4616101616282f5f66163d82a5825000171122065062a5a5a00fc16d73c6944237ccbc15b1c4a7234489336891d091741a239d06164a1617843abc123";
	uint8_t		orig[256],
				b[256];
	size_t		n = unhex(hex, orig);
	unsigned	seed = 7;
	int			valid = 0,
				invalid = 0;

	ok(dcbor_validate(orig, n, NULL) == DCBOR_OK, "mutation seed document is valid");
	for (int round = 0; round < 200000; round++)
	{
		size_t		len = n;

		memcpy(b, orig, n);
		for (int k = 0; k < 1 + round % 3; k++)
			b[rand_r(&seed) % n] = (uint8_t) rand_r(&seed);
		if (round % 5 == 0)
			len = rand_r(&seed) % (n + 1);
		if (dcbor_validate(b, len, NULL) == DCBOR_OK)
			valid++;
		else
			invalid++;
	}
	ok(valid + invalid == 200000 && invalid > 0, "200000 mutations: %d valid, %d rejected, no crash",
	   valid, invalid);
}

/* n nested containers (open is "81" or "a16161"), innermost holding leaf. */
static size_t
nested(int n, const char *open, const char *leaf, uint8_t *out)
{
	char	   *hex = malloc(n * strlen(open) + strlen(leaf) + 1);
	size_t		len;

	hex[0] = '\0';
	for (int i = 0; i < n; i++)
		strcat(hex, open);
	strcat(hex, leaf);
	len = unhex(hex, out);
	free(hex);
	return len;
}

/* The depth limit counts arrays and maps only, as the JSON encoder does. */
static void
test_depth(void)
{
	uint8_t		buf[4096];
	size_t		len,
				off;

	len = nested(DCBOR_MAX_DEPTH, "81", "01", buf);
	ok(dcbor_validate(buf, len, NULL) == DCBOR_OK, "128 nested arrays around an integer are valid");
	len = nested(DCBOR_MAX_DEPTH, "81", "6161", buf);
	ok(dcbor_validate(buf, len, NULL) == DCBOR_OK, "128 nested arrays around a text are valid");
	len = nested(DCBOR_MAX_DEPTH - 1, "81", "80", buf);
	ok(dcbor_validate(buf, len, NULL) == DCBOR_OK, "127 arrays around an empty array (128 deep) are valid");
	len = nested(DCBOR_MAX_DEPTH, "a16161", "f6", buf);
	ok(dcbor_validate(buf, len, NULL) == DCBOR_OK, "128 nested maps around null are valid");
	len = nested(DCBOR_MAX_DEPTH - 1, "a16161", "d82a58250001711220" "65062a5a5a00fc16d73c6944237ccbc15b1c4a7234489336891d091741a239d0", buf);
	ok(dcbor_validate(buf, len, NULL) == DCBOR_OK, "a link inside 127 maps is valid (links are not containers)");

	len = nested(DCBOR_MAX_DEPTH + 1, "81", "01", buf);
	ok(dcbor_validate(buf, len, &off) == DCBOR_ERR_DEPTH && off == DCBOR_MAX_DEPTH,
	   "129 nested arrays are refused at the 129th (byte %zu)", off);
	len = nested(DCBOR_MAX_DEPTH, "81", "80", buf);
	ok(dcbor_validate(buf, len, &off) == DCBOR_ERR_DEPTH && off == DCBOR_MAX_DEPTH,
	   "128 arrays around an empty array (129 deep) are refused");
	len = nested(DCBOR_MAX_DEPTH, "a16161", "a0", buf);
	ok(dcbor_validate(buf, len, &off) == DCBOR_ERR_DEPTH && off == 3 * DCBOR_MAX_DEPTH,
	   "129 nested maps are refused at the 129th (byte %zu)", off);
	is_str(dcbor_strerror(DCBOR_ERR_DEPTH), "more than 128 nested arrays and maps", "depth message names the limit");
}

/* base64 as atproto JSON's $bytes: one spelling per byte string. */
static void
test_base64(void)
{
	uint8_t		data[64];
	int			bad = 0;

	for (int i = 0; i < 64; i++)
		data[i] = (uint8_t) (i * 37 + 11);
	for (size_t n = 0; n <= 64; n++)
	{
		char		text[DCBOR_BASE64_LEN(64) + 1];
		RsBuf		back;
		size_t		tl = dcbor_base64_encode(data, n, text);

		rs_buf_init(&back, 8);
		if (tl != DCBOR_BASE64_LEN(n) || strlen(text) != tl || strchr(text, '=') != NULL ||
			!dcbor_base64_decode(text, tl, &back) || back.len != n || memcmp(back.data, data, n) != 0)
			bad++;
		rs_buf_free(&back);
	}
	ok(bad == 0, "base64 of 0..64 bytes: unpadded, and decodes back (%d bad)", bad);
	{
		static const struct
		{
			const char *in;
			bool		ok;
		}			cases[] = {
			{"aGk", true}, {"aGk=", true}, {"aGVsbG8", true}, {"", true},
			{"aGl", false},		/* non-zero leftover bits: a second spelling of "hi" */
			{"a", false}, {"aG=k", false}, {"aG k", false}, {"aGk-", false}, {"aGk_", false},
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		{
			RsBuf		out;

			rs_buf_init(&out, 8);
			ok(dcbor_base64_decode(cases[i].in, strlen(cases[i].in), &out) == cases[i].ok,
			   "base64 \"%s\" is %s", cases[i].in, cases[i].ok ? "accepted" : "refused");
			rs_buf_free(&out);
		}
		{
			RsBuf		out;

			rs_buf_init(&out, 8);
			ok(!dcbor_base64_decode("aG\0k", 4, &out), "base64 with a NUL is refused");
			rs_buf_free(&out);
		}
	}
}

int
main(void)
{
	test_integer_heads();
	test_fixtures();
	test_cid_text();
	test_utf8();
	test_malformed();
	test_mutations();
	test_depth();
	test_base64();
	return done_testing();
}
