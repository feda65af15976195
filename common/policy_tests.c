/*
 * policy_tests.c: a policy repository's table of test cases (TESTS.yaml,
 * see policies/README.md), read with the same strict YAML rules and
 * file:line:column errors as the policies themselves; and ISO 8601 times.
 */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "policy_int.h"
#include "util.h"

struct cases_load {
	struct arena *arena;
	struct bz_policy_errors *errs;
	const char *file;
	int nerrors;
	int fatal;
};

static void cerr(struct cases_load *, const struct ynode *, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
cerr(struct cases_load *C, const struct ynode *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bz_policy_add_error_va(C->errs, &C->nerrors, C->file, n->line, n->col,
	    fmt, ap);
	va_end(ap);
}

static int
two(const char *s)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

int
bz_policy_parse_time(const char *s, time_t *out)
{
	struct tm tm;
	int y, mo, d, h, mi, sec = 0, oh, om, sign;
	long long v;
	char *end;
	time_t t;

	if (s[0] == '@') {
		v = strtoll(s + 1, &end, 10);
		if (end == s + 1 || *end != '\0')
			return BZ_ERR_INVALID;
		*out = (time_t)v;
		return BZ_OK;
	}
	if (strlen(s) < 16 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != ' ') || s[13] != ':')
		return BZ_ERR_INVALID;
	if ((y = two(s)) < 0 || two(s + 2) < 0)
		return BZ_ERR_INVALID;
	y = y * 100 + two(s + 2);
	if ((mo = two(s + 5)) < 1 || mo > 12 || (d = two(s + 8)) < 1 ||
	    d > 31 || (h = two(s + 11)) < 0 || h > 23 ||
	    (mi = two(s + 14)) < 0 || mi > 59)
		return BZ_ERR_INVALID;
	s += 16;
	if (*s == ':') {
		if ((sec = two(s + 1)) < 0 || sec > 60)
			return BZ_ERR_INVALID;
		s += 3;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1 || tm.tm_mday != d)
		return BZ_ERR_INVALID;  /* e.g. February 30 */
	if (*s == '\0' || (s[0] == 'Z' && s[1] == '\0')) {
		*out = t;
		return BZ_OK;
	}
	if (*s != '+' && *s != '-')
		return BZ_ERR_INVALID;
	sign = *s == '-' ? -1 : 1;
	if ((oh = two(s + 1)) < 0 || oh > 23)
		return BZ_ERR_INVALID;
	s += 3;
	if (*s == ':')
		s++;
	if ((om = two(s)) < 0 || om > 59 || s[2] != '\0')
		return BZ_ERR_INVALID;
	*out = t - sign * (oh * 3600 + om * 60);
	return BZ_OK;
}

/* A string field; NULL (reported) unless a non-empty string. */
static const char *
str_field(struct cases_load *C, const struct ynode *k)
{
	const struct ynode *v = k->value;

	if (v->type == N_BAD)
		return NULL;
	if (v->type != N_SCALAR) {
		cerr(C, v, "\"%s\" must be a string", k->str);
		return NULL;
	}
	if (v->len == 0) {
		cerr(C, v, "\"%s\" must not be empty", k->str);
		return NULL;
	}
	return v->str;
}

static void
parse_case(struct cases_load *C, const struct ynode *n,
    struct bz_policy_case *c, time_t now)
{
	const struct ynode *k, *it, *expect = NULL;
	struct bz_label *labels;
	const char **groups;
	const char *s;
	size_t i;

	memset(c, 0, sizeof(*c));
	c->line = n->line;
	c->column = n->col;
	c->req.now = now;
	c->req.action = BZ_ACTION_CONNECT;
	c->expect_mfa_max_age = -1;
	if (n->type != N_MAP) {
		if (n->type != N_BAD)
			cerr(C, n, "each test must be a mapping");
		return;
	}
	for (k = n->first; k != NULL; k = k->next) {
		if (strcmp(k->str, "name") == 0) {
			c->name = str_field(C, k);
		} else if (strcmp(k->str, "user") == 0) {
			c->req.user = str_field(C, k);
		} else if (strcmp(k->str, "target") == 0) {
			c->req.target = str_field(C, k);
		} else if (strcmp(k->str, "unix_user") == 0) {
			c->req.unix_user = str_field(C, k);
		} else if (strcmp(k->str, "command") == 0) {
			c->req.command = str_field(C, k);
		} else if (strcmp(k->str, "forward") == 0) {
			c->req.forward = str_field(C, k);
		} else if (strcmp(k->str, "rule") == 0) {
			/* "" pins the default deny. */
			if (k->value->type == N_SCALAR)
				c->expect_rule = k->value->str;
			else if (k->value->type != N_BAD)
				cerr(C, k->value, "\"rule\" must be a string");
		} else if (strcmp(k->str, "mfa_max_age") == 0) {
			if ((s = str_field(C, k)) != NULL &&
			    (c->expect_mfa_max_age = bz_parse_duration(s)) <
			    0 && strcmp(s, "0") != 0)
				cerr(C, k->value, "invalid duration \"%s\" "
				    "(expected 0 or a number followed by s, m, "
				    "h or d)", s);
			else if (s != NULL && strcmp(s, "0") == 0)
				c->expect_mfa_max_age = 0;
		} else if (strcmp(k->str, "action") == 0) {
			if ((s = str_field(C, k)) != NULL &&
			    bz_action_parse(s, &c->req.action) != 0)
				cerr(C, k->value, "unknown action \"%s\" "
				    "(expected connect, shell, exec, sftp, scp "
				    "or port_forward)", s);
			c->has_action = s != NULL;
		} else if (strcmp(k->str, "expect") == 0) {
			expect = k;
			if ((s = str_field(C, k)) == NULL)
				continue;
			if (strcmp(s, "allow") == 0)
				c->expect_allow = 1;
			else if (strcmp(s, "deny") != 0)
				cerr(C, k->value, "\"expect\" must be allow or "
				    "deny, not \"%s\"", s);
		} else if (strcmp(k->str, "time") == 0) {
			if ((s = str_field(C, k)) != NULL &&
			    bz_policy_parse_time(s, &c->req.now) != 0)
				cerr(C, k->value, "invalid time \"%s\" "
				    "(expected YYYY-MM-DDTHH:MM[:SS] with Z or "
				    "+HH:MM, or @SECONDS)", s);
		} else if (strcmp(k->str, "groups") == 0) {
			if (k->value->type != N_SEQ) {
				if (k->value->type != N_BAD)
					cerr(C, k->value, "\"groups\" must be "
					    "a list");
				continue;
			}
			if ((groups = bz_arena_alloc(C->arena,
			    (k->value->n + 1) * sizeof(*groups))) == NULL) {
				C->fatal = BZ_ERR_ALLOC;
				return;
			}
			for (i = 0, it = k->value->first; it != NULL;
			    it = it->next) {
				if (it->type != N_SCALAR) {
					if (it->type != N_BAD)
						cerr(C, it, "groups must be "
						    "strings");
					continue;
				}
				groups[i++] = it->str;
			}
			c->req.groups = groups;
			c->req.ngroups = i;
		} else if (strcmp(k->str, "labels") == 0) {
			if (k->value->type != N_MAP) {
				if (k->value->type != N_BAD)
					cerr(C, k->value, "\"labels\" must be "
					    "a mapping");
				continue;
			}
			if ((labels = bz_arena_alloc(C->arena,
			    (k->value->n + 1) * sizeof(*labels))) == NULL) {
				C->fatal = BZ_ERR_ALLOC;
				return;
			}
			for (i = 0, it = k->value->first; it != NULL;
			    it = it->next) {
				if (it->value->type != N_SCALAR) {
					if (it->value->type != N_BAD)
						cerr(C, it->value, "label "
						    "values must be strings");
					continue;
				}
				labels[i].key = it->str;
				labels[i++].value = it->value->str;
			}
			c->req.labels = labels;
			c->req.nlabels = i;
		} else {
			cerr(C, k, "unknown key \"%s\" (expected name, user, "
			    "groups, target, labels, unix_user, action, "
			    "command, forward, time, expect, rule or mfa_max_age)", k->str);
		}
	}
	if (c->name == NULL)
		cerr(C, n, "test is missing \"name\"");
	if (c->req.user == NULL)
		cerr(C, n, "test is missing \"user\"");
	if (c->req.target == NULL)
		cerr(C, n, "test is missing \"target\"");
	if (c->req.unix_user == NULL)
		cerr(C, n, "test is missing \"unix_user\"");
	if (!c->has_action)
		cerr(C, n, "test is missing \"action\"");
	if (expect == NULL)
		cerr(C, n, "test is missing \"expect\" (allow or deny)");
}

void
bz_policy_cases_free(struct bz_policy_cases *c)
{
	if (c == NULL)
		return;
	if (c->mem != NULL) {
		bz_arena_free(c->mem);
		free(c->mem);
	}
	memset(c, 0, sizeof(*c));
}

int
bz_policy_cases_load(const char *path, struct bz_policy_cases *out,
    struct bz_policy_errors *errs)
{
	struct cases_load C;
	struct ynode *root, *k, *tests = NULL, *it;
	uint8_t *data = NULL;
	size_t len = 0, i;
	char why[512];
	const char *msg;
	time_t now = time(NULL);
	int r;

	memset(out, 0, sizeof(*out));
	memset(errs, 0, sizeof(*errs));
	memset(&C, 0, sizeof(C));
	C.errs = errs;
	C.file = path;
	if ((C.arena = calloc(1, sizeof(*C.arena))) == NULL)
		return BZ_ERR_ALLOC;
	out->mem = C.arena;
	why[0] = '\0';
	if ((r = bz_read_file(path, BZ_POLICY_FILE_MAX, &data, &len, why,
	    sizeof(why))) != 0) {
		struct ynode at = {.line = 0, .col = 0};
		msg = why;
		if (strncmp(why, path, strlen(path)) == 0 &&
		    strncmp(why + strlen(path), ": ", 2) == 0)
			msg = why + strlen(path) + 2;
		cerr(&C, &at, "%s", msg);
		bz_policy_cases_free(out);
		return r == BZ_ERR_ALLOC ? r : BZ_ERR_INVALID;
	}
	root = bz_yaml_parse(path, (const char *)data, len, "empty test file "
	    "(expected \"tests:\")", C.arena, errs, &C.nerrors, &C.fatal);
	free(data);
	if (root != NULL && root->type != N_MAP && root->type != N_BAD)
		cerr(&C, root, "a test file must be a mapping with \"tests:\"");
	else if (root != NULL && root->type == N_MAP) {
		for (k = root->first; k != NULL; k = k->next) {
			if (strcmp(k->str, "tests") == 0)
				tests = k->value;
			else if (strcmp(k->str, "version") == 0) {
				if (k->value->type != N_SCALAR ||
				    strcmp(k->value->str, "1") != 0)
					cerr(&C, k->value, "unsupported "
					    "version (expected 1)");
			} else
				cerr(&C, k, "unknown key \"%s\" (expected "
				    "tests)", k->str);
		}
		if (tests == NULL)
			cerr(&C, root, "missing \"tests\"");
		else if (tests->type != N_SEQ || tests->n == 0) {
			if (tests->type != N_BAD)
				cerr(&C, tests, "\"tests\" must be a non-empty "
				    "list");
		} else if ((out->items = bz_arena_alloc(C.arena, tests->n *
		    sizeof(*out->items))) == NULL) {
			C.fatal = BZ_ERR_ALLOC;
		} else {
			for (i = 0, it = tests->first; it != NULL &&
			    C.fatal == 0; it = it->next, i++)
				parse_case(&C, it, &out->items[i], now);
			out->count = i;
		}
	}
	bz_policy_errors_sort(errs);
	if (C.fatal != 0 || C.nerrors != 0) {
		bz_policy_cases_free(out);
		return C.fatal != 0 ? C.fatal : BZ_ERR_FORMAT;
	}
	return BZ_OK;
}
