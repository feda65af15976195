/*
 * fdlimit.h: raising the open files limit (RLIMIT_NOFILE), for programs
 * that hold one socket per peer: bzproxy (its policy against max_links is
 * bzproxy/fdlimit.c) and bench/bzload.
 */
#ifndef BZ_FDLIMIT_H
#define BZ_FDLIMIT_H

/* The open files limit before and after bz_raise_nofile. */
struct bz_nofile {
	unsigned long soft;	/* the soft limit found */
	unsigned long hard;	/* the hard limit */
	unsigned long want;	/* the soft limit asked for */
	unsigned long now;	/* the soft limit in force after */
};

/* The soft limit to ask for: the hard one, at most cap, never lower than
 * soft. */
unsigned long bz_nofile_want(unsigned long soft, unsigned long hard,
    unsigned long cap);
/*
 * Raise the soft limit to bz_nofile_want(soft, hard, cap) and fill n.
 * 0; 1 with errno when it cannot be raised (n->now is n->soft: e.g. a
 * seccomp filter); -1 with errno when the limit cannot be read.
 */
int bz_raise_nofile(unsigned long cap, struct bz_nofile *n);

#endif
