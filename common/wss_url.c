/* wss_url.c: the proxy URL taken apart (see wss_url.h). */
#include "wss_url.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

int
bz_wss_url_parse(const char *url, char **host, int *port, char *err,
    size_t errlen)
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
