/*
 * ssh_conn.h: state of one SSH connection, shared by ssh_server.c (session,
 * auth, event loop), ssh_channel_map.c (channels <-> frames), ssh_requests.c
 * (a session channel's requests) and ssh_forward.c (direct-tcpip opens,
 * global requests). Everything here is touched only by the libssh (main)
 * thread.
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

enum bz_chan_kind {
	BZ_CHAN_SESSION = 0,   /* exec, shell, subsystem */
	BZ_CHAN_FORWARD,       /* direct-tcpip (ssh -L, -W, -D) */
};

struct bz_chan {
	struct bz_chan *next;
	struct bz_conn *conn;
	ssh_channel ch;        /* NULL while a forward waits to open */
	struct ssh_channel_callbacks_struct cb;
	uint32_t id;           /* wire channel_id */
	enum bz_chan_kind kind;
	char *why;             /* the first reason it failed, or NULL */
	int opened;            /* forward: the agent connected (open_ok) */
	int notes;             /* BZ_NOTE_* already told to the user */

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
	int client_eow;          /* ssh's reader is gone (eow@openssh.com):
	                          * the agent stops reading stdout */

	/* frames sealed for the agent / opened from it (common/seal.h) */
	uint64_t sealed_n, opened_n;
};

/* The link to bzproxy until the session is set up (proxy_link.c): after a
 * failure that may pass (bzproxy restarting), a new link after a backoff,
 * for at most window_ms. */
struct bz_link_retry {
	int64_t window_ms;      /* bzsshd.yaml proxy_retry */
	int64_t give_up_ms;     /* the first failure + window_ms (0: none) */
	int64_t next_ms;        /* start the next link then (0: none due) */
	unsigned attempt;       /* failures so far */
	unsigned links;         /* links started: wait_auth sees a new one */
	int proxy_was_down;     /* bzproxy could not be reached meanwhile */
};

struct bz_conn {
	ssh_session session;
	ssh_event event;
	struct bz_link *link;    /* NULL between two tries */
	struct bz_link_retry retry;
	int wake_fd;            /* a link's news wakes the loop here */
	short link_revents;     /* what the loop's poll said of the link */
	const struct bz_target *target;
	const char *config_dir; /* known_targets lives there */
	struct ssh_server_callbacks_struct scb;

	struct bz_session *sess;
	time_t refresh_at;      /* refresh the ID token then (0: never) */
	int64_t refresh_retry_ms; /* not before (after a failure) */
	struct bz_chain chain;  /* signs hello and every request */
	int hello_sent;
	enum bz_auth_state auth;
	char reason[BZSSHD_ERRLEN];
	int mfa_tries;
	int proxy_said_no;      /* reason came from an "error" message */
	char proxy_going[200];  /* an "error" marked retry (bzproxy is
	                         * stopping): the link's end is a restart,
	                         * tried again (proxy_link.c) */
	int authed;

	int refused;            /* no access (reason says why): SSH auth
	                         * succeeds, and every channel ends with the
	                         * reason on its stderr and status 255 */
	int64_t refused_ms;     /* when; a connection that opens no channel
	                         * is ended after BZ_REFUSED_LINGER_MS */
	int refused_told;       /* a channel carried the reason */
	char chan_req[40];      /* the name of the channel request libssh
	                         * is handing over (libssh_log.c) */
	int no_more_sessions;   /* ssh sent no-more-sessions@openssh.com */
	int64_t told_gone_ms;   /* when the last channel went, after a
	                         * refusal or a lost link */

	struct bz_chan *chans;
	uint32_t next_id;
	int link_lost;
	int quit;               /* leave the event loop */
	int exit_code;
};

#define BZ_REFUSED_LINGER_MS 3000
/* Things bzsshd refuses on its own, told once per channel. */
#define BZ_NOTE_AGENT 1
#define BZ_NOTE_X11 2

/* ssh_server.c */
/* Route what bzproxy sent (frames, link state) without blocking. */
void bz_conn_drain(struct bz_conn *c);

/* Tell bzproxy, for its audit log, of a request we refused ourselves
 * (channel id, or 0 for the connection). */
void bz_conn_note_refused(struct bz_conn *c, uint32_t id,
    const char *request, const char *reason);

/* A sealed frame for ch did not open: the whole connection ends (the
 * reason goes to every channel and to bzproxy's audit log). */
void bz_conn_integrity_failed(struct bz_conn *c, const struct bz_chan *ch);

/* proxy_link.c */
/* Start a link to bzproxy; hello follows its challenge. One that cannot
 * even start (bad URL, unreadable CA file) denies access. */
void bz_proxy_link_start(struct bz_conn *c);
/* After bz_conn_drain, before SSH auth is done: when the link failed in
 * a way that may pass (bzproxy restarting: refused, cut, HTTP 502-504,
 * closed before hello_ok; or bzproxy back without the target yet) and
 * time is left, say so on stderr, drop the link and plan the next (1).
 * Else 0, and c->reason names bzproxy and what happened. */
int bz_proxy_link_retry(struct bz_conn *c);
/* Start the planned link when it is due. Returns the ms until then, or
 * -1 when none is planned. */
int bz_proxy_link_tick(struct bz_conn *c);
/* The link closed: c->reason says why, naming bzproxy (after SSH auth:
 * that what runs on the target is in an unknown state). */
void bz_proxy_link_explain(struct bz_conn *c);

/* libssh_log.c */
/* Route libssh's log lines through ours, and learn the names of channel
 * requests libssh does not know (into c->chan_req). */
void bz_libssh_log_init(struct bz_conn *c);

/* ssh_token.c */
/* Before the link: refresh s's ID token when due. 0 (a valid token, or
 * one still valid a while), or -1 with why (none left). */
int bz_conn_token_fresh(struct bz_conn *c, struct bz_session *s, char *why,
    size_t wl);
/* In the loop: refresh when due and tell the agent. */
void bz_conn_token_tick(struct bz_conn *c);

/* ssh_channel_map.c */
/* A new channel of kind (not yet tied to an SSH channel), or NULL. */
struct bz_chan *bz_chan_new(struct bz_conn *c, enum bz_chan_kind kind);
/* Tie ch to its SSH channel: bytes, EOF and close flow from now on. */
void bz_chan_attach(struct bz_chan *ch, ssh_channel sc);
/* Forget a channel that never got an SSH channel. */
void bz_chan_discard(struct bz_chan *ch);
struct bz_chan *bz_chan_find(struct bz_conn *c, uint32_t id);
/* Queue a CONTROL message (takes obj; NULL is logged as out of memory). */
void bz_chan_send_json(struct bz_chan *ch, json_t *obj);
/* Queue a frame; DATA, EXT_DATA and EOF go sealed for the agent. */
void bz_chan_send_frame(struct bz_chan *ch, uint8_t type, const void *p,
    size_t n);
/* Sign obj into the session's chain (client_chain.c) and queue it for
 * channel ch: a request that makes the agent act. Takes obj; 0 or
 * BZ_ERR_*. */
int bz_chan_send_signed(struct bz_chan *ch, json_t *obj);
/* ssh's reader of the channel's stdout is gone (eow@openssh.com): the
 * agent closes the command's stdout, as sshd does. */
void bz_chan_eow(struct bz_chan *ch);
/* End the channel from our side: reason on its stderr, exit status 255
 * (a session), EOF and close once ssh has read what we sent. */
void bz_chan_fail(struct bz_chan *ch, const char *reason);
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

/* ssh_requests.c */
/* New SSH session channel (channel-open callback) or NULL to refuse. */
ssh_channel bz_session_open(struct bz_conn *c);
/* A channel request libssh has no callback for (x11-req): refuse it,
 * telling the user why. Returns 1 (libssh sends the failure). */
int bz_session_unhandled(struct bz_conn *c, ssh_message m);

/* ssh_forward.c */
/* A direct-tcpip open (ssh -L, -W, -D): ask bzproxy and the agent, and
 * wait (bounded) for the answer. Returns 0 when accepted, 1 to refuse. */
int bz_forward_open(struct bz_conn *c, ssh_message m);
/* A global request (tcpip-forward for ssh -R, ...): 1 to refuse. */
int bz_global_request(struct bz_conn *c, ssh_message m);

#endif
