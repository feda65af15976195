/*
 * client_request.c: a channel's request, as bzsshd signed it with the
 * client key (exec, shell, subsystem, forward, signal). It is classified
 * into a policy action (common/classify.h), decided, audited, and passed
 * to the agent inside bzproxy's signed envelope (client_chain.c) with the
 * decision: an allowed one runs, a denied one only moves the session's
 * chain on. One that cannot be decided (malformed, over a limit, for no
 * open channel) is audited and passed on denied all the same. The agent
 * reads what to run from the client's own signed bytes, never from us.
 */
#include "bzproxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "classify.h"
#include "log.h"
#include "util.h"

#define SUBSYSTEM_MAX 64
#define HOST_MAX 255
#define SIGNAL_MAX 32
#define KIND_MAX 32

/* What a request is about, for the policy and the audit. */
struct chan_req {
	const char *kind;        /* "exec", "shell", "subsystem", "forward" */
	enum bz_action action;
	const char *action_name; /* instead: "none" (undecided), "signal" */
	const char *limit;       /* the config key of a limit it is over */
	const char *command;     /* exec */
	size_t command_len;      /* an exec's, also when not logged */
	const char *subsystem;   /* subsystem */
	const char *host;        /* forward */
	json_int_t port;
	char forward[HOST_MAX + 16]; /* "host:port" for the policy */
};

static int
audit_channel(struct bzp_client *cl, uint32_t id, const struct chan_req *r,
    const struct bzp_signed *m, int allowed, const char *rule,
    const char *reason)
{
	json_t *o = bzp_audit_client(cl);
	char *h;

	if (o != NULL) {
		json_object_set_new(o, "ch", json_integer(id));
		if (r->action_name != NULL && r->kind != NULL)
			json_object_set_new(o, "request", json_string(
			    strlen(r->kind) <= KIND_MAX ? r->kind : "?"));
		if (r->limit != NULL)
			json_object_set_new(o, "limit", json_string(r->limit));
		if (r->command != NULL)
			json_object_set_new(o, "command",
			    json_string(r->command));
		else if (r->command_len > 0)
			json_object_set_new(o, "command_bytes",
			    json_integer((json_int_t)r->command_len));
		if (r->subsystem != NULL)
			json_object_set_new(o, "subsystem",
			    json_string(r->subsystem));
		if (r->host != NULL)
			json_object_set_new(o, "forward",
			    json_string(r->forward));
		/* the agent's own log names the same hash */
		if ((h = bz_hash_b64(m->bytes, m->len)) != NULL)
			json_object_set_new(o, "request_hash", json_string(h));
		free(h);
	}
	return bzp_audit(cl->conn->srv, "channel", bzp_audit_decision(o,
	    r->action_name != NULL ? r->action_name :
	    bz_action_name(r->action), allowed, rule, reason));
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
}

/* Decide r for channel ch, audit it, and pass it on with the decision;
 * a denied one also ends the client's channel. */
static void
run_request(struct bzp_client *cl, struct bzp_chan *ch,
    const struct chan_req *r, const struct bzp_signed *m)
{
	struct bz_policy_decision d;
	struct bzp_verdict v;

	ch->action = r->action;
	decide(cl, r, &d);
	snprintf(ch->rule, sizeof(ch->rule), "%s", d.rule);
	/* no unaudited access: an allow we cannot log is a deny */
	if (audit_channel(cl, ch->id, r, m, d.allowed, d.rule,
	    d.allowed ? NULL : d.reason) != 0 && d.allowed) {
		d.allowed = 0;
		snprintf(d.reason, sizeof(d.reason), "%s", BZP_NO_AUDIT);
	}
	memset(&v, 0, sizeof(v));
	v.allowed = d.allowed;
	v.action = bz_action_name(r->action);
	v.rule = d.rule;
	v.reason = d.reason;
	if (bzp_send_envelope(cl, ch->id, m, &v) != 0) {
		bzp_chan_refuse(cl, ch->id, "failed", "target unreachable");
		return;
	}
	if (!d.allowed) {
		bzp_chan_refuse(cl, ch->id, "denied", d.reason);
		return;
	}
	ch->running = 1;
	bz_debug("%s: session %u channel %u: %s allowed by %s",
	    cl->conn->peer, cl->sid, ch->id, bz_action_name(r->action),
	    d.rule);
}

/* A request refused before (or instead of) the policy's decision:
 * audited, refused, and passed on as denied so that the agent's chain
 * stays whole. */
static void
refuse_request(struct bzp_client *cl, uint32_t id, const struct bzp_signed *m,
    const struct chan_req *r, const char *why)
{
	struct bzp_verdict v;

	audit_channel(cl, id, r, m, 0, "", why);
	memset(&v, 0, sizeof(v));
	v.action = "none";
	v.rule = "";
	v.reason = why;
	(void)bzp_send_envelope(cl, id, m, &v);
	bzp_chan_refuse(cl, id, "denied", why);
}

/* exec, shell or subsystem on a session channel. */
static void
session_request(struct bzp_client *cl, struct bzp_chan *ch, const char *t,
    const struct bzp_signed *m)
{
	struct chan_req r;
	char why[BZP_ERRLEN];

	memset(&r, 0, sizeof(r));
	r.kind = t;
	if (strcmp(t, "exec") == 0) {
		r.action_name = "none";
		if ((r.command = bz_json_str(m->json, "command")) == NULL) {
			refuse_request(cl, ch->id, m, &r, "malformed exec "
			    "request");
			return;
		}
		r.command_len = strlen(r.command);
		if (bzp_limit_command(cl->conn->srv, r.command_len, why,
		    sizeof(why)) != 0) {
			r.command = NULL; /* its size and hash are recorded */
			r.limit = BZP_LIMIT_COMMAND;
			refuse_request(cl, ch->id, m, &r, why);
			return;
		}
		r.action_name = NULL;
		r.action = bz_classify_exec(r.command);
	} else if (strcmp(t, "shell") == 0)
		r.action = BZ_ACTION_SHELL;
	else {
		r.action = BZ_ACTION_SFTP;
		if ((r.subsystem = bz_json_str(m->json, "name")) == NULL ||
		    strlen(r.subsystem) > SUBSYSTEM_MAX) {
			r.subsystem = NULL;
			r.action_name = "none";
			refuse_request(cl, ch->id, m, &r, "malformed subsystem "
			    "request");
			return;
		}
		if (strcmp(r.subsystem, "sftp") != 0) {
			/* the policy language knows sftp only: say so */
			snprintf(why, sizeof(why), "subsystem %s is not "
			    "available (only sftp)", r.subsystem);
			refuse_request(cl, ch->id, m, &r, why);
			return;
		}
	}
	run_request(cl, ch, &r, m);
}

/* A direct-tcpip channel's destination (ssh -L, -W, -D). */
static void
forward_request(struct bzp_client *cl, struct bzp_chan *ch,
    const struct bzp_signed *m)
{
	struct chan_req r;
	json_t *port = json_object_get(m->json, "port");

	memset(&r, 0, sizeof(r));
	r.kind = "forward";
	r.action = BZ_ACTION_PORT_FORWARD;
	if ((r.host = bz_json_str(m->json, "host")) == NULL ||
	    r.host[0] == '\0' || strlen(r.host) > HOST_MAX ||
	    strpbrk(r.host, " \t\r\n") != NULL || !json_is_integer(port) ||
	    json_integer_value(port) < 1 || json_integer_value(port) > 65535) {
		r.host = NULL;
		r.action_name = "none";
		refuse_request(cl, ch->id, m, &r, "malformed forward request");
		return;
	}
	r.port = json_integer_value(port);
	/* as the policy writes it: an IPv6 literal in brackets */
	snprintf(r.forward, sizeof(r.forward), strchr(r.host, ':') != NULL ?
	    "[%s]:%u" : "%s:%u", r.host, (unsigned)r.port);
	run_request(cl, ch, &r, m);
}

/* A signal for a running channel: no decision of the policy's (a
 * refused one is audited; ssh shows nothing for it, as with sshd). */
static void
signal_request(struct bzp_client *cl, struct bzp_chan *ch,
    const struct bzp_signed *m)
{
	const char *name = bz_json_str(m->json, "name");
	struct bzp_verdict v;
	struct chan_req r;

	memset(&v, 0, sizeof(v));
	v.allowed = ch->running && !ch->agent_closed && name != NULL &&
	    strlen(name) <= SIGNAL_MAX;
	v.action = "signal";
	v.rule = ch->rule;
	v.reason = v.allowed ? NULL : "no running channel for the signal";
	if (!v.allowed) {
		memset(&r, 0, sizeof(r));
		r.kind = "signal";
		r.action_name = "signal";
		audit_channel(cl, ch->id, &r, m, 0, ch->rule, v.reason);
	}
	(void)bzp_send_envelope(cl, ch->id, m, &v);
}

void
bzp_client_request(struct bzp_client *cl, struct bzp_chan *ch, uint32_t id,
    const struct bzp_signed *m)
{
	const char *t = bz_json_str(m->json, "t");
	struct chan_req r;

	if (t == NULL)
		t = "";
	memset(&r, 0, sizeof(r));
	r.kind = t;
	r.action_name = "none";
	if (ch == NULL) {
		refuse_request(cl, id, m, &r, "channel not open");
		return;
	}
	if (strcmp(t, "signal") == 0) {
		signal_request(cl, ch, m);
		return;
	}
	if (ch->requested) {
		refuse_request(cl, id, m, &r, "one exec, shell, subsystem or "
		    "forward per channel");
		return;
	}
	ch->requested = 1;
	if (ch->forward != (strcmp(t, "forward") == 0))
		refuse_request(cl, id, m, &r, "request of the wrong kind for "
		    "the channel");
	else if (ch->forward)
		forward_request(cl, ch, m);
	else if (strcmp(t, "exec") == 0 || strcmp(t, "shell") == 0 ||
	    strcmp(t, "subsystem") == 0)
		session_request(cl, ch, t, m);
	else
		refuse_request(cl, id, m, &r, "unknown request");
}
