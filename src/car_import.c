/*
 * car_import.c - checking a repo CAR before it is imported.
 *
 * See car_import.h for the contract.
 */
#include "car_import.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor.h"
#include "syntax.h"

const char *
car_import_strerror(CarImportError err)
{
	switch (err)
	{
		case CI_OK:
			return "ok";
		case CI_CAR:
			return "malformed CAR";
		case CI_BLOCK_TOO_BIG:
			return "block too big";
		case CI_ROOTS:
			return "CAR does not have exactly one root";
		case CI_MISSING_BLOCK:
			return "block missing from the CAR";
		case CI_COMMIT:
			return "root is not a valid v3 commit";
		case CI_SIGNATURE:
			return "commit signature does not verify";
		case CI_MST:
			return "invalid MST";
		case CI_RECORD_CID:
			return "record CID is not dag-cbor";
		case CI_RECORD_KEY:
			return "invalid record key";
		case CI_RECORD_TOO_BIG:
			return "record too big";
		case CI_RECORD_CBOR:
			return "record is not valid DAG-CBOR";
		case CI_RECORD_NOT_MAP:
			return "record is not a map";
		case CI_IO:
			return "CAR could not be read";
		case CI_STOPPED:
			return "stopped";
	}
	return "unknown error";
}

static CarImportError
fail(CarImport *ci, CarImportError err, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));

static CarImportError
fail(CarImport *ci, CarImportError err, const char *fmt,...)
{
	va_list		ap;

	ci->err = err;
	va_start(ap, fmt);
	vsnprintf(ci->errmsg, sizeof(ci->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

static CarImportError
car_fail(CarImport *ci, CarError err, uint64_t offset)
{
	ci->car_err = err;
	return fail(ci, CI_CAR, "CAR is malformed at byte %llu: %s",
				(unsigned long long) offset, car_strerror(err));
}

static const char *
cid_str(const uint8_t cid[CID_LEN], char buf[CID_TEXT_LEN + 1])
{
	cid_format(cid, buf);
	return buf;
}

/* Printable form of an untrusted key for messages. */
static const char *
key_str(const char *key, size_t len, char *buf, size_t cap)
{
	size_t		o = 0;

	for (size_t i = 0; i < len && o + 5 < cap; i++)
	{
		unsigned char c = (unsigned char) key[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			buf[o++] = (char) c;
		else
			o += snprintf(buf + o, cap - o, "\\x%02x", c);
	}
	buf[o] = '\0';
	return buf;
}

static bool
src_read(CarImport *ci, uint64_t offset, size_t len, const uint8_t **out)
{
	if (offset > ci->src.size || len > ci->src.size - offset)
		return false;
	return ci->src.read(ci->src.ctx, offset, len, out);
}

/* Unsigned LEB128 at offset, shortest form, inside the input. */
static CarImportError
read_varint(CarImport *ci, uint64_t offset, uint64_t *value, size_t *used)
{
	size_t		avail = ci->src.size - offset < CAR_VARINT_MAX_BYTES
		? (size_t) (ci->src.size - offset) : CAR_VARINT_MAX_BYTES;
	const uint8_t *p;
	uint64_t	v = 0;

	if (avail == 0)
		return car_fail(ci, CAR_ERR_VARINT_TRUNCATED, offset);
	if (!src_read(ci, offset, avail, &p))
		return fail(ci, CI_IO, "CAR could not be read at byte %llu", (unsigned long long) offset);
	for (size_t i = 0; i < CAR_VARINT_MAX_BYTES; i++)
	{
		if (i >= avail)
			return car_fail(ci, CAR_ERR_VARINT_TRUNCATED, offset);
		v |= (uint64_t) (p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80))
		{
			if (p[i] == 0 && i > 0)
				return car_fail(ci, CAR_ERR_VARINT_NOT_MINIMAL, offset);
			*value = v;
			*used = i + 1;
			return CI_OK;
		}
	}
	return car_fail(ci, CAR_ERR_VARINT_TOO_LONG, offset);
}

static int
block_cmp(const void *a, const void *b)
{
	return memcmp(((const CarImportBlock *) a)->cid, ((const CarImportBlock *) b)->cid, CID_LEN);
}

/* The header: a copy of it through car.h's strict reader; sets ci->root. */
static CarImportError
read_header(CarImport *ci, uint64_t *pos)
{
	uint64_t	hlen;
	size_t		used;
	const uint8_t *p;
	CarImportError err;
	CarReader	r;
	uint8_t    *copy;
	CarError	cerr;

	if (ci->src.size == 0)
		return car_fail(ci, CAR_ERR_EMPTY, 0);
	if ((err = read_varint(ci, 0, &hlen, &used)) != CI_OK)
		return err;
	if (hlen > ci->src.size - used)
		return car_fail(ci, CAR_ERR_LENGTH, 0);
	if (hlen > CAR_IMPORT_MAX_HEADER)
		return fail(ci, CI_BLOCK_TOO_BIG, "CAR header is %llu bytes; at most %d are allowed",
					(unsigned long long) hlen, CAR_IMPORT_MAX_HEADER);
	if (!src_read(ci, 0, used + (size_t) hlen, &p))
		return fail(ci, CI_IO, "CAR could not be read at byte 0");
	copy = rs_alloc(used + (size_t) hlen);
	memcpy(copy, p, used + (size_t) hlen);
	cerr = car_reader_open(&r, copy, used + (size_t) hlen);
	if (cerr == CAR_OK && r.n_roots != 1)
	{
		rs_free(copy);
		return fail(ci, CI_ROOTS, "CAR header has %zu roots; a repo CAR has exactly one, its commit",
					r.n_roots);
	}
	if (cerr == CAR_OK)
		car_reader_root(&r, 0, ci->root);
	rs_free(copy);
	if (cerr != CAR_OK)
		return car_fail(ci, cerr, r.err_offset);
	*pos = used + hlen;
	return CI_OK;
}

CarImportError
car_import_open(CarImport *ci, const CarSource *src)
{
	uint64_t	pos = 0;
	size_t		cap = 1024;
	CarImportError err;
	uint64_t	next_progress = 0;
	const CarImportBlock *cb;
	const uint8_t *data;
	char		cs[CID_TEXT_LEN + 1];
	char		msg[256];
	CommitError cerr;

	CarProgressFn progress = ci->progress;
	void	   *progress_ctx = ci->progress_ctx;

	memset(ci, 0, sizeof(*ci));
	ci->progress = progress;
	ci->progress_ctx = progress_ctx;
	ci->src = *src;
	if ((err = read_header(ci, &pos)) != CI_OK)
		return err;

	ci->blocks = rs_alloc(cap * sizeof(CarImportBlock));
	while (pos < ci->src.size)
	{
		uint64_t	start = pos,
					blen;
		size_t		used;
		const uint8_t *p;
		uint8_t		digest[32];
		CarImportBlock *b;

		if (ci->progress && pos >= next_progress)
		{
			ci->progress(ci->progress_ctx, pos, ci->src.size);
			next_progress = pos + 4 * 1024 * 1024;
		}
		if ((err = read_varint(ci, pos, &blen, &used)) != CI_OK)
			return err;
		pos += used;
		if (blen > ci->src.size - pos)
			return car_fail(ci, CAR_ERR_LENGTH, start);
		if (blen < CID_LEN)
			return car_fail(ci, CAR_ERR_BLOCK_SHORT, start);
		if (blen - CID_LEN > CAR_IMPORT_MAX_BLOCK)
			return fail(ci, CI_BLOCK_TOO_BIG, "CAR block at byte %llu is %llu bytes; at most %d are allowed",
						(unsigned long long) start, (unsigned long long) (blen - CID_LEN),
						CAR_IMPORT_MAX_BLOCK);
		if (!src_read(ci, pos, (size_t) blen, &p))
			return fail(ci, CI_IO, "CAR could not be read at byte %llu", (unsigned long long) pos);
		if (!cid_valid_binary(p, CID_LEN))
			return car_fail(ci, CAR_ERR_CID, pos);
		rs_sha256(p + CID_LEN, (size_t) blen - CID_LEN, digest);
		if (memcmp(digest, p + 4, 32) != 0)
		{
			ci->car_err = CAR_ERR_HASH;
			return fail(ci, CI_CAR, "CAR block %s at byte %llu: its bytes do not hash to its CID",
						cid_str(p, cs), (unsigned long long) start);
		}
		if (ci->n_blocks == cap)
		{
			cap *= 2;
			ci->blocks = rs_realloc(ci->blocks, cap * sizeof(CarImportBlock));
		}
		b = &ci->blocks[ci->n_blocks++];
		memcpy(b->cid, p, CID_LEN);
		b->len = (uint32_t) (blen - CID_LEN);
		b->offset = pos + CID_LEN;
		pos += blen;
	}
	if (ci->progress)
		ci->progress(ci->progress_ctx, pos, ci->src.size);

	qsort(ci->blocks, ci->n_blocks, sizeof(CarImportBlock), block_cmp);
	/* a CID twice (CARv1 allows it) carries the same bytes: keep one */
	if (ci->n_blocks > 1)
	{
		size_t		w = 1;

		for (size_t i = 1; i < ci->n_blocks; i++)
			if (memcmp(ci->blocks[i].cid, ci->blocks[w - 1].cid, CID_LEN) != 0)
				ci->blocks[w++] = ci->blocks[i];
		ci->n_blocks = w;
	}

	/* the root: a signed v3 commit */
	if ((cb = car_import_find(ci, ci->root)) == NULL)
		return fail(ci, CI_MISSING_BLOCK, "the CAR's root, commit %s, is not among its blocks",
					cid_str(ci->root, cs));
	if (ci->root[1] != CID_CODEC_DAG_CBOR)
		return fail(ci, CI_COMMIT, "the CAR's root %s is not a dag-cbor CID", cid_str(ci->root, cs));
	if (!src_read(ci, cb->offset, cb->len, &data))
		return fail(ci, CI_IO, "CAR could not be read at byte %llu", (unsigned long long) cb->offset);
	ci->commit_bytes = rs_alloc(cb->len ? cb->len : 1);
	memcpy(ci->commit_bytes, data, cb->len);
	ci->commit_len = cb->len;
	cerr = commit_decode(ci->commit_bytes, ci->commit_len, true, &ci->commit, msg, sizeof(msg));
	if (cerr != COMMIT_OK)
		return fail(ci, CI_COMMIT, "root block %s is not a valid signed v3 commit: %s",
					cid_str(ci->root, cs), msg);
	memcpy(ci->did, ci->commit.did, ci->commit.did_len);
	ci->did[ci->commit.did_len] = '\0';
	memcpy(ci->rev, ci->commit.rev, ci->commit.rev_len);
	ci->rev[ci->commit.rev_len] = '\0';
	return CI_OK;
}

CarImportError
car_import_verify(CarImport *ci, const uint8_t pub[COMMIT_PUBLIC_KEY_LEN])
{
	char		cs[CID_TEXT_LEN + 1];

	if (!commit_verify_sig(&ci->commit, pub))
		return fail(ci, CI_SIGNATURE, "the signature of commit %s (repo \"%s\", rev %s) does not verify with the given key",
					cid_str(ci->root, cs), ci->did, ci->rev);
	return CI_OK;
}

const CarImportBlock *
car_import_find(const CarImport *ci, const uint8_t cid[CID_LEN])
{
	size_t		lo = 0,
				hi = ci->n_blocks;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;
		int			c = memcmp(ci->blocks[mid].cid, cid, CID_LEN);

		if (c == 0)
			return &ci->blocks[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

typedef struct WalkCtx
{
	CarImport  *ci;
	uint8_t    *reached;		/* one bit per block */
	size_t		n_reached;
} WalkCtx;

static void
mark(WalkCtx *w, const CarImportBlock *b)
{
	size_t		i = (size_t) (b - w->ci->blocks);

	if (!(w->reached[i / 8] & (1u << (i % 8))))
	{
		w->reached[i / 8] |= (uint8_t) (1u << (i % 8));
		w->n_reached++;
	}
}

static MstError
store_get(void *ctx, const uint8_t cid[CID_LEN], const uint8_t **data, size_t *len)
{
	WalkCtx    *w = ctx;
	const CarImportBlock *b = car_import_find(w->ci, cid);

	if (b == NULL)
		return MST_ERR_MISSING_NODE;
	if (!src_read(w->ci, b->offset, b->len, data))
		return MST_ERR_STORE;
	*len = b->len;
	mark(w, b);
	return MST_OK;
}

/* The checks of one record; data/len are its bytes. */
static CarImportError
check_record(CarImport *ci, const char *key, size_t klen, const uint8_t cid[CID_LEN],
			 const uint8_t *data, size_t len)
{
	char		kb[1200],
				cs[CID_TEXT_LEN + 1];
	size_t		off;
	DcborError	derr;

	if (len > CAR_IMPORT_MAX_RECORD)
		return fail(ci, CI_RECORD_TOO_BIG, "record \"%s\" (%s) is %zu bytes of DAG-CBOR; the limit is %d",
					key_str(key, klen, kb, sizeof(kb)), cid_str(cid, cs), len, CAR_IMPORT_MAX_RECORD);
	if ((derr = dcbor_validate(data, len, &off)) != DCBOR_OK)
	{
		ci->cbor_err = derr;
		return fail(ci, CI_RECORD_CBOR, "record \"%s\" (%s) is not valid DAG-CBOR at byte %zu: %s",
					key_str(key, klen, kb, sizeof(kb)), cid_str(cid, cs), off, dcbor_strerror(derr));
	}
	if ((data[0] >> 5) != 5)
		return fail(ci, CI_RECORD_NOT_MAP, "record \"%s\" (%s) is not a map",
					key_str(key, klen, kb, sizeof(kb)), cid_str(cid, cs));
	return CI_OK;
}

CarImportError
car_import_walk(CarImport *ci, const CarImportVisitor *visitor)
{
	WalkCtx		w;
	MstStore	store;
	MstIter    *it;
	MstIterItem item;
	bool		done = false;
	CarImportError err = CI_OK;
	char		kb[1200],
				cs[CID_TEXT_LEN + 1];
	const CarImportBlock *cb;

	memset(&w, 0, sizeof(w));
	w.ci = ci;
	w.reached = rs_alloc(ci->n_blocks / 8 + 1);
	memset(w.reached, 0, ci->n_blocks / 8 + 1);
	if ((cb = car_import_find(ci, ci->root)) != NULL)
		mark(&w, cb);
	store.get = store_get;
	store.ctx = &w;
	ci->n_nodes = ci->n_records = 0;
	it = mst_iter_open(&store, ci->commit.data);

	while (err == CI_OK)
	{
		MstError	merr = mst_iter_next(it, &item, &done);

		if (merr != MST_OK)
		{
			ci->mst_err = merr;
			err = fail(ci, merr == MST_ERR_MISSING_NODE ? CI_MISSING_BLOCK :
					   merr == MST_ERR_STORE ? CI_IO : CI_MST,
					   "%s (under commit %s)", mst_iter_errmsg(it), cid_str(ci->root, cs));
			break;
		}
		if (done)
			break;
		if (item.kind == MST_ITER_NODE)
		{
			ci->n_nodes++;
			if (visitor && visitor->node && !visitor->node(visitor->ctx, item.cid, item.data, item.len))
				err = fail(ci, CI_STOPPED, "stopped at MST node %s", cid_str(item.cid, cs));
		}
		else
		{
			const CarImportBlock *b;
			const uint8_t *data;
			const char *slash = memchr(item.key, '/', item.key_len);

			if (!repo_path_valid(item.key, item.key_len))
			{
				err = fail(ci, CI_RECORD_KEY, "MST key \"%s\" is not <collection NSID>/<record key>",
						   key_str(item.key, item.key_len, kb, sizeof(kb)));
				break;
			}
			if (item.cid[1] != CID_CODEC_DAG_CBOR)
			{
				err = fail(ci, CI_RECORD_CID, "record \"%s\" links to %s, which is not a dag-cbor CID",
						   key_str(item.key, item.key_len, kb, sizeof(kb)), cid_str(item.cid, cs));
				break;
			}
			if ((b = car_import_find(ci, item.cid)) == NULL)
			{
				err = fail(ci, CI_MISSING_BLOCK, "record \"%s\" (%s) is not in the CAR",
						   key_str(item.key, item.key_len, kb, sizeof(kb)), cid_str(item.cid, cs));
				break;
			}
			if (!src_read(ci, b->offset, b->len, &data))
			{
				err = fail(ci, CI_IO, "CAR could not be read at byte %llu", (unsigned long long) b->offset);
				break;
			}
			mark(&w, b);
			if ((err = check_record(ci, item.key, item.key_len, item.cid, data, b->len)) != CI_OK)
				break;
			ci->n_records++;
			if (visitor && visitor->record &&
				!visitor->record(visitor->ctx, item.key, item.key_len, (size_t) (slash - item.key),
								 item.cid, data, b->len))
				err = fail(ci, CI_STOPPED, "stopped at record \"%s\"",
						   key_str(item.key, item.key_len, kb, sizeof(kb)));
		}
	}
	mst_iter_free(it);
	ci->unreached = ci->n_blocks - w.n_reached;
	rs_free(w.reached);
	return err;
}

void
car_import_free(CarImport *ci)
{
	rs_free(ci->blocks);
	rs_free(ci->commit_bytes);
	ci->blocks = NULL;
	ci->commit_bytes = NULL;
	ci->n_blocks = 0;
}

static bool
mem_read(void *ctx, uint64_t offset, size_t len, const uint8_t **out)
{
	CarMemSource *m = ctx;

	(void) len;
	*out = m->data + offset;
	return true;
}

void
car_mem_source(CarSource *src, CarMemSource *mem, const uint8_t *data, size_t len)
{
	mem->data = data;
	src->read = mem_read;
	src->ctx = mem;
	src->size = len;
}
