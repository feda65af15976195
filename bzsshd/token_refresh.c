/*
 * token_refresh.c: long sessions without a browser (docs/protocol.md
 * "Long sessions"). An ID token lives an hour at most IdPs; before it
 * expires, bzsshd trades the OIDC refresh token for a new one at the
 * IdP's token endpoint and saves it in the session file. The login's own
 * token stays there too: its nonce is what binds the client key, and a
 * refreshed token (which may carry no nonce) travels with it.
 *
 * Parallel bzsshds (Ansible's forks, a ControlMaster and new connections)
 * take an flock on CONFIGDIR/session.lock and read the session again
 * under it: the first refreshes, the others find its fresh token (IdPs
 * that rotate refresh tokens accept each one only once).
 */
#include "bzsshd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "jwt.h"
#include "log.h"
#include "util.h"

#define REFRESH_AHEAD_MAX_S 300 /* refresh at most this long before exp */

/* A claim of token as a time, or 0. */
static time_t
token_time(const char *token, const char *claim)
{
	json_t *c = token != NULL ? bz_oidc_peek(token) : NULL;
	json_t *v = json_object_get(c, claim);
	time_t t = json_is_integer(v) ? (time_t)json_integer_value(v) : 0;

	json_decref(c);
	return t;
}

time_t
bz_token_refresh_at(const struct bz_session *s)
{
	time_t exp = token_time(s->id_token, "exp");
	time_t iat = token_time(s->id_token, "iat");
	time_t ahead;

	if (s->refresh_token == NULL || exp == 0)
		return 0;
	/* a third of its life before it ends, at most 5 minutes */
	ahead = iat > 0 && exp > iat ? (exp - iat) / 3 : REFRESH_AHEAD_MAX_S;
	if (ahead > REFRESH_AHEAD_MAX_S)
		ahead = REFRESH_AHEAD_MAX_S;
	return exp - ahead;
}

time_t
bz_token_expiry(const struct bz_session *s)
{
	return token_time(s->id_token, "exp");
}

/* The new token must be of the login we hold: the same subject, and no
 * other nonce than the login's. */
static int
same_login(const struct bz_session *s, const char *fresh, char *err,
    size_t errlen)
{
	json_t *a = bz_oidc_peek(s->login_token != NULL ? s->login_token :
	    s->id_token), *b = bz_oidc_peek(fresh);
	const char *n = bz_json_str(b, "nonce");
	int r = BZ_ERR_INVALID;

	if (a == NULL || b == NULL)
		bz_errf(err, errlen, "the IdP sent a malformed ID token");
	else if (bz_jwt_same_login(a, b, err, errlen) != 0)
		;
	else if (n != NULL && (bz_json_str(a, "nonce") == NULL ||
	    !bz_secret_equal(n, bz_json_str(a, "nonce"))))
		bz_errf(err, errlen, "the refreshed ID token names another "
		    "login's nonce");
	else
		r = BZ_OK;
	json_decref(a);
	json_decref(b);
	return r;
}

/* Trade s's refresh token at the IdP: s gets the new ID token (and the
 * next refresh token, when the IdP rotates them). */
static int
refresh(struct bz_session *s, char *err, size_t errlen)
{
	char *auth_ep = NULL, *token_ep = NULL, *form = NULL, *rt = NULL;
	char *cid = NULL, *id = NULL, *next = NULL;
	int r;

	if (s->issuer == NULL || s->client_id == NULL) {
		bz_errf(err, errlen, "the session file has no issuer or client "
		    "id (log in again once)");
		return BZ_ERR_INVALID;
	}
	if ((r = bz_oidc_discover(s->issuer, s->ca_file, &auth_ep, &token_ep,
	    err, errlen)) != 0)
		goto out;
	r = BZ_ERR_ALLOC;
	if ((rt = bz_url_escape(s->refresh_token)) == NULL ||
	    (cid = bz_url_escape(s->client_id)) == NULL ||
	    asprintf(&form, "grant_type=refresh_token&refresh_token=%s"
	    "&client_id=%s", rt, cid) < 0) {
		form = NULL;
		goto out;
	}
	if ((r = bz_oidc_token(token_ep, s->ca_file, form, &id, &next, err,
	    errlen)) != 0 || (r = same_login(s, id, err, errlen)) != 0)
		goto out;
	/* the login's token stays: its nonce binds our key */
	if (s->login_token == NULL) {
		s->login_token = s->id_token;
		s->id_token = NULL;
	}
	bz_free_secret(&s->id_token);
	s->id_token = id;
	id = NULL;
	if (next != NULL) {
		bz_free_secret(&s->refresh_token);
		s->refresh_token = next;
		next = NULL;
	}
	r = BZ_OK;
 out:
	bz_free_secret(&form);
	bz_free_secret(&rt);
	bz_free_secret(&id);
	bz_free_secret(&next);
	free(cid);
	free(auth_ep);
	free(token_ep);
	return r;
}

int
bz_session_refresh(const char *dir, struct bz_session *s, char *err,
    size_t errlen)
{
	struct bz_session cur;
	char *lock = bz_config_dir_file(dir, "session.lock");
	int fd = -1, r;

	memset(&cur, 0, sizeof(cur));
	if (lock == NULL)
		return BZ_ERR_ALLOC;
	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0 || flock(fd, LOCK_EX) != 0) {
		bz_errf(err, errlen, "%s: %s", lock, strerror(errno));
		r = BZ_ERR_INVALID;
		goto out;
	}
	/* another bzsshd may have refreshed while we waited */
	if ((r = bz_session_load(dir, &cur, err, errlen)) != 0)
		goto out;
	if (cur.session == NULL || s->session == NULL ||
	    strcmp(cur.session, s->session) != 0) {
		bz_errf(err, errlen, "the session changed (a new login)");
		r = BZ_ERR_INVALID;
		goto out;
	}
	if (time(NULL) < bz_token_refresh_at(&cur)) {
		bz_debug("ID token refreshed meanwhile by another bzsshd");
	} else if (cur.refresh_token == NULL) {
		bz_errf(err, errlen, "the IdP gave no refresh token at login");
		r = BZ_ERR_INVALID;
		goto out;
	} else if ((r = refresh(&cur, err, errlen)) != 0 ||
	    (r = bz_session_save(dir, &cur, err, errlen)) != 0) {
		goto out;
	} else
		bz_debug("ID token refreshed (expires in %lld s)",
		    (long long)(bz_token_expiry(&cur) - time(NULL)));
	bz_session_clear(s);
	*s = cur;
	memset(&cur, 0, sizeof(cur));
	r = BZ_OK;
 out:
	bz_session_clear(&cur);
	if (fd >= 0)
		close(fd); /* drops the lock */
	free(lock);
	return r;
}
