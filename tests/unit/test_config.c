/* test_config.c: strict YAML config loading with file:line:column errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* By path: the build's top directory has autoconf's config.h, and it comes
 * first in the include path. */
#include "../../common/config.h"
#include "buf.h"

static char tmpdir[256], path[512];

static const char *const known[] = {
	"listen", "tls_cert", "audit_log", "oidc.issuer", "oidc.audience",
	"oidc.ca_file", "deep.a.b", NULL,
};

static int
setup(void **state)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/bz-config-XXXXXX", t ? t : "/tmp");
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

/* Load text; returns the result code, err holds the message. */
static int
load(const char *text, struct bz_config **cfg, char *err, size_t errlen)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	err[0] = '\0';
	return bz_config_load(path, known, cfg, err, errlen);
}

/* Expect a load error whose message is "PATH:" followed by want. */
static void
expect_error(const char *text, const char *want)
{
	struct bz_config *cfg = (struct bz_config *)1;
	char err[512], full[1024];

	assert_int_not_equal(load(text, &cfg, err, sizeof(err)), 0);
	assert_null(cfg);
	snprintf(full, sizeof(full), "%s:%s", path, want);
	assert_string_equal(err, full);
}

static void
test_nested(void **state)
{
	struct bz_config *cfg;
	char err[512], *p;

	assert_int_equal(load(
	    "# bzproxy\n"
	    "listen: 127.0.0.1:8443\n"
	    "tls_cert: cert.pem\n"
	    "audit_log: /var/log/bz/audit.jsonl\n"
	    "oidc:\n"
	    "  issuer: \"https://idp.example\"\n"
	    "  audience: 'bz-cli'\n"
	    "deep:\n"
	    "  a:\n"
	    "    b: 42\n", &cfg, err, sizeof(err)), 0);
	assert_string_equal(bz_config_get(cfg, "listen"), "127.0.0.1:8443");
	assert_string_equal(bz_config_get(cfg, "oidc.issuer"),
	    "https://idp.example");
	assert_string_equal(bz_config_get(cfg, "oidc.audience"), "bz-cli");
	assert_string_equal(bz_config_get(cfg, "deep.a.b"), "42");
	assert_null(bz_config_get(cfg, "oidc.ca_file"));
	assert_null(bz_config_get(cfg, "oidc"));
	assert_string_equal(bz_config_require(cfg, "listen", err, sizeof(err)),
	    "127.0.0.1:8443");
	/* Relative paths resolve against the config file's directory. */
	p = bz_config_path(cfg, "tls_cert");
	assert_non_null(p);
	assert_non_null(strstr(p, "/bz-config-"));
	assert_int_equal(p[0], '/');
	assert_string_equal(strrchr(p, '/'), "/cert.pem");
	free(p);
	p = bz_config_path(cfg, "audit_log");
	assert_string_equal(p, "/var/log/bz/audit.jsonl");
	free(p);
	assert_null(bz_config_path(cfg, "oidc.ca_file"));
	bz_config_free(cfg);
}

static void
test_flow_and_empty(void **state)
{
	struct bz_config *cfg;
	char err[512];

	assert_int_equal(load("oidc: {issuer: x, audience: y}\n", &cfg, err,
	    sizeof(err)), 0);
	assert_string_equal(bz_config_get(cfg, "oidc.audience"), "y");
	bz_config_free(cfg);
	/* A file of comments only is an empty config. */
	assert_int_equal(load("# nothing\n", &cfg, err, sizeof(err)), 0);
	assert_null(bz_config_get(cfg, "listen"));
	bz_config_free(cfg);
	assert_int_equal(load("listen: \"\"\n", &cfg, err, sizeof(err)), 0);
	assert_string_equal(bz_config_get(cfg, "listen"), "");
	bz_config_free(cfg);
}

static void
test_unknown_key(void **state)
{
	expect_error("listen: x\noidc:\n  isuer: y\n",
	    "3:3: unknown setting \"oidc.isuer\"");
	expect_error("listn: x\n", "1:1: unknown setting \"listn\"");
	expect_error("listen:\n  port: 1\n",
	    "2:3: \"listen\" takes a single value, not a mapping");
	expect_error("oidc: x\n",
	    "1:7: \"oidc\" needs nested settings, not a single value");
}

static void
test_duplicates(void **state)
{
	expect_error("listen: a\ntls_cert: b\nlisten: c\n",
	    "3:1: duplicate setting \"listen\"");
	expect_error("oidc:\n  issuer: a\noidc:\n  audience: b\n",
	    "3:1: duplicate setting \"oidc\"");
	expect_error("oidc:\n  issuer: a\n  issuer: b\n",
	    "3:3: duplicate setting \"oidc.issuer\"");
}

static void
test_rejected_yaml(void **state)
{
	expect_error("listen:\n  - a\n  - b\n",
	    "2:3: sequences are not allowed");
	expect_error("listen: [a]\n", "1:9: sequences are not allowed");
	expect_error("- a\n", "1:1: sequences are not allowed");
	expect_error("listen: &x a\ntls_cert: *x\n",
	    "1:9: anchors are not allowed");
	expect_error("oidc: &o\n  issuer: a\n", "1:7: anchors are not allowed");
	expect_error("tls_cert: *x\n", "1:11: aliases are not allowed");
	expect_error("listen: !!str a\n", "1:9: tags are not allowed");
	expect_error("listen: a\n---\ntls_cert: b\n",
	    "2:1: multiple documents are not allowed");
	expect_error("just a string\n", "1:1: the top level must be a mapping");
	expect_error("listen:\n", "1:8: \"listen\" has no value");
	expect_error("? [a]\n: b\n", "1:3: sequences are not allowed");
	expect_error("? {a: b}\n: c\n", "1:3: keys must be plain scalars");
}

static void
test_syntax_error(void **state)
{
	struct bz_config *cfg;
	char err[512], want[600];

	assert_int_not_equal(load("listen: a\n  bad: [\n", &cfg, err,
	    sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s:2:", path);
	assert_int_equal(strncmp(err, want, strlen(want)), 0);
}

static void
test_missing(void **state)
{
	struct bz_config *cfg;
	char err[512], want[600];

	assert_int_equal(load("listen: a\n", &cfg, err, sizeof(err)), 0);
	assert_null(bz_config_require(cfg, "oidc.issuer", err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: missing required setting oidc.issuer",
	    path);
	assert_string_equal(err, want);
	bz_config_free(cfg);
	/* A missing file names itself. */
	assert_int_equal(bz_config_load("/nonexistent/x.yaml", known, &cfg, err,
	    sizeof(err)), BZ_ERR_INVALID);
	assert_string_equal(err, "/nonexistent/x.yaml: No such file or "
	    "directory");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_flow_and_empty),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_rejected_yaml),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_missing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
