/* http_fetch.c: the few HTTPS requests `bzsshd login` makes (OIDC
 * discovery, token endpoint), with libcurl: https only, bounded bodies,
 * short timeouts, JSON answers parsed as untrusted. */
#include "bzsshd.h"

#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define HTTP_BODY_MAX (256u * 1024)
#define HTTP_TIMEOUT_S 15L

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct bz_buf *b = arg;
	size_t n = size * nmemb;

	if (n > HTTP_BODY_MAX || b->len + n > HTTP_BODY_MAX ||
	    bz_buf_put(b, p, n) != 0)
		return 0; /* aborts the transfer */
	return n;
}

static int
request(const char *url, const char *ca_file, const char *form, long *status,
    json_t **out, char *err, size_t errlen)
{
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	struct bz_buf body;
	CURL *h = NULL;
	CURLcode cr;
	long code = 0;
	int r = BZ_ERR_INVALID;

	*out = NULL;
	bz_buf_init(&body);
	if (strncmp(url, "https://", 8) != 0) {
		bz_errf(err, errlen, "refusing non-https URL %s", url);
		goto out;
	}
	if ((h = curl_easy_init()) == NULL ||
	    (hdr = curl_slist_append(NULL, "Accept: application/json")) ==
	    NULL) {
		r = BZ_ERR_ALLOC;
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, HTTP_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	if (ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
	if (form != NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
	if ((cr = curl_easy_perform(h)) != CURLE_OK) {
		bz_errf(err, errlen, "%s: %s", url,
		    cerr[0] ? cerr : curl_easy_strerror(cr));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (status != NULL)
		*status = code;
	if (code != 200 && (form == NULL || code < 400 || code >= 500)) {
		bz_errf(err, errlen, "%s: HTTP status %ld", url, code);
		goto out;
	}
	if ((*out = bz_json_parse_object(bz_buf_peek(&body),
	    bz_buf_avail(&body), err, errlen)) == NULL) {
		r = BZ_ERR_FORMAT;
		goto out;
	}
	r = BZ_OK;
 out:
	curl_slist_free_all(hdr);
	if (h != NULL)
		curl_easy_cleanup(h);
	bz_buf_free(&body); /* token responses: zeroed on free */
	return r;
}

int
bz_http_get_json(const char *url, const char *ca_file, json_t **out,
    char *err, size_t errlen)
{
	return request(url, ca_file, NULL, NULL, out, err, errlen);
}

int
bz_http_post_form_json(const char *url, const char *ca_file,
    const char *form, long *status, json_t **out, char *err, size_t errlen)
{
	return request(url, ca_file, form, status, out, err, errlen);
}

char *
bz_url_escape(const char *s)
{
	char *e, *r;

	if ((e = curl_easy_escape(NULL, s, 0)) == NULL)
		return NULL;
	r = strdup(e);
	curl_free(e);
	return r;
}
