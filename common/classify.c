/*
 * classify.c: exec requests that are scp's server side. OpenSSH's scp (in
 * legacy mode, -O) runs "scp [-v] [-r] [-p] [-d] -t|-f [--] PATH" on the
 * target (scp.c, toremote/tolocal). Anything else with an scp-like
 * beginning, such as the scp client that a remote-to-remote copy runs on
 * the target ("scp -oOption=... host:path"), stays exec: it could run
 * programs through ssh options.
 */
#include "classify.h"

#include <string.h>

#define SCP_SERVER_FLAGS "dpqrv"
#define WORD_SEP " \t"

/* Length of the word at s (up to a space or tab). */
static size_t
word_len(const char *s)
{
	return strcspn(s, WORD_SEP);
}

static int
is_scp_program(const char *w, size_t n)
{
	static const char name[] = "scp";
	const size_t nl = sizeof(name) - 1;

	if (n == nl)
		return memcmp(w, name, nl) == 0;
	/* an absolute path to it: /usr/bin/scp */
	return w[0] == '/' && n > nl && w[n - nl - 1] == '/' &&
	    memcmp(w + n - nl, name, nl) == 0;
}

enum bz_action
bz_classify_exec(const char *command)
{
	const char *p;
	size_t n, i;
	int direction = 0, paths = 0, options_done = 0;

	if (command == NULL || strpbrk(command, BZ_SHELL_META) != NULL)
		return BZ_ACTION_EXEC;
	p = command + strspn(command, WORD_SEP);
	if ((n = word_len(p)) == 0 || !is_scp_program(p, n))
		return BZ_ACTION_EXEC;
	for (p += n;; p += n) {
		p += strspn(p, WORD_SEP);
		if ((n = word_len(p)) == 0)
			break;
		if (options_done || p[0] != '-') {
			options_done = 1;
			paths++;
			continue;
		}
		if (n == 2 && p[1] == '-') {
			options_done = 1;
			continue;
		}
		if (n == 1)
			return BZ_ACTION_EXEC;
		for (i = 1; i < n; i++) {
			if (p[i] == 't' || p[i] == 'f')
				direction = 1;
			else if (strchr(SCP_SERVER_FLAGS, p[i]) == NULL)
				return BZ_ACTION_EXEC;
		}
	}
	return direction && paths > 0 ? BZ_ACTION_SCP : BZ_ACTION_EXEC;
}
