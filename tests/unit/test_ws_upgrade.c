/* test_ws_upgrade.c: the websocket upgrade request and the checks of the
 * server's answer (common/ws_upgrade.c), the client framing and masking
 * of ws_link (link_frame_wrap) and its proxy URL parser (bz_wss_url_parse,
 * also bzload's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "buf.h"
#include "ws_link_int.h"
#include "ws_upgrade.h"
#include "wss_url.h"

#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* What a server answers for key, computed here independently. */
static void
accept_for(const char *key, char out[29])
{
	unsigned char md[20];
	char in[128];
	unsigned int n = 0;

	snprintf(in, sizeof(in), "%s%s", key, GUID);
	assert_int_equal(EVP_Digest(in, strlen(in), md, &n, EVP_sha1(), NULL),
	    1);
	EVP_EncodeBlock((unsigned char *)out, md, 20);
}

static int
parse(const char *resp, const char *key, int *status, size_t *head)
{
	char why[96];

	return bz_ws_upgrade_parse((const uint8_t *)resp, strlen(resp), key,
	    "bz.v1", status, head, why, sizeof(why));
}

static void
test_request(void **state)
{
	char key[BZ_WS_KEY_LEN + 1], key2[BZ_WS_KEY_LEN + 1], req[1024];

	assert_int_equal(bz_ws_upgrade_request("proxy.example", 8443,
	    "/v1/client", "bz.v1", key, req, sizeof(req)), 0);
	assert_int_equal(strlen(key), BZ_WS_KEY_LEN);
	assert_non_null(strstr(req, "GET /v1/client HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "\r\nHost: proxy.example:8443\r\n"));
	assert_non_null(strstr(req, "\r\nUpgrade: websocket\r\n"));
	assert_non_null(strstr(req, "\r\nConnection: Upgrade\r\n"));
	assert_non_null(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n"));
	assert_non_null(strstr(req, "\r\nSec-WebSocket-Protocol: bz.v1\r\n"));
	assert_non_null(strstr(req, key));
	assert_int_equal(strcmp(req + strlen(req) - 4, "\r\n\r\n"), 0);
	/* a fresh key each time */
	assert_int_equal(bz_ws_upgrade_request("h", 443, "/", "bz.v1", key2,
	    req, sizeof(req)), 0);
	assert_string_not_equal(key, key2);
	assert_non_null(strstr(req, "\r\nHost: h\r\n"));
	/* too small a buffer is an error, not a cut request */
	assert_int_not_equal(bz_ws_upgrade_request("h", 443, "/", "bz.v1",
	    key, req, 40), 0);
}

static void
test_response(void **state)
{
	const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
	char acc[29], resp[1024], *big;
	size_t head;
	int status;

	accept_for(key, acc);
	/* RFC 6455's example answer */
	assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	snprintf(resp, sizeof(resp), "HTTP/1.1 101 Switching Protocols\r\n"
	    "upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: bz.v1\r\n"
	    "\r\n\x82\x01X", acc);
	assert_int_equal(parse(resp, key, &status, &head), 0);
	assert_int_equal(status, 101);
	assert_int_equal(head, strlen(resp) - 3); /* a frame followed */

	/* not all there yet */
	resp[40] = '\0';
	assert_int_equal(parse(resp, key, &status, &head), BZ_WS_UP_MORE);

	/* a wrong accept, a missing protocol, no upgrade */
	snprintf(resp, sizeof(resp), "HTTP/1.1 101 OK\r\nUpgrade: websocket"
	    "\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
	    "Sec-WebSocket-Protocol: bz.v1\r\n\r\n",
	    "s3pPLMBiTxaQ9kYGzzhZRbK+xOp=");
	assert_int_equal(parse(resp, key, &status, &head), BZ_WS_UP_BAD);
	snprintf(resp, sizeof(resp), "HTTP/1.1 101 OK\r\nUpgrade: websocket"
	    "\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
	    acc);
	assert_int_equal(parse(resp, key, &status, &head), BZ_WS_UP_BAD);
	snprintf(resp, sizeof(resp), "HTTP/1.1 101 OK\r\n"
	    "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: bz.v1\r\n"
	    "\r\n", acc);
	assert_int_equal(parse(resp, key, &status, &head), BZ_WS_UP_BAD);

	/* another status: reported as such */
	assert_int_equal(parse("HTTP/1.1 403 Forbidden\r\nContent-Length: 0"
	    "\r\n\r\n", key, &status, &head), BZ_WS_UP_STATUS);
	assert_int_equal(status, 403);
	assert_int_equal(parse("HTTP/1.1 503\r\n\r\n", key, &status, &head),
	    BZ_WS_UP_STATUS);
	assert_int_equal(status, 503);

	/* garbage */
	assert_int_equal(parse("HTTP/1.1 1x1 OK\r\n\r\n", key, &status,
	    &head), BZ_WS_UP_BAD);
	assert_int_equal(parse("SSH-2.0-x\r\n\r\n", key, &status, &head),
	    BZ_WS_UP_BAD);
	snprintf(resp, sizeof(resp), "HTTP/1.1 101 OK\r\nNoColon\r\n\r\n");
	assert_int_equal(parse(resp, key, &status, &head), BZ_WS_UP_BAD);
	/* a head that never ends is refused at the bound */
	big = malloc(BZ_WS_HEAD_MAX + 10);
	assert_non_null(big);
	memset(big, 'a', BZ_WS_HEAD_MAX + 9);
	big[BZ_WS_HEAD_MAX + 9] = '\0';
	assert_int_equal(parse(big, key, &status, &head), BZ_WS_UP_BAD);
	free(big);
}

/* Frame n bytes, then read the header back and unmask as a server. */
static void
check_wrap(size_t n)
{
	uint8_t *buf = malloc(WS_HDR_MAX + n + 1), *p = buf + WS_HDR_MAX;
	uint8_t *h, key[4];
	uint64_t len = 0;
	size_t hl, i, lb;

	assert_non_null(buf);
	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + 1);
	hl = link_frame_wrap(p, n, 2);
	assert_true(hl >= 6 && hl <= WS_HDR_MAX);
	h = p - hl;
	assert_int_equal(h[0], 0x82);     /* FIN, binary */
	assert_true(h[1] & 0x80);         /* masked, as a client must */
	lb = h[1] & 0x7f;
	if (lb < 126) {
		len = lb;
		assert_int_equal(hl, 6);
	} else if (lb == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
		assert_int_equal(hl, 8);
	} else {
		for (i = 0; i < 8; i++)
			len = len << 8 | h[2 + i];
		assert_int_equal(hl, 14);
	}
	assert_int_equal(len, n);
	memcpy(key, p - 4, 4);
	for (i = 0; i < n; i++)
		assert_int_equal(p[i] ^ key[i & 3], (uint8_t)(i * 7 + 1));
	free(buf);
}

static void
test_frame_wrap(void **state)
{
	static const size_t sizes[] = { 0, 1, 7, 9, 125, 126, 127, 65535,
	    65536, 65536 + 24 + 3 };
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_wrap(sizes[i]);
}

/* A good URL: its host and port. */
static void
url_ok(const char *url, const char *host, int port)
{
	char err[512] = "", *h = NULL;
	int p = -1;

	assert_int_equal(bz_wss_url_parse(url, &h, &p, err, sizeof(err)), 0);
	assert_non_null(h);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
	free(h);
}

/* A bad URL: refused, no host, and the reason names what is wrong. */
static void
url_bad(const char *url, const char *why)
{
	char err[512] = "", *h = NULL;
	int p;

	assert_int_equal(bz_wss_url_parse(url, &h, &p, err, sizeof(err)),
	    BZ_ERR_INVALID);
	assert_null(h);
	assert_non_null(strstr(err, why));
	assert_non_null(strstr(err, url));
}

static void
test_url(void **state)
{
	char big[300];

	(void)state;
	url_ok("wss://proxy.example:8443", "proxy.example", 8443);
	url_ok("wss://127.0.0.1:1", "127.0.0.1", 1);
	url_ok("wss://h:65535", "h", 65535);
	url_ok("wss://proxy.example", "proxy.example", 443);
	url_ok("wss://proxy.example/v1/agent", "proxy.example", 443);
	url_ok("wss://proxy.example:9000/v1/agent", "proxy.example", 9000);
	url_bad("ws://proxy.example:80", "must start with wss://");
	url_bad("https://proxy.example", "must start with wss://");
	url_bad("", "must start with wss://");
	url_bad("wss://", "bad proxy URL");
	url_bad("wss://:443", "bad proxy URL");
	url_bad("wss:///v1", "bad proxy URL");
	url_bad("wss://h:0", "bad port");
	url_bad("wss://h:65536", "bad port");
	url_bad("wss://h:-1", "bad port");
	url_bad("wss://h:", "bad port");
	url_bad("wss://h:443x", "bad port");
	url_bad("wss://h:443:1", "bad port");
	url_bad("wss://h:99999999999999999999", "bad port");
	/* 255 bytes of host fit, 256 do not */
	memcpy(big, "wss://", 6);
	memset(big + 6, 'a', 255);
	big[6 + 255] = '\0';
	url_ok(big, big + 6, 443);
	memset(big + 6, 'a', 256);
	big[6 + 256] = '\0';
	url_bad(big, "bad proxy URL");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_frame_wrap),
		cmocka_unit_test(test_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
