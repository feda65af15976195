/*
 * evloop.c: bzproxy's libuv loop (evloop.h). lws 4.1 on a foreign loop
 * has a shape of its own at both ends: at start it must really be on it
 * (the plugin is loaded at run time), at the end lws_context_destroy only
 * starts closing its handles on the loop, and once they are closed a
 * second lws_context_destroy frees the context.
 */
#include "evloop.h"

#include <signal.h>
#include <string.h>

#include "log.h"

/* at exit: loop turns lws gets to close its handles (a close takes one) */
#define LWS_CLOSE_ROUNDS 1000

static const int loop_signals[BZP_LOOP_SIGNALS] = { SIGTERM, SIGINT, SIGHUP };

static void
on_handle_closed(uv_handle_t *h)
{
	struct bzp_loop *l = h->loop->data;

	l->nhandles--;
}

int
bzp_loop_open(struct bzp_loop *l, uv_signal_cb on_signal,
    uv_async_cb on_keys, void *data)
{
	size_t i;
	int r;

	memset(l, 0, sizeof(*l));
	if ((r = uv_loop_init(&l->uv)) != 0) {
		bz_error("cannot start the event loop: %s", uv_strerror(r));
		return -1;
	}
	l->uv.data = l;
	for (i = 0; i < BZP_LOOP_SIGNALS; i++) {
		if ((r = uv_signal_init(&l->uv, &l->sig[i])) != 0)
			goto fail;
		l->nhandles++;
		l->sig[i].data = data;
		if ((r = uv_signal_start(&l->sig[i], on_signal,
		    loop_signals[i])) != 0)
			goto fail;
	}
	if ((r = uv_async_init(&l->uv, &l->keys, on_keys)) != 0)
		goto fail;
	l->nhandles++;
	l->keys.data = data;
	return 0;
 fail:
	bz_error("cannot set up the signal handlers: %s", uv_strerror(r));
	return -1;
}

static void
count_poll(uv_handle_t *h, void *arg)
{
	if (uv_handle_get_type(h) == UV_POLL)
		(*(size_t *)arg)++;
}

int
bzp_loop_has_lws(struct bzp_loop *l)
{
	size_t polls = 0;

	/* on our loop lws watches at least its listening socket */
	uv_walk(&l->uv, count_poll, &polls);
	return polls > 0;
}

/* uv_walk: count the handles that are not ours (lws's). */
static void
count_theirs(uv_handle_t *h, void *arg)
{
	struct bzp_loop *l = h->loop->data;
	size_t i;

	for (i = 0; i < BZP_LOOP_SIGNALS; i++)
		if (h == (uv_handle_t *)&l->sig[i])
			return;
	if (h != (uv_handle_t *)&l->keys)
		(*(size_t *)arg)++;
}

void
bzp_loop_lws_leave(struct bzp_loop *l, struct lws_context **ctx)
{
	size_t left = 1;
	int rounds;

	for (rounds = 0; *ctx != NULL && rounds < LWS_CLOSE_ROUNDS;
	    rounds++) {
		left = 0;
		uv_walk(&l->uv, count_theirs, &left);
		if (left == 0)
			break;
		uv_run(&l->uv, UV_RUN_NOWAIT);
	}
	if (*ctx != NULL && left == 0)
		lws_context_destroy(*ctx); /* frees it: *ctx = NULL */
	if (*ctx != NULL)
		bz_warn("libwebsockets did not close its %zu handle(s) on the "
		    "event loop", left);
}

void
bzp_loop_close(struct bzp_loop *l)
{
	size_t i;
	int r;

	for (i = 0; i < BZP_LOOP_SIGNALS; i++)
		if (l->sig[i].loop != NULL)
			uv_close((uv_handle_t *)&l->sig[i], on_handle_closed);
	if (l->keys.loop != NULL)
		uv_close((uv_handle_t *)&l->keys, on_handle_closed);
	while (l->nhandles > 0 && uv_run(&l->uv, UV_RUN_ONCE) != 0)
		;
	uv_run(&l->uv, UV_RUN_NOWAIT);
	if ((r = uv_loop_close(&l->uv)) != 0)
		bz_warn("the event loop still had handles at exit: %s",
		    uv_strerror(r));
}
