/* wire.c: frame codec; see wire.h and docs/protocol.md. */
#include "wire.h"

const char *
bz_frame_type_name(uint8_t type)
{
	switch (type) {
	case BZ_FRAME_CONTROL: return "control";
	case BZ_FRAME_DATA: return "data";
	case BZ_FRAME_EXT_DATA: return "ext-data";
	case BZ_FRAME_EOF: return "eof";
	case BZ_FRAME_CLOSE: return "close";
	case BZ_FRAME_WINDOW: return "window";
	default: return "unknown";
	}
}

static int
type_known(uint8_t type)
{
	/* signed and sealed payloads are flags on these, not types */
	return type >= BZ_FRAME_CONTROL && type <= BZ_FRAME_WINDOW;
}

size_t
bz_frame_max_payload(uint8_t type)
{
	return type == BZ_FRAME_CONTROL ? BZ_WIRE_MAX_CONTROL :
	    BZ_WIRE_MAX_PAYLOAD;
}

int
bz_frame_decode(const uint8_t *msg, size_t len, struct bz_frame *f)
{
	struct bz_buf b;
	int r;

	bz_buf_view(&b, msg, len);
	if ((r = bz_buf_get_u8(&b, &f->version)) != 0 ||
	    (r = bz_buf_get_u8(&b, &f->type)) != 0 ||
	    (r = bz_buf_get_u16(&b, &f->flags)) != 0 ||
	    (r = bz_buf_get_u32(&b, &f->session_id)) != 0 ||
	    (r = bz_buf_get_u32(&b, &f->channel_id)) != 0 ||
	    (r = bz_buf_get_u64(&b, &f->seq)) != 0 ||
	    (r = bz_buf_get_u32(&b, &f->length)) != 0)
		return r;
	if (f->version != BZ_WIRE_VERSION)
		return BZ_ERR_VERSION;
	if (!type_known(f->type))
		return BZ_ERR_TYPE;
	if (f->flags & ~BZ_FLAG_KNOWN)
		return BZ_ERR_FORMAT;
	if (f->length > bz_frame_max_payload(f->type))
		return BZ_ERR_TOO_BIG;
	if ((r = bz_buf_get_ptr(&b, &f->payload, f->length)) != 0)
		return r;
	if (bz_buf_avail(&b) != 0)
		return BZ_ERR_FORMAT;
	if ((f->flags & BZ_FLAGS_SIGNED) &&
	    (f->type != BZ_FRAME_CONTROL || f->length <= BZ_SIG_LEN ||
	    (f->flags & (f->flags - 1)) != 0))
		return BZ_ERR_FORMAT; /* a signature needs JSON; one signer */
	if ((f->flags & BZ_FLAG_SEALED) && (f->flags != BZ_FLAG_SEALED ||
	    (f->type != BZ_FRAME_DATA && f->type != BZ_FRAME_EXT_DATA &&
	    f->type != BZ_FRAME_EOF) || f->length < BZ_SEALED_TAG))
		return BZ_ERR_FORMAT; /* sealed: data or EOF, with a tag */
	switch (f->type) {
	case BZ_FRAME_WINDOW:
		if (f->length != 4)
			return BZ_ERR_FORMAT;
		break;
	case BZ_FRAME_EOF:
		if ((f->flags & BZ_FLAG_SEALED) ? f->length > BZ_SEALED_TAG +
		    BZ_EOF_EXIT_MAX : f->length != 0)
			return BZ_ERR_FORMAT;
		break;
	case BZ_FRAME_CLOSE:
		if (f->length != 0)
			return BZ_ERR_FORMAT;
		break;
	case BZ_FRAME_CONTROL:
		if (f->length == 0)
			return BZ_ERR_FORMAT;
		break;
	}
	return BZ_OK;
}

int
bz_frame_encode(struct bz_buf *out, uint8_t type, uint16_t flags,
    uint32_t session_id, uint32_t channel_id, uint64_t seq,
    const void *payload, size_t length)
{
	int r;

	if (!type_known(type))
		return BZ_ERR_TYPE;
	if (length > bz_frame_max_payload(type))
		return BZ_ERR_TOO_BIG;
	if ((r = bz_buf_put_u8(out, BZ_WIRE_VERSION)) != 0 ||
	    (r = bz_buf_put_u8(out, type)) != 0 ||
	    (r = bz_buf_put_u16(out, flags)) != 0 ||
	    (r = bz_buf_put_u32(out, session_id)) != 0 ||
	    (r = bz_buf_put_u32(out, channel_id)) != 0 ||
	    (r = bz_buf_put_u64(out, seq)) != 0 ||
	    (r = bz_buf_put_u32(out, (uint32_t)length)) != 0 ||
	    (r = bz_buf_put(out, payload, length)) != 0)
		return r;
	return BZ_OK;
}

int
bz_frame_window_credit(const struct bz_frame *f, uint32_t *credit)
{
	struct bz_buf b;

	if (f->type != BZ_FRAME_WINDOW)
		return BZ_ERR_INVALID;
	bz_buf_view(&b, f->payload, f->length);
	return bz_buf_get_u32(&b, credit);
}
