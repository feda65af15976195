/*
 * ws_link_io.c: the link's own thread (see ws_link.c): opens the
 * connection (ws_conn.c), then, unless the owner serves the open link
 * from its own loop (ws_link_served.c), a poll() loop round link_step:
 * parse received frames with wslay from 64 KiB SSL_reads, write queued
 * frames (several small ones per SSL_write), answer pings, ping an idle
 * link, hang up on a silent one, send a close frame at bz_link_free once
 * flushed.
 */
#include "ws_link_int.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "buf.h"
#include "log.h"
#include "wire.h"

/* Remember the address and port of our end of the socket (numeric). */
static void
note_local_addr(struct bz_link *l, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char port[8];

	l->local_addr[0] = '\0';
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    getnameinfo((struct sockaddr *)&ss, len, l->local_addr,
	    sizeof(l->local_addr), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		l->local_addr[0] = '\0';
		return;
	}
	/* "::ffff:127.0.0.1" is 127.0.0.1 to whoever reads it */
	if (strncmp(l->local_addr, "::ffff:", 7) == 0 &&
	    strchr(l->local_addr + 7, '.') != NULL)
		memmove(l->local_addr, l->local_addr + 7,
		    strlen(l->local_addr + 7) + 1);
	l->local_port = (uint16_t)atoi(port);
}

/* XOR p with the 4-byte key a word at a time (the key repeats every 4
 * bytes, so an 8-byte word of it fits any 8-byte-aligned offset). */
static void
ws_mask(uint8_t *p, size_t n, const uint8_t key[4])
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

/*
 * Put a client frame's header (FIN, opcode, mask bit, length, key) just
 * before the n payload bytes at p and mask them: the header's length,
 * which p must have room for (WS_HDR_MAX), or 0.
 */
size_t
link_frame_wrap(uint8_t *p, size_t n, uint8_t opcode)
{
	uint8_t h[WS_HDR_MAX], *key;
	size_t hl = 2, i;

	h[0] = (uint8_t)(0x80 | opcode);
	if (n < 126)
		h[1] = (uint8_t)(0x80 | n);
	else if (n < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (uint8_t)(n >> 8);
		h[3] = (uint8_t)n;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
		hl = 10;
	}
	key = h + hl;
	if (RAND_bytes(key, 4) != 1)
		return 0;
	hl += 4;
	ws_mask(p, n, key);
	memcpy(p - hl, h, hl);
	return hl;
}

/* Queue a control frame of ours (pong, ping, close) ahead of the data. */
static void
queue_ctl(struct bz_link *l, uint8_t opcode, const uint8_t *p, size_t n)
{
	uint8_t *at;
	size_t hl;

	if (n > 125 || l->ctl_len + WS_HDR_MAX + n > sizeof(l->ctl))
		return; /* a pong behind two others: the peer has those */
	at = l->ctl + l->ctl_len + WS_HDR_MAX;
	if (n > 0)
		memcpy(at, p, n);
	if ((hl = link_frame_wrap(at, n, opcode)) == 0)
		return;
	memmove(l->ctl + l->ctl_len, at - hl, hl + n);
	l->ctl_len += hl + n;
}

/* Hand a whole message to the reader; pause reading while it lags. */
static void
deliver(struct bz_link *l, struct bz_link_msg *m)
{
	int owed;

	m->next = NULL;
	pthread_mutex_lock(&l->mu);
	if (l->in_tail != NULL)
		l->in_tail->next = m;
	else
		l->in_head = m;
	l->in_tail = m;
	l->in_bytes += m->len;
	if (l->in_bytes > RX_HIGH)
		l->paused = 1; /* the reader is behind: bounded memory */
	owed = link_wake_begin(l);
	pthread_mutex_unlock(&l->mu);
	link_wake_end(l, owed);
}

/* A frame's header has arrived (first chunk): check and make room. */
static int
frame_begin(struct bz_link *l, const struct wslay_frame_iocb *io)
{
	l->f_op = io->opcode;
	l->f_fin = io->fin;
	l->f_len = io->payload_length;
	l->f_off = 0;
	if (io->rsv != 0 || io->mask) {
		link_proto_error(l, "bad frame header from bzproxy");
		return -1;
	}
	switch (io->opcode) {
	case WSLAY_TEXT_FRAME:
		link_proto_error(l, "text message from bzproxy");
		return -1;
	case WSLAY_BINARY_FRAME:
	case WSLAY_CONTINUATION_FRAME:
		if ((io->opcode == WSLAY_BINARY_FRAME) != (l->msg_op == 0)) {
			link_proto_error(l, "bad fragment from bzproxy");
			return -1;
		}
		if (io->payload_length > BZ_WIRE_MAX_FRAME - l->rx_msg) {
			link_proto_error(l, "message from bzproxy too large");
			return -1;
		}
		l->msg_op = WSLAY_BINARY_FRAME;
		if (l->rx_msg == 0 && io->fin) {
			/* the usual case, a whole message: one copy */
			l->f_msg = malloc(sizeof(*l->f_msg) +
			    (size_t)io->payload_length);
			if (l->f_msg == NULL)
				goto nomem;
			l->f_msg->len = (size_t)io->payload_length;
		} else if (l->rx == NULL &&
		    (l->rx = malloc(BZ_WIRE_MAX_FRAME)) == NULL)
			goto nomem;
		return 0;
	case WSLAY_CONNECTION_CLOSE:
	case WSLAY_PING:
	case WSLAY_PONG:
		return 0; /* wslay checked: final, at most 125 bytes */
	default:
		link_proto_error(l, "unknown frame from bzproxy");
		return -1;
	}
 nomem:
	link_fail(l, BZ_LINK_FAIL_LOCAL, "out of memory", "out of memory");
	return -1;
}

/* The last chunk of a frame has arrived. */
static int
frame_end(struct bz_link *l)
{
	struct bz_link_msg *m;

	switch (l->f_op) {
	case WSLAY_PING:
		queue_ctl(l, WSLAY_PONG, l->ctl_in, (size_t)l->f_len);
		return 0;
	case WSLAY_PONG:
		return 0;
	case WSLAY_CONNECTION_CLOSE:
		l->close_got = 1;
		link_fail(l, BZ_LINK_FAIL_LOST, "closed by bzproxy",
		    "bzproxy closed the connection");
		if (!l->close_sent) {
			/* answer with its status (the first two bytes) */
			queue_ctl(l, WSLAY_CONNECTION_CLOSE, l->ctl_in,
			    l->f_len >= 2 ? 2 : 0);
			l->close_sent = 1;
		}
		return 0;
	default:
		break;
	}
	if (!l->f_fin)
		return 0;
	if ((m = l->f_msg) == NULL) {
		if ((m = malloc(sizeof(*m) + l->rx_msg)) == NULL) {
			link_fail(l, BZ_LINK_FAIL_LOCAL, "out of memory",
			    "out of memory");
			return -1;
		}
		m->len = l->rx_msg;
		memcpy(m->data, l->rx, l->rx_msg);
	}
	l->f_msg = NULL;
	l->rx_msg = 0;
	l->msg_op = 0;
	deliver(l, m);
	return 0;
}

/* One chunk of a frame's payload from wslay. */
static int
on_chunk(struct bz_link *l, const struct wslay_frame_iocb *io)
{
	if (!l->in_frame) {
		if (frame_begin(l, io) != 0)
			return -1;
		l->in_frame = 1;
	}
	if (io->data_length > l->f_len - l->f_off)
		return -1; /* wslay never does this */
	if (l->f_op >= WSLAY_CONNECTION_CLOSE)
		memcpy(l->ctl_in + l->f_off, io->data, io->data_length);
	else if (l->f_msg != NULL)
		memcpy(l->f_msg->data + l->f_off, io->data, io->data_length);
	else {
		memcpy(l->rx + l->rx_msg, io->data, io->data_length);
		l->rx_msg += io->data_length;
	}
	l->f_off += io->data_length;
	if (l->f_off < l->f_len)
		return 0;
	l->in_frame = 0;
	l->last_rx = link_now_ms();
	l->ping_sent = 0;
	return frame_end(l);
}

/* wslay's input: what the last SSL_read left in rxbuf. */
static ssize_t
wf_recv(uint8_t *buf, size_t len, int flags, void *arg)
{
	struct bz_link *l = arg;
	size_t n = l->rx_len - l->rx_off;

	(void)flags;
	if (n > len)
		n = len;
	memcpy(buf, l->rxbuf + l->rx_off, n);
	l->rx_off += n;
	return (ssize_t)n; /* 0: wslay says WANT_READ */
}

/* Parse what is buffered until it runs out or the reader lags. */
static int
parse_rx(struct bz_link *l)
{
	struct wslay_frame_iocb io;
	ssize_t r;

	while (!l->paused && !l->close_got) {
		memset(&io, 0, sizeof(io));
		r = wslay_frame_recv(l->wf, &io);
		if (r == WSLAY_ERR_WANT_READ)
			return 0;
		if (r < 0) {
			link_proto_error(l, "bad frame from bzproxy");
			return -1;
		}
		if (on_chunk(l, &io) != 0)
			return -1;
	}
	return 0;
}

/* Why the connection ended, from the last SSL call's result. */
static void
conn_lost(struct bz_link *l, int r, int writing)
{
	int e = SSL_get_error(l->conn.ssl, r);

	ERR_clear_error();
	if (writing && e != SSL_ERROR_ZERO_RETURN)
		link_fail(l, BZ_LINK_FAIL_LOST, "a write failed",
		    "write to bzproxy failed");
	else
		link_fail(l, BZ_LINK_FAIL_LOST, "connection closed",
		    "connection to bzproxy closed");
}

/* Read and parse while the socket has bytes: 0, or -1 when it ended. */
static int
do_read(struct bz_link *l)
{
	int r;

	while (l->read_ready && !l->paused && !l->close_got) {
		if (parse_rx(l) != 0)
			return -1;
		if (l->paused || l->close_got)
			break;
		ERR_clear_error();
		r = SSL_read(l->conn.ssl, l->rxbuf, RX_BUF);
		if (r > 0) {
			l->rx_off = 0;
			l->rx_len = (size_t)r;
			continue;
		}
		switch (SSL_get_error(l->conn.ssl, r)) {
		case SSL_ERROR_WANT_READ:
			l->read_ready = 0;
			return 0;
		case SSL_ERROR_WANT_WRITE:
			/* renegotiation-like: POLLOUT lets it go on */
			l->read_ready = 0;
			l->write_blocked = 1;
			return 0;
		default:
			conn_lost(l, r, 0);
			return -1;
		}
	}
	return 0;
}

/* Take what to write next: our control frames and small queued frames
 * gathered in wbuf, or one big frame from its own buffer (no copy). */
static void
next_write(struct bz_link *l)
{
	struct out_msg *m, *big = NULL, *done = NULL;
	size_t n = 0;
	int owed = 0;

	if (l->ctl_len > 0) {
		memcpy(l->wbuf, l->ctl, l->ctl_len);
		n = l->ctl_len;
		l->ctl_len = 0;
	}
	pthread_mutex_lock(&l->mu);
	while ((m = l->out_head) != NULL && !l->close_sent) {
		if (m->len >= BIG_FRAME ? n > 0 : n + m->len > WBUF)
			break;
		l->out_head = m->next;
		if (l->out_head == NULL)
			l->out_tail = NULL;
		/* a sender paused on bz_link_pending may go on now */
		if (l->out_bytes >= BZ_LINK_DRAIN_MARK &&
		    l->out_bytes - m->flen < BZ_LINK_DRAIN_MARK)
			owed |= link_wake_begin(l);
		l->out_bytes -= m->flen;
		if (m->len >= BIG_FRAME) {
			big = m;
			break;
		}
		memcpy(l->wbuf + n, m->buf + m->off, m->len);
		n += m->len;
		m->next = done;
		done = m;
	}
	pthread_mutex_unlock(&l->mu);
	link_wake_end(l, owed);
	while ((m = done) != NULL) {
		done = m->next;
		free(m->buf);
		free(m);
	}
	l->w_off = 0;
	if (big != NULL) {
		l->w_owned = big;
		l->wp = big->buf + big->off;
		l->w_len = big->len;
	} else if (n > 0) {
		l->wp = l->wbuf;
		l->w_len = n;
	}
}

/* Write while the socket takes it: 0, or -1 when the link ended. */
static int
do_write(struct bz_link *l)
{
	int r;

	for (;;) {
		if (l->wp == NULL) {
			next_write(l);
			if (l->wp == NULL)
				return 0;
		}
		if (l->write_blocked)
			return 0;
		ERR_clear_error();
		r = SSL_write(l->conn.ssl, l->wp + l->w_off,
		    (int)(l->w_len - l->w_off));
		if (r > 0) {
			l->w_off += (size_t)r;
			if (l->w_off == l->w_len) {
				if (l->w_owned != NULL) {
					free(l->w_owned->buf);
					free(l->w_owned);
					l->w_owned = NULL;
				}
				l->wp = NULL;
			}
			continue;
		}
		switch (SSL_get_error(l->conn.ssl, r)) {
		case SSL_ERROR_WANT_WRITE:
			l->write_blocked = 1;
			return 0;
		case SSL_ERROR_WANT_READ:
			l->read_ready = 1;
			return 0;
		default:
			conn_lost(l, r, 1);
			return -1;
		}
	}
}

/* During the opening: a poke means stop, or a frame queued (kept). */
static int
drain_ev(struct bz_link *l)
{
	uint64_t v;
	int stop;

	while (read(l->ev_fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&l->mu);
	stop = l->stop;
	pthread_mutex_unlock(&l->mu);
	return stop;
}

/* Ping an idle link, hang up on a silent one: 0, or -1 to end. */
static int
keepalive(struct bz_link *l, int64_t now)
{
	if (l->paused)
		return 0; /* we are the ones not reading */
	if (now - l->last_rx >= HANGUP_IDLE_MS) {
		link_fail(l, BZ_LINK_FAIL_LOST, "connection closed",
		    "connection to bzproxy closed");
		return -1;
	}
	if (now - l->last_rx >= PING_IDLE_MS && !l->ping_sent &&
	    !l->close_sent) {
		queue_ctl(l, WSLAY_PING, NULL, 0);
		l->ping_sent = 1;
	}
	return 0;
}

/*
 * One round of the open link: resume reading if the reader drained, read,
 * keepalive, the close once a stopping link is flushed, write. 1 when the
 * link is over (closed, or done flushing at stop: call link_finish), else
 * 0 with what to poll the socket for in *events and how long to wait in
 * *timeout (0: OpenSSL holds bytes already read, come back at once).
 */
int
link_step(struct bz_link *l, short *events, int *timeout)
{
	int64_t now, next;
	int stop, resume;

	if (l->io_failed)
		return 1;
	pthread_mutex_lock(&l->mu);
	stop = l->stop;
	resume = l->want_resume;
	l->want_resume = 0;
	if (resume && l->paused) {
		l->paused = 0;
		l->read_ready = 1;
		l->last_rx = link_now_ms();
	}
	pthread_mutex_unlock(&l->mu);
	now = link_now_ms();
	if (stop && l->stop_at == 0)
		l->stop_at = now + CLOSE_GRACE_MS;
	if (do_read(l) != 0 || keepalive(l, now) != 0)
		return 1;
	if (stop && !l->close_sent && l->wp == NULL &&
	    l->ctl_len == 0 && bz_link_pending(l) == 0) {
		/* all flushed: say goodbye (1000, normal) */
		queue_ctl(l, WSLAY_CONNECTION_CLOSE,
		    (const uint8_t *)"\x03\xe8", 2);
		l->close_sent = 1;
		/* what we sent is out; bzproxy's answer may sit
		 * behind data it still had queued for us: do not
		 * hold the program's exit for it */
		if (l->stop_at > now + CLOSE_REPLY_MS)
			l->stop_at = now + CLOSE_REPLY_MS;
	}
	if (do_write(l) != 0)
		return 1;
	/* done once our close is out and bzproxy's came back */
	if (l->close_sent && l->wp == NULL && l->ctl_len == 0 &&
	    l->close_got)
		return 1;
	if (l->stop_at != 0 && now >= l->stop_at)
		return 1;
	*events = 0;
	if (!l->paused && !l->close_got)
		*events |= POLLIN;
	if (l->write_blocked)
		*events |= POLLOUT;
	if (l->read_ready && !l->paused && !l->close_got) {
		*timeout = 0; /* OpenSSL holds bytes: no poll needed */
		return 0;
	}
	next = l->last_rx + (l->ping_sent ? HANGUP_IDLE_MS : PING_IDLE_MS);
	if (next <= now || l->paused)
		next = now + 1000; /* no keepalive due: look again */
	if (l->stop_at != 0 && l->stop_at < next)
		next = l->stop_at;
	*timeout = next > now ? (int)(next - now) : 0;
	return 0;
}

/* What poll() said of the socket. */
void
link_apply(struct bz_link *l, short revents)
{
	if (revents & (POLLIN | POLLERR | POLLHUP))
		l->read_ready = 1;
	if (revents & (POLLOUT | POLLERR | POLLHUP))
		l->write_blocked = 0;
}

/* Write what is queued now (the owner's thread, after a send). 0, or -1
 * when the link ended (link_step then says so). */
int
link_flush(struct bz_link *l)
{
	if (do_write(l) != 0)
		l->io_failed = 1;
	return l->io_failed ? -1 : 0;
}

/* The open link, served until it is over, by the link's thread, or by
 * the owner's at bz_link_free (stop set: flush, close, bounded). */
void
link_serve(struct bz_link *l)
{
	struct pollfd p[2];
	short events;
	int timeout;

	while (link_step(l, &events, &timeout) == 0) {
		if (timeout == 0)
			continue;
		p[0].fd = l->ev_fd;
		p[0].events = POLLIN;
		p[1].fd = events != 0 ? l->conn.fd : -1; /* a hangup would
		                                          * wake us for nothing */
		p[1].events = events;
		p[0].revents = p[1].revents = 0;
		if (poll(p, 2, timeout) < 0 && errno != EINTR) {
			link_fail(l, BZ_LINK_FAIL_LOCAL, "link stopped",
			    "poll failed");
			return;
		}
		if (p[0].revents != 0)
			(void)drain_ev(l);
		link_apply(l, p[1].revents);
	}
}

/* The link is over: its state says why, the socket closes. */
void
link_finish(struct bz_link *l)
{
	int r;

	pthread_mutex_lock(&l->mu);
	r = l->stop;
	pthread_mutex_unlock(&l->mu);
	link_fail(l, r ? BZ_LINK_FAIL_LOCAL : BZ_LINK_FAIL_LOST,
	    "link stopped", "link stopped");
	if (l->close_sent && l->close_got)
		(void)SSL_shutdown(l->conn.ssl); /* close_notify, no wait */
	ERR_clear_error();
	bz_ws_conn_close(&l->conn);
}

static int
cancel_cb(void *arg)
{
	return drain_ev(arg);
}

void *
link_thread(void *arg)
{
	static const struct wslay_frame_callbacks wcb = { NULL, wf_recv,
	    NULL };
	struct bz_link *l = arg;
	struct bz_link_failure f;
	char why[BZ_LINK_REASON_LEN];
	sigset_t pipe_set;
	int r, owed, handed;

	/* OpenSSL writes with write(): a peer gone is EPIPE here, not a
	 * SIGPIPE that kills a program which did not ignore it */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);

	r = bz_ws_conn_open(&l->conn, l->tls, l->host, l->port, l->path,
	    LINK_PROTOCOL, l->ev_fd, cancel_cb, l, OPEN_TIMEOUT_MS, l->rxbuf,
	    RX_BUF, &l->rx_len, &f);
	if (r == 1) {
		link_fail(l, BZ_LINK_FAIL_LOCAL, "link stopped",
		    "link stopped");
		return NULL;
	}
	if (r != 0) {
		snprintf(why, sizeof(why), "cannot connect to bzproxy: %s",
		    f.detail);
		link_fail_status(l, f.kind, f.http_status, f.detail, why);
		return NULL;
	}
	if (wslay_frame_context_init(&l->wf, &wcb, l) != 0) {
		link_fail(l, BZ_LINK_FAIL_LOCAL, "out of memory",
		    "out of memory");
		bz_ws_conn_close(&l->conn);
		return NULL;
	}
	bz_debug("link: connected to bzproxy");
	l->rx_off = 0;
	l->read_ready = 1;
	l->last_rx = link_now_ms();
	pthread_mutex_lock(&l->mu);
	note_local_addr(l, l->conn.fd);
	l->state = BZ_LINK_OPEN;
	/* an owner that serves the link takes it from here (not if it is
	 * already stopping: that flush and close are ours) */
	handed = l->owner_serves && !l->stop;
	owed = link_wake_begin(l); /* the owner learns it is open */
	l->handed_over = handed;
	pthread_mutex_unlock(&l->mu);
	link_wake_end(l, owed);
	if (handed)
		return NULL;
	link_serve(l);
	link_finish(l);
	return NULL;
}

