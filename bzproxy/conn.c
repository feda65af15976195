/*
 * conn.c: what every websocket shares: a write queue of whole frames, each
 * with LWS_PRE headroom so lws can put its header in front without a copy
 * (written in WRITEABLE callbacks, a few while the socket takes them),
 * backpressure between a source and a destination, and closing after the
 * queue has been flushed.
 */
#include "bzproxy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libwebsockets.h>
#include <sodium.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define CLOSE_GRACE_S 5  /* time to flush the queue before a forced close */
#define SID_OFFSET 4     /* session_id in the wire header (wire.h) */
#define WRITE_BURST (256u * 1024) /* bytes written per WRITEABLE callback */
#define CLOSE_REASON_MAX 120 /* a close frame's reason: at most 123 bytes */

struct bzp_out *
bzp_out_new(size_t len)
{
	struct bzp_out *o;

	if ((o = malloc(sizeof(*o) + LWS_PRE + len)) == NULL)
		return NULL;
	o->next = NULL;
	o->len = len;
	return o;
}

static int write_one(struct bzp_conn *c);

/*
 * Queue o. A lone frame on a logged-in link (a keystroke, its echo) is
 * written at once if the socket takes it (lws_send_pipe_choked: nothing
 * of lws's pending, and poll() says POLLOUT): waiting for the WRITEABLE
 * callback cost each hop a trip round the event loop (two epoll changes
 * and a wait) per keystroke. Anything else waits its turn there.
 */
static void
enqueue(struct bzp_conn *c, struct bzp_out *o)
{
	int lone = c->q_head == NULL;

	if (c->q_tail != NULL)
		c->q_tail->next = o;
	else
		c->q_head = o;
	c->q_tail = o;
	c->q_bytes += o->len;
	if (lone && !c->preauth && !c->closing && !c->write_failed &&
	    c->ping_state != BZP_PING_DUE && !lws_send_pipe_choked(c->wsi) &&
	    write_one(c) != 0)
		c->write_failed = 1; /* the WRITEABLE callback closes it */
	if (c->q_head != NULL || c->write_failed)
		lws_callback_on_writable(c->wsi);
}

int
bzp_conn_send(struct bzp_conn *c, uint8_t type, uint16_t flags,
    uint32_t session_id, uint32_t channel, const void *payload, size_t len)
{
	struct bzp_out *o;
	struct bz_buf b;
	int r;

	if (c->closing)
		return BZ_ERR_INVALID;
	bz_buf_init(&b);
	if ((r = bz_frame_encode(&b, type, flags, session_id, channel, c->seq,
	    payload, len)) != 0) {
		bz_buf_free(&b);
		return r;
	}
	if ((o = bzp_out_new(b.len)) == NULL) {
		bz_buf_free(&b);
		return BZ_ERR_ALLOC;
	}
	memcpy(o->buf + LWS_PRE, b.data, b.len);
	bz_buf_free(&b); /* zeroes: control frames may carry tokens */
	c->seq++;
	enqueue(c, o);
	return BZ_OK;
}

int
bzp_conn_send_json(struct bzp_conn *c, uint32_t session_id,
    uint32_t channel, const json_t *obj)
{
	char *s;
	int r;

	if ((s = bz_json_dump(obj)) == NULL)
		return BZ_ERR_ALLOC;
	r = bzp_conn_send(c, BZ_FRAME_CONTROL, 0, session_id, channel, s,
	    strlen(s));
	sodium_memzero(s, strlen(s)); /* login_ok carries the session */
	free(s);
	return r;
}

void
bzp_conn_fail(struct bzp_conn *c, const char *reason)
{
	/* while stopping, every refusal is "come back later": bzsshd tries
	 * again rather than report a denial */
	json_t *o = json_pack("{s:s, s:s, s:b}", "t", "error", "reason",
	    reason, "retry", c->srv->stop != 0);

	if (o != NULL)
		(void)bzp_conn_send_json(c, 0, 0, o);
	json_decref(o);
	bzp_conn_close(c, "%s", reason);
	c->peer_closes = 1;
}

int
bzp_conn_relay(struct bzp_conn *dst, struct bzp_out **msg,
    uint32_t session_id)
{
	struct bzp_out *o = *msg;
	uint8_t *h;

	*msg = NULL;
	if (dst->closing) {
		free(o);
		return BZ_ERR_INVALID;
	}
	h = o->buf + LWS_PRE + SID_OFFSET;
	h[0] = (uint8_t)(session_id >> 24);
	h[1] = (uint8_t)(session_id >> 16);
	h[2] = (uint8_t)(session_id >> 8);
	h[3] = (uint8_t)session_id;
	o->next = NULL;
	enqueue(dst, o);
	return BZ_OK;
}

void
bzp_conn_close(struct bzp_conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->closing)
		return;
	c->closing = 1;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	bz_info("%s: closing: %s", c->peer, c->why);
	/* What is queued still goes out. What arrives is read and dropped
	 * (on_receive): a socket closed with unread bytes resets the
	 * connection, and the peer's kernel then drops what it had not yet
	 * handed to the peer: our last frames. */
	lws_rx_flow_control(c->wsi, 1);
	free(c->rx);
	c->rx = NULL;
	c->rx_len = c->rx_cap = 0;
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_GRACE_S);
	lws_callback_on_writable(c->wsi);
}

void
bzp_conn_start_auth_timer(struct bzp_conn *c)
{
	/* an unauthenticated link must not sit on a slot forever, nor hold
	 * one without saying anything (server.c, on_first_deadline) */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, BZP_AUTH_TIMEOUT_S);
	lws_set_timer_usecs(c->wsi,
	    (lws_usec_t)BZP_FIRST_MESSAGE_S * LWS_US_PER_SEC);
}

void
bzp_conn_authenticated(struct bzp_conn *c)
{
	bzp_preauth_remove(c->srv, c);
	lws_set_timer_usecs(c->wsi, LWS_SET_TIMER_USEC_CANCEL);
	if (!c->closing)
		lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
}

void
bzp_conn_hold(struct bzp_conn *src, struct bzp_conn *dst, int *held)
{
	if (*held || dst->q_bytes <= BZP_QUEUE_HIGH || src->closing)
		return;
	*held = 1;
	if (src->pause_refs++ == 0) {
		bz_debug("%s: paused (%s has %zu bytes queued)", src->peer,
		    dst->peer, dst->q_bytes);
		lws_rx_flow_control(src->wsi, 0);
	}
}

void
bzp_conn_release(struct bzp_conn *src, int *held)
{
	if (!*held)
		return;
	*held = 0;
	if (--src->pause_refs == 0 && !src->closing) {
		bz_debug("%s: resumed", src->peer);
		lws_rx_flow_control(src->wsi, 1);
	}
}

/* Write one frame; -1 when the connection is broken. */
static int
write_one(struct bzp_conn *c)
{
	struct bzp_out *o = c->q_head;
	size_t before = c->q_bytes;
	int w;

	c->q_head = o->next;
	if (c->q_head == NULL)
		c->q_tail = NULL;
	c->q_bytes -= o->len;
	/* lws keeps what the socket did not take and writes it first. */
	w = lws_write(c->wsi, o->buf + LWS_PRE, o->len, LWS_WRITE_BINARY);
	free(o);
	if (w < 0) {
		bz_info("%s: write failed", c->peer);
		return -1;
	}
	if (before >= BZP_QUEUE_LOW && c->q_bytes < BZP_QUEUE_LOW) {
		if (c->client != NULL)
			bzp_client_drained(c->client);
		else if (c->agent != NULL)
			bzp_agent_drained(c->agent);
	}
	return 0;
}

/*
 * Close with our reason in the close frame. Not by returning -1 from the
 * callback: Debian's lws 4.1.6 is built with _DEBUG, and on libuv its
 * service loop then closes the wsi a second time ("uv repeat test"),
 * which cuts the polite close before its frame is written. A synchronous
 * close here only starts the polite close (lws writes the frame on the
 * next POLLOUT and waits for the peer's answer), so the wsi lives on.
 */
static int
close_with_reason(struct bzp_conn *c)
{
	size_t n = strlen(c->why);

	if (n > CLOSE_REASON_MAX)
		n = CLOSE_REASON_MAX;
	lws_close_reason(c->wsi, LWS_CLOSE_STATUS_NORMAL,
	    (unsigned char *)c->why, n);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
	return 0;
}

int
bzp_conn_writeable(struct bzp_conn *c)
{
	size_t burst = 0;
	int r;

	if (c->write_failed)
		return -1;
	if ((r = bzp_keepalive_write(c)) != 0) {
		if (r < 0)
			return -1;
		lws_callback_on_writable(c->wsi); /* the queue, next time */
		return 0;
	}
	/*
	 * Several frames per callback while the socket takes them: each
	 * return to the event loop costs a poll over every connection.
	 */
	while (c->q_head != NULL) {
		burst += c->q_head->len;
		if (write_one(c) != 0)
			return -1;
		if (burst >= WRITE_BURST || lws_send_pipe_choked(c->wsi))
			break;
	}
	if (c->q_head != NULL || (c->closing &&
	    lws_send_pipe_choked(c->wsi)))
		/* more to write, or lws still holds the end of the last
		 * frame: closing now would cut it */
		lws_callback_on_writable(c->wsi);
	else if (c->closing && !c->peer_closes)
		return close_with_reason(c);
	return 0;
}

void
bzp_conn_free(struct bzp_conn *c)
{
	struct bzp_out *o;

	if (c == NULL)
		return;
	while ((o = c->q_head) != NULL) {
		c->q_head = o->next;
		free(o);
	}
	free(c->rx);
	free(c);
}
