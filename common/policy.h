/*
 * policy.h: the YAML access policy (policies/README.md documents the
 * language): loading a file or directory as one set, with every error at
 * file:line:column, and evaluating one request against the set.
 *
 * Default deny. A matching deny rule wins over any allow rule.
 */
#ifndef BZ_POLICY_H
#define BZ_POLICY_H

#include <stddef.h>
#include <time.h>

struct bz_policy_set;

#define BZ_POLICY_FILE_MAX (16u * 1024 * 1024) /* largest policy file */
#define BZ_POLICY_FILES_MAX 4096     /* files in one directory */
#define BZ_POLICY_RULES_MAX 1000000  /* rules in one set */
#define BZ_POLICY_DEPTH_MAX 16       /* YAML nesting */
#define BZ_POLICY_MAP_MAX 1024       /* keys in one YAML mapping */
#define BZ_POLICY_ERRORS_MAX 1000    /* errors kept; then "too many" */

struct bz_policy_error {
	char file[512];
	int line;     /* 1-based; 0 when not tied to a position */
	int column;   /* 1-based */
	char message[256];
};

struct bz_policy_errors {
	struct bz_policy_error *items;
	size_t count;
};
void bz_policy_errors_free(struct bz_policy_errors *e);
/* "file:line:column: message", or "file: message" when line is 0;
 * returns what snprintf returns. */
int bz_policy_error_format(const struct bz_policy_error *e, char *buf,
    size_t len);

/*
 * Load a policy file, or every *.yaml / *.yml file in a directory, as one
 * set. All or nothing: on any error returns a negative BZ_ERR_*, *out is
 * NULL and errs lists every error found.
 */
int bz_policy_load(const char *path, struct bz_policy_set **out,
    struct bz_policy_errors *errs);
/* The same for one file's bytes (name is used in errors); data need not
 * be NUL-terminated. */
int bz_policy_load_buffer(const char *name, const char *data, size_t len,
    struct bz_policy_set **out, struct bz_policy_errors *errs);
void bz_policy_free(struct bz_policy_set *set);
size_t bz_policy_rule_count(const struct bz_policy_set *set);

struct bz_label {
	const char *key;
	const char *value;
};

/* Actions a request can ask for. BZ_ACTION_CONNECT asks whether any action
 * at all is allowed (used when a session opens). */
enum bz_action {
	BZ_ACTION_CONNECT = 0,
	BZ_ACTION_SHELL,
	BZ_ACTION_EXEC,
	BZ_ACTION_SCP,
	BZ_ACTION_SFTP,
	BZ_ACTION_PORT_FORWARD,
};
const char *bz_action_name(enum bz_action a);
/* "connect", "shell", "exec", "scp", "sftp", "port_forward" -> *a; 0 or
 * BZ_ERR_INVALID. */
int bz_action_parse(const char *name, enum bz_action *a);

struct bz_policy_request {
	const char *user;                /* email from the ID token */
	const char *const *groups;       /* from the ID token's groups claim */
	size_t ngroups;
	const char *target;              /* agent name */
	const struct bz_label *labels;   /* agent labels */
	size_t nlabels;
	const char *unix_user;
	enum bz_action action;
	const char *command;             /* for EXEC; NULL otherwise */
	const char *forward;             /* "host:port" for PORT_FORWARD */
	time_t now;                      /* for hours/days windows */
};

struct bz_policy_decision {
	int allowed;
	char rule[128];      /* name of the deciding rule; "" for default deny */
	char reason[256];    /* for a deny: one line the user can read */
	long mfa_max_age;    /* seconds from the deciding allow rule; 0 = none */
};

/* Evaluate; always fills d (fail closed: any internal error is a deny). */
void bz_policy_evaluate(const struct bz_policy_set *set,
    const struct bz_policy_request *req, struct bz_policy_decision *d);

/*
 * The unix users named literally (no glob) in the allow rules whose
 * subjects match user or one of groups, whatever the target or time: fn
 * gets each, possibly more than once. A hint for clients (the default
 * User of `bzsshd ssh-config`), never a decision.
 */
void bz_policy_unix_users(const struct bz_policy_set *set, const char *user,
    const char *const *groups, size_t ngroups,
    void (*fn)(const char *unix_user, void *arg), void *arg);

/*
 * The allow rules whose subjects, targets and times match req (its
 * unix_user, action, command and forward are not looked at): fn gets each
 * unix_users pattern of them (globs too); returns how many rules. A hint
 * for `bzsshd targets`, never a decision: deny rules are not applied.
 */
size_t bz_policy_target_users(const struct bz_policy_set *set,
    const struct bz_policy_request *req,
    void (*fn)(const char *unix_user, void *arg), void *arg);

/*
 * Evaluate as bz_policy_evaluate and say why in one line: the deciding
 * rule with its file:line:column, or for a default deny the closest allow
 * rule (the one matching most of subject, target, unix user, action and
 * time) and what of the request it does not match.
 */
void bz_policy_explain(const struct bz_policy_set *set,
    const struct bz_policy_request *req, struct bz_policy_decision *d,
    char *why, size_t whylen);

/*
 * Warnings about a loaded set, in the same form as load errors: rules that
 * can never match (an allow rule wholly covered by a deny rule, a glob in
 * unix_users that would need to match root), duplicate patterns. Returns 0
 * or BZ_ERR_ALLOC; warnings->count is the number found.
 */
int bz_policy_lint(const struct bz_policy_set *set,
    struct bz_policy_errors *warnings);

/*
 * A policy repository's test table (TESTS.yaml: "tests:" then a list of
 * {name, user, groups, target, labels, unix_user, action, command, forward,
 * time, expect, rule, mfa_max_age}); see policies/README.md.
 */
struct bz_policy_case {
	const char *name;
	int line, column;            /* of the case in the file */
	struct bz_policy_request req;
	int has_action;
	int expect_allow;
	const char *expect_rule;     /* NULL: not checked; "": default deny */
	long expect_mfa_max_age;     /* -1: not checked */
};

struct bz_policy_cases {
	struct bz_policy_case *items;
	size_t count;
	void *mem;                   /* owns every string */
};

/* Load a test table; all or nothing, errors as for bz_policy_load. */
int bz_policy_cases_load(const char *path, struct bz_policy_cases *out,
    struct bz_policy_errors *errs);
void bz_policy_cases_free(struct bz_policy_cases *c);

/*
 * "YYYY-MM-DDTHH:MM[:SS]" with "Z", "+HH:MM" or "-HH:MM" (UTC when none;
 * a space may replace the T), or "@SECONDS" since the epoch. 0 or
 * BZ_ERR_INVALID.
 */
int bz_policy_parse_time(const char *s, time_t *out);

#endif
