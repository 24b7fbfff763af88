/*
 * buf.c - growable byte buffer over a pluggable allocator.
 */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

RsAllocator rs_allocator = {malloc, realloc, free};

void *
rs_alloc(size_t size)
{
	void	   *p = rs_allocator.alloc(size ? size : 1);

	if (p == NULL)
		abort();				/* libc hooks only; palloc raises ERROR itself */
	return p;
}

void *
rs_realloc(void *ptr, size_t size)
{
	void	   *p;

	if (ptr == NULL)
		return rs_alloc(size);
	p = rs_allocator.realloc(ptr, size ? size : 1);
	if (p == NULL)
		abort();
	return p;
}

void
rs_free(void *ptr)
{
	if (ptr != NULL)
		rs_allocator.free(ptr);
}

void
rs_buf_init(RsBuf *buf, size_t initial_cap)
{
	buf->cap = initial_cap ? initial_cap : 64;
	buf->len = 0;
	buf->data = rs_alloc(buf->cap);
}

void
rs_buf_free(RsBuf *buf)
{
	rs_free(buf->data);
	buf->data = NULL;
	buf->len = buf->cap = 0;
}

void
rs_buf_grow(RsBuf *buf, size_t extra)
{
	size_t		need = buf->len + extra;
	size_t		cap;

	if (need <= buf->cap)
		return;
	cap = buf->cap ? buf->cap : 64;
	while (cap < need)
		cap *= 2;
	buf->data = rs_realloc(buf->data, cap);
	buf->cap = cap;
}

void
rs_buf_append(RsBuf *buf, const void *data, size_t len)
{
	if (len == 0)
		return;
	rs_buf_reserve(buf, len);
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
}
