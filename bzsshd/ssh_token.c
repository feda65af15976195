/*
 * ssh_token.c: a connection's ID token over its life (docs/protocol.md
 * "Long sessions"). Before the link comes up, a token due for refresh is
 * refreshed (token_refresh.c), so the SYN carries a valid one. While the
 * connection lasts (a shell, a ControlMaster that Ansible keeps), each
 * refresh is passed to the agent as a signed "token" message in the
 * session's chain: the agent then serves new requests of the session
 * until the new token expires.
 */
#include "ssh_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "backoff.h"
#include "log.h"
#include "util.h"

#define TOKEN_RETRY_MS 30000 /* after a failed refresh */

int
bz_conn_token_fresh(struct bz_conn *c, struct bz_session *s, char *why,
    size_t wl)
{
	char err[BZSSHD_ERRLEN] = "";
	time_t now = time(NULL);

	c->refresh_at = bz_token_refresh_at(s);
	if (c->refresh_at == 0 || now < c->refresh_at)
		return 0;
	if (bz_session_refresh(c->config_dir, s, err, sizeof(err)) == 0) {
		c->refresh_at = bz_token_refresh_at(s);
		return 0;
	}
	if (now < bz_token_expiry(s)) {
		/* still valid a while: go on, try again later */
		bz_warn("cannot refresh the ID token: %s", err);
		c->refresh_retry_ms = bz_now_ms() + TOKEN_RETRY_MS;
		return 0;
	}
	snprintf(why, wl, "your IdP login has expired and cannot be "
	    "refreshed (%.200s): run `bzsshd login`", err);
	return -1;
}

/* The new token to the agent, signed into the session's chain. */
static void
send_token(struct bz_conn *c, const struct bz_session *s)
{
	json_t *o = json_pack("{s:s, s:s}", "t", "token", "id_token",
	    s->id_token);
	uint8_t *msg = NULL;
	size_t n = 0;

	if (o == NULL || bz_chain_request(&c->chain, 0, o, &msg, &n) != 0 ||
	    bz_link_send_frame(c->link, BZ_FRAME_CONTROL,
	    BZ_FLAG_CLIENT_SIGNED, 0, 0, msg, n) != 0)
		bz_warn("cannot pass the refreshed ID token on");
	if (msg != NULL)
		sodium_memzero(msg, n);
	free(msg);
	json_decref(o);
}

void
bz_conn_token_tick(struct bz_conn *c)
{
	char err[BZSSHD_ERRLEN] = "";
	int64_t now_ms = bz_now_ms();

	if (!c->authed || c->refused || c->link_lost || c->link == NULL ||
	    !c->chain.anchored || c->refresh_at == 0 ||
	    time(NULL) < c->refresh_at || now_ms < c->refresh_retry_ms)
		return;
	if (bz_session_refresh(c->config_dir, c->sess, err,
	    sizeof(err)) != 0) {
		bz_warn("cannot refresh the ID token: %s (new channels end "
		    "when it expires)", err);
		c->refresh_retry_ms = now_ms + TOKEN_RETRY_MS;
		return;
	}
	c->refresh_at = bz_token_refresh_at(c->sess);
	send_token(c, c->sess);
}
