/*
 * jwks_cache.c: the IdP's signing keys, kept by a background thread; see
 * jwks_cache.h. When to fetch is decided by the pure schedule below
 * (jwks_cache_int.h); the thread only waits for it, fetches without the
 * lock, installs the result and runs the caller's notify callback.
 */
#include "jwks_cache.h"
#include "jwks_cache_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "buf.h"
#include "log.h"
#include "util.h"

#define ERRLEN 256
#define ATTEMPT_MAX 16   /* the backoff stops growing long before this */

/* ---- the schedule (pure) ---- */

void
bz_jwks_sched_init(struct bz_jwks_sched *s, uint32_t refresh_min_ms,
    uint32_t retry_base_ms, uint32_t retry_cap_ms, int64_t now)
{
	memset(s, 0, sizeof(*s));
	s->refresh_min_ms = refresh_min_ms ? refresh_min_ms :
	    BZ_JWKS_REFRESH_MIN_MS;
	s->retry_base_ms = retry_base_ms ? retry_base_ms :
	    BZ_JWKS_RETRY_BASE_MS;
	s->retry_cap_ms = retry_cap_ms ? retry_cap_ms : BZ_JWKS_RETRY_CAP_MS;
	if (s->retry_cap_ms < s->retry_base_ms)
		s->retry_cap_ms = s->retry_base_ms;
	s->retry_at_ms = now;
}

int64_t
bz_jwks_sched_next(const struct bz_jwks_sched *s, int64_t now)
{
	int64_t due = INT64_MAX, d;

	if (s->fetching)
		return -1;
	if (!s->have_keys)
		due = s->retry_at_ms;
	if (s->want) {
		/* the initial fetch and the backoff do not count: only
		 * fetches made for requests are limited */
		d = s->demanded ? s->last_demand_ms + s->refresh_min_ms : now;
		if (d < due)
			due = d;
	}
	if (due == INT64_MAX)
		return -1;
	return due <= now ? 0 : due - now;
}

int64_t
bz_jwks_sched_request(struct bz_jwks_sched *s, int64_t now)
{
	if (s->fetching)
		return 0;
	s->want = 1;
	return bz_jwks_sched_next(s, now);
}

void
bz_jwks_sched_started(struct bz_jwks_sched *s, int64_t now)
{
	s->fetching = 1;
	if (s->want && (!s->demanded ||
	    now >= s->last_demand_ms + s->refresh_min_ms)) {
		s->demanded = 1;
		s->last_demand_ms = now;
	}
	s->want = 0;
}

uint32_t
bz_jwks_sched_finished(struct bz_jwks_sched *s, int ok, int64_t now)
{
	uint32_t delay;

	s->fetching = 0;
	if (ok) {
		s->have_keys = 1;
		s->attempt = 0;
		return 0;
	}
	if (s->have_keys)
		return 0; /* keep the old keys; the next request asks again */
	delay = bz_backoff_delay(s->attempt, s->retry_base_ms,
	    s->retry_cap_ms);
	if (s->attempt < ATTEMPT_MAX)
		s->attempt++;
	s->retry_at_ms = now + delay;
	return delay;
}

/* ---- the cache and its thread ---- */

struct bz_jwks_cache {
	pthread_mutex_t mu;
	pthread_cond_t wake;        /* the thread: a request, or stop */
	pthread_cond_t done;        /* bz_jwks_cache_wait: a fetch ended */
	pthread_t thread;
	char *issuer, *ca_file;
	bz_jwks_fetch_fn fetch;
	/* under mu */
	struct bz_jwks_sched sched;
	struct bz_jwks *jwks;
	uint64_t fetches;
	unsigned failures;          /* in a row, while no keys */
	char err[ERRLEN];           /* the last fetch's error */
	bz_jwks_notify_fn notify;
	void *notify_arg;
	int stop;
	int orphaned;               /* freed while fetching: the thread frees */
};

static void
destroy(struct bz_jwks_cache *c)
{
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->wake);
	pthread_cond_destroy(&c->done);
	bz_jwks_free(c->jwks);
	free(c->issuer);
	free(c->ca_file);
	free(c);
}

/* Wait on cond (mu held) until signalled or the monotonic clock passes
 * deadline_ms. Returns ETIMEDOUT or 0. */
static int
wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t deadline_ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(deadline_ms / 1000);
	ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
	return pthread_cond_timedwait(cond, mu, &ts);
}

/* A fetch ended (mu held): install, log, tell whoever waits. */
static void
fetch_ended(struct bz_jwks_cache *c, int r, struct bz_jwks *j,
    const char *err)
{
	int had = c->jwks != NULL;
	uint32_t delay;

	delay = bz_jwks_sched_finished(&c->sched, r == 0, bz_now_ms());
	if (r == 0) {
		bz_jwks_free(c->jwks);
		c->jwks = j;
		c->err[0] = '\0';
		c->failures = 0;
		if (had)
			bz_info("IdP keys refreshed: %zu signing key(s)",
			    bz_jwks_count(j));
		else
			bz_info("fetched %zu IdP signing key(s) from %s",
			    bz_jwks_count(j), c->issuer);
	} else {
		snprintf(c->err, sizeof(c->err), "%s", err);
		if (!had)
			c->failures++;
		if (had)
			bz_warn("cannot refresh the IdP keys (keeping the old "
			    "ones): %s", err);
		else if ((c->failures & (c->failures - 1)) == 0)
			/* failures 1, 2, 4, 8...: a down IdP does not fill
			 * the log when retries are frequent */
			bz_warn("cannot fetch the IdP keys from %s (retry in "
			    "%u ms): %s", c->issuer, delay, err);
		else
			bz_debug("cannot fetch the IdP keys (retry in %u ms): "
			    "%s", delay, err);
	}
	c->fetches++;
	pthread_cond_broadcast(&c->done);
	if (c->notify != NULL)
		c->notify(c->notify_arg);
}

static void *
fetch_thread(void *arg)
{
	struct bz_jwks_cache *c = arg;
	struct bz_jwks *j;
	char err[ERRLEN];
	int64_t now, ms;
	int r;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		now = bz_now_ms();
		if ((ms = bz_jwks_sched_next(&c->sched, now)) < 0) {
			pthread_cond_wait(&c->wake, &c->mu);
			continue;
		}
		if (ms > 0) {
			(void)wait_until(&c->wake, &c->mu, now + ms);
			continue;
		}
		bz_jwks_sched_started(&c->sched, now);
		pthread_mutex_unlock(&c->mu);
		j = NULL;
		err[0] = '\0';
		r = c->fetch(c->issuer, c->ca_file, &j, err, sizeof(err));
		if (r != 0) {
			j = NULL;
			if (err[0] == '\0')
				snprintf(err, sizeof(err), "%s", bz_err_str(r));
		}
		pthread_mutex_lock(&c->mu);
		if (c->stop) {
			bz_jwks_free(j);
			break;
		}
		fetch_ended(c, r, j, err);
	}
	if (c->orphaned) {
		pthread_mutex_unlock(&c->mu);
		destroy(c);
		return NULL;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int
bz_jwks_cache_start(const struct bz_jwks_cache_cfg *cfg,
    struct bz_jwks_cache **out)
{
	struct bz_jwks_cache *c;
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	*out = NULL;
	if (cfg->issuer == NULL)
		return BZ_ERR_INVALID;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return BZ_ERR_ALLOC;
	if ((c->issuer = strdup(cfg->issuer)) == NULL ||
	    (cfg->ca_file != NULL &&
	    (c->ca_file = strdup(cfg->ca_file)) == NULL)) {
		free(c->issuer);
		free(c);
		return BZ_ERR_ALLOC;
	}
	c->fetch = cfg->fetch != NULL ? cfg->fetch : bz_jwks_fetch;
	bz_jwks_sched_init(&c->sched, cfg->refresh_min_ms, cfg->retry_base_ms,
	    cfg->retry_cap_ms, bz_now_ms());
	pthread_mutex_init(&c->mu, NULL);
	/* deadlines are on bz_now_ms's clock */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->wake, &ca);
	pthread_cond_init(&c->done, &ca);
	pthread_condattr_destroy(&ca);
	/* Signals belong to the caller's threads: ours blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->thread, NULL, fetch_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		destroy(c);
		return BZ_ERR_ALLOC;
	}
	*out = c;
	return BZ_OK;
}

void
bz_jwks_cache_free(struct bz_jwks_cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	c->notify = NULL;
	pthread_cond_broadcast(&c->wake);
	pthread_cond_broadcast(&c->done);
	if (c->sched.fetching) {
		/* Do not wait up to a whole fetch timeout to exit: the thread
		 * frees the cache when its fetch returns. */
		c->orphaned = 1;
		pthread_detach(c->thread);
		pthread_mutex_unlock(&c->mu);
		return;
	}
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	destroy(c);
}

void
bz_jwks_cache_set_notify(struct bz_jwks_cache *c, bz_jwks_notify_fn fn,
    void *arg)
{
	pthread_mutex_lock(&c->mu);
	c->notify = fn;
	c->notify_arg = arg;
	pthread_mutex_unlock(&c->mu);
}

int
bz_jwks_cache_wait(struct bz_jwks_cache *c, int timeout_ms, char *err,
    size_t errlen)
{
	int64_t deadline = bz_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int r = BZ_OK;

	pthread_mutex_lock(&c->mu);
	while (c->jwks == NULL && !c->stop &&
	    wait_until(&c->done, &c->mu, deadline) != ETIMEDOUT)
		;
	if (c->jwks == NULL) {
		bz_errf(err, errlen, "%s", c->err[0] ? c->err :
		    "no answer from the IdP yet");
		r = BZ_ERR_INVALID;
	}
	pthread_mutex_unlock(&c->mu);
	return r;
}

const struct bz_jwks *
bz_jwks_cache_lock(struct bz_jwks_cache *c)
{
	pthread_mutex_lock(&c->mu);
	return c->jwks;
}

void
bz_jwks_cache_unlock(struct bz_jwks_cache *c)
{
	pthread_mutex_unlock(&c->mu);
}

int64_t
bz_jwks_cache_refresh(struct bz_jwks_cache *c, uint64_t *fetches)
{
	int64_t ms;
	int wanted, have;

	pthread_mutex_lock(&c->mu);
	wanted = c->sched.want || c->sched.fetching;
	have = c->sched.have_keys;
	ms = bz_jwks_sched_request(&c->sched, bz_now_ms());
	if (fetches != NULL)
		*fetches = c->fetches;
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->mu);
	if (wanted)
		; /* said when first asked */
	else if (!have && ms == 0)
		bz_info("no IdP keys yet: fetching them now");
	else if (!have)
		bz_info("no IdP keys yet: next fetch in %lld ms",
		    (long long)ms);
	else if (ms == 0)
		bz_info("a token names an unknown IdP key: fetching the "
		    "JWKS again");
	else
		bz_info("a token names an unknown IdP key: fetching the "
		    "JWKS again in %lld ms (one refresh per %u s at most)",
		    (long long)ms, c->sched.refresh_min_ms / 1000);
	return ms;
}

uint64_t
bz_jwks_cache_fetches(struct bz_jwks_cache *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->mu);
	n = c->fetches;
	pthread_mutex_unlock(&c->mu);
	return n;
}
