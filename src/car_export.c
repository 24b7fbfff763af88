/*
 * car_export.c - a repo as one CARv1 stream in bounded chunks.
 *
 * See car_export.h for the contract.
 */
#include "car_export.h"

#include <stdio.h>
#include <string.h>

#include "car.h"

struct CarExport
{
	CarExportSource src;
	MstIter    *iter;
	RsBuf		pending;		/* produced, not yet handed out */
	size_t		pending_off;	/* handed out from pending already */
	bool		walk_done;
	CarExportStats stats;
	MstError	broken;
	char		errmsg[512];
};

CarExport *
car_export_begin(const CarExportSource *src, const uint8_t commit_cid[CID_LEN],
				 const uint8_t *commit, size_t commit_len,
				 const uint8_t data_root[CID_LEN])
{
	CarExport  *ex = rs_alloc(sizeof(CarExport));

	memset(ex, 0, sizeof(*ex));
	ex->src = *src;
	ex->iter = mst_iter_open(&src->nodes, data_root);
	rs_buf_init(&ex->pending, 64 * 1024);
	car_write_header(&ex->pending, commit_cid);
	car_write_block(&ex->pending, commit_cid, commit, commit_len);
	return ex;
}

void
car_export_free(CarExport *ex)
{
	if (ex == NULL)
		return;
	mst_iter_free(ex->iter);
	rs_buf_free(&ex->pending);
	rs_free(ex);
}

const char *
car_export_errmsg(const CarExport *ex)
{
	return ex->errmsg;
}

void
car_export_stats(const CarExport *ex, CarExportStats *stats)
{
	*stats = ex->stats;
}

/* One more block (or none, at the end of the walk) into pending. */
static MstError
produce(CarExport *ex)
{
	MstIterItem item;
	bool		done;
	MstError	err;

	for (;;)
	{
		if ((err = mst_iter_next(ex->iter, &item, &done)) != MST_OK)
		{
			snprintf(ex->errmsg, sizeof(ex->errmsg), "%s", mst_iter_errmsg(ex->iter));
			return err;
		}
		if (done)
		{
			ex->walk_done = true;
			return MST_OK;
		}
		if (item.kind == MST_ITER_NODE)
		{
			if (ex->src.include_node && !ex->src.include_node(ex->src.ctx, item.cid))
			{
				mst_iter_skip(ex->iter);
				continue;
			}
			car_write_block(&ex->pending, item.cid, item.data, item.len);
			ex->stats.nodes++;
			return MST_OK;
		}
		else
		{
			const uint8_t *data = NULL;
			size_t		len = 0;
			bool		skip = false;

			err = ex->src.record(ex->src.ctx, item.key, item.key_len, item.cid, &data, &len, &skip);
			if (err != MST_OK)
			{
				snprintf(ex->errmsg, sizeof(ex->errmsg), "record \"%s\" could not be read",
						 item.key);
				return err;
			}
			if (skip)
			{
				ex->stats.skipped_records++;
				continue;
			}
			car_write_block(&ex->pending, item.cid, data, len);
			ex->stats.records++;
			return MST_OK;
		}
	}
}

MstError
car_export_next(CarExport *ex, RsBuf *out, size_t max, bool *done)
{
	size_t		avail,
				take;

	*done = false;
	if (ex->broken != MST_OK)
		return ex->broken;
	while (!ex->walk_done && ex->pending.len - ex->pending_off < max)
	{
		MstError	err;

		/* drop what was handed out before the buffer grows again */
		if (ex->pending_off > 0)
		{
			memmove(ex->pending.data, ex->pending.data + ex->pending_off,
					ex->pending.len - ex->pending_off);
			ex->pending.len -= ex->pending_off;
			ex->pending_off = 0;
		}
		if ((err = produce(ex)) != MST_OK)
		{
			ex->broken = err;
			return err;
		}
	}
	avail = ex->pending.len - ex->pending_off;
	take = avail < max ? avail : max;
	rs_buf_append(out, ex->pending.data + ex->pending_off, take);
	ex->pending_off += take;
	ex->stats.bytes += take;
	if (ex->walk_done && ex->pending_off == ex->pending.len)
		*done = true;
	return MST_OK;
}
