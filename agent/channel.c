/*
 * channel.c: the running channels, keyed by (session id, channel id):
 * the frames bzproxy relays for them, and how each one ends. Their
 * descriptors and windows are channel_io.c's.
 *
 * A process channel ends as sshd ends one (session.c, nchan.c): the exit
 * status, then EOF, then CLOSE, once the child is reaped and its output
 * drained; the exit status always goes first, so a client that closes on
 * EOF (an ssh ControlMaster does) has it already. A forward channel sends
 * EOF when its peer does and CLOSE once both directions are done. A
 * channel is freed once both sides sent CLOSE and no process is left.
 */
#include "channel_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "log.h"
#include "util.h"

struct chan_table *
chans_new(struct bz_audit *audit, struct leftovers *lo)
{
	struct chan_table *t = calloc(1, sizeof(struct chan_table));

	if (t != NULL) {
		t->audit = audit;
		t->leftovers = lo;
	}
	return t;
}

/* Its end in the audit log, then it is gone. */
static void
chan_free(struct chan_table *t, struct chan *c)
{
	agent_audit_channel_end(t->audit, c->sid, c->ch, c->request_hash,
	    c->io == CHAN_SOCKET || !c->reaped ? 0 : c->pid, c->wstatus,
	    c->bytes_in, c->bytes_out);
	if (c->io != CHAN_SOCKET)
		leftovers_remove(t->leftovers, c->pid);
	chan_close_io(c);
	bz_seal_clear(&c->seal);
	free(c);
}

void
chans_free(struct chan_table *t)
{
	struct chan *c;

	if (t == NULL)
		return;
	while ((c = t->head) != NULL) {
		t->head = c->next;
		chan_free(t, c);
	}
	free(t);
}

size_t
chans_count(const struct chan_table *t)
{
	return t->n;
}

static struct chan *
chan_find(const struct chan_table *t, uint32_t sid, uint32_t ch)
{
	struct chan *c;

	for (c = t->head; c != NULL; c = c->next)
		if (c->sid == sid && c->ch == ch)
			return c;
	return NULL;
}

int
chans_exists(const struct chan_table *t, uint32_t sid, uint32_t ch)
{
	return chan_find(t, sid, ch) != NULL;
}

static struct chan *
chan_new(struct chan_table *t, uint32_t sid, uint32_t ch,
    const struct bz_seal *seal, const char *request_hash)
{
	struct chan *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->sid = sid;
	c->ch = ch;
	bz_seal_copy(&c->seal, seal);
	snprintf(c->request_hash, sizeof(c->request_hash), "%s",
	    request_hash != NULL ? request_hash : "");
	snprintf(c->tag, sizeof(c->tag), "%u/%u", sid, ch);
	c->in_fd = c->out_fd = c->err_fd = -1;
	bz_buf_init(&c->in);
	c->send_window = BZ_WIRE_INITIAL_WINDOW;
	c->recv_left = BZ_WIRE_INITIAL_WINDOW;
	c->pidx[0] = c->pidx[1] = c->pidx[2] = -1;
	c->next = t->head;
	t->head = c;
	t->n++;
	return c;
}

int
chans_add(struct chan_table *t, const struct agent_request *req,
    const struct child_proc *cp, const struct bz_seal *seal)
{
	struct chan *c;

	if ((c = chan_new(t, req->sid, req->ch, seal,
	    req->request_hash)) == NULL)
		return BZ_ERR_ALLOC;
	c->pid = cp->pid;
	/* a failure is logged; the child runs on, unrecorded */
	(void)leftovers_add(t->leftovers, cp->pid);
	if (cp->pty_fd >= 0) {
		c->io = CHAN_PTY;
		c->in_fd = c->out_fd = cp->pty_fd;
	} else {
		c->io = CHAN_PIPES;
		c->in_fd = cp->in_fd;
		c->out_fd = cp->out_fd;
		c->err_fd = cp->err_fd;
	}
	return BZ_OK;
}

int
chans_add_socket(struct chan_table *t, const struct fwd_result *res,
    const struct bz_seal *seal)
{
	struct chan *c;

	if ((c = chan_new(t, res->sid, res->ch, seal,
	    res->request_hash)) == NULL)
		return BZ_ERR_ALLOC;
	c->io = CHAN_SOCKET;
	c->in_fd = c->out_fd = res->fd;
	c->reaped = 1; /* no process to wait for, or to signal */
	return BZ_OK;
}

/* ---- sending ---- */

int
agent_send_json(struct bz_link *link, uint32_t sid, uint32_t ch,
    const json_t *obj)
{
	char *s;
	int r;

	if (link == NULL || obj == NULL)
		return BZ_ERR_INVALID;
	if ((s = bz_json_dump(obj)) == NULL)
		return BZ_ERR_ALLOC;
	r = bz_link_send_frame(link, BZ_FRAME_CONTROL, 0, sid, ch, s,
	    strlen(s));
	sodium_memzero(s, strlen(s)); /* agent_hello holds the enrol token */
	free(s);
	return r;
}

void
agent_send_failed(struct bz_link *link, uint32_t sid, uint32_t ch,
    const char *reason)
{
	json_t *o = json_pack("{s:s, s:s}", "t", "failed", "reason", reason);

	(void)agent_send_json(link, sid, ch, o);
	json_decref(o);
	if (link != NULL)
		(void)bz_link_send_frame(link, BZ_FRAME_CLOSE, 0, sid, ch,
		    NULL, 0);
}

static int
is_sealed_type(uint8_t type)
{
	return type == BZ_FRAME_DATA || type == BZ_FRAME_EXT_DATA ||
	    type == BZ_FRAME_EOF;
}

void
chan_send_frame(struct bz_link *link, struct chan *c, uint8_t type,
    const void *p, size_t n)
{
	uint8_t sealed[BZ_WIRE_MAX_PAYLOAD];
	int r = BZ_ERR_INVALID;

	if (link == NULL)
		return;
	if (!is_sealed_type(type))
		r = bz_link_send_frame(link, type, 0, c->sid, c->ch, p, n);
	else if (n <= sizeof(sealed) - BZ_SEALED_TAG &&
	    bz_seal(&c->seal, type, c->ch, &c->sealed_n, p, n, sealed) == 0)
		r = bz_link_send_frame(link, type, BZ_FLAG_SEALED, c->sid,
		    c->ch, sealed, n + BZ_SEALED_TAG);
	if (r != 0)
		bz_debug("channel %s: cannot queue a %s frame", c->tag,
		    bz_frame_type_name(type));
}

/* ---- ending ---- */

/* SIGHUP the process group now, SIGKILL it after the grace period. */
static void
hang_up(struct chan *c)
{
	if (c->reaped || c->kill_at != 0)
		return;
	/* After reaping the group id could belong to someone else. */
	(void)kill(-c->pid, SIGHUP);
	c->kill_at = bz_now_ms() + AGENT_KILL_GRACE_MS;
}

/* The client is gone (CLOSE, session closed, link lost): stop the child
 * and forget its bytes. send_close: answer with our CLOSE if not yet. */
static void
end_by_client(struct bz_link *link, struct chan *c, int send_close)
{
	c->client_eof = c->client_closed = 1;
	if (!c->close_sent) {
		if (send_close)
			chan_send_frame(link, c, BZ_FRAME_CLOSE, NULL, 0);
		c->close_sent = 1;
	}
	chan_close_io(c);
	hang_up(c);
}

/* A protocol violation on one channel ends that channel only. */
static void
chan_violation(struct bz_link *link, struct chan *c, const char *what)
{
	bz_warn("channel %s: %s from bzproxy: closing the channel", c->tag,
	    what);
	end_by_client(link, c, 1);
}

static const struct {
	const char *name;
	int sig;
} signals[] = {
	{ "ABRT", SIGABRT }, { "ALRM", SIGALRM }, { "FPE", SIGFPE },
	{ "HUP", SIGHUP }, { "ILL", SIGILL }, { "INT", SIGINT },
	{ "KILL", SIGKILL }, { "PIPE", SIGPIPE }, { "QUIT", SIGQUIT },
	{ "SEGV", SIGSEGV }, { "TERM", SIGTERM }, { "USR1", SIGUSR1 },
	{ "USR2", SIGUSR2 },
};

static const char *
signal_name(int sig)
{
	size_t i;

	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (signals[i].sig == sig)
			return signals[i].name;
	/* not an SSH name: the kernel's abbreviation ("WINCH") */
	return sigabbrev_np(sig) != NULL ? sigabbrev_np(sig) : "UNKNOWN";
}

static int
signal_number(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (strcmp(signals[i].name, name) == 0)
			return signals[i].sig;
	return 0;
}

/* The exit status of a reaped child: in an "exit" control for bzproxy's
 * audit, and sealed in the EOF that follows for the client (the copy ssh
 * reports: bzproxy cannot change it). */
static void
send_exit_and_eof(struct bz_link *link, struct chan *c)
{
	char *text;

	char how[64];
	json_t *o;

	if (WIFSIGNALED(c->wstatus)) {
		snprintf(how, sizeof(how), "ended by signal %s",
		    signal_name(WTERMSIG(c->wstatus)));
		o = json_pack("{s:s, s:s, s:b}", "t", "exit", "signal",
		    signal_name(WTERMSIG(c->wstatus)), "core",
		    WCOREDUMP(c->wstatus) ? 1 : 0);
	} else {
		snprintf(how, sizeof(how), "exited with status %d",
		    WEXITSTATUS(c->wstatus));
		o = json_pack("{s:s, s:i}", "t", "exit", "status",
		    WEXITSTATUS(c->wstatus));
	}
	bz_info("channel %s: %s (%llu bytes in, %llu out)", c->tag, how,
	    (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
	if (agent_send_json(link, c->sid, c->ch, o) != 0)
		bz_debug("channel %s: cannot queue the exit status", c->tag);
	text = o != NULL ? bz_json_dump(o) : NULL;
	if (text == NULL || strlen(text) > BZ_EOF_EXIT_MAX)
		bz_error("channel %s: cannot seal the exit status", c->tag);
	else
		chan_send_frame(link, c, BZ_FRAME_EOF, text, strlen(text));
	free(text);
	json_decref(o);
}

/* Send what became due: a process channel's exit status, EOF and CLOSE
 * together once it is reaped and drained; a socket's EOF when its peer
 * sent one, CLOSE once both directions are done. */
static void
finish(struct bz_link *link, struct chan *c)
{
	int input_done;

	if (c->close_sent || link == NULL || !chan_output_done(c))
		return;
	if (c->io == CHAN_SOCKET) {
		if (!c->eof_sent) {
			chan_send_frame(link, c, BZ_FRAME_EOF, NULL, 0);
			c->eof_sent = 1;
		}
		input_done = c->stdin_dead || (c->client_eof && c->wr_shut);
		if (!input_done)
			return;
		bz_info("channel %s: forward ended (%llu bytes in, %llu out)",
		    c->tag, (unsigned long long)c->bytes_in,
		    (unsigned long long)c->bytes_out);
	} else {
		if (!c->reaped)
			return;
		send_exit_and_eof(link, c);
		c->eof_sent = 1;
	}
	chan_send_frame(link, c, BZ_FRAME_CLOSE, NULL, 0);
	c->close_sent = 1;
	chan_close_io(c);
}

static void
on_data(struct bz_link *link, struct chan *c, const struct bz_frame *f)
{
	if (c->client_closed || c->close_sent)
		return; /* in flight when we closed */
	if (c->client_eof) {
		chan_violation(link, c, "data after EOF");
		return;
	}
	if (f->length > c->recv_left) {
		chan_violation(link, c, "window exceeded");
		return;
	}
	c->recv_left -= f->length;
	c->bytes_in += f->length;
	if (bz_buf_put(&c->in, f->payload, f->length) != 0) {
		chan_violation(link, c, "out of memory for input");
		return;
	}
	/* writes it, or drops it (stdin gone) and grants it back */
	chan_write_input(link, c);
}

static void
on_control(struct bz_link *link, struct chan *c, const struct bz_frame *f)
{
	char err[AGENT_ERRLEN];
	const char *t;
	enum agent_req_kind kind;
	json_t *o;

	if ((o = bz_json_parse_object(f->payload, f->length, err,
	    sizeof(err))) == NULL) {
		bz_warn("channel %s: bad control message: %s", c->tag, err);
		return;
	}
	t = bz_json_str(o, "t");
	if (t != NULL && strcmp(t, "eow") == 0) {
		bz_debug("channel %s: the client's reader is gone (eow)",
		    c->tag);
		chan_stdout_gone(c);
	} else if (t != NULL && strcmp(t, "window_change") == 0) {
		json_int_t v[4];
		const char *k[4] = { "cols", "rows", "width", "height" };
		struct winsize ws;
		int i, ok = c->io == CHAN_PTY && c->out_fd >= 0;

		for (i = 0; i < 4 && ok; i++) {
			json_t *x = json_object_get(o, k[i]);

			ok = json_is_integer(x) && json_integer_value(x) >= 0 &&
			    json_integer_value(x) <= 65535;
			if (ok)
				v[i] = json_integer_value(x);
		}
		if (ok) {
			memset(&ws, 0, sizeof(ws));
			ws.ws_col = (unsigned short)v[0];
			ws.ws_row = (unsigned short)v[1];
			ws.ws_xpixel = (unsigned short)v[2];
			ws.ws_ypixel = (unsigned short)v[3];
			/* the kernel sends SIGWINCH to the foreground job */
			if (ioctl(c->out_fd, TIOCSWINSZ, &ws) != 0)
				bz_debug("channel %s: TIOCSWINSZ: %s", c->tag,
				    strerror(errno));
		}
	} else if (t != NULL && agent_req_kind_parse(t, &kind) == 0) {
		/* one request per channel, and never unsigned */
		bz_warn("channel %s: second or unsigned %.32s request refused",
		    c->tag, t);
	} else
		bz_debug("channel %s: ignored control message", c->tag);
	json_decref(o);
}

int
chans_frame(struct chan_table *t, struct bz_link *link,
    const struct bz_frame *f)
{
	uint8_t opened[BZ_WIRE_MAX_PAYLOAD];
	struct bz_frame plain;
	struct chan *c;
	uint32_t credit;

	if ((c = chan_find(t, f->session_id, f->channel_id)) == NULL) {
		/* late frames for a channel already freed or refused */
		bz_debug("%s frame for unknown channel %u/%u",
		    bz_frame_type_name(f->type), f->session_id,
		    f->channel_id);
		return BZ_OK;
	}
	/* the client's bytes come sealed, and only its bytes */
	if (f->flags != (is_sealed_type(f->type) ? BZ_FLAG_SEALED : 0) ||
	    (f->flags == BZ_FLAG_SEALED && bz_seal_open(&c->seal, f->type,
	    c->ch, &c->opened_n, f->payload, f->length, opened) != 0))
		return BZ_ERR_INVALID;
	if (f->flags == BZ_FLAG_SEALED) {
		plain = *f;
		plain.payload = opened;
		plain.length = f->length - BZ_SEALED_TAG;
		f = &plain;
	}
	switch (f->type) {
	case BZ_FRAME_CONTROL:
		on_control(link, c, f);
		break;
	case BZ_FRAME_DATA:
		on_data(link, c, f);
		break;
	case BZ_FRAME_EOF:
		c->client_eof = 1;
		if (!c->close_sent)
			chan_write_input(link, c); /* passes EOF on if drained */
		break;
	case BZ_FRAME_CLOSE:
		if (!c->client_closed)
			bz_debug("channel %s: closed by the client", c->tag);
		end_by_client(link, c, 1);
		break;
	case BZ_FRAME_WINDOW:
		if (bz_frame_window_credit(f, &credit) != 0 ||
		    credit > UINT32_MAX - c->send_window) {
			chan_violation(link, c, "bad window credit");
			break;
		}
		c->send_window += credit;
		break;
	default:
		chan_violation(link, c, "unexpected frame type");
		break;
	}
	return BZ_OK;
}

void
chans_signal(struct chan_table *t, uint32_t sid, uint32_t ch,
    const char *name)
{
	struct chan *c = chan_find(t, sid, ch);
	int sig = signal_number(name);

	if (c == NULL || sig == 0 || c->reaped) {
		bz_debug("channel %u/%u: signal %.32s ignored", sid, ch, name);
		return;
	}
	bz_info("channel %s: signal %s", c->tag, name);
	(void)kill(-c->pid, sig);
}

void
chans_session_closed(struct chan_table *t, uint32_t sid)
{
	struct chan *c;

	for (c = t->head; c != NULL; c = c->next)
		if (c->sid == sid && !c->client_closed) {
			bz_info("channel %s: client session closed (%llu bytes "
			    "in, %llu out)", c->tag,
			    (unsigned long long)c->bytes_in,
			    (unsigned long long)c->bytes_out);
			/* nobody left to tell: no CLOSE */
			end_by_client(NULL, c, 0);
		}
}

void
chans_session_broken(struct chan_table *t, struct bz_link *link,
    uint32_t sid, const char *reason)
{
	struct chan *c;

	for (c = t->head; c != NULL; c = c->next)
		if (c->sid == sid && !c->close_sent) {
			bz_warn("channel %s: %s", c->tag, reason);
			agent_send_failed(link, c->sid, c->ch, reason);
			c->close_sent = 1; /* agent_send_failed sent the CLOSE */
			end_by_client(link, c, 0);
		}
}

void
chans_link_lost(struct chan_table *t)
{
	struct chan *c;

	for (c = t->head; c != NULL; c = c->next)
		if (!c->client_closed) {
			bz_info("channel %s: ended (link to bzproxy lost)",
			    c->tag);
			end_by_client(NULL, c, 0);
		}
}

/* Wait for children to be reaped, up to ms; returns 1 when none is left. */
static int
wait_reaped(struct chan_table *t, int ms)
{
	struct timespec step = { 0, 20 * 1000000L };
	const struct chan *c;
	int64_t end = bz_now_ms() + ms;

	for (;;) {
		chans_reap(t);
		for (c = t->head; c != NULL && c->reaped; c = c->next)
			;
		if (c == NULL)
			return 1;
		if (bz_now_ms() >= end)
			return 0;
		nanosleep(&step, NULL);
	}
}

void
chans_shutdown(struct chan_table *t, int grace_ms)
{
	struct chan *c;

	for (c = t->head; c != NULL; c = c->next) {
		chan_close_io(c);
		if (!c->reaped)
			(void)kill(-c->pid, SIGHUP);
	}
	if (wait_reaped(t, grace_ms))
		return;
	for (c = t->head; c != NULL; c = c->next)
		if (!c->reaped) {
			bz_info("channel %s: SIGKILL at shutdown", c->tag);
			(void)kill(-c->pid, SIGKILL);
		}
	(void)wait_reaped(t, 5000);
}

void
chans_reap(struct chan_table *t)
{
	struct chan *c;
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (c = t->head; c != NULL; c = c->next)
			if (c->pid == pid && !c->reaped)
				break;
		if (c == NULL)
			continue; /* e.g. a child that failed before exec */
		c->reaped = 1;
		c->wstatus = st;
		c->exit_ms = bz_now_ms();
		bz_debug("channel %s: child %d reaped", c->tag, (int)pid);
	}
}

static void
set_timeout(int *timeout, int64_t due, int64_t now)
{
	int64_t d = due > now ? due - now : 0;

	if (d > 60000)
		d = 60000;
	if (*timeout < 0 || d < *timeout)
		*timeout = (int)d;
}

int
chans_pump(struct chan_table *t, struct bz_link *link, int64_t now)
{
	struct chan **pp, *c;
	int timeout = -1;

	for (c = t->head; c != NULL; c = c->next) {
		chan_pty_after_exit(link, c, now);
		finish(link, c);
		if (c->kill_at != 0 && !c->reaped) {
			if (now >= c->kill_at) {
				bz_info("channel %s: still running %d ms after "
				    "SIGHUP: SIGKILL", c->tag,
				    AGENT_KILL_GRACE_MS);
				(void)kill(-c->pid, SIGKILL);
				c->kill_at = now + AGENT_KILL_GRACE_MS;
			}
			set_timeout(&timeout, c->kill_at, now);
		}
		/* wake for the end of the pty grace; after it, reads are
		 * driven by poll and by window grants */
		if (c->io == CHAN_PTY && c->reaped && c->out_fd >= 0 &&
		    now < c->exit_ms + AGENT_PTY_GRACE_MS)
			set_timeout(&timeout, c->exit_ms + AGENT_PTY_GRACE_MS,
			    now);
	}
	for (pp = &t->head; (c = *pp) != NULL;) {
		if (c->close_sent && c->client_closed && c->reaped) {
			*pp = c->next;
			t->n--;
			bz_debug("channel %s: freed", c->tag);
			chan_free(t, c);
		} else
			pp = &c->next;
	}
	return timeout;
}
