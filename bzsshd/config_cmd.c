/* config_cmd.c: `bzsshd status`, `logout` and `ssh-config`. */
#include "bzsshd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "util.h"

int
bz_cmd_status(const struct bzsshd_opts *o, int argc, char **argv)
{
	char err[BZSSHD_ERRLEN], when[64] = "?";
	struct bz_session s;
	struct tm tm;

	if (argc > 1) {
		fprintf(stderr, "usage: bzsshd status\n");
		return 2;
	}
	if (bz_session_load(o->config_dir, &s, err, sizeof(err)) != 0) {
		bz_debug("%s", err);
		printf("not logged in\n");
		return 1;
	}
	if (localtime_r(&s.expires, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", &tm);
	if (s.expires <= time(NULL)) {
		printf("not logged in (session of %s expired %s)\n", s.user,
		    when);
		bz_session_clear(&s);
		return 1;
	}
	printf("user:    %s\nproxy:   %s\nexpires: %s\n", s.user, s.proxy,
	    when);
	bz_session_clear(&s);
	return 0;
}

int
bz_cmd_logout(const struct bzsshd_opts *o, int argc, char **argv)
{
	char *path;
	int rc = 0;

	if (argc > 1) {
		fprintf(stderr, "usage: bzsshd logout\n");
		return 2;
	}
	if ((path = bz_config_dir_file(o->config_dir, "session")) == NULL)
		return 1;
	if (unlink(path) != 0 && errno != ENOENT) {
		fprintf(stderr, "bzsshd: cannot remove %s: %s\n", path,
		    strerror(errno));
		rc = 1;
	} else
		printf("logged out\n");
	free(path);
	return rc;
}

int
bz_cmd_ssh_config(const struct bzsshd_opts *o, int argc, char **argv)
{
	char err[BZSSHD_ERRLEN], self[PATH_MAX];
	const char *selfpath = NULL;
	char *dir = NULL;
	ssize_t n;
	int i, rc = 1;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--self") == 0 && i + 1 < argc)
			selfpath = argv[++i];
		else {
			fprintf(stderr, "usage: bzsshd ssh-config "
			    "[--self PATH]\n");
			return 2;
		}
	}
	if (selfpath == NULL) {
		if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <=
		    0) {
			fprintf(stderr, "bzsshd: cannot find my own path; "
			    "use --self PATH\n");
			return 1;
		}
		self[n] = '\0';
		selfpath = self;
	}
	/* ssh must find our host key without asking: pin it here. */
	if (bz_known_hosts_write(o->config_dir, err, sizeof(err)) != 0) {
		fprintf(stderr, "bzsshd: %s\n", err);
		goto out;
	}
	if ((dir = realpath(o->config_dir, NULL)) == NULL) {
		fprintf(stderr, "bzsshd: %s: %s\n", o->config_dir,
		    strerror(errno));
		goto out;
	}
	printf("# Written by `bzsshd ssh-config`: paste into ~/.ssh/config.\n"
	    "# Targets are reached as NAME.bz (ssh deploy@web1.bz); to use\n"
	    "# bare names add them to the Host line (Host *.bz web1 db1).\n"
	    "# %%h is passed to bzproxy as the target name.\n"
	    "# Host keys: every connection ends at this bzsshd, whose key\n"
	    "# is pinned in known_hosts under the alias \"bzsshd\".\n"
	    "Host *.bz\n"
	    "    ProxyCommand %s%s%s --stdio %%r@%%h:%%p\n"
	    "    UserKnownHostsFile %s/known_hosts\n"
	    "    HostKeyAlias bzsshd\n"
	    "    StrictHostKeyChecking yes\n",
	    selfpath, o->config_dir_given ? " --config-dir " : "",
	    o->config_dir_given ? dir : "", dir);
	rc = 0;
 out:
	free(dir);
	return rc;
}
