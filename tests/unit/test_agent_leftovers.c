/*
 * test_agent_leftovers.c: what a killed agent left running is ended by
 * the next one (agent/leftovers.c). A "channel" here is a process that
 * starts its own session and a background child, as a shell's job; the
 * test plays a killed agent by dropping its record without ending it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent.h"

static int audited, audited_n;

/* audit_log.c's, counted here: the restarted agent records what it ended */
void
agent_audit_leftovers(struct bz_audit *au, pid_t pid, int n)
{
	(void)au;
	(void)pid;
	audited++;
	audited_n += n;
}

/* A session leader with one background child; both sleep. The leader's
 * pid and its child's come back through a pipe. We are the subreaper, so
 * both are our children to reap whichever way they end. */
static pid_t
start_session(pid_t *job)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		pid_t j;

		close(p[0]);
		if (setsid() < 0)
			_exit(1);
		if ((j = fork()) == 0) {
			execlp("sleep", "sleep", "300", (char *)NULL);
			_exit(1);
		}
		(void)!write(p[1], &j, sizeof(j));
		execlp("sleep", "sleep", "301", (char *)NULL);
		_exit(1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], job, sizeof(*job)), sizeof(*job));
	close(p[0]);
	usleep(50000); /* both exec'ed */
	return pid;
}

static int
killed(pid_t pid)
{
	int st, i;

	for (i = 0; i < 300; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
		usleep(10000);
	}
	return 0;
}

static void
path_in_tmp(char *path, size_t n, const char *name)
{
	snprintf(path, n, "/tmp/bz-leftovers-%d-%s", (int)getpid(), name);
	unlink(path);
}

static void
test_restart_ends_leftovers(void **state)
{
	struct leftovers *l = NULL;
	char path[128], err[256];
	pid_t a, ajob, b, bjob;

	path_in_tmp(path, sizeof(path), "state");
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_int_equal(leftovers_open(path, NULL, &l, err, sizeof(err)), 0);
	a = start_session(&ajob);
	b = start_session(&bjob);
	assert_int_equal(leftovers_add(l, a), 0);
	assert_int_equal(leftovers_add(l, b), 0);
	/* b's channel ended normally: no longer recorded, its job may stay */
	leftovers_remove(l, b);
	/* the agent is killed: its record stays behind */
	leftovers_free(l);
	audited = audited_n = 0;
	assert_int_equal(leftovers_open(path, NULL, &l, err, sizeof(err)), 0);
	assert_true(killed(a));
	assert_true(killed(ajob));
	assert_int_equal(audited, 1);
	assert_int_equal(audited_n, 2);
	/* b was not touched */
	assert_int_equal(kill(b, 0), 0);
	assert_int_equal(kill(bjob, 0), 0);

	/* at shutdown, what is recorded ends too */
	assert_int_equal(leftovers_add(l, b), 0);
	leftovers_end_all(l);
	assert_true(killed(b));
	assert_true(killed(bjob));
	leftovers_free(l);
	unlink(path);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

/* A recorded pid whose start time is another's (reused) is left alone,
 * and so is a record others could have written. */
static void
test_reused_pid_and_foreign_file_spared(void **state)
{
	struct leftovers *l = NULL;
	char path[128], err[256];
	pid_t a, ajob;
	FILE *f;

	path_in_tmp(path, sizeof(path), "reused");
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	a = start_session(&ajob);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "# comment\n%d 1\nnonsense line\n", (int)a);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
	audited = 0;
	assert_int_equal(leftovers_open(path, NULL, &l, err, sizeof(err)), 0);
	assert_int_equal(audited, 0);
	assert_int_equal(kill(a, 0), 0);
	assert_int_equal(kill(ajob, 0), 0);
	leftovers_free(l);

	/* the right start time, but a file writable by others */
	assert_int_equal(leftovers_open(path, NULL, &l, err, sizeof(err)), 0);
	assert_int_equal(leftovers_add(l, a), 0);
	leftovers_free(l);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(leftovers_open(path, NULL, &l, err, sizeof(err)), 0);
	assert_int_equal(kill(a, 0), 0);
	assert_int_equal(kill(ajob, 0), 0);
	/* the file it wrote is ours again, 0600 */
	{
		struct stat st;

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	assert_int_equal(leftovers_add(l, a), 0);
	leftovers_end_all(l);
	assert_true(killed(a));
	assert_true(killed(ajob));
	leftovers_free(l);
	unlink(path);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restart_ends_leftovers),
		cmocka_unit_test(test_reused_pid_and_foreign_file_spared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
