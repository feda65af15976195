/*
 * bzload.h: the load tool's state, shared by bzload.c (options, phases,
 * measurements, the report) and bzload_link.c (the simulated agents' wss
 * links on one lws context running on our libuv loop).
 */
#ifndef BZ_BZLOAD_H
#define BZ_BZLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <libwebsockets.h>

#define BZL_REASONS 24
#define BZL_REASON_LEN 120

/* Reasons counted by text (the first BZL_REASONS distinct ones). */
struct bzl_reasons {
	char text[BZL_REASONS][BZL_REASON_LEN];
	unsigned count[BZL_REASONS];
	unsigned other;   /* counted, text not kept */
	unsigned total;
};

enum sim_state {
	SIM_WAIT = 0,     /* not started, or waiting to retry */
	SIM_CONNECTING,   /* TCP, TLS, websocket upgrade */
	SIM_CHALLENGE,    /* waiting for the challenge */
	SIM_HELLO,        /* agent_hello queued or sent */
	SIM_READY,        /* agent_ok came: the link is held */
	SIM_FAILED,       /* given up (or dropped after READY) */
};

/* One simulated agent. */
struct sim {
	struct lws *wsi;
	char *name;
	char *token;         /* enrolment token, NULL when pinned already */
	uint8_t *rx;         /* handshake message being reassembled */
	uint32_t rx_len;
	uint8_t *out;        /* LWS_PRE bytes, then the agent_hello frame */
	size_t out_len;
	int64_t first_ms;    /* first attempt */
	int64_t attempt_ms;  /* this attempt */
	int64_t retry_at;
	int64_t ping_us;     /* our ping in flight since (0: none) */
	uint16_t attempts;
	uint8_t state;
	uint8_t want_ping;
	uint8_t cert_bad;    /* bzproxy's certificate did not verify */
	uint8_t peer_closed; /* bzproxy sent a websocket close */
};

struct bzl_opts {
	char host[256];
	int port;
	const char *path;
	const char *ca_file;
	uint8_t proxy_pk[32];
	uint8_t seed[32];        /* agent keys: BLAKE2b(seed, name) */
	const char *agents_file;
	size_t count;            /* 0: every agent of the file */
	unsigned inflight;       /* handshakes at once */
	unsigned max_retries;    /* of a refused handshake */
	int handshake_s;         /* one attempt's deadline */
	int connect_s;           /* all of them */
	int window_s;            /* idle, then latency, measurement */
	int ping_ms;             /* a ping sample every */
	long proxy_pid;          /* 0: no bzproxy figures */
	const char *json_file;
	int hold;
};

/* connect all; idle (nothing sent: bzproxy's idle CPU); latency (ping
 * samples, as long as idle); hold (until told to stop) */
enum bzl_phase { PH_CONNECT, PH_IDLE, PH_LAT, PH_HOLD, PH_STOP };

/* RTT samples in microseconds. */
struct bzl_samples {
	uint32_t *v;
	size_t n, cap;
};

struct load {
	struct bzl_opts o;
	uv_loop_t loop;
	struct lws_context *ctx;
	struct sim *sims;
	size_t n;
	size_t next_fresh;       /* next never-started agent */
	uint32_t *rq;            /* retry queue (ring of sim indexes) */
	size_t rq_head, rq_len;
	size_t inflight, ready, failed, dropped;
	struct bzl_reasons fails, refusals, drops;
	struct bzl_samples hs_ms;   /* handshake times (first try to ok) */
	struct bzl_samples rtt;     /* ping -> pong */
	size_t ping_next;
	enum bzl_phase phase;
	int64_t t0_ms, t_all_ms;
};

/* bzload_link.c */
int bzl_ctx_create(struct load *L, int fd_limit);
/* Start handshakes while fewer than o.inflight are in flight. */
void bzl_launch(struct load *L, int64_t now);
/* Cut attempts older than o.handshake_s. */
void bzl_reap_slow(struct load *L, int64_t now);
/* The connect phase is over: every agent not ready fails, why. */
void bzl_give_up(struct load *L, const char *why);
/* Ask the next ready agent for a ping. */
void bzl_ping_one(struct load *L);
void bzl_ctx_destroy(struct load *L);

/* bzload.c */
void bzl_count(struct bzl_reasons *r, const char *why);
int bzl_sample(struct bzl_samples *s, uint32_t v);
int64_t bzl_now_us(void);

#endif
