/*
 * client_link.c: a /v1/client link after hello_ok. Each channel's one
 * request (exec, shell or subsystem on a session channel; the opening of
 * a direct-tcpip channel) is classified into a policy action (common/
 * classify.h) and decided; an allowed one goes to the agent as JSON
 * signed by bzproxy. Channel frames are relayed unchanged except for the
 * header's session_id (0 here, the link's sid toward the agent).
 */
#include "bzproxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "buf.h"
#include "classify.h"
#include "log.h"
#include "util.h"

#define CHANNELS_MAX 256          /* open channels per SSH connection */
#define COMMAND_MAX BZ_WIRE_COMMAND_MAX
#define ENV_MAX 64
#define ENV_VALUE_MAX 4096
#define TERM_MAX 64
#define SUBSYSTEM_MAX 64
#define HOST_MAX 255
#define NOTE_MAX 200

struct bzp_client *
bzp_client_new(struct bzp_conn *c)
{
	struct bzp_client *cl;
	char *nonce = NULL;
	json_t *o = NULL;

	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return NULL;
	cl->conn = c;
	/* what login, hello and whoami sign with the client key (pop.h) */
	randombytes_buf(cl->challenge, sizeof(cl->challenge));
	if (bz_b64url_encode(cl->challenge, sizeof(cl->challenge),
	    &nonce) != 0 || (o = json_pack("{s:s, s:s}", "t", "challenge",
	    "nonce", nonce)) == NULL || bzp_conn_send_json(c, 0, 0, o) != 0) {
		free(cl);
		cl = NULL;
	}
	json_decref(o);
	free(nonce);
	return cl;
}

void
bzp_client_policy_req(const struct bzp_client *cl,
    struct bz_policy_request *req, enum bz_action action,
    const char *command)
{
	memset(req, 0, sizeof(*req));
	req->user = cl->user;
	req->groups = cl->group_v;
	req->ngroups = cl->ngroups;
	req->target = cl->target;
	req->labels = cl->label_v;
	req->nlabels = cl->nlabels;
	req->unix_user = cl->unix_user;
	req->action = action;
	req->command = command;
	req->now = time(NULL);
}

static struct bzp_chan *
chan_find(struct bzp_client *cl, uint32_t id)
{
	struct bzp_chan *ch;

	for (ch = cl->chans; ch != NULL; ch = ch->next)
		if (ch->id == id)
			return ch;
	return NULL;
}

/* Forget a channel both sides have closed (or that never ran). */
static void
chan_maybe_free(struct bzp_client *cl, struct bzp_chan *ch)
{
	struct bzp_chan **pp;

	if (!ch->client_closed || (ch->running && !ch->agent_closed))
		return;
	for (pp = &cl->chans; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ch) {
			*pp = ch->next;
			cl->nchans--;
			free(ch);
			return;
		}
}

/* Tell the client its channel cannot run (it ends the channel). */
static void
chan_refuse(struct bzp_client *cl, uint32_t id, const char *t,
    const char *reason)
{
	json_t *o = json_pack("{s:s, s:s}", "t", t, "reason", reason);

	if (o != NULL)
		(void)bzp_conn_send_json(cl->conn, 0, id, o);
	json_decref(o);
}

/* What a request is about, for the policy, the audit and the agent. */
struct chan_req {
	const char *kind;        /* "exec", "shell", "subsystem", "forward" */
	enum bz_action action;
	const char *command;     /* exec */
	const char *subsystem;   /* subsystem */
	const char *host;        /* forward */
	json_int_t port;
	char forward[HOST_MAX + 16]; /* "host:port" for the policy */
	json_t *pty, *env;       /* session requests (cleaned) */
	json_t *client;          /* where ssh runs, as bzsshd sees it */
};

static int
audit_channel(struct bzp_client *cl, uint32_t id, const struct chan_req *r,
    int allowed, const char *rule, const char *reason)
{
	json_t *o = bzp_audit_client(cl);

	if (o != NULL) {
		json_object_set_new(o, "ch", json_integer(id));
		if (r->command != NULL)
			json_object_set_new(o, "command",
			    json_string(r->command));
		if (r->subsystem != NULL)
			json_object_set_new(o, "subsystem",
			    json_string(r->subsystem));
		if (r->host != NULL)
			json_object_set_new(o, "forward",
			    json_string(r->forward));
	}
	return bzp_audit(cl->conn->srv, "channel", bzp_audit_decision(o,
	    bz_action_name(r->action), allowed, rule, reason));
}

/* pty: only the members the agent reads, with bounded values. */
static json_t *
clean_pty(const json_t *pty)
{
	const char *term;
	json_int_t v[4];
	const char *keys[4] = { "cols", "rows", "width", "height" };
	json_t *x;
	int i;

	if (pty == NULL || json_is_null(pty))
		return json_null();
	if (!json_is_object(pty) || (term = bz_json_str(pty, "term")) ==
	    NULL || strlen(term) > TERM_MAX)
		return NULL;
	for (i = 0; i < 4; i++) {
		x = json_object_get(pty, keys[i]);
		v[i] = json_is_integer(x) ? json_integer_value(x) : 0;
		if (v[i] < 0 || v[i] > 65535)
			return NULL;
	}
	return json_pack("{s:s, s:I, s:I, s:I, s:I}", "term", term, "cols",
	    v[0], "rows", v[1], "width", v[2], "height", v[3]);
}

/* "client": {"addr": IP, "port": N, "server_port": N}, where bzsshd sees
 * ssh and the port ssh asked for (the agent's SSH_CLIENT and
 * SSH_CONNECTION): kept only when well formed. */
static json_t *
clean_client(const json_t *c)
{
	unsigned char bin[16];
	json_t *port, *sport;
	const char *addr;

	port = json_object_get(c, "port");
	sport = json_object_get(c, "server_port");
	if (!json_is_object(c) || (addr = bz_json_str(c, "addr")) == NULL ||
	    strlen(addr) > 45 || (inet_pton(AF_INET, addr, bin) != 1 &&
	    inet_pton(AF_INET6, addr, bin) != 1) || !json_is_integer(port) ||
	    json_integer_value(port) < 0 || json_integer_value(port) > 65535 ||
	    !json_is_integer(sport) || json_integer_value(sport) < 0 ||
	    json_integer_value(sport) > 65535)
		return NULL;
	return json_pack("{s:s, s:O, s:O}", "addr", addr, "port", port,
	    "server_port", sport);
}

/* env: names and sizes bounded; which names a target takes is its own
 * decision (the agent's accept_env), so all well-formed ones go on. */
static json_t *
clean_env(const json_t *env)
{
	json_t *out = json_object(), *v;
	const char *k;

	if (out == NULL || env == NULL || !json_is_object(env))
		return out;
	json_object_foreach((json_t *)env, k, v) {
		if (!bz_env_name_ok(k) || !json_is_string(v) ||
		    json_string_length(v) > ENV_VALUE_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v) ||
		    json_object_size(out) >= ENV_MAX)
			continue;
		json_object_set(out, k, v);
	}
	return out;
}

/* Serialise once, sign those bytes, send JSON || signature. */
static int
send_signed(struct bzp_client *cl, uint32_t id, const json_t *req)
{
	struct bzp_server *s = cl->conn->srv;
	char *js;
	uint8_t *p;
	size_t n;
	int r = BZ_ERR_ALLOC;

	if ((js = bz_json_dump(req)) == NULL)
		return BZ_ERR_ALLOC;
	n = strlen(js);
	if (n + BZ_SIG_LEN > BZ_WIRE_MAX_CONTROL)
		r = BZ_ERR_TOO_BIG;
	else if ((p = malloc(n + BZ_SIG_LEN)) != NULL) {
		memcpy(p, js, n);
		crypto_sign_detached(p + n, NULL, p, n, s->sk);
		r = bzp_conn_send(cl->agent->conn, BZ_FRAME_CONTROL,
		    BZ_FLAG_PROXY_SIGNED, cl->sid, id, p, n + BZ_SIG_LEN);
		sodium_memzero(p, n); /* holds the ID token */
		free(p);
	}
	sodium_memzero(js, n);
	free(js);
	return r;
}

/* The policy's decision on r, with the session's own limits (MFA age,
 * target connected) applied on top. */
static void
decide(struct bzp_client *cl, const struct chan_req *r,
    struct bz_policy_decision *d)
{
	struct bzp_server *s = cl->conn->srv;
	struct bz_policy_request pr;
	time_t now = time(NULL);

	bzp_client_policy_req(cl, &pr, r->action, r->command);
	if (r->host != NULL)
		pr.forward = r->forward;
	bz_policy_evaluate(s->policy, &pr, d);
	if (!d->allowed && d->reason[0] == '\0')
		snprintf(d->reason, sizeof(d->reason), "no policy allows %s%s"
		    "%.100s as %s on %s", bz_action_name(r->action),
		    r->host != NULL ? " to " : "",
		    r->host != NULL ? r->forward : "", cl->unix_user,
		    cl->target);
	if (d->allowed && d->mfa_max_age > 0 &&
	    (int64_t)now - cl->mfa_at > d->mfa_max_age) {
		/* a long-lived connection outlived the rule's MFA age */
		d->allowed = 0;
		snprintf(d->reason, sizeof(d->reason), "your last TOTP check "
		    "is older than rule %s allows: reconnect to be asked again",
		    d->rule);
	}
	if (d->allowed && cl->agent == NULL) {
		d->allowed = 0;
		snprintf(d->reason, sizeof(d->reason), "target %s is not "
		    "connected", cl->target);
	}
}

/* The signed request for the agent: who, where, what, and why allowed. */
static json_t *
build_request(struct bzp_client *cl, uint32_t id, const struct chan_req *r,
    const char *rule)
{
	json_t *req;
	char *nonce = NULL;

	if (bz_random_b64url(16, &nonce) != 0)
		return NULL;
	req = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s, "
	    "s:I, s:s}", "t", r->kind, "action", bz_action_name(r->action),
	    "sid", (json_int_t)cl->sid, "ch", (json_int_t)id, "target",
	    cl->target, "unix_user", cl->unix_user, "user", cl->user,
	    "id_token", cl->id_token, "rule", rule, "ts",
	    (json_int_t)time(NULL), "nonce", nonce);
	free(nonce);
	if (req == NULL)
		return NULL;
	if ((r->command != NULL && json_object_set_new(req, "command",
	    json_string(r->command)) != 0) ||
	    (r->subsystem != NULL && json_object_set_new(req, "subsystem",
	    json_string(r->subsystem)) != 0) ||
	    (r->host != NULL && (json_object_set_new(req, "host",
	    json_string(r->host)) != 0 || json_object_set_new(req, "port",
	    json_integer(r->port)) != 0)) ||
	    (r->pty != NULL && json_object_set(req, "pty", r->pty) != 0) ||
	    (r->env != NULL && json_object_set(req, "env", r->env) != 0) ||
	    (r->client != NULL && json_object_set(req, "client",
	    r->client) != 0)) {
		json_decref(req);
		return NULL;
	}
	return req;
}

/* Decide r for channel ch, then audit, and sign and forward it or refuse
 * it (the client then ends the channel). */
static void
run_request(struct bzp_client *cl, struct bzp_chan *ch,
    const struct chan_req *r)
{
	struct bz_policy_decision d;
	char why[BZP_ERRLEN + 64];
	json_t *req = NULL;

	ch->action = r->action;
	decide(cl, r, &d);
	snprintf(ch->rule, sizeof(ch->rule), "%s", d.rule);
	if (!d.allowed) {
		audit_channel(cl, ch->id, r, 0, d.rule, d.reason);
		chan_refuse(cl, ch->id, "denied", d.reason);
		return;
	}
	/* no unaudited access: an allow we cannot log is a deny */
	if (audit_channel(cl, ch->id, r, 1, d.rule, NULL) != 0) {
		chan_refuse(cl, ch->id, "failed", "bzproxy cannot write its "
		    "audit log");
		return;
	}
	if ((req = build_request(cl, ch->id, r, d.rule)) == NULL) {
		chan_refuse(cl, ch->id, "failed", "out of memory");
		return;
	}
	if (send_signed(cl, ch->id, req) != 0) {
		snprintf(why, sizeof(why), "request too large or target %s "
		    "unreachable", cl->target);
		chan_refuse(cl, ch->id, "failed", why);
	} else {
		ch->running = 1;
		bz_debug("%s: session %u channel %u: %s allowed by %s",
		    cl->conn->peer, cl->sid, ch->id, bz_action_name(r->action),
		    d.rule);
	}
	json_decref(req);
}

/* A session channel's exec, shell or subsystem request. */
static void
on_session_request(struct bzp_client *cl, struct bzp_chan *ch,
    const json_t *o, const char *t)
{
	struct chan_req r;
	const char *bad = NULL;

	if (ch->requested) {
		chan_refuse(cl, ch->id, "denied", "one exec, shell or "
		    "subsystem per channel");
		return;
	}
	ch->requested = 1;
	memset(&r, 0, sizeof(r));
	r.kind = t;
	if (strcmp(t, "exec") == 0) {
		if ((r.command = bz_json_str(o, "command")) == NULL ||
		    strlen(r.command) > COMMAND_MAX)
			bad = "malformed exec request (or a command line over "
			    "128 KiB)";
		r.action = bz_classify_exec(r.command);
	} else if (strcmp(t, "shell") == 0) {
		r.action = BZ_ACTION_SHELL;
	} else {
		if ((r.subsystem = bz_json_str(o, "name")) == NULL ||
		    strlen(r.subsystem) > SUBSYSTEM_MAX)
			bad = "malformed subsystem request";
		r.action = BZ_ACTION_SFTP;
	}
	if (bad == NULL && (r.pty = clean_pty(json_object_get(o, "pty"))) ==
	    NULL)
		bad = "malformed pty request";
	if (bad != NULL) {
		chan_refuse(cl, ch->id, "denied", bad);
		goto out;
	}
	if (r.subsystem != NULL && strcmp(r.subsystem, "sftp") != 0) {
		char why[128];

		/* the policy language knows sftp only: say so, and log it */
		snprintf(why, sizeof(why), "subsystem %s is not available "
		    "(only sftp)", r.subsystem);
		audit_channel(cl, ch->id, &r, 0, "", why);
		chan_refuse(cl, ch->id, "denied", why);
		goto out;
	}
	if ((r.env = clean_env(json_object_get(o, "env"))) == NULL) {
		chan_refuse(cl, ch->id, "failed", "out of memory");
		goto out;
	}
	r.client = clean_client(json_object_get(o, "client"));
	run_request(cl, ch, &r);
 out:
	json_decref(r.pty);
	json_decref(r.env);
	json_decref(r.client);
}

/* A direct-tcpip channel (ssh -L, -W, -D): decided when it opens. */
static void
on_open_forward(struct bzp_client *cl, struct bzp_chan *ch, const json_t *o)
{
	struct chan_req r;
	json_t *port = json_object_get(o, "port");

	ch->requested = 1;
	memset(&r, 0, sizeof(r));
	r.kind = "forward";
	r.action = BZ_ACTION_PORT_FORWARD;
	if ((r.host = bz_json_str(o, "host")) == NULL || r.host[0] == '\0' ||
	    strlen(r.host) > HOST_MAX || strpbrk(r.host, " \t\r\n") != NULL ||
	    !json_is_integer(port) || json_integer_value(port) < 1 ||
	    json_integer_value(port) > 65535) {
		chan_refuse(cl, ch->id, "denied", "malformed forward request");
		return;
	}
	r.port = json_integer_value(port);
	/* as the policy writes it: an IPv6 literal in brackets */
	snprintf(r.forward, sizeof(r.forward), strchr(r.host, ':') != NULL ?
	    "[%s]:%u" : "%s:%u", r.host, (unsigned)r.port);
	run_request(cl, ch, &r);
}

/* Something bzsshd refused on its own (agent or X11 forwarding, -R, ...):
 * it only tells us so that the audit log has it. */
static void
on_refused_note(struct bzp_client *cl, uint32_t id, const json_t *o)
{
	const char *what = bz_json_str(o, "request"), *why;
	json_t *ev;

	if (what == NULL || strlen(what) > NOTE_MAX)
		return;
	why = bz_json_str(o, "reason");
	if ((ev = bzp_audit_client(cl)) == NULL)
		return;
	if (id != 0)
		json_object_set_new(ev, "ch", json_integer(id));
	json_object_set_new(ev, "request", json_string(what));
	bzp_audit(cl->conn->srv, "request_refused", bzp_audit_decision(ev,
	    what, 0, "", why != NULL && strlen(why) <= NOTE_MAX ? why :
	    "refused by bzsshd"));
}

/* Forward a control message as is, for a channel that runs. */
static void
forward(struct bzp_client *cl, struct bzp_chan *ch, struct bzp_out **msg)
{
	if (ch == NULL || !ch->running || ch->agent_closed ||
	    cl->agent == NULL)
		return;
	if (bzp_conn_relay(cl->agent->conn, msg, cl->sid) == 0)
		bzp_conn_hold(cl->conn, cl->agent->conn, &cl->held_by_agent);
}

static void
on_control(struct bzp_client *cl, struct bzp_chan *ch, uint32_t id,
    const struct bz_frame *f, struct bzp_out **msg)
{
	char err[BZP_ERRLEN];
	const char *t, *kind;
	json_t *o;

	if ((o = bz_json_parse_object(f->payload, f->length, err,
	    sizeof(err))) == NULL) {
		/* not err: jansson quotes the input, which may hold a token */
		bzp_conn_close(cl->conn, "protocol violation: malformed JSON");
		return;
	}
	if ((t = bz_json_str(o, "t")) == NULL)
		t = "";
	kind = bz_json_str(o, "kind");
	if (strcmp(t, "open") == 0) {
		int forward = kind != NULL && strcmp(kind, "direct-tcpip") == 0;

		if (ch != NULL)
			bzp_conn_close(cl->conn, "protocol violation: channel "
			    "%u opened twice", id);
		else if (cl->nchans >= CHANNELS_MAX)
			chan_refuse(cl, id, "denied", "too many channels");
		else if (!forward && (kind == NULL ||
		    strcmp(kind, "session") != 0))
			chan_refuse(cl, id, "denied", "unknown channel kind");
		else if ((ch = calloc(1, sizeof(*ch))) == NULL)
			chan_refuse(cl, id, "failed", "out of memory");
		else {
			ch->id = id;
			ch->next = cl->chans;
			cl->chans = ch;
			cl->nchans++;
			if (forward)
				on_open_forward(cl, ch, o);
		}
	} else if (strcmp(t, "exec") == 0 || strcmp(t, "shell") == 0 ||
	    strcmp(t, "subsystem") == 0) {
		if (ch == NULL)
			chan_refuse(cl, id, "denied", "channel not open");
		else
			on_session_request(cl, ch, o, t);
	} else if (strcmp(t, "window_change") == 0 ||
	    strcmp(t, "signal") == 0)
		forward(cl, ch, msg);
	else if (strcmp(t, "refused") == 0)
		on_refused_note(cl, id, o);
	else
		bz_debug("%s: channel %u: ignored \"%.32s\"", cl->conn->peer,
		    id, t);
	json_decref(o);
}

/* Channel 0 after hello_ok: only notes of what bzsshd refused (-R). */
static void
on_conn_control(struct bzp_client *cl, const struct bz_frame *f)
{
	const char *t;
	json_t *o;

	if ((o = bz_json_parse_object(f->payload, f->length, NULL, 0)) ==
	    NULL) {
		bzp_conn_close(cl->conn, "protocol violation: malformed JSON");
		return;
	}
	if ((t = bz_json_str(o, "t")) != NULL && strcmp(t, "refused") == 0)
		on_refused_note(cl, 0, o);
	else
		bz_debug("%s: ignored \"%.32s\" on channel 0", cl->conn->peer,
		    t != NULL ? t : "?");
	json_decref(o);
}

void
bzp_client_frame(struct bzp_client *cl, const struct bz_frame *f,
    struct bzp_out **msg)
{
	struct bzp_chan *ch;

	if (cl->state != BZP_CL_READY) {
		if ((cl->state == BZP_CL_START || cl->state == BZP_CL_MFA) &&
		    f->channel_id == 0 && f->type == BZ_FRAME_CONTROL &&
		    f->flags == 0)
			bzp_client_auth(cl, f);
		else if (cl->state != BZP_CL_DONE)
			bzp_conn_close(cl->conn, "protocol violation: %s frame "
			    "on channel %u before hello_ok",
			    bz_frame_type_name(f->type), f->channel_id);
		return;
	}
	if (f->flags != 0) {
		bzp_conn_close(cl->conn, "protocol violation: flags 0x%x from "
		    "a client", f->flags);
		return;
	}
	if (f->channel_id == 0) {
		if (f->type != BZ_FRAME_CONTROL)
			bzp_conn_close(cl->conn, "protocol violation: %s frame "
			    "on channel 0", bz_frame_type_name(f->type));
		else
			on_conn_control(cl, f);
		return;
	}
	ch = chan_find(cl, f->channel_id);
	switch (f->type) {
	case BZ_FRAME_CONTROL:
		on_control(cl, ch, f->channel_id, f, msg);
		break;
	case BZ_FRAME_DATA:
	case BZ_FRAME_EOF:
	case BZ_FRAME_WINDOW:
		forward(cl, ch, msg);
		break;
	case BZ_FRAME_CLOSE:
		if (ch == NULL)
			break;
		ch->client_closed = 1;
		forward(cl, ch, msg);
		chan_maybe_free(cl, ch);
		break;
	default:
		bzp_conn_close(cl->conn, "protocol violation: %s frame from a "
		    "client", bz_frame_type_name(f->type));
		break;
	}
}

void
bzp_client_agent_gone(struct bzp_client *cl, const char *reason)
{
	struct bzp_chan *ch;

	for (ch = cl->chans; ch != NULL; ch = ch->next) {
		if (!ch->running || ch->agent_closed)
			continue;
		chan_refuse(cl, ch->id, "failed", reason);
		(void)bzp_conn_send(cl->conn, BZ_FRAME_CLOSE, 0, 0, ch->id,
		    NULL, 0);
		ch->agent_closed = 1;
	}
	cl->agent = NULL;
	cl->agent_held = 0;      /* that pause died with the agent */
	bzp_conn_release(cl->conn, &cl->held_by_agent);
	cl->state = BZP_CL_DONE;
	bzp_conn_fail(cl->conn, reason);
}

void
bzp_client_drained(struct bzp_client *cl)
{
	if (cl->agent != NULL)
		bzp_conn_release(cl->agent->conn, &cl->agent_held);
}

void
bzp_client_free(struct bzp_client *cl)
{
	struct bzp_server *s = cl->conn->srv;
	struct bzp_chan *ch;
	json_t *o;

	if (cl->agent != NULL) {
		/* the agent kills what this session still runs */
		if (!s->stop && (o = json_pack("{s:s}", "t",
		    "session_closed")) != NULL) {
			(void)bzp_conn_send_json(cl->agent->conn, cl->sid, 0, o);
			json_decref(o);
		}
		bzp_conn_release(cl->agent->conn, &cl->agent_held);
		bzp_agent_detach(cl->agent, cl);
	}
	if (cl->sid != 0) {
		bzp_audit(s, "session_close", bzp_audit_client(cl));
		bz_info("%s: session %u closed", cl->conn->peer, cl->sid);
	}
	while ((ch = cl->chans) != NULL) {
		cl->chans = ch->next;
		free(ch);
	}
	json_decref(cl->pending_login);
	if (cl->id_token != NULL)
		sodium_memzero(cl->id_token, strlen(cl->id_token));
	free(cl->id_token);
	free(cl->user);
	free(cl->target);
	free(cl->unix_user);
	json_decref(cl->groups);
	free(cl->group_v);
	json_decref(cl->labels);
	free(cl->label_v);
	cl->conn->client = NULL;
	free(cl);
}

void
bzp_client_from_agent(struct bzp_client *cl, const struct bz_frame *f,
    struct bzp_out **msg)
{
	struct bzp_chan *ch = chan_find(cl, f->channel_id);

	if (ch == NULL || !ch->running || ch->agent_closed)
		return; /* late frames for a channel already finished */
	if (f->type == BZ_FRAME_CLOSE)
		ch->agent_closed = 1;
	if (bzp_conn_relay(cl->conn, msg, 0) == 0 && cl->agent != NULL)
		bzp_conn_hold(cl->agent->conn, cl->conn, &cl->agent_held);
	if (f->type == BZ_FRAME_CLOSE)
		chan_maybe_free(cl, ch);
}
