/*
 * jwks_cache.c: the IdP's signing keys. Fetched (blocking) before the
 * service starts; refreshed by a helper thread when a token names a key we
 * do not know, because the fetch blocks for up to seconds and the lws
 * thread must not. The thread hands its result over under a mutex and wakes
 * the lws thread with lws_cancel_service (the one lws call that is safe
 * from another thread); the lws thread installs it in bzp_jwks_poll.
 */
#include "bzproxy.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libwebsockets.h>

#include "buf.h"
#include "jwt.h"
#include "log.h"
#include "util.h"

struct bzp_jwks {
	char *issuer, *ca_file;
	struct bz_jwks *cur;        /* lws thread only */
	time_t last_start;          /* lws thread only */
	pthread_t th;
	int joinable;               /* lws thread only */

	pthread_mutex_t mu;
	struct lws_context *ctx;    /* under mu */
	int running;                /* under mu */
	int finished;               /* under mu: result not yet polled */
	struct bz_jwks *fresh;      /* under mu */
	char err[BZP_ERRLEN];       /* under mu */
};

int
bzp_jwks_start(const char *issuer, const char *ca_file, int wait_s,
    const volatile sig_atomic_t *stop, struct bzp_jwks **out, char *err,
    size_t errlen)
{
	struct bzp_jwks *j;
	time_t deadline = time(NULL) + wait_s;
	int r, warned = 0;

	*out = NULL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return BZ_ERR_ALLOC;
	pthread_mutex_init(&j->mu, NULL);
	if ((j->issuer = strdup(issuer)) == NULL ||
	    (ca_file != NULL && (j->ca_file = strdup(ca_file)) == NULL)) {
		bzp_jwks_free(j);
		return BZ_ERR_ALLOC;
	}
	/* The IdP may be starting at the same time as we are. */
	while ((r = bz_jwks_fetch(issuer, ca_file, &j->cur, err,
	    errlen)) != 0) {
		if (time(NULL) >= deadline || *stop) {
			bzp_jwks_free(j);
			return r;
		}
		if (!warned++)
			bz_warn("cannot fetch the IdP's keys yet (%s); "
			    "retrying for %d s", err, wait_s);
		sleep(1);
	}
	j->last_start = time(NULL);
	bz_info("IdP %s: %zu signing key(s)", issuer, bz_jwks_count(j->cur));
	*out = j;
	return BZ_OK;
}

void
bzp_jwks_set_context(struct bzp_jwks *j, struct lws_context *ctx)
{
	pthread_mutex_lock(&j->mu);
	j->ctx = ctx;
	pthread_mutex_unlock(&j->mu);
}

const struct bz_jwks *
bzp_jwks_get(const struct bzp_jwks *j)
{
	return j->cur;
}

static void *
refresh_thread(void *arg)
{
	struct bzp_jwks *j = arg;
	struct bz_jwks *fresh = NULL;
	char err[BZP_ERRLEN] = "";

	if (bz_jwks_fetch(j->issuer, j->ca_file, &fresh, err,
	    sizeof(err)) != 0)
		fresh = NULL;
	pthread_mutex_lock(&j->mu);
	bz_jwks_free(j->fresh);
	j->fresh = fresh;
	snprintf(j->err, sizeof(j->err), "%s", err);
	j->running = 0;
	j->finished = 1;
	if (j->ctx != NULL)
		lws_cancel_service(j->ctx);
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

int
bzp_jwks_refresh(struct bzp_jwks *j)
{
	sigset_t all, old;
	time_t now = time(NULL);
	int running, rc;

	pthread_mutex_lock(&j->mu);
	running = j->running;
	pthread_mutex_unlock(&j->mu);
	if (running)
		return 1;
	if (now - j->last_start < BZP_JWKS_MIN_INTERVAL)
		return 0;
	if (j->joinable) {
		pthread_join(j->th, NULL); /* finished: returns at once */
		j->joinable = 0;
	}
	j->last_start = now;
	pthread_mutex_lock(&j->mu);
	j->running = 1;
	pthread_mutex_unlock(&j->mu);
	/* Signals belong to the lws thread: the helper blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&j->th, NULL, refresh_thread, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		bz_error("cannot start the JWKS refresh thread");
		pthread_mutex_lock(&j->mu);
		j->running = 0;
		pthread_mutex_unlock(&j->mu);
		return 0;
	}
	j->joinable = 1;
	bz_info("unknown IdP key: refreshing the JWKS in the background");
	return 1;
}

int
bzp_jwks_poll(struct bzp_jwks *j)
{
	struct bz_jwks *fresh;
	char err[BZP_ERRLEN];
	int finished;

	pthread_mutex_lock(&j->mu);
	finished = j->finished;
	fresh = j->fresh;
	j->fresh = NULL;
	j->finished = 0;
	snprintf(err, sizeof(err), "%s", j->err);
	pthread_mutex_unlock(&j->mu);
	if (!finished)
		return 0;
	if (fresh != NULL) {
		bz_jwks_free(j->cur);
		j->cur = fresh;
		bz_info("IdP keys refreshed: %zu signing key(s)",
		    bz_jwks_count(j->cur));
	} else
		bz_warn("JWKS refresh failed (keeping the old keys): %s", err);
	return 1;
}

void
bzp_jwks_free(struct bzp_jwks *j)
{
	if (j == NULL)
		return;
	if (j->joinable)
		pthread_join(j->th, NULL); /* a fetch is bounded by its timeout */
	pthread_mutex_destroy(&j->mu);
	bz_jwks_free(j->cur);
	bz_jwks_free(j->fresh);
	free(j->issuer);
	free(j->ca_file);
	free(j);
}
