/*
 * settings.c: CONFIGDIR/bzsshd.yaml, the user's own settings for bzsshd
 * (optional; docs/commands.md). The session file is login's to write; this
 * one is never written by bzsshd.
 */
#include "bzsshd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "seal.h"
#include "util.h"

#define SETTINGS_FILE "bzsshd.yaml"
#define PROXY_RETRY_MAX_S 3600

static const char *const known_keys[] = { "proxy_retry", "ciphers", NULL };

/* A duration like 30s or 2m, or 0 (never retry). */
static long
parse_retry(const char *v)
{
	if (strcmp(v, "0") == 0 || strcmp(v, "0s") == 0)
		return 0;
	return bz_parse_duration(v);
}

/* Is the n bytes at name one of list's comma-separated names? */
static int
list_has(const char *list, const char *name, size_t n)
{
	const char *p = list, *e;

	for (;;) {
		e = strchr(p, ',');
		if ((size_t)((e != NULL ? e : p + strlen(p)) - p) == n &&
		    strncmp(p, name, n) == 0)
			return 1;
		if (e == NULL)
			return 0;
		p = e + 1;
	}
}

/* Each of the comma-separated names in list is one libssh knows, and
 * there is at least one: 0, or -1 with the first bad one in bad. */
static int
check_ciphers(const char *list, char *bad, size_t badlen)
{
	const char *p = list, *e;
	size_t n;

	do {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n == 0 || !list_has(BZSSHD_CIPHERS_KNOWN, p, n)) {
			snprintf(bad, badlen, "%.*s", (int)n, p);
			return -1;
		}
		p = e + 1;
	} while (e != NULL);
	return 0;
}

const char *
bz_settings_ciphers(const struct bzsshd_opts *o)
{
	if (o->ciphers != NULL)
		return o->ciphers;
	return bz_aead_best() == BZ_AEAD_AES256GCM ? BZSSHD_CIPHERS_AESNI :
	    BZSSHD_CIPHERS_OTHER;
}

int
bz_settings_load(struct bzsshd_opts *o, char *err, size_t errlen)
{
	struct bz_config *cfg = NULL;
	const char *v;
	char *path;
	int r;

	o->proxy_retry_s = BZSSHD_PROXY_RETRY_DEFAULT_S;
	if ((path = bz_config_dir_file(o->config_dir, SETTINGS_FILE)) ==
	    NULL) {
		bz_errf(err, errlen, "out of memory");
		return BZ_ERR_ALLOC;
	}
	if (access(path, F_OK) != 0 && errno == ENOENT) {
		free(path);
		return BZ_OK; /* none: the defaults */
	}
	if ((r = bz_config_load(path, known_keys, &cfg, err, errlen)) != 0)
		goto out;
	if ((v = bz_config_get(cfg, "proxy_retry")) != NULL &&
	    ((o->proxy_retry_s = parse_retry(v)) < 0 ||
	    o->proxy_retry_s > PROXY_RETRY_MAX_S)) {
		bz_errf(err, errlen, "%s: proxy_retry must be a duration like "
		    "30s or 2m (at most 1h), or 0, got \"%s\"", path, v);
		r = BZ_ERR_INVALID;
	}
	if (r == 0 && (v = bz_config_get(cfg, "ciphers")) != NULL) {
		char bad[64];

		if (check_ciphers(v, bad, sizeof(bad)) != 0) {
			bz_errf(err, errlen, "%s: ciphers: \"%s\" is not a cipher "
			    "bzsshd offers (a comma-separated list of: %s)",
			    path, bad, BZSSHD_CIPHERS_KNOWN);
			r = BZ_ERR_INVALID;
		} else if ((o->ciphers = strdup(v)) == NULL) {
			bz_errf(err, errlen, "out of memory");
			r = BZ_ERR_ALLOC;
		}
	}
 out:
	bz_config_free(cfg);
	free(path);
	return r;
}
