/*
 * connection.c: bzagent's one link to bzproxy and its poll loop.
 *
 * The loop polls the link's wake pipe (messages arrived, state changed,
 * send queue drained), the signalfd, and the children's fds. The link
 * (common/ws_link.c) runs lws on its own thread; when it closes, every
 * channel ends (their clients are gone) and we reconnect with jittered
 * exponential backoff. The handshake is docs/protocol.md "Agent link":
 * challenge -> agent_hello -> agent_ok | error. The JWKS cache's thread
 * also writes to the wake pipe when a fetch ends, so requests held for
 * the IdP's keys (key_wait.c) are tried again at once.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <sodium.h>

#include "jwks_cache.h"
#include "log.h"
#include "util.h"

#define HANDSHAKE_TIMEOUT_MS 20000
#define LOOP_MAX_WAIT_MS 1000   /* safety net: recheck everything */
#define CHILD_SHUTDOWN_GRACE_MS 1000
#define NONCE_LEN 32

enum phase {
	PH_DOWN,        /* waiting to reconnect */
	PH_CHALLENGE,   /* connecting; waiting for the challenge */
	PH_HELLO_SENT,  /* waiting for agent_ok */
	PH_READY,       /* channel requests are served */
};

struct agent {
	const struct agent_config *cfg;
	int sig_fd;
	int wake[2];
	struct bz_link *link;
	enum phase phase;
	int64_t deadline;        /* handshake deadline */
	int64_t ready_at;
	int64_t retry_at;        /* next connect, in PH_DOWN */
	unsigned attempt;        /* consecutive failed connections */
	int stop;
	struct chan_table *chans;
	struct bz_jwks_cache *jwks;
	struct key_wait *held;   /* SYNs waiting for the IdP's keys */
	struct session_table *sessions;
	struct fwd_pool *fwd;    /* forward channels still connecting */
};

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
	r = bz_link_start(a->cfg->proxy_url, a->cfg->proxy_path,
	    a->cfg->ca_file, a->wake[1], &a->link, err, sizeof(err));
	a->phase = PH_CHALLENGE;
	a->deadline = bz_now_ms() + HANDSHAKE_TIMEOUT_MS;
	if (r != 0) {
		a->link = NULL;
		link_down(a, err);
	}
}

/* ---- handshake ---- */

/* challenge -> agent_hello. Returns 0, or -1 with why filled. */
static int
on_challenge(struct agent *a, const json_t *o, char *why, size_t wl)
{
	const struct agent_config *cfg = a->cfg;
	const char *nonce_s = bz_json_str(o, "nonce"),
	    *key_s = bz_json_str(o, "proxy_key");
	uint8_t *nonce = NULL, *key = NULL, sig[crypto_sign_BYTES];
	size_t nlen = 0, klen = 0;
	char *pk_b64 = NULL, *sig_b64 = NULL;
	json_t *hello = NULL;
	int r = -1;

	if (nonce_s == NULL || key_s == NULL ||
	    bz_b64url_decode(nonce_s, strlen(nonce_s), 64, &nonce,
	    &nlen) != 0 || nlen != NONCE_LEN ||
	    bz_b64url_decode(key_s, strlen(key_s), 64, &key, &klen) != 0 ||
	    klen != sizeof(cfg->proxy_pk)) {
		bz_errf(why, wl, "malformed challenge from bzproxy");
		goto out;
	}
	/* Only the pinned bzproxy may have our signature (and our jobs). */
	if (sodium_memcmp(key, cfg->proxy_pk, klen) != 0) {
		bz_error("bzproxy's key is not the one pinned in %s "
		    "(proxy_public_key): refusing to talk to it", cfg->path);
		bz_errf(why, wl, "bzproxy key mismatch");
		goto out;
	}
	crypto_sign_detached(sig, NULL, nonce, nlen, cfg->sk);
	if (bz_b64url_encode(cfg->pk, sizeof(cfg->pk), &pk_b64) != 0 ||
	    bz_b64url_encode(sig, sizeof(sig), &sig_b64) != 0 ||
	    (hello = json_pack("{s:s, s:s, s:s, s:s, s:s}", "t",
	    "agent_hello", "name", cfg->name, "key", pk_b64, "sig", sig_b64,
	    "version", AGENT_VERSION)) == NULL) {
		bz_errf(why, wl, "out of memory");
		goto out;
	}
	/* Sent every time: bzproxy ignores it once our key is pinned. */
	if (cfg->enrol_token != NULL && json_object_set_new(hello,
	    "enrol_token", json_string(cfg->enrol_token)) != 0) {
		bz_errf(why, wl, "out of memory");
		goto out;
	}
	if (agent_send_json(a->link, 0, 0, hello) != 0) {
		bz_errf(why, wl, "cannot send agent_hello");
		goto out;
	}
	a->phase = PH_HELLO_SENT;
	r = 0;
 out:
	if (hello != NULL) {
		/* the JSON held the enrolment token */
		json_object_del(hello, "enrol_token");
		json_decref(hello);
	}
	free(nonce);
	free(key);
	free(pk_b64);
	free(sig_b64);
	return r;
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
	char err[AGENT_ERRLEN];
	const char *t, *reason;
	json_t *o;
	int r = -1;

	if (f->type != BZ_FRAME_CONTROL || f->channel_id != 0 ||
	    f->flags != 0) {
		bz_errf(why, wl, "protocol error: %s frame during the "
		    "handshake", bz_frame_type_name(f->type));
		return -1;
	}
	if ((o = bz_json_parse_object(f->payload, f->length, err,
	    sizeof(err))) == NULL) {
		bz_errf(why, wl, "protocol error: %s", err);
		return -1;
	}
	t = bz_json_str(o, "t");
	if (t != NULL && strcmp(t, "error") == 0) {
		reason = bz_json_str(o, "reason");
		bz_error("bzproxy refused us: %s",
		    reason != NULL ? reason : "no reason given");
		bz_errf(why, wl, "refused by bzproxy");
	} else if (a->phase == PH_CHALLENGE && t != NULL &&
	    strcmp(t, "challenge") == 0)
		r = on_challenge(a, o, why, wl);
	else if (a->phase == PH_HELLO_SENT && t != NULL &&
	    strcmp(t, "agent_ok") == 0) {
		on_agent_ok(a, o);
		r = 0;
	} else
		bz_errf(why, wl, "protocol error: unexpected \"%.32s\" during "
		    "the handshake", t != NULL ? t : "?");
	json_decref(o);
	return r;
}

/* ---- channel requests ---- */

static void
log_request(const struct agent_request *req, int ok, const char *outcome)
{
	char what[160] = "";

	if (req->kind == REQ_EXEC && req->command != NULL)
		snprintf(what, sizeof(what), " \"%.120s%s\"", req->command,
		    strlen(req->command) > 120 ? "..." : "");
	else if (req->kind == REQ_SUBSYSTEM && req->subsystem != NULL)
		snprintf(what, sizeof(what), " %.64s", req->subsystem);
	else if (req->kind == REQ_FORWARD && req->fwd_host != NULL)
		snprintf(what, sizeof(what), " to %.120s:%u", req->fwd_host,
		    (unsigned)req->fwd_port);
	bz_log(ok ? BZ_LOG_INFO : BZ_LOG_WARN, "channel %u/%u: %s as %s: "
	    "%s%s%s (%s, rule %s): %s", req->sid, req->ch,
	    req->user != NULL ? req->user : "?",
	    req->unix_user != NULL ? req->unix_user : "?",
	    agent_req_kind_name(req->kind), what, req->pty ? " with pty" : "",
	    req->action != NULL ? req->action : "?",
	    req->rule != NULL ? req->rule : "?", outcome);
	if (ok && req->env_refused != NULL)
		bz_info("channel %u/%u: environment refused (not in "
		    "accept_env): %s", req->sid, req->ch, req->env_refused);
}

/*
 * The ID token names a key we do not have (or we have none yet): ask for
 * a fetch, and hold the request (taking *mp) when that fetch is running or
 * starts within BZ_JWKS_HOLD_MS. Returns 1 when held; otherwise says in
 * reason when to try again. A retried request is not held twice.
 */
static int
hold_for_keys(struct agent *a, const struct bz_frame *f,
    struct bz_link_msg **mp, int retry, char *reason, size_t rl)
{
	uint64_t fetches;
	int64_t ms = bz_jwks_cache_refresh(a->jwks, &fetches);
	size_t len;

	if (!retry && ms < BZ_JWKS_HOLD_MS && key_wait_add(a->held, *mp,
	    f->session_id, f->channel_id, fetches,
	    bz_now_ms() + BZ_JWKS_HOLD_MS) == 0) {
		*mp = NULL;
		bz_info("channel %u/%u: waiting for the IdP's keys",
		    f->session_id, f->channel_id);
		return 1;
	}
	len = strlen(reason);
	if (len < rl)
		snprintf(reason + len, rl - len, " (the agent fetches the "
		    "IdP's keys again in %lld s: try again then)",
		    (long long)(ms / 1000 + 1));
	return 0;
}

/* Our address as SSH_CONNECTION's server side: our end of the link. */
static int
set_server_addr(struct agent *a, struct agent_request *req)
{
	char addr[64];
	uint16_t port;

	if (bz_link_local_addr(a->link, addr, sizeof(addr), &port) != 0)
		return 0; /* SSH_CONNECTION says UNKNOWN */
	return (req->server_addr = strdup(addr)) == NULL ? -1 : 0;
}

/* A verified forward: connect on a worker thread (take_forwards ends
 * it). */
static void
start_forward(struct agent *a, const struct agent_request *req)
{
	int r = fwd_pool_start(a->fwd, req->sid, req->ch, req->fwd_host,
	    req->fwd_port);

	if (r != 0) {
		const char *why = r == BZ_ERR_TOO_BIG ? "too many forward "
		    "connections being opened on this agent" : "out of memory";

		log_request(req, 0, why);
		agent_send_failed(a->link, req->sid, req->ch, why);
		return;
	}
	log_request(req, 1, "connecting");
}

/* Forwards whose connect finished: the channel runs, or fails. */
static void
take_forwards(struct agent *a)
{
	struct agent_session *s;
	struct fwd_result res;
	json_t *ok;

	while (fwd_pool_take(a->fwd, &res)) {
		if (a->phase != PH_READY) {
			if (res.fd >= 0)
				close(res.fd);
			continue;
		}
		if (res.fd < 0) {
			bz_warn("channel %u/%u: %s", res.sid, res.ch,
			    res.reason);
			agent_send_failed(a->link, res.sid, res.ch, res.reason);
			continue;
		}
		if ((s = sessions_find(a->sessions, res.sid)) == NULL ||
		    s->broken) {
			close(res.fd); /* its session ended meanwhile */
			continue;
		}
		if (chans_add_socket(a->chans, res.sid, res.ch, res.fd,
		    &s->seal) != 0) {
			close(res.fd);
			agent_send_failed(a->link, res.sid, res.ch,
			    "out of memory");
			continue;
		}
		bz_info("channel %u/%u: forward connected", res.sid, res.ch);
		ok = json_pack("{s:s}", "t", "open_ok");
		if (agent_send_json(a->link, res.sid, res.ch, ok) != 0)
			bz_debug("channel %u/%u: cannot queue open_ok",
			    res.sid, res.ch);
		json_decref(ok);
	}
}

/* What our config and the moment tell the checks (JWKS aside). */
static void
verify_ctx_fill(const struct agent *a, struct verify_ctx *v)
{
	memset(v, 0, sizeof(*v));
	v->proxy_pk = a->cfg->proxy_pk;
	v->name = a->cfg->name;
	v->issuer = a->cfg->oidc_issuer;
	v->audience = a->cfg->oidc_audience;
	v->now = time(NULL);
	v->euid = geteuid();
	v->allow_root = a->cfg->allow_root;
	v->unix_users = a->cfg->unix_users;
	v->accept_env = a->cfg->accept_env;
	v->permit_open = a->cfg->permit_open;
	v->sftp_server = a->cfg->sftp_server;
}

/* Say no on (sid, ch); for channel 0 (a session) without a CLOSE. */
static void
refuse(struct agent *a, uint32_t sid, uint32_t ch, const char *reason)
{
	json_t *o;

	if (ch != 0) {
		agent_send_failed(a->link, sid, ch, reason);
		return;
	}
	o = json_pack("{s:s, s:s}", "t", "failed", "reason", reason);
	(void)agent_send_json(a->link, sid, 0, o);
	json_decref(o);
}

/* A SYN: check it, start the session, answer with our signed SYNACK. */
static void
on_syn(struct agent *a, struct verify_ctx *v, const struct envelope *e,
    const struct bz_frame *f, struct bz_link_msg **mp, int retry)
{
	char reason[AGENT_ERRLEN];
	uint8_t *synack = NULL;
	size_t n = 0;
	enum verify_result res;
	struct agent_session *s;

	v->jwks = bz_jwks_cache_lock(a->jwks);
	res = session_syn(a->sessions, v, e, a->cfg->pk, a->cfg->sk, &synack,
	    &n, reason, sizeof(reason));
	bz_jwks_cache_unlock(a->jwks);
	v->jwks = NULL;
	if (res == VERIFY_NEED_KEYS &&
	    hold_for_keys(a, f, mp, retry, reason, sizeof(reason)))
		return;
	if (res != VERIFY_OK) {
		bz_warn("session %u: refused: %s", e->sid, reason);
		refuse(a, e->sid, 0, reason);
		return;
	}
	if (bz_link_send_frame(a->link, BZ_FRAME_CONTROL,
	    BZ_FLAG_AGENT_SIGNED, e->sid, 0, synack, n) != 0)
		bz_warn("session %u: cannot queue the SYNACK", e->sid);
	free(synack);
	s = sessions_find(a->sessions, e->sid);
	bz_info("session %u: %s as %s (rule %s)", e->sid, s->user,
	    s->unix_user, e->rule != NULL ? e->rule : "?");
}

/* An allowed exec, shell, subsystem or forward of session s. */
static void
run_request(struct agent *a, const struct verify_ctx *v,
    struct agent_session *s, const struct envelope *e)
{
	struct agent_request req;
	struct child_proc cp;
	char reason[AGENT_ERRLEN], line[AGENT_ERRLEN + 32];

	if (chans_exists(a->chans, e->sid, e->ch) ||
	    fwd_pool_has(a->fwd, e->sid, e->ch)) {
		/* one request per channel; answering would end the running
		 * one, so only log it */
		bz_warn("channel %u/%u: second request on a running channel "
		    "ignored", e->sid, e->ch);
		return;
	}
	if (e->ch <= s->last_ch) {
		/* bzsshd numbers channels up; a number again would repeat
		 * the sealing nonces of the channel that had it */
		bz_warn("channel %u/%u: refused: channel number reused",
		    e->sid, e->ch);
		agent_send_failed(a->link, e->sid, e->ch, "channel number "
		    "reused in this session");
		return;
	}
	s->last_ch = e->ch;
	if (chans_count(a->chans) + fwd_pool_count(a->fwd) >=
	    AGENT_MAX_CHANNELS) {
		bz_warn("channel %u/%u: refused: %d channels running", e->sid,
		    e->ch, AGENT_MAX_CHANNELS);
		agent_send_failed(a->link, e->sid, e->ch, "too many channels "
		    "on this agent");
		return;
	}
	if (session_request(s, v, e, &req, reason, sizeof(reason)) !=
	    VERIFY_OK) {
		snprintf(line, sizeof(line), "refused: %s", reason);
		log_request(&req, 0, line);
		agent_send_failed(a->link, e->sid, e->ch, reason);
		goto out;
	}
	if (req.kind == REQ_FORWARD) {
		start_forward(a, &req);
		goto out;
	}
	if (set_server_addr(a, &req) != 0 ||
	    child_spawn(&req, &cp, reason, sizeof(reason)) != 0) {
		snprintf(line, sizeof(line), "cannot start: %s", reason);
		log_request(&req, 0, line);
		agent_send_failed(a->link, req.sid, req.ch, reason);
		goto out;
	}
	if (chans_add(a->chans, &req, &cp, &s->seal) != 0) {
		/* out of memory: no channel owns the child; stop it */
		(void)kill(-cp.pid, SIGKILL);
		if (cp.pty_fd >= 0)
			close(cp.pty_fd);
		if (cp.in_fd >= 0)
			close(cp.in_fd);
		if (cp.out_fd >= 0)
			close(cp.out_fd);
		if (cp.err_fd >= 0)
			close(cp.err_fd);
		log_request(&req, 0, "out of memory");
		agent_send_failed(a->link, req.sid, req.ch, "out of memory");
		goto out;
	}
	snprintf(line, sizeof(line), "started (pid %d)", (int)cp.pid);
	log_request(&req, 1, line);
 out:
	agent_request_free(&req);
}

/*
 * An envelope from bzproxy, in *mp: a SYN starts a session; a later
 * message must continue its session's chain, and runs when bzproxy
 * allowed it (a denied one only moves the chain on). retry: a SYN held
 * for the IdP's keys whose wait is over. *mp is taken when it is held.
 */
static void
on_envelope(struct agent *a, const struct bz_frame *f,
    struct bz_link_msg **mp, int retry)
{
	struct envelope e;
	struct verify_ctx v;
	struct agent_session *s;
	char reason[AGENT_ERRLEN];
	const char *name;

	verify_ctx_fill(a, &v);
	if (envelope_open(&v, f, &e, reason, sizeof(reason)) != VERIFY_OK) {
		bz_warn("channel %u/%u: refused: %s", f->session_id,
		    f->channel_id, reason);
		refuse(a, f->session_id, f->channel_id, reason);
		goto out;
	}
	if (strcmp(e.t, "syn") == 0) {
		on_syn(a, &v, &e, f, mp, retry);
		goto out;
	}
	if ((s = sessions_find(a->sessions, e.sid)) == NULL) {
		snprintf(reason, sizeof(reason), "no session %u here (its SYN "
		    "never came)", e.sid);
	} else if (session_next(s, &v, &e, reason, sizeof(reason)) != 0) {
		/* s is broken now: nothing of it runs again */
	} else if (!e.allowed) {
		bz_info("channel %u/%u: %.32s denied by bzproxy: %s", e.sid,
		    e.ch, e.t, e.reason != NULL ? e.reason : "no reason given");
		goto out;
	} else if (s->token_exp != 0 && (int64_t)v.now > s->token_exp) {
		snprintf(reason, sizeof(reason), "your IdP login (ID token) "
		    "has expired: run bzsshd login");
	} else if (strcmp(e.t, "signal") == 0) {
		if ((name = bz_json_str(e.msg, "name")) != NULL)
			chans_signal(a->chans, e.sid, e.ch, name);
		goto out;
	} else {
		run_request(a, &v, s, &e);
		goto out;
	}
	bz_warn("channel %u/%u: refused: %s", e.sid, e.ch, reason);
	refuse(a, e.sid, e.ch, reason);
 out:
	envelope_free(&e);
}

/* A frame for a running channel. Sealed data that does not open was
 * altered, dropped, replayed or moved on the way: its whole session ends,
 * and nothing of it runs again. */
static void
channel_frame(struct agent *a, const struct bz_frame *f)
{
	static const char why[] = "session data failed its end-to-end "
	    "integrity check at the target (altered, dropped, replayed or "
	    "reordered on the way): session closed";
	struct agent_session *s;

	if (chans_frame(a->chans, a->link, f) == 0)
		return;
	bz_warn("session %u: channel %u: %s", f->session_id, f->channel_id,
	    why);
	if ((s = sessions_find(a->sessions, f->session_id)) != NULL)
		s->broken = 1;
	chans_session_broken(a->chans, a->link, f->session_id, why);
}

/* An unsigned CONTROL frame: connection-level, or for a channel. */
static void
on_unsigned_control(struct agent *a, const struct bz_frame *f)
{
	char err[AGENT_ERRLEN];
	enum agent_req_kind kind;
	const char *t;
	json_t *o;

	if (f->channel_id != 0 &&
	    chans_exists(a->chans, f->session_id, f->channel_id)) {
		channel_frame(a, f);
		return;
	}
	if ((o = bz_json_parse_object(f->payload, f->length, err,
	    sizeof(err))) == NULL) {
		bz_warn("bad control message from bzproxy: %s", err);
		return;
	}
	t = bz_json_str(o, "t");
	if (f->channel_id == 0 && t != NULL &&
	    strcmp(t, "session_closed") == 0) {
		bz_debug("session %u closed", f->session_id);
		chans_session_closed(a->chans, f->session_id);
		key_wait_drop_session(a->held, f->session_id);
		sessions_drop(a->sessions, f->session_id);
		fwd_pool_cancel_session(a->fwd, f->session_id);
	} else if (f->channel_id != 0 && t != NULL &&
	    agent_req_kind_parse(t, &kind) == 0) {
		/* never run anything bzproxy did not sign */
		bz_warn("channel %u/%u: unsigned %.32s request refused",
		    f->session_id, f->channel_id, t);
		agent_send_failed(a->link, f->session_id, f->channel_id,
		    "request is not signed by bzproxy");
	} else
		bz_debug("channel %u/%u: control \"%.32s\" ignored",
		    f->session_id, f->channel_id, t != NULL ? t : "?");
	json_decref(o);
}

/* A frame for a channel whose request is held for the IdP's keys: queue
 * it behind the request (taking *mp). */
static void
on_held_frame(struct agent *a, const struct bz_frame *f,
    struct bz_link_msg **mp)
{
	uint32_t sid = f->session_id, ch = f->channel_id;

	if (f->type == BZ_FRAME_CONTROL && (f->flags & BZ_FLAG_PROXY_SIGNED)) {
		bz_warn("channel %u/%u: second request on a waiting channel "
		    "ignored", sid, ch);
		return;
	}
	if (f->type == BZ_FRAME_CLOSE) {
		bz_info("channel %u/%u: closed by the client while waiting for "
		    "the IdP's keys", sid, ch);
		key_wait_drop(a->held, sid, ch);
		(void)bz_link_send_frame(a->link, BZ_FRAME_CLOSE, 0, sid, ch,
		    NULL, 0);
		return;
	}
	if (key_wait_queue(a->held, sid, ch, *mp) == 0) {
		*mp = NULL;
		return;
	}
	bz_warn("channel %u/%u: refused: too much queued while waiting for "
	    "the IdP's keys", sid, ch);
	key_wait_drop(a->held, sid, ch);
	agent_send_failed(a->link, sid, ch, "too much data while the agent "
	    "waits for the IdP's keys");
}

/* A frame for a forward still connecting: only the client's CLOSE can
 * come before open_ok. */
static void
on_connecting_frame(struct agent *a, const struct bz_frame *f)
{
	if (f->type != BZ_FRAME_CLOSE) {
		bz_debug("channel %u/%u: %s frame before the forward is open "
		    "ignored", f->session_id, f->channel_id,
		    bz_frame_type_name(f->type));
		return;
	}
	bz_info("channel %u/%u: closed by the client while connecting",
	    f->session_id, f->channel_id);
	fwd_pool_cancel(a->fwd, f->session_id, f->channel_id);
	(void)bz_link_send_frame(a->link, BZ_FRAME_CLOSE, 0, f->session_id,
	    f->channel_id, NULL, 0);
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
	if (f.channel_id != 0 &&
	    key_wait_has(a->held, f.session_id, f.channel_id))
		on_held_frame(a, &f, mp);
	else if (f.channel_id != 0 &&
	    fwd_pool_has(a->fwd, f.session_id, f.channel_id))
		on_connecting_frame(a, &f);
	else if (f.type == BZ_FRAME_CONTROL &&
	    (f.flags & BZ_FLAG_PROXY_SIGNED))
		on_envelope(a, &f, mp, 0);
	else if (f.type == BZ_FRAME_CONTROL)
		on_unsigned_control(a, &f);
	else if (f.channel_id != 0)
		channel_frame(a, &f);
	else
		bz_debug("%s frame on channel 0 ignored",
		    bz_frame_type_name(f.type));
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
			on_envelope(a, &f, &m, 1);
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
	int timeout;
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
	timeout = min_timeout(timeout, LOOP_MAX_WAIT_MS);
	if (timeout < 0)
		timeout = 0;

	pfd[0].fd = a->wake[0];
	pfd[0].events = POLLIN;
	pfd[1].fd = a->sig_fd;
	pfd[1].events = POLLIN;
	pfd[0].revents = pfd[1].revents = 0;
	n = 2 + chans_pollfds(a->chans, ready, pfd + 2, max - 2);
	if (poll(pfd, n, timeout) < 0) {
		if (errno == EINTR)
			return 0;
		bz_error("poll: %s", strerror(errno));
		return -1;
	}
	if (pfd[1].revents & POLLIN)
		on_signals(a);
	chans_io(a->chans, ready, pfd + 2, n - 2);
	if (pfd[0].revents & POLLIN)
		drain(a->wake[0]);
	service_link(a);
	retry_held(a);
	take_forwards(a);
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
	/* wake pipe + signals + 3 fds per channel */
	struct pollfd pfd[2 + 3 * AGENT_MAX_CHANNELS];
	struct bz_jwks_cache_cfg jc;
	struct agent a;
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
	if ((a.chans = chans_new()) == NULL ||
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
	while (!a.stop)
		if (loop_once(&a, pfd, sizeof(pfd) / sizeof(pfd[0])) != 0)
			goto out;
	rc = 0;
 out:
	if (a.chans != NULL)
		chans_shutdown(a.chans, CHILD_SHUTDOWN_GRACE_MS);
	if (a.link != NULL)
		bz_link_free(a.link);
	chans_free(a.chans);
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
