/*
 * commit_frames_sql.c - signed commits and the frames that carry them,
 * queued until pre-commit draws their seqs.
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "car.h"
#include "commit.h"
#include "commit_int.h"
#include "keys_sql.h"
#include "spi_sql.h"
#include "syntax_sql.h"
#include "tid.h"

static QueuedFrame **queue;
static int	n_queue,
			cap_queue;
static char now_iso[FRAME_TIME_LEN + 1];

void
rs_frames_start(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		unix_us = now + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	queue = NULL;
	n_queue = cap_queue = 0;
	if (!frame_format_time(unix_us, now_iso))
		elog(ERROR, "current time does not fit a frame timestamp");
}

int
rs_frames_count(void)
{
	return n_queue;
}

QueuedFrame *
rs_frame_at(int i)
{
	return queue[i];
}

const char *
rs_frame_time(void)
{
	return now_iso;
}

void
rs_queue_frame(QueuedFrame *f)
{
	if (n_queue == cap_queue)
	{
		cap_queue = cap_queue ? cap_queue * 2 : 16;
		queue = queue ? repalloc(queue, sizeof(QueuedFrame *) * cap_queue)
			: palloc(sizeof(QueuedFrame *) * cap_queue);
	}
	queue[n_queue++] = f;
}

/* A rev greater than the previous one, normally just a fresh TID. */
static char *
next_rev(const char *prev)
{
	char	   *rev = palloc(TID_LEN + 1);

	rs_tid_next(rev);
	if (prev != NULL && strcmp(rev, prev) <= 0)
	{
		uint64		us;
		uint32		clock_id;

		/* another backend's rev is ahead of our clock: step just past it */
		if (!tid_decode(prev, strlen(prev), &us, &clock_id))
			elog(ERROR, "stored rev \"%s\" is not a TID", prev);
		if (clock_id == TID_CLOCK_ID_MAX)
		{
			us++;
			clock_id = 0;
		}
		else
			clock_id++;
		if (!tid_encode(us, clock_id, rev))
			elog(ERROR, "rev overflow after \"%s\"", prev);
	}
	return rev;
}

static char *
cid_text(const uint8 cid[CID_LEN])
{
	char	   *s = palloc(CID_TEXT_LEN + 1);

	cid_format(cid, s);
	return s;
}

/* Sign a commit over the current tree root; sets the run's head. */
void
rs_make_commit(RepoRun *run, const uint8 root[CID_LEN], uint8 commit_cid[CID_LEN], RsBuf *signed_out)
{
	RepoCommit	c = {0};
	RsBuf		unsigned_bytes;
	char	   *rev = next_rev(run->rev);

	c.did = run->repo->did;
	c.did_len = strlen(run->repo->did);
	c.rev = rev;
	c.rev_len = TID_LEN;
	memcpy(c.data, root, CID_LEN);
	rs_buf_init(&unsigned_bytes, 256);
	commit_encode_unsigned(&c, &unsigned_bytes);
	/* a commit is signed by the key the repo row names, or not at all */
	rs_keys_sign((const uint8 *) VARDATA_ANY(run->sealed), VARSIZE_ANY_EXHDR(run->sealed),
				 unsigned_bytes.data, unsigned_bytes.len, run->did_key, c.sig);
	c.has_sig = true;
	rs_buf_free(&unsigned_bytes);
	rs_buf_init(signed_out, 256);
	commit_encode_signed(&c, signed_out);
	cid_for_dagcbor(signed_out->data, signed_out->len, commit_cid);

	run->rev = rev;
	run->head_cid = cid_text(commit_cid);
	run->head_commit = rs_bytea(signed_out->data, signed_out->len);
	memcpy(run->root, root, CID_LEN);
	run->has_root = true;
}

void
rs_encode_commit_frame(const void *payload, int64 seq, RsBuf *out)
{
	frame_encode_commit(&((const QueuedFrame *) payload)->commit, seq, out);
}

static void
encode_account_frame(const void *payload, int64 seq, RsBuf *out)
{
	frame_encode_account(&((const QueuedFrame *) payload)->account, seq, out);
}

static void
encode_sync_frame(const void *payload, int64 seq, RsBuf *out)
{
	frame_encode_sync(&((const QueuedFrame *) payload)->sync, seq, out);
}

QueuedFrame *
rs_new_frame(RepoRun *run, const char *kind, void (*encode) (const void *, int64, RsBuf *))
{
	QueuedFrame *f = palloc0(sizeof(QueuedFrame));

	f->run = run;
	f->ev.did = pstrdup(run->repo->did);
	f->ev.kind = kind;
	f->ev.encode = encode;
	f->ev.payload = f;
	return f;
}

void
rs_emit_account(RepoRun *run, bool active, const char *status)
{
	QueuedFrame *f = rs_new_frame(run, "account", encode_account_frame);

	f->account.did = f->ev.did;
	f->account.did_len = strlen(f->ev.did);
	f->account.active = active;
	f->account.status = status;
	f->account.status_len = status ? strlen(status) : 0;
	f->account.time = now_iso;
	f->account.time_len = FRAME_TIME_LEN;
	rs_queue_frame(f);
}

/* A commit with no ops; as #sync after a key rotation. */
void
rs_emit_empty_commit(RepoRun *run, bool as_sync)
{
	uint8		root[CID_LEN],
				commit_cid[CID_LEN];
	RsBuf		signed_commit,
				car;
	MstCidList	removed = {0};

	bool		had_root = run->has_root;
	uint8		prev_root[CID_LEN];
	char	   *since = run->rev ? pstrdup(run->rev) : NULL;

	memcpy(prev_root, run->root, CID_LEN);
	run->chunk_seen = rs_cid_set("repo_stream chunk blocks", CID_LEN);
	rs_buf_init(&run->car, 256);
	rs_mst_check(mst_write(run->tree, rs_node_written, run, root, &removed), run, "write");
	mst_cid_list_free(&removed);
	rs_make_commit(run, root, commit_cid, &signed_commit);

	rs_buf_init(&car, run->car.len + signed_commit.len + 128);
	car_write_header(&car, commit_cid);
	car_write_block(&car, commit_cid, signed_commit.data, signed_commit.len);
	rs_buf_append(&car, run->car.data, run->car.len);

	if (as_sync)
	{
		QueuedFrame *f = rs_new_frame(run, "sync", encode_sync_frame);

		f->sync.did = f->ev.did;
		f->sync.did_len = strlen(f->ev.did);
		f->sync.rev = pstrdup(run->rev);
		f->sync.rev_len = TID_LEN;
		f->sync.blocks = rs_palloc_copy(car.data, car.len);
		f->sync.blocks_len = car.len;
		f->sync.time = now_iso;
		f->sync.time_len = FRAME_TIME_LEN;
		rs_queue_frame(f);
	}
	else
	{
		QueuedFrame *f = rs_new_frame(run, "commit", rs_encode_commit_frame);

		f->commit.repo = f->ev.did;
		f->commit.repo_len = strlen(f->ev.did);
		f->commit.rev = pstrdup(run->rev);
		f->commit.rev_len = TID_LEN;
		f->commit.time_len = FRAME_TIME_LEN;
		memcpy(f->commit.commit, commit_cid, CID_LEN);
		f->commit.blocks = rs_palloc_copy(car.data, car.len);
		f->commit.blocks_len = car.len;
		f->commit.ops = NULL;
		f->commit.n_ops = 0;
		f->commit.since = since;
		f->commit.since_len = since ? strlen(since) : 0;
		f->commit.has_prev_data = had_root;
		memcpy(f->commit.prev_data, prev_root, CID_LEN);
		f->commit.time = now_iso;
		rs_queue_frame(f);
	}
	rs_buf_free(&car);
	rs_buf_free(&run->car);
	rs_buf_free(&signed_commit);
	hash_destroy(run->chunk_seen);
	run->chunk_seen = NULL;
}

