/* fdlimit.c: raising the open files limit (see fdlimit.h). */
#include "fdlimit.h"

#include <string.h>
#include <sys/resource.h>

unsigned long
bz_nofile_want(unsigned long soft, unsigned long hard, unsigned long cap)
{
	unsigned long want = hard < cap ? hard : cap;

	return want < soft ? soft : want;
}

int
bz_raise_nofile(unsigned long cap, struct bz_nofile *n)
{
	struct rlimit rl;

	memset(n, 0, sizeof(*n));
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	n->soft = n->now = (unsigned long)rl.rlim_cur;
	n->hard = (unsigned long)rl.rlim_max;
	n->want = bz_nofile_want(n->soft, n->hard, cap);
	if (n->want <= n->soft)
		return 0;
	rl.rlim_cur = (rlim_t)n->want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1;
	n->now = n->want;
	return 0;
}
