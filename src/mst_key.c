/*
 * mst_key.c - MST keys: validity (atproto isValidMstKey), depth and common
 * prefix; how keys, CIDs and errors read in messages.
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

#include <stdarg.h>
#include <stdio.h>

const char *
mst_strerror(MstError err)
{
	switch (err)
	{
		case MST_OK:
			return "ok";
		case MST_ERR_KEY_SYNTAX:
			return "invalid MST key";
		case MST_ERR_DUPLICATE_KEY:
			return "duplicate MST key";
		case MST_ERR_NOT_FOUND:
			return "MST key not found";
		case MST_ERR_CBOR:
			return "MST node is not valid DAG-CBOR";
		case MST_ERR_NODE_SHAPE:
			return "MST node has the wrong shape";
		case MST_ERR_KEY_ORDER:
			return "MST keys out of order";
		case MST_ERR_KEY_DEPTH:
			return "MST key at the wrong layer";
		case MST_ERR_PREFIX:
			return "bad MST key prefix length";
		case MST_ERR_NODE_TOO_BIG:
			return "MST node has too many entries";
		case MST_ERR_NONCANONICAL:
			return "MST is not in canonical form";
		case MST_ERR_CID_MISMATCH:
			return "MST node bytes do not match their CID";
		case MST_ERR_MISSING_NODE:
			return "MST node missing from the store";
		case MST_ERR_STORE:
			return "MST node store failed";
	}
	return "unknown MST error";
}

/* [a-zA-Z0-9_~\-:.] as 1, '/' as 2, everything else 0 */
static const uint8_t key_chars[256] = {
	['a'] = 1,['b'] = 1,['c'] = 1,['d'] = 1,['e'] = 1,['f'] = 1,['g'] = 1,['h'] = 1,
	['i'] = 1,['j'] = 1,['k'] = 1,['l'] = 1,['m'] = 1,['n'] = 1,['o'] = 1,['p'] = 1,
	['q'] = 1,['r'] = 1,['s'] = 1,['t'] = 1,['u'] = 1,['v'] = 1,['w'] = 1,['x'] = 1,
	['y'] = 1,['z'] = 1,
	['A'] = 1,['B'] = 1,['C'] = 1,['D'] = 1,['E'] = 1,['F'] = 1,['G'] = 1,['H'] = 1,
	['I'] = 1,['J'] = 1,['K'] = 1,['L'] = 1,['M'] = 1,['N'] = 1,['O'] = 1,['P'] = 1,
	['Q'] = 1,['R'] = 1,['S'] = 1,['T'] = 1,['U'] = 1,['V'] = 1,['W'] = 1,['X'] = 1,
	['Y'] = 1,['Z'] = 1,
	['0'] = 1,['1'] = 1,['2'] = 1,['3'] = 1,['4'] = 1,['5'] = 1,['6'] = 1,['7'] = 1,
	['8'] = 1,['9'] = 1,
	['_'] = 1,['~'] = 1,['-'] = 1,[':'] = 1,['.'] = 1,['/'] = 2,
};

bool
mst_valid_key(const char *key, size_t len)
{
	const char *slash;
	unsigned	bad = 0,
				slashes = 0;

	if (len == 0 || len > MST_MAX_KEY_LEN)
		return false;
	/* branch-free over the bytes; where the one slash is comes after */
	for (size_t i = 0; i < len; i++)
	{
		uint8_t		c = key_chars[(uint8_t) key[i]];

		bad |= c == 0;
		slashes += c >> 1;
	}
	if (bad || slashes != 1)
		return false;
	slash = memchr(key, '/', len);
	return slash != key && slash != key + len - 1;
}

/* Why a key is not valid, for messages (NULL when it is). */
const char *
key_problem(const char *key, size_t len)
{
	const char *slash;

	if (len == 0)
		return "it is empty";
	if (len > MST_MAX_KEY_LEN)
		return "it is longer than 1024 bytes";
	for (size_t i = 0; i < len; i++)
		if (key_chars[(uint8_t) key[i]] == 0)
			return "it has a character outside A-Z a-z 0-9 _ ~ - : . /";
	slash = memchr(key, '/', len);
	if (slash == NULL)
		return "it has no \"/\" between collection and record key";
	if (memchr(slash + 1, '/', len - (size_t) (slash + 1 - key)) != NULL)
		return "it has more than one \"/\"";
	if (slash == key)
		return "the collection before \"/\" is empty";
	if (slash == key + len - 1)
		return "the record key after \"/\" is empty";
	return NULL;
}

int
mst_key_depth(const uint8_t *key, size_t len)
{
	uint8_t		h[32];
	int			zeros = 0;

	rs_sha256(key, len, h);
	for (int i = 0; i < 32; i++)
	{
		if (h[i] == 0)
		{
			zeros += 8;
			continue;
		}
		zeros += __builtin_clz((unsigned) h[i]) - 24;
		break;
	}
	return zeros / 2;
}

size_t
mst_common_prefix(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t		n = alen < blen ? alen : blen;
	size_t		i = 0;

	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* Printable rendering of an untrusted key for messages. */
const char *
show_key(char *dst, size_t cap, const uint8_t *key, size_t len)
{
	size_t		o = 0;

	for (size_t i = 0; i < len; i++)
	{
		uint8_t		c = key[i];

		if (o + 8 >= cap)
		{
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			dst[o++] = (char) c;
		else
			o += (size_t) snprintf(dst + o, cap - o, "\\x%02x", c);
	}
	dst[o] = '\0';
	return dst;
}

const char *
show_cid(char *dst, const uint8_t cid[CID_LEN])
{
	cid_format(cid, dst);
	return dst;
}

MstError
set_msg(char *errmsg, size_t errlen, MstError code, const char *fmt,...)
{
	va_list		ap;

	if (errmsg == NULL || errlen == 0)
		return code;
	va_start(ap, fmt);
	vsnprintf(errmsg, errlen, fmt, ap);
	va_end(ap);
	return code;
}
