/*
 * client_auth.c: the first messages on /v1/client (docs/protocol.md):
 *   login  ID token (signature, iss, aud, exp, nonce bound to the client
 *          key) + TOTP  ->  a session token (only its hash is stored)
 *   hello  session + target + unix user  ->  policy (connect), target
 *          connected, MFA age  ->  hello_ok | mfa_required | error
 *   mfa    TOTP  ->  hello_ok | mfa_required | error
 * Every refusal names something the user can act on, and is audited.
 */
#include "bzproxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "buf.h"
#include "jwks_cache.h"
#include "chain.h"
#include "jwt.h"
#include "pop.h"
#include "log.h"
#include "util.h"

#define MFA_MAX_TRIES 3
#define NO_POP "not signed by the key of your login (a copied session "\
	"file?): run bzsshd login"

/* A string member of at most max bytes, or NULL. */
static const char *
str_member(const json_t *o, const char *key, size_t max)
{
	const char *v = bz_json_str(o, key);

	return v != NULL && v[0] != '\0' && strlen(v) <= max ? v : NULL;
}

/* Unix user names: [A-Za-z0-9._-], not starting with '-'. */
static int
unix_user_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= BZP_UNIX_USER_MAX && s[0] != '-' &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") == n;
}

static const char *
totp_reason(enum bz_totp_result r)
{
	switch (r) {
	case BZ_TOTP_WRONG: return "wrong TOTP code";
	case BZ_TOTP_REPLAY: return "code already used, wait for the next one";
	case BZ_TOTP_LOCKED: return "too many wrong codes, try again in a minute";
	case BZ_TOTP_MALFORMED: return "the TOTP code must be 6 digits";
	default: return "TOTP check failed";
	}
}

/* Check a code against the user's stored TOTP state; the updated state is
 * stored whatever the result (failures and used steps count). */
static enum bz_totp_result
check_totp(struct bzp_server *s, const char *email, const char *code)
{
	struct bzp_user u;
	enum bz_totp_result r;

	if (bzp_store_user_get(s->store, email, &u) != 0)
		return BZ_TOTP_WRONG;
	r = bz_totp_attempt(u.seed, u.seed_len, &u.totp, time(NULL), code);
	if (bzp_store_user_set_totp(s->store, email, &u.totp) != 0) {
		bz_error("cannot store the TOTP state of %s: %s", email,
		    bzp_store_errmsg(s->store));
		r = BZ_TOTP_WRONG; /* fail closed: a used step must stick */
	}
	sodium_memzero(&u, sizeof(u));
	return r;
}

/*
 * The request's "sig": the client key (b64url public key ck) over the
 * link's challenge, t and fields (common/pop.h). Proves that who sends it
 * holds the key the login committed to.
 */
static int
pop_ok(const struct bzp_client *cl, const json_t *req, const char *t,
    const char *ck, const char *const *fields, size_t n)
{
	uint8_t *pk = NULL;
	size_t pklen = 0;
	int ok;

	if (ck == NULL || bz_b64url_decode(ck, strlen(ck), 32, &pk,
	    &pklen) != 0 || pklen != 32) {
		free(pk);
		return 0;
	}
	ok = bz_pop_verify(pk, t, cl->challenge, fields, n,
	    str_member(req, "sig", 128)) == 0;
	free(pk);
	return ok;
}

/*
 * The groups claim as a bounded array of strings. Fail closed: a claim we
 * would have to cut could hide a group that a deny rule names.
 */
static json_t *
groups_from_claims(const json_t *claims, const char *claim, char *err,
    size_t errlen)
{
	json_t *v = json_object_get(claims, claim), *out, *g;
	size_t i;

	if (v == NULL)
		return json_array();
	if (json_is_string(v))
		return json_pack("[O]", v);
	if (!json_is_array(v) || json_array_size(v) > BZP_GROUPS_MAX) {
		bz_errf(err, errlen, "the ID token's %s claim is not a list of "
		    "at most %d groups", claim, BZP_GROUPS_MAX);
		return NULL;
	}
	if ((out = json_array()) == NULL)
		return NULL;
	json_array_foreach(v, i, g) {
		if (!json_is_string(g) || json_string_length(g) == 0 ||
		    json_string_length(g) > BZP_GROUP_MAX) {
			bz_errf(err, errlen, "the ID token's %s claim holds a "
			    "group that is not a short string", claim);
			json_decref(out);
			return NULL;
		}
		json_array_append(out, g);
	}
	return out;
}

/* Keep groups (stolen) and views of them for the policy. */
static int
set_groups(struct bzp_client *cl, json_t *groups)
{
	size_t i, n = json_array_size(groups);

	json_decref(cl->groups);
	free(cl->group_v);
	cl->groups = groups;
	cl->ngroups = 0;
	if ((cl->group_v = calloc(n + 1, sizeof(*cl->group_v))) == NULL)
		return BZ_ERR_ALLOC;
	for (i = 0; i < n; i++)
		cl->group_v[cl->ngroups++] =
		    json_string_value(json_array_get(groups, i));
	return BZ_OK;
}

static int
audit_login(struct bzp_client *cl, const char *email, int ok,
    const char *reason)
{
	json_t *o = bzp_audit_client(cl);

	if (o != NULL && cl->user == NULL && email != NULL)
		json_object_set_new(o, "user", json_string(email));
	return bzp_audit(cl->conn->srv, "login", bzp_audit_decision(o,
	    "login", ok, NULL, reason));
}

/* Refuse, audit and close. */
static void
login_refused(struct bzp_client *cl, const char *email, const char *reason)
{
	audit_login(cl, email, 0, reason);
	cl->state = BZP_CL_DONE;
	bzp_conn_fail(cl->conn, reason);
}

/* Create the session and answer login_ok. */
static void
login_ok(struct bzp_client *cl, const char *email, const char *id_token,
    const char *client_key)
{
	struct bzp_server *s = cl->conn->srv;
	struct bzp_session_rec rec;
	uint8_t hash[32];
	char *token = NULL, *groups = NULL;
	time_t now = time(NULL);
	json_t *ans = NULL;

	memset(&rec, 0, sizeof(rec));
	if (bz_random_b64url(32, &token) != 0 ||
	    (groups = bz_json_dump(cl->groups)) == NULL) {
		login_refused(cl, email, "out of memory");
		goto out;
	}
	crypto_hash_sha256(hash, (const uint8_t *)token, strlen(token));
	rec.user = (char *)email;
	rec.groups = groups;
	rec.id_token = (char *)id_token;
	rec.client_key = (char *)client_key;
	rec.expires = (int64_t)now + s->cfg->session_ttl;
	rec.mfa_at = (int64_t)now;
	(void)bzp_store_session_purge(s->store, now);
	if (bzp_store_session_put(s->store, hash, &rec) != 0) {
		bz_error("cannot store a session: %s",
		    bzp_store_errmsg(s->store));
		login_refused(cl, email, "bzproxy cannot store the session");
		goto out;
	}
	/* no unaudited access: a login we cannot log is refused */
	if (audit_login(cl, email, 1, NULL) != 0) {
		cl->state = BZP_CL_DONE;
		bzp_conn_fail(cl->conn, BZP_NO_AUDIT);
		goto out;
	}
	ans = json_pack("{s:s, s:s, s:s, s:I}", "t", "login_ok", "session",
	    token, "user", email, "expires", (json_int_t)rec.expires);
	if (ans == NULL || bzp_conn_send_json(cl->conn, 0, 0, ans) != 0) {
		bzp_conn_close(cl->conn, "cannot answer login");
		goto out;
	}
	bz_info("%s: login ok for %s", cl->conn->peer, email);
	/* One login per connection: bzsshd closes it after login_ok. */
	cl->state = BZP_CL_DONE;
	bzp_conn_close(cl->conn, "login done");
 out:
	if (token != NULL)
		sodium_memzero(token, strlen(token));
	free(token);
	free(groups);
	json_decref(ans);
}

/* The login itself; may park it while the IdP's keys are refreshed. */
static void
do_login(struct bzp_client *cl, const json_t *req, int may_refresh)
{
	struct bzp_server *s = cl->conn->srv;
	struct bz_jwt_expect exp;
	const char *id_token, *salt, *ck, *code, *email;
	char err[BZP_ERRLEN], why[BZP_ERRLEN + 128], *nonce = NULL, *th;
	json_t *claims = NULL, *groups, *ev;
	struct bzp_user u;
	enum bz_totp_result tr;
	int64_t keys_in = 0;    /* ms until a JWKS fetch starts */
	int r;

	if ((id_token = str_member(req, "id_token", BZ_JWT_MAX_LEN)) == NULL ||
	    (salt = str_member(req, "nonce_salt", 128)) == NULL ||
	    (ck = str_member(req, "client_key", 128)) == NULL ||
	    (code = str_member(req, "totp", 16)) == NULL) {
		login_refused(cl, NULL, "malformed login request");
		return;
	}
	if ((nonce = bz_key_nonce(ck, salt)) == NULL) {
		login_refused(cl, NULL, "malformed login request (client_key "
		    "or nonce_salt)");
		return;
	}
	th = bz_pop_token_field(id_token);
	if (th == NULL || !pop_ok(cl, req, "login", ck,
	    (const char *const[]){ th }, 1)) {
		free(th);
		free(nonce);
		login_refused(cl, NULL, "the login is not signed by its client "
		    "key over this link's challenge");
		return;
	}
	free(th);
	memset(&exp, 0, sizeof(exp));
	exp.issuer = s->cfg->issuer;
	exp.audience = s->cfg->audience;
	exp.nonce = nonce;
	r = bz_jwt_verify(bz_jwks_cache_lock(s->jwks), id_token, &exp, &claims,
	    err, sizeof(err));
	bz_jwks_cache_unlock(s->jwks);
	free(nonce);
	if (r != 0 && may_refresh && strstr(err, "unknown key id") != NULL &&
	    (keys_in = bz_jwks_cache_refresh(s->jwks, &cl->keys_seen)) <
	    BZ_JWKS_HOLD_MS) {
		/* the IdP may have rotated its keys: hold the login until
		 * the fetch that is running (or due soon) has ended */
		cl->pending_login = json_deep_copy(req);
		cl->state = BZP_CL_WAIT_KEYS;
		if (cl->pending_login == NULL)
			login_refused(cl, NULL, "out of memory");
		return;
	}
	if (r != 0 && keys_in > 0) {
		/* rate limited: the refresh is remembered, not done yet */
		snprintf(why, sizeof(why), "the ID token was refused (%s): "
		    "bzproxy fetches the IdP's keys again in %lld s; run bzsshd "
		    "login again then", err, (long long)(keys_in / 1000 + 1));
		login_refused(cl, NULL, why);
		return;
	}
	if (r != 0) {
		snprintf(why, sizeof(why), "the ID token was refused (%s): run "
		    "bzsshd login again", err);
		login_refused(cl, NULL, why);
		return;
	}
	if ((email = str_member(claims, "email", BZP_EMAIL_MAX)) == NULL ||
	    json_is_false(json_object_get(claims, "email_verified"))) {
		login_refused(cl, NULL, "the ID token has no verified email");
		goto out;
	}
	if ((groups = groups_from_claims(claims, s->cfg->groups_claim, err,
	    sizeof(err))) == NULL) {
		login_refused(cl, email, err);
		goto out;
	}
	if (set_groups(cl, groups) != 0) {
		login_refused(cl, email, "out of memory");
		goto out;
	}
	if ((r = bzp_store_user_get(s->store, email, &u)) != 0) {
		if (r == BZP_NOT_FOUND)
			snprintf(why, sizeof(why), "user %s is not enrolled: "
			    "ask an admin to run bzproxy user add", email);
		else
			snprintf(why, sizeof(why), "bzproxy cannot read its "
			    "state");
		login_refused(cl, email, why);
		goto out;
	}
	sodium_memzero(&u, sizeof(u));
	if ((tr = check_totp(s, email, code)) != BZ_TOTP_OK) {
		if ((ev = bzp_audit_client(cl)) != NULL) {
			json_object_set_new(ev, "user", json_string(email));
			bzp_audit(s, "mfa", bzp_audit_decision(ev, "login", 0,
			    NULL, totp_reason(tr)));
		}
		login_refused(cl, email, totp_reason(tr));
		goto out;
	}
	login_ok(cl, email, id_token, ck);
 out:
	json_decref(claims);
}

void
bzp_client_keys_ready(struct bzp_client *cl)
{
	json_t *req = cl->pending_login;

	cl->pending_login = NULL;
	cl->state = BZP_CL_START;
	if (req != NULL && !cl->conn->closing)
		do_login(cl, req, 0);
	json_decref(req);
}

/* ---- hello / mfa ---- */

static int
audit_session(struct bzp_client *cl, int ok, const char *rule,
    const char *reason)
{
	return bzp_audit(cl->conn->srv, "session_open", bzp_audit_decision(
	    bzp_audit_client(cl), "connect", ok, rule, reason));
}

static void
hello_refused(struct bzp_client *cl, const char *rule, const char *reason)
{
	audit_session(cl, 0, rule, reason);
	cl->state = BZP_CL_DONE;
	bzp_conn_fail(cl->conn, reason);
}

/* Refused (and audited, naming the limit) when the user already has
 * limits.sessions_per_user sessions: 1, else 0. */
static int
over_session_limit(struct bzp_client *cl, const char *rule)
{
	char why[BZP_ERRLEN];
	json_t *ev;

	if (bzp_limit_sessions(cl, why, sizeof(why)) == 0)
		return 0;
	if ((ev = bzp_audit_decision(bzp_audit_client(cl), "connect", 0, rule,
	    why)) != NULL)
		json_object_set_new(ev, "limit", json_string(BZP_LIMIT_SESSIONS));
	bzp_audit(cl->conn->srv, "session_open", ev);
	cl->state = BZP_CL_DONE;
	bzp_conn_fail(cl->conn, why);
	return 1;
}

/* Everything checked: join the agent and pass it the client's SYN with
 * our countersignature; hello_ok waits for its SYNACK. */
/* "target web1 is not connected: its agent is offline (last seen 5m
 * ago); ..." The text starts as bzsshd's retry after a restart expects. */
static void
offline_reason(const char *target, int64_t last_seen, time_t now,
    char *why, size_t len)
{
	char seen[64] = "never connected since its enrolment";
	long d = (long)(now - last_seen);

	if (last_seen > 0 && d >= 0)
		snprintf(seen, sizeof(seen), "last seen %ldh %ldm ago",
		    d / 3600, d % 3600 / 60);
	snprintf(why, len, "target %s is not connected: its agent is "
	    "offline (%s); ask the target's operators to check bzagent "
	    "there", target, seen);
}

static void
session_ready(struct bzp_client *cl)
{
	struct bzp_server *s = cl->conn->srv;
	struct bzp_verdict v = { 1, "connect", NULL, NULL };
	struct bzp_agent *a;
	char why[BZP_ERRLEN];

	if ((a = bzp_agent_find(s, cl->target)) == NULL) {
		snprintf(why, sizeof(why), "target %s is not connected",
		    cl->target);
		hello_refused(cl, cl->rule, why);
		return;
	}
	if (over_session_limit(cl, cl->rule))
		return;
	if ((cl->sid = bzp_sid_new(s)) == 0) {
		hello_refused(cl, cl->rule, "bzproxy cannot store its state");
		return;
	}
	if (bzp_agent_attach(a, cl) != 0) {
		hello_refused(cl, cl->rule, "out of memory");
		return;
	}
	v.rule = cl->rule;
	if (bzp_send_envelope(cl, 0, &cl->syn, &v) != 0) {
		hello_refused(cl, cl->rule, "cannot reach the target");
		return;
	}
	cl->state = BZP_CL_WAIT_SYNACK;
}

void
bzp_client_agent_answer(struct bzp_client *cl, const struct bz_frame *f)
{
	char *synack = NULL, why[BZP_ERRLEN];
	json_t *o = NULL, *ans = NULL;
	const char *t = NULL, *reason = NULL;

	if (cl->state != BZP_CL_WAIT_SYNACK) {
		bz_debug("%s: agent message on channel 0 ignored",
		    cl->conn->peer);
		return;
	}
	if (f->flags == 0 && (o = bz_json_parse_object(f->payload, f->length,
	    NULL, 0)) != NULL) {
		t = bz_json_str(o, "t");
		reason = bz_json_str(o, "reason");
	}
	if (t != NULL && strcmp(t, "failed") == 0) {
		/* the agent refused the session itself: say why */
		snprintf(why, sizeof(why), "%s refused the session: %.180s",
		    cl->target, reason != NULL ? reason : "no reason given");
		hello_refused(cl, cl->rule, why);
		goto out;
	}
	if (bzp_synack_check(cl, f, &synack) != 0) {
		hello_refused(cl, cl->rule, "the target's answer to the session "
		    "is not signed by its pinned key");
		goto out;
	}
	bzp_signed_free(&cl->syn);
	/* no unaudited session: its record first, or no session */
	if (audit_session(cl, 1, cl->rule, NULL) != 0) {
		cl->state = BZP_CL_DONE;
		bzp_conn_fail(cl->conn, BZP_NO_AUDIT);
		goto out;
	}
	cl->opened = 1;
	if ((ans = json_pack("{s:s, s:s, s:s, s:s}", "t", "hello_ok", "user",
	    cl->user, "target", cl->target, "synack", synack)) == NULL ||
	    bzp_conn_send_json(cl->conn, 0, 0, ans) != 0) {
		bzp_conn_close(cl->conn, "cannot answer hello");
		goto out;
	}
	cl->state = BZP_CL_READY;
	bzp_conn_authenticated(cl->conn);
	bz_info("%s: session %u: %s as %s on %s (rule %s)", cl->conn->peer,
	    cl->sid, cl->user, cl->unix_user, cl->target, cl->rule);
 out:
	json_decref(o);
	json_decref(ans);
	free(synack);
}

static void
ask_mfa(struct bzp_client *cl, const char *reason)
{
	json_t *o = json_pack("{s:s, s:s}", "t", "mfa_required", "reason",
	    reason);

	cl->state = BZP_CL_MFA;
	if (o == NULL || bzp_conn_send_json(cl->conn, 0, 0, o) != 0)
		bzp_conn_close(cl->conn, "cannot ask for MFA");
	json_decref(o);
}

/* The session named by token: user, groups and login token into cl, its
 * record into rec. 0, or -1 with why (fit for the user). Which ID token
 * it runs on now is bzp_token_check's. */
static int
load_session(struct bzp_client *cl, const char *token,
    struct bzp_session_rec *rec, char *why, size_t wl)
{
	struct bzp_server *s = cl->conn->srv;
	json_t *groups;
	int r;

	crypto_hash_sha256(cl->session_hash, (const uint8_t *)token,
	    strlen(token));
	if ((r = bzp_store_session_get(s->store, cl->session_hash,
	    rec)) != 0 || rec->expires < (int64_t)time(NULL)) {
		if (r < 0)
			bz_error("session lookup: %s",
			    bzp_store_errmsg(s->store));
		snprintf(why, wl, BZP_NO_LOGIN);
		return -1;
	}
	cl->user = strdup(rec->user);
	cl->login_token = strdup(rec->id_token);
	groups = json_loads(rec->groups, 0, NULL);
	if (groups != NULL && !json_is_array(groups)) {
		json_decref(groups);
		groups = NULL;
	}
	if (cl->user == NULL || cl->login_token == NULL || groups == NULL ||
	    set_groups(cl, groups) != 0) {
		snprintf(why, wl, "bzproxy cannot read the session");
		return -1;
	}
	return 0;
}

/* whoami: who the session is, and the unix users the policies name for
 * them (bzsshd ssh-config's default User); targets: what they may reach
 * (client_targets.c). A logged-in session's questions, signed with its
 * client key like a hello; answered, then closed. */
static void
do_query(struct bzp_client *cl, const json_t *req, const char *t)
{
	struct bzp_server *s = cl->conn->srv;
	struct bzp_session_rec rec;
	const char *token = str_member(req, "session", 256), *cur;
	char why[BZP_ERRLEN + 64];
	json_t *users = NULL, *ans = NULL;

	memset(&rec, 0, sizeof(rec));
	cl->state = BZP_CL_DONE;
	if (token == NULL) {
		bzp_conn_fail(cl->conn, "malformed request");
		return;
	}
	if (load_session(cl, token, &rec, why, sizeof(why)) != 0) {
		bzp_conn_fail(cl->conn, why);
		goto out;
	}
	if (!pop_ok(cl, req, t, rec.client_key, NULL, 0)) {
		bzp_conn_fail(cl->conn, NO_POP);
		goto out;
	}
	/* the ID token it runs on: the login's, or a refreshed one */
	cur = str_member(req, "id_token", BZ_JWT_MAX_LEN);
	if (bzp_token_check(s, rec.id_token, cur != NULL ? cur : rec.id_token,
	    rec.user, why, sizeof(why)) != 0) {
		bzp_conn_fail(cl->conn, why);
		goto out;
	}
	if (strcmp(t, "targets") == 0)
		ans = bzp_targets_answer(s, cl);
	else {
		if ((users = json_array()) == NULL)
			goto oom;
		bz_policy_unix_users(s->policy, cl->user, cl->group_v,
		    cl->ngroups, bzp_collect_unix_user, users);
		ans = json_pack("{s:s, s:s, s:O, s:O, s:I, s:I}", "t",
		    "whoami_ok", "user", cl->user, "groups", cl->groups,
		    "unix_users", users, "expires", (json_int_t)rec.expires,
		    "mfa_at", (json_int_t)rec.mfa_at);
	}
	if (ans == NULL || bzp_conn_send_json(cl->conn, 0, 0, ans) != 0)
		goto oom;
	bzp_conn_close(cl->conn, "answered");
	goto out;
 oom:
	bzp_conn_close(cl->conn, "out of memory");
 out:
	json_decref(users);
	json_decref(ans);
	bzp_session_rec_clear(&rec);
}

static void
do_hello(struct bzp_client *cl, const json_t *req)
{
	struct bzp_server *s = cl->conn->srv;
	struct bzp_session_rec rec;
	struct bzp_agent_rec arec;
	struct bz_policy_request pr;
	struct bz_policy_decision d;
	const char *token, *target, *uu;
	char why[BZP_ERRLEN + 64];
	time_t now = time(NULL);
	int r;

	memset(&rec, 0, sizeof(rec));
	memset(&arec, 0, sizeof(arec));
	token = str_member(req, "session", 256);
	target = str_member(req, "target", 255);
	uu = str_member(req, "unix_user", 255);
	if (token == NULL || target == NULL || uu == NULL) {
		hello_refused(cl, NULL, "malformed hello");
		return;
	}
	/* Names are checked before they reach logs or the audit. */
	if (!bzp_name_ok(target, BZP_NAME_MAX)) {
		hello_refused(cl, NULL, "unknown target (not a valid agent "
		    "name)");
		return;
	}
	cl->target = strdup(target);
	if (!unix_user_ok(uu)) {
		hello_refused(cl, NULL, "not a valid unix user name");
		return;
	}
	cl->unix_user = strdup(uu);
	if (cl->target == NULL || cl->unix_user == NULL) {
		bzp_conn_close(cl->conn, "out of memory");
		return;
	}

	if (load_session(cl, token, &rec, why, sizeof(why)) != 0) {
		hello_refused(cl, NULL, why);
		goto out;
	}
	/* the session token alone is no proof: its key must sign */
	if (!pop_ok(cl, req, "hello", rec.client_key,
	    (const char *const[]){ target, uu }, 2)) {
		hello_refused(cl, NULL, NO_POP);
		goto out;
	}
	if ((cl->client_key = strdup(rec.client_key)) == NULL) {
		hello_refused(cl, NULL, "out of memory");
		goto out;
	}
	if (bzp_syn_check(cl, str_member(req, "syn", BZ_WIRE_MAX_CONTROL),
	    rec.client_key, rec.id_token, why, sizeof(why)) != 0) {
		hello_refused(cl, NULL, why);
		goto out;
	}
	if ((r = bzp_store_agent_get(s->store, target, &arec)) != 0) {
		char near[160];

		if (r != BZP_NOT_FOUND)
			snprintf(why, sizeof(why), "bzproxy cannot read the "
			    "agent %s", target);
		else if (bzp_targets_close(s, cl, target, near,
		    sizeof(near)) > 0)
			snprintf(why, sizeof(why), "unknown target %s: no "
			    "agent of that name is enrolled; did you mean %s?",
			    target, near);
		else
			snprintf(why, sizeof(why), "unknown target %s: no "
			    "agent of that name is enrolled (bzsshd targets "
			    "lists yours)", target);
		hello_refused(cl, NULL, why);
		goto out;
	}
	if (bzp_labels_parse(arec.labels, &cl->labels, &cl->label_v,
	    &cl->nlabels) != 0) {
		hello_refused(cl, NULL, "bzproxy cannot read the target's "
		    "labels");
		goto out;
	}
	bzp_client_policy_req(cl, &pr, BZ_ACTION_CONNECT, NULL);
	bz_policy_evaluate(s->policy, &pr, &d);
	if (!d.allowed) {
		if (d.reason[0] == '\0')
			snprintf(d.reason, sizeof(d.reason), "no policy allows "
			    "%s as %s on %s", cl->user, cl->unix_user,
			    cl->target);
		hello_refused(cl, d.rule, d.reason);
		goto out;
	}
	snprintf(cl->rule, sizeof(cl->rule), "%s", d.rule);
	if (bzp_agent_find(s, cl->target) == NULL) {
		/* before asking for a code the user could not use */
		offline_reason(cl->target, arec.last_seen, now, why,
		    sizeof(why));
		hello_refused(cl, d.rule, why);
		goto out;
	}
	/* before asking for a code too */
	if (over_session_limit(cl, d.rule))
		goto out;
	cl->mfa_max_age = d.mfa_max_age;
	cl->mfa_at = rec.mfa_at;
	if (d.mfa_max_age > 0 && (int64_t)now - rec.mfa_at > d.mfa_max_age) {
		snprintf(why, sizeof(why), "rule %s wants a TOTP check at "
		    "least every %lds: enter your current code", d.rule,
		    d.mfa_max_age);
		bzp_audit(s, "mfa", bzp_audit_decision(bzp_audit_client(cl),
		    "connect", 0, d.rule, "mfa_required"));
		ask_mfa(cl, why);
		goto out;
	}
	session_ready(cl);
 out:
	bzp_session_rec_clear(&rec);
	bzp_agent_rec_clear(&arec);
}

static void
do_mfa(struct bzp_client *cl, const json_t *req)
{
	struct bzp_server *s = cl->conn->srv;
	enum bz_totp_result tr;
	const char *code = str_member(req, "totp", 16);

	tr = code == NULL ? BZ_TOTP_MALFORMED : check_totp(s, cl->user, code);
	bzp_audit(s, "mfa", bzp_audit_decision(bzp_audit_client(cl),
	    "connect", tr == BZ_TOTP_OK, cl->rule,
	    tr == BZ_TOTP_OK ? NULL : totp_reason(tr)));
	if (tr == BZ_TOTP_OK) {
		cl->mfa_at = (int64_t)time(NULL);
		if (bzp_store_session_set_mfa(s->store, cl->session_hash,
		    cl->mfa_at) != 0)
			bz_error("cannot store the MFA time: %s",
			    bzp_store_errmsg(s->store));
		session_ready(cl);
		return;
	}
	if (tr == BZ_TOTP_LOCKED || ++cl->mfa_tries >= MFA_MAX_TRIES) {
		hello_refused(cl, cl->rule, tr == BZ_TOTP_LOCKED ?
		    totp_reason(tr) : "too many wrong codes");
		return;
	}
	ask_mfa(cl, totp_reason(tr));
}

void
bzp_client_auth(struct bzp_client *cl, const struct bz_frame *f)
{
	char err[BZP_ERRLEN];
	const char *t;
	json_t *o;

	if ((o = bz_json_parse_object(f->payload, f->length, err,
	    sizeof(err))) == NULL) {
		/* not err: jansson quotes the input, which may hold a token */
		bzp_conn_close(cl->conn, "protocol violation: malformed JSON");
		return;
	}
	if ((t = bz_json_str(o, "t")) == NULL)
		t = "";
	if (cl->state == BZP_CL_START && strcmp(t, "login") == 0)
		do_login(cl, o, 1);
	else if (cl->state == BZP_CL_START && strcmp(t, "hello") == 0)
		do_hello(cl, o);
	else if (cl->state == BZP_CL_START && (strcmp(t, "whoami") == 0 ||
	    strcmp(t, "targets") == 0))
		do_query(cl, o, t);
	else if (cl->state == BZP_CL_MFA && strcmp(t, "mfa") == 0)
		do_mfa(cl, o);
	else
		bzp_conn_close(cl->conn, "protocol violation: unexpected "
		    "\"%.32s\" before hello_ok", t);
	json_decref(o);
}
