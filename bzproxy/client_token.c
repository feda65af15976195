/*
 * client_token.c: the ID token a session runs on (docs/protocol.md "Long
 * sessions"). The login's own token is the one whose nonce bound the
 * client key, checked at login with the TOTP and stored with the session;
 * bzsshd later trades its refresh token at the IdP for new ones, which
 * may carry no nonce (OIDC Core 12.2). A current token is taken when it
 * verifies on its own (signature, iss, aud, exp), names the session's
 * user, and comes from the same login (sub, auth_time) as the stored
 * login token, which must still verify, expired or not, within
 * session_ttl of its issue. Only the session's client key can bring one:
 * in a signed SYN, or in a signed "token" message of a running session.
 */
#include "bzproxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "jwks_cache.h"
#include "jwt.h"
#include "log.h"
#include "util.h"


/* Verify token (as a login's token when max_age > 0): claims, or NULL
 * with err. */
static json_t *
verify(struct bzp_server *s, const char *token, long max_age, char *err,
    size_t el)
{
	struct bz_jwt_expect exp;
	json_t *claims = NULL;

	memset(&exp, 0, sizeof(exp));
	exp.issuer = s->cfg->issuer;
	exp.audience = s->cfg->audience;
	exp.login_max_age = max_age;
	if (bz_jwt_verify(bz_jwks_cache_lock(s->jwks), token, &exp, &claims,
	    err, el) != 0)
		claims = NULL;
	bz_jwks_cache_unlock(s->jwks);
	return claims;
}

int
bzp_token_check(struct bzp_server *s, const char *login_token,
    const char *current, const char *user, char *why, size_t wl)
{
	json_t *cur = NULL, *login = NULL;
	const char *email;
	char err[BZP_ERRLEN];
	int r = BZ_ERR_INVALID;

	if ((cur = verify(s, current, 0, err, sizeof(err))) == NULL) {
		if (strstr(err, "expired") != NULL)
			snprintf(why, wl, "your IdP login has expired: run "
			    "bzsshd login");
		else
			snprintf(why, wl, "your ID token is not accepted "
			    "(%s): run bzsshd login", err);
		goto out;
	}
	if ((email = bz_json_str(cur, "email")) == NULL ||
	    strcmp(email, user) != 0) {
		snprintf(why, wl, BZP_NO_LOGIN);
		goto out;
	}
	if (strcmp(current, login_token) != 0 &&
	    ((login = verify(s, login_token, s->cfg->session_ttl, err,
	    sizeof(err))) == NULL ||
	    bz_jwt_same_login(login, cur, err, sizeof(err)) != 0)) {
		snprintf(why, wl, "your refreshed ID token does not continue "
		    "your login (%s): run bzsshd login", err);
		goto out;
	}
	r = BZ_OK;
 out:
	json_decref(cur);
	json_decref(login);
	return r;
}

void
bzp_client_token(struct bzp_client *cl, const struct bzp_signed *m)
{
	struct bzp_server *s = cl->conn->srv;
	struct bzp_verdict v = { 1, "token", cl->rule, NULL };
	const char *t = bz_json_str_max(m->json, "id_token", BZ_JWT_MAX_LEN);
	char why[BZP_ERRLEN + 64] = "";
	char *copy = NULL;
	json_t *ev;

	if (t == NULL || bzp_token_check(s, cl->login_token, t, cl->user, why,
	    sizeof(why)) != 0 || (copy = strdup(t)) == NULL) {
		if (t == NULL)
			snprintf(why, sizeof(why), "no id_token");
		else if (copy == NULL && why[0] == '\0')
			snprintf(why, sizeof(why), "out of memory");
		v.allowed = 0;
		v.reason = why;
		bz_warn("%s: session %u: new ID token refused: %s",
		    cl->conn->peer, cl->sid, why);
	} else {
		bz_free_secret(&cl->id_token);
		cl->id_token = copy;
		bz_info("%s: session %u: ID token refreshed", cl->conn->peer,
		    cl->sid);
	}
	ev = bzp_audit_client(cl);
	if (bzp_audit(s, "token", bzp_audit_decision(ev, "token", v.allowed,
	    cl->rule, v.allowed ? NULL : why)) != 0 && v.allowed) {
		/* not on the record: not taken */
		v.allowed = 0;
		snprintf(why, sizeof(why), "%s", BZP_NO_AUDIT);
		v.reason = why;
	}
	/* on to the agent either way: its chain has no gaps */
	if (bzp_send_envelope(cl, 0, m, &v) != 0)
		bz_debug("%s: session %u: cannot pass the token on",
		    cl->conn->peer, cl->sid);
}
