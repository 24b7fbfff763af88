/*
 * fuzz_verify.c - frame verification end to end (frame_decode,
 * frame_check_lexicon, frame_verify): the CAR, the commit block, the
 * record blocks and the sync 1.1 inversion of the ops over the MST nodes
 * in blocks.  The key is the one that signed the seed frames
 * (test/fixtures/frames), so mutations of them reach every step.
 * Property: no crash, no leak, and a result with a message.
 */
#include "frame.h"
#include "keys.h"
#include "verify.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char did_key[] = "did:key:z6MkuoKgo7fLusrzHKPgn7WKFauxQJjRhzsXkUWndXECW2gX";
	uint8_t		pub[ED25519_PUBLIC_KEY_LEN];
	Frame		f;
	char		msg[1024];
	VerifyResult r;

	FUZZ_CHECK(did_key_parse_ed25519(did_key, strlen(did_key), pub, NULL), "key");
	if (frame_decode(data, size, &f, msg, sizeof(msg)) != FRAME_OK)
		return 0;
	(void) frame_check_lexicon(&f, msg, sizeof(msg));
	r = frame_verify(&f, pub, msg, sizeof(msg));
	FUZZ_CHECK(verify_strerror(r) != NULL, "strerror");
	FUZZ_CHECK(r == VERIFY_OK || msg[0] != '\0' || r == VERIFY_BAD_KIND, "result %d without a message", r);
	frame_free(&f);
	return 0;
}
