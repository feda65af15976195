/*
 * proxy_ask.c: one request to bzproxy on a fresh /v1/client link and its
 * one answer on channel 0 (login, whoami), for the commands that are not
 * an SSH connection.
 */
#include "bzsshd.h"

#include <stdlib.h>
#include <time.h>

#include "util.h"
#include "wire.h"

#define ASK_WAIT_S 30

int
bz_proxy_ask(const char *proxy, const char *ca, const json_t *req,
    json_t **ans, char *err, size_t errlen)
{
	struct bz_link *l = NULL;
	struct bz_link_msg *m;
	struct bz_frame f;
	time_t deadline = time(NULL) + ASK_WAIT_S;
	int r, closed;

	*ans = NULL;
	if ((r = bz_link_start(proxy, "/v1/client", ca, -1, &l, err,
	    errlen)) != 0 || (r = bz_link_send_json(l, 0, req)) != 0)
		goto out;
	r = BZ_ERR_INVALID;
	for (;;) {
		/* the state before the queue: an answer sent just before a
		 * close is queued by the time the close shows */
		closed = bz_link_get_state(l, err, errlen) == BZ_LINK_CLOSED;
		if ((m = bz_link_recv(l)) != NULL) {
			if (bz_frame_decode(m->data, m->len, &f) == 0 &&
			    f.type == BZ_FRAME_CONTROL && f.channel_id == 0 &&
			    f.flags == 0)
				*ans = bz_json_parse_object(f.payload, f.length,
				    NULL, 0);
			free(m);
			if (*ans == NULL)
				bz_errf(err, errlen, "protocol error from "
				    "bzproxy");
			else
				r = BZ_OK;
			goto out;
		}
		if (closed)
			goto out;
		if (time(NULL) > deadline) {
			bz_errf(err, errlen, "no answer from bzproxy");
			goto out;
		}
		bz_link_wait(l, 200);
	}
 out:
	bz_link_free(l);
	return r;
}
