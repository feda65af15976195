/*
 * wss_url.h: the proxy URL (wss://HOST[:PORT][/PATH]) as the clients read
 * it: ws_link (bzsshd, bzagent) and bench/bzload.
 */
#ifndef BZ_WSS_URL_H
#define BZ_WSS_URL_H

#include <stddef.h>

/*
 * Split wss://HOST[:PORT][/...] into host (malloc'ed, 1 to 255 bytes) and
 * port (1 to 65535, 443 when absent); what follows the port must be
 * nothing or a path, which is not looked at. 0, BZ_ERR_INVALID with the
 * reason in err, or BZ_ERR_ALLOC.
 */
int bz_wss_url_parse(const char *url, char **host, int *port, char *err,
    size_t errlen);

#endif
