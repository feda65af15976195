/*
 * proxy_ask.c: one request to bzproxy on a fresh /v1/client link and its
 * one answer on channel 0 (login, whoami), for the commands that are not
 * an SSH connection. The request is built once bzproxy's challenge is in,
 * since it signs it (common/pop.h).
 */
#include "bzsshd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain.h"
#include "util.h"
#include "wire.h"

#define ASK_WAIT_S 30

/* The next CONTROL message on channel 0: 1 with *o, 0 when none yet, -1
 * when the link closed (err says why) or sent something else. */
static int
next_control(struct bz_link *l, json_t **o, char *err, size_t errlen)
{
	struct bz_link_msg *m;
	struct bz_frame f;
	int closed;

	/* the state before the queue: a message sent just before a close
	 * is queued by the time the close shows */
	closed = bz_link_get_state(l, err, errlen) == BZ_LINK_CLOSED;
	if ((m = bz_link_recv(l)) == NULL)
		return closed ? -1 : 0;
	*o = NULL;
	if (bz_frame_decode(m->data, m->len, &f) == 0 &&
	    f.type == BZ_FRAME_CONTROL && f.channel_id == 0 && f.flags == 0)
		*o = bz_json_parse_object(f.payload, f.length, NULL, 0);
	free(m);
	if (*o == NULL) {
		bz_errf(err, errlen, "protocol error from bzproxy");
		return -1;
	}
	return 1;
}

/* Wait (bounded) for the next control message. */
static int
wait_control(struct bz_link *l, time_t deadline, json_t **o, char *err,
    size_t errlen)
{
	int r;

	while ((r = next_control(l, o, err, errlen)) == 0) {
		if (time(NULL) > deadline) {
			bz_errf(err, errlen, "no answer from bzproxy");
			return -1;
		}
		bz_link_wait(l, 200);
	}
	return r > 0 ? 0 : -1;
}

int
bz_proxy_ask(const char *proxy, const char *ca, bz_request_builder build,
    void *arg, json_t **ans, char *err, size_t errlen)
{
	uint8_t challenge[BZ_POP_CHALLENGE_LEN];
	struct bz_link *l = NULL;
	time_t deadline = time(NULL) + ASK_WAIT_S;
	json_t *ch = NULL, *req = NULL;
	int r;

	*ans = NULL;
	if ((r = bz_link_start(proxy, "/v1/client", ca, -1, &l, err,
	    errlen)) != 0)
		goto out;
	r = BZ_ERR_INVALID;
	if (wait_control(l, deadline, &ch, err, errlen) != 0)
		goto out;
	if (bz_challenge_parse(ch, challenge) != 0) {
		bz_errf(err, errlen, "protocol error from bzproxy (no "
		    "challenge)");
		goto out;
	}
	if ((req = build(challenge, arg)) == NULL) {
		bz_errf(err, errlen, "cannot build the request");
		goto out;
	}
	if ((r = bz_link_send_json(l, 0, req)) != 0)
		goto out;
	r = wait_control(l, deadline, ans, err, errlen) == 0 ? BZ_OK :
	    BZ_ERR_INVALID;
 out:
	json_decref(ch);
	if (req != NULL) {
		json_object_clear(req); /* may hold tokens */
		json_decref(req);
	}
	bz_link_free(l);
	return r;
}

int
bz_challenge_parse(const json_t *o, uint8_t challenge[BZ_POP_CHALLENGE_LEN])
{
	const char *t = bz_json_str(o, "t");

	if (t == NULL || strcmp(t, "challenge") != 0)
		return BZ_ERR_INVALID;
	return bz_json_b64(o, "nonce", challenge, BZ_POP_CHALLENGE_LEN);
}

int
bz_sign_pop(json_t *o, const uint8_t sk[64], const char *t,
    const uint8_t challenge[BZ_POP_CHALLENGE_LEN], const char *const *fields,
    size_t n)
{
	char *sig = NULL;
	int r;

	if ((r = bz_pop_sign(sk, t, challenge, fields, n, &sig)) == 0)
		r = json_object_set_new(o, "sig", json_string(sig)) == 0 ?
		    BZ_OK : BZ_ERR_ALLOC;
	free(sig);
	return r;
}
