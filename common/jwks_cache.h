/*
 * jwks_cache.h: our copy of the IdP's signing keys (JWKS), kept by a
 * background thread; used by bzproxy and bzagent.
 *
 * The fetch (bz_jwks_fetch: https, up to seconds) only ever runs on the
 * cache's own thread, never on the caller's event loop:
 *   - at start, then again with jittered exponential backoff while the
 *     IdP cannot be reached and we have no keys;
 *   - on request (a token named a key we do not have), at most once per
 *     refresh_min_ms; the start-up fetch and its retries do not count. A
 *     request made while that limit holds is remembered and served when
 *     it expires, never dropped.
 * After every fetch, successful or not, the notify callback runs on the
 * cache's thread so the caller's loop can retry what waited for keys.
 */
#ifndef BZ_JWKS_CACHE_H
#define BZ_JWKS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "jwt.h"

#define BZ_JWKS_REFRESH_MIN_MS 60000u  /* on-request fetches: 1 per minute */
#define BZ_JWKS_RETRY_BASE_MS 1000u    /* no keys yet: first retry */
#define BZ_JWKS_RETRY_CAP_MS 60000u    /* no keys yet: longest retry */
/* How long a caller holds a request for fresh keys before refusing it. */
#define BZ_JWKS_HOLD_MS 5000

/* bz_jwks_fetch's signature, so tests can fetch without a network. */
typedef int (*bz_jwks_fetch_fn)(const char *issuer, const char *ca_file,
    struct bz_jwks **out, char *err, size_t errlen);
/* Runs on the cache's thread with its lock held: must not call into the
 * cache; meant for a wake-up (a byte to a pipe, lws_cancel_service). */
typedef void (*bz_jwks_notify_fn)(void *arg);

struct bz_jwks_cache_cfg {
	const char *issuer;          /* required; copied */
	const char *ca_file;         /* verifies the IdP; NULL = system store */
	uint32_t refresh_min_ms;     /* 0 = BZ_JWKS_REFRESH_MIN_MS */
	uint32_t retry_base_ms;      /* 0 = BZ_JWKS_RETRY_BASE_MS */
	uint32_t retry_cap_ms;       /* 0 = BZ_JWKS_RETRY_CAP_MS */
	bz_jwks_fetch_fn fetch;      /* NULL = bz_jwks_fetch */
};

struct bz_jwks_cache;

/* Start the thread, which fetches at once. 0 or BZ_ERR_*. */
int bz_jwks_cache_start(const struct bz_jwks_cache_cfg *cfg,
    struct bz_jwks_cache **out);
/* Stop and free. Does not wait for a fetch in flight: the thread frees
 * the cache when that returns (so never call curl_global_cleanup after). */
void bz_jwks_cache_free(struct bz_jwks_cache *c);

/* Set (or clear, fn NULL) the callback run after each fetch. Once this
 * returns the old callback is not running and will not run again. */
void bz_jwks_cache_set_notify(struct bz_jwks_cache *c, bz_jwks_notify_fn fn,
    void *arg);

/* Wait up to timeout_ms for the first keys: 0 once there are keys, else
 * BZ_ERR_INVALID with the last fetch error (if any) in err. */
int bz_jwks_cache_wait(struct bz_jwks_cache *c, int timeout_ms, char *err,
    size_t errlen);

/* Lock the cache and return the current keys (NULL while none); call
 * bz_jwks_cache_unlock when done with them. Keep it short. */
const struct bz_jwks *bz_jwks_cache_lock(struct bz_jwks_cache *c);
void bz_jwks_cache_unlock(struct bz_jwks_cache *c);

/*
 * A token named a key we do not have: ask for a fetch. Returns 0 when one
 * is running or starts now, else the ms until the (remembered) fetch will
 * start: the rate limit, or the backoff while we have no keys. *fetches
 * gets bz_jwks_cache_fetches() as of the request: a caller that holds the
 * request (when the wait is below its bound) retries it once that count
 * has moved on, i.e. a fetch has ended since.
 */
int64_t bz_jwks_cache_refresh(struct bz_jwks_cache *c, uint64_t *fetches);
/* Fetches ended so far, successful or not (starts at 0). */
uint64_t bz_jwks_cache_fetches(struct bz_jwks_cache *c);

#endif
