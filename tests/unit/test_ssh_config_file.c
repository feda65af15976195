/*
 * test_ssh_config_file.c: `bzsshd ssh-config --install` edits only its
 * own block (bzsshd/ssh_config_file.c): first in a file, replaced in
 * place, idempotent, a half block refused, the file's mode kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "bzsshd.h"

#define B "# >>> bz >>>"
#define E "# <<< bz <<<"

static void
test_merge(void **state)
{
	char *out = NULL, *again = NULL;

	/* a new file: the block alone */
	assert_int_equal(bz_ssh_config_merge(NULL, B, E, "Host *.bz\n", &out),
	    0);
	assert_string_equal(out, B "\nHost *.bz\n" E "\n");
	free(out);
	/* first, before what was there (a Host * must not win) */
	assert_int_equal(bz_ssh_config_merge("Host *\n    User root\n", B, E,
	    "Host *.bz\n", &out), 0);
	assert_string_equal(out, B "\nHost *.bz\n" E "\n\nHost *\n"
	    "    User root\n");
	/* again with the same block: the same text */
	assert_int_equal(bz_ssh_config_merge(out, B, E, "Host *.bz\n",
	    &again), 0);
	assert_string_equal(again, out);
	free(again);
	/* a new block replaces the old one in place, the rest untouched */
	assert_int_equal(bz_ssh_config_merge("Host a\n" B "\nold\n" E
	    "\nHost b\n", B, E, "new\n", &again), 0);
	assert_string_equal(again, "Host a\n" B "\nnew\n" E "\nHost b\n");
	free(again);
	free(out);
	/* markers inside a line are not markers */
	assert_int_equal(bz_ssh_config_merge("x " B "\n", B, E, "n\n", &out),
	    0);
	assert_string_equal(out, B "\nn\n" E "\n\nx " B "\n");
	free(out);
	/* a begin without its end: refused, nothing guessed */
	assert_int_equal(bz_ssh_config_merge("Host a\n" B "\nold\n", B, E,
	    "new\n", &out), BZ_ERR_FORMAT);
	assert_null(out);
}

static void
test_install_file(void **state)
{
	char path[128], err[256], buf[256];
	struct stat st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/tmp/bz-sshcfg-%d", (int)getpid());
	unlink(path);
	assert_int_equal(bz_ssh_config_install(path, B, E, "Host *.bz\n", err,
	    sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* the user's mode is kept */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(bz_ssh_config_install(path, B, E, "Host *.corp\n",
	    err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_non_null(f = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_string_equal(buf, B "\nHost *.corp\n" E "\n");
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_install_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
