/* config_cmd.c: `bzsshd logout` and `ssh-config`. */
#include "bzsshd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "buf.h"
#include "log.h"
#include "util.h"

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

/* Unix users allowed literally (2 = "several"); *one is the user when
 * exactly one. A hint from the policies, through bzproxy's whoami. */
static void
policy_unix_users(const struct bzsshd_opts *o, char *one, size_t len,
    char *all, size_t alllen)
{
	char err[BZSSHD_ERRLEN];
	struct bz_session s;
	json_t *ans = NULL, *v;
	size_t i, used = 0;

	one[0] = all[0] = '\0';
	if (bz_session_load(o->config_dir, &s, err, sizeof(err)) != 0) {
		fprintf(stderr, "bzsshd: not logged in (%s): no User written; "
		    "use --user or run `bzsshd login` first\n", err);
		return;
	}
	if (bz_session_query(o->config_dir, &s, "whoami", &ans, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "bzsshd: cannot ask bzproxy which unix user "
		    "to use (%s): no User written; use --user\n", err);
		goto out;
	}
	v = json_object_get(ans, "unix_users");
	for (i = 0; json_is_array(v) && i < json_array_size(v); i++) {
		const char *u = json_string_value(json_array_get(v, i));

		if (u == NULL || strlen(u) > 64)
			continue;
		if (used == 0)
			snprintf(one, len, "%s", u);
		used += (size_t)snprintf(all + used, alllen > used ?
		    alllen - used : 0, "%s%s", used ? " " : "", u);
		if (used >= alllen)
			break;
	}
	if (json_is_array(v) && json_array_size(v) != 1)
		one[0] = '\0';
 out:
	json_decref(ans);
	bz_session_clear(&s);
}

/* A name fit for ssh_config: no spaces, quotes or patterns. */
static int
plain_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n > 0 && n <= max && s[0] != '-' && s[0] != '.' &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_.-") == n;
}

static int
ssh_config_usage(void)
{
	fprintf(stderr, "usage: bzsshd ssh-config [--user NAME] "
	    "[--domain DOMAIN] [--self PATH] [--install [--file PATH]]\n");
	return 2;
}

/* ~/.ssh/config, with ~/.ssh made (0700) when missing. NULL with err. */
static char *
ssh_config_path(char *err, size_t errlen)
{
	const char *home = getenv("HOME");
	char *dir = NULL, *path = NULL;

	if (home == NULL || home[0] != '/') {
		bz_errf(err, errlen, "HOME is not set: use --file PATH");
		return NULL;
	}
	if (asprintf(&dir, "%s/.ssh", home) < 0 ||
	    asprintf(&path, "%s/.ssh/config", home) < 0) {
		free(dir);
		bz_errf(err, errlen, "out of memory");
		return NULL;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		bz_errf(err, errlen, "%s: %s", dir, strerror(errno));
		free(path);
		path = NULL;
	}
	free(dir);
	return path;
}

int
bz_cmd_ssh_config(const struct bzsshd_opts *o, int argc, char **argv)
{
	char err[BZSSHD_ERRLEN], self[PATH_MAX], user[80] = "", all[512] = "";
	const char *selfpath = NULL, *given_user = NULL, *domain = "bz",
	    *file = NULL;
	char *dir = NULL, *block = NULL, *home_file = NULL, begin[320],
	    end[320];
	size_t blocklen = 0;
	ssize_t n;
	FILE *out = NULL;
	int i, rc = 1, install = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--self") == 0 && i + 1 < argc)
			selfpath = argv[++i];
		else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			given_user = argv[++i];
		else if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
			domain = argv[++i];
		else if (strcmp(argv[i], "--install") == 0)
			install = 1;
		else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
			file = argv[++i];
		else
			return ssh_config_usage();
	}
	if (file != NULL && !install)
		return ssh_config_usage();
	if ((given_user != NULL && !plain_name(given_user, 32)) ||
	    !plain_name(domain, 253)) {
		fprintf(stderr, "bzsshd: --user and --domain take plain names\n");
		return 2;
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
	if (given_user != NULL)
		snprintf(user, sizeof(user), "%s", given_user);
	else
		policy_unix_users(o, user, sizeof(user), all, sizeof(all));
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
	if ((out = open_memstream(&block, &blocklen)) == NULL) {
		fprintf(stderr, "bzsshd: out of memory\n");
		goto out;
	}
	fprintf(out, "# Written by `bzsshd ssh-config`%s.\n"
	    "# Targets are reached as NAME.%s (ssh web1.%s); to use\n"
	    "# bare names add them to the Host line (Host *.%s web1 db1).\n"
	    "# %%h is passed to bzproxy as the target name.\n"
	    "# Host keys: every connection ends at this bzsshd, whose key\n"
	    "# is pinned in known_hosts under the alias \"bzsshd\".\n",
	    install ? " --install: run it again to update this block" :
	    ": paste into ~/.ssh/config, or use --install", domain, domain,
	    domain);
	if (user[0] == '\0' && all[0] != '\0')
		fprintf(out, "# The policies name several unix users for you (%s):\n"
		    "# pick one with --user, or give it as ssh USER@HOST.\n",
		    all);
	fprintf(out, "Host *.%s\n", domain);
	if (user[0] != '\0')
		fprintf(out, "    User %s\n", user);
	/* ProxyUseFdpass: ssh and libssh then share one socket, no relay */
	fprintf(out, "    ProxyCommand %s%s%s --fdpass --stdio %%r@%%h:%%p\n"
	    "    ProxyUseFdpass yes\n"
	    "    UserKnownHostsFile %s/known_hosts\n"
	    "    HostKeyAlias bzsshd\n"
	    "    StrictHostKeyChecking yes\n",
	    selfpath, o->config_dir_given ? " --config-dir " : "",
	    o->config_dir_given ? dir : "", dir);
	if (fclose(out) != 0) {
		out = NULL;
		fprintf(stderr, "bzsshd: out of memory\n");
		goto out;
	}
	out = NULL;
	if (!install) {
		fputs(block, stdout);
		rc = 0;
		goto out;
	}
	if (file == NULL) {
		if ((file = home_file = ssh_config_path(err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "bzsshd: %s\n", err);
			goto out;
		}
	}
	/* one block per domain: --domain corp and --domain bz may coexist */
	snprintf(begin, sizeof(begin), "# >>> bzsshd ssh-config --domain %s "
	    ">>>", domain);
	snprintf(end, sizeof(end), "# <<< bzsshd ssh-config --domain %s "
	    "<<<", domain);
	if (bz_ssh_config_install(file, begin, end, block, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "bzsshd: %s\n", err);
		goto out;
	}
	printf("%s: Host *.%s block installed (ssh NAME.%s)\n", file, domain,
	    domain);
	rc = 0;
 out:
	if (out != NULL)
		fclose(out);
	free(block);
	free(home_file);
	free(dir);
	return rc;
}
