/*
 * connection.h: the agent's state, shared by connection.c (the link to
 * bzproxy, its handshake, the poll loop) and dispatch.c (what a ready
 * link brings: SYNs, requests, channel frames). Only the loop's thread
 * touches it.
 */
#ifndef BZ_AGENT_CONNECTION_H
#define BZ_AGENT_CONNECTION_H

#include "agent.h"

enum phase {
	PH_DOWN,        /* waiting to reconnect */
	PH_CHALLENGE,   /* connecting; waiting for the challenge */
	PH_HELLO_SENT,  /* waiting for agent_ok */
	PH_READY,       /* channel requests are served */
};

struct agent {
	const struct agent_config *cfg;
	int sig_fd;
	int wake[2];
	struct bz_link *link;
	enum phase phase;
	int64_t deadline;        /* handshake deadline */
	int64_t ready_at;
	int64_t retry_at;        /* next connect, in PH_DOWN */
	unsigned attempt;        /* consecutive failed connections */
	int stop;
	struct chan_table *chans;
	struct bz_jwks_cache *jwks;
	struct key_wait *held;   /* SYNs waiting for the IdP's keys */
	struct session_table *sessions;
	struct fwd_pool *fwd;    /* forward channels still connecting */
	struct bz_audit *audit;  /* our own audit log (audit_log.c) */
	struct leftovers *leftovers; /* sessions of running channels */
};

/* dispatch.c */
/* A frame on a ready link (*mp is taken when it is held for the IdP's
 * keys). */
void dispatch_frame(struct agent *a, const struct bz_frame *f,
    struct bz_link_msg **mp);
/* A request held for the IdP's keys, whose wait is over: once more, never
 * held again. */
void dispatch_retry(struct agent *a, const struct bz_frame *f,
    struct bz_link_msg **mp);
/* Forwards whose connect finished: the channel runs, or fails. */
void dispatch_forwards(struct agent *a);

#endif
