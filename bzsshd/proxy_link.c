/*
 * proxy_link.c: one SSH connection's link to bzproxy. While bzproxy
 * restarts, bzsshd cannot reach it (refused), loses it before hello_ok,
 * or finds it back before the target's agent has reconnected; until the
 * session is set up nothing has run on the target, so a new link with a
 * new SYN is safe. bzsshd tries again with backoff for proxy_retry
 * (bzsshd.yaml), saying so on stderr, which ssh shows. What waiting will
 * not change (a certificate that does not verify, HTTP 401/403, a policy
 * refusal) ends the connection at once with its reason. A link lost after
 * SSH auth is not replaced: the agent ends the session's commands.
 */
#include "ssh_conn.h"

#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "backoff.h"
#include "log.h"
#include "util.h"

#define RETRY_BASE_MS 1000
#define RETRY_CAP_MS 5000

void
bz_proxy_link_start(struct bz_conn *c)
{
	char err[BZSSHD_ERRLEN] = "";
	uint8_t sk[64];

	/* a new SYN for a new link: its own random and key exchange */
	memcpy(sk, c->chain.sk, sizeof(sk));
	bz_chain_clear(&c->chain);
	bz_chain_init(&c->chain, sk);
	sodium_memzero(sk, sizeof(sk));
	c->hello_sent = 0;
	c->retry.links++;
	c->retry.next_ms = 0;
	if (bz_link_start_served(c->sess->proxy, "/v1/client",
	    c->sess->ca_file, c->wake_fd, &c->link, err, sizeof(err)) != 0) {
		c->link = NULL;
		c->auth = BZ_AUTH_DENIED;
		snprintf(c->reason, sizeof(c->reason), "cannot use bzproxy "
		    "(%.200s): %.250s", c->sess->proxy, err);
	}
}

/* bzproxy's answer when the target's agent is not connected to it
 * (bzproxy/client_auth.c): after a restart, agents reconnect too. */
static int
target_not_back(const struct bz_conn *c)
{
	char want[300];

	snprintf(want, sizeof(want), "target %s is not connected",
	    c->target->host);
	return c->proxy_said_no && c->retry.proxy_was_down &&
	    strncmp(c->reason, want, strlen(want)) == 0;
}

/* What happened, naming bzproxy, into what (no trailing punctuation).
 * 1 when it may pass, 0 when not, -1 when there is nothing to explain:
 * the link is still up or we ended it, and c->reason already says why. */
static int
describe(struct bz_conn *c, char *what, size_t len)
{
	struct bz_link_failure f;
	const char *proxy = c->sess->proxy;

	if (target_not_back(c)) {
		snprintf(what, len, "bzproxy (%s) is back, but target %s has "
		    "not reconnected to it yet", proxy, c->target->host);
		return 1;
	}
	if (c->proxy_said_no || c->link == NULL)
		return -1;
	if (c->proxy_going[0] != '\0' && c->link_lost) {
		snprintf(what, len, "bzproxy (%s) is restarting (%s)", proxy,
		    c->proxy_going);
		return 1;
	}
	bz_link_get_failure(c->link, &f);
	switch (f.kind) {
	case BZ_LINK_FAIL_NONE:
	case BZ_LINK_FAIL_LOCAL:
		return -1;
	case BZ_LINK_FAIL_LOST:
		snprintf(what, len, "lost the link to bzproxy (%s) before the "
		    "session was set up (%s)", proxy, f.detail);
		break;
	default:
		if (bz_link_fail_transient(&f))
			snprintf(what, len, "bzproxy (%s) is not reachable: %s",
			    proxy, f.detail);
		else
			snprintf(what, len, "cannot use bzproxy (%s): %s",
			    proxy, f.detail);
	}
	return bz_link_fail_transient(&f);
}

/* Before retry number attempt: between half and all of the exponential
 * ceiling, so that no try comes at once and many clients spread out. */
static int64_t
retry_delay(unsigned attempt)
{
	uint32_t ceil = bz_backoff_ceiling(attempt, RETRY_BASE_MS,
	    RETRY_CAP_MS);

	return ceil / 2 + bz_backoff_delay(0, ceil / 2, ceil / 2);
}

int
bz_proxy_link_retry(struct bz_conn *c)
{
	char what[BZSSHD_ERRLEN];
	int64_t now = bz_now_ms(), delay;
	int may_pass;

	/* a denial of our own (a protocol error, the target's key) stands
	 * even when the link goes after it */
	if (c->authed || c->quit || (c->auth == BZ_AUTH_DENIED ?
	    !c->proxy_said_no : !c->link_lost))
		return 0;
	if ((may_pass = describe(c, what, sizeof(what))) < 0)
		return 0;
	if (c->retry.give_up_ms == 0)
		c->retry.give_up_ms = now + c->retry.window_ms;
	if (!may_pass || now >= c->retry.give_up_ms) {
		if (target_not_back(c))
			return 0; /* bzproxy's own words are the reason */
		if (!may_pass || c->retry.window_ms == 0)
			snprintf(c->reason, sizeof(c->reason), "%s", what);
		else
			snprintf(c->reason, sizeof(c->reason), "%.400s; gave up "
			    "after %llds", what,
			    (long long)(c->retry.window_ms / 1000));
		c->proxy_said_no = 0; /* our words, not bzproxy's */
		return 0;
	}
	if (!target_not_back(c))
		c->retry.proxy_was_down = 1;
	delay = retry_delay(c->retry.attempt++);
	if (now + delay > c->retry.give_up_ms)
		delay = c->retry.give_up_ms - now; /* one last try then */
	fprintf(stderr, "bzsshd: %s; retrying in %.1fs (gives up after "
	    "%llds)\n", what, (double)delay / 1000.0,
	    (long long)(c->retry.window_ms / 1000));
	bz_link_free(c->link);
	c->link = NULL;
	c->link_lost = 0;
	c->proxy_said_no = 0;
	c->auth = BZ_AUTH_PENDING;
	c->reason[0] = '\0';
	c->proxy_going[0] = '\0';
	c->retry.next_ms = now + delay;
	return 1;
}

int
bz_proxy_link_tick(struct bz_conn *c)
{
	int64_t now;

	if (c->retry.next_ms == 0)
		return -1;
	if ((now = bz_now_ms()) < c->retry.next_ms)
		return (int)(c->retry.next_ms - now);
	bz_debug("trying bzproxy again (%u)", c->retry.attempt);
	bz_proxy_link_start(c);
	return -1;
}

void
bz_proxy_link_explain(struct bz_conn *c)
{
	struct bz_link_failure f;

	bz_link_get_state(c->link, c->reason, sizeof(c->reason));
	if (!c->authed || c->refused)
		return; /* bz_proxy_link_retry words it */
	bz_link_get_failure(c->link, &f);
	if (f.kind == BZ_LINK_FAIL_LOST)
		snprintf(c->reason, sizeof(c->reason), "lost the link to "
		    "bzproxy (%.200s: %.150s); the remote command's state is "
		    "unknown", c->sess->proxy, f.detail);
}
