/*
 * connection.c: bzagent's one link to bzproxy and its poll loop.
 *
 * The loop polls the link's wake pipe (messages arrived, state changed,
 * send queue drained), the signalfd, and the children's fds. The link
 * (common/ws_link.c) runs on its own thread; when it closes, every
 * channel ends (their clients are gone) and we reconnect with jittered
 * exponential backoff. The handshake is docs/protocol.md "Agent link":
 * challenge -> agent_hello -> agent_ok | error. The JWKS cache's thread
 * also writes to the wake pipe when a fetch ends, so requests held for
 * the IdP's keys (key_wait.c) are tried again at once.
 */
#include "connection.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <sodium.h>

#include "agent_hello.h"
#include "jwks_cache.h"
#include "log.h"
#include "util.h"

#define HANDSHAKE_TIMEOUT_MS 20000
#define LOOP_MAX_WAIT_MS 1000   /* safety net: recheck everything */
#define CHILD_SHUTDOWN_GRACE_MS 1000

/* ---- link up and down ---- */

static void
link_down(struct agent *a, const char *why)
{
	int64_t now = bz_now_ms();
	uint32_t delay;
	unsigned att;

	if (a->link != NULL) {
		bz_link_free(a->link);
		a->link = NULL;
	}
	chans_link_lost(a->chans);
	key_wait_drop_all(a->held); /* nobody left to answer */
	sessions_drop_all(a->sessions);
	fwd_pool_cancel_all(a->fwd);
	if (a->phase == PH_READY) {
		/* A link that held a while was fine: start over. And the
		 * first retry after a drop is quick (<= 1 s): bzproxy was
		 * probably just restarted. */
		if (now - a->ready_at > AGENT_BACKOFF_RESET_MS)
			a->attempt = 0;
		att = a->attempt < 1 ? a->attempt : 1;
		bz_warn("lost the link to bzproxy: %s", why);
	} else {
		att = a->attempt;
		bz_warn("no link to bzproxy: %s", why);
	}
	delay = bz_backoff_delay(att, AGENT_BACKOFF_BASE_MS,
	    AGENT_BACKOFF_CAP_MS);
	if (a->attempt < 32)
		a->attempt++;
	a->retry_at = now + delay;
	a->phase = PH_DOWN;
	bz_info("reconnecting in %u ms", delay);
}

static void
link_up(struct agent *a)
{
	char err[AGENT_ERRLEN];
	int r;

	bz_debug("connecting to %s%s", a->cfg->proxy_url, a->cfg->proxy_path);
	/* served from our loop once open: no thread handoff per frame */
	r = bz_link_start_served(a->cfg->proxy_url, a->cfg->proxy_path,
	    a->cfg->ca_file, a->wake[1], &a->link, err, sizeof(err));
	a->phase = PH_CHALLENGE;
	a->deadline = bz_now_ms() + HANDSHAKE_TIMEOUT_MS;
	if (r != 0) {
		a->link = NULL;
		link_down(a, err);
	}
}

/* ---- handshake ---- */

/* challenge -> agent_hello (common/agent_hello.c). Returns 0, or -1 with
 * why filled. */
static int
on_challenge(struct agent *a, const json_t *o, char *why, size_t wl)
{
	const struct agent_config *cfg = a->cfg;
	struct bz_agent_id id = {
		.name = cfg->name, .pk = cfg->pk, .sk = cfg->sk,
		.proxy_pk = cfg->proxy_pk, .enrol_token = cfg->enrol_token,
		.version = AGENT_VERSION,
	};
	json_t *hello = NULL;
	int r;

	if ((r = bz_agent_hello_make(o, &id, &hello, why, wl)) != 0) {
		if (r == BZ_ERR_INVALID)
			bz_error("bzproxy's key is not the one pinned in %s "
			    "(proxy_public_key): refusing to talk to it",
			    cfg->path);
		return -1;
	}
	r = agent_send_json(a->link, 0, 0, hello);
	bz_agent_hello_free(hello);
	if (r != 0) {
		bz_errf(why, wl, "cannot send agent_hello");
		return -1;
	}
	a->phase = PH_HELLO_SENT;
	return 0;
}

/* agent_ok: log our labels. */
static void
on_agent_ok(struct agent *a, const json_t *o)
{
	json_t *labels = json_object_get(o, "labels"), *v;
	char text[512] = "";
	const char *k;
	size_t used = 0;

	if (json_is_object(labels))
		json_object_foreach(labels, k, v) {
			int n;

			if (!json_is_string(v) || used >= sizeof(text))
				continue;
			n = snprintf(text + used, sizeof(text) - used, "%s%s=%s",
			    used ? " " : "", k, json_string_value(v));
			if (n > 0)
				used += (size_t)n;
		}
	a->phase = PH_READY;
	a->ready_at = bz_now_ms();
	bz_info("connected to bzproxy as %s%s%s%s", a->cfg->name,
	    used ? " (labels " : "", text, used ? ")" : "");
}

/* A handshake frame. Returns 0, or -1 when the link must go. */
static int
on_handshake(struct agent *a, const struct bz_frame *f, char *why,
    size_t wl)
{
	json_t *o = NULL;
	int r = -1;

	switch (bz_agent_hs_read(f, &o, why, wl)) {
	case BZ_HS_REFUSED:
		bz_error("bzproxy refused us: %s", why);
		bz_errf(why, wl, "refused by bzproxy");
		break;
	case BZ_HS_CHALLENGE:
		if (a->phase == PH_CHALLENGE)
			r = on_challenge(a, o, why, wl);
		else
			bz_errf(why, wl, "protocol error: unexpected "
			    "\"challenge\" during the handshake");
		break;
	case BZ_HS_AGENT_OK:
		if (a->phase == PH_HELLO_SENT) {
			on_agent_ok(a, o);
			r = 0;
		} else
			bz_errf(why, wl, "protocol error: unexpected "
			    "\"agent_ok\" during the handshake");
		break;
	case BZ_HS_BAD:
		break;
	}
	json_decref(o);
	return r;
}

/* One message from the link, in *mp (taken, set to NULL, when held for
 * the IdP's keys). Returns 0, or -1 when the link must go. */
static int
on_message(struct agent *a, struct bz_link_msg **mp, char *why, size_t wl)
{
	struct bz_frame f;
	int r;

	if ((r = bz_frame_decode((*mp)->data, (*mp)->len, &f)) != 0) {
		bz_errf(why, wl, "protocol error: bad frame from bzproxy (%s)",
		    bz_err_str(r));
		return -1;
	}
	if (a->phase != PH_READY)
		return on_handshake(a, &f, why, wl);
	dispatch_frame(a, &f, mp);
	return 0;
}

/* Free a message we are done with (a request holds an ID token). */
static void
msg_free(struct bz_link_msg *m)
{
	if (m == NULL)
		return;
	if (m->len > 1 && m->data[1] == BZ_FRAME_CONTROL)
		sodium_memzero(m->data, m->len);
	free(m);
}

static void
service_link(struct agent *a)
{
	char why[BZ_LINK_REASON_LEN], closed_why[BZ_LINK_REASON_LEN];
	struct bz_link_msg *m;
	int r = 0, closed;

	if (a->link == NULL)
		return;
	/* The state first: once closed, all that came before is queued. */
	closed = bz_link_get_state(a->link, closed_why, sizeof(closed_why)) ==
	    BZ_LINK_CLOSED;
	while (a->link != NULL && (m = bz_link_recv(a->link)) != NULL) {
		r = on_message(a, &m, why, sizeof(why));
		msg_free(m);
		if (r != 0) {
			link_down(a, why);
			return;
		}
	}
	if (a->link != NULL && closed)
		link_down(a, closed_why);
	else if (a->link != NULL && a->phase != PH_READY &&
	    bz_now_ms() >= a->deadline)
		link_down(a, "no handshake from bzproxy in time");
}

/* Requests held for the IdP's keys whose wait is over (a fetch ended, or
 * BZ_JWKS_HOLD_MS passed): check each again, then handle what arrived for
 * its channel meanwhile, in order. */
static void
retry_held(struct agent *a)
{
	char why[BZ_LINK_REASON_LEN];
	struct bz_link_msg *m, *rest;
	struct bz_frame f;
	uint64_t fetches;

	if (a->phase != PH_READY || key_wait_count(a->held) == 0)
		return;
	fetches = bz_jwks_cache_fetches(a->jwks);
	while (a->phase == PH_READY && (m = key_wait_take_due(a->held,
	    fetches, bz_now_ms())) != NULL) {
		rest = m->next;
		m->next = NULL;
		if (bz_frame_decode(m->data, m->len, &f) == 0)
			dispatch_retry(a, &f, &m);
		key_wait_free_msgs(m);
		while ((m = rest) != NULL) {
			rest = m->next;
			m->next = NULL;
			if (on_message(a, &m, why, sizeof(why)) != 0) {
				key_wait_free_msgs(m);
				key_wait_free_msgs(rest);
				link_down(a, why);
				return;
			}
			key_wait_free_msgs(m);
		}
	}
}

/* ---- signals ---- */

static void
on_signals(struct agent *a)
{
	struct signalfd_siginfo si;
	ssize_t n;

	while ((n = read(a->sig_fd, &si, sizeof(si))) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			chans_reap(a->chans);
			break;
		case SIGTERM:
		case SIGINT:
			bz_info("signal %s: stopping", sigabbrev_np(
			    (int)si.ssi_signo));
			a->stop = 1;
			break;
		default:
			bz_debug("signal %d ignored", (int)si.ssi_signo);
			break;
		}
	}
}

/* ---- the loop ---- */

static void
drain(int fd)
{
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static int
min_timeout(int a, int b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

static int
loop_once(struct agent *a, struct pollfd *pfd, size_t max)
{
	struct bz_link *ready;
	int64_t now = bz_now_ms();
	int timeout, link_timeout;
	size_t n;

	if (a->phase == PH_DOWN && now >= a->retry_at)
		link_up(a);
	ready = a->phase == PH_READY ? a->link : NULL;
	timeout = chans_pump(a->chans, ready, now);
	if (a->phase == PH_DOWN)
		timeout = min_timeout(timeout, (int)(a->retry_at - now));
	else if (a->phase != PH_READY)
		timeout = min_timeout(timeout, (int)(a->deadline - now));
	timeout = min_timeout(timeout, key_wait_timeout(a->held, now));
	/* the link's socket: it may want a round at once (bytes OpenSSL
	 * already holds, messages read) */
	bz_link_poll_want(a->link, &pfd[2], &link_timeout);
	timeout = min_timeout(timeout, link_timeout);
	timeout = min_timeout(timeout, LOOP_MAX_WAIT_MS);
	if (timeout < 0)
		timeout = 0;

	pfd[0].fd = a->wake[0];
	pfd[0].events = POLLIN;
	pfd[1].fd = a->sig_fd;
	pfd[1].events = POLLIN;
	pfd[0].revents = pfd[1].revents = 0;
	n = 3 + chans_pollfds(a->chans, ready, pfd + 3, max - 3);
	if (poll(pfd, n, timeout) < 0) {
		if (errno == EINTR)
			return 0;
		bz_error("poll: %s", strerror(errno));
		return -1;
	}
	if (pfd[1].revents & POLLIN)
		on_signals(a);
	/* the link first: frames it reads are routed by service_link */
	bz_link_serve(a->link, pfd[2].revents);
	chans_io(a->chans, ready, pfd + 3, n - 3);
	if (pfd[0].revents & POLLIN)
		drain(a->wake[0]);
	service_link(a);
	retry_held(a);
	dispatch_forwards(a);
	return 0;
}

/* The JWKS cache's thread: a fetch ended. */
static void
jwks_notify(void *arg)
{
	const int *fd = arg;
	ssize_t w;

	w = write(*fd, "k", 1); /* a full pipe already means "wake up" */
	(void)w;
}

int
agent_run(const struct agent_config *cfg, int sig_fd)
{
	/* wake pipe + signals + the link + 3 fds per channel */
	struct pollfd pfd[3 + 3 * AGENT_MAX_CHANNELS];
	struct bz_jwks_cache_cfg jc;
	struct agent a;
	char err[AGENT_ERRLEN];
	int rc = 1;

	memset(&a, 0, sizeof(a));
	a.cfg = cfg;
	a.sig_fd = sig_fd;
	a.wake[0] = a.wake[1] = -1;
	a.phase = PH_DOWN;
	a.retry_at = bz_now_ms();
	if (pipe2(a.wake, O_NONBLOCK | O_CLOEXEC) != 0) {
		bz_error("pipe: %s", strerror(errno));
		goto out;
	}
	memset(&jc, 0, sizeof(jc));
	jc.issuer = cfg->oidc_issuer;
	jc.ca_file = cfg->oidc_ca_file;
	if (cfg->audit_log != NULL &&
	    bz_audit_open(cfg->audit_log, &a.audit, err, sizeof(err)) != 0) {
		bz_error("audit_log: %s", err);
		goto out;
	}
	/* before anything runs: end what a killed agent left running */
	if (leftovers_open(cfg->children_file, a.audit, &a.leftovers, err,
	    sizeof(err)) != 0) {
		bz_error("children_file: %s", err);
		goto out;
	}
	if ((a.chans = chans_new(a.audit, a.leftovers)) == NULL ||
	    (a.sessions = sessions_new()) == NULL ||
	    (a.held = key_wait_new()) == NULL ||
	    (a.fwd = fwd_pool_new(a.wake[1])) == NULL ||
	    bz_jwks_cache_start(&jc, &a.jwks) != 0) {
		bz_error("out of memory");
		goto out;
	}
	/* connects to bzproxy meanwhile; requests wait for the keys */
	bz_jwks_cache_set_notify(a.jwks, jwks_notify, &a.wake[1]);
	bz_info("bzagent %s starting as %s", AGENT_VERSION, cfg->name);
	bz_info("serving unix users: %s; root: %s; forwards to: %s; sftp: %s",
	    cfg->unix_users != NULL ? cfg->unix_users : "any",
	    cfg->allow_root ? "yes" : "no (allow_root)",
	    cfg->permit_open != NULL ? cfg->permit_open : "any",
	    cfg->sftp_server != NULL ? cfg->sftp_server : "none");
	bz_info("audit log: %s", cfg->audit_log != NULL ? cfg->audit_log :
	    "none");
	while (!a.stop)
		if (loop_once(&a, pfd, sizeof(pfd) / sizeof(pfd[0])) != 0)
			goto out;
	rc = 0;
 out:
	if (a.chans != NULL)
		chans_shutdown(a.chans, CHILD_SHUTDOWN_GRACE_MS);
	/* background jobs of the channels' sessions too */
	leftovers_end_all(a.leftovers);
	if (a.link != NULL)
		bz_link_free(a.link);
	chans_free(a.chans); /* the last channel_end lines */
	leftovers_free(a.leftovers);
	bz_audit_close(a.audit);
	key_wait_free(a.held);
	fwd_pool_free(a.fwd);
	sessions_free(a.sessions);
	bz_jwks_cache_free(a.jwks); /* before the wake pipe closes */
	if (a.wake[0] >= 0)
		close(a.wake[0]);
	if (a.wake[1] >= 0)
		close(a.wake[1]);
	return rc;
}
