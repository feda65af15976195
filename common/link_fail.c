/* link_fail.c: kinds of link failure; see link_fail.h. */
#include "link_fail.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "buf.h"
#include "util.h"

int
bz_link_fail_transient(const struct bz_link_failure *f)
{
	switch (f->kind) {
	case BZ_LINK_FAIL_CONNECT:
	case BZ_LINK_FAIL_TLS:
	case BZ_LINK_FAIL_LOST:
		return 1;
	case BZ_LINK_FAIL_HTTP:
		return f->http_status == 502 || f->http_status == 503 ||
		    f->http_status == 504;
	default:
		return 0;
	}
}

/* strerror(e) starting in lower case, as the rest of the line is. */
static void
cause(int e, char *why, size_t len)
{
	snprintf(why, len, "%s", strerror(e));
	if (len > 0)
		why[0] = (char)tolower((unsigned char)why[0]);
}

/* One non-blocking connect to ai, waited for at most timeout_ms: 0 or
 * the errno. */
static int
try_connect(const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, e = 0, r;

	if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, ai->ai_protocol)) < 0)
		return errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		e = errno;
		if (e == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			do {
				r = poll(&pfd, 1, timeout_ms);
			} while (r < 0 && errno == EINTR);
			if (r == 0)
				e = ETIMEDOUT;
			else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR,
			    &e, &sl) != 0)
				e = errno;
		}
	}
	close(fd);
	return e;
}

int
bz_tcp_probe(const char *host, int port, int timeout_ms, char *why,
    size_t len)
{
	struct addrinfo hints, *res = NULL, *ai;
	char ps[8];
	int r, e = ECONNREFUSED;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof(ps), "%d", port);
	if ((r = getaddrinfo(host, ps, &hints, &res)) != 0) {
		snprintf(why, len, "cannot look up %s: %s", host,
		    gai_strerror(r));
		return BZ_ERR_INVALID;
	}
	/* as lws does: each address in turn; the last one's error counts */
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if ((e = try_connect(ai, timeout_ms)) == 0)
			break;
	freeaddrinfo(res);
	if (e == 0) {
		if (len > 0)
			why[0] = '\0';
		return BZ_OK;
	}
	cause(e, why, len);
	return BZ_ERR_INVALID;
}
