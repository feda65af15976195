/* test_classify.c: which exec commands are scp's server side
 * (common/classify.c, policies/README.md "How a request is classified"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "classify.h"

static void
test_scp_server_side(void **state)
{
	/* what OpenSSH 9's scp -O sends, every flag combination it uses */
	static const char *const scp[] = {
		"scp -t /tmp/x",
		"scp -f /tmp/x",
		"scp -v -r -p -d -t /tmp/dir",
		"scp -r -f -- -odd-name",
		"scp -t -- '/tmp/name with spaces'",
		"scp -f /tmp/*.log",
		"scp -f ~/\"quoted dir\"/f",
		"/usr/bin/scp -t .",
		"scp -pt .",
		"  scp\t-t\tx  ",
		"scp -q -t caf\xc3\xa9",
	};
	size_t i;

	for (i = 0; i < sizeof(scp) / sizeof(scp[0]); i++) {
		print_message("%s\n", scp[i]);
		assert_int_equal(bz_classify_exec(scp[i]), BZ_ACTION_SCP);
	}
}

static void
test_everything_else_is_exec(void **state)
{
	static const char *const exec[] = {
		"ls -l",
		"scp",                          /* no direction */
		"scp -t",                       /* no path */
		"scp /a /b",                    /* the client, not the server */
		"scp -oProxyCommand=sh host:a b",
		"scp -S /bin/sh -t x",          /* not a server flag */
		"scp -t x; rm -rf ~",           /* more than one command */
		"scp -t x && id",
		"scp -t x | tee y",
		"scp -t $(id)",
		"scp -t `id`",
		"scp -t x > y",
		"scp -t x\nid",
		"scpx -t x",
		"myscp -t x",
		"./scp -t x",                   /* not scp itself */
		"/tmp/not-scp -t x",
		"rsync --server -t . x",
		"sh -c 'scp -t x'",
		"scp - -t x",
		"",
		NULL,
	};
	size_t i;

	for (i = 0; i < sizeof(exec) / sizeof(exec[0]); i++) {
		print_message("%s\n", exec[i] != NULL ? exec[i] : "(null)");
		assert_int_equal(bz_classify_exec(exec[i]), BZ_ACTION_EXEC);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scp_server_side),
		cmocka_unit_test(test_everything_else_is_exec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
