/*
 * ssh_server.c: one SSH connection on stdin/stdout (ssh's ProxyCommand).
 *
 * The websocket to bzproxy starts first and says hello while the SSH key
 * exchange runs. SSH user auth then waits for bzproxy's answer: hello_ok
 * accepts "none" (the user already proved who they are with `bzsshd
 * login`), mfa_required switches ssh to keyboard-interactive for a TOTP
 * code. A refusal (no login, no policy, bzproxy unreachable, wrong codes)
 * also lets SSH auth succeed: the SSH auth between ssh and its own
 * ProxyCommand proves nothing, and only a channel can carry our reason to
 * the user as one line on stderr with exit status 255; the connection
 * then ends. After auth the main thread runs the libssh event loop; a
 * pipe in that loop wakes it when frames arrive.
 */
#include "ssh_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "backoff.h"
#include "log.h"
#include "util.h"

#define AUTH_WAIT_MS 30000   /* longest wait for bzproxy's answer */
#define MFA_MAX_TRIES 3
#define TOTP_MAX 16
#define LOOP_TIMEOUT_MS 1000
#define TOTP_PROMPT "Verification code (TOTP): "

/* The signal handler's only way out: a byte on the wake pipe. */
static volatile sig_atomic_t got_signal;
static int signal_wake_fd = -1;

static void
on_signal(int sig)
{
	int saved = errno;

	got_signal = sig;
	if (signal_wake_fd >= 0)
		(void)!write(signal_wake_fd, "s", 1);
	errno = saved;
}

static void
setup_signals(int wake_fd)
{
	struct sigaction sa;

	signal_wake_fd = wake_fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);  /* ssh exited */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/* ---- frames from the link ---- */

/* hello, signed over bzproxy's challenge with the session's client key
 * (common/pop.h): the session token alone proves nothing. */
static void
send_hello(struct bz_conn *c, const json_t *challenge)
{
	uint8_t ch[BZ_POP_CHALLENGE_LEN];
	char *syn = NULL;
	json_t *o = NULL;

	c->hello_sent = 1;
	if (bz_challenge_parse(challenge, ch) != 0 ||
	    (syn = bz_chain_syn(&c->chain, c->sess, c->target)) == NULL ||
	    (o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "t", "hello",
	    "session", c->sess->session, "target", c->target->host,
	    "unix_user", c->target->user, "syn", syn)) == NULL ||
	    bz_sign_pop(o, c->chain.sk, "hello", ch, (const char *const[]){
	    c->target->host, c->target->user }, 2) != 0 ||
	    bz_link_send_json(c->link, 0, o) != 0) {
		c->auth = BZ_AUTH_DENIED;
		snprintf(c->reason, sizeof(c->reason), "cannot say hello to "
		    "bzproxy (malformed challenge, or a session file from an "
		    "older bzsshd: run `bzsshd login`)");
	}
	if (o != NULL)
		json_object_clear(o); /* the SYN holds the ID token */
	json_decref(o);
	free(syn);
}

/* Connection-level control (channel 0): the challenge, the answers to
 * hello / mfa. */
static void
on_conn_control(struct bz_conn *c, const struct bz_frame *f)
{
	char err[BZSSHD_ERRLEN];
	const char *t, *reason;
	json_t *o;

	if (f->type != BZ_FRAME_CONTROL || f->flags != 0 ||
	    (o = bz_json_parse_object(f->payload, f->length, err,
	    sizeof(err))) == NULL) {
		c->auth = BZ_AUTH_DENIED;
		snprintf(c->reason, sizeof(c->reason),
		    "protocol error from bzproxy");
		return;
	}
	t = bz_json_str(o, "t");
	reason = bz_json_str(o, "reason");
	if (t == NULL)
		t = "";
	if (strcmp(t, "challenge") == 0 && !c->hello_sent) {
		send_hello(c, o);
	} else if (c->authed && strcmp(t, "error") != 0) {
		bz_debug("bzproxy: ignored \"%.32s\" on channel 0", t);
	} else if (strcmp(t, "hello_ok") == 0 && c->auth == BZ_AUTH_PENDING) {
		if (bz_chain_anchor(&c->chain, bz_json_str(o, "synack")) != 0) {
			c->auth = BZ_AUTH_DENIED;
			snprintf(c->reason, sizeof(c->reason), "bzproxy's answer "
			    "does not carry the target's answer to this session");
		} else if (bz_known_target_check(c->config_dir, c->target->host,
		    c->chain.agent_key, err, sizeof(err)) != 0) {
			c->auth = BZ_AUTH_DENIED;
			snprintf(c->reason, sizeof(c->reason), "%s", err);
			bz_conn_note_refused(c, 0, "target-key", err);
		} else
			c->auth = BZ_AUTH_OK;
		bz_debug("bzproxy: hello_ok as %.200s",
		    bz_json_str(o, "user") ? bz_json_str(o, "user") : "?");
	} else if (strcmp(t, "mfa_required") == 0 &&
	    c->auth == BZ_AUTH_PENDING) {
		c->auth = BZ_AUTH_MFA;
		snprintf(c->reason, sizeof(c->reason), "%.200s",
		    reason != NULL ? reason : "");
	} else if (strcmp(t, "error") == 0 && !c->authed &&
	    json_is_true(json_object_get(o, "retry"))) {
		/* not a denial: the link is about to go, and comes back */
		snprintf(c->proxy_going, sizeof(c->proxy_going), "%.190s",
		    reason != NULL ? reason : "bzproxy is stopping");
	} else if (strcmp(t, "error") == 0) {
		c->auth = BZ_AUTH_DENIED;
		c->proxy_said_no = 1;
		snprintf(c->reason, sizeof(c->reason), "%.200s",
		    reason != NULL ? reason : "no reason given");
	} else {
		c->auth = BZ_AUTH_DENIED;
		snprintf(c->reason, sizeof(c->reason),
		    "unexpected \"%.32s\" from bzproxy", t);
	}
	json_decref(o);
}

/*
 * Wait for ssh, the link or a wake-up, at most wait ms, then let libssh
 * handle what came (ssh_event_dopoll without waiting). The link's socket
 * is polled here beside ssh's rather than added to libssh's event, which
 * would need it removed and added again whenever the events the link
 * wants change. 0, or -1 when polling failed.
 */
static int
loop_wait(struct bz_conn *c, int wake_fd, int wait)
{
	struct pollfd p[3];
	int link_wait;

	bz_link_poll_want(c->link, &p[0], &link_wait);
	if (link_wait >= 0 && link_wait < wait)
		wait = link_wait;
	p[1].fd = ssh_get_fd(c->session);
	p[1].events = POLLIN;
	if (ssh_get_poll_flags(c->session) & SSH_WRITE_PENDING)
		p[1].events |= POLLOUT;
	p[2].fd = wake_fd;
	p[2].events = POLLIN;
	p[1].revents = p[2].revents = 0;
	if (poll(p, 3, wait) < 0 && errno != EINTR)
		return -1;
	c->link_revents = p[0].revents;
	return 0;
}

/* Decode and route everything the link has queued. */
void
bz_conn_drain(struct bz_conn *c)
{
	struct bz_link_msg *m;
	struct bz_frame f;
	int r, closed;

	if (c->link == NULL)
		return;
	/* The state first: once closed, everything bzproxy sent before is
	 * queued, and read below before we call the link lost. */
	closed = bz_link_get_state(c->link, NULL, 0) == BZ_LINK_CLOSED;
	/* after a failed integrity check nothing more is delivered */
	while (!c->quit && !c->link_lost &&
	    (m = bz_link_recv(c->link)) != NULL) {
		if ((r = bz_frame_decode(m->data, m->len, &f)) != 0) {
			bz_error("bad frame from bzproxy: %s", bz_err_str(r));
			c->link_lost = 1;
			snprintf(c->reason, sizeof(c->reason),
			    "protocol error from bzproxy");
		} else if (f.channel_id == 0) {
			bz_debug("bzproxy: %s frame on channel 0",
			    bz_frame_type_name(f.type));
			on_conn_control(c, &f);
			if (c->authed && c->auth == BZ_AUTH_DENIED)
				c->link_lost = 1; /* session revoked */
		}
		else if (c->authed)
			bz_chan_frame(c, &f);
		free(m);
	}
	if (!c->link_lost && closed) {
		c->link_lost = 1;
		if (!c->proxy_said_no)
			bz_proxy_link_explain(c);
	}
	/* before SSH auth, bzproxy restarting is worth waiting for */
	bz_proxy_link_retry(c);
}

/* Block (inside an auth callback) until bzproxy answered, on this link
 * or on the ones that replace it while bzproxy restarts
 * (proxy_link.c). */
static void
wait_auth(struct bz_conn *c)
{
	int64_t t0 = bz_now_ms();
	unsigned links = c->retry.links;
	int next;

	for (;;) {
		bz_conn_drain(c);
		next = bz_proxy_link_tick(c);
		if (c->retry.links != links) {
			links = c->retry.links; /* a new link: a new wait */
			t0 = bz_now_ms();
		}
		if (c->auth != BZ_AUTH_PENDING)
			return;
		if (c->link_lost) {
			c->auth = BZ_AUTH_DENIED;
			return;
		}
		if (bz_now_ms() - t0 >= AUTH_WAIT_MS || got_signal) {
			c->auth = BZ_AUTH_DENIED;
			snprintf(c->reason, sizeof(c->reason),
			    "no answer from bzproxy (%.200s)", c->sess->proxy);
			return;
		}
		if (c->link != NULL)
			bz_link_wait(c->link, 200);
		else
			poll(NULL, 0, next >= 0 && next < 200 ? next : 200);
	}
}

void
bz_conn_note_refused(struct bz_conn *c, uint32_t id, const char *request,
    const char *reason)
{
	json_t *o;

	if (c->link == NULL || c->refused || c->link_lost)
		return;
	o = json_pack("{s:s, s:s, s:s}", "t", "refused", "request", request,
	    "reason", reason);
	if (o == NULL || bz_link_send_json(c->link, id, o) != 0)
		bz_debug("cannot tell bzproxy of a refused %s", request);
	json_decref(o);
}

void
bz_conn_integrity_failed(struct bz_conn *c, const struct bz_chan *ch)
{
	static const char why[] = "data from the target failed its "
	    "end-to-end integrity check (altered, dropped, replayed or "
	    "reordered on the way): connection closed";

	if (c->link_lost)
		return;
	bz_error("channel %u: %s", ch->id, why);
	/* for bzproxy's audit log, if bzproxy is not the one at fault */
	bz_conn_note_refused(c, ch->id, "sealed-data", why);
	c->link_lost = 1;
	snprintf(c->reason, sizeof(c->reason), "%s", why);
}

/* The reason, as the user reads it. */
static void
explain_refusal(struct bz_conn *c)
{
	char why[BZSSHD_ERRLEN];

	if (c->proxy_said_no) {
		snprintf(why, sizeof(why), "access denied: %.200s", c->reason);
		snprintf(c->reason, sizeof(c->reason), "%s", why);
	} else if (c->reason[0] == '\0')
		snprintf(c->reason, sizeof(c->reason), "connection to bzproxy "
		    "lost");
}

/* No access: let SSH auth succeed; channels say why (see the top). */
static void
refuse(struct bz_conn *c)
{
	if (c->refused)
		return;
	explain_refusal(c);
	bz_debug("refused: %s", c->reason);
	c->refused = 1;
	c->refused_ms = bz_now_ms();
	c->authed = 1;
	c->exit_code = 1;
}

/* Ended before SSH auth finished (ssh gave up: BatchMode and a TOTP
 * prompt, or it was killed): say why on our stderr, which ssh shows. */
static void
ended_before_auth(struct bz_conn *c)
{
	if (c->auth == BZ_AUTH_MFA)
		fprintf(stderr, "bzsshd: a TOTP code is needed (%s) and ssh "
		    "cannot ask for one (BatchMode?)\n", c->reason);
	else if (c->auth == BZ_AUTH_DENIED) {
		explain_refusal(c);
		fprintf(stderr, "bzsshd: %s\n", c->reason);
	}
	c->exit_code = 1;
}

/* ---- SSH auth ---- */

static int
on_auth_none(ssh_session s, const char *user, void *ud)
{
	struct bz_conn *c = ud;

	if (c->quit)
		return SSH_AUTH_DENIED;
	if (!c->refused)
		wait_auth(c);
	if (c->refused)
		return SSH_AUTH_SUCCESS;
	switch (c->auth) {
	case BZ_AUTH_OK:
		c->authed = 1;
		return SSH_AUTH_SUCCESS;
	case BZ_AUTH_MFA:
		ssh_set_auth_methods(s, SSH_AUTH_METHOD_INTERACTIVE);
		return SSH_AUTH_DENIED;
	default:
		refuse(c);
		return SSH_AUTH_SUCCESS;
	}
}

static int
ask_totp(struct bz_conn *c, ssh_message m)
{
	const char *prompts[1] = { TOTP_PROMPT };
	char echo[1] = { 0 };

	return ssh_message_auth_interactive_request(m, "bzsshd", c->reason,
	    1, prompts, echo);
}

static int
valid_totp(const char *a)
{
	size_t n = a != NULL ? strlen(a) : 0;
	size_t i;

	if (n < 6 || n > TOTP_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (a[i] < '0' || a[i] > '9')
			return 0;
	return 1;
}

/* Send the code bzproxy asked for and wait for its answer. The link
 * may go meanwhile (bzproxy restarting): a new one asks anew. */
static void
send_totp(struct bz_conn *c, const char *code)
{
	unsigned links = c->retry.links;
	json_t *o;

	if ((o = json_pack("{s:s, s:s}", "t", "mfa", "totp", code)) ==
	    NULL) {
		c->auth = BZ_AUTH_DENIED;
		snprintf(c->reason, sizeof(c->reason), "out of memory");
		return;
	}
	c->auth = BZ_AUTH_PENDING;
	/* a link closed meanwhile refuses it: wait_auth sees the close */
	if (c->link == NULL || (bz_link_send_json(c->link, 0, o) != 0 &&
	    bz_link_get_state(c->link, NULL, 0) != BZ_LINK_CLOSED)) {
		c->auth = BZ_AUTH_DENIED;
		snprintf(c->reason, sizeof(c->reason), "cannot send the code "
		    "to bzproxy");
	}
	json_object_clear(o);
	json_decref(o);
	if (c->auth == BZ_AUTH_PENDING)
		wait_auth(c);
	if (c->retry.links != links && c->auth == BZ_AUTH_MFA) {
		c->mfa_tries--; /* not the user's fault */
		snprintf(c->reason, sizeof(c->reason), "the link to bzproxy "
		    "was lost while it checked the code: enter a new one");
	}
}

/* Keyboard-interactive: the TOTP code bzproxy asked for. */
static int
on_kbdint(struct bz_conn *c, ssh_message m)
{
	const char *answer = NULL;

	/* a new link to bzproxy may be on its way (bzproxy restarted while
	 * ssh asked for the code): its answer first */
	if (c->auth == BZ_AUTH_PENDING)
		wait_auth(c);
	if (c->auth == BZ_AUTH_OK) {
		c->authed = 1; /* the new link needs no code */
		ssh_message_auth_reply_success(m, 0);
		return 0;
	}
	if (c->auth != BZ_AUTH_MFA) {
		refuse(c); /* the channel says why */
		ssh_message_auth_reply_success(m, 0);
		return 0;
	}
	if (!ssh_message_auth_kbdint_is_response(m)) {
		ask_totp(c, m);
		return 0;
	}
	if (ssh_userauth_kbdint_getnanswers(c->session) >= 1)
		answer = ssh_userauth_kbdint_getanswer(c->session, 0);
	c->mfa_tries++;
	if (valid_totp(answer))
		send_totp(c, answer);
	else
		snprintf(c->reason, sizeof(c->reason),
		    "the code is 6 to %d digits", TOTP_MAX);
	if (c->auth == BZ_AUTH_OK) {
		c->authed = 1;
		ssh_message_auth_reply_success(m, 0);
		return 0;
	}
	if (c->auth == BZ_AUTH_MFA && c->mfa_tries < MFA_MAX_TRIES) {
		ask_totp(c, m);
		return 0;
	}
	if (c->auth == BZ_AUTH_MFA)
		snprintf(c->reason, sizeof(c->reason),
		    "too many wrong verification codes");
	refuse(c);
	ssh_message_auth_reply_success(m, 0);
	return 0;
}

static int
on_message(ssh_session s, ssh_message m, void *ud)
{
	struct bz_conn *c = ud;

	if (c->quit)
		return 1;
	switch (ssh_message_type(m)) {
	case SSH_REQUEST_AUTH:
		if (ssh_message_subtype(m) != SSH_AUTH_METHOD_INTERACTIVE)
			break; /* password, publickey: refused */
		if (!c->refused)
			return on_kbdint(c, m);
		/* refused while ssh asked for a code (bzproxy gone for
		 * good): as for "none", the channel says why */
		ssh_message_auth_reply_success(m, 0);
		return 0;
	case SSH_REQUEST_CHANNEL_OPEN:
		if (ssh_message_subtype(m) == SSH_CHANNEL_DIRECT_TCPIP)
			return bz_forward_open(c, m);
		break;
	case SSH_REQUEST_CHANNEL:
		return bz_session_unhandled(c, m);
	case SSH_REQUEST_GLOBAL:
		return bz_global_request(c, m);
	}
	return 1;
}

static ssh_channel
on_channel_open(ssh_session s, void *ud)
{
	return bz_session_open(ud);
}

static int
on_wake(socket_t fd, int revents, void *ud)
{
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return 0;
}

/* ---- set-up ---- */


static int
make_bind(const char *keypath, const char *ciphers, ssh_bind *out,
    char *err, size_t errlen)
{
	ssh_bind b;
	ssh_key key = NULL;

	*out = NULL;
	if ((b = ssh_bind_new()) == NULL)
		return BZ_ERR_ALLOC;
	if (ssh_pki_import_privkey_file(keypath, NULL, NULL, NULL, &key) !=
	    SSH_OK) {
		bz_errf(err, errlen, "cannot read the host key %s", keypath);
		ssh_bind_free(b);
		return BZ_ERR_INVALID;
	}
	/* the bind owns the key from here. The banner: ssh enables the
	 * OpenSSH extensions we serve (eow@openssh.com when its stdout
	 * reader goes, no-more-sessions@openssh.com) only for a server whose
	 * version starts with "OpenSSH" (compat.c) */
	if (ssh_bind_options_set(b, SSH_BIND_OPTIONS_BANNER,
	    BZSSHD_BANNER) != 0 ||
	    ssh_bind_options_set(b, SSH_BIND_OPTIONS_IMPORT_KEY, key) != 0) {
		bz_errf(err, errlen, "cannot use the host key %s", keypath);
		ssh_key_free(key);
		ssh_bind_free(b);
		return BZ_ERR_INVALID;
	}
	if (ssh_bind_options_set(b, SSH_BIND_OPTIONS_CIPHERS_C_S, ciphers) != 0 ||
	    ssh_bind_options_set(b, SSH_BIND_OPTIONS_CIPHERS_S_C, ciphers) != 0) {
		bz_errf(err, errlen, "libssh refuses the ciphers %s", ciphers);
		ssh_bind_free(b);
		return BZ_ERR_INVALID;
	}
	*out = b;
	return BZ_OK;
}

/*
 * Nothing left to serve: access was refused or the link to bzproxy was
 * lost, a channel told the user why, and every channel is gone. ssh then
 * disconnects: we go when it has (the loop sees that), or after
 * BZ_REFUSED_LINGER_MS (a ControlMaster stays), so that its goodbye does
 * not meet a closed pipe ("Broken pipe"). A refused connection that opens
 * no channel (ssh -N) ends after BZ_REFUSED_LINGER_MS, the reason on our
 * stderr.
 */
static int
done_serving(struct bz_conn *c, int ended_for_link)
{
	int64_t now = bz_now_ms();

	if (bz_chan_count(c) > 0 || !(c->refused || ended_for_link))
		return 0;
	if (c->refused_told || ended_for_link) {
		if (c->told_gone_ms == 0)
			c->told_gone_ms = now;
		return now - c->told_gone_ms >= BZ_REFUSED_LINGER_MS;
	}
	if (now - c->refused_ms < BZ_REFUSED_LINGER_MS)
		return 0;
	/* ssh -N: no channel will carry it */
	fprintf(stderr, "bzsshd: %s\n", c->reason);
	ssh_session_set_disconnect_message(c->session, c->reason);
	return 1;
}

static void
event_loop(struct bz_conn *c, int wake_fd)
{
	int ended_for_link = 0;
	int next = -1;

	while (!c->quit) {
		if (loop_wait(c, wake_fd, next >= 0 && next < LOOP_TIMEOUT_MS ?
		    next : LOOP_TIMEOUT_MS) != 0) {
			bz_error("poll: %s", strerror(errno));
			break;
		}
		if (ssh_event_dopoll(c->event, 0) == SSH_ERROR &&
		    !ssh_is_connected(c->session))
			break;
		/* the link first: what it read is routed below */
		bz_link_serve(c->link, c->link_revents);
		c->link_revents = 0;
		if (got_signal) {
			bz_debug("signal %d: ending", (int)got_signal);
			break;
		}
		if (ssh_get_status(c->session) & SSH_CLOSED_ERROR) {
			/* libssh gave up on ssh's side (e.g. a packet over
			 * its 256 KiB): ssh must not wait for ever */
			const char *e = ssh_get_error(c->session);

			if (strstr(e, "SSH_MSG_DISCONNECT") == NULL)
				fprintf(stderr, "bzsshd: the SSH connection "
				    "failed: %s%s\n", e, strstr(e,
				    "len too high") != NULL ? " (SSH packets, "
				    "and so command lines, are at most "
				    "256 KiB)" : "");
			break;
		}
		if (!c->refused) {
			bz_conn_drain(c);
			next = bz_proxy_link_tick(c);
		}
		if (c->quit)
			break;
		if (!c->authed && (c->link_lost || c->auth == BZ_AUTH_DENIED))
			refuse(c); /* before SSH auth asked: say it then */
		if (c->link_lost && !ended_for_link && !c->refused) {
			/* keep serving ssh until it has read why */
			bz_chan_end_all(c, c->reason[0] ? c->reason :
			    "connection to bzproxy lost");
			ended_for_link = 1;
		}
		bz_conn_token_tick(c);
		bz_chan_pump(c);
		if (!ssh_is_connected(c->session))
			break;
		if (done_serving(c, ended_for_link))
			break;
	}
	if (!c->authed)
		ended_before_auth(c);
}

int
bz_serve_stdio(const struct bzsshd_opts *o, const struct bz_target *t)
{
	char err[BZSSHD_ERRLEN] = "";
	struct bz_session sess;
	struct bz_conn c;
	struct bz_relay *relay = NULL;
	ssh_bind bind = NULL;
	char *keypath = NULL;
	uint8_t sk[64];
	int wake[2] = { -1, -1 }, ssh_fd = -1, rc = 1, r;

	memset(&c, 0, sizeof(c));
	memset(&sess, 0, sizeof(sess));
	c.target = t;
	c.config_dir = o->config_dir;
	c.exit_code = 1;
	c.sess = &sess;
	c.retry.window_ms = (int64_t)o->proxy_retry_s * 1000;
	if (o->fdpass && (r = bz_fdpass_handoff(&ssh_fd, err,
	    sizeof(err))) != 0) {
		bz_error("%s", err);
		goto out;
	}
	if ((r = bz_host_key_ensure(o->config_dir, &keypath, err,
	    sizeof(err))) != 0) {
		bz_error("%s", err);
		goto out;
	}
	if (pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0) {
		bz_error("pipe: %s", strerror(errno));
		goto out;
	}
	setup_signals(wake[1]);
	c.wake_fd = wake[1];
	if ((r = bz_session_load(o->config_dir, &sess, err,
	    sizeof(err))) != 0 || sess.expires <= time(NULL)) {
		if (r == BZ_OK)
			snprintf(err, sizeof(err), "session expired");
		snprintf(c.reason, sizeof(c.reason), "not logged in (%.150s): "
		    "run `bzsshd login`", err);
		refuse(&c);
	} else if (bz_session_client_key(&sess, sk) != 0) {
		snprintf(c.reason, sizeof(c.reason), "the session file has no "
		    "valid client key: run `bzsshd login`");
		refuse(&c);
	} else if (bz_conn_token_fresh(&c, &sess, c.reason,
	    sizeof(c.reason)) != 0)
		refuse(&c);
	else {
		/* bzproxy first: its TLS handshake runs during the SSH key
		 * exchange; hello answers its challenge */
		bz_chain_init(&c.chain, sk);
		bz_proxy_link_start(&c);
	}
	if ((r = make_bind(keypath, bz_settings_ciphers(o), &bind, err,
	    sizeof(err))) != 0 || (!o->fdpass &&
	    (r = bz_relay_start(&relay, &ssh_fd, err, sizeof(err))) != 0)) {
		bz_error("%s", err);
		goto out;
	}
	if ((c.session = ssh_new()) == NULL)
		goto out;
	bz_libssh_log_init(&c);
	if (ssh_bind_accept_fd(bind, c.session, ssh_fd) != SSH_OK) {
		bz_error("ssh accept: %s", ssh_get_error(bind));
		close(ssh_fd);
		goto out;
	}
	c.scb.userdata = &c;
	c.scb.auth_none_function = on_auth_none;
	c.scb.channel_open_request_session_function = on_channel_open;
	ssh_callbacks_init(&c.scb);
	ssh_set_server_callbacks(c.session, &c.scb);
	ssh_set_auth_methods(c.session, SSH_AUTH_METHOD_INTERACTIVE);
	ssh_set_message_callback(c.session, on_message, &c);
	if (ssh_handle_key_exchange(c.session) != SSH_OK) {
		bz_debug("key exchange: %s", ssh_get_error(c.session));
		goto out;
	}
	ssh_set_blocking(c.session, 0);
	bz_conn_drain(&c); /* hello, if the challenge is in already */
	if ((c.event = ssh_event_new()) == NULL ||
	    ssh_event_add_session(c.event, c.session) != SSH_OK ||
	    ssh_event_add_fd(c.event, wake[0], POLLIN, on_wake, &c) !=
	    SSH_OK) {
		bz_error("cannot set up the event loop");
		goto out;
	}
	if (!c.refused)
		c.exit_code = 0;
	event_loop(&c, wake[0]);
	rc = c.exit_code;
 out:
	if (c.event != NULL) {
		ssh_event_remove_fd(c.event, wake[0]);
		if (c.session != NULL)
			ssh_event_remove_session(c.event, c.session);
		ssh_event_free(c.event);
	}
	if (c.session != NULL) {
		ssh_disconnect(c.session);
		ssh_free(c.session);
	}
	bz_chan_free_all(&c);
	if (bind != NULL)
		ssh_bind_free(bind);
	/* everything libssh wrote reaches ssh before we go */
	bz_relay_finish(relay);
	/* closing the websocket tells bzproxy (and the agent) we left */
	bz_link_free(c.link);
	signal_wake_fd = -1;
	if (wake[0] >= 0)
		close(wake[0]);
	if (wake[1] >= 0)
		close(wake[1]);
	free(keypath);
	bz_session_clear(&sess);
	bz_chain_clear(&c.chain);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}
