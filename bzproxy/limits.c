/*
 * limits.c: the limits of bzproxy's config (limits.*, docs/commands.md).
 * Each check answers 0, or -1 with a reason for the user that names the
 * limit and its config key; the caller refuses and audits. Links over
 * max_links are refused at the websocket handshake, before any state is
 * kept, and recorded at most once a second (with how many there were),
 * so that a flood of them cannot become a flood of fsyncs.
 */
#include "bzproxy.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

int
bzp_limit_sessions(const struct bzp_client *cl, char *why, size_t wl)
{
	const struct bzp_server *s = cl->conn->srv;
	const struct bzp_conn *c;
	const struct bzp_client *o;
	long n = 0;

	for (c = s->conns; c != NULL; c = c->next) {
		o = c->client;
		if (o != NULL && o != cl && o->user != NULL &&
		    (o->state == BZP_CL_WAIT_SYNACK ||
		    o->state == BZP_CL_READY) && strcmp(o->user, cl->user) == 0)
			n++;
	}
	if (n < s->cfg->limits.sessions_per_user)
		return 0;
	snprintf(why, wl, "%.100s already has %ld sessions open, as many as "
	    "bzproxy allows one user (%s in its config): end one first",
	    cl->user, n, BZP_LIMIT_SESSIONS);
	return -1;
}

int
bzp_limit_channels(const struct bzp_client *cl, char *why, size_t wl)
{
	long max = cl->conn->srv->cfg->limits.channels_per_session;

	if ((long)cl->nchans < max)
		return 0;
	snprintf(why, wl, "this SSH connection already has %ld channels open, "
	    "as many as bzproxy allows (%s in its config)", max,
	    BZP_LIMIT_CHANNELS);
	return -1;
}

int
bzp_limit_command(const struct bzp_server *s, size_t len, char *why,
    size_t wl)
{
	long max = s->cfg->limits.command_bytes;

	if (len <= (size_t)max)
		return 0;
	snprintf(why, wl, "the command line has %zu bytes, more than the %ld "
	    "bzproxy allows (%s in its config)", len, max, BZP_LIMIT_COMMAND);
	return -1;
}

/* Record the refusals not recorded yet: the last one's peer (NULL at
 * shutdown) and reason, and how many. */
static void
record_links_refused(struct bzp_server *s, const char *peer, const char *why)
{
	bz_warn("%s: %s (%lu link(s) refused since the last such record)",
	    peer != NULL ? peer : "-", why, s->links_refused);
	bzp_audit(s, "link_refused", json_pack("{s:s?, s:s, s:s, s:s, s:I}",
	    "peer", peer, "decision", "deny", "reason", why, "limit",
	    BZP_LIMIT_LINKS, "refused", (json_int_t)s->links_refused));
	s->links_refused = 0;
}

int
bzp_limit_links(struct bzp_server *s, const char *peer, char *why, size_t wl)
{
	time_t now = time(NULL);

	if ((long)s->nconns < s->cfg->limits.max_links)
		return 0;
	snprintf(why, wl, "bzproxy holds %zu links, as many as it allows "
	    "(%s in its config): try again later", s->nconns,
	    BZP_LIMIT_LINKS);
	s->links_refused++;
	if (now != s->links_refused_at) {
		s->links_refused_at = now;
		record_links_refused(s, peer, why);
	}
	return -1;
}

void
bzp_limit_links_flush(struct bzp_server *s)
{
	char why[BZP_ERRLEN];

	if (s->links_refused == 0)
		return;
	snprintf(why, sizeof(why), "bzproxy held as many links as it allows "
	    "(%s in its config)", BZP_LIMIT_LINKS);
	record_links_refused(s, NULL, why);
}
