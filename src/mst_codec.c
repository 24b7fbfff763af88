/*
 * mst_codec.c - one MST node's bytes: strict decoding and canonical encoding
 * of DAG-CBOR {e: [{k, p, t, v}], l}.
 *
 * See mst.h for the contract, mst_int.h for the tree's shape.
 */
#include "mst_int.h"

#include <stdio.h>

void
mst_node_data_free(MstNodeData *node)
{
	for (size_t i = 0; i < node->n; i++)
		rs_free(node->entries[i].key);
	rs_free(node->entries);
	node->entries = NULL;
	node->n = 0;
}

static bool
is_field(const DcborItem *it, char name)
{
	return it->type == DCBOR_TEXT && it->len == 1 && it->ptr[0] == (uint8_t) name;
}

MstError
mst_node_decode(const uint8_t *data, size_t len, MstNodeData *out,
				char *errmsg, size_t errlen)
{
	DcborReader r;
	DcborItem	it;
	DcborError	de;
	MstError	err = MST_OK;
	uint64_t	count;
	char		kb[160],
				pb[160];
	const char *prev = NULL;
	size_t		prev_len = 0;

	memset(out, 0, sizeof(*out));
	out->layer = -1;
	dcbor_reader_init(&r, data, len);

#define READ() do { if ((de = dcbor_read(&r, &it)) != DCBOR_OK) goto cbor_error; } while (0)
#define FAIL(code, ...) do { err = set_msg(errmsg, errlen, (code), __VA_ARGS__); goto fail; } while (0)
#define FIELD(name, where) do { READ(); if (!is_field(&it, name)) \
		FAIL(MST_ERR_NODE_SHAPE, "%s: expected field \"%c\", found %s%s%s%s", where, name, \
			 dcbor_type_name(it.type), it.type == DCBOR_TEXT ? " \"" : "", \
			 it.type == DCBOR_TEXT ? SHOW(kb, it.ptr, it.len) : "", \
			 it.type == DCBOR_TEXT ? "\"" : ""); } while (0)

	READ();
	if (it.type != DCBOR_MAP)
		FAIL(MST_ERR_NODE_SHAPE, "MST node is %s, not a map", dcbor_type_name(it.type));
	if (it.uval != 2)
		FAIL(MST_ERR_NODE_SHAPE, "MST node map has %llu fields, expected exactly \"e\" and \"l\"",
			 (unsigned long long) it.uval);
	FIELD('e', "MST node");
	READ();
	if (it.type != DCBOR_ARRAY)
		FAIL(MST_ERR_NODE_SHAPE, "MST node field \"e\" is %s, not an array",
			 dcbor_type_name(it.type));
	count = it.uval;
	if (count > MST_MAX_NODE_ENTRIES)
		FAIL(MST_ERR_NODE_TOO_BIG, "MST node has %llu entries, at most %d are allowed",
			 (unsigned long long) count, MST_MAX_NODE_ENTRIES);
	out->entries = rs_alloc((size_t) count * sizeof(MstNodeEntry));
	memset(out->entries, 0, (size_t) count * sizeof(MstNodeEntry));

	for (uint64_t i = 0; i < count; i++)
	{
		MstNodeEntry *e = &out->entries[i];
		const uint8_t *suffix;
		size_t		slen;
		uint64_t	p;
		char		where[48];
		int			depth;

		snprintf(where, sizeof(where), "MST node entry %llu", (unsigned long long) i);
		READ();
		if (it.type != DCBOR_MAP)
			FAIL(MST_ERR_NODE_SHAPE, "%s is %s, not a map", where, dcbor_type_name(it.type));
		if (it.uval != 4)
			FAIL(MST_ERR_NODE_SHAPE, "%s has %llu fields, expected exactly k, p, t and v",
				 where, (unsigned long long) it.uval);
		FIELD('k', where);
		READ();
		if (it.type != DCBOR_BYTES)
			FAIL(MST_ERR_NODE_SHAPE, "%s field \"k\" is %s, not a byte string",
				 where, dcbor_type_name(it.type));
		suffix = it.ptr;
		slen = it.len;
		FIELD('p', where);
		READ();
		if (it.type != DCBOR_UINT)
			FAIL(MST_ERR_NODE_SHAPE, "%s field \"p\" is %s, not an unsigned integer",
				 where, dcbor_type_name(it.type));
		p = it.uval;
		FIELD('t', where);
		READ();
		if (it.type == DCBOR_LINK)
		{
			if (it.ptr[1] != CID_CODEC_DAG_CBOR)
				FAIL(MST_ERR_NODE_SHAPE, "%s field \"t\" is not a dag-cbor CID", where);
			e->has_right = true;
			memcpy(e->right, it.ptr, CID_LEN);
		}
		else if (it.type != DCBOR_NULL)
			FAIL(MST_ERR_NODE_SHAPE, "%s field \"t\" is %s, not a link or null",
				 where, dcbor_type_name(it.type));
		FIELD('v', where);
		READ();
		if (it.type != DCBOR_LINK)
			FAIL(MST_ERR_NODE_SHAPE, "%s field \"v\" is %s, not a link",
				 where, dcbor_type_name(it.type));
		memcpy(e->value, it.ptr, CID_LEN);

		/* rebuild the key: p bytes of the previous key, then k */
		if (p > prev_len)
			FAIL(MST_ERR_PREFIX, "%s has prefix length %llu but the previous key \"%s\" has %zu byte%s",
				 where, (unsigned long long) p, SHOW(pb, prev, prev_len), prev_len, prev_len == 1 ? "" : "s");
		if (p + slen > MST_MAX_KEY_LEN)
			FAIL(MST_ERR_KEY_SYNTAX, "%s key is %llu bytes long, at most %d are allowed",
				 where, (unsigned long long) (p + slen), MST_MAX_KEY_LEN);
		e->key = rs_alloc(p + slen + 1);
		e->key_len = p + slen;
		if (p)
			memcpy(e->key, prev, p);
		memcpy(e->key + p, suffix, slen);
		e->key[e->key_len] = '\0';
		out->n = i + 1;			/* entry i now owns its key */

		if (!mst_valid_key(e->key, e->key_len))
			FAIL(MST_ERR_KEY_SYNTAX, "invalid MST key \"%s\" in %s: %s",
				 SHOW(kb, e->key, e->key_len), where, key_problem(e->key, e->key_len));
		if (prev != NULL && key_cmp(prev, prev_len, e->key, e->key_len) >= 0)
			FAIL(MST_ERR_KEY_ORDER, "MST key \"%s\" does not sort after the previous key \"%s\"",
				 SHOW(kb, e->key, e->key_len), SHOW(pb, prev, prev_len));
		/* canonical prefix: the whole shared prefix, no less */
		if (p < prev_len && slen > 0 && suffix[0] == (uint8_t) prev[p])
		{
			size_t		shared = mst_common_prefix((const uint8_t *) prev, prev_len,
												   (const uint8_t *) e->key, e->key_len);

			FAIL(MST_ERR_PREFIX, "MST key \"%s\" has prefix length %llu but shares %zu byte%s with \"%s\"",
				 SHOW(kb, e->key, e->key_len), (unsigned long long) p,
				 shared, shared == 1 ? "" : "s", SHOW(pb, prev, prev_len));
		}
		depth = mst_key_depth((const uint8_t *) e->key, e->key_len);
		if (i == 0)
			out->layer = depth;
		else if (depth != out->layer)
			FAIL(MST_ERR_KEY_DEPTH, "MST key \"%s\" has depth %d but the node's layer is %d",
				 SHOW(kb, e->key, e->key_len), depth, out->layer);
		prev = e->key;
		prev_len = e->key_len;
	}

	FIELD('l', "MST node");
	READ();
	if (it.type == DCBOR_LINK)
	{
		if (it.ptr[1] != CID_CODEC_DAG_CBOR)
			FAIL(MST_ERR_NODE_SHAPE, "MST node field \"l\" is not a dag-cbor CID");
		out->has_left = true;
		memcpy(out->left, it.ptr, CID_LEN);
	}
	else if (it.type != DCBOR_NULL)
		FAIL(MST_ERR_NODE_SHAPE, "MST node field \"l\" is %s, not a link or null",
			 dcbor_type_name(it.type));
	if (r.pos != len)
	{
		de = DCBOR_ERR_TRAILING;
		goto cbor_error;
	}
	return MST_OK;

cbor_error:
	err = set_msg(errmsg, errlen, MST_ERR_CBOR, "MST node is not valid DAG-CBOR at byte %zu: %s",
				  r.pos, dcbor_strerror(de));
fail:
	mst_node_data_free(out);
	out->has_left = false;
	out->layer = -1;
	return err;
#undef READ
#undef FAIL
#undef FIELD
}

void
mst_node_encode(const MstNodeData *node, RsBuf *out)
{
	const char *prev = NULL;
	size_t		prev_len = 0;

	rs_buf_append_byte(out, 0xa2);
	put_field(out, 'e');
	dcbor_put_array(out, node->n);
	for (size_t i = 0; i < node->n; i++)
	{
		const MstNodeEntry *e = &node->entries[i];

		put_entry(out, prev, prev_len, e->key, e->key_len,
				  e->has_right ? e->right : NULL, e->value);
		prev = e->key;
		prev_len = e->key_len;
	}
	put_field(out, 'l');
	put_link_or_null(out, node->has_left ? node->left : NULL);
}
