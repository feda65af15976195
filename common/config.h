/*
 * config.h: the YAML configuration files of bzproxy and bzagent.
 *
 * A config file is a YAML mapping whose values are scalars or nested
 * mappings of scalars. Nested keys are addressed with dots ("oidc.issuer").
 * Loading rejects any key not in the caller's list, duplicates, sequences,
 * aliases, and non-scalar values, naming file:line:column.
 */
#ifndef BZ_CONFIG_H
#define BZ_CONFIG_H

#include <stddef.h>

struct bz_config;

/*
 * Load path; known_keys is a NULL-terminated list of dotted keys allowed.
 * Returns 0 or a negative BZ_ERR_* with "file:line:column: reason" in err.
 */
int bz_config_load(const char *path, const char *const *known_keys,
    struct bz_config **out, char *err, size_t errlen);
void bz_config_free(struct bz_config *cfg);

/* Value of a key, or NULL when absent. */
const char *bz_config_get(const struct bz_config *cfg, const char *key);
/*
 * Value of a key that must be present; else NULL with
 * "file: missing required setting KEY" in err.
 */
const char *bz_config_require(const struct bz_config *cfg, const char *key,
    char *err, size_t errlen);
/* Resolve a path setting relative to the config file's directory. malloc'ed. */
char *bz_config_path(const struct bz_config *cfg, const char *key);

#endif
