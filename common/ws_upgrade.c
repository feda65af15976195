/* ws_upgrade.c: the websocket upgrade request and response; see
 * ws_upgrade.h. */
#include "ws_upgrade.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "buf.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int
bz_ws_upgrade_request(const char *host, int port, const char *path,
    const char *protocol, char key[BZ_WS_KEY_LEN + 1], char *out,
    size_t outlen)
{
	unsigned char raw[16];
	char hostport[300];
	int n;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return BZ_ERR_INVALID;
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
	key[BZ_WS_KEY_LEN] = '\0';
	if (port == 443)
		n = snprintf(hostport, sizeof(hostport), "%s", host);
	else
		n = snprintf(hostport, sizeof(hostport), "%s:%d", host, port);
	if (n < 0 || (size_t)n >= sizeof(hostport))
		return BZ_ERR_TOO_BIG;
	n = snprintf(out, outlen, "GET %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "Sec-WebSocket-Protocol: %s\r\n"
	    "\r\n", path[0] != '\0' ? path : "/", hostport, key, protocol);
	if (n < 0 || (size_t)n >= outlen)
		return BZ_ERR_TOO_BIG;
	return BZ_OK;
}

/* Does the value (n bytes) equal s, ignoring case? */
static int
value_is(const uint8_t *v, size_t n, const char *s)
{
	return n == strlen(s) && strncasecmp((const char *)v, s, n) == 0;
}

/* Is tok one of the comma-separated tokens of the value (any case)? */
static int
value_has_token(const uint8_t *v, size_t n, const char *tok)
{
	struct bz_buf b;
	const uint8_t *p;
	size_t m;

	bz_buf_view(&b, v, n);
	while (bz_buf_avail(&b) > 0) {
		if (bz_buf_get_until(&b, ',', &p, &m) != 0)
			return 0;
		while (m > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			m--;
		}
		while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
			m--;
		if (value_is(p, m, tok))
			return 1;
	}
	return 0;
}

/* "HTTP/1.x NNN reason": the status, or -1. */
static int
status_of(const uint8_t *p, size_t n)
{
	struct bz_buf b;
	uint8_t v[9], d[3], sp;
	int i, st = 0;

	bz_buf_view(&b, p, n);
	if (bz_buf_get(&b, v, sizeof(v)) != 0 ||
	    memcmp(v, "HTTP/1.", 7) != 0 || v[8] != ' ' ||
	    bz_buf_get(&b, d, sizeof(d)) != 0)
		return -1;
	for (i = 0; i < 3; i++) {
		if (d[i] < '0' || d[i] > '9')
			return -1;
		st = st * 10 + (d[i] - '0');
	}
	if (bz_buf_avail(&b) > 0 && (bz_buf_get_u8(&b, &sp) != 0 || sp != ' '))
		return -1;
	return st < 100 ? -1 : st;
}

/* The Sec-WebSocket-Accept a server must send for key. */
static void
accept_of(const char *key, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char in[BZ_WS_KEY_LEN + sizeof(WS_GUID)];
	unsigned int mdlen = 0;

	snprintf(in, sizeof(in), "%s%s", key, WS_GUID);
	if (EVP_Digest(in, strlen(in), md, &mdlen, EVP_sha1(), NULL) != 1 ||
	    mdlen != 20) {
		out[0] = '\0';
		return;
	}
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	out[28] = '\0';
}

int
bz_ws_upgrade_parse(const uint8_t *data, size_t len, const char *key,
    const char *protocol, int *status, size_t *head_len, char *why,
    size_t whylen)
{
	struct bz_buf b;
	const uint8_t *end, *line, *v;
	char want[29];
	size_t n, vn, i, scan = len < BZ_WS_HEAD_MAX ? len : BZ_WS_HEAD_MAX;
	int upgrade = 0, conn = 0, acc = 0, proto = 0;

	*status = 0;
	*head_len = 0;
	end = scan >= 4 ? memmem(data, scan, "\r\n\r\n", 4) : NULL;
	if (end == NULL) {
		if (len >= BZ_WS_HEAD_MAX) {
			snprintf(why, whylen, "response head too long");
			return BZ_WS_UP_BAD;
		}
		return BZ_WS_UP_MORE;
	}
	*head_len = (size_t)(end - data) + 4;
	bz_buf_view(&b, data, *head_len - 2); /* each line ends in \r\n */
	if (bz_buf_get_until(&b, '\n', &line, &n) != 0 || n == 0 ||
	    line[n - 1] != '\r' || (*status = status_of(line, n - 1)) < 0) {
		*status = 0;
		snprintf(why, whylen, "bad status line");
		return BZ_WS_UP_BAD;
	}
	if (*status != 101)
		return BZ_WS_UP_STATUS;
	accept_of(key, want);
	while (bz_buf_avail(&b) > 0) {
		if (bz_buf_get_until(&b, '\n', &line, &n) != 0 || n == 0 ||
		    line[n - 1] != '\r') {
			snprintf(why, whylen, "bad header line");
			return BZ_WS_UP_BAD;
		}
		n--;
		for (i = 0; i < n && line[i] != ':'; i++)
			;
		if (i == 0 || i == n) {
			snprintf(why, whylen, "bad header line");
			return BZ_WS_UP_BAD;
		}
		v = line + i + 1;
		vn = n - i - 1;
		while (vn > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vn--;
		}
		while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
			vn--;
		if (value_is(line, i, "Upgrade"))
			upgrade = value_is(v, vn, "websocket");
		else if (value_is(line, i, "Connection"))
			conn = value_has_token(v, vn, "upgrade");
		else if (value_is(line, i, "Sec-WebSocket-Accept"))
			acc = vn == 28 && memcmp(v, want, 28) == 0;
		else if (value_is(line, i, "Sec-WebSocket-Protocol"))
			proto = vn == strlen(protocol) &&
			    memcmp(v, protocol, vn) == 0;
	}
	if (!upgrade || !conn) {
		snprintf(why, whylen, "no upgrade to websocket");
		return BZ_WS_UP_BAD;
	}
	if (!acc) {
		snprintf(why, whylen, "accept hash mismatch");
		return BZ_WS_UP_BAD;
	}
	if (!proto) {
		snprintf(why, whylen, "protocol %s not accepted", protocol);
		return BZ_WS_UP_BAD;
	}
	return BZ_OK;
}
