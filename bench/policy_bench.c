/*
 * policy_bench.c: how long loading 10,000 policy rules takes, and one
 * request's evaluation against them (budgets: load < 1 s, evaluation
 * < 50 us). Run with bench/policy_bench.sh [BUILDDIR] or `make policy-bench`.
 *
 *   policy_bench [RULES] [ITERATIONS]
 *
 * Three sets are measured: a realistic mix (literal hosts, host globs,
 * label targets, deny rules, time windows); one of globs only ("*-hN"
 * targets, "uN-*@example.com" users), found through the suffix and prefix
 * indexes; and one where every rule matches every user and target and only
 * the unix user differs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Append to a growing buffer; exits on allocation failure. */
static void
add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < *cap - *len)
			break;
		*cap *= 2;
		if ((*buf = realloc(*buf, *cap)) == NULL) {
			perror("realloc");
			exit(1);
		}
	}
	*len += (size_t)n;
}

static char *
gen_mixed(size_t n, size_t *len)
{
	size_t cap = 1 << 20, i;
	char *b = malloc(cap);

	if (b == NULL)
		exit(1);
	*len = 0;
	add(&b, len, &cap, "version: 1\npolicies:\n");
	for (i = 0; i < n; i++) {
		switch (i % 10) {
		case 0: case 1: case 2: case 3:
			/* one team, literal hosts */
			add(&b, len, &cap, "  - name: host-%zu\n"
			    "    subjects: {groups: [team-%zu], users: "
			    "[lead-%zu@example.com]}\n"
			    "    targets: {names: [host-%zu, host-%zu-b]}\n"
			    "    unix_users: [deploy, \"app-*\"]\n"
			    "    allow: [shell, sftp, {exec: [\"systemctl status *\"]}]\n"
			    "    mfa_max_age: 12h\n", i, i % 200, i % 500, i, i);
			break;
		case 4: case 5: case 6:
			/* host globs, literal users */
			add(&b, len, &cap, "  - name: glob-%zu\n"
			    "    subjects: {users: [user-%zu@example.com]}\n"
			    "    targets: {names: [\"svc-%zu-*\"], labels: "
			    "{env: \"stag*\"}}\n"
			    "    unix_users: [svc]\n"
			    "    allow: [exec, port_forward]\n"
			    "    port_forward: [\"127.0.0.1:%zu\"]\n"
			    "    hours: \"08:00-20:00\"\n"
			    "    timezone: Europe/Paris\n",
			    i, i % 1000, i, 1024 + i % 60000);
			break;
		case 7: case 8:
			/* labels, group globs */
			add(&b, len, &cap, "  - name: labels-%zu\n"
			    "    subjects: {groups: [\"dept-%zu-*\"]}\n"
			    "    targets: {labels: {cluster: c%zu, env: prod}}\n"
			    "    unix_users: [ops]\n"
			    "    allow: [shell]\n"
			    "    days: [mon-fri]\n", i, i % 50, i % 300);
			break;
		default:
			add(&b, len, &cap, "  - name: deny-%zu\n"
			    "    subjects: {users: [\"*\"]}\n"
			    "    targets: {names: [host-%zu]}\n"
			    "    unix_users: [root]\n"
			    "    deny: [shell, exec, sftp, scp, port_forward]\n",
			    i, i - 9);
			break;
		}
	}
	return b;
}

/* Every rule matches every user and target: nothing narrows the search
 * but the unix user. */
static char *
gen_universal(size_t n, size_t *len)
{
	size_t cap = 1 << 20, i;
	char *b = malloc(cap);

	if (b == NULL)
		exit(1);
	*len = 0;
	add(&b, len, &cap, "version: 1\npolicies:\n");
	for (i = 0; i < n; i++)
		add(&b, len, &cap, "  - name: any-%zu\n"
		    "    subjects: {users: [\"*\"]}\n"
		    "    targets: {names: [\"*\"]}\n"
		    "    unix_users: [\"acct%zu\"]\n"
		    "    allow: [shell]\n", i, i);
	return b;
}

/* Glob users and glob targets with no literal prefix: found by suffix. */
static char *
gen_worst(size_t n, size_t *len)
{
	size_t cap = 1 << 20, i;
	char *b = malloc(cap);

	if (b == NULL)
		exit(1);
	*len = 0;
	add(&b, len, &cap, "version: 1\npolicies:\n");
	for (i = 0; i < n; i++)
		add(&b, len, &cap, "  - name: w-%zu\n"
		    "    subjects: {users: [\"u%zu-*@example.com\"], groups: "
		    "[\"g%zu-*\"]}\n"
		    "    targets: {names: [\"*-h%zu\"]}\n"
		    "    unix_users: [deploy]\n"
		    "    allow: [shell]\n", i, i, i, i);
	return b;
}

static struct bz_policy_set *
load(const char *what, const char *text, size_t len, double *secs)
{
	struct bz_policy_set *set;
	struct bz_policy_errors errs;
	char line[1100];
	double t0 = now_s();
	int r;

	r = bz_policy_load_buffer(what, text, len, &set, &errs);
	*secs = now_s() - t0;
	if (r != 0) {
		if (errs.count > 0) {
			bz_policy_error_format(&errs.items[0], line,
			    sizeof(line));
			fprintf(stderr, "%s\n", line);
		}
		exit(1);
	}
	bz_policy_errors_free(&errs);
	return set;
}

static void
time_eval(const char *label, const struct bz_policy_set *set,
    const struct bz_policy_request *q, long iters, int expect)
{
	struct bz_policy_decision d;
	double t0, dt;
	long i;

	bz_policy_evaluate(set, q, &d);
	if (d.allowed != expect) {
		fprintf(stderr, "%s: expected %s, got %s (%s)\n", label,
		    expect ? "allow" : "deny", d.allowed ? "allow" : "deny",
		    d.reason);
		exit(1);
	}
	t0 = now_s();
	for (i = 0; i < iters; i++)
		bz_policy_evaluate(set, q, &d);
	dt = now_s() - t0;
	printf("  %-44s %8.2f us/request  (%s%s%s)\n", label,
	    dt / (double)iters * 1e6, d.allowed ? "allow" : "deny",
	    d.rule[0] ? " by " : "", d.rule);
}

int
main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000, len;
	long iters = argc > 2 ? strtol(argv[2], NULL, 10) : 20000;
	const char *groups[] = {"staff", "team-17", "dept-27-backend"};
	struct bz_label staging[] = {{"env", "staging"}};
	struct bz_label prod[] = {{"env", "prod"}, {"cluster", "c27"}};
	struct bz_policy_request q;
	struct bz_policy_set *set;
	double secs;
	char *text, path[] = "/tmp/bz-policy-bench-XXXXXX";
	FILE *f;
	int fd;

	if (n == 0 || iters <= 0) {
		fprintf(stderr, "usage: policy_bench [RULES] [ITERATIONS]\n");
		return 2;
	}
	printf("policy_bench: %zu rules, %ld evaluations per figure\n", n,
	    iters);
	text = gen_mixed(n, &len);

	/* Load through the file system too, as bzproxy does. */
	if ((fd = mkstemp(path)) < 0 || (f = fdopen(fd, "w")) == NULL ||
	    fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		perror("temp file");
		return 1;
	}
	for (fd = 0; fd < 2; fd++) {
		struct bz_policy_errors errs;
		double t0 = now_s();
		if (bz_policy_load(path, &set, &errs) != 0) {
			fprintf(stderr, "load %s failed\n", path);
			return 1;
		}
		secs = now_s() - t0;
		bz_policy_errors_free(&errs);
		bz_policy_free(set);
		printf("load (file, %.1f MiB, %s):%*s %8.1f ms\n",
		    (double)len / 1048576.0, fd ? "again" : "first", 17, "",
		    secs * 1e3);
	}
	unlink(path);
	set = load("mixed.yaml", text, len, &secs);
	printf("load (memory):%*s %8.1f ms\n", 36, "", secs * 1e3);

	printf("evaluate, mixed set:\n");
	memset(&q, 0, sizeof(q));
	q.now = 1705320000; /* Monday 12:00 UTC */
	q.user = "someone@example.com";
	q.groups = groups;
	q.ngroups = 3;
	q.unix_user = "deploy";
	q.target = "host-5001";   /* 5001 % 10 = 1: literal host rule */
	q.action = BZ_ACTION_SHELL;
	q.groups = (const char *[]){"team-1"};
	q.ngroups = 1;
	time_eval("literal host, group member (allow)", set, &q, iters, 1);
	q.action = BZ_ACTION_EXEC;
	q.command = "systemctl status nginx";
	time_eval("literal host, exec allow-list (allow)", set, &q, iters, 1);
	q.command = NULL;
	q.action = BZ_ACTION_EXEC;
	q.user = "user-4@example.com";
	q.groups = groups;
	q.ngroups = 3;
	q.target = "svc-1004-api";
	q.labels = staging;
	q.nlabels = 1;
	q.unix_user = "svc";
	time_eval("glob host, labels, time zone (allow)", set, &q, iters, 1);
	q.user = "dept@example.com";
	q.target = "node-9";
	q.labels = prod;
	q.nlabels = 2;
	q.unix_user = "ops";
	q.action = BZ_ACTION_SHELL;
	time_eval("labels only, group glob (allow)", set, &q, iters, 1);
	q.user = "lead-1@example.com";
	q.target = "host-0";
	q.labels = NULL;
	q.nlabels = 0;
	q.unix_user = "root";
	time_eval("deny rule (deny)", set, &q, iters, 0);
	q.user = "nobody@example.org";
	q.groups = NULL;
	q.ngroups = 0;
	q.target = "unknown-host";
	q.unix_user = "deploy";
	time_eval("no match (default deny)", set, &q, iters, 0);
	q.action = BZ_ACTION_CONNECT;
	time_eval("connect, no match (default deny)", set, &q, iters, 0);
	bz_policy_free(set);
	free(text);

	text = gen_worst(n, &len);
	set = load("worst.yaml", text, len, &secs);
	printf("glob-only set (\"*-hN\" targets, \"uN-*@\" users), load:%*s "
	    "%8.1f ms\n", 1, "", secs * 1e3);
	q.user = "u9999-x@example.com";
	q.groups = NULL;
	q.ngroups = 0;
	q.target = "a-h9999";
	q.unix_user = "deploy";
	q.action = BZ_ACTION_SHELL;
	time_eval("glob-only: last rule matches", set, &q, iters,
	    n >= 10000 ? 1 : 0);
	bz_policy_free(set);
	free(text);

	text = gen_universal(n, &len);
	set = load("universal.yaml", text, len, &secs);
	printf("universal set (\"*\" users and targets), load:%*s %8.1f ms\n",
	    9, "", secs * 1e3);
	q.unix_user = "acct9999";
	time_eval("universal: last rule matches", set, &q, iters,
	    n >= 10000 ? 1 : 0);
	q.unix_user = "nobody";
	time_eval("universal: no match", set, &q, iters, 0);
	bz_policy_free(set);
	free(text);
	return 0;
}
