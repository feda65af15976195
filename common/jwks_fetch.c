/*
 * jwks_fetch.c: fetch the IdP's JWKS over https via OIDC discovery
 * (libcurl); see bz_jwks_fetch in jwt.h.
 */
#include "jwt.h"

#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define FETCH_MAX (1024u * 1024) /* largest response we read */
#define FETCH_TIMEOUT 10L        /* seconds, whole transfer */

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct bz_buf *b = arg;
	size_t n = size * nmemb;

	/* Returning less than n makes curl abort the transfer. */
	if (bz_buf_avail(b) + n > FETCH_MAX || bz_buf_put(b, p, n) != 0)
		return 0;
	return n;
}

/* GET url (https only, no redirects) into body. */
static int
https_get(const char *url, const char *ca_file, struct bz_buf *body,
    char *err, size_t errlen)
{
	char cerr[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode c;
	CURL *h;
	int r = BZ_ERR_INVALID;

	if (strncmp(url, "https://", 8) != 0) {
		bz_errf(err, errlen, "%s: only https URLs are allowed", url);
		return BZ_ERR_INVALID;
	}
	if ((h = curl_easy_init()) == NULL) {
		bz_errf(err, errlen, "curl: cannot initialise");
		return BZ_ERR_ALLOC;
	}
	if ((c = curl_easy_setopt(h, CURLOPT_URL, url)) != CURLE_OK ||
	    (c = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https")) !=
	    CURLE_OK ||
	    (c = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L)) != CURLE_OK ||
	    (c = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L)) != CURLE_OK ||
	    (c = curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L)) != CURLE_OK ||
	    (c = curl_easy_setopt(h, CURLOPT_TIMEOUT, FETCH_TIMEOUT)) !=
	    CURLE_OK ||
	    (c = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
	    (c = curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)FETCH_MAX)) !=
	    CURLE_OK ||
	    (c = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr)) != CURLE_OK ||
	    (c = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body)) !=
	    CURLE_OK ||
	    (c = curl_easy_setopt(h, CURLOPT_WRITEDATA, body)) != CURLE_OK ||
	    (ca_file != NULL &&
	    (c = curl_easy_setopt(h, CURLOPT_CAINFO, ca_file)) != CURLE_OK)) {
		bz_errf(err, errlen, "curl: %s", curl_easy_strerror(c));
		goto out;
	}
	if ((c = curl_easy_perform(h)) != CURLE_OK) {
		bz_errf(err, errlen, "GET %s: %s", url,
		    cerr[0] ? cerr : curl_easy_strerror(c));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		bz_errf(err, errlen, "GET %s: HTTP status %ld", url, status);
		goto out;
	}
	r = BZ_OK;
 out:
	curl_easy_cleanup(h);
	return r;
}

int
bz_jwks_fetch(const char *issuer, const char *ca_file, struct bz_jwks **out,
    char *err, size_t errlen)
{
	struct bz_buf body;
	json_t *disc = NULL;
	char *url = NULL, *jwks_uri = NULL, jerr[200];
	const char *iss, *uri;
	size_t ilen;
	int r;

	*out = NULL;
	bz_buf_init(&body);
	if (issuer == NULL || strncmp(issuer, "https://", 8) != 0) {
		bz_errf(err, errlen, "OIDC issuer must be an https URL");
		return BZ_ERR_INVALID;
	}
	/* OIDC discovery 4: drop one trailing "/" before appending. */
	ilen = strlen(issuer);
	if (ilen > 0 && issuer[ilen - 1] == '/')
		ilen--;
	if (asprintf(&url, "%.*s/.well-known/openid-configuration",
	    (int)ilen, issuer) < 0) {
		url = NULL;
		r = BZ_ERR_ALLOC;
		goto out;
	}
	if ((r = https_get(url, ca_file, &body, err, errlen)) != 0)
		goto out;
	if ((disc = bz_json_parse_object(bz_buf_peek(&body),
	    bz_buf_avail(&body), jerr, sizeof(jerr))) == NULL) {
		bz_errf(err, errlen, "OIDC discovery %s: %s", url, jerr);
		r = BZ_ERR_FORMAT;
		goto out;
	}
	if ((iss = bz_json_str(disc, "issuer")) == NULL ||
	    strcmp(iss, issuer) != 0) {
		bz_errf(err, errlen, "OIDC discovery: issuer does not equal "
		    "the configured %s", issuer);
		r = BZ_ERR_INVALID;
		goto out;
	}
	if ((uri = bz_json_str(disc, "jwks_uri")) == NULL) {
		bz_errf(err, errlen, "OIDC discovery: no jwks_uri");
		r = BZ_ERR_FORMAT;
		goto out;
	}
	if ((jwks_uri = strdup(uri)) == NULL) {
		r = BZ_ERR_ALLOC;
		goto out;
	}
	bz_buf_reset(&body);
	if ((r = https_get(jwks_uri, ca_file, &body, err, errlen)) != 0)
		goto out;
	r = bz_jwks_parse((const char *)bz_buf_peek(&body), bz_buf_avail(&body),
	    out, err, errlen);
	if (r == 0)
		bz_debug("JWKS from %s: %zu usable keys", jwks_uri,
		    bz_jwks_count(*out));
 out:
	if (r == BZ_ERR_ALLOC)
		bz_errf(err, errlen, "out of memory");
	json_decref(disc);
	free(url);
	free(jwks_uri);
	bz_buf_free(&body);
	return r;
}
