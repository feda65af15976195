/*
 * ws_conn.h: opening the wss connection to bzproxy for ws_link.c: a
 * non-blocking TCP connect, the TLS handshake (TLS 1.2+, bzproxy's
 * certificate checked against the CA file and its host name or IP), and
 * the websocket upgrade; a failure sorted into a link_fail.h kind.
 */
#ifndef BZ_WS_CONN_H
#define BZ_WS_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "link_fail.h"

struct bz_ws_conn {
	int fd;
	SSL *ssl;
	char cert_err[96]; /* OpenSSL's first complaint about the chain */
};

/* Called when cancel_fd is readable during the opening: 1 to give up. */
typedef int (*bz_ws_cancel_fn)(void *arg);

/* A TLS client context trusting only ca_file (the system's CAs when
 * NULL): NULL when the file does not load. */
SSL_CTX *bz_ws_tls_ctx(const char *ca_file);

/*
 * Connect, handshake and upgrade within timeout_ms. 0: open, with the
 * bytes that came after the response head (*rxlen, up to rxcap) in rx.
 * BZ_ERR_INVALID: failed, f says why. 1: cancelled. c is closed on any
 * result but 0.
 */
int bz_ws_conn_open(struct bz_ws_conn *c, SSL_CTX *ctx, const char *host,
    int port, const char *path, const char *protocol, int cancel_fd,
    bz_ws_cancel_fn cancel, void *arg, int timeout_ms, uint8_t *rx,
    size_t rxcap, size_t *rxlen, struct bz_link_failure *f);

/* Free the TLS state and close the socket (no close_notify). */
void bz_ws_conn_close(struct bz_ws_conn *c);

#endif
