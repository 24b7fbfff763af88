/*
 * cid.c - CIDv1 with sha2-256, base32 text form.
 */
#include "cid.h"

#include <string.h>

#include "sha256.h"

static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static void
cid_for_codec(uint8_t codec, const uint8_t *data, size_t len, uint8_t out[CID_LEN])
{
	out[0] = 0x01;				/* CIDv1 */
	out[1] = codec;
	out[2] = 0x12;				/* sha2-256 */
	out[3] = 0x20;				/* 32-byte digest */
	rs_sha256(data, len, out + 4);
}

void
cid_for_dagcbor(const uint8_t *data, size_t len, uint8_t out[CID_LEN])
{
	cid_for_codec(CID_CODEC_DAG_CBOR, data, len, out);
}

void
cid_for_raw(const uint8_t *data, size_t len, uint8_t out[CID_LEN])
{
	cid_for_codec(CID_CODEC_RAW, data, len, out);
}

bool
cid_valid_binary(const uint8_t *cid, size_t len)
{
	return len == CID_LEN && cid[0] == 0x01 &&
		(cid[1] == CID_CODEC_DAG_CBOR || cid[1] == CID_CODEC_RAW) &&
		cid[2] == 0x12 && cid[3] == 0x20;
}

void
cid_format(const uint8_t cid[CID_LEN], char out[CID_TEXT_LEN + 1])
{
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		o = 0;

	out[o++] = 'b';				/* multibase: base32 lower, no padding */
	for (size_t i = 0; i < CID_LEN; i++)
	{
		acc = (acc << 8) | cid[i];
		bits += 8;
		while (bits >= 5)
		{
			bits -= 5;
			out[o++] = b32_alphabet[(acc >> bits) & 31];
		}
	}
	if (bits > 0)
		out[o++] = b32_alphabet[(acc << (5 - bits)) & 31];
	out[o] = '\0';
}

bool
cid_parse(const char *text, size_t len, uint8_t out[CID_LEN])
{
	uint32_t	acc = 0;
	int			bits = 0;
	size_t		o = 0;

	if (len != CID_TEXT_LEN || text[0] != 'b')
		return false;
	for (size_t i = 1; i < len; i++)
	{
		char		c = text[i];
		int			v;

		if (c >= 'a' && c <= 'z')
			v = c - 'a';
		else if (c >= '2' && c <= '7')
			v = c - '2' + 26;
		else
			return false;
		acc = (acc << 5) | (uint32_t) v;
		bits += 5;
		if (bits >= 8)
		{
			bits -= 8;
			if (o >= CID_LEN)
				return false;
			out[o++] = (uint8_t) (acc >> bits);
		}
	}
	/* leftover bits must be zero padding, so each CID has one spelling */
	if (o != CID_LEN || (acc & ((1u << bits) - 1)) != 0)
		return false;
	return cid_valid_binary(out, CID_LEN);
}
