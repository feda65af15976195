/*
 * leftovers.c: no process of a channel outlives the agent.
 *
 * Each child starts its own session (setsid, or login_tty for a pty), so
 * a channel's processes share the session id of its first process; a
 * shell's background jobs in other process groups too. The leaders of
 * running channels are kept in a file (pid and start time, rewritten
 * whole on each change). A killed agent cannot end them itself: its
 * children get SIGKILL from the kernel (PR_SET_PDEATHSIG, child.c), and a
 * watcher process, forked before the agent has threads, waits for the end
 * of a pipe only the agent holds, then ends whatever is still in the
 * recorded sessions. Should the watcher die too, the next agent does the
 * same at start (and audits it). A process that starts a session of its own (setsid,
 * daemons) leaves ours, as it leaves sshd's; under systemd the service's
 * cgroup ends those (KillMode=control-group).
 *
 * The start time tells a leader from a later process that got its pid.
 * While any process is in a session, the kernel does not hand its id out
 * again, so members of a session whose leader is gone are ours.
 */
#include "agent.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define STAT_MAX 2048          /* /proc/PID/stat: comm is at most 16 bytes */
#define FILE_MAX (256u * 1024) /* the state file, read at start */
#define KILL_ROUNDS 200        /* scans of /proc per session, 5 ms apart */
#define HEADER "# bzagent: sessions of running channels (leader pid, " \
	"start time in clock ticks); a restarted agent ends them\n"

struct leader {
	pid_t pid;
	unsigned long long start;
};

struct leftovers {
	char *path;
	struct leader *v;
	size_t n, cap;
};

/* A decimal number, nothing else: 0 or -1. */
static int
parse_ull(const char *s, unsigned long long *v)
{
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno != 0 || (*end != '\0' && *end != '\n') ? -1 : 0;
}

/* Session id and start time of pid, from /proc: 0, or -1 when it is gone,
 * a zombie (only its parent's wait ends it) or unreadable. comm may hold
 * spaces and ')': fields start after the last ')'. */
static int
proc_stat(pid_t pid, pid_t *sid, unsigned long long *start)
{
	char path[64], buf[STAT_MAX], *p, *tok, *save = NULL;
	unsigned long long v = 0;
	ssize_t got;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return -1;
	buf[got] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	/* after ')': state(3) ppid(4) pgrp(5) session(6) ... starttime(22) */
	for (i = 3, tok = strtok_r(p + 1, " ", &save); tok != NULL;
	    i++, tok = strtok_r(NULL, " ", &save)) {
		if (i == 3 && strcmp(tok, "Z") == 0)
			return -1;
		if (i != 6 && i != 22)
			continue;
		if (parse_ull(tok, &v) != 0)
			return -1;
		if (i == 6)
			*sid = (pid_t)v;
		else {
			*start = v;
			return 0;
		}
	}
	return -1;
}

/* Every process of session l->pid gets SIGKILL, until none is left.
 * Returns how many were killed; -1 when the leader's pid now belongs to
 * another process (nothing of ours is left). */
static int
end_session(const struct leader *l)
{
	struct timespec step = { 0, 5 * 1000000L };
	unsigned long long start;
	struct dirent *d;
	pid_t sid, pid, me = getpid();
	int round, found, killed = 0;
	DIR *dir;

	for (round = 0; round < KILL_ROUNDS; round++) {
		if (proc_stat(l->pid, &sid, &start) == 0 &&
		    (sid != l->pid || start != l->start))
			return killed > 0 ? killed : -1;
		if ((dir = opendir("/proc")) == NULL)
			return killed;
		found = 0;
		while ((d = readdir(dir)) != NULL) {
			if (!isdigit((unsigned char)d->d_name[0]))
				continue;
			pid = (pid_t)strtol(d->d_name, NULL, 10);
			if (pid <= 1 || pid == me ||
			    proc_stat(pid, &sid, &start) != 0 ||
			    sid != l->pid)
				continue;
			found++;
			if (kill(pid, SIGKILL) == 0)
				killed++;
		}
		closedir(dir);
		if (found == 0)
			break;
		nanosleep(&step, NULL);
	}
	return killed;
}

/* The file, rewritten whole (a new file renamed over the old). Not
 * fsync'ed: after a crash of the machine nothing it names is running. */
static int
save(const struct leftovers *l)
{
	char err[256], *text = NULL;
	size_t len = 0, i;
	FILE *f;
	int r = -1;

	if ((f = open_memstream(&text, &len)) == NULL)
		goto out;
	fputs(HEADER, f);
	for (i = 0; i < l->n; i++)
		fprintf(f, "%d %llu\n", (int)l->v[i].pid, l->v[i].start);
	if (fclose(f) != 0)
		goto out;
	if (bz_write_file_atomic(l->path, text, len, 0600, 0, err,
	    sizeof(err)) != 0) {
		bz_warn("cannot record the running channels: %s", err);
		goto out;
	}
	r = 0;
 out:
	free(text);
	return r;
}

/* One "PID START" line; 0, or -1 when malformed. */
static int
parse_line(const char *line, struct leader *out)
{
	unsigned long long pid, start;
	char a[32], b[32], extra;

	if (sscanf(line, "%31s %31s %c", a, b, &extra) != 2 ||
	    parse_ull(a, &pid) != 0 || parse_ull(b, &start) != 0 ||
	    pid <= 1 || pid > 4194304)
		return -1;
	out->pid = (pid_t)pid;
	out->start = start;
	return 0;
}

/* End the sessions a previous agent recorded. The file must be ours and
 * not writable by others: it names processes to kill. */
static void
end_recorded(const char *path, struct bz_audit *audit, const char *whose)
{
	struct leader l;
	struct stat st;
	char *line = NULL;
	size_t cap = 0, total = 0;
	ssize_t len;
	unsigned lineno = 0;
	FILE *f;
	int fd, n;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno != ENOENT)
			bz_warn("%s: %s", path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) != 0 || st.st_uid != geteuid() ||
	    (st.st_mode & 022) != 0 || !S_ISREG(st.st_mode)) {
		bz_warn("%s: not a file of ours, or writable by others: "
		    "ignored", path);
		close(fd);
		return;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return;
	}
	while ((len = getline(&line, &cap, f)) > 0 && total < FILE_MAX) {
		total += (size_t)len;
		lineno++;
		if (line[0] == '#')
			continue;
		if (parse_line(line, &l) != 0) {
			bz_warn("%s:%u: not \"PID START\": ignored", path,
			    lineno);
			continue;
		}
		if ((n = end_session(&l)) > 0) {
			bz_warn("ended %d process(es) left by %s in the "
			    "session of pid %d", n, whose, (int)l.pid);
			agent_audit_leftovers(audit, l.pid, n);
		}
	}
	free(line);
	fclose(f);
}

int
leftovers_watch(const char *path, void (*wipe)(void *), void *arg)
{
	static const int quiet[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE,
	    SIGQUIT };
	char buf[64], *own;
	ssize_t n;
	int p[2];
	size_t i;
	pid_t pid;

	if ((own = strdup(path)) == NULL)
		return -1;
	if (pipe2(p, O_CLOEXEC) != 0) {
		free(own);
		return -1;
	}
	if ((pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		free(own);
		return -1;
	}
	if (pid > 0) {
		close(p[0]);
		free(own);
		return p[1]; /* held until the agent's end */
	}
	/* the watcher: a terminal's Ctrl-C or a SIGTERM is for the agent */
	close(p[1]);
	for (i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++)
		signal(quiet[i], SIG_IGN);
	(void)prctl(PR_SET_NAME, "bzagent-watch");
	wipe(arg); /* the agent's keys have no business here (nor path) */
	while ((n = read(p[0], buf, sizeof(buf))) != 0)
		if (n < 0 && errno != EINTR)
			break;
	/* a clean exit left the record empty; a killed agent did not */
	end_recorded(own, NULL, "the agent that died");
	_exit(0);
}

int
leftovers_open(const char *path, struct bz_audit *audit,
    struct leftovers **out, char *err, size_t errlen)
{
	struct leftovers *l;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->path = strdup(path)) == NULL) {
		free(l);
		bz_errf(err, errlen, "out of memory");
		return BZ_ERR_ALLOC;
	}
	end_recorded(path, audit, "a previous run");
	if (save(l) != 0) {
		bz_errf(err, errlen, "%s: cannot write: %s", path,
		    strerror(errno));
		leftovers_free(l);
		return BZ_ERR_INVALID;
	}
	*out = l;
	return BZ_OK;
}

int
leftovers_add(struct leftovers *l, pid_t leader)
{
	struct leader *v;
	pid_t sid;

	if (l == NULL)
		return BZ_OK;
	if (l->n == l->cap) {
		if ((v = reallocarray(l->v, l->cap ? l->cap * 2 : 16,
		    sizeof(*v))) == NULL)
			return BZ_ERR_ALLOC;
		l->v = v;
		l->cap = l->cap ? l->cap * 2 : 16;
	}
	if (proc_stat(leader, &sid, &l->v[l->n].start) != 0)
		return BZ_OK; /* already gone: nothing to end later */
	l->v[l->n++].pid = leader;
	return save(l) == 0 ? BZ_OK : BZ_ERR_INVALID;
}

void
leftovers_remove(struct leftovers *l, pid_t leader)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++)
		if (l->v[i].pid == leader) {
			l->v[i] = l->v[--l->n];
			(void)save(l);
			return;
		}
}

void
leftovers_end_all(struct leftovers *l)
{
	size_t i;
	int n;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++)
		if ((n = end_session(&l->v[i])) > 0)
			bz_info("ended %d process(es) still in the session "
			    "of pid %d", n, (int)l->v[i].pid);
	l->n = 0;
	(void)save(l);
}

void
leftovers_free(struct leftovers *l)
{
	if (l == NULL)
		return;
	free(l->path);
	free(l->v);
	free(l);
}
