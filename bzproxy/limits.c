/*
 * limits.c: the limits of bzproxy's config (limits.*, docs/commands.md).
 * Each check answers 0, or -1 with a reason for the user that names the
 * limit and its config key; the caller refuses and audits. Links over
 * max_links are refused at the websocket handshake, before any state is
 * kept, and recorded at most once a second (with how many there were),
 * so that a flood of them cannot become a flood of fsyncs.
 *
 * Links not authenticated yet (no agent_ok, no hello_ok) are also limited
 * in all and per peer address, at the same place and recorded the same
 * way: anybody can open them, so they must not be able to fill bzproxy.
 * server.c bounds what each may make us hold (limits.preauth_message_bytes,
 * BZP_FIRST_MESSAGE_S). After a burst of links is gone, the memory they
 * used goes back to the system (malloc_trim): glibc keeps it otherwise.
 */
#include "bzproxy.h"

#include <malloc.h>
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

#define TRIM_DROP 64   /* links fewer than at the peak: a burst is gone */
#define TRIM_DELAY_S 2 /* and at most one trim this often */

/* Record the refusals not recorded yet: the last one's peer (NULL at
 * shutdown), reason and limit, and how many (of any limit). */
static void
record_links_refused(struct bzp_server *s, const char *peer, const char *why,
    const char *limit)
{
	bz_warn("%s: %s (%lu link(s) refused since the last such record)",
	    peer != NULL ? peer : "-", why, s->links_refused);
	bzp_audit(s, "link_refused", json_pack("{s:s?, s:s, s:s, s:s, s:I}",
	    "peer", peer, "decision", "deny", "reason", why, "limit",
	    limit, "refused", (json_int_t)s->links_refused));
	s->links_refused = 0;
}

/* One more refused link: recorded if none was this second. */
static int
refused(struct bzp_server *s, const char *peer, const char *why,
    const char *limit)
{
	time_t now = time(NULL);

	s->links_refused++;
	s->refused_limit = limit;
	if (now != s->links_refused_at) {
		s->links_refused_at = now;
		record_links_refused(s, peer, why, limit);
	}
	return -1;
}

int
bzp_limit_links(struct bzp_server *s, const char *peer, char *why, size_t wl)
{
	if ((long)s->nconns < s->cfg->limits.max_links)
		return 0;
	snprintf(why, wl, "bzproxy holds %zu links, as many as it allows "
	    "(%s in its config): try again later", s->nconns,
	    BZP_LIMIT_LINKS);
	return refused(s, peer, why, BZP_LIMIT_LINKS);
}

int
bzp_limit_preauth(struct bzp_server *s, const char *addr, char *why,
    size_t wl)
{
	const struct bzp_limits *l = &s->cfg->limits;
	const struct bzp_conn *c;
	long n = 0;

	if ((long)s->npreauth >= l->preauth_links) {
		snprintf(why, wl, "bzproxy holds %zu links that have not "
		    "logged in yet, as many as it allows (%s in its config): "
		    "try again later", s->npreauth, BZP_LIMIT_PREAUTH);
		return refused(s, addr, why, BZP_LIMIT_PREAUTH);
	}
	/* at most preauth_links to look at */
	for (c = s->preauth; c != NULL; c = c->pa_next)
		if (strcmp(c->addr, addr) == 0)
			n++;
	if (n < l->preauth_per_address)
		return 0;
	snprintf(why, wl, "bzproxy holds %ld links from %.48s that have not "
	    "logged in yet, as many as it allows one address (%s in its "
	    "config): try again later", n, addr, BZP_LIMIT_PREAUTH_ADDR);
	return refused(s, addr, why, BZP_LIMIT_PREAUTH_ADDR);
}

void
bzp_preauth_add(struct bzp_server *s, struct bzp_conn *c)
{
	c->preauth = 1;
	c->pa_prev = NULL;
	c->pa_next = s->preauth;
	if (s->preauth != NULL)
		s->preauth->pa_prev = c;
	s->preauth = c;
	s->npreauth++;
}

void
bzp_preauth_remove(struct bzp_server *s, struct bzp_conn *c)
{
	if (!c->preauth)
		return;
	c->preauth = 0;
	if (c->pa_prev != NULL)
		c->pa_prev->pa_next = c->pa_next;
	else
		s->preauth = c->pa_next;
	if (c->pa_next != NULL)
		c->pa_next->pa_prev = c->pa_prev;
	c->pa_next = c->pa_prev = NULL;
	s->npreauth--;
}

static void
on_trim(lws_sorted_usec_list_t *sul)
{
	struct bzp_server *s = lws_container_of(sul, struct bzp_server,
	    trim_timer);

	s->trim_pending = 0;
	s->trim_peak = s->nconns;
	/* free pages back to the system, also those amid the heap */
	malloc_trim(0);
	bz_debug("gave freed memory back to the system (%zu link(s) left)",
	    s->nconns);
}

void
bzp_trim_after_close(struct bzp_server *s)
{
	if (s->nconns + 1 > s->trim_peak)
		s->trim_peak = s->nconns + 1;
	if (s->trim_pending || s->stop || s->ctx == NULL ||
	    s->nconns + TRIM_DROP > s->trim_peak)
		return;
	s->trim_pending = 1;
	lws_sul_schedule(s->ctx, 0, &s->trim_timer, on_trim,
	    (lws_usec_t)TRIM_DELAY_S * LWS_US_PER_SEC);
}

void
bzp_limit_links_flush(struct bzp_server *s)
{
	char why[BZP_ERRLEN];

	if (s->links_refused == 0)
		return;
	snprintf(why, sizeof(why), "bzproxy held as many links as it allows "
	    "(%s in its config)", s->refused_limit);
	record_links_refused(s, NULL, why, s->refused_limit);
}
