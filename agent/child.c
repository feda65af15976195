/*
 * child.c: start a verified request's program as its user.
 *
 * The agent has other threads (the link, JWKS fetch), so after fork() the child
 * may only make plain system calls: everything that allocates or reads
 * NSS (argv, the environment, the group list) is prepared in the parent.
 * A close-on-exec pipe reports a failure before exec back to the parent,
 * which then answers `failed` with the reason instead of a silent exit.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utmp.h>

#include "log.h"
#include "util.h"

#define PATH_USER "/usr/local/bin:/usr/bin:/bin"
#define CHILD_PIPE_SIZE (256u * 1024) /* the child's stdout pipe */
#define PATH_ROOT "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_GROUPS 1024
#define REPORT_FD 3 /* the error pipe's number in the child */
#define ARG_PIECE_MAX (128u * 1024 - 1) /* MAX_ARG_STRLEN, NUL aside */
#define ARG_PIECES_MAX 9                /* commands up to ~1.1 MiB */

/* What failed in the child before exec. */
enum stage {
	ST_SIGNALS = 1, ST_SESSION, ST_STDIO, ST_FDS, ST_GROUPS, ST_GID,
	ST_UID, ST_DROP_CHECK, ST_DEATHSIG, ST_EXEC,
};

static const char *
stage_name(int st)
{
	switch (st) {
	case ST_SIGNALS: return "resetting signals";
	case ST_SESSION: return "starting a session";
	case ST_STDIO: return "setting up stdin/stdout/stderr";
	case ST_FDS: return "closing descriptors";
	case ST_GROUPS: return "setting supplementary groups";
	case ST_GID: return "setting the group id";
	case ST_UID: return "setting the user id";
	case ST_DROP_CHECK: return "checking the privilege drop";
	case ST_DEATHSIG: return "tying it to the agent's life";
	case ST_EXEC: return "executing the shell";
	default: return "starting the child";
	}
}

struct report {
	int stage;
	int err;
};

void
child_free_env(char **env)
{
	size_t i;

	if (env == NULL)
		return;
	for (i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

char **
child_build_env(const struct agent_request *req, const char *tty)
{
	size_t n = 0, i, max = 12 + REQUEST_ENV_MAX;
	const char *user = req->unix_user;
	char **env;

	if ((env = calloc(max + 1, sizeof(char *))) == NULL)
		return NULL;
#define ADD(...) do { \
	if (asprintf(&env[n], __VA_ARGS__) < 0) { \
		env[n] = NULL; \
		goto fail; \
	} \
	n++; \
} while (0)
	/* what the client sent and accept_env took first: the names set
	 * below are never among them (permit.c) */
	for (i = 0; req->env != NULL && req->env[i] != NULL && n < max - 12;
	    i++) {
		/* TERM comes from the pty request when there is one */
		if (req->pty && strncmp(req->env[i], "TERM=", 5) == 0)
			continue;
		ADD("%s", req->env[i]);
	}
	ADD("HOME=%s", req->home);
	ADD("USER=%s", user);
	ADD("LOGNAME=%s", user);
	ADD("SHELL=%s", req->shell);
	ADD("PATH=%s", req->uid == 0 ? PATH_ROOT : PATH_USER);
	if (req->pty)
		ADD("TERM=%s", req->term != NULL ? req->term : "dumb");
	/* as sshd sets them (session.c do_setup_env) */
	if (req->client_addr != NULL) {
		ADD("SSH_CLIENT=%s %u %u", req->client_addr,
		    (unsigned)req->client_port, (unsigned)req->server_port);
		ADD("SSH_CONNECTION=%s %u %s %u", req->client_addr,
		    (unsigned)req->client_port, req->server_addr != NULL ?
		    req->server_addr : "UNKNOWN", (unsigned)req->server_port);
	}
	if (tty != NULL)
		ADD("SSH_TTY=%s", tty);
#undef ADD
	return env;
 fail:
	child_free_env(env);
	return NULL;
}

/* Shells that take the POSIX script below for a long command. */
static int
posix_shell(const char *base)
{
	static const char *const names[] = { "sh", "bash", "dash", "ash",
	    "ksh", "mksh", "ksh93", "zsh", "busybox", "yash", NULL };
	size_t i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(base, names[i]) == 0)
			return 1;
	return 0;
}

/* argv: login shell "-bash", or SHELL -c COMMAND (exec and subsystem), as
 * sshd runs them. Linux takes at most ARG_PIECE_MAX bytes in one argument,
 * so a longer command (SSH allows up to 256 KiB) comes in pieces that
 * the shell joins and evaluates, with $0 and "$@" as with -c. NULL with
 * err. */
static char **
build_argv(const struct agent_request *req, char *err, size_t errlen)
{
	const char *base = strrchr(req->shell, '/');
	size_t len = req->command != NULL ? strlen(req->command) : 0;
	size_t pieces = (len + ARG_PIECE_MAX - 1) / ARG_PIECE_MAX, i;
	char **argv, script[64 + 4 * ARG_PIECES_MAX], *s = script;

	base = base != NULL ? base + 1 : req->shell;
	if (req->kind != REQ_SHELL && pieces > 1 &&
	    (pieces > ARG_PIECES_MAX || !posix_shell(base))) {
		bz_errf(err, errlen, "a command over %u bytes needs a POSIX "
		    "shell (sh, bash, zsh, ...); %s's shell is %s",
		    ARG_PIECE_MAX, req->unix_user, req->shell);
		return NULL;
	}
	if ((argv = calloc(5 + ARG_PIECES_MAX, sizeof(char *))) == NULL)
		goto oom;
	if (req->kind == REQ_SHELL) {
		if (asprintf(&argv[0], "-%s", base) < 0) {
			argv[0] = NULL;
			goto oom;
		}
		return argv;
	}
	if ((argv[0] = strdup(base)) == NULL ||
	    (argv[1] = strdup("-c")) == NULL)
		goto oom;
	if (pieces <= 1) {
		if ((argv[2] = strdup(req->command)) == NULL)
			goto oom;
		return argv;
	}
	s += sprintf(s, "__bz_cmd=");
	for (i = 0; i < pieces; i++)
		s += sprintf(s, "$%zu", i + 1);
	sprintf(s, "; set --; eval \"unset __bz_cmd; $__bz_cmd\"");
	if ((argv[2] = strdup(script)) == NULL ||
	    (argv[3] = strdup(base)) == NULL)
		goto oom;
	for (i = 0; i < pieces; i++) {
		size_t n = len - i * ARG_PIECE_MAX;

		if ((argv[4 + i] = strndup(req->command + i * ARG_PIECE_MAX,
		    n < ARG_PIECE_MAX ? n : ARG_PIECE_MAX)) == NULL)
			goto oom;
	}
	return argv;
 oom:
	child_free_env(argv);
	bz_errf(err, errlen, "out of memory");
	return NULL;
}

/* ---- in the child: system calls only ---- */

static void __attribute__((noreturn))
child_fail(int fd, int stage)
{
	struct report rep = { stage, errno };

	(void)!write(fd, &rep, sizeof(rep));
	_exit(127);
}

static int
close_from(unsigned int lowfd)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, lowfd, ~0U, 0) == 0)
		return 0;
#endif
	/* older kernels: close what could be open */
	long max = sysconf(_SC_OPEN_MAX);
	int fd;

	for (fd = (int)lowfd; fd < (max > 0 && max < 65536 ? max : 65536);
	    fd++)
		(void)close(fd);
	return 0;
}

struct child_plan {
	const struct agent_request *req;
	char **argv, **envp;
	gid_t groups[MAX_GROUPS];
	int ngroups;
	int as_root;      /* we are root: change user */
	int pty_slave;    /* -1 for pipes */
	int stdio[3];     /* pipe ends for fds 0, 1, 2 */
	int report;       /* write end of the error pipe */
	pid_t agent;      /* our pid, the child's parent */
};

static void __attribute__((noreturn))
child_main(const struct child_plan *p)
{
	static const int reset[] = { SIGPIPE, SIGCHLD, SIGINT, SIGTERM,
	    SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2,
	    SIGALRM, SIGXFSZ };
	const struct agent_request *req = p->req;
	int rep = p->report;
	sigset_t none;
	size_t i;
	int fd;

	/* Ignored signals and the mask survive exec: give the user's
	 * program the defaults (SIGPIPE especially). */
	sigemptyset(&none);
	for (i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
		if (signal(reset[i], SIG_DFL) == SIG_ERR)
			child_fail(rep, ST_SIGNALS);
	if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
		child_fail(rep, ST_SIGNALS);

	/* main() keeps fds 0-2 open, so rep is above them. */
	if (p->pty_slave >= 0) {
		/* setsid, controlling tty, fds 0-2 (as forkpty does) */
		if (login_tty(p->pty_slave) != 0)
			child_fail(rep, ST_SESSION);
	} else {
		if (setsid() < 0)
			child_fail(rep, ST_SESSION);
		for (fd = 0; fd < 3; fd++)
			if (dup2(p->stdio[fd], fd) < 0)
				child_fail(rep, ST_STDIO);
	}
	/* Keep only 0-2 and the error pipe (moved to REPORT_FD). */
	if (rep != REPORT_FD) {
		if (dup3(rep, REPORT_FD, O_CLOEXEC) < 0)
			child_fail(rep, ST_FDS);
		rep = REPORT_FD;
	}
	if (close_from(REPORT_FD + 1) != 0)
		child_fail(rep, ST_FDS);

	if (p->as_root) {
		if (setgroups((size_t)p->ngroups, p->groups) != 0)
			child_fail(rep, ST_GROUPS);
		if (setgid(req->gid) != 0)
			child_fail(rep, ST_GID);
		if (setuid(req->uid) != 0)
			child_fail(rep, ST_UID);
		/* Trust but verify: no way back to root. */
		if (getuid() != req->uid || geteuid() != req->uid ||
		    getgid() != req->gid || getegid() != req->gid ||
		    (req->uid != 0 && setuid(0) == 0)) {
			errno = EPERM;
			child_fail(rep, ST_DROP_CHECK);
		}
	}
	/* Dies with the agent (leftovers.c ends the rest of its session).
	 * A change of credentials clears the setting: after it. An agent
	 * gone before this point: die now. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		child_fail(rep, ST_DEATHSIG);
	if (getppid() != p->agent)
		_exit(127);
	umask(022);
	if (chdir(req->home) != 0)
		(void)!chdir("/");
	execve(req->shell, p->argv, p->envp);
	child_fail(rep, ST_EXEC);
}

/* ---- in the parent ---- */

/* The pty belongs to its user, group tty, mode 0620 (0600 without a tty
 * group), as sshd's pty_setowner makes it: programs that open their
 * terminal by name (screen, write, pinentry) need that. */
static int
give_tty(int slave, const struct agent_request *req)
{
	struct group gr, *g = NULL;
	char buf[4096];
	gid_t gid = req->gid;
	mode_t mode = 0600;

	if (getgrnam_r("tty", &gr, buf, sizeof(buf), &g) == 0 && g != NULL) {
		gid = g->gr_gid;
		mode = 0620;
	}
	if (fchown(slave, req->uid, gid) != 0 || fchmod(slave, mode) != 0)
		return -1;
	return 0;
}

static int
set_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int
child_spawn(const struct agent_request *req, struct child_proc *out,
    char *err, size_t errlen)
{
	struct child_plan p;
	struct winsize ws;
	struct report rep;
	char tty[PATH_MAX] = "";
	int rep_pipe[2] = { -1, -1 }, in[2] = { -1, -1 }, o[2] = { -1, -1 },
	    e[2] = { -1, -1 }, master = -1, r = BZ_ERR_INVALID;
	ssize_t got;
	pid_t pid;

	memset(out, 0, sizeof(*out));
	out->pty_fd = out->in_fd = out->out_fd = out->err_fd = -1;
	memset(&p, 0, sizeof(p));
	p.req = req;
	p.pty_slave = -1;
	p.as_root = geteuid() == 0;
	p.agent = getpid();
	if ((p.argv = build_argv(req, err, errlen)) == NULL)
		goto out;
	if (p.as_root) {
		/* initgroups() reads NSS: not allowed after fork here. */
		p.ngroups = MAX_GROUPS;
		if (getgrouplist(req->unix_user, req->gid, p.groups,
		    &p.ngroups) < 0) {
			bz_errf(err, errlen, "user %s is in too many groups",
			    req->unix_user);
			goto out;
		}
	}
	if (pipe2(rep_pipe, O_CLOEXEC) != 0) {
		bz_errf(err, errlen, "pipe: %s", strerror(errno));
		goto out;
	}
	p.report = rep_pipe[1];
	if (req->pty) {
		memset(&ws, 0, sizeof(ws));
		ws.ws_col = req->cols;
		ws.ws_row = req->rows;
		ws.ws_xpixel = req->width;
		ws.ws_ypixel = req->height;
		if (openpty(&master, &p.pty_slave, NULL, NULL, &ws) != 0 ||
		    set_nonblock_cloexec(master) != 0 ||
		    fcntl(p.pty_slave, F_SETFD, FD_CLOEXEC) < 0 ||
		    ttyname_r(p.pty_slave, tty, sizeof(tty)) != 0 ||
		    (p.as_root && give_tty(p.pty_slave, req) != 0)) {
			bz_errf(err, errlen, "cannot allocate a pty: %s",
			    strerror(errno));
			goto out;
		}
	} else {
		if (pipe2(in, O_CLOEXEC) != 0 || pipe2(o, O_CLOEXEC) != 0 ||
		    pipe2(e, O_CLOEXEC) != 0 || set_nonblock_cloexec(in[1]) ||
		    set_nonblock_cloexec(o[0]) || set_nonblock_cloexec(e[0])) {
			bz_errf(err, errlen, "pipe: %s", strerror(errno));
			goto out;
		}
		p.stdio[0] = in[0];
		p.stdio[1] = o[1];
		p.stdio[2] = e[1];
		/* The child's output comes in fewer, fuller reads (whole
		 * DATA frames) through a pipe larger than the 64 KiB
		 * default. Pages are used only while data waits; best
		 * effort (pipe-user-pages limits may refuse). The same for
		 * stdin measured no gain. */
		(void)fcntl(o[0], F_SETPIPE_SZ, (int)CHILD_PIPE_SIZE);
	}
	/* after the pty: SSH_TTY names it */
	if ((p.envp = child_build_env(req, req->pty ? tty : NULL)) == NULL) {
		bz_errf(err, errlen, "out of memory");
		r = BZ_ERR_ALLOC;
		goto out;
	}
	if ((pid = fork()) < 0) {
		bz_errf(err, errlen, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child_main(&p);

	/* Our copies of the child's ends go; then wait for exec or failure. */
	close_fd(&rep_pipe[1]);
	close_fd(&p.pty_slave);
	close_fd(&in[0]);
	close_fd(&o[1]);
	close_fd(&e[1]);
	do {
		got = read(rep_pipe[0], &rep, sizeof(rep));
	} while (got < 0 && errno == EINTR);
	if (got == (ssize_t)sizeof(rep)) {
		/* exec never happened: reap it here (it _exit'ed at once) */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		bz_errf(err, errlen, "%s as %s failed: %s",
		    stage_name(rep.stage), req->unix_user, strerror(rep.err));
		goto out;
	}
	out->pid = pid;
	out->pty_fd = master;
	out->in_fd = in[1];
	out->out_fd = o[0];
	out->err_fd = e[0];
	master = in[1] = o[0] = e[0] = -1;
	r = BZ_OK;
 out:
	close_fd(&rep_pipe[0]);
	close_fd(&rep_pipe[1]);
	close_fd(&p.pty_slave);
	close_fd(&master);
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&o[0]);
	close_fd(&o[1]);
	close_fd(&e[0]);
	close_fd(&e[1]);
	child_free_env(p.argv);
	child_free_env(p.envp);
	return r;
}
