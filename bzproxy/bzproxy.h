/*
 * bzproxy.h: the contracts between bzproxy's files. Each file has one job:
 *   main.c         command line, dispatch, usage
 *   admin_cmd.c    offline commands: user, agent, key, audit verify,
 *                  policy reload
 *   config.c       the YAML config file
 *   store.c        SQLite state: users (TOTP), agents, sessions, sid blocks
 *   server.c       the lws context, signals, routing by path, reassembly,
 *                  stopping
 *   evloop.c       the libuv loop lws runs on (evloop.h)
 *   conn.c         per-connection write queues, backpressure, closing
 *   client_auth.c  /v1/client login, hello, mfa
 *   client_link.c  /v1/client channels and frames, relay
 *   client_request.c a channel's signed request: action, policy, audit
 *   client_chain.c the client's signed messages (SYN, requests) in our
 *                  signed envelope toward the agent; its SYNACK back
 *   client_end.c   how channels and sessions end on the audit record
 *                  (agent's exit, target gone, client gone, bzproxy stops)
 *   limits.c       the limits of the config (links, links not logged in
 *                  yet, sessions per user, channels per session, command
 *                  bytes); memory back to the system after a burst
 *   fdlimit.c      the open files limit against limits.max_links
 *   keepalive.c    ping silent links, drop dead ones (not lws's timers)
 *   sids.c         session ids unique across restarts
 *   agent_link.c   /v1/agent challenge, enrolment, relay to clients
 *   labels.c       agent names, label keys and values
 *   audit_ev.c     audit events with the common fields
 * Functions return 0 or a negative BZ_ERR_* and put a reason in err.
 * Everything in server.c, conn.c, client_*.c and agent_link.c runs on the
 * one lws service thread; nothing there blocks except SQLite and the
 * audit fsync (both local and short). The IdP's keys come from
 * common/jwks_cache.c, whose thread fetches them and wakes this one with
 * a uv_async_t; that thread is libuv's loop, lws runs on it.
 */
#ifndef BZPROXY_H
#define BZPROXY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>
#include <libwebsockets.h>
/* Debian's uthash-dev: where an add cannot allocate, undo it and set the
 * caller's hash_oom, rather than exit (uthash's default) */
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (hash_oom = 1)
#include <uthash.h>

#include "policy.h"
#include "totp.h"
#include "wire.h"

#define BZP_VERSION "0.1.0"
#define BZP_ERRLEN 256
/* Store lookups return this (positive: not an error) when nothing matched. */
#define BZP_NOT_FOUND 1

#define BZP_NAME_MAX 64       /* agent names, label keys */
#define BZP_LABEL_VALUE_MAX 128
#define BZP_LABELS_MAX 32
#define BZP_EMAIL_MAX 254
#define BZP_UNIX_USER_MAX 32
#define BZP_GROUPS_MAX 64
#define BZP_GROUP_MAX 128
#define BZP_DEFAULT_SESSION_TTL (12 * 3600)
#define BZP_DEFAULT_CHECKPOINT_INTERVAL 60

/* limits: in the config (docs/commands.md): defaults and ceilings */
/* 10,000 agents and 1,000 sessions, with room (docs/commands.md) */
#define BZP_DEFAULT_MAX_LINKS 16384
#define BZP_MAX_LINKS_MAX 1048576
/* links not yet authenticated: in all, and from one address (see limits.c) */
#define BZP_DEFAULT_PREAUTH_LINKS 1024
#define BZP_DEFAULT_PREAUTH_PER_ADDRESS 256
/* the largest message before authentication: a login with a 12 KiB ID
 * token is ~13 KiB (docs/commands.md) */
#define BZP_DEFAULT_PREAUTH_MESSAGE 32768
#define BZP_PREAUTH_MESSAGE_MIN 4096
#define BZP_DEFAULT_SESSIONS_PER_USER 2048
#define BZP_SESSIONS_PER_USER_MAX 1048576
#define BZP_DEFAULT_CHANNELS_PER_SESSION 256
#define BZP_CHANNELS_PER_SESSION_MAX 4096
#define BZP_DEFAULT_COMMAND_BYTES BZ_WIRE_COMMAND_MAX
#define BZP_LIMIT_LINKS "limits.max_links"
#define BZP_LIMIT_SESSIONS "limits.sessions_per_user"
#define BZP_LIMIT_CHANNELS "limits.channels_per_session"
#define BZP_LIMIT_COMMAND "limits.command_bytes"
#define BZP_LIMIT_PREAUTH "limits.preauth_links"
#define BZP_LIMIT_PREAUTH_ADDR "limits.preauth_per_address"
#define BZP_LIMIT_PREAUTH_MESSAGE "limits.preauth_message_bytes"

/* ---- config.c ---- */
struct bz_config;
struct bzp_limits {
	long max_links;            /* wss links (agents + clients) at once */
	int max_links_set;         /* in the config (else the default, which
	                            * bzp_fd_limit may lower) */
	long preauth_links;        /* links not yet authenticated, in all */
	long preauth_per_address;  /* ... from one peer address */
	long preauth_message;      /* the largest message before then */
	long sessions_per_user;    /* client sessions per IdP user at once */
	long channels_per_session; /* open channels per SSH connection */
	long command_bytes;        /* longest exec command line */
};
struct bzp_config {
	struct bz_config *raw;
	char *listen_host;      /* "127.0.0.1" */
	int listen_port;
	char *tls_cert, *tls_key, *state_db, *signing_key, *policies;
	char *audit_log;
	char *audit_checkpoints; /* signed checkpoints of the log's tail
	                          * (default audit_log + ".checkpoints") */
	long audit_checkpoint_interval; /* seconds (default 60) */
	char *pid_file;         /* state_db + ".pid": serve writes it */
	const char *issuer;     /* borrowed from raw */
	const char *audience;
	const char *groups_claim;
	char *oidc_ca_file;     /* NULL: system store */
	long session_ttl;       /* seconds */
	struct bzp_limits limits;
};
int bzp_config_load(const char *path, struct bzp_config *c, char *err,
    size_t errlen);
void bzp_config_free(struct bzp_config *c);

/* ---- store.c ---- */
struct bzp_store;

struct bzp_user {
	uint8_t seed[64];           /* secret */
	size_t seed_len;
	struct bz_totp_state totp;
};

struct bzp_agent_rec {
	char *labels;               /* JSON object text */
	int has_token;              /* an unused enrolment token exists */
	uint8_t token_hash[32];     /* SHA-256 of the token */
	int pinned;
	uint8_t key[32];            /* pinned Ed25519 public key */
	int64_t enrolled_at;
	int64_t last_seen;          /* link up or down; 0: never */
};

struct bzp_session_rec {
	char *user;
	char *groups;               /* JSON array text */
	char *id_token;             /* secret */
	char *client_key;           /* b64url Ed25519 public key */
	int64_t expires;
	int64_t mfa_at;
};

/* Open (create 0600, schema on first use) the database at path. */
int bzp_store_open(const char *path, struct bzp_store **out, char *err,
    size_t errlen);
void bzp_store_close(struct bzp_store *s);
/* One transaction around several writes (bulk commands): BEGIN
 * IMMEDIATE, COMMIT (0 or an error), ROLLBACK. */
int bzp_store_begin(struct bzp_store *s);
int bzp_store_commit(struct bzp_store *s);
void bzp_store_rollback(struct bzp_store *s);
/* Enrol or re-enrol a user with a fresh seed and fresh TOTP state. */
int bzp_store_user_put(struct bzp_store *s, const char *email,
    const uint8_t *seed, size_t len, time_t now);
/* 0, BZP_NOT_FOUND, or an error. */
int bzp_store_user_get(struct bzp_store *s, const char *email,
    struct bzp_user *u);
int bzp_store_user_set_totp(struct bzp_store *s, const char *email,
    const struct bz_totp_state *st);
/* Add or re-enrol an agent: new labels and token hash, key unpinned. */
int bzp_store_agent_put(struct bzp_store *s, const char *name,
    const char *labels_json, const uint8_t token_hash[32], time_t now);
/* 0, BZP_NOT_FOUND, or an error; clear a with bzp_agent_rec_clear. */
int bzp_store_agent_get(struct bzp_store *s, const char *name,
    struct bzp_agent_rec *a);
void bzp_agent_rec_clear(struct bzp_agent_rec *a);
/*
 * Burn the enrolment token and pin key, only if name is still unpinned and
 * its token hash is still token_hash. 0, BZP_NOT_FOUND (lost a race or
 * token gone), or an error.
 */
/* The time an agent's link came up or went down (for `targets`). */
int bzp_store_agent_seen(struct bzp_store *s, const char *name, time_t when);
/* fn for each enrolled agent, by name; stops at fn's first non-zero,
 * which it returns. last_seen 0: never. */
int bzp_store_agent_each(struct bzp_store *s,
    int (*fn)(const char *name, const char *labels, int64_t last_seen,
    void *arg), void *arg);
int bzp_store_agent_pin(struct bzp_store *s, const char *name,
    const uint8_t token_hash[32], const uint8_t key[32], time_t now);
int bzp_store_session_put(struct bzp_store *s, const uint8_t hash[32],
    const struct bzp_session_rec *r);
/* 0, BZP_NOT_FOUND, or an error; clear r with bzp_session_rec_clear. */
int bzp_store_session_get(struct bzp_store *s, const uint8_t hash[32],
    struct bzp_session_rec *r);
int bzp_store_session_set_mfa(struct bzp_store *s, const uint8_t hash[32],
    int64_t mfa_at);
/* Delete sessions that expired before now. */
int bzp_store_session_purge(struct bzp_store *s, time_t now);
void bzp_session_rec_clear(struct bzp_session_rec *r);
/*
 * Reserve n session ids (1..BZP_SID_BLOCK_MAX) never handed out before,
 * across restarts and crashes: *first..*first+n-1, never 0 (after 2^32-1
 * they start over at 1). Committed durably before it returns. 0 or an
 * error.
 */
#define BZP_SID_BLOCK_MAX 65536
int bzp_store_sid_block(struct bzp_store *s, uint32_t n, uint32_t *first);
/* SQLite's last message, for logs (never contains bound values). */
const char *bzp_store_errmsg(struct bzp_store *s);

/* ---- server.c / conn.c ---- */
struct lws;
struct bz_audit;
struct bz_jwks_cache;

enum bzp_kind {
	BZP_CONN_CLIENT = 1,
	BZP_CONN_AGENT = 2,
};

/* One queued websocket message: LWS_PRE bytes of headroom, then a frame. */
struct bzp_out {
	struct bzp_out *next;
	size_t len;     /* frame bytes after the headroom */
	uint8_t buf[];  /* LWS_PRE + frame */
};

struct bzp_client;
struct bzp_agent;

struct bzp_conn {
	struct bzp_server *srv;
	struct lws *wsi;
	enum bzp_kind kind;
	char peer[64];            /* "client 127.0.0.1:5555", for logs */
	char addr[48];            /* the peer's address alone */
	int preauth;              /* not authenticated yet (limits.c) */
	int got_message;          /* a whole message came */
	int64_t heard_ms;         /* keepalive.c: when the peer last spoke */
	int ping_state;           /* BZP_PING_* */
	struct bzp_conn *pa_next, *pa_prev; /* server's pre-auth list */
	/* a message arriving in pieces (allocated only then) */
	struct bzp_out *rx;
	size_t rx_len, rx_cap;
	/* write queue */
	struct bzp_out *q_head, *q_tail;
	size_t q_bytes;
	uint64_t seq;
	unsigned pause_refs;      /* destinations over high water we feed */
	int closing;
	int write_failed;         /* a write outside WRITEABLE failed */
	int peer_closes;          /* ended by an error: the peer closes */
	char why[160];            /* close reason sent in the close frame */
	struct bzp_client *client;
	struct bzp_agent *agent;
	struct bzp_conn *next, *prev; /* server-wide list */
};

struct bzp_server {
	const struct bzp_config *cfg;
	struct bzp_store *store;
	struct bz_audit *audit;
	struct bz_jwks_cache *jwks; /* the IdP's keys (common/jwks_cache.h) */
	struct bz_policy_set *policy;
	uint8_t pk[32];
	uint8_t sk[64];             /* secret */
	char *pk_b64;
	struct lws_context *ctx;    /* NULL once lws has left the loop */
	struct uv_loop_s *loop;     /* ours, lws runs on it (server.c) */
	int stop_asked;             /* SIGTERM or SIGINT came */
	struct bzp_conn *conns;     /* every live websocket */
	size_t nconns;
	time_t links_refused_at;    /* limits.c: the last link_refused record */
	unsigned long links_refused; /* ... and those refused since */
	const char *refused_limit;  /* ... the last one's limit key */
	struct bzp_conn *preauth;   /* links not authenticated yet */
	size_t npreauth;
	size_t trim_peak;           /* most links since memory was trimmed */
	int trim_pending;
	lws_sorted_usec_list_t trim_timer;
	struct bzp_agent *agents;   /* agents that passed agent_hello, a
	                               uthash table by name (agent_link.c) */
	lws_sorted_usec_list_t stop_timer;
	lws_sorted_usec_list_t keepalive_timer;
	int stop_expired;           /* the peers had their time to close */
	uint32_t next_sid;          /* sids.c: the reserved block's next */
	uint32_t sid_left;          /* ... and how many of it are left */
	int stop;
	lws_sorted_usec_list_t checkpoint_timer;
	uint64_t checkpoint_seq;    /* lines the last checkpoint vouches for */
	int checkpointed;           /* we wrote one since start */
};

/* Run the service until SIGTERM/SIGINT. Exit status. */
int bzp_serve(const struct bzp_config *cfg);

/* ---- audit_checkpoints.c ---- */
/* At start: does the log hold what the latest checkpoint vouches for? 0,
 * or BZ_ERR_* with err (a cut log: bzproxy must not start). */
int bzp_checkpoint_check(struct bzp_server *s, char *err, size_t errlen);
/* Once serving: a checkpoint now, then every interval (when the log
 * grew). */
void bzp_checkpoint_start(struct bzp_server *s);
/* A checkpoint now, if the log grew since the last one (at shutdown). */
void bzp_checkpoint_now(struct bzp_server *s);

/* conn.c: stop reading a source while its destination holds more than
 * HIGH bytes; resume below LOW. */
#define BZP_QUEUE_HIGH (4u * 1024 * 1024)
#define BZP_QUEUE_LOW (1u * 1024 * 1024)

/* Queue one frame (encoded here) and ask for a writeable callback. */
int bzp_conn_send(struct bzp_conn *c, uint8_t type, uint16_t flags,
    uint32_t session_id, uint32_t channel, const void *payload, size_t len);
/* Queue a CONTROL frame holding obj (no flags). */
int bzp_conn_send_json(struct bzp_conn *c, uint32_t session_id,
    uint32_t channel, const json_t *obj);
/*
 * Queue {"t":"error","reason":reason} on channel 0 and end the link the
 * orderly way: what the peer sends from now on is dropped, and the peer
 * closes (bzsshd and bzagent do on an error); one that does not is cut
 * after a grace period. Closing first ourselves can reset the connection
 * while the peer still sends (window grants), and a reset makes the
 * peer's kernel drop our last frames unread: the reason itself.
 */
void bzp_conn_fail(struct bzp_conn *c, const char *reason);
/*
 * Queue a received message as is, with its header's session_id replaced
 * (the only field bzproxy rewrites). Takes ownership of *msg.
 */
int bzp_conn_relay(struct bzp_conn *dst, struct bzp_out **msg,
    uint32_t session_id);
/* Flush what is queued, then close with a logged reason (printf style). */
void bzp_conn_close(struct bzp_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * Backpressure between a source and a destination: after relaying into
 * dst, pause src when dst is over BZP_QUEUE_HIGH; *held records that this
 * pair holds one pause of src. bzp_conn_release drops it.
 */
void bzp_conn_hold(struct bzp_conn *src, struct bzp_conn *dst, int *held);
void bzp_conn_release(struct bzp_conn *src, int *held);
/*
 * A new link has BZP_FIRST_MESSAGE_S for its first whole message and
 * BZP_AUTH_TIMEOUT_S to finish login/hello(+mfa: a person types a TOTP
 * code) or agent_hello; bzp_conn_authenticated lifts both limits.
 */
#define BZP_FIRST_MESSAGE_S 10
#define BZP_AUTH_TIMEOUT_S 120
void bzp_conn_start_auth_timer(struct bzp_conn *c);

/* keepalive.c: a link silent for BZP_PING_AFTER_S gets a ping; one that
 * stays silent BZP_HANGUP_AFTER_S in all is closed. Checked every
 * BZP_KEEPALIVE_TICK_S. */
#define BZP_PING_AFTER_S 20
#define BZP_HANGUP_AFTER_S 50
#define BZP_KEEPALIVE_TICK_S 2
enum { BZP_PING_NONE = 0, BZP_PING_DUE, BZP_PING_SENT };
/* Start the timer (once the context exists). */
void bzp_keepalive_start(struct bzp_server *s);
/* The peer sent something: a message piece or a pong. */
void bzp_keepalive_heard(struct bzp_conn *c);
/* In WRITEABLE: write a due ping. 1 written (nothing else may be written
 * in this callback), 0 none due, -1 broken. */
int bzp_keepalive_write(struct bzp_conn *c);
void bzp_conn_authenticated(struct bzp_conn *c);
/* LWS_CALLBACK_SERVER_WRITEABLE: write queued frames. -1 closes. */
int bzp_conn_writeable(struct bzp_conn *c);
/* Free queues (the connection is gone). */
void bzp_conn_free(struct bzp_conn *c);
/* A new message buffer with room for len frame bytes (NULL: no memory). */
struct bzp_out *bzp_out_new(size_t len);

/* ---- client_auth.c / client_link.c ---- */
enum bzp_client_state {
	BZP_CL_START = 0,   /* waiting for login or hello */
	BZP_CL_WAIT_KEYS,   /* login waits for a JWKS refresh */
	BZP_CL_MFA,         /* mfa_required sent */
	BZP_CL_WAIT_SYNACK, /* the SYN went to the agent */
	BZP_CL_READY,       /* hello_ok sent: channels flow */
	BZP_CL_DONE,        /* answered and closing */
};

struct bzp_chan {
	struct bzp_chan *next;
	uint32_t id;
	int forward;          /* a direct-tcpip channel */
	int requested;        /* its one request (exec, shell, subsystem,
	                       * forward) seen */
	int running;          /* signed request sent to the agent */
	int client_closed;
	int agent_closed;
	int ended;            /* its channel_close/_failed is written */
	enum bz_action action;
	char rule[128];
};

/* A message the client signed (client_chain.c): its bytes (JSON then
 * signature) and the JSON parsed. */
struct bzp_signed {
	uint8_t *bytes;
	size_t len;
	json_t *json;
};

/* What bzproxy countersigns about a client's message. */
#define BZP_NO_LOGIN "no valid login: run bzsshd login"
/* what users read, and the audit log records, when bzproxy stops */
#define BZP_STOPPING "bzproxy is shutting down"
/* what a user reads when we cannot make the record of what they ask */
#define BZP_NO_AUDIT "bzproxy cannot write its audit log: ask its " \
	"operators (nothing runs unrecorded)"

struct bzp_verdict {
	int allowed;
	const char *action;   /* policy action, or "signal", "none" */
	const char *rule;
	const char *reason;   /* for a deny */
};

struct bzp_client {
	struct bzp_conn *conn;
	enum bzp_client_state state;
	uint8_t challenge[32];  /* signed by login, hello, whoami (pop.h) */
	char *client_key;       /* b64url public key of the session */
	struct bzp_signed syn;  /* the session's SYN, until the SYNACK */
	json_t *pending_login;  /* login held while keys are refreshed */
	uint64_t keys_seen;     /* JWKS fetches ended when it was held */
	uint32_t sid;           /* non-zero once READY */
	uint8_t session_hash[32];
	char *user, *target, *unix_user;
	char *login_token;      /* secret: the login's, bound to the key */
	char *id_token;         /* secret: the current one (client_token.c) */
	json_t *groups;         /* array of strings */
	const char **group_v;   /* views into groups, for the policy */
	size_t ngroups;
	json_t *labels;         /* the target's labels (object) */
	struct bz_label *label_v;
	size_t nlabels;
	char rule[128];         /* rule that allowed the session */
	int64_t mfa_at;         /* the session's last TOTP check */
	long mfa_max_age;
	int mfa_tries;
	struct bzp_agent *agent;      /* while READY and the agent is up */
	UT_hash_handle agent_hh;      /* in agent->clients, by sid */
	struct bzp_chan *chans;
	size_t nchans;
	int agent_held;         /* our queue paused the agent */
	int held_by_agent;      /* the agent's queue paused us */
	int opened;             /* its session_open (allow) is written */
	int ended;              /* ... and its session_close */
};

/* New client state on a /v1/client connection. */
struct bzp_client *bzp_client_new(struct bzp_conn *c);
/* One decoded frame from the client; may take *msg (relay). */
void bzp_client_frame(struct bzp_client *cl, const struct bz_frame *f,
    struct bzp_out **msg);
/* client_auth.c: channel-0 messages before READY, and the MFA prompt. */
void bzp_client_auth(struct bzp_client *cl, const struct bz_frame *f);
/* Retry a login held for fresh keys (a JWKS fetch has ended since). */
void bzp_client_keys_ready(struct bzp_client *cl);
/* A channel frame from the agent for this link: relay it (takes *msg). */
void bzp_client_from_agent(struct bzp_client *cl, const struct bz_frame *f,
    struct bzp_out **msg);
/* client_request.c: a signed request for channel id (ch NULL when it is
 * not open): decided, audited, passed on with the decision. */
void bzp_client_request(struct bzp_client *cl, struct bzp_chan *ch,
    uint32_t id, const struct bzp_signed *m);
/* client_link.c, for client_request.c */
void bzp_chan_refuse(struct bzp_client *cl, uint32_t id, const char *t,
    const char *reason);
/* client_chain.c */
/* Split and verify a signed message p (n bytes) against the b64url
 * client key (NULL: the key the message names, a SYN's): 0 with m
 * filled, or BZ_ERR_FORMAT / BZ_ERR_INVALID. */
int bzp_signed_parse(const uint8_t *p, size_t n, const char *client_key,
    struct bzp_signed *m);
void bzp_signed_free(struct bzp_signed *m);
/* Pass m to the agent inside our signed envelope with the verdict, for
 * channel ch (0: the SYN). 0 or BZ_ERR_*. */
int bzp_send_envelope(struct bzp_client *cl, uint32_t ch,
    const struct bzp_signed *m, const struct bzp_verdict *v);
/* hello's SYN (b64url): signed by client_key, naming the hello's target
 * and unix user, the session's key, its login token (as "login_token", or
 * as "id_token" when no refresh happened), a current ID token that
 * continues that login (bzp_token_check, kept in cl->id_token), fresh.
 * Kept in cl->syn. 0, or -1 with why. */
int bzp_syn_check(struct bzp_client *cl, const char *syn_b64,
    const char *client_key, const char *login_token, char *why, size_t wl);

/* client_token.c */
/* Does current, an ID token, continue login_token's login for user (the
 * same token, or a refreshed one: docs/protocol.md "Long sessions")? 0, or
 * BZ_ERR_INVALID with why fit for the user. */
int bzp_token_check(struct bzp_server *s, const char *login_token,
    const char *current, const char *user, char *why, size_t wl);
/* A signed "token" message (channel 0) of a running session: its new
 * current ID token, checked, kept, audited and passed on to the agent. */
void bzp_client_token(struct bzp_client *cl, const struct bzp_signed *m);
/* The agent's answer to the SYN: signed by its pinned key, naming our
 * SYN's hash. 0 with *synack_b64 (malloc'ed, for hello_ok). */
int bzp_synack_check(struct bzp_client *cl, const struct bz_frame *f,
    char **synack_b64);
/* client_auth.c: the agent answered the SYN on channel 0 (SYNACK or
 * failed): hello_ok or a refusal. */
void bzp_client_agent_answer(struct bzp_client *cl, const struct bz_frame *f);
/* client_end.c (docs/audit.md, "How sessions and channels end") */
/* The agent's exit / failed control for running channel ch: its
 * channel_close / channel_failed record (before it is relayed). */
void bzp_chan_end_from_agent(struct bzp_client *cl, struct bzp_chan *ch,
    const struct bz_frame *f);
/* The session's session_close (once, and only for one that opened), with
 * why when bzproxy ended it (NULL: the client did). */
void bzp_client_session_end(struct bzp_client *cl, const char *why);
/* The agent went away: running channels and the session end on the
 * record with reason, which the client is told; the link closes. */
void bzp_client_agent_gone(struct bzp_client *cl, const char *reason);
/* bzproxy stops: the same, and the agent is told session_closed. */
void bzp_client_stop(struct bzp_client *cl, const char *reason);
/* The link is gone (bzp_client_free): what still ran ends on the record. */
void bzp_client_gone(struct bzp_client *cl);
/* Our queue drained below BZP_QUEUE_LOW: let the agent go on. */
void bzp_client_drained(struct bzp_client *cl);
/* The connection is gone: tell the agent, free everything. */
void bzp_client_free(struct bzp_client *cl);
/* Fill a policy request with the client's session facts. */
void bzp_client_policy_req(const struct bzp_client *cl,
    struct bz_policy_request *req, enum bz_action action,
    const char *command);

/* ---- agent_link.c ---- */
struct bzp_agent {
	struct bzp_conn *conn;
	int ready;              /* agent_ok sent */
	uint8_t key[32];        /* its pinned identity key */
	char *name;
	uint8_t nonce[32];
	struct bzp_client *clients; /* its sessions: a table by sid */
	UT_hash_handle hh;      /* in server->agents by name, once ready */
};

struct bzp_agent *bzp_agent_new(struct bzp_conn *c);
void bzp_agent_frame(struct bzp_agent *a, const struct bz_frame *f,
    struct bzp_out **msg);
/* The connected, ready agent of that name, or NULL. */
struct bzp_agent *bzp_agent_find(struct bzp_server *s, const char *name);
/* cl's frames come from a (by cl->sid): 0, or -1 out of memory. */
int bzp_agent_attach(struct bzp_agent *a, struct bzp_client *cl);
void bzp_agent_detach(struct bzp_agent *a, struct bzp_client *cl);
/* Our queue drained below BZP_QUEUE_LOW: resume the clients we paused. */
void bzp_agent_drained(struct bzp_agent *a);
void bzp_agent_free(struct bzp_agent *a);
/* labels.c: agent names, label keys ([A-Za-z0-9._-], 1..max). */
int bzp_name_ok(const char *s, size_t max);
/* Label values: printable ASCII without quotes/backslash, 0..max. */
int bzp_label_value_ok(const char *s, size_t max);
/*
 * Parse stored labels (a JSON object of strings) into *obj and views for
 * the policy (*v malloc'ed, pointing into *obj). 0 or an error.
 */
int bzp_labels_parse(const char *text, json_t **obj, struct bz_label **v,
    size_t *n);

/* ---- client_targets.c ---- */
/* A policy callback: append unix_user to the JSON array arg, once. */
void bzp_collect_unix_user(const char *unix_user, void *arg);
/* {"t":"targets_ok","targets":[...]} for cl's user; NULL when out of
 * memory or the store fails. */
json_t *bzp_targets_answer(struct bzp_server *s, const struct bzp_client *cl);
/* Up to 3 names within 2 edits of want that cl may reach, ", "-separated
 * into buf; how many. */
size_t bzp_targets_close(struct bzp_server *s, const struct bzp_client *cl,
    const char *want, char *buf, size_t len);

/* ---- limits.c ---- */
/* Each: 0, or -1 with a reason for the user naming the limit's key. */
/* A new session of cl's user (cl not counted). */
int bzp_limit_sessions(const struct bzp_client *cl, char *why, size_t wl);
/* A new channel on cl. */
int bzp_limit_channels(const struct bzp_client *cl, char *why, size_t wl);
/* An exec command line of len bytes. */
int bzp_limit_command(const struct bzp_server *s, size_t len, char *why,
    size_t wl);
/* A new link from peer, at the handshake; a refusal is logged and
 * audited here (at most once a second, with a count). */
int bzp_limit_links(struct bzp_server *s, const char *peer, char *why,
    size_t wl);
/* The same for a link not authenticated yet, from address addr:
 * limits.preauth_links and limits.preauth_per_address. */
int bzp_limit_preauth(struct bzp_server *s, const char *addr, char *why,
    size_t wl);
/* At shutdown: audit the refused links not recorded yet. */
void bzp_limit_links_flush(struct bzp_server *s);
/* A new link is not authenticated yet; it is, or it is gone. */
void bzp_preauth_add(struct bzp_server *s, struct bzp_conn *c);
void bzp_preauth_remove(struct bzp_server *s, struct bzp_conn *c);
/* A link closed: after a burst (many fewer links than at the peak) give
 * the freed memory back to the system, at most every few seconds. */
void bzp_trim_after_close(struct bzp_server *s);

/* ---- fdlimit.c ---- */
/* Files bzproxy holds besides its links: listeners, stdio, the event
 * loop's, the audit log and checkpoints, SQLite's, IdP fetches, policy
 * files at a reload, and links still in their TLS handshake. */
#define BZP_FD_RESERVE 256
/*
 * The open files limit against limits.max_links: soft and hard are
 * RLIMIT_NOFILE's; *want the soft limit to set (the hard one, at most
 * BZP_MAX_LINKS_MAX + BZP_FD_RESERVE); *links the max_links to use. 0,
 * 1 when max_links was lowered to fit (it was not set: why says so), or
 * -1 with why (refuse to start).
 */
int bzp_fd_fit(unsigned long soft, unsigned long hard,
    const struct bzp_limits *l, unsigned long *want, long *links, char *why,
    size_t wl);
/* At `serve`: raise the soft limit, log it, and check or lower
 * l->max_links (logged). 0 or -1 (logged: refuse to start). */
int bzp_fd_limit(struct bzp_limits *l);

/* ---- sids.c ---- */
/* A session id never used before (docs/audit.md), not 0; 0 when the
 * store cannot reserve more (logged): refuse the session. */
uint32_t bzp_sid_new(struct bzp_server *s);

/* ---- audit_ev.c ---- */
/* Append one event; fields is stolen. Logs and returns <0 on failure. */
int bzp_audit(struct bzp_server *s, const char *event, json_t *fields);
/* The common members of a client's events: user, groups, target,
 * unix_user, sid (those known so far). New reference. */
json_t *bzp_audit_client(const struct bzp_client *cl);
/* Add decision members: action, decision, rule, reason. Returns o. */
json_t *bzp_audit_decision(json_t *o, const char *action, int allowed,
    const char *rule, const char *reason);

/* ---- admin_cmd.c ---- */
int bzp_cmd_user(const struct bzp_config *cfg, int argc, char **argv);
int bzp_cmd_agent(const struct bzp_config *cfg, int argc, char **argv);
int bzp_cmd_key(const struct bzp_config *cfg, int argc, char **argv);
int bzp_cmd_audit(const struct bzp_config *cfg, int argc, char **argv);
int bzp_cmd_policy_reload(const struct bzp_config *cfg);

#endif
