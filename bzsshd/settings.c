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
#include "util.h"

#define SETTINGS_FILE "bzsshd.yaml"
#define PROXY_RETRY_MAX_S 3600

static const char *const known_keys[] = { "proxy_retry", NULL };

/* A duration like 30s or 2m, or 0 (never retry). */
static long
parse_retry(const char *v)
{
	if (strcmp(v, "0") == 0 || strcmp(v, "0s") == 0)
		return 0;
	return bz_parse_duration(v);
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
 out:
	bz_config_free(cfg);
	free(path);
	return r;
}
