/*
 * request_verify.c: what bzproxy hands us, checked on our own. Every
 * message comes in bzproxy's signed envelope (its countersignature: the
 * decision, the rule, an expiry) around the client's own signed bytes;
 * envelope_open checks the envelope, session.c the client's signature and
 * the session's chain, and session_request (here) reads what a verified
 * message asks for: the command, pty, environment, subsystem or forward
 * destination, only ever from the client's bytes.
 */
#include "agent.h"

#include <errno.h>
#include <arpa/inet.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "chain.h"
#include "classify.h"
#include "util.h"

#define NAME_MAX_LEN 256     /* user, unix_user, target, rule */
#define TERM_MAX 64

void
agent_request_free(struct agent_request *r)
{
	size_t i;

	if (r == NULL)
		return;
	free(r->action);
	free(r->command);
	free(r->subsystem);
	free(r->fwd_host);
	free(r->user);
	free(r->unix_user);
	free(r->rule);
	free(r->term);
	free(r->env_refused);
	free(r->client_addr);
	free(r->server_addr);
	free(r->home);
	free(r->shell);
	free(r->request_hash);
	if (r->env != NULL) {
		for (i = 0; r->env[i] != NULL; i++)
			free(r->env[i]);
		free(r->env);
	}
	memset(r, 0, sizeof(*r));
}

const char *
agent_req_kind_name(enum agent_req_kind k)
{
	switch (k) {
	case REQ_EXEC: return "exec";
	case REQ_SHELL: return "shell";
	case REQ_SUBSYSTEM: return "subsystem";
	case REQ_FORWARD: return "forward";
	}
	return "?";
}

/* Append name to the space-separated list *list (for the log). */
static int
note_refused(char **list, const char *name)
{
	char *n;

	if (*list != NULL && strlen(*list) > 512)
		return BZ_OK; /* enough to tell the story */
	if (asprintf(&n, "%s%s%s", *list != NULL ? *list : "",
	    *list != NULL ? " " : "", name) < 0)
		return BZ_ERR_ALLOC;
	free(*list);
	*list = n;
	return BZ_OK;
}

/* The client's environment: what accept_env allows is kept, the other
 * names are listed in env_refused (sshd ignores them the same way). */
static int
parse_env(const struct verify_ctx *v, const json_t *o,
    struct agent_request *req)
{
	json_t *env = json_object_get(o, "env"), *val;
	const char *k;
	size_t n = 0;

	if ((req->env = calloc(REQUEST_ENV_MAX + 1, sizeof(char *))) == NULL)
		return BZ_ERR_ALLOC;
	if (env == NULL || json_is_null(env))
		return BZ_OK;
	if (!json_is_object(env) || json_object_size(env) > REQUEST_ENV_MAX)
		return BZ_ERR_FORMAT;
	json_object_foreach(env, k, val) {
		const char *s;

		if (!bz_env_name_ok(k) || !json_is_string(val) ||
		    json_string_length(val) > REQUEST_ENV_VALUE_MAX ||
		    strlen(json_string_value(val)) != json_string_length(val))
			return BZ_ERR_FORMAT;
		if (!permit_env(v->accept_env, k)) {
			if (note_refused(&req->env_refused, k) != 0)
				return BZ_ERR_ALLOC;
			continue;
		}
		s = json_string_value(val);
		if (asprintf(&req->env[n], "%s=%s", k, s) < 0) {
			req->env[n] = NULL;
			return BZ_ERR_ALLOC;
		}
		n++;
	}
	return BZ_OK;
}

/* Where ssh runs, as bzsshd saw it: {"addr": IP, "port": N,
 * "server_port": N}, for SSH_CLIENT and SSH_CONNECTION. Optional. */
static int
parse_client(const json_t *o, struct agent_request *req)
{
	json_t *c = json_object_get(o, "client");
	json_int_t port, sport;
	unsigned char bin[16];
	const char *addr;

	if (c == NULL || json_is_null(c))
		return BZ_OK;
	if (!json_is_object(c) || (addr = bz_json_str_max(c, "addr", 64)) == NULL ||
	    (inet_pton(AF_INET, addr, bin) != 1 &&
	    inet_pton(AF_INET6, addr, bin) != 1) ||
	    bz_json_int_range(c, "port", 0, 65535, &port) != 0 ||
	    bz_json_int_range(c, "server_port", 0, 65535, &sport) != 0)
		return BZ_ERR_FORMAT;
	if ((req->client_addr = strdup(addr)) == NULL)
		return BZ_ERR_ALLOC;
	req->client_port = (uint16_t)port;
	req->server_port = (uint16_t)sport;
	return BZ_OK;
}

static int
parse_pty(const json_t *o, struct agent_request *req)
{
	json_t *pty = json_object_get(o, "pty");
	json_int_t cols, rows, w, h;
	const char *term;

	if (pty == NULL || json_is_null(pty))
		return BZ_OK;
	if (!json_is_object(pty) ||
	    (term = bz_json_str_max(pty, "term", TERM_MAX)) == NULL ||
	    bz_json_int_range(pty, "cols", 0, 65535, &cols) != 0 ||
	    bz_json_int_range(pty, "rows", 0, 65535, &rows) != 0 ||
	    bz_json_int_range(pty, "width", 0, 65535, &w) != 0 ||
	    bz_json_int_range(pty, "height", 0, 65535, &h) != 0)
		return BZ_ERR_FORMAT;
	req->pty = 1;
	req->cols = (uint16_t)cols;
	req->rows = (uint16_t)rows;
	req->width = (uint16_t)w;
	req->height = (uint16_t)h;
	/* An empty or odd TERM would only confuse the shell: use a safe one. */
	if (term[0] == '\0' || strpbrk(term, "=/ \t") != NULL)
		term = "dumb";
	if ((req->term = strdup(term)) == NULL)
		return BZ_ERR_ALLOC;
	return BZ_OK;
}

#define REFUSE(...) do { bz_errf(reason, rl, __VA_ARGS__); goto out; } \
    while (0)

int
agent_req_kind_parse(const char *t, enum agent_req_kind *k)
{
	static const enum agent_req_kind kinds[] = { REQ_EXEC, REQ_SHELL,
	    REQ_SUBSYSTEM, REQ_FORWARD };
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(t, agent_req_kind_name(kinds[i])) == 0) {
			*k = kinds[i];
			return 0;
		}
	return -1;
}

/* The policy action of a request (policies/README.md, "How a request is
 * classified"). */
static enum bz_action
kind_action(const struct agent_request *req)
{
	switch (req->kind) {
	case REQ_EXEC: return bz_classify_exec(req->command);
	case REQ_SHELL: return BZ_ACTION_SHELL;
	case REQ_SUBSYSTEM: return BZ_ACTION_SFTP;
	case REQ_FORWARD: return BZ_ACTION_PORT_FORWARD;
	}
	return BZ_ACTION_CONNECT;
}

/* The members of each kind: the command, a subsystem this target runs,
 * a forward destination permit_open allows. */
static enum verify_result
check_kind(const struct verify_ctx *v, const json_t *o,
    struct agent_request *req, char *reason, size_t rl)
{
	const char *s;
	json_int_t port;
	enum verify_result res = VERIFY_REFUSED;

	switch (req->kind) {
	case REQ_EXEC:
		if ((s = bz_json_str_max(o, "command", REQUEST_COMMAND_MAX)) == NULL ||
		    (req->command = strdup(s)) == NULL)
			REFUSE("exec request has no command");
		break;
	case REQ_SHELL:
		break;
	case REQ_SUBSYSTEM:
		if ((s = bz_json_str_max(o, "name", 64)) == NULL)
			REFUSE("subsystem request has no name");
		if ((req->subsystem = strdup(s)) == NULL)
			REFUSE("out of memory");
		if (strcmp(s, "sftp") != 0)
			REFUSE("subsystem \"%.64s\" is not served here (only "
			    "sftp)", s);
		if (v->sftp_server == NULL)
			REFUSE("no sftp-server on %s (install OpenSSH's "
			    "sftp-server or set sftp_server)", v->name);
		if ((req->command = strdup(v->sftp_server)) == NULL)
			REFUSE("out of memory");
		break;
	case REQ_FORWARD:
		if ((s = bz_json_str_max(o, "host", 255)) == NULL || s[0] == '\0' ||
		    bz_json_int_range(o, "port", 1, 65535, &port) != 0)
			REFUSE("forward request has no host and port");
		if ((req->fwd_host = strdup(s)) == NULL)
			REFUSE("out of memory");
		req->fwd_port = (uint16_t)port;
		if (!permit_open(v->permit_open, s, req->fwd_port))
			REFUSE("%s does not forward to %.255s:%u (permit_open)",
			    v->name, s, req->fwd_port);
		break;
	}
	/* the action logged here is the one the policy was asked about */
	if (req->action == NULL ||
	    strcmp(req->action, bz_action_name(kind_action(req))) != 0)
		REFUSE("bzproxy says action %.32s for a %s request",
		    req->action != NULL ? req->action : "none",
		    agent_req_kind_name(req->kind));
	res = VERIFY_OK;
 out:
	return res;
}

void
envelope_free(struct envelope *e)
{
	if (e->csm != NULL)
		sodium_memzero(e->csm, e->csm_len); /* a SYN holds a token */
	free(e->csm);
	free(e->action);
	free(e->rule);
	free(e->reason);
	json_decref(e->msg);
	memset(e, 0, sizeof(*e));
}

enum verify_result
envelope_open(const struct verify_ctx *v, const struct bz_frame *f,
    struct envelope *e, char *reason, size_t rl)
{
	const uint8_t *json, *sig;
	const char *s;
	size_t jlen;
	json_int_t sid, ch, exp;
	json_t *o = NULL;
	char err[AGENT_ERRLEN];
	enum verify_result res = VERIFY_REFUSED;

	memset(e, 0, sizeof(*e));
	e->sid = f->session_id;
	e->ch = f->channel_id;
	bz_errf(reason, rl, "refused");
	/* 1. bzproxy's signature over the exact bytes of its envelope */
	if (f->type != BZ_FRAME_CONTROL || f->flags != BZ_FLAG_PROXY_SIGNED ||
	    bz_signed_verify(f->payload, f->length, v->proxy_pk) != 0)
		REFUSE("not signed by bzproxy (the key pinned in our config)");
	(void)bz_signed_split(f->payload, f->length, &json, &jlen, &sig);
	if ((o = bz_json_parse_object(json, jlen, err, sizeof(err))) == NULL)
		REFUSE("malformed envelope from bzproxy: %s", err);
	/* 2. for this session and channel, still valid */
	if ((s = bz_json_str(o, "t")) == NULL || strcmp(s, "csm") != 0)
		REFUSE("unknown message from bzproxy");
	if (bz_json_int_range(o, "sid", 0, UINT32_MAX, &sid) != 0 ||
	    bz_json_int_range(o, "ch", 0, UINT32_MAX, &ch) != 0 ||
	    (uint32_t)sid != f->session_id || (uint32_t)ch != f->channel_id)
		REFUSE("envelope names another session or channel");
	if (bz_json_int_range(o, "exp", 0, INT64_MAX, &exp) != 0 ||
	    exp < (json_int_t)v->now ||
	    exp > (json_int_t)v->now + ENVELOPE_MAX_TTL_S)
		REFUSE("bzproxy's countersignature has expired or is from "
		    "the future (check the clocks)");
	/* 3. the decision, and the client's bytes it is about */
	if ((s = bz_json_str(o, "decision")) == NULL ||
	    (strcmp(s, "allow") != 0 && strcmp(s, "deny") != 0))
		REFUSE("envelope without a decision");
	e->allowed = strcmp(s, "allow") == 0;
	if ((s = bz_json_str_max(o, "action", NAME_MAX_LEN)) != NULL &&
	    (e->action = strdup(s)) == NULL)
		REFUSE("out of memory");
	if ((s = bz_json_str_max(o, "rule", NAME_MAX_LEN)) != NULL &&
	    (e->rule = strdup(s)) == NULL)
		REFUSE("out of memory");
	if ((s = bz_json_str_max(o, "reason", AGENT_ERRLEN)) != NULL &&
	    (e->reason = strdup(s)) == NULL)
		REFUSE("out of memory");
	if ((s = bz_json_str(o, "csm")) == NULL ||
	    bz_b64url_decode(s, strlen(s), BZ_WIRE_MAX_CONTROL, &e->csm,
	    &e->csm_len) != 0 ||
	    bz_signed_split(e->csm, e->csm_len, &json, &jlen, &sig) != 0 ||
	    (e->msg = bz_json_parse_object(json, jlen, err,
	    sizeof(err))) == NULL ||
	    (e->t = bz_json_str(e->msg, "t")) == NULL)
		REFUSE("envelope without the client's signed message");
	res = VERIFY_OK;
 out:
	json_decref(o);
	return res;
}

enum verify_result
session_request(const struct agent_session *s,
    const struct verify_ctx *v, const struct envelope *e,
    struct agent_request *req, char *reason, size_t rl)
{
	enum verify_result res = VERIFY_REFUSED;

	memset(req, 0, sizeof(*req));
	req->sid = e->sid;
	req->ch = e->ch;
	if (agent_req_kind_parse(e->t, &req->kind) != 0)
		REFUSE("unknown request \"%.32s\"", e->t);
	if ((req->user = strdup(s->user)) == NULL ||
	    (req->unix_user = strdup(s->unix_user)) == NULL ||
	    (req->home = strdup(s->home)) == NULL ||
	    (req->shell = strdup(s->shell)) == NULL ||
	    (e->rule != NULL && (req->rule = strdup(e->rule)) == NULL) ||
	    (e->action != NULL && (req->action = strdup(e->action)) == NULL) ||
	    (req->request_hash = bz_hash_b64(e->csm, e->csm_len)) == NULL)
		REFUSE("out of memory");
	req->uid = s->uid;
	req->gid = s->gid;
	if (check_kind(v, e->msg, req, reason, rl) != VERIFY_OK)
		goto out;
	if (req->kind != REQ_FORWARD && parse_pty(e->msg, req) != 0)
		REFUSE("malformed pty request");
	if (req->kind != REQ_FORWARD && parse_env(v, e->msg, req) != 0)
		REFUSE("malformed env in request");
	if (parse_client(e->msg, req) != 0)
		REFUSE("malformed client address in request");
	res = VERIFY_OK;
 out:
	return res;
}
