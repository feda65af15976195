/*
 * server.c: `bzproxy serve`: the lws context (one TLS vhost, protocol
 * bz.v1), routing by path (/v1/client, /v1/agent), reassembly of messages
 * lws delivers in pieces, signals, and the service loop.
 *
 * lws runs on our own libuv loop (a "foreign" loop: Debian's
 * libwebsockets-evlib-uv plugin; its default poll() loop collapses with
 * thousands of links, docs/DESIGN notes). One thread: lws's callbacks, our
 * signal handlers (uv_signal_t) and the JWKS cache's wake-up (uv_async_t)
 * all run on it, so none of them needs a lock or a global.
 */
#include "bzproxy.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <uv.h>

#include "audit.h"
#include "buf.h"
#include "evloop.h"
#include "jwks_cache.h"
#include "jwt.h"
#include "log.h"
#include "util.h"

#define PROTOCOL_NAME "bz.v1"
/*
 * lws gives each connection a receive buffer of this size and delivers
 * larger messages in pieces. Measured here (500 idle TLS links; 500 MB
 * through one channel): 4 KiB costs 19.7 KiB RSS per idle link and ~15%
 * more proxy CPU per byte than 16 KiB (31 KiB per link). Idle agents are
 * the many, so small wins.
 */
#define RX_PIECE 4096
/*
 * With tx_packet_size 0, lws 4.1 sends at most rx_buffer_size (+ LWS_PRE +
 * 4) bytes per lws_write and copies the rest of the frame into its own
 * buffer, flushed one such piece per POLLOUT: with 4 KiB pieces a 32 KiB
 * frame went out as 8 TLS records of 4 KiB, 8 trips round both ends'
 * event loops. It is only a limit on one send (no buffer of that size is
 * allocated), so let a whole frame with its websocket header go at once.
 */
#define TX_PACKET (BZ_WIRE_MAX_DATA_FRAME + 16u)
#define SERV_BUF (64u * 1024)   /* per service thread: one socket read */
#define JWKS_WAIT_S 30          /* start-up waits this long for the IdP */
#define JWKS_WAIT_SLICE_MS 200  /* ... looking at signals this often */
/* SIGTERM: how long the peers have to read why their links end (bzsshd
 * closes at once; a peer that does not is cut then) */
#define STOP_GRACE_S 3

struct pss {
	struct bzp_conn *c;
	enum bzp_kind kind;   /* chosen by path during the handshake */
};

/* No lws validity timers (their defaults are 300/310 s): keepalive.c
 * does it without lws's per-frame timer re-insertion. */
static const lws_retry_bo_t no_lws_keepalive = {
	.secs_since_valid_ping = 0,
	.secs_since_valid_hangup = 0,
};

/* ---- policies ---- */

static int
load_policies(const char *path, struct bz_policy_set **out)
{
	struct bz_policy_errors errs = { NULL, 0 };
	char line[1024];
	size_t i;
	int r;

	if ((r = bz_policy_load(path, out, &errs)) != 0) {
		for (i = 0; i < errs.count; i++) {
			bz_policy_error_format(&errs.items[i], line,
			    sizeof(line));
			bz_error("%s", line);
		}
		if (errs.count == 0)
			bz_error("%s: cannot load policies (%s)", path,
			    bz_err_str(r));
		*out = NULL;
	}
	bz_policy_errors_free(&errs);
	return r;
}

/* SIGHUP: a bad set keeps the old one (load is all or nothing). */
static void
reload_policies(struct bzp_server *s)
{
	struct bz_policy_set *set;

	if (load_policies(s->cfg->policies, &set) != 0) {
		bz_error("policy reload failed: keeping the %zu rule(s) in use",
		    bz_policy_rule_count(s->policy));
		bzp_audit(s, "policy_reload", json_pack("{s:s, s:b}",
		    "path", s->cfg->policies, "ok", 0));
		return;
	}
	bz_policy_free(s->policy);
	s->policy = set;
	bz_info("policies reloaded from %s: %zu rule(s)", s->cfg->policies,
	    bz_policy_rule_count(set));
	bzp_audit(s, "policy_reload", json_pack("{s:s, s:b, s:I}", "path",
	    s->cfg->policies, "ok", 1, "rules",
	    (json_int_t)bz_policy_rule_count(set)));
}

/* ---- stopping ---- */

static void
on_stop_grace(lws_sorted_usec_list_t *sul)
{
	struct bzp_server *s = lws_container_of(sul, struct bzp_server,
	    stop_timer);

	s->stop_expired = 1;
}

/*
 * SIGTERM/SIGINT: refuse new links, end every session and channel on
 * the record (docs/audit.md) and tell its user why, close the agents'
 * links, then let the peers read it for up to STOP_GRACE_S. The final
 * checkpoint comes after (bzp_serve).
 */
static void
begin_stop(struct bzp_server *s)
{
	struct bzp_conn *c;

	if (s->stop)
		return;
	s->stop = 1;
	bz_info("stopping: ending %zu link(s)", s->nconns);
	/* clients first: their agents hear session_closed before the link
	 * to them closes */
	for (c = s->conns; c != NULL; c = c->next)
		if (c->client != NULL)
			bzp_client_stop(c->client, BZP_STOPPING);
	for (c = s->conns; c != NULL; c = c->next)
		if (c->client == NULL)
			bzp_conn_close(c, "%s", BZP_STOPPING);
	bzp_limit_links_flush(s);
	lws_sul_schedule(s->ctx, 0, &s->stop_timer, on_stop_grace,
	    (lws_usec_t)STOP_GRACE_S * LWS_US_PER_SEC);
}

/* SIGTERM, SIGINT: stop; SIGHUP: reload the policies (on the loop). */
static void
on_signal(uv_signal_t *h, int sig)
{
	struct bzp_server *s = h->data;

	if (sig != SIGHUP) {
		s->stop_asked = 1;
		if (s->ctx != NULL)
			begin_stop(s);
	} else if (s->policy != NULL)
		reload_policies(s);
}

/* A JWKS fetch ended: logins held for new keys go on. */
static void
on_keys(uv_async_t *h)
{
	struct bzp_server *s = h->data;
	struct bzp_conn *c;
	uint64_t fetches = bz_jwks_cache_fetches(s->jwks);

	for (c = s->conns; c != NULL; c = c->next)
		if (c->client != NULL &&
		    c->client->state == BZP_CL_WAIT_KEYS &&
		    c->client->keys_seen != fetches)
			bzp_client_keys_ready(c->client);
}

/* The JWKS cache's thread (uv_async_send may be called from any). */
static void
jwks_notify(void *arg)
{
	uv_async_send(arg);
}

/* Start the JWKS cache and wait up to JWKS_WAIT_S for the first keys
 * (the IdP may be starting too), or until SIGTERM. */
static int
start_jwks(struct bzp_server *s, char *err, size_t errlen)
{
	struct bz_jwks_cache_cfg jc;
	int waited = 0;

	memset(&jc, 0, sizeof(jc));
	jc.issuer = s->cfg->issuer;
	jc.ca_file = s->cfg->oidc_ca_file;
	/* one bzproxy: retry every second while the IdP is down */
	jc.retry_base_ms = jc.retry_cap_ms = 1000;
	if (bz_jwks_cache_start(&jc, &s->jwks) != 0) {
		bz_errf(err, errlen, "out of memory");
		return BZ_ERR_ALLOC;
	}
	while (bz_jwks_cache_wait(s->jwks, JWKS_WAIT_SLICE_MS, err,
	    errlen) != 0) {
		waited += JWKS_WAIT_SLICE_MS;
		/* deliver the signals that came meanwhile */
		uv_run(s->loop, UV_RUN_NOWAIT);
		if (s->stop_asked || waited >= JWKS_WAIT_S * 1000)
			return BZ_ERR_INVALID;
		if (waited == JWKS_WAIT_SLICE_MS)
			bz_info("waiting up to %d s for the IdP's keys",
			    JWKS_WAIT_S);
	}
	return BZ_OK;
}

/* ---- connections ---- */

/* An HTTP error for a handshake we refuse, with why in its body. */
static int
refuse_handshake(struct lws *wsi, unsigned status, const char *why)
{
	(void)lws_return_http_status(wsi, status, why);
	return -1;
}

/* During the handshake: route by path; refuse anything else, and any
 * link over limits.max_links or the limits of links not logged in yet. */
static int
on_filter(struct bzp_server *s, struct lws *wsi, struct pss *p)
{
	char uri[64], proto[128], peer[64], why[BZP_ERRLEN];

	peer[0] = '\0';
	lws_get_peer_simple(wsi, peer, sizeof(peer));
	if (s->stop)
		return refuse_handshake(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
		    BZP_STOPPING);
	if (bzp_limit_links(s, peer, why, sizeof(why)) != 0 ||
	    bzp_limit_preauth(s, peer, why, sizeof(why)) != 0)
		return refuse_handshake(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
		    why);
	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
		uri[0] = '\0';
	if (strcmp(uri, "/v1/client") == 0)
		p->kind = BZP_CONN_CLIENT;
	else if (strcmp(uri, "/v1/agent") == 0)
		p->kind = BZP_CONN_AGENT;
	else {
		bz_info("%s: refused a websocket on path \"%.60s\"", peer, uri);
		return -1;
	}
	/* Without the header lws would pick us as the default protocol. */
	if (lws_hdr_copy(wsi, proto, sizeof(proto), WSI_TOKEN_PROTOCOL) <= 0 ||
	    strstr(proto, PROTOCOL_NAME) == NULL) {
		bz_info("%s: refused a websocket without subprotocol %s", peer,
		    PROTOCOL_NAME);
		return -1;
	}
	return 0;
}

static int
on_established(struct bzp_server *s, struct lws *wsi, struct pss *p)
{
	struct bzp_conn *c;
	char peer[48];

	if (s->stop || (c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	peer[0] = '\0';
	lws_get_peer_simple(wsi, peer, sizeof(peer));
	c->srv = s;
	c->wsi = wsi;
	c->kind = p->kind;
	snprintf(c->peer, sizeof(c->peer), "%s %s",
	    c->kind == BZP_CONN_CLIENT ? "client" : "agent", peer);
	snprintf(c->addr, sizeof(c->addr), "%s", peer);
	if (c->kind == BZP_CONN_CLIENT)
		c->client = bzp_client_new(c);
	else
		c->agent = bzp_agent_new(c);
	if (c->client == NULL && c->agent == NULL) {
		free(c);
		return -1;
	}
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	p->c = c;
	bzp_keepalive_heard(c);
	bzp_preauth_add(s, c);
	bzp_conn_start_auth_timer(c);
	bz_debug("%s: connected", c->peer);
	return 0;
}

static void
on_closed(struct bzp_server *s, struct pss *p)
{
	struct bzp_conn *c = p->c;

	if (c == NULL)
		return;
	p->c = NULL;
	if (!c->closing)
		bz_info("%s: connection closed (by the peer, or a "
		    "keepalive or login timeout)", c->peer);
	else
		bz_debug("%s: closed", c->peer);
	if (c->client != NULL)
		bzp_client_free(c->client);
	if (c->agent != NULL)
		bzp_agent_free(c->agent);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	bzp_preauth_remove(s, c);
	bzp_conn_free(c);
	bzp_trim_after_close(s);
}

/* One whole message: decode it and hand it to its link. */
static void
on_message(struct bzp_conn *c, struct bzp_out *m)
{
	struct bz_frame f;
	int r;

	c->got_message = 1;
	if ((r = bz_frame_decode(m->buf + LWS_PRE, m->len, &f)) != 0) {
		bzp_conn_close(c, "protocol violation: bad frame (%s)",
		    bz_err_str(r));
		free(m);
		return;
	}
	/* The handlers may take m to relay it; f borrows from m until then. */
	if (c->client != NULL)
		bzp_client_frame(c->client, &f, &m);
	else if (c->agent != NULL)
		bzp_agent_frame(c->agent, &f, &m);
	free(m);
}

/* A link not authenticated yet had BZP_FIRST_MESSAGE_S for a first
 * whole message (LWS_CALLBACK_TIMER). */
static void
on_first_deadline(struct bzp_conn *c)
{
	if (c->preauth && !c->got_message && !c->closing)
		bzp_conn_close(c, "no whole message within %d s of the "
		    "websocket handshake", BZP_FIRST_MESSAGE_S);
}

/*
 * lws delivers a message in pieces of at most RX_PIECE bytes and has no
 * limit of its own: we enforce BZ_WIRE_MAX_FRAME, and before the peer
 * authenticated limits.preauth_message_bytes (a login is small; anybody
 * may open a link and announce a big frame). The buffer exists only
 * while a message is incomplete, so idle connections hold none.
 */
static int
on_receive(struct bzp_conn *c, struct lws *wsi, const void *in, size_t len)
{
	size_t more = lws_remaining_packet_payload(wsi), want;
	size_t max = c->preauth ?
	    (size_t)c->srv->cfg->limits.preauth_message : BZ_WIRE_MAX_FRAME;
	char why[BZP_ERRLEN];
	struct bzp_out *m;

	if (c->closing)
		return 0;
	if (!lws_frame_is_binary(wsi)) {
		bzp_conn_close(c, "protocol violation: text message");
		return 0;
	}
	if (len > max - c->rx_len || more > max - c->rx_len - len) {
		if (c->preauth) {
			/* as an error message: lws 4.1 sends no close frame
			 * (no reason) while a frame is half received */
			snprintf(why, sizeof(why), "protocol violation: a "
			    "message over %zu bytes before logging in (%s)",
			    max, BZP_LIMIT_PREAUTH_MESSAGE);
			bzp_conn_fail(c, why);
		} else
			bzp_conn_close(c, "protocol violation: message over "
			    "%zu bytes", max);
		return 0;
	}
	if (c->rx == NULL && lws_is_final_fragment(wsi)) {
		/* the common case: the whole message in one piece */
		if ((m = bzp_out_new(len)) == NULL) {
			bzp_conn_close(c, "out of memory");
			return 0;
		}
		memcpy(m->buf + LWS_PRE, in, len);
		on_message(c, m);
		return 0;
	}
	want = c->rx_len + len + more;
	if (want > c->rx_cap) {
		/* grow to what this websocket frame announces */
		if ((m = realloc(c->rx, sizeof(*m) + LWS_PRE + want)) == NULL) {
			bzp_conn_close(c, "out of memory");
			return 0;
		}
		c->rx = m;
		c->rx_cap = want;
	}
	memcpy(c->rx->buf + LWS_PRE + c->rx_len, in, len);
	c->rx_len += len;
	if (!lws_is_final_fragment(wsi))
		return 0;
	m = c->rx;
	m->next = NULL;
	m->len = c->rx_len;
	c->rx = NULL;
	c->rx_len = c->rx_cap = 0;
	on_message(c, m);
	return 0;
}

static int
proxy_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct bzp_server *s = lws_context_user(lws_get_context(wsi));
	struct pss *p = user;

	if (s == NULL)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		/* plain HTTPS requests: nothing here */
		lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
		return -1;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return p == NULL ? -1 : on_filter(s, wsi, p);
	case LWS_CALLBACK_ESTABLISHED:
		return on_established(s, wsi, p);
	case LWS_CALLBACK_RECEIVE:
		if (p->c == NULL)
			return -1;
		bzp_keepalive_heard(p->c);
		return on_receive(p->c, wsi, in, len);
	case LWS_CALLBACK_RECEIVE_PONG:
		if (p != NULL && p->c != NULL)
			bzp_keepalive_heard(p->c);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (p->c == NULL)
			return -1;
		return bzp_conn_writeable(p->c);
	case LWS_CALLBACK_TIMER:
		if (p != NULL && p->c != NULL)
			on_first_deadline(p->c);
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (p != NULL && p->c != NULL)
			bz_debug("%s: peer sent a close frame", p->c->peer);
		break;
	case LWS_CALLBACK_CLOSED:
		if (p != NULL)
			on_closed(s, p);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ PROTOCOL_NAME, proxy_callback, sizeof(struct pss), RX_PIECE, 0,
	    NULL, TX_PACKET },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* ---- start-up and shut-down ---- */

static int
write_pid_file(const char *path)
{
	char buf[32], err[BZP_ERRLEN];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (bz_write_secret_file(path, buf, (size_t)n, err,
	    sizeof(err)) != 0) {
		bz_error("%s", err);
		return -1;
	}
	return 0;
}

/* Remove the pid file if it is still ours. */
static void
remove_pid_file(const char *path)
{
	uint8_t *d = NULL;
	size_t n;

	if (bz_read_file(path, 64, &d, &n, NULL, 0) == 0 &&
	    strtol((char *)d, NULL, 10) == (long)getpid())
		unlink(path);
	free(d);
}

static struct lws_context *
create_context(struct bzp_server *s)
{
	const struct bzp_config *cfg = s->cfg;
	struct lws_context_creation_info info;
	void *loops[1] = { s->loop };

	memset(&info, 0, sizeof(info));
	info.port = cfg->listen_port;
	info.iface = cfg->listen_host;
	info.protocols = protocols;
	info.user = s;
	info.ssl_cert_filepath = cfg->tls_cert;
	info.ssl_private_key_filepath = cfg->tls_key;
	info.ssl_options_set = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 |
	    SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1; /* TLS 1.2 or later */
	/* our loop, not one of lws's (that one would take SIGTERM itself and
	 * spin on SIGSEGV) */
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
	    LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
	info.foreign_loops = loops;
	info.pcontext = &s->ctx; /* NULL once lws has left our loop */
	if (strchr(cfg->listen_host, ':') == NULL)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.retry_and_idle_policy = &no_lws_keepalive;
	info.pt_serv_buf_size = SERV_BUF;
	return lws_create_context(&info);
}

static void
ignore_signals(void)
{
	signal(SIGPIPE, SIG_IGN);
	/* a file size limit (or a full quota) is an error to handle, not a
	 * reason to die: the audit write then fails and is undone */
	signal(SIGXFSZ, SIG_IGN);
}

/* "proxy_start", saying how the previous run ended: a log whose last
 * line is not a "proxy_stop" was left by a bzproxy killed or crashed, so
 * the sessions open then have no close record. */
static int
record_start(struct bzp_server *s)
{
	const char *last = bz_audit_last_event(s->audit);
	const char *prev = last[0] == '\0' ? "none" :
	    strcmp(last, "proxy_stop") == 0 ? "clean" : "unclean";

	if (strcmp(prev, "unclean") == 0)
		bz_warn("the previous bzproxy did not stop cleanly (killed or "
		    "crashed): the sessions it had open have no close record "
		    "in the audit log; recorded as previous_stop: unclean");
	return bzp_audit(s, "proxy_start", json_pack("{s:s, s:I, s:s}",
	    "version", BZP_VERSION, "pid", (json_int_t)getpid(),
	    "previous_stop", prev));
}

int
bzp_serve(const struct bzp_config *cfg)
{
	struct bzp_server s;
	struct bzp_loop loop;
	char err[BZP_ERRLEN];
	int rc = 1, pid_written = 0, start_recorded = 0, served = 0;

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	ignore_signals();
	/* Signals first: SIGTERM during the JWKS wait still stops us. */
	s.loop = &loop.uv;
	if (bzp_loop_open(&loop, on_signal, on_keys, &s) != 0)
		goto out;
	if (load_policies(cfg->policies, &s.policy) != 0) {
		bz_error("cannot start: fix the policies in %s", cfg->policies);
		goto out;
	}
	bz_info("policies from %s: %zu rule(s)", cfg->policies,
	    bz_policy_rule_count(s.policy));
	if (bzp_store_open(cfg->state_db, &s.store, err, sizeof(err)) != 0 ||
	    bz_audit_open(cfg->audit_log, &s.audit, err, sizeof(err)) != 0 ||
	    bz_ed25519_load_or_create(cfg->signing_key, s.pk, s.sk, err,
	    sizeof(err)) != 0) {
		bz_error("%s", err);
		goto out;
	}
	if (bz_b64url_encode(s.pk, sizeof(s.pk), &s.pk_b64) != 0)
		goto out;
	if (bz_audit_torn(s.audit) != NULL)
		bz_warn("the audit log ended in a torn line (a write cut by a "
		    "crash or a full disk): moved to %s, and recorded in the "
		    "log; see docs/audit.md", bz_audit_torn(s.audit));
	if (bzp_checkpoint_check(&s, err, sizeof(err)) != 0) {
		bz_error("%s", err);
		goto out;
	}
	start_recorded = record_start(&s) == 0;
	if (start_jwks(&s, err, sizeof(err)) != 0) {
		if (s.stop_asked) {
			rc = 0; /* asked to stop while waiting for the IdP */
			goto out;
		}
		bz_error("cannot fetch the IdP's keys from %s: %s",
		    cfg->issuer, err);
		goto out;
	}
	if (s.stop_asked) {
		rc = 0;
		goto out;
	}
	lws_set_log_level(bz_log_get_level() >= BZ_LOG_DEBUG ?
	    LLL_ERR | LLL_WARN : LLL_ERR, NULL);
	if ((s.ctx = create_context(&s)) == NULL) {
		bz_error("cannot listen on %s:%d with TLS (cert %s, key %s), "
		    "or start libwebsockets' libuv plugin (package "
		    "libwebsockets-evlib-uv): lws's error is above",
		    cfg->listen_host, cfg->listen_port, cfg->tls_cert,
		    cfg->tls_key);
		goto out;
	}
	served = 1;
	if (!bzp_loop_has_lws(&loop)) {
		bz_error("libwebsockets is not running on bzproxy's libuv loop "
		    "(is its libuv plugin, the Debian package "
		    "libwebsockets-evlib-uv, installed?): refusing to serve "
		    "on its poll() loop");
		goto out;
	}
	bz_jwks_cache_set_notify(s.jwks, jwks_notify, &loop.keys);
	if (write_pid_file(cfg->pid_file) == 0)
		pid_written = 1;
	bz_info("listening on wss://%s:%d (/v1/client, /v1/agent); proxy "
	    "key %s", cfg->listen_host, cfg->listen_port, s.pk_b64);
	bzp_checkpoint_start(&s);
	bzp_keepalive_start(&s);
	for (;;) {
		if (s.stop_asked)
			begin_stop(&s);
		if (s.stop && (s.conns == NULL || s.stop_expired))
			break;
		if (uv_run(s.loop, UV_RUN_ONCE) == 0)
			break; /* nothing left to wait for (cannot happen) */
	}
	if (s.conns != NULL)
		bz_info("stopping: cutting %zu link(s) that did not close",
		    s.nconns);
	rc = 0;
 out:
	s.stop = 1;
	if (s.jwks != NULL)
		bz_jwks_cache_set_notify(s.jwks, NULL, NULL);
	if (s.ctx != NULL) {
		lws_context_destroy(s.ctx); /* closes every connection */
		/* lws closes its handles on our loop; done: s.ctx is NULL */
		bzp_loop_lws_leave(&loop, &s.ctx);
	}
	/* after the close records; the checkpoint holds it */
	if (start_recorded)
		(void)bzp_audit(&s, "proxy_stop", json_pack("{s:I}", "pid",
		    (json_int_t)getpid()));
	if (start_recorded || served)
		bzp_checkpoint_now(&s);
	if (pid_written)
		remove_pid_file(cfg->pid_file);
	bz_jwks_cache_free(s.jwks);
	bz_audit_close(s.audit);
	bzp_store_close(s.store);
	if (s.policy != NULL)
		bz_policy_free(s.policy);
	free(s.pk_b64);
	sodium_memzero(s.sk, sizeof(s.sk));
	if (loop.uv.data != NULL) /* the loop was made */
		bzp_loop_close(&loop);
	return rc;
}
