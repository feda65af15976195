/*
 * dispatch.c: what a ready link to bzproxy brings. A SYN starts a session
 * (session.c checks it, we answer with the signed SYNACK); a request in
 * bzproxy's envelope must continue its session's chain and runs when
 * bzproxy allowed it and our own checks pass (a child, or a forward's
 * connect on a worker thread); frames of running channels go to
 * channel.c. Each decision is logged and written to the target's own
 * audit log (audit_log.c) before anything runs.
 */
#include "connection.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "jwks_cache.h"
#include "log.h"
#include "util.h"

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
start_forward(struct agent *a, const struct envelope *e,
    const struct agent_session *s, const struct agent_request *req)
{
	int r = fwd_pool_start(a->fwd, req->sid, req->ch, req->fwd_host,
	    req->fwd_port, req->request_hash);

	if (r != 0) {
		const char *why = r == BZ_ERR_TOO_BIG ? "too many forward "
		    "connections being opened on this agent" : "out of memory";

		agent_log_request(req, 0, why);
		(void)agent_audit_request(a->audit, e, s, req, "failed", why);
		agent_send_failed(a->link, req->sid, req->ch, why);
		return;
	}
	agent_log_request(req, 1, "connecting");
}

/* Forwards whose connect finished: the channel runs, or fails. */
void
dispatch_forwards(struct agent *a)
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
			agent_audit_forward_failed(a->audit, res.sid, res.ch,
			    res.request_hash, res.reason);
			agent_send_failed(a->link, res.sid, res.ch, res.reason);
			continue;
		}
		if ((s = sessions_find(a->sessions, res.sid)) == NULL ||
		    s->broken) {
			close(res.fd); /* its session ended meanwhile */
			continue;
		}
		if (chans_add_socket(a->chans, &res, &s->seal) != 0) {
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
	v->login_max_age = a->cfg->login_max_age;
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
		(void)agent_audit_session(a->audit, e, NULL, reason);
		refuse(a, e->sid, 0, reason);
		return;
	}
	s = sessions_find(a->sessions, e->sid);
	(void)agent_audit_session(a->audit, e, s, NULL);
	if (bz_link_send_frame(a->link, BZ_FRAME_CONTROL,
	    BZ_FLAG_AGENT_SIGNED, e->sid, 0, synack, n) != 0)
		bz_warn("session %u: cannot queue the SYNACK", e->sid);
	free(synack);
	bz_info("session %u: %s as %s (rule %s)", e->sid, s->user,
	    s->unix_user, e->rule != NULL ? e->rule : "?");
}

/* A refreshed ID token of session s, allowed or not by bzproxy: from now
 * on the session runs until it expires (nothing to answer: bzsshd goes
 * on either way, and a refused token only ends what it would have kept
 * alive). */
static void
on_token(struct agent *a, const struct verify_ctx *v, struct agent_session *s,
    const struct envelope *e)
{
	struct verify_ctx vk = *v;
	char reason[AGENT_ERRLEN];
	int r = 0;

	if (e->allowed) {
		vk.jwks = bz_jwks_cache_lock(a->jwks);
		r = session_token(s, &vk, e, reason, sizeof(reason));
		bz_jwks_cache_unlock(a->jwks);
	}
	if (!e->allowed) {
		bz_warn("session %u: refreshed ID token refused by bzproxy: %s",
		    e->sid, e->reason != NULL ? e->reason : "no reason given");
		(void)agent_audit_request(a->audit, e, s, NULL, "denied",
		    e->reason != NULL ? e->reason : "no reason given");
	} else if (r != 0) {
		bz_warn("session %u: refreshed ID token refused: %s", e->sid,
		    reason);
		(void)agent_audit_request(a->audit, e, s, NULL, "refused",
		    reason);
	} else {
		bz_info("session %u: ID token refreshed (valid %lld s more)",
		    e->sid, (long long)(s->token_exp - (int64_t)v->now));
		(void)agent_audit_request(a->audit, e, s, NULL, "run", NULL);
	}
}

/* Say no to the request in e before reading it: log, audit, answer. */
static void
refuse_request(struct agent *a, const struct envelope *e,
    const struct agent_session *s, const char *reason)
{
	bz_warn("channel %u/%u: %s refused: %s", e->sid, e->ch, e->t,
	    reason);
	(void)agent_audit_request(a->audit, e, s, NULL, "refused", reason);
	refuse(a, e->sid, e->ch, reason);
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
		refuse_request(a, e, s, "channel number reused in this "
		    "session");
		return;
	}
	s->last_ch = e->ch;
	if (chans_count(a->chans) + fwd_pool_count(a->fwd) >=
	    (size_t)a->cfg->max_channels) {
		char why[96];

		snprintf(why, sizeof(why), "this target runs %d channels "
		    "already (its max_channels)", a->cfg->max_channels);
		refuse_request(a, e, s, why);
		return;
	}
	if (session_request(s, v, e, &req, reason, sizeof(reason)) !=
	    VERIFY_OK) {
		snprintf(line, sizeof(line), "refused: %s", reason);
		agent_log_request(&req, 0, line);
		(void)agent_audit_request(a->audit, e, s, &req, "refused",
		    reason);
		agent_send_failed(a->link, e->sid, e->ch, reason);
		goto out;
	}
	/* on the record before it runs, or not at all */
	if (agent_audit_request(a->audit, e, s, &req, "run", NULL) != 0) {
		snprintf(reason, sizeof(reason), "the target cannot write its "
		    "audit log");
		agent_log_request(&req, 0, reason);
		agent_send_failed(a->link, e->sid, e->ch, reason);
		goto out;
	}
	if (req.kind == REQ_FORWARD) {
		start_forward(a, e, s, &req);
		goto out;
	}
	if (set_server_addr(a, &req) != 0 ||
	    child_spawn(&req, &cp, reason, sizeof(reason)) != 0) {
		snprintf(line, sizeof(line), "cannot start: %s", reason);
		agent_log_request(&req, 0, line);
		(void)agent_audit_request(a->audit, e, s, &req, "failed",
		    reason);
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
		agent_log_request(&req, 0, "out of memory");
		agent_send_failed(a->link, req.sid, req.ch, "out of memory");
		goto out;
	}
	snprintf(line, sizeof(line), "started (pid %d)", (int)cp.pid);
	agent_log_request(&req, 1, line);
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
	} else if (strcmp(e.t, "token") == 0) {
		on_token(a, &v, s, &e);
		goto out;
	} else if (!e.allowed) {
		bz_info("channel %u/%u: %.32s denied by bzproxy: %s", e.sid,
		    e.ch, e.t, e.reason != NULL ? e.reason : "no reason given");
		(void)agent_audit_request(a->audit, &e, s, NULL, "denied",
		    e.reason != NULL ? e.reason : "no reason given");
		goto out;
	} else if (s->token_exp != 0 && (int64_t)v.now > s->token_exp) {
		snprintf(reason, sizeof(reason), "your IdP login (ID token) "
		    "has expired: run bzsshd login");
	} else if (strcmp(e.t, "signal") == 0) {
		if ((name = bz_json_str(e.msg, "name")) != NULL &&
		    agent_audit_request(a->audit, &e, s, NULL, "run",
		    NULL) == 0)
			chans_signal(a->chans, e.sid, e.ch, name);
		goto out;
	} else {
		run_request(a, &v, s, &e);
		goto out;
	}
	refuse_request(a, &e, s, reason);
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
	agent_audit_integrity(a->audit, f->session_id, f->channel_id, s, why);
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
		agent_audit_integrity(a->audit, f->session_id, f->channel_id,
		    sessions_find(a->sessions, f->session_id),
		    "a request not signed by bzproxy: refused");
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

void
dispatch_frame(struct agent *a, const struct bz_frame *f,
    struct bz_link_msg **mp)
{
	if (f->channel_id != 0 &&
	    key_wait_has(a->held, f->session_id, f->channel_id))
		on_held_frame(a, f, mp);
	else if (f->channel_id != 0 &&
	    fwd_pool_has(a->fwd, f->session_id, f->channel_id))
		on_connecting_frame(a, f);
	else if (f->type == BZ_FRAME_CONTROL &&
	    (f->flags & BZ_FLAG_PROXY_SIGNED))
		on_envelope(a, f, mp, 0);
	else if (f->type == BZ_FRAME_CONTROL)
		on_unsigned_control(a, f);
	else if (f->channel_id != 0)
		channel_frame(a, f);
	else
		bz_debug("%s frame on channel 0 ignored",
		    bz_frame_type_name(f->type));
}

void
dispatch_retry(struct agent *a, const struct bz_frame *f,
    struct bz_link_msg **mp)
{
	on_envelope(a, f, mp, 1);
}
