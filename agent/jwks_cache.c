/*
 * jwks_cache.c: our own copy of the IdP's signing keys, so the agent
 * checks ID tokens without trusting bzproxy. A thread fetches them
 * (blocking HTTPS with a 10 s timeout must not stall the channels): at
 * start, again with backoff while the IdP is unreachable, and on request
 * when a token names an unknown kid, at most once per REFRESH_MIN_S.
 */
#include "agent.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define REFRESH_MIN_S 60
#define RETRY_BASE_MS 1000u
#define RETRY_CAP_MS 60000u

struct jwks_cache {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	char *issuer, *ca_file;
	/* under mu */
	struct bz_jwks *jwks;
	int want_refresh;
	int stop;
	int fetching;        /* a fetch runs without mu */
	int orphaned;        /* freed while fetching: the thread cleans up */
	time_t last_fetch;   /* wall clock of the last successful fetch */
};

/* Wait on cv until stop, a refresh request, or ms elapsed (mu held). */
static void
wait_ms(struct jwks_cache *c, uint32_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!c->stop && !c->want_refresh &&
	    pthread_cond_timedwait(&c->cv, &c->mu, &ts) != ETIMEDOUT)
		;
}

static void
destroy(struct jwks_cache *c)
{
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	bz_jwks_free(c->jwks);
	free(c->issuer);
	free(c->ca_file);
	free(c);
}

static void *
fetch_thread(void *arg)
{
	struct jwks_cache *c = arg;
	struct bz_jwks *j;
	char err[AGENT_ERRLEN];
	unsigned attempt = 0;
	uint32_t delay;
	int have, r;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		have = c->jwks != NULL;
		if (have && !c->want_refresh) {
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		if (have && time(NULL) - c->last_fetch < REFRESH_MIN_S) {
			/* refreshed recently: ignore until the limit passes */
			c->want_refresh = 0;
			continue;
		}
		c->want_refresh = 0;
		c->fetching = 1;
		pthread_mutex_unlock(&c->mu);
		r = bz_jwks_fetch(c->issuer, c->ca_file, &j, err, sizeof(err));
		pthread_mutex_lock(&c->mu);
		c->fetching = 0;
		if (c->stop) {
			if (r == 0)
				bz_jwks_free(j);
			break;
		}
		if (r == 0) {
			bz_info("fetched %zu IdP signing key(s) from %s",
			    bz_jwks_count(j), c->issuer);
			bz_jwks_free(c->jwks);
			c->jwks = j;
			c->last_fetch = time(NULL);
			attempt = 0;
			continue;
		}
		c->last_fetch = time(NULL); /* a failure counts for the limit */
		if (have) {
			bz_warn("cannot refresh the IdP keys (keeping the old "
			    "ones): %s", err);
			continue;
		}
		delay = agent_backoff_delay(attempt, RETRY_BASE_MS,
		    RETRY_CAP_MS);
		if (attempt < 16)
			attempt++;
		bz_warn("cannot fetch the IdP keys (retry in %u ms): %s",
		    delay, err);
		wait_ms(c, delay);
		c->want_refresh = 0;
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
jwks_cache_start(const char *issuer, const char *ca_file,
    struct jwks_cache **out)
{
	struct jwks_cache *c;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->issuer = strdup(issuer)) == NULL ||
	    (ca_file != NULL && (c->ca_file = strdup(ca_file)) == NULL))
		goto fail;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&c->thread, NULL, fetch_thread, c) != 0) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
		goto fail;
	}
	*out = c;
	return BZ_OK;
 fail:
	if (c != NULL) {
		free(c->issuer);
		free(c->ca_file);
		free(c);
	}
	return BZ_ERR_ALLOC;
}

void
jwks_cache_free(struct jwks_cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_broadcast(&c->cv);
	if (c->fetching) {
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

const struct bz_jwks *
jwks_cache_lock(struct jwks_cache *c)
{
	pthread_mutex_lock(&c->mu);
	return c->jwks;
}

void
jwks_cache_unlock(struct jwks_cache *c)
{
	pthread_mutex_unlock(&c->mu);
}

void
jwks_cache_refresh(struct jwks_cache *c)
{
	pthread_mutex_lock(&c->mu);
	/* with no keys at all the thread is already retrying */
	if (c->jwks != NULL && time(NULL) - c->last_fetch >= REFRESH_MIN_S) {
		c->want_refresh = 1;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}
