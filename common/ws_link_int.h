/*
 * ws_link_int.h: what ws_link.c (the queues, for other threads) and
 * ws_link_io.c (the link's own thread: socket, framing) share.
 */
#ifndef BZ_WS_LINK_INT_H
#define BZ_WS_LINK_INT_H

#include <pthread.h>
#include <stdint.h>
#include <wslay/wslay.h>

#include "ws_conn.h"
#include "ws_link.h"

#define LINK_PROTOCOL "bz.v1"
/* Stop reading the socket while this much is waiting for the reader. */
#define RX_HIGH (8u * 1024 * 1024)
#define RX_LOW (2u * 1024 * 1024)
#define CLOSE_GRACE_MS 1000  /* time allowed to flush on close */
#define CLOSE_REPLY_MS 200   /* ... and for bzproxy's close after ours */
#define OPEN_TIMEOUT_MS 20000 /* connect, TLS and upgrade */
#define PING_IDLE_MS 20000   /* keepalive ping when nothing came */
#define HANGUP_IDLE_MS 50000 /* dead peer detection */
#define RX_BUF (64u * 1024)  /* bytes per SSL_read */
#define WBUF (64u * 1024)    /* small frames gathered per SSL_write */
#define BIG_FRAME (16u * 1024) /* written from its own buffer, not copied */
#define WS_HDR_MAX 14        /* client header: 2 + 8 length + 4 mask */
#define CTL_MAX 256          /* pong, ping and close frames waiting */

struct out_msg {
	struct out_msg *next;
	uint8_t *buf; /* WS_HDR_MAX bytes of headroom, then the frame */
	size_t off;   /* where the websocket header starts */
	size_t len;   /* websocket bytes from off */
	size_t flen;  /* our frame's bytes (for bz_link_pending) */
};

struct bz_link {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int thread_started;
	int wake_fd;
	int ev_fd;        /* wakes the link thread */

	/* set before the thread starts, then owned by it */
	SSL_CTX *tls;
	struct bz_ws_conn conn;
	wslay_frame_context_ptr wf;
	char *host;
	int port;
	char *path;
	uint8_t *rxbuf;   /* one SSL_read */
	size_t rx_off, rx_len;
	int read_ready;   /* the socket (or OpenSSL) may have bytes */
	int write_blocked; /* SSL_write wants POLLOUT */
	int paused;       /* rx flow control applied */
	/* the frame being received */
	int in_frame, f_op, f_fin;
	uint64_t f_len, f_off;
	struct bz_link_msg *f_msg; /* a whole message in one frame */
	uint8_t *rx;      /* reassembly of a fragmented message */
	size_t rx_msg;    /* bytes in rx; msg_op != 0 while one runs */
	int msg_op;
	uint8_t ctl_in[125];
	/* writing */
	uint8_t *wbuf;
	const uint8_t *wp; /* what is being written: wp[w_off..w_len) */
	size_t w_off, w_len;
	struct out_msg *w_owned; /* wp's frame, when written in place */
	uint8_t ctl[CTL_MAX];
	size_t ctl_len;
	int close_sent, close_got, ping_sent;
	int64_t last_rx;
	int64_t stop_at;  /* a stopping link gives up flushing then */
	int io_failed;    /* link_flush lost the link: link_step ends it */

	/* shared, under mu */
	enum bz_link_state state;
	char reason[BZ_LINK_REASON_LEN];
	struct bz_link_failure fail; /* the first cause, once closed */
	struct out_msg *out_head, *out_tail;
	size_t out_bytes;
	uint64_t seq;
	struct bz_link_msg *in_head, *in_tail;
	size_t in_bytes;
	int stop;         /* bz_link_free asked to close */
	int owner_serves; /* set at start: the owner serves the open link */
	int handed_over;  /* the thread left the open link to the owner */
	int finished;     /* ... and the owner closed it (link_finish) */
	int want_resume;  /* the reader drained: resume rx */
	int wake_sent;    /* a byte is on wake_fd that the reader has not
	                     answered yet with a bz_link_recv() that found
	                     the queue empty */
	char local_addr[64]; /* our end of the TCP connection, once open */
	uint16_t local_port;
};

/* Monotonic milliseconds. */
int64_t link_now_ms(void);
/* With mu held: is a byte owed to wake_fd (write it after unlocking)? */
int link_wake_begin(struct bz_link *l);
void link_wake_end(struct bz_link *l, int owed);
/* Wake the link thread (mu released). */
void link_poke(struct bz_link *l);
/* Close the link (once): kind and detail for callers, why in full. */
void link_fail(struct bz_link *l, enum bz_link_fail kind,
    const char *detail, const char *why);
/* The same with the HTTP status of a BZ_LINK_FAIL_HTTP. */
void link_fail_status(struct bz_link *l, enum bz_link_fail kind,
    int http_status, const char *detail, const char *why);
void link_proto_error(struct bz_link *l, const char *what);
/* Frame and mask the n bytes at p as a client (header written before p,
 * WS_HDR_MAX bytes of room): the header's length, or 0. */
size_t link_frame_wrap(uint8_t *p, size_t n, uint8_t opcode);
/* The link's thread (pthread_create). */
void *link_thread(void *arg);
/* The open link, one round at a time (ws_link_io.c): link_step (1: over,
 * call link_finish; else what to poll and for how long), link_apply
 * (poll's revents for the socket), link_flush (write what is queued),
 * link_serve (rounds until over, with its own poll), link_finish. */
int link_step(struct bz_link *l, short *events, int *timeout);
void link_apply(struct bz_link *l, short revents);
int link_flush(struct bz_link *l);
void link_serve(struct bz_link *l);
void link_finish(struct bz_link *l);
/* A served link (ws_link_served.c), in the owner's thread: write what a
 * send queued; bz_link_wait (1: served, 0: not a served link); the flush
 * and close of bz_link_free (stop set). */
void link_served_flush(struct bz_link *l);
int link_served_wait(struct bz_link *l, int timeout_ms);
void link_served_end(struct bz_link *l);

#endif
