/*
 * ws_upgrade.h: the client side of the websocket upgrade (RFC 6455 4.1):
 * the GET request with a fresh key, and the check of the server's answer
 * (status line and headers, parsed with bounds through common/buf.h).
 */
#ifndef BZ_WS_UPGRADE_H
#define BZ_WS_UPGRADE_H

#include <stddef.h>
#include <stdint.h>

#define BZ_WS_KEY_LEN 24        /* base64 of 16 random bytes */
#define BZ_WS_HEAD_MAX 8192     /* a longer response head is refused */

/* Outcomes of bz_ws_upgrade_parse besides 0 (101, all checked). */
enum bz_ws_upgrade_res {
	BZ_WS_UP_MORE = 1,      /* the head is not complete yet */
	BZ_WS_UP_STATUS = 2,    /* a status other than 101: *status */
	BZ_WS_UP_BAD = 3,       /* malformed, or the checks failed: why */
};

/*
 * Write the upgrade request for host:port/path offering protocol into
 * out (NUL-terminated) and its key into key: 0, or BZ_ERR_TOO_BIG.
 */
int bz_ws_upgrade_request(const char *host, int port, const char *path,
    const char *protocol, char key[BZ_WS_KEY_LEN + 1], char *out,
    size_t outlen);

/*
 * Look at the first len bytes the server sent. Once the head is complete
 * (*head_len bytes, frames may follow), its status is in *status; for 101
 * Upgrade, Connection, Sec-WebSocket-Accept (from key) and
 * Sec-WebSocket-Protocol (== protocol) are checked.
 */
int bz_ws_upgrade_parse(const uint8_t *data, size_t len, const char *key,
    const char *protocol, int *status, size_t *head_len, char *why,
    size_t whylen);

#endif
