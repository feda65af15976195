/*
 * test_policy.c: the YAML policy language: loading (every construct and
 * every error message, with file:line:column), evaluation (default deny,
 * deny wins, root only literal, labels, globs, exec command lists, port
 * forwarding, hours/days/time zones, CONNECT), multi-file sets, lint
 * warnings, explain text, the zone reader, and policies/examples.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "policy.h"
#include "policy_cmd.h"
#include "policy_int.h"
#include "tz.h"

static char tmpdir[256];

static int
setup(void **state)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/bz-policy-XXXXXX",
	    t ? t : "/tmp");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
write_file(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Load text as "t.yaml"; fails the test on any error. */
static struct bz_policy_set *
load_ok(const char *text)
{
	struct bz_policy_set *set = NULL;
	struct bz_policy_errors errs;
	char line[1024];
	size_t i;
	int r;

	r = bz_policy_load_buffer("t.yaml", text, strlen(text), &set, &errs);
	for (i = 0; i < errs.count; i++) {
		bz_policy_error_format(&errs.items[i], line, sizeof(line));
		fprintf(stderr, "unexpected: %s\n", line);
	}
	assert_int_equal(r, 0);
	assert_int_equal(errs.count, 0);
	assert_non_null(set);
	bz_policy_errors_free(&errs);
	return set;
}

/* Load text and expect exactly the errors want[] (NULL-terminated), each
 * "line:column: message" after "t.yaml:". */
static void
expect_errors(const char *text, const char *const *want)
{
	struct bz_policy_set *set = (struct bz_policy_set *)1;
	struct bz_policy_errors errs;
	char line[1024], full[1024];
	size_t i, n = 0;

	while (want[n] != NULL)
		n++;
	assert_int_equal(bz_policy_load_buffer("t.yaml", text, strlen(text),
	    &set, &errs), BZ_ERR_FORMAT);
	assert_null(set);
	for (i = 0; i < errs.count; i++) {
		bz_policy_error_format(&errs.items[i], line, sizeof(line));
		if (i < n) {
			snprintf(full, sizeof(full), "t.yaml:%s", want[i]);
			if (strcmp(line, full) != 0)
				fprintf(stderr, "want %s\n got %s\n", full,
				    line);
			assert_string_equal(line, full);
		} else {
			fprintf(stderr, "extra error: %s\n", line);
		}
	}
	assert_int_equal(errs.count, n);
	bz_policy_errors_free(&errs);
}

static void
expect_error(const char *text, const char *want)
{
	const char *const w[] = {want, NULL};

	expect_errors(text, w);
}

/* A request with sensible defaults; tests change fields. */
static struct bz_policy_request
req(const char *user, const char *target, const char *unix_user,
    enum bz_action a)
{
	struct bz_policy_request q;

	memset(&q, 0, sizeof(q));
	q.user = user;
	q.target = target;
	q.unix_user = unix_user;
	q.action = a;
	q.now = 1705320000; /* Mon 2024-01-15 12:00 UTC */
	return q;
}

static int
allowed(const struct bz_policy_set *set, const struct bz_policy_request *q,
    const char *rule)
{
	struct bz_policy_decision d;

	bz_policy_evaluate(set, q, &d);
	if (rule != NULL)
		assert_string_equal(d.rule, rule);
	if (d.allowed)
		assert_string_equal(d.reason, "");
	else
		assert_true(d.reason[0] != '\0');
	return d.allowed;
}

#define HDR "version: 1\npolicies:\n"
#define ONE_RULE "policies: [{name: r, subjects: {users: [a]}, targets: " \
	"{names: [b]}, unix_users: [c], allow: [shell]}]\n"

static const char design_example[] = HDR
    "  - name: ops-shell\n"
    "    subjects: {users: [alice@example.com], groups: [ops]}\n"
    "    targets: {names: [\"web-*\"], labels: {env: prod}}\n"
    "    unix_users: [deploy]\n"
    "    allow: [shell, exec, sftp, scp, port_forward]\n"
    "    port_forward: [\"127.0.0.1:5432\"]\n"
    "    mfa_max_age: 12h\n"
    "    description: \"ops get shells on the web tier\"\n";

static void
test_design_example(void **state)
{
	struct bz_policy_set *set = load_ok(design_example);
	struct bz_label prod[] = {{"env", "prod"}, {"tier", "web"}};
	struct bz_policy_request q = req("alice@example.com", "web-1",
	    "deploy", BZ_ACTION_SHELL);
	struct bz_policy_decision d;

	assert_int_equal(bz_policy_rule_count(set), 1);
	q.labels = prod;
	q.nlabels = 2;
	bz_policy_evaluate(set, &q, &d);
	assert_true(d.allowed);
	assert_string_equal(d.rule, "ops-shell");
	assert_int_equal(d.mfa_max_age, 12 * 3600);
	/* Every allowed action. */
	q.action = BZ_ACTION_SFTP;
	assert_true(allowed(set, &q, "ops-shell"));
	q.action = BZ_ACTION_SCP;
	assert_true(allowed(set, &q, "ops-shell"));
	q.action = BZ_ACTION_EXEC;
	q.command = "uptime";
	assert_true(allowed(set, &q, "ops-shell"));
	q.action = BZ_ACTION_PORT_FORWARD;
	q.forward = "127.0.0.1:5432";
	assert_true(allowed(set, &q, "ops-shell"));
	q.forward = "127.0.0.1:5433";
	assert_false(allowed(set, &q, ""));
	q.action = BZ_ACTION_CONNECT;
	assert_true(allowed(set, &q, "ops-shell"));
	bz_policy_free(set);
}

static void
test_default_deny(void **state)
{
	struct bz_policy_set *set = load_ok(design_example);
	struct bz_label prod[] = {{"env", "prod"}};
	struct bz_policy_request q = req("bob@example.com", "web-1", "deploy",
	    BZ_ACTION_EXEC);
	struct bz_policy_decision d;

	q.labels = prod;
	q.nlabels = 1;
	q.command = "ls";
	bz_policy_evaluate(set, &q, &d);
	assert_false(d.allowed);
	assert_string_equal(d.rule, "");
	assert_string_equal(d.reason, "no policy allows bob@example.com to "
	    "exec as deploy on web-1");
	assert_int_equal(d.mfa_max_age, 0);
	/* Invalid requests are denied, never crash. */
	q.user = NULL;
	bz_policy_evaluate(set, &q, &d);
	assert_false(d.allowed);
	assert_string_equal(d.reason, "invalid request");
	bz_policy_evaluate(NULL, &q, &d);
	assert_false(d.allowed);
	q.user = "bob@example.com";
	q.action = (enum bz_action)42;
	bz_policy_evaluate(set, &q, &d);
	assert_false(d.allowed);
	bz_policy_free(set);
}

static void
test_deny_wins(void **state)
{
	struct bz_policy_set *set = load_ok(HDR
	    "  - name: everyone-anywhere\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [root, \"*\"]\n"
	    "    allow: [shell, exec]\n"
	    "    mfa_max_age: 1h\n"
	    "  - name: no-root-on-db\n"
	    "    subjects: {groups: [\"*\"], users: [\"*\"]}\n"
	    "    targets: {names: [\"db-*\"]}\n"
	    "    unix_users: [root]\n"
	    "    deny: [shell, exec, sftp, scp, port_forward]\n"
	    "  - name: no-rm\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [\"*\"]\n"
	    "    deny: [{exec: [\"rm *\"]}]\n");
	struct bz_policy_request q = req("a@x", "db-1", "root",
	    BZ_ACTION_SHELL);
	struct bz_policy_decision d;

	bz_policy_evaluate(set, &q, &d);
	assert_false(d.allowed);
	assert_string_equal(d.rule, "no-root-on-db");
	assert_string_equal(d.reason, "denied by rule \"no-root-on-db\"");
	/* The deny comes later in the file and still wins. */
	q.target = "web-1";
	assert_true(allowed(set, &q, "everyone-anywhere"));
	/* A deny limited to commands denies only those. */
	q.unix_user = "deploy";
	q.action = BZ_ACTION_EXEC;
	q.command = "rm -rf /";
	assert_false(allowed(set, &q, "no-rm"));
	q.command = "ls";
	assert_true(allowed(set, &q, "everyone-anywhere"));
	/* A deny limited to commands denies an exec with no command. */
	q.command = NULL;
	assert_false(allowed(set, &q, "no-rm"));
	/* CONNECT: only a deny of all five actions overrides. */
	q.action = BZ_ACTION_CONNECT;
	assert_true(allowed(set, &q, "everyone-anywhere"));
	q.target = "db-1";
	q.unix_user = "root";
	assert_false(allowed(set, &q, "no-root-on-db"));
	q.unix_user = "deploy";
	assert_true(allowed(set, &q, "everyone-anywhere"));
	bz_policy_free(set);
}

static void
test_root_only_literal(void **state)
{
	struct bz_policy_set *set = load_ok(HDR
	    "  - name: any-user\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [\"*\", \"r*\", \"[r]oot\", \"roo?\"]\n"
	    "    allow: [shell]\n"
	    "  - name: root-on-lab\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [lab, lab2]}\n"
	    "    unix_users: [root]\n"
	    "    allow: [shell]\n"
	    "  - name: freeze-lab2\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [lab2]}\n"
	    "    unix_users: [\"*\"]\n"
	    "    deny: [shell]\n");
	struct bz_policy_request q = req("a@x", "web", "root",
	    BZ_ACTION_SHELL);

	assert_false(allowed(set, &q, ""));
	q.unix_user = "rooty";
	assert_true(allowed(set, &q, "any-user"));
	q.unix_user = "root";
	q.target = "lab";
	assert_true(allowed(set, &q, "root-on-lab"));
	/* In a deny rule a glob does cover root. */
	q.target = "lab2";
	assert_false(allowed(set, &q, "freeze-lab2"));
	bz_policy_free(set);
}

static void
test_labels(void **state)
{
	struct bz_policy_set *set = load_ok(HDR
	    "  - name: prod-web\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {labels: {env: prod, tier: \"web*\"}}\n"
	    "    unix_users: [deploy]\n"
	    "    allow: [shell]\n"
	    "  - name: named-and-labelled\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [db1], labels: {env: staging}}\n"
	    "    unix_users: [deploy]\n"
	    "    allow: [exec]\n");
	struct bz_label l1[] = {{"tier", "web-front"}, {"env", "prod"}};
	struct bz_label l2[] = {{"env", "prod"}};
	struct bz_label l3[] = {{"env", "prod"}, {"tier", "db"}};
	struct bz_label l4[] = {{"env", "staging"}};
	struct bz_policy_request q = req("a@x", "anything", "deploy",
	    BZ_ACTION_SHELL);

	q.labels = l1;
	q.nlabels = 2;
	assert_true(allowed(set, &q, "prod-web"));
	q.labels = l2;               /* tier missing */
	q.nlabels = 1;
	assert_false(allowed(set, &q, ""));
	q.labels = l3;               /* tier does not match */
	q.nlabels = 2;
	assert_false(allowed(set, &q, ""));
	q.nlabels = 0;
	assert_false(allowed(set, &q, ""));
	/* names and labels: both must match. */
	q.action = BZ_ACTION_EXEC;
	q.command = "x";
	q.target = "db1";
	q.labels = l4;
	q.nlabels = 1;
	assert_true(allowed(set, &q, "named-and-labelled"));
	q.target = "db2";
	assert_false(allowed(set, &q, ""));
	q.target = "db1";
	q.labels = l2;
	assert_false(allowed(set, &q, ""));
	bz_policy_free(set);
}

static void
test_globs(void **state)
{
	struct bz_policy_set *set = load_ok(HDR
	    "  - name: example-domain\n"
	    "    subjects: {users: [\"*@example.com\"]}\n"
	    "    targets: {names: [\"web-[0-9]\", \"app-?\", \"cache\"]}\n"
	    "    unix_users: [\"app-*\"]\n"
	    "    allow: [sftp]\n"
	    "  - name: by-group\n"
	    "    subjects: {groups: [\"team-*\", admins]}\n"
	    "    targets: {names: [\"[!x]*\"]}\n"
	    "    unix_users: [ops]\n"
	    "    allow: [scp]\n");
	const char *groups[] = {"eng", "team-red"};
	const char *groups2[] = {"admins"};
	struct bz_policy_request q = req("Carol@Example.COM", "web-7",
	    "app-blue", BZ_ACTION_SFTP);

	/* E-mail addresses compare without case. */
	assert_true(allowed(set, &q, "example-domain"));
	q.target = "app-1";
	assert_true(allowed(set, &q, "example-domain"));
	q.target = "cache";
	assert_true(allowed(set, &q, "example-domain"));
	q.target = "web-10";
	assert_false(allowed(set, &q, ""));
	q.target = "web-1";
	q.user = "carol@example.org";
	assert_false(allowed(set, &q, ""));
	q.user = "carol@evil.com@example.com.evil";
	assert_false(allowed(set, &q, ""));
	/* Groups: any group matching any pattern. */
	q.user = "dave@else.org";
	q.action = BZ_ACTION_SCP;
	q.unix_user = "ops";
	q.groups = groups;
	q.ngroups = 2;
	q.target = "web-1";
	assert_true(allowed(set, &q, "by-group"));
	q.target = "xenon";
	assert_false(allowed(set, &q, ""));
	q.target = "web-1";
	q.groups = groups2;
	q.ngroups = 1;
	assert_true(allowed(set, &q, "by-group"));
	q.ngroups = 0;
	assert_false(allowed(set, &q, ""));
	bz_policy_free(set);
}

static void
test_exec_commands(void **state)
{
	struct bz_policy_set *set = load_ok(HDR
	    "  - name: backup\n"
	    "    subjects: {users: [backup@example.com]}\n"
	    "    targets: {names: [\"db-*\"]}\n"
	    "    unix_users: [backup]\n"
	    "    allow: [{exec: [\"rsync --server *\", uptime, "
	    "\"echo a; echo b\"]}]\n"
	    "    mfa_max_age: 30m\n");
	struct bz_policy_request q = req("backup@example.com", "db-1",
	    "backup", BZ_ACTION_EXEC);
	struct bz_policy_decision d;

	q.command = "rsync --server --sender -vlogDtpre.iLsfxC . /data/";
	bz_policy_evaluate(set, &q, &d);
	assert_true(d.allowed);
	assert_int_equal(d.mfa_max_age, 1800);
	q.command = "uptime";
	assert_true(allowed(set, &q, "backup"));
	q.command = "uptime -p";
	assert_false(allowed(set, &q, ""));
	/* "*" does not stretch over shell metacharacters. */
	q.command = "rsync --server . /x; sh -i";
	assert_false(allowed(set, &q, ""));
	q.command = "rsync --server $(id)";
	assert_false(allowed(set, &q, ""));
	q.command = "rsync --server . /x > /etc/passwd";
	assert_false(allowed(set, &q, ""));
	q.command = "rsync --server .\nsh";
	assert_false(allowed(set, &q, ""));
	/* ... but a literal pattern may hold them. */
	q.command = "echo a; echo b";
	assert_true(allowed(set, &q, "backup"));
	q.command = NULL;
	assert_false(allowed(set, &q, ""));
	/* exec only: no shell. */
	q.action = BZ_ACTION_SHELL;
	assert_false(allowed(set, &q, ""));
	q.action = BZ_ACTION_CONNECT;
	assert_true(allowed(set, &q, "backup"));
	bz_policy_free(set);
}

static void
test_port_forward(void **state)
{
	struct bz_policy_set *set = load_ok(HDR
	    "  - name: db-forward\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [bastion]}\n"
	    "    unix_users: [tunnel]\n"
	    "    allow: [port_forward]\n"
	    "    port_forward: [\"127.0.0.1:5432\", \"db-*:5432\", \"*:80\", "
	    "\"[::1]:22\", \"web.internal:*\"]\n"
	    "  - name: no-metadata\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [\"*\"]\n"
	    "    deny: [port_forward]\n"
	    "    port_forward: [\"169.254.169.254:*\"]\n");
	struct bz_policy_request q = req("a@x", "bastion", "tunnel",
	    BZ_ACTION_PORT_FORWARD);

	q.forward = "127.0.0.1:5432";
	assert_true(allowed(set, &q, "db-forward"));
	q.forward = "DB-main:5432";
	assert_true(allowed(set, &q, "db-forward"));
	q.forward = "db-main:5433";
	assert_false(allowed(set, &q, ""));
	q.forward = "anything:80";
	assert_true(allowed(set, &q, "db-forward"));
	q.forward = "anything:8080";
	assert_false(allowed(set, &q, ""));
	q.forward = "[::1]:22";
	assert_true(allowed(set, &q, "db-forward"));
	q.forward = "web.internal:443";
	assert_true(allowed(set, &q, "db-forward"));
	q.forward = "169.254.169.254:80";
	assert_false(allowed(set, &q, "no-metadata"));
	q.forward = "nocolon";
	assert_false(allowed(set, &q, "no-metadata"));
	q.forward = NULL;
	assert_false(allowed(set, &q, "no-metadata"));
	/* Port forwarding only: connect is allowed, shell is not. */
	q.action = BZ_ACTION_CONNECT;
	assert_true(allowed(set, &q, "db-forward"));
	q.action = BZ_ACTION_SHELL;
	assert_false(allowed(set, &q, ""));
	bz_policy_free(set);
}

static void
test_time_windows(void **state)
{
	struct bz_policy_set *set = load_ok(HDR
	    "  - name: paris-office\n"
	    "    subjects: {groups: [contractors]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [dev]\n"
	    "    allow: [shell]\n"
	    "    hours: \"09:00-18:00\"\n"
	    "    days: [mon-fri]\n"
	    "    timezone: Europe/Paris\n"
	    "  - name: night-utc\n"
	    "    subjects: {groups: [night]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [dev]\n"
	    "    allow: [shell]\n"
	    "    hours: \"22:00-06:00\"\n"
	    "  - name: weekend\n"
	    "    subjects: {groups: [weekend]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [dev]\n"
	    "    allow: [shell]\n"
	    "    days: [sat, sun]\n"
	    "    timezone: America/New_York\n");
	const char *contractors[] = {"contractors"};
	const char *night[] = {"night"};
	const char *weekend[] = {"weekend"};
	struct bz_policy_request q = req("c@x", "web", "dev",
	    BZ_ACTION_SHELL);

	q.groups = contractors;
	q.ngroups = 1;
	q.now = 1705307400;   /* Mon 09:30 CET */
	assert_true(allowed(set, &q, "paris-office"));
	q.now = 1705303800;   /* Mon 08:30 CET */
	assert_false(allowed(set, &q, ""));
	q.now = 1721028600;   /* Mon 09:30 CEST (07:30 UTC) */
	assert_true(allowed(set, &q, "paris-office"));
	q.now = 1721025000;   /* Mon 08:30 CEST */
	assert_false(allowed(set, &q, ""));
	q.now = 1705744800;   /* Sat 11:00 CET */
	assert_false(allowed(set, &q, ""));
	q.now = 2226036600;   /* Mon 2040-07-16 09:30 CEST */
	assert_true(allowed(set, &q, "paris-office"));
	q.now = 2226033000;   /* 08:30 CEST */
	assert_false(allowed(set, &q, ""));
	/* CONNECT honours the window too. */
	q.action = BZ_ACTION_CONNECT;
	assert_false(allowed(set, &q, ""));
	q.action = BZ_ACTION_SHELL;
	/* A window across midnight. */
	q.groups = night;
	q.now = 1705361400;   /* 23:30 UTC */
	assert_true(allowed(set, &q, "night-utc"));
	q.now = 1705320000;   /* 12:00 UTC */
	assert_false(allowed(set, &q, ""));
	q.now = 1705361400 + 6 * 3600; /* 05:30 UTC */
	assert_true(allowed(set, &q, "night-utc"));
	q.now = 1705361400 + 6 * 3600 + 1800; /* 06:00 UTC */
	assert_false(allowed(set, &q, ""));
	/* Days in New York: Sat 01:00 UTC is still Friday there. */
	q.groups = weekend;
	q.now = 1705712400;   /* Sat 2024-01-20 01:00 UTC = Fri 20:00 EST */
	assert_false(allowed(set, &q, ""));
	q.now = 1705744800;   /* Sat 05:00 EST */
	assert_true(allowed(set, &q, "weekend"));
	bz_policy_free(set);
}

/* A TZif v2 file with no transitions: only the POSIX footer decides. */
static size_t
slim_zone(unsigned char *b, const char *footer)
{
	static const unsigned char counts[24] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4};
	static const unsigned char type[10] = {0, 0, 0x0e, 0x10, 0, 0, 'C',
	    'E', 'T', 0};
	size_t n = 0, i;

	for (i = 0; i < 2; i++) {
		memcpy(b + n, "TZif2", 5);
		memset(b + n + 5, 0, 15);
		memcpy(b + n + 20, counts, 24);
		memcpy(b + n + 44, type, 10);
		n += 54;
	}
	n += (size_t)sprintf((char *)b + n, "\n%s\n", footer);
	return n;
}

static void
test_tz(void **state)
{
	unsigned char buf[256];
	struct bz_tz *tz;
	char err[128];
	size_t n;

	n = slim_zone(buf, "CET-1CEST,M3.5.0,M10.5.0/3");
	assert_int_equal(bz_tz_parse(buf, n, &tz, err, sizeof(err)), 0);
	assert_int_equal(bz_tz_offset(tz, 1705320000), 3600);
	assert_int_equal(bz_tz_offset(tz, 1721028600), 7200);
	assert_int_equal(bz_tz_offset(tz, 1711846799), 3600);
	assert_int_equal(bz_tz_offset(tz, 1711846800), 7200);
	assert_int_equal(bz_tz_offset(tz, 1729990799), 7200);
	assert_int_equal(bz_tz_offset(tz, 1729990800), 3600);
	bz_tz_free(tz);
	/* Southern hemisphere: daylight saving spans the new year. */
	n = slim_zone(buf, "AEST-10AEDT,M10.1.0,M4.1.0/3");
	assert_int_equal(bz_tz_parse(buf, n, &tz, err, sizeof(err)), 0);
	assert_int_equal(bz_tz_offset(tz, 1705320000), 39600);
	assert_int_equal(bz_tz_offset(tz, 1721028600), 36000);
	bz_tz_free(tz);
	n = slim_zone(buf, "<+0330>-3:30");
	assert_int_equal(bz_tz_parse(buf, n, &tz, err, sizeof(err)), 0);
	assert_int_equal(bz_tz_offset(tz, 1705320000), 12600);
	bz_tz_free(tz);
	/* The installed zones agree with the footer-only ones. */
	assert_int_equal(bz_tz_load("Europe/Paris", &tz, err, sizeof(err)), 0);
	assert_int_equal(bz_tz_offset(tz, 1711846799), 3600);
	assert_int_equal(bz_tz_offset(tz, 1711846800), 7200);
	assert_int_equal(bz_tz_offset(tz, -2000000000), 561); /* LMT */
	bz_tz_free(tz);
	assert_int_equal(bz_tz_load("UTC", &tz, err, sizeof(err)), 0);
	assert_int_equal(bz_tz_offset(tz, 1705320000), 0);
	bz_tz_free(tz);
	assert_int_not_equal(bz_tz_load("../etc/passwd", &tz, err,
	    sizeof(err)), 0);
	assert_int_not_equal(bz_tz_load("/etc/passwd", &tz, err, sizeof(err)),
	    0);
	assert_int_not_equal(bz_tz_load("Mars/Olympus", &tz, err, sizeof(err)),
	    0);
	assert_int_not_equal(bz_tz_parse((const unsigned char *)"TZif", 4,
	    &tz, err, sizeof(err)), 0);
	assert_null(tz);
}

static void
test_index_order(void **state)
{
	/* Rules land in different index lists; load order still decides. */
	struct bz_policy_set *set = load_ok(HDR
	    "  - name: glob-first\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"web*\"]}\n"
	    "    unix_users: [u]\n"
	    "    allow: [shell]\n"
	    "    mfa_max_age: 1m\n"
	    "  - name: exact-second\n"
	    "    subjects: {users: [a@x]}\n"
	    "    targets: {names: [web1]}\n"
	    "    unix_users: [u]\n"
	    "    allow: [shell]\n"
	    "  - name: user-indexed\n"
	    "    subjects: {users: [a@x], groups: [g]}\n"
	    "    targets: {labels: {k: v}}\n"
	    "    unix_users: [u]\n"
	    "    allow: [shell]\n"
	    "  - name: exact-deny\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [web9]}\n"
	    "    unix_users: [u]\n"
	    "    deny: [shell]\n");
	struct bz_label kv[] = {{"k", "v"}};
	const char *g[] = {"g"};
	struct bz_policy_request q = req("a@x", "web1", "u", BZ_ACTION_SHELL);
	struct bz_policy_decision d;

	bz_policy_evaluate(set, &q, &d);
	assert_true(d.allowed);
	assert_string_equal(d.rule, "glob-first");
	assert_int_equal(d.mfa_max_age, 60);
	q.target = "web9";
	assert_false(allowed(set, &q, "exact-deny"));
	q.target = "db";
	q.labels = kv;
	q.nlabels = 1;
	assert_true(allowed(set, &q, "user-indexed"));
	q.user = "b@x";
	assert_false(allowed(set, &q, ""));
	q.groups = g;
	q.ngroups = 1;
	assert_true(allowed(set, &q, "user-indexed"));
	bz_policy_free(set);
}

static void
test_yaml_errors(void **state)
{
	expect_error("version: 1\npolicies:\n  - name: x\n    subjects: "
	    "{users: [a]\n", "5:1: YAML syntax error: did not find expected "
	    "',' or '}' while parsing a flow mapping");
	expect_error("version: 1\n\tpolicies: []\n", "2:1: YAML syntax error: "
	    "found a tab character that violates indentation while scanning "
	    "a plain scalar");
	expect_error("", "1:1: empty policy file (expected \"version: 1\" and "
	    "\"policies:\")");
	expect_error("# only a comment\n", "1:1: empty policy file (expected "
	    "\"version: 1\" and \"policies:\")");
	expect_error("version: 1\n" ONE_RULE "---\nversion: 1\n",
	    "3:1: only one YAML document per file");
	expect_error("- 1\n", "1:1: a policy file must be a mapping with "
	    "\"version: 1\" and \"policies:\", not a list");
	{
		const char *const w[] = {
		    "3:1: duplicate key \"version\" (first at line 1)",
		    NULL};
		expect_errors("version: 1\n" ONE_RULE "version: 1\n", w);
	}
	expect_error("version: !!int 1\n" ONE_RULE,
	    "1:10: tags (tag:yaml.org,2002:int) are not allowed");
	expect_error("version: &v 1\n" ONE_RULE,
	    "1:10: anchors (&v) are not allowed");
	expect_error("version: 1\n" ONE_RULE "? [a]\n: b\n",
	    "3:3: mapping keys must be strings");
	expect_error("version: 1\npolicies: \"\\0\"\n",
	    "2:11: strings may not contain NUL");
	expect_error("version: [[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]\n",
	    "1:25: nested too deep (at most 16 levels)");
	expect_error("version: 1\npolicies: \"\xff\"\n", "2:12: YAML syntax "
	    "error: invalid leading UTF-8 octet");
}

static void
test_root_errors(void **state)
{
	{
		const char *const w[] = {
		    "1:1: missing \"version\" (add \"version: 1\")",
		    "1:11: \"policies\" must not be empty",
		    NULL};
		expect_errors("policies: []\n", w);
	}
	expect_error("version: 2\npolicies: []\n", "1:10: unsupported version "
	    "\"2\" (expected 1)");
	expect_error("version: {a: 1}\npolicies: []\n", "1:10: unsupported "
	    "version \"a mapping\" (expected 1)");
	expect_error("version: 1\n", "1:1: missing \"policies\"");
	expect_error("version: 1\npolicies: []\n", "2:11: \"policies\" must "
	    "not be empty");
	expect_error("version: 1\npolicies: {}\n", "2:11: \"policies\" must be "
	    "a list, not a mapping");
	/* The unknown key is reported, the rest still checked. */
	{
		const char *const w[] = {
		    "2:12: each policy must be a mapping, not a string",
		    "3:1: unknown key \"rules\" (expected version or policies)",
		    NULL};
		expect_errors("version: 1\npolicies: [a]\nrules: []\n", w);
	}
}

#define RULE(body) HDR "  - name: r\n" body
#define FULL "    subjects: {users: [a]}\n    targets: {names: [b]}\n" \
	"    unix_users: [c]\n"

static void
test_rule_errors(void **state)
{
	expect_error(RULE(FULL "    allow: [shell]\n    color: red\n"),
	    "8:5: unknown key \"color\" (expected one of: name, description, "
	    "subjects, targets, unix_users, allow, deny, port_forward, "
	    "mfa_max_age, hours, days, timezone)");
	expect_error(HDR "  - subjects: {users: [a]}\n    targets: {names: "
	    "[b]}\n    unix_users: [c]\n    allow: [shell]\n",
	    "3:5: policy is missing \"name\"");
	expect_error(RULE("    targets: {names: [b]}\n    unix_users: [c]\n"
	    "    allow: [shell]\n"), "3:5: policy \"r\" is missing "
	    "\"subjects\"");
	expect_error(RULE("    subjects: {users: [a]}\n    unix_users: [c]\n"
	    "    allow: [shell]\n"), "3:5: policy \"r\" is missing "
	    "\"targets\"");
	expect_error(RULE("    subjects: {users: [a]}\n    targets: {names: "
	    "[b]}\n    allow: [shell]\n"), "3:5: policy \"r\" is missing "
	    "\"unix_users\"");
	expect_error(RULE(FULL), "3:5: policy \"r\" needs \"allow\" or "
	    "\"deny\"");
	expect_error(RULE(FULL "    allow: [shell]\n    deny: [exec]\n"),
	    "8:5: policy \"r\" has both \"allow\" and \"deny\" (write two "
	    "policies)");
	expect_error(RULE(FULL "    allow: [shell, fly]\n"),
	    "7:20: unknown action \"fly\" (expected shell, exec, sftp, scp or "
	    "port_forward)");
	expect_error(RULE(FULL "    allow: [connect]\n"),
	    "7:13: unknown action \"connect\" (expected shell, exec, sftp, "
	    "scp or port_forward)");
	expect_error(RULE(FULL "    allow: [shell, shell]\n"),
	    "7:20: action \"shell\" given twice");
	expect_error(RULE(FULL "    allow: [exec, {exec: [ls]}]\n"),
	    "7:20: \"exec\" given twice");
	expect_error(RULE(FULL "    allow: [{shell: [ls]}]\n"),
	    "7:13: only \"exec\" can take a list of commands, as {exec: "
	    "[...]}");
	expect_error(RULE(FULL "    allow: [{exec: []}]\n"),
	    "7:20: \"exec\" must not be empty");
	expect_error(RULE(FULL "    allow: []\n"),
	    "7:12: \"allow\" must not be empty");
	expect_error(RULE(FULL "    allow: shell\n"),
	    "7:12: \"allow\" must be a list, not a string");
	expect_error(RULE(FULL "    allow: [[shell]]\n"),
	    "7:13: \"allow\" must be a string, not a list");
	expect_error(RULE(FULL "    allow: [shell]\n    allow: [exec]\n"),
	    "8:5: duplicate key \"allow\" (first at line 7)");
	expect_error(RULE(FULL "    allow: [port_forward]\n"),
	    "7:5: policy \"r\" allows port_forward but has no \"port_forward\" "
	    "list of host:port patterns");
	expect_error(RULE(FULL "    allow: [shell]\n    port_forward: "
	    "[\"a:1\"]\n"), "8:5: \"port_forward\" is given but policy \"r\" "
	    "does not allow port_forward");
	expect_error(RULE(FULL "    deny: [shell]\n    port_forward: "
	    "[\"a:1\"]\n"), "8:5: \"port_forward\" is given but policy \"r\" "
	    "does not deny port_forward");
	expect_error(RULE(FULL "    deny: [shell]\n    mfa_max_age: 1h\n"),
	    "8:5: \"mfa_max_age\" only applies to allow policies");
	expect_error(RULE(FULL "    allow: [shell]\n    description: [a]\n"),
	    "8:18: \"description\" must be a string, not a list");
	expect_error(HDR "  - name: [r]\n" FULL "    allow: [shell]\n",
	    "3:11: \"name\" must be a string, not a list");
	expect_error(HDR "  - name: \"a\\\"b\"\n" FULL "    allow: [shell]\n",
	    "3:11: invalid name \"a\"b\" (at most 127 characters, no quotes "
	    "or control characters)");
}

static void
test_subject_target_errors(void **state)
{
	const char *const many[] = {
	    "4:23: \"users\" must not be empty",
	    "4:35: \"groups\" must be a list, not a string",
	    "5:23: invalid pattern \"web-[1\" in \"names\": unmatched \"[\"",
	    "5:34: unknown key \"foo\" in \"targets\" (expected names or "
	    "labels)",
	    "6:17: \"unix_users\" must not be empty",
	    NULL};

	expect_errors(RULE("    subjects: {users: [], groups: ops}\n"
	    "    targets: {names: [\"web-[1\"], foo: 1}\n"
	    "    unix_users: []\n    allow: [shell]\n"), many);
	expect_error(RULE("    subjects: {}\n    targets: {names: [b]}\n"
	    "    unix_users: [c]\n    allow: [shell]\n"),
	    "4:15: \"subjects\" must not be empty");
	expect_error(RULE("    subjects: [a]\n    targets: {names: [b]}\n"
	    "    unix_users: [c]\n    allow: [shell]\n"),
	    "4:15: \"subjects\" must be a mapping, not a list");
	expect_error(RULE("    subjects: {emails: [a]}\n    targets: {names: "
	    "[b]}\n    unix_users: [c]\n    allow: [shell]\n"),
	    "4:16: unknown key \"emails\" in \"subjects\" (expected users or "
	    "groups)");
	expect_error(RULE("    subjects: {users: [\"\"]}\n    targets: {names: "
	    "[b]}\n    unix_users: [c]\n    allow: [shell]\n"),
	    "4:24: \"users\" must not be empty");
	expect_error(RULE("    subjects: {users: [a]}\n    targets: {labels: "
	    "{}}\n    unix_users: [c]\n    allow: [shell]\n"),
	    "5:23: \"labels\" must not be empty");
	expect_error(RULE("    subjects: {users: [a]}\n    targets: {labels: "
	    "{env: [a]}}\n    unix_users: [c]\n    allow: [shell]\n"),
	    "5:29: \"labels\" must be a string, not a list");
	expect_error(RULE("    subjects: {users: [a]}\n    targets: {names: "
	    "[b]}\n    unix_users: [\"x\\\\\"]\n    allow: [shell]\n"),
	    "6:18: invalid pattern \"x\\\" in \"unix_users\": trailing "
	    "backslash");
	expect_error(RULE("    subjects: {users: [a]}\n    targets: {names: "
	    "[\"[[:alpha]\"]}\n    unix_users: [c]\n    allow: [shell]\n"),
	    "5:23: invalid pattern \"[[:alpha]\" in \"names\": unterminated "
	    "character class");
}

static void
test_value_errors(void **state)
{
	expect_error(RULE(FULL "    allow: [port_forward]\n    port_forward: "
	    "[nohost]\n"), "8:20: invalid port_forward \"nohost\" (expected "
	    "host:port)");
	expect_error(RULE(FULL "    allow: [port_forward]\n    port_forward: "
	    "[\"h:99999\"]\n"), "8:20: invalid port in port_forward "
	    "\"h:99999\" (expected 1-65535 or *)");
	expect_error(RULE(FULL "    allow: [port_forward]\n    port_forward: "
	    "[\"h[:80\"]\n"), "8:20: invalid pattern \"h[:80\" in "
	    "\"port_forward\": unmatched \"[\"");
	expect_error(RULE(FULL "    allow: [shell]\n    mfa_max_age: 12x\n"),
	    "8:18: invalid duration \"12x\" (expected a positive number "
	    "followed by s, m, h or d, e.g. 12h)");
	expect_error(RULE(FULL "    allow: [shell]\n    mfa_max_age: 0h\n"),
	    "8:18: invalid duration \"0h\" (expected a positive number "
	    "followed by s, m, h or d, e.g. 12h)");
	expect_error(RULE(FULL "    allow: [shell]\n    hours: \"9-18\"\n"),
	    "8:12: invalid hours \"9-18\" (expected HH:MM-HH:MM, e.g. "
	    "09:00-18:00)");
	expect_error(RULE(FULL "    allow: [shell]\n    hours: "
	    "\"09:00-25:00\"\n"), "8:12: invalid hours \"09:00-25:00\" "
	    "(expected HH:MM-HH:MM, e.g. 09:00-18:00)");
	expect_error(RULE(FULL "    allow: [shell]\n    hours: "
	    "\"09:00-09:00\"\n"), "8:12: invalid hours \"09:00-09:00\": the "
	    "window is empty");
	expect_error(RULE(FULL "    allow: [shell]\n    days: [mon, funday]\n"),
	    "8:17: unknown day \"funday\" (expected mon, tue, wed, thu, fri, "
	    "sat, sun or a range like mon-fri)");
	expect_error(RULE(FULL "    allow: [shell]\n    days: mon\n"),
	    "8:11: \"days\" must be a list, not a string");
	expect_error(RULE(FULL "    allow: [shell]\n    timezone: Mars/Base\n"),
	    "8:15: unknown timezone \"Mars/Base\" (no such time zone in "
	    "/usr/share/zoneinfo)");
	expect_error(RULE(FULL "    allow: [shell]\n    timezone: ../../etc/"
	    "passwd\n"), "8:15: unknown timezone \"../../etc/passwd\" "
	    "(invalid time zone name)");
}

static void
test_collect_all(void **state)
{
	/* Errors in several rules, all reported, in position order. */
	const char *const w[] = {
	    "4:5: unknown key \"subject\" (expected one of: name, description, "
	    "subjects, targets, unix_users, allow, deny, port_forward, "
	    "mfa_max_age, hours, days, timezone)",
	    "9:12: unknown day \"someday\" (expected mon, tue, wed, thu, fri, "
	    "sat, sun or a range like mon-fri)",
	    "10:5: aliases (*x) are not allowed",
	    "11:11: duplicate policy name \"a\" (first at t.yaml:3:5)",
	    NULL};

	expect_errors(HDR
	    "  - name: a\n"
	    "    subject: {users: [a]}\n"
	    "    subjects: {users: [a]}\n"
	    "    targets: {names: [b]}\n"
	    "    unix_users: [c]\n"
	    "    allow: [shell]\n    days: [someday]\n"
	    "  - *x\n"
	    "  - name: a\n"
	    "    subjects: {users: [a]}\n"
	    "    targets: {names: [b]}\n"
	    "    unix_users: [c]\n"
	    "    allow: [shell]\n", w);
}

static void
test_multi_file(void **state)
{
	struct bz_policy_set *set;
	struct bz_policy_errors errs;
	char dir[300], line[1024], want[1024];
	struct bz_policy_request q = req("a@x", "web", "u", BZ_ACTION_SHELL);

	snprintf(dir, sizeof(dir), "%s/set", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	/* Empty directory. */
	assert_int_equal(bz_policy_load(dir, &set, &errs), BZ_ERR_FORMAT);
	assert_null(set);
	assert_int_equal(errs.count, 1);
	bz_policy_error_format(&errs.items[0], line, sizeof(line));
	snprintf(want, sizeof(want), "%s: no policy files in %s (expected "
	    "*.yaml or *.yml)", dir, dir);
	assert_string_equal(line, want);
	bz_policy_errors_free(&errs);

	write_file("set/20-b.yml", HDR
	    "  - name: second\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [u]\n"
	    "    allow: [shell]\n");
	write_file("set/10-a.yaml", HDR
	    "  - name: first\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [u]\n"
	    "    allow: [shell]\n");
	/* Ignored: dotfiles, other extensions, directories. */
	write_file("set/.hidden.yaml", "garbage: [");
	write_file("set/README.md", "garbage: [");
	write_file("set/notes.yaml~", "garbage: [");
	snprintf(line, sizeof(line), "%s/sub.yaml", dir);
	assert_int_equal(mkdir(line, 0700), 0);
	assert_int_equal(bz_policy_load(dir, &set, &errs), 0);
	assert_int_equal(bz_policy_rule_count(set), 2);
	/* Files load sorted by name: 10-a.yaml's rule comes first. */
	assert_true(allowed(set, &q, "first"));
	bz_policy_free(set);
	bz_policy_errors_free(&errs);

	/* A duplicate name across files, and an error in another file. */
	write_file("set/30-c.yaml", HDR
	    "  - name: first\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [u]\n"
	    "    allow: [shell]\n");
	write_file("set/40-d.yaml", "version: 3\npolicies: []\n");
	assert_int_equal(bz_policy_load(dir, &set, &errs), BZ_ERR_FORMAT);
	assert_null(set);
	assert_int_equal(errs.count, 2);
	bz_policy_error_format(&errs.items[0], line, sizeof(line));
	snprintf(want, sizeof(want), "%s/30-c.yaml:3:11: duplicate policy name "
	    "\"first\" (first at %s/10-a.yaml:3:5)", dir, dir);
	assert_string_equal(line, want);
	bz_policy_error_format(&errs.items[1], line, sizeof(line));
	snprintf(want, sizeof(want), "%s/40-d.yaml:1:10: unsupported version "
	    "\"3\" (expected 1)", dir);
	assert_string_equal(line, want);
	bz_policy_errors_free(&errs);

	/* One file by path; a missing path. */
	snprintf(line, sizeof(line), "%s/10-a.yaml", dir);
	assert_int_equal(bz_policy_load(line, &set, &errs), 0);
	assert_int_equal(bz_policy_rule_count(set), 1);
	bz_policy_free(set);
	bz_policy_errors_free(&errs);
	assert_int_equal(bz_policy_load("/nonexistent/p.yaml", &set, &errs),
	    BZ_ERR_FORMAT);
	bz_policy_error_format(&errs.items[0], line, sizeof(line));
	assert_string_equal(line, "/nonexistent/p.yaml: No such file or "
	    "directory");
	bz_policy_errors_free(&errs);
}

static void
expect_warnings(const char *text, const char *const *want)
{
	struct bz_policy_set *set = load_ok(text);
	struct bz_policy_errors w;
	char line[1024], full[1024];
	size_t i, n = 0;

	while (want[n] != NULL)
		n++;
	assert_int_equal(bz_policy_lint(set, &w), 0);
	for (i = 0; i < w.count; i++) {
		bz_policy_error_format(&w.items[i], line, sizeof(line));
		if (i < n) {
			snprintf(full, sizeof(full), "t.yaml:%s", want[i]);
			assert_string_equal(line, full);
		} else {
			fprintf(stderr, "extra warning: %s\n", line);
		}
	}
	assert_int_equal(w.count, n);
	bz_policy_errors_free(&w);
	bz_policy_free(set);
}

static void
test_lint(void **state)
{
	const char *const none[] = {NULL};
	const char *const shadow[] = {
	    "3:5: policy \"ops\" never allows anything: deny policy \"freeze\" "
	    "(t.yaml:8:5) covers all of it",
	    NULL};
	const char *const root_glob[] = {
	    "6:26: \"r*\" in unix_users of policy \"r\" does not match root: a "
	    "glob never does; write \"root\" if you mean it",
	    "6:32: \"deploy\" appears twice in \"unix_users\" of policy \"r\"",
	    NULL};

	expect_warnings(design_example, none);
	expect_warnings(HDR
	    "  - name: ops\n"
	    "    subjects: {users: [alice@example.com], groups: [ops]}\n"
	    "    targets: {names: [\"web-1\"], labels: {env: prod}}\n"
	    "    unix_users: [deploy]\n"
	    "    allow: [shell, {exec: [ls]}]\n"
	    "  - name: freeze\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"web-*\"]}\n"
	    "    unix_users: [\"*\"]\n"
	    "    deny: [shell, exec, sftp, scp, port_forward]\n", shadow);
	/* Not covered: the deny has other actions, other hours, a narrower
	 * subject. */
	expect_warnings(HDR
	    "  - name: ops\n"
	    "    subjects: {users: [alice@example.com], groups: [ops]}\n"
	    "    targets: {names: [\"web-1\"]}\n"
	    "    unix_users: [root]\n"
	    "    allow: [shell]\n"
	    "  - name: freeze\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [\"*\"]\n"
	    "    deny: [exec]\n"
	    "  - name: not-ops\n"
	    "    subjects: {users: [alice@example.com]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [\"*\"]\n"
	    "    deny: [shell]\n"
	    "  - name: part\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [root]\n"
	    "    deny: [shell]\n"
	    "    hours: \"00:00-12:00\"\n", none);
	expect_warnings(RULE("    subjects: {users: [a]}\n"
	    "    targets: {names: [b]}\n"
	    "    unix_users: [deploy, \"r*\", deploy]\n"
	    "    allow: [shell]\n"), root_glob);
}

static void
test_explain(void **state)
{
	struct bz_policy_set *set = load_ok(HDR
	    "  - name: ops-shell\n"
	    "    subjects: {users: [alice@example.com], groups: [ops]}\n"
	    "    targets: {names: [\"web-*\"], labels: {env: prod}}\n"
	    "    unix_users: [deploy]\n"
	    "    allow: [shell, {exec: [uptime]}]\n"
	    "    hours: \"09:00-18:00\"\n"
	    "    timezone: Europe/Paris\n"
	    "  - name: other\n"
	    "    subjects: {users: [bob@example.com]}\n"
	    "    targets: {names: [db]}\n"
	    "    unix_users: [postgres]\n"
	    "    allow: [sftp]\n"
	    "  - name: no-root\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [root]\n"
	    "    deny: [shell, exec, sftp, scp, port_forward]\n");
	struct bz_label prod[] = {{"env", "prod"}};
	struct bz_label dev[] = {{"env", "dev"}};
	struct bz_policy_request q = req("alice@example.com", "web-1",
	    "deploy", BZ_ACTION_SHELL);
	struct bz_policy_decision d;
	char why[1024];

	q.labels = prod;
	q.nlabels = 1;
	bz_policy_explain(set, &q, &d, why, sizeof(why));
	assert_true(d.allowed);
	assert_string_equal(why, "allowed by rule \"ops-shell\" (t.yaml:3:5)");
	q.unix_user = "root";
	bz_policy_explain(set, &q, &d, why, sizeof(why));
	assert_false(d.allowed);
	assert_string_equal(why, "denied by rule \"no-root\" (t.yaml:15:5); "
	    "deny rules win over allow rules");
	q.unix_user = "deploy";
	q.now = 1705303800; /* 08:30 in Paris */
	bz_policy_explain(set, &q, &d, why, sizeof(why));
	assert_false(d.allowed);
	assert_string_equal(why, "no policy allows alice@example.com to shell "
	    "as deploy on web-1; closest rule \"ops-shell\" (t.yaml:3:5) "
	    "matches subject, target, unix user and action but not time "
	    "(outside hours 09:00-18:00 Europe/Paris)");
	q.now = 1705320000;
	q.action = BZ_ACTION_EXEC;
	q.command = "uptime; sh";
	q.labels = dev;
	bz_policy_explain(set, &q, &d, why, sizeof(why));
	assert_string_equal(why, "no policy allows alice@example.com to exec "
	    "as deploy on web-1; closest rule \"ops-shell\" (t.yaml:3:5) "
	    "matches subject, unix user and time but not target (label env of "
	    "web-1 does not match \"prod\"); command (\"uptime; sh\" not in "
	    "exec [uptime]; a command with shell metacharacters only matches "
	    "a pattern without wildcards)");
	q.user = "carol@example.com";
	q.nlabels = 0;
	q.action = BZ_ACTION_SCP;
	q.target = "db";
	bz_policy_explain(set, &q, &d, why, sizeof(why));
	assert_string_equal(why, "no policy allows carol@example.com to scp "
	    "as deploy on db; closest rule \"ops-shell\" (t.yaml:3:5) matches "
	    "unix user and time but not subject (user carol@example.com not "
	    "in users [alice@example.com] or groups [ops]); target (db not in "
	    "names [web-*]); action (scp is not allowed)");
	/* Control characters never reach the one-line reason. */
	q.user = "evil\nline";
	bz_policy_explain(set, &q, &d, why, sizeof(why));
	assert_null(strchr(why, '\n'));
	assert_null(strchr(d.reason, '\n'));
	/* A tiny buffer is fine. */
	bz_policy_explain(set, &q, &d, why, 8);
	assert_int_equal(strlen(why), 7);
	bz_policy_free(set);
}

/* policies/examples loads clean and lints clean. */
static void
test_examples(void **state)
{
	const char *src = getenv("BZ_SRCDIR");
	struct bz_policy_set *set;
	struct bz_policy_errors errs;
	char path[1024], line[1024];
	size_t i;
	int r;

	if (src == NULL)
		src = BZ_TOP_SRCDIR;
	snprintf(path, sizeof(path), "%s/policies/examples", src);
	r = bz_policy_load(path, &set, &errs);
	for (i = 0; i < errs.count; i++) {
		bz_policy_error_format(&errs.items[i], line, sizeof(line));
		fprintf(stderr, "%s\n", line);
	}
	assert_int_equal(r, 0);
	assert_true(bz_policy_rule_count(set) >= 6);
	bz_policy_errors_free(&errs);
	assert_int_equal(bz_policy_lint(set, &errs), 0);
	assert_int_equal(errs.count, 0);
	bz_policy_free(set);
}

/* Many rules in every index list: evaluation finds exactly the one. */
static void
test_many_rules(void **state)
{
	const size_t n = 3000;
	size_t i, len = 0, cap = n * 200 + 64;
	char *text = malloc(cap), user[64], target[64], want[64];
	struct bz_policy_set *set;
	struct bz_policy_errors errs;
	struct bz_policy_request q;
	struct bz_policy_decision d;

	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len, HDR);
	for (i = 0; i < n; i++) {
		/* Literal names (target index), "[h]N" globs with literal
		 * users (user index) or glob users (generic). */
		len += (size_t)snprintf(text + len, cap - len,
		    "  - {name: r%zu, subjects: {users: [\"u%zu@%s\"]}, "
		    "targets: {names: [\"%s%zu\"]}, unix_users: [u], "
		    "allow: [shell]}\n", i, i % 100, i % 5 == 0 ? "[x]" : "x",
		    i % 3 == 0 ? "[h]" : "h", i);
	}
	assert_int_equal(bz_policy_load_buffer("big.yaml", text, len, &set,
	    &errs), 0);
	assert_int_equal(bz_policy_rule_count(set), n);
	for (i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "u%zu@x", i % 100);
		snprintf(target, sizeof(target), "h%zu", i);
		snprintf(want, sizeof(want), "r%zu", i);
		q = req(user, target, "u", BZ_ACTION_SHELL);
		bz_policy_evaluate(set, &q, &d);
		assert_true(d.allowed);
		assert_string_equal(d.rule, want);
		snprintf(user, sizeof(user), "u%zu@x", (i + 1) % 100);
		bz_policy_evaluate(set, &q, &d);
		assert_false(d.allowed);
	}
	bz_policy_free(set);
	free(text);
}

/* Run bz_policy_cmd with stdout and stderr captured into out (joined). */
static int
run_cmd(char *out, size_t outlen, const char *a0, ...)
{
	char *argv[32], path[512];
	const char *a;
	va_list ap;
	int argc = 0, rc, saved1, saved2, fd;
	FILE *f;
	size_t n;

	va_start(ap, a0);
	for (a = a0; a != NULL && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	snprintf(path, sizeof(path), "%s/cmd.out", tmpdir);
	fflush(stdout);
	fflush(stderr);
	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
	saved1 = dup(1);
	saved2 = dup(2);
	dup2(fd, 1);
	dup2(fd, 2);
	close(fd);
	rc = bz_policy_cmd(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved1, 1);
	dup2(saved2, 2);
	close(saved1);
	close(saved2);
	assert_non_null(f = fopen(path, "r"));
	n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	fclose(f);
	return rc;
}

static const char *
srcdir(void)
{
	const char *src = getenv("BZ_SRCDIR");

	return src != NULL ? src : BZ_TOP_SRCDIR;
}

static void
test_cmd_check(void **state)
{
	char out[8192], ex[512], bad[512], warn[512], want[1024];

	snprintf(ex, sizeof(ex), "%s/policies/examples", srcdir());
	assert_int_equal(run_cmd(out, sizeof(out), "check", ex, NULL), 0);
	assert_non_null(strstr(out, "0 warnings"));
	write_file("bad.yaml", HDR "  - name: x\n    subjects: {users: [a]}\n"
	    "    targets: {names: [b]}\n    unix_users: [c]\n"
	    "    allow: [shel]\n");
	snprintf(bad, sizeof(bad), "%s/bad.yaml", tmpdir);
	assert_int_equal(run_cmd(out, sizeof(out), "check", bad, NULL), 1);
	snprintf(want, sizeof(want), "%s:7:13: unknown action \"shel\" "
	    "(expected shell, exec, sftp, scp or port_forward)\n", bad);
	assert_string_equal(out, want);
	write_file("warn.yaml", HDR "  - name: x\n    subjects: {users: [a]}\n"
	    "    targets: {names: [b]}\n    unix_users: [\"r*\"]\n"
	    "    allow: [shell]\n");
	snprintf(warn, sizeof(warn), "%s/warn.yaml", tmpdir);
	assert_int_equal(run_cmd(out, sizeof(out), "check", warn, NULL), 0);
	snprintf(want, sizeof(want), "%s:6:18: warning: \"r*\" in unix_users "
	    "of policy \"x\" does not match root", warn);
	assert_memory_equal(out, want, strlen(want));
	assert_int_equal(run_cmd(out, sizeof(out), "check", "--strict", warn,
	    NULL), 1);
	assert_int_equal(run_cmd(out, sizeof(out), "check", NULL), 2);
	assert_int_equal(run_cmd(out, sizeof(out), "check", "--bogus", ex,
	    NULL), 2);
	assert_int_equal(run_cmd(out, sizeof(out), "check", "--help", NULL), 0);
	assert_int_equal(run_cmd(out, sizeof(out), "frobnicate", NULL), 2);
}

static void
test_cmd_explain(void **state)
{
	char out[8192], ex[512];

	snprintf(ex, sizeof(ex), "%s/policies/examples", srcdir());
	assert_int_equal(run_cmd(out, sizeof(out), "explain", ex, "--user",
	    "alice@example.com", "--target", "web-1", "--label", "env=prod",
	    "--unix-user", "deploy", "--action", "shell", NULL), 0);
	assert_memory_equal(out, "allow\nrule: ops-shell\nmfa_max_age: 43200s\n"
	    "why: allowed by rule \"ops-shell\" (", 72);
	assert_int_equal(run_cmd(out, sizeof(out), "explain", ex,
	    "--user=alice@example.com", "--target=web-1", "--label=env=prod",
	    "--unix-user=root", "--action=shell", NULL), 1);
	assert_memory_equal(out, "deny\nrule: no-root-on-prod\nwhy: denied by "
	    "rule \"no-root-on-prod\"", 57);
	assert_int_equal(run_cmd(out, sizeof(out), "explain", ex, "--user",
	    "carl@x", "--group", "contractors", "--target", "web-2", "--label",
	    "env=staging", "--unix-user", "contractor", "--action", "shell",
	    "--time", "2024-01-15T08:59:59+01:00", NULL), 1);
	assert_non_null(strstr(out, "rule: (none: default deny)\nwhy: no "
	    "policy allows carl@x to shell as contractor on web-2; closest "
	    "rule \"contractors-office-hours\""));
	assert_non_null(strstr(out, "but not time (outside hours 09:00-18:00 "
	    "on mon,tue,wed,thu,fri Europe/Paris)\n"));
	assert_int_equal(run_cmd(out, sizeof(out), "explain", ex, "--user",
	    "carl@x", "--group", "contractors", "--target", "web-2", "--label",
	    "env=staging", "--unix-user", "contractor", "--action", "shell",
	    "--time", "2024-01-15T09:00:00+01:00", NULL), 0);
	/* Usage errors. */
	assert_int_equal(run_cmd(out, sizeof(out), "explain", ex, "--user",
	    "a@x", NULL), 2);
	assert_int_equal(run_cmd(out, sizeof(out), "explain", ex, "--user",
	    "a@x", "--target", "t", "--unix-user", "u", "--action", "dance",
	    NULL), 2);
	assert_non_null(strstr(out, "unknown action \"dance\""));
	assert_int_equal(run_cmd(out, sizeof(out), "explain", ex, "--user",
	    "a@x", "--target", "t", "--unix-user", "u", "--action", "shell",
	    "--time", "yesterday", NULL), 2);
	assert_int_equal(run_cmd(out, sizeof(out), "explain", ex, "--user",
	    "a@x", "--target", "t", "--unix-user", "u", "--action", "shell",
	    "--label", "novalue", NULL), 2);
	assert_int_equal(run_cmd(out, sizeof(out), "explain", ex, "--user",
	    NULL), 2);
	assert_int_equal(run_cmd(out, sizeof(out), "explain",
	    "/nonexistent", "--user", "a@x", "--target", "t", "--unix-user",
	    "u", "--action", "shell", NULL), 2);
}

static void
test_cmd_test(void **state)
{
	char out[16384], ex[512], tests[512], mine[512];

	snprintf(ex, sizeof(ex), "%s/policies/examples", srcdir());
	snprintf(tests, sizeof(tests), "%s/policies/examples-tests.yaml",
	    srcdir());
	assert_int_equal(run_cmd(out, sizeof(out), "test", ex, tests, NULL), 0);
	assert_memory_equal(out, "1..", 3);
	assert_non_null(strstr(out, "\nok 1 - alice gets a shell on a web "
	    "host\n"));
	assert_non_null(strstr(out, " passed, 0 failed\n"));
	assert_null(strstr(out, "not ok"));

	write_file("t1.yaml", "tests:\n"
	    "  - name: \"should fail # really\"\n"
	    "    user: alice@example.com\n"
	    "    target: web-1\n"
	    "    unix_user: deploy\n"
	    "    action: shell\n"
	    "    expect: deny\n"
	    "  - name: wrong rule\n"
	    "    user: alice@example.com\n"
	    "    target: web-1\n"
	    "    unix_user: root\n"
	    "    labels: {env: prod}\n"
	    "    action: shell\n"
	    "    expect: deny\n"
	    "    rule: ops-shell\n"
	    "  - name: wrong mfa\n"
	    "    user: alice@example.com\n"
	    "    target: web-1\n"
	    "    unix_user: deploy\n"
	    "    action: shell\n"
	    "    expect: allow\n"
	    "    mfa_max_age: 1h\n"
	    "  - name: passes\n"
	    "    user: alice@example.com\n"
	    "    target: web-1\n"
	    "    unix_user: deploy\n"
	    "    action: connect\n"
	    "    expect: allow\n"
	    "    mfa_max_age: 12h\n");
	snprintf(mine, sizeof(mine), "%s/t1.yaml", tmpdir);
	assert_int_equal(run_cmd(out, sizeof(out), "test", ex, mine, NULL), 1);
	assert_non_null(strstr(out, "1..4\nnot ok 1 - should fail \\# really "
	    "# expected deny, got allow (rule \"ops-shell\")\n#   "));
	assert_non_null(strstr(out, "\nnot ok 2 - wrong rule # expected rule "
	    "\"ops-shell\", got rule \"no-root-on-prod\"\n"));
	assert_non_null(strstr(out, "\nnot ok 3 - wrong mfa # expected "
	    "mfa_max_age 3600s, got 43200s (rule \"ops-shell\")\n"));
	assert_non_null(strstr(out, "\nok 4 - passes\n1 passed, 3 failed\n"));
	assert_int_equal(run_cmd(out, sizeof(out), "test", ex, NULL), 2);
	assert_int_equal(run_cmd(out, sizeof(out), "test", ex,
	    "/nonexistent.yaml", NULL), 2);
}

static void
expect_case_errors(const char *text, const char *const *want)
{
	struct bz_policy_cases cases;
	struct bz_policy_errors errs;
	char path[512], line[1024], full[1024];
	size_t i, n = 0;

	while (want[n] != NULL)
		n++;
	write_file("cases.yaml", text);
	snprintf(path, sizeof(path), "%s/cases.yaml", tmpdir);
	assert_int_not_equal(bz_policy_cases_load(path, &cases, &errs), 0);
	assert_int_equal(cases.count, 0);
	for (i = 0; i < errs.count && i < n; i++) {
		bz_policy_error_format(&errs.items[i], line, sizeof(line));
		snprintf(full, sizeof(full), "%s:%s", path, want[i]);
		assert_string_equal(line, full);
	}
	assert_int_equal(errs.count, n);
	bz_policy_errors_free(&errs);
}

static void
test_cases_errors(void **state)
{
	const char *const e1[] = {
	    "2:5: test is missing \"user\"",
	    "2:5: test is missing \"expect\" (allow or deny)",
	    "3:14: unknown action \"fly\" (expected connect, shell, exec, sftp, "
	    "scp or port_forward)",
	    "4:12: invalid time \"noon\" (expected YYYY-MM-DDTHH:MM[:SS] with Z "
	    "or +HH:MM, or @SECONDS)",
	    "5:6: unknown key \"colour\" (expected name, user, groups, target, "
	    "labels, unix_user, action, command, forward, time, expect, rule "
	    "or mfa_max_age)",
	    "6:14: \"groups\" must be a list",
	    NULL};
	const char *const e2[] = {
	    "3:13: \"expect\" must be allow or deny, not \"maybe\"",
	    "5:5: duplicate key \"name\" (first at line 2)",
	    NULL};
	const char *const e3[] = {"1:1: missing \"tests\"", NULL};
	const char *const e4[] = {"1:1: empty test file (expected \"tests:\")",
	    NULL};
	const char *const e5[] = {"1:8: \"tests\" must be a non-empty list",
	    NULL};

	expect_case_errors("tests:\n"
	    "  - {name: a, target: t, unix_user: u,\n"
	    "     action: fly,\n"
	    "     time: noon,\n"
	    "     colour: red,\n"
	    "     groups: ops}\n", e1);
	expect_case_errors("tests:\n  - name: a\n    expect: maybe\n"
	    "    user: u\n    name: b\n    target: t\n    unix_user: u\n"
	    "    action: shell\n", e2);
	expect_case_errors("version: 1\n", e3);
	expect_case_errors("", e4);
	expect_case_errors("tests: []\n", e5);
}

static void
test_parse_time(void **state)
{
	time_t t;

	assert_int_equal(bz_policy_parse_time("2024-01-15T12:00:00Z", &t), 0);
	assert_int_equal(t, 1705320000);
	assert_int_equal(bz_policy_parse_time("2024-01-15T12:00", &t), 0);
	assert_int_equal(t, 1705320000);
	assert_int_equal(bz_policy_parse_time("2024-01-15 13:00+01:00", &t), 0);
	assert_int_equal(t, 1705320000);
	assert_int_equal(bz_policy_parse_time("2024-01-15T07:00:00-0500", &t),
	    0);
	assert_int_equal(t, 1705320000);
	assert_int_equal(bz_policy_parse_time("@1705320000", &t), 0);
	assert_int_equal(t, 1705320000);
	assert_int_not_equal(bz_policy_parse_time("2024-02-30T12:00", &t), 0);
	assert_int_not_equal(bz_policy_parse_time("2024-01-15T24:00", &t), 0);
	assert_int_not_equal(bz_policy_parse_time("2024-01-15T12:00+1", &t),
	    0);
	assert_int_not_equal(bz_policy_parse_time("2024-01-15T12:00Zjunk", &t),
	    0);
	assert_int_not_equal(bz_policy_parse_time("@", &t), 0);
	assert_int_not_equal(bz_policy_parse_time("", &t), 0);
}

static unsigned
rnd(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed / 65536;
}

/* Random rules and requests: the index never changes a decision. */
static void
test_index_differential(void **state)
{
	static const char *const names[] = {"web1", "web2", "web*", "*1",
	    "*", "w?b1", "[w]eb1", "*eb*", "db-1", "db-*", "\\\\*x", "*-b",
	    "x*", "we*1"};
	static const char *const targets[] = {"web1", "web2", "db-1", "db-b",
	    "x", "*x", "webx1", "WEB1", "a-b"};
	static const char *const users[] = {"a@x", "*@x", "A@*", "*", "b@y",
	    "?@x", "[ab]@x"};
	static const char *const requsers[] = {"a@x", "A@X", "b@y", "c@x",
	    "ab@x", "b@x"};
	static const char *const groups[] = {"ops", "op*", "*s", "dev",
	    "[d]ev"};
	static const char *const unixes[] = {"deploy", "root", "d*", "*", "app",
	    "*y"};
	static const char *const reqgroups[] = {"ops", "dev", "opsy", "s"};
	static const char *const requnix[] = {"deploy", "root", "app", "dy"};
	static const char *const acts[] = {"shell", "exec", "sftp",
	    "{exec: [\"ls *\"]}"};
	struct bz_label labels[2] = {{"env", "prod"}, {"tier", "web"}};
	struct bz_policy_set *set;
	struct bz_policy_errors errs;
	struct bz_policy_request q;
	struct bz_policy_decision d;
	size_t cap = 1 << 20, len = 0, i, j, n = 400, deny, allow;
	char *text = malloc(cap), want[64];
	unsigned seed = 12345;
	size_t nallow = 0, ndeny = 0;
	int round;

	assert_non_null(text);
#define PICK(a) ((a)[rnd(&seed) % (sizeof(a) / sizeof((a)[0]))])
#define COIN() (rnd(&seed) % 3 == 0)
	for (round = 0; round < 3; round++) {
		len = (size_t)snprintf(text, cap, HDR);
		for (i = 0; i < n; i++) {
			int deny_rule = COIN() && COIN();
			len += (size_t)snprintf(text + len, cap - len,
			    "  - name: r%zu\n    subjects: {users: [\"%s\"]",
			    i, PICK(users));
			if (COIN())
				len += (size_t)snprintf(text + len, cap - len,
				    ", groups: [\"%s\", \"%s\"]", PICK(groups),
				    PICK(groups));
			len += (size_t)snprintf(text + len, cap - len, "}\n"
			    "    targets: {");
			if (COIN() && COIN())
				len += (size_t)snprintf(text + len, cap - len,
				    "labels: {env: \"%s\"}", COIN() ? "prod" :
				    "p*");
			else
				len += (size_t)snprintf(text + len, cap - len,
				    "names: [\"%s\", \"%s\"]%s", PICK(names),
				    PICK(names), COIN() ?
				    ", labels: {tier: web}" : "");
			len += (size_t)snprintf(text + len, cap - len, "}\n"
			    "    unix_users: [\"%s\"]\n    %s: [%s]\n",
			    PICK(unixes), deny_rule ? "deny" : "allow",
			    PICK(acts));
		}
		if (bz_policy_load_buffer("rand.yaml", text, len, &set,
		    &errs) != 0 && errs.count > 0) {
			char line[1024];
			bz_policy_error_format(&errs.items[0], line,
			    sizeof(line));
			fail_msg("%s", line);
		}
		bz_policy_errors_free(&errs);
		for (j = 0; j < 3000; j++) {
			memset(&q, 0, sizeof(q));
			q.user = PICK(requsers);
			q.target = PICK(targets);
			q.unix_user = PICK(requnix);
			q.groups = &reqgroups[j % 3];
			q.ngroups = j % 2 ? 2 : 0;
			q.labels = COIN() ? labels : labels + 1;
			q.nlabels = COIN() ? 1 : 0;
			q.action = j % 3 == 0 ? BZ_ACTION_SHELL : j % 3 == 1 ?
			    BZ_ACTION_EXEC : BZ_ACTION_CONNECT;
			q.command = COIN() ? "ls -l" : "ls; sh";
			deny = allow = SIZE_MAX;
			for (i = 0; i < n; i++) {
				if (bz_policy_rule_matches(set, i, &q) != 1)
					continue;
				if (set->rules[i].deny) {
					if (deny == SIZE_MAX)
						deny = i;
				} else if (allow == SIZE_MAX) {
					allow = i;
				}
			}
			bz_policy_evaluate(set, &q, &d);
			nallow += d.allowed;
			ndeny += deny != SIZE_MAX;
			if (deny != SIZE_MAX) {
				snprintf(want, sizeof(want), "r%zu", deny);
				assert_false(d.allowed);
			} else if (allow != SIZE_MAX) {
				snprintf(want, sizeof(want), "r%zu", allow);
				assert_true(d.allowed);
			} else {
				want[0] = '\0';
				assert_false(d.allowed);
			}
			assert_string_equal(d.rule, want);
		}
		bz_policy_free(set);
	}
#undef PICK
#undef COIN
	/* Both kinds of decision were exercised. */
	assert_true(nallow > 500);
	assert_true(ndeny > 500);
	free(text);
}

static void
collect_user(const char *u, void *arg)
{
	char *buf = arg;

	strcat(buf, u);
	strcat(buf, " ");
}

/* `bzsshd targets`: the allow rules matching subject, target and time
 * name their unix users (globs too); other targets get none. */
static void
test_target_users(void **state)
{
	struct bz_policy_set *set = load_ok(
	    "version: 1\n"
	    "policies:\n"
	    "  - name: web\n"
	    "    subjects: {groups: [ops]}\n"
	    "    targets: {labels: {env: prod}}\n"
	    "    unix_users: [deploy, \"app-*\"]\n"
	    "    allow: [exec]\n"
	    "  - name: db-nights\n"
	    "    subjects: {users: [alice@example.com]}\n"
	    "    targets: {names: [db1]}\n"
	    "    unix_users: [postgres]\n"
	    "    allow: [shell]\n"
	    "    hours: \"22:00-06:00\"\n"
	    "  - name: no-root\n"
	    "    subjects: {users: [\"*\"]}\n"
	    "    targets: {names: [\"*\"]}\n"
	    "    unix_users: [root]\n"
	    "    deny: [shell]\n");
	const char *groups[] = { "ops" };
	struct bz_label prod = { "env", "prod" };
	struct bz_policy_request req;
	char got[256] = "";

	memset(&req, 0, sizeof(req));
	req.user = "alice@example.com";
	req.groups = groups;
	req.ngroups = 1;
	req.target = "web1";
	req.labels = &prod;
	req.nlabels = 1;
	req.now = 1764460800; /* 2025-11-30 00:00 UTC: night */
	assert_int_equal(bz_policy_target_users(set, &req, collect_user, got),
	    1);
	assert_string_equal(got, "deploy app-* ");
	got[0] = '\0';
	req.target = "db1";
	req.nlabels = 0;
	assert_int_equal(bz_policy_target_users(set, &req, collect_user, got),
	    1);
	assert_string_equal(got, "postgres ");
	/* noon: outside the rule's hours */
	got[0] = '\0';
	req.now += 12 * 3600;
	assert_int_equal(bz_policy_target_users(set, &req, collect_user, got),
	    0);
	/* another user's groups: nothing */
	req.ngroups = 0;
	req.user = "bob@example.com";
	req.now -= 12 * 3600;
	assert_int_equal(bz_policy_target_users(set, &req, collect_user, got),
	    0);
	bz_policy_free(set);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_design_example),
		cmocka_unit_test(test_target_users),
		cmocka_unit_test(test_default_deny),
		cmocka_unit_test(test_deny_wins),
		cmocka_unit_test(test_root_only_literal),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_globs),
		cmocka_unit_test(test_exec_commands),
		cmocka_unit_test(test_port_forward),
		cmocka_unit_test(test_time_windows),
		cmocka_unit_test(test_tz),
		cmocka_unit_test(test_index_order),
		cmocka_unit_test(test_yaml_errors),
		cmocka_unit_test(test_root_errors),
		cmocka_unit_test(test_rule_errors),
		cmocka_unit_test(test_subject_target_errors),
		cmocka_unit_test(test_value_errors),
		cmocka_unit_test(test_collect_all),
		cmocka_unit_test(test_multi_file),
		cmocka_unit_test(test_lint),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_many_rules),
		cmocka_unit_test(test_index_differential),
		cmocka_unit_test(test_cmd_check),
		cmocka_unit_test(test_cmd_explain),
		cmocka_unit_test(test_cmd_test),
		cmocka_unit_test(test_cases_errors),
		cmocka_unit_test(test_parse_time),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
