/*
 * channel_int.h: one running channel, shared by channel.c (its frames and
 * its end) and channel_io.c (its descriptors). Only the poll loop's thread
 * touches it.
 */
#ifndef BZ_AGENT_CHANNEL_INT_H
#define BZ_AGENT_CHANNEL_INT_H

#include "agent.h"

enum chan_io {
	CHAN_PIPES = 0,          /* a child on three pipes */
	CHAN_PTY,                /* a child on a pty: in_fd == out_fd */
	CHAN_SOCKET,             /* a forward's TCP socket: in_fd == out_fd */
};

struct chan {
	struct chan *next;
	uint32_t sid, ch;
	char tag[40];            /* "sid/ch" for logs */
	enum chan_io io;
	pid_t pid;               /* process group leader; 0 for a socket */
	int reaped;              /* no process left (a socket has none) */
	int wstatus;
	int64_t exit_ms;         /* when reaped */
	int in_fd, out_fd, err_fd;
	int out_eof;             /* socket: the peer will send no more */
	int wr_shut;             /* socket: the client's EOF passed on */
	int stdin_dead;          /* writes fail: drop input */
	int stdout_unread;       /* ssh's reader is gone (eow): a pty is no
	                          * longer read, a pipe is closed */
	struct bz_buf in;        /* client bytes not written yet */
	uint32_t send_window;    /* bytes we may still send */
	uint32_t recv_left;      /* bytes the client may still send */
	uint32_t consumed;       /* written, not yet granted */
	int client_eof, client_closed;
	int eof_sent, close_sent;
	int64_t kill_at;         /* SIGKILL deadline after SIGHUP; 0 = none */
	uint64_t bytes_in, bytes_out; /* totals, for the log */
	struct bz_seal seal;     /* secret: the session's data keys */
	char request_hash[BZ_HASH_B64_LEN + 1]; /* for the audit log */
	uint64_t sealed_n, opened_n; /* frames sealed / opened on it */
	int pidx[3];             /* pollfd index of in/out/err, -1 = none */
};

struct chan_table {
	struct chan *head;
	size_t n;
	struct bz_audit *audit;  /* each channel's end goes there */
	struct leftovers *leftovers; /* sessions of running children */
};

/* channel.c */
/* Queue a frame; DATA, EXT_DATA and EOF go sealed for the client. */
void chan_send_frame(struct bz_link *link, struct chan *c,
    uint8_t type, const void *p, size_t n);

/* channel_io.c */
/* Close every descriptor (a shared pty or socket fd once); drop input. */
void chan_close_io(struct chan *c);
/* Write pending client bytes; grant back what was taken; pass the
 * client's EOF on once drained (close a pipe, shut a socket's write side;
 * a pty stays open). */
void chan_write_input(struct bz_link *link, struct chan *c);
/* Has all output been read (fds closed; a socket's peer at EOF)? */
int chan_output_done(const struct chan *c);
/* ssh's reader of stdout is gone (eow@openssh.com): as sshd, stop
 * reading it (a pipe is closed: the command gets SIGPIPE). */
void chan_stdout_gone(struct chan *c);
/* Read what the windows allow from the output fds after the pty grace. */
void chan_pty_after_exit(struct bz_link *link, struct chan *c, int64_t now);

#endif
