/*
 * fuzz_commit.c - the v3 commit decoder (commit_decode), signed and
 * unsigned.  Property: an accepted commit re-encodes to the same bytes, and
 * checking its signature never crashes.
 */
#include "commit.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t pub[COMMIT_PUBLIC_KEY_LEN] = {1, 2, 3};

	for (int signed_form = 0; signed_form < 2; signed_form++)
	{
		RepoCommit	c;
		char		msg[256];
		CommitError err = commit_decode(data, size, signed_form, &c, msg, sizeof(msg));
		RsBuf		out;

		FUZZ_CHECK(commit_strerror(err) != NULL, "strerror");
		if (err != COMMIT_OK)
			continue;
		rs_buf_init(&out, size + 16);
		if (c.has_sig)
			commit_encode_signed(&c, &out);
		else
			commit_encode_unsigned(&c, &out);
		FUZZ_CHECK(same_bytes(out.data, out.len, data, size), "commit (signed %d) re-encodes differently",
				   signed_form);
		rs_buf_free(&out);
		if (c.has_sig)
			(void) commit_verify_sig(&c, pub);
	}
	return 0;
}
