/*
 * link_fail.h: why a wss link to bzproxy failed, as a kind a caller can
 * act on (try again later, or give up at once with the reason), and the
 * errno of a failed TCP connect.
 */
#ifndef BZ_LINK_FAIL_H
#define BZ_LINK_FAIL_H

#include <stddef.h>

#define BZ_LINK_DETAIL_LEN 160

enum bz_link_fail {
	BZ_LINK_FAIL_NONE = 0,  /* open, or still connecting */
	BZ_LINK_FAIL_CONNECT,   /* no TCP connection (refused, unreachable,
	                         * name lookup) */
	BZ_LINK_FAIL_TLS,       /* the TLS handshake was cut off */
	BZ_LINK_FAIL_CERT,      /* bzproxy's certificate did not verify */
	BZ_LINK_FAIL_HTTP,      /* the websocket upgrade got an HTTP status */
	BZ_LINK_FAIL_HANDSHAKE, /* any other websocket handshake failure */
	BZ_LINK_FAIL_LOST,      /* it was open, then closed */
	BZ_LINK_FAIL_LOCAL,     /* we ended it (protocol error, no memory) */
};

struct bz_link_failure {
	enum bz_link_fail kind;
	int http_status;                  /* BZ_LINK_FAIL_HTTP */
	char detail[BZ_LINK_DETAIL_LEN];  /* "connection refused", ... */
};

/* 1 when the same connection may well work a little later: bzproxy is
 * restarting, or a load balancer in front of it has no backend yet
 * (HTTP 502, 503, 504). A certificate that does not verify, a refusal
 * (401, 403, any other status) or a handshake that makes no sense will
 * not change by waiting: 0. */
int bz_link_fail_transient(const struct bz_link_failure *f);

#endif
