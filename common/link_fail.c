/* link_fail.c: kinds of link failure; see link_fail.h. */
#include "link_fail.h"

#include <stdio.h>
#include <string.h>

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
