/*
 * jwt.h: OIDC ID-token verification against the IdP's JWKS.
 *
 * Only RS256 (RSA >= 2048 bits) and ES256 (P-256) are accepted; the key is
 * chosen by the header's "kid" and the header's "alg" must equal the key's
 * type (never "none", never HMAC). Claims checked: iss, aud (string or array
 * containing our client id), exp, nbf/iat (with leeway), and nonce when the
 * caller expects one (constant-time comparison). Parsing of the token goes
 * through bz_buf (buf.h).
 */
#ifndef BZ_JWT_H
#define BZ_JWT_H

#include <stddef.h>
#include <time.h>
#include <jansson.h>

#define BZ_JWT_MAX_LEN (16u * 1024)  /* longest token accepted */
#define BZ_JWT_LEEWAY 60             /* seconds of clock skew tolerated */

struct bz_jwks;

/* Parse a JWKS document ({"keys":[...]}); keys of other types are skipped. */
int bz_jwks_parse(const char *json, size_t len, struct bz_jwks **out,
    char *err, size_t errlen);
/*
 * Fetch the IdP's JWKS: GET issuer/.well-known/openid-configuration over
 * https (ca_file verifies the IdP, NULL = system store), check its "issuer"
 * equals ours, then GET its jwks_uri. Bounded sizes, 10 s timeout.
 */
int bz_jwks_fetch(const char *issuer, const char *ca_file,
    struct bz_jwks **out, char *err, size_t errlen);
void bz_jwks_free(struct bz_jwks *jwks);
/* Number of usable keys. */
size_t bz_jwks_count(const struct bz_jwks *jwks);

struct bz_jwt_expect {
	const char *issuer;    /* required */
	const char *audience;  /* required: our OIDC client id */
	const char *nonce;     /* when not NULL, the token must carry it */
	time_t now;            /* 0 = time(NULL) */
	/* > 0: a login's token, kept for its nonce (the key it binds): it
	 * may have expired, but must carry an iat no older than this many
	 * seconds (docs/protocol.md "Long sessions") */
	long login_max_age;
};

/*
 * Verify token. On success returns 0 and *claims (new reference) holds the
 * payload object. On failure returns a negative BZ_ERR_* and err says why,
 * e.g. "token expired", "unknown kid", "algorithm none is not allowed".
 */
int bz_jwt_verify(const struct bz_jwks *jwks, const char *token,
    const struct bz_jwt_expect *expect, json_t **claims, char *err,
    size_t errlen);
/*
 * Is current (the claims of a refreshed ID token) from the same login as
 * login (the claims of the token the login's nonce bound)? Same sub, and
 * the same auth_time when both carry one (OIDC Core 12.2: a refreshed
 * token keeps iss, sub, aud and auth_time). 0, or BZ_ERR_INVALID with err.
 */
int bz_jwt_same_login(const json_t *login, const json_t *current, char *err,
    size_t errlen);

#endif
