/*
 * jwks_cache_int.h: when the JWKS cache's thread fetches, as a pure state
 * machine on a millisecond clock, so tests can drive it with made-up
 * times. Only jwks_cache.c and its unit test include this.
 */
#ifndef BZ_JWKS_CACHE_INT_H
#define BZ_JWKS_CACHE_INT_H

#include <stdint.h>

struct bz_jwks_sched {
	uint32_t refresh_min_ms, retry_base_ms, retry_cap_ms;
	int have_keys;         /* a fetch has succeeded */
	int fetching;          /* between started and finished */
	int want;              /* a refresh was asked for, not yet started */
	int demanded;          /* last_demand_ms is set */
	int64_t last_demand_ms; /* start of the last fetch made for a request */
	int64_t retry_at_ms;   /* no keys: the next attempt */
	unsigned attempt;      /* failures in a row while no keys */
};

/* Settings as in bz_jwks_cache_cfg (0 = default); first fetch at now. */
void bz_jwks_sched_init(struct bz_jwks_sched *s, uint32_t refresh_min_ms,
    uint32_t retry_base_ms, uint32_t retry_cap_ms, int64_t now);
/* ms until the next fetch should start (0 = now), -1 = none due (idle,
 * or a fetch is running). */
int64_t bz_jwks_sched_next(const struct bz_jwks_sched *s, int64_t now);
/* A refresh is asked for: remembered until a fetch starts. Returns 0 when
 * a fetch is running or due now, else the ms until one starts. */
int64_t bz_jwks_sched_request(struct bz_jwks_sched *s, int64_t now);
/* A fetch starts now (it serves any request made so far). */
void bz_jwks_sched_started(struct bz_jwks_sched *s, int64_t now);
/* The fetch ended. Without keys a failure schedules the next attempt
 * (jittered backoff); returns its delay in ms, or 0. */
uint32_t bz_jwks_sched_finished(struct bz_jwks_sched *s, int ok,
    int64_t now);

#endif
