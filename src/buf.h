/*
 * buf.h - growable byte buffer and allocator hooks shared by the pure modules.
 *
 * Pure modules (cbor, cid, tid, mst, car, keys) never call malloc directly:
 * they go through rs_alloc/rs_realloc/rs_free so the backend can route them
 * to palloc (memory-context cleanup on ERROR) while unit tests use libc.
 */
#ifndef RS_BUF_H
#define RS_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct RsAllocator
{
	void	   *(*alloc) (size_t size);
	void	   *(*realloc) (void *ptr, size_t size);
	void		(*free) (void *ptr);
} RsAllocator;

/* Defaults to libc; the backend installs palloc-based hooks in _PG_init. */
extern RsAllocator rs_allocator;

void	   *rs_alloc(size_t size);
void	   *rs_realloc(void *ptr, size_t size);
void		rs_free(void *ptr);

typedef struct RsBuf
{
	uint8_t    *data;
	size_t		len;
	size_t		cap;
} RsBuf;

void		rs_buf_init(RsBuf *buf, size_t initial_cap);
void		rs_buf_free(RsBuf *buf);
void		rs_buf_grow(RsBuf *buf, size_t extra);

/* Make room for extra more bytes; the common case stays inline. */
static inline void
rs_buf_reserve(RsBuf *buf, size_t extra)
{
	if (buf->len + extra > buf->cap)
		rs_buf_grow(buf, extra);
}
void		rs_buf_append(RsBuf *buf, const void *data, size_t len);

static inline void
rs_buf_append_byte(RsBuf *buf, uint8_t b)
{
	rs_buf_reserve(buf, 1);
	buf->data[buf->len++] = b;
}

#endif
