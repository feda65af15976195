/*
 * agent.h: the contracts between bzagent's files.
 *
 *   main.c            command line, config, signals; calls agent_run
 *   connection.c      the link to bzproxy: connect, handshake, reconnect
 *                     with backoff, frame dispatch, the poll loop
 *   key_wait.c        requests held while the IdP's keys are refreshed
 *   request_verify.c  bzproxy's signed envelope; what a request asks for
 *   session.c         sessions: the client's SYN, our SYNACK, the chain
 *   permit.c          what this target allows (users, env, forwards)
 *   child.c           fork/exec of the user's command (pty or pipes)
 *   forward.c         TCP connections for port forwarding, opened on
 *                     worker threads (name lookup and connect block)
 *   channel.c         running channels: frames, windows, exit, close
 *   channel_io.c      a channel's descriptors: child or socket I/O
 *
 * One thread (the poll loop) owns all of the state below; the link thread
 * (common/ws_link.c) and the JWKS thread (common/jwks_cache.c) only meet
 * it through locked queues and a byte on its wake pipe.
 */
#ifndef BZ_AGENT_H
#define BZ_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>
#include <time.h>
#include <jansson.h>

#include "backoff.h"
#include "buf.h"
#include "audit.h"
#include "chain.h"
#include "jwt.h"
#include "seal.h"
#include "wire.h"
#include "ws_link.h"

#ifdef PACKAGE_VERSION
#define AGENT_VERSION PACKAGE_VERSION
#else
#define AGENT_VERSION "0.1.0"
#endif
#define AGENT_ERRLEN 256

/* ---------------------------------------------------------------- config */

struct agent_config {
	char *path;              /* the config file, for messages */
	char *name;              /* our target name */
	char *proxy_url;         /* wss://HOST:PORT (no path) */
	char *proxy_path;        /* "/v1/agent" */
	char *ca_file;           /* verifies bzproxy; NULL = system store */
	uint8_t proxy_pk[32];    /* pinned bzproxy signing key */
	uint8_t pk[32];          /* our identity */
	uint8_t sk[64];
	char *enrol_token;       /* NULL once not needed / not given */
	char *oidc_issuer;
	char *oidc_audience;
	char *oidc_ca_file;      /* NULL = system store */
	char *accept_env;        /* client env names taken (sshd AcceptEnv:
	                          * space-separated patterns) */
	char *permit_open;       /* forward destinations (sshd PermitOpen:
	                          * "host:port ...", "any" or "none") */
	char *sftp_server;       /* program for subsystem sftp; NULL: none */
	int allow_root;          /* serve root (default no) */
	char *unix_users;        /* globs of the users served; NULL: any */
	char *audit_log;         /* our own audit log (audit_log.c) */
	char *children_file;     /* sessions of running channels
	                          * (leftovers.c) */
	long login_max_age;      /* seconds a login lasts (refreshes aside) */
	int max_channels;        /* running at once (<= AGENT_MAX_CHANNELS) */
};

#define AGENT_LOGIN_MAX_AGE_S (24L * 3600)
#define AGENT_ACCEPT_ENV_DEFAULT "LANG LC_* LANGUAGE TERM COLORTERM " \
	"TERM_PROGRAM TERM_PROGRAM_VERSION GIT_PROTOCOL NO_COLOR"
/* Where Debian, Fedora and the BSDs put OpenSSH's sftp-server. */
#define AGENT_SFTP_SERVER_PATHS "/usr/lib/openssh/sftp-server", \
	"/usr/lib/sftp-server", "/usr/libexec/openssh/sftp-server", \
	"/usr/libexec/sftp-server"


/* ------------------------------------------------------------- backoff */

/* Reconnects to bzproxy (common/backoff.h). */
#define AGENT_BACKOFF_BASE_MS 500u
#define AGENT_BACKOFF_CAP_MS 30000u
/* A connection that stayed up this long resets the backoff. */
#define AGENT_BACKOFF_RESET_MS 10000

/* ------------------------------------------- requests held for IdP keys */

#define KEY_WAIT_MAX 64                        /* requests held at once */
#define KEY_WAIT_BYTES_MAX (16u * 1024 * 1024) /* held messages, in all */

struct key_wait;

struct key_wait *key_wait_new(void);
void key_wait_free(struct key_wait *w);
size_t key_wait_count(const struct key_wait *w);
/*
 * Hold msg, the signed request for (sid, ch), until bz_jwks_cache_fetches
 * differs from fetches or deadline_ms passes. Takes msg and returns 0, or
 * returns BZ_ERR_TOO_BIG (KEY_WAIT_MAX / KEY_WAIT_BYTES_MAX reached) or
 * BZ_ERR_ALLOC with msg still the caller's.
 */
int key_wait_add(struct key_wait *w, struct bz_link_msg *msg, uint32_t sid,
    uint32_t ch, uint64_t fetches, int64_t deadline_ms);
/* Is a request for (sid, ch) held? */
int key_wait_has(struct key_wait *w, uint32_t sid, uint32_t ch);
/* Queue a later message for held (sid, ch), to be handled after its
 * request. Takes msg and returns 0, or BZ_ERR_TOO_BIG (over
 * KEY_WAIT_BYTES_MAX) / BZ_ERR_INVALID with msg still the caller's. */
int key_wait_queue(struct key_wait *w, uint32_t sid, uint32_t ch,
    struct bz_link_msg *msg);
/* Forget (sid, ch), every channel of sid, or everything (zeroed, freed). */
void key_wait_drop(struct key_wait *w, uint32_t sid, uint32_t ch);
void key_wait_drop_session(struct key_wait *w, uint32_t sid);
void key_wait_drop_all(struct key_wait *w);
/* The oldest held request whose wait is over (a fetch ended since, or the
 * deadline passed), unlinked: its messages as a list (next), the request
 * first. NULL when none. Free with key_wait_free_msgs. */
struct bz_link_msg *key_wait_take_due(struct key_wait *w, uint64_t fetches,
    int64_t now_ms);
/* ms until the earliest deadline (0 = passed), -1 when nothing is held. */
int key_wait_timeout(const struct key_wait *w, int64_t now_ms);
/* Zero and free a list of messages. */
void key_wait_free_msgs(struct bz_link_msg *m);

/* -------------------------------------------------------------- permit */

/* May the client set name? It must be a valid name (bz_env_name_ok), not one the agent
 * sets itself (HOME, PATH, SSH_*, ...), and match a pattern of
 * accept_env (NULL: AGENT_ACCEPT_ENV_DEFAULT). */
int permit_env(const char *accept_env, const char *name);
/* Does this target serve name? unix_users NULL: every user (root aside:
 * that is allow_root's); else name must match one of its globs. */
int permit_unix_user(const char *unix_users, const char *name);
/* Is a permit_open setting well formed? 0, or BZ_ERR_INVALID naming the
 * bad entry in err. */
int permit_open_check(const char *list, char *err, size_t errlen);
/* May a forward go to host:port? list NULL or "any": yes; "none": no;
 * else one "host:port" entry must match (host a glob, case-insensitive;
 * port a number or "*"; IPv6 hosts in brackets). */
int permit_open(const char *list, const char *host, uint16_t port);

/* ------------------------------------------------------ request verify */

#define REQUEST_MAX_SKEW_S 120  /* |ts - now| allowed */
#define REQUEST_COMMAND_MAX BZ_WIRE_COMMAND_MAX
#define REQUEST_ENV_MAX 64
#define REQUEST_ENV_VALUE_MAX 4096

enum agent_req_kind {
	REQ_EXEC = 0,            /* SHELL -c command */
	REQ_SHELL,               /* login shell */
	REQ_SUBSYSTEM,           /* SHELL -c our program for it (sftp) */
	REQ_FORWARD,             /* a TCP connection (direct-tcpip) */
};

/* A verified channel request, with the unix user resolved. */
struct agent_request {
	uint32_t sid, ch;
	enum agent_req_kind kind;
	char *action;            /* the policy action bzproxy decided on */
	char *command;           /* exec; subsystem: the program run */
	char *subsystem;         /* subsystem name ("sftp") */
	char *fwd_host;          /* forward destination */
	uint16_t fwd_port;
	char *user;              /* the IdP identity (email) */
	char *unix_user;
	char *rule;              /* policy rule that allowed it, for logs */
	int pty;                 /* pty requested */
	char *term;
	uint16_t cols, rows, width, height;
	char **env;              /* "NAME=value" the client sent and
	                          * accept_env allows, NULL-ended */
	char *env_refused;       /* names refused, space-separated, or NULL */
	char *client_addr;       /* ssh's side as bzsshd sees it (or NULL) */
	uint16_t client_port, server_port;
	char *server_addr;       /* ours: set by the caller before spawning */
	uid_t uid;
	gid_t gid;
	char *home;
	char *shell;
	char *request_hash;      /* b64url SHA-256 of the client's message */
};
void agent_request_free(struct agent_request *r);
/* "exec", "shell", "subsystem" or "forward". */
const char *agent_req_kind_name(enum agent_req_kind k);
/* The kind a request's "t" names: 0, or -1 when it is not a request. */
int agent_req_kind_parse(const char *t, enum agent_req_kind *k);

struct verify_ctx {
	const uint8_t *proxy_pk;        /* 32 bytes */
	const char *name;               /* our target name */
	const char *issuer, *audience;
	const struct bz_jwks *jwks;     /* NULL while none fetched */
	time_t now;
	uid_t euid;                     /* who we run as */
	int allow_root;                 /* our config: serve root */
	const char *unix_users;         /* our config: NULL = any */
	const char *accept_env;         /* patterns; NULL: the default */
	const char *permit_open;        /* NULL: any */
	const char *sftp_server;        /* NULL: no sftp subsystem */
	long login_max_age;             /* our config: a login's token is
	                                 * taken this long after its issue */
};

enum verify_result {
	VERIFY_OK = 0,
	VERIFY_REFUSED = 1,     /* reason says why */
	VERIFY_NEED_KEYS = 2,   /* no JWKS yet / unknown kid: refetch keys */
};

#define ENVELOPE_MAX_TTL_S 600  /* bzproxy's envelopes live no longer */

/* bzproxy's signed envelope around a message the client signed. */
struct envelope {
	uint32_t sid, ch;        /* from the frame, checked against it */
	int allowed;             /* bzproxy's decision */
	char *action, *rule;     /* its policy action and rule, or NULL */
	char *reason;            /* for a deny, or NULL */
	uint8_t *csm;            /* the client's signed bytes */
	size_t csm_len;
	json_t *msg;             /* their JSON */
	const char *t;           /* msg's "t" */
};

/*
 * Open a CONTROL frame from bzproxy: its signature (BZ_FLAG_PROXY_SIGNED,
 * by the key pinned in our config), session and channel equal to the
 * frame's, an expiry within ENVELOPE_MAX_TTL_S, a decision, and the
 * client's signed message inside (parsed, not yet verified: that is
 * session.c's). On VERIFY_REFUSED reason holds one line fit for the client
 * and the log (never a token or a signature). Free e in both cases.
 */
enum verify_result envelope_open(const struct verify_ctx *v,
    const struct bz_frame *f, struct envelope *e, char *reason, size_t rl);
void envelope_free(struct envelope *e);

/* ------------------------------------------------------------- session */

#define AGENT_MAX_SESSIONS 1024

/* A session (one SSH connection) whose SYN we accepted. */
struct agent_session {
	struct agent_session *next;
	uint32_t sid;
	uint8_t client_pk[32];   /* every message is signed by it */
	uint8_t last_hash[32];   /* of the last message (our SYNACK first) */
	uint64_t last_seq;
	int broken;              /* a message broke the chain, or sealed
	                          * data failed to open */
	struct bz_seal seal;     /* secret: the data keys (SYN's and our kx) */
	uint32_t last_ch;        /* highest channel started: never reused,
	                          * so a sealing nonce never repeats */
	char *user;              /* the IdP identity (the token's email) */
	char *sub;               /* the login's subject and auth_time: a */
	int64_t auth_time;       /* refreshed token must name them (0: none) */
	int64_t token_exp;       /* the current ID token's expiry */
	char *unix_user, *home, *shell;
	uid_t uid;
	gid_t gid;
};

struct session_table;

struct session_table *sessions_new(void);
void sessions_free(struct session_table *t);
struct agent_session *sessions_find(struct session_table *t, uint32_t sid);
size_t sessions_count(const struct session_table *t);
/* Forget a session (closed by the client, or the link went down). */
void sessions_drop(struct session_table *t, uint32_t sid);
void sessions_drop_all(struct session_table *t);

/*
 * A SYN (e->t "syn", channel 0): allowed by bzproxy; signed by the client
 * key it names; seq 0; fresh (REQUEST_MAX_SKEW_S); for our name; an ID
 * token our JWKS verifies (iss, aud, exp, signature) whose nonce is
 * b64url(SHA-256(client key || nonce_salt)); a unix user our config
 * serves. On VERIFY_OK the session is added and *synack (malloc'ed) is
 * our answer, signed with agent_sk. VERIFY_NEED_KEYS: fetch the IdP's
 * keys and try again.
 */
enum verify_result session_syn(struct session_table *t,
    const struct verify_ctx *v, const struct envelope *e,
    const uint8_t agent_pk[32], const uint8_t agent_sk[64],
    uint8_t **synack, size_t *synack_len, char *reason, size_t rl);
/*
 * A later message of session s: signed by its client key, seq one more
 * than the last, prev the hash of the last (b64url), its channel the
 * frame's, fresh. 0 and the chain moves on, or BZ_ERR_INVALID with reason
 * and the session is broken for good.
 */
int session_next(struct agent_session *s, const struct verify_ctx *v,
    const struct envelope *e, char *reason, size_t rl);
/*
 * A verified "token" message of s (channel 0): its ID token verifies now
 * and is of the session's login (sub, email, auth_time): the session runs
 * on until it expires. 0, or BZ_ERR_INVALID with reason.
 */
int session_token(struct agent_session *s, const struct verify_ctx *v,
    const struct envelope *e, char *reason, size_t rl);
/*
 * What a verified message of s asks for (exec, shell, subsystem,
 * forward), read from the client's bytes: req is complete on VERIFY_OK
 * (a subsystem we serve, a forward permit_open allows, the action
 * bzproxy named matching the request's kind, environment names
 * accept_env does not match left out and listed in env_refused).
 * Free req in both cases.
 */
enum verify_result session_request(const struct agent_session *s,
    const struct verify_ctx *v, const struct envelope *e,
    struct agent_request *req, char *reason, size_t rl);

/* ---------------------------------------------------------------- child */

struct child_proc {
	pid_t pid;       /* process group and session leader */
	int pty_fd;      /* pty master (read and write), or -1 */
	int in_fd;       /* pipe to its stdin, or -1 (pty) */
	int out_fd;      /* pipe from its stdout, or -1 (pty) */
	int err_fd;      /* pipe from its stderr, or -1 (pty) */
};

/*
 * Start req's command: exec runs SHELL -c COMMAND, shell runs the login
 * shell ("-bash"), as req's user in a new session, on a pty or on three
 * pipes. Our ends are non-blocking and close-on-exec. Returns 0 once the
 * new program is exec'ed, or BZ_ERR_* with the reason (the stage that
 * failed in the child and its errno) in err.
 */
int child_spawn(const struct agent_request *req, struct child_proc *out,
    char *err, size_t errlen);
/* Build the login environment (malloc'ed NULL-ended strings); tty is the
 * pty's name (SSH_TTY) or NULL. */
char **child_build_env(const struct agent_request *req, const char *tty);
void child_free_env(char **env);

/* -------------------------------------------------------------- forward */

#define AGENT_FORWARD_TIMEOUT_MS 10000  /* name lookup + connect */
#define AGENT_FORWARD_PENDING_MAX 32    /* connects running at once */

struct fwd_pool;

/* A finished connect for (sid, ch): fd connected (non-blocking,
 * close-on-exec), or -1 with the reason. */
struct fwd_result {
	uint32_t sid, ch;
	int fd;
	char reason[AGENT_ERRLEN];
	char request_hash[BZ_HASH_B64_LEN + 1]; /* as fwd_pool_start got it */
};

/* wake_fd (dup'ed) gets a byte each time a connect finishes. */
struct fwd_pool *fwd_pool_new(int wake_fd);
/* Stop waiting: connects still running finish on their threads and their
 * sockets are closed. */
void fwd_pool_free(struct fwd_pool *p);
/* Look host up and connect to port, within AGENT_FORWARD_TIMEOUT_MS, on
 * a worker thread. 0, BZ_ERR_TOO_BIG (AGENT_FORWARD_PENDING_MAX running),
 * BZ_ERR_INVALID or BZ_ERR_ALLOC. */
int fwd_pool_start(struct fwd_pool *p, uint32_t sid, uint32_t ch,
    const char *host, uint16_t port, const char *request_hash);
/* Is a connect for (sid, ch) running or finished and not yet taken? */
int fwd_pool_has(struct fwd_pool *p, uint32_t sid, uint32_t ch);
/* Forget (sid, ch), or every channel of sid: a socket it still makes is
 * closed. */
void fwd_pool_cancel(struct fwd_pool *p, uint32_t sid, uint32_t ch);
void fwd_pool_cancel_session(struct fwd_pool *p, uint32_t sid);
void fwd_pool_cancel_all(struct fwd_pool *p);
/* Connects running or finished and not taken (they count as channels). */
size_t fwd_pool_count(struct fwd_pool *p);
/* A finished connect into *out: 1, or 0 when none has finished. */
int fwd_pool_take(struct fwd_pool *p, struct fwd_result *out);

/* ------------------------------------------------------------ leftovers */

/* The sessions of running channels, recorded in a file so that the next
 * agent ends what a killed one left running (leftovers.c). */
struct leftovers;

/* Fork a watcher that ends what path records once the agent is gone
 * (before the agent has threads: the watcher calls wipe(arg) to forget
 * the agent's secrets). Returns the fd the agent keeps open for life, or
 * -1 with errno. */
int leftovers_watch(const char *path, void (*wipe)(void *), void *arg);
/* End every process still in the sessions path records (a previous run's
 * channels; each ended session gets an audit line), then start an empty
 * record. 0, or BZ_ERR_* with err (the file cannot be written). */
int leftovers_open(const char *path, struct bz_audit *audit,
    struct leftovers **out, char *err, size_t errlen);
/* Record (l NULL: nothing) the session a channel's child leads. */
int leftovers_add(struct leftovers *l, pid_t leader);
void leftovers_remove(struct leftovers *l, pid_t leader);
/* At shutdown: end every process still in a recorded session. */
void leftovers_end_all(struct leftovers *l);
void leftovers_free(struct leftovers *l);

/* ------------------------------------------------------------- channels */

#define AGENT_MAX_CHANNELS_DEFAULT 256
#define AGENT_MAX_CHANNELS 1024    /* the most max_channels may be */
#define AGENT_LINK_HIGH (4u * 1024 * 1024) /* pause reads above this */
/* Credit goes back once this much was written (as bzsshd's
 * GRANT_THRESHOLD; docs/protocol.md: at least every half window), not
 * whenever the input drains: a WINDOW frame per keystroke was a second
 * message through every hop, ahead of the echo. */
#define AGENT_GRANT_BATCH (BZ_WIRE_INITIAL_WINDOW / 4)
#define AGENT_KILL_GRACE_MS 2000   /* SIGHUP, then SIGKILL after this */
#define AGENT_PTY_GRACE_MS 100     /* pty drain after the child exited */

struct chan_table;

/* audit: where each channel's end is recorded (NULL: nowhere); lo: where
 * the sessions of its children are (NULL: nowhere). */
struct chan_table *chans_new(struct bz_audit *audit, struct leftovers *lo);
void chans_free(struct chan_table *t);
size_t chans_count(const struct chan_table *t);
/* Is (sid, ch) in use? */
int chans_exists(const struct chan_table *t, uint32_t sid, uint32_t ch);

/* Take over a started child for a verified request (req is logged, not
 * kept). Returns 0 or BZ_ERR_ALLOC. */
int chans_add(struct chan_table *t, const struct agent_request *req,
    const struct child_proc *cp, const struct bz_seal *seal);
/* Take over a forward's connected socket fd. 0 or BZ_ERR_ALLOC (fd is
 * then still the caller's). seal: the session's data keys (copied). */
int chans_add_socket(struct chan_table *t, const struct fwd_result *res,
    const struct bz_seal *seal);

/* A non-request frame from bzproxy for channel (f->session_id,
 * f->channel_id): DATA, EOF (sealed by the client), CLOSE, WINDOW, or an
 * unsigned CONTROL (window_change). BZ_ERR_INVALID: a DATA or EOF that
 * was not the client's next sealed frame on the channel: the caller ends
 * the session (chans_session_broken). */
int chans_frame(struct chan_table *t, struct bz_link *link,
    const struct bz_frame *f);
/* Sealed data of sid failed to open: tell the client why on every channel
 * of sid, and end them. */
void chans_session_broken(struct chan_table *t, struct bz_link *link,
    uint32_t sid, const char *reason);
/* A signed signal request for (sid, ch): SSH's name ("TERM") to the
 * child's process group, if it still runs. */
void chans_signal(struct chan_table *t, uint32_t sid, uint32_t ch,
    const char *name);
/* The client link of sid went away: every channel of it is closed. */
void chans_session_closed(struct chan_table *t, uint32_t sid);
/* The link to bzproxy is gone: end every channel without telling anyone. */
void chans_link_lost(struct chan_table *t);
/* SIGCHLD: reap what exited. */
void chans_reap(struct chan_table *t);
/* The agent stops: SIGHUP every child, SIGKILL what is left after
 * grace_ms, reap them all. */
void chans_shutdown(struct chan_table *t, int grace_ms);

/*
 * The poll loop's view: fill up to max pollfds for the channels (which fds,
 * which events depend on windows and on link backpressure; link may be
 * NULL when down) and return how many; chans_io then handles the results.
 * chans_pump sends what became due (EOF, exit, CLOSE), sends kills whose
 * grace ran out, frees finished channels, and returns the poll timeout it
 * needs in ms (-1 = none).
 */
size_t chans_pollfds(struct chan_table *t, struct bz_link *link,
    struct pollfd *pfd, size_t max);
void chans_io(struct chan_table *t, struct bz_link *link,
    const struct pollfd *pfd, size_t n);
int chans_pump(struct chan_table *t, struct bz_link *link, int64_t now_ms);

/* Send {"t":"failed","reason":...} then CLOSE on (sid, ch). */
void agent_send_failed(struct bz_link *link, uint32_t sid, uint32_t ch,
    const char *reason);
/* Queue a CONTROL frame holding obj on (sid, ch). */
int agent_send_json(struct bz_link *link, uint32_t sid, uint32_t ch,
    const json_t *obj);

/* ------------------------------------------------------------ the agent */

/* Run until *stop becomes true (signal) or a fatal error. Returns the exit
 * status (0 after a signal). sig_fd is a signalfd for SIGCHLD, SIGTERM,
 * SIGINT, SIGHUP. */
int agent_run(const struct agent_config *cfg, int sig_fd);

/* ------------------------------------------------------------ audit_log */

/* The target's own audit log (audit_log.c). au NULL: lines go nowhere.
 * The writers return 0, or BZ_ERR_* when the line could not be written
 * (logged). */
/* A SYN: s the session started, or NULL and refused says why not. */
int agent_audit_session(struct bz_audit *au, const struct envelope *e,
    const struct agent_session *s, const char *refused);
/* A request of session s (NULL: unknown) in e, req what was read from it
 * (or NULL): result "run", "refused", "denied" (by bzproxy) or "failed"
 * (could not start), reason for all but "run". */
int agent_audit_request(struct bz_audit *au, const struct envelope *e,
    const struct agent_session *s, const struct agent_request *req,
    const char *result, const char *reason);
/* A channel is gone: pid > 0 for a process (wstatus then says how it
 * ended), 0 for a forward. */
void agent_audit_channel_end(struct bz_audit *au, uint32_t sid,
    uint32_t ch, const char *request_hash, pid_t pid, int wstatus,
    uint64_t bytes_in, uint64_t bytes_out);
/* Sealed data of session sid (s, if known) did not open on channel ch. */
/* A forward's connect failed (after its "run" line). */
void agent_audit_forward_failed(struct bz_audit *au, uint32_t sid,
    uint32_t ch, const char *request_hash, const char *reason);
/* n processes of a previous run's channel (session of pid) ended. */
void agent_audit_leftovers(struct bz_audit *au, pid_t pid, int n);
void agent_audit_integrity(struct bz_audit *au, uint32_t sid, uint32_t ch,
    const struct agent_session *s, const char *reason);
/* The stderr log line for req: ok (info) or not (warning), and outcome. */
void agent_log_request(const struct agent_request *req, int ok,
    const char *outcome);

#endif
