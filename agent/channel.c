/*
 * channel.c: the running channels, keyed by (session id, channel id).
 *
 * Each moves bytes between a child (pty master or three pipes) and the
 * link, under the two credit windows of docs/protocol.md "Flow control":
 *  - child -> client: we read the child only while send_window > 0 and the
 *    link's send queue is under AGENT_LINK_HIGH, so a slow client stops
 *    the child (its pipe fills) instead of growing our memory;
 *  - client -> child: the client sends at most recv_left; those bytes wait
 *    in `in` until the child takes them, and only then do we grant them
 *    back (WINDOW), so `in` never holds more than one window.
 * The end is exit status, then EOF, exit and CLOSE; a channel is freed
 * once both sides sent CLOSE and the child is reaped.
 */
#include "agent.h"

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

#define READS_PER_WAKE 8 /* chunks read from one fd per poll round */
#define IN_COMPACT_AT (256u * 1024)

struct chan {
	struct chan *next;
	uint32_t sid, ch;
	char tag[40];            /* "sid/ch" for logs */
	pid_t pid;               /* process group leader */
	int reaped;
	int wstatus;
	int64_t exit_ms;         /* when reaped */
	int is_pty;
	int in_fd, out_fd, err_fd; /* for a pty: in_fd == out_fd == master */
	int stdin_dead;          /* writes to the child fail: drop input */
	struct bz_buf in;        /* client bytes the child did not take yet */
	uint32_t send_window;    /* bytes we may still send */
	uint32_t recv_left;      /* bytes the client may still send */
	uint32_t consumed;       /* taken by the child, not yet granted */
	int client_eof, client_closed;
	int eof_sent, close_sent;
	int64_t kill_at;         /* SIGKILL deadline after SIGHUP; 0 = none */
	uint64_t bytes_in, bytes_out; /* totals, for the log */
	int pidx[3];             /* pollfd index of in/out/err, -1 = none */
};

struct chan_table {
	struct chan *head;
	size_t n;
};

struct chan_table *
chans_new(void)
{
	return calloc(1, sizeof(struct chan_table));
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Close the child's descriptors (a pty master only once). */
static void
close_io(struct chan *c)
{
	if (c->is_pty) {
		close_fd(&c->out_fd);
		c->in_fd = -1;
	} else {
		close_fd(&c->in_fd);
		close_fd(&c->out_fd);
		close_fd(&c->err_fd);
	}
	c->stdin_dead = 1;
	bz_buf_free(&c->in);
}

static void
chan_free(struct chan *c)
{
	close_io(c);
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
		chan_free(c);
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

int
chans_add(struct chan_table *t, const struct agent_request *req,
    const struct child_proc *cp)
{
	struct chan *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return BZ_ERR_ALLOC;
	c->sid = req->sid;
	c->ch = req->ch;
	snprintf(c->tag, sizeof(c->tag), "%u/%u", req->sid, req->ch);
	c->pid = cp->pid;
	c->is_pty = cp->pty_fd >= 0;
	if (c->is_pty) {
		c->in_fd = c->out_fd = cp->pty_fd;
		c->err_fd = -1;
	} else {
		c->in_fd = cp->in_fd;
		c->out_fd = cp->out_fd;
		c->err_fd = cp->err_fd;
	}
	bz_buf_init(&c->in);
	c->send_window = BZ_WIRE_INITIAL_WINDOW;
	c->recv_left = BZ_WIRE_INITIAL_WINDOW;
	c->pidx[0] = c->pidx[1] = c->pidx[2] = -1;
	c->next = t->head;
	t->head = c;
	t->n++;
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

static void
send_frame(struct bz_link *link, const struct chan *c, uint8_t type,
    const void *p, size_t n)
{
	if (link != NULL && bz_link_send_frame(link, type, 0, c->sid, c->ch,
	    p, n) != 0)
		bz_debug("channel %s: cannot queue a %s frame", c->tag,
		    bz_frame_type_name(type));
}

/* Hand back the credit for bytes the child took (batched). */
static void
grant(struct bz_link *link, struct chan *c, int force)
{
	uint8_t p[4];

	if (c->consumed == 0 || c->close_sent ||
	    (!force && c->consumed < AGENT_GRANT_BATCH))
		return;
	p[0] = (uint8_t)(c->consumed >> 24);
	p[1] = (uint8_t)(c->consumed >> 16);
	p[2] = (uint8_t)(c->consumed >> 8);
	p[3] = (uint8_t)c->consumed;
	send_frame(link, c, BZ_FRAME_WINDOW, p, sizeof(p));
	c->recv_left += c->consumed;
	c->consumed = 0;
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
			send_frame(link, c, BZ_FRAME_CLOSE, NULL, 0);
		c->close_sent = 1;
	}
	close_io(c);
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

/* EOF, exit, CLOSE once the child is reaped and its output drained. */
static void
finish(struct bz_link *link, struct chan *c)
{
	json_t *o;

	if (c->close_sent || !c->reaped || c->out_fd >= 0 || c->err_fd >= 0 ||
	    link == NULL)
		return;
	if (!c->eof_sent) {
		send_frame(link, c, BZ_FRAME_EOF, NULL, 0);
		c->eof_sent = 1;
	}
	if (WIFSIGNALED(c->wstatus)) {
		o = json_pack("{s:s, s:s, s:b}", "t", "exit", "signal",
		    signal_name(WTERMSIG(c->wstatus)), "core",
		    WCOREDUMP(c->wstatus) ? 1 : 0);
		bz_info("channel %s: ended by signal %s (%llu bytes in, "
		    "%llu out)", c->tag, signal_name(WTERMSIG(c->wstatus)),
		    (unsigned long long)c->bytes_in,
		    (unsigned long long)c->bytes_out);
	} else {
		o = json_pack("{s:s, s:i}", "t", "exit", "status",
		    WEXITSTATUS(c->wstatus));
		bz_info("channel %s: exited with status %d (%llu bytes in, "
		    "%llu out)", c->tag, WEXITSTATUS(c->wstatus),
		    (unsigned long long)c->bytes_in,
		    (unsigned long long)c->bytes_out);
	}
	if (agent_send_json(link, c->sid, c->ch, o) != 0)
		bz_debug("channel %s: cannot queue the exit status", c->tag);
	json_decref(o);
	send_frame(link, c, BZ_FRAME_CLOSE, NULL, 0);
	c->close_sent = 1;
	close_io(c);
}

/* ---- child -> client ---- */

static int
can_read(const struct chan *c, struct bz_link *link)
{
	return link != NULL && !c->close_sent && c->send_window > 0 &&
	    bz_link_pending(link) < AGENT_LINK_HIGH;
}

/* The child's output on *fd ended (EOF, or EIO on a pty). */
static void
output_done(struct chan *c, int *fd)
{
	if (c->is_pty) {
		close_fd(&c->out_fd);
		c->in_fd = -1;
		c->stdin_dead = 1;
		bz_buf_free(&c->in);
	} else
		close_fd(fd);
}

/* Read what the windows allow from *fd and send it as type. Returns 1 when
 * the fd had nothing to read right now (EAGAIN). */
static int
read_child(struct bz_link *link, struct chan *c, int *fd, uint8_t type)
{
	uint8_t buf[BZ_WIRE_DATA_CHUNK];
	size_t want;
	ssize_t n;
	int i;

	for (i = 0; i < READS_PER_WAKE && *fd >= 0 && can_read(c, link);
	    i++) {
		want = c->send_window < sizeof(buf) ? c->send_window :
		    sizeof(buf);
		if ((n = read(*fd, buf, want)) > 0) {
			send_frame(link, c, type, buf, (size_t)n);
			c->send_window -= (uint32_t)n;
			c->bytes_out += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 1;
		if (n < 0 && !(c->is_pty && errno == EIO))
			bz_debug("channel %s: read: %s", c->tag,
			    strerror(errno));
		output_done(c, fd);
	}
	return 0;
}

/* ---- client -> child ---- */

/* Write pending input to the child; grant back what it took. */
static void
write_child(struct bz_link *link, struct chan *c)
{
	ssize_t w;

	while (bz_buf_avail(&c->in) > 0 && !c->stdin_dead) {
		w = write(c->in_fd, bz_buf_peek(&c->in), bz_buf_avail(&c->in));
		if (w > 0) {
			(void)bz_buf_skip(&c->in, (size_t)w);
			c->consumed += (uint32_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		/* EPIPE / EIO: the child stopped reading for good */
		c->stdin_dead = 1;
		if (!c->is_pty)
			close_fd(&c->in_fd);
	}
	if (c->stdin_dead) {
		/* nobody will read it: drop, but keep the client's window */
		c->consumed += (uint32_t)bz_buf_avail(&c->in);
		bz_buf_reset(&c->in);
	}
	if (bz_buf_avail(&c->in) == 0) {
		bz_buf_reset(&c->in);
		/* a pipe carries the client's EOF on; a pty stays open */
		if (c->client_eof && !c->is_pty)
			close_fd(&c->in_fd);
	} else if (c->in.off > IN_COMPACT_AT)
		bz_buf_compact(&c->in);
	grant(link, c, bz_buf_avail(&c->in) == 0);
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
	if (c->stdin_dead) {
		c->consumed += f->length;
		grant(link, c, 1);
		return;
	}
	if (bz_buf_put(&c->in, f->payload, f->length) != 0) {
		chan_violation(link, c, "out of memory for input");
		return;
	}
	write_child(link, c);
}

static void
on_control(struct bz_link *link, struct chan *c, const struct bz_frame *f)
{
	char err[AGENT_ERRLEN];
	const char *t, *name;
	json_t *o;
	int sig;

	if ((o = bz_json_parse_object(f->payload, f->length, err,
	    sizeof(err))) == NULL) {
		bz_warn("channel %s: bad control message: %s", c->tag, err);
		return;
	}
	t = bz_json_str(o, "t");
	if (t != NULL && strcmp(t, "window_change") == 0) {
		json_int_t v[4];
		const char *k[4] = { "cols", "rows", "width", "height" };
		struct winsize ws;
		int i, ok = c->is_pty && c->out_fd >= 0;

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
	} else if (t != NULL && strcmp(t, "signal") == 0) {
		name = bz_json_str(o, "name");
		if (name == NULL || (sig = signal_number(name)) == 0)
			bz_debug("channel %s: unknown signal ignored", c->tag);
		else if (!c->reaped) {
			bz_info("channel %s: signal %s", c->tag, name);
			(void)kill(-c->pid, sig);
		}
	} else if (t != NULL && (strcmp(t, "exec") == 0 ||
	    strcmp(t, "shell") == 0)) {
		/* one request per channel, and never unsigned */
		bz_warn("channel %s: second or unsigned %s request refused",
		    c->tag, t);
	} else
		bz_debug("channel %s: ignored control message", c->tag);
	json_decref(o);
}

void
chans_frame(struct chan_table *t, struct bz_link *link,
    const struct bz_frame *f)
{
	struct chan *c;
	uint32_t credit;

	if ((c = chan_find(t, f->session_id, f->channel_id)) == NULL) {
		/* late frames for a channel already freed or refused */
		bz_debug("%s frame for unknown channel %u/%u",
		    bz_frame_type_name(f->type), f->session_id,
		    f->channel_id);
		return;
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
			write_child(link, c); /* closes a drained pipe */
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
		close_io(c);
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

/* ---- the poll loop's view ---- */

static void
add_pfd(struct pollfd *pfd, size_t *n, size_t max, int fd, short events,
    int *idx)
{
	*idx = -1;
	if (fd < 0 || events == 0 || *n >= max)
		return;
	pfd[*n].fd = fd;
	pfd[*n].events = events;
	pfd[*n].revents = 0;
	*idx = (int)*n;
	(*n)++;
}

size_t
chans_pollfds(struct chan_table *t, struct bz_link *link, struct pollfd *pfd,
    size_t max)
{
	struct chan *c;
	size_t n = 0;
	int rd;
	short want_out;

	for (c = t->head; c != NULL; c = c->next) {
		rd = can_read(c, link);
		want_out = bz_buf_avail(&c->in) > 0 && !c->stdin_dead ?
		    POLLOUT : 0;
		if (c->is_pty) {
			add_pfd(pfd, &n, max, c->out_fd,
			    (short)((rd ? POLLIN : 0) | want_out), &c->pidx[1]);
			c->pidx[0] = c->pidx[2] = -1;
			continue;
		}
		add_pfd(pfd, &n, max, c->in_fd, want_out, &c->pidx[0]);
		add_pfd(pfd, &n, max, c->out_fd, rd ? POLLIN : 0, &c->pidx[1]);
		add_pfd(pfd, &n, max, c->err_fd, rd ? POLLIN : 0, &c->pidx[2]);
	}
	return n;
}

static short
revents(const struct pollfd *pfd, size_t n, int idx)
{
	return idx >= 0 && (size_t)idx < n ? pfd[idx].revents : 0;
}

void
chans_io(struct chan_table *t, struct bz_link *link,
    const struct pollfd *pfd, size_t n)
{
	const short in_ev = POLLIN | POLLHUP | POLLERR;
	const short out_ev = POLLOUT | POLLHUP | POLLERR;
	struct chan *c;
	short ev;

	for (c = t->head; c != NULL; c = c->next) {
		if (c->is_pty) {
			ev = revents(pfd, n, c->pidx[1]);
			if (ev & out_ev)
				write_child(link, c);
			if (ev & in_ev)
				(void)read_child(link, c, &c->out_fd,
				    BZ_FRAME_DATA);
		} else {
			if (revents(pfd, n, c->pidx[0]) & out_ev)
				write_child(link, c);
			if (revents(pfd, n, c->pidx[1]) & in_ev)
				(void)read_child(link, c, &c->out_fd,
				    BZ_FRAME_DATA);
			if (revents(pfd, n, c->pidx[2]) & in_ev)
				(void)read_child(link, c, &c->err_fd,
				    BZ_FRAME_EXT_DATA);
		}
		c->pidx[0] = c->pidx[1] = c->pidx[2] = -1;
	}
}

/*
 * A pty whose child exited may still be held open by a background job:
 * after a short grace, read what is there and call the output done, as
 * sshd does, instead of waiting for the job.
 */
static void
pty_after_exit(struct bz_link *link, struct chan *c, int64_t now)
{
	if (!c->is_pty || !c->reaped || c->out_fd < 0 ||
	    now < c->exit_ms + AGENT_PTY_GRACE_MS || !can_read(c, link))
		return;
	if (read_child(link, c, &c->out_fd, BZ_FRAME_DATA) == 1)
		output_done(c, &c->out_fd);
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
		pty_after_exit(link, c, now);
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
		if (c->is_pty && c->reaped && c->out_fd >= 0 &&
		    now < c->exit_ms + AGENT_PTY_GRACE_MS)
			set_timeout(&timeout, c->exit_ms + AGENT_PTY_GRACE_MS,
			    now);
	}
	for (pp = &t->head; (c = *pp) != NULL;) {
		if (c->close_sent && c->client_closed && c->reaped) {
			*pp = c->next;
			t->n--;
			bz_debug("channel %s: freed", c->tag);
			chan_free(c);
		} else
			pp = &c->next;
	}
	return timeout;
}
