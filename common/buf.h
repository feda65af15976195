/*
 * buf.h: the one bounds-checked byte buffer through which untrusted bytes
 * (frames, JSON text, tokens) are read, after OpenSSH's sshbuf.
 *
 * A bz_buf owns a growable byte array with a read offset. Every get_* checks
 * that enough bytes remain and returns 0 or a negative BZ_ERR_* code; on error
 * nothing is consumed. Integers on the wire are big-endian.
 */
#ifndef BZ_BUF_H
#define BZ_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BZ_BUF_SIZE_MAX (16u * 1024 * 1024) /* hard cap on any one buffer */

enum bz_err {
	BZ_OK = 0,
	BZ_ERR_ALLOC = -1,        /* out of memory */
	BZ_ERR_SHORT = -2,        /* fewer bytes remain than asked for */
	BZ_ERR_TOO_BIG = -3,      /* would exceed a hard limit */
	BZ_ERR_FORMAT = -4,       /* malformed content */
	BZ_ERR_VERSION = -5,      /* unsupported protocol version */
	BZ_ERR_TYPE = -6,         /* unknown message type */
	BZ_ERR_INVALID = -7,      /* invalid argument */
};

struct bz_buf {
	uint8_t *data;
	size_t len;   /* bytes stored */
	size_t off;   /* read offset, <= len */
	size_t cap;   /* bytes allocated */
};

/* Human-readable name of a BZ_ERR_* code. */
const char *bz_err_str(int err);

/* Initialise an empty buffer (no allocation until first put). */
void bz_buf_init(struct bz_buf *b);
/* Free the storage (zeroed first: buffers may carry secrets) and re-init. */
void bz_buf_free(struct bz_buf *b);
/* Drop all content, keep the allocation. */
void bz_buf_reset(struct bz_buf *b);
/* Bytes left to read. */
size_t bz_buf_avail(const struct bz_buf *b);
/* Pointer to the unread bytes (valid until the next put or reset). */
const uint8_t *bz_buf_peek(const struct bz_buf *b);
/* Move unread bytes to the front, reclaiming consumed space. */
void bz_buf_compact(struct bz_buf *b);

/* Writers: append; return 0 or BZ_ERR_ALLOC / BZ_ERR_TOO_BIG. */
int bz_buf_put(struct bz_buf *b, const void *p, size_t n);
int bz_buf_put_u8(struct bz_buf *b, uint8_t v);
int bz_buf_put_u16(struct bz_buf *b, uint16_t v);
int bz_buf_put_u32(struct bz_buf *b, uint32_t v);
int bz_buf_put_u64(struct bz_buf *b, uint64_t v);

/* Readers: consume from the read offset; return 0 or BZ_ERR_SHORT. */
int bz_buf_get(struct bz_buf *b, void *out, size_t n);
int bz_buf_get_u8(struct bz_buf *b, uint8_t *v);
int bz_buf_get_u16(struct bz_buf *b, uint16_t *v);
int bz_buf_get_u32(struct bz_buf *b, uint32_t *v);
int bz_buf_get_u64(struct bz_buf *b, uint64_t *v);
/* Skip n bytes. */
int bz_buf_skip(struct bz_buf *b, size_t n);
/*
 * Borrow a pointer to the next n bytes and consume them (no copy). The
 * pointer is valid until the buffer is next modified.
 */
int bz_buf_get_ptr(struct bz_buf *b, const uint8_t **p, size_t n);

/*
 * Borrow the bytes up to (not including) the next byte equal to sep, and
 * consume them and the separator. If sep does not occur, borrows the rest
 * and leaves the buffer empty. Used to split tokens ("a.b.c").
 */
int bz_buf_get_until(struct bz_buf *b, uint8_t sep, const uint8_t **p,
    size_t *n);

/*
 * A read-only view over bytes owned by someone else (e.g. a websocket
 * receive buffer). Only the get_* functions may be used on a view.
 */
void bz_buf_view(struct bz_buf *b, const void *p, size_t n);

#endif
