/*
 * ssh_conn.h: state of one SSH connection, shared by ssh_server.c (session,
 * auth, event loop) and ssh_channel_map.c (channels <-> frames). Everything
 * here is touched only by the libssh (main) thread.
 */
#ifndef BZSSHD_SSH_CONN_H
#define BZSSHD_SSH_CONN_H

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>

#include "bzsshd.h"
#include "buf.h"
#include "wire.h"

enum bz_auth_state {
	BZ_AUTH_PENDING = 0,  /* hello or mfa sent, no answer yet */
	BZ_AUTH_OK,           /* hello_ok */
	BZ_AUTH_MFA,          /* mfa_required: ask for a TOTP code */
	BZ_AUTH_DENIED,       /* error from bzproxy */
};

struct bz_conn;

struct bz_chan {
	struct bz_chan *next;
	struct bz_conn *conn;
	ssh_channel ch;
	struct ssh_channel_callbacks_struct cb;
	uint32_t id;           /* wire channel_id */

	/* collected before exec/shell */
	int have_pty;
	char *term;
	int cols, rows, pxw, pxh;
	json_t *env;
	int started;           /* exec/shell sent to bzproxy */

	/* agent -> client */
	struct bz_buf out, err;  /* bytes waiting for SSH window */
	uint32_t recv_window;    /* bytes the agent may still send us */
	uint32_t consumed;       /* written into SSH, not yet granted back */
	int agent_eof, agent_closed;
	int have_exit, exit_status, exit_core;
	char *exit_signal;
	int ending;              /* we end it (denied, failed, link lost) */

	/* client -> agent */
	uint32_t send_window;    /* bytes we may still send the agent */
	uint32_t held;           /* exactly what libssh's stdout buffer holds
	                          * for us (set by the data callback, lowered
	                          * by our reads) */
	struct bz_buf in;        /* taken out of libssh, not yet sent: older
	                          * than anything libssh holds */
	int client_eof, client_closed;
	int eof_frame_sent, close_frame_sent;

	/* what we told ssh */
	int exit_sent, eof_sent, close_sent;
};

struct bz_conn {
	ssh_session session;
	ssh_event event;
	struct bz_link *link;
	const struct bz_target *target;
	struct ssh_server_callbacks_struct scb;

	enum bz_auth_state auth;
	char reason[BZSSHD_ERRLEN];
	int mfa_tries;
	int proxy_said_no;      /* reason came from an "error" message */
	int authed;

	struct bz_chan *chans;
	uint32_t next_id;
	int link_lost;
	int quit;               /* leave the event loop */
	int exit_code;
};

/* ssh_channel_map.c */
/* New SSH session channel (channel-open callback) or NULL to refuse. */
ssh_channel bz_chan_open(struct bz_conn *c);
/* Handle one decoded frame for channel f->channel_id (> 0). */
void bz_chan_frame(struct bz_conn *c, const struct bz_frame *f);
/* Move bytes and state between the channels and libssh; free the
 * channels that both sides have closed. */
void bz_chan_pump(struct bz_conn *c);
/* End every channel with reason (the link to bzproxy is gone). */
void bz_chan_end_all(struct bz_conn *c, const char *reason);
/* Free our channel state (after ssh_free). */
void bz_chan_free_all(struct bz_conn *c);
size_t bz_chan_count(const struct bz_conn *c);

#endif
