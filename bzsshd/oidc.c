/*
 * oidc.c: what bzsshd asks of the identity provider, for `login` and for
 * token refreshes: discovery, the token endpoint, and a look at a token's
 * claims. bzsshd only reads its own tokens' claims (nonce, exp, iat) for
 * its bookkeeping; bzproxy and the agents verify signatures.
 */
#include "bzsshd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "buf.h"
#include "jwt.h"
#include "util.h"

int
bz_oidc_discover(const char *issuer, const char *ca, char **auth_ep,
    char **token_ep, char *err, size_t errlen)
{
	char *url = NULL;
	const char *iss, *ae, *te;
	json_t *d = NULL;
	size_t n = strlen(issuer);
	int r;

	*auth_ep = *token_ep = NULL;
	while (n > 0 && issuer[n - 1] == '/')
		n--;
	if (asprintf(&url, "%.*s/.well-known/openid-configuration", (int)n,
	    issuer) < 0)
		return BZ_ERR_ALLOC;
	if ((r = bz_http_get_json(url, ca, &d, err, errlen)) != 0)
		goto out;
	r = BZ_ERR_FORMAT;
	iss = bz_json_str(d, "issuer");
	ae = bz_json_str(d, "authorization_endpoint");
	te = bz_json_str(d, "token_endpoint");
	if (iss == NULL || strcmp(iss, issuer) != 0) {
		bz_errf(err, errlen, "discovery: issuer is \"%.200s\", "
		    "expected \"%s\"", iss ? iss : "", issuer);
		goto out;
	}
	if (ae == NULL || te == NULL || strncmp(ae, "https://", 8) != 0 ||
	    strncmp(te, "https://", 8) != 0) {
		bz_errf(err, errlen, "discovery: missing or non-https "
		    "authorization/token endpoint");
		goto out;
	}
	*auth_ep = strdup(ae);
	*token_ep = strdup(te);
	r = *auth_ep && *token_ep ? BZ_OK : BZ_ERR_ALLOC;
	if (r != BZ_OK) {
		free(*auth_ep);
		free(*token_ep);
		*auth_ep = *token_ep = NULL;
	}
 out:
	json_decref(d);
	free(url);
	return r;
}

int
bz_oidc_token(const char *token_ep, const char *ca, const char *form,
    char **id_token, char **refresh_token, char *err, size_t errlen)
{
	const char *t, *rt, *e, *d;
	json_t *resp = NULL;
	long status = 0;
	int r;

	*id_token = *refresh_token = NULL;
	if ((r = bz_http_post_form_json(token_ep, ca, form, &status, &resp,
	    err, errlen)) != 0)
		return r;
	r = BZ_ERR_INVALID;
	t = bz_json_str(resp, "id_token");
	rt = bz_json_str(resp, "refresh_token");
	if (status != 200 || t == NULL) {
		e = bz_json_str(resp, "error");
		d = bz_json_str(resp, "error_description");
		bz_errf(err, errlen, "token endpoint refused (HTTP %ld): "
		    "%.100s %.200s", status, e ? e : "no id_token", d ? d : "");
		goto out;
	}
	if (strlen(t) > BZ_JWT_MAX_LEN || (rt != NULL && strlen(rt) > 4096)) {
		bz_errf(err, errlen, "token endpoint: token too long");
		goto out;
	}
	if ((*id_token = strdup(t)) == NULL ||
	    (rt != NULL && (*refresh_token = strdup(rt)) == NULL)) {
		bz_free_secret(id_token);
		r = BZ_ERR_ALLOC;
		goto out;
	}
	r = BZ_OK;
 out:
	json_decref(resp); /* jansson keeps copies of the tokens */
	return r;
}

json_t *
bz_oidc_peek(const char *jwt)
{
	const char *p = strchr(jwt, '.'), *q;
	uint8_t *payload = NULL;
	size_t n = 0;
	json_t *o = NULL;

	if (p != NULL && (q = strchr(p + 1, '.')) != NULL &&
	    bz_b64url_decode(p + 1, (size_t)(q - p - 1), BZ_JSON_MAX,
	    &payload, &n) == 0)
		o = bz_json_parse_object(payload, n, NULL, 0);
	if (payload != NULL)
		sodium_memzero(payload, n);
	free(payload);
	return o;
}
