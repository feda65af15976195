/*
 * permit.c: what this target itself lets a client ask for, on top of the
 * policy bzproxy applied: the unix users it serves (unix_users),
 * environment names (accept_env, as sshd's AcceptEnv) and port-forward
 * destinations (permit_open, as sshd's PermitOpen). All are
 * space-separated lists from the agent's config.
 */
#include "agent.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define ITEM_MAX 300
#define SEP " \t"

/* The names the agent sets itself: a client value could only confuse
 * (or, for PATH, steer) what runs, so none is ever taken. */
static const char *const agent_owned[] = {
	"HOME", "USER", "LOGNAME", "SHELL", "PATH", "MAIL", "SSH_CLIENT",
	"SSH_CONNECTION", "SSH_TTY", "SSH_ORIGINAL_COMMAND", NULL,
};

/* Copy the next item of list at *p into buf; 0 at the end, -1 when an
 * item is too long. */
static int
next_item(const char **p, char *buf, size_t len)
{
	size_t n;

	*p += strspn(*p, SEP);
	if ((n = strcspn(*p, SEP)) == 0)
		return 0;
	if (n >= len)
		return -1;
	memcpy(buf, *p, n);
	buf[n] = '\0';
	*p += n;
	return 1;
}

int
permit_env(const char *accept_env, const char *name)
{
	const char *p = accept_env != NULL ? accept_env :
	    AGENT_ACCEPT_ENV_DEFAULT;
	char pat[ITEM_MAX];
	size_t i;

	if (!bz_env_name_ok(name))
		return 0;
	for (i = 0; agent_owned[i] != NULL; i++)
		if (strcmp(agent_owned[i], name) == 0)
			return 0;
	while (next_item(&p, pat, sizeof(pat)) > 0)
		if (fnmatch(pat, name, 0) == 0)
			return 1;
	return 0;
}

int
permit_unix_user(const char *unix_users, const char *name)
{
	const char *p = unix_users;
	char pat[ITEM_MAX];

	if (unix_users == NULL)
		return 1;
	while (next_item(&p, pat, sizeof(pat)) > 0)
		if (fnmatch(pat, name, 0) == 0)
			return 1;
	return 0;
}

/* "host:port" or "[v6]:port" -> host pattern and port text. */
static int
split_dest(char *item, char **host, char **port)
{
	char *colon = strrchr(item, ':');

	if (colon == NULL || colon == item || colon[1] == '\0')
		return -1;
	*colon = '\0';
	*port = colon + 1;
	*host = item;
	if (item[0] == '[') {
		if (colon[-1] != ']' || colon - item < 3)
			return -1;
		colon[-1] = '\0';
		*host = item + 1;
	}
	return 0;
}

static int
port_ok(const char *s, long *out)
{
	long v = 0;
	size_t i;

	if (strcmp(s, "*") == 0) {
		*out = -1;
		return 0;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (i == 0 || v < 1 || v > 65535)
		return -1;
	*out = v;
	return 0;
}

int
permit_open_check(const char *list, char *err, size_t errlen)
{
	const char *p = list;
	char item[ITEM_MAX], copy[ITEM_MAX], *host, *port;
	long pv;
	int r;

	if (list == NULL || strcmp(list, "any") == 0 ||
	    strcmp(list, "none") == 0)
		return BZ_OK;
	while ((r = next_item(&p, item, sizeof(item))) > 0) {
		memcpy(copy, item, sizeof(copy));
		if (split_dest(copy, &host, &port) != 0 ||
		    port_ok(port, &pv) != 0) {
			bz_errf(err, errlen, "permit_open: \"%s\" is not "
			    "host:port (port 1-65535 or *)", item);
			return BZ_ERR_INVALID;
		}
	}
	if (r < 0) {
		bz_errf(err, errlen, "permit_open: an entry is over %d bytes",
		    ITEM_MAX - 1);
		return BZ_ERR_INVALID;
	}
	return BZ_OK;
}

int
permit_open(const char *list, const char *host, uint16_t port)
{
	const char *p = list;
	char item[ITEM_MAX], *h, *ps;
	long pv;

	if (list == NULL || strcmp(list, "any") == 0)
		return 1;
	if (strcmp(list, "none") == 0)
		return 0;
	while (next_item(&p, item, sizeof(item)) > 0) {
		if (split_dest(item, &h, &ps) != 0 || port_ok(ps, &pv) != 0)
			return 0; /* checked at start-up; fail closed */
		if (pv >= 0 && pv != (long)port)
			continue;
		if (fnmatch(h, host, FNM_CASEFOLD) == 0)
			return 1;
	}
	return 0;
}
