/*
 * ws_link.c: the one wss connection to bzproxy, run by its own thread
 * (or, once open, by its owner's loop: ws_link_served.c).
 *
 * The thread owns the socket (ws_conn.c opens it: TCP, TLS, upgrade) and
 * runs a poll() loop; other threads talk to it through two locked queues:
 * out (frames ready to write: websocket header and masking done by the
 * sender, see bz_link_send_frame) and in (whole websocket messages,
 * reassembled here). A write to an eventfd wakes this thread; a byte on
 * wake_fd wakes the reader. Received frames are parsed by wslay
 * (wslay_frame_recv) from 64 KiB SSL_reads, payload copied once into the
 * message; small queued frames are written several per SSL_write.
 */
#include "ws_link.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <sodium.h>
#include <wslay/wslay.h>

#include "buf.h"
#include "log.h"
#include "util.h"
#include "wire.h"
#include "ws_link_int.h"
#include "wss_url.h"

int64_t
link_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * With mu held: is a byte owed to wake_fd? One byte until the reader has
 * emptied the queue: it drains the pipe, then calls bz_link_recv() until
 * NULL (which clears wake_sent) and looks at the state and
 * bz_link_pending() after that, so what happened meanwhile is seen
 * without a byte of its own. A byte per message cost a write, a read and
 * often a context switch each.
 */
int
link_wake_begin(struct bz_link *l)
{
	pthread_cond_broadcast(&l->cv);
	/* a served link's owner looks at the link after each round */
	if (l->wake_fd >= 0 && !l->wake_sent && !l->handed_over) {
		l->wake_sent = 1;
		return 1;
	}
	return 0;
}

/* Write the byte wake_begin owed, best after mu is released: a reader
 * woken while we hold mu would only block on it (two more switches). */
void
link_wake_end(struct bz_link *l, int owed)
{
	ssize_t w;

	if (!owed)
		return;
	do {
		w = write(l->wake_fd, "x", 1);
	} while (w < 0 && errno == EINTR);
	/* EAGAIN: the pipe is full, the reader is awake anyway. */
}

/* Wake the link thread (from another thread, mu released). */
void
link_poke(struct bz_link *l)
{
	uint64_t one = 1;
	ssize_t w;

	do {
		w = write(l->ev_fd, &one, sizeof(one));
	} while (w < 0 && errno == EINTR);
}

/* kind and detail say why for callers that act on it (link_fail.h), why
 * says it in full. */
void
link_fail_status(struct bz_link *l, enum bz_link_fail kind, int http_status,
    const char *detail, const char *why)
{
	int owed;

	pthread_mutex_lock(&l->mu);
	if (l->state != BZ_LINK_CLOSED) {
		if (l->state == BZ_LINK_OPEN && kind != BZ_LINK_FAIL_LOCAL)
			kind = BZ_LINK_FAIL_LOST;
		l->state = BZ_LINK_CLOSED;
		if (l->reason[0] == '\0')
			snprintf(l->reason, sizeof(l->reason), "%s", why);
		if (l->fail.kind == BZ_LINK_FAIL_NONE) {
			/* all of it before the reader can look */
			l->fail.kind = kind;
			l->fail.http_status = kind == BZ_LINK_FAIL_HTTP ?
			    http_status : 0;
			snprintf(l->fail.detail, sizeof(l->fail.detail), "%s",
			    detail);
		}
		bz_debug("link closed: %s", l->reason);
	}
	owed = link_wake_begin(l);
	pthread_mutex_unlock(&l->mu);
	link_wake_end(l, owed);
}

void
link_fail(struct bz_link *l, enum bz_link_fail kind, const char *detail,
    const char *why)
{
	link_fail_status(l, kind, 0, detail, why);
}

void
link_proto_error(struct bz_link *l, const char *what)
{
	char why[BZ_LINK_REASON_LEN];

	snprintf(why, sizeof(why), "protocol error: %s", what);
	link_fail(l, BZ_LINK_FAIL_LOCAL, "protocol error", why);
}

static int
link_start(const char *url, const char *path, const char *ca_file,
    int wake_fd, int owner_serves, struct bz_link **out, char *err,
    size_t errlen)
{
	struct bz_link *l;
	char *host = NULL;
	int port, r;

	*out = NULL;
	if ((r = bz_wss_url_parse(url, &host, &port, err, errlen)) != 0)
		return r;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		free(host);
		return BZ_ERR_ALLOC;
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->wake_fd = wake_fd;
	l->owner_serves = owner_serves;
	l->state = BZ_LINK_CONNECTING;
	l->host = host; /* the link's from here */
	l->port = port;
	l->conn.fd = -1;
	l->ev_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	l->path = strdup(path != NULL ? path : "/");
	l->rxbuf = malloc(RX_BUF);
	l->wbuf = malloc(WBUF);
	if (l->ev_fd < 0 || l->path == NULL || l->rxbuf == NULL ||
	    l->wbuf == NULL) {
		r = BZ_ERR_ALLOC;
		goto fail;
	}
	if ((l->tls = bz_ws_tls_ctx(ca_file)) == NULL) {
		bz_errf(err, errlen, "cannot create the websocket context "
		    "(CA file %s)", ca_file != NULL ? ca_file : "system");
		r = BZ_ERR_INVALID;
		goto fail;
	}
	if (pthread_create(&l->thread, NULL, link_thread, l) != 0) {
		bz_errf(err, errlen, "cannot start the websocket thread");
		r = BZ_ERR_INVALID;
		goto fail;
	}
	l->thread_started = 1;
	*out = l;
	return BZ_OK;
 fail:
	bz_link_free(l);
	return r;
}

int
bz_link_start(const char *url, const char *path, const char *ca_file,
    int wake_fd, struct bz_link **out, char *err, size_t errlen)
{
	return link_start(url, path, ca_file, wake_fd, 0, out, err, errlen);
}

int
bz_link_start_served(const char *url, const char *path, const char *ca_file,
    int wake_fd, struct bz_link **out, char *err, size_t errlen)
{
	return link_start(url, path, ca_file, wake_fd, 1, out, err, errlen);
}

int
bz_link_send(struct bz_link *l, uint8_t type, uint32_t channel,
    const void *payload, size_t len)
{
	return bz_link_send_frame(l, type, 0, 0, channel, payload, len);
}

size_t
bz_link_pending(struct bz_link *l)
{
	size_t n;

	pthread_mutex_lock(&l->mu);
	n = l->out_bytes;
	pthread_mutex_unlock(&l->mu);
	return n;
}

int
bz_link_send_frame(struct bz_link *l, uint8_t type, uint16_t flags,
    uint32_t session_id, uint32_t channel, const void *payload, size_t len)
{
	static const uint8_t pre[WS_HDR_MAX];
	struct out_msg *m;
	struct bz_buf b;
	size_t hl;
	int r, wake_link = 0, served = 0;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return BZ_ERR_ALLOC;
	bz_buf_init(&b);
	pthread_mutex_lock(&l->mu);
	if (l->state == BZ_LINK_CLOSED || l->stop) {
		r = BZ_ERR_INVALID;
		goto out;
	}
	/* encoded, framed and masked here, in order of seq: the link
	 * thread only writes */
	if ((r = bz_buf_put(&b, pre, sizeof(pre))) != 0 ||
	    (r = bz_frame_encode(&b, type, flags, session_id, channel, l->seq,
	    payload, len)) != 0)
		goto out;
	if ((hl = link_frame_wrap(b.data + WS_HDR_MAX, b.len - WS_HDR_MAX,
	    WSLAY_BINARY_FRAME)) == 0) {
		r = BZ_ERR_INVALID;
		goto out;
	}
	l->seq++;
	m->flen = b.len - WS_HDR_MAX;
	m->off = WS_HDR_MAX - hl;
	m->len = hl + m->flen;
	m->buf = b.data; /* the buffer's storage moves into the queue */
	bz_buf_init(&b);
	/* Wake the link thread only for the first frame of a queue: it
	 * writes until the queue is empty or the socket is full (then
	 * POLLOUT brings it back), so a wake per frame only cost it a trip
	 * round its loop. */
	wake_link = l->out_head == NULL;
	if (l->out_tail != NULL)
		l->out_tail->next = m;
	else
		l->out_head = m;
	l->out_tail = m;
	l->out_bytes += m->flen;
	m = NULL;
 out:
	served = l->handed_over;
	pthread_mutex_unlock(&l->mu);
	/* a served link is written here and now; else after the unlock:
	 * the link thread, woken, takes mu at once */
	if (r == 0 && served)
		link_served_flush(l);
	else if (r == 0 && wake_link)
		link_poke(l);
	bz_buf_free(&b);
	free(m);
	return r;
}

int
bz_link_send_json(struct bz_link *l, uint32_t channel, const json_t *obj)
{
	char *s;
	int r;

	if ((s = bz_json_dump(obj)) == NULL)
		return BZ_ERR_ALLOC;
	r = bz_link_send(l, BZ_FRAME_CONTROL, channel, s, strlen(s));
	/* control messages may carry secrets (session, id_token, totp) */
	sodium_memzero(s, strlen(s));
	free(s);
	return r;
}

struct bz_link_msg *
bz_link_recv(struct bz_link *l)
{
	struct bz_link_msg *m;
	int resume = 0;

	pthread_mutex_lock(&l->mu);
	if ((m = l->in_head) != NULL) {
		l->in_head = m->next;
		if (l->in_head == NULL)
			l->in_tail = NULL;
		l->in_bytes -= m->len;
		m->next = NULL;
	} else
		l->wake_sent = 0; /* the reader caught up: wake it again */
	if (l->paused && !l->want_resume && l->in_bytes < RX_LOW) {
		l->want_resume = 1;
		resume = 1;
	}
	pthread_mutex_unlock(&l->mu);
	if (resume)
		link_poke(l);
	return m;
}

void
bz_link_get_failure(struct bz_link *l, struct bz_link_failure *f)
{
	pthread_mutex_lock(&l->mu);
	*f = l->fail;
	pthread_mutex_unlock(&l->mu);
}

enum bz_link_state
bz_link_get_state(struct bz_link *l, char *reason, size_t len)
{
	enum bz_link_state s;

	pthread_mutex_lock(&l->mu);
	s = l->state;
	if (reason != NULL && len > 0)
		snprintf(reason, len, "%s", l->reason);
	pthread_mutex_unlock(&l->mu);
	return s;
}

int
bz_link_local_addr(struct bz_link *l, char *addr, size_t len,
    uint16_t *port)
{
	int r = BZ_ERR_INVALID;

	pthread_mutex_lock(&l->mu);
	if (l->local_addr[0] != '\0') {
		snprintf(addr, len, "%s", l->local_addr);
		*port = l->local_port;
		r = BZ_OK;
	}
	pthread_mutex_unlock(&l->mu);
	return r;
}

void
bz_link_wait(struct bz_link *l, int timeout_ms)
{
	struct timespec ts;

	if (link_served_wait(l, timeout_ms))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->mu);
	if (l->in_head == NULL && l->state != BZ_LINK_CLOSED)
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
	pthread_mutex_unlock(&l->mu);
}

void
bz_link_free(struct bz_link *l)
{
	struct out_msg *o;
	struct bz_link_msg *m;

	if (l == NULL)
		return;
	if (l->thread_started) {
		pthread_mutex_lock(&l->mu);
		l->stop = 1;
		pthread_mutex_unlock(&l->mu);
		link_poke(l);
		pthread_join(l->thread, NULL);
		/* it may have left us the open link */
		link_served_end(l);
	}
	while ((o = l->out_head) != NULL) {
		l->out_head = o->next;
		free(o->buf);
		free(o);
	}
	while ((m = l->in_head) != NULL) {
		l->in_head = m->next;
		free(m);
	}
	if (l->w_owned != NULL) {
		free(l->w_owned->buf);
		free(l->w_owned);
	}
	if (l->wf != NULL)
		wslay_frame_context_free(l->wf);
	if (l->tls != NULL)
		SSL_CTX_free(l->tls);
	if (l->ev_fd >= 0)
		close(l->ev_fd);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l->f_msg);
	free(l->host);
	free(l->path);
	free(l->rx);
	free(l->rxbuf);
	free(l->wbuf);
	free(l);
}
