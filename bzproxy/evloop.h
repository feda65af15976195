/*
 * evloop.h: bzproxy's own libuv loop, which lws joins as a "foreign" loop
 * (Debian's libwebsockets-evlib-uv plugin), with our signal handlers and
 * the JWKS cache's wake-up on it. Everything on it runs on one thread.
 */
#ifndef BZP_EVLOOP_H
#define BZP_EVLOOP_H

#include <stddef.h>
#include <libwebsockets.h>
#include <uv.h>

#define BZP_LOOP_SIGNALS 3 /* SIGTERM, SIGINT, SIGHUP */

struct bzp_loop {
	uv_loop_t uv;
	uv_signal_t sig[BZP_LOOP_SIGNALS];
	uv_async_t keys;        /* another thread: uv_async_send(&keys) */
	size_t nhandles;        /* of ours, open */
};

/* The loop, SIGTERM/SIGINT/SIGHUP to on_signal and keys to on_keys (each
 * handle's data is data). 0, or -1 (logged); bzp_loop_close either way
 * when l->uv was initialised (l->uv.data is then non-NULL). */
int bzp_loop_open(struct bzp_loop *l, uv_signal_cb on_signal,
    uv_async_cb on_keys, void *data);
/* After lws_create_context: is lws running on this loop? (Without its
 * libuv plugin it is not, and its poll() loop does not hold a fleet.) */
int bzp_loop_has_lws(struct bzp_loop *l);
/* After lws_context_destroy(*ctx) (created with info.pcontext = ctx):
 * let lws close its handles on the loop and free the context. */
void bzp_loop_lws_leave(struct bzp_loop *l, struct lws_context **ctx);
/* Close our handles, let the closes run, close the loop. */
void bzp_loop_close(struct bzp_loop *l);

#endif
