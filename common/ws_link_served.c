/*
 * ws_link_served.c: an open link served from its owner's poll loop
 * (bz_link_start_served) rather than by the link's thread. A frame then
 * goes from the socket to the owner's code, and from the owner's send to
 * the socket, in one thread: no handoff between threads, which cost a
 * wakeup and a context switch each way at bzsshd and at bzagent on every
 * keystroke. The link's thread still opens the connection (DNS, TCP,
 * TLS, upgrade may block), then leaves the open link to the owner.
 */
#include "ws_link_int.h"

#include <errno.h>
#include <poll.h>

/* Handed over by the thread and not over yet (the owner's view). */
static int
served(struct bz_link *l)
{
	int h;

	pthread_mutex_lock(&l->mu);
	h = l->handed_over && !l->finished;
	pthread_mutex_unlock(&l->mu);
	return h;
}

static void
finish(struct bz_link *l)
{
	link_finish(l);
	pthread_mutex_lock(&l->mu);
	l->finished = 1;
	pthread_mutex_unlock(&l->mu);
}

void
bz_link_poll_want(struct bz_link *l, struct pollfd *p, int *timeout_ms)
{
	short events = 0;
	int timeout = -1;

	p->fd = -1;
	p->events = 0;
	p->revents = 0;
	*timeout_ms = -1;
	if (l == NULL || !served(l))
		return;
	if (link_step(l, &events, &timeout) != 0) {
		finish(l);
		return;
	}
	if (events != 0) {
		p->fd = l->conn.fd;
		p->events = events;
	}
	*timeout_ms = timeout;
	/* that round may have read messages: take them before sleeping */
	pthread_mutex_lock(&l->mu);
	if (l->in_head != NULL)
		*timeout_ms = 0;
	pthread_mutex_unlock(&l->mu);
}

void
bz_link_serve(struct bz_link *l, short revents)
{
	short events;
	int timeout;

	if (l == NULL || !served(l))
		return;
	link_apply(l, revents);
	if (link_step(l, &events, &timeout) != 0)
		finish(l);
}

/* bz_link_send_frame on a served link: write at once, in the owner's
 * thread (the only one that sends on it). */
void
link_served_flush(struct bz_link *l)
{
	if (served(l) && link_flush(l) != 0)
		finish(l);
}

/* bz_link_wait on a served link: poll its socket ourselves. */
int
link_served_wait(struct bz_link *l, int timeout_ms)
{
	struct pollfd p;
	int t, queued;

	if (!served(l))
		return 0;
	pthread_mutex_lock(&l->mu);
	queued = l->in_head != NULL;
	pthread_mutex_unlock(&l->mu);
	if (queued)
		return 1;
	bz_link_poll_want(l, &p, &t);
	if (t < 0 || t > timeout_ms)
		t = timeout_ms;
	if (p.fd >= 0 || t > 0)
		while (poll(&p, 1, t) < 0 && errno == EINTR)
			;
	bz_link_serve(l, p.revents);
	return 1;
}

/* bz_link_free on a served link: flush, close, bounded, here. */
void
link_served_end(struct bz_link *l)
{
	if (!served(l))
		return;
	link_serve(l);
	finish(l);
}
