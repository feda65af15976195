/*
 * audit_log.c: what this target ran, for whom, in its own audit log
 * (common/audit.c: hash-chained JSON lines, fsync'ed, 0600), and the
 * matching lines of the agent's stderr log. bzproxy keeps a log too, but
 * a bzproxy in an attacker's hands can edit its own; this one lives on
 * the target. Each request line names the SHA-256 of the client's signed
 * request (request_hash, as bzproxy's log does), so the two can be
 * matched line by line, and a line in one without the other stands out.
 *
 * Events: "session" (a SYN accepted or refused), "request" (exec, shell,
 * subsystem or forward: run, refused, denied by bzproxy, failed to
 * start), "channel_end" (exit status or signal, bytes), "integrity"
 * (sealed data that did not open, or an unsigned request: refused),
 * "forward_failed" (a forward's connect failed after its "run" line),
 * "leftovers_ended"
 * (processes a killed agent left, ended at start). A request whose
 * "run" line cannot be written is not run.
 */
#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "audit.h"
#include "chain.h"
#include "log.h"
#include "util.h"

/* Members every line about envelope e has. NULL when out of memory. */
static json_t *
envelope_fields(const struct envelope *e)
{
	json_t *o = json_object();
	char *h = bz_hash_b64(e->csm, e->csm_len);

	if (o == NULL || h == NULL ||
	    json_object_set_new(o, "sid", json_integer(e->sid)) != 0 ||
	    (e->ch != 0 && json_object_set_new(o, "ch",
	    json_integer(e->ch)) != 0) ||
	    json_object_set_new(o, "request_hash", json_string(h)) != 0 ||
	    json_object_set_new(o, "proxy_decision",
	    json_string(e->allowed ? "allow" : "deny")) != 0 ||
	    (e->rule != NULL && json_object_set_new(o, "rule",
	    json_string(e->rule)) != 0) ||
	    (e->action != NULL && json_object_set_new(o, "action",
	    json_string(e->action)) != 0)) {
		json_decref(o);
		o = NULL;
	}
	free(h);
	return o;
}

static int
set_str(json_t *o, const char *k, const char *v)
{
	return v == NULL ? 0 : json_object_set_new(o, k, json_string(v));
}

static int
write_event(struct bz_audit *au, const char *event, json_t *o)
{
	char err[256] = "out of memory";
	int r;

	if (au == NULL)
		return BZ_OK; /* no audit log configured */
	if (o == NULL)
		r = BZ_ERR_ALLOC;
	else
		r = bz_audit_write(au, event, o, err, sizeof(err));
	if (r != 0)
		bz_error("audit log: cannot write a \"%s\" line: %s", event,
		    err);
	json_decref(o);
	return r;
}

int
agent_audit_session(struct bz_audit *au, const struct envelope *e,
    const struct agent_session *s, const char *refused)
{
	json_t *o = envelope_fields(e);
	const char *claimed = bz_json_str(e->msg, "unix_user");

	if (o != NULL && (json_object_set_new(o, "result",
	    json_string(refused == NULL ? "accepted" : "refused")) != 0 ||
	    set_str(o, "reason", refused) != 0 ||
	    (s != NULL && (set_str(o, "user", s->user) != 0 ||
	    set_str(o, "unix_user", s->unix_user) != 0)) ||
	    /* a refused SYN's user is only what it claims */
	    (s == NULL && set_str(o, "claimed_unix_user", claimed) != 0))) {
		json_decref(o);
		o = NULL;
	}
	return write_event(au, "session", o);
}

int
agent_audit_request(struct bz_audit *au, const struct envelope *e,
    const struct agent_session *s, const struct agent_request *req,
    const char *result, const char *reason)
{
	json_t *o = envelope_fields(e);

	if (o != NULL && (json_object_set_new(o, "result",
	    json_string(result)) != 0 ||
	    set_str(o, "request", e->t) != 0 ||
	    set_str(o, "reason", reason) != 0 ||
	    (s != NULL && (set_str(o, "user", s->user) != 0 ||
	    set_str(o, "unix_user", s->unix_user) != 0)))) {
		json_decref(o);
		o = NULL;
	}
	if (o != NULL && req != NULL && (set_str(o, "command",
	    req->kind == REQ_SUBSYSTEM ? NULL : req->command) != 0 ||
	    set_str(o, "subsystem", req->subsystem) != 0 ||
	    set_str(o, "forward_host", req->fwd_host) != 0 ||
	    (req->kind == REQ_FORWARD && json_object_set_new(o,
	    "forward_port", json_integer(req->fwd_port)) != 0) ||
	    (req->kind != REQ_FORWARD && json_object_set_new(o, "pty",
	    json_boolean(req->pty)) != 0) ||
	    set_str(o, "env_refused", req->env_refused) != 0 ||
	    set_str(o, "client_addr", req->client_addr) != 0)) {
		json_decref(o);
		o = NULL;
	}
	return write_event(au, "request", o);
}

void
agent_audit_channel_end(struct bz_audit *au, uint32_t sid, uint32_t ch,
    const char *request_hash, pid_t pid, int wstatus, uint64_t bytes_in,
    uint64_t bytes_out)
{
	json_t *o = json_pack("{s:I, s:I, s:s, s:I, s:I}", "sid",
	    (json_int_t)sid, "ch", (json_int_t)ch, "request_hash",
	    request_hash, "bytes_in", (json_int_t)bytes_in, "bytes_out",
	    (json_int_t)bytes_out);

	if (o != NULL && pid > 0 && (json_object_set_new(o, "pid",
	    json_integer(pid)) != 0 || (WIFSIGNALED(wstatus) ?
	    json_object_set_new(o, "signal",
	    json_integer(WTERMSIG(wstatus))) :
	    json_object_set_new(o, "status",
	    json_integer(WEXITSTATUS(wstatus)))) != 0)) {
		json_decref(o);
		o = NULL;
	}
	(void)write_event(au, "channel_end", o);
}

void
agent_audit_forward_failed(struct bz_audit *au, uint32_t sid, uint32_t ch,
    const char *request_hash, const char *reason)
{
	(void)write_event(au, "forward_failed", json_pack("{s:I, s:I, s:s, "
	    "s:s}", "sid", (json_int_t)sid, "ch", (json_int_t)ch,
	    "request_hash", request_hash, "reason", reason));
}

void
agent_audit_leftovers(struct bz_audit *au, pid_t pid, int n)
{
	(void)write_event(au, "leftovers_ended", json_pack("{s:I, s:i}",
	    "session_pid", (json_int_t)pid, "processes", n));
}

void
agent_audit_integrity(struct bz_audit *au, uint32_t sid, uint32_t ch,
    const struct agent_session *s, const char *reason)
{
	json_t *o = json_pack("{s:I, s:I, s:s}", "sid", (json_int_t)sid,
	    "ch", (json_int_t)ch, "reason", reason);

	if (o != NULL && s != NULL && (set_str(o, "user", s->user) != 0 ||
	    set_str(o, "unix_user", s->unix_user) != 0)) {
		json_decref(o);
		o = NULL;
	}
	(void)write_event(au, "integrity", o);
}

void
agent_log_request(const struct agent_request *req, int ok,
    const char *outcome)
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
