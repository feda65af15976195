/* test_wire.c: the frame codec (common/wire.c) and bz_buf readers/writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "wire.h"

#define V BZ_WIRE_VERSION

/* Encode a header by hand (not with bz_frame_encode) so the decoder is
 * tested against the documented layout. */
static size_t
raw_frame(uint8_t *out, uint8_t version, uint8_t type, uint16_t flags,
    uint32_t sid, uint32_t ch, uint64_t seq, uint32_t len,
    const void *payload, size_t plen)
{
	struct bz_buf b;
	size_t n;

	bz_buf_init(&b);
	assert_int_equal(bz_buf_put_u8(&b, version), 0);
	assert_int_equal(bz_buf_put_u8(&b, type), 0);
	assert_int_equal(bz_buf_put_u16(&b, flags), 0);
	assert_int_equal(bz_buf_put_u32(&b, sid), 0);
	assert_int_equal(bz_buf_put_u32(&b, ch), 0);
	assert_int_equal(bz_buf_put_u64(&b, seq), 0);
	assert_int_equal(bz_buf_put_u32(&b, len), 0);
	assert_int_equal(bz_buf_put(&b, payload, plen), 0);
	n = bz_buf_avail(&b);
	memcpy(out, bz_buf_peek(&b), n);
	bz_buf_free(&b);
	return n;
}

static uint8_t msg[BZ_WIRE_MAX_FRAME + 64];

static void
test_header_layout(void **state)
{
	struct bz_buf b;
	static const uint8_t want[] = {
		2, 2, 0, 0, 0, 0, 0, 7, 0, 0, 0, 9,
		0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 3, 'a', 'b', 'c',
	};

	bz_buf_init(&b);
	assert_int_equal(bz_frame_encode(&b, BZ_FRAME_DATA, 0, 7, 9, 0x102,
	    "abc", 3), 0);
	assert_int_equal(bz_buf_avail(&b), sizeof(want));
	assert_memory_equal(bz_buf_peek(&b), want, sizeof(want));
	bz_buf_free(&b);
}

static void
roundtrip(uint8_t type, uint16_t flags, const void *payload, size_t len)
{
	struct bz_buf b;
	struct bz_frame f;

	bz_buf_init(&b);
	assert_int_equal(bz_frame_encode(&b, type, flags, 0xdeadbeef, 42,
	    0x0102030405060708ULL, payload, len), 0);
	assert_int_equal(bz_buf_avail(&b), BZ_WIRE_HEADER_LEN + len);
	assert_int_equal(bz_frame_decode(bz_buf_peek(&b), bz_buf_avail(&b),
	    &f), 0);
	assert_int_equal(f.version, BZ_WIRE_VERSION);
	assert_int_equal(f.type, type);
	assert_int_equal(f.flags, flags);
	assert_int_equal(f.session_id, 0xdeadbeef);
	assert_int_equal(f.channel_id, 42);
	assert_true(f.seq == 0x0102030405060708ULL);
	assert_int_equal(f.length, len);
	if (len > 0)
		assert_memory_equal(f.payload, payload, len);
	bz_buf_free(&b);
}

static void
test_valid_each_type(void **state)
{
	static const char json[] = "{\"t\":\"hello\"}";
	static const uint8_t credit[4] = { 0, 0x20, 0, 0 };
	uint8_t signed_ctl[sizeof(json) - 1 + BZ_SIG_LEN];
	struct bz_buf b;
	struct bz_frame f;
	uint32_t c;

	roundtrip(BZ_FRAME_CONTROL, 0, json, sizeof(json) - 1);
	roundtrip(BZ_FRAME_DATA, 0, "data bytes", 10);
	roundtrip(BZ_FRAME_DATA, 0, NULL, 0);
	roundtrip(BZ_FRAME_EXT_DATA, 0, "err", 3);
	roundtrip(BZ_FRAME_EOF, 0, NULL, 0);
	roundtrip(BZ_FRAME_CLOSE, 0, NULL, 0);
	roundtrip(BZ_FRAME_WINDOW, 0, credit, 4);
	memset(signed_ctl, 0xab, sizeof(signed_ctl));
	memcpy(signed_ctl, json, sizeof(json) - 1);
	roundtrip(BZ_FRAME_CONTROL, BZ_FLAG_PROXY_SIGNED, signed_ctl,
	    sizeof(signed_ctl));

	bz_buf_init(&b);
	assert_int_equal(bz_frame_encode(&b, BZ_FRAME_WINDOW, 0, 0, 1, 0,
	    credit, 4), 0);
	assert_int_equal(bz_frame_decode(bz_buf_peek(&b), bz_buf_avail(&b),
	    &f), 0);
	assert_int_equal(bz_frame_window_credit(&f, &c), 0);
	assert_int_equal(c, 0x200000);
	bz_buf_free(&b);
}

static void
test_max_payload(void **state)
{
	static uint8_t big[BZ_WIRE_MAX_PAYLOAD + 1];
	struct bz_frame f;
	struct bz_buf b;
	size_t n;

	roundtrip(BZ_FRAME_DATA, 0, big, BZ_WIRE_MAX_PAYLOAD);
	/* Encoder refuses one byte more. */
	bz_buf_init(&b);
	assert_int_equal(bz_frame_encode(&b, BZ_FRAME_DATA, 0, 0, 1, 0, big,
	    BZ_WIRE_MAX_PAYLOAD + 1), BZ_ERR_TOO_BIG);
	bz_buf_free(&b);
	/* Decoder refuses an oversized length even when bytes follow. */
	n = raw_frame(msg, V, BZ_FRAME_DATA, 0, 0, 1, 0,
	    BZ_WIRE_MAX_PAYLOAD + 1, big, BZ_WIRE_MAX_PAYLOAD + 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_TOO_BIG);
	/* ... and a huge length with no bytes. */
	n = raw_frame(msg, V, BZ_FRAME_DATA, 0, 0, 1, 0, 0xffffffffu, NULL, 0);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_TOO_BIG);
}

/* CONTROL frames carry long command lines: up to BZ_WIRE_MAX_CONTROL. */
static void
test_max_control(void **state)
{
	static uint8_t big[BZ_WIRE_MAX_CONTROL + 1];
	struct bz_frame f;
	struct bz_buf b;
	size_t n;

	memset(big, '{', sizeof(big));
	roundtrip(BZ_FRAME_CONTROL, 0, big, BZ_WIRE_MAX_CONTROL);
	bz_buf_init(&b);
	assert_int_equal(bz_frame_encode(&b, BZ_FRAME_CONTROL, 0, 0, 1, 0, big,
	    BZ_WIRE_MAX_CONTROL + 1), BZ_ERR_TOO_BIG);
	bz_buf_free(&b);
	n = raw_frame(msg, V, BZ_FRAME_CONTROL, 0, 0, 1, 0,
	    BZ_WIRE_MAX_CONTROL + 1, big, BZ_WIRE_MAX_CONTROL + 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_TOO_BIG);
	/* a DATA frame may not use the larger limit */
	n = raw_frame(msg, V, BZ_FRAME_DATA, 0, 0, 1, 0,
	    BZ_WIRE_MAX_PAYLOAD + 1, big, BZ_WIRE_MAX_PAYLOAD + 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_TOO_BIG);
	assert_int_equal(bz_frame_max_payload(BZ_FRAME_EXT_DATA),
	    BZ_WIRE_MAX_PAYLOAD);
}

static void
test_truncated(void **state)
{
	struct bz_frame f;
	size_t n, i;

	n = raw_frame(msg, V, BZ_FRAME_DATA, 0, 0, 1, 0, 5, "hello", 5);
	assert_int_equal(bz_frame_decode(msg, n, &f), 0);
	/* Every proper prefix is rejected as truncated. */
	for (i = 0; i < BZ_WIRE_HEADER_LEN; i++)
		assert_int_equal(bz_frame_decode(msg, i, &f), BZ_ERR_SHORT);
	for (i = BZ_WIRE_HEADER_LEN; i < n; i++)
		assert_int_equal(bz_frame_decode(msg, i, &f), BZ_ERR_SHORT);
	assert_int_equal(bz_frame_decode(NULL, 0, &f), BZ_ERR_SHORT);
}

static void
test_bad_version_type_flags(void **state)
{
	struct bz_frame f;
	size_t n;

	/* version 1 had no sealed data: its peers are refused */
	n = raw_frame(msg, 1, BZ_FRAME_DATA, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_VERSION);
	n = raw_frame(msg, 3, BZ_FRAME_DATA, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_VERSION);
	n = raw_frame(msg, 0, BZ_FRAME_DATA, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_VERSION);
	n = raw_frame(msg, V, 0x00, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_TYPE);
	n = raw_frame(msg, V, 0x07, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_TYPE);
	n = raw_frame(msg, V, 0xff, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_TYPE);
	/* signed and sealed are flags, never types of their own */
	n = raw_frame(msg, V, 0x41, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_TYPE);
	n = raw_frame(msg, V, 0x42, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_TYPE);
	n = raw_frame(msg, V, BZ_FRAME_DATA, 0x0010, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	/* sealed: data or EOF with at least a tag; an EOF's plaintext at
	 * most an exit status */
	n = raw_frame(msg, V, BZ_FRAME_DATA, BZ_FLAG_SEALED, 0, 1, 0, 15,
	    msg + 200, 15);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_DATA, BZ_FLAG_SEALED, 0, 1, 0, 16,
	    msg + 200, 16);
	assert_int_equal(bz_frame_decode(msg, n, &f), 0);
	n = raw_frame(msg, V, BZ_FRAME_EOF, BZ_FLAG_SEALED, 0, 1, 0, 16,
	    msg + 200, 16);
	assert_int_equal(bz_frame_decode(msg, n, &f), 0);
	n = raw_frame(msg, V, BZ_FRAME_EOF, BZ_FLAG_SEALED, 0, 1, 0, 15,
	    msg + 200, 15);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_EOF, BZ_FLAG_SEALED, 0, 1, 0,
	    BZ_SEALED_TAG + BZ_EOF_EXIT_MAX, msg + 200,
	    BZ_SEALED_TAG + BZ_EOF_EXIT_MAX);
	assert_int_equal(bz_frame_decode(msg, n, &f), 0);
	n = raw_frame(msg, V, BZ_FRAME_EOF, BZ_FLAG_SEALED, 0, 1, 0,
	    BZ_SEALED_TAG + BZ_EOF_EXIT_MAX + 1, msg + 200,
	    BZ_SEALED_TAG + BZ_EOF_EXIT_MAX + 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_EOF, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_WINDOW, BZ_FLAG_SEALED, 0, 1, 0, 20,
	    msg + 200, 20);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_CONTROL, BZ_FLAG_SEALED |
	    BZ_FLAG_CLIENT_SIGNED, 0, 1, 0, 100, msg + 200, 100);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_DATA, 0x8000, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
}

static void
test_encode_rejects(void **state)
{
	struct bz_buf b;

	bz_buf_init(&b);
	assert_int_equal(bz_frame_encode(&b, 0x42, 0, 0, 1, 0,
	    "x", 1), BZ_ERR_TYPE);
	assert_int_equal(bz_frame_encode(&b, 0x09, 0, 0, 1, 0, "x", 1),
	    BZ_ERR_TYPE);
	assert_int_equal(bz_buf_avail(&b), 0);
	bz_buf_free(&b);
}

static void
test_payload_rules(void **state)
{
	struct bz_frame f;
	uint32_t c;
	size_t n;

	/* Trailing bytes after the payload. */
	n = raw_frame(msg, V, BZ_FRAME_DATA, 0, 0, 1, 0, 2, "abc", 3);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	/* WINDOW must carry exactly 4 bytes. */
	n = raw_frame(msg, V, BZ_FRAME_WINDOW, 0, 0, 1, 0, 3, "abc", 3);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_WINDOW, 0, 0, 1, 0, 5, "abcde", 5);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_WINDOW, 0, 0, 1, 0, 0, NULL, 0);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	/* EOF and CLOSE are empty. */
	n = raw_frame(msg, V, BZ_FRAME_EOF, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_CLOSE, 0, 0, 1, 0, 1, "x", 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	/* CONTROL is never empty. */
	n = raw_frame(msg, V, BZ_FRAME_CONTROL, 0, 0, 0, 0, 0, NULL, 0);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	/* The signed flag needs a CONTROL frame long enough for a signature. */
	n = raw_frame(msg, V, BZ_FRAME_CONTROL, BZ_FLAG_PROXY_SIGNED, 0, 0, 0,
	    BZ_SIG_LEN - 1, msg + 200, BZ_SIG_LEN - 1);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_DATA, BZ_FLAG_PROXY_SIGNED, 0, 1, 0,
	    BZ_SIG_LEN, msg + 200, BZ_SIG_LEN);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	/* a signature with nothing signed, and two signers at once */
	n = raw_frame(msg, V, BZ_FRAME_CONTROL, BZ_FLAG_CLIENT_SIGNED, 0, 1, 0,
	    BZ_SIG_LEN, msg + 200, BZ_SIG_LEN);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_CONTROL, BZ_FLAG_CLIENT_SIGNED |
	    BZ_FLAG_AGENT_SIGNED, 0, 1, 0, BZ_SIG_LEN + 2, msg + 200,
	    BZ_SIG_LEN + 2);
	assert_int_equal(bz_frame_decode(msg, n, &f), BZ_ERR_FORMAT);
	n = raw_frame(msg, V, BZ_FRAME_CONTROL, BZ_FLAG_AGENT_SIGNED, 0, 1, 0,
	    BZ_SIG_LEN + 2, msg + 200, BZ_SIG_LEN + 2);
	assert_int_equal(bz_frame_decode(msg, n, &f), 0);
	/* Credit only from WINDOW frames. */
	n = raw_frame(msg, V, BZ_FRAME_DATA, 0, 0, 1, 0, 4, "abcd", 4);
	assert_int_equal(bz_frame_decode(msg, n, &f), 0);
	assert_int_equal(bz_frame_window_credit(&f, &c), BZ_ERR_INVALID);
}

static void
test_type_names(void **state)
{
	assert_string_equal(bz_frame_type_name(BZ_FRAME_CONTROL), "control");
	assert_string_equal(bz_frame_type_name(BZ_FRAME_WINDOW), "window");
	assert_string_equal(bz_frame_type_name(0x99), "unknown");
}

static void
test_buf_roundtrip(void **state)
{
	struct bz_buf b;
	uint8_t u8, raw[3];
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	const uint8_t *p;

	bz_buf_init(&b);
	assert_int_equal(bz_buf_put_u8(&b, 0xfe), 0);
	assert_int_equal(bz_buf_put_u16(&b, 0xbeef), 0);
	assert_int_equal(bz_buf_put_u32(&b, 0xcafebabe), 0);
	assert_int_equal(bz_buf_put_u64(&b, 0x0123456789abcdefULL), 0);
	assert_int_equal(bz_buf_put(&b, "xyz", 3), 0);
	assert_int_equal(bz_buf_avail(&b), 1 + 2 + 4 + 8 + 3);
	/* Big-endian on the wire. */
	assert_int_equal(bz_buf_peek(&b)[1], 0xbe);
	assert_int_equal(bz_buf_peek(&b)[2], 0xef);
	assert_int_equal(bz_buf_get_u8(&b, &u8), 0);
	assert_int_equal(u8, 0xfe);
	assert_int_equal(bz_buf_get_u16(&b, &u16), 0);
	assert_int_equal(u16, 0xbeef);
	assert_int_equal(bz_buf_get_u32(&b, &u32), 0);
	assert_int_equal(u32, 0xcafebabe);
	assert_int_equal(bz_buf_get_u64(&b, &u64), 0);
	assert_true(u64 == 0x0123456789abcdefULL);
	/* Short reads consume nothing. */
	assert_int_equal(bz_buf_get_u32(&b, &u32), BZ_ERR_SHORT);
	assert_int_equal(bz_buf_get_u64(&b, &u64), BZ_ERR_SHORT);
	assert_int_equal(bz_buf_get_ptr(&b, &p, 4), BZ_ERR_SHORT);
	assert_int_equal(bz_buf_avail(&b), 3);
	assert_int_equal(bz_buf_get(&b, raw, 3), 0);
	assert_memory_equal(raw, "xyz", 3);
	assert_int_equal(bz_buf_get_u8(&b, &u8), BZ_ERR_SHORT);
	assert_int_equal(bz_buf_skip(&b, 1), BZ_ERR_SHORT);
	bz_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(bz_buf_avail(&b), 0);
}

static void
test_buf_limits(void **state)
{
	struct bz_buf b, v;
	uint8_t x = 0;

	bz_buf_init(&b);
	assert_int_equal(bz_buf_put(&b, &x, BZ_BUF_SIZE_MAX + 1),
	    BZ_ERR_TOO_BIG);
	assert_int_equal(bz_buf_avail(&b), 0);
	bz_buf_free(&b);
	/* A view is read-only. */
	bz_buf_view(&v, "abc", 3);
	assert_int_equal(bz_buf_put_u8(&v, 1), BZ_ERR_INVALID);
	assert_int_equal(bz_buf_avail(&v), 3);
}

static void
test_buf_get_until(void **state)
{
	struct bz_buf b;
	const uint8_t *p;
	size_t n;

	bz_buf_view(&b, "ab.cde..f", 9);
	assert_int_equal(bz_buf_get_until(&b, '.', &p, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "ab", 2);
	assert_int_equal(bz_buf_get_until(&b, '.', &p, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(p, "cde", 3);
	assert_int_equal(bz_buf_get_until(&b, '.', &p, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(bz_buf_avail(&b), 1);
	/* No separator: the rest, and the buffer is then empty. */
	assert_int_equal(bz_buf_get_until(&b, '.', &p, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(p, "f", 1);
	assert_int_equal(bz_buf_avail(&b), 0);
	assert_int_equal(bz_buf_get_until(&b, '.', &p, &n), 0);
	assert_int_equal(n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_layout),
		cmocka_unit_test(test_valid_each_type),
		cmocka_unit_test(test_max_payload),
		cmocka_unit_test(test_max_control),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_version_type_flags),
		cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_payload_rules),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_buf_roundtrip),
		cmocka_unit_test(test_buf_limits),
		cmocka_unit_test(test_buf_get_until),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
