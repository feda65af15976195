/*
 * fdlimit.c: the open files limit (RLIMIT_NOFILE) against limits.max_links.
 * Every link is a socket, so bzproxy raises its soft limit to the hard one
 * at start and says so. When even the hard limit cannot hold max_links
 * plus BZP_FD_RESERVE, a max_links the operator set is refused (a clear
 * error, naming both); the default is lowered to fit, with a warning, so
 * that bzproxy still starts on a machine with a low limit. The raise
 * itself is common/fdlimit.c (bench/bzload's too).
 */
#include "bzproxy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fdlimit.h"
#include "log.h"

/* Fewer links than this: not a bastion, refuse even the default. */
#define MIN_LINKS 16
/* No use for more files than the most links allowed need. */
#define FD_CAP ((unsigned long)BZP_MAX_LINKS_MAX + BZP_FD_RESERVE)

int
bzp_fd_fit(unsigned long soft, unsigned long hard,
    const struct bzp_limits *l, unsigned long *want, long *links, char *why,
    size_t wl)
{
	unsigned long need = (unsigned long)l->max_links + BZP_FD_RESERVE;

	*want = bz_nofile_want(soft, hard, FD_CAP);
	*links = l->max_links;
	if (*want >= need)
		return 0;
	if (l->max_links_set) {
		snprintf(why, wl, "%s is %ld, but the open files limit "
		    "(RLIMIT_NOFILE) is %lu: %ld links need %lu (each link is "
		    "a file, plus %d for bzproxy's own): raise the limit "
		    "(LimitNOFILE= in the systemd unit, ulimit -n) or lower %s",
		    BZP_LIMIT_LINKS, l->max_links, *want, l->max_links, need,
		    BZP_FD_RESERVE, BZP_LIMIT_LINKS);
		return -1;
	}
	if (*want < (unsigned long)MIN_LINKS + BZP_FD_RESERVE) {
		snprintf(why, wl, "the open files limit (RLIMIT_NOFILE) is "
		    "%lu: bzproxy needs at least %d (%d links and %d for its "
		    "own): raise it (LimitNOFILE= in the systemd unit, "
		    "ulimit -n)", *want, MIN_LINKS + BZP_FD_RESERVE, MIN_LINKS,
		    BZP_FD_RESERVE);
		return -1;
	}
	*links = (long)(*want - BZP_FD_RESERVE);
	snprintf(why, wl, "the open files limit (RLIMIT_NOFILE) is %lu: %s "
	    "lowered from its default %ld to %ld to fit (%d files kept for "
	    "bzproxy's own); raise the limit (LimitNOFILE= in the systemd "
	    "unit, ulimit -n) for more", *want, BZP_LIMIT_LINKS, l->max_links,
	    *links, BZP_FD_RESERVE);
	return 1;
}

int
bzp_fd_limit(struct bzp_limits *l)
{
	struct bz_nofile n;
	unsigned long want;
	char why[BZP_ERRLEN * 2];
	long links;
	int r;

	r = bz_raise_nofile(FD_CAP, &n);
	if (r < 0) {
		bz_error("cannot read the open files limit: %s",
		    strerror(errno));
		return -1;
	}
	if (r > 0) /* e.g. a seccomp filter: fit what we have */
		bz_warn("cannot raise the open files limit from %lu to %lu: %s",
		    n.soft, n.want, strerror(errno));
	else if (n.now > n.soft)
		bz_info("open files limit raised from %lu to %lu", n.soft,
		    n.now);
	else
		bz_info("open files limit %lu", n.soft);
	/* the limit in force now, soft and hard alike: nothing to raise */
	r = bzp_fd_fit(n.now, n.now, l, &want, &links, why, sizeof(why));
	if (r < 0) {
		bz_error("cannot start: %s", why);
		return -1;
	}
	if (r > 0)
		bz_warn("%s", why);
	l->max_links = links;
	return 0;
}
