/*
 * policy_int.h: the compiled form of a policy set, shared by the loader
 * (policy.c), the evaluator (policy_eval.c) and the linter (policy_lint.c).
 * Nothing outside those three files includes it.
 */
#ifndef BZ_POLICY_INT_H
#define BZ_POLICY_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "policy.h"
#include "tz.h"

/* Bit for an action in rule.actions. */
#define ACT_BIT(a) (1u << (unsigned)(a))
#define ACT_ALL (ACT_BIT(BZ_ACTION_SHELL) | ACT_BIT(BZ_ACTION_EXEC) | \
	ACT_BIT(BZ_ACTION_SCP) | ACT_BIT(BZ_ACTION_SFTP) | \
	ACT_BIT(BZ_ACTION_PORT_FORWARD))

/* A name pattern: literal, or an fnmatch glob. */
struct pat {
	const char *s;
	size_t len;
	size_t prefix;   /* literal bytes before the first wildcard */
	size_t suffix;   /* literal bytes after the last one */
	int glob;
	int star;        /* the glob is prefix "*" suffix: no fnmatch needed */
	int line, col;   /* where it was written */
};

struct patlist {
	struct pat *v;
	size_t n;
};

struct label_pat {
	const char *key;
	struct pat value;
};

struct fwd_pat {
	const char *text;     /* as written */
	struct pat host;
	struct pat port;      /* "*" or a number */
};

struct rule {
	const char *name;
	const char *file;
	int line, column;     /* of the rule's mapping */
	const char *description;
	int deny;
	struct patlist users, groups;
	struct patlist names;
	struct label_pat *labels;
	size_t nlabels;
	struct patlist unix_users;
	unsigned actions;     /* ACT_BIT()s */
	struct patlist commands;  /* exec limited to these when n > 0 */
	struct fwd_pat *forwards;
	size_t nforwards;
	long mfa_max_age;
	int has_hours;
	int start_min, end_min;   /* [start, end); wraps midnight if start > end */
	const char *hours;        /* as written, for messages */
	unsigned days;            /* bit tm_wday (0 = Sunday); 0 = every day */
	const struct bz_tz *tz;   /* NULL: UTC */
	const char *tzname;       /* "UTC" when none */
};

struct chunk;
struct arena {
	struct chunk *head;
};

/* String -> list of rule indexes, ascending. */
struct hent {
	const char *key;
	size_t klen;
	size_t *ids;
	size_t n, cap;
};

struct hmap {
	struct hent *tab;
	size_t cap, count;
	int fold;   /* ASCII case-insensitive keys */
	int rev;    /* keys hash from their last byte (suffix maps) */
};

/* One dimension's patterns (target names, users or groups): literal ones
 * by value, globs by their literal prefix or suffix, whichever is longer;
 * lens[n] is set when some prefix (suffix) of n bytes is filed. */
struct pindex {
	struct hmap exact, prefix, suffix;
	unsigned char *plens, *slens;
	size_t nplens, nslens;
};

struct tzent {
	const char *name;
	struct bz_tz *tz;
};

struct bz_policy_set {
	struct arena arena;
	struct rule *rules;
	size_t nrules, caprules;
	struct tzent *tzs;
	size_t ntzs;
	struct hmap names;    /* rule name -> index */
	/*
	 * Evaluation index. A rule is filed once, by the first of these that
	 * applies: every target name literal -> tidx; every user and group
	 * pattern literal -> uidx and gidx; a label with a literal value ->
	 * "name\0value" in lmap; every target name anchored (literal, or a
	 * glob with a literal prefix or suffix) -> tidx; every user and group
	 * pattern anchored -> uidx and gidx; every unix_users pattern
	 * anchored -> xidx; else generic. A request looks up its target,
	 * user, groups, labels and unix user, and scans generic.
	 */
	struct pindex tidx, uidx, gidx, xidx;
	struct hmap lmap;
	size_t *generic;
	size_t ngeneric;
};

/* YAML parse tree. Mapping children are the keys; each key's value hangs
 * off key->value. */
enum ytype { N_SCALAR, N_SEQ, N_MAP, N_BAD };

struct ynode {
	enum ytype type;       /* N_BAD: an error was already reported */
	int line, col;         /* 1-based */
	const char *str;       /* N_SCALAR: NUL-terminated */
	size_t len;
	struct ynode *first, *last, *next;
	struct ynode *value;   /* for mapping keys */
	size_t n;              /* children */
};

void *bz_arena_alloc(struct arena *a, size_t n);
char *bz_arena_strndup(struct arena *a, const char *s, size_t n);
void bz_arena_free(struct arena *a);

/*
 * Parse one YAML document (anchors, aliases, tags, duplicate keys and
 * more than one document refused) into a tree allocated in arena; an
 * empty stream is the error empty_msg at 1:1. Errors go
 * to errs under file and are counted in *nerrors; *fatal gets BZ_ERR_ALLOC
 * on allocation failure. NULL when there is no usable tree.
 */
struct ynode *bz_yaml_parse(const char *file, const char *data, size_t len,
    const char *empty_msg, struct arena *arena,
    struct bz_policy_errors *errs, int *nerrors, int *fatal);

/* Append one error (at most BZ_POLICY_ERRORS_MAX kept); counts it. */
void bz_policy_add_error_va(struct bz_policy_errors *errs, int *nerrors,
    const char *file, int line, int col, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

/* Does rule i match req, checked directly (no index)? For tests: 1, 0,
 * or -1 for an invalid request. */
int bz_policy_rule_matches(const struct bz_policy_set *set, size_t i,
    const struct bz_policy_request *req);

/* Order each file's errors by position (files stay in load order). */
void bz_policy_errors_sort(struct bz_policy_errors *e);

/* FNV-1a, step by step so that prefixes hash incrementally. */
#define BZ_HASH_INIT 1469598103934665603ULL
static inline uint64_t
bz_hash_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * 1099511628211ULL;
}

const struct hent *bz_hmap_find(const struct hmap *m, const char *key,
    size_t klen);
/* Find with the key's hash already known (m must not fold case). */
const struct hent *bz_hmap_find_hashed(const struct hmap *m, const char *key,
    size_t klen, uint64_t h);

/* fnmatch flags for user patterns (e-mail addresses ignore case). */
int bz_pat_match(const struct pat *p, const char *s, size_t slen, int fold);

#endif
