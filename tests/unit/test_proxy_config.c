/* test_proxy_config.c: bzproxy's config file (required keys, listen,
 * relative paths, defaults, limits), its name/label rules, and the fit of
 * limits.max_links into the open files limit (fdlimit.c) and the raise of
 * that limit (common/fdlimit.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "bzproxy.h"
#include "fdlimit.h"

static char tmpdir[256], path[512];

static const char good[] =
	"listen: 127.0.0.1:8443\n"
	"tls_cert: cert.pem\n"
	"tls_key: /etc/key.pem\n"
	"state_db: state.db\n"
	"signing_key: k.key\n"
	"policies: policies/\n"
	"audit_log: audit.jsonl\n"
	"oidc:\n"
	"  issuer: https://idp.example.com\n"
	"  audience: bz-cli\n";

static int
setup(void **state)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/bz-pcfg-XXXXXX", t ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/bzproxy.yaml", tmpdir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int
load(const char *text, struct bzp_config *c, char *err, size_t errlen)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return bzp_config_load(path, c, err, errlen);
}

static void
test_good_config(void **state)
{
	struct bzp_config c;
	char err[512], want[600];

	assert_int_equal(load(good, &c, err, sizeof(err)), 0);
	assert_string_equal(c.listen_host, "127.0.0.1");
	assert_int_equal(c.listen_port, 8443);
	snprintf(want, sizeof(want), "%s/cert.pem", tmpdir);
	assert_string_equal(c.tls_cert, want);
	assert_string_equal(c.tls_key, "/etc/key.pem");
	snprintf(want, sizeof(want), "%s/state.db.pid", tmpdir);
	assert_string_equal(c.pid_file, want);
	assert_string_equal(c.issuer, "https://idp.example.com");
	assert_string_equal(c.audience, "bz-cli");
	assert_string_equal(c.groups_claim, "groups");
	assert_null(c.oidc_ca_file);
	assert_int_equal(c.session_ttl, 12 * 3600);
	assert_int_equal(c.limits.max_links, 16384);
	assert_int_equal(c.limits.max_links_set, 0);
	assert_int_equal(c.limits.sessions_per_user, 2048);
	assert_int_equal(c.limits.channels_per_session, 256);
	assert_int_equal(c.limits.command_bytes, 262144);
	assert_int_equal(c.limits.preauth_links, 1024);
	assert_int_equal(c.limits.preauth_per_address, 256);
	assert_int_equal(c.limits.preauth_message, 32768);
	bzp_config_free(&c);
}

static void
test_limits(void **state)
{
	struct bzp_config c;
	char err[512], text[1024];

	snprintf(text, sizeof(text), "%slimits:\n  max_links: 10\n"
	    "  sessions_per_user: 2\n  channels_per_session: 4096\n"
	    "  command_bytes: 262144\n  preauth_links: 7\n"
	    "  preauth_per_address: 3\n  preauth_message_bytes: 4096\n", good);
	assert_int_equal(load(text, &c, err, sizeof(err)), 0);
	assert_int_equal(c.limits.max_links, 10);
	assert_int_equal(c.limits.max_links_set, 1);
	assert_int_equal(c.limits.preauth_links, 7);
	assert_int_equal(c.limits.preauth_per_address, 3);
	assert_int_equal(c.limits.preauth_message, 4096);
	assert_int_equal(c.limits.sessions_per_user, 2);
	assert_int_equal(c.limits.channels_per_session, 4096);
	assert_int_equal(c.limits.command_bytes, 262144);
	bzp_config_free(&c);

	/* one given, the others keep their defaults */
	snprintf(text, sizeof(text), "%slimits:\n  command_bytes: 1\n", good);
	assert_int_equal(load(text, &c, err, sizeof(err)), 0);
	assert_int_equal(c.limits.command_bytes, 1);
	assert_int_equal(c.limits.channels_per_session, 256);
	bzp_config_free(&c);
}

/* Each bad value names the file, the key and the range. */
static void
test_bad_limits(void **state)
{
	static const char *const bad[][3] = {
		{ "max_links", "0", "1" },
		{ "max_links", "-1", "1" },
		{ "max_links", "1048577", "1" },
		{ "sessions_per_user", "two", "1" },
		{ "sessions_per_user", "", "1" },
		{ "channels_per_session", "4097", "1" },
		{ "channels_per_session", "12x", "1" },
		{ "channels_per_session", "99999999999999999999999", "1" },
		{ "command_bytes", "262145", "1" },
		{ "command_bytes", "1.5", "1" },
		{ "preauth_links", "0", "1" },
		{ "preauth_per_address", "1048577", "1" },
		{ "preauth_message_bytes", "4095", "4096" },
		{ "preauth_message_bytes", "4194329", "4096" },
	};
	struct bzp_config c;
	char err[512], text[1024], key[64];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%slimits:\n  %s: \"%s\"\n", good,
		    bad[i][0], bad[i][1]);
		assert_int_not_equal(load(text, &c, err, sizeof(err)), 0);
		snprintf(key, sizeof(key), "limits.%s must be a whole number "
		    "from %s to", bad[i][0], bad[i][2]);
		assert_non_null(strstr(err, key));
		assert_non_null(strstr(err, path));
	}
	snprintf(text, sizeof(text), "%slimits:\n  max_sessions: 3\n", good);
	assert_int_not_equal(load(text, &c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "limits.max_sessions"));
}

static void
test_optional_keys(void **state)
{
	struct bzp_config c;
	char err[512], text[1024];

	snprintf(text, sizeof(text), "%s  ca_file: ca.pem\n"
	    "  groups_claim: roles\nsession_ttl: 30m\n", good);
	assert_int_equal(load(text, &c, err, sizeof(err)), 0);
	assert_non_null(strstr(c.oidc_ca_file, "/ca.pem"));
	assert_string_equal(c.groups_claim, "roles");
	assert_int_equal(c.session_ttl, 1800);
	bzp_config_free(&c);
}

static void
test_bad_configs(void **state)
{
	struct bzp_config c;
	char err[512], text[1024];

	snprintf(text, sizeof(text), "%s", good + strlen("listen: "
	    "127.0.0.1:8443\n"));
	assert_int_not_equal(load(text, &c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "listen"));

	snprintf(text, sizeof(text), "listen: 8443\n%s", strchr(good, '\n') +
	    1);
	assert_int_not_equal(load(text, &c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "HOST:PORT"));

	snprintf(text, sizeof(text), "%ssession_ttl: forever\n", good);
	assert_int_not_equal(load(text, &c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "session_ttl"));

	snprintf(text, sizeof(text), "%sbogus: 1\n", good);
	assert_int_not_equal(load(text, &c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "bogus"));

	/* the issuer must be https */
	snprintf(text, sizeof(text), "%s", good);
	memcpy(strstr(text, "https"), "http:", 5);
	assert_int_not_equal(load(text, &c, err, sizeof(err)), 0);
}

static void
test_names_and_labels(void **state)
{
	struct bz_label *v;
	json_t *o;
	size_t n;

	assert_true(bzp_name_ok("web1", BZP_NAME_MAX));
	assert_true(bzp_name_ok("db-1.prod_x", BZP_NAME_MAX));
	assert_false(bzp_name_ok("", BZP_NAME_MAX));
	assert_false(bzp_name_ok("-rf", BZP_NAME_MAX));
	assert_false(bzp_name_ok(".hidden", BZP_NAME_MAX));
	assert_false(bzp_name_ok("a b", BZP_NAME_MAX));
	assert_false(bzp_name_ok("a/b", BZP_NAME_MAX));
	assert_false(bzp_name_ok("abc", 2));
	assert_true(bzp_label_value_ok("prod", 128));
	assert_true(bzp_label_value_ok("", 128));
	assert_true(bzp_label_value_ok("eu-west-1:a/b@c+d=e", 128));
	assert_false(bzp_label_value_ok("a b", 128));
	assert_false(bzp_label_value_ok("\"x\"", 128));

	assert_int_equal(bzp_labels_parse("{\"env\":\"prod\",\"role\":\"db\"}",
	    &o, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].key, "env");
	assert_string_equal(v[0].value, "prod");
	assert_string_equal(v[1].key, "role");
	free(v);
	json_decref(o);
	assert_int_equal(bzp_labels_parse("{}", &o, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	json_decref(o);
	assert_int_not_equal(bzp_labels_parse("[]", &o, &v, &n), 0);
	assert_int_not_equal(bzp_labels_parse("{\"a\":1}", &o, &v, &n), 0);
	assert_int_not_equal(bzp_labels_parse("{\"a\":\"b\",\"a\":\"c\"}",
	    &o, &v, &n), 0);
}

/* fdlimit.c: what soft limit to set and what max_links fits. */
static void
test_fd_fit(void **state)
{
	struct bzp_limits l = { .max_links = 16384 };
	unsigned long want;
	long links;
	char why[512];

	/* the soft limit goes up to the hard one; the default fits */
	assert_int_equal(bzp_fd_fit(1024, 65536, &l, &want, &links, why,
	    sizeof(why)), 0);
	assert_int_equal(want, 65536);
	assert_int_equal(links, 16384);
	/* never down, and not beyond what any max_links needs */
	assert_int_equal(bzp_fd_fit(70000, 70000, &l, &want, &links, why,
	    sizeof(why)), 0);
	assert_int_equal(want, 70000);
	assert_int_equal(bzp_fd_fit(1024, 1UL << 30, &l, &want, &links, why,
	    sizeof(why)), 0);
	assert_int_equal(want, BZP_MAX_LINKS_MAX + BZP_FD_RESERVE);
	/* exactly enough */
	assert_int_equal(bzp_fd_fit(1024, 16384 + BZP_FD_RESERVE, &l, &want,
	    &links, why, sizeof(why)), 0);
	assert_int_equal(links, 16384);
	/* too low, default max_links: lowered to fit, and said so */
	assert_int_equal(bzp_fd_fit(1024, 4096, &l, &want, &links, why,
	    sizeof(why)), 1);
	assert_int_equal(want, 4096);
	assert_int_equal(links, 4096 - BZP_FD_RESERVE);
	assert_non_null(strstr(why, "limits.max_links lowered from its "
	    "default 16384 to 3840"));
	/* too low for even a few links: refused */
	assert_int_equal(bzp_fd_fit(64, 15 + BZP_FD_RESERVE, &l, &want,
	    &links, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "RLIMIT_NOFILE"));
	/* too low, max_links set: refused, naming both */
	l.max_links = 5000;
	l.max_links_set = 1;
	assert_int_equal(bzp_fd_fit(1024, 4096, &l, &want, &links, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "limits.max_links is 5000, but the open "
	    "files limit (RLIMIT_NOFILE) is 4096"));
	assert_int_equal(bzp_fd_fit(1024, 5000 + BZP_FD_RESERVE, &l, &want,
	    &links, why, sizeof(why)), 0);
	assert_int_equal(links, 5000);
}

/* common/fdlimit.c: this process's soft limit goes up to the hard one, at
 * most cap, never down; put back as found at the end. */
static void
test_raise_nofile(void **state)
{
	struct rlimit rl, was, now;
	struct bz_nofile n;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
	if (was.rlim_max < 64)
		skip();
	rl = was;
	rl.rlim_cur = 32;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(bz_raise_nofile(48, &n), 0);
	assert_int_equal(n.soft, 32);
	assert_int_equal(n.hard, (unsigned long)was.rlim_max);
	assert_int_equal(n.want, 48);
	assert_int_equal(n.now, 48);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
	assert_int_equal(now.rlim_cur, 48);
	/* a lower cap does not lower it */
	assert_int_equal(bz_raise_nofile(40, &n), 0);
	assert_int_equal(n.now, 48);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
	assert_int_equal(now.rlim_cur, 48);
	/* no cap: the hard limit */
	assert_int_equal(bz_raise_nofile(ULONG_MAX, &n), 0);
	assert_int_equal(n.soft, 48);
	assert_int_equal(n.now, (unsigned long)was.rlim_max);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
	assert_int_equal(now.rlim_cur, was.rlim_max);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_config, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_optional_keys, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_configs, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_limits, setup,
		    teardown),
		cmocka_unit_test(test_names_and_labels),
		cmocka_unit_test(test_fd_fit),
		cmocka_unit_test(test_raise_nofile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
