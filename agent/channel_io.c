/*
 * channel_io.c: a channel's descriptors, under the two credit windows of
 * docs/protocol.md "Flow control":
 *  - output -> client: we read only while send_window > 0 and the link's
 *    send queue is under AGENT_LINK_HIGH, so a slow client stops the child
 *    (its pipe fills) or the forwarded peer (TCP's window shuts) instead
 *    of growing our memory;
 *  - client -> input: the client sends at most recv_left; those bytes wait
 *    in `in` until written, and only then do we grant them back (WINDOW),
 *    so `in` never holds more than one window.
 * A child talks on three pipes or on a pty; a forward on one TCP socket,
 * half-closed in each direction on its own as SSH's EOF is.
 */
#include "channel_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define READS_PER_WAKE 8 /* chunks read from one fd per poll round */
#define IN_COMPACT_AT (256u * 1024)

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void
chan_close_io(struct chan *c)
{
	if (c->io == CHAN_PIPES) {
		close_fd(&c->in_fd);
		close_fd(&c->out_fd);
		close_fd(&c->err_fd);
	} else {
		close_fd(&c->out_fd);
		c->in_fd = -1;
	}
	c->stdin_dead = 1;
	bz_buf_free(&c->in);
}

int
chan_output_done(const struct chan *c)
{
	if (c->io == CHAN_SOCKET)
		return c->out_eof || c->out_fd < 0;
	if (c->io == CHAN_PTY && c->stdout_unread)
		return c->reaped; /* nobody reads the pty: done when it ends */
	return c->out_fd < 0 && c->err_fd < 0;
}

void
chan_stdout_gone(struct chan *c)
{
	if (c->io == CHAN_SOCKET || c->stdout_unread)
		return;
	c->stdout_unread = 1;
	if (c->io == CHAN_PIPES)
		close_fd(&c->out_fd);
}

static int
can_read(const struct chan *c, struct bz_link *link)
{
	return link != NULL && !c->close_sent && c->send_window > 0 &&
	    !(c->io == CHAN_PTY && c->stdout_unread) &&
	    bz_link_pending(link) < AGENT_LINK_HIGH &&
	    !(c->io == CHAN_SOCKET && c->out_eof);
}

/* The output on *fd ended (EOF, or EIO on a pty). */
static void
output_ended(struct chan *c, int *fd)
{
	switch (c->io) {
	case CHAN_PIPES:
		close_fd(fd);
		break;
	case CHAN_PTY:
		/* one descriptor: input ends with it */
		chan_close_io(c);
		break;
	case CHAN_SOCKET:
		/* the peer's FIN: we may still write to it */
		c->out_eof = 1;
		break;
	}
}

/* Read what the windows allow from *fd and send it as type. Returns 1 when
 * the fd had nothing to read right now (EAGAIN). */
static int
read_output(struct bz_link *link, struct chan *c, int *fd, uint8_t type)
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
			chan_send_frame(link, c, type, buf, (size_t)n);
			c->send_window -= (uint32_t)n;
			c->bytes_out += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 1;
		if (n < 0 && !(c->io == CHAN_PTY && errno == EIO))
			bz_debug("channel %s: read: %s", c->tag,
			    strerror(errno));
		if (n < 0 && c->io == CHAN_SOCKET)
			c->stdin_dead = 1; /* reset: nothing can be written */
		output_ended(c, fd);
	}
	return 0;
}

/* Hand back the credit for bytes written (batched: the client may still
 * send recv_left >= a window minus a batch, so nothing waits on it). */
static void
grant(struct bz_link *link, struct chan *c)
{
	uint8_t p[4];

	if (c->consumed < AGENT_GRANT_BATCH || c->close_sent)
		return;
	p[0] = (uint8_t)(c->consumed >> 24);
	p[1] = (uint8_t)(c->consumed >> 16);
	p[2] = (uint8_t)(c->consumed >> 8);
	p[3] = (uint8_t)c->consumed;
	chan_send_frame(link, c, BZ_FRAME_WINDOW, p, sizeof(p));
	c->recv_left += c->consumed;
	c->consumed = 0;
}

/* The client's EOF, once every byte before it is written. */
static void
pass_eof(struct chan *c)
{
	switch (c->io) {
	case CHAN_PIPES:
		close_fd(&c->in_fd);
		break;
	case CHAN_PTY:
		break; /* a pty stays open, as with sshd */
	case CHAN_SOCKET:
		if (!c->wr_shut && c->out_fd >= 0 &&
		    shutdown(c->out_fd, SHUT_WR) != 0)
			bz_debug("channel %s: shutdown: %s", c->tag,
			    strerror(errno));
		c->wr_shut = 1;
		break;
	}
}

void
chan_write_input(struct bz_link *link, struct chan *c)
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
		/* EPIPE / EIO / ECONNRESET: nobody reads it any more */
		c->stdin_dead = 1;
		if (c->io == CHAN_PIPES)
			close_fd(&c->in_fd);
	}
	if (c->stdin_dead) {
		/* nobody will read it: drop, but keep the client's window */
		c->consumed += (uint32_t)bz_buf_avail(&c->in);
		bz_buf_reset(&c->in);
	}
	if (bz_buf_avail(&c->in) == 0) {
		bz_buf_reset(&c->in);
		if (c->client_eof && !c->stdin_dead)
			pass_eof(c);
	} else if (c->in.off > IN_COMPACT_AT)
		bz_buf_compact(&c->in);
	grant(link, c);
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
		c->pidx[0] = c->pidx[1] = c->pidx[2] = -1;
		if (c->io != CHAN_PIPES) {
			/* one descriptor both ways */
			add_pfd(pfd, &n, max, c->out_fd,
			    (short)((rd ? POLLIN : 0) | want_out), &c->pidx[1]);
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
		if (c->io != CHAN_PIPES) {
			ev = revents(pfd, n, c->pidx[1]);
			if (ev & out_ev)
				chan_write_input(link, c);
			if (ev & in_ev)
				(void)read_output(link, c, &c->out_fd,
				    BZ_FRAME_DATA);
		} else {
			if (revents(pfd, n, c->pidx[0]) & out_ev)
				chan_write_input(link, c);
			if (revents(pfd, n, c->pidx[1]) & in_ev)
				(void)read_output(link, c, &c->out_fd,
				    BZ_FRAME_DATA);
			if (revents(pfd, n, c->pidx[2]) & in_ev)
				(void)read_output(link, c, &c->err_fd,
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
void
chan_pty_after_exit(struct bz_link *link, struct chan *c, int64_t now)
{
	if (c->io != CHAN_PTY || !c->reaped || c->out_fd < 0 ||
	    now < c->exit_ms + AGENT_PTY_GRACE_MS || !can_read(c, link))
		return;
	if (read_output(link, c, &c->out_fd, BZ_FRAME_DATA) == 1)
		output_ended(c, &c->out_fd);
}
