/*
 * fuzz_mst.c - the MST node decoder (mst_node_decode).  Property: a node
 * it accepts is canonical, so mst_node_encode gives the same bytes back.
 */
#include "mst.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MstNodeData node;
	char		msg[256];
	MstError	err = mst_node_decode(data, size, &node, msg, sizeof(msg));
	RsBuf		out;

	FUZZ_CHECK(mst_strerror(err) != NULL, "strerror");
	if (err != MST_OK)
		return 0;
	for (size_t i = 0; i < node.n; i++)
		FUZZ_CHECK(mst_valid_key(node.entries[i].key, node.entries[i].key_len), "key %zu", i);
	rs_buf_init(&out, size + 16);
	mst_node_encode(&node, &out);
	FUZZ_CHECK(same_bytes(out.data, out.len, data, size), "node re-encodes to %zu bytes, not %zu",
			   out.len, size);
	rs_buf_free(&out);
	mst_node_data_free(&node);
	return 0;
}
