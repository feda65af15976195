/*
 * request_verify.c: decide, on the agent's own, whether a channel request
 * relayed by bzproxy may run. Nothing here trusts bzproxy beyond its
 * signature: the ID token is checked against our own copy of the IdP's
 * keys, and the unix user against our own passwd database.
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

#include "classify.h"
#include "util.h"

#define NONCE_MAX 128
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

/* String member with no NUL inside and at most max bytes; NULL if not. */
static const char *
get_str(const json_t *o, const char *key, size_t max)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

/* Integer member in [lo, hi]. */
static int
get_int(const json_t *o, const char *key, json_int_t lo, json_int_t hi,
    json_int_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

/* getpwnam_r / getpwuid_r into a malloc'ed buffer (*buf, freed by caller). */
static struct passwd *
lookup_user(const char *name, uid_t uid, struct passwd *pw, char **buf)
{
	struct passwd *res = NULL;
	size_t len = 16384;
	char *b;
	int r;

	for (;;) {
		if ((b = realloc(*buf, len)) == NULL)
			return NULL;
		*buf = b;
		r = name != NULL ? getpwnam_r(name, pw, b, len, &res) :
		    getpwuid_r(uid, pw, b, len, &res);
		if (r != ERANGE || len >= 1024 * 1024)
			return r == 0 ? res : NULL;
		len *= 2;
	}
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
	if (!json_is_object(c) || (addr = get_str(c, "addr", 64)) == NULL ||
	    (inet_pton(AF_INET, addr, bin) != 1 &&
	    inet_pton(AF_INET6, addr, bin) != 1) ||
	    get_int(c, "port", 0, 65535, &port) != 0 ||
	    get_int(c, "server_port", 0, 65535, &sport) != 0)
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
	    (term = get_str(pty, "term", TERM_MAX)) == NULL ||
	    get_int(pty, "cols", 0, 65535, &cols) != 0 ||
	    get_int(pty, "rows", 0, 65535, &rows) != 0 ||
	    get_int(pty, "width", 0, 65535, &w) != 0 ||
	    get_int(pty, "height", 0, 65535, &h) != 0)
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

/*
 * The unix user: one this target serves (its own config decides, never
 * the request: a bzproxy that asks for root gets no further than its
 * policy would), existing, ours when we are not root.
 */
static enum verify_result
check_unix_user(const struct verify_ctx *v, struct agent_request *req,
    char *reason, size_t rl)
{
	struct passwd pw, *p, me, *pme;
	char *buf = NULL, *mebuf = NULL;
	enum verify_result res = VERIFY_REFUSED;

	if (strcmp(req->unix_user, "root") == 0 && !v->allow_root) {
		bz_errf(reason, rl, "root is not allowed here (the agent's "
		    "allow_root)");
		goto out;
	}
	if (!permit_unix_user(v->unix_users, req->unix_user)) {
		bz_errf(reason, rl, "%s does not serve unix user %s (the "
		    "agent's unix_users)", v->name, req->unix_user);
		goto out;
	}
	if ((p = lookup_user(req->unix_user, 0, &pw, &buf)) == NULL) {
		bz_errf(reason, rl, "no such user \"%s\" on %s",
		    req->unix_user, v->name);
		goto out;
	}
	if (p->pw_uid == 0 && !v->allow_root) {
		/* another name for uid 0 is still root */
		bz_errf(reason, rl, "user %s has uid 0 and root is not "
		    "allowed here (the agent's allow_root)", req->unix_user);
		goto out;
	}
	if (v->euid != 0 && p->pw_uid != v->euid) {
		const char *self = "uid?";

		if ((pme = lookup_user(NULL, v->euid, &me, &mebuf)) != NULL)
			self = pme->pw_name;
		bz_errf(reason, rl, "this agent runs as %s and can only serve "
		    "%s", self, self);
		goto out;
	}
	req->uid = p->pw_uid;
	req->gid = p->pw_gid;
	if ((req->home = strdup(p->pw_dir != NULL && p->pw_dir[0] != '\0' ?
	    p->pw_dir : "/")) == NULL ||
	    (req->shell = strdup(p->pw_shell != NULL &&
	    p->pw_shell[0] == '/' ? p->pw_shell : "/bin/sh")) == NULL) {
		bz_errf(reason, rl, "out of memory");
		goto out;
	}
	res = VERIFY_OK;
 out:
	free(buf);
	free(mebuf);
	return res;
}

/* The ID token, against our own JWKS, must name user. */
static enum verify_result
check_token(const struct verify_ctx *v, const char *token, const char *user,
    char *reason, size_t rl)
{
	struct bz_jwt_expect ex = { v->issuer, v->audience, NULL, v->now };
	char err[AGENT_ERRLEN] = "";
	json_t *claims = NULL;
	const char *email;
	enum verify_result res = VERIFY_REFUSED;

	if (v->jwks == NULL) {
		bz_errf(reason, rl, "agent has no IdP keys yet");
		return VERIFY_NEED_KEYS;
	}
	if (bz_jwt_verify(v->jwks, token, &ex, &claims, err,
	    sizeof(err)) != 0) {
		bz_errf(reason, rl, "ID token rejected: %s", err);
		/* the IdP may have rotated its keys since we fetched them */
		return strstr(err, "unknown key id") != NULL ?
		    VERIFY_NEED_KEYS : VERIFY_REFUSED;
	}
	if ((email = bz_json_str(claims, "email")) == NULL)
		bz_errf(reason, rl, "ID token has no email claim");
	else if (strcmp(email, user) != 0)
		bz_errf(reason, rl, "ID token is not for %s", user);
	else
		res = VERIFY_OK;
	json_decref(claims);
	return res;
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
		if ((s = get_str(o, "command", REQUEST_COMMAND_MAX)) == NULL ||
		    (req->command = strdup(s)) == NULL)
			REFUSE("exec request has no command");
		break;
	case REQ_SHELL:
		break;
	case REQ_SUBSYSTEM:
		if ((s = get_str(o, "subsystem", 64)) == NULL)
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
		if ((s = get_str(o, "host", 255)) == NULL || s[0] == '\0' ||
		    get_int(o, "port", 1, 65535, &port) != 0)
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
	if (strcmp(req->action, bz_action_name(kind_action(req))) != 0)
		REFUSE("request says action %.32s for a %s request",
		    req->action, agent_req_kind_name(req->kind));
	res = VERIFY_OK;
 out:
	return res;
}

enum verify_result
agent_request_verify(const struct verify_ctx *v, const struct bz_frame *f,
    struct agent_request *req, char *reason, size_t rl)
{
	char err[AGENT_ERRLEN];
	const uint8_t *sig;
	const char *t, *target, *nonce, *token, *s;
	json_int_t sid, ch, ts;
	json_t *o = NULL;
	size_t jlen;
	enum verify_result res = VERIFY_REFUSED;
	int r;

	memset(req, 0, sizeof(*req));
	bz_errf(reason, rl, "refused");
	/* 1. bzproxy's signature over the exact JSON bytes. */
	if (f->type != BZ_FRAME_CONTROL || !(f->flags & BZ_FLAG_PROXY_SIGNED) ||
	    f->length < BZ_SIG_LEN)
		REFUSE("request is not signed by bzproxy");
	jlen = f->length - BZ_SIG_LEN;
	sig = f->payload + jlen;
	if (crypto_sign_verify_detached(sig, f->payload, jlen,
	    v->proxy_pk) != 0)
		REFUSE("bad bzproxy signature on the request");
	if ((o = bz_json_parse_object(f->payload, jlen, err,
	    sizeof(err))) == NULL)
		REFUSE("malformed request: %s", err);

	/* 2. It is for us, for this channel, fresh and never seen. */
	if ((t = bz_json_str(o, "t")) == NULL || agent_req_kind_parse(t, &req->kind) != 0)
		REFUSE("unknown request type");
	if ((target = get_str(o, "target", NAME_MAX_LEN)) == NULL ||
	    strcmp(target, v->name) != 0)
		REFUSE("request is for another target, not %s", v->name);
	if (get_int(o, "sid", 0, UINT32_MAX, &sid) != 0 ||
	    get_int(o, "ch", 0, UINT32_MAX, &ch) != 0 ||
	    (uint32_t)sid != f->session_id || (uint32_t)ch != f->channel_id ||
	    ch == 0)
		REFUSE("request names another session or channel");
	req->sid = (uint32_t)sid;
	req->ch = (uint32_t)ch;
	if (get_int(o, "ts", 0, INT64_MAX, &ts) != 0 ||
	    ts < (json_int_t)v->now - REQUEST_MAX_SKEW_S ||
	    ts > (json_int_t)v->now + REQUEST_MAX_SKEW_S)
		REFUSE("request is stale or from the future (check the "
		    "clocks)");
	if ((nonce = get_str(o, "nonce", NONCE_MAX)) == NULL ||
	    nonce[0] == '\0')
		REFUSE("request has no nonce");
	/* Recorded now, before the other checks: one nonce, one try (a
	 * request held for the IdP's keys is that one try, finished). */
	if (!v->recheck &&
	    (r = replay_check_and_add(v->replay, nonce, v->now)) != 0)
		REFUSE(r == BZ_ERR_FORMAT ? "replayed request" :
		    "too many requests: try again later");

	/* 3. Who asks, and as whom. */
	if ((s = get_str(o, "user", NAME_MAX_LEN)) == NULL || s[0] == '\0' ||
	    (req->user = strdup(s)) == NULL)
		REFUSE("request has no user");
	if ((s = get_str(o, "unix_user", NAME_MAX_LEN)) == NULL ||
	    s[0] == '\0' || (req->unix_user = strdup(s)) == NULL)
		REFUSE("request has no unix_user");
	if ((s = get_str(o, "rule", NAME_MAX_LEN)) != NULL &&
	    (req->rule = strdup(s)) == NULL)
		REFUSE("out of memory");
	if ((s = get_str(o, "action", NAME_MAX_LEN)) == NULL ||
	    (req->action = strdup(s)) == NULL)
		REFUSE("request has no action");

	/* 4. What it asks for, and whether this target serves it. */
	if (check_kind(v, o, req, reason, rl) != VERIFY_OK)
		goto out;
	if (req->kind != REQ_FORWARD && parse_pty(o, req) != 0)
		REFUSE("malformed pty request");
	if (req->kind != REQ_FORWARD && parse_env(v, o, req) != 0)
		REFUSE("malformed env in request");
	if (parse_client(o, req) != 0)
		REFUSE("malformed client address in request");
	if ((token = get_str(o, "id_token", BZ_JWT_MAX_LEN)) == NULL)
		REFUSE("request has no ID token");
	if ((res = check_token(v, token, req->user, reason, rl)) != VERIFY_OK)
		goto out;
	res = check_unix_user(v, req, reason, rl);
 out:
	json_decref(o);
	return res;
}
