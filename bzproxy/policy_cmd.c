/*
 * policy_cmd.c: `bzproxy policy check|explain|test`; see policy_cmd.h.
 * Everything here is presentation: loading, evaluation, explanation and
 * the test table live in common/policy*.c.
 */
#include "policy_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "policy.h"

static const char usage_text[] =
"usage: bzproxy policy check [--strict] PATH\n"
"       bzproxy policy explain PATH --user EMAIL [--group G]... --target NAME\n"
"                [--label KEY=VALUE]... --unix-user USER --action ACTION\n"
"                [--command CMD | --forward HOST:PORT] [--time ISO8601]\n"
"       bzproxy policy test PATH TESTS.yaml\n"
"\n"
"PATH is a policy file or a directory of *.yaml / *.yml files.\n"
"ACTION is connect, shell, exec, sftp, scp or port_forward. --time is\n"
"YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] or @SECONDS (default: now).\n"
"check: errors as FILE:LINE:COLUMN: MESSAGE on stderr, warnings as\n"
"  FILE:LINE:COLUMN: warning: MESSAGE; exit 0 valid, 1 errors (--strict:\n"
"  warnings too).\n"
"explain: prints allow or deny, the deciding rule and why; exit 0 allow,\n"
"  1 deny, 2 usage or a policy set with errors.\n"
"test: runs TESTS.yaml's cases (see policies/README.md), prints TAP; exit 0\n"
"  when all pass, 1 when some fail, 2 usage or load errors.\n";

static int
usage(FILE *f)
{
	fputs(usage_text, f);
	return f == stdout ? 0 : 2;
}

static void
print_errors(const struct bz_policy_errors *e, const char *kind)
{
	char line[1200];
	size_t i;

	for (i = 0; i < e->count; i++) {
		const struct bz_policy_error *it = &e->items[i];
		if (kind == NULL)
			bz_policy_error_format(it, line, sizeof(line));
		else if (it->line > 0)
			snprintf(line, sizeof(line), "%s:%d:%d: %s: %s",
			    it->file, it->line, it->column, kind, it->message);
		else
			snprintf(line, sizeof(line), "%s: %s: %s", it->file,
			    kind, it->message);
		fprintf(stderr, "%s\n", line);
	}
}

/* Load and print errors; 0 or -1. */
static int
load_set(const char *path, struct bz_policy_set **set)
{
	struct bz_policy_errors errs;
	int r;

	r = bz_policy_load(path, set, &errs);
	print_errors(&errs, NULL);
	if (r != 0 && errs.count == 0)
		fprintf(stderr, "%s: %s\n", path, bz_err_str(r));
	bz_policy_errors_free(&errs);
	return r == 0 ? 0 : -1;
}

static int
is_help(const char *s)
{
	return strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0;
}

static int
cmd_check(int argc, char **argv)
{
	struct bz_policy_set *set;
	struct bz_policy_errors warns;
	const char *path = NULL;
	int i, strict = 0, rc;

	for (i = 1; i < argc; i++) {
		if (is_help(argv[i]))
			return usage(stdout);
		if (strcmp(argv[i], "--strict") == 0)
			strict = 1;
		else if (argv[i][0] == '-' || path != NULL)
			return usage(stderr);
		else
			path = argv[i];
	}
	if (path == NULL)
		return usage(stderr);
	if (load_set(path, &set) != 0)
		return 1;
	if (bz_policy_lint(set, &warns) != 0) {
		fprintf(stderr, "%s: out of memory\n", path);
		bz_policy_free(set);
		return 1;
	}
	print_errors(&warns, "warning");
	rc = strict && warns.count > 0 ? 1 : 0;
	fprintf(stderr, "%s: %zu %s, %zu warning%s\n", path,
	    bz_policy_rule_count(set), bz_policy_rule_count(set) == 1 ?
	    "policy" : "policies", warns.count, warns.count == 1 ? "" : "s");
	bz_policy_errors_free(&warns);
	bz_policy_free(set);
	return rc;
}

/* "--name value" or "--name=value": the value, advancing *i; NULL if
 * argv[*i] is not this option. *missing is set when the value is absent. */
static const char *
opt(int argc, char **argv, int *i, const char *name, int *missing)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

static int
cmd_explain(int argc, char **argv)
{
	struct bz_policy_request q;
	struct bz_policy_decision d;
	struct bz_policy_set *set;
	struct bz_label *labels = NULL;
	const char **groups = NULL, *path = NULL, *v, *action = NULL,
	    *when = NULL;
	char why[2048], **keys = NULL;
	const char *eq;
	size_t k;
	int i, missing = 0, rc = 2;

	memset(&q, 0, sizeof(q));
	if ((labels = calloc((size_t)argc, sizeof(*labels))) == NULL ||
	    (keys = calloc((size_t)argc, sizeof(*keys))) == NULL ||
	    (groups = calloc((size_t)argc, sizeof(*groups))) == NULL) {
		fprintf(stderr, "bzproxy: out of memory\n");
		goto out;
	}
	q.labels = labels;
	q.groups = groups;
	for (i = 1; i < argc; i++) {
		if (is_help(argv[i])) {
			rc = usage(stdout);
			goto out;
		}
		if ((v = opt(argc, argv, &i, "--user", &missing)) != NULL)
			q.user = v;
		else if ((v = opt(argc, argv, &i, "--group", &missing)) != NULL)
			groups[q.ngroups++] = v;
		else if ((v = opt(argc, argv, &i, "--target", &missing)) !=
		    NULL)
			q.target = v;
		else if ((v = opt(argc, argv, &i, "--label", &missing)) !=
		    NULL) {
			if ((eq = strchr(v, '=')) == NULL || eq == v) {
				fprintf(stderr, "bzproxy: --label wants "
				    "KEY=VALUE, not \"%s\"\n", v);
				goto out;
			}
			if ((keys[q.nlabels] = strndup(v,
			    (size_t)(eq - v))) == NULL) {
				fprintf(stderr, "bzproxy: out of memory\n");
				goto out;
			}
			labels[q.nlabels].key = keys[q.nlabels];
			labels[q.nlabels++].value = eq + 1;
		} else if ((v = opt(argc, argv, &i, "--unix-user", &missing)) !=
		    NULL)
			q.unix_user = v;
		else if ((v = opt(argc, argv, &i, "--action", &missing)) !=
		    NULL)
			action = v;
		else if ((v = opt(argc, argv, &i, "--command", &missing)) !=
		    NULL)
			q.command = v;
		else if ((v = opt(argc, argv, &i, "--forward", &missing)) !=
		    NULL)
			q.forward = v;
		else if ((v = opt(argc, argv, &i, "--time", &missing)) != NULL)
			when = v;
		else if (missing) {
			break;
		} else if (argv[i][0] == '-' || path != NULL) {
			fprintf(stderr, "bzproxy: policy explain: unexpected "
			    "\"%s\"\n", argv[i]);
			usage(stderr);
			goto out;
		} else
			path = argv[i];
		if (missing)
			break;
	}
	if (missing) {
		fprintf(stderr, "bzproxy: policy explain: %s needs a value\n",
		    argv[i]);
		goto out;
	}
	if (path == NULL || q.user == NULL || q.target == NULL ||
	    q.unix_user == NULL || action == NULL) {
		fprintf(stderr, "bzproxy: policy explain needs PATH, --user, "
		    "--target, --unix-user and --action\n");
		usage(stderr);
		goto out;
	}
	if (bz_action_parse(action, &q.action) != 0) {
		fprintf(stderr, "bzproxy: unknown action \"%s\" (expected "
		    "connect, shell, exec, sftp, scp or port_forward)\n",
		    action);
		goto out;
	}
	q.now = time(NULL);
	if (when != NULL && bz_policy_parse_time(when, &q.now) != 0) {
		fprintf(stderr, "bzproxy: invalid --time \"%s\" (expected "
		    "YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] or @SECONDS)\n", when);
		goto out;
	}
	if (load_set(path, &set) != 0)
		goto out;
	bz_policy_explain(set, &q, &d, why, sizeof(why));
	printf("%s\n", d.allowed ? "allow" : "deny");
	printf("rule: %s\n", d.rule[0] ? d.rule : "(none: default deny)");
	if (d.allowed && d.mfa_max_age > 0)
		printf("mfa_max_age: %lds\n", d.mfa_max_age);
	printf("why: %s\n", why);
	bz_policy_free(set);
	rc = d.allowed ? 0 : 1;
out:
	for (k = 0; keys != NULL && k < q.nlabels; k++)
		free(keys[k]);
	free(keys);
	free(labels);
	free(groups);
	return rc;
}

/* A test name for a TAP line: one line, no '#'. */
static void
tap_name(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *in != '\0' && o + 2 < outlen; in++) {
		unsigned char c = (unsigned char)*in;
		if (c == '#')
			out[o++] = '\\';
		out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	out[o] = '\0';
}

static int
cmd_test(int argc, char **argv)
{
	struct bz_policy_cases cases;
	struct bz_policy_errors errs;
	struct bz_policy_decision d;
	struct bz_policy_set *set;
	char why[2048], name[512], got[200];
	size_t i, pass = 0, fail = 0;
	int r;

	if (argc >= 2 && is_help(argv[1]))
		return usage(stdout);
	if (argc != 3)
		return usage(stderr);
	if (load_set(argv[1], &set) != 0)
		return 2;
	r = bz_policy_cases_load(argv[2], &cases, &errs);
	print_errors(&errs, NULL);
	bz_policy_errors_free(&errs);
	if (r != 0) {
		bz_policy_free(set);
		return 2;
	}
	printf("1..%zu\n", cases.count);
	for (i = 0; i < cases.count; i++) {
		const struct bz_policy_case *c = &cases.items[i];
		int ok;
		bz_policy_explain(set, &c->req, &d, why, sizeof(why));
		ok = d.allowed == c->expect_allow && (c->expect_rule == NULL ||
		    strcmp(c->expect_rule, d.rule) == 0) &&
		    (c->expect_mfa_max_age < 0 ||
		    c->expect_mfa_max_age == d.mfa_max_age);
		tap_name(c->name, name, sizeof(name));
		if (d.rule[0] != '\0')
			snprintf(got, sizeof(got), "rule \"%s\"", d.rule);
		else
			snprintf(got, sizeof(got), "default deny");
		if (ok) {
			printf("ok %zu - %s\n", i + 1, name);
			pass++;
			continue;
		}
		fail++;
		if (d.allowed != c->expect_allow)
			printf("not ok %zu - %s # expected %s, got %s (%s)\n",
			    i + 1, name, c->expect_allow ? "allow" : "deny",
			    d.allowed ? "allow" : "deny", got);
		else if (c->expect_rule != NULL &&
		    strcmp(c->expect_rule, d.rule) != 0)
			printf("not ok %zu - %s # expected %s%s%s, got %s\n",
			    i + 1, name, c->expect_rule[0] ? "rule \"" :
			    "default deny", c->expect_rule,
			    c->expect_rule[0] ? "\"" : "", got);
		else
			printf("not ok %zu - %s # expected mfa_max_age %lds, "
			    "got %lds (%s)\n", i + 1, name,
			    c->expect_mfa_max_age, d.mfa_max_age, got);
		printf("#   %s:%d:%d: %s\n", argv[2], c->line, c->column, why);
	}
	printf("%zu passed, %zu failed\n", pass, fail);
	bz_policy_cases_free(&cases);
	bz_policy_free(set);
	return fail == 0 ? 0 : 1;
}

int
bz_policy_cmd(int argc, char **argv)
{
	if (argc < 1 || argv[0] == NULL)
		return usage(stderr);
	if (strcmp(argv[0], "check") == 0)
		return cmd_check(argc, argv);
	if (strcmp(argv[0], "explain") == 0)
		return cmd_explain(argc, argv);
	if (strcmp(argv[0], "test") == 0)
		return cmd_test(argc, argv);
	if (is_help(argv[0]))
		return usage(stdout);
	fprintf(stderr, "bzproxy: unknown policy command \"%s\"\n", argv[0]);
	return usage(stderr);
}
