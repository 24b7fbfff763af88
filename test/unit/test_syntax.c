/*
 * test_syntax.c - identifier syntax (against the atproto interop fixtures),
 * TID encode/decode, base58btc and Ed25519 did:key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keys.h"
#include "syntax.h"
#include "tid.h"
#include "tap.h"

#define FIXTURES "test/fixtures/atproto-interop/syntax/"

typedef bool (*Validator) (const char *s, size_t len);

/*
 * Check every line of a fixture file (blank lines and '#' comments skipped;
 * other lines kept byte for byte, leading and trailing spaces included).
 * One TAP line per fixture line, then one for the number of lines seen.
 */
static void
check_fixture(const char *file, Validator valid, bool expect, int expect_lines)
{
	char		path[256];
	FILE	   *f;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		n;
	int			lines = 0;

	snprintf(path, sizeof(path), FIXTURES "%s", file);
	f = fopen(path, "r");
	if (!ok(f != NULL, "open %s", path))
		return;
	while ((n = getline(&line, &cap, f)) >= 0)
	{
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		lines++;
		ok(valid(line, (size_t) n) == expect, "%s: '%.60s%s' is %s",
		   file, line, n > 60 ? "..." : "", expect ? "valid" : "invalid");
	}
	free(line);
	fclose(f);
	ok(lines == expect_lines, "%s: %d lines checked (want %d)", file, lines, expect_lines);
}

static bool
valid_cstr(Validator valid, const char *s)
{
	return valid(s, strlen(s));
}

static void
test_syntax_extra(void)
{
	char		big[600];

	/* Lengths exactly at and one past each limit. */
	memset(big, 'o', sizeof(big));
	ok(rkey_valid(big, RKEY_MAX_LEN), "rkey of 512 characters is valid");
	ok(!rkey_valid(big, RKEY_MAX_LEN + 1), "rkey of 513 characters is invalid");
	ok(!rkey_valid("", 0), "empty rkey is invalid");
	ok(!rkey_valid("a\0b", 3), "rkey with an embedded NUL is invalid");
	ok(!did_valid("did:plc:ab\0cd", 13), "DID with an embedded NUL is invalid");
	ok(!nsid_valid("", 0), "empty NSID is invalid");
	ok(!did_valid("", 0), "empty DID is invalid");
	ok(!did_valid("did:", 4), "\"did:\" is invalid");
	ok(!did_valid("did::val", 8), "DID with an empty method is invalid");

	/* NSID name segment may hold digits but not start with one. */
	ok(valid_cstr(nsid_valid, "app.bsky.feed.post"), "app.bsky.feed.post is valid");
	ok(valid_cstr(nsid_valid, "com.example.postV2"), "name with a digit is valid");
	ok(!valid_cstr(nsid_valid, "com.example.2post"), "name starting with a digit is invalid");
	ok(!valid_cstr(nsid_valid, "com.example.post-two"), "name with a hyphen is invalid");

	/* NSID total length: 317 is valid, 318 is not. */
	{
		char		nsid[NSID_MAX_LEN + 2];
		int			pos = 0;
		int			i;

		/* Four 63-character segments, then segments of 'b' to fill up. */
		for (i = 0; i < 4; i++)
		{
			memset(nsid + pos, 'a', 63);
			pos += 63;
			nsid[pos++] = '.';
		}
		/* pos = 256; "b.xxx...": 2 + 59 name characters = 317 */
		nsid[pos++] = 'b';
		nsid[pos++] = '.';
		memset(nsid + pos, 'x', NSID_MAX_LEN + 1 - pos);
		ok(nsid_valid(nsid, NSID_MAX_LEN), "NSID of 317 characters is valid");
		ok(!nsid_valid(nsid, NSID_MAX_LEN + 1), "NSID of 318 characters is invalid");
		/* Name segment of 63 characters is valid, 64 is not. */
		memcpy(nsid, "com.example.", 12);
		memset(nsid + 12, 'x', 64);
		ok(nsid_valid(nsid, 12 + 63), "NSID name of 63 characters is valid");
		ok(!nsid_valid(nsid, 12 + 64), "NSID name of 64 characters is invalid");
	}

	/* DID at the 2048-character limit. */
	{
		char	   *did = malloc(DID_MAX_LEN + 1);

		memcpy(did, "did:plc:", 8);
		memset(did + 8, 'a', DID_MAX_LEN + 1 - 8);
		ok(did_valid(did, DID_MAX_LEN), "DID of 2048 characters is valid");
		ok(!did_valid(did, DID_MAX_LEN + 1), "DID of 2049 characters is invalid");
		free(did);
	}

	/* The longest repo path: a 317-character NSID, '/', a 512-character rkey. */
	{
		char		path[NSID_MAX_LEN + 1 + RKEY_MAX_LEN + 1];
		size_t		pos = 0;

		for (int i = 0; i < 4; i++)
		{
			memset(path + pos, 'a', 63);
			pos += 63;
			path[pos++] = '.';
		}
		memcpy(path + pos, "b.", 2);
		pos += 2;
		memset(path + pos, 'x', NSID_MAX_LEN - pos);
		pos = NSID_MAX_LEN;
		path[pos++] = '/';
		memset(path + pos, 'k', RKEY_MAX_LEN + 1);
		ok(repo_path_valid(path, NSID_MAX_LEN + 1 + RKEY_MAX_LEN),
		   "repo path of 830 characters (longest NSID and rkey) is valid");
		ok(!repo_path_valid(path, NSID_MAX_LEN + 1 + RKEY_MAX_LEN + 1),
		   "repo path with a 513-character rkey is invalid");
	}
	ok(valid_cstr(repo_path_valid, "app.bsky.feed.post/3jzfcijpj2z2a"), "repo path NSID/TID is valid");
	ok(valid_cstr(repo_path_valid, "app.bsky.actor.profile/self"), "repo path NSID/self is valid");
	ok(!valid_cstr(repo_path_valid, "app.bsky.feed.post"), "repo path without '/' is invalid");
	ok(!valid_cstr(repo_path_valid, "app.bsky.feed.post/"), "repo path with an empty rkey is invalid");
	ok(!valid_cstr(repo_path_valid, "/3jzfcijpj2z2a"), "repo path with an empty collection is invalid");
	ok(!valid_cstr(repo_path_valid, "app.bsky.feed.post/a/b"), "repo path with two '/' is invalid");
	ok(!valid_cstr(repo_path_valid, "app.bsky.feed.post/.."), "repo path with rkey '..' is invalid");
	ok(!valid_cstr(repo_path_valid, "bsky.post/abc"), "repo path with a two-segment NSID is invalid");
}

/*
 * atproto datetimes (atproto.com/specs/lexicon#datetime).  Our own cases,
 * one per rule; the interop suite's datetime files are not vendored.
 */
static void
test_datetime(void)
{
	static const char *const valid[] = {
		"1985-04-12T23:20:50.123Z",
		"1985-04-12T23:20:50Z",
		"1985-04-12T23:20:50.1Z",
		"1985-04-12T23:20:50.123456789012345Z",	/* any number of fraction digits */
		"1985-04-12T23:20:50.123+00:00",
		"1985-04-12T23:20:50.123+05:45",
		"1985-04-12T23:20:50.123-07:00",
		"0000-01-01T00:00:00Z",
		"0001-01-01T00:00:00+01:00",
		"9999-12-31T23:59:59.999Z",
		"9999-12-31T23:59:59+01:00",
		"2024-02-29T12:00:00Z",		/* leap year */
		"2000-02-29T12:00:00Z",		/* divisible by 400 */
	};
	static const char *const invalid[] = {
		"",
		"1985-04-12",				/* no time */
		"1985-04-12T23:20Z",		/* no seconds */
		"1985-04-12T23:20:50.123",	/* no timezone */
		"1985-04-12T23:20:50",
		"1985-04-12t23:20:50.123Z",	/* lowercase t */
		"1985-04-12T23:20:50.123z",	/* lowercase z */
		"1985-04-12 23:20:50.123Z",	/* space */
		"1985-04-12T23:20:50.123-00:00",	/* unknown offset */
		"1985-04-12T23:20:50.Z",	/* empty fraction */
		"1985-04-12T23:20:50,123Z",	/* comma */
		"1985-04-12T23:20:50.123+0000",	/* offset without colon */
		"1985-04-12T23:20:50.123+00",
		"1985-04-12T23:20:50.123+24:00",
		"1985-04-12T23:20:50.123+05:60",
		"1985-04-12T23:20:50.123UTC",
		"1985-04-12T23:20:50.123Z ",	/* trailing space */
		" 1985-04-12T23:20:50.123Z",
		"85-04-12T23:20:50.123Z",	/* two-digit year */
		"+01985-04-12T23:20:50.123Z",	/* expanded year */
		"1985-4-12T23:20:50.123Z",
		"1985-00-12T23:20:50.123Z",
		"1985-13-12T23:20:50.123Z",
		"1985-04-00T23:20:50.123Z",
		"1985-04-31T23:20:50.123Z",	/* April has 30 days */
		"2023-02-29T12:00:00Z",		/* not a leap year */
		"1900-02-29T12:00:00Z",		/* divisible by 100, not 400 */
		"1985-04-12T24:00:00Z",
		"1985-04-12T23:60:00Z",
		"1985-04-12T23:59:60Z",		/* leap second */
		"0000-01-01T00:00:00+00:01",	/* before year 0000 in UTC */
		"9999-12-31T23:59:59-00:01",	/* after year 9999 in UTC */
		"1985-04-12T23:20:50.123Z\n",
		"1985-04-12T23:20:50.1a3Z",
	};

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		ok(valid_cstr(datetime_valid, valid[i]), "datetime \"%s\" is valid", valid[i]);
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		ok(!valid_cstr(datetime_valid, invalid[i]), "datetime \"%s\" is invalid", invalid[i]);
	{
		/* "1985-04-12T23:20:50." + fraction digits + "Z": 64 bytes, then 65 */
		char		dt[DATETIME_MAX_LEN + 2];

		memcpy(dt, "1985-04-12T23:20:50.", 20);
		memset(dt + 20, '7', DATETIME_MAX_LEN - 21);
		dt[DATETIME_MAX_LEN - 1] = 'Z';
		ok(datetime_valid(dt, DATETIME_MAX_LEN), "datetime of 64 bytes is valid");
		dt[DATETIME_MAX_LEN - 1] = '7';
		dt[DATETIME_MAX_LEN] = 'Z';
		ok(!datetime_valid(dt, DATETIME_MAX_LEN + 1), "datetime of 65 bytes is invalid");
	}
	ok(!datetime_valid("1985-04-12T23:20:50\0.123Z", 24), "datetime with an embedded NUL is invalid");
}

static void
check_tid_decode(const char *tid, uint64_t want_ts, uint32_t want_clock)
{
	uint64_t	ts = 0;
	uint32_t	clock = 0;
	bool		r = tid_decode(tid, strlen(tid), &ts, &clock);

	ok(r && ts == want_ts && clock == want_clock,
	   "decode %s = (%llu, %u), want (%llu, %u)", tid,
	   (unsigned long long) ts, clock, (unsigned long long) want_ts, want_clock);
}

static void
check_tid_encode(uint64_t ts, uint32_t clock, const char *want)
{
	char		out[TID_LEN + 1] = "";

	ok(tid_encode(ts, clock, out), "encode (%llu, %u) succeeds", (unsigned long long) ts, clock);
	is_str(out, want, "encode gives the expected TID");
}

static void
test_tid(void)
{
	char		out[TID_LEN + 1];
	char		prev[TID_LEN + 1];
	uint64_t	ts;
	uint32_t	clock;
	int			i;
	int			bad_roundtrip = 0;
	int			bad_order = 0;

	/* Spec: integer zero is 2222222222222; 3jzfcijpj2z2a is the spec example. */
	check_tid_encode(0, 0, "2222222222222");
	check_tid_decode("2222222222222", 0, 0);
	check_tid_decode("3jzfcijpj2z2a", UINT64_C(1688137381887007), 6);
	check_tid_encode(UINT64_C(1688137381887007), 6, "3jzfcijpj2z2a");
	/* @atcute/tid README: create(1724171495793000, 512) and parse of 3l25zusnsfctk. */
	check_tid_encode(UINT64_C(1724171495793000), 512, "3l25zusnsfck2");
	check_tid_decode("3l25zusnsfctk", UINT64_C(1724171495793000), 816);
	/* Largest spec-conformant TID: top bit clear, all else set. */
	check_tid_encode(TID_TIMESTAMP_MAX, TID_CLOCK_ID_MAX, "bzzzzzzzzzzzz");
	check_tid_decode("7777777777777", UINT64_C(5811096293381285), 165);
	/* Valid syntax with the top bit set decodes past the 53-bit range. */
	check_tid_decode("jzzzzzzzzzzzz", (UINT64_C(1) << 54) - 1, 1023);

	ok(!tid_encode(TID_TIMESTAMP_MAX + 1, 0, out), "encode refuses a 54-bit timestamp");
	ok(!tid_encode(0, TID_CLOCK_ID_MAX + 1, out), "encode refuses clock id 1024");
	ok(!tid_decode("3jzfcijpj2z2", 12, &ts, &clock), "decode refuses 12 characters");
	ok(!tid_decode("kjzfcijpj2z2a", 13, &ts, &clock), "decode refuses a 65-bit value");
	ok(!tid_decode("3JZFCIJPJ2Z2A", 13, &ts, &clock), "decode refuses upper case");
	ok(!tid_decode("3jzfcijpj2z21", 13, &ts, &clock), "decode refuses a non-base32 digit");

	/* Round trips, and string order equals (timestamp, clock id) order. */
	prev[0] = '\0';
	for (i = 0; i < 100000; i++)
	{
		uint64_t	t = (uint64_t) i * UINT64_C(90071992547) + (uint64_t) (i % 7);
		uint32_t	c = (uint32_t) (i * 37) % 1024;

		if (!tid_encode(t, c, out) || !tid_valid(out, TID_LEN) ||
			!tid_decode(out, TID_LEN, &ts, &clock) || ts != t || clock != c)
			bad_roundtrip++;
		if (i > 0 && strcmp(prev, out) >= 0)
			bad_order++;
		memcpy(prev, out, sizeof(out));
	}
	ok(bad_roundtrip == 0, "100000 TIDs round trip (%d failures)", bad_roundtrip);
	ok(bad_order == 0, "100000 increasing timestamps give increasing strings (%d failures)", bad_order);
}

/* Hex string to bytes; returns the byte count. */
static size_t
from_hex(const char *hex, uint8_t *out)
{
	size_t		n = strlen(hex) / 2;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		unsigned	b;

		sscanf(hex + 2 * i, "%2x", &b);
		out[i] = (uint8_t) b;
	}
	return n;
}

static void
test_base58(void)
{
	/* Bitcoin Core's base58_encode_decode.json vectors. */
	static const char *const vectors[][2] = {
		{"", ""},
		{"61", "2g"},
		{"626262", "a3gV"},
		{"636363", "aPEr"},
		{"73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2"},
		{"00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"},
		{"516b6fcd0f", "ABnLTmg"},
		{"bf4f89001e670274dd", "3SEo3LWLoPntC"},
		{"572e4794", "3EFU7m"},
		{"ecac89cad93923c02321", "EJDM8drfXA6uyA"},
		{"10c8511e", "Rt5zm"},
		{"00000000000000000000", "1111111111"},
	};
	size_t		i;
	RsBuf		buf;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
	{
		uint8_t		bytes[64];
		size_t		n = from_hex(vectors[i][0], bytes);
		const char *text = vectors[i][1];
		bool		r;

		rs_buf_init(&buf, 0);
		base58_encode(bytes, n, &buf);
		ok(buf.len == strlen(text) && memcmp(buf.data, text, buf.len) == 0,
		   "base58 encode of %s is '%s' (got '%.*s')", vectors[i][0], text,
		   (int) buf.len, (const char *) buf.data);
		rs_buf_free(&buf);

		rs_buf_init(&buf, 0);
		r = base58_decode(text, strlen(text), &buf);
		ok(r && buf.len == n && memcmp(buf.data, bytes, n) == 0,
		   "base58 decode of '%s' gives %s", text, vectors[i][0]);
		rs_buf_free(&buf);
	}

	/* Characters outside the alphabet: 0, O, I, l, space, '+'. */
	{
		static const char *const bad[] = {"0", "2g0", "O", "I", "l", "2g ", "+"};

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		{
			rs_buf_init(&buf, 0);
			ok(!base58_decode(bad[i], strlen(bad[i]), &buf) && buf.len == 0,
			   "base58 decode rejects '%s' and leaves the buffer empty", bad[i]);
			rs_buf_free(&buf);
		}
		rs_buf_init(&buf, 0);
		ok(!base58_decode("2g\0", 3, &buf), "base58 decode rejects an embedded NUL");
		rs_buf_free(&buf);
	}

	/* Random round trips, leading zero bytes included. */
	{
		int			failures = 0;
		int			round;

		for (round = 0; round < 2000; round++)
		{
			uint8_t		data[80];
			size_t		len = (size_t) round % sizeof(data);
			size_t		zeros = (size_t) round % 5;
			RsBuf		text;
			RsBuf		back;

			randombytes_buf(data, len);
			memset(data, 0, zeros < len ? zeros : len);
			rs_buf_init(&text, 0);
			rs_buf_init(&back, 0);
			base58_encode(data, len, &text);
			if (!base58_decode((const char *) text.data, text.len, &back) ||
				back.len != len || memcmp(back.data, data, len) != 0)
				failures++;
			rs_buf_free(&text);
			rs_buf_free(&back);
		}
		ok(failures == 0, "2000 random base58 round trips (%d failures)", failures);
	}
}

static void
check_did_key_rejected(const char *did, DidKeyError want)
{
	uint8_t		pub[ED25519_PUBLIC_KEY_LEN];
	DidKeyError err = DID_KEY_OK;
	bool		r = did_key_parse_ed25519(did, strlen(did), pub, &err);

	ok(!r && err == want, "did:key parse rejects '%.70s' (%s)", did, did_key_strerror(err));
}

static void
test_did_key(void)
{
	/*
	 * W3C did:key spec Ed25519 example.  Its key is also the RFC 8032
	 * public key of the all-zero seed, which libsodium recomputes below.
	 */
	const char *w3c_did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
	const char *w3c_hex = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
	uint8_t		want[ED25519_PUBLIC_KEY_LEN];
	uint8_t		pub[ED25519_PUBLIC_KEY_LEN];
	uint8_t		sk[crypto_sign_SECRETKEYBYTES];
	uint8_t		seed[crypto_sign_SEEDBYTES] = {0};
	char		did[DID_KEY_ED25519_LEN + 1];
	DidKeyError err;
	int			failures = 0;
	int			i;

	from_hex(w3c_hex, want);
	memset(pub, 0, sizeof(pub));
	ok(did_key_parse_ed25519(w3c_did, strlen(w3c_did), pub, &err) && err == DID_KEY_OK &&
	   memcmp(pub, want, sizeof(pub)) == 0, "W3C example did:key parses to its public key");
	did_key_format_ed25519(want, did);
	is_str(did, w3c_did, "W3C example public key formats to its did:key");

	crypto_sign_seed_keypair(pub, sk, seed);
	ok(memcmp(pub, want, sizeof(pub)) == 0, "libsodium: zero seed gives the W3C example key");

	/* The extremes of the key space still give 56-character did:keys. */
	memset(pub, 0, sizeof(pub));
	did_key_format_ed25519(pub, did);
	is_str(did, "did:key:z6MkeTG3bFFSLYVU7VqhgZxqr6YzpaGrQtFMh1uvqGy1vDnP", "all-zero key");
	memset(pub, 0xff, sizeof(pub));
	did_key_format_ed25519(pub, did);
	is_str(did, "did:key:z6MkwgaR63138bEEgad7uk993KMX54vBA6KTB4sFhCPnSB2e", "all-0xff key");

	/* Random keys round trip. */
	for (i = 0; i < 1000; i++)
	{
		uint8_t		key[ED25519_PUBLIC_KEY_LEN];
		uint8_t		back[ED25519_PUBLIC_KEY_LEN];

		randombytes_buf(key, sizeof(key));
		did_key_format_ed25519(key, did);
		if (strlen(did) != DID_KEY_ED25519_LEN || strncmp(did, "did:key:z6Mk", 12) != 0 ||
			!did_key_parse_ed25519(did, strlen(did), back, NULL) ||
			memcmp(back, key, sizeof(key)) != 0)
			failures++;
	}
	ok(failures == 0, "1000 random keys round trip through did:key (%d failures)", failures);

	check_did_key_rejected("", DID_KEY_ERR_PREFIX);
	check_did_key_rejected("did:web:example.com", DID_KEY_ERR_PREFIX);
	check_did_key_rejected("DID:KEY:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", DID_KEY_ERR_PREFIX);
	check_did_key_rejected("did:key:", DID_KEY_ERR_MULTIBASE);
	check_did_key_rejected("did:key:6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", DID_KEY_ERR_MULTIBASE);
	check_did_key_rejected("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW0", DID_KEY_ERR_BASE58);
	check_did_key_rejected("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp ", DID_KEY_ERR_BASE58);
	check_did_key_rejected("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp#frag", DID_KEY_ERR_BASE58);
	/* secp256k1-pub (0xe7 0x01), from the atproto DID fixtures. */
	check_did_key_rejected("did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N", DID_KEY_ERR_CODEC);
	check_did_key_rejected("did:key:z", DID_KEY_ERR_CODEC);
	/* One character short or long: 33 or 35 bytes after the codec. */
	check_did_key_rejected("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW", DID_KEY_ERR_CODEC);
	check_did_key_rejected("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWpp", DID_KEY_ERR_CODEC);

	/* Right codec, wrong length: 0xed 0x01 followed by 31 and 33 bytes. */
	{
		uint8_t		raw[2 + 33];
		RsBuf		text;

		/* First a near miss on the codec: 0xed 0x02 + 32 bytes. */
		raw[0] = 0xed;
		raw[1] = 0x02;
		memset(raw + 2, 0x42, 33);
		rs_buf_init(&text, 0);
		rs_buf_append(&text, "did:key:z", 9);
		base58_encode(raw, 2 + 32, &text);
		rs_buf_append_byte(&text, '\0');
		check_did_key_rejected((const char *) text.data, DID_KEY_ERR_CODEC);
		rs_buf_free(&text);

		/* A leading zero byte ('1') before a valid key shifts the codec. */
		rs_buf_init(&text, 0);
		rs_buf_append(&text, "did:key:z1", 10);
		rs_buf_append(&text, w3c_did + 9, strlen(w3c_did) - 9);
		rs_buf_append_byte(&text, '\0');
		check_did_key_rejected((const char *) text.data, DID_KEY_ERR_CODEC);
		rs_buf_free(&text);

		raw[0] = 0xed;
		raw[1] = 0x01;
		memset(raw + 2, 0x42, 33);
		rs_buf_init(&text, 0);
		rs_buf_append(&text, "did:key:z", 9);
		base58_encode(raw, 2 + 31, &text);
		rs_buf_append_byte(&text, '\0');
		check_did_key_rejected((const char *) text.data, DID_KEY_ERR_LENGTH);
		rs_buf_free(&text);

		rs_buf_init(&text, 0);
		rs_buf_append(&text, "did:key:z", 9);
		base58_encode(raw, 2 + 33, &text);
		rs_buf_append_byte(&text, '\0');
		check_did_key_rejected((const char *) text.data, DID_KEY_ERR_LENGTH);
		rs_buf_free(&text);
	}

	/* Very long input is refused without decoding it. */
	{
		char	   *longdid = malloc(10001);

		memcpy(longdid, "did:key:z", 9);
		memset(longdid + 9, '2', 10000 - 9);
		longdid[10000] = '\0';
		check_did_key_rejected(longdid, DID_KEY_ERR_LENGTH);
		free(longdid);
	}
}

int
main(void)
{
	if (sodium_init() < 0)
	{
		printf("Bail out! sodium_init failed\n");
		return 1;
	}

	check_fixture("did_syntax_valid.txt", did_valid, true, 24);
	check_fixture("did_syntax_invalid.txt", did_valid, false, 18);
	check_fixture("nsid_syntax_valid.txt", nsid_valid, true, 25);
	check_fixture("nsid_syntax_invalid.txt", nsid_valid, false, 27);
	check_fixture("recordkey_syntax_valid.txt", rkey_valid, true, 16);
	check_fixture("recordkey_syntax_invalid.txt", rkey_valid, false, 11);
	check_fixture("tid_syntax_valid.txt", tid_valid, true, 4);
	check_fixture("tid_syntax_invalid.txt", tid_valid, false, 9);

	test_syntax_extra();
	test_datetime();
	test_tid();
	test_base58();
	test_did_key();

	return done_testing();
}
