/* buf.c: bounds-checked byte buffer; see buf.h. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

const char *
bz_err_str(int err)
{
	switch (err) {
	case BZ_OK: return "success";
	case BZ_ERR_ALLOC: return "out of memory";
	case BZ_ERR_SHORT: return "message truncated";
	case BZ_ERR_TOO_BIG: return "message too large";
	case BZ_ERR_FORMAT: return "malformed message";
	case BZ_ERR_VERSION: return "unsupported protocol version";
	case BZ_ERR_TYPE: return "unknown message type";
	case BZ_ERR_INVALID: return "invalid argument";
	default: return "unknown error";
	}
}

void
bz_buf_init(struct bz_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
bz_buf_free(struct bz_buf *b)
{
	if (b->cap > 0) {
		sodium_memzero(b->data, b->cap);
		free(b->data);
	}
	bz_buf_init(b);
}

void
bz_buf_reset(struct bz_buf *b)
{
	b->len = b->off = 0;
}

size_t
bz_buf_avail(const struct bz_buf *b)
{
	return b->len - b->off;
}

const uint8_t *
bz_buf_peek(const struct bz_buf *b)
{
	/* NULL + 0 is undefined behaviour: an empty buffer has no pointer. */
	return b->data != NULL ? b->data + b->off : NULL;
}

void
bz_buf_compact(struct bz_buf *b)
{
	if (b->cap == 0 || b->off == 0)
		return;
	memmove(b->data, b->data + b->off, b->len - b->off);
	b->len -= b->off;
	b->off = 0;
}

static int
reserve(struct bz_buf *b, size_t n)
{
	size_t need, ncap;
	uint8_t *p;

	if (b->cap == 0 && b->len > 0)
		return BZ_ERR_INVALID; /* a view is read-only */
	if (n > BZ_BUF_SIZE_MAX || b->len > BZ_BUF_SIZE_MAX - n)
		return BZ_ERR_TOO_BIG;
	need = b->len + n;
	if (need <= b->cap)
		return BZ_OK;
	if (b->off > 0 && need - b->off <= b->cap) {
		bz_buf_compact(b);
		return BZ_OK;
	}
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap *= 2;
	if (ncap > BZ_BUF_SIZE_MAX)
		ncap = BZ_BUF_SIZE_MAX;
	if ((p = realloc(b->data, ncap)) == NULL)
		return BZ_ERR_ALLOC;
	b->data = p;
	b->cap = ncap;
	return BZ_OK;
}

int
bz_buf_put(struct bz_buf *b, const void *p, size_t n)
{
	int r;

	if (n == 0)
		return BZ_OK;
	if ((r = reserve(b, n)) != 0)
		return r;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return BZ_OK;
}

int
bz_buf_put_u8(struct bz_buf *b, uint8_t v)
{
	return bz_buf_put(b, &v, 1);
}

int
bz_buf_put_u16(struct bz_buf *b, uint16_t v)
{
	uint8_t x[2] = { v >> 8, v };
	return bz_buf_put(b, x, sizeof(x));
}

int
bz_buf_put_u32(struct bz_buf *b, uint32_t v)
{
	uint8_t x[4] = { v >> 24, v >> 16, v >> 8, v };
	return bz_buf_put(b, x, sizeof(x));
}

int
bz_buf_put_u64(struct bz_buf *b, uint64_t v)
{
	int r;

	if ((r = bz_buf_put_u32(b, (uint32_t)(v >> 32))) != 0)
		return r;
	return bz_buf_put_u32(b, (uint32_t)v);
}

int
bz_buf_get_ptr(struct bz_buf *b, const uint8_t **p, size_t n)
{
	if (n > bz_buf_avail(b))
		return BZ_ERR_SHORT;
	*p = bz_buf_peek(b);
	b->off += n;
	return BZ_OK;
}

int
bz_buf_get(struct bz_buf *b, void *out, size_t n)
{
	const uint8_t *p;
	int r;

	if ((r = bz_buf_get_ptr(b, &p, n)) != 0)
		return r;
	if (n > 0)
		memcpy(out, p, n);
	return BZ_OK;
}

int
bz_buf_skip(struct bz_buf *b, size_t n)
{
	const uint8_t *p;
	return bz_buf_get_ptr(b, &p, n);
}

int
bz_buf_get_u8(struct bz_buf *b, uint8_t *v)
{
	return bz_buf_get(b, v, 1);
}

int
bz_buf_get_u16(struct bz_buf *b, uint16_t *v)
{
	uint8_t x[2];
	int r;

	if ((r = bz_buf_get(b, x, sizeof(x))) != 0)
		return r;
	*v = (uint16_t)((x[0] << 8) | x[1]);
	return BZ_OK;
}

int
bz_buf_get_u32(struct bz_buf *b, uint32_t *v)
{
	uint8_t x[4];
	int r;

	if ((r = bz_buf_get(b, x, sizeof(x))) != 0)
		return r;
	*v = ((uint32_t)x[0] << 24) | ((uint32_t)x[1] << 16) |
	    ((uint32_t)x[2] << 8) | x[3];
	return BZ_OK;
}

int
bz_buf_get_u64(struct bz_buf *b, uint64_t *v)
{
	uint32_t hi, lo;
	int r;

	if (bz_buf_avail(b) < 8)
		return BZ_ERR_SHORT;
	if ((r = bz_buf_get_u32(b, &hi)) != 0 ||
	    (r = bz_buf_get_u32(b, &lo)) != 0)
		return r;
	*v = ((uint64_t)hi << 32) | lo;
	return BZ_OK;
}

int
bz_buf_get_until(struct bz_buf *b, uint8_t sep, const uint8_t **p, size_t *n)
{
	const uint8_t *start = bz_buf_peek(b);
	size_t avail = bz_buf_avail(b), i;

	for (i = 0; i < avail && start[i] != sep; i++)
		;
	*p = start;
	*n = i;
	b->off += i < avail ? i + 1 : i;
	return BZ_OK;
}

void
bz_buf_view(struct bz_buf *b, const void *p, size_t n)
{
	b->data = (uint8_t *)(uintptr_t)p;
	b->len = n;
	b->off = 0;
	b->cap = 0;
}
