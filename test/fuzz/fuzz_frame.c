/*
 * fuzz_frame.c - the frame decoder and the structural cuts the output
 * plugin uses (frame_decode, frame_check_lexicon, frame_split,
 * frame_drop_field, frame_set_seq).  Properties:
 *  - a frame that decodes splits where its header ends;
 *  - re-encoding a decoded frame with the frame encoders decodes to the
 *    same fields (whatever the encoder writes, the decoder reads);
 *  - frame_set_seq of a decodable frame decodes with the new seq;
 *  - frame_drop_field keeps two valid DAG-CBOR items.
 */
#include "cbor.h"
#include "frame.h"
#include "frame_split.h"
#include "fuzz.h"

static int
text_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (a == NULL || b == NULL)
		return a == b;
	return alen == blen && memcmp(a, b, alen) == 0;
}

static void
same_commit(const FrameCommit *a, const FrameCommit *b)
{
	FUZZ_CHECK(text_eq(a->repo, a->repo_len, b->repo, b->repo_len), "repo");
	FUZZ_CHECK(text_eq(a->rev, a->rev_len, b->rev, b->rev_len), "rev");
	FUZZ_CHECK(text_eq(a->since, a->since_len, b->since, b->since_len), "since");
	FUZZ_CHECK(memcmp(a->commit, b->commit, CID_LEN) == 0, "commit");
	FUZZ_CHECK(same_bytes(a->blocks, a->blocks_len, b->blocks, b->blocks_len), "blocks");
	FUZZ_CHECK(a->has_prev_data == b->has_prev_data &&
			   (!a->has_prev_data || memcmp(a->prev_data, b->prev_data, CID_LEN) == 0), "prevData");
	FUZZ_CHECK(text_eq(a->time, a->time_len, b->time, b->time_len), "time");
	FUZZ_CHECK(a->n_ops == b->n_ops, "ops");
	for (size_t i = 0; i < a->n_ops; i++)
	{
		const FrameOp *x = &a->ops[i],
				   *y = &b->ops[i];

		FUZZ_CHECK(x->action == y->action, "op %zu action", i);
		FUZZ_CHECK(text_eq(x->path, x->path_len, y->path, y->path_len), "op %zu path", i);
		FUZZ_CHECK(x->has_cid == y->has_cid && (!x->has_cid || memcmp(x->cid, y->cid, CID_LEN) == 0),
				   "op %zu cid", i);
		FUZZ_CHECK(x->has_prev == y->has_prev && (!x->has_prev || memcmp(x->prev, y->prev, CID_LEN) == 0),
				   "op %zu prev", i);
	}
}

/* Encode f again and decode the result: the same fields must come back. */
static void
round_trip(const Frame *f)
{
	RsBuf		out;
	Frame		g;
	char		msg[256];
	FrameError	err;

	if (f->kind == FRAME_OTHER)
		return;
	rs_buf_init(&out, f->header_len + f->body_len + 64);
	switch (f->kind)
	{
		case FRAME_COMMIT:
			frame_encode_commit(&f->commit, f->seq, &out);
			break;
		case FRAME_SYNC:
			frame_encode_sync(&f->sync, f->seq, &out);
			break;
		case FRAME_ACCOUNT:
			frame_encode_account(&f->account, f->seq, &out);
			break;
		case FRAME_INFO:
			frame_encode_info(&f->info, &out);
			break;
		case FRAME_ERROR:
			frame_encode_error(&f->error, &out);
			break;
		case FRAME_OTHER:
			break;
	}
	err = frame_decode(out.data, out.len, &g, msg, sizeof(msg));
	FUZZ_CHECK(err == FRAME_OK, "re-encoded frame does not decode: %s", msg);
	FUZZ_CHECK(g.kind == f->kind && g.has_seq == f->has_seq && g.seq == f->seq, "kind/seq");
	switch (f->kind)
	{
		case FRAME_COMMIT:
			same_commit(&f->commit, &g.commit);
			break;
		case FRAME_SYNC:
			FUZZ_CHECK(text_eq(f->sync.did, f->sync.did_len, g.sync.did, g.sync.did_len) &&
					   text_eq(f->sync.rev, f->sync.rev_len, g.sync.rev, g.sync.rev_len) &&
					   text_eq(f->sync.time, f->sync.time_len, g.sync.time, g.sync.time_len) &&
					   same_bytes(f->sync.blocks, f->sync.blocks_len, g.sync.blocks, g.sync.blocks_len),
					   "#sync fields");
			break;
		case FRAME_ACCOUNT:
			FUZZ_CHECK(text_eq(f->account.did, f->account.did_len, g.account.did, g.account.did_len) &&
					   text_eq(f->account.time, f->account.time_len, g.account.time, g.account.time_len) &&
					   f->account.active == g.account.active &&
					   text_eq(f->account.status, f->account.status_len, g.account.status, g.account.status_len),
					   "#account fields");
			break;
		case FRAME_INFO:
			FUZZ_CHECK(text_eq(f->info.name, f->info.name_len, g.info.name, g.info.name_len) &&
					   text_eq(f->info.message, f->info.message_len, g.info.message, g.info.message_len),
					   "#info fields");
			break;
		case FRAME_ERROR:
			FUZZ_CHECK(text_eq(f->error.error, f->error.error_len, g.error.error, g.error.error_len) &&
					   text_eq(f->error.message, f->error.message_len, g.error.message, g.error.message_len),
					   "error fields");
			break;
		case FRAME_OTHER:
			break;
	}
	frame_free(&g);
	rs_buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Frame		f;
	char		msg[512];
	FrameError	err = frame_decode(data, size, &f, msg, sizeof(msg));
	size_t		body_off = 0;
	FrameError	serr = frame_split(data, size, &body_off);
	RsBuf		out;
	bool		removed = false;

	FUZZ_CHECK(frame_strerror(err) != NULL && strlen(msg) < sizeof(msg), "strerror");
	if (serr == FRAME_OK)
		FUZZ_CHECK(body_off > 0 && body_off < size, "split at %zu of %zu", body_off, size);

	rs_buf_init(&out, size + 16);
	if (frame_drop_field(data, size, "blocks", &out, &removed) == FRAME_OK && err == FRAME_OK)
	{
		size_t		b2;

		FUZZ_CHECK(frame_split(out.data, out.len, &b2) == FRAME_OK, "cut frame does not split");
		FUZZ_CHECK(dcbor_validate(out.data + b2, out.len - b2, NULL) == DCBOR_OK,
				   "cut body is not valid DAG-CBOR");
		/* blocks is required in #commit and #sync, so it was there to drop */
		if (f.kind == FRAME_COMMIT || f.kind == FRAME_SYNC)
			FUZZ_CHECK(removed, "blocks not found in a decoded #commit/#sync");
	}
	rs_buf_free(&out);

	if (err != FRAME_OK)
		return 0;
	FUZZ_CHECK(serr == FRAME_OK && body_off == f.header_len, "decoded frame splits at %zu, header ends at %zu",
			   body_off, f.header_len);
	(void) frame_check_lexicon(&f, msg, sizeof(msg));
	round_trip(&f);

	if (f.has_seq && f.kind != FRAME_OTHER)
	{
		Frame		g;

		rs_buf_init(&out, size + 16);
		FUZZ_CHECK(frame_set_seq(data, size, 4242, &out) == FRAME_OK, "set_seq");
		FUZZ_CHECK(frame_decode(out.data, out.len, &g, msg, sizeof(msg)) == FRAME_OK && g.seq == 4242,
				   "re-stamped frame: %s", msg);
		frame_free(&g);
		rs_buf_free(&out);
	}
	frame_free(&f);
	return 0;
}
