/*
 * ws_link.c: the one wss connection to bzproxy, run by its own lws thread.
 *
 * Debian's lws 4.1.6 has one service thread and no external poll, and only
 * lws_cancel_service() may be called from other threads. So other threads
 * talk to it through two locked queues: out (encoded frames with LWS_PRE
 * headroom, written in CLIENT_WRITEABLE) and in (whole websocket messages,
 * reassembled here). lws_cancel_service() wakes this thread
 * (EVENT_WAIT_CANCELLED); a byte on wake_fd wakes the libssh thread.
 */
#include "ws_link.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <libwebsockets.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "buf.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#define LINK_PROTOCOL "bz.v1"
/* Stop reading the socket while this much is waiting for libssh. */
#define RX_HIGH (8u * 1024 * 1024)
#define RX_LOW (2u * 1024 * 1024)
#define CLOSE_GRACE_S 3 /* time allowed to flush on close */
#define PROBE_MS 1000   /* our own connect, to learn why lws's failed */
/*
 * lws reads the socket into one per-thread buffer of this size (default
 * 4 KiB): each read is a trip round the service loop (poll, SSL_read,
 * parse). A whole frame plus TLS records per read cuts those trips ~16x.
 */
#define SERV_BUF (BZ_WIRE_MAX_DATA_FRAME + 4096)
/* Bytes written per CLIENT_WRITEABLE while the socket takes them (as
 * bzproxy does): each return to the service loop costs a poll. */
#define WRITE_BURST (256u * 1024)

struct out_msg {
	struct out_msg *next;
	uint8_t *buf; /* LWS_PRE bytes, then the frame */
	size_t len;   /* frame bytes after LWS_PRE */
};

struct bz_link {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int thread_started;
	int wake_fd;

	/* set before the thread starts, then owned by it */
	struct lws_context *ctx;
	struct lws *wsi;
	uint8_t *rx;      /* reassembly of one message */
	size_t rx_len;
	int done;         /* service loop ends */
	int paused;       /* rx flow control applied (under mu) */
	int ctx_alive;    /* the service loop runs (under mu); the context
	                     itself lives until bz_link_free, so that
	                     lws_cancel_service may be called after mu is
	                     released */

	char *host;       /* bzproxy's, for the connect probe */
	int port;
	char cert_err[96]; /* why bzproxy's certificate did not verify */

	/* shared, under mu */
	enum bz_link_state state;
	char reason[BZ_LINK_REASON_LEN];
	struct bz_link_failure fail; /* the first cause, once closed */
	struct out_msg *out_head, *out_tail;
	size_t out_bytes;
	uint64_t seq;
	struct bz_link_msg *in_head, *in_tail;
	size_t in_bytes;
	int stop;         /* bz_link_free asked to close */
	int want_resume;  /* libssh thread drained: resume rx */
	int wake_sent;    /* a byte is on wake_fd that the reader has not
	                     answered yet with a bz_link_recv() that found
	                     the queue empty */
	char local_addr[64]; /* our end of the TCP connection, once open */
	uint16_t local_port;
};

static const lws_retry_bo_t link_retry = {
	.secs_since_valid_ping = 20,   /* keepalive ping when idle */
	.secs_since_valid_hangup = 50, /* dead peer detection */
};

/*
 * With mu held: is a byte owed to wake_fd? One byte until the reader has
 * emptied the queue: it drains the pipe, then calls bz_link_recv() until
 * NULL (which clears wake_sent) and looks at the state and
 * bz_link_pending() after that, so what happened meanwhile is seen
 * without a byte of its own. A byte per message cost a write, a read and
 * often a context switch each.
 */
static int
wake_begin(struct bz_link *l)
{
	pthread_cond_broadcast(&l->cv);
	if (l->wake_fd >= 0 && !l->wake_sent) {
		l->wake_sent = 1;
		return 1;
	}
	return 0;
}

/* Write the byte wake_begin owed, best after mu is released: a reader
 * woken while we hold mu would only block on it (two more switches). A
 * byte that arrives after the reader emptied the queue anyway costs it
 * one empty look. */
static void
wake_end(struct bz_link *l, int owed)
{
	ssize_t w;

	if (!owed)
		return;
	do {
		w = write(l->wake_fd, "x", 1);
	} while (w < 0 && errno == EINTR);
	/* EAGAIN: the pipe is full, the reader is awake anyway. */
}

static void
wake(struct bz_link *l)
{
	wake_end(l, wake_begin(l));
}

/* Called in the lws thread with mu held. kind and detail say why for
 * callers that act on it (link_fail.h), why says it in full. */
static void
set_closed(struct bz_link *l, enum bz_link_fail kind, const char *detail,
    const char *why)
{
	if (l->state != BZ_LINK_CLOSED) {
		if (l->state == BZ_LINK_OPEN && kind != BZ_LINK_FAIL_LOCAL)
			kind = BZ_LINK_FAIL_LOST;
		l->state = BZ_LINK_CLOSED;
		if (l->reason[0] == '\0')
			snprintf(l->reason, sizeof(l->reason), "%s", why);
		if (l->fail.kind == BZ_LINK_FAIL_NONE) {
			l->fail.kind = kind;
			snprintf(l->fail.detail, sizeof(l->fail.detail), "%s",
			    detail);
		}
		bz_debug("link closed: %s", l->reason);
	}
	wake(l);
}

static void
link_fail(struct bz_link *l, enum bz_link_fail kind, const char *detail,
    const char *why)
{
	pthread_mutex_lock(&l->mu);
	set_closed(l, kind, detail, why);
	pthread_mutex_unlock(&l->mu);
}

/*
 * lws says why a connection attempt failed in words of its own; sort them
 * into kinds. Its "Unable to connect" hides the errno: a connect of our
 * own tells it (at once for a refused port, the usual case: bzproxy is
 * restarting).
 */
static void
connect_failed(struct bz_link *l, struct lws *wsi, const char *lws_why)
{
	struct bz_link_failure f;
	char why[BZ_LINK_REASON_LEN], probe[BZ_LINK_DETAIL_LEN];
	unsigned int status = wsi != NULL ?
	    lws_http_client_http_response(wsi) : 0;

	memset(&f, 0, sizeof(f));
	if (lws_why == NULL)
		lws_why = "unknown error";
	bz_debug("link: lws: %s", lws_why);
	if (l->cert_err[0] != '\0') {
		f.kind = BZ_LINK_FAIL_CERT;
		snprintf(f.detail, sizeof(f.detail), "its certificate did not "
		    "verify: %s", l->cert_err);
	} else if (status >= 200 && status != 101) {
		f.kind = BZ_LINK_FAIL_HTTP;
		f.http_status = (int)status;
		/* bzproxy's reason is in the body, which lws does not
		 * read: a 503 is its "stopping, or at limits.max_links" */
		snprintf(f.detail, sizeof(f.detail), "HTTP %u at the websocket "
		    "upgrade%s", status, status == 503 ? " (bzproxy is "
		    "stopping, or holds limits.max_links links)" : "");
	} else if (strncmp(lws_why, "HS:", 3) == 0) {
		f.kind = BZ_LINK_FAIL_HANDSHAKE;
		snprintf(f.detail, sizeof(f.detail), "websocket handshake "
		    "failed (%s)", lws_why + 3 + strspn(lws_why + 3, " "));
	} else if (strstr(lws_why, "SSL") != NULL) {
		f.kind = BZ_LINK_FAIL_TLS;
		snprintf(f.detail, sizeof(f.detail), "the TLS handshake was "
		    "cut off");
	} else {
		f.kind = BZ_LINK_FAIL_CONNECT;
		if (l->host == NULL)
			snprintf(f.detail, sizeof(f.detail), "%s", lws_why);
		else if (bz_tcp_probe(l->host, l->port, PROBE_MS, probe,
		    sizeof(probe)) == 0)
			snprintf(f.detail, sizeof(f.detail), "the connection "
			    "failed");
		else
			snprintf(f.detail, sizeof(f.detail), "%s", probe);
	}
	snprintf(why, sizeof(why), "cannot connect to bzproxy: %s", f.detail);
	pthread_mutex_lock(&l->mu);
	set_closed(l, f.kind, f.detail, why);
	if (l->fail.kind == BZ_LINK_FAIL_HTTP)
		l->fail.http_status = f.http_status;
	pthread_mutex_unlock(&l->mu);
}

/* OpenSSL's verdict on bzproxy's certificate chain, one call per
 * certificate: keep the first error, which lws reports only as "SSL err".
 * The verdict itself stays OpenSSL's (a failure is not overridden here). */
static void
note_cert(struct bz_link *l, void *x509_ctx, size_t preverify_ok)
{
	int e;

	if (preverify_ok || x509_ctx == NULL || l->cert_err[0] != '\0')
		return;
	e = X509_STORE_CTX_get_error((X509_STORE_CTX *)x509_ctx);
	snprintf(l->cert_err, sizeof(l->cert_err), "%s",
	    X509_verify_cert_error_string(e));
}

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

static int
on_receive(struct bz_link *l, struct lws *wsi, const void *in, size_t len)
{
	struct bz_link_msg *m;
	int owed;

	if (!lws_frame_is_binary(wsi)) {
		link_fail(l, BZ_LINK_FAIL_LOCAL, "protocol error",
		    "protocol error: text message from bzproxy");
		return -1;
	}
	if (len > BZ_WIRE_MAX_FRAME - l->rx_len) {
		link_fail(l, BZ_LINK_FAIL_LOCAL, "protocol error",
		    "protocol error: message from bzproxy too large");
		return -1;
	}
	if (l->rx_len == 0 && lws_is_final_fragment(wsi)) {
		/* the common case, the whole message in one piece: one copy */
		if ((m = malloc(sizeof(*m) + len)) == NULL) {
			link_fail(l, BZ_LINK_FAIL_LOCAL, "out of memory",
			    "out of memory");
			return -1;
		}
		m->len = len;
		memcpy(m->data, in, len);
	} else {
		memcpy(l->rx + l->rx_len, in, len);
		l->rx_len += len;
		if (!lws_is_final_fragment(wsi))
			return 0;
		if ((m = malloc(sizeof(*m) + l->rx_len)) == NULL) {
			link_fail(l, BZ_LINK_FAIL_LOCAL, "out of memory",
			    "out of memory");
			return -1;
		}
		m->len = l->rx_len;
		memcpy(m->data, l->rx, l->rx_len);
		l->rx_len = 0;
	}
	m->next = NULL;
	pthread_mutex_lock(&l->mu);
	if (l->in_tail != NULL)
		l->in_tail->next = m;
	else
		l->in_head = m;
	l->in_tail = m;
	l->in_bytes += m->len;
	if (l->in_bytes > RX_HIGH && !l->paused) {
		/* libssh is behind: hold the socket (bounded memory). */
		lws_rx_flow_control(wsi, 0);
		l->paused = 1;
	}
	owed = wake_begin(l);
	pthread_mutex_unlock(&l->mu);
	wake_end(l, owed);
	return 0;
}

static int
on_writeable(struct bz_link *l, struct lws *wsi)
{
	struct out_msg *m;
	size_t burst = 0;
	int stop, more, w;

	/* Several frames while the socket takes them (lws keeps what it did
	 * not take and writes that first; choked means stop for now). */
	for (;;) {
		pthread_mutex_lock(&l->mu);
		if ((m = l->out_head) != NULL) {
			l->out_head = m->next;
			if (l->out_head == NULL)
				l->out_tail = NULL;
			/* a sender paused on bz_link_pending may go on now */
			if (l->out_bytes >= BZ_LINK_DRAIN_MARK &&
			    l->out_bytes - m->len < BZ_LINK_DRAIN_MARK)
				wake(l);
			l->out_bytes -= m->len;
		}
		stop = l->stop;
		more = l->out_head != NULL;
		pthread_mutex_unlock(&l->mu);
		if (m == NULL)
			break;
		w = lws_write(wsi, m->buf + LWS_PRE, m->len,
		    LWS_WRITE_BINARY);
		burst += m->len;
		free(m->buf);
		free(m);
		if (w < 0) {
			link_fail(l, BZ_LINK_FAIL_LOST, "a write failed",
			    "write to bzproxy failed");
			return -1;
		}
		if (!more || burst >= WRITE_BURST ||
		    lws_send_pipe_choked(wsi))
			break;
	}
	if (more || (stop && lws_send_pipe_choked(wsi)))
		/* lws may still hold the end of the last frame */
		lws_callback_on_writable(wsi);
	else if (stop) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	return 0;
}

/* Another thread called lws_cancel_service: look at the shared flags. */
static void
on_cancelled(struct bz_link *l)
{
	int stop, pending;
	enum bz_link_state state;

	pthread_mutex_lock(&l->mu);
	stop = l->stop;
	pending = l->out_head != NULL;
	state = l->state;
	if (l->want_resume && l->paused && l->wsi != NULL) {
		lws_rx_flow_control(l->wsi, 1);
		l->paused = 0;
	}
	l->want_resume = 0;
	pthread_mutex_unlock(&l->mu);
	if (l->wsi == NULL) {
		if (stop)
			l->done = 1;
		return;
	}
	if (state != BZ_LINK_OPEN) {
		if (stop)
			lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK,
			    LWS_TO_KILL_ASYNC);
		return;
	}
	if (stop)
		lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK,
		    CLOSE_GRACE_S);
	else if (pending && !lws_send_pipe_choked(l->wsi)) {
		/*
		 * The socket takes it now: write here rather than ask for a
		 * writeable callback, which costs another trip round the
		 * poll loop per message (a keystroke's latency, twice per
		 * hop). What is left asks for the callback itself.
		 */
		if (on_writeable(l, l->wsi) != 0)
			lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK,
			    LWS_TO_KILL_ASYNC);
		return;
	}
	if (pending || stop)
		lws_callback_on_writable(l->wsi);
}

static int
link_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct bz_link *l = lws_context_user(lws_get_context(wsi));

	if (l == NULL)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		bz_debug("link: connected to bzproxy");
		pthread_mutex_lock(&l->mu);
		note_local_addr(l, lws_get_socket_fd(wsi));
		l->state = BZ_LINK_OPEN;
		if (l->out_head != NULL || l->stop)
			lws_callback_on_writable(wsi);
		wake(l);
		pthread_mutex_unlock(&l->mu);
		break;
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		/* lws passes OpenSSL's X509_STORE_CTX as user, SSL as in */
		note_cert(l, user, len);
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		connect_failed(l, wsi, in);
		l->wsi = NULL;
		l->done = 1;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return on_receive(l, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(l, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		link_fail(l, BZ_LINK_FAIL_LOST, "closed by bzproxy",
		    "bzproxy closed the connection");
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		link_fail(l, BZ_LINK_FAIL_LOST, "connection closed",
		    "connection to bzproxy closed");
		l->wsi = NULL;
		l->done = 1;
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		on_cancelled(l);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols link_protocols[] = {
	{ LINK_PROTOCOL, link_callback, 0, BZ_WIRE_MAX_DATA_FRAME, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void *
link_thread(void *arg)
{
	struct bz_link *l = arg;

	while (!l->done)
		if (lws_service(l->ctx, 0) < 0)
			break;
	pthread_mutex_lock(&l->mu);
	set_closed(l, l->stop ? BZ_LINK_FAIL_LOCAL : BZ_LINK_FAIL_LOST,
	    "link stopped", "link stopped");
	l->ctx_alive = 0;
	pthread_mutex_unlock(&l->mu);
	/* the context goes in bz_link_free, after the join */
	return NULL;
}

/* Split wss://HOST[:PORT][/...] into host and port. */
static int
parse_url(const char *url, char **host, int *port, char *err, size_t errlen)
{
	const char *p, *end;
	char *e;
	long v;

	*host = NULL;
	*port = 443;
	if (strncmp(url, "wss://", 6) != 0) {
		bz_errf(err, errlen, "proxy URL must start with wss://: %s",
		    url);
		return BZ_ERR_INVALID;
	}
	p = url + 6;
	end = p + strcspn(p, ":/");
	if (end == p || end - p > 255) {
		bz_errf(err, errlen, "bad proxy URL %s", url);
		return BZ_ERR_INVALID;
	}
	if (*end == ':') {
		errno = 0;
		v = strtol(end + 1, &e, 10);
		if (errno != 0 || e == end + 1 || v < 1 || v > 65535 ||
		    (*e != '\0' && *e != '/')) {
			bz_errf(err, errlen, "bad port in proxy URL %s", url);
			return BZ_ERR_INVALID;
		}
		*port = (int)v;
	}
	if ((*host = strndup(p, (size_t)(end - p))) == NULL)
		return BZ_ERR_ALLOC;
	return BZ_OK;
}

int
bz_link_start(const char *url, const char *path, const char *ca_file,
    int wake_fd, struct bz_link **out, char *err, size_t errlen)
{
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	struct bz_link *l;
	char *host = NULL;
	int port, r;

	*out = NULL;
	if ((r = parse_url(url, &host, &port, err, errlen)) != 0)
		return r;
	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->rx = malloc(BZ_WIRE_MAX_FRAME)) == NULL) {
		free(l);
		free(host);
		return BZ_ERR_ALLOC;
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->wake_fd = wake_fd;
	l->state = BZ_LINK_CONNECTING;
	l->host = host; /* the link's from here */
	l->port = port;

	lws_set_log_level(bz_log_get_level() >= BZ_LOG_DEBUG ?
	    LLL_ERR | LLL_WARN : 0, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = link_protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	/* A configured CA is the only one trusted for bzproxy (and skipping
	 * the system bundle saves parsing ~150 certificates per ssh). */
	if (ca_file != NULL)
		info.options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
	info.client_ssl_ca_filepath = ca_file;
	info.user = l;
	info.fd_limit_per_thread = 8;
	info.pt_serv_buf_size = SERV_BUF;
	if ((l->ctx = lws_create_context(&info)) == NULL) {
		bz_errf(err, errlen, "cannot create the websocket context "
		    "(CA file %s)", ca_file != NULL ? ca_file : "system");
		r = BZ_ERR_INVALID;
		goto fail;
	}
	memset(&ci, 0, sizeof(ci));
	ci.context = l->ctx;
	ci.address = host;
	ci.port = port;
	ci.path = path;
	ci.host = host;
	ci.origin = host;
	ci.protocol = LINK_PROTOCOL;
	ci.ssl_connection = LCCSCF_USE_SSL;
	ci.retry_and_idle_policy = &link_retry;
	ci.pwsi = &l->wsi;
	/*
	 * Errors may be reported through the callback already here. Such a
	 * link is returned closed, its failure kind set, as one that failed
	 * a moment later: the caller handles both alike.
	 */
	if (lws_client_connect_via_info(&ci) == NULL) {
		l->wsi = NULL;
		connect_failed(l, NULL, "cannot connect");
		*out = l;
		return BZ_OK;
	}
	l->ctx_alive = 1;
	if (pthread_create(&l->thread, NULL, link_thread, l) != 0) {
		l->ctx_alive = 0;
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
	static const uint8_t pre[LWS_PRE];
	struct out_msg *m;
	struct bz_buf b;
	int r, wake_lws = 0;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return BZ_ERR_ALLOC;
	bz_buf_init(&b);
	pthread_mutex_lock(&l->mu);
	if (l->state == BZ_LINK_CLOSED || l->stop) {
		r = BZ_ERR_INVALID;
		goto out;
	}
	if ((r = bz_buf_put(&b, pre, sizeof(pre))) != 0 ||
	    (r = bz_frame_encode(&b, type, flags, session_id, channel, l->seq,
	    payload, len)) != 0)
		goto out;
	l->seq++;
	m->buf = b.data; /* the buffer's storage moves into the queue */
	m->len = b.len - LWS_PRE;
	bz_buf_init(&b);
	/*
	 * Wake the lws thread only for the first frame of a queue: while
	 * frames wait it has a writeable callback asked for (on_writeable
	 * asks again whenever it leaves frames behind, and on_cancelled or
	 * ESTABLISHED asks for what is queued), so a wake per frame only
	 * cost it a trip round its loop.
	 */
	wake_lws = l->out_head == NULL;
	if (l->out_tail != NULL)
		l->out_tail->next = m;
	else
		l->out_head = m;
	l->out_tail = m;
	l->out_bytes += m->len;
	m = NULL;
	wake_lws = wake_lws && l->ctx_alive;
 out:
	pthread_mutex_unlock(&l->mu);
	/* after the unlock: the lws thread, woken, takes mu at once */
	if (r == 0 && wake_lws)
		lws_cancel_service(l->ctx);
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

	pthread_mutex_lock(&l->mu);
	if ((m = l->in_head) != NULL) {
		l->in_head = m->next;
		if (l->in_head == NULL)
			l->in_tail = NULL;
		l->in_bytes -= m->len;
		m->next = NULL;
	} else
		l->wake_sent = 0; /* the reader caught up: wake it again */
	if (l->paused && !l->want_resume && l->in_bytes < RX_LOW &&
	    l->ctx_alive) {
		l->want_resume = 1;
		lws_cancel_service(l->ctx);
	}
	pthread_mutex_unlock(&l->mu);
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
		if (l->ctx_alive)
			lws_cancel_service(l->ctx);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
	}
	if (l->ctx != NULL)
		lws_context_destroy(l->ctx);
	while ((o = l->out_head) != NULL) {
		l->out_head = o->next;
		free(o->buf);
		free(o);
	}
	while ((m = l->in_head) != NULL) {
		l->in_head = m->next;
		free(m);
	}
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l->host);
	free(l->rx);
	free(l);
}
