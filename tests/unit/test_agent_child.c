/*
 * test_agent_child.c: bzagent's child start-up (agent/child.c) as the
 * user running the test: SHELL -c COMMAND on pipes (stdout and stderr
 * apart, stdin through), on a pty of a given size, the login environment,
 * the login shell's argv[0], a failure before exec reported back,
 * commands longer than Linux takes in one argument, and a child that dies
 * with its agent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent.h"

/* A request to run command (NULL: login shell) as ourselves. */
static void
make_req(struct agent_request *r, const char *command, int pty)
{
	struct passwd *pw = getpwuid(getuid());

	assert_non_null(pw);
	memset(r, 0, sizeof(*r));
	r->sid = 1;
	r->ch = 1;
	r->kind = command == NULL ? REQ_SHELL : REQ_EXEC;
	r->command = command != NULL ? strdup(command) : NULL;
	r->user = strdup("alice@example.com");
	r->unix_user = strdup(pw->pw_name);
	r->uid = pw->pw_uid;
	r->gid = pw->pw_gid;
	r->home = strdup("/");
	r->shell = strdup("/bin/sh");
	r->env = calloc(3, sizeof(char *));
	r->env[0] = strdup("LANG=C.UTF-8");
	if (pty) {
		r->pty = 1;
		r->term = strdup("xterm-test");
		r->cols = 101;
		r->rows = 37;
	}
}

/* Read fd to EOF (or EIO on a pty) into buf. */
static size_t
read_all(int fd, char *buf, size_t cap)
{
	struct pollfd p = { fd, POLLIN, 0 };
	size_t n = 0;
	ssize_t r;

	for (;;) {
		assert_true(poll(&p, 1, 10000) > 0);
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	return n;
}

static int
wait_status(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void
test_pipes(void **state)
{
	struct agent_request r;
	struct child_proc cp;
	char err[256], out[4096], errb[4096];
	int st;

	make_req(&r, "read x; echo \"got $x\"; echo oops >&2; "
	    "echo \"$HOME $LANG ${TERM:-noterm}\"; exit 7", 0);
	assert_int_equal(child_spawn(&r, &cp, err, sizeof(err)), 0);
	assert_true(cp.pid > 0);
	assert_int_equal(cp.pty_fd, -1);
	assert_int_equal(write(cp.in_fd, "hello\n", 6), 6);
	close(cp.in_fd);
	read_all(cp.out_fd, out, sizeof(out));
	read_all(cp.err_fd, errb, sizeof(errb));
	assert_string_equal(out, "got hello\n/ C.UTF-8 noterm\n");
	assert_string_equal(errb, "oops\n");
	st = wait_status(cp.pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 7);
	/* our ends are non-blocking and close-on-exec */
	assert_true(fcntl(cp.out_fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(cp.out_fd, F_GETFD) & FD_CLOEXEC);
	close(cp.out_fd);
	close(cp.err_fd);
	agent_request_free(&r);
}

static void
test_new_session_and_clean_fds(void **state)
{
	struct agent_request r;
	struct child_proc cp;
	char err[256], out[4096], cmd[256];
	int leak = open("/dev/null", O_RDONLY); /* not close-on-exec */

	assert_true(leak > 2);
	/* own session and process group; no fd of ours but 0-2 */
	snprintf(cmd, sizeof(cmd), "read -r pid comm st pp pg se rest "
	    "</proc/$$/stat; echo \"$pg $se\"; "
	    "ls /proc/self/fd | sort -n | tr '\\n' ' '");
	make_req(&r, cmd, 0);
	assert_int_equal(child_spawn(&r, &cp, err, sizeof(err)), 0);
	close(cp.in_fd);
	read_all(cp.out_fd, out, sizeof(out));
	(void)wait_status(cp.pid);
	snprintf(cmd, sizeof(cmd), "%d %d\n0 1 2 3 ", (int)cp.pid,
	    (int)cp.pid);
	/* fd 3 is ls's own directory handle */
	assert_string_equal(out, cmd);
	close(cp.out_fd);
	close(cp.err_fd);
	close(leak);
	agent_request_free(&r);
}

static void
test_pty(void **state)
{
	struct agent_request r;
	struct child_proc cp;
	char err[256], out[4096];
	int st;

	make_req(&r, "stty size; tty; echo $TERM", 1);
	assert_int_equal(child_spawn(&r, &cp, err, sizeof(err)), 0);
	assert_true(cp.pty_fd >= 0);
	assert_int_equal(cp.in_fd, -1);
	assert_int_equal(cp.out_fd, -1);
	read_all(cp.pty_fd, out, sizeof(out));
	assert_non_null(strstr(out, "37 101\r\n/dev/pts/"));
	assert_non_null(strstr(out, "xterm-test\r\n"));
	st = wait_status(cp.pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(cp.pty_fd);
	agent_request_free(&r);
}

static void
test_login_shell(void **state)
{
	struct agent_request r;
	struct child_proc cp;
	char err[256], out[4096];

	/* sh reads commands from stdin; $0 shows the login-shell name */
	make_req(&r, NULL, 0);
	assert_int_equal(child_spawn(&r, &cp, err, sizeof(err)), 0);
	assert_int_equal(write(cp.in_fd, "echo \"$0\"\n", 10), 10);
	close(cp.in_fd);
	read_all(cp.out_fd, out, sizeof(out));
	assert_string_equal(out, "-sh\n");
	(void)wait_status(cp.pid);
	close(cp.out_fd);
	close(cp.err_fd);
	agent_request_free(&r);
}

static void
test_exec_failure_reported(void **state)
{
	struct agent_request r;
	struct child_proc cp;
	char err[256] = "";

	make_req(&r, "true", 0);
	free(r.shell);
	r.shell = strdup("/nonexistent/shell");
	assert_int_not_equal(child_spawn(&r, &cp, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "executing the shell"));
	assert_non_null(strstr(err, "No such file or directory"));
	/* the failed child was reaped already */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	agent_request_free(&r);
}

/* A command of 300,000 bytes (over 128 KiB, Linux's most for one
 * argument) runs whole, with $0 and no positional parameters, as -c. */
static void
test_long_command(void **state)
{
	struct agent_request r;
	struct child_proc cp;
	char err[256], out[4096], errb[4096], *cmd;
	size_t n = 300000, pre;
	int st;

	assert_non_null(cmd = malloc(n + 1));
	pre = (size_t)sprintf(cmd, "echo \"$0 $# ${__bz_cmd-unset}\"; "
	    "x='");
	memset(cmd + pre, 'y', n - pre);
	memcpy(cmd + n - 32, "'; printf '%s' \"${#x}\"; exit 3  ", 32);
	cmd[n] = '\0';
	make_req(&r, cmd, 0);
	free(cmd);
	assert_int_equal(child_spawn(&r, &cp, err, sizeof(err)), 0);
	close(cp.in_fd);
	read_all(cp.out_fd, out, sizeof(out));
	read_all(cp.err_fd, errb, sizeof(errb));
	assert_string_equal(errb, "");
	/* the quoted y's: n - pre - 32 of them */
	snprintf(errb, sizeof(errb), "sh 0 unset\n%zu", n - pre - 32);
	assert_string_equal(out, errb);
	st = wait_status(cp.pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
	close(cp.out_fd);
	close(cp.err_fd);
	agent_request_free(&r);

	/* a shell that may not read that script is refused by name */
	make_req(&r, "true", 0);
	free(r.command);
	assert_non_null(r.command = calloc(1, 200000));
	memset(r.command, ':', 199999);
	free(r.shell);
	r.shell = strdup("/usr/bin/fish");
	assert_int_not_equal(child_spawn(&r, &cp, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "needs a POSIX shell"));
	assert_non_null(strstr(err, "/usr/bin/fish"));
	agent_request_free(&r);
}

/* The child gets SIGKILL when its agent dies: here a middle process plays
 * the agent and exits; the command (a sleep) must not outlive it. */
static void
test_dies_with_agent(void **state)
{
	struct agent_request r;
	struct child_proc cp;
	char err[256];
	int pfd[2], st, i;
	pid_t mid, pid = 0;

	assert_int_equal(pipe(pfd), 0);
	/* we become the orphans' reaper, to see the sleep end */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	if ((mid = fork()) == 0) {
		make_req(&r, "exec sleep 60", 0);
		if (child_spawn(&r, &cp, err, sizeof(err)) != 0)
			_exit(1);
		(void)!write(pfd[1], &cp.pid, sizeof(cp.pid));
		_exit(0);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &pid, sizeof(pid)), sizeof(pid));
	close(pfd[0]);
	assert_int_equal(waitpid(mid, &st, 0), mid);
	assert_int_equal(WEXITSTATUS(st), 0);
	/* reparented to us, and killed */
	for (i = 0; i < 500 && waitpid(pid, &st, WNOHANG) == 0; i++)
		usleep(10000);
	assert_true(i < 500);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipes),
		cmocka_unit_test(test_new_session_and_clean_fds),
		cmocka_unit_test(test_pty),
		cmocka_unit_test(test_login_shell),
		cmocka_unit_test(test_exec_failure_reported),
		cmocka_unit_test(test_long_command),
		cmocka_unit_test(test_dies_with_agent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
