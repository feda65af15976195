/*
 * bzsshd.h: the contracts between bzsshd's files. Each file has one job:
 *   main.c           command line, dispatch
 *   settings.c       CONFIGDIR/bzsshd.yaml (the user's settings)
 *   session_file.c   config dir, session file, host key, known_hosts
 *   stdio_relay.c    stdin/stdout <-> socketpair for libssh
 *   ws_link.c        the link thread and its two locked queues
 *   ssh_server.c     libssh session, auth (hello / mfa), event loop
 *   proxy_link.c     the connection's link to bzproxy: started, retried
 *                    while bzproxy restarts, its loss explained
 *   ssh_channel_map.c SSH channels <-> wire frames, flow control
 *   ssh_requests.c   a session channel's requests (exec, pty, env, ...)
 *   ssh_forward.c    direct-tcpip opens (-L, -W, -D); -R refused
 *   http_fetch.c     libcurl helpers (https GET / POST form, JSON)
 *   proxy_ask.c      one request and answer on a fresh bzproxy link
 *   login.c          `bzsshd login`: OIDC code + PKCE, TOTP, proxy login
 *   config_cmd.c     status, logout, ssh-config
 * Functions return 0 or a negative BZ_ERR_* and put a reason in err.
 */
#ifndef BZSSHD_H
#define BZSSHD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>

#include "pop.h"
#include "seal.h"
#include "ws_link.h"

#define BZSSHD_ERRLEN 512
#define BZSSHD_VERSION "0.1.0"
/* our SSH version string (after "SSH-2.0-"): see make_bind */
#define BZSSHD_BANNER "OpenSSH_9.2-compatible bzsshd_" BZSSHD_VERSION

/* ---- configuration (main.c, settings.c) ---- */
/* How long --stdio keeps trying to reach bzproxy (a restart). */
#define BZSSHD_PROXY_RETRY_DEFAULT_S 30
struct bzsshd_opts {
	char *config_dir;       /* resolved, malloc'ed */
	int config_dir_given;   /* --config-dir was on the command line */
	int verbose;
	long proxy_retry_s;     /* bzsshd.yaml proxy_retry (0: never) */
	char *ciphers;          /* bzsshd.yaml ciphers, or NULL: the default */
	int fdpass;             /* --fdpass: ssh's ProxyUseFdpass */
};

/* What ssh may pick to encrypt: with AES-NI, AES-GCM only, since ssh
 * takes the first of its own list the server offers, chacha20 before
 * AES-GCM, and libssh's chacha20-poly1305 (a Poly1305 key object per
 * packet on OpenSSL 3) costs bzsshd more CPU per GiB. */
#define BZSSHD_CIPHERS_AESNI "aes256-gcm@openssh.com,aes128-gcm@openssh.com"
#define BZSSHD_CIPHERS_OTHER "chacha20-poly1305@openssh.com," \
	BZSSHD_CIPHERS_AESNI
/* Every cipher the ciphers setting may name (libssh 0.10's). */
#define BZSSHD_CIPHERS_KNOWN BZSSHD_CIPHERS_OTHER \
	",aes256-ctr,aes192-ctr,aes128-ctr"
/* The ciphers bzsshd offers ssh (o->ciphers or the default). */
const char *bz_settings_ciphers(const struct bzsshd_opts *o);

/* ---- settings.c ---- */
/* Read CONFIGDIR/bzsshd.yaml into o (defaults when there is none). 0 or
 * BZ_ERR_* with "FILE:LINE:COLUMN: reason" in err. */
int bz_settings_load(struct bzsshd_opts *o, char *err, size_t errlen);

/* ---- session_file.c ---- */
struct bz_session {
	char *proxy;      /* wss://HOST:PORT */
	char *ca_file;    /* absolute path or NULL (system store) */
	char *issuer;
	char *user;       /* email */
	char *session;    /* secret: bzproxy session token */
	char *id_token;   /* secret: the current ID token */
	char *login_token; /* secret: the login's own ID token, whose nonce
	                    * binds the client key (NULL: id_token is it) */
	char *refresh_token; /* secret, or NULL: the IdP gave none */
	char *client_id;  /* our OIDC client id (for refreshes) */
	char *client_key; /* secret: b64url Ed25519 secret key */
	char *nonce_salt; /* b64url: the token's nonce = H(key || salt) */
	time_t expires;
};

/* Resolve the config dir: given, $BZ_CONFIG_DIR, $XDG_CONFIG_HOME/bz,
 * ~/.config/bz. *out malloc'ed. */
int bz_config_dir_resolve(const char *given, char **out, char *err,
    size_t errlen);
/* Path of a file in the config dir (malloc'ed) or NULL. */
char *bz_config_dir_file(const char *dir, const char *name);
/* Load the session file. BZ_ERR_INVALID when there is none. */
int bz_session_load(const char *dir, struct bz_session *s, char *err,
    size_t errlen);
int bz_session_save(const char *dir, const struct bz_session *s, char *err,
    size_t errlen);
/* Zero secrets and free members. */
void bz_session_clear(struct bz_session *s);
/* The session's client key (Ed25519 secret key) into sk: 0 or
 * BZ_ERR_INVALID when the file's is malformed. */
int bz_session_client_key(const struct bz_session *s, uint8_t sk[64]);
/* Path of the host key, created (ed25519, 0600) when missing; mode checked. */
int bz_host_key_ensure(const char *dir, char **path, char *err,
    size_t errlen);
/* Write CONFIGDIR/known_hosts with "bzsshd ssh-ed25519 AAAA...". */
int bz_known_hosts_write(const char *dir, char *err, size_t errlen);

/* ---- stdio_relay.c ---- */
struct bz_relay;
/* Make a socketpair and relay threads; *ssh_fd is libssh's end. */
int bz_relay_start(struct bz_relay **out, int *ssh_fd, char *err,
    size_t errlen);
/* Wait until everything libssh wrote has reached stdout, then free. */
void bz_relay_finish(struct bz_relay *r);

/* ---- http_fetch.c ---- */
/* GET url (https only) and parse a JSON object. */
int bz_http_get_json(const char *url, const char *ca_file, json_t **out,
    char *err, size_t errlen);
/* POST an application/x-www-form-urlencoded body; parse a JSON object
 * (also on 4xx: the OAuth error object). *status gets the HTTP code. */
int bz_http_post_form_json(const char *url, const char *ca_file,
    const char *form, long *status, json_t **out, char *err, size_t errlen);
/* Percent-encode (malloc'ed). */
char *bz_url_escape(const char *s);

/* ---- ssh_server.c ---- */
struct bz_target {
	char *user;   /* unix user */
	char *host;   /* target name */
	int port;
};
/* Serve one SSH connection on stdin/stdout. Returns the exit status. */
int bz_serve_stdio(const struct bzsshd_opts *o, const struct bz_target *t);

/* ---- fdpass.c ---- */
/* Hand ssh (ProxyUseFdpass) one end of a socketpair over stdout and go on
 * in a child process on the other end, *ssh_fd; the parent exits. Call it
 * before any thread starts. 0 or BZ_ERR_INVALID with the reason in err. */
int bz_fdpass_handoff(int *ssh_fd, char *err, size_t errlen);

/* ---- client_chain.c ---- */
struct bz_target;
/* One connection's signed messages (docs/protocol.md "Two roots of
 * trust"). */
struct bz_chain {
	uint8_t sk[64];        /* secret: the client key */
	uint64_t seq;          /* of the last request signed */
	char *prev;            /* b64url hash of the last message (chain) */
	char *syn_hash;        /* b64url hash of our SYN */
	int anchored;          /* the agent's SYNACK is in */
	struct bz_kx kx;       /* secret: our half of the key exchange */
	struct bz_seal seal;   /* the session's data keys, once anchored */
	uint8_t agent_key[32]; /* the key that signed the SYNACK */
};
void bz_chain_init(struct bz_chain *c, const uint8_t sk[64]);
/* Zero and free. */
void bz_chain_clear(struct bz_chain *c);
/* The session's SYN (target, unix user, ID token, key, salt, a random),
 * signed: b64url of its bytes, for hello (malloc'ed), or NULL. */
char *bz_chain_syn(struct bz_chain *c, const struct bz_session *s,
    const struct bz_target *t);
/* The agent's SYNACK (b64url, from hello_ok): signed by the key it
 * names (kept in agent_key, for the caller to check against its pin),
 * answering our SYN; it anchors the chain and gives the data keys. 0 or
 * BZ_ERR_INVALID. */
int bz_chain_anchor(struct bz_chain *c, const char *synack_b64);
/* Add seq, prev, ch and ts to o, sign it: *out (malloc'ed, *n bytes) is
 * the message for channel ch. 0, or BZ_ERR_INVALID before the anchor. */
int bz_chain_request(struct bz_chain *c, uint32_t ch, json_t *o,
    uint8_t **out, size_t *n);

/* ---- proxy_ask.c ---- */
/* Builds a request that signs bzproxy's challenge (NULL on failure). */
typedef json_t *(*bz_request_builder)(
    const uint8_t challenge[BZ_POP_CHALLENGE_LEN], void *arg);
/* On a new /v1/client link, wait for bzproxy's challenge, send what build
 * makes of it, and return bzproxy's answer on channel 0 in *ans (an
 * "error" answer included). */
int bz_proxy_ask(const char *proxy, const char *ca, bz_request_builder build,
    void *arg, json_t **ans, char *err, size_t errlen);
/* A {"t":"challenge","nonce":B64URL} message: 0 with its bytes, or
 * BZ_ERR_INVALID. */
int bz_challenge_parse(const json_t *o,
    uint8_t challenge[BZ_POP_CHALLENGE_LEN]);
/* The client key's proof (common/pop.h) for a message of type t: sets
 * "sig" in o, signed with the secret key sk. 0 or BZ_ERR_*. */
int bz_sign_pop(json_t *o, const uint8_t sk[64], const char *t,
    const uint8_t challenge[BZ_POP_CHALLENGE_LEN], const char *const *fields,
    size_t n);

/* ---- login.c / config_cmd.c ---- */
int bz_cmd_login(const struct bzsshd_opts *o, int argc, char **argv);
int bz_cmd_logout(const struct bzsshd_opts *o, int argc, char **argv);
int bz_cmd_status(const struct bzsshd_opts *o, int argc, char **argv);
int bz_cmd_ssh_config(const struct bzsshd_opts *o, int argc, char **argv);

/* query_cmd.c: `bzsshd status` and `targets`. */
int bz_cmd_targets(const struct bzsshd_opts *o, int argc, char **argv);
/* Ask bzproxy t ("whoami", "targets") as session s (its ID token
 * refreshed first when due): 0 with the "<t>_ok" answer in *ans, or -1
 * with bzproxy's reason or the link's failure in err. */
int bz_session_query(const char *dir, struct bz_session *s, const char *t,
    json_t **ans, char *err, size_t errlen);

/* ssh_config_file.c: our block between marker lines in an ssh config. */
/* old with block (no trailing markers: begin and end are lines of their
 * own) in place of the lines from begin to end, or first when old has
 * none; *out malloc'ed. BZ_ERR_FORMAT: begin without end. */
int bz_ssh_config_merge(const char *old, const char *begin, const char *end,
    const char *block, char **out);
/* The same on the file path (created 0600, its mode kept otherwise;
 * written only when it changes). 0, or BZ_ERR_* with err. */
int bz_ssh_config_install(const char *path, const char *begin,
    const char *end, const char *block, char *err, size_t errlen);
int bz_cmd_forget_target(const struct bzsshd_opts *o, int argc, char **argv);

/* ---- oidc.c ---- */
/* The issuer's authorization and token endpoints (https), from its
 * discovery document. Both malloc'ed. */
int bz_oidc_discover(const char *issuer, const char *ca, char **auth_ep,
    char **token_ep, char *err, size_t errlen);
/* POST form to the token endpoint: *id_token and, when the IdP sent one,
 * *refresh_token (else NULL), both malloc'ed secrets. */
int bz_oidc_token(const char *token_ep, const char *ca, const char *form,
    char **id_token, char **refresh_token, char *err, size_t errlen);
/* A JWT's claims, not verified (our own token's nonce, exp, iat), or
 * NULL. */
json_t *bz_oidc_peek(const char *jwt);

/* ---- token_refresh.c ---- */
/* When s's ID token is due for a refresh (0: never: no refresh token). */
time_t bz_token_refresh_at(const struct bz_session *s);
/* When s's ID token expires (0: unknown). */
time_t bz_token_expiry(const struct bz_session *s);
/* Refresh s's ID token at the IdP under the session file's lock (unless
 * another bzsshd just did), save it, and put the saved session in s. 0 or
 * BZ_ERR_* with err. */
int bz_session_refresh(const char *dir, struct bz_session *s, char *err,
    size_t errlen);

/* ---- known_targets.c ---- */
/* Is key the agent key pinned for target name in dir/known_targets? The
 * first time, pin it. 0 yes (or pinned now), or BZ_ERR_* with err saying
 * why not: another key is pinned (and how to accept a re-enrolment), or
 * the file cannot be read or written (fail closed). */
int bz_known_target_check(const char *dir, const char *name,
    const uint8_t key[32], char *err, size_t errlen);

#endif
