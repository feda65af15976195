/* config.c: bzproxy's YAML config file (docs/commands.md). */
#include "bzproxy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "util.h"

static const char *const known_keys[] = {
	"listen", "tls_cert", "tls_key", "state_db", "signing_key",
	"policies", "audit_log", "oidc.issuer", "oidc.audience",
	"oidc.ca_file", "oidc.groups_claim", "session_ttl",
	"audit_checkpoints", "audit_checkpoint_interval", BZP_LIMIT_LINKS,
	BZP_LIMIT_SESSIONS, BZP_LIMIT_CHANNELS, BZP_LIMIT_COMMAND,
	BZP_LIMIT_PREAUTH, BZP_LIMIT_PREAUTH_ADDR, BZP_LIMIT_PREAUTH_MESSAGE,
	NULL,
};

/* A whole number of 1..max, digits only; -1 otherwise. */
static long
parse_count(const char *v, long max)
{
	long n = 0;
	size_t i;

	for (i = 0; v[i] >= '0' && v[i] <= '9'; i++) {
		n = n * 10 + (v[i] - '0');
		if (n > max)
			return -1;
	}
	return i == 0 || v[i] != '\0' || n < 1 ? -1 : n;
}

/* limits.*: each a whole number with a default and a ceiling. */
static int
parse_limits(struct bzp_config *c, const char *path, char *err,
    size_t errlen)
{
	struct bzp_limits *l = &c->limits;
	const struct {
		const char *key;
		long *dst, def, min, max;
	} keys[] = {
		{ BZP_LIMIT_LINKS, &l->max_links, BZP_DEFAULT_MAX_LINKS, 1,
		    BZP_MAX_LINKS_MAX },
		{ BZP_LIMIT_SESSIONS, &l->sessions_per_user,
		    BZP_DEFAULT_SESSIONS_PER_USER, 1,
		    BZP_SESSIONS_PER_USER_MAX },
		{ BZP_LIMIT_CHANNELS, &l->channels_per_session,
		    BZP_DEFAULT_CHANNELS_PER_SESSION, 1,
		    BZP_CHANNELS_PER_SESSION_MAX },
		{ BZP_LIMIT_COMMAND, &l->command_bytes,
		    BZP_DEFAULT_COMMAND_BYTES, 1, BZ_WIRE_COMMAND_MAX },
		{ BZP_LIMIT_PREAUTH, &l->preauth_links,
		    BZP_DEFAULT_PREAUTH_LINKS, 1, BZP_MAX_LINKS_MAX },
		{ BZP_LIMIT_PREAUTH_ADDR, &l->preauth_per_address,
		    BZP_DEFAULT_PREAUTH_PER_ADDRESS, 1, BZP_MAX_LINKS_MAX },
		{ BZP_LIMIT_PREAUTH_MESSAGE, &l->preauth_message,
		    BZP_DEFAULT_PREAUTH_MESSAGE, BZP_PREAUTH_MESSAGE_MIN,
		    BZ_WIRE_MAX_FRAME },
	};
	const char *v;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		*keys[i].dst = keys[i].def;
		if ((v = bz_config_get(c->raw, keys[i].key)) != NULL &&
		    ((*keys[i].dst = parse_count(v, keys[i].max)) <
		    keys[i].min)) {
			bz_errf(err, errlen, "%s: %s must be a whole number from "
			    "%ld to %ld, got \"%.40s\"", path, keys[i].key,
			    keys[i].min, keys[i].max, v);
			return BZ_ERR_INVALID;
		}
	}
	l->max_links_set = bz_config_get(c->raw, BZP_LIMIT_LINKS) != NULL;
	return BZ_OK;
}

/* host:port, host non-empty, port 1..65535. */
static int
parse_listen(const char *v, char **host, int *port)
{
	const char *colon = strrchr(v, ':');

	if (colon == NULL || colon == v ||
	    bz_parse_int_range(colon + 1, 1, 65535, port) != 0)
		return -1;
	return (*host = strndup(v, (size_t)(colon - v))) == NULL ? -1 : 0;
}

/* Required path setting, resolved against the config file's folder. */
static int
need_path(struct bzp_config *c, const char *key, char **out, char *err,
    size_t errlen)
{
	if (bz_config_require(c->raw, key, err, errlen) == NULL)
		return BZ_ERR_INVALID;
	if ((*out = bz_config_path(c->raw, key)) == NULL)
		return BZ_ERR_ALLOC;
	return BZ_OK;
}

int
bzp_config_load(const char *path, struct bzp_config *c, char *err,
    size_t errlen)
{
	const char *v;
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = bz_config_load(path, known_keys, &c->raw, err, errlen)) != 0)
		return r;
	r = BZ_ERR_INVALID;
	if ((v = bz_config_require(c->raw, "listen", err, errlen)) == NULL)
		goto fail;
	if (parse_listen(v, &c->listen_host, &c->listen_port) != 0) {
		bz_errf(err, errlen, "%s: listen must be HOST:PORT, got \"%s\"",
		    path, v);
		goto fail;
	}
	if ((r = need_path(c, "tls_cert", &c->tls_cert, err, errlen)) != 0 ||
	    (r = need_path(c, "tls_key", &c->tls_key, err, errlen)) != 0 ||
	    (r = need_path(c, "state_db", &c->state_db, err, errlen)) != 0 ||
	    (r = need_path(c, "signing_key", &c->signing_key, err,
	    errlen)) != 0 ||
	    (r = need_path(c, "policies", &c->policies, err, errlen)) != 0 ||
	    (r = need_path(c, "audit_log", &c->audit_log, err, errlen)) != 0)
		goto fail;
	r = BZ_ERR_INVALID;
	if ((c->issuer = bz_config_require(c->raw, "oidc.issuer", err,
	    errlen)) == NULL ||
	    (c->audience = bz_config_require(c->raw, "oidc.audience", err,
	    errlen)) == NULL)
		goto fail;
	if (strncmp(c->issuer, "https://", 8) != 0) {
		bz_errf(err, errlen, "%s: oidc.issuer must be an https:// URL",
		    path);
		goto fail;
	}
	c->groups_claim = bz_config_get(c->raw, "oidc.groups_claim");
	if (c->groups_claim == NULL || c->groups_claim[0] == '\0')
		c->groups_claim = "groups";
	if (bz_config_get(c->raw, "oidc.ca_file") != NULL &&
	    (c->oidc_ca_file = bz_config_path(c->raw, "oidc.ca_file")) ==
	    NULL) {
		r = BZ_ERR_ALLOC;
		goto fail;
	}
	c->session_ttl = BZP_DEFAULT_SESSION_TTL;
	if ((v = bz_config_get(c->raw, "session_ttl")) != NULL &&
	    (c->session_ttl = bz_parse_duration(v)) <= 0) {
		bz_errf(err, errlen, "%s: session_ttl must be a duration like "
		    "12h, got \"%s\"", path, v);
		goto fail;
	}
	c->audit_checkpoint_interval = BZP_DEFAULT_CHECKPOINT_INTERVAL;
	if ((v = bz_config_get(c->raw, "audit_checkpoint_interval")) != NULL &&
	    (c->audit_checkpoint_interval = bz_parse_duration(v)) <= 0) {
		bz_errf(err, errlen, "%s: audit_checkpoint_interval must be a "
		    "duration like 60s, got \"%s\"", path, v);
		goto fail;
	}
	if ((r = parse_limits(c, path, err, errlen)) != 0)
		goto fail;
	if (bz_config_get(c->raw, "audit_checkpoints") != NULL)
		c->audit_checkpoints = bz_config_path(c->raw,
		    "audit_checkpoints");
	else if (asprintf(&c->audit_checkpoints, "%s.checkpoints",
	    c->audit_log) < 0)
		c->audit_checkpoints = NULL;
	if (c->audit_checkpoints == NULL) {
		r = BZ_ERR_ALLOC;
		goto fail;
	}
	if (asprintf(&c->pid_file, "%s.pid", c->state_db) < 0) {
		c->pid_file = NULL;
		r = BZ_ERR_ALLOC;
		goto fail;
	}
	return BZ_OK;
 fail:
	bzp_config_free(c);
	return r;
}

void
bzp_config_free(struct bzp_config *c)
{
	free(c->listen_host);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->state_db);
	free(c->signing_key);
	free(c->policies);
	free(c->audit_log);
	free(c->audit_checkpoints);
	free(c->oidc_ca_file);
	free(c->pid_file);
	bz_config_free(c->raw);
	memset(c, 0, sizeof(*c));
}
