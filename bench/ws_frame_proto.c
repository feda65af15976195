/*
 * ws_frame_proto.c: a prototype measure for docs/performance.md, not part
 * of the build. How many CPU seconds per GiB the websocket framing itself
 * costs a client with wslay (Debian's libwslay-dev), as against what perf
 * charges lws 4.1.6's client for the same work in bzsshd and bzagent:
 *  - receive: unmasked binary frames the size bzproxy sends (a whole
 *    BZ_WIRE_MAX_DATA_FRAME), handed to the parser 16 KiB at a time (one
 *    TLS record per SSL_read), payload copied out once as ws_link.c does;
 *  - send: the same frames masked, as a client must, by wslay's masking
 *    loop, and by a word-at-a-time one of our own for comparison.
 * No TLS, no socket: only the framing.
 *
 *   cc -O2 -o ws_frame_proto bench/ws_frame_proto.c -lwslay && ./ws_frame_proto
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wslay/wslay.h>

#define FRAME (24 + 64 * 1024)  /* BZ_WIRE_MAX_DATA_FRAME */
#define NFRAMES 64              /* a 4 MiB ring of encoded frames */
#define GIB (1024.0 * 1024 * 1024)
#define REC (16 * 1024)         /* bytes per SSL_read / SSL_write */

struct src {
	const uint8_t *buf;
	size_t len, off;
	uint64_t total;
};

static double
cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static ssize_t
recv_cb(uint8_t *buf, size_t len, int flags, void *ud)
{
	struct src *s = ud;
	size_t n = len < REC ? len : REC;

	(void)flags;
	if (n > s->len - s->off)
		n = s->len - s->off;
	memcpy(buf, s->buf + s->off, n);
	s->off += n;
	if (s->off == s->len)
		s->off = 0;
	s->total += n;
	return (ssize_t)n;
}

static uint8_t sink[REC];

static ssize_t
send_cb(const uint8_t *data, size_t len, int flags, void *ud)
{
	size_t n = len < REC ? len : REC;

	(void)flags;
	(void)ud;
	memcpy(sink, data, n); /* as into OpenSSL's record buffer */
	return (ssize_t)n;
}

static int
mask_cb(uint8_t *buf, size_t len, void *ud)
{
	(void)ud;
	memset(buf, 0x5a, len);
	return 0;
}

/* A server's frame header for FRAME bytes: FIN, binary, 64-bit length. */
static size_t
header(uint8_t *h)
{
	size_t i;

	h[0] = 0x82;
	h[1] = 127;
	for (i = 0; i < 8; i++)
		h[2 + i] = (uint8_t)((uint64_t)FRAME >> (56 - 8 * i));
	return 10;
}

static void
mask_words(uint8_t *p, size_t n, const uint8_t key[4])
{
	uint64_t k, w;
	size_t i = 0;

	memcpy(&k, key, 4);
	memcpy((uint8_t *)&k + 4, key, 4);
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		w ^= k;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= key[i & 3];
}

int
main(void)
{
	struct wslay_frame_callbacks cb = { send_cb, recv_cb, mask_cb };
	struct wslay_frame_iocb io;
	wslay_frame_context_ptr ctx;
	struct src s = { NULL, 0, 0, 0 };
	uint8_t *ring, *msg, *payload, key[4] = { 1, 2, 3, 4 };
	size_t i, off, one = 10 + FRAME, got = 0;
	uint64_t bytes = 0, target = 2ull << 30;
	double t0, t;
	ssize_t r;

	ring = malloc(one * NFRAMES);
	msg = malloc(FRAME);
	payload = malloc(FRAME);
	if (ring == NULL || msg == NULL || payload == NULL)
		return 1;
	srand(1);
	for (i = 0; i < NFRAMES; i++) {
		size_t j;

		header(ring + i * one);
		for (j = 0; j < FRAME; j++)
			ring[i * one + 10 + j] = (uint8_t)rand();
	}
	for (i = 0; i < FRAME; i++)
		payload[i] = (uint8_t)rand();
	s.buf = ring;
	s.len = one * NFRAMES;
	if (wslay_frame_context_init(&ctx, &cb, &s) != 0)
		return 1;

	/* receive */
	t0 = cpu_s();
	while (bytes < target) {
		memset(&io, 0, sizeof(io));
		r = wslay_frame_recv(ctx, &io);
		if (r < 0) {
			fprintf(stderr, "recv: %zd\n", r);
			return 1;
		}
		memcpy(msg + got, io.data, (size_t)r);
		got += (size_t)r;
		if (got == FRAME)
			got = 0;
		bytes += (uint64_t)r;
	}
	t = cpu_s() - t0;
	printf("wslay receive (16 KiB pieces, copied out): %.3f CPU s/GiB\n",
	    t * GIB / (double)bytes);

	/* send, wslay masking */
	bytes = 0;
	t0 = cpu_s();
	while (bytes < target) {
		memset(&io, 0, sizeof(io));
		io.fin = 1;
		io.opcode = WSLAY_BINARY_FRAME;
		io.mask = 1;
		io.payload_length = FRAME;
		for (off = 0; off < FRAME;) {
			io.data = payload + off;
			io.data_length = FRAME - off;
			r = wslay_frame_send(ctx, &io);
			if (r < 0) {
				fprintf(stderr, "send: %zd\n", r);
				return 1;
			}
			off += (size_t)r;
		}
		bytes += FRAME;
	}
	t = cpu_s() - t0;
	printf("wslay send, masked (16 KiB writes): %.3f CPU s/GiB\n",
	    t * GIB / (double)bytes);

	/* our own word-wise masking of the same bytes, plus the copy */
	bytes = 0;
	t0 = cpu_s();
	while (bytes < target) {
		memcpy(msg, payload, FRAME);
		mask_words(msg, FRAME, key);
		bytes += FRAME;
	}
	t = cpu_s() - t0;
	printf("copy + 8-byte-word masking: %.3f CPU s/GiB (check %u)\n",
	    t * GIB / (double)bytes, msg[FRAME / 2]);
	wslay_frame_context_free(ctx);
	free(ring);
	free(msg);
	free(payload);
	return 0;
}
