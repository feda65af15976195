/* ws_conn.c: TCP, TLS and the websocket upgrade to bzproxy; see
 * ws_conn.h. */
#include "ws_conn.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "log.h"
#include "ws_upgrade.h"

enum { IO_OK = 0, IO_TIMEOUT = -1, IO_CANCEL = -2 };
#define READ_AHEAD (64u * 1024) /* OpenSSL's read buffer per read() */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events, the deadline passes, or the caller
 * cancels (cancel_fd readable and cancel says so). */
static int
wait_fd(int fd, short events, int cancel_fd, bz_ws_cancel_fn cancel,
    void *arg, int64_t deadline)
{
	struct pollfd p[2];
	int64_t left;
	int r;

	for (;;) {
		if ((left = deadline - now_ms()) <= 0)
			return IO_TIMEOUT;
		p[0].fd = fd;
		p[0].events = events;
		p[0].revents = 0;
		p[1].fd = cancel_fd;
		p[1].events = POLLIN;
		p[1].revents = 0;
		r = poll(p, cancel_fd >= 0 ? 2 : 1, (int)left);
		if (r < 0 && errno != EINTR)
			return IO_TIMEOUT;
		if (r > 0 && p[1].revents != 0 && cancel != NULL &&
		    cancel(arg))
			return IO_CANCEL;
		if (r > 0 && p[0].revents != 0)
			return IO_OK;
	}
}

static void
fail_set(struct bz_link_failure *f, enum bz_link_fail kind,
    const char *detail)
{
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	snprintf(f->detail, sizeof(f->detail), "%s", detail);
}

/* strerror(e) in lower case, as the rest of the line is. */
static void
fail_errno(struct bz_link_failure *f, int e)
{
	fail_set(f, BZ_LINK_FAIL_CONNECT, strerror(e));
	f->detail[0] = (char)tolower((unsigned char)f->detail[0]);
}

/* Each address in turn; the last one's error counts. */
static int
tcp_connect(struct bz_ws_conn *c, const char *host, int port, int cancel_fd,
    bz_ws_cancel_fn cancel, void *arg, int64_t deadline,
    struct bz_link_failure *f)
{
	struct addrinfo hints, *res = NULL, *ai;
	socklen_t sl;
	char ps[8], d[BZ_LINK_DETAIL_LEN];
	int r, e = ECONNREFUSED, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof(ps), "%d", port);
	if ((r = getaddrinfo(host, ps, &hints, &res)) != 0) {
		snprintf(d, sizeof(d), "cannot look up %s: %s", host,
		    gai_strerror(r));
		fail_set(f, BZ_LINK_FAIL_CONNECT, d);
		return BZ_ERR_INVALID;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (c->fd < 0) {
			e = errno;
			continue;
		}
		e = 0;
		if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			e = errno;
			if (e == EINPROGRESS) {
				r = wait_fd(c->fd, POLLOUT, cancel_fd, cancel,
				    arg, deadline);
				sl = sizeof(e);
				if (r == IO_CANCEL) {
					freeaddrinfo(res);
					return 1;
				}
				if (r == IO_TIMEOUT)
					e = ETIMEDOUT;
				else if (getsockopt(c->fd, SOL_SOCKET,
				    SO_ERROR, &e, &sl) != 0)
					e = errno;
			}
		}
		if (e == 0)
			break;
		close(c->fd);
		c->fd = -1;
		if (e == ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (e != 0) {
		fail_errno(f, e);
		return BZ_ERR_INVALID;
	}
	/* frames are whole messages already: no Nagle delay (a keystroke) */
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return BZ_OK;
}

/* OpenSSL's verdict on each certificate: keep the first complaint (the
 * verdict itself stays OpenSSL's). */
static int
note_cert(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	struct bz_ws_conn *c = ssl != NULL ? SSL_get_app_data(ssl) : NULL;

	if (!ok && c != NULL && c->cert_err[0] == '\0')
		snprintf(c->cert_err, sizeof(c->cert_err), "%s",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
	return ok;
}

SSL_CTX *
bz_ws_tls_ctx(const char *ca_file)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	/* A configured CA is the only one trusted for bzproxy (and skipping
	 * the system bundle saves parsing ~150 certificates per ssh). */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    (ca_file != NULL ?
	    SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(ctx) != 1)) {
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, note_cert);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* one read() for several TLS records, not two per record */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, READ_AHEAD);
	return ctx;
}

/* Wait for what the last SSL call asked for: IO_OK, or why not. */
static int
wait_ssl(struct bz_ws_conn *c, int r, int cancel_fd, bz_ws_cancel_fn cancel,
    void *arg, int64_t deadline)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return wait_fd(c->fd, POLLIN, cancel_fd, cancel, arg,
		    deadline);
	case SSL_ERROR_WANT_WRITE:
		return wait_fd(c->fd, POLLOUT, cancel_fd, cancel, arg,
		    deadline);
	default:
		return 1; /* failed */
	}
}

static int
tls_handshake(struct bz_ws_conn *c, SSL_CTX *ctx, const char *host,
    int cancel_fd, bz_ws_cancel_fn cancel, void *arg, int64_t deadline,
    struct bz_link_failure *f)
{
	X509_VERIFY_PARAM *vp;
	struct in6_addr a;
	char d[BZ_LINK_DETAIL_LEN];
	int r, w, ip;

	if ((c->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		goto tls_fail;
	SSL_set_app_data(c->ssl, c);
	/* bzproxy's certificate must name the host (or IP) we dialled */
	vp = SSL_get0_param(c->ssl);
	ip = inet_pton(AF_INET, host, &a) == 1 ||
	    inet_pton(AF_INET6, host, &a) == 1;
	X509_VERIFY_PARAM_set_hostflags(vp,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1 :
	    (X509_VERIFY_PARAM_set1_host(vp, host, 0) != 1 ||
	    SSL_set_tlsext_host_name(c->ssl, host) != 1))
		goto tls_fail;
	for (;;) {
		ERR_clear_error();
		if ((r = SSL_connect(c->ssl)) == 1)
			return BZ_OK;
		w = wait_ssl(c, r, cancel_fd, cancel, arg, deadline);
		if (w == IO_CANCEL)
			return 1;
		if (w != IO_OK)
			break;
	}
	if (c->cert_err[0] != '\0' ||
	    SSL_get_verify_result(c->ssl) != X509_V_OK) {
		if (c->cert_err[0] == '\0')
			snprintf(c->cert_err, sizeof(c->cert_err), "%s",
			    X509_verify_cert_error_string(
			    SSL_get_verify_result(c->ssl)));
		snprintf(d, sizeof(d), "its certificate did not verify: %s",
		    c->cert_err);
		fail_set(f, BZ_LINK_FAIL_CERT, d);
		ERR_clear_error();
		return BZ_ERR_INVALID;
	}
 tls_fail:
	ERR_clear_error();
	fail_set(f, BZ_LINK_FAIL_TLS, "the TLS handshake was cut off");
	return BZ_ERR_INVALID;
}

/* Send the request, read the response head; leftovers go to rx. */
static int
ws_upgrade(struct bz_ws_conn *c, const char *host, int port,
    const char *path, const char *protocol, int cancel_fd,
    bz_ws_cancel_fn cancel, void *arg, int64_t deadline, uint8_t *rx,
    size_t rxcap, size_t *rxlen, struct bz_link_failure *f)
{
	char req[1024], key[BZ_WS_KEY_LEN + 1], why[96];
	char d[BZ_LINK_DETAIL_LEN];
	size_t off = 0, len, got = 0, head = 0;
	int r, w, status = 0, res = BZ_WS_UP_MORE;

	if (bz_ws_upgrade_request(host, port, path, protocol, key, req,
	    sizeof(req)) != 0) {
		fail_set(f, BZ_LINK_FAIL_HANDSHAKE, "websocket handshake "
		    "failed (request too long)");
		return BZ_ERR_INVALID;
	}
	len = strlen(req);
	while (off < len) {
		ERR_clear_error();
		if ((r = SSL_write(c->ssl, req + off, (int)(len - off))) > 0) {
			off += (size_t)r;
			continue;
		}
		if ((w = wait_ssl(c, r, cancel_fd, cancel, arg, deadline))
		    == IO_CANCEL)
			return 1;
		if (w != IO_OK)
			goto lost;
	}
	/* rx holds the head and whatever frames came with it */
	while (res == BZ_WS_UP_MORE) {
		if (got == rxcap)
			break;
		ERR_clear_error();
		r = SSL_read(c->ssl, rx + got, (int)(rxcap - got));
		if (r > 0) {
			got += (size_t)r;
			res = bz_ws_upgrade_parse(rx, got, key, protocol,
			    &status, &head, why, sizeof(why));
			continue;
		}
		if ((w = wait_ssl(c, r, cancel_fd, cancel, arg, deadline))
		    == IO_CANCEL)
			return 1;
		if (w != IO_OK)
			goto lost;
	}
	if (res == BZ_WS_UP_STATUS) {
		fail_set(f, BZ_LINK_FAIL_HTTP, "");
		f->http_status = status;
		/* a 503 is bzproxy stopping or at one of its link limits */
		snprintf(f->detail, sizeof(f->detail), "HTTP %d at the "
		    "websocket upgrade%s", status, status == 503 ? " (bzproxy "
		    "is stopping, or at a link limit: limits.max_links, "
		    "preauth_links or preauth_per_address)" : "");
		return BZ_ERR_INVALID;
	}
	if (res != BZ_OK) {
		snprintf(d, sizeof(d), "websocket handshake failed (%s)",
		    res == BZ_WS_UP_BAD ? why : "response head too long");
		fail_set(f, BZ_LINK_FAIL_HANDSHAKE, d);
		return BZ_ERR_INVALID;
	}
	memmove(rx, rx + head, got - head);
	*rxlen = got - head;
	return BZ_OK;
 lost:
	ERR_clear_error();
	fail_set(f, BZ_LINK_FAIL_HANDSHAKE, status == 0 && got == 0 ?
	    "websocket handshake failed (connection closed)" :
	    "websocket handshake failed (response cut off)");
	return BZ_ERR_INVALID;
}

int
bz_ws_conn_open(struct bz_ws_conn *c, SSL_CTX *ctx, const char *host,
    int port, const char *path, const char *protocol, int cancel_fd,
    bz_ws_cancel_fn cancel, void *arg, int timeout_ms, uint8_t *rx,
    size_t rxcap, size_t *rxlen, struct bz_link_failure *f)
{
	int64_t deadline = now_ms() + timeout_ms;
	int r;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	*rxlen = 0;
	if ((r = tcp_connect(c, host, port, cancel_fd, cancel, arg, deadline,
	    f)) == 0 &&
	    (r = tls_handshake(c, ctx, host, cancel_fd, cancel, arg, deadline,
	    f)) == 0 &&
	    (r = ws_upgrade(c, host, port, path, protocol, cancel_fd, cancel,
	    arg, deadline, rx, rxcap, rxlen, f)) == 0)
		return BZ_OK;
	bz_ws_conn_close(c);
	return r;
}

void
bz_ws_conn_close(struct bz_ws_conn *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
